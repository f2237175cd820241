"""pyengine.profiler: events of ops, backward nodes, kernels and regions; tables, traces and schedules as
PyTorch's torch.profiler has them; nothing recorded (and the kernels untouched) when no profile records."""
import json
import threading

import numpy as np
import pytest
import torch

import pyengine as pe
import pyengine.nn as nn
import pyengine.nn.functional as F
from pyengine import autograd, lm
from pyengine.cli import main as cli_main
from pyengine.profiler import (ProfilerAction, ProfilerActivity, profile, record_function, schedule,
                               tensorboard_trace_handler)

rng = np.random.default_rng(0)


def _t(*shape, grad=False):
    return pe.tensor(rng.standard_normal(shape).astype(np.float32), requires_grad=grad)


def _mlp():
    return nn.Sequential(nn.Linear(7, 13), nn.ReLU(), nn.Linear(13, 5), nn.Tanh(), nn.Linear(5, 1))


def _counts(prof):
    return {a.key: a.count for a in prof.key_averages()}


def test_table_counts_a_known_program():
    model = _mlp()
    opt = pe.optim.SGD(model.parameters(), lr=0.1)
    x = _t(3, 7)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loss = model(x).sum()
        loss.backward()
        opt.step()
    c = _counts(prof)
    assert c["Linear"] == 3 and c["LinearBackward"] == 3 and c["cpu::linear"] == 3
    assert c["Relu"] == 1 and c["ReluBackward"] == 1 and c["Tanh"] == 1 and c["TanhBackward"] == 1
    assert c["Sum"] == 1 and c["SumBackward"] == 1
    assert c["Optimizer.step#SGD.step"] == 1 and c["cpu::sgd_update"] == 1
    with profile() as prof2:
        opt.zero_grad()
    assert _counts(prof2) == {"Optimizer.zero_grad#SGD.zero_grad": 1}
    assert all(p.grad is None for p in model.parameters())
    assert not any(k.startswith("ProfilerStep") for k in c)  # step markers come with a schedule, as PyTorch's
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=100)
    lines = table.splitlines()
    header = lines[1].split("  ")
    header = [h.strip() for h in header if h.strip()]
    assert header == ["Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg", "# of Calls"]
    row = next(ln for ln in lines if ln.startswith("LinearBackward "))
    assert row.split()[-1] == "3"
    assert lines[-1].startswith("Self CPU time total:")
    # sorted by self time, descending
    selfs = [a.self_cpu_time_total for a in prof.key_averages()]
    shown = [ln.split()[0] for ln in lines[3:3 + len(selfs)]]
    by_key = {a.key: a.self_cpu_time_total for a in prof.key_averages()}
    assert [by_key[k] for k in shown] == sorted(selfs, reverse=True)
    assert len(prof.key_averages().table(sort_by="count", row_limit=2).splitlines()) == 3 + 2 + 2
    with pytest.raises(ValueError, match="sort_by"):
        prof.key_averages().table(sort_by="nonsense")


