"""Matrix multiplication on the GEMM kernel (backend function ``matmul``).

NumPy's matmul rules live here and nowhere else: 1-D operands are promoted to matrices and
demoted again, batch dims broadcast, and every case is reduced to the backend's contract, a
2-D GEMM or a batched one over one or two batch dims (3-D or 4-D operands, each batch dim with its
own stride, a batch dim of 1 broadcast), one kernel call per product.
"""
import math

import numpy as np

from .._checks import KERNEL_FLOATS, tensor_op
from ..autograd import Function


def matmul_shapes(fn, a, b):
    """NumPy's matmul rules for one call (MatMul and the bfloat16 MatMulBf16): a 1-D operand promoted to a
    matrix (fn.a_vec / fn.b_vec say which), the inner sizes checked, the batch dims broadcast. Sets fn.batch,
    fn.M, fn.K, fn.N; returns (a2, b2, batch), the operands as matrices (or stacks of them)."""
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError("matmul: both arguments need at least 1 dimension, got 0-d")
    fn.a_vec, fn.b_vec = a.ndim == 1, b.ndim == 1
    a2 = a[None, :] if fn.a_vec else a
    b2 = b[:, None] if fn.b_vec else b
    M, K = a2.shape[-2:]
    N = b2.shape[-1]
    if K != b2.shape[-2]:
        raise RuntimeError(f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be multiplied "
                           f"({K} != {b2.shape[-2]})")
    if a2.ndim == 2 and b2.ndim == 2:
        batch = ()
    else:
        try:
            batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
        except ValueError:
            raise RuntimeError(f"matmul: batch dims of {tuple(a.shape)} and {tuple(b.shape)} do not "
                               "broadcast") from None
    fn.batch, fn.M, fn.K, fn.N = batch, M, K, N
    return a2, b2, batch


