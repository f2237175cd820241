"""Shared benchmark machinery: timing, machine description, ceilings, the results table and files.

Each case: a correctness check of pyengine's result against the reference first, then a warm-up, then
repeated timings with fresh inputs drawn before the clock starts; we report the median and the min.
All libraries run with the same thread count.
"""
import datetime
import json
import os
import platform
import statistics
import time

import numpy as np

# The OpenMP wait policy of this process: libgomp reads it once, when the first library that needs it loads.
# PyTorch loads first here, so pyengine's own default (GOMP_SPINCOUNT=3000, a brief spin, set when pyengine
# loads first, as in `pyengine train`) does not apply; both engines share one libgomp and one policy.
OMP_POLICY = os.environ.get("OMP_WAIT_POLICY") or (
    f"GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']}" if "GOMP_SPINCOUNT" in os.environ else None)

try:  # PyTorch is optional: its column appears only when it is installed
    import torch
except ImportError:  # pragma: no cover
    torch = None

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None


def _cpuinfo(path="/proc/cpuinfo"):
    """The first processor's fields from /proc/cpuinfo (Linux); {} elsewhere."""
    info = {}
    try:
        with open(path) as f:
            for line in f:
                if not line.strip():
                    break  # end of the first processor's block
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


# Intel server parts by (family, model), for the machine line: the model name string of a VM often says
# only "Intel(R) Xeon(R) Processor". Source: Intel's CPUID model numbers (SDM vol. 4, table 2-1).
_INTEL_CODENAMES = {(6, 85): "Skylake-SP/Cascade Lake", (6, 106): "Ice Lake-SP", (6, 143): "Sapphire Rapids",
                    (6, 207): "Emerald Rapids", (6, 173): "Granite Rapids", (6, 175): "Sierra Forest"}
# AMD's EPYC server parts by (family, model): Zen 3 Milan, Zen 4 Genoa / Bergamo, Zen 5 Turin.
_AMD_CODENAMES = {(25, 1): "Zen 3, Milan", (25, 17): "Zen 4, Genoa", (25, 160): "Zen 4c, Bergamo",
                  (26, 2): "Zen 5, Turin", (26, 17): "Zen 5, Turin"}
# The ISA extensions that decide which kernels can run (the kernels dispatch on them at run time).
_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
              "amx_int8")


def cpu_model(info=None):
    """The CPU's name, with family/model and Intel's code name where known."""
    info = _cpuinfo() if info is None else info
    name = info.get("model name") or platform.processor() or platform.machine()
    try:
        key = (int(info.get("cpu family", "")), int(info.get("model", "")))
    except ValueError:
        return name
    vendor = info.get("vendor_id", "") + name
    codename = (_INTEL_CODENAMES.get(key) if "Intel" in vendor else
                _AMD_CODENAMES.get(key) if "AMD" in vendor else None)
    return f"{name} (family {key[0]} model {key[1]}{', ' + codename if codename else ''})"


def cpu_isa_flags(info=None):
    """Which of _ISA_FLAGS the CPU and OS report (Linux lists AMX only when the kernel enables its state)."""
    info = _cpuinfo() if info is None else info
    flags = set(info.get("flags", "").split())
    return [f for f in _ISA_FLAGS if f in flags]


class Threads:
    """Set the same thread count for pyengine, NumPy's BLAS and PyTorch inside a ``with`` block."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        import pyengine as pe
        self.prev = pe.get_num_threads()
        pe.set_num_threads(self.n)
        self.blas = threadpool_limits(self.n) if threadpool_limits else None
        if torch is not None:
            self.prev_torch = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        import pyengine as pe
        pe.set_num_threads(self.prev)
        if self.blas is not None:
            self.blas.unregister() if hasattr(self.blas, "unregister") else self.blas.__exit__(None, None, None)
        if torch is not None:
            torch.set_num_threads(self.prev_torch)


def timeit(fn, setup=None, repeat=7, min_time=0.05, warmup=1):
    """Median and min seconds of ``fn(*setup())``; ``setup`` (untimed) makes fresh inputs."""
    args = setup() if setup else ()
    for _ in range(warmup):
        fn(*args)
    # find an inner loop count so that one sample takes >= min_time
    n = 1
    while True:
        args = setup() if setup else ()
        t0 = time.perf_counter()
        for _ in range(n):
            fn(*args)
        dt = time.perf_counter() - t0
        if dt >= min_time or n >= 1 << 16:
            break
        n *= 2 if dt == 0 else max(2, int(min_time / max(dt, 1e-9)))
    samples = []
    for _ in range(repeat):
        args = setup() if setup else ()
        t0 = time.perf_counter()
        for _ in range(n):
            fn(*args)
        samples.append((time.perf_counter() - t0) / n)
    return statistics.median(samples), min(samples)


def _loop_count(fn, min_time):
    """How many calls of ``fn`` make a sample of at least ``min_time`` seconds."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t0
        if dt >= min_time or n >= 1 << 16:
            return n
        n *= 2 if dt == 0 else max(2, int(min_time / max(dt, 1e-9)))


