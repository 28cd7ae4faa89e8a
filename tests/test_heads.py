import math

import numpy as np
import pytest
import torch

from w2v_nce.heads import SampledHead, SoftmaxHead
from w2v_nce.model import Word2Vec
from w2v_nce.sampling import AliasSampler


@pytest.fixture(autouse=True)
def double_precision():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # exact comparisons and finite differences
    yield
    torch.set_default_dtype(old)


def logsig(x):
    return -math.log1p(math.exp(-x))


def tiny(head):
    # V = 3, D = 2, h = (1, 2): scores s = W h + b = (0.5 - 2 + 0.1, 1 + 0 - 0.2, 0 + 0.5 + 0.3) = (-1.4, 0.8, 0.8)
    head.weight.data = torch.tensor([[0.5, -1.0], [1.0, 0.0], [0.0, 0.25]])
    head.bias.data = torch.tensor([0.1, -0.2, 0.3])
    return head, torch.tensor([[1.0, 2.0]])


def sampler():
    # counts (2, 1, 1) with power 1 give q = (1/2, 1/4, 1/4)
    return AliasSampler(np.array([2, 1, 1]), power=1.0)


def test_softmax_loss_by_hand():
    head, h = tiny(SoftmaxHead(3, 2))
    want = -0.8 + math.log(math.exp(-1.4) + 2 * math.exp(0.8))
    assert head.loss(h, torch.tensor([1])).item() == pytest.approx(want, rel=1e-12)
    assert head.log_prob(h).exp().sum().item() == pytest.approx(1.0)


def test_neg_loss_by_hand():
    head, h = tiny(SampledHead(3, 2, sampler(), 2, nce=False))
    want = -logsig(-1.4) - logsig(-0.8) - logsig(-0.8)  # -log σ(s⁺) - Σ log σ(-s⁻)
    assert head.loss(h, torch.tensor([0]), torch.tensor([[1, 2]])).item() == pytest.approx(want, rel=1e-12)
    # word2vec skips a noise word equal to the target
    want_skip = -logsig(-1.4) - logsig(-0.8)
    assert head.loss(h, torch.tensor([0]), torch.tensor([[0, 2]])).item() == pytest.approx(want_skip, rel=1e-12)


def test_nce_loss_by_hand():
    head, h = tiny(SampledHead(3, 2, sampler(), 2, nce=True))
    # k q = (1, 1/2, 1/2): Δ = s - log(k q) = (-1.4, 0.8 + log 2, 0.8 + log 2)
    d1 = 0.8 + math.log(2)
    want = -logsig(-1.4) - 2 * math.log(1 - 1 / (1 + math.exp(-d1)))
    # rel 1e-6: the shift -log(k q) is held in float32, the training precision
    assert head.loss(h, torch.tensor([0]), torch.tensor([[1, 2]])).item() == pytest.approx(want, rel=1e-6)
    # NCE keeps a noise draw equal to the target: it is an independent sample from q
    d0 = -1.4
    want_same = -logsig(d0) - math.log(1 - 1 / (1 + math.exp(-d0))) - math.log(1 - 1 / (1 + math.exp(-d1)))
    assert head.loss(h, torch.tensor([0]), torch.tensor([[0, 2]])).item() == pytest.approx(want_same, rel=1e-6)


def test_nce_and_neg_differ_only_by_the_log_kq_shift():
    s = sampler()
    neg, h = tiny(SampledHead(3, 2, s, 2, nce=False))
    nce, _ = tiny(SampledHead(3, 2, s, 2, nce=True))
    # moving the shift into the bias turns NCE into NEG (with no skipped noise words)
    neg.bias.data = nce.bias.data + nce.shift
    t, noise = torch.tensor([0]), torch.tensor([[1, 2]])
    assert neg.loss(h, t, noise).item() == pytest.approx(nce.loss(h, t, noise).item(), rel=1e-12)