def test_table_columns_as_pytorch():
    """The same header as torch.profiler's table for a plain CPU profile."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as tprof:
        torch.ones(3, 3).sum()
    theirs = tprof.key_averages().table(sort_by="self_cpu_time_total", row_limit=3).splitlines()[1]
    with profile() as prof:
        _t(3, 3).sum()
    ours = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=3).splitlines()[1]
    assert ours.split() == theirs.split()


def test_self_times_sum_to_at_most_the_totals():
    model = _mlp()
    x = _t(4, 7)
    with profile(record_shapes=True) as prof:
        with record_function("forward"):
            y = model(x)
        (y * y).mean().backward()
    evs = prof.events()
    for e in evs:
        assert 0 <= e.self_cpu_time_total <= e.cpu_time_total + 1e-9
        kids = sum(c.cpu_time_total for c in e.cpu_children)
        assert kids <= e.cpu_time_total + 1e-6
        assert abs(e.self_cpu_time_total - (e.cpu_time_total - kids)) < 1e-3
    top = [e for e in evs if e.cpu_parent is None]
    assert abs(sum(e.self_cpu_time_total for e in evs) - sum(e.cpu_time_total for e in top)) < 1e-2
    for a in prof.key_averages():
        assert a.self_cpu_time_total <= a.cpu_time_total + 1e-9
    lin = next(e for e in evs if e.name == "Linear")
    assert lin.input_shapes == [[4, 7], [13, 7], [13]]


def _check_nesting(trace):
    by_tid = {}
    for ev in trace["traceEvents"]:
        if ev["ph"] == "X":
            assert isinstance(ev["ts"], (int, float)) and ev["dur"] >= 0 and isinstance(ev["name"], str)
            assert isinstance(ev["pid"], int) and isinstance(ev["tid"], int)
            by_tid.setdefault(ev["tid"], []).append(ev)
    for evs in by_tid.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []
        for ev in evs:
            end = ev["ts"] + ev["dur"]
            while stack and stack[-1] <= ev["ts"] + 1e-3:
                stack.pop()
            if stack:  # inside the open event: must end before it does
                assert end <= stack[-1] + 2e-3, ev
            stack.append(end)
    return by_tid


def test_chrome_trace_is_valid_and_nested(tmp_path):
    model = _mlp()
    opt = pe.optim.Adam(model.parameters())
    with profile(record_shapes=True, with_flops=True, schedule=schedule(wait=0, warmup=0, active=2, repeat=1)) as prof:
        for _ in range(2):
            with record_function("step", "batch of 5"):
                model(_t(5, 7)).sum().backward()
                opt.step()
            prof.step()
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(str(path))
    trace = json.loads(path.read_text())
    by_tid = _check_nesting(trace)
    assert len(by_tid) == 1
    names = {ev["name"] for ev in trace["traceEvents"] if ev["ph"] == "X"}
    assert {"ProfilerStep#0", "ProfilerStep#1", "step", "Linear", "LinearBackward", "cpu::linear",
            "Optimizer.step#Adam.step", "cpu::adam_update"} <= names
    lin = next(ev for ev in trace["traceEvents"] if ev["name"] == "cpu::linear")
    assert lin["args"]["Input Shapes"][0] == [5, 7] and lin["args"]["FLOPs"] == 2 * 5 * 13 * 7
    assert lin["cat"] == "kernel"
    step = next(ev for ev in trace["traceEvents"] if ev["name"] == "step")
    assert step["args"]["Record function args"] == "batch of 5" and step["cat"] == "user_annotation"
    assert any(ev["ph"] == "M" and ev["name"] == "thread_name" for ev in trace["traceEvents"])


def test_threads_get_their_own_tracks():
    def work():
        with record_function("worker"):
            (_t(3, 4, grad=True) * 2).sum().backward()

    with profile() as prof:
        th = threading.Thread(target=work)
        th.start()
        th.join()
        work()
    workers = [e for e in prof.events() if e.name == "worker"]
    assert len(workers) == 2 and workers[0].thread != workers[1].thread
    for w in workers:
        inner = {c.name for c in w.cpu_children}
        assert {"Mul", "Sum", "SumBackward", "MulBackward"} <= inner
    trace = prof.events()._like(prof.events())
    import os
    from pyengine.profiler._events import chrome_trace
    assert len(_check_nesting(chrome_trace(trace, os.getpid()))) == 2


def test_record_function_nests_and_decorates():
    @record_function("decorated")
    def f(x):
        return x.exp()

    x = _t(2, 3)
    with profile() as prof:
        with record_function("outer"):
            with record_function("inner"):
                y = x + 1
            f(y)
            f(y)
    ev = {e.name: e for e in prof.events()}
    assert ev["inner"].cpu_parent is ev["outer"] and ev["outer"].cpu_parent is None
    assert ev["Add"].cpu_parent is ev["inner"]
    decorated = [e for e in prof.events() if e.name == "decorated"]
    assert len(decorated) == 2 and all(d.cpu_parent is ev["outer"] for d in decorated)
    assert all([c.name for c in d.cpu_children] == ["Exp"] for d in decorated)
    # outside a profile: plain context manager and function
    with record_function("nothing"):
        pass
    assert np.allclose(f(x).numpy(), np.exp(x.numpy()))
    with pytest.raises(TypeError):
        record_function(3)


@pytest.mark.filterwarnings("ignore:Profiler won.t be using warmup")
@pytest.mark.parametrize("kw", [dict(wait=1, warmup=1, active=2, repeat=1),
                                dict(wait=0, warmup=0, active=1, repeat=2, skip_first=2),
                                dict(wait=2, warmup=1, active=3, repeat=0)])
def test_schedule_matches_pytorch(kw):
    ours, theirs = schedule(**kw), torch.profiler.schedule(**kw)
    for step in range(20):
        assert ours(step).name == theirs(step).name, step


def test_schedule_skips_wait_and_warmup_steps():
    ready = []
    x = _t(2, 2)
    with profile(schedule=schedule(wait=1, warmup=1, active=2, repeat=1),
                 on_trace_ready=lambda p: ready.append(sorted(e.name for e in p.events()
                                                              if not e.name.startswith("cpu::")))) as prof:
        for i in range(6):
            with record_function(f"work{i}"):
                x * 2
            prof.step()
    assert len(ready) == 1
    assert ready[0] == sorted(["ProfilerStep#2", "work2", "Mul", "ProfilerStep#3", "work3", "Mul"])
    assert prof.current_action == ProfilerAction.NONE and prof.step_num == 6
    # two cycles: on_trace_ready twice, each with its own steps
    ready.clear()
    with profile(schedule=schedule(wait=0, warmup=0, active=1, repeat=2),
                 on_trace_ready=lambda p: ready.append([e.name for e in p.events() if "#" in e.name])) as prof:
        for _ in range(4):
            x * 2
            prof.step()
    assert ready == [["ProfilerStep#0"], ["ProfilerStep#1"]]
    with pytest.raises(ValueError):
        schedule(wait=0, warmup=0, active=0)


def test_flops_of_matmul_linear_attention():
    M, K, N = 7, 3, 5
    a, b = _t(M, K, grad=True), _t(K, N, grad=True)
    with profile(with_flops=True) as prof:
        y = a @ b
        y.sum().backward()
        _t(2, 3, M, K) @ _t(3, K, N)  # batched, broadcast over the first axis
        F.linear(_t(11, K), _t(N, K), _t(N))
        q, k, v = _t(2, 3, 5, 4), _t(2, 3, 6, 4), _t(2, 3, 6, 7)
        F.scaled_dot_product_attention(q, k, v)
    mm = [e for e in prof.events() if e.name == "cpu::matmul"]
    # forward a @ b, backward g @ b^T and a^T @ g: each 2*M*N*K
    assert [e.flops for e in mm[:3]] == [2 * M * N * K] * 3
    assert mm[3].flops == 2 * 2 * 3 * M * N * K
    lin = next(e for e in prof.events() if e.name == "cpu::linear")
    assert lin.flops == 2 * 11 * N * K
    att = next(e for e in prof.events() if e.name == "cpu::attention_forward")
    assert att.flops == 2 * (2 * 3 * 5) * 6 * (4 + 7)
    avg = {a.key: a for a in prof.key_averages()}
    assert avg["cpu::matmul"].flops == sum(e.flops for e in mm)
    assert avg["cpu::matmul"].bytes > 0 and avg["cpu::matmul"].gflops_per_s > 0
    assert avg["MatMul"].flops is None  # counted once, by its kernel
    add_flops = avg["SumBackward"].flops  # no formula for a backward node: None
    assert add_flops is None
    table = prof.key_averages().table(sort_by="flops", row_limit=3)
    assert "Total FLOPs" in table and "GFLOP/s" in table and "% peak" in table and "Total Bytes" in table
    top = max(prof.key_averages(), key=lambda a: a.flops or 0)
    assert top.key == "cpu::attention_forward" and table.splitlines()[3].startswith(top.key)


def test_percent_of_peak_over_100_is_explained(monkeypatch):
    """FLOPs follow PyTorch's counter (causal attention's hidden scores included), so a row can pass 100% of the
    probe's peak; the table says why under it, and only then."""
    from pyengine.profiler import _events
    x = _t(64, 64)
    with profile(with_flops=True) as prof:
        x @ x
    for peak, shown in ((1e-9, True), (1e9, False)):
        monkeypatch.setattr(_events, "peak_gflops", lambda threads=None, peak=peak: peak)
        table = prof.key_averages().table(sort_by="flops", row_limit=3)
        assert ("Over 100% (cpu::matmul)" in table) == shown, table