# Pause before each block of calls when several threads run: an engine's idle workers may still spin on the cores
# after its block (OpenBLAS's for ~0.1 s), and the block that follows would run short of a core. 2026-12-06, 2
# threads, 1024^3 GEMM: the same pyengine call read 14.5 ms right after NumPy's block and 9.6 ms after its own;
# with this pause 9.7 and 10.2 ms.
SETTLE_S = 0.15


def alternating_rounds(fns, counts, rounds, indexed=False):
    """Median seconds per call of each of ``fns`` over ``rounds`` rounds; in each round every function runs
    ``counts[i]`` calls back to back, the order reversed every other round (first..last, then last..first).
    ``indexed``: call f(k) with a running call index k (a training step picking its batch), else f().
    Alternating matters on a machine whose speed drifts (other tenants, frequency): back-to-back blocks of
    samples once put two engines in different moments and moved their ratio by up to 2x on the shared VM.
    With more than one thread each block starts after a pause of SETTLE_S (see there)."""
    samples = [[] for _ in fns]
    import pyengine as pe
    settle = SETTLE_S if len(fns) > 1 and pe.get_num_threads() > 1 else 0.0
    for r in range(rounds):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            f, n = fns[i], counts[i]
            time.sleep(settle)
            t0 = time.perf_counter()
            if indexed:
                for k in range(r * n, (r + 1) * n):
                    f(k)
            else:
                for _ in range(n):
                    f()
            samples[i].append((time.perf_counter() - t0) / n)
    return [statistics.median(s) for s in samples]


def timeit_pair(ours, theirs, repeat=7, min_time=0.05, warmup=1):
    """Median seconds per call of ``ours`` and of ``theirs`` (None: ours alone), sampled in alternating
    rounds (alternating_rounds), each sample at least ``min_time`` seconds of calls."""
    fns = [f for f in (ours, theirs) if f is not None]
    for f in fns:
        for _ in range(warmup):
            f()
    meds = alternating_rounds(fns, [_loop_count(f, min_time) for f in fns], repeat)
    return meds[0], (meds[1] if theirs is not None else None)


class Machine:
    """This machine's ceilings, measured once per run: peak FMA GFLOP/s and triad GB/s."""

    def __init__(self):
        from pyengine import _C
        self.cpu = cpu_model()
        self.isa = _C.isa()
        self.isa_flags = cpu_isa_flags()
        self.peak_gflops = {t: _C.probe_peak_gflops(t) for t in (1, 2)}
        self.bandwidth_gbs = {t: _C.probe_bandwidth_gbs(t) for t in (1, 2)}
        # a cache line between two cores: ~60 ns on one die, 300+ across dies (a VM's vCPUs move between them)
        self.roundtrip_ns = self.roundtrip()
        self.roundtrip_end_ns = None  # read again when the results are written: the host may have moved them

    @staticmethod
    def roundtrip():
        """The core-to-core round trip now, ns: the median of 3 probes."""
        from pyengine import _C
        return sorted(_C.probe_roundtrip_ns(100000) for _ in range(3))[1]

    def reprobe_roundtrip(self):
        self.roundtrip_end_ns = self.roundtrip()

    def describe(self):
        return (f"{self.cpu}, {os.cpu_count()} logical CPUs; kernels use SIMD {self.isa}; CPU reports "
                f"{' '.join(self.isa_flags) or 'none of ' + '/'.join(_ISA_FLAGS)}; measured peak "
                f"{self.peak_gflops[1]:.0f} GFLOP/s (1 thread) / {self.peak_gflops[2]:.0f} (2 threads) float32 FMA; "
                f"memory {self.bandwidth_gbs[1]:.1f} GB/s (1 thread) / {self.bandwidth_gbs[2]:.1f} (2) STREAM triad; "
                f"core-to-core round trip {self.roundtrip_ns:.0f} ns at the start"
                f"{'' if self.roundtrip_end_ns is None else f', {self.roundtrip_end_ns:.0f} ns at the end'}; "
                f"OpenMP wait policy {self.omp_policy()}")

    @staticmethod
    def omp_policy():
        if OMP_POLICY is not None:
            return OMP_POLICY + " (from the environment)"
        if torch is not None:
            return ("libgomp's default, spin then sleep (PyTorch loaded first; pyengine alone defaults to a brief "
                    "spin, GOMP_SPINCOUNT=3000)")
        if os.environ.get("PYENGINE_OMP_DEFAULTS") == "0":
            return "libgomp's default, spin then sleep (PYENGINE_OMP_DEFAULTS=0)"
        return "GOMP_SPINCOUNT=3000, a brief spin (pyengine's default)"


