"""Data preprocessing: scalers, train/test split, one-hot labels, a word tokenizer and sequence padding.

Names and semantics follow scikit-learn (``StandardScaler``, ``MinMaxScaler``, ``train_test_split``) and
Keras (``to_categorical``, ``Tokenizer``, ``pad_sequences``), without depending on either. Fit on the
training data only, then apply the fitted object to validation and test data:

>>> from pyengine.preprocessing import StandardScaler, train_test_split
>>> X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=0)
>>> scaler = StandardScaler().fit(X_train)
>>> X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
>>> pyengine.save({"model": model.state_dict(), "scaler": scaler.state_dict()}, "ckpt.safetensors")

Inputs may be NumPy arrays, nested lists or Tensors; results are NumPy arrays, except that the scalers
return a Tensor when given one and ``train_test_split`` splits Tensors into Tensors. Fitted state is
kept as NumPy float64 arrays.
"""
import json
import math
import numbers
from collections import OrderedDict, defaultdict

import numpy as np

from . import random as _random
from .tensor import Tensor, _wrap

__all__ = ["StandardScaler", "MinMaxScaler", "train_test_split", "to_categorical", "one_hot",
           "text_to_word_sequence", "Tokenizer", "tokenizer_from_json", "pad_sequences"]


def _as_array(x):
    """NumPy view of an array-like (a Tensor's data, an ndarray, or a nested list)."""
    if isinstance(x, Tensor):
        return x._data
    return np.asarray(x)


# ---------------------------------------------------------------------- scalers


class _Scaler:
    """Shared plumbing: fit_transform, Tensor in -> Tensor out, state_dict."""

    _state = ()     # names of the fitted attributes, saved by state_dict
    _config = ()    # names of the constructor settings, saved by state_dict too

    def fit_transform(self, X):
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def _fit_array(self, X, op):
        a = _as_array(X)
        if a.ndim == 0 or a.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}.{op}: expected at least one sample (rows on axis 0), "
                             f"got shape {a.shape}")
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{type(self).__name__}.{op}: expected numeric data, got dtype {a.dtype}")
        return a.astype(np.float64)

    def _apply(self, X, fn, op):
        """Run ``fn`` on X in float64 and return the result as X came (Tensor or ndarray, float dtype kept)."""
        self._check_fitted(op)
        a = _as_array(X)
        if a.shape[1:] != self.scale_.shape:
            raise ValueError(f"{type(self).__name__}.{op}: X has per-sample shape {a.shape[1:]}, but the scaler "
                             f"was fitted on per-sample shape {self.scale_.shape}")
        out = fn(a.astype(np.float64))
        if isinstance(X, Tensor):
            return _wrap(out.astype(a.dtype if a.dtype.kind == "f" else np.float32))
        return out.astype(a.dtype) if a.dtype.kind == "f" else out

    def _check_fitted(self, op):
        if getattr(self, "scale_", None) is None:
            raise RuntimeError(f"{type(self).__name__}.{op}: this scaler is not fitted yet; call fit(X_train) first")

    def state_dict(self):
        """Settings and fitted statistics as a dict of NumPy arrays and plain values (``pyengine.save`` can
        store it in a checkpoint next to the model)."""
        self._check_fitted("state_dict")
        sd = {name: getattr(self, name) for name in self._config}
        sd.update({name: getattr(self, name) for name in self._state})
        return sd

    def load_state_dict(self, state_dict):
        """Restore what ``state_dict()`` returned (arrays may come back as NumPy arrays or Tensors)."""
        missing = [k for k in self._config + self._state if k not in state_dict]
        if missing:
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing keys {missing}")
        for name in self._config:
            value = state_dict[name]
            setattr(self, name, tuple(value) if isinstance(value, (list, tuple)) else value)
        for name in self._state:
            value = state_dict[name]
            if isinstance(value, (np.ndarray, Tensor)):
                value = np.array(_as_array(value), dtype=np.float64)
            setattr(self, name, value)
        return self


