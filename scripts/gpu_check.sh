#!/usr/bin/env bash
# The GPU check: one call of at most 10 minutes on a GPU machine with no network (Python 3.12, a
# CUDA torch, numpy, nvcc and 16 cores in its image), with this repository and wheels/ (filled
# here by scripts/gpu_wheels.sh) carried along.
#
#   bash scripts/gpu_check.sh             # on the GPU machine
#   bash scripts/gpu_check.sh --dry-run   # anywhere, on CPU: every step at toy sizes
#
# Steps (each logged with its seconds; a step that fails is recorded and the next one runs):
#  1. install the carried wheels into a scratch folder (pip --target --no-index --no-deps), the
#     image's torch, numpy, pandas, OpenCV, ... are used as they are;
#  2. mmcv 2.1.0 from its sdist, two ways at once:
#     - fallback, ready in seconds: the sdist's pure-Python mmcv/ plus retconf/mmcv_fallback.py as
#       mmcv/_ext.py (NMS through torchvision's CUDA kernel, sigmoid focal loss in torch);
#     - compiled: `setup.py build_ext --inplace` with MMCV_WITH_OPS=1, FORCE_CUDA=1,
#       TORCH_CUDA_ARCH_LIST=<this card only>, MAX_JOBS=16, in the background under a time limit;
#  3. with the fallback: the R50 1x recipe at batch 16 on synthetic 1000x600 images for mmdet's
#     retinanet_r50_fpn_1x_coco and retconf's three detectors (s/iter, ratio, peak memory,
#     inference img/s), then the tiny preset's three detectors for 3 seeds (AP, s/iter);
#  4. if the compiled build finished in time: the R50 timing again with the compiled ops, so the
#     two are compared on the same card (that comparison decides which one to recommend);
#  5. results: reports/benchmarks/gpu_check{,_compiled}.{json,md} (+ _dryrun), copied to $OUT
#     when that is set, with the log and the end of the mmcv build log.
# GPU_CHECK_STAGES="r50" or "tiny" runs one stage (e.g. the tiny seeds in a second call if the
# first ran out of time); GPU_CHECK_BUDGET (default 540 s) bounds the whole script.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY=0
[[ "${1:-}" == "--dry-run" ]] && DRY=1
BUDGET="${GPU_CHECK_BUDGET:-540}"            # seconds for everything (the device call allows 600)
[[ $DRY == 1 ]] && BUDGET="${GPU_CHECK_BUDGET:-1800}"   # a loaded 2-core CPU is ~100x slower
WORK="${GPU_CHECK_WORK:-/tmp/retconf-gpu-check}"
REPORT="${GPU_CHECK_REPORT:-$ROOT/reports/benchmarks}"
WHEELS="${GPU_CHECK_WHEELS:-$ROOT/wheels}"
PY="${PYTHON:-python3}"
STAGES="${GPU_CHECK_STAGES:-r50 tiny}"       # e.g. GPU_CHECK_STAGES=tiny for a second call
TAG=""
[[ "$STAGES" != "r50 tiny" ]] && TAG="_$(echo $STAGES | tr ' ' '_')"   # its own output names
SUFFIX=""
[[ $DRY == 1 ]] && SUFFIX="_dryrun"
LOG="$REPORT/gpu_check${SUFFIX}.log"
mkdir -p "$WORK" "$REPORT"
: > "$LOG"
log() { printf '[gpu_check %4ds] %s\n' "$SECONDS" "$*" | tee -a "$LOG" >&2; }
left() { echo $((BUDGET - SECONDS)); }

log "python $($PY -c 'import sys; print(sys.version.split()[0])'), $(nproc) cores, dry run: $DRY"
$PY - <<'EOF' 2>&1 | tee -a "$LOG"
import torch, numpy
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "", "| numpy", numpy.__version__)
EOF

# ---------------------------------------------------------------- 1. wheels
SITE="$WORK/site"
BUILD_TOOLS="$WORK/buildtools"
if [[ ! -f "$WHEELS/SHA256SUMS" ]]; then
  log "no $WHEELS/SHA256SUMS: run scripts/gpu_wheels.sh first (on a machine with PyPI)"; exit 2
fi
(cd "$WHEELS" && sha256sum --quiet -c SHA256SUMS) || { log "wheel bundle does not match SHA256SUMS"; exit 2; }
rm -rf "$SITE" "$BUILD_TOOLS"
PIP_TARGET_ARGS=(--no-index --no-deps --no-compile --no-cache-dir --disable-pip-version-check -q)
if [[ $DRY == 1 ]]; then
  # Install the cp312 wheels for Python 3.12 as the device will (pip allows that with --target);
  # the dry run itself then runs on this machine's environment.
  PIP_TARGET_ARGS+=(--python-version 3.12 --only-binary=:all:)
