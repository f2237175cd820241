"""Reverse-mode automatic differentiation.

A ``Function`` is one node of the graph: its ``forward`` computes output arrays from input
arrays (saving what ``backward`` will need), its ``backward`` maps the gradient of the output
to the gradients of the inputs. ``Tensor.backward()`` walks the graph from the output in
reverse topological order (iteratively: a 100k-node chain needs no recursion), summing the
gradients that reach each node, and accumulates into ``.grad`` of the leaf tensors.

No node is built when grad mode is off or no input requires grad: then ``apply`` is just the
forward computation.
"""
import threading

import numpy as np

# --------------------------------------------------------------------------- grad mode

class _GradState(threading.local):
    enabled = True  # the default for every thread; no_grad() sets it per thread


_state = _GradState()
_Tensor = None  # bound by pyengine.tensor (which imports this module) once Tensor exists
_wrap = None


def is_grad_enabled():
    return _state.enabled


def set_grad_enabled(mode):
    """Set grad mode; usable as a function or as a context manager (like PyTorch's)."""
    return _GradMode(bool(mode))


class _GradMode:
    __slots__ = ("mode", "prev")

    def __init__(self, mode):
        self.prev = is_grad_enabled()
        self.mode = mode
        _state.enabled = mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _state.enabled = self.prev
        return False


class _GradModeContext:
    """Base of no_grad/enable_grad: a context manager and a decorator."""

    mode = True

    def __enter__(self):
        self.prev = is_grad_enabled()
        _state.enabled = self.mode
        return self

    def __exit__(self, *exc):
        _state.enabled = self.prev
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)
        return wrapper


class no_grad(_GradModeContext):
    """Context manager / decorator: ops inside build no graph."""

    mode = False


class enable_grad(_GradModeContext):
    """Context manager / decorator: turn grad mode back on inside no_grad."""

    mode = True


# --------------------------------------------------------------------------- Function


class Function:
    """A differentiable operation and, once applied, a node of the graph.

    Subclasses implement ``forward(self, *args)`` on raw arrays (Tensors arrive as their
    arrays, other arguments as they are) returning one array or a tuple of arrays, and
    ``backward(self, *grads)`` returning one gradient (or None) per forward argument (None
    for non-tensor arguments and for inputs in ``needs_input_grad`` that are False).
    ``self.needs_input_grad`` is a tuple of bools, one per forward argument.
    Save what backward needs as attributes of ``self``; they are released after backward
    unless ``retain_graph=True``.
    """

    # Instances are graph nodes; subclasses add their own saved attributes freely.
    differentiable_outputs = None  # None = all outputs; else a tuple of output indices
    # True when backward returns only arrays it allocated itself and keeps no reference to (never an
    # input, a saved value or the incoming gradient, nor one array for two inputs): the engine may then
    # adopt such an array as a leaf's .grad instead of copying it (a parameter's gradient, every step).
    fresh_grads = False
    # True when backward returns, for its one tensor input, its one incoming gradient or a view of it
    # (Reshape; Clone and Contiguous pass it on as it is) and keeps no reference to it: if no one else
    # references that gradient, no one references the view either, so the engine may still add into it
    # in place or adopt it as .grad.
    views_grad = False

    def forward(self, *args):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *grads):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        Tensor, _wrap_ = _Tensor, _wrap
        fn = cls.__new__(cls)
        needs = False
        if _state.enabled:
            for a in args:
                if isinstance(a, Tensor) and a.requires_grad:
                    needs = True
                    break
        if not needs:
            out = fn.forward(*[a.data if isinstance(a, Tensor) else a for a in args])
            if type(out) is tuple:
                return tuple(_wrap_(o) for o in out)
            return _wrap_(out)

        arrays = []
        needs_input_grad = []
        edges = []
        for a in args:
            if isinstance(a, Tensor):
                arrays.append(a.data)
                rg = a.requires_grad
                needs_input_grad.append(rg)
                edges.append(a._edge() if rg else None)
            else:
                arrays.append(a)
                needs_input_grad.append(False)
                edges.append(None)
        fn.needs_input_grad = tuple(needs_input_grad)
        out = fn.forward(*arrays)
        node = Node(fn, edges)
        if type(out) is tuple:
            node.n_outputs = len(out)
            diff = cls.differentiable_outputs
            res = []
            for i, o in enumerate(out):
                if diff is None or i in diff:
                    res.append(_wrap_(o, node, i))
                else:
                    res.append(_wrap_(o))
            return tuple(res)
        return _wrap_(out, node, 0)


