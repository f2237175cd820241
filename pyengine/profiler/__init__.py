"""pyengine.profiler: where the time of a program goes, with PyTorch's ``torch.profiler`` API.

    from pyengine.profiler import profile, record_function, ProfilerActivity

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        with record_function("model_inference"):
            loss = model(x).sum()
        loss.backward()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
    prof.export_chrome_trace("trace.json")   # chrome://tracing or https://ui.perfetto.dev

Recorded: every op (each ``Function.apply``, named as its Function: ``Linear``, ``MatMul``), every backward
node (``LinearBackward``), every backend kernel call (``cpu::matmul``, with FLOPs and bytes under
``with_flops``), the optimizers' steps (``Optimizer.step#AdamW.step``), ``record_function``
regions and, with a schedule, one ``ProfilerStep#N`` per step. Self time is an event's time minus the events
directly inside it. When no profile records, the cost is one check of ``autograd._profiler`` per op.
See docs/profiler.md.
"""
import enum
import functools
import os
import socket
import time
import warnings

from .. import autograd
from ._events import EventList, FunctionEvent, FunctionEventAvg, events_from_raw, peak_gflops
from ._recorder import Recorder

__all__ = ["profile", "record_function", "schedule", "ProfilerActivity", "ProfilerAction",
           "tensorboard_trace_handler", "supported_activities", "EventList", "FunctionEvent", "FunctionEventAvg",
           "peak_gflops"]


class ProfilerActivity(enum.Enum):
    CPU = "CPU"
    CUDA = "CUDA"


def supported_activities():
    """The activities this build can record: the CPU (pyengine has no GPU backend yet)."""
    return {ProfilerActivity.CPU}


class ProfilerAction(enum.Enum):
    NONE = 0
    WARMUP = 1
    RECORD = 2
    RECORD_AND_SAVE = 3


_RECORDING = (ProfilerAction.RECORD, ProfilerAction.RECORD_AND_SAVE)


def schedule(*, wait, warmup, active, repeat=0, skip_first=0):
    """PyTorch's schedule: skip ``skip_first`` steps, then cycles of ``wait`` idle steps, ``warmup`` steps
    (not recorded here: pyengine has no tracer to warm up), ``active`` recorded steps, the last of which
    hands the trace to ``on_trace_ready``; ``repeat`` cycles (0: as long as the loop runs)."""
    for name, v in (("wait", wait), ("warmup", warmup), ("active", active), ("repeat", repeat),
                    ("skip_first", skip_first)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"schedule: {name} must be an integer >= 0, got {v!r}")
    if active < 1:
        raise ValueError("schedule: active must be >= 1 (steps recorded per cycle)")
    cycle = wait + warmup + active

    def action(step):
        if step < skip_first:
            return ProfilerAction.NONE
        step -= skip_first
        if repeat > 0 and step // cycle >= repeat:
            return ProfilerAction.NONE
        pos = step % cycle
        if pos < wait:
            return ProfilerAction.NONE
        if pos < wait + warmup:
            return ProfilerAction.WARMUP
        return ProfilerAction.RECORD if pos < cycle - 1 else ProfilerAction.RECORD_AND_SAVE
    return action


def _always_record(step):
    return ProfilerAction.RECORD


def tensorboard_trace_handler(dir_name, worker_name=None, use_gzip=False):
    """An ``on_trace_ready`` that writes each trace as ``<dir_name>/<worker>.<ms>.pt.trace.json[.gz]`` (the
    file names TensorBoard's profiler plugin and Perfetto read)."""
    worker = worker_name or f"{socket.gethostname()}_{os.getpid()}"

    def handler(prof):
        os.makedirs(dir_name, exist_ok=True)
        name = f"{worker}.{time.time_ns() // 1_000_000}.pt.trace.json" + (".gz" if use_gzip else "")
        path = os.path.join(dir_name, name)
        prof.export_chrome_trace(path)
        prof.last_trace_path = path
    return handler


