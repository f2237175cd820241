"""pyengine.distributed: DistributedSampler and the world-of-one path in process; real 2-process jobs
under mpiexec (loopback) for gradient averaging, failures and wrap-time checks.

The multi-process tests are skipped only when mpi4py or mpiexec is missing (pip install .[distributed]).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pyengine as pe
import pyengine.distributed as dist
from pyengine.distributed.ddp import Reducer
import pyengine.nn as nn
import pyengine.nn.functional as F
from pyengine.utils.data import DataLoader, TensorDataset
from pyengine.utils.data.distributed import DistributedSampler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "tests", "dist_scripts")


# --------------------------------------------------------------------------- DistributedSampler

def shards(n, replicas, **kw):
    ds = list(range(n))
    return [list(DistributedSampler(ds, num_replicas=replicas, rank=r, **kw)) for r in range(replicas)]


@given(n=st.integers(1, 60), replicas=st.integers(1, 7), shuffle=st.booleans(), seed=st.integers(0, 3),
       epoch=st.integers(0, 3))
def test_sampler_shards_cover_and_are_disjoint(n, replicas, shuffle, seed, epoch):
    parts = []
    for r in range(replicas):
        s = DistributedSampler(range(n), num_replicas=replicas, rank=r, shuffle=shuffle, seed=seed)
        s.set_epoch(epoch)
        parts.append(list(s))
        assert len(parts[-1]) == len(s) == -(-n // replicas)
    flat = [i for p in parts for i in p]
    assert set(flat) == set(range(n))                    # every sample is read
    pad = replicas * len(parts[0]) - n
    assert len(flat) == n + pad and pad < replicas        # only the padding repeats
    if pad == 0:
        assert len(set(flat)) == n                        # disjoint


@given(n=st.integers(0, 60), replicas=st.integers(1, 7), shuffle=st.booleans())
def test_sampler_drop_last(n, replicas, shuffle):
    parts = shards(n, replicas, shuffle=shuffle, drop_last=True)
    flat = [i for p in parts for i in p]
    assert all(len(p) == n // replicas for p in parts)
    assert len(set(flat)) == len(flat) == replicas * (n // replicas)


def test_sampler_padding_repeats_from_the_start():
    assert shards(10, 4, shuffle=False) == [[0, 4, 8], [1, 5, 9], [2, 6, 0], [3, 7, 1]]
    assert shards(2, 5, shuffle=False) == [[0], [1], [0], [1], [0]]  # more replicas than samples
    assert shards(10, 4, shuffle=False, drop_last=True) == [[0, 4], [1, 5], [2, 6], [3, 7]]


def test_sampler_epochs_reshuffle_reproducibly():
    def epoch_order(epoch, seed=0):
        out = []
        for r in range(3):
            s = DistributedSampler(range(30), num_replicas=3, rank=r, seed=seed)
            s.set_epoch(epoch)
            out.append(list(s))
        return out
    e0, e1 = epoch_order(0), epoch_order(1)
    assert e0 == epoch_order(0) and e1 == epoch_order(1)   # the same on every call / every rank
    assert e0 != e1 and e0 != epoch_order(0, seed=1)
    assert sorted(i for p in e1 for i in p) == list(range(30))


def test_sampler_with_dataloader_and_defaults():
    ds = TensorDataset(pe.arange(12, dtype=pe.float64))
    s = DistributedSampler(ds, num_replicas=2, rank=1, seed=3)
    loader = DataLoader(ds, batch_size=4, sampler=s)
    loader.set_epoch(5)
    assert s.epoch == 5
    got = np.concatenate([b[0].numpy() for b in loader]).astype(int).tolist()
    assert got == list(s) and len(loader) == 2
    world = DistributedSampler(ds)  # no launcher: world 1, rank 0 -> everything
    assert sorted(world) == list(range(12))
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(ds, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas"):
        DistributedSampler(ds, num_replicas=0, rank=0)


# --------------------------------------------------------------------------- world of one, in process

def test_world_of_one_without_launcher():
    g = dist.init()
    assert dist.init() is g and dist.is_initialized()
    assert (dist.get_rank(), dist.get_world_size(), dist.is_main_process()) == (0, 1, True)
    assert dist.get_backend() == "local"
    t = pe.tensor([1.0, 2.0, 3.0])
    dist.all_reduce(t, op="mean")
    dist.all_reduce(t.T)  # a non-contiguous view goes through a copy
    dist.broadcast(t, src=0)
    dist.all_reduce(t, async_op=True).wait()
    np.testing.assert_array_equal(t.numpy(), [1.0, 2.0, 3.0])
    assert [x.tolist() for x in dist.all_gather(t)] == [[1.0, 2.0, 3.0]]
    assert dist.all_gather(t, stack=True).shape == (1, 3)
    out = [pe.zeros(3)]
    dist.all_gather(out, t)
    np.testing.assert_array_equal(out[0].numpy(), t.numpy())
    assert dist.all_reduce_scalar(3) == 3 and isinstance(dist.all_reduce_scalar(3), int)
    assert dist.all_reduce_scalar([1.5, 2], op="mean") == [1.5, 2.0]
    assert dist.all_gather_object({"a": [1, 2]}) == [{"a": [1, 2]}]
    dist.barrier()
    with pytest.raises(ValueError, match="op must be one of"):
        dist.all_reduce(t, op="prod")
    with pytest.raises(TypeError, match="floating-point"):
        dist.all_reduce(pe.tensor([1, 2]), op="mean")
    with pytest.raises(ValueError, match="src"):
        dist.broadcast(t, src=1)


def _mlp(seed):
    pe.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2)).to(pe.float64)


def test_ddp_world_of_one_is_the_plain_module():
    rng = np.random.default_rng(0)
    x, y = pe.tensor(rng.standard_normal((8, 5))), pe.tensor(rng.standard_normal((8, 2)))
    plain, wrapped = _mlp(0), dist.DistributedDataParallel(_mlp(0), bucket_cap_mb=1e-4)
    opts = [pe.optim.AdamW(m.parameters(), lr=1e-2) for m in (plain, wrapped)]
    for _ in range(3):
        for m, opt in zip((plain, wrapped), opts):
            opt.zero_grad()
            F.mse_loss(m(x), y).backward()
            opt.step()
    for p, q in zip(plain.parameters(), wrapped.parameters()):
        np.testing.assert_array_equal(p._data, q._data)
    # state dict without the "module." prefix: loads into the bare model
    sd = wrapped.state_dict()
    assert list(sd) == list(plain.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [n for n, _ in wrapped.named_parameters()] == list(sd)
    fresh = _mlp(1)
    fresh.load_state_dict(sd)
    np.testing.assert_array_equal(fresh(x).detach().numpy(), wrapped(x).detach().numpy())
    assert wrapped.module is wrapped._modules["module"]
    with wrapped.no_sync():
        F.mse_loss(wrapped(x), y).backward()
    with pytest.raises(TypeError, match="nn.Module"):
        dist.DistributedDataParallel(lambda v: v)


def test_run_main_aborts_in_world_of_one():
    code = ("import pyengine.distributed as dist\n"
            "def main():\n    raise KeyError('broken config')\n"
            "dist.run_main(main)\nprint('not reached')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT)
    assert p.returncode == 1
    assert "rank 0 of 1 raised an uncaught exception" in p.stderr and "broken config" in p.stderr
    assert "not reached" not in p.stdout


class TwinGroup(dist.ProcessGroup):
    """A pretend world of 2 whose other rank always holds the same values as this one: a sum doubles
    the buffer, so averaged gradients must equal the local ones exactly. Records every call."""

    name = "twin"

    def __init__(self):
        self.rank, self.world_size, self.timeout, self.calls = 0, 2, None, []

    def allreduce(self, buf, op="sum"):
        self.calls.append(("allreduce", buf.size))
        if op in ("sum", "mean"):
            buf *= 2
        if op == "mean":
            buf /= 2

    def iallreduce(self, buf, op="sum"):
        self.allreduce(buf, op)
        self.calls[-1] = ("iallreduce", buf.size)
        return dist.backend._DoneWork()

    def broadcast(self, buf, src=0):
        self.calls.append(("broadcast", buf.size))

    def allgather(self, buf):
        return np.stack([buf, buf])

    def barrier(self):
        pass


def test_ddp_buckets_in_reverse_order_and_average_exactly():
    rng = np.random.default_rng(0)
    x, y = pe.tensor(rng.standard_normal((8, 5))), pe.tensor(rng.standard_normal((8, 2)))
    g = TwinGroup()
    plain, wrapped = _mlp(0), dist.DistributedDataParallel(_mlp(0), bucket_cap_mb=1e-4, process_group=g)
    # a bucket closes once it holds >= 104 bytes, walking the float64 parameters backwards
    assert wrapped.bucket_sizes == [(2, (2 + 2 * 16) * 8), (1, 16 * 8), (1, 16 * 5 * 8)]
    assert wrapped._buckets[0].names == ["2.bias", "2.weight"]
    opts = [pe.optim.SGD(m.parameters(), lr=0.1, momentum=0.9) for m in (plain, wrapped)]
    for _ in range(3):
        g.calls.clear()
        for m, opt in zip((plain, wrapped), opts):
            opt.zero_grad()
            F.mse_loss(m(x), y).backward()
            opt.step()
        # one non-blocking allreduce per bucket, in bucket order; each carries one used-count per param
        assert g.calls == [("iallreduce", 34 + 2), ("iallreduce", 16 + 1), ("iallreduce", 80 + 1)]
    for p, q in zip(plain.parameters(), wrapped.parameters()):
        np.testing.assert_array_equal(p._data, q._data)
    # no_sync: no communication; the next synced backward averages the sum of both
    g.calls.clear()
    wrapped.zero_grad()
    with wrapped.no_sync():
        F.mse_loss(wrapped(x), y).backward()
    assert g.calls == []
    F.mse_loss(wrapped(x), y).backward()
    assert [c[0] for c in g.calls] == ["iallreduce"] * 3


def test_reducer_averages_a_list_of_gradients_in_buckets():
    """distributed.ddp.Reducer, DDP's bucketed allreduce on its own (keras' fit uses it): buckets in reverse
    order, one dtype each; None gradients stay None; the twin's average is the local gradient exactly."""
    rng = np.random.default_rng(3)
    params = [pe.tensor(rng.standard_normal(s).astype(dt), requires_grad=True)
              for s, dt in (((3, 5), np.float64), ((5,), np.float64), ((7,), np.float32), ((2, 2), np.float32))]
    grads = [rng.standard_normal(p.shape).astype(p._data.dtype) for p in params]
    for p, g in zip(params, grads):
        p.grad = pe.tensor(g.copy())
    params[1].grad = None
    g = TwinGroup()
    reducer = Reducer(params, process_group=g, bucket_cap_mb=1e-5)  # closes a bucket at >= 10.5 bytes
    assert [b.names for b in reducer.buckets] == [["3"], ["2"], ["1"], ["0"]]
    reducer()
    assert g.calls == [("iallreduce", 4 + 1), ("iallreduce", 7 + 1), ("iallreduce", 5 + 1), ("iallreduce", 15 + 1)]
    assert params[1].grad is None
    for i in (0, 2, 3):
        assert params[i].grad.dtype == params[i].dtype
        np.testing.assert_array_equal(params[i].grad.numpy(), grads[i])
    one = Reducer(params, process_group=g)  # default 4 MiB: one bucket per dtype
    assert [len(b.params) for b in one.buckets] == [2, 2]


