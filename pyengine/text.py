"""Text for language models: tokenizers, corpora, token files, train/validation splits and random windows.

- ``CharTokenizer``: one token per distinct character of the training text (nanoGPT's shakespeare-char).
- ``ByteTokenizer``: the 256 byte values of UTF-8; works on any text with no fitting.
- ``BPETokenizer``: byte-level byte-pair encoding (Sennrich et al. 2016; GPT-2's byte-level variant,
  Radford et al. 2019) trained on the corpus: 256 byte tokens plus ``vocab_size - 256`` merges, for
  word-level text. Lossless on any text.
All encode to int64 arrays, decode back to str, and serialise to a small dict that checkpoints carry;
``load_tokenizer(meta)`` rebuilds any of them from that dict (or from a checkpoint holding one).

Corpora of any size: ``tokenize_corpus(path, ...)`` reads a file or a folder of text files in chunks, fits
the tokenizer, and writes the token stream once to a cached token file (``<key>.bin``, uint16 or uint32,
as nanoGPT's train.bin) keyed by the content hash of the text and the tokenizer; later runs memory-map it.
``default_corpus()`` is text every machine with Python has offline: the standard library's own sources.
"""
import glob
import hashlib
import heapq
import json
import os
import re
import sysconfig
import tempfile
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from .random import _rng

TOKENIZERS = ("char", "byte", "bpe")


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
        if any(not isinstance(c, str) or len(c) != 1 for c in self.chars):
            raise ValueError("CharTokenizer: the vocabulary must be single characters")
        # encode() maps code points by binary search: the code points sorted, and the id of each
        cps = np.array([ord(c) for c in self.chars], dtype=np.uint32)
        self._order = np.argsort(cps, kind="stable")
        self._cps = cps[self._order]

    @classmethod
    def fit(cls, text):
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text, errors="strict"):
        """str -> int64 array. Unknown characters raise (errors="strict") or are dropped ("ignore")."""
        cp = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if not len(self._cps):
            pos, known = np.zeros(len(cp), np.int64), np.zeros(len(cp), bool)
        else:
            pos = np.minimum(np.searchsorted(self._cps, cp), len(self._cps) - 1)
            known = self._cps[pos] == cp
        if not known.all():
            if errors != "ignore":
                c = chr(int(cp[np.argmin(known)]))
                raise ValueError(f"CharTokenizer.encode: character {c!r} is not in the vocabulary "
                                 f"({self.vocab_size} characters)")
            pos = pos[known]
        return self._order[pos].astype(np.int64)

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
        return np.frombuffer(text.encode("utf-8", "replace"), dtype=np.uint8).astype(np.int64)

    def decode(self, ids):
        arr = np.asarray(ids).reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError("ByteTokenizer.decode: ids must be in [0, 255]")
        return bytes(arr.astype(np.uint8).tolist()).decode("utf-8", errors="replace")

    def to_dict(self):
        return {"kind": self.kind}


# Pre-tokenization: merges never cross these pieces (GPT-2's rule, written with Python's re): English
# contractions, a word with its leading space, a number, a run of punctuation, whitespace. Every character
# falls in exactly one piece, so joining the pieces gives the text back.
_PIECES = re.compile(r"'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")
MAX_MERGES = 1 << 20


def word_counts(text, counts=None):
    """How often each pre-tokenized piece (as UTF-8 bytes) occurs in ``text``, added to ``counts``."""
    counts = {} if counts is None else counts
    for piece in _PIECES.findall(text):
        counts[piece] = counts.get(piece, 0) + 1
    return counts



def _merge_pair(w, a, b, new_id):
    """The token list ``w`` with each non-overlapping (a, b), left to right, replaced by ``new_id``."""
    out, i = [], 0
    while i < len(w):
        if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(w[i])
            i += 1
    return out