@pytest.mark.parametrize("cls, kind, gates", [(nn.LSTM, "lstm", 4), (nn.GRU, "gru", 3), (nn.RNN, "rnn", 1)])
def test_recurrent_sequence_kernels_count_their_gemms(cls, kind, gates):
    """A sequence kernel counts its recurrent GEMMs: 2 * (T B rows) * w_hh's (gates H, H) elements, forward
    (h_{t-1} W_hh^T) and backward (dG_t W_hh) alike; the input projection is a GEMM kernel of its own."""
    T, B, I, H = 5, 3, 4, 7
    pe.manual_seed(0)
    m = cls(I, H)
    x = pe.tensor(np.random.default_rng(0).standard_normal((T, B, I)).astype(np.float32), requires_grad=True)
    with profile(with_flops=True) as prof:
        m(x)[0].sum().backward()
    ev = {e.name: e for e in prof.events() if "_sequence_" in e.name}
    assert set(ev) == {f"cpu::{kind}_sequence_forward", f"cpu::{kind}_sequence_backward"}
    for e in ev.values():
        assert e.flops == 2 * T * B * gates * H * H, (e.name, e.flops)


def test_pointwise_ops_count_numel_and_memory():
    x = _t(6, 5)
    with profile(with_flops=True, profile_memory=True) as prof:
        y = x * 3
        y.reshape(30)
    ev = {e.name: e for e in prof.events()}
    assert ev["Mul"].flops == 30 and ev["Mul"].self_cpu_memory_usage == 30 * 4
    assert ev["Reshape"].self_cpu_memory_usage == 0  # a view
    assert "CPU Mem" in prof.key_averages().table()