fi
t=$SECONDS
$PY -m pip install "${PIP_TARGET_ARGS[@]}" --target "$SITE" $(ls "$WHEELS"/*.whl | grep -v setuptools-) 2>&1 | tee -a "$LOG"
$PY -m pip install "${PIP_TARGET_ARGS[@]}" --target "$BUILD_TOOLS" "$WHEELS"/setuptools-*.whl 2>&1 | tee -a "$LOG"
log "installed $(ls "$SITE" | grep -c dist-info) wheels into $SITE in $((SECONDS - t)) s"
if [[ $DRY == 1 ]]; then SITE_PATH=""; else SITE_PATH="$SITE:"; fi

# ---------------------------------------------------------------- 2. mmcv
rm -rf "$WORK/mmcv-2.1.0" "$WORK/mmcv-lite"
tar xzf "$WHEELS"/mmcv-2.1.0.tar.gz -C "$WORK"
mkdir -p "$WORK/mmcv-lite"
cp -r "$WORK/mmcv-2.1.0/mmcv" "$WORK/mmcv-lite/"
$PY "$ROOT/retconf/mmcv_fallback.py" "$WORK/mmcv-lite/mmcv" | tee -a "$LOG"
# setuptools < 70 stays on the path at run time too: mmengine 0.10 resolves `mmdet::` configs with
# pkg_resources, which setuptools >= 81 (maybe the image's) no longer has.
FALLBACK_PATH="$WORK/mmcv-lite:$SITE_PATH$ROOT:$BUILD_TOOLS"
COMPILED_PATH="$WORK/mmcv-2.1.0:$SITE_PATH$ROOT:$BUILD_TOOLS"
BUILD_PID=""
BUILD_BUDGET="${MMCV_BUILD_BUDGET:-$((BUDGET - 150))}"
if [[ $DRY == 0 ]] && $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" && command -v nvcc >/dev/null; then
  ARCH="$($PY -c 'import torch; m, n = torch.cuda.get_device_capability(); print(f"{m}.{n}")')"
  log "building mmcv 2.1.0 with CUDA ops for sm ${ARCH} only (MAX_JOBS=16, limit ${BUILD_BUDGET} s) in the background"
  (cd "$WORK/mmcv-2.1.0" && PYTHONPATH="$BUILD_TOOLS:$SITE" MMCV_WITH_OPS=1 FORCE_CUDA=1 \
     TORCH_CUDA_ARCH_LIST="$ARCH" MAX_JOBS=16 nice -n 10 timeout "$BUILD_BUDGET" \
     $PY setup.py build_ext --inplace > "$WORK/mmcv_build.log" 2>&1; echo $? > "$WORK/mmcv_build.rc") &
  BUILD_PID=$!
  BUILD_START=$SECONDS
else
  log "no CUDA/nvcc (or dry run): the compiled build is skipped; the fallback is used"
fi

# ---------------------------------------------------------------- 3. R50 timing + tiny seeds (fallback)
DRYARG=()
[[ $DRY == 1 ]] && DRYARG=(--dry-run)
BACKBONE=()
[[ -f "$WHEELS/tiny-backbone/backbone.pth" ]] && BACKBONE=(--backbone "$WHEELS/tiny-backbone/backbone.pth")
RESERVE=$([[ -n "$BUILD_PID" ]] && echo 110 || echo 20)   # time kept for the compiled R50 timing
log "R50 timing and tiny seeds with the fallback ops ($(( $(left) - RESERVE )) s)"
PYTHONPATH="$FALLBACK_PATH" PYTHONUNBUFFERED=1 $PY "$ROOT/benchmarks/gpu_check.py" "${DRYARG[@]}" \
  --out "$REPORT" --work "$WORK/run" --budget "$(( $(left) - RESERVE ))" --stages $STAGES --tag "$TAG" "${BACKBONE[@]}" \
  --extra "{\"mmcv_build\": \"these runs use the fallback ops; the compiled ones, if built in time, are timed in gpu_check_compiled\"}" 2>&1 | tee -a "$LOG" | grep -E "^\[gpu_check|^\{|Error" || true

# ---------------------------------------------------------------- 4. compiled ops, if built in time
if [[ -n "$BUILD_PID" && " $STAGES " != *" r50 "* ]]; then kill "$BUILD_PID" 2>/dev/null; BUILD_PID=""; fi
if [[ -n "$BUILD_PID" ]]; then
  while kill -0 "$BUILD_PID" 2>/dev/null && (( $(left) > 90 )); do sleep 5; done
  if [[ -f "$WORK/mmcv_build.rc" && "$(cat "$WORK/mmcv_build.rc")" == 0 ]] && ls "$WORK"/mmcv-2.1.0/mmcv/_ext*.so >/dev/null 2>&1; then
    BUILD_NOTE="compiled in $((SECONDS - BUILD_START)) s or less (sm ${ARCH}, MAX_JOBS=16, while the fallback runs used the machine)"
    log "mmcv $BUILD_NOTE; R50 timing with the compiled ops"
    PYTHONPATH="$COMPILED_PATH" PYTHONUNBUFFERED=1 $PY "$ROOT/benchmarks/gpu_check.py" --out "$REPORT" \
      --work "$WORK/run" --budget "$(( $(left) - 10 ))" --stages r50 --tag _compiled \
      --extra "{\"mmcv_build\": \"$BUILD_NOTE\"}" 2>&1 | tee -a "$LOG" | grep -E "^\[gpu_check|^\{|Error" || true
  else
    kill "$BUILD_PID" 2>/dev/null
    log "mmcv build did not finish in time or failed (rc $(cat "$WORK/mmcv_build.rc" 2>/dev/null || echo running)); its log ends:"
    tail -n 25 "$WORK/mmcv_build.log" | tee -a "$LOG"
  fi
  tail -n 200 "$WORK/mmcv_build.log" > "$REPORT/gpu_check_mmcv_build.log" 2>/dev/null
fi

# ---------------------------------------------------------------- 5. results
if [[ -n "${OUT:-}" ]]; then
  cp "$REPORT"/gpu_check${SUFFIX}*.json "$REPORT"/gpu_check${SUFFIX}*.md "$LOG" "$OUT"/ 2>/dev/null
  [[ -f "$REPORT/gpu_check_mmcv_build.log" ]] && cp "$REPORT/gpu_check_mmcv_build.log" "$OUT"/
fi
log "done in ${SECONDS} s; results in $REPORT/gpu_check${SUFFIX}*.md"
