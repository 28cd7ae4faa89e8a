"""Pictures of runs: how training went, and whether a model is self-normalised.

`training` draws loss and learning rate against words trained (and the per-epoch scores, when any run
recorded them) from each run's metrics.jsonl, several runs on one figure so they can be compared.
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
from .errors import W2VError, storage_error
from .files import atomic_path
from .rundir import METRICS
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


def _family(run: Path) -> str:
    try:
        from .rundir import read_config
        return FAMILIES.get(read_config(Path(run))[0].loss, "")
    except W2VError:  # a config.toml that cannot be read: the run still has its history
        return ""


def training(runs: list[Path], out: Path) -> Path:
    """Loss (a panel per family of heads: their losses are on different scales; each epoch's mean marked) and
    learning rate against words trained, plus the per-epoch scores if any; one colour per run."""
    if not runs:
        raise W2VError("no run directory given")
    new_figure = _matplotlib()
    metrics = [(_name(r), read_metrics(r), _family(r)) for r in runs]  # a list: two runs may share a name
    if not any(_series(recs, "loss")[0] for _, recs, _ in metrics):
        raise W2VError(f"nothing to plot: {', '.join(map(str, runs))} recorded no training progress yet")
    order = list(dict.fromkeys(FAMILIES.values()))
    families = sorted(dict.fromkeys(f for _, _, f in metrics), key=lambda f: order.index(f) if f in order else -1)
    scored = any(_series(recs, s, ("epoch",))[0] for _, recs, _ in metrics for s in SCORES)
    n = len(families) + 1 + scored
    fig = new_figure(figsize=(9, 2.6 * n + 0.6), layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    lr_ax, drawn = axes[len(families)], set()
    for i, (name, recs, family) in enumerate(metrics):
        colour, ax = f"C{i % 10}", axes[families.index(family)]
        ax.plot(*_series(recs, "loss", ("progress",)), color=colour, label=name, linewidth=1)
        ax.plot(*_series(recs, "loss", ("epoch",)), "o", color=colour, markersize=5)
        lr_ax.plot(*_series(recs, "lr"), color=colour)
        for score in SCORES if scored else ():
            x, y = _series(recs, score, ("epoch",))
            if x:
                axes[-1].plot(x, y, SCORE_STYLES[score], color=colour)
                drawn.add(score)
    for ax, family in zip(axes, families):
        ax.set(ylabel=f"loss per example{f' ({family})' if family else ''}")
        ax.plot([], [], "o", color="0.3", label="epoch mean (every step)")
        ax.legend(fontsize="small")
    axes[0].set(title="training")
    lr_ax.set(ylabel="learning rate")
    if scored:  # the scores, by line style and marker
        axes[-1].set(ylabel="score after each epoch")
        for score in SCORES:
            if score in drawn:
                axes[-1].plot([], [], SCORE_STYLES[score], color="0.3", label=score)
        axes[-1].legend(fontsize="small")
    axes[-1].set(xlabel="words trained (millions)")
    for ax in axes:
        ax.grid(alpha=0.3)
    return _save(fig, out)


def log_z(runs: list[Path], corpus: Path, out: Path, max_contexts: int = 20000, seed: int = 0) -> Path:
    """Histograms of the exact held-out log Z(c) of each run on `corpus`, their means marked, 0 marked.

    Each run gets its own bins and the bars give the share of its contexts, so a narrow distribution (nce)
    is not one bin of a range stretched to reach a distant one (neg).
    """
    if not runs:
        raise W2VError("no run directory given")
    new_figure = _matplotlib()  # before the minutes of scoring, not after
    values = [(_name(r), *heldout.run_log_z(r, corpus, max_contexts, seed)) for r in runs]
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


def _series(records: list[dict], key: str, events=("progress", "epoch")) -> tuple[list, list]:
    """(millions of words, value) of the records of `events` where both are numbers, in file order."""
    xs, ys = [], []
    for r in records:
        x, y = r.get("words"), r.get(key)
        if r.get("event") in events and _number(x) and _number(y):
            xs.append(x / 1e6)
            ys.append(y)
    return xs, ys


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _save(fig, out: Path) -> Path:
    """Write `fig` as PNG atomically (savefig would guess the format from the temporary file's suffix)."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(out)