class StandardScaler(_Scaler):
    """Standardize features: ``z = (x - mean) / std`` per feature, statistics from the data given to ``fit``.

    Rows are samples (axis 0); ``std`` is the population standard deviation (ddof=0), as scikit-learn.
    A constant feature (zero variance, up to rounding) keeps scale 1, so it is only centred, never
    divided by zero.

    >>> scaler = StandardScaler().fit(X_train)           # X_train: (N, F)
    >>> Z = scaler.transform(X_test)                      # (M, F), same type/dtype as X_test
    >>> np.allclose(scaler.inverse_transform(Z), X_test)
    True
    """

    _state = ("mean_", "var_", "scale_", "n_samples_seen_")
    _config = ("with_mean", "with_std")

    def __init__(self, with_mean=True, with_std=True):
        self.with_mean, self.with_std = bool(with_mean), bool(with_std)
        self.mean_ = self.var_ = self.scale_ = None
        self.n_samples_seen_ = 0

    def fit(self, X):
        """Compute the per-feature mean and standard deviation of X (N, ...). Returns self."""
        a = self._fit_array(X, "fit")
        n = a.shape[0]
        self.mean_ = a.mean(axis=0)
        self.var_ = a.var(axis=0)
        # A constant column's computed variance is rounding noise of size about (n * eps * mean)^2, not 0:
        # treat anything below that bound as constant (scikit-learn does the same).
        constant = self.var_ <= (n * np.finfo(np.float64).eps * self.mean_) ** 2
        self.scale_ = np.where(constant, 1.0, np.sqrt(self.var_))
        self.n_samples_seen_ = n
        return self

    def transform(self, X):
        """``(X - mean_) / scale_`` (each part only if ``with_mean`` / ``with_std``)."""
        mean = self.mean_ if self.with_mean else 0.0
        scale = self.scale_ if self.with_std else 1.0
        return self._apply(X, lambda a: (a - mean) / scale, "transform")

    def inverse_transform(self, X):
        """``X * scale_ + mean_``: back to the original units."""
        mean = self.mean_ if self.with_mean else 0.0
        scale = self.scale_ if self.with_std else 1.0
        return self._apply(X, lambda a: a * scale + mean, "inverse_transform")


class MinMaxScaler(_Scaler):
    """Scale each feature linearly so that its training minimum and maximum map to ``feature_range``.

    ``x' = x * scale_ + min_`` with ``scale_ = (hi - lo) / (data_max_ - data_min_)`` and
    ``min_ = lo - data_min_ * scale_``. A constant feature maps to ``lo``. With ``clip=True`` the
    output is clipped to ``feature_range`` (for test data outside the training range).

    >>> MinMaxScaler(feature_range=(-1, 1)).fit_transform(np.array([[0.], [5.], [10.]])).ravel()
    array([-1.,  0.,  1.])
    """

    _state = ("data_min_", "data_max_", "data_range_", "scale_", "min_", "n_samples_seen_")
    _config = ("feature_range", "clip")

    def __init__(self, feature_range=(0, 1), clip=False):
        lo, hi = feature_range
        if not lo < hi:
            raise ValueError(f"MinMaxScaler: minimum of desired feature range must be smaller than maximum, "
                             f"got {tuple(feature_range)}")
        self.feature_range, self.clip = (float(lo), float(hi)), bool(clip)
        self.data_min_ = self.data_max_ = self.data_range_ = self.scale_ = self.min_ = None
        self.n_samples_seen_ = 0

    def fit(self, X):
        """Record the per-feature minimum and maximum of X (N, ...). Returns self."""
        a = self._fit_array(X, "fit")
        lo, hi = self.feature_range
        self.data_min_, self.data_max_ = a.min(axis=0), a.max(axis=0)
        self.data_range_ = self.data_max_ - self.data_min_
        self.scale_ = (hi - lo) / np.where(self.data_range_ == 0, 1.0, self.data_range_)
        self.min_ = lo - self.data_min_ * self.scale_
        self.n_samples_seen_ = a.shape[0]
        return self

    def transform(self, X):
        """``X * scale_ + min_`` (clipped to ``feature_range`` if ``clip``)."""
        def f(a):
            out = a * self.scale_ + self.min_
            return np.clip(out, *self.feature_range) if self.clip else out
        return self._apply(X, f, "transform")

    def inverse_transform(self, X):
        """``(X - min_) / scale_``: back to the original units."""
        return self._apply(X, lambda a: (a - self.min_) / self.scale_, "inverse_transform")


# ---------------------------------------------------------------------- splitting


