"""Reverse-mode automatic differentiation.

A ``Function`` is one node of the graph: its ``forward`` computes output arrays from input
arrays (saving what ``backward`` will need), its ``backward`` maps the gradient of the output
to the gradients of the inputs. ``Tensor.backward()`` walks the graph from the output in
reverse topological order (iteratively: a 100k-node chain needs no recursion), summing the
gradients that reach each node, and accumulates into ``.grad`` of the leaf tensors.

The engine, not each op, fits a gradient to its input's shape: a backward may return the
gradient in the broadcast shape of its output, and the engine sums it over the axes that
broadcasting added or stretched (``sum_to_shape``), so an op's backward is its math only.

No node is built when grad mode is off or no input requires grad: then ``apply`` is just the
forward computation.
"""
import functools
import threading

import numpy as np

from .backend import backend_of

# --------------------------------------------------------------------------- grad mode


class _GradState(threading.local):
    enabled = True  # the default for every thread; no_grad() sets it per thread


_state = _GradState()

# How many threads have grad mode off now: while none has (the usual case), Function.apply knows that grad mode
# is on without reading the thread-local state. Every change of a thread's mode goes through _set_grad_mode. (A
# thread that ends inside no_grad leaves the count above 0: apply then reads the state, as it always could.)
_grad_off_threads = 0
_grad_off_lock = threading.Lock()


def _set_grad_mode(mode):
    global _grad_off_threads
    mode = bool(mode)
    if _state.enabled != mode:
        with _grad_off_lock:
            _grad_off_threads += -1 if mode else 1
        _state.enabled = mode

