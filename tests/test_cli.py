"""The CLI through typer's CliRunner: exit codes, one-line messages, runs/latest as the default."""

import json
import os
from pathlib import Path

import pytest
from gensim.models import KeyedVectors
from typer.testing import CliRunner

from w2v_nce.cli import app
from w2v_nce.config import make_config, presets

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def words_corpus(path: Path, n=3000):
    # a tiny corpus with structure: two "topics" whose words co-occur
    import random
    rnd = random.Random(0)
    a, b = "cat dog pet fur paw".split(), "car bus road wheel drive".split()
    lines = [" ".join(rnd.choice(a if i % 2 else b) for _ in range(12)) for i in range(n // 12)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_train_export_eval_with_defaults(workdir):
    corpus = words_corpus(workdir / "toy.txt")
    r = invoke("train", corpus, "--epochs", 2, "--dim", 16, "--min-count", 1, "--no-progress")
    assert r.exit_code == 0, r.output
    run = workdir / "runs" / "toy-sg-neg"
    assert (workdir / "runs" / "latest").resolve() == run.resolve()
    for f in ("config.toml", "vocab.tsv", "checkpoint.pt", "vectors.kv"):
        assert (run / f).exists(), f
    assert not (run / "INCOMPLETE").exists()
    assert not (run / "corpus.ids").exists()  # a finished run needs it no more (--keep-corpus keeps it)
    assert 'model = "sg"' in (run / "config.toml").read_text()
    assert "words/s" in r.output
    # export defaults to runs/latest and the suffix picks the format
    r = invoke("export", "--out", "v.bin")
    assert r.exit_code == 0, r.output
    kv = KeyedVectors.load_word2vec_format(workdir / "v.bin", binary=True)
    assert kv.index_to_key == (run / "vocab.tsv").read_text().split()[::2]
    r = invoke("export")
    assert r.exit_code == 0 and (run / "vectors.txt").exists()
    r = invoke("eval", "similarity", "--json")
    assert r.exit_code == 0, r.output
    assert set(json.loads(r.stdout)) >= {"spearman", "pearson", "oov_ratio"}
    r = invoke("eval", "analogies", "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert set(got) >= {"accuracy", "correct", "total", "skipped"} and got["total"] == 0
    # a second run with the same name does not overwrite the first
    r = invoke("train", corpus, "--epochs", 1, "--dim", 8, "--min-count", 1, "--no-progress", "--model", "sg")
    assert r.exit_code == 0 and (workdir / "runs" / "toy-sg-neg-2").is_dir()
    assert (workdir / "runs" / "latest").resolve() == (workdir / "runs" / "toy-sg-neg-2").resolve()


def test_config_file_and_flag_override(workdir):
    corpus = words_corpus(workdir / "toy.txt")
    r = invoke("train", corpus, "--config", ROOT / "configs" / "cbow-nce.toml", "--dim", 12, "--epochs", 1,
               "--min-count", 1, "--no-progress", "--out", "r")
    assert r.exit_code == 0, r.output
    text = (workdir / "r" / "config.toml").read_text()
    assert 'model = "cbow"' in text and 'loss = "nce"' in text and "dim = 12" in text and "lr = 0.05" in text


@pytest.mark.parametrize("args,code,msg", [
    (["--dim", "0"], 2, "--dim must be > 0"),
    (["--window", "-1"], 2, "--window must be > 0"),
    (["--negatives", "0", "--loss", "nce"], 2, "--negatives must be > 0"),
    (["--lr", "0"], 2, "--lr must be > 0"),
    (["--sample", "-1"], 2, "--sample must be >= 0"),
    (["--epochs", "0"], 2, "--epochs 0 trains nothing"),
    (["--epochs", "-1"], 2, "--epochs must be >= 0"),
    (["--model", "glove"], 2, "unknown model 'glove'"),
    (["--loss", "glove"], 2, "unknown loss 'glove'"),
    (["--negatives", "0", "--loss", "infonce"], 2, "--negatives must be > 0"),
    (["--device", "tpu"], 2, "unknown device 'tpu'"),
    (["--kernel", "cuda"], 2, "unknown kernel 'cuda'"),
    (["--kernel", "fused", "--loss", "softmax"], 2, "--kernel fused needs"),
    (["--sync", "some"], 2, "unknown sync 'some': choose one of full, rows"),
    (["--sync-words", "0"], 2, "--sync-words must be > 0"),
    (["--sync-gain", "0.5"], 2, "--sync-gain must be auto, per-row or a number >= 1 (got 0.5)"),
    (["--sync-gain", "half"], 2, "--sync-gain must be auto, per-row or a number >= 1 (got 'half')"),
    (["--sync-timeout", "0"], 2, "--sync-timeout must be > 0 seconds"),
])
def test_bad_flags_are_usage_errors_before_any_work(workdir, args, code, msg):
    corpus = words_corpus(workdir / "toy.txt")
    r = invoke("train", corpus, *args)
    assert r.exit_code == code and msg in r.output
    assert "Traceback" not in r.output and not (workdir / "runs").exists()


def test_cuda_without_gpu(workdir):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = invoke("train", words_corpus(workdir / "toy.txt"), "--device", "cuda")
    assert r.exit_code == 2 and "no CUDA GPU" in r.output and not (workdir / "runs").exists()


def test_unknown_config_key(workdir):
    (workdir / "bad.toml").write_text("[train]\nmodel = 'sg'\nwindw = 5\n")
    r = invoke("train", words_corpus(workdir / "toy.txt"), "--config", "bad.toml")
    assert r.exit_code == 2 and "unknown key 'windw'" in r.output


@pytest.mark.parametrize("damage,msg", [
    (lambda d: None, "does not exist"),
    (lambda d: (d / "missing").mkdir(), "has no files to read"),  # an empty directory
    (lambda d: (d / "missing").write_bytes(b""), "no tokens"),
])
def test_bad_corpus(workdir, damage, msg):
    damage(workdir)
    r = invoke("train", workdir / "missing", "--no-progress")
    assert r.exit_code == 1 and msg in r.output and len(r.output.strip().splitlines()) == 1
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir())


def test_eval_and_export_without_runs(workdir):
    for args in (["export"], ["eval", "analogies"], ["eval", "similarity"]):
        r = invoke(*args)
        assert r.exit_code == 1 and "runs/latest" in r.output


def test_help_for_every_command():
    for args in (["--help"], ["train", "--help"], ["export", "--help"], ["eval", "--help"],
                 ["eval", "analogies", "--help"], ["eval", "similarity", "--help"]):
        r = invoke(*args)
        assert r.exit_code == 0 and "Usage" in r.output


def test_console_script_exit_code(workdir):
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "w2v_nce.cli", "train", "nope.txt"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 1 and p.stderr.strip() == "error: corpus nope.txt does not exist; check the path"


@pytest.mark.parametrize("line,msg", [("dim = true", "expected int, got True"), ("dim = 1.5", "expected int"),
                                      ("model = 3", "expected str"), ("lowercase = 1", "expected bool"),
                                      ("sync_gain = true", "expected float or str"),
                                      ('sync_gain = "half"', "--sync-gain must be auto, per-row or a number >= 1")])
def test_wrongly_typed_config_value(workdir, line, msg):
    (workdir / "bad.toml").write_text(f"[train]\n{line}\n")
    r = invoke("train", words_corpus(workdir / "toy.txt"), "--config", "bad.toml")
    assert r.exit_code == 2 and msg in r.output and not (workdir / "runs").exists()


@pytest.mark.parametrize("value,parsed", [('"auto"', "auto"), ('"per-row"', "per-row"), ("2", 2.0), ("1.5", 1.5)])
def test_sync_gain_reads_back_from_toml_as_a_rule_or_a_number(tmp_path, value, parsed):
    from w2v_nce.config import make_config, to_toml
    (tmp_path / "c.toml").write_text(f"[train]\nsync_gain = {value}\n")
    cfg = make_config(tmp_path / "c.toml")
    assert cfg.sync_gain == parsed
    (tmp_path / "again.toml").write_text(to_toml(cfg))  # a run's config.toml, as --resume reads it
    assert make_config(tmp_path / "again.toml").sync_gain == parsed


def test_bench_rows_name_their_device_and_count_examples(workdir):
    from gensim.test.utils import datapath
    r = invoke("bench", datapath("lee_background.cor"), "--model", "sg", "--loss", "neg", "--epochs", 1,
               "--device", "cpu", "--dim", 16, "--json")  # below update.FIXED_FROM: the kernels other tests compile
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout.strip().splitlines()[-1])
    assert [(x["tool"].split()[0], x["device"]) for x in rows] == [("w2v-nce", "cpu"), ("gensim", "cpu")]
    ours = rows[0]
    # sg examples are (centre, context) pairs: about 2 * E[window] = 6 for each word kept by sub-sampling
    assert 1.0 < ours["examples_per_s"] / ours["train_words_per_s"] < 6.0
    assert ours["gpu_peak_mib"] is None


def test_bench_repeats_merge_rounds_into_one_row_per_model(workdir):
    from gensim.test.utils import datapath
    r = invoke("bench", datapath("lee_background.cor"), "--model", "cbow", "--loss", "neg", "--loss", "nce",
               "--epochs", 1, "--dim", 16, "--ours-only", "--repeats", 2, "--out", workdir / "report.md")
    assert r.exit_code == 0, r.output
    report = (workdir / "report.md").read_text()
    assert "Rounds: 2" in report and "nce / neg train words/s: cbow on cpu" in report
    assert report.count("| w2v-nce | cpu | cbow |") == 2
    r = invoke("bench", datapath("lee_background.cor"), "--repeats", 0)
    assert r.exit_code == 2 and "repeats > 0" in r.output


def test_bench_on_cuda_without_a_gpu_is_a_one_line_usage_error(workdir, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    corpus = words_corpus(workdir / "toy.txt")
    r = invoke("bench", corpus, "--device", "cuda", "--ours-only")
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "no CUDA GPU" in r.output, r.output
    assert not any(workdir.iterdir()) or [p.name for p in workdir.iterdir()] == ["toy.txt"]


@pytest.mark.parametrize("name", presets())
def test_every_preset_is_valid_and_named_after_its_model_and_head(name):
    cfg = make_config(name)
    assert f"{cfg.model}-{cfg.loss}" == name
    assert make_config(name, negatives=3).negatives == 3  # a flag overrides the preset
