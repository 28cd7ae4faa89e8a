"""Which training step runs, where, with which batch (`plan`, decided once), and the PyTorch step.

Three backends run the heads' description of an example (heads.py), each with one update per family:
- `torch_step` here: PyTorch ops, mini-batch SGD on the summed gradients of a batch; every head, any device,
  reproducible with any number of threads;
- fused.py: word2vec's per-example update compiled for the CPU (Hogwild threads);
- fused_cuda.py: the same update as a CUDA kernel (Hogwild warps).
The fused steps run every head but the exact softmax, whose update is a dense matrix product.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from . import fused
from .config import Config
from .errors import UsageError
from .heads import EXACT, LOGISTIC

CPU_BATCH = 4096  # examples per call of the CPU step, or per SGD step of the PyTorch step
# the fused CPU step's batch where it is not CPU_BATCH, by (model, loss). sg-hs's updates are all per example (its
# nodes have no biases, which the step sums over a batch), so the batch only sets how often the Python loop runs:
# 1.09x at 65,536, its scores kept. The rest keep 4,096: at 65,536 the scores moved, cbow-hs WS353 -0.008 (means of
# 2 seeds), cbow-nce WS353 0.570 against 0.589 (seed 1; BENCHMARKS.md section 4)
CPU_BATCHES = {("sg", "hs"): 65536}
CUDA_LAUNCH = 1 << 20  # examples per launch of the CUDA kernel, whose staleness is set by its workers instead
# consecutive examples that share one draw of noise words in the fused CPU step, where --shared-noise is not given:
# sg-neg and sg-nce at 8 are 1.5-2x faster with the exact step's scores; cbow lost 0.01 of analogy at 4; sg's
# softmax heads lost 0.010-0.015 of SimLex at 8, and at 4 sampled-softmax kept its scores (1.2x) but infonce lost
# 0.006 of SimLex; infonce at 2 kept them (-0.004 SimLex, 1.7x) (means of 2 seeds, BENCHMARKS.md section 4)
SHARED_NOISE = {("sg", "neg"): 8, ("sg", "nce"): 8, ("sg", "sampled-softmax"): 4, ("sg", "infonce"): 2}


def largest_summed_batch(loss: str) -> int:
    """The largest mini-batch the PyTorch step, which sums a batch's gradients, was measured to train well with
    (BENCHMARKS.md section 3). hs is the exception: every example's path starts at the root, so the root's
    update is the sum of the whole batch's; on the Lee corpus cbow-hs diverged at 1,024 and trained at 256."""
    return 256 if loss == "hs" else 16384


@dataclasses.dataclass(frozen=True)
class Plan:
    device: torch.device
    kernel: str  # "fused" (fused.py on the CPU, fused_cuda.py on a GPU) or "torch"
    batch_size: int
    note: str | None = None  # why --kernel auto fell back to the PyTorch step on a GPU, for the log
    share: int = 1  # consecutive examples that share one draw of noise words (the fused steps)

    def prepare(self, head, threads: int) -> None:
        """Before the timed training: the compiled CPU step's threads, and its loop compiled (or loaded from
        numba's cache). One thread is reproducible to the bit; more update without locks (Hogwild), as
        word2vec.c and gensim do. On a GPU, the CUDA kernel of the head's family for its dim."""
        if self.kernel == "fused" and self.device.type == "cpu":
            fused.set_threads(threads)
            fused.warm_up(head)
        elif self.kernel == "fused":
            from . import fused_cuda
            fused_cuda.warm_up(self.device, head.weight.shape[1], ("neg",) if head.family == LOGISTIC else ("infonce",))

    def step(self, model, inputs, targets, lr: float, mask=None, generator=None, need_loss: bool = True):
        """One training step; returns the summed loss (a 0-d tensor, left on the device), or with need_loss=False
        a finiteness probe: 0 when every score was finite, NaN otherwise."""
        if self.kernel == "torch":
            return torch_step(model, inputs, targets, lr, mask, generator, need_loss)
        if self.device.type == "cuda":
            from . import fused_cuda
            return fused_cuda.train_step(model, inputs, targets, lr, mask, generator, need_loss, self.share)
        return fused.train_step(model, inputs, targets, lr, mask, generator, need_loss, self.share)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was given but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


