"""Training with subword rows (--subwords): the compiled CPU loops and the PyTorch model against word2vec's update
written out in float64 with each word expanded into its rows; the words' vectors and gensim's FastTextKeyedVectors
of a run (words never seen answered from their n-grams); a run stopped and resumed equals one that ran through."""

import json

import numpy as np
import pytest
import torch

from tests.test_step_cpu import SAMPLED, candidates_of, make_problem, one_thread, reference  # noqa: F401 (a fixture)
from w2v_nce.corpus.subwords import ngram_rows, table
from w2v_nce.model.word2vec import Word2Vec
from w2v_nce.step import cpu, kernel

pytestmark = pytest.mark.skipif(cpu.numba is None, reason="numba is not installed")
BUCKETS = 30


def with_subwords(model: Word2Vec, seed=0) -> Word2Vec:
    """The model again with BUCKETS n-gram rows and each word's rows: its own and 0-5 buckets, repeats included
    (a word's n-grams may share a bucket)."""
    rng = np.random.default_rng(seed)
    v, dim = model.vocab_size, model.input.shape[1]
    parts = [np.concatenate(([w], v + rng.integers(0, BUCKETS, rng.integers(0, 6)))) for w in range(v)]
    offsets = np.concatenate(([0], np.cumsum([len(p) for p in parts]))).astype(np.int64)
    sub = Word2Vec(v, dim, model.arch, model.head, torch.Generator().manual_seed(seed),
                   (torch.from_numpy(offsets), torch.from_numpy(np.concatenate(parts).astype(np.int64))), BUCKETS)
    sub.input.mul_(50)  # as make_problem's: scores far from 0
    return sub


def expanded(model, ctx, valid):
    """Each example's words as their input rows: (B, S') rows and which are real, for the reference."""
    off, rows = model.sub_offsets.numpy(), model.sub_rows.numpy()
    per = [np.concatenate([rows[off[w]:off[w + 1]] for w in c[m]]) for c, m in zip(ctx, valid)]
    width = max(len(p) for p in per)
    out, ok = np.zeros((len(per), width), np.int64), np.zeros((len(per), width), bool)
    for i, p in enumerate(per):
        out[i, :len(p)], ok[i, :len(p)] = p, True
    return out, ok


@pytest.mark.parametrize("arch", ["sg", "cbow"])
@pytest.mark.parametrize("loss", SAMPLED)
@pytest.mark.parametrize("dim", [16, 100])
def test_kernel_with_subwords_equals_the_sequential_reference(arch, loss, dim):
    base, ctx, valid, targets = make_problem(arch, loss, dim=dim)
    model = with_subwords(base)
    if arch == "sg":  # a centre's examples in a row share their input word (inputs.carry_input), as skip-gram makes them
        rng = np.random.default_rng(1)
        ctx[:, 0] = np.repeat(rng.integers(0, model.vocab_size, len(ctx)), rng.integers(1, 7, len(ctx)))[:len(ctx)]
        assert (ctx[1:, 0] == ctx[:-1, 0]).mean() > 0.5
        repeats = [len(set(r)) < len(r) for r in np.split(model.sub_rows.numpy(), model.sub_offsets.numpy()[1:-1])]
        assert any(repeats) and not all(repeats)  # words with a bucket twice, and words without
    head = model.head
    family, tab, width = kernel.tables(head)
    inp, out, bias = (t.numpy().copy() for t in (model.input, head.weight, head.bias))
    rows, coef = np.zeros((len(targets), width), np.int64), np.zeros((len(targets), width), np.float32)
    losses = np.zeros(len(targets), np.float32)
    cpu.step(family, inp, out, bias, ctx, valid, targets, rows, coef, losses, 0.3, True, tab, 1234,
             subwords=(model.sub_offsets.numpy(), model.sub_rows.numpy()))
    cand = candidates_of(head, targets, rows)
    want = reference(head, *(a.numpy() for a in (model.input, head.weight, head.bias)), *expanded(model, ctx, valid),
                     cand, 0.3)
    for got, ref in zip((inp, out, bias, losses), want):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max())))
    assert np.abs(inp[model.vocab_size:] - model.input.numpy()[model.vocab_size:]).max() > 0.1  # n-gram rows learn


