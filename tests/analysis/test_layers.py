"""``analysis`` is layered: its groups (:data:`analysis.GROUPS`, bottom first) import only from
their own group and the groups before them, no module imports another of ``analysis`` inside a
function (where an import would hide a loop), and docs/layout.md's groups are the folders.
Reads source only (ast); well under a second."""
from __future__ import annotations

import ast
from pathlib import Path

import analysis
from tests.conftest import ROOT

PACKAGE = ROOT / "analysis"


def imported_groups(path: Path, package: Path = PACKAGE) -> list[tuple[int, str, bool]]:
    """(line, imported ``analysis`` group, inside a function) of every import of ``path`` that
    names another module of ``analysis``."""
    tree = ast.parse(path.read_text(), str(path))
    parts = path.relative_to(package).parts
    group = parts[0] if len(parts) > 1 else ""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside |= {id(n) for n in ast.walk(node) if n is not node}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                parts = (node.module or "").split(".")
                if parts[0] != "analysis":
                    continue
                target = parts[1] if len(parts) > 1 else ""
            elif node.level == 1:
                target = group if node.module is None or group else (node.module or "").split(".")[0]
            else:
                target = (node.module or "").split(".")[0]
            names = [a.name for a in node.names]
            if target == "" and node.level == 0:  # from analysis import group
                for n in names:
                    out.append((node.lineno, n, id(node) in inside))
                continue
            out.append((node.lineno, target, id(node) in inside))
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "analysis" and len(parts) > 1:
                    out.append((node.lineno, parts[1], id(node) in inside))
    return out


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_groups_are_the_folders() -> None:
    folders = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert sorted(analysis.GROUPS) == folders
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules outside a group: {loose}"


def test_imports_run_one_way() -> None:
    rank = {g: i for i, g in enumerate(analysis.GROUPS)}
    upward, hidden = [], []
    for path in modules():
        parts = path.relative_to(PACKAGE).parts
        if len(parts) < 2:
            continue
        own = parts[0]
        for line, target, in_function in imported_groups(path):
            where = f"{path.relative_to(ROOT)}:{line} imports analysis.{target}"
            if target in rank and rank[target] > rank[own]:
                upward.append(where)
            if in_function:
                hidden.append(where)
    assert not upward, "imports from a group above:\n" + "\n".join(upward)
    assert not hidden, "imports of analysis inside a function:\n" + "\n".join(hidden)


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself: an upward and a function-level import are both found."""
    bad = tmp_path / "analysis" / "inputs" / "probe.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from ..studies import tables\n\ndef f():\n    from .io import Dump\n")
    found = imported_groups(bad, tmp_path / "analysis")
    assert (1, "studies", False) in found and (4, "inputs", True) in found
