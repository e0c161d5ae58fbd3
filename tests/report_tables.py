"""Parse every table of a report page and list what breaks the tables' rules (shared by the report
tests): never truncated, one precision rule (at most 3 decimals; counts at most one decimal, the
mean over seeds; no ``1080.000``; both numbers of a "mean ± sd" cell), no all-NaN ``*_sd`` column."""
from __future__ import annotations

import html
import re

# Headers of count columns in the notebooks (boxes, anchors, detections; image columns of the
# intro Table 1 layout), with or without ``_sd``.
COUNT_HEADERS = re.compile(r"^(n|anchors|obj>0\.5|well-localized|cls<0\.5|kept \(IoU>=0\.5\)|wrong survivors|"
                           r"LaECE dets|D-ECE dets|image\d+)(_sd)?$")
_NUMBER = re.compile(r"^[+-]?\d+(\.(\d+))?$")
_WHOLE_WITH_ZEROS = re.compile(r"^[+-]?\d{2,}\.000+$")  # "1080.000": a count printed as a float


def _text(cell: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()


def tables(page: str) -> list[tuple[list[str], list[list[str]], int]]:
    """Every ``<table>`` of ``page`` as (header cells of its last header row, body rows of
    cells, number of header rows), the index cell included as the first cell of both."""
    out = []
    for table in re.findall(r"<table.*?</table>", page, re.S):
        head_rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table.split("<tbody>")[0], re.S)
        head = [_text(c) for c in re.findall(r"<th[^>]*>(.*?)</th>", head_rows[-1], re.S)] if head_rows else []
        body = table.split("<tbody>")[-1]
        rows = [[_text(c) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, re.S)]
                for r in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]
        out.append((head, rows, len(head_rows)))
    return out


def table_problems(page: str) -> list[str]:
    """What breaks the rules on one page (empty: none)."""
    problems = []
    if "rows ×" in page or re.search(r"<t[hd][^>]*>\s*(\.\.\.|…)\s*</t[hd]>", page):
        problems.append("truncated table")
    for k, (head, rows, n_head) in enumerate(tables(page)):
        if n_head > 1:
            problems.append(f"table {k}: {n_head} header rows (a pivot's column and index names)")
        for j, name in enumerate(head):
            column = [r[j] for r in rows if j < len(r)]
            if name.endswith("_sd") and column and all(v == "NaN" for v in column):
                problems.append(f"table {k}: {name} is NaN throughout")
            for v in column:
                parts = v.split(" ± ")  # a "mean ± sd" cell: both numbers follow the rule
                decimals = max(len(m.group(2) or "") if m else 0 for m in map(_NUMBER.match, parts))
                if decimals > (1 if COUNT_HEADERS.match(name) else 3) or any(map(_WHOLE_WITH_ZEROS.match, parts)):
                    problems.append(f"table {k}, column {name!r}: {v}")
                    break
    return problems
