"""Fuzz harness: every public op, functional, module, optimizer and scheduler of pyengine called with
hypothesis-drawn edge and bad inputs (see registry.py for what is drawn), each case on the compiled
and on the reference backend. A case fails when

  * the process crashes (the case is logged before it runs, so a segfault names it) or hangs
    (per-case alarm; a watchdog thread kills a hang that the alarm cannot interrupt);
  * it raises anything but TypeError / ValueError / IndexError / RuntimeError (NotImplementedError
    included), or MemoryError for a request too big for this machine; or the message does not name
    the op (its public name, e.g. "matmul", "Linear", "Adam");
  * it accepts garbage (None, a string, a non-integral float or a Python int past int64 where an
    integer goes, ...: strategies.BAD says which values must raise);
  * the two backends disagree: one raises and the other does not, or the results (outputs and
    gradients after a backward through them) differ beyond tolerance or in where their NaNs are;
  * a NaN in a float input does not reach the output where the math says it must (registry "nan").

Run it:
    python tests/fuzz/harness.py                  the short profile (CI: derandomized, ~20 cases per entry)
    PYENGINE_FUZZ=long python tests/fuzz/harness.py   ~400 cases per entry, a fresh random seed
    options: --profile short|long, --only NAME,..., --seed N, --json PATH (summary), --selftest
It exits 1 when any case failed, after printing one line per distinct failure (entry, kind, an example).
The driver runs the cases in a worker subprocess (with an address-space limit, so a huge allocation fails
fast instead of swapping) and restarts it after a crash, skipping the entry that crashed.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROFILES = {  # cases per entry, derandomized, the alarm per case and backend (s), the watchdog per case (s)
    "short": (20, True, 10, 60),
    "long": (400, False, 10, 60),
    "selftest": (2, True, 1, 4),   # the planted bugs of selftest.py: two of the cases sleep
}
MEMORY_LIMIT = 6 << 30  # address space of the worker: a huge allocation raises MemoryError at once
ALLOWED = (TypeError, ValueError, IndexError, RuntimeError, MemoryError)


# ====================================================================== the worker


class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException so that no `except Exception` in the library swallows it."""


def _on_alarm(signum, frame):
    raise CaseTimeout()


class Outcome:
    __slots__ = ("error", "phase", "items", "made")

    def __init__(self, error=None, phase=None, items=None, made=None):
        self.error, self.phase, self.items, self.made = error, phase, items, made


# A bigger result is a view (expand to 2**40 elements): compared by shape only, and no backward through it
# (summing 10**12 broadcast elements takes hours, in any library)
_COPY_LIMIT = 1 << 26  # bytes


def _flatten(x, out, label="out"):
    """(label, value) pairs of a result: arrays copied, modules as their parameters' gradients."""
    import numpy as np
    import pyengine as pe
    if isinstance(x, pe.Tensor):
        a = x._data
        if a.nbytes > _COPY_LIMIT:
            out.append((label, f"{a.dtype}{list(a.shape)} view"))
        else:
            out.append((label, np.array(a, copy=True)))
    elif isinstance(x, pe.nn.Module):
        for name, p in x.named_parameters():
            out.append((f"{label}.{name}.grad", None if p.grad is None else np.array(p.grad._data, copy=True)))
    elif isinstance(x, (list, tuple)):
        for i, e in enumerate(x):
            _flatten(e, out, f"{label}[{i}]")
    elif isinstance(x, dict):
        for k, e in x.items():
            _flatten(e, out, f"{label}[{k!r}]")
    elif x is None or isinstance(x, (bool, int, float, str, np.generic)):
        out.append((label, x))
    else:
        out.append((label, type(x).__name__))


