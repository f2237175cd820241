"""The fuzz harness (tests/fuzz/harness.py) in the suite: every public op, functional, module,
optimizer and scheduler called with hypothesis-drawn edge and bad inputs on both backends, in a
subprocess (a crash names its case). CI runs the short, derandomized profile (~20 cases per entry);
PYENGINE_FUZZ=long (or the suite's HYPOTHESIS_PROFILE=thorough) runs ~400 per entry with a fresh seed
(printed: `python tests/fuzz/harness.py --profile long --seed N` replays it).
A failure lists each distinct problem: the entry, the kind, an example case and what was said."""
import json
import os
import subprocess
import sys

HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz", "harness.py")
PROFILE = os.environ.get("PYENGINE_FUZZ", "long" if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else "short")


def _run(tmp_path, *args, timeout):
    out = tmp_path / "summary.json"
    r = subprocess.run([sys.executable, HARNESS, "--json", str(out), *args], capture_output=True, text=True,
                       timeout=timeout)
    assert out.exists(), r.stdout + r.stderr
    return r, json.loads(out.read_text())


def test_fuzz_public_api(tmp_path):
    r, summary = _run(tmp_path, "--profile", PROFILE, timeout=600 if PROFILE == "short" else 7200)
    print(r.stdout)
    assert summary["cases"] >= (3000 if PROFILE == "short" else 30000), r.stdout
    assert r.returncode == 0, "\n" + r.stdout + r.stderr[-2000:]


def test_the_harness_catches_each_kind_of_failure(tmp_path):
    """Planted bugs (tests/fuzz/selftest.py): each is reported under its entry and kind, the crash and the
    hang that the alarm cannot stop name their case, and the entries after them still run."""
    r, summary = _run(tmp_path, "--selftest", timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    found = {(rec["entry"], f["kind"]): f for rec in summary["records"] for f in rec["failures"]}
    for entry, kind in [("selftest_attribute_error", "exception type"),
                        ("selftest_unnamed", "message does not name the op"),
                        ("selftest_drops_nan", "NaN lost"),
                        ("selftest_disagrees", "results differ"),
                        ("selftest_accepts_none", "accepted a bad argument"),
                        ("selftest_sleeps", "hang"),
                        ("selftest_segfaults", "crash"),
                        ("selftest_sleeps_deaf", "hang")]:
        assert (entry, kind) in found, (entry, kind, r.stdout)
    assert found[("selftest_segfaults", "crash")]["example"].startswith("T[float32")
    assert "Segmentation fault" in found[("selftest_segfaults", "crash")]["message"]
    assert "watchdog" in found[("selftest_sleeps_deaf", "hang")]["detail"]
    fine = [rec for rec in summary["records"] if rec["entry"] == "selftest_fine"]
    assert fine and fine[0]["cases"] > 0 and not fine[0]["failures"], r.stdout