def _split_sizes(n, test_size, train_size):
    """(n_train, n_test) as scikit-learn: a float is a fraction (test rounded up, train down), an int a count."""
    if test_size is None and train_size is None:
        test_size = 0.25

    def count(size, name, round_up):
        if size is None:
            return None
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            if not 0 < size < n:
                raise ValueError(f"train_test_split: {name}={size} should be positive and smaller than the "
                                 f"number of samples {n}")
            return int(size)
        if isinstance(size, numbers.Real) and 0 < size < 1:
            return int(math.ceil(size * n) if round_up else math.floor(size * n))
        raise ValueError(f"train_test_split: {name}={size} should be an int in (0, {n}) or a float in (0, 1)")

    n_test, n_train = count(test_size, "test_size", True), count(train_size, "train_size", False)
    if n_test is None:
        n_test = n - n_train
    if n_train is None:
        n_train = n - n_test
    if n_train + n_test > n:
        raise ValueError(f"train_test_split: train ({n_train}) and test ({n_test}) sizes add up to more than "
                         f"the {n} samples")
    if n_train == 0 or n_test == 0:
        raise ValueError(f"train_test_split: with n_samples={n}, test_size={test_size} and "
                         f"train_size={train_size}, the train or test set would be empty")
    return n_train, n_test


def _allocate(total, counts, cap=None):
    """Split ``total`` items over classes in proportion to ``counts`` (largest-remainder rounding),
    never giving a class more than ``cap``."""
    exact = total * counts / counts.sum()
    alloc = np.floor(exact).astype(np.int64)
    if cap is not None:
        alloc = np.minimum(alloc, cap)
    room = (cap - alloc) if cap is not None else np.full_like(alloc, total)
    for c in np.argsort(-(exact - alloc), kind="stable"):   # hand out the rest, biggest remainder first
        if alloc.sum() >= total:
            break
        if room[c] > 0:
            alloc[c] += 1
            room[c] -= 1
    return alloc


def train_test_split(*arrays, test_size=None, train_size=None, shuffle=True, seed=None, stratify=None,
                     random_state=None):
    """Split arrays (same first dimension) into random train and test parts, as scikit-learn.

    Returns ``[a_train, a_test, b_train, b_test, ...]``. ``test_size``/``train_size``: a fraction in (0, 1)
    or a count; by default 25% goes to test. ``seed`` (or ``random_state``) fixes the split; without it
    the split is drawn from pyengine's default generator (so ``pyengine.manual_seed`` fixes it too).
    ``stratify``: labels whose class proportions both parts keep. ``shuffle=False`` takes the first
    rows for train and the next for test. Tensors come back as Tensors, everything else as NumPy arrays.

    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=0, stratify=y)
    """
    if not arrays:
        raise ValueError("train_test_split: at least one array required as input")
    if seed is None:
        seed = random_state
    lengths = [len(a) for a in arrays]
    if len(set(lengths)) != 1:
        raise ValueError(f"train_test_split: found input arrays with inconsistent numbers of samples: {lengths}")
    n = lengths[0]
    n_train, n_test = _split_sizes(n, test_size, train_size)
    if seed is None:
        rng = np.random.default_rng(int(_random.default_generator.numpy.integers(2 ** 63)))
    elif isinstance(seed, _random.Generator):
        rng = seed.numpy
    else:
        rng = np.random.default_rng(seed)

    if not shuffle:
        if stratify is not None:
            raise ValueError("train_test_split: stratified splitting requires shuffle=True")
        train, test = np.arange(n_train), np.arange(n_train, n_train + n_test)
    elif stratify is None:
        perm = rng.permutation(n)
        test, train = perm[:n_test], perm[n_test:n_test + n_train]
    else:
        labels = _as_array(stratify)
        if len(labels) != n:
            raise ValueError(f"train_test_split: stratify has {len(labels)} labels for {n} samples")
        classes, y = np.unique(labels.reshape(n, -1) if labels.ndim > 1 else labels, axis=0, return_inverse=True)
        y = y.reshape(-1)
        counts = np.bincount(y, minlength=len(classes))
        if counts.min() < 2:
            raise ValueError("train_test_split: the least populated class in stratify has only 1 member, "
                             "which is too few; every class needs at least 2")
        if n_test < len(classes) or n_train < len(classes):
            raise ValueError(f"train_test_split: train ({n_train}) and test ({n_test}) sizes must each be at "
                             f"least the number of classes ({len(classes)}) to stratify")
        test_counts = _allocate(n_test, counts)
        train_counts = _allocate(n_train, counts, cap=counts - test_counts)
        train, test = [], []
        for c in range(len(classes)):
            members = rng.permutation(np.flatnonzero(y == c))
            test.append(members[:test_counts[c]])
            train.append(members[test_counts[c]:test_counts[c] + train_counts[c]])
        train, test = rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))

    out = []
    for a in arrays:
        if isinstance(a, Tensor):
            out += [_wrap(a._data[train]), _wrap(a._data[test])]
        else:
            a = np.asarray(a)
            out += [a[train], a[test]]
    return out


