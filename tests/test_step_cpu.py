"""The compiled CPU loops (step/cpu.py, step/update.py) for every head, against the heads' own description of an example: word2vec's
sequential update written out in float64 numpy from `head.candidates`, and, one example at a time, -lr times the
gradient of `head.loss`; and the noise draws against q."""

import numpy as np
import pytest
import torch
from scipy import stats

from w2v_nce.step import cpu, kernel, update
from w2v_nce.model.heads import LOGISTIC, make_head
from w2v_nce.model.word2vec import Word2Vec
from w2v_nce.model.sampling import AliasSampler, noise_probs

pytestmark = pytest.mark.skipif(cpu.numba is None, reason="numba is not installed")
SAMPLED = ["neg", "nce", "hs", "infonce", "sampled-softmax"]


@pytest.fixture(autouse=True)
def one_thread():
    # the kernel's result is a function of its input only with one thread (Hogwild with more)
    old = cpu.numba.get_num_threads()
    cpu.set_threads(1)
    yield
    cpu.set_threads(old)


def make_problem(arch, loss, n=300, v=40, dim=16, k=3, seed=0):
    rng = np.random.default_rng(seed)
    counts = (1000 / np.arange(1, v + 1)).astype(np.int64) + 1
    head = make_head(loss, counts, dim, AliasSampler(counts, 0.75), k)
    model = Word2Vec(v, dim, arch, head, torch.Generator().manual_seed(seed))
    head.weight.copy_(torch.from_numpy(rng.normal(0, 0.3, head.weight.shape).astype(np.float32)))
    model.input.mul_(50)  # larger input vectors, so that the scores are far from 0 and the test is sharp
    # a small vocabulary, so that rows repeat within the batch and the order of the updates matters
    targets = rng.integers(0, v, n)
    if arch == "sg":
        ctx, valid = rng.integers(0, v, (n, 1)), np.ones((n, 1), dtype=bool)
    else:
        ctx, valid = rng.integers(0, v, (n, 6)), rng.random((n, 6)) < 0.6
        valid[:, 0] = True
    return model, ctx, valid, targets


def run_kernel(model, ctx, valid, targets, lr, seed=1234, need_loss=True):
    """One step of the compiled loop on copies: (input, output, bias, candidate rows, losses) after it."""
    family, tab, width = kernel.tables(model.head)
    inp, out, bias = (t.numpy().copy() for t in (model.input, model.head.weight, model.head.bias))
    rows, coef = np.zeros((len(targets), width), np.int64), np.zeros((len(targets), width), np.float32)
    loss = np.zeros(len(targets), np.float32)
    cpu.step(family, inp, out, bias, ctx, valid, targets, rows, coef, loss, lr, need_loss, tab, seed)
    return inp, out, bias, rows, loss


def candidates_of(head, targets, rows):
    """The head's description of these examples, with the noise words the kernel drew (its rows)."""
    t = torch.from_numpy(targets)
    return head.candidates(t) if not hasattr(head, "sampler") else head.candidates(t, noise=torch.from_numpy(rows[:, 1:]))