class MatMul(Function):
    """y = a @ b with NumPy's rules (1-D promotion, broadcast batch dims).

    a: (..., M, K)  b: (..., K, N)  ->  y: (..., M, N)   (a 1-D a is (1, K), a 1-D b is (K, 1), and
    that dim is dropped from y)
    da = g @ b^T,  db = a^T @ g; the engine sums each over the batch dims that broadcasting added.
    Transposes and strided batches (heads (B, H, T, D) viewed from a (B, T, H, D) array, as attention
    written op by op makes them) go to the GEMM as they are, never materialised; da and db are written
    in their operand's memory order, so that the views' backwards (transpose, view) stay views too.
    """

    saves = (0, 1)

    fresh_grads = True  # da, db: new arrays from the GEMM

    def forward(self, a, b):
        a2, b2, batch = matmul_shapes(self, a, b)
        if a.dtype != b.dtype:
            raise TypeError(f"matmul: expected both operands to have the same dtype, got {a.dtype} and {b.dtype}")
        M, K, N = self.M, self.K, self.N
        # a's batch folded into its rows when b is one matrix for the whole batch: one 2-D GEMM
        self.fold = a2.ndim > 2 and math.prod(b2.shape[:-2]) == 1
        self.bshape = None  # the batch dims the GEMM sees (one or two), when not folded
        if self.fold:
            self.a, self.b = a2.reshape(math.prod(a2.shape[:-1]), K), b2.reshape(K, N)
        elif batch:
            self.bshape = bshape = self._gemm_batch(a2, b2, batch)
            self.a, self.b = self._batched(a2, bshape), self._batched(b2, bshape)
        else:
            self.a, self.b = a2, b2
        if a.dtype.kind != "f":  # integer matmul: NumPy's, no kernel
            y = self.xp.matmul(self.a, self.b)
        elif a.dtype not in KERNEL_FLOATS:
            raise TypeError(f"matmul: {a.dtype} is not supported: the kernels compute in float32 or float64 "
                            "(convert with .float())")
        else:
            y = self.backend.matmul(self.a, self.b)
        return self._demote(y.reshape(batch + (M, N)))

    def _gemm_batch(self, a, b, batch):
        """The batch dims the GEMM is called with: ``batch`` itself when it has one or two dims, else the
        dims merged into one or two where both operands' strides allow it without a copy, else into one
        (then the operands are copied)."""
        if len(batch) <= 2:
            return batch
        xp = self.xp
        views = [xp.broadcast_to(x, batch + x.shape[-2:]) for x in (a, b)]
        splits = [(math.prod(batch),)] + [(math.prod(batch[:k]), math.prod(batch[k:])) for k in range(1, len(batch))]
        for bshape in splits:
            try:
                for v in views:  # setting .shape refuses where a copy would be needed (any NumPy version)
                    v.view().shape = bshape + v.shape[-2:]
                return bshape
            except (AttributeError, ValueError):
                continue
        return splits[0]

    def _batched(self, x, bshape):
        """x (..., r, c) with the GEMM's batch dims: a matrix when its batch is one matrix (it broadcasts),
        else broadcast to the full batch (stride 0) and viewed as bshape (a copy only when _gemm_batch found
        no view)."""
        rc = x.shape[-2:]
        if math.prod(x.shape[:-2]) == 1:
            return x.reshape(rc)
        batch = self.batch
        if x.shape[:-2] != batch:
            x = self.xp.broadcast_to(x, batch + rc)
        return x if bshape == batch else x.reshape(bshape + rc)

    def _demote(self, y):
        if self.a_vec:
            y = y[..., 0, :]
        if self.b_vec:
            y = y[..., 0]
        return y

    def _grad_out(self, x, vec):
        """An empty gradient for operand x (its array as the GEMM saw it) in x's memory order, or None
        (then the GEMM allocates one in C order): when x is an input's own view, with all its batch
        dims, so that the gradient's layout undoes x's views in place."""
        if vec or x.ndim < 3 or x.shape[:-2] != self.batch or 0 in x.strides:
            return None
        strides = x.strides
        order = sorted(range(x.ndim), key=lambda i: -strides[i])  # stable: equal strides keep their order
        if order == list(range(x.ndim)):
            return None
        out = self.xp.empty([x.shape[i] for i in order], x.dtype)
        return out.transpose(np.argsort(order))

    def backward(self, g):
        B, a, b = self.backend, self.a, self.b
        M, K, N = self.M, self.K, self.N
        g = g.reshape(self.batch + (M, N))  # puts the 1-D operands' dims back
        if self.fold or not self.batch:
            g = g.reshape(math.prod(g.shape[:-1]), N)  # the rows of every batch, or the one matrix
        elif self.bshape != self.batch:
            g = g.reshape(self.bshape + (M, N))
        da = db = None
        if self.needs_input_grad[0]:
            out = None if self.fold else self._grad_out(a, self.a_vec)
            da = _shaped(B.matmul(g, b, trans_b=True, out=out), self.batch + (M, K))
        if self.needs_input_grad[1]:
            # folded, the sum over the batch of a_i^T g_i is (all rows of a)^T (all rows of g): one GEMM
            if self.fold:
                db = B.matmul(a, g, trans_a=True)
            else:
                db = _shaped(B.matmul(a, g, trans_a=True, out=self._grad_out(b, self.b_vec)), self.batch + (K, N))
        if da is not None and self.a_vec:
            da = da[..., 0, :]
        if db is not None and self.b_vec:
            db = db[..., 0]
        return da, db


def _shaped(x, shape):
    """x reshaped, or x itself when it has that shape (a fresh array stays one the engine may adopt)."""
    return x if x.shape == shape else x.reshape(shape)


@tensor_op("a", "b")
def matmul(a, b):
    """Matrix product with NumPy's rules: 1-D operands promoted and batch dims broadcast.

    a: (..., M, K) or (K,)   b: (..., K, N) or (K,)  ->  (..., M, N) without the 1-D operands' dims
    >>> pyengine.matmul(pyengine.randn(2, 3, 4), pyengine.randn(4, 5)).shape   # (2, 3, 5)
    """
    return MatMul.apply(a, b)


