import torch

from w2v_nce.corpus import examples as batches
from w2v_nce.corpus.vocab import SEPARATOR


def brute_pairs(words, lines, eff, window):
    out = []
    n = len(words)
    for i in range(n):
        for o in list(range(-window, 0)) + list(range(1, window + 1)):
            j = i + o
            if abs(o) <= eff[i] and 0 <= j < n and lines[i] == lines[j]:
                out.append((words[i], words[j]))
    return out


def test_skipgram_pairs_are_exactly_the_dynamic_windows():
    ids = torch.tensor([10, 11, 12, 13, SEPARATOR, 14, 15, 16, 17, 18, 19])
    words, lines = batches.split_lines(ids)
    assert words.tolist() == [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    assert lines.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]
    eff = torch.tensor([1, 2, 1, 3, 2, 1, 3, 2, 1, 2])
    inputs, targets = batches.skipgram_pairs(words, lines, eff, window=3)
    # (centre, context) pairs, centre by centre: by hand for the first line (10 11 12 13 with windows 1 2 1 3)
    got = list(zip(targets.tolist(), inputs.tolist()))
    assert got[:9] == [(10, 11), (11, 10), (11, 12), (11, 13), (12, 11), (12, 13), (13, 10), (13, 11), (13, 12)]
    assert got == brute_pairs(words.tolist(), lines.tolist(), eff.tolist(), 3)
    # the context word is the input, the centre the target (word2vec.c's and gensim's direction)
    assert (inputs[:3].tolist(), targets[:3].tolist()) == ([11, 10, 12], [10, 11, 11])


def test_cbow_examples_match_skipgram_sets():
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 50, (200,), generator=gen)
    ids[[17, 19, 90, 91, 150]] = SEPARATOR  # position 18 is a one-word line: no context, no example
    words, lines = batches.split_lines(ids)
    eff = batches.draw_windows(len(words), 5, "cpu", gen)
    assert eff.min() >= 1 and eff.max() <= 5
    ctx, mask, target = batches.cbow_examples(words, lines, eff, 5)
    expected = {}
    for i, (w, lw, e) in enumerate(zip(words.tolist(), lines.tolist(), eff.tolist())):
        js = [j for j in range(i - e, i + e + 1) if j != i and 0 <= j < len(words) and lines[j] == lw]
        if js:
            expected[i] = (w, sorted(words[j].item() for j in js))
    assert len(target) == len(expected) == len(words) - 1
    for (w, want), c, m, t in zip(expected.values(), ctx, mask, target):
        assert t.item() == w and sorted(c[m].tolist()) == want


def test_dynamic_window_is_uniform():
    eff = batches.draw_windows(100_000, 5, "cpu", torch.Generator().manual_seed(0))
    freq = torch.bincount(eff, minlength=6)[1:].float() / len(eff)
    assert torch.allclose(freq, torch.full((5,), 0.2), atol=0.01)


def test_subsample_keeps_with_probability_and_keeps_separators():
    keep = torch.tensor([0.25, 1.0])
    ids = torch.tensor([0] * 40000 + [1] * 1000 + [SEPARATOR] * 100)
    out = batches.subsample(ids, keep, torch.Generator().manual_seed(0))
    assert (out == 1).sum() == 1000 and (out == SEPARATOR).sum() == 100
    assert abs((out == 0).sum().item() / 40000 - 0.25) < 0.01


def test_the_compiled_pass_gives_the_tensor_ops_tensors(monkeypatch):
    """On the CPU the pairs and contexts come from one compiled pass; on a GPU from the tensor ops. Both must give
    the same tensors, the invalid CBOW slots included, on chunks with lines of every length."""
    if batches.numba is None:
        return
    gen = torch.Generator().manual_seed(7)
    for window in (1, 3, 5):
        ids = torch.randint(0, 40, (3000,), generator=gen)
        ids[torch.randint(0, 3000, (300,), generator=gen)] = SEPARATOR
        ids[:2] = SEPARATOR
        words, lines = batches.split_lines(ids)
        eff = batches.draw_windows(len(words), window, "cpu", gen)
        compiled = batches.skipgram_pairs(words, lines, eff, window), batches.cbow_examples(words, lines, eff, window)
        monkeypatch.setattr(batches, "_compiled", lambda words: False)
        ops = batches.skipgram_pairs(words, lines, eff, window), batches.cbow_examples(words, lines, eff, window)
        monkeypatch.undo()
        for a, b in zip(compiled[0] + compiled[1], ops[0] + ops[1]):
            assert a.dtype == b.dtype and torch.equal(a, b)
        assert len(compiled[0][0]) > 1000 and len(compiled[1][2]) < len(words)  # one-word lines: no cbow example
