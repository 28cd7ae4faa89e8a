"""Phrases within a memory bound (issue 24, after issue 23): past `memory` a phrase pass counts its words and its
pairs in partitions spilled to disk and reads the text three times, with the output of one unbounded read, byte for
byte. Each way past the bound is forced: the table of words full, the table of pairs full, the pairs of kept words
spilled, a partition split again; and the failures: a full disk, a text that changes between reads."""

import collections

import numpy as np
import pytest
from gensim.test.utils import datapath
from typer.testing import CliRunner

import w2v_nce
from w2v_nce.corpus import phrase_spill, phrases
from w2v_nce.cli import app
from w2v_nce.errors import W2VError

from .faults import small_disk  # noqa: F401 (a fixture)

LEE = datapath("lee_background.cor")
TINY = 1 << 20
runner = CliRunner()


@pytest.fixture(autouse=True)
def elsewhere(tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


def both(corpus, tmp_path, **options):
    """The text of build() without a bound and within TINY, and the second's figures."""
    phrases.build(corpus, tmp_path / "free.txt", **options)
    figures = phrases.build(corpus, tmp_path / "bounded.txt", memory=TINY, **options)
    return (tmp_path / "free.txt").read_bytes(), (tmp_path / "bounded.txt").read_bytes(), figures


@pytest.mark.parametrize("options", [dict(min_count=5), dict(min_count=3, passes=2, threshold=[20.0, 10.0]),
                                     dict(min_count=2, scoring="npmi", threshold=0.3, passes=2),
                                     dict(min_count=1, threshold=50.0)])
def test_pairs_past_the_bound_give_the_same_text(tmp_path, options):
    # Lee: about 10,000 words, fewer than the first table holds, and about 45,000 pairs: the pairs pass the bound;
    # min_count 1 keeps every word, so the pairs of kept words are spilled in the second read too
    free, bounded, figures = both(LEE, tmp_path, **options)
    assert free == bounded and sum(figures["joined"]) > 20
    assert figures["reads"] == [3] * options.get("passes", 1)


@pytest.mark.parametrize("scoring,threshold", [("word2vec", 10.0), ("npmi", 0.2)])
def test_words_past_the_bound_give_the_same_text(tmp_path, scoring, threshold):
    # Lee twice, a distinct x{i}abc after every fourth token: 40,000 distinct words, past the first table, so the
    # words are spilled as the vocabulary pass's are; the second file has no final newline, a blank line, a non-ASCII
    # word and runs of spaces
    lee = open(LEE, encoding="utf-8").read().split() * 2
    tokens = [t for i in range(0, len(lee), 4) for t in lee[i:i + 4] + [f"x{i:07d}abc"]]
    first = tmp_path / "a.txt"
    first.write_text("\n".join(" ".join(tokens[s:s + 150]) for s in range(0, len(tokens), 150)) + "\n")
    second = tmp_path / "b.txt"
    second.write_text("new york  city\n\nnew york times São\tPaulo\nnew york times", encoding="utf-8")
    free, bounded, figures = both([first, second], tmp_path, min_count=3, scoring=scoring, threshold=threshold,
                                  lowercase=True)
    assert free == bounded and figures["reads"] == [3] and sum(figures["joined"]) > 100
    assert b"\n\n" in bounded and "são".encode() in bounded and not bounded.endswith(b"\n")


def test_the_pairs_spill_splits_a_partition_and_sums_exactly(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    keys = rng.integers(0, 1 << 40, size=3000)
    spill = phrase_spill._PairSpill(tmp_path / "pairs", 0)
    expected = collections.Counter()
    for _ in range(4):  # four tables written out, each key at most once a table, as Pairs spills them
        some = rng.choice(keys, size=1500, replace=False)
        counts = rng.integers(1, 5, size=some.size)
        spill.write_records(np.stack([some, counts], axis=1))
        expected.update(dict(zip(some.tolist(), counts.tolist())))
    sizes, seen, summed = [], [], phrase_spill._summed
    monkeypatch.setattr(phrase_spill, "_summed", lambda records: sizes.append(len(records)) or summed(records))
    # room for 4 records a partition: every file of the first level (about 23 records) is split again
    hits, n = spill.above(48 * 4, lambda table: seen.append(len(table)) or table[:, 1] >= 6)
    assert n == len(expected) and sum(seen) == n and sum(sizes) == 6000 and max(sizes) <= 4
    assert sorted(hits.tolist()) == sorted(k for k, c in expected.items() if c >= 6)
    assert not [p for p in (tmp_path / "pairs").rglob("*") if p.is_file()]


def test_train_phrases_within_vocab_memory(tmp_path):
    common = dict(epochs=1, dim=8, min_count=3, threads=1, seed=2, progress=False, phrases=2, keep_corpus=True)
    free = w2v_nce.train(LEE, tmp_path / "free", **common)
    bounded = w2v_nce.train(LEE, tmp_path / "bounded", vocab_memory="1M", **common)
    for name in ("vocab.tsv", "corpus.ids"):
        assert (free.path / name).read_bytes() == (bounded.path / name).read_bytes()
    np.testing.assert_array_equal(free.vectors.vectors, bounded.vectors.vectors)
    assert "phrase_reads = [3, 3]" in (bounded.path / "config.toml").read_text()
    assert sorted(p.name for p in free.path.iterdir()) == sorted(p.name for p in bounded.path.iterdir())


def test_cli_memory_option(tmp_path):
    out = tmp_path / "out.txt"
    r = runner.invoke(app, ["phrases", LEE, "--out", str(out), "--memory", "1M", "--min-count", "3",
                            "--threshold", "20", "--no-progress"])
    assert r.exit_code == 0 and "the text read 3 times" in r.output, r.output
    r = runner.invoke(app, ["phrases", LEE, "--out", str(out), "--memory", "lots"])
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        "error: --memory must be a size such as 512M or 2G (got 'lots')"], r.output


def test_a_text_that_changes_between_reads_is_an_error(tmp_path, monkeypatch):
    corpus = tmp_path / "lee.txt"
    corpus.write_bytes(open(LEE, "rb").read())
    spill_all = phrases.spill_all

    def then_grow(*args):  # the first read is done once its words are spilled: the text grows before the next
        spill = spill_all(*args)
        with open(corpus, "a") as f:
            f.write("one more line\n")
        return spill

    monkeypatch.setattr(phrases, "spill_all", then_grow)
    with pytest.raises(W2VError, match="changed while it was read again"):
        phrases.build(corpus, tmp_path / "out.txt", memory=TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lee.txt"]


def test_a_full_disk_while_spilling_pairs_is_one_line_and_leaves_nothing(small_disk, monkeypatch):  # noqa: F811
    write = phrase_spill._PairSpill.write_records

    def fill_first(self, records):
        small_disk.fill()
        return write(self, records)

    monkeypatch.setattr(phrase_spill._PairSpill, "write_records", fill_first)
    r = runner.invoke(app, ["phrases", LEE, "--out", str(small_disk.path / "out.txt"), "--memory", "1M",
                            "--min-count", "1", "--no-progress"])
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and "Traceback" not in r.output, r.output
    assert lines[0].startswith("error: cannot write ") and "No space left on device" in lines[0]
    assert [p.name for p in small_disk.path.iterdir()] == [".filler"]