class Node:
    """The graph record of one applied Function: the function (holding its saved values)
    and, per input, where that input's gradient goes: None, a leaf Tensor, or (node, index)."""

    __slots__ = ("fn", "edges", "n_outputs", "freed", "retained", "__weakref__")

    def __init__(self, fn, edges):
        self.fn = fn
        self.edges = edges
        self.n_outputs = 1
        self.freed = False
        self.retained = None  # {output index: Tensor} for retain_grad()

    @property
    def name(self):
        fn = self.fn
        return (fn.name if isinstance(fn, _FreedFunction) else type(fn).__name__) + "Backward"

    def __repr__(self):
        return f"<{self.name}>"


# --------------------------------------------------------------------------- the engine


def run_backward(roots, root_grads, retain_graph=False, inputs=None, accumulate=True):
    """Backpropagate ``root_grads`` (arrays) from the tensors ``roots``.

    With ``accumulate`` the leaf gradients are added to ``.grad``; otherwise (autograd.grad)
    the gradients of ``inputs`` are returned instead.
    """
    from .tensor import Tensor, _wrap

    leaf_grads = {}  # id(tensor) -> (tensor, grad array, owned: no one else references the array)
    node_grads = {}  # node -> list of output grads
    owned_slots = set()  # (node, output index) whose grad array no one else references (see Function.fresh_grads)

    # 1. seed
    start_nodes = []
    for t, g in zip(roots, root_grads):
        if t.grad_fn is None:
            if t.requires_grad:
                _add_leaf(leaf_grads, t, g)
            continue
        node = t.grad_fn
        grads = node_grads.get(node)
        if grads is None:
            grads = node_grads[node] = [None] * node.n_outputs
            start_nodes.append(node)
        i = t._out_index
        grads[i] = g if grads[i] is None else grads[i] + g

    # 2. topological order of the nodes reachable from the roots (iterative DFS)
    order = []
    visited = set()
    for s in start_nodes:
        if s in visited:
            continue
        visited.add(s)
        stack = [(s, iter(s.edges))]
        while stack:
            node, it = stack[-1]
            advanced = False
            for e in it:
                if e is None or isinstance(e, Tensor):
                    continue
                child = e[0]
                if child not in visited:
                    visited.add(child)
                    stack.append((child, iter(child.edges)))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                order.append(node)
    # `order` lists children before parents; process parents (outputs) first.

    wanted = None if inputs is None else {id(t) for t in inputs}
    # A leaf's gradient is final once every node that feeds it has run: count those edges, and deliver
    # the gradient (running its hooks) at that moment, not after the whole graph. Data-parallel training
    # uses this to start a bucket's allreduce while the rest of the backward pass is still running.
    pending = {}
    if accumulate:
        for node in order:
            for e in node.edges:
                if isinstance(e, Tensor):
                    pending[id(e)] = pending.get(id(e), 0) + 1
    for node in reversed(order):
        grads = node_grads.pop(node, None)
        if grads is None:
            continue
        if node.freed:
            raise RuntimeError(
                f"Trying to backward through the graph a second time ({node.name}): its saved "
                "values were freed after the first backward. Pass retain_graph=True to the "
                "first backward() if you need to backward twice.")
        fn = node.fn
        fresh = type(fn).fresh_grads
        # the outputs of a view-returning backward are as unshared as the gradient it received
        passed_on = type(fn).views_grad and (node, 0) in owned_slots
        if node.retained:
            for i, t in node.retained.items():
                if grads[i] is not None:
                    g = grads[i]
                    t.grad = _wrap(g.copy()) if t.grad is None else _wrap(t.grad.data + g)
        if node.n_outputs == 1:
            in_grads = fn.backward(grads[0])
        else:
            in_grads = fn.backward(*grads)
        if type(in_grads) is not tuple:
            in_grads = (in_grads,)
        if not retain_graph:
            node.freed = True
            node.fn = _FreedFunction(type(fn).__name__)
        for e, g in zip(node.edges, in_grads):
            if e is None:
                continue
            if isinstance(e, Tensor):
                if g is not None:
                    _add_leaf(leaf_grads, e, g, passed_on or (fresh and g.base is None))
                if accumulate:
                    key = id(e)
                    pending[key] -= 1
                    if pending[key] == 0 and key in leaf_grads:
                        _, lg, owned = leaf_grads.pop(key)
                        _deliver_leaf_grad(e, lg, owned)
            elif g is not None:
                child, idx = e
                owned = passed_on or (fresh and g.base is None)
                cg = node_grads.get(child)
                if cg is None:
                    cg = node_grads[child] = [None] * child.n_outputs
                cur = cg[idx]
                if cur is None:
                    cg[idx] = g
                    if owned:
                        owned_slots.add((child, idx))
                elif cur.shape == g.shape and cur.dtype == g.dtype and (child, idx) in owned_slots:
                    _accumulate(cur, g)  # an array only we hold: add in place
                elif cur.shape == g.shape and cur.dtype == g.dtype and owned:
                    _accumulate(g, cur)  # the new one is only ours: add into it, keep it
                    cg[idx] = g
                    owned_slots.add((child, idx))
                else:
                    cg[idx] = cur + g
                    owned_slots.add((child, idx))

    # 3. deliver what is left: leaves that were roots, or fed by nodes that received no gradient
    if not accumulate:
        return {k: (t, g) for k, (t, g, _) in leaf_grads.items() if wanted is None or k in wanted}
    for t, g, owned in leaf_grads.values():
        _deliver_leaf_grad(t, g, owned)
    return None