def test_ddp_misuse_is_reported():
    x = pe.tensor(np.ones((3, 5)))
    g = TwinGroup()
    model = dist.DistributedDataParallel(_mlp(0), bucket_cap_mb=1e-4, process_group=g)
    loss = model(x).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="after this iteration's gradients were already averaged"):
        loss.backward()

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(5, 1), nn.Linear(5, 1)

        def forward(self, v):
            return self.a(v), self.b(v)

    heads = dist.DistributedDataParallel(TwoHeads(), bucket_cap_mb=1e-6, process_group=TwinGroup())
    out_a, _ = heads(pe.ones(2, 5))
    out_a.sum().backward()  # b is reachable from the output but gets no gradient: never finishes
    with pytest.raises(RuntimeError, match=r"did not finish: 2 parameter\(s\) .*b.weight, b.bias"):
        heads(pe.ones(2, 5))
    heads_ok = dist.DistributedDataParallel(TwoHeads(), process_group=TwinGroup())
    out_a, out_b = heads_ok(pe.ones(2, 5))
    with pe.no_grad():
        heads_ok(pe.ones(2, 5))  # an evaluation forward in between is fine
    out_a, out_b = heads_ok(pe.ones(2, 5))
    (out_a.sum() + out_b.sum()).backward()
    assert all(p.grad is not None for p in heads_ok.parameters())
    ha, hb = heads_ok(pe.ones(2, 5))
    loss = ha.sum() + heads_ok.module.a.weight.pow(2).sum()  # fine: a.weight is reachable anyway
    loss.backward()
    class FirstHead(TwoHeads):
        def forward(self, v):
            return self.a(v)

    only_a = dist.DistributedDataParallel(FirstHead(), process_group=TwinGroup())
    ha = only_a(pe.ones(2, 5))
    with pytest.raises(RuntimeError, match="'b.weight' got a gradient along a path that does not go through"):
        (ha.sum() + only_a.module.b.weight.sum()).backward()
    with pytest.raises(ValueError, match="assign=True"):
        heads_ok.load_state_dict(heads_ok.state_dict(), assign=True)


