#!/usr/bin/env bash
# Run the numerics-sensitive tests (those marked `numerics`: every test that trains a model or
# reads a trained model's output, see tests/conftest.py) under every oneDNN numeric path this
# machine offers, one after another, and say which failed under which path.
#
#   bash scripts/test_numeric_path.sh                    # every path: the default, then each cap
#   bash scripts/test_numeric_path.sh AVX2               # only these caps ("default" = no cap)
#   RETCONF_PYTEST_ARGS="-x -k postprocess" bash scripts/test_numeric_path.sh   # extra pytest arguments
#
# oneDNN picks its convolution kernels by instruction set, and bfloat16 kernels sum in another
# order on each (AMX on Intel Xeon, AVX512-BF16 on AMD EPYC, emulated on AVX512_CORE and AVX2), so
# a trained model's last bits, its quality after a brief training and the ties they break differ
# between CPU families. Capping the instruction set (ONEDNN_MAX_CPU_ISA) gives other families'
# kinds of arithmetic on one machine. The caps tried are AVX512_CORE_AMX, AVX512_CORE_BF16,
# AVX512_CORE and AVX2; a cap that gives the same instruction set as one already run (e.g.
# AVX512_CORE_BF16 on an AMD EPYC whose default it is) is skipped as a repeat. On an Intel Xeon with
# AMX that is four paths (the default AMX, AVX512_CORE_BF16, AVX512_CORE, AVX2); on AMD EPYC Zen 4
# three (the default AVX512_CORE_BF16, AVX512_CORE, AVX2).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RETCONF_VENV:-$ROOT/.venv}"
bash "$ROOT/scripts/install.sh"
cd "$ROOT"
if [[ $# -gt 0 ]]; then CAPS=("$@"); else CAPS=(default AVX512_CORE_AMX AVX512_CORE_BF16 AVX512_CORE AVX2); fi
isa_of() {  # the instruction set oneDNN reports for a bfloat16 convolution under cap $1 ("default" = none)
  local cap="$1"; [[ "$cap" == default ]] && cap=""
  env -u ONEDNN_MAX_CPU_ISA "$VENV/bin/python" -c "
import sys
from retconf.machine import onednn_isa
print(onednn_isa(sys.argv[1] or None))" "$cap"
}
declare -A seen=()
results=()
failed=0
# shellcheck disable=SC2086
for cap in "${CAPS[@]}"; do
  isa="$(isa_of "$cap")"
  if [[ "$isa" != unknown && -n "${seen[$isa]:-}" ]]; then
    echo "== $cap: oneDNN runs $isa, as under ${seen[$isa]}: skipped (the same numeric path)"
    results+=("$cap ($isa): skipped, same path as ${seen[$isa]}")
    continue
  fi
  seen[$isa]="$cap"
  echo "== $cap: oneDNN runs $isa; pytest -m 'numerics and not slow'"
  set +e
  if [[ "$cap" == default ]]; then
    env -u ONEDNN_MAX_CPU_ISA "$VENV/bin/python" -m pytest -m "numerics and not slow" ${RETCONF_PYTEST_ARGS:-}
  else
    ONEDNN_MAX_CPU_ISA="$cap" "$VENV/bin/python" -m pytest -m "numerics and not slow" ${RETCONF_PYTEST_ARGS:-}
  fi
  rc=$?
  set -e
  if [[ $rc -eq 0 || $rc -eq 5 ]]; then
    results+=("$cap ($isa): passed")
  else
    results+=("$cap ($isa): FAILED (pytest exit $rc; its failures are listed above under '== $cap')")
    failed=1
  fi
done
echo
echo "numeric paths on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'):"
for line in "${results[@]}"; do echo "  $line"; done
exit $failed
