"""Many inputs as one corpus (issue 23): files, a directory, a glob and standard input (plain or compressed) train
the same run as the concatenated file; a finished run drops corpus.ids unless --keep-corpus."""

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gensim.test.utils import datapath

import w2v_nce
from w2v_nce.run import rundir

LEE = datapath("lee_background.cor")
ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--epochs", "1", "--dim", "8", "--min-count", "3", "--threads", "1", "--no-progress"]
SMALL = dict(epochs=1, dim=8, min_count=3, threads=1, progress=False)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    d = tmp_path_factory.mktemp("parts")
    lines = open(LEE, encoding="utf-8").read().splitlines(keepends=True)
    third = len(lines) // 3
    for i, name in enumerate(("a.txt", "b.txt.gz", "c")):
        text = "".join(lines[i * third:(i + 1) * third if i < 2 else None]).encode()
        (d / name).write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    (d / ".hidden.txt").write_text("ignored ignored ignored\n")
    (d / "notes.md").write_text("ignored ignored ignored\n")
    return d


def cli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "w2v_nce.cli", *map(str, args)], input=stdin, capture_output=True,
                          cwd=ROOT)


def test_files_a_directory_a_glob_and_stdin_are_one_corpus(parts, tmp_path):
    ref = w2v_nce.train(LEE, tmp_path / "ref", **SMALL)
    runs = {"files": [parts / "a.txt", parts / "b.txt.gz", parts / "c"], "directory": [parts],
            "glob": [str(parts / "[abc]*")]}
    for name, corpus in runs.items():
        p = cli("train", *corpus, *FLAGS, "--out", tmp_path / name)
        assert p.returncode == 0, p.stderr
        np.testing.assert_array_equal(w2v_nce.load(tmp_path / name).vectors.vectors, ref.vectors.vectors)
    text = Path(LEE).read_bytes()
    for name, data in (("stdin", text), ("stdin-gz", gzip.compress(text))):
        p = cli("train", "-", *FLAGS, "--out", tmp_path / name, stdin=data)
        assert p.returncode == 0, p.stderr
        np.testing.assert_array_equal(w2v_nce.load(tmp_path / name).vectors.vectors, ref.vectors.vectors)
        assert not (tmp_path / name / rundir.SENTENCES).exists()
        assert rundir.read_config(tmp_path / name)[1]["corpus"] == "(sentences)"


def test_bad_inputs_are_one_line_errors_and_leave_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    for args, msg in ((["nothing*.txt"], "matches no file"), ([tmp_path / "empty"], "has no files to read"),
                      (["-", "-"], "standard input (-) can be read once")):
        p = cli("train", *args, *FLAGS, "--out", tmp_path / "r")
        assert p.returncode in (1, 2) and msg in p.stderr.decode() and len(p.stderr.splitlines()) == 1, p.stderr
        assert not (tmp_path / "r").exists()
    p = cli("train", "-", *FLAGS, "--out", tmp_path / "r", stdin=gzip.compress(b"a b c " * 1000)[:40])
    assert p.returncode == 1 and "truncated" in p.stderr.decode() and not (tmp_path / "r").exists(), p.stderr


def test_a_finished_run_drops_corpus_ids_unless_kept(tmp_path):
    run = w2v_nce.train(LEE, tmp_path / "r", **SMALL)
    assert run.finished and not (run.path / rundir.IDS).exists()
    kept = w2v_nce.train(LEE, tmp_path / "k", keep_corpus=True, **SMALL)
    assert (kept.path / rundir.IDS).stat().st_size == 4 * rundir.read_config(kept.path)[1]["ids"]
