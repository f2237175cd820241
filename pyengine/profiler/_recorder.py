"""The recorder behind ``pyengine.profiler.profile``: the hooks that time ops, backward nodes, kernels and
user regions while a profile records, and the raw events they leave.

Nothing here runs when no profile records: ``autograd._profiler`` is None, the one check per op that
Function.apply and the backward pass make. While recording, ``autograd._profiler`` is the Recorder and every
backend's kernel table (the module attributes that ``self.backend.<kernel>`` reads) holds timing wrappers;
both are put back when recording stops.
"""
import os
import sys
import threading
import time

import numpy as np

from .. import autograd
from .. import backend as _backends
from ..tensor import Tensor
from . import _flops

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RawEvent:
    """One timed region: an op's forward ("op"), a backward node ("backward"), a backend kernel ("kernel"),
    or a named region ("user": record_function, ProfilerStep#N, Optimizer.step#...). Times in ns."""

    __slots__ = ("name", "kind", "start", "end", "tid", "parent", "child_ns", "shapes", "flops", "bytes",
                 "mem", "child_mem", "stack", "index", "kernel_flops", "note")

    def __init__(self, name, kind, tid, parent):
        self.name, self.kind, self.tid, self.parent = name, kind, tid, parent
        self.child_ns = 0
        self.shapes = self.flops = self.bytes = self.stack = self.note = None
        self.mem = self.child_mem = 0
        self.kernel_flops = 0  # FLOPs that kernels under this event counted (an op then counts none itself)
        self.start = self.end = 0
        self.index = -1


class _ThreadState(threading.local):
    stack = None        # this thread's open events, innermost last
    tid = 0             # its OS thread id (set with the stack)
    passthrough = False  # the next Function.apply on this thread runs unrecorded: it is the one being timed


