"""Held-out likelihood: is the model normalised, and how well does it predict unseen text?

For contexts c sampled from held-out text we compute, exactly over the whole vocabulary,
log Z(c) = logsumexp_w s(w, c), and the negative log-likelihood of the true target under the normalised
model, log Z(c) - s(target, c). A self-normalised model (NCE) has log Z ≈ 0, so exp(s) can be used as a
probability without computing Z; negative sampling gives no such guarantee.

Contexts are built as in training but deterministically: the full window (no dynamic shrinking) and no
sub-sampling, since held-out text should be scored as it is. Skip-gram: each (context word, centre) pair is
an example, the context word's input vector predicts the centre (corpus/examples.py: skipgram_pairs). CBOW: the mean of
the window's input vectors predicts the centre word. Out-of-vocabulary words are dropped, as in training.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..corpus.examples import cbow_examples, skipgram_pairs, split_lines
from ..config import Config
from ..errors import W2VError
from ..model.heads import OutputHead
from ..run.rundir import describe_position, load_run
from ..corpus.tokenize import LINE_BREAK, iter_tokens
from ..corpus.vocab import SEPARATOR


def encode(path: str | Path, words: list[str], max_tokens: int, lowercase: bool = False) -> np.ndarray:
    """The first max_tokens in-vocabulary words of `path` as ids, with SEPARATOR between lines."""
    index = {w: i for i, w in enumerate(words)}
    index[LINE_BREAK] = SEPARATOR
    out, n = [], 0
    for block in iter_tokens(path, lowercase, encoding_errors="replace"):
        ids = np.fromiter((index.get(t, -2) for t in block), dtype=np.int64, count=len(block))
        ids = ids[ids != -2]
        out.append(ids)
        n += int((ids >= 0).sum())
        if n >= max_tokens:
            break
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def examples(ids: np.ndarray, arch: str, window: int, max_contexts: int, seed: int = 0):
    """Sampled held-out examples: (inputs, targets, mask or None), at most max_contexts of them."""
    words, lines = split_lines(torch.from_numpy(ids))
    eff = torch.full((len(words),), window, dtype=torch.int64)  # the full window, no random shrinking
    if arch == "sg":
        inputs, targets = skipgram_pairs(words, lines, eff, window)
        mask = None
    else:
        inputs, mask, targets = cbow_examples(words, lines, eff, window)
    if len(targets) > max_contexts:
        pick = torch.randperm(len(targets), generator=torch.Generator().manual_seed(seed))[:max_contexts]
        pick = pick.sort().values
        inputs, targets = inputs[pick], targets[pick]
        mask = None if mask is None else mask[pick]
    return inputs, targets, mask


@torch.no_grad()
def log_z_values(input_vecs: torch.Tensor, head: OutputHead, arch: str, inputs, targets, mask=None,
                 batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example, exactly: log Z(c) and the target's score s(target, c), each (N,) float64. The scores are
    the head's (heads.OutputHead.scores): s = <out_w, h> + b_w, or log p(w|c) itself for hs."""
    if len(targets) == 0:
        raise W2VError("the held-out text has no usable context (too short, or every word is out of the vocabulary)")
    batch = batch or max(1, min(1024, (1 << 25) // len(input_vecs)))  # (B, V) score matrices of about 128 MB
    log_z, target_scores = [], []
    for s in range(0, len(targets), batch):
        sl = slice(s, s + batch)
        if arch == "sg":
            h = input_vecs[inputs[sl]]  # (B, D)
        else:
            m = mask[sl].to(input_vecs.dtype)  # (B, 2W)
            h = (input_vecs[inputs[sl]] * m[:, :, None]).sum(1) / m.sum(1, keepdim=True)
        scores = head.scores(h).double()  # (B, V), in double: logsumexp over 10^5 words
        log_z.append(torch.logsumexp(scores, dim=1))  # (B,)
        target_scores.append(scores.gather(1, targets[sl, None]).squeeze(1))  # (B,)
    return torch.cat(log_z), torch.cat(target_scores)


def log_z_stats(input_vecs: torch.Tensor, head: OutputHead, arch: str, inputs, targets, mask=None,
                batch: int | None = None) -> dict:
    """Exact log Z(c), normalised NLL and the unnormalised NLL (-s(target, c)) over the examples."""
    log_z, st = log_z_values(input_vecs, head, arch, inputs, targets, mask, batch)
    nll = log_z - st
    return {
        "contexts": len(targets),
        "mean_log_z": log_z.mean().item(),
        "std_log_z": log_z.std().item() if len(log_z) > 1 else 0.0,
        "nll": nll.mean().item(),
        "perplexity": math.exp(nll.mean().item()),
        "unnormalized_nll": (-st).mean().item(),
    }


def examples_of_run(run_dir: Path, corpus: Path, max_contexts: int, seed: int) -> tuple[dict, tuple]:
    """A run directory (rundir.load_run) and its held-out examples (inputs, targets, mask) on `corpus`.

    The one definition of how a run's checkpoint meets held-out text, shared by evaluate_run and the log Z plot.
    """
    run = load_run(run_dir)
    cfg = run["config"]
    # enough tokens for max_contexts examples: about 2 * window examples per token in sg, 1 in cbow
    need = max_contexts if cfg.model == "cbow" else max_contexts // cfg.window + 1
    ids = encode(corpus, run["words"], max(need * 4, 10_000), cfg.lowercase)
    return run, examples(ids, cfg.model, cfg.window, max_contexts, seed)


def evaluate_run(run_dir: Path, corpus: Path, max_contexts: int = 20000, seed: int = 0) -> dict:
    """Held-out statistics of a run directory's checkpoint on `corpus`."""
    run, ex = examples_of_run(run_dir, corpus, max_contexts, seed)
    cfg = run["config"]
    stats = log_z_stats(run["input"], run["head"], cfg.model, *ex)
    stats.update(run=str(run_dir), corpus=str(corpus), model=cfg.model, loss=cfg.loss, vocab_size=len(run["words"]),
                 complete=run["complete"], position=describe_position(run["position"]))
    if cfg.loss != "nce":
        del stats["unnormalized_nll"]  # exp(s) is a probability only under NCE (and hs, where it is the nll)
    stats["verdict"], _ = verdict(stats["mean_log_z"], stats["std_log_z"])
    stats["normalised"] = stats["verdict"] != "not-normalised"
    return stats


def log_z_of_run(run_dir: Path, corpus: Path, max_contexts: int = 20000, seed: int = 0) -> tuple[Config, np.ndarray]:
    """A run's config and its per-context log Z(c) on `corpus` (float64 array): the same contexts as evaluate_run."""
    run, ex = examples_of_run(run_dir, corpus, max_contexts, seed)
    log_z, _ = log_z_values(run["input"], run["head"], run["config"].model, *ex)
    return run["config"], log_z.numpy()


# How far log Z(c) may stray from 0 for exp(s) to pass as p(w|c). log Z(c) is exactly the error in nats of
# taking exp(s(w, c)) for p(w|c) in context c, so its mean is the held-out NLL that skipping Z costs and its std
# how much that error moves between contexts; 0.5 nats is a factor of e^0.5 = 1.6. The heads fall far either side of
# it (docs/heads.md): those that fit log p(w|c) (nce; sampled-softmax, "no, but close") within a few tenths of 0,
# those that fit a ratio p(w|c)/q(w) (neg, infonce) several nats above. The std bound catches what the mean can miss:
# an overfitted nce has a mean near 2 and a std above 3.
SELF_NORMALISED = 0.5
# hs: log Z(c) is 0 by construction, up to float rounding; the printed digits show 0.000 below this
EXACT = 5e-4


def verdict(mean_log_z: float, std_log_z: float) -> tuple[str, str]:
    """(key, sentence): is exp(score) a probability without computing Z? key: normalised (log Z(c) = 0 in every
    context: hs), self-normalised (close enough, as nce) or not-normalised (neg, infonce)."""
    numbers = f"mean log Z(c) {mean_log_z:+.3f}, std {std_log_z:.3f}"
    if abs(mean_log_z) < EXACT and std_log_z < EXACT:
        return "normalised", f"normalised ({numbers}): exp(score) is p(w|c) exactly, in every context"
    if abs(mean_log_z) <= SELF_NORMALISED and std_log_z <= SELF_NORMALISED:
        return "self-normalised", f"self-normalised ({numbers}): exp(score) is a probability without computing Z"
    off = []
    if abs(mean_log_z) > SELF_NORMALISED:
        off.append(f"too {'large' if mean_log_z > 0 else 'small'} by a factor of about e^{abs(mean_log_z):.2g}"
                   f"{f' ({math.exp(abs(mean_log_z)):,.0f}x)' if abs(mean_log_z) >= 3 else ''} on average")
    if std_log_z > SELF_NORMALISED:
        off.append(f"off by a factor of e^{std_log_z:.2g} more or less from one context to another")
    return "not-normalised", (f"not normalised ({numbers}): exp(score) is {', and '.join(off)}; "
                              "use the normalised NLL, or compute Z for probabilities")


def format_stats(st: dict) -> str:
    lines = [f"held-out text {st['corpus']}: {st['contexts']:,} contexts, vocabulary {st['vocab_size']:,} "
             f"({st['model']}-{st['loss']})",
             f"  log Z(c)            mean {st['mean_log_z']:+.3f}  std {st['std_log_z']:.3f}",
             f"  NLL (normalised)    {st['nll']:.3f} nats   perplexity {st['perplexity']:,.1f}"]
    if "unnormalized_nll" in st:
        lines.append(f"  NLL with exp(s) taken as p(w|c), unnormalised: {st['unnormalized_nll']:.3f} nats")
    if not st.get("complete", True):
        lines.append(f"  (run {st['run']} is interrupted: these are the scores of its checkpoint at {st['position']})")
    lines.append(f"verdict: {verdict(st['mean_log_z'], st['std_log_z'])[1]}")  # last: the answer to the question
    return "\n".join(lines)
