"""The documentation against the tree: what can drift is checked here, not by hand.

- docs/layout.md lists every module (each ``.py`` under ``analysis/`` and ``retconf/``, each
  notebook) with a one-line purpose, and nothing else;
- no prose paragraph or list item of README.md or docs/*.md runs over ``MAX_WORDS`` words;
- counts typed in prose (notebooks, the paper's detectors, the other families) match the tree;
- every relative link of README.md and docs/*.md points at an existing file (and heading);
- README.md stays a front door of at most ``README_MAX_LINES`` lines.

Reads text files only: no training stack, no notebook kernel; well under a second.
"""
from __future__ import annotations

import ast
import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LAYOUT = DOCS / "layout.md"
MAX_WORDS = 120

# Pages left out of the paragraph-length check for now, each with its reason.
LONG_PARAGRAPH_EXCEPTIONS: set[str] = set()

# "one" … "twenty" as written in prose.
NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}
_NUMBER = r"(?:[1-9]\d*|" + "|".join(NUMBER_WORDS) + r")"  # "07" is a page's number, not a count


def pages() -> list[Path]:
    """README.md and every page of docs/."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def without_code(text: str) -> list[str]:
    """The lines of ``text`` with fenced code blocks blanked (kept as empty lines, so that
    paragraphs around them stay apart) and HTML comments removed."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            lines.append("")
            continue
        lines.append("" if fenced else line)
    return lines


def prose_without_code(text: str) -> str:
    """``text`` without fenced code blocks and inline code spans."""
    return re.sub(r"`[^`\n]*`", " ", "\n".join(without_code(text)))


# ---------------------------------------------------------------------------------- layout.md