@tensor_op("a", "b")
def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise RuntimeError(f"mm: expected 2-D tensors, got {a.ndim}-D and {b.ndim}-D")
    return MatMul.apply(a, b)


@tensor_op("a", "b")
def bmm(a, b):
    if a.ndim != 3 or b.ndim != 3:
        raise RuntimeError(f"bmm: expected 3-D tensors, got {a.ndim}-D and {b.ndim}-D")
    if a.shape[0] != b.shape[0]:
        raise RuntimeError(f"bmm: batch sizes differ: {tuple(a.shape)} and {tuple(b.shape)}")
    return MatMul.apply(a, b)


@tensor_op("a", "b")
def dot(a, b):
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError("dot: 1D tensors expected")
    return MatMul.apply(a, b)


# ====================================================================== matrix ops, breadth (issue 13 item 2)
# einsum, addmm, baddbmm, addbmm, mv, outer/ger, cross, norms (vector_norm, linalg.norm, Tensor.norm),
# cdist. The products reduce to matmul / einsum; the norms are one Function.

import builtins  # noqa: E402
import string  # noqa: E402

from .._checks import real_arg, scalar_arg  # noqa: E402
from ..tensor import Tensor, _norm_dim  # noqa: E402


def _parse_einsum(equation, shapes):
    """An einsum equation as explicit subscripts: (list of letter strings per operand, output letters, sizes).
    '...' becomes letters of its own (right-aligned across operands, as broadcasting); with no '->' the output
    is the '...' dims then the letters that appear once, in alphabetical order (PyTorch's and NumPy's rule)."""
    eq = equation.replace(" ", "")
    if "->" in eq:
        lhs, out = eq.split("->", 1)
    else:
        lhs, out = eq, None
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: the equation names {len(terms)} operands but {len(shapes)} were given")
    used = set(c for c in eq if c.isalpha())
    for c in eq:
        if not (c.isalpha() or c in ",.->"):
            raise ValueError(f"einsum: invalid subscript {c!r} in {equation!r} (letters a-z, A-Z only)")
    free = [c for c in string.ascii_letters if c not in used]
    ell_nd = 0
    for t, shp in zip(terms, shapes):
        if t.count("...") > 1 or t.replace("...", "").count(".") or ("..." not in t and "." in t):
            raise ValueError(f"einsum: invalid ellipsis in {t!r}")
        named = len(t.replace("...", ""))
        if "..." in t:
            if named > len(shp):
                raise ValueError(f"einsum: operand {t!r} has {named} subscripts but {len(shp)} dims")
            ell_nd = builtins.max(ell_nd, len(shp) - named)
        elif named != len(shp):
            raise ValueError(f"einsum: subscripts {t!r} name {named} dims but the operand has {len(shp)} "
                             f"(shape {tuple(shp)})")
    ell = "".join(free[:ell_nd])
    subs = []
    for t, shp in zip(terms, shapes):
        if "..." in t:
            k = len(shp) - len(t.replace("...", ""))
            t = t.replace("...", ell[ell_nd - k:])
        subs.append(t)
    if out is None:
        counts = {}
        for t in subs:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    else:
        if out.count("...") > 1 or out.replace("...", "").count("."):
            raise ValueError(f"einsum: invalid output subscripts {out!r}")
        if "..." in out:
            out = out.replace("...", ell)
        for c in out:
            if not any(c in t for t in subs):
                raise ValueError(f"einsum: output subscript {c!r} does not appear in the inputs")
        if len(set(out)) != len(out):
            raise ValueError(f"einsum: output subscript repeated in {out!r}")
    sizes = {}
    for t, shp in zip(subs, shapes):
        for c, n in zip(t, shp):  # a size of 1 broadcasts against any other
            if c not in sizes or sizes[c] == 1:
                sizes[c] = n
            elif n != 1 and n != sizes[c]:
                raise RuntimeError(f"einsum: subscript {c!r} has size {n} in one operand and {sizes[c]} in another "
                                   f"(shapes {[tuple(s) for s in shapes]}, equation {equation!r})")
    return subs, out, sizes


