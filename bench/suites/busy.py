"""A training step on a busy machine (``python -m bench busy``; runs only when named, since it loads the
machine on purpose): the GPT step at the shakespeare_char shape (4 layers, 4 heads, 128 wide, T64, B12, AdamW)
on 2 threads, alone and beside competing processes (pure busy loops at normal priority, one per core minus
one by default: ``--busy-procs N``), for pyengine (its thread count adapted to the free cores, and with the
adaptation off) and for its PyTorch twin (bench/torch_gpt.py).

Each engine runs in its own worker process, started once, warmed up, then driven round by round from here (``run N``
on its stdin, seconds per step back), so each keeps its own defaults: pyengine is imported first in its worker (its
default GOMP_SPINCOUNT=3000, a brief spin, as in ``pyengine train``), PyTorch runs with its own libgomp's default
policy. Only one worker runs at a time; the others wait on a read. Rounds alternate the conditions (alone, busy) and
the engines' order, and the competitors are started and killed in every round, so that a drifting machine moves both
sides of each ratio alike. Reported: the median step of each engine and condition, the slowdown (busy / alone, of
the medians) and the range of the per-round slowdowns.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

SHAPE = dict(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False, gelu="none")
B, T = 12, 64
BUSY_LOOP = "while True: pass"


def _batches(batch, block, vocab):
    rng = np.random.default_rng(0)
    return [(rng.integers(0, vocab, (batch, block)), rng.integers(0, vocab, (batch, block))) for _ in range(4)]


def _spec(spec):
    """(GPT config dict, batch size, block length) of a worker: the default shape, or `spec` (JSON, as
    `Worker(shape=...)` passes it: {"config": {...}, "batch": B, "block": T})."""
    if spec is None:
        return SHAPE, B, T
    d = json.loads(spec)
    return d["config"], int(d["batch"]), int(d["block"])


# ------------------------------------------------------------------ workers (separate processes)

def _worker_pyengine(threads, state_path, spec=None):
    import pyengine as pe  # first: pyengine's OpenMP defaults apply, as in `pyengine train`
    from pyengine import _C, lm
    from pyengine.models.gpt import GPT, GPTConfig
    config, batch, block = _spec(spec)
    pe.set_num_threads(threads)
    pe.manual_seed(0)
    model = GPT(GPTConfig(**config))
    np.savez(state_path, **{k: v.numpy() for k, v in model.state_dict().items()})
    opt = lm.make_optimizer(model, 1e-3, 0.1)
    data = [(pe.tensor(x), pe.tensor(y)) for x, y in _batches(batch, block, config["vocab_size"])]
    used = []

    def step(i):
        _, loss = model(*data[i % 4])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        used.append(_C.usable_threads())
        return loss.item()

    def command(cmd, arg):
        if cmd == "adapt":
            _C.set_adapt_threads(bool(int(arg)))
            return "ok"
        if cmd == "used":  # mean thread count the kernels were allowed since the last query
            out = f"{statistics.mean(used):.2f}" if used else "nan"
            used.clear()
            return out
        return None

    _serve(step, command)


def _worker_torch(threads, state_path, spec=None):
    import types

    import torch

    from bench.torch_gpt import TorchGPT, load_pyengine_state, make_optimizer
    config, batch, block = _spec(spec)
    torch.set_num_threads(threads)
    model = TorchGPT(types.SimpleNamespace(**config))
    with np.load(state_path) as z:
        load_pyengine_state(model, {k: torch.from_numpy(z[k]) for k in z.files})
    opt = make_optimizer(model, 1e-3, 0.1)
    data = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in _batches(batch, block, config["vocab_size"])]

    def step(i):
        _, loss = model(*data[i % 4])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    _serve(step, lambda cmd, arg: None)


def _serve(step, command):
    """The worker's loop: `loss` (first batch's loss before any update), `run N`, `quit`, or `command`'s own."""
    first = [None]
    out = sys.stdout
    sys.stdout = sys.stderr  # anything else printed must not break the protocol
    i = 0
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "quit":
            break
        if cmd == "loss":
            if first[0] is None:
                first[0] = step(i)
                i += 1
            reply = repr(first[0])
        elif cmd == "run":
            n = int(arg)
            t0 = time.perf_counter()
            for _ in range(n):
                step(i)
                i += 1
            reply = repr((time.perf_counter() - t0) / n)
        else:
            reply = command(cmd, arg)
            if reply is None:
                reply = f"error unknown command {cmd!r}"
        out.write(reply + "\n")
        out.flush()


# ------------------------------------------------------------------ driver