def reference(head, inp, out, bias, ctx, valid, cand, lr, bias_now=False):
    """word2vec's update, example by example, in float64, from the head's candidates: each example's hidden vector
    from the input rows as they are; a logistic head updates each output row right after its term, a softmax head
    after all of the example's scores; the input rows get the full hidden gradient after the example; the biases
    are summed over the batch and applied at its end (hs has none to learn), or with bias_now each at once, like
    its row; |dL/dΔ| < 1e-6 is skipped (kernel.TINY). Returns the arrays after the step and the per-example
    losses."""
    inp, out, bias0 = inp.astype(np.float64), out.astype(np.float64), bias.astype(np.float64)
    rows, labels, shift, ok = (x.numpy() for x in cand)
    dbias, losses = np.zeros_like(bias0), []
    for i in range(len(rows)):
        h = inp[ctx[i][valid[i]]].mean(0)
        grad, loss = np.zeros_like(h), 0.0
        js = np.nonzero(ok[i])[0]
        if head.family == LOGISTIC:
            coefs = []
            for j in js:
                r = rows[i, j]
                delta = out[r] @ h + bias0[r] + shift[i, j]
                loss += np.logaddexp(0, -delta if labels[i, j] else delta)
                g = 1 / (1 + np.exp(-delta)) - labels[i, j]
                coefs.append(-lr * g if abs(g) >= kernel.TINY else 0.0)
                grad += coefs[-1] * out[r]
                out[r] += coefs[-1] * h
                bias0[r] += coefs[-1] * (bias_now and head.learns_bias)
        else:
            deltas = np.array([out[rows[i, j]] @ h + bias0[rows[i, j]] + shift[i, j] for j in js])
            loss = np.logaddexp.reduce(deltas) - deltas[0]
            g = np.exp(deltas - np.logaddexp.reduce(deltas)) - (js == 0)
            coefs = np.where(np.abs(g) >= kernel.TINY, -lr * g, 0.0)
            for j, c in zip(js, coefs):
                grad += c * out[rows[i, j]]
                out[rows[i, j]] += c * h
                bias0[rows[i, j]] += c * (bias_now and head.learns_bias)
        for j, c in zip(js, coefs):
            dbias[rows[i, j]] += c * (not bias_now)
        np.add.at(inp, ctx[i][valid[i]], grad)  # a context word twice in the window gets it twice
        losses.append(loss)
    return inp, out, bias0 + dbias * head.learns_bias, np.array(losses)


@pytest.mark.parametrize("arch", ["sg", "cbow"])
@pytest.mark.parametrize("loss", SAMPLED)
@pytest.mark.parametrize("dim", [16, 100, 101])  # 100: the kernel compiled for the rows' length (update.fixed_for)
def test_kernel_equals_the_sequential_reference(arch, loss, dim):
    model, ctx, valid, targets = make_problem(arch, loss, dim=dim)
    head = model.head
    inp, out, bias, rows, losses = run_kernel(model, ctx, valid, targets, 0.3)
    kernel = cpu._logistic_step if head.family == LOGISTIC else cpu._softmax_step
    fixed = [len(sig[7]) for sig in kernel.signatures]  # the 8th argument: the tuple whose length is the dim
    assert (dim in fixed) == (update.FIXED_FROM <= dim <= cpu.numba.config.PARFOR_MAX_TUPLE_SIZE)
    cand = candidates_of(head, targets, rows)
    assert (rows == cand.rows.numpy()).all()  # the kernel's candidates are the head's (hs: its paths)
    if loss != "hs":
        assert (rows[:, 1:] == targets[:, None]).any(), "the test should include noise equal to the target"
        # and a noise word drawn twice in one example: the logistic loop scores every candidate first, and one whose
        # row an earlier candidate updated again (update._noise_example)
        assert any(len(set(r[1:])) < len(r) - 1 for r in rows.tolist()), "the test should include a repeated draw"
    want = reference(head, *(a.numpy() for a in (model.input, head.weight, head.bias)), ctx, valid, cand, 0.3)
    for got, ref in zip((inp, out, bias, losses), want):
        # float32 rounding grows with the size of the terms summed, not of the result: an entry near 0 that is
        # the difference of entries near 4 carries their rounding (numba 0.59 vectorises differently: 1.9e-5)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max())))
    assert np.abs(inp - model.input.numpy()).max() > 0.1  # it did train


@pytest.mark.parametrize("dim", [16, 100])
def test_skip_gram_hs_on_a_centres_pairs_in_a_row_as_the_sequential_reference(dim):
    """Skip-gram's hs on examples as the examples' makers give them: runs of one target (a centre's pairs, one path
    trained again and again) with distinct context words, some with a context word twice, against the float64
    reference of one example after another (a kernel that trains such a run as one, log section 31, is held here)."""
    model, _, _, _ = make_problem("sg", "hs", dim=dim)
    rng = np.random.default_rng(3)
    ctx, targets = [], []
    for run in [1, 2, 6, 10, 3, 21, 7, 1, 4, 8]:
        centre = rng.integers(0, 40)
        words = list(rng.choice(40, size=run, replace=False))
        if run in (7, 8):
            words[4] = words[1]  # the same context word twice in the window
        ctx += words
        targets += [centre] * run
    ctx, targets = np.array(ctx)[:, None], np.array(targets)
    valid = np.ones_like(ctx, dtype=bool)
    inp, out, bias, rows, losses = run_kernel(model, ctx, valid, targets, 0.3)
    head = model.head
    want = reference(head, *(a.numpy() for a in (model.input, head.weight, head.bias)), ctx, valid,
                     candidates_of(head, targets, rows), 0.3)
    for got, ref in zip((inp, out, bias, losses), want):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max())))
    assert np.abs(out - head.weight.numpy()).max() > 0.1  # it did train