class profile:
    """Record what runs inside ``with profile(...) as prof:`` (or between ``prof.start()`` and
    ``prof.stop()``); PyTorch's arguments. With a ``schedule``, call ``prof.step()`` once per training step:
    steps are recorded as the schedule says, and ``on_trace_ready(prof)`` runs at the end of each active
    period (and on exit if one is still recording). Results: ``prof.events()``, ``prof.key_averages()``,
    ``prof.export_chrome_trace(path)``; those of the last finished recording (all of them with
    ``acc_events=True``)."""

    def __init__(self, *, activities=None, schedule=None, on_trace_ready=None, record_shapes=False,
                 profile_memory=False, with_stack=False, with_flops=False, acc_events=False):
        acts = set(activities) if activities is not None else supported_activities()
        for a in acts:
            if not isinstance(a, ProfilerActivity):
                raise TypeError(f"profile: activities must be ProfilerActivity members, got {a!r}")
        if ProfilerActivity.CUDA in acts:
            warnings.warn("profile: pyengine has no CUDA device; only CPU activity is recorded", stacklevel=2)
        if schedule is not None and not callable(schedule):
            raise TypeError("profile: schedule must be a function of the step number (see profiler.schedule)")
        if on_trace_ready is not None and not callable(on_trace_ready):
            raise TypeError("profile: on_trace_ready must be a function of the profiler")
        self.activities = acts
        self.schedule = schedule or _always_record
        self.record_steps = schedule is not None  # ProfilerStep#N events, as PyTorch: with a schedule only
        self.on_trace_ready = on_trace_ready
        self.record_shapes = bool(record_shapes)
        self.profile_memory = bool(profile_memory)
        self.with_stack = bool(with_stack)
        self.with_flops = bool(with_flops)
        self.acc_events = bool(acc_events)
        self.step_num = 0
        self.current_action = None
        self.last_trace_path = None
        self._rec = None
        self._step_event = None
        self._t0 = None
        self._raw = []
        self._threads = None
        self._events = None
        self._started = False

    # ------------------------------------------------------------------ control
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        if self._started:
            raise RuntimeError("profile: already started")
        self._started = True
        self.current_action = self.schedule(self.step_num)
        if self.current_action in _RECORDING:
            self._start_recording()

    def stop(self):
        if not self._started:
            return
        self._started = False
        if self._rec is not None:
            self._stop_recording(save=True)

    def step(self):
        """Mark the end of a training step: the schedule decides what the next step records."""
        if not self._started:
            raise RuntimeError("profile.step(): the profiler is not running (use it inside `with profile(...)`)")
        prev = self.current_action
        self.step_num += 1
        cur = self.current_action = self.schedule(self.step_num)
        if self._rec is not None:
            if prev == ProfilerAction.RECORD_AND_SAVE or cur not in _RECORDING:
                self._stop_recording(save=True)
            else:
                self._close_step_event()
                self._open_step_event()
        if cur in _RECORDING and self._rec is None:
            self._start_recording()

    def _start_recording(self):
        rec = Recorder(self.record_shapes, self.with_flops, self.profile_memory, self.with_stack)
        rec.install()
        self._rec = rec
        if self._t0 is None or not self.acc_events:
            self._t0 = time.perf_counter_ns()
        from ..backend import get_backend
        try:
            self._threads = get_backend("cpu").get_num_threads()
        except AttributeError:  # the reference backend has no thread pool
            self._threads = None
        self._open_step_event()

    def _stop_recording(self, save):
        self._close_step_event()
        rec, self._rec = self._rec, None
        rec.uninstall()
        self._raw = (self._raw + rec.events) if self.acc_events else list(rec.events)
        self._events = None
        if save and self.on_trace_ready is not None:
            self.on_trace_ready(self)

    def _open_step_event(self):
        if self.record_steps:
            self._step_event = self._rec.open(f"ProfilerStep#{self.step_num}", "user")

    def _close_step_event(self):
        ev, self._step_event = self._step_event, None
        if ev is not None and self._rec is not None:
            self._rec.close(ev)

    # ------------------------------------------------------------------ results
    def events(self):
        """Every recorded event (FunctionEvent), in start order."""
        if self._events is None:
            self._events = EventList(events_from_raw(self._raw, self._t0 or 0), self.with_flops,
                                     self.profile_memory, threads=self._threads)
        return self._events

    def key_averages(self, group_by_input_shape=False, group_by_stack_n=0):
        """The events summed by name (and input shapes / stack frames when asked): call ``.table()`` on it."""
        if group_by_input_shape and not self.record_shapes:
            raise RuntimeError("key_averages(group_by_input_shape=True) needs profile(record_shapes=True)")
        if group_by_stack_n and not self.with_stack:
            raise RuntimeError("key_averages(group_by_stack_n=...) needs profile(with_stack=True)")
        return self.events().key_averages(group_by_input_shape, group_by_stack_n)

    def table(self, *args, **kwargs):
        return self.key_averages().table(*args, **kwargs)

    def export_chrome_trace(self, path):
        """Write the recorded events as Chrome trace-event JSON (Perfetto, chrome://tracing)."""
        return self.events().export_chrome_trace(path)

    def export_stacks(self, path, metric="self_cpu_time_total"):
        """Collapsed stacks of the ops and regions for a flame graph (needs ``with_stack=True``)."""
        if not self.with_stack:
            raise RuntimeError("export_stacks needs profile(with_stack=True)")
        return self.events().export_stacks(path, metric)

    @property
    def self_cpu_time_total(self):
        return self.events().self_cpu_time_total


class record_function:
    """A named region in the profile: ``with record_function("forward"):`` or ``@record_function("name")``;
    ``args``, a string, goes into the trace event's args. Costs one check when no profile records."""

    def __init__(self, name, args=None):
        if not isinstance(name, str):
            raise TypeError(f"record_function: name must be a string, got {type(name).__name__}")
        if args is not None and not isinstance(args, str):
            raise TypeError(f"record_function: args must be a string or None, got {type(args).__name__}")
        self.name = name
        self.args = args
        self._open = []

    def __enter__(self):
        rec = autograd._profiler
        if rec is None:
            self._open.append(None)
        else:
            ev = rec.open(self.name, "user")
            ev.note = self.args
            self._open.append((rec, ev))
        return self

    def __exit__(self, *exc):
        entry = self._open.pop() if self._open else None
        if entry is not None:
            entry[0].close(entry[1])
        return False

    def __call__(self, fn):
        name = self.name

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            rec = autograd._profiler
            if rec is None:
                return fn(*args, **kwargs)
            ev = rec.open(name, "user")
            ev.note = self.args
            try:
                return fn(*args, **kwargs)
            finally:
                rec.close(ev)
        return wrapper
