"""The heads' definitions, by hand: each loss on a tiny problem, the Huffman tree of word2vec.c, and exact
normalisation where a head claims it. Gradients and the backends that apply them: test_backends.py,
test_step_cpu.py, test_step_cuda.py."""

import math

import numpy as np
import pytest
import torch

from w2v_nce.config import LOSSES
from w2v_nce.model.heads import HSHead, SampledHead, SoftmaxHead, huffman, make_head
from w2v_nce.model.sampling import AliasSampler


@pytest.fixture(autouse=True)
def double_precision():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # exact comparisons
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


def loss_of(head, h, target, noise):
    t = torch.tensor([target])
    return head.loss(h, t, head.candidates(t, noise=torch.tensor([noise]))).item()


def test_softmax_loss_by_hand():
    head, h = tiny(SoftmaxHead(3, 2))
    want = -0.8 + math.log(math.exp(-1.4) + 2 * math.exp(0.8))
    assert head.loss(h, torch.tensor([1])).item() == pytest.approx(want, rel=1e-12)
    assert head.log_prob(h).exp().sum().item() == pytest.approx(1.0)


def test_neg_loss_by_hand():
    head, h = tiny(SampledHead(3, 2, sampler(), 2, "neg"))
    want = -logsig(-1.4) - logsig(-0.8) - logsig(-0.8)  # -log σ(s⁺) - Σ log σ(-s⁻)
    assert loss_of(head, h, 0, [1, 2]) == pytest.approx(want, rel=1e-12)
    # word2vec drops a noise word equal to the target
    assert loss_of(head, h, 0, [0, 2]) == pytest.approx(-logsig(-1.4) - logsig(-0.8), rel=1e-12)


def test_nce_loss_by_hand():
    head, h = tiny(SampledHead(3, 2, sampler(), 2, "nce"))
    # k q = (1, 1/2, 1/2): Δ = s - log(k q) = (-1.4, 0.8 + log 2, 0.8 + log 2)
    d1 = 0.8 + math.log(2)
    want = -logsig(-1.4) - 2 * math.log(1 - 1 / (1 + math.exp(-d1)))
    # rel 1e-6: the shift -log(k q) is held in float32, the training precision
    assert loss_of(head, h, 0, [1, 2]) == pytest.approx(want, rel=1e-6)
    # NCE keeps a noise draw equal to the target: it is an independent sample from q
    d0 = -1.4
    want_same = -logsig(d0) - math.log(1 - 1 / (1 + math.exp(-d0))) - math.log(1 - 1 / (1 + math.exp(-d1)))
    assert loss_of(head, h, 0, [0, 2]) == pytest.approx(want_same, rel=1e-6)


def test_infonce_loss_by_hand():
    head, h = tiny(SampledHead(3, 2, sampler(), 2, "infonce"))
    # one softmax over the target and its noise words, on the raw scores (-1.4, 0.8, 0.8)
    assert loss_of(head, h, 1, [0, 2]) == pytest.approx(-0.8 + math.log(math.exp(-1.4) + 2 * math.exp(0.8)),
                                                         rel=1e-12)
    # a noise draw equal to the target is masked: target 1 with noise (1, 2) is a softmax over words 1 and 2
    assert loss_of(head, h, 1, [1, 2]) == pytest.approx(-0.8 + math.log(2 * math.exp(0.8)), rel=1e-12)


def test_sampled_softmax_loss_by_hand():
    head, h = tiny(SampledHead(3, 2, sampler(), 2, "sampled-softmax"))
    # the corrected scores Δ = s - log(k q) = (-1.4, 0.8 + log 2, 0.8 + log 2), target 0
    d = [-1.4, 0.8 + math.log(2), 0.8 + math.log(2)]
    want = -d[0] + math.log(sum(math.exp(x) for x in d))
    assert loss_of(head, h, 0, [1, 2]) == pytest.approx(want, rel=1e-6)


def test_nce_and_neg_differ_only_by_the_log_kq_shift():
    s = sampler()
    neg, h = tiny(SampledHead(3, 2, s, 2, "neg"))
    nce, _ = tiny(SampledHead(3, 2, s, 2, "nce"))
    # moving the shift into the bias turns NCE into NEG (with no dropped noise words)
    neg.bias.data = nce.bias.data + nce.shift
    assert loss_of(neg, h, 0, [1, 2]) == pytest.approx(loss_of(nce, h, 0, [1, 2]), rel=1e-12)