class Einsum(Function):
    """y = einsum(subs -> out) over the operands (NumPy's einsum; broadcast size-1 dims expanded first).

    The gradient of operand i is einsum of g with the other operands onto i's letters: letters of i that
    appear nowhere else are constant along their axis (broadcast), repeated letters of i (a diagonal) get
    the gradient on that diagonal only, and dims that broadcast from 1 are summed back.
    """

    saves = None  # reads every operand (declared per call: the default, all inputs)

    def forward(self, subs, out, sizes, *ops):
        xp = self.xp
        self.subs, self.out, self.sizes = subs, out, sizes
        full = []
        for t, a in zip(subs, ops):
            shape = tuple(sizes[c] for c in t)
            full.append(a if a.shape == shape else xp.broadcast_to(a, shape))
        self.ops, self.shapes = full, [a.shape for a in ops]
        eq = ",".join(subs) + "->" + out
        return xp.asarray(xp.einsum(eq, *full, optimize=len(full) > 2))

    def backward(self, g):
        xp = self.xp
        grads = [None, None, None]
        for i, need in enumerate(self.needs_input_grad[3:]):
            grads.append(self._grad(xp, g, i) if need else None)
        return tuple(grads)

    def _grad(self, xp, g, i):
        subs, sizes = self.subs, self.sizes
        mine = subs[i]
        uniq = "".join(dict.fromkeys(mine))
        others = [s for j, s in enumerate(subs) if j != i]
        avail = "".join(c for c in uniq if c in self.out or any(c in s for s in others))
        eq = ",".join([self.out] + others) + "->" + avail
        d = xp.einsum(eq, g, *[a for j, a in enumerate(self.ops) if j != i], optimize=len(others) > 1)
        # letters only operand i has: the output does not depend on where along them, so broadcast
        d = d.reshape([sizes[c] if c in avail else 1 for c in uniq])
        d = xp.broadcast_to(d, [sizes[c] for c in uniq])
        if len(uniq) != len(mine):  # a repeated letter: g lands on the diagonal of those dims
            full = xp.zeros([sizes[c] for c in mine], g.dtype)
            pos = {c: k for k, c in enumerate(uniq)}
            idx = []
            for c in mine:
                shp = [1] * len(uniq)
                shp[pos[c]] = sizes[c]
                idx.append(xp.arange(sizes[c]).reshape(shp))
            full[tuple(idx)] = d
            d = full
        shape = self.shapes[i]
        axes = tuple(k for k, (n, c) in enumerate(zip(shape, mine)) if n == 1 and sizes[c] != 1)
        if axes:
            d = d.sum(axis=axes, keepdims=True)
        return xp.ascontiguousarray(d).astype(g.dtype, copy=False)


def einsum(equation, *operands):
    """Einstein summation: ``einsum("bij,bjk->bik", a, b)``; '...' broadcasts, and without '->' the
    output holds the letters that appear once, in alphabetical order. Operands may also be passed as one
    list: ``einsum(eq, [a, b])``."""
    if not isinstance(equation, str):
        raise TypeError(f"einsum(): argument 'equation' must be str, not {type(equation).__name__}")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    for k, t in enumerate(operands):
        if not isinstance(t, Tensor):
            raise TypeError(f"einsum(): expected Tensor as element {k} in argument 'operands', but got "
                            f"{type(t).__name__}")
    if not operands:
        raise ValueError("einsum: must provide at least one operand")
    try:
        subs, out, sizes = _parse_einsum(equation, [t.shape for t in operands])
        dts = {t._data.dtype for t in operands}
        if len(dts) > 1:
            raise RuntimeError(f"einsum: expected all operands to have the same dtype, got {sorted(map(str, dts))}")
        return Einsum.apply(subs, out, sizes, *operands)
    except (ValueError, RuntimeError, TypeError, IndexError) as e:
        if "einsum" in str(e):
            raise
        raise type(e)(f"einsum: {e}") from None


