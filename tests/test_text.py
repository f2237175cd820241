"""Tokenizers, corpora and batches for the language-model workflow."""
import numpy as np
import pytest

import pyengine as pe
from pyengine.text import (ByteTokenizer, CharTokenizer, default_corpus, get_batch, load_corpus,
                           tokenizer_from_dict, train_val_split)


def test_char_tokenizer_round_trip():
    text = "To be, or not to be: that is the question.\n"
    tok = CharTokenizer.fit(text)
    assert tok.vocab_size == len(set(text))
    ids = tok.encode(text)
    assert ids.dtype == np.int64 and tok.decode(ids) == text
    again = tokenizer_from_dict(tok.to_dict())
    assert again.encode(text).tolist() == ids.tolist()
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("Z")
    assert tok.decode(tok.encode("Zto", errors="ignore")) == "to"


def test_byte_tokenizer_any_text():
    tok = ByteTokenizer()
    s = "naïve café — 日本"
    assert tok.decode(tok.encode(s)) == s
    assert tok.vocab_size == 256 and tokenizer_from_dict(tok.to_dict()).vocab_size == 256


def test_default_corpus_offline_and_stable():
    a = default_corpus(200_000)
    assert len(a) == 200_000 and "def " in a
    assert default_corpus(200_000) == a


def test_load_corpus_file_and_folder(tmp_path):
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("beta")
    (tmp_path / "c.bin").write_bytes(b"\x00")
    assert load_corpus(str(tmp_path / "a.txt")) == "alpha"
    assert load_corpus(str(tmp_path)) == "alpha\n\nbeta"
    with pytest.raises(FileNotFoundError):
        load_corpus(str(tmp_path / "missing"))


def test_batches_reproducible_and_shifted():
    ids = np.arange(1000, dtype=np.int64)
    tr, va = train_val_split(ids, 0.1)
    assert len(tr) == 900 and va[0] == 900
    g1, g2 = pe.Generator().manual_seed(3), pe.Generator().manual_seed(3)
    x1, y1 = get_batch(tr, 16, 8, g1)
    x2, y2 = get_batch(tr, 16, 8, g2)
    assert x1.shape == (8, 16) and np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert np.array_equal(y1[:, :-1], x1[:, 1:]) and np.all(y1 - x1 == 1)
    with pytest.raises(ValueError, match="shorter"):
        get_batch(ids[:10], 16, 2)