def train_bpe(counts, n_merges):
    """Byte-pair merges learned from piece counts ({str: count}): a list of (a, b) token-id pairs, merge i
    making token 256 + i. Each round merges the most frequent adjacent pair (ties: the smallest pair).

    Pair counts are kept up to date incrementally: a merge revisits only the pieces that hold the pair
    (an index pair -> pieces), and a heap of (-count, pair) with stale entries skipped finds the next one.
    """
    words = [list(w.encode("utf-8", "surrogatepass")) for w in counts]
    freqs = list(counts.values())
    pair_count = defaultdict(int)
    where = defaultdict(set)
    for wi, w in enumerate(words):
        for p in zip(w, w[1:]):
            pair_count[p] += freqs[wi]
            where[p].add(wi)
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < n_merges and heap:
        neg, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -neg or neg == 0:
            continue  # stale: the count changed since this entry was pushed
        new_id = 256 + len(merges)
        merges.append(pair)
        a, b = pair
        touched = set()
        for wi in where.pop(pair, ()):
            w, f = words[wi], freqs[wi]
            out = _merge_pair(w, a, b, new_id)
            if len(out) == len(w):
                continue
            for p in zip(w, w[1:]):
                pair_count[p] -= f
                touched.add(p)
            for p in zip(out, out[1:]):
                pair_count[p] += f
                where[p].add(wi)
                touched.add(p)
            words[wi] = out
        pair_count.pop(pair, None)
        touched.discard(pair)
        for p in touched:
            c = pair_count.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_count.pop(p, None)
    return merges


class BPETokenizer:
    """Byte-level BPE: tokens 0..255 are the bytes, token 256 + i the i-th learned merge.

    >>> tok = BPETokenizer.fit("the cat and the hat and the bat " * 20, vocab_size=270)
    >>> tok.decode(tok.encode("the rat"))
    'the rat'
    """

    kind = "bpe"

    def __init__(self, merges):
        merges = [tuple(m) for m in merges]
        if len(merges) > MAX_MERGES:
            raise ValueError(f"BPETokenizer: {len(merges)} merges, at most {MAX_MERGES}")
        vocab = [bytes([i]) for i in range(256)]
        for i, m in enumerate(merges):
            if len(m) != 2 or not all(isinstance(t, int) and not isinstance(t, bool) and 0 <= t < 256 + i
                                      for t in m):
                raise ValueError(f"BPETokenizer: merge {i} is {m!r}; a merge joins two earlier tokens")
            vocab.append(vocab[m[0]] + vocab[m[1]])
        self.merges = merges
        self.vocab = vocab
        self.ranks = {m: i for i, m in enumerate(merges)}
        self._cache = {}

    @classmethod
    def fit(cls, text_or_counts, vocab_size=512):
        """Learn ``vocab_size - 256`` merges from a text (or from ``word_counts`` of one)."""
        if not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(f"BPETokenizer: vocab_size must be an integer >= 256, got {vocab_size!r}")
        counts = word_counts(text_or_counts) if isinstance(text_or_counts, str) else text_or_counts
        return cls(train_bpe(counts, vocab_size - 256))

    @property
    def vocab_size(self):
        return 256 + len(self.merges)

    def _encode_piece(self, piece):
        ids = self._cache.get(piece)
        if ids is not None:
            return ids
        w = list(piece.encode("utf-8", "surrogatepass"))
        ranks = self.ranks
        while len(w) > 1:
            # the earliest-learned merge present, applied everywhere in the piece (training's order)
            best = min((ranks.get(p, MAX_MERGES), p) for p in zip(w, w[1:]))
            if best[0] == MAX_MERGES:
                break
            a, b = best[1]
            w = _merge_pair(w, a, b, 256 + best[0])
        if len(self._cache) < 500_000:
            self._cache[piece] = w
        return w

    def encode(self, text, errors="strict"):
        ids = []
        for piece in _PIECES.findall(text):
            ids.extend(self._encode_piece(piece))
        return np.array(ids, dtype=np.int64)

    def decode(self, ids):
        arr = np.asarray(ids).reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            raise ValueError(f"BPETokenizer.decode: ids must be in [0, {self.vocab_size - 1}]")
        vocab = self.vocab
        return b"".join(vocab[int(i)] for i in arr).decode("utf-8", errors="replace")

    def to_dict(self):
        return {"kind": self.kind, "merges": [list(m) for m in self.merges]}