def test_ddp_wrap_time_model_check_names_the_parameter():
    class Skewed(TwinGroup):  # the "other rank" built a wider first layer
        def allgather_object(self, obj):
            other = [list(e) for e in obj]
            other[0][2] = [17, 5]
            return [obj, other]

    with pytest.raises(RuntimeError, match=r"parameter '0.weight' is \(16, 5\) float64 on rank 0 but "
                                           r"\(17, 5\) float64 on rank 1"):
        dist.DistributedDataParallel(_mlp(0), process_group=Skewed())

    class Shorter(TwinGroup):
        def allgather_object(self, obj):
            return [obj, obj[:-1]]

    with pytest.raises(RuntimeError, match=r"rank 0 has 4 parameters and buffers, rank 1 has 3.*'2.bias'"):
        dist.DistributedDataParallel(_mlp(0), process_group=Shorter())


# --------------------------------------------------------------------------- real processes, mpiexec

def _mpiexec():
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.access(here, os.X_OK) else shutil.which("mpiexec")


def mpirun(script, *args, n=2, timeout=90, env=None):
    """Run ``script`` on n ranks over loopback; kill the whole process group if it outlives timeout."""
    pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install .[distributed])")
    exe = _mpiexec()
    if exe is None:
        pytest.skip("no mpiexec next to sys.executable or on PATH (pip install .[distributed])")
    cmd = [exe, "-n", str(n), "--oversubscribe"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += [sys.executable, os.path.join(SCRIPTS, script), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}),
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=ROOT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} hung for more than {timeout} s; output:\n{out[-4000:]}")
    return proc.returncode, out, time.monotonic() - t0


