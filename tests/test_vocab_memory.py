"""--vocab-memory (issue 23): past the bound the vocabulary pass counts in partitions spilled to disk and reads the
text twice, with the vocabulary, counts and corpus.ids of one unbounded pass; below it nothing changes. Checked
against collections.Counter on a small long-tail corpus (benchmarks/longtail.py's shape: each real token followed by
a distinct x0000001abc, 2,000 tokens a line), and for bad values, failures and a full disk."""

import collections
from pathlib import Path

import numpy as np
import pytest
from gensim.test.utils import datapath
from typer.testing import CliRunner

import w2v_nce
from w2v_nce.run import rundir
from w2v_nce.corpus import spill, vocab
from w2v_nce.cli import app
from w2v_nce.config import parse_size
from w2v_nce.errors import UsageError, W2VError

from .faults import small_disk  # noqa: F401 (a fixture)

LEE = datapath("lee_background.cor")
TINY = 1 << 20  # the smallest bound: the first table (32,768 words) is already past it, so it spills when full
runner = CliRunner()


def long_tail(path: Path, n: int = 40_000, per_line: int = 2000, extra: str = "") -> Path:
    """n real tokens (Lee's 60,000 over again if need be), each followed by a distinct x{i:07d}abc, per_line tokens a
    line (n + about 8,000 distinct)."""
    real = open(LEE, encoding="utf-8").read().split()
    real = (real * (n // len(real) + 1))[:n]
    tokens = [t for i, r in enumerate(real) for t in (r, f"x{i + 1:07d}abc")]
    lines = [" ".join(tokens[s:s + per_line]) for s in range(0, len(tokens), per_line)]
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def counted(text: str, min_count: int, max_vocab=None):
    """What build must give, from Counter: the words by descending count, ties in first-seen order (Counter keeps
    insertion order and sorted is stable), and the ids, lines separated by -1, no separator at the end."""
    counts = collections.Counter(text.split())
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: -counts[w])[:max_vocab]
    at = {w: i for i, w in enumerate(words)}
    ids = []
    for line in text.split("\n"):
        ids += [at[t] for t in line.split() if t in at] + [-1]
    while ids and ids[-1] == -1:
        ids.pop()
    return words, [counts[w] for w in words], ids, len(counts)


def build(path, out, **kw):
    v, stats = vocab.build(path, out, **kw)
    return v, stats, out.read_bytes()


@pytest.mark.parametrize("min_count,max_vocab,bits,n", [(5, None, 8, 40_000), (1, None, 8, 40_000),
                                                        (2, 1000, 8, 40_000), (1, None, 1, 80_000)])
def test_the_spill_equals_counter_and_one_unbounded_pass(tmp_path, monkeypatch, min_count, max_vocab, bits, n):
    # bits=1: two partitions a level, of about 44,000 words each: past the bound, so they are split again
    monkeypatch.setattr(spill, "SPILL_BITS", bits)
    depths = []
    count_spilled = spill.count_spilled
    monkeypatch.setattr(spill, "count_spilled", lambda folder, depth, *a: depths.append(depth) or
                        count_spilled(folder, depth, *a))
    corpus = long_tail(tmp_path / "tail.txt", n)
    words, counts, ids, distinct = counted(corpus.read_text(encoding="utf-8"), min_count, max_vocab)
    v, stats, raw = build(corpus, tmp_path / "spilled.ids", min_count=min_count, max_vocab=max_vocab, memory=TINY)
    assert stats["passes"] == 2 and stats["spilled"] > 0 and distinct > n
    assert max(depths) == (1 if bits == 1 else 0)  # split again only there
    assert v.words == words and v.counts.tolist() == counts
    assert np.frombuffer(raw, dtype=np.int32).tolist() == ids
    assert stats["distinct"] == distinct and stats["tokens"] == 2 * n and stats["ids"] == len(ids)
    one, one_stats, one_raw = build(corpus, tmp_path / "one.ids", min_count=min_count, max_vocab=max_vocab)
    assert one_stats["passes"] == 1 and one.words == v.words and one_raw == raw
    assert {k: one_stats[k] for k in ("tokens", "kept_tokens", "distinct", "ids", "bytes")} == \
           {k: stats[k] for k in ("tokens", "kept_tokens", "distinct", "ids", "bytes")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.ids", "spilled.ids", "tail.txt"]  # no spill left


def test_the_spill_with_several_files_unicode_lowercase_and_a_prior_vocabulary(tmp_path):
    # --init's merge: the earlier run's words kept whatever their count here, so the spill keeps those too
    # a's last line has no newline (the file ends it); U+00A0 separates tokens
    a = long_tail(tmp_path / "a.txt", extra="Ünïcode λόγος\u00a0ÜNÏCODE  the")
    b = tmp_path / "b.txt"
    b.write_text("the THE λόγος ÜNÏCODE x0000007abc\n\n" * 300, encoding="utf-8")
    prior, _ = vocab.build(LEE, tmp_path / "prior.ids", min_count=20)
    for kw in (dict(min_count=3), dict(min_count=2, max_vocab=len(prior) + 50, prior=prior), dict(min_count=4)):
        runs = [build([a, b], tmp_path / f"{m}.ids", lowercase=True, memory=m, **kw) for m in (None, TINY)]
        (one, one_stats, one_ids), (two, two_stats, two_ids) = runs
        assert (one_stats["passes"], two_stats["passes"]) == (1, 2)
        assert one.words == two.words and one.counts.tolist() == two.counts.tolist() and one_ids == two_ids
        assert one_stats["kept_tokens"] == two_stats["kept_tokens"] and "ünïcode" in two.words


def test_below_the_bound_nothing_changes(tmp_path):
    corpus = long_tail(tmp_path / "tail.txt")
    one, stats, ids = build(corpus, tmp_path / "a.ids", min_count=3, memory=parse_size("512M"))
    same, _, same_ids = build(corpus, tmp_path / "b.ids", min_count=3)
    assert stats["passes"] == 1 and stats["spilled"] == 0
    assert one.words == same.words and one.counts.tolist() == same.counts.tolist() and ids == same_ids


def test_train_past_the_bound_writes_the_unbounded_run_s_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/latest
    corpus = long_tail(tmp_path / "tail.txt")
    flags = ["--epochs", "1", "--dim", "8", "--threads", "1", "--keep-corpus", "--no-progress"]
    one = runner.invoke(app, ["train", str(corpus), *flags, "--out", str(tmp_path / "one")])
    two = runner.invoke(app, ["train", str(corpus), *flags, "--out", str(tmp_path / "two"), "--vocab-memory", "1M"])
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    assert "two passes" in two.output and "two passes" not in one.output
    api = w2v_nce.train(corpus, tmp_path / "api", epochs=1, dim=8, threads=1, keep_corpus=True, progress=False,
                        vocab_memory=TINY)  # bytes, from Python
    for name in (rundir.VOCAB, rundir.IDS):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes() == \
               (api.path / name).read_bytes()
    np.testing.assert_array_equal(api.vectors.vectors, w2v_nce.load(tmp_path / "one").vectors.vectors)
    cfg, info = rundir.read_config(tmp_path / "two")
    assert cfg.vocab_memory == "1M" and info["vocab_passes"] == 2
    assert rundir.read_config(api.path)[0].vocab_memory == TINY
    assert rundir.read_config(tmp_path / "one")[0].vocab_memory == "512M"
    assert not any(p.name.endswith((".spill", ".raw")) for p in (tmp_path / "two").iterdir())
    more = long_tail(tmp_path / "more.txt", n=36_000)  # --init: the earlier words kept, counts summed
    runs = [w2v_nce.train(more, tmp_path / f"init-{m}", init=tmp_path / "one", epochs=0, dim=8, vocab_memory=m,
                          progress=False) for m in ("1M", "512M")]
    assert rundir.read_config(runs[0].path)[1]["vocab_passes"] == 2
    assert (runs[0].path / rundir.VOCAB).read_bytes() == (runs[1].path / rundir.VOCAB).read_bytes()


@pytest.mark.parametrize("value,msg", [
    ("abc", "--vocab-memory must be a size such as 512M or 2G (got 'abc')"),
    ("-1G", "--vocab-memory must be a size such as 512M or 2G (got '-1G')"),
    ("0", "--vocab-memory must be at least 1M (got '0')"),
    ("512K", "--vocab-memory must be at least 1M (got '512K')"),
])
def test_a_bad_vocab_memory_is_a_one_line_usage_error(tmp_path, monkeypatch, value, msg):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["train", LEE, "--vocab-memory", value, "--no-progress"])
    assert r.exit_code == 2 and r.output.strip().splitlines() == [f"error: {msg}"], r.output
    assert not (tmp_path / "runs").exists()
    (tmp_path / "c.toml").write_text(f'vocab_memory = "{value}"\n')
    r = runner.invoke(app, ["train", LEE, "--config", "c.toml", "--no-progress"])
    assert r.exit_code == 2 and msg in r.output and "Traceback" not in r.output
    with pytest.raises(UsageError, match="--vocab-memory must be"):
        w2v_nce.train(LEE, tmp_path / "api", vocab_memory=value, progress=False)
    assert [parse_size(s) for s in ("1M", "1.5G", "2gb", "300MiB", 1 << 30)] == \
           [1 << 20, 3 << 29, 2 << 30, 300 << 20, 1 << 30]


def test_the_spill_is_removed_after_an_interrupt_or_error_and_a_stale_one_first(tmp_path, monkeypatch):
    corpus = long_tail(tmp_path / "tail.txt")
    spill_dir = tmp_path / "c.ids.spill"
    spill_dir.mkdir()
    (spill_dir / "stale").write_bytes(b"a killed run's")

    def interrupted(*a, **kw):
        assert spill_dir.is_dir() and not (spill_dir / "stale").exists()  # the stale one went before counting began
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(spill, "count_spilled", interrupted)
        with pytest.raises(KeyboardInterrupt):
            vocab.build(corpus, tmp_path / "c.ids", memory=TINY)
    with pytest.raises(W2VError, match="lower --min-count"):
        vocab.build(corpus, tmp_path / "c.ids", min_count=10 ** 6, memory=TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tail.txt"]


def test_a_text_that_changes_between_the_passes_is_an_error(tmp_path):
    corpus = long_tail(tmp_path / "tail.txt", n=80_000)  # over 1 MB: several blocks, a callback between them
    read = [0]

    def progress(n):
        if n < read[0]:  # the second pass began
            with open(corpus, "a", encoding="utf-8") as f:
                f.write("more words\n")
        read[0] = n

    with pytest.raises(W2VError, match="changed while it was read twice"):
        vocab.build(corpus, tmp_path / "c.ids", memory=TINY, progress=progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tail.txt"]


def test_a_full_disk_while_spilling_is_one_line_and_leaves_nothing(small_disk, monkeypatch, tmp_path):  # noqa: F811
    corpus = long_tail(tmp_path / "tail.txt")
    write = spill.Spill.write

    def fill_first(self, index):
        small_disk.fill()
        return write(self, index)

    monkeypatch.setattr(spill.Spill, "write", fill_first)
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["train", str(corpus), "--out", str(small_disk.path / "run"), "--vocab-memory", "1M",
                            "--no-progress"])
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and "Traceback" not in r.output, r.output
    assert lines[0].startswith("error: cannot write ") and "corpus.ids.spill" in lines[0]
    assert "No space left on device; free some space" in lines[0]
    assert [p.name for p in small_disk.path.iterdir()] == [".filler"]
