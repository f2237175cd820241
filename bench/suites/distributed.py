"""Data-parallel training on this machine: allreduce latency/bandwidth between 2 ranks, and GPT training
throughput with 1 process x 2 threads vs 2 processes x 1 thread at the same global batch.

The suite launches its own workers (this file, run as ``python -m bench.suites.distributed WORKER ...``)
under mpiexec and parses the JSON line each prints. docs/distributed.md fits its scaling model to these
numbers. Skipped (with a note) when mpi4py or mpiexec is missing: ``pip install .[distributed]``.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZES = [1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24, 1 << 26]  # 1 KB .. 64 MB
QUICK_SIZES = [1 << 10, 1 << 16, 1 << 20, 1 << 24]
GPT_SMALL = dict(n_layer=2, n_head=4, n_embd=128, block_size=64, vocab_size=65)


# --------------------------------------------------------------------------- workers (run under mpiexec)

def _emit(obj):
    print("BENCH " + json.dumps(obj), flush=True)


def _time_calls(g, fn, reps, samples=7):
    """Seconds per ``fn()`` over `samples` runs of `reps` calls (each the slowest rank's): (median, min).
    The min is what the transport can do; the median includes the noise of a shared machine."""
    out = []
    for _ in range(samples):
        g.barrier()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        dt = np.array([(time.perf_counter() - t0) / reps])
        g.allreduce(dt, "max")
        out.append(float(dt[0]))
    return statistics.median(out), min(out)


def worker_allreduce(sizes):
    """Three ways to allreduce the same buffer: raw MPI_Allreduce (the transport, for the alpha-beta fit),
    pyengine's all_reduce (the communication thread: what DDP uses), and MPI_Iallreduce + wait
    (progress="mpi")."""
    from mpi4py import MPI

    from pyengine.distributed.backend import MPIBackend
    g = MPIBackend(timeout=None, progress="thread")
    native = MPIBackend(timeout=None, progress="mpi")
    rows = []
    for nbytes in sizes:
        buf = np.ones(nbytes // 4, dtype=np.float32)
        reps = int(min(2000, max(3, 2e7 / max(nbytes, 1 << 12))))
        for _ in range(3):
            g.allreduce(buf)
            native.allreduce(buf)
        raw = _time_calls(g, lambda: native.comm.Allreduce(MPI.IN_PLACE, buf), reps)
        ours = _time_calls(g, lambda: g.allreduce(buf), reps)
        nb = _time_calls(g, lambda: native.allreduce(buf), reps)
        rows.append(dict(bytes=nbytes, reps=reps, raw_s=raw[0], raw_min_s=raw[1], thread_s=ours[0],
                         thread_min_s=ours[1], iallreduce_s=nb[0], iallreduce_min_s=nb[1]))
    if g.rank == 0:
        _emit(dict(world=g.world_size, rows=rows))


def worker_train(n_layer, n_head, n_embd, block_size, vocab_size, global_batch, threads, steps, bucket_cap_mb):
    import pyengine as pe
    import pyengine.distributed as dist
    from pyengine.models.gpt import GPT, GPTConfig
    g = dist.init()
    pe.set_num_threads(threads)
    rank, world = g.rank, g.world_size
    if global_batch % world:
        raise ValueError(f"global batch {global_batch} is not divisible by {world} ranks")
    local = global_batch // world
    cfg = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd)
    pe.manual_seed(0)
    model = dist.DistributedDataParallel(GPT(cfg), bucket_cap_mb=bucket_cap_mb)
    opt = pe.optim.AdamW(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(rank)
    warm = 2
    tokens = rng.integers(0, vocab_size, size=(warm + steps, local, block_size + 1), dtype=np.int64)

    def step(i):
        opt.zero_grad()
        _, loss = model(pe.tensor(tokens[i, :, :-1]), pe.tensor(tokens[i, :, 1:]))
        loss.backward()
        opt.step()
        return model.last_sync_s

    for i in range(warm):
        step(i)
    g.barrier()
    times, sync = np.zeros(steps), np.zeros(steps)
    for i in range(steps):
        t0 = time.perf_counter()
        sync[i] = step(warm + i)
        times[i] = time.perf_counter() - t0
    g.allreduce(times, "max")  # a step takes as long as its slowest rank
    if rank == 0:
        n_params = sum(p.numel() for p in model.parameters())
        step_s = float(np.median(times))
        _emit(dict(world=world, threads=threads, step_s=step_s, sync_s=float(np.median(sync)),
                   tokens_per_s=global_batch * block_size / step_s, params=int(n_params),
                   grad_bytes=int(sum(p._data.nbytes for p in model.parameters())),
                   buckets=len(model.bucket_sizes)))


# --------------------------------------------------------------------------- launching

def _mpiexec():
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.access(here, os.X_OK) else shutil.which("mpiexec")


def _launch(args, n, threads, timeout=600):
    """Run a worker on n ranks (n == 1: a plain process, no launcher) and return its BENCH JSON."""
    cmd = [sys.executable, "-m", "bench.suites.distributed"] + [str(a) for a in args]
    if n > 1:
        mpi = [_mpiexec(), "-n", str(n), "--oversubscribe"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            mpi.append("--allow-run-as-root")
        cmd = mpi + cmd
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    for line in p.stdout.splitlines():
        if line.startswith("BENCH "):
            return json.loads(line[6:])
    raise RuntimeError(f"{' '.join(cmd)} failed (exit {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")


def fit_alpha_beta(rows, world=2):
    """Fit t = 2(N-1) alpha + 2(N-1)/N bytes / beta to the fastest measured allreduce times, minimising the
    relative error.

    Returns (alpha seconds, beta bytes/s)."""
    b = np.array([r["bytes"] for r in rows], dtype=np.float64)
    t = np.array([r["raw_min_s"] for r in rows], dtype=np.float64)
    A = np.stack([np.full_like(b, 2 * (world - 1)), 2 * (world - 1) / world * b], axis=1) / t[:, None]
    (alpha, inv_beta), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    return float(alpha), float(1.0 / inv_beta)


def allreduce_time(nbytes, n, alpha, beta, bucket_bytes=4 << 20):
    """Ring allreduce of ``nbytes`` in buckets of ``bucket_bytes`` over n ranks (Patarasuk & Yuan 2009):
    each bucket costs 2(n-1) steps of latency alpha, and every rank sends and receives 2(n-1)/n of the data."""
    if n == 1:
        return 0.0
    buckets = max(1, -(-nbytes // bucket_bytes))
    return buckets * 2 * (n - 1) * alpha + 2 * (n - 1) / n * nbytes / beta


def scaling_table(t_compute, grad_bytes, alpha, beta, ns=(1, 2, 4, 8, 16, 32, 64), backward_fraction=2 / 3):
    """Predicted step time and efficiency of data parallelism on n machines for a model whose step takes
    ``t_compute`` seconds on one machine at the per-machine batch (weak scaling: the per-machine batch is
    fixed, the global batch grows with n). ``serial``: communication after the whole backward (pyengine
    today); ``overlap``: communication hidden behind the backward pass up to its length."""
    rows = []
    for n in ns:
        t_ar = allreduce_time(grad_bytes, n, alpha, beta)
        serial = t_compute + t_ar
        overlap = t_compute + max(0.0, t_ar - backward_fraction * t_compute)
        rows.append(dict(n=n, allreduce_s=t_ar, step_serial_s=serial, eff_serial=t_compute / serial,
                         step_overlap_s=overlap, eff_overlap=t_compute / overlap))
    return rows


def _fmt_bytes(n):
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} KB"


def run(res, quick=False):
    try:
        import mpi4py  # noqa: F401 - only whether it imports
    except ImportError:
        res.notes.append("distributed: skipped, mpi4py is not installed (pip install .[distributed])")
        return
    if _mpiexec() is None:
        res.notes.append("distributed: skipped, no mpiexec next to the interpreter or on PATH")
        return

    # (a) allreduce between 2 ranks on this machine
    out = _launch(["allreduce"] + (QUICK_SIZES if quick else SIZES), n=2, threads=1)
    for r in out["rows"]:
        res.add("distributed", f"all_reduce {_fmt_bytes(r['bytes'])} float32, 2 ranks", 1, r["thread_s"],
                kind="memory", work=r["bytes"],  # bus bytes 2(N-1)/N * size = size for N = 2
                extra=f"median (min {r['thread_min_s'] * 1e6:.1f} us); raw MPI_Allreduce {r['raw_s'] * 1e6:.1f} us "
                      f"(min {r['raw_min_s'] * 1e6:.1f}); MPI_Iallreduce+wait {r['iallreduce_s'] * 1e6:.1f} us "
                      f"(min {r['iallreduce_min_s'] * 1e6:.1f})")
    alpha, beta = fit_alpha_beta(out["rows"])
    res.notes.append(f"distributed: ring-allreduce fit on 2 local ranks: latency alpha = {alpha * 1e6:.2f} us per "
                     f"step, bandwidth beta = {beta / 1e9:.2f} GB/s (t = 2(N-1) alpha + 2(N-1)/N bytes / beta)")

    # (b) GPT training throughput: 1 process x 2 threads vs 2 processes x 1 thread, same global batch;
    # 1 process x 1 thread is the baseline both should beat
    c = GPT_SMALL
    gb = 16
    steps, rounds = (5, 1) if quick else (15, 3)
    common = [c["n_layer"], c["n_head"], c["n_embd"], c["block_size"], c["vocab_size"], gb]
    configs = {"1 proc x 1 thread": (1, 1), "1 proc x 2 threads": (1, 2), "2 procs x 1 thread (DDP)": (2, 1)}
    runs = {k: [] for k in configs}
    for _ in range(rounds):  # interleaved rounds; the best of each is the least disturbed by other load
        for k, (n, t) in configs.items():
            runs[k].append(_launch(["train"] + common + [t, steps, 4], n=n, threads=t))
    best = {k: min(v, key=lambda r: r["step_s"]) for k, v in runs.items()}
    base = best["1 proc x 1 thread"]["tokens_per_s"]
    one = best["1 proc x 2 threads"]["tokens_per_s"]
    name = (f"GPT {c['n_layer']}x{c['n_embd']} ({best['1 proc x 1 thread']['params'] / 1e6:.2f}M params) train step, "
            f"batch {gb}x{c['block_size']}, ")
    for k, (n, t) in configs.items():
        r = best[k]
        spread = "/".join(f"{x['step_s'] * 1e3:.0f}" for x in runs[k])
        extra = (f"{r['tokens_per_s']:.0f} tokens/s = {r['tokens_per_s'] / base:.2f}x of 1x1, "
                 f"{r['tokens_per_s'] / one:.2f}x of 1x2; best of {len(runs[k])} runs ({spread} ms)")
        if n > 1:
            extra += f"; gradient sync {r['sync_s'] * 1e3:.2f} ms/step in {r['buckets']} bucket(s)"
        res.add("distributed", name + k, n * t, r["step_s"], extra=extra)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    res.notes.append(f"distributed: load average {load:.1f} on {os.cpu_count()} CPUs when the training rows ran; "
                     "other processes on the cores distort the 2-thread and 2-process rows most")

    # (c) compute time per step of the configurations docs/distributed.md models (1 process, 1 thread)
    if not quick:
        for (L, H, C, T, B) in [(4, 4, 128, 64, 16), (6, 6, 384, 256, 8)]:
            r = _launch(["train", L, H, C, T, 65, B, 1, 3, 4], n=1, threads=1)
            res.add("distributed", f"GPT {L}x{C} ({r['params'] / 1e6:.2f}M params) train step, batch {B}x{T}, "
                    "1 proc x 1 thread", 1, r["step_s"],
                    extra=f"{r['tokens_per_s']:.0f} tokens/s; {r['grad_bytes'] / 2**20:.1f} MiB of gradients")


def _main(argv):
    kind = argv[0]
    if kind == "allreduce":
        worker_allreduce([int(a) for a in argv[1:]])
    elif kind == "train":
        a = argv[1:]
        worker_train(*(int(x) for x in a[:8]), bucket_cap_mb=float(a[8]))
    elif kind == "model":  # model ALPHA_US BETA_GBS T_COMPUTE_MS GRAD_MIB: a markdown table for the docs
        alpha, beta, tc, gb = (float(x) for x in argv[1:5])
        print("| N | allreduce | step (serial) | efficiency | step (overlapped) | efficiency |")
        print("|---|---|---|---|---|---|")
        for r in scaling_table(tc * 1e-3, int(gb * 2**20), alpha * 1e-6, beta * 1e9):
            print(f"| {r['n']} | {r['allreduce_s'] * 1e3:.2f} ms | {r['step_serial_s'] * 1e3:.1f} ms | "
                  f"{100 * r['eff_serial']:.0f}% | {r['step_overlap_s'] * 1e3:.1f} ms | "
                  f"{100 * r['eff_overlap']:.0f}% |")
    else:
        raise SystemExit(f"unknown worker {kind}")


if __name__ == "__main__":
    import pyengine.distributed as _dist
    _dist.run_main(_main, sys.argv[1:])