@pytest.mark.parametrize("arch", ["sg", "cbow"])
def test_hs_nodes_below_and_among_the_copied_top_ones(arch):
    """hs with more inner nodes than update.TOP_NODES: the nodes nearest the root are read and written in the
    thread's copy and merged at the end, the others in place; both against the sequential reference."""
    model, ctx, valid, targets = make_problem(arch, "hs", n=600, v=3 * update.TOP_NODES)
    # lr 0.1: at 0.3 these 600 examples amplify float32's rounding past the tolerance (any version of the kernel)
    inp, out, bias, rows, losses = run_kernel(model, ctx, valid, targets, 0.1)
    used = np.unique(rows[rows >= 0])
    top = model.head.weight.shape[0] - update.TOP_NODES
    assert (used >= top).any() and (used < top).sum() > 100  # both kinds of node are trained
    want = reference(model.head, *(a.numpy() for a in (model.input, model.head.weight, model.head.bias)), ctx,
                     valid, candidates_of(model.head, targets, rows), 0.1)
    for got, ref in zip((inp, out, bias, losses), want):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max())))


def test_sync_gives_a_threads_changes_and_takes_the_others():
    """hs with several threads: _sync adds a thread's changes to its copy of the top rows (copy - base) to the shared
    rows, where another thread's changes may have landed meanwhile, and takes the sum as its new copy and base."""
    rng = np.random.default_rng(0)
    out = rng.normal(size=(6, 4)).astype(np.float32)
    base = np.zeros((2, 4 + 32), np.float32)
    mine = np.zeros_like(base)
    update._sync(out, 4, mine, base, False)  # take rows 4 and 5
    assert (mine[:, :4] == out[4:]).all() and (base[:, :4] == out[4:]).all()
    taken = out[4:].copy()
    mine[:, :4] += 0.5  # this thread's changes
    out[4:] += 0.25  # another thread's, given meanwhile
    update._sync(out, 4, mine, base, True)
    np.testing.assert_allclose(out[4:], taken + 0.75, rtol=1e-6)
    assert (mine[:, :4] == out[4:]).all() and (base[:, :4] == out[4:]).all()


@pytest.mark.parametrize("arch", ["sg", "cbow"])
@pytest.mark.parametrize("loss", ["nce", "sampled-softmax"])
def test_bias_now_applies_each_bias_change_at_once(arch, loss):
    """bias_now (the GPU's rule, and the CPU kernel's for its self-check): each bias change lands before the next
    score reads it, as a row's does; it differs from the batch-end sum, and is the sequential reference's."""
    model, ctx, valid, targets = make_problem(arch, loss)
    head = model.head
    family, tab, width = kernel.tables(head)
    start = [t.numpy().copy() for t in (model.input, head.weight, head.bias)]
    out = {}
    for now in (False, True):
        n = len(targets)
        arrays = [a.copy() for a in start] + [np.zeros((n, width), np.int64), np.zeros((n, width), np.float32),
                                              np.zeros(n, np.float32)]
        cpu.step(family, *arrays[:3], ctx, valid, targets, *arrays[3:], 0.3, True, tab._replace(bias_now=now), 5)
        out[now] = arrays
    rows = out[True][3]
    assert (rows == out[False][3]).all()  # the same draws
    want = reference(head, *start, ctx, valid, candidates_of(head, targets, rows), 0.3, bias_now=True)
    for got, ref in zip([out[True][i] for i in (0, 1, 2, 5)], want):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max())))
    assert np.abs(out[True][2] - out[False][2]).max() > 1e-3  # the rule changes the result


