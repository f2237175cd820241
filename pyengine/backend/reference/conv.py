"""NumPy twins of the conv family (csrc/cpu/conv.cpp): 2-D convolution, pooling, batch norm.

Layout NCHW, C-contiguous inputs. Every spatial argument is a pair (rows, columns):
``stride``, ``padding`` (zeros before the first row / column; the output size ``out_hw`` is given, so a
window may also reach past the end, where the input reads as zero, which is how 'same' padding of an
even kernel pads more after than before), ``dilation``. Grouped convolution: input channels C and
output channels O are split into ``groups`` equal parts, part g of the output sees part g of the input.

Convolution is stated as im2col + matmul: column (c, i, j) of output position (p, q) holds
x[c, p s_h - pad_h + i d_h, q s_w - pad_w + j d_w] (zero outside x), and y = W (O, C/g KH KW) @ cols.
(So a NaN or inf weight makes NaN where its tap reads padding, 0 * inf; the kernels keep that.)
"""
import numpy as np

__all__ = ["conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "conv2d_backward",
           "conv2d_bias_grad", "max_pool2d_forward",
           "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward", "batch_norm_forward",
           "batch_norm_backward"]


def _padded(x, padding, need_hw, fill=0.0):
    """x (N, C, H, W) with ``padding`` rows/columns of ``fill`` before it and enough after it (or cut)
    that it has at least ``need_hw`` rows and columns."""
    (ph, pw), (H, W) = padding, x.shape[2:]
    ah, aw = max(need_hw[0] - H - ph, 0), max(need_hw[1] - W - pw, 0)
    return np.pad(x, ((0, 0), (0, 0), (ph, ah), (pw, aw)), constant_values=fill)


def _windows(out_hw, kernel, stride, dilation):
    """For each kernel offset (i, j): the row and column slices of the padded input it reads."""
    (Ho, Wo), (KH, KW), (sh, sw), (dh, dw) = out_hw, kernel, stride, dilation
    if Ho <= 0 or Wo <= 0:  # no output position: nothing is read
        return
    for i in range(KH):
        for j in range(KW):
            yield i, j, slice(i * dh, i * dh + (Ho - 1) * sh + 1, sh), slice(j * dw, j * dw + (Wo - 1) * sw + 1, sw)


def _need(out_hw, kernel, stride, dilation):
    return tuple((o - 1) * s + d * (k - 1) + 1 for o, k, s, d in zip(out_hw, kernel, stride, dilation))


def _im2col(x, kernel, stride, padding, dilation, out_hw):
    """cols (N, C, KH, KW, Ho, Wo)."""
    N, C = x.shape[:2]
    xp = _padded(x, padding, _need(out_hw, kernel, stride, dilation))
    cols = np.empty((N, C) + tuple(kernel) + tuple(out_hw), x.dtype)
    for i, j, si, sj in _windows(out_hw, kernel, stride, dilation):
        cols[:, :, i, j] = xp[:, :, si, sj]
    return cols


def _col2im(cols, in_hw, kernel, stride, padding, dilation):
    """The adjoint of _im2col: every column entry summed back where it was read from."""
    N, C = cols.shape[:2]
    out_hw = cols.shape[4:]
    (ph, pw), (H, W) = padding, in_hw
    need = _need(out_hw, kernel, stride, dilation)
    dxp = np.zeros((N, C, max(need[0], H + ph), max(need[1], W + pw)), cols.dtype)
    for i, j, si, sj in _windows(out_hw, kernel, stride, dilation):
        dxp[:, :, si, sj] += cols[:, :, i, j]
    return dxp[:, :, ph:ph + H, pw:pw + W]