@pytest.mark.parametrize("progress", ["thread", "mpi"])
def test_two_ranks_match_one_process_with_twice_the_batch(progress):
    rc, out, _ = mpirun("equivalence.py", env={"PYENGINE_DIST_PROGRESS": progress})
    assert rc == 0, out[-4000:]
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT "))
    res = json.loads(line[len("RESULT "):])
    assert res["world"] == 2 and res["progress"] == progress
    cases = res["cases"]
    assert max(c["buckets"] for c in cases) >= 3  # some cases really split the model into buckets
    for c in cases:
        if c.get("case") == "partial":
            assert c["max_err"] < 1e-12, c
            continue
        assert c["max_diff_across_ranks"] == 0.0, c   # the replicas stay identical
        assert c["max_err_vs_1proc"] < 1e-12, c      # and equal to 1 process x the global batch


@pytest.mark.parametrize("mode, progress, expect", [
    ("raise", "thread", ["boom from rank 1", "rank 1 of 2 raised an uncaught exception"]),
    ("run_main", "thread", ["boom from rank 1", "rank 1 of 2 raised an uncaught exception"]),
    ("timeout", "thread", ["DistTimeoutError", "allreduce of 32 bytes on rank 0 did not complete within 2 s"]),
    ("timeout", "mpi", ["DistTimeoutError", "allreduce of 32 bytes on rank 0 did not complete within 2 s"]),
    ("mismatch", "thread", ["parameter '0.weight' is (8, 4) float32 on rank 0 but (9, 4) float32 on rank 1"]),
])
def test_failures_end_the_job(mode, progress, expect):
    rc, out, seconds = mpirun("failures.py", mode, timeout=60, env={"PYENGINE_DIST_PROGRESS": progress})
    assert rc != 0, out[-4000:]
    for text in expect:
        assert text in out, out[-4000:]
    assert "should not happen" not in out
    assert seconds < 30, f"the job took {seconds:.1f} s to end"