_ACCUMULATE_MIN = 1 << 16  # elements; below this NumPy's += costs less than a kernel call


def _accumulate(dst, g):
    """dst += g in place: the backend's threaded kernel for large float arrays, NumPy otherwise."""
    if (dst.size >= _ACCUMULATE_MIN and dst.dtype == g.dtype and dst.shape == g.shape and dst.dtype.kind == "f"
            and dst.flags.c_contiguous and dst.flags.writeable and not np.may_share_memory(dst, g)):
        from .backend import _active
        _active["cpu"].add_into(dst, g)
    else:
        dst += g


def _add_leaf(leaf_grads, t, g, owned=False):
    """Collect a leaf's gradient; ``owned``: no one else references the array (see Function.fresh_grads)."""
    prev = leaf_grads.get(id(t))
    if prev is None:
        leaf_grads[id(t)] = (t, g, owned)
    elif prev[2] and prev[1].shape == g.shape and prev[1].dtype == g.dtype and prev[1].flags.writeable:
        _accumulate(prev[1], g)  # ours alone: accumulate in place
    else:
        leaf_grads[id(t)] = (t, prev[1] + g, True)


def _deliver_leaf_grad(t, g, owned=False):
    from .tensor import _wrap

    if g.dtype != t.data.dtype:
        g = g.astype(t.data.dtype)
        owned = True
    if g.shape != t.data.shape:
        g = np.broadcast_to(g, t.data.shape)
        owned = False
    hooks = t._hooks
    if hooks:
        for h in hooks.values():
            r = h(_wrap(g))
            if r is not None:
                g = r.data
                owned = False
    if t.grad is None:
        # adopt an array no one else holds; copy anything that may alias memory elsewhere in the graph
        t.grad = _wrap(g if owned and g.flags.writeable else np.array(g, copy=True))
    else:
        _accumulate(t.grad.data, g)
    post = t._post_hooks
    if post:
        for h in post.values():
            h(t)


class _FreedFunction:
    """Stands in for a Function whose saved values were released after backward."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


def grad(outputs, inputs, grad_outputs=None, retain_graph=False):
    """Gradients of ``outputs`` w.r.t. ``inputs`` (leaf tensors), without touching ``.grad``."""
    from .tensor import Tensor, _wrap

    if isinstance(outputs, Tensor):
        outputs = [outputs]
    if isinstance(inputs, Tensor):
        inputs = [inputs]
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    seeds = [_seed_grad(o, g, "grad") for o, g in zip(outputs, grad_outputs)]
    for t in inputs:
        if t.grad_fn is not None:
            raise RuntimeError("grad: only leaf tensors are supported as inputs")
    res = run_backward(outputs, seeds, retain_graph=retain_graph, inputs=inputs, accumulate=False)
    out = []
    for t in inputs:
        e = res.get(id(t))
        out.append(None if e is None else _wrap(np.array(np.broadcast_to(e[1], t.shape), dtype=t.data.dtype)))
    return tuple(out)


def _seed_grad(t, gradient, op="backward"):
    """The array that starts backward from ``t``: ones for a scalar, else ``gradient``."""
    from .tensor import Tensor

    if not t.requires_grad:
        raise RuntimeError(f"{op}: element 0 of tensors does not require grad and does not have a grad_fn")
    if gradient is None:
        if t.data.size != 1:
            raise RuntimeError(
                f"{op}: grad can be implicitly created only for scalar outputs; got shape "
                f"{tuple(t.shape)}. Pass gradient= with that shape.")
        return np.ones_like(t.data)
    g = gradient.data if isinstance(gradient, Tensor) else np.asarray(gradient, dtype=t.data.dtype)
    if g.shape != t.data.shape:
        raise RuntimeError(f"{op}: gradient has shape {tuple(g.shape)} but the tensor has shape "
                           f"{tuple(t.shape)}")
    return g.astype(t.data.dtype, copy=False)
