"""Loads the compiled extension, with an error that says how to build it."""
try:
    from pyengine import _C  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "pyengine's compiled core (pyengine._C) is not built. Install with `pip install .` "
        "(or `pip install -e .`), or build in place with ./dev_build.sh; "
        "or run on the NumPy twins with PYENGINE_BACKEND=reference."
    ) from e
