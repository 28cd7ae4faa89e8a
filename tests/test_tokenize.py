import bz2
import gzip
import lzma
import sys

import numpy as np
import pytest

from w2v_nce.corpus import table, vocab
from w2v_nce.errors import W2VError
from w2v_nce.corpus.tokenize import LINE_BREAK, iter_tokens

TEXT = "한국어 λόγος café naïve\nthe cat  sat\t on\r\nthe mat\n\n  ΆΈΉ ok"
WANT = ["한국어", "λόγος", "café", "naïve", LINE_BREAK, "the", "cat", "sat", "on", LINE_BREAK,
        "the", "mat", LINE_BREAK, LINE_BREAK, "ΆΈΉ", "ok"]


def tokens(path, **kw):
    return [t for block in iter_tokens(path, **kw) for t in block]


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
def test_any_block_size_gives_the_same_tokens(tmp_path, block):
    p = tmp_path / "c.txt"
    p.write_text(TEXT, encoding="utf-8")
    assert tokens(p, block_bytes=block) == WANT


@pytest.mark.parametrize("suffix,opener", [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)])
def test_compressed_corpora(tmp_path, suffix, opener):
    p = tmp_path / f"c.txt{suffix}"
    with opener(p, "wb") as f:
        f.write(TEXT.encode("utf-8"))
    assert tokens(p) == WANT


