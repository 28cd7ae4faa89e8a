"""The training history (metrics.jsonl), the pictures drawn from it, and what `train` reports while it works."""

import gzip
import struct

import pytest
from gensim.test.utils import datapath
from typer.testing import CliRunner

from w2v_nce.run import train as train_mod
from w2v_nce.run.trainer import Trainer
from w2v_nce.corpus import vocab
from w2v_nce.cli import app
from w2v_nce.config import make_config
from w2v_nce.tools.plot import read_metrics

from .test_storage import interrupt_at

LEE = datapath("lee_background.cor")
QUIET = dict(progress=False, log=lambda *_: None)
KEYS = {"event", "words", "epoch", "step", "loss", "lr", "words_per_s", "elapsed_s"}
runner = CliRunner()


def config(**kw):
    return make_config(**{**dict(epochs=3, min_count=3, dim=8, threads=1, seed=4, chunk_tokens=15000), **kw})


def test_every_report_and_epoch_end_is_a_line(tmp_path):
    from w2v_nce.tools.evaluate import scores
    train_mod.train(config(eval_epochs=True), LEE, tmp_path / "r", progress=False,
                    hooks=train_mod.Hooks(lambda *_: None, score=scores))
    records = read_metrics(tmp_path / "r")
    assert records[0]["event"] == "start" and "time" in records[0]
    progress = [r for r in records if r["event"] == "progress"]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert len(progress) >= 3 * 4 and [r["epoch"] for r in epochs] == [1, 2, 3]  # >= one report per chunk
    for r in progress + epochs:
        assert KEYS <= set(r) and r["loss"] > 0 and r["words_per_s"] > 0
        assert {"analogy", "ws353", "simlex"} <= set(r) if r["event"] == "epoch" else True
    words = [r["words"] for r in progress]
    assert words == sorted(words) and [r["epoch"] for r in progress] == sorted(r["epoch"] for r in progress)
    assert [r["lr"] for r in progress] == sorted((r["lr"] for r in progress), reverse=True)  # linear decay
    assert epochs[-1]["words"] == pytest.approx(3 * epochs[0]["words"])
    assert all(-1 <= r["analogy"] <= 1 and -1 <= r["ws353"] <= 1 for r in epochs)
    elapsed = [r["elapsed_s"] for r in records]
    assert elapsed == sorted(elapsed)


def test_a_resumed_run_appends_from_its_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "r"
    ref = tmp_path / "ref"  # the same run, uninterrupted
    train_mod.train(config(), LEE, ref, **QUIET)
    monkeypatch.setattr(Trainer, "report", interrupt_at(6))  # in epoch 2
    with pytest.raises(train_mod.Interrupted):
        train_mod.train(config(), LEE, run, **QUIET)
    before = read_metrics(run)
    import torch
    step = torch.load(run / "checkpoint.pt", weights_only=False)["position"]["step"]
    with open(run / "metrics.jsonl", "ab") as f:  # and a line cut short by a crash after the checkpoint
        f.write(b'{"event": "progress", "wor')
    monkeypatch.undo()
    train_mod.train(None, None, run, resume=True, **QUIET)
    after = read_metrics(run)
    assert after[:len(before)] == before and after[len(before)]["event"] == "resume"
    # it goes on from where the checkpoint was: the pieces trained by the threads, at their last report or after it
    assert after[len(before)]["step"] == step and after[len(before)]["words"] >= before[-1]["words"]
    assert after[len(before)]["elapsed_s"] >= before[-1]["elapsed_s"]
    # one thread: the resumed run is the uninterrupted one (the loss is a mean over the steps since the last
    # report, which a resumed run reports at other steps)
    def ends(records):
        return [(r["epoch"], r["step"], r["words"]) for r in records if r["event"] == "epoch"]
    assert ends(after) == ends(read_metrics(ref))


def test_plot_draws_two_real_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for loss in ("neg", "nce"):
        r = runner.invoke(app, ["train", LEE, "--loss", loss, "--epochs", "2", "--dim", "8", "--min-count", "3",
                                "--eval-epochs", "--no-progress", "--out", f"runs/{loss}"])
        assert r.exit_code == 0, r.output
        assert "time: vocabulary " in r.output and ", scoring " in r.output  # where the time went
    for extra in ([], ["--heldout", datapath("lee.cor"), "--max-contexts", "500"]):
        out = tmp_path / f"p{len(extra)}.png"
        r = runner.invoke(app, ["plot", "runs/neg", "runs/nce", "--out", str(out), *extra])
        assert r.exit_code == 0, r.output
        data = out.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert width > 400 and height > 300


def test_the_vocabulary_pass_reports_its_position_in_the_file(tmp_path):
    gz = tmp_path / "lee.txt.gz"
    with open(LEE, "rb") as src, gzip.open(gz, "wb") as dst:
        dst.write(src.read() * 8)
    seen = []
    vocab.build(gz, tmp_path / "ids", progress=seen.append)
    # positions in the compressed file: increasing, and the last is its size (what a bar in bytes needs)
    assert len(seen) > 1 and seen == sorted(seen) and seen[-1] == gz.stat().st_size


def test_version(tmp_path):
    import importlib.metadata as md
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.startswith(f"w2v-nce {md.version('w2v-nce')} (torch ")
    assert len(r.stdout.strip().splitlines()) == 1
