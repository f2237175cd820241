"""Profiler results: events (``FunctionEvent``), their averages by name (``FunctionEventAvg``), the lists of
either (``EventList``: ``key_averages``, ``table``, ``export_chrome_trace``). Times are in microseconds, as
PyTorch's."""
import json
import os

from ._flops import human

_SORT_KEYS = ("self_cpu_time_total", "cpu_time_total", "cpu_time", "self_cpu_time", "count", "flops", "bytes",
              "cpu_memory_usage", "self_cpu_memory_usage")

_peak_cache = {}


def peak_gflops(threads=None):
    """The machine's float32 FMA peak in GFLOP/s on ``threads`` threads (the compiled core's probe, measured
    once per process and thread count: the best of two runs of about 0.4 s, since a busy machine lowers
    it); None without the compiled core."""
    try:
        from ..backend.cpu._lib import _C
        from ..backend import _load_cpu
        if threads is None:
            threads = _load_cpu().get_num_threads()
    except Exception:  # pragma: no cover - a build without the compiled core
        return None
    if threads not in _peak_cache:
        _peak_cache[threads] = max(float(_C.probe_peak_gflops(int(threads))) for _ in range(2))
    return _peak_cache[threads]


class FunctionEvent:
    """One recorded region: ``name``, ``kind`` ("op", "backward", "kernel", "user"), ``thread``,
    ``time_range`` (start, end in us from the profile's start), ``cpu_time_total`` and
    ``self_cpu_time_total`` (us; self = minus the events directly inside it), ``input_shapes``, ``flops``,
    ``bytes``, ``cpu_memory_usage`` / ``self_cpu_memory_usage`` (bytes of fresh outputs, with
    profile_memory), ``stack`` (with with_stack), ``cpu_parent`` and ``cpu_children``."""

    count = 1

    def __init__(self, raw, t0):
        self.id = raw.index
        self.name = self.key = raw.name
        self.kind = raw.kind
        self.thread = raw.tid
        self.start_ns, self.end_ns = raw.start - t0, raw.end - t0
        self.time_range = (self.start_ns / 1000.0, self.end_ns / 1000.0)
        self.cpu_time_total = (raw.end - raw.start) / 1000.0
        self.self_cpu_time_total = (raw.end - raw.start - raw.child_ns) / 1000.0
        self.input_shapes = raw.shapes
        self.flops = raw.flops
        self.bytes = raw.bytes
        self.self_cpu_memory_usage = raw.mem
        self.cpu_memory_usage = raw.mem + raw.child_mem
        self.stack = raw.stack or []
        self.args = raw.note  # record_function's args string
        self.cpu_parent = None
        self.cpu_children = []

    @property
    def cpu_time(self):
        return self.cpu_time_total

    def __repr__(self):
        return (f"<FunctionEvent id={self.id} name={self.name} kind={self.kind} thread={self.thread} "
                f"cpu_time_total={self.cpu_time_total:.3f}us self_cpu_time_total={self.self_cpu_time_total:.3f}us "
                f"input_shapes={self.input_shapes} flops={self.flops}>")


def events_from_raw(raws, t0):
    """FunctionEvents of the recorder's raw events, in start order, with parents and children linked."""
    evs = {id(r): FunctionEvent(r, t0) for r in raws}
    for r in raws:
        if r.parent is not None and id(r.parent) in evs:
            child, parent = evs[id(r)], evs[id(r.parent)]
            child.cpu_parent = parent
            parent.cpu_children.append(child)
    out = sorted(evs.values(), key=lambda e: (e.start_ns, -e.end_ns, e.id))
    for e in out:
        e.cpu_children.sort(key=lambda c: c.start_ns)
    return out


class FunctionEventAvg:
    """The events of one key (name; and input shapes / stack when grouped so) summed: ``count``,
    ``cpu_time_total``, ``self_cpu_time_total``, ``cpu_time`` (the mean total), ``flops``, ``bytes``,
    memory, and ``gflops_per_s`` (FLOPs over self time)."""

    def __init__(self, key, input_shapes=None, stack=None):
        self.key = key
        self.input_shapes = input_shapes
        self.stack = stack or []
        self.count = 0
        self.cpu_time_total = 0.0
        self.self_cpu_time_total = 0.0
        self.flops = None
        self.bytes = None
        self.cpu_memory_usage = 0
        self.self_cpu_memory_usage = 0
        self.kind = None

    def add(self, e):
        self.count += e.count
        self.cpu_time_total += e.cpu_time_total
        self.self_cpu_time_total += e.self_cpu_time_total
        if e.flops is not None:
            self.flops = (self.flops or 0) + e.flops
        if e.bytes is not None:
            self.bytes = (self.bytes or 0) + e.bytes
        self.cpu_memory_usage += e.cpu_memory_usage
        self.self_cpu_memory_usage += e.self_cpu_memory_usage
        self.kind = self.kind or e.kind
        return self

    @property
    def cpu_time(self):
        return self.cpu_time_total / self.count if self.count else 0.0

    @property
    def self_cpu_time(self):
        return self.self_cpu_time_total / self.count if self.count else 0.0

    @property
    def gflops_per_s(self):
        if not self.flops or self.self_cpu_time_total <= 0:
            return None
        return self.flops / (self.self_cpu_time_total * 1e3)

    def __repr__(self):
        return (f"<FunctionEventAvg key={self.key} count={self.count} cpu_time_total={self.cpu_time_total:.3f}us "
                f"self_cpu_time_total={self.self_cpu_time_total:.3f}us input_shapes={self.input_shapes} "
                f"flops={self.flops}>")


