"""pyengine.save / pyengine.load: safetensors checkpoints with a JSON structure in the metadata."""
import io
import json
import math
import os
import pickle

import numpy as np
import pytest

import pyengine
from pyengine.io import load, save
from pyengine.preprocessing import MinMaxScaler, StandardScaler, Tokenizer

st = pytest.importorskip("safetensors.numpy")
from safetensors import safe_open  # noqa: E402

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.bool_]


def _random_array(rng, shape, dtype):
    if np.dtype(dtype).kind == "f":
        return np.asarray(rng.standard_normal(shape), dtype=dtype)
    if np.dtype(dtype).kind == "b":
        return np.asarray(rng.random(shape) < 0.5)
    info = np.iinfo(dtype)
    return np.asarray(rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True))


def assert_same(a, b, path="obj"):
    """Exact equality of nested objects: same types (dict key types too), dtypes, shapes and values."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, pyengine.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=path)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            assert type(k) is type(next(kb for kb in b if kb == k)), f"{path}: key {k!r} type"
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def _checkpoint(rng):
    model = {f"layers.{i}.weight": pyengine.from_numpy(_random_array(rng, (5, 3 + i), np.float32)) for i in range(3)}
    model["layers.0.bias"] = pyengine.from_numpy(_random_array(rng, (5,), np.float32))
    model["num_batches_tracked"] = pyengine.tensor(7)                               # 0-d int64
    optimizer = {"state": {0: {"step": pyengine.tensor(3.0), "exp_avg": pyengine.zeros(5, 3),
                               "exp_avg_sq": pyengine.ones(5, 3, dtype=pyengine.float64)},
                           2: {"step": 12, "momentum_buffer": None}},
                 "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                                   "amsgrad": False, "params": [0, 1, 2, 3]}]}
    return {"model": model, "optimizer": optimizer, "epoch": 3, "best": float("inf"), "loss": float("nan"),
            "name": "run-α", "note": None, "rng": pyengine.Generator().manual_seed(9).get_state(),
            "big": 2 ** 100, "arr": _random_array(rng, (4, 1), np.uint16), "np_scalar": np.float32(2.5),
            "np_int": np.int64(-4), "empty": pyengine.zeros(0, 3), "mixed_keys": {1: "a", "1": "b", None: [], 2.5: ()},
            "tagged": {"__tensor__": "not a tensor", "x": [1, [2, {"y": True}]]}}


def test_round_trip_nested_checkpoint(tmp_path, rng):
    ckpt = _checkpoint(rng)
    path = tmp_path / "ckpt.safetensors"
    save(ckpt, path)
    assert_same(ckpt, load(path))
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 5), (2, 0, 3), (2, 3, 1, 4)])
def test_round_trip_dtypes_and_shapes(tmp_path, rng, dtype, shape):
    arr = _random_array(rng, shape, dtype)
    obj = {"t": pyengine.from_numpy(arr.copy()), "a": arr}
    save(obj, tmp_path / "x.safetensors")
    back = load(str(tmp_path / "x.safetensors"))
    assert_same(obj, back)
    assert isinstance(back["t"], pyengine.Tensor) and isinstance(back["a"], np.ndarray)


def test_non_contiguous_root_tensor_and_file_objects(rng):
    x = pyengine.from_numpy(_random_array(rng, (4, 6), np.float64))
    buf = io.BytesIO()
    save(x.T, buf)                                   # a non-contiguous view; the root may be a bare tensor
    buf.seek(0)
    back = load(buf)
    assert_same(pyengine.tensor(x.numpy().T), back)
    back.add_(1.0)                                   # loaded tensors are writable
    buf = io.BytesIO()
    save([1, (2, 3), {"k": x}], buf)
    assert_same([1, (2, 3), {"k": x}], load(io.BytesIO(buf.getvalue())))


def test_file_is_plain_safetensors(tmp_path, rng):
    ckpt = _checkpoint(rng)
    path = tmp_path / "ckpt.safetensors"
    save(ckpt, path)
    flat = st.load_file(path)                        # any safetensors reader sees the tensors by their path
    np.testing.assert_array_equal(flat["model.layers.1.weight"], ckpt["model"]["layers.1.weight"].numpy())
    np.testing.assert_array_equal(flat["optimizer.state.0.exp_avg_sq"], np.ones((5, 3)))
    assert flat["model.num_batches_tracked"].shape == () and flat["arr"].dtype == np.uint16
    with safe_open(path, framework="np") as f:
        meta = f.metadata()
    assert meta["format"] == "pyengine" and meta["pyengine.format_version"] == "1"
    structure = json.loads(meta["pyengine.structure"])
    assert structure["epoch"] == 3 and structure["model"]["layers.0.bias"] == {"__tensor__": "model.layers.0.bias"}


def test_plain_safetensors_file_loads_as_flat_dict(tmp_path, rng):
    arrays = {"w": _random_array(rng, (3, 2), np.float32), "ids": _random_array(rng, (4,), np.int64),
              "s": np.array(1.5), "u": np.arange(3, dtype=np.uint32)}
    st.save_file(arrays, tmp_path / "plain.safetensors")
    back = load(tmp_path / "plain.safetensors")
    assert set(back) == set(arrays)
    assert isinstance(back.pop("u"), np.ndarray)          # no Tensor dtype for uint32
    for k, v in back.items():
        assert isinstance(v, pyengine.Tensor)
        np.testing.assert_array_equal(v.numpy(), arrays[k])
    assert back["s"].shape == () and back["ids"].dtype == pyengine.int64


def test_colliding_and_reserved_names(tmp_path):
    obj = {"a.b": pyengine.tensor([1.0]), "a": {"b": pyengine.tensor([2.0])}, "__metadata__": pyengine.tensor([3]),
           "l": [pyengine.tensor(4), np.array([5])]}
    save(obj, tmp_path / "c.safetensors")
    assert_same(obj, load(tmp_path / "c.safetensors"))


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    save({"w": pyengine.ones(3), "epoch": 1}, path)
    before = path.read_bytes()
    real_save_file = st.save_file

    def crash_midway(tensors, filename, metadata=None):
        real_save_file(tensors, filename, metadata=metadata)
        with open(filename, "r+b") as f:             # half a file, then the "crash"
            f.truncate(os.path.getsize(filename) // 2)
        raise OSError("disk full")

    monkeypatch.setattr(st, "save_file", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save({"w": pyengine.zeros(1000), "epoch": 2}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]       # no temp file left behind
    monkeypatch.undo()

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save({"w": pyengine.zeros(2), "epoch": 3}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.safetensors"]
    assert load(path)["epoch"] == 1
    save({"w": pyengine.zeros(2), "epoch": 4}, path)                   # a normal save replaces it
    assert load(path)["epoch"] == 4 and os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(ValueError, match="not a pyengine checkpoint"):
        load(junk)
    short = tmp_path / "short.bin"
    short.write_bytes(b"abc")
    with pytest.raises(ValueError, match="too short"):
        load(short)
    text = tmp_path / "notes.txt"
    text.write_bytes((20).to_bytes(8, "little") + b"this is not json!!!!")
    with pytest.raises(ValueError, match="not JSON"):
        load(text)
    pick = tmp_path / "model.pt"
    pick.write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="does not read those"):
        load(pick)
    truncated = tmp_path / "truncated.safetensors"
    save({"w": pyengine.ones(100)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:-50])
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        load(truncated)
    with pytest.raises(IsADirectoryError):
        load(tmp_path)
    with pytest.raises(RuntimeError, match="not available"):
        load(junk, map_location="cuda")


def test_save_errors_name_the_key(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match=r"set at key 'model\.extra\.1'"):
        save({"model": {"extra": [1, {3}]}}, path)
    with pytest.raises(TypeError, match="dtype object at key 'a'"):
        save({"a": np.array([object()])}, path)
    with pytest.raises(TypeError, match="dict keys"):
        save({"opt": {(1, 2): 3}}, path)
    with pytest.raises(FileNotFoundError, match="directory"):
        save({}, tmp_path / "no" / "such" / "dir.safetensors")
    assert not path.exists()


def test_map_location_and_tensor_independence(tmp_path):
    shared = pyengine.arange(4)
    save({"a": shared, "b": shared}, tmp_path / "m.safetensors")
    back = load(tmp_path / "m.safetensors", map_location="cpu", weights_only=True)
    back["a"].add_(1)
    assert back["b"].tolist() == [0, 1, 2, 3] and back["a"].tolist() == [1, 2, 3, 4]
    assert load(tmp_path / "m.safetensors", map_location=pyengine.device("cpu"))["b"].tolist() == [0, 1, 2, 3]


def test_preprocessing_state_in_checkpoint(tmp_path, rng):
    X = rng.standard_normal((13, 4))
    scaler = StandardScaler().fit(X)
    mm = MinMaxScaler(feature_range=(-1, 1)).fit(X)
    tok = Tokenizer(num_words=5, oov_token="<unk>")
    tok.fit_on_texts(["a b b c", "c c d e f"])
    save({"scaler": scaler.state_dict(), "minmax": mm.state_dict(), "tokenizer": tok.get_config(),
          "tokenizer_json": tok.to_json()}, tmp_path / "prep.safetensors")
    back = load(tmp_path / "prep.safetensors")
    np.testing.assert_array_equal(StandardScaler().load_state_dict(back["scaler"]).transform(X), scaler.transform(X))
    np.testing.assert_array_equal(MinMaxScaler().load_state_dict(back["minmax"]).transform(X), mm.transform(X))
    for restored in (Tokenizer.from_config(back["tokenizer"]), Tokenizer.from_json(back["tokenizer_json"])):
        assert restored.word_index == tok.word_index
        assert restored.texts_to_sequences(["b c z"]) == tok.texts_to_sequences(["b c z"])


def test_torch_reads_the_tensors(tmp_path, rng):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file
    w = _random_array(rng, (3, 4), np.float32)
    save({"fc.weight": pyengine.from_numpy(w), "step": pyengine.tensor(5)}, tmp_path / "t.safetensors")
    sd = load_file(tmp_path / "t.safetensors")
    assert torch.equal(sd["fc.weight"], torch.from_numpy(w)) and sd["step"].dtype == torch.int64


def test_corrupt_structure_is_a_clean_error(tmp_path):
    meta = {"format": "pyengine", "pyengine.format_version": "1",
            "pyengine.structure": json.dumps({"w": {"__tensor__": "missing"}})}
    st.save_file({"w": np.zeros(2)}, tmp_path / "a.safetensors", metadata=meta)
    with pytest.raises(ValueError, match="corrupt.*'missing'"):
        load(tmp_path / "a.safetensors")
    meta["pyengine.structure"] = '{"d": {"__dict__": 5}}'
    st.save_file({"w": np.zeros(2)}, tmp_path / "b.safetensors", metadata=meta)
    with pytest.raises(ValueError, match="corrupt"):
        load(tmp_path / "b.safetensors")
    meta["pyengine.format_version"] = "99"
    st.save_file({"w": np.zeros(2)}, tmp_path / "c.safetensors", metadata=meta)
    with pytest.raises(ValueError, match="format version 99"):
        load(tmp_path / "c.safetensors")
