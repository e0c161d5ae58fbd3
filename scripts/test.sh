#!/usr/bin/env bash
# Set up the environment (scripts/install.sh, seconds when already done) and run the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow` for the slow end-to-end checks.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RETCONF_VENV:-$ROOT/.venv}"
bash "$ROOT/scripts/install.sh"
cd "$ROOT"
set +e
if [[ $# -eq 0 ]]; then set -- -m "not slow"; fi
"$VENV/bin/python" -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when no test was collected (e.g. a -k filter that matches nothing): not a failure.
if [[ $rc -eq 5 ]]; then echo "pytest collected no tests"; exit 0; fi
exit $rc
