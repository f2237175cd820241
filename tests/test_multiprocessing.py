"""torch.multiprocessing (pyengine/multiprocessing): shared-memory tensors seen by forked and spawned children,
pickling by reference, and as_torch's alias in spawned children (pytorch/examples mnist_hogwild)."""
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np

import pyengine as pe
import pyengine.multiprocessing as mp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _add_one(t):
    with pe.no_grad():
        t.add_(1.0)


def test_share_memory_seen_by_a_forked_child_and_pickled_by_reference():
    m = pe.nn.Linear(3, 2)
    assert not m.weight.is_shared()
    before = m.weight.detach().numpy().copy()
    assert m.share_memory() is m and m.weight.is_shared() and m.bias.is_shared()
    np.testing.assert_array_equal(m.weight.detach().numpy(), before)  # the values moved, unchanged
    p = mp.get_context("fork").Process(target=_add_one, args=(m.weight,))
    p.start()
    p.join()
    assert p.exitcode == 0
    np.testing.assert_allclose(m.weight.detach().numpy(), before + 1)
    again = pickle.loads(pickle.dumps(m.weight))  # a reference to the same block: writes are shared
    with pe.no_grad():
        again.mul_(0)
    assert not m.weight.detach().numpy().any()
    plain = pe.ones(2)
    assert pickle.loads(pickle.dumps(plain)).numpy().tolist() == [1.0, 1.0]  # unshared: by value, as before


def test_hogwild_under_as_torch_with_spawn(tmp_path):
    prog = tmp_path / "hog.py"
    prog.write_text(textwrap.dedent("""
        import torch, torch.multiprocessing as mp

        def work(rank, w):
            assert torch.__name__ == "pyengine", torch.__name__
            with torch.no_grad():
                w.add_(rank + 1)

        if __name__ == "__main__":
            mp.set_start_method("spawn", force=True)
            w = torch.zeros(4)
            w.share_memory_()
            p = mp.Process(target=work, args=(1, w))
            p.start()
            p.join()
            assert p.exitcode == 0
            mp.spawn(work, args=(w,), nprocs=1)
            print(w.tolist())
    """))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "pyengine.as_torch", str(prog)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[3.0, 3.0, 3.0, 3.0]"