def conv2d_forward(x, w, b, stride, padding, dilation, groups, out_hw):
    """y[n, o] = b[o] + sum over the channels of o's group and the kernel of w[o, c, i, j] x[n, c, ...].

    x: (N, C, H, W)  w: (O, C/groups, KH, KW)  b: (O,) or None  ->  y: (N, O, Ho, Wo)
    """
    N, C = x.shape[:2]
    O, Cg, KH, KW = w.shape
    G = groups
    L = out_hw[0] * out_hw[1]
    cols = _im2col(x, (KH, KW), stride, padding, dilation, out_hw).reshape(N, G, Cg * KH * KW, L)
    y = np.matmul(w.reshape(G, O // G, Cg * KH * KW), cols).reshape((N, O) + tuple(out_hw))
    if b is not None:
        y += b.reshape(1, O, 1, 1)
    return y


def conv2d_backward_input(dy, w, in_hw, stride, padding, dilation, groups):
    """dx (N, C, H, W) of conv2d_forward: col2im(W^T @ dy) per group."""
    N, O = dy.shape[:2]
    _, Cg, KH, KW = w.shape
    G = groups
    wt = w.reshape(G, O // G, Cg * KH * KW).transpose(0, 2, 1)
    cols = np.matmul(wt, dy.reshape(N, G, O // G, dy.shape[2] * dy.shape[3])).reshape((N, G * Cg, KH, KW) + dy.shape[2:])
    return np.ascontiguousarray(_col2im(cols, in_hw, (KH, KW), stride, padding, dilation))


def conv2d_backward_weight(dy, x, kernel, stride, padding, dilation, groups):
    """dw (O, C/groups, KH, KW) of conv2d_forward: sum over the batch of dy @ cols^T per group."""
    N, O = dy.shape[:2]
    C = x.shape[1]
    G = groups
    L = dy.shape[2] * dy.shape[3]
    cols = _im2col(x, kernel, stride, padding, dilation, dy.shape[2:]).reshape(N, G, (C // G) * kernel[0] * kernel[1], L)
    d = dy.reshape(N, G, O // G, L)
    dw = np.matmul(d, cols.transpose(0, 1, 3, 2)).sum(0)
    return dw.reshape(O, C // G, kernel[0], kernel[1])


def conv2d_backward(dy, x, w, needs, stride, padding, dilation, groups):
    """(dx, dw, db) of conv2d_forward, each None where ``needs`` (three bools) says so: dx and dw as
    conv2d_backward_input / conv2d_backward_weight, db (O,) = dy summed over N and the positions."""
    dx = conv2d_backward_input(dy, w, x.shape[2:], stride, padding, dilation, groups) if needs[0] else None
    dw = conv2d_backward_weight(dy, x, w.shape[2:], stride, padding, dilation, groups) if needs[1] else None
    db = conv2d_bias_grad(dy) if needs[2] else None
    return dx, dw, db


def conv2d_bias_grad(dy):
    """db (O,) = sum over n, h, w of dy[n, o, h, w]: the bias gradient of a convolution (and of a transposed
    one, dy then being its output's gradient).   dy: (N, O, H, W); zeros where there are no images or positions."""
    return dy.sum(axis=(0, 2, 3))


def max_pool2d_forward(x, kernel, stride, padding, dilation, out_hw):
    """y = the max of each window (padding reads as -inf), idx = its position h W + w in the input plane
    (the first of equal maxima; a NaN wins; a window of -inf: its first position in the input, as PyTorch).   x: (N, C, H, W) -> y (N, C, Ho, Wo), idx int64 (N, C, Ho, Wo)"""
    N, C, H, W = x.shape
    xp = _padded(x, padding, _need(out_hw, kernel, stride, dilation), fill=-np.inf)
    pos = _padded(np.arange(H * W, dtype=np.int64).reshape(1, 1, H, W), padding,
                  _need(out_hw, kernel, stride, dilation), fill=-1)
    y = np.full((N, C) + tuple(out_hw), -np.inf, x.dtype)
    idx = np.full((N, C) + tuple(out_hw), -1, np.int64)
    for _, _, si, sj in _windows(out_hw, kernel, stride, dilation):
        v = xp[:, :, si, sj]
        p = pos[:, :, si, sj]
        take = ((v > y) | (np.isnan(v) & ~np.isnan(y)) | (idx < 0)) & (p >= 0)
        y = np.where(take, v, y)
        idx = np.where(take, p, idx)
    return y, idx


def max_pool2d_backward(dy, idx, in_hw):
    """dx (N, C, H, W): each dy summed into the input position its max came from (idx; a window without
    an input position, idx -1, adds nothing)."""
    N, C = dy.shape[:2]
    H, W = in_hw
    dx = np.zeros((N * C, H * W), dy.dtype)
    rows = np.repeat(np.arange(N * C), int(np.prod(dy.shape[2:])))
    i = idx.reshape(-1)
    ok = (i >= 0) & (i < H * W)
    np.add.at(dx, (rows[ok], i[ok]), dy.reshape(-1)[ok])
    return dx.reshape(N, C, H, W)


def _avg_divisor(in_hw, kernel, stride, padding, out_hw, count_include_pad, divisor_override):
    """(Ho, Wo): what each window's sum is divided by (PyTorch's rule: windows are clipped to the padded
    input; count_include_pad=False counts only the input positions)."""
    if divisor_override:
        return np.full(tuple(out_hw), float(divisor_override))
    parts = []
    for n, k, s, p, o in zip(in_hw, kernel, stride, padding, out_hw):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if count_include_pad:
            parts.append(end - start)
        else:
            parts.append(np.minimum(end, n) - np.maximum(start, 0))
    return np.outer(parts[0], parts[1]).astype(np.float64)


def avg_pool2d_forward(x, kernel, stride, padding, out_hw, count_include_pad=True, divisor_override=None):
    """y = the sum of each window (padding reads as 0) / its divisor.   x: (N, C, H, W) -> (N, C, Ho, Wo)"""
    xp = _padded(x, padding, _need(out_hw, kernel, stride, (1, 1)))
    s = np.zeros(x.shape[:2] + tuple(out_hw), np.float64)
    for _, _, si, sj in _windows(out_hw, kernel, stride, (1, 1)):
        s += xp[:, :, si, sj]
    d = _avg_divisor(x.shape[2:], kernel, stride, padding, out_hw, count_include_pad, divisor_override)
    return (s / d).astype(x.dtype)


def avg_pool2d_backward(dy, in_hw, kernel, stride, padding, count_include_pad=True, divisor_override=None):
    """dx (N, C, H, W): dy / divisor spread over each window's input positions."""
    out_hw = dy.shape[2:]
    d = _avg_divisor(in_hw, kernel, stride, padding, out_hw, count_include_pad, divisor_override)
    g = (dy / d).astype(dy.dtype)
    (ph, pw), (H, W) = padding, in_hw
    need = _need(out_hw, kernel, stride, (1, 1))
    dxp = np.zeros(dy.shape[:2] + (max(need[0], H + ph), max(need[1], W + pw)), dy.dtype)
    for _, _, si, sj in _windows(out_hw, kernel, stride, (1, 1)):
        dxp[:, :, si, sj] += g
    return np.ascontiguousarray(dxp[:, :, ph:ph + H, pw:pw + W])


def batch_norm_forward(x, weight, bias, eps, mean=None, var=None):
    """y = (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c] over x (N, C, L).

    mean, var (C,) given: they are used (eval mode); None: the batch's own over N and L (var biased),
    accumulated in double.  ->  y (N, C, L), mean (C,), var (C,)
    """
    if mean is None:
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=(0, 2))
        var = ((x64 - mean[None, :, None]) ** 2).mean(axis=(0, 2))
    mean = np.asarray(mean, x.dtype)
    var = np.asarray(var, x.dtype)
    rstd = (1.0 / np.sqrt(var.astype(np.float64) + eps)).astype(x.dtype)
    scale = rstd if weight is None else rstd * weight
    shift = -mean * scale if bias is None else bias - mean * scale
    return x * scale[None, :, None] + shift[None, :, None], mean, var


def batch_norm_backward(dy, x, weight, mean, var, eps, training=True):
    """Gradients of batch_norm_forward: (dx (N, C, L), dweight (C,) or None, dbias (C,)).

    training: mean and var were the batch's own (they depend on x); else constants."""
    rstd = (1.0 / np.sqrt(var.astype(np.float64) + eps))
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    xhat = (x64 - mean.astype(np.float64)[None, :, None]) * rstd[None, :, None]
    dbias = dy64.sum(axis=(0, 2))
    dweight = (dy64 * xhat).sum(axis=(0, 2))
    w = np.ones_like(rstd) if weight is None else weight.astype(np.float64)
    k = (w * rstd)[None, :, None]
    if training:
        n = x.shape[0] * x.shape[2]
        dx = k * (dy64 - (dbias[None, :, None] + xhat * dweight[None, :, None]) / max(n, 1))
    else:
        dx = k * dy64
    dt = x.dtype
    return dx.astype(dt), None if weight is None else dweight.astype(dt), dbias.astype(dt)
