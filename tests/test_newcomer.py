"""A new user's first hour (issue 22): help without artifacts and in groups, presets for every head with a
suggestion for a misspelled one, the summary's pointers, the note on a small corpus, INCOMPLETE's real command,
the projector's files as gensim writes them, and plot's defaults."""

import subprocess
import sys

import numpy as np
import pytest
from gensim.test.utils import datapath
from typer.testing import CliRunner

from w2v_nce.run import rundir
from w2v_nce.cli import app

LEE = datapath("lee_background.cor")
runner = CliRunner()
COMMANDS = [["train"], ["export"], ["similar"], ["analogy"], ["plot"], ["bench"], ["eval", "analogies"],
            ["eval", "similarity"], ["eval", "heldout"]]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_no_artifacts(command):
    r = runner.invoke(app, [*command, "--help"])
    assert r.exit_code == 0 and "Usage" in r.output
    assert "{" not in r.output and "<list" not in r.output and "default: progress" not in r.output, r.output


def test_train_help_groups_its_flags():
    out = runner.invoke(app, ["train", "--help"]).output
    heads = [line for line in out.splitlines() if line and not line.startswith(" ") and line.endswith(":")]
    assert heads == ["Arguments:", "Model:", "Head:", "Data:", "Run:", "Torchrun (several processes):", "Options:"]
    torchrun = out.split("Torchrun (several processes):")[1]
    assert "--sync-words" in torchrun and "--sync-words" not in out.split("Torchrun")[0]


def test_a_misspelled_preset_gets_a_suggestion(tmp_path):
    r = runner.invoke(app, ["train", LEE, "--config", "sg-ng", "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "did you mean sg-neg" in r.output and not (tmp_path / "r").exists()
    from w2v_nce.config import make_config
    for name in ("sg-hs", "cbow-hs", "sg-sampled-softmax", "cbow-sampled-softmax"):
        cfg = make_config(name)
        assert f"{cfg.model}-{cfg.loss}" == name


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained by the CLI in a fresh working directory, and what it printed."""
    cwd = tmp_path_factory.mktemp("newcomer")
    code = ("import sys; from w2v_nce.cli import app; "
            "sys.exit(app(['train', sys.argv[1], '--epochs', '1', '--dim', '8', '--min-count', '3', '--threads', '1',"
            " '--no-progress'], standalone_mode=False))")
    p = subprocess.run([sys.executable, "-c", code, LEE], cwd=cwd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return cwd, p.stderr


def test_the_summary_says_where_the_vectors_are_and_a_small_corpus_is_named(trained):
    cwd, err = trained
    run = "runs/lee_background-sg-neg"
    assert f"vectors: {run}/{rundir.VECTORS} (runs/latest points at {run})" in err
    assert "note: 59,890 words is little text for word vectors" in err and "36%" in err


def test_incomplete_names_the_real_resume_command(tmp_path):
    from w2v_nce.run.opening import make_run_dir
    from w2v_nce.config import make_config
    make_run_dir(make_config(dim=8, min_count=3), LEE, tmp_path / "r")
    assert f"w2v-nce train --resume {tmp_path / 'r'}" in (tmp_path / "r" / rundir.INCOMPLETE).read_text()


def test_projector_files_are_gensims_word2vec2tensor(trained, tmp_path):
    cwd, _ = trained
    run = cwd / "runs" / "latest"
    assert runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "v.bin")]).exit_code == 0
    r = runner.invoke(app, ["export", str(run), "--format", "projector", "--out", str(tmp_path / "ours")])
    assert r.exit_code == 0, r.output
    from gensim.scripts.word2vec2tensor import word2vec2tensor
    word2vec2tensor(str(tmp_path / "v.bin"), str(tmp_path / "theirs"), binary=True)
    for part in ("tensor", "metadata"):
        ours, theirs = (tmp_path / f"{p}_{part}.tsv" for p in ("ours", "theirs"))
        assert ours.read_bytes() == theirs.read_bytes(), part
    rows = np.loadtxt(tmp_path / "ours_tensor.tsv", delimiter="\t")
    assert rows.shape[1] == 8 and rows.shape[0] == len((tmp_path / "ours_metadata.tsv").read_text().splitlines())


def test_plot_defaults_to_the_latest_run(trained, monkeypatch):
    pytest.importorskip("matplotlib")
    cwd, _ = trained
    monkeypatch.chdir(cwd)
    r = runner.invoke(app, ["plot"])
    assert r.exit_code == 0, r.output
    assert (cwd / "runs" / "latest" / "training.png").stat().st_size > 1000


def test_the_readme_is_short_and_its_links_and_docs_pages_resolve():
    import re
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert readme.count("\n") < 200
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name}: {target}"