class Worker:
    """One engine's GPT step in a process of its own (``shape``: {"config": GPTConfig fields, "batch": B,
    "block": T}; default: this suite's shape). Also used by the train suite to time each engine alone."""

    def __init__(self, engine, threads, state_path, spin=False, shape=None):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = {k: v for k, v in os.environ.items() if not (spin and k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"))}
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        if spin:  # libgomp's default policy (spin, then sleep), as after `import torch; import pyengine`
            env["PYENGINE_OMP_DEFAULTS"] = "0"
        spec = [] if shape is None else [json.dumps(shape)]
        self.p = subprocess.Popen([sys.executable, "-m", "bench.suites.busy", "--worker", engine, str(threads),
                                   state_path] + spec, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env=env, cwd=root)

    def ask(self, msg):
        self.p.stdin.write(msg + "\n")
        self.p.stdin.flush()
        reply = self.p.stdout.readline().strip()
        if not reply or reply.startswith("error"):
            raise RuntimeError(f"busy bench worker: {msg!r} -> {reply!r} (exit code {self.p.poll()})")
        return reply

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
            self.p.wait(timeout=30)
        except Exception:  # pragma: no cover - a worker that died already
            self.p.kill()


class Competitors:
    """``n`` pure busy loops (Python, normal priority) inside a ``with`` block."""

    def __init__(self, n, settle=0.3):
        self.n, self.settle, self.procs = n, settle, []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(self.n)]
        time.sleep(self.settle)  # they are running (and pyengine's load sample has seen them)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []


def measure(threads=2, rounds=5, steps=10, busy_procs=None, with_torch=True, with_spin=True, log=print):
    """Per case: {'alone': [s/step per round], 'busy': [...], 'used': {'alone': [...], 'busy': [...]}}
    (used: the mean thread count pyengine's kernels were allowed), and the number of busy loops."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    busy_procs = max(1, cores - 1) if busy_procs is None else busy_procs
    state = os.path.join(tempfile.mkdtemp(prefix="pyengine-busy-"), "gpt.npz")
    workers = [Worker("pyengine", threads, state)]
    try:
        loss_pe = float(workers[0].ask("loss"))  # also wrote the weights the others load
        cases = [("pyengine", workers[0], "1"), ("pyengine, adaptation off", workers[0], "0")]
        if with_spin:
            workers.append(Worker("pyengine", threads, state, spin=True))
            cases += [("pyengine, spinning workers", workers[-1], "1"),
                      ("pyengine, spinning workers, adaptation off", workers[-1], "0")]
        if with_torch:
            workers.append(Worker("torch", threads, state))
            cases.append(("PyTorch", workers[-1], None))
        for w in workers[1:]:
            loss = float(w.ask("loss"))
            if abs(loss_pe - loss) > 1e-4:
                raise AssertionError(f"GPT twin mismatch: pyengine loss {loss_pe} vs {loss}")
        for _, w, adapt in cases:  # warm-up
            if adapt is not None:
                w.ask(f"adapt {adapt}")
                w.ask("run 3")
                w.ask("used")
            else:
                w.ask("run 3")
        res = {name: {"alone": [], "busy": [], "used": {"alone": [], "busy": []}} for name, _, _ in cases}
        for r in range(rounds):
            for cond in (["alone", "busy"] if r % 2 == 0 else ["busy", "alone"]):
                with Competitors(busy_procs if cond == "busy" else 0):
                    for name, w, adapt in (cases if r % 2 == 0 else cases[::-1]):
                        if adapt is not None:
                            w.ask(f"adapt {adapt}")
                        res[name][cond].append(float(w.ask(f"run {steps}")))
                        if adapt is not None:
                            res[name]["used"][cond].append(float(w.ask("used")))
            log(f"  round {r + 1}/{rounds}, alone / busy ms: " + "; ".join(
                f"{n} {1e3 * v['alone'][-1]:.0f} / {1e3 * v['busy'][-1]:.0f}" for n, v in res.items()))
    finally:
        for w in workers:
            w.close()
    return res, busy_procs


def summarize(times):
    """(median alone, median busy, slowdown of the medians, (min, max) of the per-round slowdowns)."""
    a, b = statistics.median(times["alone"]), statistics.median(times["busy"])
    per_round = [y / x for x, y in zip(times["alone"], times["busy"])]
    return a, b, b / a, (min(per_round), max(per_round))


def run(res, quick=False, busy_procs=None, threads=2):
    from ..common import torch
    rounds, steps = (3, 5) if quick else (5, 10)
    times, n = measure(threads=threads, rounds=rounds, steps=steps, busy_procs=busy_procs,
                       with_torch=torch is not None)
    th = times.get("PyTorch")
    t_busy = statistics.median(th["busy"]) if th else None
    for name, v in times.items():
        if name == "PyTorch":
            continue
        a, b, ratio, (lo, hi) = summarize(v)
        used = v["used"]
        extra = (f"{n} busy loop(s); alone {1e3 * a:.1f} ms -> busy {1e3 * b:.1f} ms: slowdown {ratio:.2f}x "
                 f"(rounds {lo:.2f}-{hi:.2f}x); threads used {statistics.mean(used['alone']):.2f} alone, "
                 f"{statistics.mean(used['busy']):.2f} busy")
        if th is not None:
            ta, tb, tratio, (tlo, thi) = summarize(th)
            extra += (f"; PyTorch alone {1e3 * ta:.1f} ms -> busy {1e3 * tb:.1f} ms: {tratio:.2f}x "
                      f"({tlo:.2f}-{thi:.2f}x)")
        res.add("busy", f"GPT step L4 H4 C128 T64 B12 AdamW beside busy loops ({name})", threads, b, None, t_busy,
                extra=extra)
    res.notes.append(
        f"busy: {rounds} rounds x {steps} steps per case and condition, alternating the conditions and the order; "
        "each engine in its own worker process with its own OpenMP defaults (pyengine a brief spin, "
        "GOMP_SPINCOUNT=3000; 'spinning workers': libgomp's default, as after `import torch; import pyengine`; "
        "PyTorch: its libgomp's default). 'alone' is this machine as it is, other users' load included; "
        "slowdown = busy / alone.")


def _main(argv):
    if len(argv) in (4, 5) and argv[0] == "--worker":
        engine, threads, state = argv[1], int(argv[2]), argv[3]
        (_worker_pyengine if engine == "pyengine" else _worker_torch)(threads, state, *argv[4:])
        return 0
    raise SystemExit("usage: python -m bench busy (this module's own command line is for its workers)")


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