# The recording pyengine.profiler, or None: Function.apply and the backward pass check it once per op.
_profiler = None


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
        _set_grad_mode(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _set_grad_mode(self.prev)
        return False


class _GradModeContext:
    """Base of no_grad/enable_grad: a context manager and a decorator."""

    mode = True

    def __enter__(self):
        self.prev = is_grad_enabled()
        _set_grad_mode(self.mode)
        return self

    def __exit__(self, *exc):
        _set_grad_mode(self.prev)
        return False

    def __call__(self, fn):
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


class inference_mode(_GradModeContext):
    """PyTorch's ``inference_mode(mode=True)``: a context manager and a decorator (``@inference_mode`` or
    ``@inference_mode()``) that, like ``no_grad``, builds no graph inside. ``inference_mode(False)`` leaves grad
    mode as it is. PyTorch also marks the tensors made inside as inference tensors (not allowed in autograd
    later, to save version-counter bookkeeping); pyengine makes ordinary tensors there, which only means
    that what PyTorch would refuse later is allowed here."""

    def __new__(cls, mode=True):
        if mode is None or isinstance(mode, bool):
            return super().__new__(cls)
        return cls()(mode)  # used bare as a decorator: @inference_mode

    def __init__(self, mode=True):
        self.inference = bool(mode)

    def __enter__(self):
        self.prev = is_grad_enabled()
        self.prev_inference = _state_inference.enabled
        if self.inference:
            _set_grad_mode(False)
            _state_inference.enabled = True
        return self

    def __exit__(self, *exc):
        _set_grad_mode(self.prev)
        _state_inference.enabled = self.prev_inference
        return False

    def __call__(self, fn):
        mode = self.inference

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(mode):
                return fn(*args, **kwargs)
        return wrapper


class _InferenceState(threading.local):
    enabled = False


_state_inference = _InferenceState()


def is_inference_mode_enabled():
    """Whether an ``inference_mode()`` block is active on this thread."""
    return _state_inference.enabled


# --------------------------------------------------------------------------- Function


class Function:
    """A differentiable operation and, once applied, a node of the graph.

    Subclasses implement ``forward(self, *args)`` on raw arrays (Tensors arrive as their
    arrays, other arguments as they are) returning one array or a tuple of arrays, and
    ``backward(self, *grads)`` returning one gradient (or None) per forward argument (None
    for non-tensor arguments and for inputs in ``needs_input_grad`` that are False). A
    gradient may have the broadcast shape of the output: the engine sums it to the input's.
    ``self.needs_input_grad`` is a tuple of bools, one per forward argument;
    ``self.backend`` is the backend of the inputs' device (its kernels) and ``self.xp`` its
    array module (NumPy on the CPU): ops do their array math through these, never ``np.``, so
    that each op runs on every device.
    Save what backward needs as attributes of ``self``; they are released after backward
    unless ``retain_graph=True``.
    """

    # Instances are graph nodes; subclasses add their own saved attributes freely.
    differentiable_outputs = None  # None = all outputs; else a tuple of output indices
    # True when backward returns only arrays it allocated itself and keeps no reference to (never an
    # input, a saved value or the incoming gradient, nor one array for two inputs): the engine may then
    # adopt such an array as a leaf's .grad instead of copying it (a parameter's gradient, every step).
    fresh_grads = False
    # True when forward takes bfloat16/float16 arrays as they are (the casts, the bfloat16 GEMM ops in
    # pyengine/amp/bf16_ops.py); every other Function computes them through float32 (pyengine/_lowp.py).
    lowp_native = False
    # True when backward returns, for its one tensor input, its one incoming gradient or a view of it
    # (Reshape; Clone and Contiguous pass it on as it is) and keeps no reference to it: if no one else
    # references that gradient, no one references the view either, so the engine may still add into it
    # in place or adopt it as .grad.
    views_grad = False
    # The tensors whose values backward reads (PyTorch's saved tensors): forward-argument indices, and
    # "out" when it reads its outputs. Their version counters are recorded here, and backward refuses to
    # run if one was written in place since (a silently wrong gradient otherwise). None, the default:
    # every tensor input and output (safe for Functions written elsewhere). tests/test_inplace.py holds
    # each built-in Function's declaration to what its instances keep.
    saves = None
    # True when an output may be a view of input 0's memory (reshape, permute, expand, basic indexing,
    # split): such an output shares input 0's version counter, and an in-place op on it rewrites the
    # graph of the tensor it views (ops/inplace.py).
    returns_view = False
    _saves_plan = None  # saves as apply reads it (_plan_saves)
    _saves_inputs, _saves_out = -1, False
    _apply_facts = (False, -1, False, None)
    _binary_saves = None

    def forward(self, *args):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, *grads):  # pragma: no cover - abstract
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # PyTorch's custom Functions: static forward(ctx, *tensors) / backward(ctx, *grads) on Tensors, or
        # forward(*tensors) with setup_context(ctx, inputs, output); they get the ctx protocol's apply.
        if isinstance(cls.__dict__.get("forward"), staticmethod):
            cls.apply = classmethod(_apply_with_ctx)
        _plan_saves(cls)

    @classmethod
    def apply(cls, *args):
        # Every op call runs this: plain loops, attributes read inline, per-class facts computed once
        # (_plan_saves), no helper calls on the common path (a one-element op costs a few microseconds, and
        # each Python call here is ~0.1 us of them). dev/gpt_ops_notes.md, "Per-op overhead", has the numbers.
        if _profiler is not None and _profiler.intercepts():
            return _profiler.record_apply(cls, args)
        # One walk: the arrays, whether an input requires grad, and a low-precision input (bfloat16 /
        # float16 compute through float32, pyengine/_lowp.py; itemsize first: cheap).
        needs = False
        arrays = []
        for a in args:
            if isinstance(a, Tensor):
                d = a._data
                if d.itemsize == 2 and d.dtype in _LOW and not cls.returns_view and not cls.lowp_native:
                    return _lowp.apply_upcast(cls, args)
                if a.requires_grad:
                    needs = True
                arrays.append(d)
            else:
                arrays.append(a)
        fn = _new(cls)
        fn.backend = B = backend_of(*args)
        fn.xp = B.xp
        if not needs or (_grad_off_threads and not _state.enabled):  # no graph: the forward computation only
            out = fn.forward(*arrays)
            if type(out) is tuple:
                res = tuple([_wrap(o) for o in out])
            else:  # _wrap inlined: one output is the common case
                res = _new(Tensor)
                if type(out) is not np.ndarray:
                    out = np.asarray(out)
                res._data = out
                res.grad = res.grad_fn = res._hooks = res._post_hooks = res._version = res._base = res._vv = None
                res._out_index = 0
                res.requires_grad = False
            if cls.returns_view:
                _share_memory_with(args[0], res)
            return res

        returns_view, saves_inputs, saves_out, plan = cls._apply_facts  # one class lookup for four (_plan_saves)
        needs_input_grad = []
        edges = []
        shapes = []
        # the version records of the saved inputs (see _check_versions), taken in this walk when the class saves
        # every input (mul, div, matmul...), else after the forward
        rec = [] if len(args) <= saves_inputs else None
        for a in args:
            if isinstance(a, Tensor):
                if a._base is not None and a._version[0] != a._vv:  # its base was written in place
                    inplace.refresh_view(a)
                if rec is not None:
                    v = a._version
                    rec.append(a if v is None else (v, v[0], a.grad_fn, a._out_index, a._data))
                shapes.append(a._data.shape)
                if a.requires_grad:
                    needs_input_grad.append(True)
                    gf = a.grad_fn  # the edge: the leaf itself, or (node, output index)
                    edges.append(a if gf is None else (gf, a._out_index))
                else:
                    needs_input_grad.append(False)
                    edges.append(None)
            else:
                needs_input_grad.append(False)
                edges.append(None)
                shapes.append(None)
        fn.needs_input_grad = tuple(needs_input_grad)
        out = fn.forward(*arrays)
        node = _new(Node)  # Node(fn, edges, shapes) inlined
        node.fn = fn
        node.edges = edges
        node.shapes = shapes
        node.n_outputs = 1
        node.retained = node.versions = None
        if type(out) is tuple:
            node.n_outputs = len(out)
            diff = cls.differentiable_outputs
            res = []
            for i, o in enumerate(out):
                if diff is None or i in diff:
                    res.append(_wrap(o, node, i))
                else:
                    res.append(_wrap(o))
            res = tuple(res)
        else:  # _wrap inlined
            res = _new(Tensor)
            if type(out) is not np.ndarray:
                out = np.asarray(out)
            res._data = out
            res.grad = res._hooks = res._post_hooks = res._version = res._base = res._vv = None
            res.grad_fn = node
            res._out_index = 0
            res.requires_grad = True
        if returns_view:
            _share_memory_with(args[0], res)
        if rec is not None:  # the inputs' records are taken; the outputs' if saved
            if saves_out:
                for t in (res if type(res) is tuple else (res,)):
                    v = t._version
                    if v is None:
                        v = t._version = [0]
                    rec.append((v, v[0], _THIS_NODE, t._out_index, t._data))
            node.versions = rec
        elif plan is None:
            node.versions = _record_versions(args, res, None)
        elif plan:  # _record_versions inlined for the declared saves, and lighter (_check_versions reads both)
            rec = []
            for i in plan:
                if i < 0:  # "out"
                    for t in (res if type(res) is tuple else (res,)):
                        v = t._version
                        if v is None:
                            v = t._version = [0]
                        rec.append((v, v[0], _THIS_NODE, t._out_index, t._data))
                else:
                    t = args[i]
                    if isinstance(t, Tensor):
                        v = t._version
                        if v is None:  # never written in place, nor viewed: at version 0; the tensor is the record
                            rec.append(t)
                        else:
                            rec.append((v, v[0], t.grad_fn, t._out_index, t._data))
            node.versions = rec
        return res


