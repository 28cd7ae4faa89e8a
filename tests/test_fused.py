"""The fused CPU kernel against an independent reference: word2vec's sequential update, written out in
float64 numpy, one example at a time; and its noise draws against q."""

import copy

import numpy as np
import pytest
import torch
from scipy import stats

from w2v_nce import fused
from w2v_nce.heads import make_head
from w2v_nce.model import Word2Vec
from w2v_nce.sampling import AliasSampler, noise_probs

pytestmark = pytest.mark.skipif(fused.numba is None, reason="numba is not installed")


@pytest.fixture(autouse=True)
def one_thread():
    # the kernel's result is a function of its input only with one thread (Hogwild with more)
    old = fused.numba.get_num_threads()
    fused.set_threads(1)
    yield
    fused.set_threads(old)


def reference(inp, out, bias, shift, ctx, valid, rows, lr, skip_target_noise):
    """word2vec's update, example by example: each output row is updated right after its score, the
    input rows after the example, with the full hidden gradient for every context word; the biases
    are summed over the batch and applied at its end. Returns the per-example losses."""
    inp, out, bias0 = inp.astype(np.float64), out.astype(np.float64), bias.astype(np.float64)
    dbias = np.zeros_like(bias0)
    losses = []
    for i in range(len(rows)):
        h = inp[ctx[i][valid[i]]].mean(0)
        grad = np.zeros_like(h)
        loss = 0.0
        for j, r in enumerate(rows[i]):
            if j > 0 and skip_target_noise and r == rows[i, 0]:
                continue
            delta = out[r] @ h + bias0[r] + shift[r]
            label = 1.0 if j == 0 else 0.0
            g = 1 / (1 + np.exp(-delta)) - label
            loss += np.logaddexp(0, -delta) if j == 0 else np.logaddexp(0, delta)
            grad += -lr * g * out[r]
            out[r] += -lr * g * h
            dbias[r] += -lr * g
        for w in ctx[i][valid[i]]:
            inp[w] += grad
        losses.append(loss)
    return inp, out, bias0 + dbias, np.array(losses)


def make_problem(arch, loss, n=300, v=40, dim=16, k=3, seed=0):
    rng = np.random.default_rng(seed)
    counts = (1000 / np.arange(1, v + 1)).astype(np.int64) + 1
    sampler = AliasSampler(counts, 0.75)
    head = make_head(loss, v, dim, sampler, k)
    model = Word2Vec(v, dim, arch, head, torch.Generator().manual_seed(seed))
    head.weight.copy_(torch.from_numpy(rng.normal(0, 0.3, (v, dim)).astype(np.float32)))
    model.input.mul_(50)  # larger input vectors, so that the scores are far from 0 and the test is sharp
    # a small vocabulary, so that rows repeat within the batch and the order of the updates matters
    targets = rng.integers(0, v, n)
    if arch == "sg":
        ctx, valid = rng.integers(0, v, (n, 1)), np.ones((n, 1), dtype=bool)
    else:
        ctx, valid = rng.integers(0, v, (n, 6)), rng.random((n, 6)) < 0.6
        valid[:, 0] = True
    return model, ctx, valid, targets


@pytest.mark.parametrize("arch", ["sg", "cbow"])
@pytest.mark.parametrize("loss", ["neg", "nce"])
def test_kernel_equals_sequential_reference(arch, loss):
    model, ctx, valid, targets = make_problem(arch, loss)
    head = model.head
    rows = np.empty((len(targets), 1 + head.k), dtype=np.int64)
    rows[:, 0] = targets
    args = [a.numpy().copy() for a in (model.input, head.weight, head.bias, head.shift)]
    got_loss = np.zeros(len(targets), dtype=np.float32)
    inp, out, bias, shift = args
    fused.step(inp, out, bias, shift, ctx, valid, rows, 1234, head.sampler.prob.numpy(),
               head.sampler.alias.numpy(), 0.3, loss == "neg", True, got_loss)
    # the kernel drew the noise into rows[:, 1:]; replay the same rows through the reference
    want = reference(*(a.numpy() for a in (model.input, head.weight, head.bias, head.shift)), ctx, valid, rows,
                     0.3, loss == "neg")
    assert (rows[:, 1:] == targets[:, None]).any(), "the test should include noise equal to the target"
    for got, ref in zip((inp, out, bias, got_loss), want):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert np.abs(inp - model.input.numpy()).max() > 0.1  # it did train


