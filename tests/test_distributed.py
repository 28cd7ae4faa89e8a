"""Training on several processes: 2 CPU processes with gloo, launched as a user launches them (torchrun).

The synchronisation's math is checked exactly on a 2-process group of its own; the rest runs `torchrun
--standalone --nproc-per-node 2 -m w2v_nce train` on gensim's Lee corpus: the ranks agree (vocabulary, noise
table, parameters after every synchronisation), the model learns the end-to-end test's signal, a killed rank
ends the job with one line naming it, and interrupted, failed and restarted runs resume to the end.

The tests use two test hooks (tests/hooks/sitecustomize.py, on every process's PYTHONPATH):
W2V_NCE_TEST_EXIT_AT_SYNC=RANK:N makes that rank exit at once (os._exit(9), as a crash would) when it reaches
synchronisation N, in every attempt of a torchrun job; W2V_NCE_DEBUG_SYNC_DIR=DIR makes each rank append a hash of
its parameters to DIR/rankR.jsonl at each one.

Each torchrun launch costs about 8 s on 2 cores (torchrun and both ranks import torch), so the faults share runs.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from gensim.models import KeyedVectors
from gensim.test.utils import datapath
from typer.testing import CliRunner

from w2v_nce.run import replicas, rundir
from w2v_nce.cli import app

from . import sync_worker
from .hooks.sitecustomize import digest
from .test_end_to_end import PAIRS, THRESHOLD, neighbour_rank

ROOT = Path(__file__).resolve().parents[1]
LEE = datapath("lee_background.cor")
HOT = ["--sync-hot-rows", "50", "--sync-hot-words", "1000"]  # 4 combinations of the hot rows between two syncs
RUN = ["--epochs", "10", "--min-count", "5", "--lowercase", "--seed", "7", "--threads", "1", "--no-progress"]


def torchrun(*args, nproc: int = 2, env: dict | None = None, restarts: int = 0) -> subprocess.Popen:
    """`torchrun --standalone -m w2v_nce ...` (a free port of its own), in a session of its own for killpg."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "--max-restarts", str(restarts), "-m", "w2v_nce", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": f"{ROOT / 'tests' / 'hooks'}{os.pathsep}{ROOT}", **(env or {})})


