"""export: KeyedVectors built in our order; kv/text/binary files equal gensim's, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest
from gensim.models import KeyedVectors

from w2v_nce.errors import W2VError
from w2v_nce.run.vectors import to_keyed_vectors
from w2v_nce.tools.export import FORMATS, export, format_from_suffix, save_kv

WORDS = ["the", "of", "한국어", "λόγος", "café", "naïve", "Zürich", "日本語", "x"]


def make_kv(n_words=len(WORDS), dim=5, seed=0):
    rng = np.random.default_rng(seed)
    words = WORDS + [f"w{i}" for i in range(n_words - len(WORDS))]
    counts = np.array(sorted(rng.integers(1, 1000, n_words), reverse=True))
    counts[3] = counts[4]  # a tie: gensim's stable sort must keep our order
    vectors = rng.standard_normal((n_words, dim)).astype(np.float32) * 3
    return words, counts, vectors


@pytest.fixture
def run_dir(tmp_path):
    words, counts, vectors = make_kv()
    run = tmp_path / "run"
    save_kv(to_keyed_vectors(words, counts, vectors), run / "vectors.kv")
    return run


def test_to_keyed_vectors_keeps_order_counts_and_vectors():
    words, counts, vectors = make_kv()
    kv = to_keyed_vectors(words, counts, vectors)
    assert kv.index_to_key == words
    assert [kv.key_to_index[w] for w in words] == list(range(len(words)))
    assert [kv.get_vecattr(w, "count") for w in words] == counts.tolist()
    assert kv.vectors.dtype == np.float32 and np.array_equal(kv.vectors, vectors)
    assert np.array_equal(kv["café"], vectors[4])
    assert kv.most_similar("the", topn=1)[0][0] in words  # a working KeyedVectors, norms and all


@pytest.mark.parametrize("words, counts, match", [
    (["a", "b"], [1, 2], "descending"),
    (["a", "a"], [2, 1], "unique"),
    (["a", "b c"], [2, 1], "no space"),
    (["a", ""], [2, 1], "non-empty"),
    (["a"], [2, 1], "need V words"),
])
def test_to_keyed_vectors_rejects_bad_input(words, counts, match):
    with pytest.raises(ValueError, match=match):
        to_keyed_vectors(words, np.array(counts), np.zeros((len(words), 3), dtype=np.float32))


def test_format_from_suffix():
    assert [format_from_suffix(p) for p in ("a.kv", "a.txt", "a.VEC", "a/b.bin")] == [
        "kv", "word2vec", "word2vec", "word2vec-binary"]
    with pytest.raises(W2VError, match="pass --format"):
        format_from_suffix("vectors.npy")


def test_round_trip_every_format(run_dir, tmp_path):
    kv = KeyedVectors.load(str(run_dir / "vectors.kv"))
    words = kv.index_to_key
    for fmt, name in zip(FORMATS, ("out.kv", "out.txt", "out.bin")):
        path, used = export(run_dir, tmp_path / name)
        assert (path, used) == (tmp_path / name, fmt)
        if fmt == "kv":
            loaded = KeyedVectors.load(str(path))
            assert [loaded.get_vecattr(w, "count") for w in words] == [kv.get_vecattr(w, "count") for w in words]
        else:
            loaded = KeyedVectors.load_word2vec_format(str(path), binary=(fmt == "word2vec-binary"))
        assert loaded.index_to_key == words == WORDS
        # exact for text too: gensim writes each float32 with its shortest round-tripping repr
        assert np.array_equal(loaded.vectors, kv.vectors)


def test_word2vec_files_are_gensims_bytes(run_dir, tmp_path):
    kv = KeyedVectors.load(str(run_dir / "vectors.kv"))
    for fmt, binary in (("word2vec", False), ("word2vec-binary", True)):
        ours, _ = export(run_dir, fmt=fmt)
        kv.save_word2vec_format(str(tmp_path / "gensim"), binary=binary)
        assert ours.read_bytes() == (tmp_path / "gensim").read_bytes()


def test_binary_layout(run_dir):
    path, _ = export(run_dir, fmt="word2vec-binary")
    assert path == run_dir / "vectors.bin"
    data = path.read_bytes()
    words, counts, vectors = make_kv()
    header = f"{len(words)} {vectors.shape[1]}\n".encode()
    assert data.startswith(header)
    pos = len(header)
    for word, vector in zip(words, vectors):
        raw = word.encode("utf-8") + b" "
        assert data[pos:pos + len(raw)] == raw
        pos += len(raw)
        assert np.array_equal(np.frombuffer(data, dtype="<f4", count=len(vector), offset=pos), vector)
        pos += 4 * len(vector)
    assert pos == len(data)


def test_default_outputs(run_dir, tmp_path):
    assert export(run_dir) == (run_dir / "vectors.txt", "word2vec")
    assert export(run_dir, fmt="kv") == (run_dir / "vectors.kv", "kv")
    text = (run_dir / "vectors.txt").read_text(encoding="utf-8")
    assert text.splitlines()[0] == f"{len(WORDS)} 5" and text.splitlines()[3].startswith("한국어 ")
    # a vectors file as the source: the output goes beside it, named after it
    assert export(run_dir / "vectors.txt", fmt="word2vec-binary") == (run_dir / "vectors.bin", "word2vec-binary")
    assert export(run_dir / "vectors.bin", tmp_path / "again.txt") == (tmp_path / "again.txt", "word2vec")
    assert (tmp_path / "again.txt").read_text(encoding="utf-8") == text


def test_save_kv_writes_one_file_even_for_big_arrays(tmp_path):
    # 3M floats = 12 MB, over the 10 MB above which gensim's save(path) writes a separate .npy file
    words = [f"w{i}" for i in range(30000)]
    vectors = np.random.default_rng(0).standard_normal((30000, 100)).astype(np.float32)
    kv = to_keyed_vectors(words, np.arange(30000, 0, -1), vectors)
    save_kv(kv, tmp_path / "vectors.kv")
    assert [p.name for p in tmp_path.iterdir()] == ["vectors.kv"]
    assert np.array_equal(KeyedVectors.load(str(tmp_path / "vectors.kv")).vectors, vectors)


def test_export_errors(run_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    before = sorted(tmp_path.rglob("*"))
    for out in (blocker / "vectors.txt", blocker / "sub" / "vectors.bin"):
        with pytest.raises(W2VError, match="cannot write") as e:
            export(run_dir, out)
        assert "\n" not in str(e.value)
    with pytest.raises(W2VError, match="is a directory"):
        export(run_dir, tmp_path, fmt="kv")
    with pytest.raises(W2VError, match="unknown export format 'npz'; choose one of kv, word2vec, word2vec-binary"):
        export(run_dir, fmt="npz")
    with pytest.raises(W2VError, match="pass --format"):
        export(run_dir, tmp_path / "vectors.npy")
    with pytest.raises(W2VError, match="does not exist"):
        export(tmp_path / "no-such-run")
    assert sorted(tmp_path.rglob("*")) == before  # no temp files left behind


def test_write_kv_is_what_gensim_saves_without_gensim(tmp_path):
    """A run's vectors.kv (write_kv, no gensim import) loads in gensim with every field save_kv's file has, equal."""
    import subprocess
    import sys

    from w2v_nce.run.vectors import write_kv
    rng = np.random.default_rng(0)
    words, counts, vectors = [f"w{i}" for i in range(300)], np.arange(300, 0, -1), rng.standard_normal((300, 7))
    write_kv(words, counts, vectors, tmp_path / "ours.kv")
    save_kv(to_keyed_vectors(words, counts, vectors), tmp_path / "gensim.kv")
    ours, theirs = (KeyedVectors.load(str(tmp_path / f)) for f in ("ours.kv", "gensim.kv"))
    assert set(ours.__dict__) == set(theirs.__dict__)  # (lifecycle_events: gensim adds "loaded" to both)
    for k, v in theirs.__dict__.items():
        if k == "expandos":
            assert ours.expandos.keys() == v.keys() and np.array_equal(ours.expandos["count"], v["count"])
        elif isinstance(v, np.ndarray):
            assert np.array_equal(ours.__dict__[k], v) and ours.__dict__[k].dtype == v.dtype
        elif k != "lifecycle_events":
            assert ours.__dict__[k] == v, k
    ours.save_word2vec_format(str(tmp_path / "a.txt"))
    theirs.save_word2vec_format(str(tmp_path / "b.txt"))
    assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes()
    code = (f"import sys, numpy as np; from w2v_nce.run.vectors import write_kv; "
            f"write_kv(['a', 'b'], np.array([2, 1]), np.ones((2, 3)), {str(tmp_path / 'x.kv')!r}); "
            "assert 'gensim' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