def binary_apply(cls, other):
    """``apply(a, b)``: ``cls.apply(a, b)`` for an arithmetic operator's Function (Add, Sub, Mul, Div: two inputs,
    one output, saving both inputs or neither), each operand a Tensor or a Python float / int, specialised to two
    arguments: the same graph, records and results as ``Function.apply``, without its argument loops and lists
    (~0.7 us of a one-element ``a * b``'s ~2.9 us; dev/gpt_ops_notes.md, "Per-op overhead", round 2).
    ``Function.apply`` takes what it does not specialise: two numbers, a 2-byte operand (bfloat16 / float16,
    pyengine/_lowp.py), a recording profiler. ``other(a, b)`` is called when an operand is of another type (a
    bool, an array, a list: the op converts it). The operators are these functions (Tensor.__mul__ ...)."""
    saves = cls._binary_saves
    if saves is None:
        raise TypeError(f"binary_apply: {cls.__name__} is not a two-input Function that saves both inputs or none")

    def apply(a, b):
        if _profiler is not None:
            return cls.apply(a, b)
        if isinstance(a, Tensor):
            da, ra = a._data, a.requires_grad
        elif type(a) is float or type(a) is int:
            da, ra = a, False
        else:
            return other(a, b)
        if isinstance(b, Tensor):
            db, rb = b._data, b.requires_grad
            if db.itemsize == 2:  # bfloat16 / float16: computed through float32 (pyengine/_lowp.py)
                return cls.apply(a, b)
        elif type(b) is not float and type(b) is not int:
            return other(a, b)
        elif da is a:  # two numbers
            return cls.apply(a, b)
        else:
            db, rb = b, False
        if da is not a and da.itemsize == 2:
            return cls.apply(a, b)
        fn = _new(cls)
        fn.backend = B = backend_of(a, b)
        fn.xp = B.xp
        res = _new(Tensor)  # _wrap inlined
        res._hooks = res._post_hooks = res._version = res._base = res._vv = res.grad = None
        res._out_index = 0
        if not (ra or rb) or (_grad_off_threads and not _state.enabled):  # no graph: the forward computation only
            out = fn.forward(da, db)
            res._data = out if type(out) is np.ndarray else np.asarray(out)
            res.grad_fn = None
            res.requires_grad = False
            return res
        # the graph, as Function.apply's second walk and its records
        if da is a:
            ea = sa = None
        else:
            if a._base is not None and a._version[0] != a._vv:  # its base was written in place
                inplace.refresh_view(a)
            ra = a.requires_grad
            gf = a.grad_fn
            ea = (a if gf is None else (gf, a._out_index)) if ra else None
            sa = da.shape
        if db is b:
            eb = sb = None
        else:
            if b._base is not None and b._version[0] != b._vv:
                inplace.refresh_view(b)
            rb = b.requires_grad
            gf = b.grad_fn
            eb = (b if gf is None else (gf, b._out_index)) if rb else None
            sb = db.shape
        fn.needs_input_grad = (ra, rb)
        out = fn.forward(da, db)
        node = _new(Node)  # Node(fn, edges, shapes) inlined
        node.fn = fn
        node.edges = [ea, eb]
        node.shapes = [sa, sb]
        node.n_outputs = 1
        node.retained = node.versions = None
        res._data = out if type(out) is np.ndarray else np.asarray(out)
        res.grad_fn = node
        res.requires_grad = True
        if saves:  # the version records of both inputs, as Function.apply takes them
            rec = []
            if da is not a:
                v = a._version
                rec.append(a if v is None else (v, v[0], a.grad_fn, a._out_index, da))
            if db is not b:
                v = b._version
                rec.append(b if v is None else (v, v[0], b.grad_fn, b._out_index, db))
            node.versions = rec
        return res

    apply.__name__ = apply.__qualname__ = f"apply_{cls.__name__}"
    return apply


