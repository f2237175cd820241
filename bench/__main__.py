"""python -m bench [suite ...] [--quick]: run benchmark suites and write bench/RESULTS.md + results.json.

Suites: peak, gemm, attention, kernels, overhead, ops, conv, train, distributed (default: all);
shakespeare_char and busy (a GPT step beside busy loops that load the machine on purpose) run only
when named. PyTorch's column appears when torch is installed. Numbers are only comparable within one run:
the machine's ceilings are measured at its start.
"""
import argparse
import importlib
import os
import sys

SUITES = ["gemm", "attention", "kernels", "overhead", "ops", "conv", "train", "distributed"]
EXTRA = ["shakespeare_char", "busy"]  # long, or loading the machine on purpose: run only when named


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("suites", nargs="*", help=f"any of: peak {' '.join(SUITES + EXTRA)} (default: all but {' and '.join(EXTRA)})")
    ap.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)), help="where RESULTS.md goes")
    ap.add_argument("--data", help="shakespeare_char: path to tinyshakespeare.txt (default ../shared/data/)")
    ap.add_argument("--steps", type=int, default=2000, help="shakespeare_char: iterations (default 2000)")
    ap.add_argument("--seeds", default="1337", help="shakespeare_char: comma-separated seeds, one run each (default 1337)")
    ap.add_argument("--busy-procs", type=int, help="busy: competing busy loops (default: cores - 1)")
    args = ap.parse_args(argv)
    wanted = args.suites or ["peak"] + SUITES
    unknown = [s for s in wanted if s not in SUITES + EXTRA + ["peak"]]
    if unknown:
        ap.error(f"unknown suite(s): {', '.join(unknown)}; choose from peak {' '.join(SUITES + EXTRA)}")

    from .common import Machine, Results
    machine = Machine()
    print("Machine:", machine.describe(), flush=True)
    res = Results(machine)
    print("| suite | case | threads | pyengine | NumPy | vs NumPy | PyTorch | vs PyTorch | pyengine achieved | notes |")
    for s in wanted:
        if s == "peak":
            continue
        if s == "shakespeare_char":
            from .suites.train import shakespeare_char
            shakespeare_char(res, data=args.data, steps=args.steps,
                             seeds=[int(x) for x in args.seeds.split(",")])
            continue
        if s == "busy":
            from .suites.busy import run as busy
            busy(res, quick=args.quick, busy_procs=args.busy_procs)
            continue
        importlib.import_module(f"bench.suites.{s}").run(res, quick=args.quick)
    path = res.write(args.out, wanted)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