def _fmt_time(us):
    if us >= 1e6:
        return f"{us / 1e6:.3f}s"
    if us >= 1e3:
        return f"{us / 1e3:.3f}ms"
    return f"{us:.3f}us"


def _fmt_bytes(n):
    if n is None:
        return ""
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


class EventList(list):
    """A list of FunctionEvents (``prof.events()``) or of FunctionEventAvgs (``key_averages()``)."""

    def __init__(self, items=(), with_flops=False, profile_memory=False, pid=None, threads=None):
        super().__init__(items)
        self._with_flops = with_flops
        self._profile_memory = profile_memory
        self._pid = os.getpid() if pid is None else pid
        self._threads = threads  # kernel threads while recording: the peak that % peak refers to

    def _like(self, items):
        return EventList(items, self._with_flops, self._profile_memory, self._pid, self._threads)

    @property
    def self_cpu_time_total(self):
        return sum(e.self_cpu_time_total for e in self)

    def key_averages(self, group_by_input_shape=False, group_by_stack_n=0):
        """One FunctionEventAvg per name (per name and input shapes / top stack frames when asked)."""
        groups = {}
        for e in self:
            key = e.key
            shapes = str(e.input_shapes) if group_by_input_shape else None
            stack = tuple(e.stack[:group_by_stack_n]) if group_by_stack_n > 0 else None
            k = (key, shapes, stack)
            avg = groups.get(k)
            if avg is None:
                avg = groups[k] = FunctionEventAvg(key, e.input_shapes if group_by_input_shape else None,
                                                   list(stack) if stack else None)
            avg.add(e)
        return self._like(groups.values())

    def total_average(self):
        total = FunctionEventAvg("Total")
        for e in self:
            total.add(e)
        return total

    def table(self, sort_by=None, row_limit=100, max_name_column_width=55, max_shapes_column_width=80,
              header=None, top_level_events_only=False):
        """The events as PyTorch's text table: Name, Self CPU %, Self CPU, CPU total %, CPU total, CPU time
        avg, (CPU Mem, Self CPU Mem with profile_memory), # of Calls, (Input Shapes when grouped by them),
        (Total FLOPs, GFLOP/s, % peak, Total Bytes with with_flops); sorted by ``sort_by`` (descending),
        at most ``row_limit`` rows (-1: all)."""
        return _table(self, sort_by, row_limit, max_name_column_width, max_shapes_column_width, header,
                      top_level_events_only)

    def __str__(self):
        return self.table()

    def export_chrome_trace(self, path):
        """Write the events as Chrome trace-event JSON (chrome://tracing, Perfetto): one "X" event per
        region, ts and dur in microseconds, per process and thread, args with shapes, FLOPs and bytes."""
        trace = chrome_trace(self, self._pid)
        if str(path).endswith(".gz"):
            import gzip
            with gzip.open(path, "wt") as f:
                json.dump(trace, f)
        else:
            with open(path, "w") as f:
                json.dump(trace, f)
        return path


    def export_stacks(self, path, metric="self_cpu_time_total"):
        """Write collapsed stacks for flame graphs (flamegraph.pl, speedscope): one line per event recorded
        with a stack (profile(with_stack=True)), ``outermost;...;innermost;event value``, the value the
        event's ``metric`` in whole microseconds."""
        if metric not in ("self_cpu_time_total", "cpu_time_total"):
            raise ValueError(f"export_stacks: metric must be 'self_cpu_time_total' or 'cpu_time_total', got {metric!r}")
        with open(path, "w") as f:
            for e in self:
                value = int(getattr(e, metric))
                if e.stack and value > 0:
                    frames = [fr.replace(";", ",").replace(" ", "_") for fr in reversed(e.stack)]
                    f.write(";".join(frames + [e.name]) + f" {value}\n")
        return path


_CATEGORY = {"op": "cpu_op", "backward": "cpu_op", "kernel": "kernel", "user": "user_annotation"}