def plan(cfg: Config) -> Plan:
    """The device, the step and its batch for a run; a usage error where the flags ask for what cannot run."""
    device = resolve_device(cfg.device)
    need = fused.unsupported(device, cfg.loss, cfg.negatives, cfg.dim)
    if cfg.kernel == "fused" and need is not None:
        raise UsageError(f"--kernel fused needs {need}; use --kernel auto or torch")
    kernel = "fused" if cfg.kernel != "torch" and need is None else "torch"
    note = None
    if cfg.kernel == "auto" and need is not None and device.type == "cuda" and cfg.loss != "softmax":
        note = f"the fused CUDA step needs {need}; using the PyTorch step"
    # the CUDA kernel's launch is large, its staleness set by its workers; the PyTorch step sums a batch's
    # gradients, and larger sums overshoot (fused_cuda.py)
    if kernel == "fused":
        default = CUDA_LAUNCH if device.type == "cuda" else CPU_BATCHES.get((cfg.model, cfg.loss), CPU_BATCH)
    else:
        default = min(CPU_BATCH, largest_summed_batch(cfg.loss))
    if cfg.shared_noise is not None and cfg.shared_noise > 1 and kernel != "fused":
        raise UsageError(f"--shared-noise {cfg.shared_noise} runs on the fused steps only (here: the PyTorch "
                         "step); leave it out or give 1")
    # the GPU's default stays 1: its quality with shared noise is unmeasured
    cpu_fused = kernel == "fused" and device.type == "cpu"
    share = cfg.shared_noise or (SHARED_NOISE.get((cfg.model, cfg.loss), 1) if cpu_fused else 1)
    return Plan(device, kernel, cfg.batch_size or default, note, share)


@torch.no_grad()
def torch_step(model, inputs, targets, lr: float, mask=None, generator=None, need_loss: bool = True):
    """One SGD step of PyTorch ops: gradients in closed form (no autograd graph), applied to the rows of the
    batch (index_add_ sums repeated rows)."""
    head = model.head
    hidden = model.hidden(inputs, mask)  # (B, D)
    if head.family == EXACT:
        loss, grad_hidden = _exact(head, hidden, targets, lr, need_loss)
    else:
        loss, grad_hidden = _sampled(head, hidden, head.candidates(targets, generator), lr, need_loss)
    model.add_to_inputs(inputs, mask, grad_hidden.mul_(-lr))  # index_add_ without alpha: see _sampled
    return loss


def gradients(head, hidden, cand, need_loss: bool = True):
    """Closed-form gradients of a sampled or tree head: (loss (B,) or a probe, the gathered output rows
    (B, C, D), d loss / dΔ (B, C), d loss / d hidden (B, D))."""
    flat = cand.rows.reshape(-1)  # (B C,)
    # index_select and mul+sum are several times faster on the CPU than fancy indexing and tiny bmm's
    out = head.weight.index_select(0, flat).view(*cand.rows.shape, -1)  # (B, C, D)
    delta = (out * hidden[:, None, :]).sum(-1) + head.bias.index_select(0, flat).view(cand.rows.shape) + cand.shift
    if head.family == LOGISTIC:
        g = (torch.sigmoid(delta) - cand.labels) * cand.valid  # d softplus((1 - 2y) Δ) / dΔ = σ(Δ) - y
        loss = (F.softplus((1 - 2 * cand.labels) * delta) * cand.valid).sum(1) if need_loss else None
    else:  # softmax over the valid candidates, the target first: d loss / dΔ = softmax - onehot
        masked = delta.masked_fill(~cand.valid, -torch.inf)
        g = torch.softmax(masked, 1)
        g[:, 0] -= 1.0
        loss = torch.logsumexp(masked, 1) - delta[:, 0] if need_loss else None
    if loss is None:  # the loss is finite exactly when every score is: 0 if so, NaN if not
        loss = (delta * cand.valid).sum() * 0.0
    grad_hidden = torch.bmm(g[:, None, :], out).squeeze(1)  # (B, D)
    return loss, out, g, grad_hidden


def _sampled(head, hidden, cand, lr, need_loss):
    loss, _, g, grad_hidden = gradients(head, hidden, cand, need_loss)
    flat = cand.rows.reshape(-1)
    g = g.mul_(-lr)  # fold the rate into the small tensor: index_add_ with alpha is 3x slower on the CPU
    head.weight.index_add_(0, flat, (g[:, :, None] * hidden[:, None, :]).view(len(flat), -1))
    if head.learns_bias:
        head.bias.index_add_(0, flat, g.view(-1))
    return loss.sum(), grad_hidden


def _exact(head, hidden, targets, lr, need_loss):
    logits = head.scores(hidden)  # (B, V)
    loss = F.cross_entropy(logits, targets, reduction="sum")
    g = torch.softmax(logits, dim=-1)  # d loss / d logits = softmax - onehot
    g[torch.arange(len(targets), device=g.device), targets] -= 1.0
    grad_hidden = g @ head.weight  # (B, D), with the weights before this step
    # The exact softmax gradient touches every output row: the one dense update in the project.
    head.weight.addmm_(g.T, hidden, alpha=-lr)  # (V, D)
    head.bias.sub_(g.sum(0), alpha=lr)
    return (loss if need_loss else loss * 0.0), grad_hidden  # 0 * NaN stays NaN: the finiteness probe
