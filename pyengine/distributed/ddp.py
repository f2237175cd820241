"""DistributedDataParallel: one model replica per rank; gradients averaged in buckets during backward.

How one iteration goes (PyTorch's design, Li et al. 2020, "PyTorch Distributed: Experiences on
Accelerating Data Parallel Training"):

1. Wrap time: rank 0's parameters and buffers are broadcast to every rank, after a check that every
   rank has the same parameters (names, shapes, dtypes: an allgather of a signature). Parameters are
   grouped into buckets of about ``bucket_cap_mb`` in REVERSE registration order, because backward
   produces the gradients of the last layers first. Each bucket owns one flat buffer.
2. Forward: the wrapped module runs; then the graph is walked from the outputs to find which
   parameters will get a gradient in this iteration (the others - unused branches, frozen heads - are
   not waited for: no deadlock).
3. Backward: a post-accumulate-grad hook on each parameter marks it ready. When every expected
   parameter of a bucket is ready, the bucket's gradients are packed into its buffer and a
   non-blocking allreduce (sum) starts. Buckets start strictly in order (0, 1, 2, ...) on every rank,
   because MPI requires all ranks to issue collectives in the same order.
4. The hook that marks the LAST expected parameter ready finalises the iteration inside backward: it
   starts any bucket not yet started, waits for every request, divides by the world size and copies
   the averages into ``p.grad``. So when ``loss.backward()`` returns, gradients are averaged and the
   user's ``opt.step()`` needs no change.

Why finalise in the last hook and not lazily before ``step()``: the optimizer is not ours to patch,
and ``p.grad`` is a plain attribute, so a lazy wait would need a call in user code. The cost is that
the graph walk of step 2 decides what "last" means; see the notes on unused parameters below.

Parameters without a gradient: each bucket carries one extra slot per parameter, the number of ranks
on which that parameter had a gradient (it rides in the same allreduce: no extra message). A parameter
that no rank used keeps ``grad = None``; one that some ranks used gets the average over all ranks
(unused ranks contribute zeros), as PyTorch's ``find_unused_parameters=True``.

``no_sync()``: forwards run inside it do not arm the hooks, so gradients just accumulate locally; the
first forward/backward outside it averages the accumulated gradients.

The bucketed allreduce itself (steps 1, 3 and 4 without the hooks) is ``Reducer``, named after PyTorch's
C++ class that does the same for its DDP: ``Reducer(params)()`` averages a list of parameters' gradients
in one call, which is how keras' ``fit`` averages them under MPI.

State dict: ``ddp.state_dict()`` is the wrapped module's, keys WITHOUT PyTorch's "module." prefix, so a
checkpoint saved from a DDP run loads into the bare model (and into a DDP of any world size) as is.
"""
import contextlib
import time
import weakref

import numpy as np

from ..autograd import is_grad_enabled
from ..nn.modules.module import Module
from ..tensor import Tensor, _wrap

__all__ = ["DistributedDataParallel", "Reducer"]

_IDLE, _ARMED, _DONE = 0, 1, 2


class _Bucket:
    """Gradients of a few parameters, packed in one flat buffer: [grads ... | used-count per param]."""

    __slots__ = ("index", "params", "names", "offsets", "numel", "buf", "param_dtype", "expected", "pending",
                 "work")

    def __init__(self, index, params, names):
        self.index, self.params, self.names = index, params, names
        self.param_dtype = params[0]._data.dtype
        self.offsets = np.cumsum([0] + [p._data.size for p in params]).tolist()
        self.numel = self.offsets[-1]
        # float16 sums are not a standard MPI reduction: communicate them in float32
        dt = np.float32 if self.param_dtype == np.float16 else self.param_dtype
        self.buf = np.zeros(self.numel + len(params), dtype=dt)
        self.expected = 0
        self.pending = 0
        self.work = None

    @property
    def nbytes(self):
        return self.numel * self.buf.itemsize


