"""The PyTorch step for every head (closed-form gradients against finite differences of the heads' losses, and
SGD applied to exactly the rows of the batch), and the plan: which step runs where, with which batch."""

import numpy as np
import pytest
import torch

from w2v_nce.step.plan import SHARED_NOISE, make_plan
from w2v_nce.step.torch_step import _exact, gradients, torch_step
from w2v_nce.config import make_config
from w2v_nce.errors import UsageError
from w2v_nce.model.heads import SoftmaxHead, make_head
from w2v_nce.model.word2vec import Word2Vec
from w2v_nce.model.sampling import AliasSampler

SAMPLED = ["neg", "nce", "hs", "infonce", "sampled-softmax"]


@pytest.fixture(autouse=True)
def double_precision():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # exact comparisons and finite differences
    yield
    torch.set_default_dtype(old)


def problem(loss, v=9, d=4, k=3, seed=0):
    counts = np.arange(v, 0, -1) * 3
    head = make_head(loss, counts, d, AliasSampler(counts, 0.75), k)
    g = torch.Generator().manual_seed(seed)
    head.weight.data = torch.randn(head.weight.shape, generator=g)
    head.bias.data = torch.randn(head.bias.shape, generator=g)
    hidden = torch.randn(5, d, generator=g)
    targets = torch.tensor([0, 1, 1, 8, 3])
    noise = torch.tensor([[0, 2, 2], [1, 1, 5], [4, 0, 6], [8, 2, 3], [1, 0, 0]])  # repeats and target hits
    cand = head.candidates(targets) if loss == "hs" else head.candidates(targets, noise=noise)
    return head, hidden, targets, cand


def dense(head, cand, g, hidden):
    """Per-candidate gradients d/dΔ (B, C) scattered into (R, D) and (R,) arrays."""
    flat = cand.rows.reshape(-1)
    gw = torch.zeros_like(head.weight).index_add_(0, flat, (g[:, :, None] * hidden[:, None, :]).reshape(len(flat), -1))
    return gw, torch.zeros_like(head.bias).index_add_(0, flat, g.reshape(-1))


def finite_differences(f, x, eps=1e-6):
    fd = torch.zeros_like(x)
    for i in range(x.numel()):
        xp, xm = x.clone(), x.clone()
        xp.view(-1)[i] += eps
        xm.view(-1)[i] -= eps
        fd.view(-1)[i] = (f(xp) - f(xm)) / (2 * eps)
    return fd


@pytest.mark.parametrize("loss", SAMPLED)
def test_closed_form_gradients_are_finite_differences_of_the_loss(loss):
    head, hidden, targets, cand = problem(loss)
    value, _, g, grad_hidden = gradients(head, hidden, cand)
    assert torch.allclose(value, head.loss(hidden, targets, cand), rtol=1e-12)
    grad_weight, grad_bias = dense(head, cand, g, hidden)
    w, b = head.weight.data, head.bias.data
    checks = {"hidden": (hidden, grad_hidden, lambda x: head.loss(x, targets, cand).sum().item()),
              "weight": (w, grad_weight, lambda x: head.loss(hidden, targets, cand, x, b).sum().item()),
              "bias": (b, grad_bias, lambda x: head.loss(hidden, targets, cand, w, x).sum().item())}
    for name, (x, grad, f) in checks.items():
        assert torch.allclose(grad, finite_differences(f, x), atol=1e-7), name


def test_exact_softmax_gradient_is_finite_differences_of_the_loss():
    g = torch.Generator().manual_seed(1)
    head = SoftmaxHead(6, 3)
    head.weight.data = torch.randn(6, 3, generator=g)
    head.bias.data = torch.randn(6, generator=g)
    hidden, targets = torch.randn(4, 3, generator=g), torch.tensor([0, 5, 5, 2])
    w0, b0, lr = head.weight.clone(), head.bias.clone(), 0.1
    fd = [finite_differences(lambda x: head.loss(hidden, targets, None, x, b0).sum().item(), w0),
          finite_differences(lambda x: head.loss(hidden, targets, None, w0, x).sum().item(), b0),
          finite_differences(lambda x: head.loss(x, targets, None, w0, b0).sum().item(), hidden)]
    loss, grad_hidden = _exact(head, hidden, targets, lr, True)
    assert torch.allclose(head.weight - w0, -lr * fd[0], atol=1e-8)
    assert torch.allclose(head.bias - b0, -lr * fd[1], atol=1e-8)
    assert torch.allclose(grad_hidden, fd[2], atol=1e-8)
    assert loss.item() == pytest.approx(head.loss(hidden, targets, None, w0, b0).sum().item())


