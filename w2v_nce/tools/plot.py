"""Pictures of runs: how training went, and whether a model is self-normalised.

`training` draws loss (and the per-epoch scores, when any run recorded them) over a thin strip of the learning rate
from each run's metrics.jsonl, several runs on one figure so they can be compared: against words trained, or against
each run's fraction of its training when their sizes differ too much to share a words axis.
`log_z` draws the distribution of the exact held-out log Z(c) of several runs on shared axes: an nce
model's sits at 0, a neg model's far from it.

matplotlib is an optional dependency (the `plot` extra), imported only here and only when a figure is
drawn. Figures are built with matplotlib.figure.Figure and the Agg canvas directly, not pyplot: no global
backend or figure registry, so nothing needs a display and each figure is freed with its last reference.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import heldout
from ..errors import W2VError, storage_error
from ..files import atomic_path
from ..run.rundir import METRICS, read_config
SCORES = ("analogy", "ws353", "simlex")
RECORD_KEYS = ("words", "epoch", "step", "loss", "lr", "elapsed_s", "words_per_s")  # of every progress / epoch line
SCORE_STYLES = {"analogy": "-o", "ws353": "--s", "simlex": ":^"}


def read_metrics(run_dir: Path) -> list[dict]:
    """The records of RUN/metrics.jsonl, in file order.

    A last line without its newline is dropped: training appends as it goes, so a run killed mid-write ends
    in a partial line. Any other line that is not a JSON object means the file is damaged.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise W2VError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise W2VError(f"{run_dir} is not a directory; pass a run directory written by `w2v-nce train`")
    path = run_dir / METRICS
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        raise W2VError(f"{run_dir} has no {METRICS}: it was trained before metrics were recorded, or it is not "
                       f"a run directory; train it again or pass a run directory written by `w2v-nce train`") from None
    except OSError as e:
        raise storage_error("read", path, e) from None
    lines.pop()  # what follows the last newline: nothing, or a line cut short
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)  # bytes: a partial UTF-8 character raises ValueError too
        except ValueError:
            rec = None
        if not isinstance(rec, dict):
            raise W2VError(f"{path}:{n}: not a JSON object; the file is damaged: fix or delete that line")
        missing = [k for k in RECORD_KEYS if k not in rec] if rec.get("event") in ("progress", "epoch") else []
        if missing:  # a corrupt line can still be JSON: its keys say whether it is whole
            raise W2VError(f"{path}:{n}: a {rec['event']} record without {', '.join(missing)}; the file is damaged: "
                           "fix or delete that line")
        records.append(rec)
    return records


# heads whose losses are on one scale: each family gets its own loss panel (an hs run's 7.5 beside 2.5 flattened
# the others)
FAMILIES = {"neg": "neg, nce", "nce": "neg, nce", "hs": "hs", "infonce": "softmax heads",
            "sampled-softmax": "softmax heads", "softmax": "softmax heads"}
# one words axis for runs whose sizes differ by more than this squashes the smaller into the left tenth of the figure
# (a 1M-word trial beside a 100M-word run drew as a spike at x = 0): past it each run is drawn against its own
# fraction of training, which also lines up their learning-rate schedules
SIZE_RATIO = 10
# the learning rate falls in a straight line: a strip this fraction of a loss panel's height says so, and leaves the
# room to the loss and the scores
LR_HEIGHT = 0.3
PANEL_INCHES = 2.6


def _facts(run: Path) -> tuple[str, float | None]:
    """The run's family of heads and the words its training was set to run (corpus tokens x epochs): as `words` in
    metrics.jsonl counts them. ("", None) where config.toml cannot be read: the run still has its history."""
    try:
        cfg, facts = read_config(Path(run))
    except W2VError:
        return "", None
    tokens = facts.get("tokens")
    return FAMILIES.get(cfg.loss, ""), tokens * cfg.epochs if _number(tokens) and tokens > 0 else None


def x_axis(trained: list[float], planned: list[float | None]) -> tuple[list[float] | None, str]:
    """The x axis for runs that trained these words so far and were set to train `planned` (None: unknown) and its
    label: (None, ...) for millions of words; where the runs' sizes differ by more than SIZE_RATIO, each run's
    words to divide by for its fraction of training (those trained so far where its config cannot tell)."""
    sizes = [w for w in trained if w > 0]
    if not sizes or max(sizes) <= SIZE_RATIO * min(sizes):
        return None, "words trained (millions)"
    return ([p or t or 1.0 for t, p in zip(trained, planned)],
            f"fraction of each run's training (the runs' sizes differ more than {SIZE_RATIO}x: words in the legend)")