def test_nothing_recorded_when_not_profiling():
    K = pe.get_backend("cpu")
    orig_matmul = K.matmul
    x = _t(4, 4, grad=True)
    assert autograd._profiler is None
    with profile() as prof:
        (x @ x).sum().backward()
        assert autograd._profiler is not None and K.matmul is not orig_matmul
    n = len(prof.events())
    assert autograd._profiler is None and K.matmul is orig_matmul
    (x @ x).sum().backward()
    with record_function("outside"):
        x * 2
    assert len(prof._raw) == n and prof.events() is prof.events()
    # a profile that never records (always waiting) records nothing
    with profile(schedule=schedule(wait=5, warmup=0, active=1)) as idle:
        (x @ x).sum()
        idle.step()
    assert len(idle.events()) == 0 and autograd._profiler is None


def test_an_error_inside_leaves_nothing_installed():
    x = _t(2, 3)
    with pytest.raises(RuntimeError):
        with profile() as prof:
            with record_function("bad"):
                x @ x  # shapes do not match
    assert autograd._profiler is None
    bad = next(e for e in prof.events() if e.name == "bad")
    assert [c.name for c in bad.cpu_children] == ["MatMul"]
    with profile():
        with pytest.raises(RuntimeError, match="already recording"):
            profile().start()
    assert autograd._profiler is None


