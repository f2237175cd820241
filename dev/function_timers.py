"""Per-Function timers for the dev profilers (profile_gpt_ops.py, profile_gpt_step.py): `install()` wraps
Function.apply (forward, node building included; nested applies count in their outermost caller) and every
Function class's backward with perf_counter timers that add up into `fwd` / `bwd` ({class name: [seconds,
calls]}); `uninstall()` puts apply back (the backward wrappers stay: they only add to `bwd`)."""
import collections
import time

from pyengine import autograd

fwd = collections.defaultdict(lambda: [0.0, 0])
bwd = collections.defaultdict(lambda: [0.0, 0])
_depth = [0]
_orig_apply = autograd.Function.apply.__func__


def _timed_apply(cls, *args):
    if _depth[0]:
        return _orig_apply(cls, *args)
    _depth[0] += 1
    t0 = time.perf_counter()
    try:
        return _orig_apply(cls, *args)
    finally:
        r = fwd[cls.__name__]
        r[0] += time.perf_counter() - t0
        r[1] += 1
        _depth[0] -= 1


def _wrap_backward(cls):
    ob = cls.__dict__.get("backward")
    if ob is None or getattr(ob, "_timed", False):
        return

    def backward(self, *g):
        t0 = time.perf_counter()
        try:
            return ob(self, *g)
        finally:
            r = bwd[type(self).__name__]
            r[0] += time.perf_counter() - t0
            r[1] += 1
    backward._timed = True
    cls.backward = backward


def _all_subclasses(c):
    for s in c.__subclasses__():
        yield s
        yield from _all_subclasses(s)


def install():
    autograd.Function.apply = classmethod(_timed_apply)
    for c in list(_all_subclasses(autograd.Function)):
        if "apply" not in c.__dict__:
            _wrap_backward(c)


def uninstall():
    autograd.Function.apply = classmethod(_orig_apply)


def print_table(steps, total_fwd, total_bwd, width=22):
    """Per Function: calls per step, forward and backward ms per step, sorted by their sum; then the rest of
    the forward and backward time (total_fwd / total_bwd, seconds over `steps`) as 'other'."""
    ms = 1e3 / steps
    rows = sorted(set(fwd) | set(bwd), key=lambda k: -(fwd[k][0] + bwd[k][0]))
    print(f"{'Function':{width}s} {'calls':>6s} {'fwd ms':>8s} {'bwd ms':>8s}")
    sf = sb = 0.0
    for k in rows:
        f, b = fwd[k], bwd[k]
        sf += f[0]
        sb += b[0]
        print(f"{k:{width}s} {f[1] // steps:6d} {f[0] * ms:8.2f} {b[0] * ms:8.2f}")
    print(f"{'(Functions total)':{width}s} {'':6s} {sf * ms:8.2f} {sb * ms:8.2f}")
    print(f"{'(other: engine etc.)':{width}s} {'':6s} {(total_fwd - sf) * ms:8.2f} {(total_bwd - sb) * ms:8.2f}")