@pytest.mark.parametrize("arch", ["sg", "cbow"])
@pytest.mark.parametrize("loss", SAMPLED)
def test_one_example_moves_by_minus_lr_times_the_gradient_of_the_loss(arch, loss):
    """With one example whose candidates are distinct rows, the sequential update is exactly -lr times the
    gradient of head.loss (taken here by autograd in float64): the kernels' math is the heads' definition."""
    model, ctx, valid, targets = make_problem(arch, loss, n=40, dim=8)
    model.input.div_(50)  # moderate scores: no term below the 1e-6 cut
    head, lr, compared = model.head, 0.1, 0
    for i in range(len(targets)):
        one = (ctx[i:i + 1], valid[i:i + 1], targets[i:i + 1])
        inp, out, bias, rows, losses = run_kernel(model, *one, lr, seed=i)
        cand = candidates_of(head, targets[i:i + 1], rows)
        used = cand.rows[cand.valid]
        if len(set(used.tolist())) < len(used):
            continue  # a repeated row: the sequential update reads it again after its first change
        params = [t.detach().double().requires_grad_() for t in (model.input, head.weight, head.bias)]
        c = torch.from_numpy(ctx[i][valid[i]])
        hidden = params[0][c].mean(0, keepdim=True)
        hidden.retain_grad()
        value = head.loss(hidden, torch.from_numpy(targets[i:i + 1]), cand, params[1], params[2]).sum()
        value.backward()
        assert losses[0] == pytest.approx(value.item(), rel=1e-5)
        # every context slot gets the full gradient of the hidden vector (word2vec's CBOW rule), not 1/n of it
        want_inp = model.input.double().index_add(0, c, -lr * hidden.grad.expand(len(c), -1))
        for got, before, grad in ((out, head.weight, params[1].grad),
                                  (bias, head.bias, params[2].grad * head.learns_bias)):
            np.testing.assert_allclose(got, (before.double() - lr * grad).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(inp, want_inp.numpy(), rtol=1e-5, atol=1e-6)
        compared += 1
    assert compared >= 10


def test_noise_follows_q():
    counts = (1e6 / np.arange(1, 2001) ** 1.1).astype(np.int64) + 1
    q = noise_probs(counts, 0.75)
    n, k = 100_000, 5
    head = make_head("neg", counts, 4, AliasSampler(counts, 0.75), k)
    model = Word2Vec(len(counts), 4, "sg", head)
    ctx, valid = np.zeros((n, 1), dtype=np.int64), np.ones((n, 1), dtype=bool)
    *_, rows, _ = run_kernel(model, ctx, valid, np.zeros(n, dtype=np.int64), 0.0, seed=99, need_loss=False)
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
    *_, rows2, _ = run_kernel(model, ctx, valid, np.zeros(n, dtype=np.int64), 0.0, seed=100, need_loss=False)
    assert (rows2[:, 1:] != draws).mean() > 0.9


@cpu.numba.njit
def _exp32_all(xs, out):
    for i in range(len(xs)):
        out[i] = update._exp32(xs[i])


def test_exp32_is_within_2_ulp_of_exp_and_keeps_nan():
    """The CPU kernels' exp (update.exp32) against float64's over the whole range the
    kernels meet, on 2M points and at the powers of 2 of its range reduction; and its ends and NaN."""
    xs = np.concatenate([np.linspace(-87, 88, 2_000_001, dtype=np.float32),
                         np.float32(np.log(2.0) * np.arange(-125, 127)), np.float32([0.0, -0.0, 1e-30, -1e-30])])
    got = np.empty_like(xs)
    _exp32_all(xs, got)
    exact = np.exp(xs.astype(np.float64))
    assert np.abs(got / exact - 1).max() < 2.4e-7  # float32's ulp is 2^-23 = 1.19e-7 of the value, at most
    assert got[-4:].tolist() == [1.0, 1.0, 1.0, 1.0]
    ends = np.float32([-np.inf, -1000, np.inf, 1000, np.nan])
    _exp32_all(ends, got[:5])
    assert got[0] == got[1] == pytest.approx(1.18e-38, rel=0.01)  # only ever added to 1 or more
    assert got[2] == got[3] == pytest.approx(np.exp(88.0), rel=1e-6)
    assert np.isnan(got[4])


@cpu.numba.njit
def _log32_all(xs, out):
    for i in range(len(xs)):
        out[i] = update._log32(xs[i])


def test_log32_is_within_1_ulp_of_log_and_keeps_nan():
    """The CPU kernels' log (update.log32) against float64's over every binade of the positive normal float32s, densely
    where the loss takes it (a product of terms in [1/2, 1], a softmax's sum of at least 1), at the powers of 2 of its
    range reduction; and libm's answer outside them (NaN, 0, negatives, subnormals, inf)."""
    xs = np.concatenate([np.geomspace(1.1754944e-38, 3.4e38, 1_000_001).astype(np.float32),
                         np.linspace(0.5, 2, 1_000_001, dtype=np.float32),
                         np.linspace(2, 100, 100_001, dtype=np.float32),
                         np.float32(2.0) ** np.arange(-126, 128).astype(np.float32),
                         np.float32([0.70710677, 0.70710683])])
    got = np.empty_like(xs)
    _log32_all(xs, got)
    exact = np.log(xs.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)  # of the result: 2^-149 at log 1 = 0
    assert (np.abs(got - exact) / ulp).max() <= 1.0
    ends = np.float32([np.nan, 0.0, -1.0, 1e-40, np.inf])
    got = np.empty_like(ends)
    _log32_all(ends, got)
    assert np.isnan(got[0]) and got[1] == -np.inf and np.isnan(got[2]) and np.isinf(got[4]) and got[4] > 0
    assert got[3] == pytest.approx(np.log(1e-40), rel=1e-6)


@pytest.mark.parametrize("loss", SAMPLED)
def test_non_finite_score_is_reported(loss):
    model, ctx, valid, targets = make_problem("sg", loss, n=10)
    model.head.weight[:, 0] = float("inf")
    probe = cpu.train_step(model, torch.from_numpy(ctx[:, 0]), torch.from_numpy(targets), 0.1, None,
                             torch.Generator().manual_seed(0), need_loss=False)
    assert not torch.isfinite(probe)


def test_the_cpus_packed_alias_table_draws_what_the_gpus_draws():
    """Tables.entries (each column's alias and probability in one int64, the CPU's) gives every draw the table read
    apart gives (kernel.split_entry, the GPU's): the same noise stream on both backends."""
    counts = (5000 / np.arange(1, 301)).astype(np.int64) + 1
    head = make_head("neg", counts, 8, AliasSampler(counts, 0.75), 5)
    family, tab, width = kernel.tables(head)
    split = cpu.numba.njit(kernel.draw_function(cpu.numba.njit(kernel.split_entry)))
    for seed in (0, 77, 2**63 + 5):
        got = [update._noise(np.uint64(seed), m, tab.prob, tab.entries) for m in range(3000)]
        assert got == [split(np.uint64(seed), m, tab.prob, tab.alias) for m in range(3000)]
        assert len(set(got)) > 100  # draws of many words, through both sides of the table


@pytest.mark.parametrize("arch", ["sg", "cbow"])
@pytest.mark.parametrize("loss", ["neg", "nce", "infonce", "sampled-softmax"])
def test_shared_noise_draws_once_for_each_run_of_examples(arch, loss):
    """--shared-noise N: examples a..a+N-1 (a a multiple of N) take the draws of example a; each is then updated as
    the exact step updates it, so the float64 reference of the same candidates still holds."""
    model, ctx, valid, targets = make_problem(arch, loss, n=90)
    head = model.head
    family, tab, width = kernel.tables(head)
    arrays = [t.numpy().copy() for t in (model.input, head.weight, head.bias)]
    n = len(targets)
    rows, coef, losses = np.zeros((n, width), np.int64), np.zeros((n, width), np.float32), np.zeros(n, np.float32)
    cpu.step(family, *arrays, ctx, valid, targets, rows, coef, losses, 0.3, True, tab._replace(share=4), 77)
    for i in range(n):
        a = i - i % 4
        want = [update._noise(np.uint64(77), a * width + j, tab.prob, tab.entries) for j in range(1, width)]
        assert rows[i, 1:].tolist() == want
    ref = reference(head, *(t.numpy() for t in (model.input, head.weight, head.bias)), ctx, valid,
                    candidates_of(head, targets, rows), 0.3)
    for got, r in zip(arrays + [losses], ref):
        np.testing.assert_allclose(got, r, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(r).max())))


