"""One run directory, one writer (lock.py): a second writer is refused with a line naming the holder, a killed holder
leaves nothing to clean, readers never wait, and runs in one runs/ never block each other. The processes are real
(`python -m w2v_nce`, torchrun), started as a user starts them."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from gensim.test.utils import datapath
from typer.testing import CliRunner

import w2v_nce
from w2v_nce import lock
from w2v_nce.run import rundir
from w2v_nce.cli import app

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
EPOCHS = 12
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def w2v(*args, cwd=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "w2v_nce", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, cwd=cwd)


def finish(p: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = p.communicate(timeout=timeout)
    return p.returncode, err


HOLD = ("import sys, time; from pathlib import Path; from w2v_nce import lock; "
        "held = lock.hold(Path(sys.argv[1]), 'x', 'y'); held.__enter__(); print('held', flush=True); time.sleep(300)")


@contextmanager
def held_by_another(path: Path):
    """Another process holding the lock file `path`, as a writer would."""
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert p.stdout.readline().strip() == "held"
    try:
        yield p
    finally:
        p.kill()
        p.wait()


def epochs(run: Path) -> list[int]:
    rows = [json.loads(line) for line in (run / rundir.METRICS).read_text().splitlines()]
    return [r["epoch"] for r in rows if r["event"] == "epoch"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """gensim's Lee corpus 4 times over (240k tokens): a resume of it lasts seconds, long enough to meet."""
    path = tmp_path_factory.mktemp("corpus") / "lee4.txt"
    path.write_text(Path(datapath("lee_background.cor")).read_text(encoding="utf-8") * 4, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stopped(corpus, tmp_path_factory) -> Path:
    """A run stopped after its first epoch of EPOCHS, to be resumed (copied by each test)."""
    out = tmp_path_factory.mktemp("stopped") / "run"
    run = w2v_nce.train(corpus, out, epochs=EPOCHS, min_count=3, dim=24, threads=1, progress=False,
                        on_epoch=lambda run, epoch, metrics: epoch < 1)
    assert not run.finished and epochs(out) == [1]
    return out


def copy_of(stopped: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(stopped, tmp_path / "run"))


def wait_until(condition, timeout=120.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_two_resumes_started_together(stopped, tmp_path):
    """One trains to the end; the other is refused at once with one line naming the first (PID and command); the
    metrics hold each epoch once."""
    run = copy_of(stopped, tmp_path)
    procs = [w2v("train", "--resume", run, "--no-progress") for _ in range(2)]
    (code_a, err_a), (code_b, err_b) = (finish(p) for p in procs)
    assert sorted([code_a, code_b]) == [0, 1], (err_a, err_b)
    winner, loser_err = (procs[0], err_b) if code_a == 0 else (procs[1], err_a)
    assert loser_err.strip().splitlines() == [
        f"error: run directory {run} is in use by process {winner.pid} (python -m w2v_nce train --resume {run} "
        f"--no-progress, started {loser_err.split('started ')[1].split(')')[0]}); wait for it to finish, or stop it "
        "and then run this again"]
    assert epochs(run) == list(range(1, EPOCHS + 1))
    assert not (run / lock.RUN_LOCK).exists() and not rundir.interrupted(run)


def test_readers_during_training_then_a_killed_holder(stopped, tmp_path):
    """While a resume trains: queries say who trains the run, the API reads the last checkpoint's vectors, an export
    into the run is refused and one elsewhere works, --init waits for the run, none of them waits. Then the trainer
    is killed (SIGKILL): its lock is gone with it, and the next resume trains at once to the end."""
    run = copy_of(stopped, tmp_path)
    p = w2v("train", "--resume", run, "--no-progress")
    wait_until(lambda: rundir.writer(run) is not None or p.poll() is not None)
    assert p.poll() is None
    r = invoke("similar", "the", "--vectors", run)
    assert r.exit_code == 1 and f"is being trained by process {p.pid}" in r.output, r.output
    vectors = w2v_nce.load(run).vectors  # the checkpoint's
    assert vectors.vectors.shape == (len(rundir.read_vocab(run)), 24) and np.isfinite(vectors.vectors).all()
    r = invoke("export", run, "--checkpoint")
    assert r.exit_code == 1 and f"in use by process {p.pid}" in r.output and "--out" in r.output, r.output
    assert not (run / "checkpoint-vectors.txt").exists()
    assert invoke("export", run, "--checkpoint", "--out", tmp_path / "now.txt").exit_code == 0
    r = invoke("train", datapath("lee_background.cor"), "--init", run, "--dim", 24, "--out", tmp_path / "more")
    assert r.exit_code == 2 and f"it is being trained by process {p.pid} (" in r.output, r.output
    assert p.poll() is None  # the readers were answered while it trained
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert (run / lock.RUN_LOCK).exists() and rundir.writer(run) is None  # a dead holder's file names nobody
    r = invoke("train", "--resume", run, "--no-progress")
    assert r.exit_code == 0, r.output
    assert epochs(run) == list(range(1, EPOCHS + 1)) and not (run / lock.RUN_LOCK).exists()


def test_runs_in_one_runs_folder_never_block_each_other(corpus, tmp_path):
    """Two new runs of the same corpus and settings, started together in one folder: each gets its own directory
    (runs/<name> and runs/<name>-2) and both finish."""
    procs = [w2v("train", corpus, "--epochs", 2, "--min-count", 3, "--dim", 16, "--threads", 1, "--no-progress",
                 cwd=tmp_path) for _ in range(2)]
    for p in procs:
        code, err = finish(p)
        assert code == 0, err
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir() if p.name != "latest")
    assert runs == ["lee4-sg-neg", "lee4-sg-neg-2"]
    assert all((tmp_path / "runs" / r / rundir.VECTORS).exists() for r in runs)


def test_a_held_run_is_refused_to_the_api_and_to_torchrun(stopped, tmp_path):
    run = copy_of(stopped, tmp_path)
    before = (run / rundir.METRICS).read_bytes()
    with held_by_another(run / lock.RUN_LOCK) as holder:
        with pytest.raises(lock.Busy, match=f"in use by process {holder.pid}"):
            w2v_nce.train(out=run, resume=True, progress=False)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
               "w2v_nce", "train", "--resume", run, "--no-progress"]
        job = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, env=ENV, timeout=300)
        ours = [line for line in job.stderr.splitlines() if line.startswith("error:")]
        assert job.returncode != 0 and len(ours) == 1 and f"in use by process {holder.pid}" in ours[0], job.stderr
    assert (run / rundir.METRICS).read_bytes() == before  # nothing changed