@pytest.mark.parametrize("arch", ["sg", "cbow"])
def test_the_models_hidden_vector_and_input_update_cover_every_row(arch):
    base, ctx, valid, targets = make_problem(arch, "neg", n=50)
    model = with_subwords(base)
    inputs = torch.from_numpy(ctx[:, 0] if arch == "sg" else ctx)
    mask = None if arch == "sg" else torch.from_numpy(valid)
    rows, ok = expanded(model, ctx if arch == "cbow" else ctx[:, :1], valid if arch == "cbow" else valid[:, :1])
    inp = model.input.double().numpy()
    want = np.stack([inp[r[m]].mean(0) for r, m in zip(rows, ok)])
    np.testing.assert_allclose(model.hidden(inputs, mask).numpy(), want, rtol=1e-5, atol=1e-6)
    update = torch.randn(len(targets), model.input.shape[1])
    after = inp.copy()
    for r, m, u in zip(rows, ok, update.double().numpy()):
        np.add.at(after, r[m], u)  # a row twice in an example gets the update twice
    model.add_to_inputs(inputs, mask, update)
    np.testing.assert_allclose(model.input.numpy(), after, rtol=1e-5, atol=1e-5)


def test_word_vectors_are_the_mean_of_their_rows():
    base, _, _, _ = make_problem("sg", "neg")
    model = with_subwords(base)
    off, rows, inp = model.sub_offsets.numpy(), model.sub_rows.numpy(), model.input.numpy()
    want = np.stack([inp[rows[off[w]:off[w + 1]]].mean(0) for w in range(model.vocab_size)])
    np.testing.assert_allclose(model.word_vectors().numpy(), want, rtol=1e-6, atol=1e-6)


def test_the_table_is_each_words_own_row_then_its_ngrams():
    words = ["cat", "학교에서", "a"]
    offsets, rows = table(words, 1, 4, 1000)
    for w, word in enumerate(words):
        assert rows[offsets[w]] == w
        assert rows[offsets[w] + 1:offsets[w + 1]].tolist() == (3 + ngram_rows(word, 1, 4, 1000)).tolist()


@pytest.fixture(scope="module")
def subword_run(tmp_path_factory):
    """A small subword run on gensim's Lee corpus (1 epoch, dim 16, 5,000 buckets)."""
    import w2v_nce
    from gensim.test.utils import datapath
    out = tmp_path_factory.mktemp("sub") / "run"
    return w2v_nce.train(datapath("lee_background.cor"), out=out, subwords="3-5", buckets=5000, epochs=1, dim=16,
                         min_count=3, threads=1, progress=False)


def test_a_subword_runs_vectors_answer_words_never_seen(subword_run):
    from gensim.models import KeyedVectors
    from gensim.models.fasttext import FastTextKeyedVectors
    from w2v_nce.run import rundir
    kv = subword_run.vectors
    assert isinstance(kv, FastTextKeyedVectors) and (kv.min_n, kv.max_n, kv.bucket) == (3, 5, 5000)
    run = rundir.load_run(subword_run.path)
    rows, v = fasttext_layout(run), len(run["words"])
    # a seen word: the mean of its own row and its n-grams', as vectors.kv holds it for every other reader
    plain = KeyedVectors.load(str(subword_run.path / "vectors.kv"))
    assert plain.index_to_key == kv.index_to_key
    np.testing.assert_allclose(kv.vectors, plain.vectors, rtol=1e-5, atol=1e-7)
    w = kv.index_to_key[5]
    np.testing.assert_allclose(kv[w], rows[np.concatenate(([5], v + ngram_rows(w, 3, 5, 5000)))].mean(0),
                               rtol=1e-5, atol=1e-7)
    # a word never seen: the mean of its n-grams' rows
    for word in ["governmentally", "학교에서", "xq"]:
        assert word not in kv.key_to_index
        np.testing.assert_allclose(kv.get_vector(word), rows[v + ngram_rows(word, 3, 5, 5000)].mean(0), rtol=1e-5,
                                   atol=1e-7)


