"""pyengine.utils.data (datasets, samplers, DataLoader) and pyengine.preprocessing."""
import collections
import json

import numpy as np
import pytest

import pyengine
from pyengine.preprocessing import (MinMaxScaler, StandardScaler, Tokenizer, one_hot, pad_sequences,
                                    text_to_word_sequence, to_categorical, tokenizer_from_json, train_test_split)
from pyengine.utils.data import (BatchSampler, ChainDataset, ConcatDataset, DataLoader, Dataset, IterableDataset,
                                 RandomSampler, Sampler, SequentialSampler, StackDataset, Subset,
                                 SubsetRandomSampler, TensorDataset, WeightedRandomSampler, default_collate,
                                 random_split)


def _seeded(seed):
    return pyengine.Generator().manual_seed(seed)


def _dataset(rng, n=23):
    x = rng.standard_normal((n, 3)).astype(np.float32)
    y = rng.integers(0, 5, n)
    return x, y, TensorDataset(pyengine.from_numpy(x), pyengine.from_numpy(y))


def _order(loader):
    """The sample order of one epoch, read from a dataset whose second tensor is arange(n)."""
    return np.concatenate([b[1].numpy() for b in loader]).tolist()


class Pairs(Dataset):
    """A plain map-style dataset (no fast path): sample i = (x[i] as ndarray, int label, float weight)."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i]), float(i) / 2


# ---------------------------------------------------------------------- datasets


def test_tensor_dataset_items_and_size_check(rng):
    x, y, ds = _dataset(rng, 7)
    assert len(ds) == 7
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi.numpy(), x[3])
    assert yi.shape == () and yi.item() == y[3]
    ds2 = TensorDataset(x, y)  # NumPy arrays are accepted
    np.testing.assert_array_equal(ds2[6][0].numpy(), x[6])
    with pytest.raises(ValueError, match=r"size mismatch.*\(7, 3\), \(6,\)"):
        TensorDataset(pyengine.from_numpy(x), pyengine.from_numpy(y[:6]))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()


def test_subset_concat_chain():
    a, b = list(range(5)), list(range(10, 13))

    class L(Dataset):
        def __init__(self, items):
            self.items = items

        def __len__(self):
            return len(self.items)

        def __getitem__(self, i):
            return self.items[i]

    cat = L(a) + L(b)
    assert isinstance(cat, ConcatDataset) and len(cat) == 8
    assert [cat[i] for i in range(8)] == a + b
    assert cat[-1] == 12 and cat[-8] == 0
    with pytest.raises(IndexError):
        cat[8]
    sub = Subset(cat, [7, 0, 5])
    assert len(sub) == 3 and [sub[i] for i in range(3)] == [12, 0, 10]

    class It(IterableDataset):
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            return iter(range(self.n))

        def __len__(self):
            return self.n

    chain = It(3) + It(2)
    assert isinstance(chain, ChainDataset) and list(chain) == [0, 1, 2, 0, 1]
    with pytest.raises(TypeError, match="IterableDataset"):
        ConcatDataset([L(a), It(2)])


@pytest.mark.parametrize("n,lengths,sizes", [(17, [0.5, 0.3, 0.2], [9, 5, 3]), (10, [3, 7], [3, 7]),
                                             (11, [0.25, 0.25, 0.25, 0.25], [3, 3, 3, 2]), (1, [1.0], [1])])
def test_random_split_sizes_disjoint_cover(n, lengths, sizes):
    ds = TensorDataset(pyengine.arange(n))
    parts = random_split(ds, lengths, generator=_seeded(0))
    assert [len(p) for p in parts] == sizes
    seen = [p.indices[i] for p in parts for i in range(len(p))]
    assert sorted(seen) == list(range(n))       # disjoint and covering
    again = random_split(ds, lengths, generator=_seeded(0))
    assert [p.indices for p in parts] == [p.indices for p in again]
    assert parts[0][0][0].item() == parts[0].indices[0]


def test_random_split_errors_and_default_generator():
    ds = TensorDataset(pyengine.arange(10))
    with pytest.raises(ValueError, match="does not equal"):
        random_split(ds, [3, 3])
    with pytest.raises(ValueError, match="non-negative"):
        random_split(ds, [12, -2])
    with pytest.warns(UserWarning, match="empty"):
        random_split(TensorDataset(pyengine.arange(2)), [0.9, 0.1, 0.0])
    pyengine.manual_seed(5)
    a = random_split(ds, [5, 5])[0].indices
    pyengine.manual_seed(5)
    assert random_split(ds, [5, 5])[0].indices == a


def test_random_split_fractions_match_torch():
    torch = pytest.importorskip("torch")
    for n, fr in [(17, [0.5, 0.3, 0.2]), (11, [0.1, 0.2, 0.7]), (101, [1 / 3, 1 / 3, 1 / 3])]:
        ours = [len(p) for p in random_split(TensorDataset(pyengine.arange(n)), fr)]
        theirs = [len(p) for p in torch.utils.data.random_split(range(n), fr)]
        assert ours == theirs


# ---------------------------------------------------------------------- samplers


def test_samplers():
    assert list(SequentialSampler(range(4))) == [0, 1, 2, 3]
    r = list(RandomSampler(range(9), generator=_seeded(1)))
    assert sorted(r) == list(range(9)) and r == list(RandomSampler(range(9), generator=_seeded(1)))
    long = list(RandomSampler(range(4), num_samples=10, generator=_seeded(2)))
    assert len(long) == 10 and sorted(long[:4]) == sorted(long[4:8]) == [0, 1, 2, 3]
    rep = list(RandomSampler(range(3), replacement=True, num_samples=50, generator=_seeded(3)))
    assert len(rep) == 50 and set(rep) <= {0, 1, 2}
    assert sorted(SubsetRandomSampler([5, 2, 9], generator=_seeded(0))) == [2, 5, 9]
    w = WeightedRandomSampler([0.0, 1.0, 3.0], num_samples=4000, generator=_seeded(4))
    counts = np.bincount(list(w), minlength=3)
    assert counts[0] == 0 and 2.5 < counts[2] / counts[1] < 3.5
    assert list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False)) == [[0, 1], [2, 3], [4]]
    assert list(BatchSampler(range(5), 2, drop_last=True)) == [[0, 1], [2, 3]]
    assert len(BatchSampler(range(5), 2, False)) == 3 and len(BatchSampler(range(5), 2, True)) == 2
    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(range(5), 0, False)
    with pytest.raises(ValueError, match="num_samples"):
        RandomSampler([])
    with pytest.raises(TypeError, match="pyengine.Generator"):
        RandomSampler(range(3), generator=np.random.default_rng(0))


def test_huge_num_samples_are_drawn_lazily():
    """num_samples=10**10 would be a 74 GiB index array: len() and the first items must cost kilobytes."""
    import itertools
    import tracemalloc
    tracemalloc.start()
    try:
        g = _seeded(0)
        rep = RandomSampler(range(10), replacement=True, num_samples=10 ** 10, generator=g)
        chained = RandomSampler(range(10), num_samples=10 ** 10, generator=g)
        weighted = WeightedRandomSampler([1.0, 0.0, 3.0], num_samples=10 ** 10, generator=g)
        for s in (rep, chained, weighted):
            assert len(s) == 10 ** 10
            first = list(itertools.islice(iter(s), 25))
            assert len(first) == 25 and set(first) <= set(range(10))
        assert set(itertools.islice(iter(weighted), 200)) == {0, 2}
        assert sorted(list(itertools.islice(iter(chained), 20))[10:]) == list(range(10))
        batches = BatchSampler(rep, 64, drop_last=True)
        assert len(batches) == 10 ** 10 // 64 and len(next(iter(batches))) == 64
        loader = DataLoader(TensorDataset(pyengine.arange(10)), batch_size=64, sampler=rep)
        assert len(loader) == -(-10 ** 10 // 64) and next(iter(loader))[0].shape == (64,)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2 ** 20, f"{peak / 2 ** 20:.1f} MiB"


@pytest.mark.parametrize("make", [
    lambda: RandomSampler(range(7), replacement=True, num_samples=10_000, generator=_seeded(1)),
    lambda: RandomSampler(range(1000), num_samples=9_001, generator=_seeded(2)),
    lambda: WeightedRandomSampler(np.arange(1.0, 6.0), 9_000, generator=_seeded(3)),
    lambda: WeightedRandomSampler(np.arange(1.0, 6.0), 4, replacement=False, generator=_seeded(3)),
    lambda: SequentialSampler(range(8_193)),
    lambda: SubsetRandomSampler([5, 1, 8, 2], generator=_seeded(4)),
])
def test_sampler_chunks_iteration_and_array_batches_agree(make):
    """The fast path's index arrays (chunked draws, batches across chunk boundaries) are what iterating
    gives: same generator seed, same indices."""
    ref = list(make())
    chunks = np.concatenate(list(make()._index_chunks())).tolist()
    assert chunks == ref and all(isinstance(i, int) for i in ref[:3])
    for bs, drop in ((1000, False), (1000, True), (3, False)):
        arrays = [a.tolist() for a in BatchSampler(make(), bs, drop)._array_batches()]
        assert arrays == list(BatchSampler(make(), bs, drop))
    if isinstance(make(), WeightedRandomSampler) and make().replacement:
        counts = np.bincount(ref, minlength=5) / len(ref)
        np.testing.assert_allclose(counts, np.arange(1, 6) / 15, atol=0.02)


def test_torch_module_paths_re_export_one_implementation():
    import importlib
    import pyengine.utils.data as data
    paths = {"dataloader": ["DataLoader", "default_collate", "default_convert", "get_worker_info"],
             "dataset": ["Dataset", "TensorDataset", "ConcatDataset", "ChainDataset", "StackDataset", "Subset",
                         "random_split", "IterableDataset"],
             "sampler": ["Sampler", "RandomSampler", "SequentialSampler", "BatchSampler", "SubsetRandomSampler",
                         "WeightedRandomSampler"],
             "distributed": ["DistributedSampler"]}
    for module, names in paths.items():
        mod = importlib.import_module(f"pyengine.utils.data.{module}")
        for name in names:
            assert getattr(mod, name) is getattr(data, name), (module, name)
    from pyengine.utils.distributed_sampler import DistributedSampler
    assert DistributedSampler is data.DistributedSampler
    torch = pytest.importorskip("torch")
    public = {n for n in torch.utils.data.__all__ if "DataPipe" not in n and n[0] != "_"} - {
        "DFIterDataPipe", "DataChunk", "functional_datapipe", "guaranteed_datapipes_determinism",
        "non_deterministic", "argument_validation", "runtime_validation", "runtime_validation_disabled"}
    assert public <= set(data.__all__), public - set(data.__all__)


def test_stack_dataset():
    a, b = TensorDataset(pyengine.arange(4)), list("wxyz")
    t = StackDataset(a, b)
    assert len(t) == 4 and t[2][1] == "y" and t[2][0][0].item() == 2
    d = StackDataset(x=a, label=b)
    assert set(d[1]) == {"x", "label"} and d[1]["label"] == "x"
    batch = next(iter(DataLoader(d, batch_size=3)))
    assert batch["label"] == ["w", "x", "y"] and batch["x"][0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="size mismatch"):
        StackDataset(a, b[:3])
    with pytest.raises(ValueError, match="either"):
        StackDataset(a, x=b)


# ---------------------------------------------------------------------- DataLoader


@pytest.mark.parametrize("batch_size,drop_last", [(5, False), (5, True), (1, False), (23, False), (40, False),
                                                  (40, True)])
def test_loader_batches_in_order(rng, batch_size, drop_last):
    x, y, ds = _dataset(rng, 23)
    loader = DataLoader(ds, batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    expected = 23 // batch_size if drop_last else -(-23 // batch_size)
    assert len(loader) == len(batches) == expected
    if not batches:
        return
    assert all(isinstance(b, list) and len(b) == 2 for b in batches)
    assert all(b[0].shape == (batch_size, 3) for b in batches[:-1])
    xs = np.concatenate([b[0].numpy() for b in batches])
    n = len(xs)
    assert n == (23 // batch_size) * batch_size if drop_last else n == 23
    np.testing.assert_array_equal(xs, x[:n])
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y[:n])
    assert batches[0][0].dtype == pyengine.float32 and batches[0][1].dtype == pyengine.int64


def test_shuffle_reproducible_with_generator():
    ds = TensorDataset(pyengine.randn(31, 2), pyengine.arange(31))
    a = DataLoader(ds, batch_size=4, shuffle=True, generator=_seeded(11))
    b = DataLoader(ds, batch_size=4, shuffle=True, generator=_seeded(11))
    epochs_a = [_order(a) for _ in range(3)]
    epochs_b = [_order(b) for _ in range(3)]
    assert epochs_a == epochs_b                       # same seed, same sequence of epochs
    assert all(sorted(e) == list(range(31)) for e in epochs_a)
    assert epochs_a[0] != epochs_a[1]                 # a new order each epoch
    assert epochs_a[0] != list(range(31))
    c = DataLoader(ds, batch_size=4, shuffle=True, generator=_seeded(12))
    assert _order(c) != epochs_a[0]


def test_shuffle_reproducible_with_manual_seed():
    ds = TensorDataset(pyengine.arange(29))
    loader = DataLoader(ds, batch_size=8, shuffle=True)

    def run():
        return [np.concatenate([b[0].numpy() for b in loader]).tolist() for _ in range(2)]

    pyengine.manual_seed(123)
    first = run()
    pyengine.manual_seed(123)
    assert run() == first
    assert first[0] != first[1]


@pytest.mark.parametrize("shuffle,drop_last", [(False, False), (True, False), (True, True)])
def test_fast_path_equals_generic_path(rng, monkeypatch, shuffle, drop_last):
    x, y, ds = _dataset(rng, 37)
    fast = DataLoader(ds, batch_size=6, shuffle=shuffle, drop_last=drop_last, generator=_seeded(3))
    slow = DataLoader(ds, batch_size=6, shuffle=shuffle, drop_last=drop_last, generator=_seeded(3),
                      collate_fn=default_collate)   # an explicit collate_fn turns the fast path off
    slow_batches = [list(b) for b in slow]
    # The fast path must not fetch samples one by one.
    monkeypatch.setattr(TensorDataset, "__getitem__", lambda self, i: pytest.fail("per-sample fetch"))
    fast_batches = list(fast)
    assert len(fast_batches) == len(slow_batches) == len(fast)
    for fb, sb in zip(fast_batches, slow_batches):
        for f, s in zip(fb, sb):
            assert f.dtype == s.dtype and f.shape == s.shape
            np.testing.assert_array_equal(f.numpy(), s.numpy())


def test_fast_path_through_random_split_and_custom_sampler(rng):
    x, y, ds = _dataset(rng, 41)
    train, val = random_split(ds, [0.7, 0.3], generator=_seeded(8))
    for part in (train, val):
        fast = [b for b in DataLoader(part, batch_size=5, shuffle=True, generator=_seeded(1))]
        slow = [b for b in DataLoader(part, batch_size=5, shuffle=True, generator=_seeded(1),
                                      collate_fn=default_collate)]
        for fb, sb in zip(fast, slow):
            np.testing.assert_array_equal(fb[0].numpy(), sb[0].numpy())
            np.testing.assert_array_equal(fb[1].numpy(), sb[1].numpy())
        rows = np.concatenate([b[0].numpy() for b in fast])
        np.testing.assert_array_equal(np.sort(rows, axis=0), np.sort(x[part.indices], axis=0))
    class Reversed(SequentialSampler):          # overrides __iter__ only: the inherited _indices must not be used
        def __iter__(self):
            return iter(range(len(self.data_source) - 1, -1, -1))

    rev = np.concatenate([b[1].numpy() for b in DataLoader(ds, batch_size=4, sampler=Reversed(ds))])
    np.testing.assert_array_equal(rev, y[::-1])
    order = [7, 3, 3, 40, 0]
    batches = list(DataLoader(ds, batch_size=2, sampler=order))
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y[order])


def test_requires_grad_tensors_keep_grad_path():
    w = pyengine.randn(6, 2, requires_grad=True)
    (xb,) = next(iter(DataLoader(TensorDataset(w), batch_size=3)))
    assert xb.requires_grad
    xb.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.r_[np.ones((3, 2)), np.zeros((3, 2))])


def test_default_collate_tuples_dicts_and_numbers(rng):
    x = rng.standard_normal((9, 4))
    y = rng.integers(0, 3, 9)
    batches = list(DataLoader(Pairs(x, y), batch_size=4))
    assert len(batches) == 3
    xb, yb, wb = batches[0]
    assert xb.dtype == pyengine.float64 and xb.shape == (4, 4)   # numpy float64 kept
    assert yb.dtype == pyengine.int64 and yb.tolist() == y[:4].tolist()
    assert wb.dtype == pyengine.float64 and wb.tolist() == [0.0, 0.5, 1.0, 1.5]   # Python floats: float64
    assert batches[-1][0].shape == (1, 4)

    Point = collections.namedtuple("Point", "a b")
    samples = [{"x": np.full(2, i, np.float32), "meta": {"id": i, "name": f"s{i}", "ok": i % 2 == 0},
                "seq": [i, i + 1], "p": Point(i, float(i))} for i in range(3)]
    b = default_collate(samples)
    assert set(b) == {"x", "meta", "seq", "p"}
    assert b["x"].dtype == pyengine.float32 and b["x"].shape == (3, 2)
    assert b["meta"]["id"].tolist() == [0, 1, 2] and b["meta"]["name"] == ["s0", "s1", "s2"]
    assert b["meta"]["ok"].dtype == pyengine.bool and b["meta"]["ok"].tolist() == [True, False, True]
    assert [t.tolist() for t in b["seq"]] == [[0, 1, 2], [1, 2, 3]]
    assert isinstance(b["p"], Point) and b["p"].b.tolist() == [0.0, 1.0, 2.0]
    assert default_collate([np.int32(3), np.int32(4)]).dtype == pyengine.int32
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object(), object()])


def test_default_collate_matches_torch(rng):
    torch = pytest.importorskip("torch")
    samples = [(rng.standard_normal(3).astype(np.float32), int(i), float(i) * 0.5, {"k": np.int64(i)})
               for i in range(4)]
    ours, theirs = default_collate(samples), torch.utils.data.default_collate(samples)
    assert type(ours) is type(theirs) is list
    for o, t in zip(ours[:3], theirs[:3]):
        assert str(o.dtype).split(".")[-1] == str(t.dtype).split(".")[-1]
        np.testing.assert_array_equal(o.numpy(), t.numpy())
    np.testing.assert_array_equal(ours[3]["k"].numpy(), theirs[3]["k"].numpy())


def test_custom_collate_batch_sampler_and_no_batching(rng):
    x, y, ds = _dataset(rng, 10)
    sums = list(DataLoader(ds, batch_size=4, collate_fn=lambda items: sum(int(b) for _, b in items)))
    assert sums == [int(y[:4].sum()), int(y[4:8].sum()), int(y[8:].sum())]
    bs = [[9, 0], [1], [5, 5, 5]]
    loader = DataLoader(ds, batch_sampler=bs)
    assert len(loader) == 3
    assert [b[1].tolist() for b in loader] == [y[i].tolist() for i in bs]
    singles = list(DataLoader(Pairs(x[:3].astype(np.float64), y[:3]), batch_size=None))
    assert len(singles) == 3 and isinstance(singles[0], list) and singles[0][0].shape == (3,)
    assert singles[2][1] == int(y[2])


def test_iterable_dataset_batching():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter([np.array([i, i * i]) for i in range(7)])

        def __len__(self):
            return 7

    b = list(DataLoader(Stream(), batch_size=3))
    assert [t.shape for t in b] == [(3, 2), (3, 2), (1, 2)] and b[2].tolist() == [[6, 36]]
    assert len(DataLoader(Stream(), batch_size=3)) == 3
    assert len(list(DataLoader(Stream(), batch_size=3, drop_last=True))) == len(
        DataLoader(Stream(), batch_size=3, drop_last=True)) == 2
    with pytest.raises(ValueError, match="shuffle"):
        DataLoader(Stream(), shuffle=True)


def test_set_epoch_forwarded_and_pluggable_sampler():
    class EpochSampler(Sampler):
        """Like a distributed sampler: the order depends on the epoch."""

        def __init__(self, n):
            self.n, self.epoch = n, 0

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __iter__(self):
            return iter(np.roll(np.arange(self.n), self.epoch).tolist())

        def __len__(self):
            return self.n

    ds = TensorDataset(pyengine.arange(5))
    loader = DataLoader(ds, batch_size=2, sampler=EpochSampler(5))
    assert _order_first(loader) == [0, 1, 2, 3, 4]
    loader.set_epoch(2)
    assert _order_first(loader) == [3, 4, 0, 1, 2]
    DataLoader(ds, batch_size=2, shuffle=True).set_epoch(1)   # built-in samplers: a no-op


def _order_first(loader):
    return np.concatenate([b[0].numpy() for b in loader]).tolist()


def test_loader_argument_errors():
    ds = TensorDataset(pyengine.arange(4))
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(ds, num_workers=-1)
    for kwargs, match in (({"prefetch_factor": 2}, "prefetch_factor"), ({"persistent_workers": True}, "persistent"),
                          ({"timeout": 1}, "timeout"), ({"multiprocessing_context": "fork"}, "multiprocessing_context")):
        with pytest.raises(ValueError, match=match):
            DataLoader(ds, num_workers=0, **kwargs)
    with pytest.raises(ValueError, match="timeout"):
        DataLoader(ds, num_workers=1, timeout=-1)
    with pytest.raises(ValueError, match="prefetch_factor"):
        DataLoader(ds, num_workers=1, prefetch_factor=0)
    with pytest.raises(ValueError, match="start method"):
        DataLoader(ds, num_workers=1, multiprocessing_context="vfork")
    with pytest.raises(TypeError, match="worker_init_fn"):
        DataLoader(ds, num_workers=1, worker_init_fn=3)
    assert DataLoader(ds, num_workers=2).prefetch_factor == 2 and DataLoader(ds).prefetch_factor is None
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, shuffle=True, sampler=[0, 1])
    with pytest.raises(ValueError, match="batch_sampler"):
        DataLoader(ds, batch_size=2, batch_sampler=[[0]])
    with pytest.raises(ValueError, match="drop_last"):
        DataLoader(ds, batch_size=None, drop_last=True)


# ---------------------------------------------------------------------- scalers


def test_standard_scaler_matches_numpy_fit_on_train_only(rng):
    X = rng.standard_normal((53, 6)) * rng.uniform(0.1, 10, 6) + rng.uniform(-5, 5, 6)
    X_train, X_test = X[:41], X[41:]
    s = StandardScaler().fit(X_train)
    mu, sd = X_train.mean(0), X_train.std(0)
    np.testing.assert_allclose(s.mean_, mu)
    np.testing.assert_allclose(s.scale_, sd)
    np.testing.assert_allclose(s.transform(X_test), (X_test - mu) / sd, rtol=1e-12)
    np.testing.assert_allclose(s.fit_transform(X_train).mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(s.inverse_transform(s.transform(X_test)), X_test, rtol=1e-12)
    X32 = X_test.astype(np.float32)
    out32 = s.transform(X32)
    assert out32.dtype == np.float32
    t = s.transform(pyengine.from_numpy(X32))
    assert isinstance(t, pyengine.Tensor) and t.dtype == pyengine.float32
    np.testing.assert_allclose(t.numpy(), (X_test - mu) / sd, rtol=1e-5, atol=1e-6)
    assert s.transform(np.arange(12).reshape(2, 6)).dtype == np.float64
    only_center = StandardScaler(with_std=False).fit(X_train)
    np.testing.assert_allclose(only_center.transform(X_test), X_test - mu)


def test_standard_scaler_zero_variance_columns(rng):
    X = rng.standard_normal((19, 4))
    X[:, 1] = 3.0
    X[:, 2] = 0.1          # computed variance is rounding noise, not exactly 0
    X[:, 3] = 0.0
    s = StandardScaler().fit(X)
    Z = s.transform(X)
    assert np.all(np.isfinite(Z))
    np.testing.assert_allclose(s.scale_[1:], 1.0)
    np.testing.assert_allclose(Z[:, 1:], 0.0, atol=1e-12)
    np.testing.assert_allclose(s.transform([[0, 4.0, 0.1, 2.0]])[0, 1:], [1.0, 0.0, 2.0], atol=1e-12)


def test_min_max_scaler(rng):
    X = rng.uniform(-3, 8, (27, 5))
    X[:, 4] = 2.5
    X_train, X_test = X[:20], X[20:]
    s = MinMaxScaler(feature_range=(-1, 2)).fit(X_train)
    lo, hi = X_train.min(0), X_train.max(0)
    rng_ = np.where(hi - lo == 0, 1, hi - lo)
    expected = (X_test - lo) / rng_ * 3 - 1
    expected[:, 4] = -1
    np.testing.assert_allclose(s.transform(X_test), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(s.inverse_transform(s.transform(X_test))[:, :4], X_test[:, :4], rtol=1e-12)
    Z = s.fit_transform(X_train)
    np.testing.assert_allclose(Z[:, :4].min(0), -1)
    np.testing.assert_allclose(Z[:, :4].max(0), 2)
    clipped = MinMaxScaler(clip=True).fit(X_train).transform(X_train * 3)
    assert clipped.min() >= 0 and clipped.max() <= 1
    with pytest.raises(ValueError, match="smaller than maximum"):
        MinMaxScaler((1, 1))


def test_scaler_state_dict_and_errors(rng):
    X = rng.standard_normal((11, 3))
    for cls, kw in ((StandardScaler, {"with_mean": False}), (MinMaxScaler, {"feature_range": (2, 5)})):
        s = cls(**kw).fit(X)
        sd = s.state_dict()
        fresh = cls().load_state_dict({k: (pyengine.tensor(v) if isinstance(v, np.ndarray) else v)
                                       for k, v in sd.items()})
        np.testing.assert_allclose(fresh.transform(X), s.transform(X), rtol=1e-6)
        with pytest.raises(RuntimeError, match="not fitted"):
            cls().transform(X)
        with pytest.raises(ValueError, match="per-sample shape"):
            s.transform(X[:, :2])
        with pytest.raises(KeyError, match="missing"):
            cls().load_state_dict({})


# ---------------------------------------------------------------------- split and labels


def test_train_test_split_sizes_alignment_and_types(rng):
    X = rng.standard_normal((23, 2))
    y = np.arange(23)
    t = pyengine.from_numpy(X.astype(np.float32))
    X_tr, X_te, y_tr, y_te, t_tr, t_te = train_test_split(X, y, t, seed=4)
    assert (len(X_tr), len(X_te)) == (17, 6)             # test = ceil(0.25 * 23)
    assert sorted(np.r_[y_tr, y_te].tolist()) == list(range(23))
    np.testing.assert_array_equal(X_tr, X[y_tr])          # rows stay aligned across arrays
    assert isinstance(t_tr, pyengine.Tensor) and t_tr.shape == (17, 2)
    np.testing.assert_array_equal(t_te.numpy(), X[y_te].astype(np.float32))
    again = train_test_split(X, y, seed=4)
    np.testing.assert_array_equal(again[3], y_te)
    a, b = train_test_split(list(range(10)), test_size=3, shuffle=False)
    assert a.tolist() == list(range(7)) and b.tolist() == [7, 8, 9]
    a, b = train_test_split(y, train_size=0.5, test_size=0.2, random_state=0)
    assert (len(a), len(b)) == (11, 5)
    with pytest.raises(ValueError, match="inconsistent"):
        train_test_split(X, y[:5])
    with pytest.raises(ValueError, match="test_size"):
        train_test_split(X, test_size=1.5)


def test_train_test_split_stratify(rng):
    y = np.array([0] * 30 + [1] * 10 + [2] * 7)
    rng.shuffle(y)
    X = np.arange(len(y))
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, stratify=y, seed=1)
    assert len(y_te) == 12 and len(y_tr) == 35
    np.testing.assert_array_equal(y[X_te], y_te)
    for c, n in ((0, 30), (1, 10), (2, 7)):
        assert abs(np.sum(y_te == c) - 12 * n / 47) <= 1
    assert sorted(np.r_[X_tr, X_te].tolist()) == X.tolist()
    with pytest.raises(ValueError, match="only 1 member"):
        train_test_split(X[:5], stratify=[0, 0, 1, 1, 2])


def test_to_categorical_and_one_hot():
    np.testing.assert_array_equal(to_categorical([0, 2, 1], 3), [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    out = to_categorical(np.array([[1], [0]]))
    assert out.shape == (2, 2) and out.dtype == np.float32          # trailing dim of 1 replaced
    out = to_categorical(pyengine.tensor([[0, 3], [1, 1]]), num_classes=5)
    assert out.shape == (2, 2, 5) and out[0, 1, 3] == 1 and out.sum() == 4
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        to_categorical([0, 3], 3)
    np.testing.assert_array_equal(one_hot([1, 3, -1], 3), [[0, 1, 0], [0, 0, 0], [0, 0, 0]])
    assert one_hot(np.array([[1], [0]]), 2).shape == (2, 1, 2)


# ---------------------------------------------------------------------- text

TEXTS = ["The cat sat on the mat.", "The dog ate my homework!", "My cat, my dog."]
# counts: the 3, my 3, cat 2, dog 2, then 1 each in order of first appearance: sat on mat ate homework


def test_tokenizer_word_index_and_counts():
    assert text_to_word_sequence("Hello, World!\tHello...") == ["hello", "world", "hello"]
    tok = Tokenizer()
    tok.fit_on_texts(TEXTS)
    assert tok.word_index == {"the": 1, "my": 2, "cat": 3, "dog": 4, "sat": 5, "on": 6, "mat": 7, "ate": 8,
                              "homework": 9}
    assert tok.index_word[3] == "cat" and tok.document_count == 3
    assert tok.word_counts["the"] == 3 and tok.word_docs["the"] == 2 and tok.word_docs["mat"] == 1
    assert tok.texts_to_sequences(["the cat ate a fish", "My dog sat"]) == [[1, 3, 8], [2, 4, 5]]
    assert tok.sequences_to_texts([[1, 3, 8]]) == ["the cat ate"]


def test_tokenizer_num_words_and_oov():
    tok = Tokenizer(num_words=5)
    tok.fit_on_texts(TEXTS)
    assert len(tok.word_index) == 9                      # the cap applies when converting, not to word_index
    assert tok.texts_to_sequences(["the cat ate a fish", "My dog sat"]) == [[1, 3], [2, 4]]
    oov = Tokenizer(num_words=5, oov_token="<OOV>")
    oov.fit_on_texts(TEXTS)
    assert oov.word_index["<OOV>"] == 1 and oov.word_index["the"] == 2 and oov.word_index["homework"] == 10
    assert oov.texts_to_sequences(["the cat ate a fish", "My dog sat"]) == [[2, 4, 1, 1, 1], [3, 1, 1]]
    assert oov.sequences_to_texts([[2, 4, 9]]) == ["the cat <OOV>"]
    full = Tokenizer(oov_token="<OOV>")
    full.fit_on_texts(TEXTS)
    assert full.texts_to_sequences(["homework zebra"]) == [[10, 1]]


def test_tokenizer_options_matrix_and_json():
    tok = Tokenizer(lower=False, filters="")
    tok.fit_on_texts(["A a, b", "b b"])
    assert tok.word_index == {"b": 1, "A": 2, "a,": 3}
    chars = Tokenizer(char_level=True)
    chars.fit_on_texts(["abca"])
    assert chars.word_index == {"a": 1, "b": 2, "c": 3}
    words = Tokenizer()
    words.fit_on_texts([["X", "y"], ["y"]])                    # lists of words are used as they are
    assert words.word_index == {"y": 1, "x": 2}

    tok = Tokenizer()
    tok.fit_on_texts(TEXTS)
    seqs = [[1, 1, 3], []]
    np.testing.assert_array_equal(tok.sequences_to_matrix(seqs, "count")[0, :4], [0, 2, 0, 1])
    np.testing.assert_array_equal(tok.sequences_to_matrix(seqs, "binary")[0, :4], [0, 1, 0, 1])
    np.testing.assert_allclose(tok.sequences_to_matrix(seqs, "freq")[0, :4], [0, 2 / 3, 0, 1 / 3])
    tfidf = tok.sequences_to_matrix(seqs, "tfidf")
    np.testing.assert_allclose(tfidf[0, 1], (1 + np.log(2)) * np.log(1 + 3 / (1 + 2)))
    assert tfidf.shape == (2, 10) and not tfidf[1].any()
    assert tok.texts_to_matrix(["the the cat"], "count")[0, 1] == 2

    oov = Tokenizer(num_words=6, oov_token="<OOV>")
    oov.fit_on_texts(TEXTS)
    s = oov.to_json()
    back = Tokenizer.from_json(s)
    assert json.loads(s)["class_name"] == "Tokenizer"
    assert back.word_index == oov.word_index and back.index_word == oov.index_word
    assert back.index_docs == oov.index_docs and back.num_words == 6
    assert back.texts_to_sequences(TEXTS) == oov.texts_to_sequences(TEXTS)
    assert tokenizer_from_json(s).word_counts == oov.word_counts


def test_pad_sequences_keras_semantics():
    seqs = [[1, 2, 3, 4], [5], [6, 7]]
    cases = {("pre", "pre"): [[2, 3, 4], [0, 0, 5], [0, 6, 7]],
             ("post", "post"): [[1, 2, 3], [5, 0, 0], [6, 7, 0]],
             ("pre", "post"): [[1, 2, 3], [0, 0, 5], [0, 6, 7]],
             ("post", "pre"): [[2, 3, 4], [5, 0, 0], [6, 7, 0]]}
    for (padding, truncating), expected in cases.items():
        out = pad_sequences(seqs, maxlen=3, padding=padding, truncating=truncating)
        assert out.dtype == np.int32
        np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(pad_sequences(seqs), [[1, 2, 3, 4], [0, 0, 0, 5], [0, 0, 6, 7]])
    np.testing.assert_array_equal(pad_sequences([[1], []], maxlen=2, value=-1), [[-1, 1], [-1, -1]])
    f = pad_sequences([[0.5, 1.5]], maxlen=3, dtype="float32", value=9.0)
    assert f.dtype == np.float32 and f.tolist() == [[9.0, 0.5, 1.5]]
    vec = pad_sequences([np.ones((2, 3)), np.zeros((1, 3))], maxlen=3, padding="post")
    assert vec.shape == (2, 3, 3) and vec[0, :2].sum() == 6 and vec[0, 2].sum() == 0 and vec[1].sum() == 0
    t = pad_sequences([pyengine.tensor([4, 5]), pyengine.tensor([6])])
    np.testing.assert_array_equal(t, [[4, 5], [0, 6]])
    assert pad_sequences([], maxlen=None).shape == (0, 0)
    with pytest.raises(ValueError, match="padding"):
        pad_sequences(seqs, padding="middle")
    with pytest.raises(ValueError, match="truncating"):
        pad_sequences(seqs, truncating="both")
