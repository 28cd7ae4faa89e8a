"""Storage faults at every command: a file of the run directory missing, truncated, corrupt or unreadable, and
the disk filling up while training, resuming or exporting. Each must end in one line (exit 1, no traceback),
write nothing half-way, and keep the last good state, from which `train --resume` finishes the run.
"""

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors
from gensim.test.utils import datapath
from typer.testing import CliRunner

from w2v_nce.run import vectors as export
from w2v_nce.run.trainer import Trainer
from w2v_nce.run import rundir, train as train_mod
from w2v_nce.cli import app
from w2v_nce.config import make_config
from w2v_nce.errors import W2VError
from w2v_nce.tools.plot import read_metrics
from w2v_nce.corpus import vocab as vocab_module
from w2v_nce.run.rundir import CHECKPOINT, CONFIG, IDS, INCOMPLETE, METRICS, VECTORS, VOCAB

from .faults import corrupt, permissions_apply, small_disk, truncate, unreadable  # noqa: F401 (a fixture)

LEE, HELD = datapath("lee_background.cor"), datapath("lee.cor")
QUIET = dict(progress=False, log=lambda *_: None)
runner = CliRunner()


def config(**kw):
    # one thread: a resumed run equals an uninterrupted one to the bit; small chunks: several per epoch
    return make_config(**{**dict(epochs=2, min_count=3, dim=8, threads=1, seed=3, chunk_tokens=20000), **kw})


