#!/usr/bin/env bash
# The GPU check: every Keras backend the lent GPU machines can run, with Horama beside, in one command.
#
# Those machines hold Python 3.12, JAX and PyTorch with CUDA, but no TensorFlow, no Keras and no
# registry. So, here, once (both folders are git-ignored):
#   bash benchmarks/gpu_check.sh --prepare
# puts into .whl/ the wheels they lack (keras, namex, optree; keras_hub, kagglehub, kagglesdk for
# the ViT row; xplique, whose package holds the ImageNet magnitude file; horama), and into .gpu/
# the shared MobileNetV2. Then, there (the device tool, carrying .whl and .gpu):
#   bash benchmarks/gpu_check.sh            # options: see benchmarks/backends.py --help
# It installs the wheels into /tmp/site, then runs benchmarks/backends.py under JAX and PyTorch:
# seconds per picture and step against each backend's own forward+backward floor, for 1, 4 and
# 16 units at the paper's settings (32 crops, 512 px), a ViT-B/16 block channel, and Horama.
# Here, to check the script itself: bash benchmarks/gpu_check.sh --allow-cpu --units 1 --steps 2
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi; fi

if [ "${1:-}" = "--prepare" ]; then
    mkdir -p .whl .gpu/models
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl \
        keras==3.15.1 namex optree keras-hub==0.32.0 kagglehub kagglesdk xplique==2.0.2 horama==0.3.0
    shared="${MACO_SHARED:-../shared}"
    cp "$shared/models/mobilenet_v2_1.0_224.keras" .gpu/models/
    du -sh .whl .gpu
    exit 0
fi

if [ -d .whl ] && ! "$PY" -c "import keras" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
MODELS=()
[ -d .gpu/models ] && MODELS=(--models-dir .gpu/models)
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
ARGS=("$@")
[ "${#ARGS[@]}" -eq 0 ] && ARGS=(--units 1 4 16 --steps 16 --horama --vit)
exec timeout 540 "$PY" benchmarks/backends.py --backends jax torch "${MODELS[@]}" "${ARGS[@]}"
