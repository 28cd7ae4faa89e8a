"""Bad input, interruption and divergence: clear one-line errors, exact resume, nothing half-written."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath
from typer.testing import CliRunner

from w2v_nce.step import pieces, plan
from w2v_nce.run import train as train_mod
from w2v_nce.run import opening
from w2v_nce.run.loops import Pieces
from w2v_nce.run.trainer import Diverged, Trainer
from w2v_nce.cli import app
from w2v_nce.config import make_config
from w2v_nce.errors import W2VError

ROOT = Path(__file__).resolve().parents[1]
LEE = datapath("lee_background.cor")
runner = CliRunner()


def cli(*args, cwd=None, env=None):
    """The installed entry point in a subprocess (signals, exit codes, stderr as a user sees them)."""
    return subprocess.Popen([sys.executable, "-c", "from w2v_nce.cli import main; main()", *map(str, args)],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.fixture
def preset(tmp_path):
    # small chunks, so that an interruption lands inside a chunk and resume must redraw its examples
    p = tmp_path / "preset.toml"
    p.write_text('[train]\nmodel = "sg"\nloss = "nce"\ndim = 20\nepochs = 12\nmin_count = 3\nlowercase = true\n'
                 'chunk_tokens = 7000\nthreads = 1\nseed = 5\n')
    return p


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_then_resume_gives_identical_vectors(tmp_path, preset, signum, code):
    ref = cli("train", LEE, "--config", preset, "--out", tmp_path / "ref", "--no-progress")
    assert ref.wait(timeout=300) == 0, ref.stderr.read()

    p = cli("train", LEE, "--config", preset, "--out", tmp_path / "run", "--no-progress")
    ckpt = tmp_path / "run" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ckpt.exists() and p.poll() is None and time.time() < deadline:  # after epoch 1's checkpoint
        time.sleep(0.02)
    time.sleep(0.3)
    p.send_signal(signum)
    assert p.wait(timeout=60) == code
    err = p.stderr.read().strip().splitlines()  # an info line about the vocabulary, then the error
    assert [line for line in err if line.startswith("error")] == err[-1:] and "Traceback" not in "".join(err)
    assert "checkpoint saved" in err[-1] and f"--resume {tmp_path / 'run'}" in err[-1]
    assert (tmp_path / "run" / "INCOMPLETE").exists() and not (tmp_path / "run" / "vectors.kv").exists()

    r = cli("train", "--resume", tmp_path / "run", "--no-progress")
    assert r.wait(timeout=300) == 0, r.stderr.read()
    a = KeyedVectors.load(str(tmp_path / "ref" / "vectors.kv"))
    b = KeyedVectors.load(str(tmp_path / "run" / "vectors.kv"))
    assert a.index_to_key == b.index_to_key
    assert np.array_equal(a.vectors, b.vectors)
    assert not (tmp_path / "run" / "INCOMPLETE").exists()


def test_resume_of_a_finished_run_is_refused(tmp_path):
    cfg = make_config(epochs=1, min_count=3, dim=8)
    train_mod.train(cfg, LEE, tmp_path / "r", progress=False, log=lambda *_: None)
    with pytest.raises(W2VError, match="finished run"):
        train_mod.train(None, None, tmp_path / "r", resume=True, progress=False)


def test_an_interrupt_while_the_step_compiles_says_so_and_keeps_nothing(tmp_path, monkeypatch):
    """Ctrl-C in the minute of a first compile (Trainer._warm) ended the process with 130 and not a word; now the
    one line a user gets everywhere else, and the new run leaves no directory behind."""
    from w2v_nce.errors import Interrupted

    def interrupted(self, *args):
        raise KeyboardInterrupt
    cfg = make_config(epochs=2, min_count=3, dim=8)
    monkeypatch.setattr(Trainer, "_warm", interrupted)
    with pytest.raises(Interrupted, match=r"^interrupted before training started; nothing was kept$") as e:
        train_mod.train(cfg, LEE, tmp_path / "r", progress=False, log=lambda *_: None)
    assert e.value.code == 130 and isinstance(e.value, KeyboardInterrupt) and not (tmp_path / "r").exists()


def test_divergence_of_a_large_summed_batch_suggests_a_smaller_batch(tmp_path):
    # the PyTorch step sums a batch's gradients; skip-gram diverged at batch 65,536 (docs/benchmarks-log.md section 3)
    cfg = make_config(epochs=1, min_count=3, dim=8, kernel="torch", batch_size=65536, lr=1e12)
    with pytest.raises(Diverged, match=r"retry with --batch-size 16384 or less, or a lower --lr"):
        train_mod.train(cfg, LEE, tmp_path / "r", progress=False, log=lambda *_: None)
    assert "batch-size" not in str(Diverged(3, 0.1, 0)) and "batch-size" not in str(Diverged(3, 0.1, 4096))


def test_divergence_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = make_config(epochs=1, min_count=3, dim=8)
    train_mod.train(good, LEE, tmp_path / "runs" / "good", progress=False, log=lambda *_: None)

    # a real divergence: an absurd learning rate
    bad = make_config(epochs=2, min_count=3, dim=8, lr=1e12)
    with pytest.raises(Diverged, match=r"at step \d+ .*lower --lr"):
        train_mod.train(bad, LEE, tmp_path / "runs" / "bad", progress=False, log=lambda *_: None)

    # an injected NaN at a known step (a piece) in epoch 2: the message names it, epoch 1's checkpoint is kept
    real_epoch = pieces.Threads.epoch

    def poisoned(self, epoch, first, rate, stop, report, last=None):
        def bad(done, *rest):  # the loss of epoch 2's third piece is NaN
            report([(k, float("nan") if epoch == 1 and k == 2 else loss, *more) for k, loss, *more in done], *rest)
        return real_epoch(self, epoch, first, rate, stop, bad, last)

    probe = make_config(epochs=1, min_count=3, dim=8, batch_size=512)
    train_mod.train(probe, LEE, tmp_path / "probe", progress=False, log=lambda *_: None)
    n_steps_epoch1 = torch.load(tmp_path / "probe" / "checkpoint.pt", weights_only=False)["position"]["step"]
    monkeypatch.setattr(pieces.Threads, "epoch", poisoned)
    cfg = make_config(epochs=2, min_count=3, dim=8, batch_size=512)
    with pytest.raises(Diverged, match=f"at step {n_steps_epoch1 + 3} "):
        train_mod.train(cfg, LEE, tmp_path / "runs" / "nan", progress=False, log=lambda *_: None)
    run = tmp_path / "runs" / "nan"
    assert (run / "INCOMPLETE").exists() and not (run / "vectors.kv").exists()
    st = torch.load(run / "checkpoint.pt", weights_only=False)
    assert st["position"]["epoch"] == 1 and st["position"]["step"] == n_steps_epoch1
    assert (tmp_path / "runs" / "latest").resolve() == (tmp_path / "probe").resolve()  # the last complete run


def test_failed_run_keeps_latest_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ok = runner.invoke(app, ["train", LEE, "--epochs", "1", "--dim", "8", "--min-count", "3", "--no-progress"])
    assert ok.exit_code == 0
    latest = (tmp_path / "runs" / "latest").resolve()
    (tmp_path / "tiny.txt").write_text("one two three\n")
    r = runner.invoke(app, ["train", "tiny.txt", "--min-count", "1", "--no-progress"])
    assert r.exit_code == 1 and "fewer than one window" in r.output
    assert (tmp_path / "runs" / "latest").resolve() == latest
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["latest", latest.name]


def test_invalid_utf8_stops_or_is_replaced_and_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = open(LEE, "rb").read()
    (tmp_path / "bad.txt").write_bytes(text[:1000] + b"\xff\xfe" + text[1000:])
    r = runner.invoke(app, ["train", "bad.txt", "--epochs", "1", "--no-progress"])
    assert r.exit_code == 1 and "not valid UTF-8 at byte 1000" in r.output and "--encoding-errors replace" in r.output
    r = runner.invoke(app, ["train", "bad.txt", "--epochs", "1", "--dim", "8", "--no-progress",
                            "--encoding-errors", "replace"])
    assert r.exit_code == 0 and "2 invalid bytes replaced" in r.output


def test_binary_corpus(tmp_path):
    r = runner.invoke(app, ["train", sys.executable, "--no-progress", "--out", str(tmp_path / "r")])
    assert r.exit_code == 1 and "binary" in r.output and not (tmp_path / "r").exists()


def test_existing_run_dir_is_not_overwritten(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "keep.txt").write_text("x")
    r = runner.invoke(app, ["train", LEE, "--out", str(tmp_path / "r"), "--no-progress"])
    assert r.exit_code == 2 and "already exists" in r.output and (tmp_path / "r" / "keep.txt").exists()


def test_single_line_100mb_corpus_under_1gb(tmp_path):
    """The text8 shape: the benchmark corpus as one line; vocabulary + 1 epoch of training, peak RSS < 1 GB.

    About 70 s on 2 cores; it runs wherever ../shared/corpora is beside the checkout (CI has it).
    Measured: 852 MB, of which about 400 MB is the imported torch, gensim and numba with the compiled
    kernel. Compiling the kernel (once per install; numba caches it) adds about 140 MB to the first run,
    so the test compiles it here first.
    """
    from w2v_nce.step import cpu
    from w2v_nce.model.heads import make_head
    from w2v_nce.model.sampling import AliasSampler
    counts = np.array([2, 1])
    cpu.warm_up(make_head("neg", counts, 1, AliasSampler(counts), 1))  # the run's head: sg-neg
    src = ROOT.parent / "shared" / "corpora" / "wiki100m.txt.gz"
    if not src.exists():
        pytest.skip("needs ../shared/corpora/wiki100m.txt.gz")
    if not Path("/proc/self/status").exists():
        pytest.skip("reads the peak from /proc (Linux)")
    one = tmp_path / "one.txt"
    subprocess.run(f"zcat {src} | tr '\\n' ' ' > {one}", shell=True, check=True)
    # The peak is the child's VmHWM, not its ru_maxrss: Linux folds the parent's peak into the child's
    # ru_maxrss at exec, so inside the suite (pytest past 1 GB) ru_maxrss read the parent's 1,079 MB.
    code = ("import sys; from w2v_nce.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n"
            "    hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
            "    print('maxrss_kb', hwm, file=sys.stderr); raise")
    p = subprocess.run([sys.executable, "-c", code, "train", str(one), "--epochs", "1", "--no-progress",
                        "--out", str(tmp_path / "r")], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    rss_mb = int(p.stderr.split("maxrss_kb")[1].split()[0]) / 1024
    print(f"peak RSS {rss_mb:.0f} MB")
    assert rss_mb < 1024


@pytest.mark.parametrize("kernel,share,ahead,subwords", [("fused", 1, False, None), ("fused", 8, False, None),
                                                         ("torch", None, False, None), ("fused", 1, True, None),
                                                         ("fused", 8, False, "3-5"), ("torch", None, False, "2-4")])
def test_resume_is_exact_at_chunk_starts_mid_chunk_and_epoch_ends(tmp_path, kernel, share, ahead, subwords):
    """The chunk loop (the PyTorch step; the fused step of a process of torchrun). ahead: each chunk drawn during the
    last one's final batch, as on a GPU (Chunks.draw_next): the same run, and the same resume, also from a
    checkpoint taken while drawn examples wait."""
    import torch

    cfg = make_config(epochs=2, min_count=3, dim=8, chunk_tokens=9000, threads=1, seed=2, batch_size=256,
                      kernel=kernel, shared_noise=share, subwords=subwords, buckets=1000)
    vocab, _ = opening.make_run_dir(cfg, Path(LEE), tmp_path / "r")

    def fresh(draw_ahead=ahead):
        t = Trainer(cfg, tmp_path / "r", vocab, plan.make_plan(cfg), single=False)
        t.loop.draw_ahead = draw_ahead
        return t

    ref = fresh(False)
    chunk_starts = []
    draw = ref.loop.examples
    ref.loop.examples = lambda c: (chunk_starts.append(ref.step), draw(c))[1]
    ref.train_epochs()
    if ahead:
        t = fresh()
        t.train_epochs()
        assert torch.equal(t.model.input, ref.model.input) and torch.equal(t.model.head.weight, ref.model.head.weight)
        # a checkpoint while a chunk's examples wait holds the generator's state before they were drawn
        t = fresh()
        before = t.gen.get_state()
        t.loop.draw_next(0)
        assert torch.equal(t.position_state()["gen_state"], before) and not torch.equal(t.gen.get_state(), before)
    # the first batch of a chunk (its examples are drawn, no step taken), inside a chunk, the start of epoch 2
    epoch2 = chunk_starts[len(chunk_starts) // 2]
    for stop_at in sorted({chunk_starts[1], chunk_starts[2] + 3, epoch2, chunk_starts[-1] + 1}):
        t = fresh()
        with pytest.raises(KeyboardInterrupt):
            t.train_epochs(stop=lambda: t.step == stop_at)
        torch.save(t.state(), tmp_path / "ckpt.pt")
        resumed = fresh()
        resumed.load_state(torch.load(tmp_path / "ckpt.pt", weights_only=False))
        resumed.train_epochs()
        assert torch.equal(resumed.model.input, ref.model.input), stop_at
        assert torch.equal(resumed.model.head.weight, ref.model.head.weight), stop_at


@pytest.mark.parametrize("model,loss,share,subwords", [("sg", "neg", 8, None), ("cbow", "nce", 1, None),
                                                       ("sg", "hs", 1, None), ("sg", "infonce", 2, None),
                                                       ("sg", "neg", 8, "3-5"), ("cbow", "hs", 1, "1-3")])
def test_resume_by_pieces_is_exact_at_any_piece(tmp_path, model, loss, share, subwords):
    """One process on the CPU trains by pieces (pieces.py): stopped after any piece (the first, mid-chunk, a chunk's
    end, an epoch's end, the last), its checkpoint resumes to the uninterrupted run's vectors, to the bit."""
    import torch

    cfg = make_config(model=model, loss=loss, epochs=2, min_count=3, dim=8, chunk_tokens=9000, threads=1, seed=2,
                      shared_noise=share, subwords=subwords, buckets=1000)
    vocab, _ = opening.make_run_dir(cfg, Path(LEE), tmp_path / "r")

    def fresh():
        return Trainer(cfg, tmp_path / "r", vocab, plan.make_plan(cfg))

    ref = fresh()
    assert isinstance(ref.loop, Pieces)
    ref.train_epochs()
    per_chunk = int(np.searchsorted(ref.loop.threads.bounds[:, 0], 9000))
    n = len(ref.loop.threads.bounds)
    for epoch, piece in sorted({(0, 1), (0, per_chunk // 2), (0, per_chunk), (1, 0), (1, n - 1)}):
        t = fresh()
        whole = t.loop.threads.epoch  # stopped before `piece` of `epoch`, as stop() at that point would
        t.loop.threads.epoch = lambda e, first, *args: whole(e, first, *args, last=piece if e == epoch else None)
        with pytest.raises(KeyboardInterrupt):
            t.train_epochs()
        assert (t.epoch, t.piece) == (epoch, piece)
        torch.save(t.state(), tmp_path / "ckpt.pt")
        resumed = fresh()
        resumed.load_state(torch.load(tmp_path / "ckpt.pt", weights_only=False))
        resumed.train_epochs()
        assert torch.equal(resumed.model.input, ref.model.input), (epoch, piece)
        assert torch.equal(resumed.model.head.weight, ref.model.head.weight), (epoch, piece)
        assert torch.equal(resumed.model.head.bias, ref.model.head.bias), (epoch, piece)


def test_a_checkpoint_in_the_files_order_goes_on_in_it(tmp_path):
    """A checkpoint by pieces of a version before the shuffled order (its place counts the file's pieces; no "order"
    in its position) goes on in the file's order to its epoch's end, then in the shuffled order: the vectors of a run
    trained so from the start, to the bit (and not those of the run shuffled from the start)."""
    import torch

    cfg = make_config(model="sg", loss="neg", epochs=2, min_count=3, dim=8, chunk_tokens=9000, threads=1, seed=2)
    vocab, _ = opening.make_run_dir(cfg, Path(LEE), tmp_path / "r")

    def fresh(file_order_epoch=None):
        t = Trainer(cfg, tmp_path / "r", vocab, plan.make_plan(cfg))
        t.loop.in_file_order = file_order_epoch
        return t

    ref, shuffled = fresh(0), fresh()
    ref.train_epochs()
    shuffled.train_epochs()
    assert not torch.equal(ref.model.input, shuffled.model.input)
    t, piece = fresh(0), 5
    whole = t.loop.threads.epoch
    t.loop.threads.epoch = lambda e, first, *args: whole(e, first, *args, last=piece if e == 0 else None)
    with pytest.raises(KeyboardInterrupt):
        t.train_epochs()
    state = t.state()
    assert state["position"]["order"] == "file"
    del state["position"]["order"]  # as a version before the shuffled order wrote it
    resumed = fresh()
    resumed.load_state(state)
    resumed.train_epochs()
    assert torch.equal(resumed.model.input, ref.model.input)
    assert torch.equal(resumed.model.head.weight, ref.model.head.weight)