def _plan_saves(cls):
    """``cls.saves`` as the loop in Function.apply reads it: a tuple of argument indices, -1 for "out"
    (None: every tensor, _record_versions), computed once per class."""
    saves = cls.__dict__.get("saves", cls.saves)
    cls._saves_plan = None if saves is None else tuple(-1 if i == "out" else i for i in saves)
    # _saves_inputs: n when the saved inputs are exactly the first n (a call with at most n arguments saves all
    # of them; -1 otherwise); _saves_out: whether the outputs are saved
    inputs = set() if saves is None else {i for i in saves if i != "out"}
    cls._saves_inputs = len(inputs) if saves is not None and inputs == set(range(len(inputs))) and inputs else -1
    cls._saves_out = saves is not None and "out" in saves
    cls._apply_facts = (cls.returns_view, cls._saves_inputs, cls._saves_out, cls._saves_plan)
    # binary_apply's plan: True when both inputs are saved, False when none is, None when it does not apply
    cls._binary_saves = (None if cls.returns_view or cls._saves_out or saves is None else
                         True if inputs == {0, 1} else False if not inputs else None)


class FunctionCtx:
    """The ``ctx`` of a PyTorch-style custom Function: ``save_for_backward`` / ``saved_tensors`` (checked
    against in-place writes, as PyTorch), ``needs_input_grad``, ``mark_non_differentiable``,
    ``mark_dirty``, ``set_materialize_grads``, and any attribute the forward sets."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self.materialize_grads = True
        self._saved, self._non_differentiable, self._dirty = (), set(), set()

    def save_for_backward(self, *tensors):
        self._saved = tuple((t, None if t is None else inplace.version_of(t)[0]) for t in tensors)

    @property
    def saved_tensors(self):
        out = []
        for t, version in self._saved:
            if t is not None and t._version[0] != version:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an inplace "
                    f"operation: [tensor of shape {list(t.shape)}] is at version {t._version[0]}; expected "
                    f"version {version} instead (saved with ctx.save_for_backward).")
            out.append(t)
        return tuple(out)

    def mark_non_differentiable(self, *tensors):
        self._non_differentiable.update(id(t) for t in tensors)

    def mark_dirty(self, *tensors):
        self._dirty.update(id(t) for t in tensors)

    def set_materialize_grads(self, value):
        self.materialize_grads = bool(value)


class _CustomFunctionNode(Function):
    """The graph node of a PyTorch-style custom Function: calls its static backward on Tensors."""

    saves = ()  # ctx.saved_tensors checks the versions of what was saved

    def backward(self, *grads):
        cls, ctx = self.custom, self.ctx
        gts = []
        for g, shape, dtype in zip(grads, self.out_shapes, self.out_dtypes):
            if g is None and ctx.materialize_grads:
                g = self.xp.zeros(shape, dtype)
            gts.append(None if g is None else _wrap(g))
        with no_grad():
            res = cls.backward(ctx, *gts)
        if type(res) is not tuple:
            res = (res,)
        n = len(self.needs_input_grad)
        if len(res) < n or any(r is not None for r in res[n:]):
            raise RuntimeError(f"function {cls.__name__}Backward returned an incorrect number of gradients "
                               f"(expected {n}, got {len(res)})")
        out = []
        for r, need in zip(res, self.needs_input_grad):
            if r is None or not need:
                out.append(None)
            elif isinstance(r, Tensor):
                out.append(r._data)
            else:
                raise TypeError(f"{cls.__name__}.backward must return Tensors or None, got {type(r).__name__}")
        return tuple(out)


def _apply_with_ctx(cls, *args):
    """apply() of a PyTorch-style custom Function (see Function.__init_subclass__)."""
    if _profiler is not None and _profiler.intercepts():
        return _profiler.record_apply(cls, args)
    needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
    ctx = FunctionCtx(needs)
    setup = cls.__dict__.get("setup_context")
    with no_grad():
        out = cls.forward(*args) if setup is not None else cls.forward(ctx, *args)
    if setup is not None:
        cls.setup_context(ctx, args, out)
    if not (_state.enabled and any(needs)):
        return out
    outs = out if type(out) is tuple else (out,)
    fn = _CustomFunctionNode.__new__(_node_class(cls))
    fn.custom, fn.ctx = cls, ctx
    fn.backend = B = backend_of(*args)
    fn.xp = B.xp
    fn.needs_input_grad = needs
    fn.out_shapes = tuple(o._data.shape if isinstance(o, Tensor) else () for o in outs)
    fn.out_dtypes = tuple(o._data.dtype if isinstance(o, Tensor) else np.float32 for o in outs)
    edges = [a._edge() if rg else None for a, rg in zip(args, needs)]
    shapes = [a._data.shape if isinstance(a, Tensor) else None for a in args]
    node = Node(fn, edges, shapes)
    node.n_outputs = len(outs)
    inputs = {id(a) for a in args if isinstance(a, Tensor)}
    res = []
    for i, o in enumerate(outs):
        if not isinstance(o, Tensor) or id(o) in ctx._non_differentiable:
            res.append(o)
            continue
        if id(o) in inputs and id(o) not in ctx._dirty:
            o = _wrap(o._data)  # an input returned as it is: a new tensor on the same memory, as PyTorch
        elif id(o) in ctx._dirty:
            inplace.bump(o)  # modified in place by the forward: the input itself becomes the output
        o.grad_fn, o._out_index, o.requires_grad = node, i, True
        res.append(o)
    return tuple(res) if type(out) is tuple else res[0]


def _node_class(cls):
    """A node class named after the custom Function (its grad_fn shows as <cls.__name__>Backward)."""
    node = cls.__dict__.get("_node_class")
    if node is None:
        node = type(cls.__name__, (_CustomFunctionNode,), {"__module__": cls.__module__})
        type.__setattr__(cls, "_node_class", node)
    return node


def _share_memory_with(src, outs):
    """Outputs that view src's memory share its version counter and know src (or src's own base) as
    their base, as PyTorch's views do."""
    root = _root(src._data)
    for t in (outs if type(outs) is tuple else (outs,)):
        if t._data.base is not None and _root(t._data) is root:
            t._version = inplace.version_of(src)
            t._base = src._base if src._base is not None else src
            t._vv = t._version[0]