def test_single_example_equals_torch_head():
    """One example per step, with distinct target and noise words: then word2vec's sequential update
    and the PyTorch head's mini-batch step are the same function."""
    for loss in ("neg", "nce"):
        model, ctx, valid, targets = make_problem("cbow", loss, n=60)
        torch_model = copy.deepcopy(model)
        model.fused = True
        prob, alias = model.head.sampler.prob.numpy(), model.head.sampler.alias.numpy()
        compared = 0
        for i in range(len(targets)):
            g1, g2 = torch.Generator().manual_seed(i), torch.Generator().manual_seed(i)
            # the noise the kernel will draw: the batch seed, then the counter-based draws 1..k
            seed = int(torch.randint(2**62, (1,), generator=torch.Generator().manual_seed(i)))
            rows = np.array([[targets[i]] + [fused._noise(np.uint64(seed), j, prob, alias)
                                             for j in range(1, 1 + model.head.k)]])
            if len(set(rows[0])) < rows.shape[1]:
                continue  # a repeated row: word2vec reads it again after its first update, the batch step does not
            inputs, mask = torch.from_numpy(ctx[i:i + 1]), torch.from_numpy(valid[i:i + 1])
            tgt = torch.from_numpy(targets[i:i + 1])
            l1 = model.train_step(inputs, tgt, 0.2, mask, g1)
            torch.randint(2**62, (1,), generator=g2)  # keep the two generators in step
            torch_model.head.sampler.draw = lambda shape, gen, r=rows: torch.from_numpy(r[:, 1:])
            l2 = torch_model.train_step(inputs, tgt, 0.2, mask, g2)
            assert float(l1) == pytest.approx(float(l2), rel=1e-5)
            compared += 1
        assert compared >= 20
        for a, b in ((model.input, torch_model.input), (model.head.weight, torch_model.head.weight),
                     (model.head.bias, torch_model.head.bias)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_noise_follows_q():
    counts = (1e6 / np.arange(1, 2001) ** 1.1).astype(np.int64) + 1
    sampler = AliasSampler(counts, 0.75)
    q = noise_probs(counts, 0.75)
    n, k = 100_000, 5
    rows = np.zeros((n, 1 + k), dtype=np.int64)
    emb = np.zeros((len(counts), 4), dtype=np.float32)
    zeros = np.zeros(len(counts), dtype=np.float32)
    fused.step(emb, emb.copy(), zeros.copy(), zeros, np.zeros((n, 1), dtype=np.int64), np.ones((n, 1), dtype=bool),
               rows, 99, sampler.prob.numpy(), sampler.alias.numpy(), 0.0, False, False, np.zeros(n, dtype=np.float32))
    draws = rows[:, 1:]
    # pool the tail into one cell so that every expected count is >= 20
    expected = q * draws.size
    cut = int(np.argmax(expected < 20)) if (expected < 20).any() else len(q)
    obs = np.bincount(draws.ravel(), minlength=len(q))
    obs, exp = np.append(obs[:cut], obs[cut:].sum()), np.append(expected[:cut], expected[cut:].sum())
    obs, exp = obs[exp > 0], exp[exp > 0]
    assert stats.chisquare(obs, exp).pvalue > 1e-3
    # neighbouring draws are independent: the same word twice in a row as often as q predicts
    same = (draws[:, :-1] == draws[:, 1:]).mean()
    assert same == pytest.approx((q ** 2).sum(), rel=0.05)
    # another seed gives other draws
    rows2 = rows.copy()
    fused.step(emb, emb.copy(), zeros.copy(), zeros, np.zeros((n, 1), dtype=np.int64), np.ones((n, 1), dtype=bool),
               rows2, 100, sampler.prob.numpy(), sampler.alias.numpy(), 0.0, False, False, np.zeros(n, dtype=np.float32))
    assert (rows2[:, 1:] != draws).mean() > 0.9


def test_non_finite_score_is_reported():
    model, ctx, valid, targets = make_problem("sg", "neg", n=10)
    model.head.weight[3, 0] = float("inf")
    model.fused = True
    targets[:] = 3
    probe = model.train_step(torch.from_numpy(ctx[:, 0]), torch.from_numpy(targets), 0.1, None,
                             torch.Generator().manual_seed(0), need_loss=False)
    assert not torch.isfinite(probe)