def test_custom_function_and_stack():
    class Twice(pe.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = _t(3, grad=True)
    with profile(with_stack=True) as prof:
        Twice.apply(x).sum().backward()
    ev = {e.name: e for e in reversed(prof.events())}  # the first of each name
    assert ev["Mul"].cpu_parent is ev["Twice"] and ev["TwiceBackward"].cpu_children[0].name == "Mul"
    assert any("test_profiler.py" in s for s in ev["Twice"].stack)
    assert prof.key_averages(group_by_stack_n=1)


def test_export_stacks(tmp_path):
    def model_forward(x):
        return (x * 2).exp()

    with profile(with_stack=True) as prof:
        model_forward(_t(50, 50))
    path = tmp_path / "stacks.txt"
    prof.export_stacks(str(path))
    lines = path.read_text().splitlines()
    assert lines and all(ln.rsplit(" ", 1)[1].isdigit() for ln in lines)
    assert any(ln.split(" ")[0].endswith("model_forward;Mul") for ln in lines)
    with pytest.raises(RuntimeError, match="with_stack"):
        with profile() as p2:
            pass
        p2.export_stacks(str(path))


def test_tensorboard_trace_handler(tmp_path):
    with profile(on_trace_ready=tensorboard_trace_handler(str(tmp_path / "tb"), worker_name="w")) as prof:
        _t(2, 2).exp()
    files = list((tmp_path / "tb").iterdir())
    assert len(files) == 1 and files[0].name.startswith("w.") and files[0].name.endswith(".pt.trace.json")
    assert prof.last_trace_path == str(files[0])
    _check_nesting(json.loads(files[0].read_text()))


def test_train_profile_writes_the_trace(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PYENGINE_CACHE_DIR", str(tmp_path / "tokens"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 40)
    out = tmp_path / "run"
    rc = cli_main(["train", "--data", str(corpus), "--steps", "6", "--out", str(out), "--n-layer", "1",
                   "--n-embd", "16", "--n-head", "2", "--block-size", "16", "--batch-size", "4",
                   "--eval-interval", "6", "--eval-iters", "1", "--preset", "tiny", "--profile", "2"])
    assert rc == 0
    printed = capsys.readouterr().out
    trace_path = out / "profile_trace.json"
    assert f"trace (chrome://tracing or https://ui.perfetto.dev): {trace_path}" in printed
    assert "profile of 2 training step(s)" in printed and "Self CPU %" in printed
    trace = json.loads(trace_path.read_text())
    _check_nesting(trace)
    steps = sorted(ev["name"] for ev in trace["traceEvents"] if ev["name"].startswith("ProfilerStep#"))
    assert steps == ["ProfilerStep#3", "ProfilerStep#4"]  # after the 3 warm-up steps
    names = {ev["name"] for ev in trace["traceEvents"]}
    assert {"Optimizer.step#AdamW.step", "PackedSelfAttention", "PackedSelfAttentionBackward",
            "cpu::attention_forward", "cpu::matmul"} <= names
    assert autograd._profiler is None
    # fewer steps than asked: the ones there are; the API returns the trace's path
    r = lm.train(lm.TrainConfig(data=str(corpus), preset="tiny", out=str(tmp_path / "r2"), max_steps=2,
                                batch_size=2, block_size=8, n_layer=1, n_head=1, n_embd=8, eval_interval=2,
                                eval_iters=1, profile=5), quiet=True)
    assert r["profile_trace"] == str(tmp_path / "r2" / "profile_trace.json")
    with pytest.raises(ValueError, match="profile"):
        lm.TrainConfig(profile=-1).resolved()


def test_reference_backend_kernels_are_recorded_by_name():
    pe.set_backend("reference")
    try:
        with profile(with_flops=True) as prof:
            _t(3, 4) @ _t(4, 2)
    finally:
        pe.set_backend("cpu")
    mm = next(e for e in prof.events() if e.name == "reference::matmul")
    assert mm.flops == 2 * 3 * 2 * 4 and mm.cpu_parent.name == "MatMul"
    import pyengine.backend.reference as ref
    assert not hasattr(ref.matmul, "__wrapped__")


def test_a_pytorch_program_profiles_unchanged(tmp_path):
    """torch.profiler under pyengine.as_torch is this profiler."""
    import os
    import subprocess
    import sys
    script = tmp_path / "prog.py"
    script.write_text(
        "import torch\n"
        "from torch.profiler import profile, record_function, ProfilerActivity\n"
        "m = torch.nn.Linear(4, 3)\n"
        "with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:\n"
        "    with record_function('model_inference'):\n"
        "        m(torch.randn(2, 4)).sum().backward()\n"
        "print(prof.key_averages().table(sort_by='cpu_time_total', row_limit=20))\n"  # all rows: no timing order
        f"prof.export_chrome_trace({str(tmp_path / 't.json')!r})\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "pyengine.as_torch", str(script)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "model_inference" in r.stdout and "LinearBackward" in r.stdout
    _check_nesting(json.loads((tmp_path / "t.json").read_text()))
