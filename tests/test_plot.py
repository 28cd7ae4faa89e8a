import json
import os
import struct
import sys

import numpy as np
import pytest
from gensim.test.utils import datapath

from w2v_nce.tools import heldout, plot
from w2v_nce.config import make_config
from w2v_nce.errors import W2VError
from w2v_nce.run.train import train

LEE = datapath("lee_background.cor")
HELD = datapath("lee.cor")


def assert_png(path):
    """A real PNG: the signature, a non-empty IHDR, and an image matplotlib reads back that is not blank."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 0 and height > 0
    from matplotlib.image import imread
    img = imread(path)
    assert img.shape[:2] == (height, width)
    assert img[..., :3].std() > 0.01  # something was drawn on the white background


def write_metrics(run, lines, tail=""):
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + tail, encoding="utf-8")


def history(epochs, scores):
    """A plausible metrics.jsonl: a start line, progress lines, and an epoch line (with scores or not) per epoch."""
    out, words = [{"event": "start", "words": 0.0, "elapsed_s": 0.0, "time": "2026-01-01T00:00:00"}], 0.0
    for e in range(1, epochs + 1):
        for step in range(1, 6):
            words += 2e5
            out.append({"event": "progress", "words": words, "epoch": e, "step": step, "loss": 3.0 / (e + step / 5),
                        "lr": 0.025 * (1 - words / (epochs * 1e6)), "words_per_s": 1e6, "elapsed_s": words / 1e6})
        end = {"event": "epoch", "words": words, "epoch": e, "step": 5 * e, "loss": None, "lr": 0.01,
               "words_per_s": 1e6, "elapsed_s": words / 1e6, "unknown": "ignored"}
        if scores:
            end.update(analogy=0.1 * e, ws353=0.3 + 0.05 * e, simlex=None)
        out.append(end)
    return out


def test_training_draws_several_runs(tmp_path):
    write_metrics(tmp_path / "scored", history(3, scores=True))
    write_metrics(tmp_path / "plain", history(2, scores=False), tail='{"event": "progress", "wo')  # killed mid-write
    out = plot.training([tmp_path / "scored", tmp_path / "plain"], tmp_path / "train.png")
    assert out == tmp_path / "train.png"
    assert_png(out)
    assert sorted(os.listdir(tmp_path)) == ["plain", "scored", "train.png"]  # no temporary file left


def test_read_metrics_ignores_a_truncated_last_line(tmp_path):
    write_metrics(tmp_path / "run", history(1, scores=False), tail='{"event": "progress", "words": 1.5e6, "lo')
    recs = plot.read_metrics(tmp_path / "run")
    assert len(recs) == 7 and recs[-1]["event"] == "epoch"
    # a partial UTF-8 character at the end is a truncated line too
    write_metrics(tmp_path / "utf", history(1, scores=False))
    with open(tmp_path / "utf" / "metrics.jsonl", "ab") as f:
        f.write('{"event": "start", "time": "é'.encode()[:-1])
    assert len(plot.read_metrics(tmp_path / "utf")) == 7


def test_read_metrics_errors(tmp_path):
    lines = history(1, scores=False)
    write_metrics(tmp_path / "bad", lines[:2], tail="{not json\n" + json.dumps(lines[2]) + "\n")
    with pytest.raises(W2VError, match=r"metrics\.jsonl:3: "):
        plot.read_metrics(tmp_path / "bad")
    write_metrics(tmp_path / "list", lines[:1], tail="[1, 2]\n" + json.dumps(lines[1]) + "\n")
    with pytest.raises(W2VError, match=r"metrics\.jsonl:2: "):
        plot.read_metrics(tmp_path / "list")
    (tmp_path / "old").mkdir()
    with pytest.raises(W2VError, match="has no metrics.jsonl") as e:
        plot.read_metrics(tmp_path / "old")
    assert "\n" not in str(e.value)
    with pytest.raises(W2VError, match="does not exist"):
        plot.read_metrics(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(W2VError, match="not a directory"):
        plot.read_metrics(tmp_path / "file")
    (tmp_path / "dir" / "metrics.jsonl").mkdir(parents=True)  # read_bytes raises IsADirectoryError
    with pytest.raises(W2VError, match="cannot read .*: Is a directory"):
        plot.read_metrics(tmp_path / "dir")
    write_metrics(tmp_path / "empty", [history(1, scores=False)[0]])
    with pytest.raises(W2VError, match="nothing to plot"):
        plot.training([tmp_path / "empty"], tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


@pytest.fixture(scope="module")
def lee_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("plot")
    for loss in ("nce", "neg"):
        train(make_config(epochs=1, min_count=3, dim=16, loss=loss), LEE, d / loss, progress=False, log=lambda *_: None)
    return d / "nce", d / "neg"


def test_log_z_plot_and_values(lee_runs, tmp_path):
    out = plot.log_z(list(lee_runs), HELD, tmp_path / "logz.png", max_contexts=2000)
    assert_png(out)
    assert os.listdir(tmp_path) == ["logz.png"]
    for run in lee_runs:
        cfg, lz = heldout.log_z_of_run(run, HELD, max_contexts=2000, seed=3)
        assert cfg.loss == run.name and lz.shape == (2000,) and np.isfinite(lz).all()
        st = heldout.evaluate_run(run, HELD, max_contexts=2000, seed=3)
        assert lz.mean() == pytest.approx(st["mean_log_z"], rel=1e-12)
        assert lz.std(ddof=1) == pytest.approx(st["std_log_z"], rel=1e-12)


def test_missing_matplotlib(tmp_path, monkeypatch):
    for m in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, m, None)
    write_metrics(tmp_path / "run", history(1, scores=False))
    with pytest.raises(W2VError, match=r"needs matplotlib; install it with: pip install 'w2v-nce\[plot\]'"):
        plot.training([tmp_path / "run"], tmp_path / "out.png")
    with pytest.raises(W2VError, match="needs matplotlib"):
        plot.log_z([tmp_path / "run"], HELD, tmp_path / "out.png")
    assert os.listdir(tmp_path) == ["run"]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    write_metrics(tmp_path / "run", history(1, scores=False))
    (tmp_path / "file").write_text("x")
    with pytest.raises(W2VError, match="cannot write .*is not a directory"):
        plot.training([tmp_path / "run"], tmp_path / "file" / "out.png")
    (tmp_path / "out.png").mkdir()  # the rename over a directory fails
    with pytest.raises(W2VError, match="cannot write .*out.png: Is a directory"):
        plot.training([tmp_path / "run"], tmp_path / "out.png")
    assert sorted(os.listdir(tmp_path)) == ["file", "out.png", "run"] and not os.listdir(tmp_path / "out.png")
    if os.path.exists("/dev/full"):  # a full disk while savefig writes: its OSError becomes the one-line error
        from matplotlib.figure import Figure
        savefig = Figure.savefig
        monkeypatch.setattr(Figure, "savefig", lambda self, fname, **kw: savefig(self, "/dev/full", **kw))
        with pytest.raises(W2VError, match="cannot write .*full.png: No space left on device"):
            plot.training([tmp_path / "run"], tmp_path / "full.png")
        assert sorted(os.listdir(tmp_path)) == ["file", "out.png", "run"]


def test_each_family_of_heads_gets_its_own_loss_panel(tmp_path, monkeypatch):
    """An hs run's loss (about 7.5) beside neg and nce (about 2.5) flattened them on one axis: a panel per family,
    with each epoch's mean marked."""
    for name, loss in (("a", "neg"), ("b", "nce"), ("c", "hs")):
        write_metrics(tmp_path / name, history(2, scores=False))
        (tmp_path / name / "config.toml").write_text(f'[train]\nloss = "{loss}"\n')
    monkeypatch.setattr(plot, "_facts", lambda run: (plot.FAMILIES[
        (run / "config.toml").read_text().split('"')[1]], None))
    drawn = {}
    save = plot._save
    monkeypatch.setattr(plot, "_save", lambda fig, out: (drawn.setdefault("fig", fig), save(fig, out))[1])
    plot.training([tmp_path / n for n in "abc"], tmp_path / "t.png")
    labels = [ax.get_ylabel() for ax in drawn["fig"].axes]
    assert labels == ["loss per example (neg, nce)", "loss per example (hs)", "learning\nrate"]
    assert_png(tmp_path / "t.png")


