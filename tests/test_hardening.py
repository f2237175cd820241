"""Regressions of the reliability review (issue 12): each test failed, or crashed the process, before
its fix. Cases that could take the interpreter down run in a subprocess."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pyengine as pe


def run_isolated(code, timeout=120):
    """Run ``code`` in a fresh interpreter; return (returncode, stdout + stderr)."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       timeout=timeout)
    return r.returncode, r.stdout + r.stderr


# ---------------------------------------------------------------------- 1. matmul with an empty batch


@pytest.mark.parametrize("sa,sb,expected", [((3, 2), (0, 2, 4), (0, 3, 4)), ((0, 3, 2), (2, 4), (0, 3, 4)),
                                            ((1, 3, 2), (0, 2, 4), (0, 3, 4)), ((2, 0, 3, 2), (2, 4), (2, 0, 3, 4))])
def test_matmul_empty_batch(sa, sb, expected):
    a = pe.ones(*sa, requires_grad=True)
    b = pe.ones(*sb, requires_grad=True)
    y = pe.matmul(a, b)
    assert tuple(y.shape) == expected == np.matmul(np.ones(sa), np.ones(sb)).shape
    y.sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape
    assert (a.grad.numpy() == 0).all() and (b.grad.numpy() == 0).all()


def test_matmul_empty_batch_huge_rows_reads_nothing():
    """(1, 2**20) @ (0, 2**20, 1) used to read 4 MiB past a 1-byte buffer."""
    y = pe.ones(1, 2 ** 20) @ pe.ones(0, 2 ** 20, 1)
    assert tuple(y.shape) == (0, 1, 1)


# ---------------------------------------------------------------------- 2. indices re-read without the GIL


def test_indices_changed_by_another_thread_cannot_crash():
    """A second thread rewrites the index array (shared through from_numpy) while embedding and
    cross-entropy run without the GIL: the kernels read a private copy that was range-checked, so each
    call either works on one consistent set of indices or raises IndexError; the process lives."""
    rc, out = run_isolated("""
        import threading
        import numpy as np
        from pyengine.backend import cpu
        V, C, N = 50, 256, 100_000
        rng = np.random.default_rng(0)
        w = rng.standard_normal((V, C)).astype(np.float32)
        logits = rng.standard_normal((N, 7)).astype(np.float32)
        idx = np.zeros(N, np.int64)
        stop = threading.Event()
        def flip():
            while not stop.is_set():
                idx.fill(1 << 40)
                idx.fill(3)
        t = threading.Thread(target=flip)
        t.start()
        try:
            for _ in range(25):
                for f in (lambda: cpu.embedding_forward(w, idx),
                          lambda: cpu.embedding_backward(np.ones((N, C), np.float32), idx, V),
                          lambda: cpu.cross_entropy_forward(logits, idx),
                          lambda: cpu.cross_entropy_backward(logits, idx, np.zeros(N, np.float32), 1.0)):
                    try:
                        f()
                    except IndexError:
                        pass
        finally:
            stop.set()
            t.join()
        print("alive")
    """)
    assert rc == 0 and "alive" in out, out


# ---------------------------------------------------------------------- 4. untrusted checkpoints


def _rewrite_header(path, edit):
    """Apply ``edit(header_dict)`` to a safetensors file's JSON header in place (same data section)."""
    import json
    import struct
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    edit(header)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(new)) + new + raw[8 + n:])


def test_relabelled_float_tensor_is_refused_by_load_state_dict(tmp_path):
    """A float32 weight whose header says int32 loads as int32 garbage; copying it into a float
    parameter used to succeed silently (copyto casting='unsafe')."""
    model = pe.nn.Linear(3, 2)
    path = tmp_path / "m.safetensors"
    pe.save(model.state_dict(), path)
    _rewrite_header(path, lambda h: h["weight"].update(dtype="I32"))
    state = pe.load(path)
    assert state["weight"].dtype == pe.int32
    with pytest.raises(RuntimeError, match="dtype mismatch for weight"):
        pe.nn.Linear(3, 2).load_state_dict(state)
    # float widths still convert, as PyTorch's load_state_dict does
    pe.nn.Linear(3, 2).load_state_dict({k: v.double() for k, v in model.state_dict().items()})


def test_deeply_nested_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "deep.safetensors"
    pe.save({"a": 1}, path)
    deep = "[" * 100_000 + "]" * 100_000

    def nest_structure(h):
        h["__metadata__"]["pyengine.structure"] = deep
    _rewrite_header(path, nest_structure)
    with pytest.raises(ValueError, match="corrupt"):
        pe.load(path)

    def nest_moderately(h):   # parses as JSON, but deeper than any saved object
        h["__metadata__"]["pyengine.structure"] = "[" * 500 + "]" * 500
    pe.save({"a": 1}, path)
    _rewrite_header(path, nest_moderately)
    with pytest.raises(ValueError, match="nesting deeper"):
        pe.load(path)
    # and a header that is itself deeply nested JSON
    import struct
    body = ("{\"x\": " + "[" * 100_000 + "]" * 100_000 + "}").encode()
    path.write_bytes(struct.pack("<Q", len(body)) + body)
    with pytest.raises(ValueError, match="not a pyengine checkpoint"):
        pe.load(path)