def _tensors(x):
    import pyengine as pe
    if isinstance(x, pe.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for e in x:
            yield from _tensors(e)


def execute(entry, case, backend, limit):
    """Run one case on one backend: the call, then a backward through its float outputs."""
    import signal

    import numpy as np
    import pyengine as pe
    import strategies
    pe.set_backend(backend)
    strategies.MADE.clear()
    phase = "call"
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        result = entry.run(case)
        phase = "backward"
        outs = [t for t in _tensors(result)
                if t.grad_fn is not None and t._data.dtype.kind == "f" and t._data.nbytes <= _COPY_LIMIT]
        if outs:
            total = outs[0].sum()
            for t in outs[1:]:
                total = total + t.sum()
            total.backward()
        phase = "compare"  # the harness's own copies: an error here is not the op's
        items = []
        _flatten(result, items)
        for i, t in enumerate(strategies.MADE):
            if t.requires_grad:
                items.append((f"input{i}.grad", None if t.grad is None else np.array(t.grad._data, copy=True)))
        return Outcome(items=items, made=list(strategies.MADE))
    except CaseTimeout as e:
        return Outcome(error=e, phase=phase)
    except Exception as e:  # noqa: BLE001 - every exception is judged by check()
        return Outcome(error=e, phase=phase)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        pe.set_backend("cpu")


def _norm(msg):
    """A message with its numbers and quoted values blanked: one key per kind of message."""
    msg = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", str(msg).split("\n")[0])
    return re.sub(r"\d+", "#", msg)[:90]


# Messages that name the op but still only tell of the implementation: NumPy's or pybind11's internals, a
# Python operator on the wrong type. A message must say what is wrong in the caller's terms.
_INTERNALS = ("incompatible function arguments", "not supported between instances of", "ufunc ",
              "has no attribute", "object is not subscriptable", "zero-size array to reduction",
              "unsupported operand type", "bad operand type", "object is not iterable", "object is not callable",
              "has no len()", "could not convert string to float", "argument must be a string or a",
              "cannot be interpreted as an integer", "must be real number, not")


def _names_op(entry, msg):
    low = msg.lower()
    return any(n.lower() in low for n in entry.accepted_names())


def _tolerance(dtype, scale):
    import numpy as np
    rtol, atol = {np.dtype(np.float16): (1e-2, 1e-2), np.dtype(np.float32): (1e-4, 1e-5)}.get(dtype, (1e-7, 1e-9))
    return rtol, atol * scale


def _input_scale(case):
    """The largest finite |value| among the case's float inputs (an accumulation order may move results by
    an ulp of it, so absolute tolerances scale with it)."""
    import numpy as np
    from strategies import TensorSpec
    scale = 1.0
    for a in case.args.values():
        for v in (a.value if isinstance(a.value, (list, tuple)) else [a.value]):
            if isinstance(v, TensorSpec) and v.values.dtype.kind == "f" and v.values.size:
                f = np.abs(v.values[np.isfinite(v.values)].astype(np.float64))
                if f.size:
                    scale = max(scale, float(f.max()))
    return scale


def compare(entry, case, a, b):
    """None if the two backends' results agree, else what differs."""
    import numpy as np
    if len(a.items) != len(b.items):
        return f"{len(a.items)} vs {len(b.items)} results"
    scale = _input_scale(case)
    for (la, va), (lb, vb) in zip(a.items, b.items):
        if la != lb:
            return f"results {la} vs {lb}"
        if isinstance(va, np.ndarray) and isinstance(vb, np.ndarray):
            if va.shape != vb.shape or va.dtype != vb.dtype:
                return f"{la}: {va.dtype}{list(va.shape)} vs {vb.dtype}{list(vb.shape)}"
            if entry.compare == "meta" and la == "out":
                continue
            if va.dtype.kind != "f":
                if not np.array_equal(va, vb):
                    return f"{la}: values differ"
                continue
            if not np.array_equal(np.isnan(va), np.isnan(vb)):
                return f"{la}: NaN at different places"
            rtol, atol = _tolerance(va.dtype, scale)
            with np.errstate(all="ignore"):
                ok = np.isclose(va.astype(np.float64), vb.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True)
            if not ok.all():
                i = np.argwhere(~ok)[0]
                return f"{la}: {va[tuple(i)]!r} vs {vb[tuple(i)]!r} at {tuple(int(j) for j in i)}"
        elif type(va) is not type(vb) or (va != vb and not (va != va and vb != vb)):
            return f"{la}: {va!r} vs {vb!r}"
    return None


def nan_lost(entry, case, outcome):
    """None if the NaNs of the float inputs reached the output as the entry's rule says, else why not."""
    import numpy as np
    from strategies import TensorSpec
    if entry.nan is None or not case.nan_check or outcome.error is not None:
        return None
    if callable(entry.nan):
        return entry.nan(case, outcome.made, [v for _, v in outcome.items if isinstance(v, np.ndarray)])
    out = next((v for _, v in outcome.items if isinstance(v, np.ndarray)), None)
    if out is None or out.dtype.kind != "f" or out.size == 0:
        return None
    prefix = "fwd:" if entry.group == "modules" else ""
    sources = [a.value for a in case.positional(prefix)]
    sources = [s for v in sources for s in (v if isinstance(v, (list, tuple)) else [v])]
    try:  # inputs that broadcast to an empty shape: the NaN takes part in nothing (a sum over no elements)
        if 0 in np.broadcast_shapes(*[s.values.shape for s in sources if isinstance(s, TensorSpec)]):
            return None
    except ValueError:
        pass  # not a broadcasting op (matmul, linear)
    for s in sources:
        if not isinstance(s, TensorSpec) or s.values.dtype.kind != "f" or not np.isnan(s.values).any():
            continue
        if entry.nan == "any":
            if not np.isnan(out).any():
                return "a NaN input gave no NaN output"
        else:
            try:
                mask = np.broadcast_to(np.isnan(s.values), out.shape)
            except ValueError:
                continue
            if not np.isnan(out[mask]).all():
                return "a NaN input position is not NaN in the output"
    return None


class Recorder:
    """Failures of one entry, counted by (kind, detail) with the first example of each."""

    def __init__(self, entry):
        self.entry = entry
        self.cases = 0
        self.failures = {}

    def add(self, kind, detail, case, message=""):
        key = (kind, detail)
        f = self.failures.get(key)
        if f is None:
            self.failures[key] = {"kind": kind, "detail": detail, "count": 1, "example": case.describe(),
                                  "message": str(message).split("\n")[0][:300]}
        else:
            f["count"] += 1


def judge(entry, case, rec, limit=10):
    """Run the case on both backends (each for at most ``limit`` s) and record whatever is wrong."""
    c = execute(entry, case, "cpu", limit)
    r = execute(entry, case, "reference", limit)
    for o, where in ((c, "compiled"), (r, "reference")):
        e = o.error
        if e is None:
            continue
        if isinstance(e, CaseTimeout):
            rec.add("hang", f"over {limit} s ({where}, {o.phase})", case)
        elif not isinstance(e, ALLOWED):
            rec.add("exception type", f"{type(e).__name__} in {o.phase}", case, e)
        elif o.phase == "backward":
            rec.add("backward raised", f"{type(e).__name__}: {_norm(e)}", case, e)
        elif o.phase == "compare":
            rec.add("harness error", f"{type(e).__name__}: {_norm(e)}", case, e)
        elif not _names_op(entry, str(e)):
            rec.add("message does not name the op", f"{type(e).__name__}: {_norm(e)}", case, e)
        elif any(s in str(e) for s in _INTERNALS):
            rec.add("message tells of internals", f"{type(e).__name__}: {_norm(e)}", case, e)
    if (c.error is None) != (r.error is None):
        raised = c if c.error is not None else r
        rec.add("backends disagree", f"{'compiled' if raised is c else 'reference'} raised "
                f"{type(raised.error).__name__}: {_norm(raised.error)}", case, raised.error)
    elif c.error is not None and type(c.error) is not type(r.error) and not isinstance(c.error, CaseTimeout):
        rec.add("backends disagree", f"compiled {type(c.error).__name__}, reference {type(r.error).__name__}",
                case, c.error)
    elif c.error is None:
        diff = compare(entry, case, c, r)
        if diff:
            rec.add("results differ", re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "#", diff)[:90], case, diff)
        if case.mutated and case.mutated[2]:
            rec.add("accepted a bad argument", f"{case.mutated[0]}={_short_repr(case.mutated[1])}", case)
        lost = nan_lost(entry, case, c)
        if lost:
            rec.add("NaN lost", lost, case)