# ---------------------------------------------------------------------- labels


def to_categorical(y, num_classes=None, dtype="float32"):
    """Class indices -> one-hot rows (Keras ``to_categorical``).

    The output has shape ``y.shape + (num_classes,)``, except that a trailing dimension of size 1 is
    replaced (``(N, 1)`` labels give ``(N, num_classes)``). ``num_classes`` defaults to ``max(y) + 1``.

    >>> to_categorical([0, 2, 1], num_classes=3)
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    """
    y = np.asarray(_as_array(y))
    if y.size and (y.dtype.kind not in "iuf" or not np.all(y == np.round(y))):
        raise TypeError(f"to_categorical: expected integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    shape = y.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    y = y.reshape(-1)
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"to_categorical: class indices must be in [0, {num_classes}), "
                         f"got min {y.min()} and max {y.max()}")
    out = np.zeros((y.size, num_classes), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out.reshape(shape + (num_classes,))


def one_hot(x, num_classes, dtype="float32"):
    """One-hot encode integer indices along a new last axis (Keras ``keras.ops.one_hot``).

    Unlike ``to_categorical``, the shape is always ``x.shape + (num_classes,)`` and an index outside
    ``[0, num_classes)`` gives a row of zeros.

    >>> one_hot([1, 3], 3)
    array([[0., 1., 0.],
           [0., 0., 0.]], dtype=float32)
    """
    x = np.asarray(_as_array(x))
    if x.size and x.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expected integer indices, got dtype {x.dtype}")
    return (x[..., None] == np.arange(int(num_classes))).astype(dtype)


# ---------------------------------------------------------------------- text

_DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def text_to_word_sequence(text, filters=_DEFAULT_FILTERS, lower=True, split=" "):
    """Split a text into words (Keras): lowercase, turn every ``filters`` character into ``split``, split.

    >>> text_to_word_sequence("Hello, world! Hello...")
    ['hello', 'world', 'hello']
    """
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in text.split(split) if w]


