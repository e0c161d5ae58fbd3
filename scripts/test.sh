#!/usr/bin/env bash
# Set up the environment (scripts/install.sh, seconds when already done) and run the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the slow end-to-end checks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RETCONF_VENV:-$ROOT/.venv}"
bash "$ROOT/scripts/install.sh"
cd "$ROOT"
# The report browser check needs Debian's Chromium. As root with apt it is installed here; elsewhere
# (or if that fails) the check is skipped, with the reason in pytest's summary.
# The Slurm executor's check (tests/test_slurm.py) starts a single-node Slurm from Debian's
# slurm-wlm and munge, installed the same way (skipped, with the reason, where they are missing).
want=()
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v slurmctld >/dev/null 2>&1 || [[ -x /usr/sbin/slurmctld ]] || want+=(slurm-wlm munge)
if [[ ${#want[@]} -gt 0 && $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${want[@]}" >/dev/null) \
    || echo "${want[*]} could not be installed: the browser or Slurm check is skipped"
fi
# Lint and type check first (pyproject.toml: [tool.ruff], [tool.mypy]); either failing fails the run.
"$VENV/bin/ruff" check .
"$VENV/bin/mypy"
set +e
if [[ $# -eq 0 ]]; then set -- -m "not slow"; fi
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when no test was collected (e.g. a -k filter that matches nothing): not a failure.
if [[ $rc -eq 5 ]]; then echo "pytest collected no tests"; exit 0; fi
exit $rc
