"""A new user's first ten minutes, again (issue 36): continued training that continues, an API as strict as the CLI
with gensim's names pointed to ours, Ctrl-C a KeyboardInterrupt, notebook cells that can run twice (overwrite),
directory inputs that say what they read, and the summary's small words right."""

import os
import signal

import numpy as np
import pytest
from gensim.test.utils import datapath
from typer.testing import CliRunner

import w2v_nce
from w2v_nce import lock
from w2v_nce.run import rundir
from w2v_nce.cli import app

from .test_lock import held_by_another

LEE = datapath("lee_background.cor")
QUICK = dict(epochs=1, threads=1, progress=False)
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """A cbow-nce run with settings other than the defaults, to continue."""
    out = tmp_path_factory.mktemp("init") / "first"
    return w2v_nce.train(LEE, out, model="cbow", loss="nce", min_count=2, dim=20, window=3, sample=1e-4,
                         lowercase=True, **QUICK)


def test_init_takes_its_runs_settings_unless_a_flag_sets_them(first, tmp_path):
    r = invoke("train", LEE, "--init", first.path, "--epochs", 1, "--threads", 1, "--out", tmp_path / "a",
               "--no-progress")
    assert r.exit_code == 0, r.output
    cfg, info = rundir.read_config(tmp_path / "a")
    assert (cfg.model, cfg.loss, cfg.dim, cfg.window, cfg.min_count, cfg.sample, cfg.lowercase, cfg.lr) == \
        ("cbow", "nce", 20, 3, 2, 1e-4, True, 0.05)
    assert "model" in info["init_settings"] and "epochs" not in info["init_settings"]
    assert f"--init {first.path}: its model cbow, loss nce" in r.output
    # a flag wins; another model takes its own default rate, not the run's
    sg = w2v_nce.train(LEE, tmp_path / "b", init=first, model="sg", **QUICK)
    assert (sg.config["model"], sg.config["loss"], sg.config["dim"], sg.config["lr"]) == ("sg", "nce", 20, 0.025)
    assert "model" not in rundir.read_config(sg.path)[1]["init_settings"]


def test_init_with_another_dim_is_one_line_naming_both(first, tmp_path):
    r = invoke("train", LEE, "--init", first.path, "--dim", 50, "--out", tmp_path / "c")
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        f"error: --init {first.path} has dim 20 and dim 50 was asked: a run's rows continue only at its dim; "
        f"leave --dim out (it is taken from {first.path})"]
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("options,says", [
    (dict(dim="50"), "bad value for 'dim' in the options of w2v_nce.train: expected int, got '50'"),
    (dict(lr="0.1"), "bad value for 'lr' in the options of w2v_nce.train: expected float, got '0.1'"),
    (dict(lowercase="no"), "bad value for 'lowercase' in the options of w2v_nce.train: expected bool, got 'no'"),
    (dict(epochs=2.5), "expected int, got 2.5"),
    (dict(vector_size=50), "'vector_size' is gensim's name, ours is dim"),
    (dict(sg=1), "ours is model='sg' (sg=1) or model='cbow' (sg=0)"),
    (dict(workers=4, alpha=0.1), "'alpha' is gensim's name, ours is lr; 'workers' is gensim's name, ours is threads"),
])
def test_the_api_checks_every_option_before_any_work(tmp_path, options, says):
    with pytest.raises(w2v_nce.UsageError) as e:
        w2v_nce.train(LEE, tmp_path / "r", **options)
    assert says in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "r").exists()


def test_numpy_numbers_are_numbers(tmp_path):
    run = w2v_nce.train(LEE, tmp_path / "r", dim=np.int64(12), lr=np.float32(0.05), lowercase=np.bool_(True), **QUICK)
    assert (run.config["dim"], run.config["lowercase"]) == (12, True)


def test_the_api_names_and_ctrl_c(tmp_path):
    assert {"train", "load", "Run", "Interrupted", "W2VError", "UsageError"} <= set(dir(w2v_nce))

    def press_ctrl_c(run, metrics):
        os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt) as e:
        w2v_nce.train(LEE, tmp_path / "r", epochs=3, threads=1, progress=False, on_progress=press_ctrl_c)
    assert isinstance(e.value, w2v_nce.Interrupted) and e.value.code == 130 and "checkpoint saved" in str(e.value)
    assert w2v_nce.train(out=tmp_path / "r", resume=True, progress=False).finished
    # SIGTERM is no KeyboardInterrupt: only Ctrl-C is
    assert not isinstance(w2v_nce.Interrupted("x", code=143), KeyboardInterrupt)


def test_a_notebook_cell_runs_twice_with_overwrite(tmp_path):
    out = tmp_path / "notebook"
    one = w2v_nce.train(LEE, out, **QUICK)
    with pytest.raises(w2v_nce.UsageError, match="already exists"):
        w2v_nce.train(LEE, out, **QUICK)
    said = []
    two = w2v_nce.train(LEE, out, overwrite=True, log=said.append, **{**QUICK, "epochs": 2})
    assert two.path == one.path and two.finished and f"overwriting {out}" in said
    assert [r["epoch"] for r in two.metrics if r["event"] == "epoch"] == [1, 2]  # the new run's alone
    # never what is not a run, never under another writer
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    r = invoke("train", LEE, "--out", tmp_path / "mine", "--overwrite")
    assert r.exit_code == 2 and "is not a run directory" in r.output
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"
    with held_by_another(out / lock.RUN_LOCK) as other:
        r = invoke("train", LEE, "--out", out, "--overwrite", "--epochs", 1)
        assert r.exit_code == 1 and f"in use by process {other.pid}" in r.output
    assert (out / rundir.VECTORS).exists()
    # a wrong corpus is said before anything is removed
    r = invoke("train", tmp_path / "no-such.txt", "--out", out, "--overwrite")
    assert r.exit_code == 1 and (out / rundir.VECTORS).exists()