def finish(p: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    _, err = p.communicate(timeout=timeout)
    return p.returncode, err


def errors(stderr: str) -> list[str]:
    """Our processes' error lines (torchrun adds its own failure report, a traceback of its own, after them)."""
    ours = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert f'File "{ROOT / "w2v_nce"}' not in stderr  # never a traceback from our code
    return ours


# -- the synchronisation, exactly ----------------------------------------------------------------------

# P = P0 + gain / 2 (Δ0 + Δ1), by hand, for sync_worker's P0 and the ranks' changes
EXPECTED = {1.0: ([[1.375, 2.0], [3, 4], [4.5, 5.5]], [0.625, 0.25, 1.0]),
            2.0: ([[1.75, 2.0], [3, 4], [4.0, 5.0]], [0.75, 0.25, 1.0]),
            # per-row: gain_row = 2 |Δ0|²+|Δ1|² / |Δ0+Δ1|² in [1, 2]. Row 0: 2 · 0.8125 / 0.5625 > 2, so 2; rows and
            # biases one rank changed: 2 (summed); so here the sum
            "per-row": ([[1.75, 2.0], [3, 4], [4.0, 5.0]], [0.75, 0.25, 1.0]),
            # ALIKE: row 0: 2 · (1 + 2) / |(2, 1)|² = 1.2, so P0 + 0.6 (2, 1); row 1 and bias 0, changed alike: gain 1
            # (the average); row 2, rank 1's alone: gain 2
            "per-row-alike": ([[2.2, 2.6], [4, 5], [5, 4]], [1.0, 0.25, 1.0])}
# bytes each rank sends: full, the 3x2 matrix and 3 biases in float32; rows, per tensor the count (int64), the
# row ids padded to the longest list (int32: rank 1's 2 rows, then rank 0's 1 bias) and the union's rows
BYTES = {"full": (6 + 3) * 4, "rows": (8 + 2 * 4 + 2 * 2 * 4) + (8 + 1 * 4 + 1 * 4)}
# per-row adds the sum of squares of each row moved (float32)
PER_ROW_BYTES = {"full": BYTES["full"] + (3 + 3) * 4, "rows": BYTES["rows"] + (2 + 1) * 4}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_combine_is_p0_plus_gain_times_the_mean_change_on_every_rank(tmp_path):
    mp.spawn(sync_worker.run, args=(free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"{r}.pt", weights_only=False) for r in (0, 1)]
    for mode in ("full", "rows"):
        for gain, (weight, bias) in EXPECTED.items():
            for got in ranks:
                w, b, snapshots, sent, finite = got[mode, gain]
                assert torch.allclose(w, torch.tensor(weight), rtol=0, atol=1e-6), (mode, gain)
                assert torch.allclose(b, torch.tensor(bias), rtol=0, atol=1e-6), (mode, gain)
                assert torch.equal(snapshots[0], w) and torch.equal(snapshots[1], b)  # P0 = P for the next one
                assert finite
                if gain != "per-row-alike":  # (its rows mode moves other rows)
                    assert sent == (PER_ROW_BYTES if gain == "per-row" else BYTES)[mode], (mode, gain)
        # with hot rows and 2 processes, per-row's gain for the hot rows only, the sum for the others: SPLIT's rows 0
        # and 1 and bias 0 as ALIKE's (per-row); row 2 and bias 2, changed alike, P0 + (1, 1) + (1, 1). With more
        # processes every row its own gain: row 2 and bias 2 get P0 + (1, 1) once
        for got in ranks:
            w, b, finite = got[mode, "split"]
            assert torch.allclose(w, torch.tensor([[2.2, 2.6], [4, 5], [7, 8]]), rtol=0, atol=1e-6), mode
            assert torch.allclose(b, torch.tensor([1.0, 0.25, 2.0]), rtol=0, atol=1e-6) and finite, mode
            w, b, finite = got[mode, "split-3"]
            assert torch.allclose(w, torch.tensor([[2.2, 2.6], [4, 5], [6, 7]]), rtol=0, atol=1e-6), mode
            assert torch.allclose(b, torch.tensor([1.0, 0.25, 1.5]), rtol=0, atol=1e-6) and finite, mode
        # a NaN in one rank's change is found on every rank (SPARK-24666's infinities, caught at once)
        assert ranks[0][mode, "nan"] is False and ranks[1][mode, "nan"] is False


def test_the_gain_rule_and_each_process_s_learning_rate():
    # (gain, rate in multiples of --lr): gain x rate = W, so a row one replica alone changed moves as one process
    # would move it; auto's gain is (W + 2) / 4, at most 2 (replicas.rule)
    assert replicas.rule("auto", 2) == (1.0, 2.0)  # the mean, at twice the rate
    assert replicas.rule("auto", 3) == (1.25, 2.4)
    assert replicas.rule("auto", 4) == (1.5, 4 / 1.5)
    assert replicas.rule("auto", 6) == (2.0, 3.0) and replicas.rule("auto", 8) == (2.0, 4.0)  # never above 2
    assert replicas.rule(1.0, 4) == (1.0, 4.0) and replicas.rule(4.0, 4) == (4.0, 1.0)  # the mean; the sum at lr
    assert replicas.rule("per-row", 4) == ("per-row", 1.0)  # each row its own gain, at lr


def test_shards_are_every_w_th_block_and_cover_the_corpus_once():
    from w2v_nce.run.distributed import SHARD_BLOCK, shard_blocks

    b = SHARD_BLOCK
    assert shard_blocks(5 * b + 7, 2) == [[(0, b), (2 * b, 3 * b), (4 * b, 5 * b)],
                                          [(b, 2 * b), (3 * b, 4 * b), (5 * b, 5 * b + 7)]]
    assert shard_blocks(11, 2) == [[(0, 5), (10, 11)], [(5, 10)]]  # a small corpus: about n / W each
    for n, w in ((10 * b + 3, 4), (1, 2), (12345, 3)):  # every token in one shard, once
        blocks = sorted(block for shard in shard_blocks(n, w) for block in shard)
        assert blocks[0][0] == 0 and blocks[-1][1] == n and all(p[1] == q[0] for p, q in zip(blocks, blocks[1:]))


def test_a_checkpoint_s_checksum_covers_every_rank_s_position(tmp_path):
    state = {"position": {"step": 3}, "input": torch.zeros(2, 2), "world": {"size": 2, "syncs": 1, "words": 9.0},
             "ranks": [{"position": {"step": 3}, "gen_state": torch.zeros(4, dtype=torch.uint8)},
                       {"position": {"step": 4}, "gen_state": torch.ones(4, dtype=torch.uint8)}]}
    crc = rundir._checksum(state)
    state["ranks"][1]["position"]["step"] = 5
    assert rundir._checksum(state) != crc
    state["ranks"][1]["position"]["step"] = 4
    state["ranks"][1]["gen_state"][0] = 7
    assert rundir._checksum(state) != crc


# -- a real 2-process run ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lee2(tmp_path_factory):
    """sg-neg on the Lee corpus as tests/test_end_to_end.py trains it, by 2 processes synchronising every 5,000
    words each (about 5 times an epoch) and their 50 most frequent words' rows 4 times in between, each rank logging a hash of its parameters at every synchronisation."""
    tmp = tmp_path_factory.mktemp("lee2")
    (tmp / "debug").mkdir()
    start = time.monotonic()
    code, err = finish(torchrun("train", LEE, *RUN, "--sync-words", "5000", *HOT, "--out", tmp / "run",
                                env={"W2V_NCE_DEBUG_SYNC_DIR": str(tmp / "debug")}))
    assert code == 0, err
    print(f"2-process run on Lee: {time.monotonic() - start:.1f} s")
    return tmp / "run", tmp / "debug", err


def test_two_processes_learn_the_end_to_end_signal_on_real_text(lee2):
    run, _, _ = lee2
    kv = KeyedVectors.load(str(run / "vectors.kv"))
    assert all(w in kv.key_to_index for p in PAIRS for w in p)
    score = neighbour_rank(kv)
    assert score < THRESHOLD, f"2 processes: median neighbour rank {score:.3f}"  # 1 process: 0.0035, 2: 0.0012
    kv.vectors = np.random.default_rng(0).uniform(-0.5, 0.5, kv.vectors.shape).astype(np.float32)
    assert neighbour_rank(kv) > 0.3


def test_every_rank_has_the_same_vocabulary_noise_table_and_parameters_after_each_sync(lee2):
    run, debug, _ = lee2
    every = [[json.loads(line) for line in (debug / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)]
    logs = [[e for e in log if "sync" in e] for log in every]
    hot = [[e for e in log if "hot" in e] for log in every]
    # the hot rows' combinations: as many on both ranks, 4 between two syncs, the same hot rows after each
    assert hot[0] == hot[1] and len(hot[0]) == 4 * len(logs[0])
    first = [log[0] for log in logs]
    assert first[0]["vocab"] == first[1]["vocab"] and first[0]["noise"] == first[1]["noise"]
    assert first[0]["words"] > 0 and first[1]["words"] > 0  # each rank trained on a shard of its own
    # the same synchronisations, and after each the same parameters, which change from one to the next
    assert [e["sync"] for e in logs[0]] == [e["sync"] for e in logs[1]] == list(range(1, len(logs[0]) + 1))
    assert [e["params"] for e in logs[0]] == [e["params"] for e in logs[1]]
    assert len({e["params"] for e in logs[0]}) == len(logs[0]) > 10
    # and the checkpoint rank 0 wrote at the end is the state of the last one
    st = torch.load(run / "checkpoint.pt", weights_only=True)
    assert digest([st["input"], st["output"], st["bias"]]) == logs[0][-1]["params"]
    assert st["world"]["size"] == 2 and len(st["ranks"]) == 2 and st["world"]["syncs"] == len(logs[0])


def test_the_run_directory_records_the_job_and_rank_0_alone_speaks(lee2):
    run, _, err = lee2
    config = (run / "config.toml").read_text()
    for line in ("world_size = 2", 'sync = "full"', "sync_words = 5000", 'sync_gain = "auto"', "gain = 1.0",
                 "lr_scale = 2.0", "sync_hot_rows = 50", "sync_hot_words = 1000"):
        assert line in config
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # auto's gain with 2 processes averages the replicas, each trained at 2 x sg's lr 0.025 (replicas.rule)
    assert metrics[0]["event"] == "start" and metrics[0]["lr"] == 0.05
    syncs = [e for e in metrics if e["event"] == "sync"]
    assert syncs and all(e["bytes"] > 0 and e["sync_s"] >= 0 and e["wait_s"] >= 0 for e in syncs)
    words = [e["words"] for e in syncs]
    assert words == sorted(words)  # the run's words, all ranks': the learning rate follows them
    assert err.count("vocabulary: ") == 1 and err.count("trained ") == 1 and "error" not in err
    assert re.search(r"2 processes \(gain 1 at 2 x lr\), \d+ synchronisations and \d+ of the hot rows: ", err)
    assert not (run / "INCOMPLETE").exists()


# -- faults --------------------------------------------------------------------------------------------

def test_a_killed_rank_ends_the_job_with_one_line_naming_it_and_a_resume_finishes(tmp_path):
    """Rank 1 dies at sync 3 in each of torchrun's 2 attempts: the first restarts the job, which resumes from the
    checkpoint rank 0 wrote of sync 2; the second ends it. A resume by hand then finishes the run."""
    run = tmp_path / "run"
    start = time.monotonic()
    debug = tmp_path / "debug"
    debug.mkdir()
    code, err = finish(torchrun("train", LEE, *RUN, "--sync-words", "5000", *HOT, "--sync-timeout", "20", "--out", run,
                                env={"W2V_NCE_TEST_EXIT_AT_SYNC": "1:3", "W2V_NCE_DEBUG_SYNC_DIR": str(debug)},
                                restarts=1), timeout=180)
    elapsed = time.monotonic() - start
    assert code != 0
    lines = errors(err)  # one line per attempt, from rank 0
    assert len(lines) == 2 and lines[0] == lines[1]
    assert lines[0] == (f"error: rank 1 stopped answering (no heartbeat for 5 s at sync 3); the run is INCOMPLETE "
                        f"with its checkpoint at epoch 1, step {lines[0].split('step ')[1].split(';')[0]}; resume it "
                        f"with: torchrun --standalone --nproc-per-node 2 -m w2v_nce train --resume {run}")
    assert f"restart 1 of the torchrun job: resuming {run}" in err
    assert f"traceback : {lines[0].removeprefix('error: ')}" in err  # torchrun's report gives rank 0's reason, ours
    assert elapsed < 2 * (20 + 15)  # per attempt: the timeout, and the start of torchrun and 2 ranks (8 s here)
    # the checkpoint of the last synchronisation before the loss, every rank's position in it
    assert (run / "INCOMPLETE").exists() and not (run / "vectors.kv").exists()
    st = torch.load(run / "checkpoint.pt", weights_only=True)
    assert st["world"]["syncs"] == 2 and [r["position"]["step"] > 0 for r in st["ranks"]] == [True, True]
    # the parameters of sync 2, though rank 0 had combined the hot rows 4 more times when rank 1 died
    log = [json.loads(line) for line in (debug / "rank0.jsonl").read_text().splitlines()]
    sync2 = [e for e in log if e.get("sync") == 2][-1]
    assert log[log.index(sync2) + 4]["hot"] and "hot" in log[-1]
    assert digest([st["input"], st["output"], st["bias"]]) == sync2["params"]

    code, err = finish(torchrun("train", "--resume", run))
    assert code == 0, err
    assert (run / "vectors.kv").exists() and not (run / "INCOMPLETE").exists()
    assert neighbour_rank(KeyedVectors.load(str(run / "vectors.kv"))) < THRESHOLD
    events = [json.loads(line)["event"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert events.count("start") == 1 and events.count("resume") == 2


def test_interrupt_then_resume_with_as_many_processes_only(tmp_path):
    run = tmp_path / "run"
    p = torchrun("train", LEE, *RUN, "--sync-words", "3000", "--out", run)  # 8 synchronisations an epoch
    deadline = time.time() + 120
    while time.time() < deadline and p.poll() is None:  # a few synchronisations into training
        metrics = run / "metrics.jsonl"
        if metrics.exists() and metrics.read_text().count('"event": "sync"') >= 3:
            break
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGINT)  # Ctrl-C in a terminal: torchrun and both ranks get it
    code, err = finish(p, timeout=60)
    assert code != 0
    (line,) = errors(err)
    assert re.fullmatch(r"error: interrupted in epoch \d+ at step \d+; checkpoint saved; continue with: torchrun "
                        rf"--standalone --nproc-per-node 2 -m w2v_nce train --resume {re.escape(str(run))}", line)
    assert (run / "INCOMPLETE").exists()

    code, err = finish(torchrun("train", "--resume", run, nproc=3))
    (line,) = errors(err)  # one line among 3 ranks
    assert line == (f"error: {run} was trained by 2 processes and this job has 3; resume it with 2: torchrun "
                    f"--standalone --nproc-per-node 2 -m w2v_nce train --resume {run}")
    assert re.search(r"exitcode\s*:\s*2\b", err), err  # torchrun's report of rank 0's exit code; its own is 1
    plain = CliRunner().invoke(app, ["train", "--resume", str(run)])  # not under torchrun
    assert plain.exit_code == 2 and plain.output.strip() == line.replace("this job has 3", "this job has 1")

    code, err = finish(torchrun("train", "--resume", run))
    assert code == 0, err
    assert (run / "vectors.kv").exists() and not (run / "INCOMPLETE").exists()


def test_two_processes_train_the_subword_rows_together(tmp_path):
    """--subwords under torchrun (--sync rows): every rank holds the same words' and n-gram buckets' rows after each
    synchronisation, and the run answers words never seen."""
    (tmp_path / "debug").mkdir()
    code, err = finish(torchrun("train", LEE, "--epochs", "2", "--min-count", "5", "--lowercase", "--threads", "1",
                                "--no-progress", "--subwords", "3-5", "--buckets", "3000", "--sync", "rows",
                                "--sync-words", "10000", "--out", tmp_path / "run",
                                env={"W2V_NCE_DEBUG_SYNC_DIR": str(tmp_path / "debug")}))
    assert code == 0, err
    logs = [[json.loads(line) for line in (tmp_path / "debug" / f"rank{r}.jsonl").read_text().splitlines()
             if '"sync"' in line] for r in (0, 1)]
    assert [e["params"] for e in logs[0]] == [e["params"] for e in logs[1]] and len(logs[0]) >= 2
    st = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    words = rundir.read_vocab(tmp_path / "run").words
    from w2v_nce.corpus.subwords import run_table
    used = run_table(words, (3, 5), 3000, False)[2]  # a row for each bucket the words use
    assert st["input"].shape == (len(words) + len(used), 100) and len(used) <= 3000
    from w2v_nce import load
    kv = load(tmp_path / "run").vectors
    assert np.isfinite(kv.get_vector("governmentally")).all() and kv.most_similar("governmentally", topn=3)
