"""Entries with planted bugs, one per kind of failure the harness must report (harness.py --selftest;
tests/test_fuzz.py checks that each is caught and named). Nothing here is pyengine's own behaviour."""
import ctypes
import signal
import time

import numpy as np
from hypothesis import strategies as st

import pyengine as pe
from registry import A, Entry, call
from strategies import Case, TensorSpec, tensors


def _floats():
    return st.builds(lambda t: Case({"0": A("tensor", t)}), tensors(dtypes=("float32",), grad=False))


def _with_nan():
    return st.just(Case({"0": A("tensor", TensorSpec(np.array([1.0, np.nan, 2.0], np.float32)))}))


def attribute_error(x):
    return x.no_such_attribute


def unnamed(x):
    raise ValueError("something is wrong")


def drops_nan(x):
    return pe.zeros_like(x)


def disagrees(x):
    return x + (1.0 if pe.get_backend().name == "cpu" else 0.0)


def accepts_none(x):
    return 0


def sleeps(x):
    time.sleep(30)


def sleeps_deaf(x):
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # the alarm cannot interrupt it: the watchdog must
    time.sleep(30)


def segfaults(x):
    ctypes.string_at(0)


ENTRIES = [
    Entry("selftest_attribute_error", _floats(), call(attribute_error)),
    Entry("selftest_unnamed", _floats(), call(unnamed)),
    Entry("selftest_drops_nan", _with_nan(), call(drops_nan), nan="elementwise"),
    Entry("selftest_disagrees", _floats(), call(disagrees)),
    Entry("selftest_accepts_none", st.just(Case({"0": A("tensor", None)}, ("0", None, True))), call(accepts_none)),
    Entry("selftest_sleeps", _floats(), call(sleeps)),
    Entry("selftest_segfaults", _floats(), call(segfaults)),
    Entry("selftest_sleeps_deaf", _floats(), call(sleeps_deaf)),
    Entry("selftest_fine", _floats(), call(pe.exp), nan="elementwise"),  # after the crash and the hang: still run
]