def fasttext_layout(run) -> np.ndarray:
    """A loaded run's input rows with a row every bucket, fastText's layout (V + buckets, D)."""
    from w2v_nce.run.vectors import all_buckets
    s, v = run["subwords"], len(run["words"])
    rows = s["rows"].numpy()
    return np.vstack((rows[:v], all_buckets(rows, v, s["buckets"], s["used"].numpy())))


def test_a_subword_run_has_a_row_only_for_the_buckets_its_words_use(subword_run):
    from w2v_nce.run import rundir
    run = rundir.load_run(subword_run.path)
    s, v = run["subwords"], len(run["words"])
    want = np.unique(np.concatenate([ngram_rows(w, 3, 5, 5000) for w in run["words"] if w != "</s>"]))
    np.testing.assert_array_equal(s["used"].numpy(), want)
    assert s["rows"].shape == (v + len(want), 16) and len(want) < 5000
    offsets, sub_rows = s["offsets"].numpy(), s["sub_rows"].numpy()
    e = run["words"].index("</s>")  # --eos (on with subwords): a line's end, a word without n-grams
    assert sub_rows[offsets[e]:offsets[e + 1]].tolist() == [e]
    for w in (0, 7, v - 1):  # each word: its own row, then its n-grams' rows in their buckets' order of use
        mine = sub_rows[offsets[w]:offsets[w + 1]]
        assert mine[0] == w and (want[mine[1:] - v] == ngram_rows(run["words"][w], 3, 5, 5000)).all()
    kv = subword_run.vectors  # a bucket no word uses is zero: never trained
    unused = np.setdiff1d(np.arange(5000), want)
    assert not kv.vectors_ngrams[unused].any() and kv.vectors_ngrams[want].any(axis=1).all()


def test_a_checkpoint_with_a_row_every_bucket_loads_compacted(subword_run, tmp_path):
    """Subword runs of before the rows were compacted stored every bucket's row: they load, resume and export."""
    import shutil
    import torch
    from w2v_nce.run import rundir
    run = rundir.load_run(subword_run.path)
    old = tmp_path / "old"
    shutil.copytree(subword_run.path, old)
    st = torch.load(old / "checkpoint.pt", weights_only=True)
    st["input"] = torch.from_numpy(fasttext_layout(run))
    st["crc32"] = rundir._checksum(st)
    torch.save(st, old / "checkpoint.pt")
    again = rundir.load_run(old)
    torch.testing.assert_close(again["subwords"]["rows"], run["subwords"]["rows"], rtol=0, atol=0)