class Tokenizer:
    """Word-level tokenizer with the semantics of ``keras.preprocessing.text.Tokenizer``.

    ``fit_on_texts`` counts words; ``word_index`` numbers them from 1 by decreasing frequency (ties: first
    appearance first). With ``oov_token`` that token takes index 1 and unknown words map to it. With
    ``num_words``, ``texts_to_sequences`` keeps only words whose index is below ``num_words`` (the others
    become the OOV index if there is one, else are dropped); ``word_index`` itself keeps every word.
    Index 0 is never assigned: it is left for padding.

    >>> tok = Tokenizer(num_words=4, oov_token="<unk>")
    >>> tok.fit_on_texts(["the cat sat", "the dog sat down"])
    >>> tok.word_index
    {'<unk>': 1, 'the': 2, 'sat': 3, 'cat': 4, 'dog': 5, 'down': 6}
    >>> tok.texts_to_sequences(["the cat ran"])
    [[2, 1, 1]]
    """

    def __init__(self, num_words=None, filters=_DEFAULT_FILTERS, lower=True, split=" ", char_level=False,
                 oov_token=None, document_count=0):
        if num_words is not None and (not isinstance(num_words, numbers.Integral) or num_words < 0):
            raise ValueError(f"Tokenizer: num_words must be a non-negative int or None, got {num_words}")
        self.num_words = num_words
        self.filters, self.lower, self.split, self.char_level = filters, lower, split, char_level
        self.oov_token = oov_token
        self.document_count = document_count
        self.word_counts = OrderedDict()
        self.word_docs = defaultdict(int)
        self.index_docs = defaultdict(int)
        self.word_index = {}
        self.index_word = {}

    def _words(self, text):
        if self.char_level or isinstance(text, list):
            if self.lower:
                text = [t.lower() for t in text] if isinstance(text, list) else text.lower()
            return text
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    def fit_on_texts(self, texts):
        """Update the word counts from a list of texts (or of word lists) and rebuild ``word_index``."""
        if isinstance(texts, str):
            raise TypeError("Tokenizer.fit_on_texts: expected a list of texts, got a single string")
        for text in texts:
            self.document_count += 1
            seq = self._words(text)
            for w in seq:
                self.word_counts[w] = self.word_counts.get(w, 0) + 1
            for w in set(seq):
                self.word_docs[w] += 1
        # A stable sort by decreasing count keeps first-appearance order among equal counts.
        vocab = [w for w, _ in sorted(self.word_counts.items(), key=lambda wc: wc[1], reverse=True)]
        if self.oov_token is not None:
            vocab.insert(0, self.oov_token)
        self.word_index = dict(zip(vocab, range(1, len(vocab) + 1)))
        self.index_word = {i: w for w, i in self.word_index.items()}
        self.index_docs = defaultdict(int)
        for w, c in self.word_docs.items():
            self.index_docs[self.word_index[w]] = c

    def texts_to_sequences(self, texts):
        """Each text -> list of word indices (see the class docstring for ``num_words`` and OOV)."""
        if isinstance(texts, str):
            raise TypeError("Tokenizer.texts_to_sequences: expected a list of texts, got a single string")
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        out = []
        for text in texts:
            seq = []
            for w in self._words(text):
                i = self.word_index.get(w)
                if i is not None and not (self.num_words and i >= self.num_words):
                    seq.append(i)
                elif oov is not None:
                    seq.append(oov)
            out.append(seq)
        return out

    def sequences_to_texts(self, sequences):
        """Each list of indices -> space-joined words (indices beyond ``num_words`` read as the OOV token)."""
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        out = []
        for seq in sequences:
            words = []
            if isinstance(seq, (Tensor, np.ndarray)):
                seq = _as_array(seq).tolist()
            for i in seq:
                w = self.index_word.get(i)
                if w is not None and not (self.num_words and i >= self.num_words):
                    words.append(w)
                elif oov is not None:
                    words.append(self.index_word[oov])
            out.append(" ".join(words))
        return out

    def sequences_to_matrix(self, sequences, mode="binary"):
        """Bag-of-words matrix (len(sequences), num_words) with ``mode`` 'binary', 'count', 'freq' or 'tfidf'.

        tfidf, as Keras: ``(1 + log(count)) * log(1 + document_count / (1 + docs containing the word))``.
        """
        if mode not in ("binary", "count", "freq", "tfidf"):
            raise ValueError(f"Tokenizer.sequences_to_matrix: unknown mode {mode!r}; "
                             f"expected 'binary', 'count', 'freq' or 'tfidf'")
        num_words = self.num_words or (len(self.word_index) + 1 if self.word_index else None)
        if not num_words:
            raise ValueError("Tokenizer.sequences_to_matrix: specify num_words or fit the tokenizer first")
        if mode == "tfidf" and not self.document_count:
            raise ValueError("Tokenizer.sequences_to_matrix: fit the tokenizer on texts before using tfidf mode")
        x = np.zeros((len(sequences), num_words))
        for row, seq in enumerate(sequences):
            if not len(seq):
                continue
            counts = defaultdict(int)
            for j in seq:
                if j < num_words:
                    counts[j] += 1
            for j, c in counts.items():
                if mode == "count":
                    x[row, j] = c
                elif mode == "freq":
                    x[row, j] = c / len(seq)
                elif mode == "binary":
                    x[row, j] = 1
                else:
                    idf = np.log(1 + self.document_count / (1 + self.index_docs.get(j, 0)))
                    x[row, j] = (1 + np.log(c)) * idf
        return x

    def texts_to_matrix(self, texts, mode="binary"):
        """``sequences_to_matrix(texts_to_sequences(texts), mode)``."""
        return self.sequences_to_matrix(self.texts_to_sequences(texts), mode=mode)

    def get_config(self):
        """Settings and vocabulary, in the layout of Keras (the vocabulary tables as JSON strings)."""
        return {"num_words": self.num_words, "filters": self.filters, "lower": self.lower, "split": self.split,
                "char_level": self.char_level, "oov_token": self.oov_token,
                "document_count": self.document_count,
                "word_counts": json.dumps(self.word_counts), "word_docs": json.dumps(self.word_docs),
                "index_docs": json.dumps(self.index_docs), "index_word": json.dumps(self.index_word),
                "word_index": json.dumps(self.word_index)}

    def to_json(self, **kwargs):
        """The tokenizer as a JSON string, readable by ``Tokenizer.from_json`` and by Keras's
        ``tokenizer_from_json``. Keyword arguments go to ``json.dumps``."""
        return json.dumps({"class_name": "Tokenizer", "config": self.get_config()}, **kwargs)

    @classmethod
    def from_config(cls, config):
        """Rebuild a tokenizer from ``get_config()``."""
        config = dict(config)
        tables = {k: json.loads(config.pop(k)) for k in
                  ("word_counts", "word_docs", "index_docs", "index_word", "word_index")}
        tok = cls(**config)
        tok.word_counts = OrderedDict(tables["word_counts"])
        tok.word_docs = defaultdict(int, tables["word_docs"])
        tok.index_docs = defaultdict(int, {int(k): v for k, v in tables["index_docs"].items()})
        tok.index_word = {int(k): v for k, v in tables["index_word"].items()}
        tok.word_index = tables["word_index"]
        return tok

    @classmethod
    def from_json(cls, json_string):
        """Rebuild a tokenizer from ``to_json()`` output (or from a Keras tokenizer's JSON)."""
        obj = json.loads(json_string)
        if not isinstance(obj, dict) or "config" not in obj:
            raise ValueError("Tokenizer.from_json: expected the output of Tokenizer.to_json()")
        return cls.from_config(obj["config"])