def _short_repr(v):
    r = repr(v)
    return r if len(r) < 40 else r[:37] + "..."


def worker(args):
    """Run the entries' cases in this process, appending one JSON line per finished entry to args.out."""
    import faulthandler
    import resource
    import signal
    import warnings

    import numpy as np
    from hypothesis import HealthCheck, Phase, given, seed, settings
    sys.path.insert(0, HERE)
    import pyengine as pe  # noqa: F401 - imported before the memory limit: the extension maps its code
    import registry
    import strategies
    from strategies import mutate

    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ValueError, OSError):  # a platform without it (or a lower hard limit): the memory checks still hold
        pass
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    signal.signal(signal.SIGALRM, _on_alarm)
    log = open(args.log, "a", buffering=1)
    faulthandler.enable(file=sys.stderr)
    entries = registry.ENTRIES
    if args.selftest:
        import selftest
        entries = selftest.ENTRIES
    skip = set(filter(None, args.skip.split(",")))
    only = set(filter(None, args.only.split(",")))
    n_examples, derandomize, limit, watchdog = PROFILES[args.profile]
    out = open(args.out, "a", buffering=1)
    for entry in entries:
        if entry.name in skip or (only and entry.name not in only):
            continue
        rec = Recorder(entry)
        t0 = time.perf_counter()

        @settings(max_examples=n_examples, derandomize=derandomize, database=None, deadline=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=entry.build if args.selftest else entry.build.flatmap(mutate))
        def run(case):
            rec.cases += 1
            log.write(f"CASE {entry.name} #{rec.cases}: {case.describe()}\n")
            faulthandler.dump_traceback_later(watchdog, exit=True)
            judge(entry, case, rec, limit)
            faulthandler.cancel_dump_traceback_later()

        if not derandomize and args.seed is not None:
            run = seed(args.seed)(run)
        run()
        out.write(json.dumps({"entry": entry.name, "group": entry.group, "cases": rec.cases,
                              "seconds": round(time.perf_counter() - t0, 2),
                              "failures": list(rec.failures.values())}) + "\n")
    strategies.MADE.clear()


