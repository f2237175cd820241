"""Launched by tests/test_distributed.py as ``mpiexec -n 2 python failures.py MODE``: each mode is one
way a job can go wrong, and in each the job must END (non-zero exit, the error printed), never hang.

    raise     rank 1 raises while rank 0 waits in an allreduce  -> the excepthook aborts the job
    run_main  the same inside dist.run_main(main)
    timeout   rank 1 is stuck (sleeps); rank 0's allreduce has timeout=2 s -> DistTimeoutError, abort
    mismatch  rank 1 builds a wider layer -> DistributedDataParallel names the parameter at wrap time
"""
import sys
import time

import numpy as np

import pyengine.distributed as dist
import pyengine.nn as nn


def wait_for_peer():
    buf = np.ones(4)
    if dist.get_rank() == 0:
        print("rank 0: waiting in allreduce", flush=True)
    dist.all_reduce(buf)  # rank 1 never gets here
    print("rank 0: allreduce returned (should not happen)", flush=True)


def raise_on_rank1():
    if dist.get_rank() == 1:
        raise ValueError("boom from rank 1")
    wait_for_peer()


def main(mode):
    if mode == "raise":
        dist.init()
        raise_on_rank1()
    elif mode == "run_main":
        dist.run_main(raise_on_rank1)
    elif mode == "timeout":
        dist.init(timeout=2.0)
        if dist.get_rank() == 1:
            time.sleep(60)
        wait_for_peer()
    elif mode == "mismatch":
        dist.init()
        width = 8 if dist.get_rank() == 0 else 9
        net = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 2))
        dist.DistributedDataParallel(net)
        dist.barrier()
        print("wrapped (should not happen)", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv[1])