@pytest.mark.parametrize("loss", ["neg", "infonce"])
def test_shared_noise_draws_where_the_batch_says(loss):
    """Batch.first (pieces.share_across): each example takes the draws of the example it names, an earlier one or
    itself, whatever their distance; each is then updated as the exact step updates it (the float64 reference of
    the same candidates)."""
    model, ctx, valid, targets = make_problem("sg", loss, n=90)
    head = model.head
    family, tab, width = kernel.tables(head)
    arrays = [t.numpy().copy() for t in (model.input, head.weight, head.bias)]
    n = len(targets)
    first = np.arange(n, dtype=np.int64)
    first[[5, 9, 30, 31, 60, 89]] = [0, 0, 7, 7, 2, 88]  # several examples on one draw, far and near
    rows, coef, losses = np.zeros((n, width), np.int64), np.zeros((n, width), np.float32), np.zeros(n, np.float32)
    params = update.Params(*arrays)
    cpu._run(family, update.own_rows(params, 1), update.Batch(ctx, valid, targets, rows, coef, losses, first),
             tab, 0.3, True, 77, threads=1)
    prob, entries = tab.prob, tab.entries  # the CPU's packed table (Tables.entries)
    for i in range(n):
        assert rows[i, 1:].tolist() == [update._noise(np.uint64(77), first[i] * width + j, prob, entries)
                                        for j in range(1, width)], i
    ref = reference(head, *(t.numpy() for t in (model.input, head.weight, head.bias)), ctx, valid,
                    candidates_of(head, targets, rows), 0.3)
    for got, r in zip(arrays + [losses], ref):
        np.testing.assert_allclose(got, r, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(r).max())))


