import json
import math

import numpy as np
import pytest
import torch
from gensim.test.utils import datapath
from typer.testing import CliRunner

from w2v_nce.tools import heldout
from w2v_nce.cli import app
from w2v_nce.config import make_config
from w2v_nce.model.heads import HSHead, OutputHead
from w2v_nce.run.train import train


def head_of(out, bias):
    head = OutputHead(*out.shape)
    head.weight.data, head.bias.data = out, bias
    return head


def test_log_z_stats_by_brute_force():
    g = torch.Generator().manual_seed(0)
    inp, out, bias = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g), torch.randn(6, generator=g)
    inputs, targets = torch.tensor([0, 1, 2, 5]), torch.tensor([3, 3, 0, 1])
    st = heldout.log_z_stats(inp, head_of(out, bias), "sg", inputs, targets, batch=3)
    lz = [math.log(sum(math.exp(float(inp[i] @ out[w] + bias[w])) for w in range(6))) for i in inputs.tolist()]
    nll = [z - float(inp[i] @ out[t] + bias[t]) for z, i, t in zip(lz, inputs.tolist(), targets.tolist())]
    assert st["mean_log_z"] == pytest.approx(np.mean(lz), rel=1e-5)
    assert st["std_log_z"] == pytest.approx(np.std(lz, ddof=1), rel=1e-4)
    assert st["nll"] == pytest.approx(np.mean(nll), rel=1e-5)
    assert st["perplexity"] == pytest.approx(math.exp(np.mean(nll)), rel=1e-5)
    # CBOW: the hidden vector is the masked mean of the context inputs
    ctx, mask = torch.tensor([[0, 1], [2, 0]]), torch.tensor([[True, True], [True, False]])
    st = heldout.log_z_stats(inp, head_of(out, bias), "cbow", ctx, torch.tensor([4, 5]), mask)
    h = torch.stack([(inp[0] + inp[1]) / 2, inp[2]])
    want = torch.logsumexp(h @ out.T + bias, 1).mean().item()
    assert st["mean_log_z"] == pytest.approx(want, rel=1e-5)


def test_hs_is_scored_exactly_along_its_paths():
    counts = np.array([5, 3, 2, 1])
    head = HSHead(counts, 3)
    g = torch.Generator().manual_seed(0)
    head.weight.data, head.bias.data = torch.randn(3, 3, generator=g), torch.randn(3, generator=g)
    inp = torch.randn(4, 3, generator=g)
    inputs, targets = torch.tensor([0, 1, 2, 3]), torch.tensor([3, 2, 1, 0])
    st = heldout.log_z_stats(inp, head, "sg", inputs, targets)
    assert abs(st["mean_log_z"]) < 1e-6 and st["std_log_z"] < 1e-6  # normalised by construction
    nll = [float(head.loss(inp[i:i + 1], targets[i:i + 1], head.candidates(targets[i:i + 1]))) for i in range(4)]
    assert st["nll"] == pytest.approx(np.mean(nll), rel=1e-5)  # -log p(target) along its path


def test_examples_use_the_full_window_without_sampling():
    ids = np.array([0, 1, 2, -1, 3, 4])
    inputs, targets, mask = heldout.examples(ids, "sg", 2, 1000)
    assert sorted(zip(inputs.tolist(), targets.tolist())) == sorted(
        [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (3, 4), (4, 3)])
    inputs, targets, mask = heldout.examples(ids, "sg", 2, 3)
    assert len(targets) == 3


@pytest.fixture(scope="module")
def lee_runs(tmp_path_factory):
    lee = datapath("lee_background.cor")
    text = open(lee, encoding="utf-8").read().splitlines()
    d = tmp_path_factory.mktemp("held")
    (d / "train.txt").write_text("\n".join(text[:270]) + "\n", encoding="utf-8")
    (d / "held.txt").write_text("\n".join(text[270:]) + "\n", encoding="utf-8")
    runs = {}
    for loss in ("neg", "nce"):
        cfg = make_config(model="cbow", loss=loss, epochs=10, min_count=3, lowercase=True, seed=1)
        train(cfg, d / "train.txt", d / loss, progress=False, log=lambda *_: None)
        runs[loss] = d / loss
    return runs, d / "held.txt"


def test_nce_is_self_normalised_and_neg_is_not(lee_runs):
    runs, held = lee_runs
    nce = heldout.evaluate_run(runs["nce"], held, max_contexts=3000)
    neg = heldout.evaluate_run(runs["neg"], held, max_contexts=3000)
    # calibrated on this split (cbow, 10 epochs): NCE's mean log Z is near 0, NEG's is far from it
    assert abs(nce["mean_log_z"]) < 0.5, nce
    assert abs(neg["mean_log_z"]) > 1.0, neg
    # and exp(s) used as p(w|c) without normalising is almost as good as normalising, under NCE
    assert abs(nce["unnormalized_nll"] - nce["nll"]) < 0.5
    assert "unnormalized_nll" not in neg


def test_heldout_cli_json(lee_runs):
    runs, held = lee_runs
    r = CliRunner().invoke(app, ["eval", "heldout", str(runs["nce"]), "--corpus", str(held), "--max-contexts", "500",
                                 "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert set(got) >= {"mean_log_z", "std_log_z", "nll", "perplexity", "contexts"} and got["contexts"] == 500


@pytest.mark.parametrize("mean, std, key", [
    (0.0, 0.0, "normalised"), (2e-7, 5e-8, "normalised"),  # hs: 0 to rounding
    (-0.10, 0.19, "self-normalised"), (-0.27, 0.43, "self-normalised"), (0.5, 0.5, "self-normalised"),  # nce, ssm
    (7.25, 0.21, "not-normalised"), (-0.7, 0.1, "not-normalised"),  # neg; a model whose exp(s) is too small
    (0.1, 0.8, "not-normalised"), (1.9, 3.2, "not-normalised"),  # a mean near 0 does not hide a wide spread
])
def test_verdict_thresholds(mean, std, key):
    got, line = heldout.verdict(mean, std)
    assert got == key and "\n" not in line
    assert line.startswith(key.replace("not-", "not ") + f" (mean log Z(c) {mean:+.3f}, std {std:.3f}): exp(score) is ")


def test_verdict_says_how_far_off_and_what_to_use():
    _, line = heldout.verdict(7.9, 0.2)
    assert "too large by a factor of about e^7.9 (2,697x) on average" in line and "use the normalised NLL" in line
    assert "context to another" not in line
    _, line = heldout.verdict(-0.1, 1.5)
    assert "off by a factor of e^1.5 more or less from one context to another" in line and "on average" not in line


def test_heldout_cli_ends_with_the_verdict(lee_runs):
    runs, held = lee_runs
    for loss, key, says in (("nce", "self-normalised", "is a probability without computing Z"),
                            ("neg", "not-normalised", "too large by a factor of about e^")):
        args = ["eval", "heldout", str(runs[loss]), "--corpus", str(held), "--max-contexts", "500"]
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, r.output
        last = r.output.strip().splitlines()[-1]
        assert last.startswith(f"verdict: {key.replace('not-', 'not ')} (mean log Z(c) ") and says in last, r.output
        r = CliRunner().invoke(app, args + ["--json"])
        got = json.loads(r.output)
        assert got["verdict"] == key and got["normalised"] is (key != "not-normalised")
        assert got["verdict"] == heldout.verdict(got["mean_log_z"], got["std_log_z"])[0]  # the numbers it prints
