"""The CPU backend: the reference backend's functions, computed by the compiled core (pyengine._C).

Every kernel name of ``pyengine.backend.reference`` has a compiled implementation here with the
same signature and semantics; ``MISSING`` lists any that do not (the tests require it to be empty).
"""
import numpy as np

from .. import reference as _reference
from . import (activation, attention, conv, elementwise, embedding, gemm, gemm_bf16, loss, lstm, mask, norm, optim,
               reduce, rnn)
from ._lib import _C

name = "cpu"
xp = np

_families = (gemm, activation, loss, norm, embedding, attention, optim, lstm, rnn, reduce, mask, elementwise,
             conv, gemm_bf16)
for _mod in _families:
    for _name in _mod.__all__:
        globals()[_name] = getattr(_mod, _name)

KERNELS = _reference.KERNELS
MISSING = [k for k in KERNELS if k not in globals()]
for _name in MISSING:  # only while a family is being written; see tests/test_backend.py
    globals()[_name] = getattr(_reference, _name)


def set_num_threads(n):
    _C.set_num_threads(int(n))


def get_num_threads():
    return _C.num_threads()