@pytest.mark.parametrize("loss", ["nce", "infonce"])
def test_shared_draws_across_the_threads_shares(loss):
    """With 2 shares of 45 examples and draws shared by 4, the second share begins inside a shared draw (example 44's):
    its first examples draw the words themselves (the softmax loop reads the others from the draw's first example's
    rows, update._draw); every example's candidates are still those of its draw."""
    model, ctx, valid, targets = make_problem("sg", loss, n=90)
    head = model.head
    family, tab, width = kernel.tables(head)
    arrays = [t.numpy().copy() for t in (model.input, head.weight, head.bias)]
    rows = np.zeros((90, width), np.int64)
    cpu.step(family, *arrays, ctx, valid, targets, rows, np.zeros((90, width), np.float32), np.zeros(90, np.float32),
               0.3, True, tab._replace(share=4), 77, threads=2)
    prob, entries = tab.prob, tab.entries  # the CPU's packed table (Tables.entries)
    for i in range(90):
        assert rows[i, 1:].tolist() == [update._noise(np.uint64(77), (i - i % 4) * width + j, prob, entries)
                                        for j in range(1, width)]


@pytest.mark.parametrize("loss", ["neg", "hs", "infonce"])
def test_train_step_reuses_its_buffers_exactly(loss):
    """train_step keeps a model's arrays and its output buffers between calls (cpu._bind); the kernels zero each
    example's coefficients. Batches of 300, then 100, then 300 examples give what fresh zeroed arrays give."""
    model, ctx, valid, targets = make_problem("cbow", loss, n=300)
    fresh = [t.numpy().copy() for t in (model.input, model.head.weight, model.head.bias)]
    family, tab, width = kernel.tables(model.head)
    gen, seeds = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for n in (300, 100, 300):
        got = cpu.train_step(model, torch.from_numpy(ctx[:n]), torch.from_numpy(targets[:n]), 0.1,
                               torch.from_numpy(valid[:n]), gen)
        seed = np.uint64(int(torch.randint(2**62, (1,), generator=seeds)))
        loss = np.zeros(n, np.float32)
        cpu.step(family, *fresh, ctx[:n], valid[:n], targets[:n], np.zeros((n, width), np.int64),
                   np.zeros((n, width), np.float32), loss, 0.1, True, tab, seed)
        assert float(got) == pytest.approx(float(loss.sum(dtype=np.float64)), rel=1e-6)
    for t, want in zip((model.input, model.head.weight, model.head.bias), fresh):
        assert np.array_equal(t.numpy(), want)


