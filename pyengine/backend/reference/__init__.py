"""The reference backend: NumPy twins of every compiled kernel.

Each function here is the *specification* of the kernel of the same name in
``pyengine.backend.cpu`` (and, later, ``pyengine.backend.cuda``): a few lines of
plain NumPy that say what is computed, with the shapes in the docstring. Tests
hold the compiled kernels to these twins; ``pyengine.set_backend("reference")``
runs whole models on them.

Files mirror the kernel families in ``csrc/cpu/``.
"""
import numpy as np

from .gemm import *  # noqa: F401,F403
from .activation import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .norm import *  # noqa: F401,F403
from .embedding import *  # noqa: F401,F403
from .attention import *  # noqa: F401,F403
from .optim import *  # noqa: F401,F403
from .lstm import *  # noqa: F401,F403
from .rnn import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .elementwise import *  # noqa: F401,F403
from .mask import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .gemm_bf16 import *  # noqa: F401,F403

name = "reference"
xp = np  # the array module of this backend's device

from . import activation as _a, attention as _at, embedding as _e, gemm as _g, loss as _l, lstm as _ls, norm as _n, optim as _o
from . import conv as _cv, elementwise as _ew, gemm_bf16 as _gb, mask as _m, reduce as _r, rnn as _rn

# Every kernel name; each backend provides all of them with the same signatures.
KERNELS = [k for m in (_g, _a, _l, _n, _e, _at, _o, _ls, _rn, _r, _m, _ew, _cv, _gb) for k in m.__all__]