def _root(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _record_versions(args, outs, saves):
    """(counter, its value now, the tensor's producer, output index, shape) of each saved tensor (Function.apply
    records the array, which it declared saved, in place of its shape: no NumPy shape tuple made per op)."""
    outs = outs if type(outs) is tuple else (outs,)
    picked = []
    for i in (range(len(args)) if saves is None else saves):
        if i == "out":
            picked.extend((t, _THIS_NODE) for t in outs)
        elif isinstance(args[i], Tensor):
            picked.append((args[i], args[i].grad_fn))
    if saves is None:
        picked.extend((t, _THIS_NODE) for t in outs)
    rec = []
    for t, producer in picked:
        v = inplace.version_of(t)
        rec.append((v, v[0], producer, t._out_index, t._data.shape))
    return rec


# An output's record names its producer, the recording node itself, by this marker: holding the node there
# would make node -> versions -> node a reference cycle, and every op's arrays would wait for the garbage
# collector instead of being freed when the graph is dropped.
_THIS_NODE = "this node"


def _check_versions(node):
    """RuntimeError if a tensor that ``node`` saved was written in place since. A record is (counter, its value
    then, the tensor's producer, output index, array or shape), or the saved input tensor itself where it had
    no counter then (version 0; saved so by Function.apply: no tuple per op, and no counter made for the
    tensors never written in place; its producer now is named). Outputs are never held: node -> output ->
    node would be a reference cycle."""
    for rec in node.versions:
        if type(rec) is tuple:
            counter, expected, producer, index, array = rec  # array: or its shape
        else:
            counter, expected, producer, index, array = rec._version, 0, rec.grad_fn, rec._out_index, rec._data
            if counter is None:
                continue
        if counter[0] != expected:
            shape = getattr(array, "shape", array)
            made = ("a leaf" if producer is None else
                    f"output {index} of {(node if producer is _THIS_NODE else producer).name}")
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an inplace "
                f"operation: [tensor of shape {list(shape)}], which is {made}, is at version {counter[0]}; "
                f"expected version {expected} instead (it is saved by {node.name}). Clone it before the "
                "in-place operation, or do that operation out of place.")


class Node:
    """The graph record of one applied Function: the function (holding its saved values) and,
    per input, where that input's gradient goes (None, a leaf Tensor, or (node, output index))
    and the input's shape, which the engine fits that gradient to."""

    __slots__ = ("fn", "edges", "shapes", "n_outputs", "retained", "versions", "__weakref__")

    def __init__(self, fn, edges, shapes):
        self.fn = fn
        self.edges = edges
        self.shapes = shapes
        self.n_outputs = 1
        self.retained = None  # {output index: Tensor} for retain_grad()
        self.versions = None  # the saved tensors' version counters (Function.saves)
        # (Function.apply sets these same six attributes inline, without this call)

    @property
    def freed(self):
        """Whether backward released the saved values (the function is then a _FreedFunction)."""
        return type(self.fn) is _FreedFunction

    @property
    def name(self):
        fn = self.fn
        return (fn.name if isinstance(fn, _FreedFunction) else type(fn).__name__) + "Backward"

    def __repr__(self):
        return f"<{self.name}>"


_new = object.__new__  # Tensor.__new__ and Node.__new__: Function.apply builds both without calling __init__