def test_similar_and_analogy_answer_unseen_words_and_say_so(subword_run):
    from typer.testing import CliRunner
    from w2v_nce.cli import app
    r = CliRunner().invoke(app, ["similar", "governmentally", "--vectors", str(subword_run.path), "--topn", "3"])
    assert r.exit_code == 0, r.output
    # (r.output: stdout and stderr together, as click before 8.2 captures them)
    assert "nearest to 'governmentally'" in r.output and "character n-grams: 'governmentally'" in r.output
    r = CliRunner().invoke(app, ["analogy", "man", "king", "womanly", "--vectors", str(subword_run.path), "--json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)) == 10


@pytest.mark.parametrize("reader", ["fasttext", "gensim"])
def test_the_fasttext_export_loads_with_equal_vectors(subword_run, tmp_path, reader):
    from w2v_nce.tools.export import export
    path, fmt = export(subword_run.path, tmp_path / "m.bin", "fasttext")
    kv = subword_run.vectors
    if reader == "fasttext":
        fasttext = pytest.importorskip("fasttext", reason="fastText's Python module (pip install fasttext-wheel)")
        model = fasttext.load_model(str(path))
        assert model.words == kv.index_to_key
        get = model.get_word_vector
    else:
        from gensim.models.fasttext import load_facebook_vectors
        loaded = load_facebook_vectors(str(path))
        assert loaded.index_to_key == kv.index_to_key
        get = loaded.get_vector
    assert "</s>" in kv.index_to_key[:50]  # --eos, on with subwords: fastText's end-of-line word, its own row only
    for word in kv.index_to_key[:50] + ["governmentally", "학교에서", "xq"]:
        if word == "</s>" and reader == "gensim":  # gensim gives </s> its n-grams too (fastText's own files likewise)
            continue
        np.testing.assert_allclose(get(word), kv.get_vector(word), rtol=1e-5, atol=1e-6)


def test_init_carries_the_words_and_ngram_rows_and_refuses_other_subwords(subword_run, tmp_path):
    import w2v_nce
    from gensim.test.utils import datapath
    from w2v_nce.errors import UsageError
    new = w2v_nce.train(datapath("lee_background.cor"), out=tmp_path / "cont", init=subword_run.path, epochs=0,
                        threads=1, progress=False)
    old_kv, new_kv = subword_run.vectors, new.vectors
    assert new.config["subwords"] == "3-5" and new.config["buckets"] == 5000  # taken from the run
    for word in old_kv.index_to_key[:100] + ["governmentally", "학교에서"]:
        np.testing.assert_array_equal(new_kv.get_vector(word), old_kv.get_vector(word))
    with pytest.raises(UsageError, match="trained with --subwords 3-5 --buckets 5000"):
        w2v_nce.train(datapath("lee_background.cor"), out=tmp_path / "other", init=subword_run.path, epochs=0,
                      subwords="2-4", progress=False)


def test_a_jamo_run_gives_hangul_words_their_jamo_ngrams(tmp_path):
    import w2v_nce
    from w2v_nce.corpus.subwords import word_rows
    from w2v_nce.errors import UsageError
    from w2v_nce.run import rundir
    from w2v_nce.tools.export import export
    rng = np.random.default_rng(0)
    stems, endings = ["학교", "영화", "배우", "감독", "movie", "연기"], ["", "에", "는", "를", "에서", "가", "도"]
    text = "\n".join(" ".join(rng.choice(stems) + rng.choice(endings) for _ in range(12)) for _ in range(600))
    (tmp_path / "ko.txt").write_text(text + "\n", encoding="utf-8")
    run = w2v_nce.train(tmp_path / "ko.txt", out=tmp_path / "run", subwords="1-4", jamo=True, buckets=5000,
                        epochs=1, dim=16, min_count=3, threads=1, progress=False)
    loaded = rundir.load_run(run.path)
    offsets, sub_rows = loaded["subwords"]["offsets"].numpy(), loaded["subwords"]["sub_rows"].numpy()
    v, words = len(loaded["words"]), loaded["words"]
    i = words.index("학교에")
    used = loaded["subwords"]["used"].numpy()
    assert used[sub_rows[offsets[i] + 1:offsets[i + 1]] - v].tolist() == word_rows("학교에", 1, 4, 5000, True).tolist()
    assert len(word_rows("학교에", 1, 4, 5000, True)) > len(word_rows("학교에", 1, 4, 5000))
    assert len(word_rows("movie", 1, 4, 5000, True)) == len(word_rows("movie", 1, 4, 5000))  # no Hangul: no jamo
    kv, rows = run.vectors, fasttext_layout(loaded)
    for word in ["배우에서는", "감독님"]:  # never seen
        assert word not in kv.key_to_index
        np.testing.assert_allclose(kv.get_vector(word), rows[v + word_rows(word, 1, 4, 5000, True)].mean(0),
                                   rtol=1e-5, atol=1e-7)
    assert kv.most_similar("배우에서는", topn=3)
    with pytest.raises(UsageError, match="--jamo"):
        export(run.path, tmp_path / "m.bin", "fasttext")
    with pytest.raises(UsageError, match="--jamo adds jamo n-grams"):
        w2v_nce.train(tmp_path / "ko.txt", out=tmp_path / "bad", jamo=True, progress=False)


def test_eval_scores_a_subword_run_in_vocabulary_and_with_unseen_words(subword_run):
    from typer.testing import CliRunner
    from w2v_nce.cli import app
    r = CliRunner().invoke(app, ["eval", "similarity", str(subword_run.path), "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.stdout)
    assert result["oov"] > 0 and result["all_pairs"]["pairs"] == result["total"]
    assert result["all_pairs"]["unseen_pairs"] == result["oov"] and -1 <= result["all_pairs"]["spearman"] <= 1
    r = CliRunner().invoke(app, ["eval", "analogies", str(subword_run.path)])
    assert r.exit_code == 0, r.output
    assert "with them (unseen words from their n-grams)" in r.stdout
