#!/usr/bin/env bash
# Run the tests whose numbers come from training and inference (the quick-run pipeline and the
# COCO recipes) under a second oneDNN numeric path on this machine.
#
#   bash scripts/test_numeric_path.sh                 # ONEDNN_MAX_CPU_ISA=AVX512_CORE
#   bash scripts/test_numeric_path.sh AVX2            # another instruction-set cap
#   bash scripts/test_numeric_path.sh AVX512_CORE -x  # extra arguments go to pytest
#
# oneDNN picks its convolution kernels by instruction set, and bfloat16 kernels sum in another
# order on each (AMX on Intel Xeon, AVX512-BF16 on AMD EPYC, emulated on AVX512_CORE/AVX2), so a
# trained model's last bits — and the ties they break — differ between CPU families. Capping the
# instruction set here gives a second family's kind of arithmetic on one machine: the suite must
# pass on both (the README's test command covers the default path).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RETCONF_VENV:-$ROOT/.venv}"
ISA="${1:-AVX512_CORE}"
shift || true
bash "$ROOT/scripts/install.sh"
cd "$ROOT"
isa_of() {  # the instruction set oneDNN reports for a bfloat16 convolution under cap $1 ("" = none; empty if unknown)
  env -u ONEDNN_MAX_CPU_ISA "$VENV/bin/python" -c "
import sys
from retconf.machine import onednn_isa
isa = onednn_isa(sys.argv[1] or None)
print('' if isa == 'unknown' else isa)" "$1"
}
default_isa="$(isa_of "")"
capped_isa="$(isa_of "$ISA")"
echo "default path:  ${default_isa:-unknown}"
echo "tested path:   ${capped_isa:-unknown} (ONEDNN_MAX_CPU_ISA=$ISA)"
if [[ -n "$default_isa" && "$default_isa" == "$capped_isa" ]]; then
  echo "note: ONEDNN_MAX_CPU_ISA=$ISA gives this machine's default path; pick a lower cap (e.g. AVX2) for a second path"
fi
set +e
ONEDNN_MAX_CPU_ISA="$ISA" "$VENV/bin/python" -m pytest -m "not slow" \
  tests/test_pipeline.py tests/test_report.py tests/test_coco_recipes.py "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then echo "pytest collected no tests"; exit 0; fi
exit $rc