# ====================================================================== the driver


def drive(workdir, profile="short", only="", seed=None, selftest=False, timeout=3600):
    """Run the worker until every entry finished, restarting it after a crash or a hard hang (the
    entry whose case was running is recorded and skipped); its files go to ``workdir``. Returns the
    summary dict."""
    log, out = os.path.join(workdir, "cases.log"), os.path.join(workdir, "results.jsonl")
    if seed is None and not PROFILES[profile][1]:
        seed = int.from_bytes(os.urandom(4), "little")
    done, extra, t0 = {}, [], time.time()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONFAULTHANDLER="1")
    for _attempt in range(50):
        skip = sorted(done) + [f["entry"] for f in extra]
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--profile", profile, "--log", log, "--out",
               out, "--skip", ",".join(skip), "--only", only] + (["--seed", str(seed)] if seed is not None else []) \
            + (["--selftest"] if selftest else [])
        left = timeout - (time.time() - t0)
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=max(left, 1), env=env, cwd=ROOT)
            rc, err = p.returncode, p.stderr
        except subprocess.TimeoutExpired as e:
            rc, err = "timeout", (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else \
                (e.stderr or "")
        if os.path.exists(out):
            for line in open(out):
                rec = json.loads(line)
                done[rec["entry"]] = rec
        if rc == 0:
            break
        last = _last_case(log)
        if last is None or last[0] in done:
            extra.append({"entry": "<driver>", "group": "", "cases": 0, "failures": [{
                "kind": "worker failed", "detail": f"exit {rc}", "count": 1, "example": "",
                "message": err.strip().splitlines()[-1] if err.strip() else ""}]})
            break
        name, desc = last
        hang = rc == "timeout" or "Timeout (" in err
        kind = "hang" if hang else "crash"
        detail = "killed by the watchdog" if hang else f"exit {rc}"
        extra.append({"entry": name, "group": "", "cases": 1, "failures": [{
            "kind": kind, "detail": detail, "count": 1, "example": desc,
            "message": _crash_line(err)}]})
        if rc == "timeout":
            break
    records = list(done.values()) + extra
    if not selftest:
        sys.path.insert(0, HERE)
        import registry
        missing = registry.missing_entries()
        if missing and not only:
            records.append({"entry": "<registry>", "group": "", "cases": 0, "failures": [{
                "kind": "not fuzzed", "detail": ", ".join(missing), "count": len(missing), "example": "",
                "message": "public callables without a registry entry (or a reason in EXCLUDED)"}]})
    return {"profile": profile, "seed": seed, "seconds": round(time.time() - t0, 1),
            "cases": sum(r["cases"] for r in records), "entries": len(done), "records": records}


def _last_case(log):
    if not os.path.exists(log):
        return None
    last = None
    with open(log) as f:
        for line in f:
            if line.startswith("CASE "):
                last = line
    if last is None:
        return None
    head, _, desc = last[5:].partition(": ")
    return head.rsplit(" #", 1)[0], desc.strip()


def _crash_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    fatal = [ln for ln in lines if "Fatal Python error" in ln or "Timeout (" in ln]
    return (fatal or lines or [""])[0][:300]


def failures(summary):
    """(entry, failure) for every distinct failure in a summary."""
    return [(r["entry"], f) for r in summary["records"] for f in r["failures"]]


def format_summary(summary, limit=None):
    fs = failures(summary)
    seed = f", seed {summary['seed']}" if summary["seed"] is not None else ""
    lines = [f"fuzz ({summary['profile']} profile{seed}): {summary['cases']} cases over {summary['entries']} entries "
             f"in {summary['seconds']} s; {len(fs)} distinct failures ({sum(f['count'] for _, f in fs)} cases)"]
    by_kind = {}
    for _, f in fs:
        by_kind[f["kind"]] = by_kind.get(f["kind"], 0) + f["count"]
    if by_kind:
        lines.append("by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items(), key=lambda kv: -kv[1])))
    for entry, f in fs[:limit]:
        lines.append(f"  {entry}: {f['kind']}: {f['detail']} (x{f['count']})\n      case: {f['example']}"
                     + (f"\n      said: {f['message']}" if f["message"] else ""))
    if limit is not None and len(fs) > limit:
        lines.append(f"  ... {len(fs) - limit} more")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default=os.environ.get("PYENGINE_FUZZ", "short"), choices=sorted(PROFILES))
    ap.add_argument("--only", default="")
    ap.add_argument("--skip", default="")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--selftest", action="store_true", help="run the planted bugs of selftest.py instead")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--log")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    import tempfile
    with tempfile.TemporaryDirectory(prefix="pyengine-fuzz-") as workdir:
        summary = drive(workdir, "selftest" if args.selftest else args.profile, args.only, args.seed, args.selftest)
    print(format_summary(summary))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 1 if failures(summary) else 0


if __name__ == "__main__":
    sys.exit(main())
