"""Tokenizers, corpora and batches for the language-model workflow."""
import numpy as np
import pytest

import pyengine as pe
import pyengine.text as pyengine_text
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


# ---------------------------------------------------------------------- BPE, token files

from pyengine.text import (BPETokenizer, load_tokenizer, spread_starts, tokenize_corpus,  # noqa: E402
                           train_bpe, word_counts, windows)

WORDY = ("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings "
         "and arrows of outrageous fortune, or to take arms against a sea of troubles. 42 times, naïve café — "
         "日本語 too.\n\n")


def test_bpe_round_trip_and_compression():
    tok = BPETokenizer.fit(WORDY * 20, vocab_size=400)
    assert 256 < tok.vocab_size <= 400
    ids = tok.encode(WORDY)
    assert tok.decode(ids) == WORDY and ids.dtype == np.int64
    assert len(ids) < len(WORDY.encode()) / 2  # merges make words few tokens
    for s in ["", "unseen wörds ∑ and\ttabs\r\n", "x" * 1000, "'ll've're"]:
        assert tok.decode(tok.encode(s)) == s
    again = load_tokenizer(tok.to_dict())
    assert again.merges == tok.merges and np.array_equal(again.encode(WORDY), ids)
    assert load_tokenizer({"tokenizer": tok.to_dict()}).vocab_size == tok.vocab_size  # a checkpoint dict
    assert BPETokenizer.fit(WORDY * 20, vocab_size=400).merges == tok.merges  # deterministic


def test_bpe_merges_follow_pair_counts():
    """The incremental counts pick what a full recount would: the most frequent pair, ties to the smallest."""
    counts = {"aaab": 5, "ab": 3, "ba": 1}
    merges = train_bpe(counts, 3)
    a, b = ord("a"), ord("b")
    # counts: (a,a) 10, (a,b) 8, (b,a) 1 -> merge aa first; then "aaab" = [aa, a, b]: (a,b) 8 ...
    assert merges == [(a, a), (a, b), (256, 257)]  # then "aaab" = [aa, ab]: 5
    tok = BPETokenizer(merges)
    assert tok.decode(tok.encode("aaab")) == "aaab" and tok.encode("aaab").tolist() == [258]
    assert word_counts("the the  cat") == {"the": 1, " the": 1, " ": 1, " cat": 1}
    # against a full recount after every merge, on random words
    rng = np.random.default_rng(0)
    counts = {"".join(rng.choice(list("abcd"), rng.integers(1, 9))): int(rng.integers(1, 20)) for _ in range(60)}
    words = {w: [ord(ch) for ch in w] for w in counts}
    expected = []
    for m in range(40):
        pairs = {}
        for w, ids in words.items():
            for p in zip(ids, ids[1:]):
                pairs[p] = pairs.get(p, 0) + counts[w]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        expected.append(best)
        for w, ids in words.items():
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == best:
                    out.append(256 + m)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            words[w] = out
    assert train_bpe(counts, 40) == expected


@pytest.mark.parametrize("merges,match", [([[300, 1]], "merge 0"), ([[1, 2, 3]], "merge 0"), ([[True, 1]], "merge 0"),
                                          ("ab", "list of merges")])
def test_bpe_refuses_malformed_merges(merges, match):
    with pytest.raises(ValueError, match=match):
        load_tokenizer({"kind": "bpe", "merges": merges})


def test_char_tokenizer_vectorised_encode_matches_a_lookup():
    tok = CharTokenizer(list("zyx abc\n"))  # not in code-point order
    s = "abc xyz\nzz"
    assert tok.encode(s).tolist() == [tok.stoi[c] for c in s]
    assert tok.encode("a?b", errors="ignore").tolist() == [tok.stoi["a"], tok.stoi["b"]]
    with pytest.raises(ValueError, match="'\\?' is not in the vocabulary"):
        tok.encode("a?b")


def test_token_file_is_whole_cached_and_keyed_by_content(tmp_path, monkeypatch):
    monkeypatch.setattr(pyengine_text, "CHUNK_CHARS", 4096)  # many chunks
    big = tmp_path / "big.txt"
    line = "the quick brown fox jumps over the lazy dog, said the cat.\n"
    big.write_text(line * (1_200_000 // len(line) + 1))  # more than the 1,000,000 characters once cut
    n = len(big.read_text())
    c = tokenize_corpus(str(big), kind="char", cache_dir=str(tmp_path / "cache"))
    assert c.n_chars == n and c.n_tokens == n and not c.cached
    assert isinstance(c.ids, np.memmap) and c.ids.dtype == np.uint16
    assert np.array_equal(c.ids[:100], c.tokenizer.encode(big.read_text()[:100]))
    again = tokenize_corpus(str(big), kind="char", cache_dir=str(tmp_path / "cache"))
    assert again.cached and again.token_file == c.token_file and np.array_equal(again.ids, c.ids)
    # the fitted tokenizer's own key finds the same tokens (a resumed run)
    assert tokenize_corpus(str(big), tokenizer=c.tokenizer, cache_dir=str(tmp_path / "cache")).cached
    big.write_text(line.upper() * 100)  # changed content: never the stale tokens
    changed = tokenize_corpus(str(big), kind="char", cache_dir=str(tmp_path / "cache"))
    assert not changed.cached and changed.n_chars == len(line) * 100
    # bpe over chunks decodes back to the text, and a cap is a stated prefix
    b = tokenize_corpus(str(big), kind="bpe", vocab_size=300, cache_dir=str(tmp_path / "cache"))
    assert b.tokenizer.decode(b.ids) == big.read_text()
    capped = tokenize_corpus(str(big), kind="char", cache_dir=str(tmp_path / "cache"), max_chars=1000)
    assert capped.n_chars == 1000


def test_token_file_of_a_folder_and_wide_vocabularies(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("alpha")
    (tmp_path / "d" / "b.md").write_text("beta")
    c = tokenize_corpus(str(tmp_path / "d"), kind="byte", cache_dir=str(tmp_path / "cache"))
    assert c.tokenizer.decode(c.ids) == "alpha\n\nbeta"

    class Wide:  # a vocabulary past uint16
        kind, vocab_size = "wide", 70_000

        def encode(self, text, errors="strict"):
            return np.array([69_999] * len(text), np.int64)

        def to_dict(self):
            return {"kind": "wide"}
    w = tokenize_corpus(text="abc", tokenizer=Wide(), cache_dir=str(tmp_path / "cache"))
    assert w.ids.dtype == np.uint32 and w.ids.tolist() == [69_999] * 3


def test_evaluation_windows_are_spread_and_deterministic():
    ids = np.arange(1000, dtype=np.uint16)
    s = spread_starts(len(ids), 10, 5)
    assert s[0] == 0 and s[-1] == 1000 - 11 and np.all(np.diff(s) > 10)
    x, y = windows(ids, s, 10)
    assert x.dtype == np.int64 and np.array_equal(y[:, :-1], x[:, 1:])
    with pytest.raises(ValueError, match="shorter than one window"):
        spread_starts(5, 10, 1)


def test_an_unwritable_cache_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    (tmp_path / "t.txt").write_text("hello world " * 20)
    c = tokenize_corpus(str(tmp_path / "t.txt"), kind="char", cache_dir=str(blocker / "cache"))
    assert c.token_file is None and c.n_tokens == 240 and c.tokenizer.decode(c.ids) == "hello world " * 20
