"""bench ops' single-op and per-op rows only (no RESULTS.md written): PYTHONPATH=. python dev/ops_rows.py [threads]"""
import sys

from bench.suites import ops


class R:
    def add(self, suite, case, threads, ours, numpy=None, torch_=None, extra="", **kw):
        r = f"{torch_ / ours:5.2f}x" if torch_ else ""
        print(f"{case:58s} t{threads} pe {ours * 1e3:8.3f} ms  torch {torch_ * 1e3 if torch_ else 0:8.3f} ms {r}", flush=True)


threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
what = sys.argv[2] if len(sys.argv) > 2 else "single,overhead"
if "overhead" in what:
    ops.per_op_overhead(R())
if "single" in what:
    ops.single_ops(R(), threads, quick=True)
if "gpt" in what:
    ops.gpt_op_by_op(R(), threads, quick=True)
