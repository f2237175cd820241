#!/usr/bin/env bash
# Developer build: compiles csrc/ into pyengine/_C*.so in place (no pip involved).
# Usage: ./dev_build.sh [build-dir]   (default build/dev)
set -euo pipefail
cd "$(dirname "$0")"
BUILD=${1:-build/dev}
PY=${PYTHON:-python3}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$(command -v $PY)" \
      -Dpybind11_DIR="$($PY -m pybind11 --cmakedir)" >/dev/null
cmake --build "$BUILD" -j2