@pytest.mark.parametrize("arch", ["sg", "cbow"])
@pytest.mark.parametrize("loss", SAMPLED)
def test_torch_step_applies_sgd_to_exactly_the_rows_of_the_batch(arch, loss):
    v, d, k, lr = 50, 8, 4, 0.05
    counts = np.arange(v, 0, -1) * 10
    head = make_head(loss, counts, d, AliasSampler(counts, 0.75), k)
    model = Word2Vec(v, d, arch, head, torch.Generator().manual_seed(0)).double()
    head.weight.data.normal_(0, 0.1)
    if arch == "sg":
        inputs, mask = torch.tensor([3, 4, 4, 9]), None
    else:
        inputs = torch.tensor([[3, 4, 0, 0], [4, 7, 9, 0]])
        mask = torch.tensor([[True, True, False, False], [True, True, True, False]])
    targets = torch.tensor([10, 11, 10, 12])[: len(inputs)]
    cand = head.candidates(targets, torch.Generator().manual_seed(5))  # the draws the step will make
    inp0, out0, b0 = model.input.clone(), head.weight.clone(), head.bias.clone()
    hidden = model.hidden(inputs, mask)
    _, _, g, grad_hidden = gradients(head, hidden, cand)
    grad_weight, grad_bias = dense(head, cand, g, hidden)
    torch_step(model, inputs, targets, lr, mask, torch.Generator().manual_seed(5))
    changed_out = set(torch.nonzero((head.weight != out0).any(1)).reshape(-1).tolist())
    assert changed_out == set(cand.rows[cand.valid].tolist())
    assert torch.allclose(head.weight - out0, -lr * grad_weight, atol=1e-12)
    assert torch.allclose(head.bias - b0, -lr * grad_bias * head.learns_bias, atol=1e-12)  # hs: no bias
    used_in = set(inputs[mask].tolist()) if mask is not None else set(inputs.tolist())
    assert set(torch.nonzero((model.input != inp0).any(1)).reshape(-1).tolist()) == used_in
    want = torch.zeros_like(inp0)
    if arch == "sg":
        want.index_add_(0, inputs, -lr * grad_hidden)
    else:  # word2vec's CBOW rule: every context word gets the full hidden gradient
        for b in range(len(inputs)):
            for c in inputs[b][mask[b]]:
                want[c] += -lr * grad_hidden[b]
    assert torch.allclose(model.input - inp0, want, atol=1e-12)


def test_plan_decides_the_step_and_its_batch_once():
    def cpu(**kw):
        return make_plan(make_config(device="cpu", **kw))

    for loss in SAMPLED:  # every sampled or tree head has the compiled step
        # sg-hs: its per-example updates make the batch only how often Python calls the loop (plan.CPU_BATCHES)
        for model in ("sg", "cbow"):
            got = cpu(loss=loss, model=model)
            assert (got.kernel, got.batch_size) == ("fused", 65536 if (model, loss) == ("sg", "hs") else 4096)
        assert cpu(loss=loss, kernel="torch").kernel == "torch"
    # the root's summed update, and every output row's of the exact softmax (plan.largest_summed_batch)
    assert (cpu(loss="softmax").kernel, cpu(loss="softmax").batch_size) == ("torch", 256)
    assert cpu(loss="hs", kernel="torch").batch_size == 256
    assert cpu(loss="neg", kernel="torch", batch_size=100).batch_size == 100
    with pytest.raises(UsageError, match="--kernel fused needs a sampled or tree head"):
        cpu(loss="softmax", kernel="fused")
    # shared noise: the default per model, a given one, and none where the PyTorch step runs
    assert cpu(model="sg").share == SHARED_NOISE["sg", "neg"] == 8 and cpu(model="sg", loss="nce").share == 8
    assert cpu(model="cbow").share == cpu(model="sg", loss="hs").share == 1
    assert cpu(model="sg", loss="infonce").share == 2
    assert cpu(model="sg", loss="sampled-softmax").share == 4 and cpu(model="cbow", loss="sampled-softmax").share == 1
    assert cpu(model="cbow", shared_noise=4).share == 4
    # under torchrun none by default (it cost 2 processes of sg-neg 0.016 of analogy), a given one kept
    assert make_plan(make_config(device="cpu", model="sg"), processes=2).share == 1
    assert make_plan(make_config(device="cpu", model="sg", shared_noise=8), processes=2).share == 8
    # with subwords none by default; a given one shared across skip-gram's centres (pieces.share_across), which
    # only the pieces (one process on the CPU) do
    assert cpu(model="sg", subwords="1-4").share == 1 and cpu(model="sg", subwords="1-4", shared_noise=8).share == 8
    with pytest.raises(UsageError, match="--shared-noise 8 with --subwords and --model sg runs in one process"):
        make_plan(make_config(device="cpu", model="sg", subwords="3-6", shared_noise=8), processes=2)
    assert make_plan(make_config(device="cpu", model="cbow", subwords="3-6", shared_noise=4), processes=2).share == 4
    assert cpu(kernel="torch").share == 1 and cpu(kernel="torch", shared_noise=1).share == 1
    with pytest.raises(UsageError, match="--shared-noise 8 runs on the fused steps only"):
        cpu(kernel="torch", shared_noise=8)
    with pytest.raises(UsageError, match="--shared-noise must be >= 1"):
        cpu(shared_noise=0)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA GPU"):
            make_plan(make_config(device="cuda"))