def test_two_phrase_writers_of_one_output(tmp_path):
    out = tmp_path / "phrased.txt"
    with held_by_another(lock.file_lock(out)) as holder:
        r = invoke("phrases", datapath("lee_background.cor"), "--out", out, "--no-progress")
        assert r.exit_code == 1 and f"the output {out} is in use by process {holder.pid}" in r.output, r.output
        assert not out.exists()
    r = invoke("phrases", datapath("lee_background.cor"), "--out", out, "--no-progress")
    assert r.exit_code == 0 and out.exists() and not lock.file_lock(out).exists(), r.output


def test_the_lock_itself(tmp_path):
    """Taken and released in one process, refused to another while held, free once its holder is killed; the
    record names this process; a new run cannot go where another process is starting one."""
    path = tmp_path / "x.lock"
    with lock.hold(path, "the thing", "do this"):
        assert lock.holder(path).startswith(f"process {os.getpid()} (")
        code = ("import sys; from pathlib import Path; from w2v_nce import lock\n"
                "try:\n    lock.hold(Path(sys.argv[1]), 'the thing', 'do this').__enter__()\n"
                "except lock.Busy as e:\n    print(e)")
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=ENV).stdout
        assert out.startswith(f"the thing is in use by process {os.getpid()} (") and out.rstrip().endswith("; do this")
    assert not path.exists() and lock.holder(path) is None
    with held_by_another(path) as other:
        with pytest.raises(lock.Busy):
            lock.hold(path, "the thing", "do this").__enter__()
        other.send_signal(signal.SIGKILL)
        other.wait()
        with lock.hold(path, "the thing", "do this"):  # at once: the kernel let go of a killed holder's lock
            pass
    empty = tmp_path / "new-run"
    with held_by_another(empty / lock.RUN_LOCK) as other:
        r = invoke("train", datapath("lee_background.cor"), "--out", empty, "--no-progress")
        assert r.exit_code == 1 and f"in use by process {other.pid}" in r.output, r.output
        assert os.listdir(empty) == [lock.RUN_LOCK]  # nothing of ours was written


def test_a_holder_that_has_not_written_its_record_yet_is_still_named(tmp_path):
    """Two writers started together: the second may find the lock taken a moment before its holder wrote who it is
    (the CI failure of 7c4b429). It reads the record again until it is there, and names the holder."""
    path = tmp_path / "x.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT)  # locked, empty: a holder between its flock and its record
    fcntl = pytest.importorskip("fcntl")
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    record = f"{os.getpid()}\n{socket.gethostname()}\n2026-12-06T15:00:00+00:00\nw2v-nce train c\n".encode()
    late = threading.Timer(0.2, os.pwrite, (fd, record, 0))
    late.start()
    try:
        with pytest.raises(lock.Busy) as refused:
            lock.hold(path, "the thing", "do this").__enter__()
    finally:
        late.join()
        os.close(fd)
    assert str(refused.value) == (f"the thing is in use by process {os.getpid()} (w2v-nce train c, started "
                                  "2026-12-06T15:00:00+00:00); do this")
