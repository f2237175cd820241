"""Parameter: a Tensor that a Module registers as one of its learnable weights."""
import numpy as np

from .._checks import named_init
from ..tensor import Tensor, _as_array, _pickled, _wrap


class Parameter(Tensor):
    """A leaf Tensor that ``Module.__setattr__`` registers in ``module._parameters``.

    ``requires_grad`` is True by default. Built from a Tensor it shares that tensor's memory.

    >>> w = nn.Parameter(pyengine.randn(3, 4))
    >>> w.requires_grad, w.is_leaf
    (True, True)
    """

    __slots__ = ()

    @named_init
    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = np.empty((0,), np.float32)
        elif isinstance(data, Tensor):
            data = data._data  # share memory, drop any graph
        self._init(_as_array(data), requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        p = Parameter(self._data.copy(), self.requires_grad)
        if self.grad is not None:
            p.grad = _wrap(self.grad._data.copy())
        memo[id(self)] = p
        return p

    def __reduce_ex__(self, protocol):
        return (Parameter, (_pickled(self._data), self.requires_grad))
