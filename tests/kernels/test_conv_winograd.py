"""Winograd F(4x4, 3x3) (csrc/cpu/conv_winograd.cpp): the plans of the forward / input gradient (the whole U, or
U's rows per group of A panels in K blocks: the by_op plan) against the float64 twin, with the same bits on 1,
2 and 3 threads, and the NaN / inf check the transforms make (a non-finite operand sends the call to the im2col
path) in every plan. The other Winograd tests are in test_conv.py."""
import numpy as np
import pytest

from pyengine.backend import reference as ref
from pyengine.backend.cpu import conv as cpu
from pyengine.testing import assert_close, results_on_threads

from .test_conv import _winograd_tol as _tol, winograd_all  # noqa: F401 (a fixture)

ARGS = ((1, 1), (1, 1), (1, 1), 1)

# N, C, H, W, O: which plan each takes depends on the ISA's tile (MR x NR: 14 x 32, 6 x 16 or 4 x 8 floats)
SHAPES = [
    (2, 3, 9, 10, 4),     # few channels: the whole U
    (1, 70, 5, 6, 75),    # 4 tiles, many channels: by_op, one panel, two K blocks (64 + 6), groups of panels
    (2, 64, 9, 9, 64),    # 18 tiles: by_op, one K block (AVX-512, float), several panels on the narrower tiles
    (3, 96, 12, 12, 29),  # 27 tiles, 29 output channels: partial A panels
    (2, 130, 7, 7, 64),   # by_op with three K blocks (64 + 64 + 2) on 2 and 3 threads: groups split differently
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", (np.float32, np.float64))
def test_winograd_plans_match_twin_same_bits(isa, winograd_all, shape, dtype):
    N, C, H, W, O = shape
    rng = np.random.default_rng(sum(shape))
    x, w, b = rng.standard_normal((N, C, H, W)), rng.standard_normal((O, C, 3, 3)), rng.standard_normal(O)
    dy = rng.standard_normal((N, O, H, W))
    xs, ws, bs, dys = (a.astype(dtype) for a in (x, w, b, dy))
    got = results_on_threads(lambda: (cpu.conv2d_forward(xs, ws, bs, *ARGS, (H, W)),
                               cpu.conv2d_backward_input(dys, ws, (H, W), *ARGS)))
    assert_close(got[0][0], ref.conv2d_forward(x, w, b, *ARGS, (H, W)), **_tol(dtype, C))
    assert_close(got[0][1], ref.conv2d_backward_input(dy, w, (H, W), *ARGS), **_tol(dtype, O))
    for g in got[1:]:
        for a, want in zip(g, got[0]):
            np.testing.assert_array_equal(a, want)


def _where(rng, shape):
    return tuple(int(rng.integers(0, n)) for n in shape)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the twin's matmul, on the NaNs it makes
@pytest.mark.parametrize("shape", SHAPES)
def test_winograd_nonfinite_every_plan(isa, winograd_all, shape):
    """A NaN or inf anywhere in x, w or dy (the first or last filter, a late K block, a partial A panel) is
    caught by the transforms: the call takes the im2col path and puts NaN / inf exactly where the twin
    does; on 1, 2 and 3 threads."""
    N, C, H, W, O = shape
    rng = np.random.default_rng(7 + sum(shape))
    for where in ("x", "w_first", "w_last", "w", "dy"):
        x, w = rng.standard_normal((N, C, H, W)), rng.standard_normal((O, C, 3, 3))
        dy = rng.standard_normal((N, O, H, W))
        if where == "x":
            x[_where(rng, x.shape)] = np.nan
            x[_where(rng, x.shape)] = np.inf
        elif where == "w_first":
            w[0, 0, 0, 0] = -np.inf
        elif where == "w_last":
            w[O - 1, C - 1, 2, 2] = np.nan
        elif where == "w":
            w[_where(rng, w.shape)] = np.inf
        else:
            dy[_where(rng, dy.shape)] = np.nan
            dy[_where(rng, dy.shape)] = -np.inf
        x32, w32, dy32 = (a.astype(np.float32) for a in (x, w, dy))
        got = results_on_threads(lambda: (cpu.conv2d_forward(x32, w32, None, *ARGS, (H, W)),
                                   cpu.conv2d_backward_input(dy32, w32, (H, W), *ARGS)))
        want = (ref.conv2d_forward(x, w, None, *ARGS, (H, W)), ref.conv2d_backward_input(dy, w, (H, W), *ARGS))
        for g in got:
            for a, t in zip(g, want):
                np.testing.assert_array_equal(np.isnan(a), np.isnan(t), err_msg=f"NaN placement, non-finite {where}")
                np.testing.assert_array_equal(np.isinf(a), np.isinf(t), err_msg=f"inf placement, non-finite {where}")
                fin = np.isfinite(t)
                np.testing.assert_allclose(a[fin], t[fin], rtol=1e-4, atol=1e-4 * np.sqrt(9 * max(C, O)))
