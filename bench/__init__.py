"""pyengine's benchmarks: pyengine side by side with NumPy and PyTorch (when installed), same process.

`python -m bench` runs from the repository root, which puts the source tree's `pyengine/` first on
sys.path; its compiled core exists only after `./dev_build.sh` or `pip install -e .`. So an installed
pyengine (`pip install .`) is preferred here, and the source tree is the fallback.
"""
import os as _os
import sys as _sys


def _import_installed_pyengine():
    root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    shadowing = [p for p in _sys.path if _os.path.abspath(p or ".") == root]
    if "pyengine" in _sys.modules or not shadowing:
        return
    saved = list(_sys.path)
    _sys.path[:] = [p for p in _sys.path if p not in shadowing]
    try:
        import pyengine  # noqa: F401  (the installed one)
    except ImportError:
        _sys.modules.pop("pyengine", None)
    finally:
        _sys.path[:] = saved


_import_installed_pyengine()
