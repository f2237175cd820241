"""Reading PE_GEMM_TRACE files (csrc/cpu/gemm_trace.h): one line per thread per traced call, calls in order.
Used by dev/gemm_trace.py and dev/conv_s2_trace.py."""
import statistics


def traced_rows(path, run, calls, plan=None):
    """run() once (warm-up, its lines discarded), then `calls` times with the trace file at `path` emptied
    first: the lines written, split into fields (only those of `plan` when given)."""
    run()
    open(path, "w").close()
    for _ in range(calls):
        run()
    return [line.split() for line in open(path) if plan is None or line.startswith(plan)]


def per_thread(rows):
    """rows: the file's lines split into fields. Returns {tid: [one list per call: start, end, cpu (ms), the
    six phases' wall time, their CPU time (ms), units]}."""
    per_tid = {}
    for r in rows:
        per_tid.setdefault(int(r[5]), []).append([float(x) / 1e3 for x in r[6:21]] + [int(r[21])])
    return per_tid


def call_times(per_tid):
    """Medians over the calls: the call's wall time (its last thread's end, ms) and the micro-kernels' CPU time
    summed over the threads (ms)."""
    n = min(len(v) for v in per_tid.values())
    wall = statistics.median(max(per_tid[t][c][1] for t in per_tid) for c in range(n))
    kernel = statistics.median(sum(per_tid[t][c][11] for t in per_tid) for c in range(n))
    return wall, kernel


def thread_medians(calls):
    """One thread's 16 fields, each the median over its calls."""
    return [statistics.median(r[i] for r in calls) for i in range(16)]


def summary(rows, flops):
    """The traced calls' medians: wall ms, GFLOP/s by wall clock, GFLOP per CPU-second of the micro-kernels
    (all threads' kernel time), and each thread's 16 fields (thread_medians), by thread id."""
    per_tid = per_thread(rows)
    wall, kernel = call_times(per_tid)
    return wall, flops / wall / 1e6, flops / kernel / 1e6, {t: thread_medians(per_tid[t]) for t in sorted(per_tid)}

