"""Each torch API that the census programs use behaves as in PyTorch (docs/pytorch_api_census.md).

tests/census/probes.py holds one probe per API (values and gradients on fixed inputs). It ran once under real
PyTorch 2.13 into tests/census/torch_reference.json; here it runs under pyengine (imported as torch through
pyengine.as_torch) and each probe's result must match the reference: same shapes, dtypes and numbers. A probe
that raises under PyTorch must raise under pyengine too. tests/census/known_gaps.json lists the APIs pyengine
does not have yet, each with the issue that adds it; they are strict xfails, so a fixed gap fails here until
its entry is deleted.
"""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "census")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, HERE)
from compare_lib import diff  # noqa: E402

REFERENCE = json.load(open(os.path.join(HERE, "torch_reference.json")))
KNOWN_GAPS = json.load(open(os.path.join(HERE, "known_gaps.json")))


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    out = tmp_path_factory.mktemp("census") / "pyengine.json"
    env = dict(os.environ, PYTHONHASHSEED="0", OMP_NUM_THREADS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "pyengine.as_torch", os.path.join(HERE, "probes.py"), str(out)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.load(open(out))


def test_known_gaps_are_probes():
    assert set(KNOWN_GAPS) <= set(REFERENCE)


@pytest.mark.parametrize("name", [n for n in REFERENCE if n not in KNOWN_GAPS])
def test_api_matches_pytorch(ours, name):
    _check(ours, name)


if KNOWN_GAPS:  # collected only while some API is still missing (an empty parametrization would be a skip)
    @pytest.mark.parametrize("name", sorted(KNOWN_GAPS))
    def test_known_gap(ours, name):
        try:
            _check(ours, name)
        except AssertionError:
            pytest.xfail(KNOWN_GAPS[name])
        pytest.fail(f"{name!r} works now: delete its entry from tests/census/known_gaps.json")


def _check(ours, name):
    ref, got = REFERENCE[name], ours[name]
    if not ref["ok"]:  # PyTorch raises here (e.g. an optional package is absent): so must pyengine
        assert not got["ok"], f"PyTorch raises {ref['err']}; pyengine returned a result"
        assert got["err"].split(":")[0] == ref["err"].split(":")[0], (ref["err"], got["err"])
        return
    assert got["ok"], got.get("err")
    d = diff(ref["out"], got["out"], ref["kind"])
    assert d is None, d