class _FreedFunction:
    """Stands in for a Function whose saved values were released after backward."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


# --------------------------------------------------------------------------- gradient shapes


def sum_to_shape(g, shape):
    """Fit gradient ``g`` to an input of ``shape``: sum over the axes that broadcasting added or
    stretched (g in the output's broadcast shape), or broadcast g up (a gradient the backward
    left smaller). Returns (array, fresh): ``fresh`` when the array is a new one only we hold."""
    if g.shape == shape:
        return g, False
    B = backend_of(g)
    if g.size == 0:  # sums over nothing: zeros, without the intermediate sums (of (0, 2**40): 2**40 of them)
        return B.xp.zeros(shape, g.dtype), True
    nlead = g.ndim - len(shape)
    if nlead < 0 or any(gs == 1 and s != 1 for gs, s in zip(g.shape[nlead:], shape)):
        return B.xp.broadcast_to(g, shape), False
    if nlead:
        if g.dtype in _SUM_ROWS_DTYPES and g.flags.c_contiguous and g.size:
            # the leading axes flattened into rows: one threaded column-sum kernel instead of a reduction
            # (not for an empty g: reshape(-1, 0) has no answer, and the plain sum below gives the zeros)
            cols = 1
            for s in g.shape[nlead:]:
                cols *= s
            g = B.sum_rows(g.reshape(-1, cols)).reshape(g.shape[nlead:])
        else:
            g = g.sum(axis=tuple(range(nlead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape), True


_SUM_ROWS_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------- the engine


def run_backward(roots, root_grads, retain_graph=False, inputs=None, accumulate=True):
    """Backpropagate ``root_grads`` (arrays) from the tensors ``roots``.

    With ``accumulate`` the gradients are added to ``.grad`` of every leaf that requires grad (of
    the tensors in ``inputs`` only, when given: leaves or not, as PyTorch's ``backward(inputs=)``).
    Without (autograd.grad) nothing is written: the gradients of ``inputs`` are returned, as
    {id(tensor): (tensor, array)}.
    """
    bp = _BackwardPass(inputs, accumulate)
    order = bp.seed(roots, root_grads)
    pop, run_node = bp.node_grads.pop, bp.run_node
    for node in reversed(order):  # `order` lists children before parents: outputs first
        grads = pop(node, None)
        if grads is not None:
            if _profiler is None:
                run_node(node, grads, retain_graph)
            else:
                _profiler.record_node(bp, node, grads, retain_graph)
    return bp.finish()


def _topological_order(start_nodes, pending=None):
    """Every node reachable from ``start_nodes``, each after all the nodes it feeds into
    (children first), by an iterative depth-first search. With ``pending`` (a dict), counts there the
    edges into each leaf, by id (each edge is seen once)."""
    order = []
    visited = set()
    for s in start_nodes:
        if s in visited:
            continue
        visited.add(s)
        stack = [(s, iter(s.edges))]
        while stack:
            node, it = stack[-1]
            for e in it:
                if type(e) is not tuple:  # None, or a leaf Tensor
                    if e is not None and pending is not None:
                        key = id(e)
                        pending[key] = pending.get(key, 0) + 1
                    continue
                child = e[0]
                if child not in visited:
                    visited.add(child)
                    stack.append((child, iter(child.edges)))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


class _BackwardPass:
    """The state of one backward pass: gradients on their way to nodes and leaves, and which of
    those arrays are ours alone (so that further contributions may be added into them in place)."""

    def __init__(self, inputs, accumulate):
        self.accumulate = accumulate
        self.node_grads = {}    # node -> [grad per output]
        self.owned_slots = set()  # (node, output index) whose grad array no one else references
        self.leaf_grads = {}    # id(leaf) -> (leaf, grad array, owned)
        self.pending = {}       # id(leaf) -> producers still to run before its gradient is final
        self.wanted = None      # ids of the leaves whose gradient is wanted; None: all
        self.captures = {}      # node -> [(output index, non-leaf tensor in `inputs`)]
        self.captured = {}      # id(non-leaf input) -> (tensor, grad array), without accumulate
        if inputs is not None:
            self.wanted = set()
            for t in inputs:
                if t.grad_fn is None:
                    self.wanted.add(id(t))
                else:
                    self.captures.setdefault(t.grad_fn, []).append((t._out_index, t))

    def seed(self, roots, root_grads):
        """Place the root gradients; return the nodes to run in topological order."""
        start_nodes = []
        for t, g in zip(roots, root_grads):
            if t.grad_fn is None:
                if t.requires_grad and self._wants(t):
                    self._add_leaf(t, g)
                continue
            node = t.grad_fn
            grads = self.node_grads.get(node)
            if grads is None:
                grads = self.node_grads[node] = [None] * node.n_outputs
                start_nodes.append(node)
            i = t._out_index
            grads[i] = g if grads[i] is None else grads[i] + g
        # With accumulate, a leaf's gradient is final once every node that feeds it has run: the walk counts
        # those edges, and the gradient is delivered (running its hooks) at that moment, not after the whole
        # graph. Data-parallel training uses this to start a bucket's allreduce while backward still runs.
        return _topological_order(start_nodes, self.pending if self.accumulate else None)

    def _wants(self, leaf):
        return self.wanted is None or id(leaf) in self.wanted

    def run_node(self, node, grads, retain_graph):
        """Call the node's backward with its summed output gradients and route what it returns."""
        # Every node of every backward runs this: the helpers of the common case (_check_versions, sum_to_shape
        # on an equal shape, _wants, _producer_done) are inlined.
        fn = node.fn
        if type(fn) is _FreedFunction:  # node.freed
            raise RuntimeError(
                f"Trying to backward through the graph a second time ({node.name}): its saved "
                "values were freed after the first backward. Pass retain_graph=True to the "
                "first backward() if you need to backward twice.")
        versions = node.versions
        if versions:  # _check_versions' test inlined
            for rec in versions:
                if type(rec) is tuple:
                    if rec[0][0] != rec[1]:
                        _check_versions(node)
                else:
                    v = rec._version
                    if v is not None and v[0]:
                        _check_versions(node)
        cls = type(fn)
        # the outputs of a view-returning backward are as unshared as the gradient it received
        passed_on = cls.views_grad and (node, 0) in self.owned_slots
        fresh = cls.fresh_grads
        if node.retained:
            for i, t in node.retained.items():
                if grads[i] is not None:
                    t.grad = _wrap(grads[i].copy()) if t.grad is None else _wrap(t.grad._data + grads[i])
        if self.captures and node in self.captures:
            self._capture(node, grads)
        in_grads = fn.backward(grads[0]) if node.n_outputs == 1 else fn.backward(*grads)
        if type(in_grads) is not tuple:
            in_grads = (in_grads,)
        if not retain_graph:  # (node.freed is now True)
            node.fn = _FreedFunction(cls.__name__)
            node.versions = None  # they hold saved arrays too
        wanted = self.wanted
        accumulate = self.accumulate
        for e, g, shape in zip(node.edges, in_grads, node.shapes):
            if e is None:
                continue
            if g is not None:
                if g.shape == shape:
                    summed = False
                else:
                    g, summed = sum_to_shape(g, shape)
                # (not a 0-d result: NumPy arithmetic on 0-d arrays gives immutable scalars, never added into)
                owned = summed or passed_on or (fresh and g.base is None and g.ndim > 0)
            if type(e) is tuple:
                if g is not None:
                    self._send(e[0], e[1], g, owned)
            else:  # a leaf tensor
                key = id(e)
                if g is not None and (wanted is None or key in wanted):
                    self._add_leaf(e, g, owned)
                if accumulate:  # _producer_done inlined
                    pending = self.pending
                    left = pending[key] - 1
                    pending[key] = left
                    if left == 0 and key in self.leaf_grads:
                        _, g, owned = self.leaf_grads.pop(key)
                        _deliver_grad(e, g, owned)

    def _capture(self, node, grads):
        for i, t in self.captures[node]:
            g = grads[i]
            if g is None:
                continue
            if self.accumulate:
                _deliver_grad(t, g)
            else:
                self.captured[id(t)] = (t, g)

    def _send(self, child, idx, g, owned):
        """Add gradient ``g`` to output ``idx`` of ``child``: in place into an array that is ours."""
        cg = self.node_grads.get(child)
        if cg is None:
            cg = self.node_grads[child] = [None] * child.n_outputs
        slot = (child, idx)
        cur = cg[idx]
        if cur is None:
            cg[idx] = g
            if owned:
                self.owned_slots.add(slot)
        elif cur.shape == g.shape and cur.dtype == g.dtype and slot in self.owned_slots:
            _accumulate(cur, g)  # an array only we hold: add in place
        elif cur.shape == g.shape and cur.dtype == g.dtype and owned:
            _accumulate(g, cur)  # the new one is only ours: add into it, keep it
            cg[idx] = g
            self.owned_slots.add(slot)
        else:
            cg[idx] = cur + g
            self.owned_slots.add(slot)

    def _add_leaf(self, t, g, owned=False):
        """Collect a leaf's gradient; ``owned``: no one else references the array (see Function.fresh_grads)."""
        prev = self.leaf_grads.get(id(t))
        if prev is None:
            self.leaf_grads[id(t)] = (t, g, owned)
        elif prev[2] and prev[1].shape == g.shape and prev[1].dtype == g.dtype and prev[1].flags.writeable:
            _accumulate(prev[1], g)  # ours alone: accumulate in place
        else:
            self.leaf_grads[id(t)] = (t, prev[1] + g, True)

    def _producer_done(self, leaf):
        key = id(leaf)
        self.pending[key] -= 1
        if self.pending[key] == 0 and key in self.leaf_grads:
            _, g, owned = self.leaf_grads.pop(key)
            _deliver_grad(leaf, g, owned)

    def finish(self):
        """Deliver what is left (leaves that were roots, or fed by nodes that received no gradient);
        without accumulate, return the gradients of the inputs instead."""
        if not self.accumulate:
            res = {k: (t, g) for k, (t, g, _) in self.leaf_grads.items()}
            res.update(self.captured)
            return res
        for t, g, owned in self.leaf_grads.values():
            _deliver_grad(t, g, owned)
        return None


_ACCUMULATE_MIN = 1 << 16  # elements; below this NumPy's += costs less than a kernel call


def _accumulate(dst, g):
    """dst += g in place: the backend's threaded kernel for large float arrays, NumPy otherwise."""
    if dst.size >= _ACCUMULATE_MIN:
        B = backend_of(dst)
        if (dst.dtype == g.dtype and dst.shape == g.shape and dst.dtype.kind == "f" and dst.flags.c_contiguous
                and dst.flags.writeable and not B.xp.may_share_memory(dst, g)):
            B.add_into(dst, g)
            return
    dst += g


def _deliver_grad(t, g, owned=False):
    """Accumulate ``g`` into ``t.grad``, running the tensor's hooks around it."""
    data = t._data
    if g.dtype is not data.dtype and g.dtype != data.dtype:
        g = g.astype(data.dtype)
        owned = True
    if g.shape != data.shape:
        g = backend_of(g).xp.broadcast_to(g, data.shape)
        owned = False
    hooks = t._hooks
    if hooks:
        for h in hooks.values():
            r = h(_wrap(g))
            if r is not None:
                g = r._data
                owned = False
    if t.grad is None:
        # adopt an array no one else holds; copy anything that may alias memory elsewhere in the graph (in
        # C order, on the threaded copy kernel, for a C-ordered leaf; else keeping g's memory order)
        if not (owned and g.flags.writeable):
            B = backend_of(g)
            if data.flags.c_contiguous:
                g = B.copy_into(B.xp.empty(g.shape, g.dtype), g)
            else:
                g = B.xp.array(g, copy=True)
        t.grad = _wrap(g)
    else:
        _accumulate(t.grad._data, g)
    post = t._post_hooks
    if post:
        for h in post.values():
            h(t)


# --------------------------------------------------------------------------- entry points


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate the gradients of ``tensors`` (seeded with ``grad_tensors``) into ``.grad`` of the
    leaves, or of ``inputs`` only when given (PyTorch's ``torch.autograd.backward``)."""
    if grad_tensors is None and inputs is None and not create_graph and isinstance(tensors, Tensor):
        # loss.backward(): the common call, without the lists below
        run_backward((tensors,), (_seed_grad(tensors, None),), bool(retain_graph))
        return
    if create_graph:
        raise NotImplementedError("backward(create_graph=True): higher-order gradients are not supported")
    tensors = _as_list(tensors)
    if grad_tensors is None:
        grad_tensors = [None] * len(tensors)
    grad_tensors = _as_list(grad_tensors)
    if len(grad_tensors) != len(tensors):
        raise RuntimeError(f"backward: got {len(grad_tensors)} gradients for {len(tensors)} tensors")
    if inputs is not None:
        inputs = _as_list(inputs)
        if not inputs:
            raise RuntimeError("backward: inputs= must be a non-empty sequence of tensors")
        for t in inputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"backward: inputs must be Tensors, got {type(t).__name__}")
            if not t.requires_grad:
                raise RuntimeError("backward: one of the inputs does not require grad")
    seeds = [_seed_grad(t, g) for t, g in zip(tensors, grad_tensors)]
    run_backward(tensors, seeds, retain_graph=bool(retain_graph), inputs=inputs)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, only_inputs=True,
         allow_unused=None, is_grads_batched=False, materialize_grads=False):
    """Gradients of ``outputs`` w.r.t. ``inputs`` (leaves or not), without touching ``.grad``.

    An input the outputs do not depend on gets None with ``allow_unused=True``, else an error. With
    ``create_graph=True`` the gradients are differentiable (pyengine/_double_backward.py; the graph is kept).
    """
    outputs = _as_list(outputs)
    inputs = _as_list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    grad_outputs = _as_list(grad_outputs)
    if is_grads_batched:
        raise NotImplementedError("grad: is_grads_batched=True is not supported")
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("grad: one of the inputs does not require grad")
    if create_graph:
        from . import _double_backward
        out = _double_backward.grad(outputs, inputs, grad_outputs, allow_unused or materialize_grads)
    else:
        out = _grad(outputs, inputs, grad_outputs, bool(retain_graph), allow_unused or materialize_grads)
    if materialize_grads:
        out = tuple(_wrap(np.zeros(t.shape, t._data.dtype)) if g is None else g for t, g in zip(inputs, out))
    return out