def word2vec_tree(counts):
    """word2vec.c's CreateBinaryTree, transcribed loop for loop: (codes, points) of every word."""
    v = len(counts)
    count = list(counts) + [10**15] * v
    binary, parent = [0] * (2 * v), [0] * (2 * v)
    pos1, pos2 = v - 1, v
    for a in range(v - 1):
        mins = []
        for _ in range(2):
            if pos1 >= 0 and count[pos1] < count[pos2]:
                mins.append(pos1)
                pos1 -= 1
            else:
                mins.append(pos2)
                pos2 += 1
        count[v + a] = count[mins[0]] + count[mins[1]]
        parent[mins[0]] = parent[mins[1]] = v + a
        binary[mins[1]] = 1
    codes, points = [], []
    for a in range(v):
        code, point, b = [], [], a
        while True:
            code.append(binary[b])
            point.append(b)
            b = parent[b]
            if b == 2 * v - 2:
                break
        codes.append(code[::-1])
        points.append([v - 2] + [p - v for p in point[::-1]][:-1])  # point[0] is the root
    return codes, points


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_huffman_tree_is_word2vec_c_s(seed):
    rng = np.random.default_rng(seed)
    counts = np.sort(rng.zipf(1.3, 300) % 1000 + 1)[::-1]  # with many ties
    offsets, points, codes = huffman(counts)
    want_codes, want_points = word2vec_tree(counts.tolist())
    for w in range(len(counts)):
        assert codes[offsets[w]:offsets[w + 1]].tolist() == want_codes[w]
        assert points[offsets[w]:offsets[w + 1]].tolist() == want_points[w]
    # a prefix code with the Huffman optimum's length: Kraft's sum is 1, the mean length within 1 bit of entropy
    lengths = np.diff(offsets)
    assert np.sum(2.0 ** -lengths) == pytest.approx(1.0)
    p = counts / counts.sum()
    entropy = -(p * np.log2(p)).sum()
    assert entropy <= (p * lengths).sum() < entropy + 1


def test_hs_loss_and_probabilities_by_hand():
    # counts (5, 3, 2, 1): the paths (inner nodes from the root 2, code bits) are
    # word 0: (2: 0); word 1: (2: 1, 1: 1); word 2: (2: 1, 1: 0, 0: 1); word 3: (2: 1, 1: 0, 0: 0)
    head = HSHead(np.array([5, 3, 2, 1]), 2)
    head.weight.data = torch.tensor([[0.5, -1.0], [1.0, 0.0], [0.0, 0.25]])
    head.bias.data = torch.tensor([0.1, -0.2, 0.3])
    h = torch.tensor([[1.0, 2.0]])
    s = [-1.4, 0.8, 0.8]  # the inner nodes' scores, as in tiny()
    # label 1 - code: code 0 is log σ(s), code 1 is log σ(-s)
    logp = [logsig(s[2]), logsig(-s[2]) + logsig(-s[1]), logsig(-s[2]) + logsig(s[1]) + logsig(-s[0]),
            logsig(-s[2]) + logsig(s[1]) + logsig(s[0])]
    assert head.scores(h)[0].tolist() == pytest.approx(logp, rel=1e-12)
    assert head.log_prob(h)[0].tolist() == pytest.approx(logp, rel=1e-12)
    assert sum(math.exp(x) for x in logp) == pytest.approx(1.0, rel=1e-12)
    for w in range(4):
        t = torch.tensor([w])
        assert head.loss(h, t, head.candidates(t)).item() == pytest.approx(-logp[w], rel=1e-12)


def test_hs_is_normalised_for_any_weights():
    counts = (1000 / np.arange(1, 201)).astype(np.int64) + 1
    head = HSHead(counts, 8)
    g = torch.Generator().manual_seed(0)
    head.weight.data = torch.randn(199, 8, generator=g) * 2
    head.bias.data = torch.randn(199, generator=g)
    total = head.scores(torch.randn(5, 8, generator=g)).exp().sum(1)
    assert torch.allclose(total, torch.ones(5), atol=1e-12)


def test_candidates_say_what_each_head_computes():
    counts = np.array([50, 30, 20, 10, 5, 1])
    s = AliasSampler(counts, 0.75)
    targets = torch.tensor([0, 3, 5])
    noise = torch.tensor([[0, 1], [2, 3], [4, 4]])
    for loss in ("neg", "nce", "infonce", "sampled-softmax"):
        head = make_head(loss, counts, 4, s, 2)
        c = head.candidates(targets, noise=noise)
        assert c.rows.tolist() == [[0, 0, 1], [3, 2, 3], [5, 4, 4]]
        assert c.labels.tolist() == [[1, 0, 0]] * 3
        drop = loss != "nce"  # the hits (noise equal to the target) are dropped or masked, but NCE's
        assert c.valid.tolist() == [[True, not drop, True], [True, True, not drop], [True, True, True]]
        corrected = loss in ("nce", "sampled-softmax")
        want = -(s.log_q[c.rows] + math.log(2)) if corrected else torch.zeros(3, 3)
        assert torch.allclose(c.shift, want.to(c.shift.dtype))
    hs = make_head("hs", counts, 4, s, 2)
    c = hs.candidates(targets)
    offsets = hs.offsets
    for i, t in enumerate(targets.tolist()):
        n = int(offsets[t + 1] - offsets[t])
        assert c.valid[i].sum() == n and c.rows[i, :n].tolist() == hs.points[offsets[t]:offsets[t + 1]].tolist()
        assert c.labels[i, :n].tolist() == (1 - hs.codes[offsets[t]:offsets[t + 1]]).tolist()


def test_every_loss_has_a_head():
    counts = np.array([5, 3, 2, 1])
    for loss in LOSSES:
        head = make_head(loss, counts, 4, AliasSampler(counts), 2)
        assert head.scores(torch.zeros(1, 4)).shape == (1, 4)
    with pytest.raises(ValueError, match="unknown loss"):
        make_head("glove", counts, 4, None, 2)


def test_the_exact_softmax_has_no_candidates():
    """It scores the whole vocabulary; asking it for sampled candidates is a backend's mistake, said plainly."""
    head = make_head("softmax", np.array([5, 3, 2]), 4, None, 1)
    with pytest.raises(ValueError, match="whole vocabulary"):
        head.candidates(torch.tensor([0, 1]))
