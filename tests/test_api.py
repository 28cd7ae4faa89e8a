"""The Python API (w2v_nce.train / load / Run): corpora as gensim users pass them, callbacks in the caller's thread that
stop resumably, options checked before any work, continued training (--init), and an epoch loss that is every
step's, the same in two runs."""

import signal
import threading

import numpy as np
import pytest
from gensim.test.utils import datapath
from typer.testing import CliRunner

import w2v_nce
from w2v_nce.run import rundir
from w2v_nce.cli import app

LEE = datapath("lee_background.cor")
SMALL = dict(epochs=2, min_count=3, dim=8, threads=1, seed=3, chunk_tokens=15000, progress=False)


def lee_sentences():
    with open(LEE, encoding="utf-8") as f:
        for line in f:
            yield line.split()


def test_a_generator_of_token_lists_trains_and_is_read_once(tmp_path, capsys):
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    gen = lee_sentences()
    run = w2v_nce.train(gen, tmp_path / "r", **SMALL)
    assert next(gen, None) is None  # consumed once, not held
    assert run.finished and run.path == tmp_path / "r" and not (run.path / rundir.SENTENCES).exists()
    assert run.config["dim"] == 8 and run.config["model"] == "sg"
    assert "government" in run.vectors.key_to_index and run.vectors.vector_size == 8
    epochs = [r for r in run.metrics if r["event"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    # the same text from its file: the same run
    ref = w2v_nce.train(LEE, tmp_path / "ref", **SMALL)
    np.testing.assert_array_equal(run.vectors.vectors, ref.vectors.vectors)
    assert w2v_nce.load(tmp_path / "r").finished
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # nothing printed without the progress bar
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


def test_a_list_of_paths_is_one_corpus_and_strings_are_sentences(tmp_path):
    lines = open(LEE, encoding="utf-8").read().splitlines(keepends=True)
    half = len(lines) // 2
    (tmp_path / "a.txt").write_text("".join(lines[:half]), encoding="utf-8")
    (tmp_path / "b.txt").write_text("".join(lines[half:]), encoding="utf-8")
    run = w2v_nce.train([tmp_path / "a.txt", str(tmp_path / "b.txt")], tmp_path / "r", **SMALL)
    whole = w2v_nce.train(LEE, tmp_path / "whole", **SMALL)
    assert run.summary.words == whole.summary.words
    np.testing.assert_array_equal(run.vectors.vectors, whole.vectors.vectors)
    strings = w2v_nce.train([line for line in lines], tmp_path / "s", **SMALL)  # gensim's habit: one string a line
    np.testing.assert_array_equal(strings.vectors.vectors, whole.vectors.vectors)


@pytest.mark.parametrize("options,msg", [
    (dict(dimension=8), "unknown option 'dimension'"),
    (dict(dim=0), "--dim must be > 0"),
    (dict(loss="glove"), "unknown loss 'glove'"),
])
def test_a_bad_option_raises_before_any_work(tmp_path, options, msg):
    calls = []

    def sentences():
        calls.append(1)
        yield ["a", "b"]
    with pytest.raises(w2v_nce.UsageError, match=msg):
        w2v_nce.train(sentences(), tmp_path / "r", progress=False, **options)
    assert not calls and not (tmp_path / "r").exists()
    with pytest.raises(w2v_nce.W2VError, match="token 'a b'"):
        w2v_nce.train([["a b"]], tmp_path / "t", progress=False)
    assert not (tmp_path / "t").exists()


def test_callbacks_run_in_this_thread_and_false_stops_resumably(tmp_path):
    seen = []

    def on_epoch(run, epoch, metrics):
        seen.append(("epoch", epoch, threading.current_thread() is threading.main_thread(), metrics["loss"]))
        assert run.vectors.vector_size == 8  # the live model
        return epoch < 1  # stop after the first epoch

    def on_progress(run, metrics):
        seen.append(("progress", metrics["step"], threading.current_thread() is threading.main_thread()))

    opts = {**SMALL, "epochs": 3}
    run = w2v_nce.train(LEE, tmp_path / "r", on_epoch=on_epoch, on_progress=on_progress, **opts)
    assert not run.finished and (run.path / rundir.INCOMPLETE).exists()
    assert [s[:2] for s in seen if s[0] == "epoch"] == [("epoch", 1)] and all(s[2] for s in seen)
    assert any(s[0] == "progress" for s in seen)
    assert run.vectors.vector_size == 8  # a stopped run's vectors: its checkpoint's
    done = w2v_nce.train(out=run, resume=True, progress=False)
    ref = w2v_nce.train(LEE, tmp_path / "ref", **opts)
    assert done.finished
    np.testing.assert_array_equal(done.vectors.vectors, ref.vectors.vectors)


def test_an_exception_in_a_callback_propagates_after_the_checkpoint(tmp_path):
    def on_progress(run, metrics):
        if metrics["step"] > 2:
            raise ValueError("enough")
    with pytest.raises(ValueError, match="enough"):
        w2v_nce.train(LEE, tmp_path / "r", on_progress=on_progress, **SMALL)
    run = w2v_nce.load(tmp_path / "r")
    assert not run.finished and (run.path / rundir.CHECKPOINT).exists()
    assert w2v_nce.train(out=run, resume=True, progress=False).finished


def test_epoch_losses_are_every_steps_and_the_same_in_two_runs(tmp_path):
    runs = [w2v_nce.train(LEE, tmp_path / f"r{i}", **{**SMALL, "epochs": 3}) for i in range(2)]
    losses = [[r["loss"] for r in run.metrics if r["event"] == "epoch"] for run in runs]
    assert losses[0] == losses[1] and len(losses[0]) == 3 and losses[0][2] < losses[0][0]
    assert runs[0].summary.loss == losses[0][-1]
    # one unit everywhere: corpus tokens, the whole run's
    tokens = rundir.read_config(runs[0].path)[1]["tokens"]
    assert runs[0].summary.words == 3 * tokens == runs[0].metrics[-1]["words"]


def test_init_keeps_the_old_vectors_at_epochs_0_and_adds_new_words(tmp_path):
    lines = open(LEE, encoding="utf-8").read().splitlines(keepends=True)
    half = len(lines) // 2
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("".join(lines[:half]), encoding="utf-8")
    b.write_text("".join(lines[half:]) + "zyzzyva " * 5 + "\n", encoding="utf-8")
    first = w2v_nce.train(a, tmp_path / "first", **SMALL)
    r = CliRunner().invoke(app, ["train", str(b), "--init", str(first.path), "--epochs", "0", "--min-count", "3",
                                 "--dim", "8", "--out", str(tmp_path / "same"), "--no-progress"])
    assert r.exit_code == 0, r.output
    same, old = w2v_nce.load(tmp_path / "same").vectors, first.vectors
    assert "zyzzyva" in same.key_to_index and "zyzzyva" not in old.key_to_index
    for w in old.index_to_key:
        np.testing.assert_array_equal(same[w], old[w])
    cfg, info = rundir.read_config(tmp_path / "same")
    assert info["init"] == str(first.path.resolve())
    counts = dict(zip(*[rundir.read_vocab(tmp_path / d).__dict__[k] for d, k in (("same", "words"),
                                                                                 ("same", "counts"))]))
    old_counts = dict(zip(rundir.read_vocab(first.path).words, rundir.read_vocab(first.path).counts))
    assert counts["the"] > old_counts["the"]  # counts summed over both texts
    more = w2v_nce.train(b, tmp_path / "more", init=first, **SMALL)  # trained further: the old vectors move
    assert more.finished and not np.array_equal(more.vectors["government"], old["government"])
    with pytest.raises(w2v_nce.UsageError, match="has dim 8 and dim 9 was asked"):
        w2v_nce.train(b, tmp_path / "bad", init=first, **{**SMALL, "dim": 9})