def load_tokenizer(meta):
    """The tokenizer that ``meta`` describes: a tokenizer's ``to_dict()`` (or its JSON), or a checkpoint
    (a dict with a ``"tokenizer"`` entry). The one place that turns saved metadata into a tokenizer:
    training, sampling, evaluation and the server all load through it. Raises ValueError if unreadable."""
    if isinstance(meta, str):
        meta = json.loads(meta)
    if isinstance(meta, dict) and "kind" not in meta and isinstance(meta.get("tokenizer"), dict):
        meta = meta["tokenizer"]
    if not isinstance(meta, dict):
        raise ValueError(f"a tokenizer is described by a dict, got {type(meta).__name__}")
    kind = meta.get("kind")
    if kind == "char":
        if not isinstance(meta.get("chars"), (str, list)):
            raise ValueError("a char tokenizer needs its characters")
        return CharTokenizer(list(meta["chars"]))
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        if not isinstance(meta.get("merges"), list):
            raise ValueError("a bpe tokenizer needs its list of merges")
        return BPETokenizer(meta["merges"])
    raise ValueError(f"unknown tokenizer kind {kind!r}")


tokenizer_from_dict = load_tokenizer  # the older name


def make_tokenizer(kind, text=None, vocab_size=None):
    """A tokenizer of ``kind`` ('char', 'byte' or 'bpe') fitted to ``text`` where the kind needs fitting."""
    if kind == "char":
        if text is None:
            raise ValueError("a char tokenizer needs the training text to fit its vocabulary")
        return CharTokenizer.fit(text)
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        if text is None:
            raise ValueError("a bpe tokenizer needs the training text to learn its merges")
        return BPETokenizer.fit(text, vocab_size or 512)
    raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {kind!r}")


# ---------------------------------------------------------------------- corpora

TEXT_SUFFIXES = (".txt", ".md", ".py", ".rst", ".csv", ".json")
FILE_SEPARATOR = "\n\n"  # between the files of a folder


def corpus_files(path):
    """The files of a corpus: ``path`` itself, or every text file under the folder ``path`` (sorted)."""
    if os.path.isdir(path):
        files = sorted(f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True)
                       if os.path.isfile(f) and f.endswith(TEXT_SUFFIXES))
        if not files:
            raise FileNotFoundError(f"no text files ({', '.join(TEXT_SUFFIXES)}) under {path}")
        return files
    if os.path.isfile(path):
        return [path]
    raise FileNotFoundError(f"no such file or folder: {path}")


def load_corpus(path, max_bytes=None):
    """The text of a file, or of every text file under a folder (sorted, joined by blank lines), whole
    unless ``max_bytes`` (characters) asks for a prefix. Large corpora: see ``tokenize_corpus``."""
    parts, total = [], 0
    for f in corpus_files(path):
        with open(f, encoding="utf-8", errors="replace") as fh:
            t = fh.read()
        parts.append(t)
        total += len(t)
        if max_bytes is not None and total >= max_bytes:
            break
    text = FILE_SEPARATOR.join(parts)
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


# ---------------------------------------------------------------------- token files

CHUNK_CHARS = 1 << 23      # text is read, fitted and encoded 8 Mi characters at a time
BPE_FIT_CHARS = 50_000_000  # BPE merges are learned from (at most) the first 50 M characters


def default_cache_dir():
    """Where token files go: $PYENGINE_CACHE_DIR, else ~/.cache/pyengine/tokens."""
    return os.environ.get("PYENGINE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "pyengine",
                                                                "tokens")


def _iter_chunks(files, text, max_chars):
    """The corpus as str chunks (a folder's files joined by FILE_SEPARATOR), each ending at a line end when
    one is near, so that no word is split between chunks; at most ``max_chars`` characters in all."""
    left = float("inf") if max_chars is None else max_chars

    def cap(s):
        nonlocal left
        s = s[:left] if len(s) > left else s
        left -= len(s)
        return s

    if text is not None:
        for i in range(0, len(text), CHUNK_CHARS):
            s = cap(text[i:i + CHUNK_CHARS])
            if s:
                yield s
        return
    for n, f in enumerate(files):
        if n and left > 0:
            yield cap(FILE_SEPARATOR)
        carry = ""
        with open(f, encoding="utf-8", errors="replace") as fh:
            while left > 0:
                s = fh.read(CHUNK_CHARS)
                if not s:
                    break
                s = carry + s
                cut = s.rfind("\n")
                if cut < 0 or len(s) - cut > 4096:
                    cut = len(s) - 1
                carry = s[cut + 1:]
                s = cap(s[:cut + 1])
                if s:
                    yield s
        if carry and left > 0:
            yield cap(carry)