def _same_dtype(op, *ts):
    dts = {t._data.dtype for t in ts}
    if len(dts) > 1:
        raise RuntimeError(f"{op}: expected all tensors to have the same dtype, got {sorted(map(str, dts))}")


def _scaled_sum(op, input, prod, beta, alpha):
    """beta * input + alpha * prod (PyTorch: input is ignored, NaNs too, when beta is 0)."""
    beta, alpha = scalar_arg(op, "beta", beta), scalar_arg(op, "alpha", alpha)
    try:
        np.broadcast_shapes(tuple(input.shape), tuple(prod.shape))
    except ValueError:
        raise RuntimeError(f"{op}: input {tuple(input.shape)} does not broadcast to the product's shape "
                           f"{tuple(prod.shape)}") from None
    p = prod if alpha == 1 else prod * alpha
    if beta == 0:  # PyTorch ignores input (its NaNs too) when beta is 0
        return p
    return (input if beta == 1 else input * beta) + p


@tensor_op("input", "mat1", "mat2")
def addmm(input, mat1, mat2, beta=1, alpha=1):
    """beta * input + alpha * (mat1 @ mat2).  mat1: (n, m)  mat2: (m, p)  input: broadcasts to (n, p)."""
    _same_dtype("addmm", input, mat1, mat2)
    return _scaled_sum("addmm", input, mm(mat1, mat2), beta, alpha)


@tensor_op("input", "batch1", "batch2")
def baddbmm(input, batch1, batch2, beta=1, alpha=1):
    """beta * input + alpha * bmm(batch1, batch2).  batch1: (b, n, m)  batch2: (b, m, p)."""
    _same_dtype("baddbmm", input, batch1, batch2)
    return _scaled_sum("baddbmm", input, bmm(batch1, batch2), beta, alpha)


@tensor_op("input", "batch1", "batch2")
def addbmm(input, batch1, batch2, beta=1, alpha=1):
    """beta * input + alpha * sum_b batch1[b] @ batch2[b].  input broadcasts to (n, p)."""
    _same_dtype("addbmm", input, batch1, batch2)
    return _scaled_sum("addbmm", input, bmm(batch1, batch2).sum(0), beta, alpha)


@tensor_op("input", "mat", "vec")
def addmv(input, mat, vec, beta=1, alpha=1):
    """beta * input + alpha * (mat @ vec)."""
    _same_dtype("addmv", input, mat, vec)
    return _scaled_sum("addmv", input, mv(mat, vec), beta, alpha)


@tensor_op("mat", "vec")
def mv(mat, vec):
    """Matrix-vector product.  mat: (n, m)  vec: (m,) -> (n,)"""
    if mat.ndim != 2 or vec.ndim != 1:
        raise RuntimeError(f"mv: expected a matrix and a vector, got shapes {tuple(mat.shape)} and {tuple(vec.shape)}")
    return matmul(mat, vec)


