"""A word's subwords: fastText's character n-grams (Bojanowski et al. 2017) and, for Korean, Park et al.'s (2018) jamo
n-grams; the rows beside the word's own that make its vector, so that a word never seen still has one.

fastText's scheme, to the bit (its models are written in its format): the word w is written <w>, and its n-grams
are the substrings of `minn` to `maxn` characters (code points, not bytes) of <w>, by start and then by length, but
for the single characters < and >; the word <w> itself is one when it is short enough. Each is hashed with
FNV-1a over its UTF-8 bytes, every byte taken as a signed char as fastText's C++ takes it (so a byte above 127
changes the hash as 0xFFFFFF00 | byte does), into one of `buckets` rows.

Jamo (Park et al.): each Hangul syllable written as its three jamo, the initial consonant, the vowel and the final
consonant (compatibility jamo, U+3131-U+3163), the empty final as JAMO_EMPTY_FINAL; other characters stay as they are.
"""

from __future__ import annotations

import functools

import numpy as np

from .table import jit
from .vocab import EOS

FNV_OFFSET, FNV_PRIME = 2166136261, 16777619
BOW, EOW = "<", ">"  # fastText's marks of a word's ends

HANGUL_FIRST, HANGUL_LAST = 0xAC00, 0xD7A3  # the precomposed syllables: 19 initials x 21 vowels x 28 finals
N_VOWELS, N_FINALS = 21, 28
INITIALS = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ"
VOWELS = "ㅏㅐㅑㅒㅓㅔㅕㅖㅗㅘㅙㅚㅛㅜㅝㅞㅟㅠㅡㅢㅣ"
FINALS = " ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ"  # index 0: no final
JAMO_EMPTY_FINAL = "e"  # Park et al.'s mark of a syllable without a final consonant
JAMO_LENGTHS = (3, 5)  # Park et al.'s jamo n-grams (beside character n-grams 1-4): a syllable and more


def ft_hash(text: str) -> int:
    """fastText's hash of a string: 32-bit FNV-1a over its UTF-8 bytes, each sign-extended as a C++ char."""
    h = FNV_OFFSET
    for b in text.encode("utf-8"):
        h ^= b | 0xFFFFFF00 if b > 127 else b
        h = (h * FNV_PRIME) & 0xFFFFFFFF
    return h


def ngrams(word: str, minn: int, maxn: int) -> list[str]:
    """fastText's character n-grams of `word`, in its order (Dictionary::computeSubwords)."""
    marked = BOW + word + EOW
    out = []
    for i in range(len(marked)):
        for n in range(1, maxn + 1):
            if i + n > len(marked):
                break
            if n >= minn and not (n == 1 and (i == 0 or i + n == len(marked))):
                out.append(marked[i:i + n])
    return out


def ngram_rows(word: str, minn: int, maxn: int, buckets: int) -> np.ndarray:
    """(m,) int64: the buckets of the word's n-grams, in ngrams' order, repeats kept (as fastText sums them). The
    n-grams from one start extend each other, so their hashes are one FNV-1a pass from that start (the same values
    as ft_hash of each)."""
    marked = BOW + word + EOW
    codes = [ch.encode("utf-8") for ch in marked]
    out = []
    for i in range(len(marked)):
        h = FNV_OFFSET
        for n in range(1, min(maxn, len(marked) - i) + 1):
            for b in codes[i + n - 1]:
                h = ((h ^ (b | 0xFFFFFF00 if b > 127 else b)) * FNV_PRIME) & 0xFFFFFFFF
            if n >= minn and not (n == 1 and (i == 0 or i + n == len(marked))):
                out.append(h % buckets)
    return np.array(out, dtype=np.int64)


def word_rows(word: str, minn: int, maxn: int, buckets: int, jamo: bool = False) -> np.ndarray:
    """(m,) int64: the buckets of a word's n-grams: its character n-grams, and with `jamo` and Hangul in the word,
    after them the JAMO_LENGTHS n-grams of its jamo spelling (Park et al.; a word without Hangul has none, as its
    jamo spelling is itself)."""
    rows = ngram_rows(word, minn, maxn, buckets)
    spelled = to_jamo(word) if jamo else word
    if spelled == word:
        return rows
    return np.concatenate((rows, ngram_rows(spelled, *JAMO_LENGTHS, buckets)))


