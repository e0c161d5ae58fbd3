#!/usr/bin/env bash
# Fill wheels/ (gitignored) with what scripts/gpu_check.sh installs on a GPU machine that has no
# network: Python 3.12, a CUDA torch, numpy, pandas, pyarrow, scipy, matplotlib, OpenCV,
# scikit-learn/-image and torchvision already in its image (KINDS.md's package list), so only
# the OpenMMLab stack and a few small packages travel. Run it here, where PyPI is reachable.
#
#   bash scripts/gpu_wheels.sh            # -> wheels/*.whl, wheels/mmcv-2.1.0.tar.gz, wheels/SHA256SUMS
#
# Versions are this project's pins (scripts/constraints.txt) and what its CPU venv runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/wheels}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[[ -x "$PY" ]] || PY=python3
mkdir -p "$OUT"

# Pure-Python or manylinux cp312 wheels, no dependencies resolved (each one is named):
#   mmengine, mmdet and what they import that the GPU image lacks; pycocotools/faster-coco-eval
#   for evaluation; setuptools < 70 only to build mmcv 2.1.0 (its setup.py imports pkg_resources).
PKGS=(
  mmengine==0.10.7 mmdet==3.3.0 addict==2.4.0 yapf==0.43.0 platformdirs==4.3.8 termcolor==3.1.0
  terminaltables==3.1.10 shapely==2.1.1 pycocotools==2.0.10 faster-coco-eval==1.6.7
  setuptools==69.5.1
)
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d "$OUT" "${PKGS[@]}"
# mmcv 2.1.0 exists only as a source distribution: gpu_check.sh compiles it (or uses its Python
# part with retconf.mmcv_fallback).
"$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary=:all: -d "$OUT" mmcv==2.1.0
# The tiny preset's shared pretrained backbone, when a run here has one (saves the GPU check the
# CPU-bound pretraining; the same weights make its seeds comparable with this machine's runs).
BACKBONE="${RETCONF_TINY_BACKBONE:-$ROOT/runs/tiny/pretrain/backbone.pth}"
if [[ -f "$BACKBONE" ]]; then
  mkdir -p "$OUT/tiny-backbone"
  cp "$BACKBONE" "$OUT/tiny-backbone/backbone.pth"
  [[ -f "${BACKBONE%.pth}.json" ]] && cp "${BACKBONE%.pth}.json" "$OUT/tiny-backbone/backbone.json"
  echo "carrying the tiny backbone $BACKBONE"
else
  echo "no tiny backbone at $BACKBONE: the GPU check will pretrain one (set RETCONF_TINY_BACKBONE to carry one)"
fi
(cd "$OUT" && sha256sum *.whl *.tar.gz > SHA256SUMS)
du -sh "$OUT"
ls -1 "$OUT"
