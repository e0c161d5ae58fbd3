#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment and install retconf with its whole stack.
#
#   bash scripts/install.sh            # venv in ./.venv
#   RETCONF_VENV=/path bash scripts/install.sh
#
#   RETCONF_WHEELS=/path/wheels bash scripts/install.sh   # no PyPI: install from a wheel folder
#
# Steps: venv -> torch (CPU build where no CUDA; an existing CUDA torch and its numpy are kept) -> build tools ->
# mmcv 2.1.0 compiled from its sdist with ops -> retconf + the rest. Idempotent: a stamp holding
# the hash of this script, the constraints and pyproject.toml makes a second run take seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RETCONF_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
CONSTRAINTS="$ROOT/scripts/constraints.txt"
STAMP="$VENV/.retconf-install-stamp"
EXTRAS="${RETCONF_EXTRAS:-train,dev}"  # train: mmdet, mmengine, mmcv (pyproject.toml)

log() { printf '[install %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

want_stamp="$(cat "$ROOT/scripts/install.sh" "$CONSTRAINTS" "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)-$EXTRAS"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_stamp" ]] && "$VENV/bin/python" -c "import retconf, mmcv.ops, mmdet" 2>/dev/null; then
  log "environment $VENV is up to date"
  exit 0
fi

# A CUDA torch already importable by the base interpreter (e.g. a GPU machine's image) is kept:
# the venv then sees the system site-packages instead of installing a CPU build over it.
has_cuda_torch=0
if "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)" 2>/dev/null; then
  has_cuda_torch=1
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  if [[ $has_cuda_torch == 1 ]]; then
    log "creating $VENV (with system site-packages, to keep the installed CUDA torch)"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
fi
PY="$VENV/bin/python"
# A machine without PyPI (e.g. the GPU image): RETCONF_WHEELS=DIR installs from the wheels in DIR.
OFFLINE_ARGS=()
if [[ -n "${RETCONF_WHEELS:-}" ]]; then OFFLINE_ARGS=(--no-index --find-links "$RETCONF_WHEELS"); fi
# The image's numpy is kept like its CUDA torch (torch and other packages there are built against
# it): the numpy line of the constraints is replaced by the version that is there, which
# pyproject.toml's numpy range must accept (scripts/constraints.txt says why the two differ).
if [[ $has_cuda_torch == 1 ]] && base_numpy="$("$PY" -c 'import numpy; print(numpy.__version__)' 2>/dev/null)"; then
  log "keeping the base interpreter's numpy $base_numpy"
  sed "s/^numpy[<>=].*/numpy==$base_numpy/" "$ROOT/scripts/constraints.txt" > "$VENV/constraints.txt"
  CONSTRAINTS="$VENV/constraints.txt"
fi
pip_install() { "$PY" -m pip install --disable-pip-version-check -q "${OFFLINE_ARGS[@]}" -c "$CONSTRAINTS" "$@"; }

if "$PY" -c "import torch" 2>/dev/null; then
  log "keeping torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  # torch 2.13.0 is the CPU build on these machines; override with TORCH_SPEC (e.g. a CUDA index).
  log "installing ${TORCH_SPEC:-torch==2.13.0}"
  pip_install ${TORCH_SPEC:-torch==2.13.0}
fi

log "installing build tools"
pip_install wheel ninja mmengine opencv-python numpy

if "$PY" -c "import mmcv.ops" 2>/dev/null; then
  log "keeping mmcv $("$PY" -c 'import mmcv; print(mmcv.__version__)') (ops import)"
else
  force_cuda=0
  if "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    force_cuda=1
    # compile the CUDA kernels for this machine's card only (minutes instead of tens of minutes)
    export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$("$PY" -c 'import torch; m, n = torch.cuda.get_device_capability(); print(f"{m}.{n}")')}"
    log "CUDA ops for TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
  fi
  log "building mmcv 2.1.0 with ops (FORCE_CUDA=$force_cuda); about 10 minutes on 2 cores the first time, pip caches the wheel"
  # mmcv 2.1.0's setup.py imports pkg_resources (gone from setuptools >= 70) and must see torch
  # (--no-build-isolation); torch itself asks for setuptools >= 77, so the old one is only
  # installed for this build and replaced right after.
  pip_install "setuptools<70" 2>&1 | grep -v -e "dependency resolver" -e "requires setuptools" || true
  MMCV_WITH_OPS=1 FORCE_CUDA=$force_cuda MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    pip_install --no-build-isolation mmcv==2.1.0
  pip_install "setuptools>=77.0.3"  # torch 2.13 asks for it; constraints cap it below 81
fi

log "installing retconf[$EXTRAS] and its dependencies"
pip_install -e "$ROOT[$EXTRAS]"

"$PY" -c "import mmcv.ops, mmdet, retconf; print('retconf', retconf.__version__, '| mmdet', mmdet.__version__, '| mmcv', mmcv.__version__)"
echo "$want_stamp" > "$STAMP"
log "done: $VENV"