def test_pyengine_train_under_mpiexec(tmp_path):
    """`mpiexec -n 2 pyengine train`: rank 0 writes the run; the checkpoint loads at world size 1; resume works."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 120)
    out = tmp_path / "run"
    args = ["--data", str(corpus), "--preset", "tiny", "--steps", "20", "--eval-interval", "10", "--eval-iters",
            "4", "--n-layer", "1", "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--batch-size", "4",
            "--lr", "0.01", "--warmup", "2", "--out", str(out)]
    rc, text, _ = mpirun("lm_train.py", *args)
    assert rc == 0, text[-4000:]
    assert "on each of 2 ranks" in text and text.count("pyengine train:") == 1  # only rank 0 prints
    from pyengine import lm
    ck = pe.load(str(out / "ckpt.safetensors"))
    assert ck["step"] == 20 and len(ck["rng"]["batches_by_rank"]) == 2
    assert lm.evaluate(str(out / "best.safetensors"), data=str(corpus))["loss"] < 3.0
    rc, text, _ = mpirun("lm_train.py", *(args[:5] + ["30"] + args[6:]), "--resume")
    assert rc == 0, text[-4000:]
    assert pe.load(str(out / "ckpt.safetensors"))["step"] == 30


def test_keras_fit_under_mpiexec_equals_one_process_with_twice_the_batch(tmp_path):
    """keras fit, unchanged, on 2 ranks x batch 8 gives the weights of 1 process x batch 16; one rank prints."""
    out = tmp_path / "dp.json"
    rc, text, _ = mpirun(os.path.join("keras_fit.py"), str(out), "8")
    assert rc == 0, text[-4000:]
    assert text.count("Epoch 3/3") == 1  # only rank 0 prints
    dp = json.loads(out.read_text())
    assert dp["world"] == 2
    single = tmp_path / "single.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    for k in [k for k in env if k.startswith(("OMPI_", "PMI", "PMIX"))]:
        env.pop(k)
    subprocess.run([sys.executable, os.path.join(SCRIPTS, "keras_fit.py"), str(single), "16"], check=True,
                   env=env, cwd=ROOT, timeout=120, capture_output=True)
    one = json.loads(single.read_text())
    assert one["world"] == 1
    for a, b in zip(dp["weights"], one["weights"]):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dp["history"]["loss"], one["history"]["loss"], rtol=1e-4)