def random_head(nce: bool, v=7, d=4, k=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    head = SampledHead(v, d, AliasSampler(np.arange(v, 0, -1) * 3, 0.75), k, nce=nce)
    head.weight.data = torch.randn(v, d, generator=g)
    head.bias.data = torch.randn(v, generator=g)
    b = 5
    hidden = torch.randn(b, d, generator=g)
    targets = torch.tensor([0, 1, 1, 6, 3])
    noise = torch.tensor([[0, 2, 2], [1, 1, 5], [4, 0, 6], [6, 2, 3], [1, 0, 0]])  # repeats and target hits
    return head, hidden, targets, noise


def dense_grads(head, hidden, targets, noise):
    """The closed-form gradients of heads.gradients, scattered into full (V, D) / (V,) arrays."""
    loss, rows, g, gh = head.gradients(hidden, targets, noise)
    gw = torch.zeros_like(head.weight).index_add_(0, rows.reshape(-1), (g[:, :, None] * hidden[:, None, :]).reshape(-1, hidden.shape[1]))
    gb = torch.zeros_like(head.bias).index_add_(0, rows.reshape(-1), g.reshape(-1))
    return loss, gh, gw, gb


@pytest.mark.parametrize("nce", [False, True], ids=["neg", "nce"])
def test_sampled_gradients_match_finite_differences(nce):
    head, hidden, targets, noise = random_head(nce)
    loss, gh, gw, gb = dense_grads(head, hidden, targets, noise)
    assert torch.allclose(loss, head.loss(hidden, targets, noise), rtol=1e-12)
    eps = 1e-6

    def f(hh=hidden, w=head.weight, b=head.bias):
        return head.loss(hh, targets, noise, w, b).sum().item()

    for name, x, grad in (("hidden", hidden, gh), ("weight", head.weight.data, gw), ("bias", head.bias.data, gb)):
        fd = torch.zeros_like(x)
        for i in range(x.numel()):
            xp, xm = x.clone(), x.clone()
            xp.view(-1)[i] += eps
            xm.view(-1)[i] -= eps
            kw = {"hh": "hidden", "w": "weight", "b": "bias"}
            arg = [k for k, v in kw.items() if v == name][0]
            fd.view(-1)[i] = (f(**{arg: xp}) - f(**{arg: xm})) / (2 * eps)
        assert torch.allclose(grad, fd, atol=1e-7), name


def test_softmax_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(1)
    head = SoftmaxHead(6, 3)
    head.weight.data = torch.randn(6, 3, generator=g)
    head.bias.data = torch.randn(6, generator=g)
    hidden = torch.randn(4, 3, generator=g)
    targets = torch.tensor([0, 5, 5, 2])
    h = hidden.clone().requires_grad_()
    w = head.weight.detach().clone().requires_grad_()
    b = head.bias.detach().clone().requires_grad_()
    head.loss(h, targets, None, w, b).sum().backward()
    assert torch.autograd.gradcheck(lambda hh, ww, bb: head.loss(hh, targets, None, ww, bb).sum(),
                                    (hidden.clone().requires_grad_(), w.detach().clone().requires_grad_(),
                                     b.detach().clone().requires_grad_()))
    # the training step applies exactly -lr times these gradients
    w0, b0, lr = head.weight.clone(), head.bias.clone(), 0.1
    loss, grad_hidden = head.step(hidden, targets, lr)
    assert torch.allclose(grad_hidden, h.grad, atol=1e-12)
    assert torch.allclose(head.weight - w0, -lr * w.grad, atol=1e-12)
    assert torch.allclose(head.bias - b0, -lr * b.grad, atol=1e-12)
    assert loss.item() == pytest.approx(head.loss(hidden, targets, None, w0, b0).sum().item())


@pytest.mark.parametrize("arch", ["sg", "cbow"])
@pytest.mark.parametrize("loss", ["neg", "nce"])
def test_train_step_touches_only_batch_rows_and_applies_sgd(arch, loss):
    v, d, k, lr = 50, 8, 4, 0.05
    s = AliasSampler(np.arange(v, 0, -1) * 10, 0.75)
    head = SampledHead(v, d, s, k, nce=loss == "nce")
    model = Word2Vec(v, d, arch, head, torch.Generator().manual_seed(0)).double()
    head.weight.data.normal_(0, 0.1)
    if arch == "sg":
        inputs, mask = torch.tensor([3, 4, 4, 9]), None
    else:
        inputs = torch.tensor([[3, 4, 0, 0], [4, 7, 9, 0]])
        mask = torch.tensor([[True, True, False, False], [True, True, True, False]])
    targets = torch.tensor([10, 11, 10, 12])[: len(inputs)]
    gen = torch.Generator().manual_seed(5)
    noise = s.draw((len(targets), k), torch.Generator().manual_seed(5))  # the draws the step will make
    inp0, out0, b0 = model.input.clone(), head.weight.clone(), head.bias.clone()
    hidden = model.hidden(inputs, mask)
    _, gh, gw, gb = dense_grads(head, hidden, targets, noise)
    model.train_step(inputs, targets, lr, mask, gen)
    touched_out = set(targets.tolist()) | set(noise.reshape(-1).tolist())
    changed_out = set(torch.nonzero((head.weight != out0).any(1)).reshape(-1).tolist())
    assert changed_out == touched_out
    assert torch.allclose(head.weight - out0, -lr * gw, atol=1e-12)
    assert torch.allclose(head.bias - b0, -lr * gb, atol=1e-12)
    used_in = set(inputs[mask].tolist()) if mask is not None else set(inputs.tolist())
    changed_in = set(torch.nonzero((model.input != inp0).any(1)).reshape(-1).tolist())
    assert changed_in == used_in
    want = torch.zeros_like(inp0)
    if arch == "sg":
        want.index_add_(0, inputs, -lr * gh)
    else:  # word2vec's CBOW rule: every context word gets the full hidden gradient
        for b in range(len(inputs)):
            for c in inputs[b][mask[b]]:
                want[c] += -lr * gh[b]
    assert torch.allclose(model.input - inp0, want, atol=1e-12)
