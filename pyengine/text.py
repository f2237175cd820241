"""Text for language models: tokenizers, corpora, train/validation splits and random windows.

- ``CharTokenizer``: one token per distinct character of the training text (nanoGPT's shakespeare-char).
- ``ByteTokenizer``: the 256 byte values of UTF-8; works on any text with no fitting.
Both encode to int64 arrays, decode back to str, and serialise to a small dict that checkpoints carry.

``load_corpus(path)`` reads a file or a folder of text files; ``default_corpus()`` is text every machine
with Python has offline: the Python standard library's own source files.
"""
import glob
import json
import os
import sysconfig

import numpy as np

from .random import _rng


class CharTokenizer:
    """Character-level tokenizer: the vocabulary is the sorted set of characters seen in ``fit``.

    >>> tok = CharTokenizer.fit("hello")
    >>> tok.decode(tok.encode("hole"))
    'hole'
    """

    kind = "char"

    def __init__(self, chars):
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        if len(self.stoi) != len(self.chars):
            raise ValueError("CharTokenizer: duplicate characters in the vocabulary")

    @classmethod
    def fit(cls, text):
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text, errors="strict"):
        """str -> int64 array. Unknown characters raise (errors="strict") or are dropped ("ignore")."""
        stoi = self.stoi
        if errors == "ignore":
            return np.array([stoi[c] for c in text if c in stoi], dtype=np.int64)
        try:
            return np.array([stoi[c] for c in text], dtype=np.int64)
        except KeyError as e:
            raise ValueError(f"CharTokenizer.encode: character {e.args[0]!r} is not in the vocabulary "
                             f"({self.vocab_size} characters)") from None

    def decode(self, ids):
        chars = self.chars
        return "".join(chars[int(i)] for i in np.asarray(ids).reshape(-1))

    def to_dict(self):
        return {"kind": self.kind, "chars": "".join(self.chars)}


class ByteTokenizer:
    """Byte-level tokenizer: UTF-8 bytes, vocabulary 256, no fitting; decoding replaces broken sequences."""

    kind = "byte"
    vocab_size = 256

    @classmethod
    def fit(cls, text=None):
        return cls()

    def encode(self, text, errors="strict"):
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def decode(self, ids):
        arr = np.asarray(ids).reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError("ByteTokenizer.decode: ids must be in [0, 255]")
        return bytes(arr.astype(np.uint8).tolist()).decode("utf-8", errors="replace")

    def to_dict(self):
        return {"kind": self.kind}


def tokenizer_from_dict(d):
    """Rebuild a tokenizer saved with ``to_dict()`` (e.g. from a checkpoint's metadata)."""
    if isinstance(d, str):
        d = json.loads(d)
    kind = d.get("kind")
    if kind == "char":
        return CharTokenizer(list(d["chars"]))
    if kind == "byte":
        return ByteTokenizer()
    raise ValueError(f"unknown tokenizer kind {kind!r}")


def make_tokenizer(kind, text=None):
    if kind == "char":
        if text is None:
            raise ValueError("a char tokenizer needs the training text to fit its vocabulary")
        return CharTokenizer.fit(text)
    if kind == "byte":
        return ByteTokenizer()
    raise ValueError(f"tokenizer must be 'char' or 'byte', got {kind!r}")


# ---------------------------------------------------------------------- corpora

TEXT_SUFFIXES = (".txt", ".md", ".py", ".rst", ".csv", ".json")


def load_corpus(path, max_bytes=None):
    """The text of a file, or of every text file under a folder (sorted, joined by blank lines)."""
    if os.path.isdir(path):
        files = sorted(f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True)
                       if os.path.isfile(f) and f.endswith(TEXT_SUFFIXES))
        if not files:
            raise FileNotFoundError(f"no text files ({', '.join(TEXT_SUFFIXES)}) under {path}")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise FileNotFoundError(f"no such file or folder: {path}")
    parts, total = [], 0
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            t = fh.read()
        parts.append(t)
        total += len(t)
        if max_bytes is not None and total >= max_bytes:
            break
    text = "\n\n".join(parts)
    return text if max_bytes is None else text[:max_bytes]


# A fixed list keeps the default corpus identical across machines with the same Python version.
_DEFAULT_MODULES = ("argparse.py", "collections/__init__.py", "dataclasses.py", "functools.py", "inspect.py",
                    "json/decoder.py", "json/encoder.py", "logging/__init__.py", "pathlib.py", "random.py",
                    "shutil.py", "statistics.py", "string.py", "textwrap.py", "threading.py", "typing.py",
                    "unittest/case.py", "enum.py", "fractions.py", "heapq.py", "bisect.py", "calendar.py",
                    "contextlib.py", "copy.py", "csv.py", "datetime.py", "decimal.py", "difflib.py",
                    "gettext.py", "glob.py", "gzip.py", "hashlib.py", "locale.py", "operator.py", "os.py",
                    "pprint.py", "queue.py", "sched.py", "secrets.py", "shlex.py", "socket.py", "tempfile.py",
                    "timeit.py", "traceback.py", "uuid.py", "weakref.py", "zipfile.py")


def default_corpus(max_bytes=1_000_000):
    """About 1 MB of text any machine with Python has offline: standard-library source files."""
    root = sysconfig.get_paths()["stdlib"]
    parts, total = [], 0
    for name in _DEFAULT_MODULES:
        p = os.path.join(root, name)
        if not os.path.isfile(p):
            continue
        with open(p, encoding="utf-8", errors="replace") as fh:
            t = fh.read()
        parts.append(t)
        total += len(t)
        if total >= max_bytes:
            break
    if not parts:
        raise FileNotFoundError(f"the Python standard library sources were not found under {root}")
    return "\n\n".join(parts)[:max_bytes]


def train_val_split(ids, val_fraction=0.1):
    """The first (1 - val_fraction) of the token stream for training, the rest for validation."""
    n = int(len(ids) * (1 - val_fraction))
    return ids[:n], ids[n:]


def get_batch(ids, block_size, batch_size, generator=None):
    """Random windows: x = ids[i : i + T], y = ids[i + 1 : i + T + 1] for batch_size random i.

    ids: 1-D int64 array. Returns (x, y) int64 arrays of shape (batch_size, block_size). Reproducible
    given the generator's state.
    """
    n = len(ids) - block_size - 1
    if n < 1:
        raise ValueError(f"get_batch: the text ({len(ids)} tokens) is shorter than block_size + 1 "
                         f"({block_size + 1})")
    starts = _rng(generator).integers(0, n + 1, batch_size)
    offsets = np.arange(block_size)
    x = ids[starts[:, None] + offsets]
    y = ids[starts[:, None] + offsets + 1]
    return x, y
