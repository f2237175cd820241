"""pyengine.linalg: torch.linalg's names for the norms and products of pyengine.ops.linalg."""
from ._checks import tensor_op
from .ops.linalg import cross as _cross
from .ops.linalg import matmul, matrix_norm, vector_norm  # noqa: F401
from .ops.linalg import norm_linalg as norm  # noqa: F401


@tensor_op("a", "b", name="linalg.cross")
def cross(a, b, dim=-1):
    """Cross product of 3-vectors along ``dim`` (default the last), a and b broadcast."""
    return _cross(a, b, dim)


__all__ = ["norm", "vector_norm", "matrix_norm", "cross", "matmul"]