def chrome_trace(events, pid):
    out = [{"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": f"pyengine (pid {pid})"}}]
    threads = []
    for e in events:
        if e.thread not in threads:
            threads.append(e.thread)
    for i, tid in enumerate(threads):
        out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                    "args": {"name": f"thread {tid}" + (" (first)" if i == 0 else "")}})
        out.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": {"sort_index": i}})
    for e in sorted(events, key=lambda e: (e.thread, e.start_ns, -e.end_ns)):
        args = {}
        if e.input_shapes is not None:
            args["Input Shapes"] = e.input_shapes
        if e.flops is not None:
            args["FLOPs"] = e.flops
        if e.bytes is not None:
            args["Bytes"] = e.bytes
        if e.cpu_memory_usage:
            args["CPU Mem"] = e.cpu_memory_usage
        if e.stack:
            args["Call stack"] = e.stack
        if getattr(e, "args", None) is not None:
            args["Record function args"] = e.args
        # integer nanoseconds to microseconds with 3 decimals: a child never ends after its parent
        ts, end = e.start_ns // 1000 + (e.start_ns % 1000) / 1000, e.end_ns // 1000 + (e.end_ns % 1000) / 1000
        out.append({"ph": "X", "cat": _CATEGORY.get(e.kind, "cpu_op"), "name": e.name, "pid": pid, "tid": e.thread,
                    "ts": ts, "dur": round(end - ts, 3), "args": args})
    return {"schemaVersion": 1, "displayTimeUnit": "ms", "traceEvents": out}


def _table(events, sort_by, row_limit, name_width, shapes_width, header, top_level_only):
    if top_level_only:
        events = events._like(e for e in events if getattr(e, "cpu_parent", None) is None)
    rows = list(events)
    if sort_by is not None:
        if sort_by not in _SORT_KEYS:
            raise ValueError(f"table: unknown sort_by {sort_by!r}; choose from {', '.join(_SORT_KEYS)}")
        rows.sort(key=lambda e: (getattr(e, sort_by) or 0), reverse=True)
    total_self = sum(e.self_cpu_time_total for e in events) or 1.0
    if row_limit is not None and row_limit >= 0:
        rows = rows[:row_limit]
    with_flops = events._with_flops
    with_mem = events._profile_memory
    with_shapes = any(getattr(e, "input_shapes", None) is not None for e in rows) and \
        isinstance(rows[0] if rows else None, FunctionEventAvg)
    peak = peak_gflops(events._threads) if with_flops and any(e.flops for e in rows) else None

    headers = ["Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg"]
    if with_mem:
        headers += ["CPU Mem", "Self CPU Mem"]
    headers.append("# of Calls")
    if with_shapes:
        headers.append("Input Shapes")
    if with_flops:
        headers += ["Total FLOPs", "GFLOP/s", "% peak", "Total Bytes"]

    def cells(e):
        name = e.key if len(e.key) <= name_width else e.key[:name_width - 3] + "..."
        c = [name, f"{100 * e.self_cpu_time_total / total_self:.2f}%", _fmt_time(e.self_cpu_time_total),
             f"{100 * e.cpu_time_total / total_self:.2f}%", _fmt_time(e.cpu_time_total), _fmt_time(e.cpu_time)]
        if with_mem:
            c += [_fmt_bytes(e.cpu_memory_usage), _fmt_bytes(e.self_cpu_memory_usage)]
        c.append(str(e.count))
        if with_shapes:
            s = "" if e.input_shapes is None else str(e.input_shapes)
            c.append(s if len(s) <= shapes_width else s[:shapes_width - 3] + "...")
        if with_flops:
            rate = e.gflops_per_s if isinstance(e, FunctionEventAvg) else (
                e.flops / (e.self_cpu_time_total * 1e3) if e.flops and e.self_cpu_time_total > 0 else None)
            pct = None if rate is None or not peak else 100 * rate / peak
            if pct is not None and pct > 100:
                over_peak.append(e.key)
            c += [human(e.flops) if e.flops else "", "" if rate is None else f"{rate:.2f}",
                  "" if pct is None else f"{pct:.1f}%", _fmt_bytes(e.bytes)]
        return c

    over_peak = []  # rows above the probe's peak: the table says why under it

    body = [cells(e) for e in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(headers)]
    widths = [w + 2 for w in widths]
    sep = "  ".join("-" * w for w in widths)

    def line(values):
        parts = []
        for i, v in enumerate(values):
            last = i == len(values) - 1 and with_shapes and headers[i] == "Input Shapes"
            parts.append(v.ljust(widths[i]) if i == 0 or last else v.rjust(widths[i]))
        return "  ".join(parts).rstrip()

    lines = []
    if header:
        lines += ["=" * len(sep), header]
    lines += [sep, line(headers), sep]
    lines += [line(r) for r in body]
    lines.append(sep)
    lines.append(f"Self CPU time total: {_fmt_time(sum(e.self_cpu_time_total for e in events))}")
    if peak:
        lines.append(f"% peak: of this machine's measured float32 FMA peak, {peak:.1f} GFLOP/s on "
                     f"{events._threads or 'the current number of'} thread(s) (pyengine's probe)")
        if over_peak:
            lines.append(f"Over 100% ({', '.join(over_peak)}): FLOPs are counted as PyTorch counts them, causal and "
                         "masked attention's hidden scores included (the kernels skip them; pyengine/profiler/_flops.py), "
                         "or the peak was probed while other work held the cores")
    return "\n".join(lines) + "\n"
