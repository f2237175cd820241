"""Dropout (Srivastava et al. 2014)."""
from ..._checks import real_arg
from .. import functional as F
from .module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d"]


class Dropout(Module):
    """In training, zero each element with probability p and scale the rest by 1 / (1 - p);
    in eval mode, the identity.

    >>> drop = nn.Dropout(0.1)
    >>> drop.eval()(x) is x
    True
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        p = real_arg("Dropout", "p", p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout2d(Dropout):
    """In training, zero whole channels of (N, C, H, W) or (C, H, W) input with probability p and scale the
    rest by 1 / (1 - p) (Tompson et al. 2015); in eval mode, the identity."""

    def forward(self, input):
        return F.dropout2d(input, self.p, self.training)


class Dropout1d(Dropout):
    """Dropout2d over (N, C, L) or (C, L) input."""

    def forward(self, input):
        return F.dropout1d(input, self.p, self.training)