def tree_modules() -> set[str]:
    """Every module of the tree: .py files under analysis/ and retconf/ (subpackages included)
    and the notebooks."""
    found = {rel(p) for package in ("analysis", "retconf") for p in (ROOT / package).rglob("*.py")
             if "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}
    found |= {rel(p) for p in (ROOT / "notebooks").glob("*.ipynb")}
    return found


_LISTED = re.compile(r"^\s*[-*] `([^`]+\.(?:py|ipynb))` — (.+)$")


def listed_modules() -> dict[str, str]:
    """docs/layout.md's module bullets: ``- `path` — purpose``, path -> purpose."""
    listed: dict[str, str] = {}
    for line in LAYOUT.read_text(encoding="utf-8").splitlines():
        m = _LISTED.match(line)
        if m:
            assert m.group(1) not in listed, f"docs/layout.md lists {m.group(1)} twice"
            listed[m.group(1)] = m.group(2).strip()
    return listed


def test_layout_lists_every_module_of_the_tree_and_nothing_else():
    listed, tree = set(listed_modules()), tree_modules()
    missing, extra = sorted(tree - listed), sorted(listed - tree)
    assert not missing and not extra, (
        "docs/layout.md does not match the tree (one bullet per module: - `path` — purpose).\n"
        f"missing from docs/layout.md: {missing}\nlisted but not in the tree: {extra}")


def test_layout_gives_each_module_a_one_line_purpose():
    short = {path: purpose for path, purpose in listed_modules().items() if len(purpose.split()) < 3}
    assert not short, f"docs/layout.md: give each module a purpose of a few words: {short}"


README_MAX_LINES = 120


def test_readme_stays_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail to docs/")


# ----------------------------------------------------------------------------- paragraph length

def blocks(text: str) -> list[str]:
    """Prose paragraphs and single list items of a Markdown page: fenced code, tables, headings
    and images are left out; a list item and its indented continuation lines are one block."""
    out: list[str] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            out.append(" ".join(s.strip() for s in current))
            current.clear()

    for line in without_code(text):
        stripped = line.strip()
        if not stripped or stripped.startswith(("|", "#", "![")):
            flush()
            continue
        if re.match(r"^\s*([-*+]|\d+[.)])\s+", line):  # a new list item
            flush()
        current.append(stripped)
    flush()
    return out


def test_blocks_split_paragraphs_items_and_skip_code_and_tables():
    text = ("one two\nthree\n\n- item a\n  continued\n- item b\n\n```\ncode code code\n```\n"
            "| a | b |\n|---|---|\n# Heading words\nlast")
    assert blocks(text) == ["one two three", "- item a continued", "- item b", "last"]


@pytest.mark.parametrize("page", [rel(p) for p in pages()])
def test_no_paragraph_runs_over_the_word_limit(page):
    if page in LONG_PARAGRAPH_EXCEPTIONS:
        pytest.skip(f"{page}: in LONG_PARAGRAPH_EXCEPTIONS")
    long = [(len(b.split()), b[:80]) for b in blocks((ROOT / page).read_text(encoding="utf-8"))
            if len(b.split()) > MAX_WORDS]
    assert not long, (f"{page}: {len(long)} paragraph(s) over {MAX_WORDS} words; split them:\n"
                      + "\n".join(f"  {n} words: {start} …" for n, start in long))


def test_the_exceptions_name_existing_pages():
    assert all((ROOT / p).exists() for p in LONG_PARAGRAPH_EXCEPTIONS)


# ----------------------------------------------------------------------------- counts in prose

def dict_literal_len(path: Path, name: str) -> int:
    """Entries of the module-level dict literal ``name`` in ``path`` (read, not imported: the
    presets import the training stack)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            assert isinstance(node.value, ast.Dict), f"{name} in {path} is no dict literal"
            return len(node.value.keys)
    raise AssertionError(f"{name} not found in {path}")


def tree_counts() -> dict[str, int]:
    presets = ROOT / "retconf" / "presets.py"
    return {
        "notebooks": len(list((ROOT / "notebooks").glob("*.ipynb"))),
        "detectors": dict_literal_len(presets, "TINY_DETECTORS"),  # the paper's detectors
        "families": dict_literal_len(presets, "FAMILY_DETECTORS"),  # the other dense families
    }


# A number, up to three words, then the counted thing.
_COUNT = re.compile(r"\b(" + _NUMBER + r")\s+(?:(?!" + _NUMBER + r"\b)[\w'’,-]+\s+){0,3}?"
                    r"(notebooks|detectors|families|pages)\b", re.I)
# The pages whose counts of detectors, families and pages are checked (notebooks: every page).
COUNTED_PAGES = ("README.md", "docs/layout.md")


def typed_counts(page: str) -> list[tuple[str, int, str]]:
    """(noun, number, phrase) of every count typed in ``page``'s prose."""
    text = prose_without_code((ROOT / page).read_text(encoding="utf-8"))
    found = []
    for m in _COUNT.finditer(text.replace("\n", " ")):
        word, noun = m.group(1).lower(), m.group(2).lower()
        found.append((noun, int(word) if word.isdigit() else NUMBER_WORDS[word], m.group(0)))
    return found


def test_typed_counts_match_the_tree():
    counts, wrong = tree_counts(), []
    for path in pages():
        page = rel(path)
        for noun, number, phrase in typed_counts(page):
            if noun == "notebooks" and number != counts["notebooks"]:
                wrong.append(f"{page}: '{phrase}', the tree has {counts['notebooks']} notebooks")
            if page not in COUNTED_PAGES or noun == "notebooks":
                continue
            if noun == "pages":
                wrong.append(f"{page}: '{phrase}': do not type a count of pages (or check it here)")
            elif noun == "families" and number != counts["families"]:
                wrong.append(f"{page}: '{phrase}', FAMILY_DETECTORS has {counts['families']}")
            elif noun == "detectors" and number not in (counts["detectors"], counts["families"]):
                wrong.append(f"{page}: '{phrase}', TINY_DETECTORS has {counts['detectors']}")
            elif noun == "detectors" and number == counts["families"] != counts["detectors"] \
                    and "famil" not in phrase.lower() and "more" not in phrase.lower():
                wrong.append(f"{page}: '{phrase}', TINY_DETECTORS has {counts['detectors']}")
    assert not wrong, "counts typed in the docs differ from the tree:\n" + "\n".join(wrong)


def test_count_check_reads_number_words():
    assert NUMBER_WORDS["eight"] == 8
    m = _COUNT.search("seven thin, numbered notebooks")
    assert m and m.group(1) == "seven" and m.group(2) == "notebooks"
    assert _COUNT.search("page 07 among the notebooks") is None


# -------------------------------------------------------------------------------------- links

_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_LINK = re.compile(r"""(?:href|src)=["']([^"']+)["']""")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`|\*\*?|__?", "", heading.strip().lower())
    text = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Anchors of a Markdown file's headings (a repeated heading gets -1, -2, … as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for line in without_code(path.read_text(encoding="utf-8")):
        m = re.match(r"^#{1,6}\s+(.+?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            out.add(base if n == 0 else f"{base}-{n}")
            seen[base] = n + 1
    return out


def relative_links(path: Path) -> list[str]:
    text = prose_without_code(path.read_text(encoding="utf-8"))
    targets = _LINK.findall(text) + _HTML_LINK.findall(text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def test_slug_follows_github():
    assert slug("What the default preset gives (measured)") == "what-the-default-preset-gives-measured"
    assert slug("Exploring: the explorer page and the live widget") == \
        "exploring-the-explorer-page-and-the-live-widget"
    assert slug("The analysis alone (no mmdet, mmengine or mmcv)") == \
        "the-analysis-alone-no-mmdet-mmengine-or-mmcv"


@pytest.mark.parametrize("page", [rel(p) for p in pages()])
def test_relative_links_point_at_existing_files(page):
    path = ROOT / page
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading with anchor #{anchor} in {rel(dest)})")
    assert not broken, f"{page}: broken relative links:\n" + "\n".join(f"  {b}" for b in broken)