def training(runs: list[Path], out: Path) -> Path:
    """Loss (a panel per family of heads: their losses are on different scales; each epoch's mean marked), the
    per-epoch scores if any, and a strip of the learning rate, against words trained or, for runs of very different
    sizes, each run's fraction of its training (x_axis); one colour per run."""
    if not runs:
        raise W2VError("no run directory given")
    new_figure = _matplotlib()
    metrics = [(_name(r), read_metrics(r), *_facts(r)) for r in runs]  # a list: two runs may share a name
    if not any(_series(recs, "loss")[0] for _, recs, _, _ in metrics):
        raise W2VError(f"nothing to plot: {', '.join(map(str, runs))} recorded no training progress yet")
    order = list(dict.fromkeys(FAMILIES.values()))
    families = sorted(dict.fromkeys(f for _, _, f, _ in metrics), key=lambda f: order.index(f) if f in order else -1)
    scored = any(_series(recs, s, ("epoch",))[0] for _, recs, _, _ in metrics for s in SCORES)
    trained = [max(_series(recs, "lr", scale=1)[0], default=0.0) for _, recs, _, _ in metrics]
    totals, xlabel = x_axis(trained, [planned for *_, planned in metrics])
    fig, axes = _panels(new_figure, len(families) + scored)
    score_ax, lr_ax, drawn = axes[-2] if scored else None, axes[-1], set()
    for i, (name, recs, family, _) in enumerate(metrics):
        colour, ax = f"C{i % 10}", axes[families.index(family)]
        x, label = (1e-6, name) if totals is None else (1 / totals[i], f"{name} ({_words(trained[i])})")
        ax.plot(*_series(recs, "loss", ("progress",), x), color=colour, label=label, linewidth=1)
        ax.plot(*_series(recs, "loss", ("epoch",), x), "o", color=colour, markersize=5)
        lr_ax.plot(*_series(recs, "lr", scale=x), color=colour)
        for score in SCORES if scored else ():
            xs, ys = _series(recs, score, ("epoch",), x)
            if xs:
                score_ax.plot(xs, ys, SCORE_STYLES[score], color=colour)
                drawn.add(score)
    for ax, family in zip(axes, families):
        ax.set(ylabel=f"loss per example{f' ({family})' if family else ''}")
        ax.plot([], [], "o", color="0.3", label="epoch mean (every step)")
        ax.legend(fontsize="small")
    axes[0].set(title="training")
    if scored:  # the scores, by line style and marker
        score_ax.set(ylabel="score after each epoch")
        for score in SCORES:
            if score in drawn:
                score_ax.plot([], [], SCORE_STYLES[score], color="0.3", label=score)
        score_ax.legend(fontsize="small")
    lr_ax.set_ylabel("learning\nrate", fontsize="small")
    lr_ax.set_ylim(bottom=0)
    lr_ax.locator_params(axis="y", nbins=2)
    lr_ax.set(xlabel=xlabel)
    for ax in axes:
        ax.grid(alpha=0.3)
    return _save(fig, out)


def _panels(new_figure, n: int) -> tuple:
    """A figure of n panels (loss, scores) over a thin learning-rate strip, sharing the x axis; and its axes."""
    ratios = [1] * n + [LR_HEIGHT]
    fig = new_figure(figsize=(9, PANEL_INCHES * sum(ratios) + 0.6), layout="constrained")
    return fig, fig.subplots(n + 1, 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": ratios})[:, 0]


def log_z(runs: list[Path], corpus: Path, out: Path, max_contexts: int = 20000, seed: int = 0) -> Path:
    """Histograms of the exact held-out log Z(c) of each run on `corpus`, their means marked, 0 marked.

    Each run gets its own bins and the bars give the share of its contexts, so a narrow distribution (nce)
    is not one bin of a range stretched to reach a distant one (neg).
    """
    if not runs:
        raise W2VError("no run directory given")
    new_figure = _matplotlib()  # before the minutes of scoring, not after
    values = [(_name(r), *heldout.log_z_of_run(r, corpus, max_contexts, seed)) for r in runs]
    fig = new_figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    ax.axvline(0, color="black", linewidth=0.8)
    for i, (name, cfg, lz) in enumerate(values):
        colour, mean = f"C{i % 10}", lz.mean()
        std = lz.std(ddof=1) if len(lz) > 1 else 0.0  # as heldout.log_z_stats reports it
        kind = f"{cfg.model}-{cfg.loss}"
        label = name if kind in name else f"{name} ({kind})"
        label += f": log Z {mean:+.3f} ± {std:.3f}, {len(lz):,} contexts"
        ax.hist(lz, bins=40, weights=np.full(len(lz), 1 / len(lz)), histtype="step", linewidth=1.5, color=colour,
                label=label)
        ax.axvline(mean, color=colour, linestyle="--")
    ax.set(xlabel="log Z(c) = logsumexp over the vocabulary of s(w, c)", ylabel="share of contexts",
           title=f"held-out log Z(c) on {Path(corpus).name} (0 = self-normalised)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper right")  # the histograms keep the bottom: the legend never covers one
    return _save(fig, out)


def _matplotlib():
    """A function making a matplotlib Figure drawn by the Agg canvas; a W2VError if matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise W2VError("w2v-nce plot needs matplotlib; install it with: pip install 'w2v-nce[plot]'") from None

    def new(**kw):
        fig = Figure(**kw)
        FigureCanvasAgg(fig)
        return fig
    return new


def _name(run_dir: Path) -> str:
    """The legend name of a run: its directory's own name, so runs/latest shows as the run it points at."""
    return Path(run_dir).resolve().name


def _series(records: list[dict], key: str, events=("progress", "epoch"), scale: float = 1e-6) -> tuple[list, list]:
    """(words x scale, value) of the records of `events` where both are numbers, in file order: millions of words
    by default."""
    xs, ys = [], []
    for r in records:
        x, y = r.get("words"), r.get(key)
        if r.get("event") in events and _number(x) and _number(y):
            xs.append(x * scale)
            ys.append(y)
    return xs, ys


def _words(n: float) -> str:
    return f"{n / 1e6:,.1f}M words" if n >= 1e6 else f"{n / 1e3:,.0f}k words"


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _save(fig, out: Path) -> Path:
    """Write `fig` as PNG atomically (savefig would guess the format from the temporary file's suffix)."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out)