def interrupt_at(nth: int):
    """A Trainer.report that raises KeyboardInterrupt (what SIGINT does, between pieces or batches) after its n-th
    progress report (one at least at each chunk's end)."""
    original, calls = Trainer.report, [0]

    def report(self, *args):
        original(self, *args)
        calls[0] += 1
        if calls[0] == nth:
            raise KeyboardInterrupt
    return report


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A finished run and an interrupted one (stopped in epoch 2), trained once for the module."""
    base = tmp_path_factory.mktemp("made")
    train_mod.train(config(), LEE, base / "finished", **QUIET)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "report", interrupt_at(5))
        with pytest.raises(train_mod.Interrupted, match="checkpoint saved"):
            train_mod.train(config(), LEE, base / "interrupted", **QUIET)
    return {"finished": base / "finished", "interrupted": base / "interrupted"}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(r, *parts):
    """Exit 1 and one line "error: ..." holding `parts`, the last of the output (info lines may precede it)."""
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and [x for x in lines if x.startswith("error")] == lines[-1:], r.output
    assert "Traceback" not in r.output and all(p in lines[-1] for p in parts), r.output
    return lines[-1]


def digests(path: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir()) if p.is_file()}


# -- every command x every file it reads x every fault ---------------------------------------------------

READS = {  # command: (the run it reads, the files it reads, its arguments)
    "train --resume": ("interrupted", (CONFIG, VOCAB, IDS, CHECKPOINT), lambda r, t: ["train", "--resume", r]),
    "export": ("finished", (VECTORS,), lambda r, t: ["export", r, "--out", t / "out.txt"]),
    "export --checkpoint": ("interrupted", (CONFIG, VOCAB, CHECKPOINT),
                            lambda r, t: ["export", r, "--checkpoint", "--out", t / "out.txt"]),
    "eval analogies": ("finished", (VECTORS,), lambda r, t: ["eval", "analogies", r]),
    "eval similarity": ("finished", (VECTORS,), lambda r, t: ["eval", "similarity", r]),
    "eval heldout": ("finished", (CONFIG, VOCAB, CHECKPOINT),
                     lambda r, t: ["eval", "heldout", r, "--corpus", HELD, "--max-contexts", 300]),
    "similar": ("finished", (VECTORS,), lambda r, t: ["similar", "the", "--vectors", r]),
    "analogy": ("finished", (VECTORS,), lambda r, t: ["analogy", "he", "his", "she", "--vectors", r]),
    "plot": ("finished", (METRICS,), lambda r, t: ["plot", r, "--out", t / "out.png"]),
    "plot --heldout": ("finished", (CONFIG, VOCAB, CHECKPOINT),
                       lambda r, t: ["plot", r, "--heldout", HELD, "--max-contexts", 300, "--out", t / "out.png"]),
}
FAULTS = ("missing", "truncated", "corrupt", "garbage", "unreadable")
CASES = [(cmd, name, fault) for cmd, (_, files, _) in READS.items() for name in files for fault in FAULTS
         # a half-written last line of the history is expected (a killed run) and skipped: see below
         if (name, fault) != (METRICS, "truncated")]


def damage(path: Path, fault: str) -> None:
    if fault == "missing":
        path.unlink()
    elif fault == "truncated":
        truncate(path)
    elif fault == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
    elif path.name == VECTORS:  # corrupt the vectors themselves (not the pickle around them): NaN bit patterns
        kv = KeyedVectors.load(str(path))
        corrupt(path, at=path.read_bytes().index(kv.vectors[:4].tobytes()), data=b"\xff" * 64)
    elif fault == "corrupt":  # 0x7f7f7f7f as an id is outside any vocabulary; in text, DEL breaks the format
        corrupt(path)


@pytest.mark.parametrize("cmd,name,fault", CASES)
def test_a_damaged_file_is_one_line_and_changes_nothing(made, tmp_path, cmd, name, fault):
    which, _, args = READS[cmd]
    run = Path(shutil.copytree(made[which], tmp_path / "run"))
    path = run / name
    if fault == "unreadable":
        before = digests(run)
        with unreadable(path):
            r = invoke(*args(run, tmp_path))
    else:
        damage(path, fault)
        before = digests(run)
        r = invoke(*args(run, tmp_path))
    one_line_error(r, name)
    assert digests(run) == before  # nothing in the run directory was written
    assert not list(tmp_path.glob("out.*")) and not list(tmp_path.glob(".out.*"))  # nor half an output


def test_a_history_cut_mid_line_still_plots(made, tmp_path):
    run = Path(shutil.copytree(made["finished"], tmp_path / "run"))
    whole = read_metrics(run)
    with open(run / METRICS, "ab") as f:
        f.write(b'{"event": "progress", "words": 12')  # killed while writing a line
    assert read_metrics(run) == whole
    assert invoke("plot", run, "--out", tmp_path / "p.png").exit_code == 0


# -- interrupted runs at the commands that need a finished one ------------------------------------------

def test_export_and_eval_of_an_interrupted_run_say_how_to_go_on(made, tmp_path):
    run = Path(shutil.copytree(made["interrupted"], tmp_path / "run"))
    for args in (["export", run], ["eval", "analogies", run], ["similar", "the", "--vectors", run]):
        one_line_error(invoke(*args), "is interrupted", f"w2v-nce train --resume {run}",
                       f"w2v-nce export {run} --checkpoint")
    r = invoke("export", run, "--checkpoint", "--out", tmp_path / "v.bin")
    assert r.exit_code == 0, r.output
    st = torch.load(run / CHECKPOINT, weights_only=True)
    kv = KeyedVectors.load_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    assert np.array_equal(kv.vectors, st["input"].numpy())
    r = invoke("eval", "heldout", run, "--corpus", HELD, "--max-contexts", 300)
    assert r.exit_code == 0 and f"run {run} is interrupted" in r.output and "epoch 2" in r.output


def test_a_finished_run_s_lost_vectors_are_written_again_from_its_checkpoint(made, tmp_path):
    run = Path(shutil.copytree(made["finished"], tmp_path / "run"))
    (run / VECTORS).unlink()
    msg = one_line_error(invoke("eval", "analogies", run))
    fix = msg.split("with: ")[1]
    assert fix == f"w2v-nce export {run} --checkpoint --out {run / VECTORS}"
    assert invoke(*fix.split()[1:]).exit_code == 0
    a, b = KeyedVectors.load(str(made["finished"] / VECTORS)), KeyedVectors.load(str(run / VECTORS))
    assert a.index_to_key == b.index_to_key and np.array_equal(a.vectors, b.vectors)


# -- the disk fills up ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The vectors of the uninterrupted run: a run stopped by a full disk and resumed must end equal."""
    out = tmp_path_factory.mktemp("ref") / "run"
    train_mod.train(config(epochs=3), LEE, out, **QUIET)
    return KeyedVectors.load(str(out / VECTORS)).vectors


def fill_before(monkeypatch, disk, owner, name: str, call: int):
    """Fill the disk just before the call-th call of owner.name."""
    original, calls = getattr(owner, name), [0]

    def wrapped(*a, **kw):
        calls[0] += 1
        if calls[0] == call:
            disk.fill()
        return original(*a, **kw)
    monkeypatch.setattr(owner, name, wrapped)


def resume_after_freeing(disk, run: Path, reference) -> None:
    disk.free()
    r = invoke("train", "--resume", run, "--no-progress")
    assert r.exit_code == 0, r.output
    assert np.array_equal(KeyedVectors.load(str(run / VECTORS)).vectors, reference)
    assert not (run / INCOMPLETE).exists()
    events = [m["event"] for m in read_metrics(run)]  # every line whole: the cut one was dropped on resume
    assert events[0] == "start" and "resume" in events and events.count("epoch") == 3