def test_projector_export_names_both_files(tmp_path):
    """Here with the pictures (tests/test_newcomer.py checks the files themselves): the projector is a picture too,
    and its message must name both files it wrote and where they go."""
    from typer.testing import CliRunner

    from w2v_nce.cli import app
    (tmp_path / "v.txt").write_text("2 3\nking 0.1 0.2 0.3\nqueen 0.3 0.2 0.1\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["export", str(tmp_path / "v.txt"), "--format", "projector", "--out",
                                 str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    tensor, meta = tmp_path / "p_tensor.tsv", tmp_path / "p_metadata.tsv"
    assert meta.read_text(encoding="utf-8") == "king\nqueen\n" and len(tensor.read_text().splitlines()) == 2
    assert r.output.strip() == f"wrote {tensor} and {meta} (projector): load them at projector.tensorflow.org"


def drawn_figure(monkeypatch):
    """Keeps the figure plot.training saves, for its axes."""
    drawn = {}
    save = plot._save
    monkeypatch.setattr(plot, "_save", lambda fig, out: (drawn.__setitem__("fig", fig), save(fig, out))[1])
    return drawn


def scaled(records, factor):
    return [{**r, "words": r["words"] * factor} for r in records]


def test_the_learning_rate_is_a_thin_strip_under_the_loss_and_scores(tmp_path, monkeypatch):
    """A straight line took half the figure: it is a strip at the bottom, a third of a loss panel's height or less."""
    write_metrics(tmp_path / "run", history(2, scores=True))
    drawn = drawn_figure(monkeypatch)
    plot.training([tmp_path / "run"], tmp_path / "t.png")
    loss_ax, score_ax, lr_ax = drawn["fig"].axes
    labels = [a.get_ylabel() for a in drawn["fig"].axes]
    assert labels == ["loss per example", "score after each epoch", "learning\nrate"]
    assert lr_ax.get_subplotspec().get_gridspec().get_height_ratios() == [1, 1, plot.LR_HEIGHT]
    # as drawn, after the layout: the strip is much lower than the panels above it
    heights = [a.get_position().height for a in (loss_ax, score_ax, lr_ax)]
    assert heights[2] < 0.4 * heights[0] and heights[0] == pytest.approx(heights[1], rel=0.05)
    assert lr_ax.get_xlabel() == "words trained (millions)"
    assert lr_ax.get_lines()[0].get_ydata()[0] == pytest.approx(0.025 * (1 - 0.2 / 2))  # the lr itself, unscaled
    assert_png(tmp_path / "t.png")


def test_x_axis_is_words_unless_the_runs_sizes_differ_more_than_tenfold():
    assert plot.x_axis([5e6, 1e6], [5e6, 1e6]) == (None, "words trained (millions)")
    assert plot.x_axis([3e6], [None])[0] is None
    assert plot.x_axis([1e6, 0.0], [None, None])[0] is None  # a run with no progress yet draws nothing
    totals, label = plot.x_axis([1e8, 1e6, 2e5], [1e8, 1e6, 1e6])
    assert totals == [1e8, 1e6, 1e6]  # each run's planned words: an unfinished run stops short of 1
    assert label.startswith("fraction of each run's training") and "10x" in label
    assert plot.x_axis([1e8, 1e6], [None, None])[0] == [1e8, 1e6]  # no config: the words trained so far


def test_runs_of_very_different_sizes_each_span_the_axis(tmp_path, monkeypatch):
    """A run of 100x the words of another squashed it at x = 0: both are drawn against their fraction of training,
    their sizes in the legend; the small one's scores too."""
    write_metrics(tmp_path / "big", scaled(history(2, scores=False), 100))
    write_metrics(tmp_path / "small", history(2, scores=True))
    drawn = drawn_figure(monkeypatch)
    plot.training([tmp_path / "big", tmp_path / "small"], tmp_path / "t.png")
    loss_ax, score_ax, lr_ax = drawn["fig"].axes
    assert lr_ax.get_xlabel().startswith("fraction of each run's training")
    for ax in (loss_ax, lr_ax):
        big, small = (ax.get_lines()[i].get_xdata() for i in ((0, 2) if ax is loss_ax else (0, 1)))
        assert max(big) == pytest.approx(1.0) and max(small) == pytest.approx(1.0)
        assert min(small) == pytest.approx(0.1)  # the first record of 10 per run
    assert max(score_ax.get_lines()[0].get_xdata()) == pytest.approx(1.0)
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()][:2] == ["big (200.0M words)", "small (2.0M words)"]
    assert_png(tmp_path / "t.png")
    # 10x is still one words axis, with the runs' names alone
    write_metrics(tmp_path / "tenfold", scaled(history(2, scores=False), 10))
    plot.training([tmp_path / "tenfold", tmp_path / "small"], tmp_path / "u.png")
    loss_ax, lr_ax = drawn["fig"].axes[0], drawn["fig"].axes[-1]
    assert lr_ax.get_xlabel() == "words trained (millions)"
    assert max(loss_ax.get_lines()[0].get_xdata()) == pytest.approx(20.0)
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()][:2] == ["tenfold", "small"]


def test_an_unfinished_run_stops_short_of_the_end(tmp_path, monkeypatch):
    """The fraction is of the words the run was set to train (corpus tokens x epochs, from config.toml)."""
    write_metrics(tmp_path / "big", scaled(history(2, scores=False), 100))
    write_metrics(tmp_path / "half", history(1, scores=False))  # 1 of its 2 epochs
    monkeypatch.setattr(plot, "_facts", lambda run: ("", 2e6 if run.name == "half" else None))
    drawn = drawn_figure(monkeypatch)
    plot.training([tmp_path / "big", tmp_path / "half"], tmp_path / "t.png")
    assert max(drawn["fig"].axes[-1].get_lines()[1].get_xdata()) == pytest.approx(0.5)


def test_planned_words_come_from_the_runs_config(tmp_path):
    run = tmp_path / "run"
    train(make_config(epochs=2, min_count=3, dim=8), LEE, run, progress=False, log=lambda *_: None)
    family, planned = plot._facts(run)
    assert family == "neg, nce" and planned == 2 * 59890  # lee_background.cor's tokens, twice
    assert planned == plot.read_metrics(run)[-1]["words"]  # as metrics.jsonl counts them
    assert plot._facts(tmp_path) == ("", None)  # no config.toml
