"""Subword n-grams and their hashes equal fastText's (gensim's port of its C++, and fastText's own module where it is
installed); jamo decomposition round-trips every Hangul syllable."""

import numpy as np
import pytest
from gensim.models.fasttext import ft_ngram_hashes
from gensim.models.fasttext_inner import compute_ngrams_bytes

from w2v_nce.corpus.subwords import (HANGUL_FIRST, HANGUL_LAST, JAMO_EMPTY_FINAL, from_jamo, ft_hash, ngram_rows,
                                     ngrams, to_jamo)

WORDS = ["cat", "a", "", "naïve", "λόγος", "학교", "학교에서", "한국어", "東京", "e\u0301", "🙂x", "x" * 30, "ß", "Ξ"]


@pytest.mark.parametrize("minn,maxn", [(3, 6), (1, 4), (1, 1), (2, 3), (5, 5)])
def test_ngrams_and_their_rows_equal_fasttexts(minn, maxn):
    for word in WORDS:
        want = [g.decode("utf-8") for g in compute_ngrams_bytes(word, minn, maxn)]
        assert ngrams(word, minn, maxn) == want, word
        assert ngram_rows(word, minn, maxn, 2_000_000).tolist() == list(ft_ngram_hashes(word, minn, maxn, 2_000_000))


def test_the_hash_by_hand():
    # FNV-1a, 32 bits: offset 2166136261, prime 16777619; "a" is one step
    assert ft_hash("") == 2166136261
    assert ft_hash("a") == ((2166136261 ^ 0x61) * 16777619) & 0xFFFFFFFF
    # a byte above 127 is a signed char: sign-extended before the xor (학's first UTF-8 byte is 0xED)
    h = (2166136261 ^ 0xFFFFFFED) * 16777619 & 0xFFFFFFFF
    assert (h ^ 0xFFFFFF95) * 16777619 & 0xFFFFFFFF == _by_hand(b"\xed\x95")
    assert ft_hash("학") == _by_hand("학".encode())


def _by_hand(data: bytes) -> int:
    h = 2166136261
    for b in data:
        h = ((h ^ (b - 256 if b > 127 else b)) & 0xFFFFFFFF) * 16777619 & 0xFFFFFFFF
    return h


def test_fasttexts_own_module_agrees():
    fasttext = pytest.importorskip("fasttext", reason="fastText's Python module (pip install fasttext-wheel)")
    import tempfile
    from pathlib import Path
    d = Path(tempfile.mkdtemp())
    (d / "t.txt").write_text(" ".join(WORDS[:9] * 5) + "\n", encoding="utf-8")
    model = fasttext.train_unsupervised(str(d / "t.txt"), minn=1, maxn=4, minCount=1, dim=4, epoch=1, bucket=100000,
                                        thread=1, verbose=0)
    for word in ["학교에", "unseen", "λόγοι", "학교", "cat"]:
        subwords, ids = model.get_subwords(word)
        known = word in model.words  # then the word's own row comes first
        assert list(subwords[known:]) == ngrams(word, 1, 4)
        assert (np.asarray(ids[known:]) - len(model.words)).tolist() == ngram_rows(word, 1, 4, 100000).tolist()


def test_jamo_round_trips_every_syllable():
    syllables = "".join(chr(c) for c in range(HANGUL_FIRST, HANGUL_LAST + 1))
    jamo = to_jamo(syllables)
    assert len(jamo) == 3 * len(syllables)
    assert from_jamo(jamo) == syllables
    assert to_jamo("해달") == "ㅎㅐ" + JAMO_EMPTY_FINAL + "ㄷㅏㄹ"  # Park et al.'s example
    assert to_jamo("a학b") == "aㅎㅏㄱb" and from_jamo("aㅎㅏㄱb") == "a학b"


@pytest.mark.parametrize("minn,maxn", [(3, 6), (1, 4), (1, 1), (5, 5)])
@pytest.mark.parametrize("jamo", [False, True])
@pytest.mark.parametrize("buckets", [2_000_000, 7])
def test_the_compiled_table_is_each_words_rows_as_word_rows_gives_them(minn, maxn, jamo, buckets):
    from w2v_nce.corpus.subwords import table, word_rows
    offsets, rows = table(WORDS, minn, maxn, buckets, jamo)
    v = len(WORDS)
    assert offsets[0] == 0 and offsets[-1] == len(rows)
    for w, word in enumerate(WORDS):
        assert rows[offsets[w]] == w
        assert (rows[offsets[w] + 1:offsets[w + 1]] - v).tolist() == word_rows(word, minn, maxn, buckets, jamo).tolist()
    assert [len(a) for a in table([], minn, maxn, buckets, jamo)] == [1, 0]
    offsets, rows = table(["</s>", "cat"], minn, maxn, buckets, jamo)  # --eos's word: its own row only (fastText's)
    assert rows[offsets[0]:offsets[1]].tolist() == [0] and rows[offsets[1]] == 1