def test_lowercase(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("The CAT Ünïcode ΛΌΓΟΣ", encoding="utf-8")
    assert tokens(p, lowercase=True) == ["the", "cat", "ünïcode", "λόγος"]  # Python lower-cases a final Σ to ς


def test_one_long_line_without_newline_streams(tmp_path):
    # text8-style: one line, no newline; blocks far smaller than the line
    words = [f"w{i % 97}" for i in range(20000)]
    p = tmp_path / "one.txt"
    p.write_text(" ".join(words), encoding="utf-8")
    blocks = list(iter_tokens(p, block_bytes=4096))
    assert len(blocks) > 10  # never the whole line at once
    assert [t for b in blocks for t in b] == words


def test_invalid_utf8_names_the_byte_and_the_flag(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes(b"good words \xff\xfe here")
    with pytest.raises(W2VError, match=r"byte 11.*--encoding-errors replace"):
        tokens(p)
    stats = {}
    assert tokens(p, encoding_errors="replace", stats=stats) == ["good", "words", "\ufffd\ufffd", "here"]
    assert stats["replaced_bytes"] == 2


def test_invalid_utf8_offset_across_blocks(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_bytes("ab é".encode() + b" \xc3(")  # a truncated 2-byte sequence at byte 6
    with pytest.raises(W2VError, match="byte 6"):
        tokens(p, block_bytes=3)


def test_vocab_counts_order_and_encoding(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("b a b c b a\nd b a c\n", encoding="utf-8")
    v, stats = vocab.build(p, tmp_path / "ids", min_count=2)
    assert v.words == ["b", "a", "c"] and v.counts.tolist() == [4, 3, 2]
    assert stats["tokens"] == 10 and stats["kept_tokens"] == 9 and stats["distinct"] == 4
    ids = vocab.load_ids(tmp_path / "ids")
    assert ids.dtype == np.int32
    # d (count 1) is dropped before windows are formed; lines are separated by SEPARATOR, and the final newline
    # separates nothing (the same ids with it or without)
    assert ids.tolist() == [0, 1, 0, 2, 0, 1, -1, 0, 1, 2]
    p.write_text("b a b c b a\nd b a c", encoding="utf-8")
    vocab.build(p, tmp_path / "ids2", min_count=2)
    assert vocab.load_ids(tmp_path / "ids2").tolist() == ids.tolist()
    v.save(tmp_path / "vocab.tsv")
    assert (tmp_path / "vocab.tsv").read_text(encoding="utf-8") == "b\t4\na\t3\nc\t2\n"
    back = vocab.Vocab.loads((tmp_path / "vocab.tsv").read_text(encoding="utf-8"))
    assert back.words == v.words and back.counts.tolist() == v.counts.tolist()


@pytest.mark.parametrize("chunk", [3, 1 << 24])
def test_every_line_ends_with_the_eos_word(tmp_path, monkeypatch, chunk):
    """--eos (fastText's </s>): the word after each line's last kept word, counted once a line, in its place by count;
    empty lines and lines of dropped words get none; a </s> of the text is the same word. chunk: the rewrite's block
    of ids, small so that line ends fall on its edges."""
    monkeypatch.setattr(vocab, "REMAP_CHUNK", chunk)
    p = tmp_path / "c.txt"
    p.write_text("b a b c b a\n\nd\nb a c </s>\nc </s> b\n", encoding="utf-8")
    v, stats = vocab.build(p, tmp_path / "ids", min_count=2)
    assert v.words == ["b", "a", "c", "</s>"] and stats["ids"] == 17
    v, stats = vocab.with_line_ends(v, tmp_path / "ids", stats)
    # </s>: the text's 2 and 3 line ends (the empty line and the line of d alone have no kept word)
    assert v.words == ["b", "</s>", "a", "c"] and v.counts.tolist() == [5, 5, 3, 3]
    b, eos, a, c = range(4)
    want = [b, a, b, c, b, a, eos, -1, -1, -1, b, a, c, eos, eos, -1, c, eos, b, eos]
    assert vocab.load_ids(tmp_path / "ids").tolist() == want and stats["ids"] == len(want)
    assert stats["tokens"] == 14 + 3 and stats["kept_tokens"] == 13 + 3


def test_max_vocab_and_ties_keep_first_seen_order(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("x y z x y z w", encoding="utf-8")
    v, _ = vocab.build(p, tmp_path / "ids", min_count=1, max_vocab=2)
    assert v.words == ["x", "y"]


def test_empty_vocabulary_suggests_lower_min_count(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("a b c d", encoding="utf-8")
    with pytest.raises(W2VError, match="lower --min-count"):
        vocab.build(p, tmp_path / "ids", min_count=5)
    assert not (tmp_path / "ids").exists() and not (tmp_path / "ids.raw").exists()


@pytest.mark.parametrize("content", [b"", b"  \n\t \n"])
def test_empty_corpus(tmp_path, content):
    p = tmp_path / "c.txt"
    p.write_bytes(content)
    with pytest.raises(W2VError, match="no tokens"):
        vocab.build(p, tmp_path / "ids")


def test_binary_file_is_refused(tmp_path):
    p = tmp_path / "prog"
    p.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)) * 4)
    with pytest.raises(W2VError, match="binary"):
        vocab.build(p, tmp_path / "ids")


def test_every_unicode_whitespace_separates_tokens(tmp_path):
    # No token can contain whitespace of any kind, so every exported file reads back: word2vec.c splits on
    # space/tab/newline and gensim on ' ' and line ends, both subsets of what is split on here.
    seps = ["\u00a0", "\u3000", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2009", "\t", "\r"]
    p = tmp_path / "ws.txt"
    p.write_text("a" + "b".join(seps) + "c", encoding="utf-8")
    assert tokens(p) == ["a"] + ["b"] * (len(seps) - 1) + ["c"]


def test_non_ascii_words_round_trip_through_training_and_binary_export(tmp_path):
    from gensim.models import KeyedVectors

    from w2v_nce.config import make_config
    from w2v_nce.tools.export import export
    from w2v_nce.run.train import train

    words = ["한국어", "λόγος", "café", "naïve", "日本語", "привет", "שלום", "x\u00adx"]
    rng = np.random.default_rng(0)
    (tmp_path / "c.txt").write_text("\n".join(" ".join(rng.choice(words, 20)) for _ in range(50)), encoding="utf-8")
    train(make_config(epochs=1, dim=8, min_count=1), tmp_path / "c.txt", tmp_path / "r", progress=False,
          log=lambda *_: None)
    for suffix, binary in ((".bin", True), (".txt", False)):
        out, _ = export(tmp_path / "r", tmp_path / f"v{suffix}")
        kv = KeyedVectors.load_word2vec_format(out, binary=binary)
        assert sorted(kv.index_to_key) == sorted(words)


def _reference(path, **kw):
    """What vocab's compiled encoder must produce, from iter_tokens and a dict: provisional ids in first-seen
    order (-1 for a line break), the words in that order, their counts."""
    index: dict = {}
    ids = []
    for tok in tokens(path, **kw):
        if tok is LINE_BREAK:
            ids.append(-1)
        else:
            ids.append(index.setdefault(tok, len(index)))
    counts = np.bincount([i for i in ids if i >= 0], minlength=len(index))
    return ids, list(index), counts.tolist()


ASCII_SEPARATORS = [" ", " ", " ", "\n", "\n\n", "\t", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "  \n "]


def _random_text(rng, n, unicode_space=True):
    # ASCII words, non-ASCII words (Hangul among them), every kind of ASCII whitespace and (unicode_space) of
    # Unicode whitespace, empty lines, long runs
    words = ["the", "cat", "a", "Ab", "naïve", "λόγος", "한국어", "학교에서", "x" * 40, "\ufffd", "ß", "ΣΑ", "e\u0301"]
    seps = ASCII_SEPARATORS + (["\u00a0", "\u2028", "\x85", "\u3000"] if unicode_space else [])
    return "".join(rng.choice(words) + rng.choice(seps) for _ in range(n))


def test_the_scan_splits_where_str_split_does():
    """Every character str.split() splits at is b"\n", a byte of ASCII_SPACE, or one UNICODE_SPACE finds (the pieces
    without it go to the scan as they are)."""
    from w2v_nce.corpus.tokenize import ASCII_SPACE, UNICODE_SPACE

    splits = {c for c in range(sys.maxunicode + 1) if len(f"a{chr(c)}b".split()) == 2}
    assert splits == set(ASCII_SPACE) | {ord("\n")} | {c for c in splits if UNICODE_SPACE.match(chr(c))}
    assert all(len(f"a{m}b".split()) == 2 for m in map(chr, range(sys.maxunicode + 1)) if UNICODE_SPACE.match(m))


@pytest.mark.parametrize("seed,block,unicode_space", [(0, 1, True), (1, 5, True), (2, 64, True), (3, 1 << 20, True),
                                                      (4, 64, False), (5, 1 << 20, False)])
@pytest.mark.parametrize("lowercase", [False, True])
def test_compiled_encoder_equals_the_str_tokenizer(tmp_path, seed, block, unicode_space, lowercase):
    # Mixed ASCII / non-ASCII blocks, with and without Unicode whitespace (the two ways to the scan), tiny to
    # whole-file blocks, and a table and arena that start tiny, so that growing and rehashing happen mid-block.
    from w2v_nce.corpus.tokenize import iter_token_bytes

    rng = np.random.default_rng(seed)
    p = tmp_path / "c.txt"
    text = _random_text(rng, 3000, unicode_space) + "".join(f"w{i} " for i in range(500))  # 500 words seen once
    if seed % 2:
        text = "pure ascii lines\nonly here\n" * 50 + text
    p.write_text(text, encoding="utf-8")
    want_ids, want_words, want_counts = _reference(p, block_bytes=block, lowercase=lowercase)
    index = table.WordTable(slots=4, arena_bytes=8)
    got = []
    for piece in iter_token_bytes(p, lowercase, block_bytes=block):
        got.extend(index.encode(piece).tolist())
    assert got == want_ids
    assert index.words() == want_words
    assert index.counts().tolist() == want_counts


def test_build_equals_the_str_tokenizer_on_real_text(tmp_path):
    from gensim.test.utils import datapath

    p = tmp_path / "lee.txt"
    p.write_text(open(datapath("lee_background.cor"), encoding="utf-8").read(), encoding="utf-8")
    want_ids, want_words, want_counts = _reference(p, lowercase=True)
    v, stats = vocab.build(p, tmp_path / "ids", min_count=3, lowercase=True)
    counts = np.asarray(want_counts)
    keep = vocab.select(want_words, counts, 3, None)
    assert v.words == [want_words[i] for i in keep] and v.counts.tolist() == counts[keep].tolist()
    final = {int(old): new for new, old in enumerate(keep)}
    expect = [-1 if i < 0 else final[i] for i in want_ids if i < 0 or i in final]
    assert vocab.load_ids(tmp_path / "ids").tolist() == expect
    assert stats["distinct"] == len(want_words) and stats["tokens"] == counts.sum()
