"""Compiled conv kernels (csrc/cpu/conv.cpp); the specification is reference/conv.py."""
from ..reference.conv import *  # noqa: F401,F403  (interim: the NumPy twins until the kernels land)
from ..reference.conv import __all__  # noqa: F401
