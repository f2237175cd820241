"""Reading PE_GEMM_TRACE files (csrc/cpu/gemm_trace.h): one line per thread per traced call, calls in order.
Used by dev/gemm_trace.py and dev/conv_s2_trace.py."""
import statistics


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
