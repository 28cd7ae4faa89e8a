"""Which training step runs, where, with which batch and shared noise: the run's Plan, made once where its
configuration is resolved (make_plan) and carried to every process.

Three steps run the heads' description of an example (heads.py), each with one update per family:
- torch_step.py: PyTorch ops, mini-batch SGD on the summed gradients of a batch; every head, any device,
  reproducible with any number of threads;
- cpu.py: word2vec's per-example update (update.py) compiled for the CPU (Hogwild threads; one process trains
  by pieces, pieces.py);
- cuda.py: the same update as CUDA kernels (Hogwild warps).
The compiled steps ("fused": the example's rows read and written once) run every head but the exact softmax, whose
update is a dense matrix product.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from . import cpu, native
from .torch_step import torch_step
from ..config import Config
from ..errors import UsageError
from ..model.heads import LOGISTIC, SAMPLED

CPU_BATCH = 4096  # examples per call of the CPU step, or per SGD step of the PyTorch step
# the compiled CPU step's batch where it is not CPU_BATCH, by (model, loss): sg-hs's updates are all per example (its
# nodes have no biases, which the step sums over a batch), so there the batch only sets how often the biases' sums
# are applied; the heads with biases lost scores with larger batches
CPU_BATCHES = {("sg", "hs"): 65536}
CUDA_LAUNCH = 1 << 20  # examples per launch of the CUDA kernel, whose staleness is set by its workers instead
# consecutive examples that share one draw of noise words in the compiled CPU step, where --shared-noise is not
# given: as many as keep each head's scores (cbow's lost analogy at any sharing; sg's softmax heads lost SimLex
# past these)
SHARED_NOISE = {("sg", "neg"): 8, ("sg", "nce"): 8, ("sg", "sampled-softmax"): 4, ("sg", "infonce"): 2}


def largest_summed_batch(loss: str) -> int:
    """The largest mini-batch the PyTorch step, which sums a batch's gradients, trains well with. hs and the exact
    softmax are the exceptions: every example updates hs's root, and every output row of the softmax, so those rows'
    update is the sum of the whole batch's: cbow-hs diverged at 1,024 on the Lee corpus, cbow-softmax at 4,096 on
    the shipped corpus (corpora/wiki10m.txt.gz; its first 1.5 MB at 5 epochs too), and both train at 256."""
    return 256 if loss in ("hs", "softmax") else 16384


@dataclasses.dataclass(frozen=True)
class Plan:
    device: torch.device
    kernel: str  # "fused" (cpu.py on the CPU, cuda.py on a GPU) or "torch"
    batch_size: int
    note: str | None = None  # why --kernel auto fell back to the PyTorch step on a GPU, for the log
    share: int = 1  # consecutive examples that share one draw of noise words (the fused steps)

    def warm(self, head, threads: int, slots: int = 1, subwords: bool = False, step: bool = True) -> None:
        """Before the timed training: the compiled CPU step's threads, and with `step` its loop compiled (or loaded
        from numba's cache) for examples of `slots` input words (1: skip-gram; 2W: CBOW), with or without subword
        rows (a run by pieces needs the threads only: it trains with pieces.py's kernel). One thread is reproducible
        to the bit; more update without locks (Hogwild), as word2vec.c and gensim do. On a GPU, the CUDA kernel of
        the head's family for its dim."""
        if self.kernel == "fused" and self.device.type == "cpu":
            cpu.set_threads(threads)
            if step:
                cpu.warm_up(head, slots, subwords)
        elif self.kernel == "fused":
            from . import cuda
            cuda.warm_up(self.device, head.weight.shape[1], ("neg",) if head.family == LOGISTIC else ("infonce",))

    def step(self, model, inputs, targets, lr: float, mask=None, generator=None, need_loss: bool = True):
        """One training step; returns the summed loss (a 0-d tensor, left on the device), or with need_loss=False
        a finiteness probe: 0 when every score was finite, NaN otherwise."""
        if self.kernel == "torch":
            return torch_step(model, inputs, targets, lr, mask, generator, need_loss)
        if self.device.type == "cuda":
            from . import cuda
            return cuda.train_step(model, inputs, targets, lr, mask, generator, need_loss, self.share)
        return cpu.train_step(model, inputs, targets, lr, mask, generator, need_loss, self.share)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was given but no CUDA GPU is available; use --device cpu or auto")
    return torch.device(name)


def make_plan(cfg: Config, processes: int = 1) -> Plan:
    """The device, the step and its batch for a run of `processes` processes (torchrun's); a usage error where the
    flags ask for what cannot run."""
    device = resolve_device(cfg.device)
    need = unsupported(device, cfg.loss, cfg.negatives, cfg.dim)
    if cfg.kernel == "fused" and need is not None:
        raise UsageError(f"--kernel fused needs {need}; use --kernel auto or torch")
    kernel = "fused" if cfg.kernel != "torch" and need is None else "torch"
    note = None
    if cfg.kernel == "auto" and need is not None and device.type == "cuda" and cfg.loss != "softmax":
        note = f"the fused CUDA step needs {need}; using the PyTorch step"
    # the CUDA kernel's launch is large, its staleness set by its workers; the PyTorch step sums a batch's
    # gradients, and larger sums overshoot
    if kernel == "fused":
        default = CUDA_LAUNCH if device.type == "cuda" else CPU_BATCHES.get((cfg.model, cfg.loss), CPU_BATCH)
    else:
        default = min(CPU_BATCH, largest_summed_batch(cfg.loss))
    if cfg.shared_noise is not None and cfg.shared_noise > 1 and kernel != "fused":
        raise UsageError(f"--shared-noise {cfg.shared_noise} runs on the fused steps only (here: the PyTorch "
                         "step); leave it out or give 1")
    # the GPU's default stays 1: its quality with shared noise is unmeasured
    cpu_fused = kernel == "fused" and device.type == "cpu"
    # with subwords none: shared noise cost 0.02-0.03 of Korean WS353 there, and gained no speed (the n-gram rows
    # are the step's work, not the noise rows' fetches); nor under torchrun: 2 processes of sg-neg (each at twice the
    # rate) lost 0.016 of analogy with it, 0.306 without against one process's 0.305 (log section 15)
    share = cfg.shared_noise or (SHARED_NOISE.get((cfg.model, cfg.loss), 1)
                                 if cpu_fused and cfg.subwords is None and processes == 1 else 1)
    # skip-gram's pairs with subwords are made (centre, context): a centre's examples have one input word, and the
    # pieces share a draw among other centres' examples (pieces.share_across); the chunk loop would share it among
    # a centre's own, the same noise words against one input N times over (English analogy -0.10 at N = 8)
    if share > 1 and cfg.subwords is not None and cfg.model == "sg" and not (cpu_fused and processes == 1):
        raise UsageError(f"--shared-noise {share} with --subwords and --model sg runs in one process on the CPU only; "
                         "leave it out or give 1")
    return Plan(device, kernel, cfg.batch_size or default, note, share)


def unsupported(device: torch.device, loss: str, negatives: int = 1, dim: int = 0) -> str | None:
    """None if the compiled step can run this head here, else what it needs (a phrase for a message): numba, a head
    other than the exact softmax, and the CPU or a GPU on which the CUDA kernels compile and pass their
    self-check, within the kernels' limits of dim and candidates."""
    if native.numba is None:
        return "numba (pip install numba)"
    if loss == "softmax":
        return "a sampled or tree head (--loss softmax is a dense product: the PyTorch step runs it)"
    if device.type == "cuda":
        why = cuda_unavailable()
        if why is not None:
            return f"a GPU that numba's CUDA target can use (here: {why})"
        from . import cuda
        if dim > cuda.MAX_DIM:
            return f"--dim {cuda.MAX_DIM} or less on a GPU"
        if SAMPLED.get(loss, (LOGISTIC,))[0] != LOGISTIC and negatives + 1 > cuda.MAX_CANDIDATES:
            return f"--negatives {cuda.MAX_CANDIDATES - 1} or less for --loss {loss} on a GPU"
        return None
    return None if device.type == "cpu" else "the CPU or a CUDA GPU"


@functools.lru_cache(maxsize=None)
def cuda_unavailable() -> str | None:
    """None if the CUDA kernels compile and run here and agree with the CPU kernels (checked once, by
    cuda.self_check); else why not, and training uses the PyTorch step."""
    try:
        from numba import cuda as numba_cuda
        if not numba_cuda.is_available():
            return "numba finds no CUDA GPU"
        from . import cuda
        cuda.warm_up(torch.device("cuda"))
        return cuda.self_check()
    except Exception as e:  # numba without its CUDA support, no toolkit it can use, ...
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
