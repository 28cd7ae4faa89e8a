"""CUDA, checked on a GPU machine with `pytest -m cuda`: the PyTorch step is the CPU's code on another device;
the fused CUDA kernel (step/cuda.py) with one worker equals the CPU kernel with one thread, with and without
subword rows."""

import numpy as np
import pytest
import torch
from gensim.test.utils import datapath

from w2v_nce.config import make_config
from w2v_nce.tools.vectorfiles import load_vectors
from w2v_nce.step.torch_step import gradients
from w2v_nce.model.heads import make_head
from w2v_nce.model.sampling import AliasSampler
from w2v_nce.run.train import train

from .test_end_to_end import THRESHOLD, neighbour_rank

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("kernel", ["auto", "torch"])
@pytest.mark.parametrize("loss", ["neg", "nce", "hs", "infonce", "sampled-softmax", "softmax"])
@pytest.mark.parametrize("model", ["sg", "cbow"])
def test_cuda_training_learns_the_same_signal(tmp_path, model, loss, kernel):
    if kernel == "torch" and loss == "softmax":
        pytest.skip("softmax always runs the PyTorch step")
    cfg = make_config(model=model, loss=loss, epochs=10, min_count=5, lowercase=True, device="cuda", kernel=kernel)
    train(cfg, datapath("lee_background.cor"), tmp_path / "run", progress=False, log=lambda *_: None)
    assert neighbour_rank(load_vectors(tmp_path / "run")) < THRESHOLD


@pytest.mark.parametrize("loss", ["nce", "hs", "sampled-softmax"])
def test_cuda_gradients_equal_cpu_gradients(loss):
    counts = np.arange(100, 0, -1) * 7
    g = torch.Generator().manual_seed(0)
    h, t, noise = torch.randn(64, 16, generator=g), torch.randint(100, (64,), generator=g), torch.randint(100, (64, 5), generator=g)
    w, b = torch.randn(100, 16, generator=g), torch.randn(100, generator=g)
    out = []
    for dev in ("cpu", "cuda"):
        head = make_head(loss, counts, 16, AliasSampler(counts, 0.75, dev), 5).to(dev)
        head.weight.data.copy_(w[:len(head.weight)])
        head.bias.data.copy_(b[:len(head.bias)])
        cand = head.candidates(t.to(dev)) if loss == "hs" else head.candidates(t.to(dev), noise=noise.to(dev))
        out.append([x.cpu() for x in gradients(head, h.to(dev), cand) if x is not None])
    for a, c in zip(*out):
        assert torch.allclose(a.double(), c.double(), atol=1e-5)


def test_cuda_interrupt_state_round_trips(tmp_path):
    cfg = make_config(model="sg", loss="nce", epochs=1, min_count=5, device="cuda")
    train(cfg, datapath("lee_background.cor"), tmp_path / "run", progress=False, log=lambda *_: None)
    st = torch.load(tmp_path / "run" / "checkpoint.pt", map_location="cpu", weights_only=False)
    gen = torch.Generator(device="cuda")
    gen.set_state(st["gen_state"])  # a CUDA generator's state is a CPU byte tensor


@pytest.mark.parametrize("kernel", ["auto", "torch"])
@pytest.mark.parametrize("loss", ["neg", "nce"])
def test_cuda_training_with_subwords_learns_the_same_signal(tmp_path, loss, kernel):
    # skip-gram with n-grams 3-5 (on the CPU, the Lee corpus at these settings: 0.001-0.002 of the ranks)
    cfg = make_config(model="sg", loss=loss, epochs=10, min_count=5, lowercase=True, device="cuda", kernel=kernel,
                      subwords="3-5", buckets=20000)
    train(cfg, datapath("lee_background.cor"), tmp_path / "run", progress=False, log=lambda *_: None)
    assert neighbour_rank(load_vectors(tmp_path / "run")) < THRESHOLD


@pytest.mark.parametrize("subwords", [False, True])
@pytest.mark.parametrize("arch", ["sg", "cbow"])
@pytest.mark.parametrize("loss", ["neg", "nce", "hs", "infonce", "sampled-softmax"])
def test_cuda_kernel_with_one_worker_equals_the_cpu_kernel(arch, loss, subwords):
    from numba import cuda

    from w2v_nce.step import cpu, cuda as cuda_step, kernel, update

    from .test_step_cpu import make_problem
    from .test_subwords_train import with_subwords

    model, ctx, valid, targets = make_problem(arch, loss, n=300, dim=100)
    subs = (update.WORDS_ONLY, update.WORDS_ONLY)
    if subwords:  # each word's own row and n-gram rows; skip-gram's centres in runs, as it makes its examples
        model = with_subwords(model)
        subs = (model.sub_offsets.numpy(), model.sub_rows.numpy())
        if arch == "sg":
            ctx[:, 0] = np.repeat(ctx[::4, 0], 4)[:len(ctx)]
    head = model.head
    family, tab, width = kernel.tables(head)
    tab = tab._replace(bias_now=True)  # as cuda_step.train_step runs it: each bias change at once
    n = len(targets)
    ref = [t.numpy().copy() for t in (model.input, head.weight, head.bias)]
    ref += [np.zeros((n, width), np.int64), np.zeros((n, width), np.float32), np.zeros(n, np.float32)]
    cpu.set_threads(1)
    cpu.step(family, *ref[:3], ctx, valid, targets, *ref[3:], 0.05, True, tab, 11, subwords=subs)
    dev = [torch.from_numpy(a).cuda() for a in (model.input.numpy().copy(), head.weight.numpy().copy(),
                                                 head.bias.numpy().copy(), ctx, valid, targets)]
    dev += [torch.zeros((n, width), dtype=torch.int64, device="cuda"), torch.zeros((n, width), device="cuda"),
            torch.zeros(n, device="cuda")]
    dtab = tab._replace(**{f: cuda.to_device(x) for f, x in tab._asdict().items() if isinstance(x, np.ndarray)})
    cuda_step.launch(family, *[cuda.as_cuda_array(t) for t in dev], 0.05, True, dtab, 11, workers=1,
                     subwords=tuple(cuda.to_device(a) for a in subs) if subwords else None)
    cuda.synchronize()
    assert (dev[6].cpu().numpy() == ref[3]).all()  # the same candidates
    for got, want in zip([t.cpu().numpy() for t in dev[:3]] + [dev[8].cpu().numpy()], ref[:3] + [ref[5]]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(want).max())))


def test_the_fused_cuda_step_passes_its_start_up_self_check():
    from w2v_nce.step import plan

    assert plan.cuda_unavailable() is None  # compiles, runs, and agrees with the CPU kernel (self_check)