def table(words: list[str], minn: int, maxn: int, buckets: int, jamo: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Every word's input rows, as fastText's getSubwords gives them: its own row (its index) first, then
    len(words) + the bucket of each of its n-grams (word_rows). As (V+1,) int64 offsets and (N,) int64 rows: word
    w's are rows[offsets[w]:offsets[w+1]]; EOS (--eos's </s>) has its own row only, as in fastText. Compiled (one
    pass over every word's UTF-8 bytes): in Python it took 14 us a word, 0.7 s for the Korean reviews' 51k words
    (2.5 s with jamo) at every load of a run."""
    v = len(words)
    spellings, lengths, owner = [], [], []  # every word's spellings in word order: its own, then its jamo one
    for w, word in enumerate(words):
        if word == EOS:  # fastText's end-of-line word has its own row only (Dictionary::initNgrams)
            continue
        spelled = to_jamo(word) if jamo else word
        for text, span in ((word, (minn, maxn)), (spelled, JAMO_LENGTHS))[:1 + (spelled != word)]:
            spellings.append(text)
            lengths.append(span)
            owner.append(w)
    encoded = [(BOW + text + EOW).encode("utf-8") for text in spellings]
    starts = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=starts[1:])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    lengths = np.array(lengths, dtype=np.int64).reshape(-1, 2)
    counts = _ngram_hashes(data, starts, lengths, buckets, np.zeros(0, np.int64), np.zeros(len(encoded), np.int64))
    hashes = np.empty(int(counts.sum()), dtype=np.int64)
    _ngram_hashes(data, starts, lengths, buckets, hashes, counts)
    per_word = np.bincount(np.array(owner, dtype=np.int64), weights=counts, minlength=v).astype(np.int64)
    offsets = np.zeros(v + 1, dtype=np.int64)
    np.cumsum(1 + per_word, out=offsets[1:])
    rows = np.empty(offsets[-1], dtype=np.int64)
    own = np.zeros(len(rows), dtype=bool)
    own[offsets[:-1]] = True
    rows[own] = np.arange(v)
    rows[~own] = v + hashes  # the spellings in word order: each word's n-grams right after its own row
    return offsets, rows


@jit
def _ngram_hashes(data, starts, lengths, buckets, out, counts):
    """word_rows' buckets of every spelling s (data[starts[s]:starts[s+1]], UTF-8 with the < > marks, n-grams of
    lengths[s] characters) in order into out; with out empty, only counts[s] = how many. Returns counts."""
    at = 0
    chars = np.empty(data.shape[0] + 1, dtype=np.int64)  # the byte where each character of a spelling starts
    for s in range(starts.shape[0] - 1):
        a, b = starts[s], starts[s + 1]
        m = 0
        for j in range(a, b):
            if data[j] & 0xC0 != 0x80:
                chars[m] = j
                m += 1
        chars[m] = b
        minn, maxn = lengths[s, 0], lengths[s, 1]
        c = 0
        for i in range(m):
            h = np.uint64(FNV_OFFSET)
            for n in range(1, min(maxn, m - i) + 1):
                for j in range(chars[i + n - 1], chars[i + n]):
                    x = np.uint64(data[j])
                    if x > 127:
                        x |= np.uint64(0xFFFFFF00)
                    h = ((h ^ x) * np.uint64(FNV_PRIME)) & np.uint64(0xFFFFFFFF)
                if n >= minn and not (n == 1 and (i == 0 or i + n == m)):
                    if out.shape[0] > 0:
                        out[at] = np.int64(h % np.uint64(buckets))
                        at += 1
                    c += 1
        counts[s] = c
    return counts


@functools.lru_cache(maxsize=2)
def _run_table(words: tuple[str, ...], minn: int, maxn: int, buckets: int, jamo: bool):
    offsets, rows = table(list(words), minn, maxn, buckets, jamo)
    v = len(words)
    ngram = rows >= v
    used = np.unique(rows[ngram]) - v  # (U,) ascending
    rows[ngram] = v + np.searchsorted(used, rows[ngram] - v)
    for a in (offsets, rows, used):
        a.flags.writeable = False  # shared by the callers of the cache
    return offsets, rows, used


def run_table(words: list[str], lengths: tuple[int, int], buckets: int, jamo: bool = False):
    """A run's input rows: table()'s, with only the buckets some word of the vocabulary uses given a row, in the
    buckets' order: (offsets (V+1,), rows (N,), used (U,) int64), word w's rows rows[offsets[w]:offsets[w+1]] among
    V + U, and n-gram row V + j the bucket used[j]. Why: the other buckets are never trained, and in fastText's
    layout they were most of the model (Korean reviews, n-grams 1-4: 175,462 of 2,000,000 used; the matrix 0.8 GB
    instead of 90 MB). Kept for the last two vocabularies (a resume and its trainer ask for the same)."""
    offsets, rows, used = _run_table(tuple(words), *lengths, buckets, jamo)
    return offsets.copy(), rows.copy(), used.copy()


def to_jamo(word: str) -> str:
    """The word with each Hangul syllable written as its initial, vowel and final jamo (JAMO_EMPTY_FINAL where it has
    no final); other characters as they are."""
    out = []
    for ch in word:
        c = ord(ch)
        if HANGUL_FIRST <= c <= HANGUL_LAST:
            s = c - HANGUL_FIRST
            final = s % N_FINALS
            out += [INITIALS[s // (N_VOWELS * N_FINALS)], VOWELS[(s // N_FINALS) % N_VOWELS],
                    FINALS[final] if final else JAMO_EMPTY_FINAL]
        else:
            out.append(ch)
    return "".join(out)


def from_jamo(text: str) -> str:
    """to_jamo undone: every initial-vowel-final triple made a syllable again."""
    out, i = [], 0
    while i < len(text):
        a, b, c = text[i:i + 1], text[i + 1:i + 2], text[i + 2:i + 3]
        if a and a in INITIALS and b and b in VOWELS and c and (c == JAMO_EMPTY_FINAL or c in FINALS[1:]):
            final = 0 if c == JAMO_EMPTY_FINAL else FINALS.index(c)
            out.append(chr(HANGUL_FIRST + (INITIALS.index(a) * N_VOWELS + VOWELS.index(b)) * N_FINALS + final))
            i += 3
        else:
            out.append(a)
            i += 1
    return "".join(out)