def tokenizer_from_json(json_string):
    """Keras name for ``Tokenizer.from_json``."""
    return Tokenizer.from_json(json_string)


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0):
    """Pad (or cut) sequences to one length: a NumPy array (len(sequences), maxlen), as Keras.

    ``maxlen`` defaults to the longest sequence. ``padding='pre'`` puts ``value`` before a short sequence,
    ``'post'`` after it; ``truncating='pre'`` drops the start of a long one, ``'post'`` its end. Elements
    may themselves be vectors: the output then has shape (len(sequences), maxlen, *element_shape).

    >>> pad_sequences([[1, 2, 3], [4]], maxlen=2)
    array([[2, 3],
           [0, 4]], dtype=int32)
    >>> pad_sequences([[1, 2, 3], [4]], maxlen=2, padding="post", truncating="post")
    array([[1, 2],
           [4, 0]], dtype=int32)
    """
    if padding not in ("pre", "post"):
        raise ValueError(f"pad_sequences: padding must be 'pre' or 'post', got {padding!r}")
    if truncating not in ("pre", "post"):
        raise ValueError(f"pad_sequences: truncating must be 'pre' or 'post', got {truncating!r}")
    if not hasattr(sequences, "__len__"):
        raise ValueError("pad_sequences: sequences must be a list of sequences")
    seqs = [np.asarray(_as_array(s)) for s in sequences]
    for i, s in enumerate(seqs):
        if s.ndim == 0:
            raise ValueError(f"pad_sequences: sequences[{i}] is a scalar ({s!r}), not a sequence")
    if maxlen is None:
        maxlen = max((len(s) for s in seqs), default=0)
    if maxlen < 0:
        raise ValueError(f"pad_sequences: maxlen must be non-negative, got {maxlen}")
    sample_shape = next((s.shape[1:] for s in seqs if len(s)), ())
    x = np.full((len(seqs), maxlen) + sample_shape, value, dtype=dtype)
    if maxlen == 0:
        return x
    for i, s in enumerate(seqs):
        if not len(s):
            continue
        trunc = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if trunc.shape[1:] != sample_shape:
            raise ValueError(f"pad_sequences: shape of sample {trunc.shape[1:]} of sequence at position {i} is "
                             f"different from expected shape {sample_shape}")
        if padding == "post":
            x[i, :len(trunc)] = trunc
        else:
            x[i, maxlen - len(trunc):] = trunc
    return x