def content_hash(files=None, text=None):
    """SHA-256 of a corpus (of ``text``): each file's size and bytes, and for several files their names
    relative to the folder, so a renamed or moved single file keeps its hash but a reordered folder does not."""
    h = hashlib.sha256()
    if text is not None:
        h.update(b"text\0" + text.encode("utf-8", "surrogatepass"))
        return h.hexdigest()
    root = os.path.commonpath(files) if len(files) > 1 else None
    for f in files:
        name = os.path.relpath(f, root).encode() if root else b""
        h.update(name + b"\0" + str(os.path.getsize(f)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


@dataclass
class TokenizedCorpus:
    """A corpus as tokens: ``ids`` (a read-only memory map of the token file, or an array), the tokenizer,
    its sizes, the content hash of its text and where the token file is (None: not cached)."""
    ids: np.ndarray
    tokenizer: object
    n_chars: int
    content_sha256: str
    token_file: str = None
    cached: bool = False     # True: read from an earlier run's token file, no tokenizing this time

    @property
    def n_tokens(self):
        return int(len(self.ids))


def tokenize_corpus(path=None, text=None, tokenizer=None, kind="char", vocab_size=None, cache_dir=None,
                    max_chars=None, cache=True):
    """Tokenize a corpus once and memory-map its tokens; returns a ``TokenizedCorpus``.

    path: a file or a folder of text files (any size: read in chunks), or text: a str. tokenizer: encode
    with this one; else fit one of ``kind`` ('char', 'byte', 'bpe' with ``vocab_size``) to the corpus.
    The tokens go to ``<cache_dir>/<key>.bin`` (uint16 when the vocabulary fits, else uint32) with a
    ``<key>.json`` beside it (the tokenizer, the sizes); the key is the SHA-256 of the corpus content and
    of the tokenizer (or of the fitting recipe), so a changed file or tokenizer never reuses stale tokens.
    max_chars: only the first ``max_chars`` characters (None: all of it).
    """
    if (path is None) == (text is None):
        raise ValueError("tokenize_corpus: pass a path or a text")
    files = corpus_files(path) if path is not None else None
    sha = content_hash(files, text)
    if tokenizer is not None:
        recipe = "tok:" + hashlib.sha256(json.dumps(tokenizer.to_dict()).encode()).hexdigest()
    else:
        if kind not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, got {kind!r}")
        recipe = f"fit:{kind}:{vocab_size if kind == 'bpe' else ''}"
    key = hashlib.sha256(f"{sha}|{recipe}|{max_chars}|v1".encode()).hexdigest()[:32]
    cache_dir = cache_dir or default_cache_dir()
    meta_path = os.path.join(cache_dir, key + ".json")
    if cache:
        found = _read_cached(meta_path, cache_dir, sha)
        if found is not None:
            return found

    def chunks():
        return _iter_chunks(files, text, max_chars)

    if tokenizer is None:
        tokenizer = _fit(kind, chunks, vocab_size)
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
    n_chars = 0
    if not cache:
        parts = []
        for s in chunks():
            n_chars += len(s)
            parts.append(tokenizer.encode(s, errors="ignore").astype(dtype))
        ids = np.concatenate(parts) if parts else np.zeros(0, dtype)
        return TokenizedCorpus(ids, tokenizer, n_chars, sha)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{key}.", suffix=".tmp")
    except OSError:  # no writable cache: tokens in memory this time (the start line says "not cached")
        return tokenize_corpus(path, text, tokenizer, kind, vocab_size, cache_dir, max_chars, cache=False)
    bin_path = os.path.join(cache_dir, key + ".bin")
    try:
        with os.fdopen(fd, "wb") as fh:
            for s in chunks():
                n_chars += len(s)
                fh.write(tokenizer.encode(s, errors="ignore").astype(dtype).tobytes())
        n_tokens = os.path.getsize(tmp) // np.dtype(dtype).itemsize
        os.replace(tmp, bin_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    meta = {"format": "pyengine-tokens-1", "content_sha256": sha, "tokenizer": tokenizer.to_dict(),
            "dtype": np.dtype(dtype).name, "n_chars": n_chars, "n_tokens": int(n_tokens), "bin": key + ".bin",
            "source": os.path.abspath(path) if path is not None else None}
    _write_json(meta_path, meta)
    if recipe.startswith("fit:"):  # the same tokens under the fitted tokenizer's own key (a resumed run)
        _write_json(os.path.join(cache_dir, hashlib.sha256(
            f"{sha}|tok:{hashlib.sha256(json.dumps(tokenizer.to_dict()).encode()).hexdigest()}|{max_chars}|v1"
            .encode()).hexdigest()[:32] + ".json"), meta)
    ids = np.memmap(bin_path, dtype=dtype, mode="r") if n_tokens else np.zeros(0, dtype)
    return TokenizedCorpus(ids, tokenizer, n_chars, sha, bin_path, cached=False)


def _fit(kind, chunks, vocab_size):
    if kind == "byte":
        return ByteTokenizer()
    if kind == "char":
        chars = set()
        for s in chunks():
            chars.update(s)
        return CharTokenizer(sorted(chars))
    counts, seen = {}, 0
    for s in chunks():
        word_counts(s, counts)
        seen += len(s)
        if seen >= BPE_FIT_CHARS:
            break
    return BPETokenizer.fit(counts, vocab_size or 512)


def _write_json(path, obj):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def _read_cached(meta_path, cache_dir, sha):
    """The cached TokenizedCorpus of ``meta_path``, or None when absent or inconsistent (then rebuilt)."""
    try:
        with open(meta_path) as f:
            meta = json.load(f)
        bin_path = os.path.join(cache_dir, os.path.basename(meta["bin"]))
        dtype = np.dtype(meta["dtype"])
        n = int(meta["n_tokens"])
        if meta.get("content_sha256") != sha or dtype not in (np.uint16, np.uint32) \
                or os.path.getsize(bin_path) != n * dtype.itemsize:
            return None
        tokenizer = load_tokenizer(meta["tokenizer"])
        ids = np.memmap(bin_path, dtype=dtype, mode="r") if n else np.zeros(0, dtype)
        return TokenizedCorpus(ids, tokenizer, int(meta["n_chars"]), sha, bin_path, cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train_val_split(ids, val_fraction=0.1):
    """The first (1 - val_fraction) of the token stream for training, the rest for validation (views)."""
    n = int(len(ids) * (1 - val_fraction))
    return ids[:n], ids[n:]


def get_batch(ids, block_size, batch_size, generator=None):
    """Random windows: x = ids[i : i + T], y = ids[i + 1 : i + T + 1] for batch_size random i.

    ids: 1-D integer array (a memory-mapped token file too). Returns (x, y) int64 arrays of shape
    (batch_size, block_size). Reproducible given the generator's state.
    """
    n = len(ids) - block_size - 1
    if n < 1:
        raise ValueError(f"get_batch: the text ({len(ids)} tokens) is shorter than block_size + 1 "
                         f"({block_size + 1})")
    starts = _rng(generator).integers(0, n + 1, batch_size)
    return windows(ids, starts, block_size)


def windows(ids, starts, block_size):
    """(x, y) int64 arrays (len(starts), block_size): x = ids[s : s + T], y = ids[s + 1 : s + T + 1]."""
    idx = np.asarray(starts)[:, None] + np.arange(block_size + 1)
    w = np.asarray(ids[idx], dtype=np.int64)
    return w[:, :-1], w[:, 1:]


def spread_starts(n_ids, block_size, n_windows):
    """``n_windows`` window starts spread evenly over a stream of ``n_ids`` tokens (deterministic), without
    overlap while they fit: the fixed sample that every validation loss is measured on."""
    last = n_ids - block_size - 1
    if last < 0:
        raise ValueError(f"the text ({n_ids} tokens) is shorter than one window ({block_size + 1})")
    n_windows = max(1, int(n_windows))
    if n_windows == 1:
        return np.zeros(1, np.int64)
    return np.round(np.linspace(0, last, n_windows)).astype(np.int64)