class Results:
    """Collects rows from every suite, prints them, writes bench/RESULTS.md and bench/results.json."""

    def __init__(self, machine):
        self.machine = machine
        self.rows = []  # dicts
        self.notes = []

    def add(self, suite, case, threads, ours, numpy=None, torch_=None, unit="ms", ceiling=None, work=None,
            kind="compute", extra=""):
        """ours/numpy/torch_: seconds (median). ceiling: fraction-of-peak basis, 'flops' or 'bytes' with work."""
        row = dict(suite=suite, case=case, threads=threads, ours_s=ours, numpy_s=numpy, torch_s=torch_,
                   kind=kind, work=work, extra=extra)
        if work is not None and ours:
            if kind == "compute":
                row["achieved"] = work / ours / 1e9
                row["fraction"] = row["achieved"] / self.machine.peak_gflops.get(threads, self.machine.peak_gflops[2])
            else:
                row["achieved"] = work / ours / 1e9
                row["fraction"] = row["achieved"] / self.machine.bandwidth_gbs.get(threads,
                                                                                  self.machine.bandwidth_gbs[2])
        self.rows.append(row)
        print(self._fmt(row), flush=True)

    @staticmethod
    def _ms(s):
        return "-" if s is None else (f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms")

    def _fmt(self, r):
        ratio = lambda ref: "-" if (ref is None or not r["ours_s"]) else f"{ref / r['ours_s']:.2f}x"  # noqa: E731
        ach = ""
        if "achieved" in r:
            unit = "GFLOP/s" if r["kind"] == "compute" else "GB/s"
            ach = f"{r['achieved']:.1f} {unit} ({100 * r['fraction']:.0f}% of peak)"
        return (f"| {r['suite']} | {r['case']} | {r['threads']} | {self._ms(r['ours_s'])} | {self._ms(r['numpy_s'])} "
                f"| {ratio(r['numpy_s'])} | {self._ms(r['torch_s'])} | {ratio(r['torch_s'])} | {ach} | {r['extra']} |")

    def write(self, directory, suites):
        import pyengine
        self.machine.reprobe_roundtrip()
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        versions = f"pyengine {pyengine.__version__}, NumPy {np.__version__}" + (
            f", PyTorch {torch.__version__}" if torch is not None else ", PyTorch not installed")
        lines = [
            "# pyengine benchmark results", "",
            f"Run: {now}. Suites: {', '.join(suites)}.", "",
            f"Machine: {self.machine.describe()}.", "",
            f"Versions: {versions}.", "",
            "Times are medians of repeated runs (fresh inputs, warm-up first, correctness checked before "
            "timing); `x` columns are speed-ups of pyengine over the reference (>1 = pyengine faster), "
            "measured in the same process with the same thread count.", "",
            "| suite | case | threads | pyengine | NumPy | vs NumPy | PyTorch | vs PyTorch | pyengine achieved | notes |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [self._fmt(r) for r in self.rows]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "RESULTS.md")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(directory, "results.json"), "w") as f:
            json.dump({"date": now, "machine": self.machine.describe(), "versions": versions,
                       "rows": self.rows, "notes": self.notes}, f, indent=1)
        return path


def check_close(name, ours, ref, rtol, atol):
    """Correctness gate before timing: a benchmark of a wrong result is worthless."""
    ours, ref = np.asarray(ours, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if not np.allclose(ours, ref, rtol=rtol, atol=atol):
        err = np.max(np.abs(ours - ref))
        raise AssertionError(f"{name}: pyengine's result differs from the reference (max abs err {err:.3g})")
