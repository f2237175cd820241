"""DataLoader with worker processes (num_workers > 0): PyTorch's semantics, failures, and cleanup.

Datasets are tiny and workers few: the cost is the workers' start (a fork: ~10 ms; spawn/forkserver run
in a subprocess script). Orphans are looked for in /proc: every worker's pid must be gone (reaped) after
the loader's iterator ends, whatever ended it.
"""
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import pyengine
from pyengine.utils.data import (DataLoader, Dataset, IterableDataset, TensorDataset, WorkerInfo, default_collate,
                                 get_worker_info)

pytestmark = [pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
              pytest.mark.filterwarnings("ignore:DataLoader.*worker processes on")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _alive(pid):
    """Whether ``pid`` is a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _children():
    """This process's child pids, zombies included (a zombie is a worker nobody reaped)."""
    me, out = os.getpid(), set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                out.add(int(d))
    return out


def _assert_gone(pids, within=5.0):
    deadline = time.monotonic() + within
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not [p for p in pids if _alive(p)], "worker processes outlived their loader"
    assert not (set(pids) & _children()), "worker processes left unreaped"


class Probe(Dataset):
    """Sample i: (i, worker id, worker pid, a pyengine, NumPy and Python random draw); ``get_info`` is
    pyengine's or torch's get_worker_info, so the same class runs under both loaders."""

    def __init__(self, n, get_info=get_worker_info, fail_at=None, sleep_at=None, kill_at=None):
        self.n, self.get_info = n, get_info
        self.fail_at, self.sleep_at, self.kill_at = fail_at, sleep_at, kill_at

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == self.fail_at:
            raise ValueError(f"sample {i} is corrupt")
        if i == self.sleep_at:
            time.sleep(1.0)
        if i == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        info = self.get_info()
        return (i, -1 if info is None else info.id, os.getpid(), float(pyengine.rand(()).item()),
                int(np.random.randint(2 ** 31)), random.random())


def _batches(loader):
    """Each batch's fields as lists (a field of strings is already one)."""
    return [[t if isinstance(t, list) else t.tolist() for t in b] for b in loader]


# ---------------------------------------------------------------------- same batches, same order


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("batch_size,drop_last,shuffle", [(4, False, True), (5, True, True), (1, False, False),
                                                          (30, False, True)])
def test_same_batches_in_the_same_order_as_without_workers(workers, batch_size, drop_last, shuffle):
    x = np.arange(46, dtype=np.float32).reshape(23, 2)
    for ds in (TensorDataset(x, np.arange(23)), Probe(23)):
        runs = []
        for w in (0, workers):
            pyengine.manual_seed(7)
            loader = DataLoader(ds, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=w)
            runs.append([b[0].tolist() for b in loader])
            assert len(runs[-1]) == len(loader)
        assert runs[0] == runs[1]
        n = sum(len(b) for b in runs[0])
        assert n == (23 // batch_size * batch_size if drop_last else 23)


def test_collate_fn_batch_sampler_no_batching_and_options():
    ds = Probe(10)
    sums = list(DataLoader(ds, batch_size=3, num_workers=2, collate_fn=lambda s: sum(t[0] for t in s),
                           pin_memory=True, prefetch_factor=1))
    assert sums == [3, 12, 21, 9]
    bs = [[9, 0], [1], [5, 5, 5]]
    assert [b[0].tolist() for b in DataLoader(ds, batch_sampler=bs, num_workers=2)] == bs
    singles = list(DataLoader(ds, batch_size=None, num_workers=2))
    assert [s[0] for s in singles] == list(range(10))
    loader = DataLoader(ds, batch_size=4, num_workers=2)
    it = iter(loader)
    assert len(it) == len(loader) == 3
    assert [b[0].tolist() for b in it] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]

    class Batched(Dataset):  # fetches whole batches, as PyTorch's __getitems__ protocol
        def __len__(self):
            return 6

        def __getitems__(self, idx):
            return [(i * 10,) for i in idx]

    assert [b[0].tolist() for b in DataLoader(Batched(), batch_size=4, num_workers=2)] == [[0, 10, 20, 30], [40, 50]]


def test_round_robin_worker_info_and_torch_agree():
    """Batch k comes from worker k mod W; get_worker_info is None in the main process; with the same
    sampler indices our batches and worker ids are PyTorch's."""
    assert get_worker_info() is None
    order = [7, 3, 3, 12, 0, 5, 9, 1, 14, 2]
    ours = _batches(DataLoader(Probe(15), batch_size=3, sampler=order, num_workers=2))
    assert [b[0] for b in ours] == [order[i:i + 3] for i in range(0, 10, 3)]
    assert [b[1] for b in ours] == [[k % 2] * len(b[0]) for k, b in enumerate(ours)]
    torch = pytest.importorskip("torch")
    theirs = _batches(torch.utils.data.DataLoader(Probe(15, torch.utils.data.get_worker_info), batch_size=3,
                                                  sampler=order, num_workers=2))
    assert [b[:2] for b in ours] == [b[:2] for b in theirs]


def test_worker_info_fields_seeds_and_reproducibility():
    """Worker i is seeded with base + i (base drawn from the main generator), NumPy as PyTorch seeds it."""

    class Info(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            info = get_worker_info()
            return (isinstance(info, WorkerInfo), info.id, info.num_workers, info.seed, type(info.dataset).__name__,
                    int(np.random.randint(2 ** 31)))

    def run(seed):
        pyengine.manual_seed(seed)
        return _batches(DataLoader(Info(), batch_size=2, num_workers=2))

    a = run(3)
    assert a == run(3) and a != run(4)
    (ok0, id0, nw0, seed0, name0, draw0), (ok1, id1, nw1, seed1, name1, draw1) = [[c[0] for c in b] for b in a]
    assert ok0 and ok1 and (id0, id1) == (0, 1) and nw0 == nw1 == 2 and name0 == "Info"
    base = seed0
    assert seed1 == base + 1 and 0 <= base < 2 ** 63
    for wid, draw in ((0, draw0), (1, draw1)):
        words = np.random.SeedSequence([wid, base & 0xFFFFFFFF, base >> 32, 0]).generate_state(4)
        assert draw == np.random.RandomState(words).randint(2 ** 31)
    try:
        from torch.utils.data._utils.worker import _generate_state
    except ImportError:
        return
    assert _generate_state(base, 1) == np.random.SeedSequence([1, base & 0xFFFFFFFF, base >> 32, 0]) \
        .generate_state(4).tolist()


def test_random_augmentation_reproducible_with_manual_seed():
    def run(seed, workers):
        pyengine.manual_seed(seed)
        loader = DataLoader(Probe(12), batch_size=3, shuffle=True, num_workers=workers)
        return [[b[0].tolist(), b[3].tolist(), b[4].tolist(), b[5].tolist()] for b in loader]

    a = run(11, 2)
    assert a == run(11, 2)
    assert a != run(12, 2)
    assert [b[0] for b in a] == [b[0] for b in run(11, 0)]       # the order does not depend on workers
    draws = [v for b in a for v in b[2]]
    assert len(set(draws)) == len(draws)                          # the workers' streams differ


# ---------------------------------------------------------------------- IterableDataset


class _Stream:
    """0..n-1, or this worker's share of it once ``shard`` is set (by worker_init_fn, as PyTorch's docs)."""

    def __init__(self, n):
        self.n, self.shard = n, None

    def __iter__(self):
        start, step = self.shard or (0, 1)
        return iter(range(start, self.n, step))


class Stream(_Stream, IterableDataset):
    pass


def _shard(worker_id):
    info = get_worker_info()
    info.dataset.shard = (worker_id, info.num_workers)


def test_iterable_dataset_each_worker_iterates_whole_stream_unless_sharded():
    whole = [b.tolist() for b in DataLoader(Stream(7), batch_size=3, num_workers=2)]
    assert whole == [[0, 1, 2], [0, 1, 2], [3, 4, 5], [3, 4, 5], [6], [6]]
    dropped = [b.tolist() for b in DataLoader(Stream(7), batch_size=3, num_workers=2, drop_last=True)]
    assert dropped == [[0, 1, 2], [0, 1, 2], [3, 4, 5], [3, 4, 5]]
    sharded = [b.tolist() for b in DataLoader(Stream(11), batch_size=2, num_workers=2, worker_init_fn=_shard)]
    assert sharded == [[0, 2], [1, 3], [4, 6], [5, 7], [8, 10], [9]]
    assert sorted(v for b in sharded for v in b) == list(range(11))
    singles = [int(v) for v in DataLoader(Stream(5), batch_size=None, num_workers=2, worker_init_fn=_shard)]
    assert singles == [0, 1, 2, 3, 4]
    torch = pytest.importorskip("torch")

    def torch_shard(worker_id):
        info = torch.utils.data.get_worker_info()
        info.dataset.shard = (worker_id, info.num_workers)

    tud = torch.utils.data

    class TorchStream(_Stream, tud.IterableDataset):
        pass

    for n, bs, drop, init in ((7, 3, False, None), (7, 3, True, None), (11, 2, False, True)):
        ours = [b.tolist() for b in DataLoader(Stream(n), batch_size=bs, drop_last=drop, num_workers=2,
                                               worker_init_fn=_shard if init else None)]
        theirs = [b.tolist() for b in tud.DataLoader(TorchStream(n), batch_size=bs, drop_last=drop,
                                                     num_workers=2, worker_init_fn=torch_shard if init else None)]
        assert ours == theirs


# ---------------------------------------------------------------------- failures name the worker


def test_exception_in_worker_names_worker_with_its_traceback():
    before = _children()
    with pytest.raises(ValueError) as excinfo:
        list(DataLoader(Probe(12, fail_at=5), batch_size=2, num_workers=2))   # batch 2: worker 0
    msg = str(excinfo.value)
    assert msg.startswith("Caught ValueError in DataLoader worker process 0.\nOriginal Traceback")
    assert "sample 5 is corrupt" in msg and "test_dataloader_workers.py" in msg and "__getitem__" in msg
    del excinfo
    assert _children() <= before

    class Missing(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {}["label"]

    with pytest.raises(KeyError, match=r"(?s)Caught KeyError in DataLoader worker process 0\.\nOriginal.*'label'"):
        next(iter(DataLoader(Missing(), batch_size=2, num_workers=2)))

    def bad_init(worker_id):
        if worker_id == 1:
            raise OSError("cannot open the shard")

    with pytest.raises(OSError, match=r"(?s)worker process 1\..*bad_init.*cannot open the shard"):
        list(DataLoader(Probe(8), batch_size=2, num_workers=2, worker_init_fn=bad_init))
    with pytest.raises(Exception, match="worker process 0 while sending its batch"):   # a lambda cannot be pickled
        list(DataLoader(Probe(4), batch_size=2, num_workers=2, collate_fn=lambda samples: (lambda: samples)))
    assert _children() <= before


def test_killed_worker_is_a_clear_error_not_a_hang():
    before = _children()
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid \d+\) exited unexpectedly: worker 1 was killed "
                                           r"by signal SIGKILL"):
        list(DataLoader(Probe(12, kill_at=6), batch_size=2, num_workers=2))   # batch 3: worker 1
    assert time.monotonic() - t0 < 5
    assert _children() <= before

    class Exits(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            os._exit(3)

    with pytest.raises(RuntimeError, match=r"exited unexpectedly: worker 0 exited with code 3"):
        list(DataLoader(Exits(), batch_size=2, num_workers=2))
    assert _children() <= before


def test_timeout_names_worker_and_seconds():
    before = _children()
    it = iter(DataLoader(Probe(8, sleep_at=2), batch_size=2, num_workers=2, timeout=0.2))
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"DataLoader timed out after 0\.2 seconds waiting for batch 1 from "
                                           r"worker 1 \(pid \d+\)"):
        for _ in it:
            pass
    assert time.monotonic() - t0 < 0.9      # raised before the slow sample finished
    workers = _children() - before
    del it                                   # shutdown waits for the slow sample, then the worker exits
    _assert_gone(workers)
    assert len(list(DataLoader(Probe(8), batch_size=2, num_workers=2, timeout=5))) == 4


# ---------------------------------------------------------------------- no orphans, persistent workers


def _pids(batch):
    return set(batch[2].tolist())


def test_no_orphans_after_break_exception_del_and_end():
    before = _children()
    loader = DataLoader(Probe(40), batch_size=2, num_workers=2)
    for batch in loader:                       # an early break
        seen = _pids(batch) | _pids(next(iter([batch])))
        break
    assert len(_children() - before) == 0
    _assert_gone(seen)
    with pytest.raises(ZeroDivisionError):     # an exception in the loop's body
        for batch in loader:
            seen = _pids(batch)
            1 / 0
    _assert_gone(seen)
    it = iter(loader)                          # the iterator garbage-collected mid-epoch
    seen = _pids(next(it)) | _pids(next(it))
    assert seen <= _children() and len(seen) == 2
    del it
    _assert_gone(seen)
    seen = set().union(*(_pids(b) for b in loader))   # a whole epoch
    _assert_gone(seen)
    assert _children() <= before


def test_persistent_workers_reuse_processes_and_keep_the_order():
    before = _children()

    def epochs(workers, persistent, break_first=None):
        # Probe draws from the global generators: without workers that would move the default generator,
        # hence the next epoch's order (as in PyTorch); a loader generator keeps the orders comparable.
        loader = DataLoader(Probe(13), batch_size=3, shuffle=True, num_workers=workers,
                            persistent_workers=persistent, generator=pyengine.Generator().manual_seed(5))
        out = []
        for epoch in range(3):
            batches = []
            for k, b in enumerate(loader):
                batches.append(b)
                if epoch == 0 and k == break_first:
                    break
            out.append(batches)
        return out, loader

    for break_first in (None, 1):
        ref, _ = epochs(0, False, break_first)
        got, loader = epochs(2, True, break_first)
        assert [[b[0].tolist() for b in e] for e in got] == [[b[0].tolist() for b in e] for e in ref]
        pids = [set().union(*(_pids(b) for b in e)) for e in got]
        assert len(pids[0]) == 2 and pids[0] == pids[1] == pids[2] and pids[0] <= _children()
        draws = [[b[4].tolist() for b in e] for e in got]
        assert draws[1] != draws[2]            # the workers' generators go on from epoch to epoch
        del loader, got
        _assert_gone(pids[0])
    loader = DataLoader(Stream(9), batch_size=2, num_workers=2, persistent_workers=True, worker_init_fn=_shard)
    assert [[b.tolist() for b in loader] for _ in range(2)] == [[[0, 2], [1, 3], [4, 6], [5, 7], [8]]] * 2
    del loader
    assert _children() <= before


# ---------------------------------------------------------------------- threads


def test_workers_use_one_thread_even_after_the_parent_used_its_pool():
    """A forked worker inherits OpenMP's state; a multi-threaded kernel there would hang (libgomp is not
    fork-safe once its pool ran), so workers run one thread, as PyTorch's."""
    a = pyengine.randn(512, 512)
    (a @ a).sum()                              # the parent's OpenMP pool has run

    class Threads(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            x = pyengine.randn(512, 512)
            (x @ x).sum()
            pools = {}
            try:
                import threadpoolctl
                pools = {p["internal_api"]: p["num_threads"] for p in threadpoolctl.threadpool_info()}
            except ImportError:
                pass
            return pyengine.get_num_threads(), os.environ.get("OMP_NUM_THREADS"), pools

    got = list(DataLoader(Threads(), batch_size=None, num_workers=2, timeout=30))
    assert all(n == 1 and omp == "1" and set(pools.values()) <= {1} for n, omp, pools in got)


# ---------------------------------------------------------------------- subprocess: start methods, Ctrl-C

SCRIPT = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    import pyengine
    from pyengine.utils.data import DataLoader, Dataset, get_worker_info

    class Items(Dataset):
        def __init__(self, delay):
            self.delay = delay
        def __len__(self):
            return 400
        def __getitem__(self, i):
            time.sleep(self.delay)
            info = get_worker_info()
            return i, -1 if info is None else info.id, os.getpid(), pyengine.get_num_threads()

    def init(worker_id):
        np.random.seed(worker_id)

    if __name__ == "__main__":
        mode = sys.argv[1]
        for method in mode.split(",") if mode != "epoch" and mode != "persistent" else ():
            pyengine.manual_seed(0)
            loader = DataLoader(Items(0.0), batch_size=50, shuffle=True, num_workers=2, worker_init_fn=init,
                                multiprocessing_context=method)
            batches = list(loader)
            pyengine.manual_seed(0)
            ref = [b[0].tolist() for b in DataLoader(Items(0.0), batch_size=50, shuffle=True)]
            assert [b[0].tolist() for b in batches] == ref
            assert [b[1].tolist() for b in batches] == [[k % 2] * 50 for k in range(8)]
            assert {b[3].tolist()[0] for b in batches} == {1}
            print(method, "ok", flush=True)
        if mode in ("epoch", "persistent"):
            loader = DataLoader(Items(0.02), batch_size=2, num_workers=2, persistent_workers=mode == "persistent")
            pids = set()
            for k, b in enumerate(loader):
                pids |= set(b[2].tolist())
                if len(pids) == 2 and k == 2:
                    print(" ".join(map(str, sorted(pids))), flush=True)
""")


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    path = tmp_path_factory.mktemp("loader") / "loader_script.py"
    path.write_text(SCRIPT)
    return str(path)


def _run(script, *args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)


def test_spawn_and_forkserver_contexts(script):
    """The dataset class lives in the script's __main__, as in a user's program."""
    p = _run(script, "spawn,forkserver")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and out.split() == ["spawn", "ok", "forkserver", "ok"], err


@pytest.mark.parametrize("how,mode", [("ctrl-c to the group", "epoch"), ("ctrl-c to the group", "persistent"),
                                      ("ctrl-c to the main process", "epoch"), ("main process killed", "persistent")])
def test_no_orphans_after_ctrl_c_or_a_killed_main_process(script, how, mode):
    p = _run(script, mode, start_new_session=True)
    pids = [int(x) for x in p.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(q) for q in pids), p.stderr.read()
    if how == "ctrl-c to the group":        # what a terminal's Ctrl-C does
        os.killpg(p.pid, signal.SIGINT)
    elif how == "ctrl-c to the main process":
        os.kill(p.pid, signal.SIGINT)
    else:
        os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    err = p.stderr.read()
    if how != "main process killed":
        assert p.returncode == -signal.SIGINT and err.rstrip().endswith("KeyboardInterrupt"), err
        assert "Traceback" not in err.split("KeyboardInterrupt")[-1]
        assert err.count("Traceback") == 1, err      # the main process's only: workers exit quietly
    _assert_gone(pids, within=5.0)                   # killed main: the workers notice within ~1 s