def test_a_directory_corpus_says_what_it_read_and_skipped(tmp_path):
    d = tmp_path / "texts"
    (d / "drafts").mkdir(parents=True)
    (d / "a.txt").write_text(open(LEE, encoding="utf-8").read(), encoding="utf-8")
    (d / "b").write_text("one more line of text\n", encoding="utf-8")
    (d / "notes.pdf").write_bytes(b"%PDF")
    (d / ".hidden").write_text("x")
    said = []
    run = w2v_nce.train(d, tmp_path / "r", log=said.append, **QUICK)
    line = next(s for s in said if s.startswith("corpus:"))
    assert line.startswith("corpus: 2 files read in this order: a.txt, b; not read: .hidden (hidden), drafts (a "
                           "directory: name it to read it), notes.pdf (its suffix .pdf)")
    info = rundir.read_config(run.path)[1]
    assert info["skipped"] == [f"{d / '.hidden'}: hidden", f"{d / 'drafts'}: a directory: name it to read it",
                               f"{d / 'notes.pdf'}: its suffix .pdf"]
    assert [os.path.basename(p) for p in info["corpus"]] == ["a.txt", "b"]


def test_the_summary_words(first, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(open(LEE, "rb").read() + b"caf\xe9 au lait\n")
    r = invoke("train", bad, "--encoding-errors", "replace", "--epochs", 1, "--threads", 1, "--out", tmp_path / "r",
               "--no-progress")
    assert r.exit_code == 0 and "(1 invalid byte replaced by U+FFFD)" in r.output, r.output
    r = invoke("train", LEE, "--init", first.path, "--epochs", 0, "--out", tmp_path / "z", "--no-progress")
    assert r.exit_code == 0 and "trained nothing (--epochs 0)" in r.output and "final loss" not in r.output


HELP = [[], ["train"], ["phrases"], ["export"], ["similar"], ["analogy"], ["plot"], ["bench"], ["eval"],
        ["eval", "analogies"], ["eval", "similarity"], ["eval", "heldout"]]


@pytest.mark.parametrize("command", HELP, ids=lambda c: " ".join(c) or "w2v-nce")
def test_help_has_one_style(command):
    """Defaults as [default: X] (never 'Default: X.' in the text, never '(X)'), placeholders in one style (choices
    listed, else INTEGER, FLOAT, PATH, TEXT, SIZE, MIN-MAX), no name broken at a hyphen, every argument described, and the
    command list uncut."""
    import re
    out = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "100"}).output
    assert "Default:" not in out and "[default: (" not in out and "(default)" not in out, out
    assert not re.search(r"<(int|str|float|path)>", out), out
    assert not re.search(r"[a-z]-\n", out), out  # a line ending inside a hyphenated name
    placeholders = [p for p in re.findall(r"^  --[a-z-]+ ([^ \n]+)", out, re.MULTILINE) if p != "/"]  # --x / --no-x
    assert all(re.fullmatch(r"\[[a-z0-9|-]+(\|[A-Z]+)?\]|INTEGER|FLOAT|PATH|TEXT|SIZE|MIN-MAX|PRESET\|FILE", p)
               for p in placeholders), placeholders
    if "Arguments:" in out:
        arguments = out.split("Arguments:")[1].split("\n\n")[0].strip().splitlines()
        assert all(len(line.split(None, 1)) == 2 for line in arguments if not line.startswith("    ")), arguments
    assert "..." not in out.split("Commands:")[-1] if "Commands:" in out else True


def test_the_demo_runs_offline_as_written(tmp_path):
    """`make demo` (here 1 epoch) from another folder: the corpus that ships, the scores, the queries, the picture and
    where everything is; no network."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on this machine")
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([make, "-f", str(root / "Makefile"), "demo", f"PYTHON={sys.executable}", "EPOCHS=1"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    for said in ("vocabulary: 19,232 words from 1,690,865 tokens", "analogies (3cosadd", "spearman",
                 "nearest to 'king' (cosine):", "nearest to 'france' + 'germany' (cosine):",
                 "man is to king as woman is to:", "wrote runs/demo/training.png", "Everything is in runs/demo/"):
        assert said in out, said
    assert (tmp_path / "runs" / "demo" / "vectors.kv").exists() and (tmp_path / "runs" / "demo" / "training.png").exists()


def test_text8_without_a_network_is_one_line(tmp_path, capsys):
    """`make text8`'s download, from a host that cannot resolve (.invalid, RFC 2606): one line, no traceback."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("text8", Path(__file__).resolve().parents[1] / "benchmarks" / "text8.py")
    text8 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(text8)
    with pytest.raises(SystemExit) as e:
        text8.main(tmp_path / "text8", "http://w2v-nce-test.invalid/text8.zip")
    assert str(e.value).startswith("error: cannot download http://w2v-nce-test.invalid/text8.zip: ")
    assert "make demo" in str(e.value) and "\n" not in str(e.value) and not (tmp_path / "text8").exists()