def test_disk_full_during_the_vocabulary_pass_leaves_nothing(small_disk, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    fill_before(monkeypatch, small_disk, vocab_module, "build", 1)
    r = invoke("train", LEE, "--out", small_disk.path / "run", "--no-progress", "--min-count", 3, "--dim", 8)
    one_line_error(r, "corpus.ids", "No space left on device", "free some space")
    assert not (small_disk.path / "run").exists() and not (tmp_path / "runs" / "latest").exists()


def test_disk_full_at_the_first_checkpoint_leaves_nothing(small_disk, monkeypatch):
    fill_before(monkeypatch, small_disk, rundir, "save_torch", 1)
    r = invoke("train", LEE, "--out", small_disk.path / "run", "--no-progress", "--min-count", 3, "--dim", 8)
    one_line_error(r, "checkpoint.pt", "No space left on device")
    assert not (small_disk.path / "run").exists()
    assert [p.name for p in small_disk.path.iterdir()] == [".filler"]  # no temporary file either


@pytest.mark.parametrize("call", [2, 4], ids=["epoch-1-end", "the-final-checkpoint"])
def test_disk_full_at_a_checkpoint_keeps_the_last_one(small_disk, monkeypatch, reference, call):
    run = small_disk.path / "run"
    fill_before(monkeypatch, small_disk, rundir, "save_torch", call)
    with pytest.raises(W2VError) as e:
        train_mod.train(config(epochs=3), LEE, run, **QUIET)
    msg = str(e.value)
    assert e.value.code == 1
    assert f"cannot write {run / CHECKPOINT}: No space left on device; free some space on its disk" in msg
    assert f"w2v-nce train --resume {run}" in msg
    kept = rundir.load_checkpoint(run, rundir.read_vocab(run).words, rundir.read_config(run)[0])["position"]  # whole, and as said
    assert (rundir.describe_position(kept) in msg) if call == 2 else msg.startswith("training finished, but")
    assert (run / INCOMPLETE).exists() and not (run / VECTORS).exists()
    assert sorted(p.name for p in run.iterdir()) == sorted([CONFIG, VOCAB, IDS, CHECKPOINT, METRICS, INCOMPLETE])
    monkeypatch.undo()
    resume_after_freeing(small_disk, run, reference)


def test_disk_full_writing_the_vectors(small_disk, monkeypatch, reference):
    run = small_disk.path / "run"
    fill_before(monkeypatch, small_disk, export, "write_kv", 1)
    with pytest.raises(W2VError, match=r"^training finished, but cannot write .*vectors\.kv: No space"):
        train_mod.train(config(epochs=3), LEE, run, **QUIET)
    assert (run / INCOMPLETE).exists() and not (run / VECTORS).exists()
    monkeypatch.undo()
    resume_after_freeing(small_disk, run, reference)


def test_disk_full_writing_the_history_stops_training_cleanly(small_disk, monkeypatch, reference):
    run = small_disk.path / "run"
    fill_before(monkeypatch, small_disk, rundir.History, "write", 5)  # a progress line in epoch 2
    with pytest.raises(train_mod.Interrupted) as e:
        train_mod.train(config(epochs=3), LEE, run, **QUIET)
    msg = str(e.value)
    assert e.value.code == 1 and msg.startswith("training stopped in epoch ") and "No space left on device" in msg
    assert "then continue from the checkpoint at " in msg and f"w2v-nce train --resume {run}" in msg
    monkeypatch.undo()
    resume_after_freeing(small_disk, run, reference)


def test_resume_on_a_full_disk_changes_nothing(small_disk, made, reference):
    run = Path(shutil.copytree(made["interrupted"], small_disk.path / "run"))
    before = {k: v for k, v in digests(run).items() if k != METRICS}
    small_disk.fill()
    r = invoke("train", "--resume", run, "--no-progress")
    # the first write that needs a new page fails: the history's, or a checkpoint's
    one_line_error(r, "No space left on device", f"w2v-nce train --resume {run}")
    assert {k: v for k, v in digests(run).items() if k != METRICS} == before
    small_disk.free()
    assert invoke("train", "--resume", run, "--no-progress").exit_code == 0


@pytest.mark.parametrize("args", [["export", "{run}", "--out", "{disk}/v.bin"],
                                  ["export", "{run}", "--checkpoint", "--out", "{disk}/v.kv"],
                                  ["plot", "{run}", "--out", "{disk}/p.png"]])
def test_disk_full_at_export_and_plot_leaves_no_file(small_disk, made, args):
    small_disk.fill()
    r = invoke(*[a.format(run=made["finished"], disk=small_disk.path) for a in args])
    one_line_error(r, "No space left on device", "free some space on its disk")
    assert [p.name for p in small_disk.path.iterdir()] == [".filler"]


def test_a_run_directory_made_read_only_mid_run(made, tmp_path):
    run = Path(shutil.copytree(made["interrupted"], tmp_path / "run"))
    os.chmod(run, 0o500)  # its files stay writable, but no file can be created there: no new checkpoint
    try:
        with permissions_apply():
            r = invoke("train", "--resume", run, "--no-progress")
    finally:
        os.chmod(run, 0o700)
    one_line_error(r, "Permission denied", "check its permissions", f"w2v-nce train --resume {run}")
    assert rundir.load_checkpoint(run, rundir.read_vocab(run).words, rundir.read_config(run)[0])["position"]["epoch"] == 1  # the kept one