@pytest.mark.parametrize("loss", ["neg", "nce", "hs", "sampled-softmax"])
@pytest.mark.parametrize("share", [1, 3])
def test_reading_ahead_changes_nothing(loss, share):
    """The kernels prefetch the rows of the example `ahead` examples on (update._touch), and keep the noise words
    they draw for it, which its loop then reads rather than draws (update._draw): the same result to the bit as no
    reading ahead, at any distance, with or without shared draws; on two threads (whose second share begins inside
    a shared draw) the same candidates."""
    model, ctx, valid, targets = make_problem("cbow", loss, n=61)
    family, tab, width = kernel.tables(model.head)
    assert tab.ahead == kernel.AHEAD > 0
    for threads in (1, 2):
        out = []
        for ahead in (0, kernel.AHEAD, 2):
            arrays = [t.numpy().copy() for t in (model.input, model.head.weight, model.head.bias)]
            n = len(targets)
            extra = [np.zeros((n, width), np.int64), np.zeros((n, width), np.float32), np.zeros(n, np.float32)]
            cpu.step(family, *arrays, ctx, valid, targets, *extra, 0.3, True,
                     tab._replace(ahead=ahead, share=share), 5, threads=threads)
            out.append(arrays + extra)
        for other in out[1:]:  # two threads update rows they share without locks (Hogwild): their draws only
            for a, b in zip(out[0], other) if threads == 1 else [(out[0][3], other[3])]:
                assert np.array_equal(a, b)


def test_the_loops_count_no_references():
    """update.py's and pieces.py's loops are compiled without numba's reference counts (native.serial): a row taken
    as a view in a loop that branches was an atomic add on a count every thread shares (docs/benchmarks-log.md
    section 25). A loop of that shape, compiled by the decorator, gives its result and calls no NRT_incref; the step's
    loops are compiled by it."""
    from numba.core.caching import NullCache

    from w2v_nce.step import native, pieces

    def rows_summed(arrays, keep):  # a tuple of arrays, as the loops' NamedTuples
        out, rows = arrays
        total = np.float32(0.0)
        for i in range(rows.shape[0]):
            row = out[rows[i]]  # a view
            if keep[i]:
                total += row[0]
            else:
                total -= row[1]
        return total

    loop = native.serial(rows_summed)
    loop._cache = NullCache()  # compiled here, so that its LLVM IR is at hand
    out = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert loop((out, np.array([0, 3, 1])), np.array([True, False, True])) == 0 + 3 - 10
    (ir,) = loop.inspect_llvm().values()
    assert "NRT_incref" not in ir and "NRT_decref" not in ir
    for loop in (update.logistic_range, update.softmax_range, pieces._piece, pieces._block, pieces._compact):
        assert loop.targetoptions.get("_nrt") is False, loop


def test_the_loops_are_compiled_unaliased_and_refuse_arrays_that_share_memory():
    """update.py's loops are compiled on the promise that no array they write shares memory with another of theirs
    (native.unaliased): a caller of step() that breaks it gets a ValueError, not wrong vectors."""
    assert update.logistic_range.targetoptions.get("noalias") is True
    assert update.softmax_range.targetoptions.get("noalias") is True
    model, ctx, valid, targets = make_problem("sg", "neg", n=8)
    family, tab, width = kernel.tables(model.head)
    inp, bias = model.input.numpy().copy(), model.head.bias.numpy().copy()
    rows, coef = np.zeros((8, width), np.int64), np.zeros((8, width), np.float32)
    loss = np.zeros(8, np.float32)
    for out, last in ((inp, loss), (model.head.weight.numpy().copy(), bias[:8])):  # out is inp; loss is bias's
        with pytest.raises(ValueError, match="must not share memory"):
            cpu.step(family, inp, out, bias, ctx, valid, targets, rows, coef, last, 0.1, True, tab, 1)
    cpu.step(family, inp, model.head.weight.numpy().copy(), bias, ctx, valid, targets, rows, coef, loss, 0.1, True,
             tab, 1)