class Recorder:
    """Collects events from every thread while installed (``install``/``uninstall``)."""

    def __init__(self, record_shapes=False, with_flops=False, profile_memory=False, with_stack=False):
        self.record_shapes = record_shapes
        self.with_flops = with_flops
        self.profile_memory = profile_memory
        self.with_stack = with_stack
        self.events = []
        self._tls = _ThreadState()
        self._patched = []
        self.pid = os.getpid()

    # ------------------------------------------------------------------ install / uninstall
    def install(self):
        if autograd._profiler is not None:
            raise RuntimeError("profiler: another pyengine profiler is already recording; stop it before "
                               "starting a new one")
        for mod in _backend_modules():
            for name in mod.KERNELS:
                orig = getattr(mod, name)
                self._patched.append((mod, name, orig))
                setattr(mod, name, self._kernel_wrapper(f"{mod.name}::{name}", name, orig))
        autograd._profiler = self

    def uninstall(self):
        if autograd._profiler is self:
            autograd._profiler = None
        for mod, name, orig in reversed(self._patched):
            setattr(mod, name, orig)
        self._patched = []

    # ------------------------------------------------------------------ events
    def open(self, name, kind):
        tls = self._tls
        st = tls.stack
        if st is None:
            st = tls.stack = []
            tls.tid = threading.get_native_id()
        ev = RawEvent(name, kind, tls.tid, st[-1] if st else None)
        st.append(ev)
        ev.start = time.perf_counter_ns()
        return ev

    def close(self, ev):
        end = time.perf_counter_ns()
        st = self._tls.stack
        if st and st[-1] is ev:
            st.pop()
        elif st and any(e is ev for e in st):
            # anything an exception left open above ev closes with it
            while st[-1] is not ev:
                self._finish(st.pop(), end)
            st.pop()
        # else: opened on another thread (a region entered there, left here): closed alone
        self._finish(ev, end)

    def _finish(self, ev, end):
        ev.end = end
        parent = ev.parent
        if parent is not None:
            parent.child_ns += end - ev.start
            parent.child_mem += ev.mem + ev.child_mem
        ev.index = len(self.events)
        self.events.append(ev)

    def open_events(self):
        """The events still open on the calling thread, innermost last."""
        return list(self._tls.stack or ())

    def _caller_stack(self, skip=2, limit=5):
        """file(line): function of the nearest Python frames outside pyengine."""
        out = []
        f = sys._getframe(skip)
        while f is not None and len(out) < limit:
            path = f.f_code.co_filename
            if not path.startswith(_PKG_DIR):
                out.append(f"{path}({f.f_lineno}): {f.f_code.co_name}")
            f = f.f_back
        return out

    # ------------------------------------------------------------------ hooks
    def intercepts(self):
        """Called by Function.apply: False for the apply that record_apply itself makes (it runs as usual)."""
        tls = self._tls
        if tls.passthrough:
            tls.passthrough = False
            return False
        return True

    def record_apply(self, cls, args):
        """Time one Function.apply as an "op" event named after the Function."""
        ev = self.open(cls.__name__, "op")
        if self.record_shapes:
            ev.shapes = [list(a._data.shape) if isinstance(a, Tensor) else [] for a in args]
        if self.with_stack:
            ev.stack = self._caller_stack(3)
        tls = self._tls
        tls.passthrough = True
        try:
            res = cls.apply(*args)
        finally:
            tls.passthrough = False
            self.close(ev)
        if self.with_flops and not ev.kernel_flops:
            ev.flops = _flops.op_flops(cls.__name__, args, res)
            if ev.flops and ev.parent is not None:
                ev.parent.kernel_flops += ev.flops
        if self.profile_memory:
            ev.mem = _owned_nbytes(res, args)
            if ev.parent is not None:
                ev.parent.child_mem += ev.mem
        return res

    def record_node(self, bp, node, grads, retain_graph):
        """Time one backward node as a "backward" event (named as its grad_fn: MatMulBackward)."""
        ev = self.open(node.name, "backward")
        if self.record_shapes:
            ev.shapes = [[] if g is None else list(g.shape) for g in grads]
        try:
            bp.run_node(node, grads, retain_graph)
        finally:
            self.close(ev)

    def region(self, name, fn, *args, **kwargs):
        """Run fn(*args, **kwargs) inside a "user" event (the optimizer's step and zero_grad)."""
        st = self._tls.stack
        if st and st[-1].name == name:  # a subclass's step calling its base's: one event
            return fn(*args, **kwargs)
        ev = self.open(name, "user")
        try:
            return fn(*args, **kwargs)
        finally:
            self.close(ev)

    def _kernel_wrapper(self, label, name, kernel):
        flops_of = _flops.KERNEL_FLOPS.get(name)
        rec = self

        def timed(*args, **kwargs):
            ev = rec.open(label, "kernel")
            try:
                out = kernel(*args, **kwargs)
            finally:
                rec.close(ev)
            if rec.record_shapes:
                ev.shapes = [list(a.shape) if isinstance(a, np.ndarray) else [] for a in args]
            if rec.with_flops:
                ev.flops = flops_of(args, kwargs, out) if flops_of is not None else None
                if ev.flops and ev.parent is not None:
                    ev.parent.kernel_flops += ev.flops
                ev.bytes = _flops.traffic_bytes(args, kwargs, out)
            return out

        timed.__name__ = timed.__qualname__ = name
        timed.__doc__ = getattr(kernel, "__doc__", None)
        timed.__wrapped__ = kernel
        return timed


def _backend_modules():
    mods = [_backends.reference]
    if _backends._cpu is not None:
        mods.append(_backends._cpu)
    for mod in _backends._by_device.values():
        if mod not in mods:
            mods.append(mod)
    return mods


def _root(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _owned_nbytes(res, args):
    """Bytes of the outputs on fresh memory (not views of an input)."""
    inputs = {id(_root(a._data)) for a in args if isinstance(a, Tensor)}
    total = 0
    for t in (res if type(res) is tuple else (res,)):
        if isinstance(t, Tensor) and id(_root(t._data)) not in inputs:
            total += t._data.nbytes
    return total
