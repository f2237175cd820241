"""python -m bench.dataloader_workers [--quick]: what DataLoader worker processes cost and buy.

Batches of 64 images (3 x 32 x 32 float32, 768 KiB); three datasets:
- ``copy``: ``__getitem__`` copies a stored image (~1 us): the loader's own cost per batch; with workers,
  what moving a batch between processes costs (pickle, queue, unpickle).
- ``wait 1 ms``: ``__getitem__`` also waits 1 ms (a file or network read): workers overlap the waits.
- ``cpu 1 ms``: ``__getitem__`` also burns 1 ms of CPU (a busy loop, as decoding and augmenting a JPEG
  would): with W free cores, W workers approach W times the throughput. The run starts by measuring how
  many cores are free: two processes burning 0.5 s of CPU each, in parallel (1.0x: two free cores).
Workers are persistent and one epoch is run untimed first, so the rows are the steady state; the start of
fresh workers (fork) is timed apart. Each row: wall ms per batch (median epoch), and CPU ms per batch of the
main process and of the workers (from /proc): the CPU columns hold whatever else the machine runs, the
wall column does not. PyTorch's DataLoader on the same dataset beside it when torch is installed.
"""
import argparse
import multiprocessing
import os
import pickle
import statistics
import sys
import time

import numpy as np

import pyengine
from pyengine.utils.data import DataLoader, Dataset

try:
    import torch.utils.data as tud
except ImportError:  # pragma: no cover
    tud = None

BATCH, SHAPE = 64, (3, 32, 32)
TICK = os.sysconf("SC_CLK_TCK")


class Images(Dataset):
    """``n`` images; each ``__getitem__`` burns ``cpu_s`` seconds of CPU or sleeps ``wait_s``, then copies
    an image."""

    def __init__(self, n, cpu_s=0.0, wait_s=0.0):
        self.images = np.random.default_rng(0).standard_normal((n,) + SHAPE).astype(np.float32)
        self.cpu_s, self.wait_s = cpu_s, wait_s

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        _burn(self.cpu_s)
        if self.wait_s:
            time.sleep(self.wait_s)
        return self.images[i].copy(), i


def _burn(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def free_cores_check():
    """Wall seconds of two processes burning 0.5 s of CPU each, over 0.5 s (1.0: two free cores)."""
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_burn, args=(0.5,)) for _ in range(2)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return (time.perf_counter() - t0) / 0.5


def _children_cpu():
    """CPU seconds (user + system) of this process's live children, the workers, from the kernel's
    per-thread child lists."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/children") as f:
            pids = f.read().split()
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    utime, stime = f.read().rsplit(")", 1)[1].split()[11:13]
            except OSError:  # exited meanwhile
                continue
            total += int(utime) + int(stime)
    return total / TICK


def steady_state(loader, runs):
    """Per-batch seconds over ``runs`` epochs, after one untimed: the median epoch's wall time, and the
    main process's and the workers' CPU time over all the epochs (/proc counts in 10 ms ticks)."""
    n = sum(1 for _ in loader)
    wall = []
    c0, w0 = time.process_time(), _children_cpu()
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in loader:
            pass
        wall.append(time.perf_counter() - t0)
    cpu, workers = time.process_time() - c0, _children_cpu() - w0
    return n, (statistics.median(wall) / n, cpu / (n * runs), workers / (n * runs))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["copy", "wait", "cpu"], help="one dataset")
    args = ap.parse_args(argv)
    runs = 3 if args.quick else 5
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cpus} CPUs, load average {os.getloadavg()[0]:.2f}, two CPU-bound processes take "
          f"{free_cores_check():.2f}x the time of one; batch {BATCH} x {'x'.join(map(str, SHAPE))} "
          f"float32; median of {runs} epochs; pyengine {pyengine.__version__}"
          + (f", torch {tud.__name__.split('.')[0]} {sys.modules['torch'].__version__}" if tud else ""))
    print("| dataset | batches | workers | pyengine ms/batch | main CPU | workers CPU | speed-up | "
          "PyTorch ms/batch | main CPU | workers CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    n = 64 * (8 if args.quick else 16)
    cases = [("copy", Images(64 * 100)), ("wait 1 ms", Images(n, wait_s=1e-3)), ("cpu 1 ms", Images(n, cpu_s=1e-3))]
    for name, ds in cases:
        if args.only and not name.startswith(args.only):
            continue
        base = None
        for workers in (0, 1, 2):
            kw = dict(batch_size=BATCH, num_workers=workers, persistent_workers=workers > 0)
            n, (wall, cpu, wcpu) = steady_state(DataLoader(ds, **kw), runs)
            base = base or wall
            theirs = "- | - | -"
            if tud is not None:
                _, (t, tc, tw) = steady_state(tud.DataLoader(ds, **kw), runs)
                theirs = f"{1e3 * t:.2f} | {1e3 * tc:.2f} | {1e3 * tw:.2f}"
            print(f"| {name} | {n} | {workers} | {1e3 * wall:.2f} | {1e3 * cpu:.2f} | {1e3 * wcpu:.2f} | "
                  f"{base / wall:.2f}x | {theirs} |", flush=True)
    starts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        next(iter(DataLoader(cases[0][1], batch_size=BATCH, num_workers=2)))
        starts.append(time.perf_counter() - t0)
    batch = next(iter(DataLoader(cases[0][1], batch_size=BATCH)))
    blob = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
    print(f"\nfirst batch from 2 fresh workers (fork, seed, first fetch): {1e3 * statistics.median(starts):.1f} ms; "
          f"pickle of one batch ({len(blob) / 2 ** 20:.2f} MiB): dumps {1e3 * _time(pickle.dumps, batch):.3f} ms "
          f"(worker), loads {1e3 * _time(pickle.loads, blob):.3f} ms (main process); "
          f"load average {os.getloadavg()[0]:.2f}, two CPU-bound processes {free_cores_check():.2f}x")
    return 0


def _time(fn, arg, n=50):
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn(arg)
        best = min(best, (time.perf_counter() - t0) / n)
    return best


if __name__ == "__main__":
    sys.exit(main())
