import numpy as np
import pytest
import torch
from scipy import stats

from w2v_nce.model.sampling import AliasSampler, keep_probs, noise_probs, vose_table


def reconstruct(prob, alias):
    """The distribution an alias table encodes: column i gives i w.p. prob[i], else alias[i]."""
    n = len(prob)
    out = np.zeros(n)
    np.add.at(out, np.arange(n), prob / n)
    np.add.at(out, alias, (1 - prob) / n)
    return out


def test_vose_by_hand():
    # q = (1/2, 1/3, 1/6): scaled (1.5, 1, 0.5). Small = [2], large = [0, 1]: column 2 keeps 2 w.p. 0.5
    # and borrows from the last large (1), which stays at 1 - 0.5 + 1 = 0.5 → small; then 1 borrows from 0.
    prob, alias = vose_table(np.array([1 / 2, 1 / 3, 1 / 6]))
    np.testing.assert_allclose(prob, [1.0, 0.5, 0.5])
    assert alias[2] == 1 and alias[1] == 0
    np.testing.assert_allclose(reconstruct(prob, alias), [1 / 2, 1 / 3, 1 / 6], atol=1e-15)


def test_noise_probs_are_unigram_power():
    counts = np.array([16, 1, 81])
    q = noise_probs(counts, 0.75)
    np.testing.assert_allclose(q, np.array([8, 1, 27]) / 36)  # 16^.75 = 8, 81^.75 = 27


def zipf_counts(v=5000):
    return (1e6 / np.arange(1, v + 1) ** 1.1).astype(np.int64) + 1


def test_alias_table_encodes_q_exactly():
    q = noise_probs(zipf_counts(), 0.75)
    np.testing.assert_allclose(reconstruct(*vose_table(q)), q, rtol=1e-9, atol=1e-15)


def test_alias_draws_match_unigram_075_chi_square():
    counts = zipf_counts()
    sampler = AliasSampler(counts, 0.75)
    gen = torch.Generator().manual_seed(0)
    n = 2_000_000
    draws = sampler.draw((n,), gen).numpy()
    observed = np.bincount(draws, minlength=len(counts))
    q = noise_probs(counts, 0.75)
    # pool the tail so every expected cell count is >= 5 (the chi-square approximation needs it)
    expected = q * n
    cut = int(np.argmax(expected < 5)) if (expected < 5).any() else len(q)
    obs = np.append(observed[:cut], observed[cut:].sum()) if cut < len(q) else observed
    exp = np.append(expected[:cut], expected[cut:].sum()) if cut < len(q) else expected
    chi2, p = stats.chisquare(obs, exp)
    assert p > 1e-3, (chi2, p)
    # and each of the most frequent words within 5 binomial standard deviations
    sd = np.sqrt(n * q[:10] * (1 - q[:10]))
    assert (np.abs(observed[:10] - n * q[:10]) < 5 * sd).all()


def test_alias_log_q():
    counts = zipf_counts(100)
    s = AliasSampler(counts, 0.75)
    np.testing.assert_allclose(s.log_q.numpy(), np.log(noise_probs(counts, 0.75)), rtol=1e-6)
    np.testing.assert_allclose(s.log_unigram.numpy(), np.log(counts / counts.sum()), rtol=1e-6)


def test_keep_probability_is_word2vecs_formula():
    counts = np.array([1000, 100, 10, 1])
    t, n = 1e-2, 1111
    # by hand: (sqrt(f/(tN)) + 1) * tN / f with tN = 11.11
    tn = 11.11
    assert t * n == pytest.approx(tn)
    want = [(np.sqrt(f / tn) + 1) * tn / f for f in (1000, 100, 10)] + [1.0]
    got = keep_probs(counts, t)
    np.testing.assert_allclose(got[:3], np.minimum(want[:3], 1.0), rtol=1e-12)
    assert got[0] == pytest.approx((np.sqrt(1000 / 11.11) + 1) * 11.11 / 1000)
    assert got[2] == 1.0 and got[3] == 1.0  # capped
    np.testing.assert_array_equal(keep_probs(counts, 0), np.ones(4))