@tensor_op("a", "b")
def outer(a, b):
    """Outer product of two vectors: (n,), (m,) -> (n, m)."""
    if a.ndim != 1 or b.ndim != 1:
        raise RuntimeError(f"outer: expected 1-D tensors, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
    return a.reshape(-1, 1) * b.reshape(1, -1)


ger = outer


@tensor_op("a", "b")
def inner(a, b):
    """Sum of products over the last dims: (..., n), (..., n) -> a's leading dims then b's."""
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.shape[-1] != b.shape[-1]:
        raise RuntimeError(f"inner: last dims differ: {tuple(a.shape)} and {tuple(b.shape)}")
    la, lb = string.ascii_lowercase[:a.ndim - 1], string.ascii_uppercase[:b.ndim - 1]
    return einsum(f"{la}z,{lb}z->{la}{lb}", a, b)


class Cross(Function):
    """y = a x b along ``axis`` (size 3);  da = b x g, db = g x a."""

    saves = (0, 1)

    def forward(self, a, b, axis):
        self.a, self.b, self.axis = a, b, axis
        return self.xp.cross(a, b, axis=axis)

    def backward(self, g):
        xp, ax, n = self.xp, self.axis, self.needs_input_grad
        return (xp.cross(self.b, g, axis=ax) if n[0] else None, xp.cross(g, self.a, axis=ax) if n[1] else None,
                None)


@tensor_op("a", "b")
def cross(a, b, dim=None):
    """Cross product of 3-vectors along ``dim`` (a, b broadcast). ``dim=None``: the first dim of size 3
    (torch.cross's legacy default; torch.linalg.cross uses -1)."""
    _same_dtype("cross", a, b)
    try:
        shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        raise RuntimeError(f"cross: shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be broadcast") from None
    if dim is None:
        dims = [i for i, s in enumerate(shape) if s == 3]
        if not dims:
            raise RuntimeError(f"cross: no dimension of size 3 in input (shapes {tuple(a.shape)}, {tuple(b.shape)})")
        d = dims[0]
    else:
        d = _norm_dim(dim, len(shape), "cross")
    back = d - len(shape)  # the dim counted from the end: a and b may have fewer leading dims
    if shape[d] != 3 or any(t.ndim + back >= 0 and t.shape[back] != 3 for t in (a, b)):
        raise RuntimeError(f"cross: inputs dimension {d} must have length 3 (shapes {tuple(a.shape)}, "
                           f"{tuple(b.shape)})")
    return Cross.apply(a, b, d - len(shape))


class VectorNorm(Function):
    """y = (sum |x|^p)^(1/p) over ``axes`` (p = inf: max |x|, -inf: min |x|, 0: count of nonzeros).

    dx = g sign(x) |x|^(p-1) / y^(p-1)  (p = 2: g x / y; p = 1: g sign(x)); at y = 0 the gradient is 0, as
    PyTorch's subgradient; inf / -inf: g sign(x) split evenly among the maximal / minimal |x|.
    """

    saves = (0, "out")

    def forward(self, x, p, axes, keepdim):
        xp = self.xp
        self.x, self.p, self.axes, self.keepdim = x, p, axes, keepdim
        a = xp.abs(x)
        with np.errstate(all="ignore"):
            if p == 2:
                y = xp.sqrt(xp.sum(a * a, axis=axes, keepdims=True))
            elif p == 1:
                y = xp.sum(a, axis=axes, keepdims=True)
            elif p == np.inf:
                y = xp.max(a, axis=axes, keepdims=True, initial=0) if x.size else xp.zeros(
                    [1 if i in axes else s for i, s in enumerate(x.shape)], x.dtype)
            elif p == -np.inf:
                if builtins.any(x.shape[i] == 0 for i in axes):
                    raise RuntimeError(f"linalg.vector_norm: reducing over a zero-size dimension with ord=-inf "
                                       f"(input {tuple(x.shape)})")
                y = xp.min(a, axis=axes, keepdims=True)
            elif p == 0:
                y = xp.sum(a != 0, axis=axes, keepdims=True).astype(x.dtype)
            else:
                y = xp.sum(a ** p, axis=axes, keepdims=True) ** (1.0 / p)
        self.y = xp.asarray(y).astype(x.dtype, copy=False)
        return self.y if keepdim else xp.squeeze(self.y, axis=axes)

    def backward(self, g):
        xp, x, y, p = self.xp, self.x, self.y, self.p
        if not self.keepdim:
            g = xp.expand_dims(g, self.axes)
        s = xp.sign(x)
        with np.errstate(all="ignore"):
            if p == 0:
                d = xp.zeros(x.shape, g.dtype)
            elif p == 1:
                d = g * s
            elif p in (np.inf, -np.inf):
                hit = xp.abs(x) == y
                d = g * s * hit / xp.sum(hit, axis=self.axes, keepdims=True)
            elif p == 2:
                d = xp.where(y == 0, 0, g * x / y)
            else:
                d = xp.where(y == 0, 0, g * s * xp.abs(x) ** (p - 1) / y ** (p - 1))
        return xp.asarray(d).astype(g.dtype, copy=False), None, None, None


def _norm_axes(op, dim, ndim):
    if dim is None:
        return tuple(range(ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    axes = tuple(_norm_dim(d, ndim, op) for d in dims)
    if len(set(axes)) != len(axes):
        raise RuntimeError(f"{op}: dim {tuple(dims)} appears multiple times")
    return tuple(sorted(axes))


def _ord(op, ord):
    if isinstance(ord, str):
        raise ValueError(f"{op}: ord must be a number for a vector norm, got {ord!r}")
    return real_arg(op, "ord", ord)


@tensor_op("x")
def vector_norm(x, ord=2, dim=None, keepdim=False, dtype=None):  # noqa: A002
    """(sum |x|^ord)^(1/ord) over ``dim`` (all dims when None); ord inf / -inf: max / min |x|; 0: nonzeros."""
    p = _ord("linalg.vector_norm", ord)
    if dtype is not None:
        x = x.to(dtype)
    if x._data.dtype.kind != "f":
        raise RuntimeError(f"linalg.vector_norm: expected a floating point input, got {x.dtype}")
    axes = _norm_axes("linalg.vector_norm", dim, x.ndim)
    if x.ndim == 0:
        return VectorNorm.apply(x.reshape(1), p, (0,), False)
    return VectorNorm.apply(x, p, axes, bool(keepdim))


class NuclearNorm(Function):
    """y = sum of the singular values of the last two dims;  dx = g U V^T (thin SVD)."""

    saves = (0,)

    def forward(self, x):
        xp = self.xp
        u, s, vt = xp.linalg.svd(x, full_matrices=False)
        self.uv = u @ vt
        return xp.asarray(s.sum(-1), dtype=x.dtype)

    def backward(self, g):
        return (g[..., None, None] * self.uv).astype(g.dtype, copy=False)


def _matrix_norm(op, x, ord, axes, keepdim):
    from .elementwise import abs as _abs
    from .reduction import amax, amin, sum as _sum
    r, c = axes
    if ord == "fro":
        return vector_norm(x, 2, axes, keepdim)
    if ord == "nuc":
        xm = x.movedim((r, c), (-2, -1))
        y = NuclearNorm.apply(xm)
        if keepdim:
            for a in sorted(axes):
                y = y.unsqueeze(a)
        return y
    if ord in (1, -1, np.inf, -np.inf):
        over, keep = (r, c) if ord in (1, -1) else (c, r)
        s = _sum(_abs(x), over, keepdim=True)
        y = (amax if ord > 0 else amin)(s, keep, keepdim=True)
        return y if keepdim else _squeeze_axes(y, axes)
    raise ValueError(f"{op}: matrix norm ord must be 'fro', 'nuc', 1, -1, inf or -inf, got {ord!r} "
                     "(2 and -2 are not supported)")


def _squeeze_axes(y, axes):
    for a in sorted(axes, reverse=True):
        y = y.squeeze(a)
    return y


@tensor_op("x")
def norm_linalg(x, ord=None, dim=None, keepdim=False, dtype=None):  # noqa: A002
    """torch.linalg.norm: ord None = 2-norm of the flattened x (dim None) or of ``dim`` (an int: a vector
    norm; two dims: the Frobenius norm). Matrix ords ('fro', 'nuc', 1, -1, inf, -inf) need two dims."""
    op = "linalg.norm"
    if dtype is not None:
        x = x.to(dtype)
    if x._data.dtype.kind != "f":
        raise RuntimeError(f"{op}: expected a floating point input, got {x.dtype}")
    if dim is not None and not isinstance(dim, (tuple, list)):
        dim = (dim,)
    if ord is None:
        return vector_norm(x, 2, dim, keepdim)
    if dim is None:
        if x.ndim == 2:
            dim = (0, 1)
        elif x.ndim == 1:
            dim = (0,)
        else:
            raise RuntimeError(f"{op}: input must be 1-D or 2-D when ord is given and dim is None, got shape "
                               f"{tuple(x.shape)}")
    axes = tuple(_norm_dim(d, x.ndim, op) for d in dim)
    if len(axes) == 1:
        return vector_norm(x, ord, axes, keepdim)
    if len(axes) == 2 and axes[0] != axes[1]:
        return _matrix_norm(op, x, ord, axes, keepdim)
    raise RuntimeError(f"{op}: dim must be one or two distinct dims, got {tuple(dim)}")


@tensor_op("x")
def matrix_norm(x, ord="fro", dim=(-2, -1), keepdim=False, dtype=None):  # noqa: A002
    """Norm of the matrices in the two dims ``dim``: 'fro', 'nuc', 1, -1, inf, -inf."""
    if dtype is not None:
        x = x.to(dtype)
    if x.ndim < 2:
        raise RuntimeError(f"linalg.matrix_norm: expected a tensor with 2 or more dims, got shape {tuple(x.shape)}")
    axes = tuple(_norm_dim(d, x.ndim, "linalg.matrix_norm") for d in dim)
    if len(axes) != 2 or axes[0] == axes[1]:
        raise RuntimeError(f"linalg.matrix_norm: dim must be two distinct dims, got {tuple(dim)}")
    return _matrix_norm("linalg.matrix_norm", x, ord, axes, keepdim)


@tensor_op("x")
def norm(x, p="fro", dim=None, keepdim=False, dtype=None):
    """torch.norm / Tensor.norm: ``p`` a number (a vector norm over ``dim``, all of x when None), 'fro'
    (the 2-norm over ``dim``) or 'nuc' (nuclear norm of a matrix, or of two dims)."""
    if dtype is not None:
        x = x.to(dtype)
    if p == "fro" or p is None:
        if dim is not None and isinstance(dim, (tuple, list)) and len(dim) > 2:
            raise RuntimeError(f"norm: 'fro' takes at most two dims, got {tuple(dim)}")
        return vector_norm(x, 2, dim, keepdim)
    if p == "nuc":
        axes = (0, 1) if dim is None else tuple(_norm_dim(d, x.ndim, "norm") for d in dim)
        if x.ndim < 2 or len(axes) != 2:
            raise RuntimeError(f"norm: 'nuc' needs a matrix or two dims, got shape {tuple(x.shape)}, dim {dim}")
        return _matrix_norm("norm", x, "nuc", axes, keepdim)
    if isinstance(p, str):
        raise ValueError(f"norm: p must be a number, 'fro' or 'nuc', got {p!r}")
    return vector_norm(x, p, dim, keepdim)


@tensor_op("x1", "x2")
def cdist(x1, x2, p=2.0, compute_mode=None):
    """Distances between the rows of x1 (..., P, M) and x2 (..., R, M): (..., P, R), the p-norm of each
    difference (batch dims broadcast)."""
    p = real_arg("cdist", "p", p)
    if p < 0:
        raise RuntimeError(f"cdist: p must be >= 0, got {p}")
    if x1.ndim < 2 or x2.ndim < 2 or x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"cdist: expected (..., P, M) and (..., R, M), got {tuple(x1.shape)} and "
                           f"{tuple(x2.shape)}")
    _same_dtype("cdist", x1, x2)
    if x1._data.dtype.kind != "f":
        raise RuntimeError(f"cdist: expected floating point inputs, got {x1.dtype}")
    d = x1.unsqueeze(-2) - x2.unsqueeze(-3)
    return vector_norm(d, p, -1)