def _grad(outputs, inputs, grad_outputs, retain_graph, allow_unused):
    seeds = [_seed_grad(o, g, "grad") for o, g in zip(outputs, grad_outputs)]
    res = run_backward(outputs, seeds, retain_graph=retain_graph, inputs=inputs, accumulate=False)
    out = []
    for t in inputs:
        e = res.get(id(t))
        if e is None:
            if not allow_unused:
                raise RuntimeError("grad: one of the differentiated Tensors appears to not have been used in "
                                   "the graph. Set allow_unused=True if this is the desired behavior.")
            out.append(None)
        else:
            xp = backend_of(e[1]).xp
            out.append(_wrap(xp.array(xp.broadcast_to(e[1], t.shape), dtype=t._data.dtype)))
    return tuple(out)


def _as_list(x):
    return [x] if isinstance(x, Tensor) else list(x)


def _seed_grad(t, gradient, op="backward"):
    """The array that starts backward from ``t``: ones for a scalar, else ``gradient``."""
    if not t.requires_grad:
        raise RuntimeError(f"{op}: element 0 of tensors does not require grad and does not have a grad_fn")
    if gradient is None:
        if t._data.size != 1:
            raise RuntimeError(
                f"{op}: grad can be implicitly created only for scalar outputs; got shape "
                f"{tuple(t.shape)}. Pass gradient= with that shape.")
        g = backend_of(t).xp.empty(t._data.shape, t._data.dtype)  # (ones_like: a slower Python function)
        g.fill(1)
        return g
    g = gradient._data if isinstance(gradient, Tensor) else backend_of(t).xp.asarray(gradient, dtype=t._data.dtype)
    if g.shape != t._data.shape:
        raise RuntimeError(f"{op}: gradient has shape {tuple(g.shape)} but the tensor has shape "
                           f"{tuple(t.shape)}")
    return g.astype(t._data.dtype, copy=False)


# tensor.py imports this module, and this module needs Tensor at run time: the cycle is closed here,
# at the end, where every name above already exists (see the note at the end of tensor.py).
from .tensor import Tensor, _wrap  # noqa: E402
from .ops import inplace  # noqa: E402
from . import _lowp  # noqa: E402
from ._lowp import LOW as _LOW  # noqa: E402
from ._legacy import Variable  # noqa: E402,F401  PyTorch's legacy autograd.Variable
