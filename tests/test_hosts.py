"""torchrun across machines of our own: two network namespaces joined by a veth link (tests/hosts.py), each with its
own address, hostname and /etc/hosts, the corpus and the run directory on one of them only. The commands of
docs/torchrun.md, run as written. Skipped where namespaces cannot be made (they need root)."""

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from . import hosts as hosts_mod
from .hosts import Hosts
from .test_distributed import ROOT, RUN, errors
from .test_end_to_end import THRESHOLD, neighbour_rank

pytestmark = pytest.mark.skipif(hosts_mod.available() is not None, reason=str(hosts_mod.available()))

ENV = {"PYTHONPATH": f"{ROOT / 'tests' / 'hooks'}:{ROOT}"}


def start(hosts: Hosts, tmp_path: Path, *args, static: bool = False, host1=None) -> list[subprocess.Popen]:
    """The same command on every host (or host1's arguments on host 1), each in a folder of its own; the corpus in
    host 0's only."""
    return hosts.torchrun(tmp_path, list(args), static=static, args_of={1: host1} if host1 is not None else None,
                          env=ENV)


def finish(procs, timeout: float = 200) -> list[tuple[int, str]]:
    errs = [p.communicate(timeout=timeout)[1] for p in procs]
    return [(p.returncode, err) for p, err in zip(procs, errs)]


def corpus(tmp_path: Path) -> str:
    (tmp_path / "h0").mkdir(exist_ok=True)
    shutil.copy(datapath("lee_background.cor"), tmp_path / "h0" / "lee.txt")
    return "lee.txt"


@pytest.mark.parametrize("static", [False, True], ids=["c10d", "static"])
def test_the_documented_command_trains_across_two_hosts(tmp_path, static):
    with Hosts(["host0", "host1"]) as hosts:
        procs = start(hosts, tmp_path, "train", corpus(tmp_path), *RUN, "--sync-words", "5000", "--out", "run",
                      static=static)
        (code0, err0), (code1, err1) = finish(procs)
    assert code0 == 0 and code1 == 0, err0 + err1
    run = tmp_path / "h0" / "run"
    assert (run / "vectors.kv").exists() and not (tmp_path / "h1" / "run").exists()  # written on host 0 only
    assert neighbour_rank(KeyedVectors.load(str(run / "vectors.kv"))) < THRESHOLD
    assert "world_size = 2" in (run / "config.toml").read_text()
    assert err0.count("trained ") == 1 and "trained " not in err1 and not errors(err0) and not errors(err1)


def test_a_host_without_the_corpus_made_rank_0_says_how_to_start(tmp_path):
    """c10d numbers the machines by hostname: the corpus's machine, "zeta", sorts after "alpha" and is rank 1."""
    with Hosts(["zeta", "alpha"]) as hosts:
        procs = start(hosts, tmp_path, "train", corpus(tmp_path), *RUN, "--out", "run")
        (code0, err0), (code1, err1) = finish(procs, timeout=120)
    assert code0 != 0 and code1 != 0
    told = errors(err1)
    assert told == ["error: corpus lee.txt does not exist on alpha, the machine torchrun made rank 0 (rank 0 reads "
                    "the corpus; --rdzv-backend c10d numbers the machines by hostname, not by --node-rank): start "
                    "every machine with --master-addr HOST --master-port PORT and --node-rank 0 on the corpus's "
                    "(docs/torchrun.md), or give this machine the corpus at the same path"], err1
    assert all("rank 0 stopped first" in line for line in errors(err0)), err0
    assert not (tmp_path / "h0" / "run").exists() and not (tmp_path / "h1" / "run").exists()


@pytest.mark.parametrize("how", ["kill", "cut"])
def test_a_lost_host_ends_the_job_with_one_line_and_a_resume_on_both_finishes(tmp_path, how):
    """Host 1 lost a few synchronisations in, its processes killed (kill -9) or its link cut (no reset reaches host
    0): host 0 names the lost rank and the resume command within the sync timeout; the same command with --resume
    on both hosts finishes the run."""
    with Hosts(["host0", "host1"]) as hosts:
        procs = start(hosts, tmp_path, "train", corpus(tmp_path), *RUN, "--sync-words", "3000", "--sync-timeout",
                      "20", "--out", "run", static=True)
        metrics = tmp_path / "h0" / "run" / "metrics.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline and procs[0].poll() is None:
            if metrics.exists() and metrics.read_text().count('"event": "sync"') >= 3:
                break
            time.sleep(0.05)
        hosts.kill(1) if how == "kill" else hosts.cut(1)
        lost = time.monotonic()
        (code0, err0), = finish(procs[:1], timeout=120)  # host 1's processes, where only the link is cut, wait on it
        ended = time.monotonic() - lost
        print(f"host 1 lost ({how}): host 0 ended {ended:.1f} s later")
        assert code0 != 0
        lines = errors(err0)
        assert len(lines) == 1 and lines[0].startswith("error: rank 1 stopped answering"), err0
        assert lines[0].endswith("resume it with: torchrun --nnodes 2 --node-rank 0 --nproc-per-node 1 --master-addr "
                                 "HOST --master-port PORT -m w2v_nce train --resume run here (HOST: this machine), "
                                 "and the same with --node-rank 1, 2, ... on the others"), lines[0]
        assert ended < 20 + 10, ended
        run = tmp_path / "h0" / "run"
        assert (run / "INCOMPLETE").exists() and (run / "checkpoint.pt").exists()
        if how == "cut":  # host 1's processes wait on a dead link: stopped, and the link mended
            hosts.kill(1)
            hosts.mend(1)
        procs[1].communicate(timeout=30)
        procs = start(hosts, tmp_path, "train", "--resume", "run", static=True)
        (code0, err0), (code1, err1) = finish(procs)
    assert code0 == 0 and code1 == 0, err0 + err1
    assert (run / "vectors.kv").exists() and not (run / "INCOMPLETE").exists()
    assert neighbour_rank(KeyedVectors.load(str(run / "vectors.kv"))) < THRESHOLD


def test_a_host_started_with_other_flags_or_corpus_is_refused_in_one_line(tmp_path):
    args = ["train", corpus(tmp_path), *RUN, "--out", "run"]
    other = ["train", "other.txt", *RUN, "--window", "8", "--out", "run"]
    with Hosts(["host0", "host1"]) as hosts:
        procs = start(hosts, tmp_path, *args, static=True, host1=other)
        (code0, err0), (code1, err1) = finish(procs, timeout=120)
    assert code0 != 0 and code1 != 0
    want = ("rank 1 (host1) was started with corpus other.txt (rank 0: lee.txt), --window 8 (rank 0: 5): start "
            "every machine with the same command")
    assert errors(err1) == [f"error: {want}"], err1
    assert errors(err0) == [f"error: rank 1 failed: {want}; nothing was kept"], err0
    assert not (tmp_path / "h0" / "run").exists()  # a run that never started leaves nothing


def test_three_hosts_on_a_bridge_train_one_model(tmp_path):
    with Hosts(["host0", "host1", "host2"]) as hosts:
        procs = start(hosts, tmp_path, "train", corpus(tmp_path), *RUN, "--sync-words", "5000", "--out", "run",
                      static=True)
        done = finish(procs)
    assert all(code == 0 for code, _ in done), "".join(err for _, err in done)
    run = tmp_path / "h0" / "run"
    assert "world_size = 3" in (run / "config.toml").read_text()
    assert neighbour_rank(KeyedVectors.load(str(run / "vectors.kv"))) < THRESHOLD
    assert not (tmp_path / "h1" / "run").exists() and not (tmp_path / "h2" / "run").exists()

