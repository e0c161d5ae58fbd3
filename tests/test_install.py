"""A non-editable install (the wheel ``pip install .`` installs) works outside the source tree:
``analysis`` with its paper tables, and ``retconf report`` given the notebook directory."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

CHECK = """
import sys
from pathlib import Path
import analysis, retconf
from analysis.paper import load_table
from analysis.inputs import runs  # noqa: F401
from analysis.studies import tables  # noqa: F401
import retconf.report as report
where = Path(sys.argv[1])
assert Path(analysis.__file__).is_relative_to(where) and Path(retconf.__file__).is_relative_to(where), (analysis.__file__, retconf.__file__)
assert len(load_table("table1_three_models_r50")) > 0
try:
    report.notebooks()
except report.ReportError as e:
    assert "--notebooks DIR" in str(e), e
else:
    raise AssertionError("an installed retconf found notebooks/ without being told where")
names = [p.name for p in report.notebooks(directory=sys.argv[2])]
assert names[0] == "01_misalignment.ipynb" and names[-1] == "08_results.ipynb" and len(names) == 8, names
print("ok")
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built without dependencies or build isolation (seconds, offline), from
    a copy of the sources (an in-tree build would leave build/ in the checkout)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for package in ("retconf", "analysis"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return next(out.glob("retconf-*.whl"))


def test_wheel_ships_both_packages_and_the_paper_tables(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {"analysis/inputs/runs.py", "analysis/studies/tables.py", "retconf/report.py", "retconf/errors.py"} <= set(names)
    assert any(n.startswith("analysis/paper/") and n.endswith(".csv") for n in names)
    assert not any(n.startswith(("notebooks/", "tests/")) for n in names)


def test_installed_copy_works_outside_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip install puts in site-packages
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = subprocess.run([sys.executable, "-c", CHECK, str(site), str(ROOT / "notebooks")], cwd=elsewhere,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0 and "ok" in res.stdout, res.stdout + res.stderr[-3000:]
