#!/usr/bin/env bash
# Memory-safety check: builds the extension with AddressSanitizer + UndefinedBehaviorSanitizer and runs
# the kernel, op and hardening tests against it (the kernel tests cover every ISA level this CPU has).
# Any report fails the run. CI runs this after the normal suite; locally: ./dev/sanitize.sh [pytest args].
#
# Needs cmake, ninja and pybind11 importable by $PYTHON (pip install cmake ninja pybind11) and a gcc
# with libasan. The sanitized _C goes into build/asan/pkg/pyengine beside a copy of the Python sources,
# and Python runs with -S (no site hooks: an editable install would otherwise redirect `pyengine` to the
# normal build) and site-packages on PYTHONPATH. libasan must be loaded before anything else, and
# libstdc++ beside it, or a C++ exception thrown in the extension aborts instead of being caught.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
OUT=$ROOT/build/asan
PKG=$OUT/pkg

rm -rf "$PKG"
mkdir -p "$PKG"
tar -cf - --exclude='*.so' --exclude=__pycache__ pyengine | tar -xf - -C "$PKG"
echo "sanitize: building _C with -fsanitize=address,undefined (build/asan)"
# -O1: ASan's recommended level, and a third of -O3's compile time
cmake -S . -B "$OUT/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
      -DPYENGINE_SANITIZE=ON \
      -DPYENGINE_OUTPUT_DIR="$PKG/pyengine" -DPython_EXECUTABLE="$(command -v "$PY")" \
      -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$OUT/build" -j"$(nproc)"

SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# PyTorch's own libraries are not built with the sanitizers; its comparisons are left to the normal run
mkdir -p "$OUT/no_torch/torch"
echo 'raise ModuleNotFoundError("torch is hidden from the sanitizer run")' > "$OUT/no_torch/torch/__init__.py"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_odr_violation=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH="$PKG:$OUT/no_torch:$SITE"
cd "$OUT"   # not the source tree: `python -m` puts the working directory first on sys.path
if [ $# -eq 0 ]; then
  set -- "$ROOT/tests/kernels" "$ROOT/tests/test_ops.py" "$ROOT/tests/test_hardening.py" "$ROOT/tests/test_autograd.py"
fi
"$PY" -S -c 'import pyengine, sys; assert pyengine.__file__.startswith(sys.argv[1]), pyengine.__file__' "$PKG"
"$PY" -S -m pytest -q -p no:cacheprovider "$@"
