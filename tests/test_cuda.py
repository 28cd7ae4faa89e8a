"""CUDA: the same code path as the CPU, checked on a GPU machine with `pytest -m cuda`."""

import numpy as np
import pytest
import torch
from gensim.test.utils import datapath

from w2v_nce.config import make_config
from w2v_nce.evaluate import load_vectors
from w2v_nce.heads import SampledHead
from w2v_nce.sampling import AliasSampler
from w2v_nce.train import train

from .test_end_to_end import THRESHOLD, neighbour_rank

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("loss", ["neg", "nce", "softmax"])
@pytest.mark.parametrize("model", ["sg", "cbow"])
def test_cuda_training_learns_the_same_signal(tmp_path, model, loss):
    cfg = make_config(model=model, loss=loss, epochs=10, min_count=5, lowercase=True, device="cuda")
    train(cfg, datapath("lee_background.cor"), tmp_path / "run", progress=False, log=lambda *_: None)
    assert neighbour_rank(load_vectors(tmp_path / "run")) < THRESHOLD


def test_cuda_gradients_equal_cpu_gradients():
    counts = np.arange(100, 0, -1) * 7
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(100, 16, generator=g), torch.randn(100, generator=g)
    h, t, noise = torch.randn(64, 16, generator=g), torch.randint(100, (64,), generator=g), torch.randint(100, (64, 5), generator=g)
    out = []
    for dev in ("cpu", "cuda"):
        head = SampledHead(100, 16, AliasSampler(counts, 0.75, dev), 5, nce=True).to(dev)
        head.weight.data.copy_(w)
        head.bias.data.copy_(b)
        out.append([x.cpu() for x in head.gradients(h.to(dev), t.to(dev), noise.to(dev))])
    for a, c in zip(*out):
        assert torch.allclose(a.double(), c.double(), atol=1e-5)


def test_cuda_interrupt_state_round_trips(tmp_path):
    cfg = make_config(model="sg", loss="nce", epochs=1, min_count=5, device="cuda")
    train(cfg, datapath("lee_background.cor"), tmp_path / "run", progress=False, log=lambda *_: None)
    st = torch.load(tmp_path / "run" / "checkpoint.pt", map_location="cpu", weights_only=False)
    gen = torch.Generator(device="cuda")
    gen.set_state(st["gen_state"])  # a CUDA generator's state is a CPU byte tensor