def _tensors_in(obj):
    """The Tensors in a forward output: a Tensor, or nested tuples / lists / dicts of them."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _tensors_in(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors_in(o)


class Reducer:
    """The gradients of ``params`` averaged over the ranks of ``process_group``, in buckets of about
    ``bucket_cap_mb`` MiB (one allreduce each, in bucket order on every rank).

    Parameters are bucketed in REVERSE order (backward produces the last layers' gradients first), one
    dtype per bucket. ``launch(bucket)`` packs a bucket's gradients and starts its non-blocking allreduce;
    ``finish(start)`` launches the buckets from ``start`` on, waits for all, and writes the averages into
    ``p.grad``. A parameter whose gradient is None on some ranks counts as zero there; one with no gradient
    on any rank keeps ``grad = None`` (a used-count per parameter rides in its bucket's message).
    ``DistributedDataParallel`` launches buckets from gradient hooks during backward; calling the reducer
    (``reducer()``) averages every gradient at once, after backward.

    >>> reducer = Reducer(model.parameters())
    >>> loss.backward(); reducer(); opt.step()
    """

    def __init__(self, params, process_group=None, bucket_cap_mb=4, names=None):
        if process_group is None:
            from . import init
            process_group = init()
        if not bucket_cap_mb > 0:
            raise ValueError(f"Reducer: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        params = list(params)
        names = [str(i) for i in range(len(params))] if names is None else list(names)
        self.process_group = process_group
        self.buckets = self._build_buckets(params, dict(zip(map(id, params), names)), bucket_cap_mb * 1024 * 1024)

    @staticmethod
    def _build_buckets(params, names, cap_bytes):
        """Buckets of consecutive parameters in reverse order, one dtype each, closed once >= cap_bytes."""
        buckets, cur, size = [], [], 0
        for p in reversed(params):
            if cur and p._data.dtype != cur[0]._data.dtype:
                buckets.append(cur)
                cur, size = [], 0
            cur.append(p)
            size += p._data.nbytes
            if size >= cap_bytes:
                buckets.append(cur)
                cur, size = [], 0
        if cur:
            buckets.append(cur)
        return [_Bucket(i, ps, [names[id(p)] for p in ps]) for i, ps in enumerate(buckets)]

    def launch(self, b):
        """Pack bucket ``b``'s gradients (zeros and a used-count of 0 for None) and start its allreduce."""
        buf, offs = b.buf, b.offsets
        n = b.numel
        for j, p in enumerate(b.params):
            g = p.grad
            seg = buf[offs[j]:offs[j + 1]]
            if g is None:
                seg.fill(0)
                buf[n + j] = 0
            else:
                if p._data.dtype != b.param_dtype:
                    raise RuntimeError(
                        f"DistributedDataParallel: parameter '{b.names[j]}' is {p._data.dtype} but was "
                        f"{b.param_dtype} when its gradient buckets were made (wrap time): call .to(dtype) "
                        "before wrapping")
                np.copyto(seg, g._data.reshape(-1))
                buf[n + j] = 1
        b.work = self.process_group.iallreduce(buf, "sum")

    def finish(self, start=0):
        """Launch the buckets from ``start`` on, wait for every bucket, write the averages into p.grad."""
        buckets = self.buckets
        for b in buckets[start:]:
            self.launch(b)
        world = self.process_group.world_size
        timeout = self.process_group.timeout
        for b in buckets:
            b.work.wait(timeout)
            b.work = None
            buf, offs, n = b.buf, b.offsets, b.numel
            grads = buf[:n]
            np.divide(grads, world, out=grads)
            for j, p in enumerate(b.params):
                if buf[n + j] == 0:
                    continue  # no rank had a gradient: leave p.grad as it is (None)
                seg = grads[offs[j]:offs[j + 1]].reshape(p._data.shape)
                if p.grad is None:
                    p.grad = _wrap(seg.astype(b.param_dtype, copy=True))
                else:
                    np.copyto(p.grad._data, seg, casting="unsafe")

    def __call__(self):
        """Average every gradient now (after backward): all buckets, then wait."""
        self.finish(0)


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training: call it like the module; after ``backward()`` every
    rank's gradients are the average over all ranks (PyTorch's ``torch.nn.parallel.DistributedDataParallel``).

    Args:
        module: the model; every rank must build the same one (checked here).
        bucket_cap_mb: gradients are sent in buckets of about this many MiB (one allreduce each).
        broadcast_buffers: copy rank 0's buffers (e.g. running statistics) to every rank at each forward.
        process_group: a ``ProcessGroup``; default: ``pyengine.distributed.init()``.

    >>> model = DistributedDataParallel(Net())
    >>> opt = pyengine.optim.AdamW(model.parameters(), lr=1e-3)
    >>> loss = F.cross_entropy(model(x), y); loss.backward(); opt.step()   # x, y: this rank's shard
    >>> with model.no_sync():               # gradient accumulation: no communication
    ...     F.cross_entropy(model(x1), y1).backward()
    >>> F.cross_entropy(model(x2), y2).backward()   # averages the accumulated gradients

    Differences from PyTorch: ``state_dict()`` and ``named_parameters()`` have no "module." prefix;
    unused parameters are always detected (PyTorch needs ``find_unused_parameters=True``). Wrap after
    ``model.to(dtype)`` and after ``load_state_dict(..., assign=True)``: the hooks belong to the
    Parameter objects present at wrap time.
    """

    def __init__(self, module, bucket_cap_mb=4, broadcast_buffers=True, process_group=None):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected an nn.Module, got {type(module).__name__}")
        if process_group is None:
            from . import init
            process_group = init()
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        self.module = module
        d = self.__dict__  # plain attributes, not registered state
        d["process_group"] = process_group
        d["broadcast_buffers"] = bool(broadcast_buffers)
        d["bucket_cap_mb"] = bucket_cap_mb
        d["require_backward_grad_sync"] = True
        d["last_sync_s"] = 0.0  # seconds the last finalisation waited and unpacked (for benchmarks)

        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        d["_params"] = [p for _, p in named]
        d["_names"] = {id(p): n for n, p in named}
        d["_sync_buffers_list"] = [b for _, b in module.named_buffers()]
        world = process_group.world_size
        if world > 1:
            self._check_same_model()
            self._broadcast_coalesced([p._data for p in module.parameters()] +
                                      [b._data for b in d["_sync_buffers_list"]])
        d["_reducer"] = Reducer(d["_params"], process_group, bucket_cap_mb, [n for n, _ in named])
        d["_buckets"] = self._reducer.buckets
        d["_where"] = {id(p): b for b in self._buckets for p in b.params}
        d["_state"] = _IDLE
        d["_expected"] = set()
        d["_ready"] = set()
        d["_next"] = 0
        d["_pending_total"] = 0
        d["_handles"] = []
        if world > 1:  # in a world of one the average is the gradient itself: no hooks at all
            ref = weakref.ref(self)

            def hook(p, ref=ref):
                ddp = ref()
                if ddp is not None:
                    ddp._on_grad_ready(p)
            self._handles.extend(p.register_post_accumulate_grad_hook(hook) for p in self._params)

    # ------------------------------------------------------------------ wrap time
    def _signature(self):
        sig = [["parameter", n, list(p.shape), str(p._data.dtype), bool(p.requires_grad)]
               for n, p in self.module.named_parameters()]
        sig += [["buffer", n, list(b.shape), str(b._data.dtype), False] for n, b in self.module.named_buffers()]
        return sig

    def _check_same_model(self):
        """Every rank must hold the same parameters in the same order; name the first that differs."""
        sigs = self.process_group.allgather_object(self._signature())
        ref = sigs[0]

        def desc(e):
            return f"{tuple(e[2])} {e[3]}" + ("" if e[4] or e[0] == "buffer" else " (requires_grad=False)")

        for r, sig in enumerate(sigs[1:], start=1):
            for a, b in zip(ref, sig):
                if a != b:
                    if a[:2] != b[:2]:
                        raise RuntimeError(
                            f"DistributedDataParallel: the model differs across ranks: {a[0]} #{ref.index(a)} is "
                            f"'{a[1]}' {desc(a)} on rank 0 but {b[0]} '{b[1]}' {desc(b)} on rank {r}. Every rank "
                            "must build the same model (same parameters, shapes, dtypes, in the same order).")
                    raise RuntimeError(
                        f"DistributedDataParallel: the model differs across ranks: {a[0]} '{a[1]}' is {desc(a)} "
                        f"on rank 0 but {desc(b)} on rank {r}. Every rank must build the same model (same "
                        "parameters, shapes, dtypes, in the same order).")
            if len(ref) != len(sig):
                longer, lr = (ref, 0) if len(ref) > len(sig) else (sig, r)
                e = longer[min(len(ref), len(sig))]
                raise RuntimeError(
                    f"DistributedDataParallel: the model differs across ranks: rank 0 has {len(ref)} parameters "
                    f"and buffers, rank {r} has {len(sig)}; the first one missing on the other rank is "
                    f"{e[0]} '{e[1]}' {desc(e)} of rank {lr}.")

    def _broadcast_coalesced(self, arrays):
        """Broadcast from rank 0 into ``arrays`` in place: one message per dtype."""
        by_dtype = {}
        for a in arrays:
            by_dtype.setdefault(a.dtype, []).append(a)
        for group in by_dtype.values():
            flat = np.concatenate([a.reshape(-1) for a in group])
            self.process_group.broadcast(flat, 0)
            off = 0
            for a in group:
                np.copyto(a, flat[off:off + a.size].reshape(a.shape))
                off += a.size

    @property
    def bucket_sizes(self):
        """(number of parameters, bytes) of each bucket, in the order they are reduced."""
        return [(len(b.params), b.nbytes) for b in self._buckets]

    # ------------------------------------------------------------------ forward
    def forward(self, *inputs, **kwargs):
        world = self.process_group.world_size
        if world > 1:
            self._check_previous_iteration()
            if self.broadcast_buffers and self._sync_buffers_list:
                self._broadcast_coalesced([b._data for b in self._sync_buffers_list])
        out = self.module(*inputs, **kwargs)
        if world > 1:
            if self.require_backward_grad_sync and is_grad_enabled():
                self._prepare_for_backward(out)
            else:
                self.__dict__["_state"] = _IDLE
        return out

    def _check_previous_iteration(self):
        if self._state == _ARMED and (self._ready or self._next):
            missing = [self._names[id(p)] for p in self._params
                       if id(p) in self._expected and id(p) not in self._ready]
            raise RuntimeError(
                "DistributedDataParallel: the previous iteration's gradient averaging did not finish: "
                f"{len(missing)} parameter(s) reachable from the forward output got no gradient in backward: "
                f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}. Make every output of the "
                "forward take part in the loss (or detach the outputs you do not use), and call backward once "
                "per forward.")

    def _prepare_for_backward(self, out):
        """Which parameters will get a gradient: those reachable in the graph from the outputs."""
        where = self._where
        expected = set()
        nodes, seen = [], set()
        for t in _tensors_in(out):
            if t.requires_grad:
                if t.grad_fn is None:
                    if id(t) in where:
                        expected.add(id(t))
                else:
                    nodes.append(t.grad_fn)
        while nodes:
            node = nodes.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            for e in node.edges:
                if e is None:
                    continue
                if type(e) is tuple:
                    if id(e[0]) not in seen:
                        nodes.append(e[0])
                elif id(e) in where:
                    expected.add(id(e))
        for b in self._buckets:
            n = 0
            for p in b.params:
                if id(p) in expected:
                    n += 1
            b.expected = b.pending = n
            b.work = None
        d = self.__dict__
        d["_expected"] = expected
        d["_ready"] = set()
        d["_next"] = 0
        d["_pending_total"] = len(expected)
        d["_state"] = _ARMED if expected else _IDLE

    # ------------------------------------------------------------------ backward (hooks)
    def _on_grad_ready(self, p):
        pid = id(p)
        state = self._state
        if state == _IDLE:
            return
        if pid not in self._expected:
            # PyTorch raises here too: the walk from the outputs decided this parameter gets no gradient,
            # so its (zero) contribution may already be on the wire
            raise RuntimeError(
                f"DistributedDataParallel: parameter '{self._names[pid]}' got a gradient along a path that does "
                "not go through the wrapped module's output (e.g. a loss term that uses the parameter "
                "directly). The parameters to wait for are found by walking the graph back from the forward's "
                "outputs: compute that term inside the module's forward and return it.")
        if state == _DONE:
            raise RuntimeError(
                f"DistributedDataParallel: parameter '{self._names[pid]}' got a gradient after this "
                "iteration's gradients were already averaged (backward called twice for one forward?). "
                "Run all but the last backward of a forward inside no_sync().")
        bucket = self._where[pid]
        if pid in self._ready:
            return
        self._ready.add(pid)
        bucket.pending -= 1
        self.__dict__["_pending_total"] -= 1
        if bucket.pending == 0:
            self._launch_in_order()
        if self._pending_total == 0:
            self._finalize()

    def _launch_in_order(self):
        buckets = self._buckets
        i = self._next
        while i < len(buckets) and buckets[i].pending == 0:
            self._reducer.launch(buckets[i])
            i += 1
        self.__dict__["_next"] = i

    def _finalize(self):
        """Start what is left, wait for every bucket, write the averages into p.grad."""
        t0 = time.perf_counter()
        self._reducer.finish(self._next)
        d = self.__dict__
        d["_next"] = len(self._buckets)
        d["_state"] = _DONE
        d["last_sync_s"] = time.perf_counter() - t0

    # ------------------------------------------------------------------ user-facing
    @contextlib.contextmanager
    def no_sync(self):
        """Inside, forward/backward accumulate gradients locally without communication (gradient
        accumulation); the next forward/backward outside averages the accumulated gradients."""
        prev = self.require_backward_grad_sync
        self.__dict__["require_backward_grad_sync"] = False
        try:
            yield
        finally:
            self.__dict__["require_backward_grad_sync"] = prev

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """The wrapped module's, without a "module." prefix (so names match ``state_dict()``)."""
        return self.module.named_parameters(prefix, recurse, remove_duplicate)

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        return self.module.named_buffers(prefix, recurse, remove_duplicate)

    def state_dict(self, *, destination=None, prefix="", keep_vars=False):
        """The wrapped module's state dict: keys without "module.", loadable at any world size."""
        return self.module.state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        if assign:
            raise ValueError("DistributedDataParallel.load_state_dict: assign=True would replace the Parameters "
                             "that the gradient hooks belong to; load into the module before wrapping it")
        return self.module.load_state_dict(state_dict, strict=strict)

    def extra_repr(self):
        return (f"world_size={self.process_group.world_size}, buckets={len(self._buckets)}, "
                f"bucket_cap_mb={self.bucket_cap_mb}")

    def __del__(self):
        for h in self.__dict__.get("_handles", ()):
            try:
                h.remove()
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass
