"""evaluate: analogy and word-pair scores equal gensim's; bad files fail with one-line W2VErrors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from w2v_nce.tools import evaluate
from w2v_nce.errors import W2VError
from w2v_nce.tools.evaluate import analogies, format_analogies, format_similarity, similarity
from w2v_nce.tools.vectorfiles import load_vectors
from w2v_nce.tools.export import save_kv

QUESTIONS = datapath("questions-words.txt")


def _question_lines():
    with open(QUESTIONS) as f:
        return [line.split() for line in f if not line.startswith(":")]


def structured_kv(seed=0, dim=24, noise=0.8) -> KeyedVectors:
    """Vectors where many analogies hold (second word = first + a per-section offset, plus noise),
    over most words of questions-words.txt, with case variants and filler words mixed in."""
    rng = np.random.default_rng(seed)
    vec: dict[str, np.ndarray] = {}
    section_offset = None
    with open(QUESTIONS) as f:
        for line in f:
            if line.startswith(":"):
                section_offset = rng.standard_normal(dim)
                continue
            a, b, c, d = line.split()
            for x, y in ((a, b), (c, d)):
                if x not in vec and y not in vec:
                    vec[x] = rng.standard_normal(dim)
                if y not in vec:
                    vec[y] = vec[x] + section_offset + noise * rng.standard_normal(dim)
                elif x not in vec:
                    vec[x] = vec[y] - section_offset + noise * rng.standard_normal(dim)
    words = list(vec)
    rng.shuffle(words)
    words = words[:700]  # leave some question words out: those questions are skipped
    variants = {w.lower() for w in words[:150]} | {w.upper() for w in words[150:200]}
    variants = sorted(variants - set(vec))  # keys must be unique
    extra = [(v, rng.standard_normal(dim)) for v in variants]
    extra += [(f"filler{i}", rng.standard_normal(dim)) for i in range(300)]
    keys = words + [k for k, _ in extra]
    vectors = np.array([vec[w] for w in words] + [v for _, v in extra], dtype=np.float32)
    order = rng.permutation(len(keys))  # mix variants in before and after their first spelling
    kv = KeyedVectors(dim)
    kv.add_vectors([keys[i] for i in order], vectors[order])
    return kv


@pytest.fixture(scope="module")
def kv():
    return structured_kv()


def gensim_analogies(kv, path, **kwargs):
    score, sections = kv.evaluate_word_analogies(str(path), **kwargs)
    rows = [(s["section"], len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in sections]
    return score, rows


def ours_as_rows(result):
    rows = [(s["name"], s["correct"], s["total"]) for s in result["sections"]]
    return rows + [("Total accuracy", result["correct"], result["total"])]


@pytest.mark.parametrize("restrict_vocab, case_insensitive", [(30000, True), (500, True), (30000, False)])
def test_3cosadd_equals_gensim(kv, restrict_vocab, case_insensitive):
    ours = analogies(kv, restrict_vocab=restrict_vocab, case_insensitive=case_insensitive)
    score, rows = gensim_analogies(kv, QUESTIONS, restrict_vocab=restrict_vocab, case_insensitive=case_insensitive)
    assert ours_as_rows(ours) == rows
    assert ours["accuracy"] == score
    assert 0.2 < ours["accuracy"] < 0.9  # the structure makes some, not all, analogies hold
    n_questions = len(_question_lines())
    assert ours["total"] + ours["skipped"] == n_questions
    assert ours["method"] == "3cosadd" and ours["questions"] == QUESTIONS
    assert json.loads(json.dumps(ours)) == ours  # plain Python types, for `--json`


def test_3cosadd_ties_are_broken_like_gensim(monkeypatch):
    """Words sharing one vector tie exactly; those questions must take gensim's own ranking."""
    kv = structured_kv(seed=1)
    rng = np.random.default_rng(1)
    for i in rng.choice(len(kv), 200, replace=False):
        kv.vectors[i] = kv.vectors[(i + 1) % len(kv)]
    kv.vectors[5] = 0.0  # a zero vector: NaN cosines in gensim, never a candidate
    kv.fill_norms(force=True)
    calls = []
    real = evaluate._gensim_window
    monkeypatch.setattr(evaluate, "_gensim_window", lambda *a: calls.append(a) or real(*a))
    ours = analogies(kv)
    with np.errstate(all="ignore"):
        score, rows = gensim_analogies(kv, QUESTIONS, restrict_vocab=30000)
    assert ours_as_rows(ours) == rows
    assert len(calls) > 50


def test_3cosadd_window_rules(tmp_path):
    """Gensim looks only at its top 5 candidates, where other spellings of the question words use up
    slots; if all 5 are such spellings, the 5th is the prediction, and right if it is the answer."""
    e = np.eye(12, dtype=np.float32)
    toward = (e[1] + e[2] - e[0]) / np.sqrt(3)  # where b - a + c points
    vocab = {"ka": e[0], "kb": e[1], "kc": e[2]}
    for k, word in enumerate(["KB", "KC", "Kb", "kC", "KA", "dd", "ee"]):  # each less similar than the last
        vocab[word] = toward + 0.1 * (k + 1) * e[3 + k]
    kv = KeyedVectors(12)
    kv.add_vectors(list(vocab), np.array(list(vocab.values())))
    q = tmp_path / "q.txt"
    q.write_text(": answer-is-a\nka kb kc ka\n: best-is-6th\nka kb kc dd\n: upper\nka kb kc KB\n: empty\n")
    for case_insensitive, correct in ((True, [1, 0, 0, 0]), (False, [0, 0, 1, 0])):
        ours = analogies(kv, q, case_insensitive=case_insensitive)
        assert ours_as_rows(ours) == gensim_analogies(kv, q, case_insensitive=case_insensitive)[1]
        assert [s["correct"] for s in ours["sections"]] == correct


def _restricted(kv, n):
    small = KeyedVectors(kv.vector_size)
    small.add_vectors(kv.index_to_key[:n], kv.vectors[:n])
    return small


def cosmul_reference(kv, quad, restrict_vocab):
    """gensim's evaluate_word_analogies loop for one question, with most_similar_cosmul
    (which ignores restrict_vocab, so it is given only the first restrict_vocab words)."""
    small = _restricted(kv, restrict_vocab)
    ok = {}
    for i, w in enumerate(small.index_to_key):
        ok.setdefault(w.upper(), i)
    a, b, c, expected = (w.upper() for w in quad)
    if not all(w in ok for w in (a, b, c, expected)):
        return None
    small.key_to_index = ok
    sims = small.most_similar_cosmul(positive=[b, c], negative=[a], topn=5)
    predicted = None
    for word, _ in sims:
        predicted = word.upper()
        if predicted not in {a, b, c}:
            break
    return predicted == expected


@pytest.mark.filterwarnings("ignore:Call to deprecated `init_sims`")  # inside most_similar_cosmul
def test_3cosmul_equals_gensim_cosmul_per_question(kv, tmp_path):
    """One section per question, so the per-section counts are per-question verdicts."""
    restrict_vocab = 600
    top = {w.upper() for w in kv.index_to_key[:restrict_vocab]}
    lines = [quad for quad in _question_lines() if all(w.upper() in top for w in quad[:3])]  # mostly answerable
    picked = [lines[i] for i in np.random.default_rng(0).choice(len(lines), 600, replace=False)]
    expected = [cosmul_reference(kv, quad, restrict_vocab) for quad in picked]
    q = tmp_path / "q.txt"
    q.write_text("".join(f": q{i}\n{' '.join(quad)}\n" for i, quad in enumerate(picked)))
    ours = analogies(kv, q, restrict_vocab=restrict_vocab, method="3cosmul")
    verdicts = [None if s["total"] == 0 else s["correct"] == 1 for s in ours["sections"]]
    assert verdicts == expected
    assert 50 < sum(v is True for v in verdicts) and sum(v is False for v in verdicts) > 50
    assert ours["skipped"] == expected.count(None)


def test_no_answerable_questions(tmp_path):
    kv = KeyedVectors(3)
    kv.add_vectors(["x", "y"], np.eye(3, dtype=np.float32)[:2])
    q = tmp_path / "q.txt"
    q.write_text(": only\na b c d\n")
    result = analogies(kv, q)
    assert (result["accuracy"], result["correct"], result["total"], result["skipped"]) == (0.0, 0, 0, 1)
    assert result["sections"] == [{"name": "only", "correct": 0, "total": 0, "accuracy": 0.0}]


def test_format_analogies():
    result = {
        "accuracy": 0.75, "correct": 3, "total": 4, "skipped": 2, "method": "3cosadd", "questions": "q.txt",
        "restrict_vocab": 100,
        "sections": [
            {"name": "capitals", "correct": 3, "total": 4, "accuracy": 0.75},
            {"name": "empty", "correct": 0, "total": 0, "accuracy": 0.0},
        ],
    }
    assert format_analogies(result) == (
        "analogies (3cosadd, top 100 words) from q.txt\n"
        "  capitals       3/4       75.0%\n"
        "  empty          0/0           -\n"
        "  total          3/4       75.0%\n"
        "skipped 2 questions with out-of-vocabulary words"
    )


@pytest.mark.parametrize("text, line", [
    (": s\na b c d\na b c\n", 3),
    (": s\na b c d e\n", 2),
    ("a b c d\n", 1),
    (": s\n:bad header\n", 2),
])
def test_bad_questions_file(tmp_path, kv, text, line):
    q = tmp_path / "q.txt"
    q.write_text(text)
    with pytest.raises(W2VError, match=f"line {line}:") as e:
        analogies(kv, q)
    assert "\n" not in str(e.value) and str(q) in str(e.value)


def test_missing_questions_file_and_bad_method(tmp_path, kv):
    with pytest.raises(W2VError, match="cannot read questions file"):
        analogies(kv, tmp_path / "nope.txt")
    with pytest.raises(W2VError, match="3cosadd, 3cosmul"):
        analogies(kv, method="3cosfoo")


# ---------------------------------------------------------------------------------------------
# Word pairs


@pytest.mark.parametrize("name, file", [("ws353", "wordsim353.tsv"), ("simlex999", "simlex999.txt")])
@pytest.mark.parametrize("restrict_vocab, case_insensitive", [(300000, True), (500, True), (300000, False)])
def test_similarity_equals_gensim(name, file, restrict_vocab, case_insensitive):
    rng = np.random.default_rng(0)
    words = sorted({w for line in open(datapath(file)) if not line.startswith("#") for w in line.split("\t")[:2]})
    # every 5th word out of vocabulary, some capitalised (found only case-insensitively)
    words = [w.capitalize() if i % 7 == 0 else w for i, w in enumerate(words) if i % 5]
    kv = KeyedVectors(16)
    kv.add_vectors(words, rng.standard_normal((len(words), 16)).astype(np.float32))
    ours = similarity(kv, name, restrict_vocab=restrict_vocab, case_insensitive=case_insensitive)
    pearson, spearman, oov_pct = kv.evaluate_word_pairs(
        datapath(file), restrict_vocab=restrict_vocab, case_insensitive=case_insensitive)
    assert ours["pearson"] == pearson.statistic and ours["spearman"] == spearman.statistic
    assert ours["oov_ratio"] * 100 == pytest.approx(oov_pct, abs=1e-12)
    assert ours["pairs"] == datapath(file)
    assert ours["total"] == {"ws353": 353, "simlex999": 999}[name]
    assert ours["oov"] == round(oov_pct * ours["total"] / 100) > 0
    assert json.loads(json.dumps(ours)) == ours


def test_similarity_all_oov_and_format(tmp_path):
    kv = KeyedVectors(2)
    kv.add_vectors(["x"], np.ones((1, 2), dtype=np.float32))
    p = tmp_path / "p.tsv"
    p.write_text("# comment\n\na\tb\t1.5\nx\tc\t2\n")
    result = similarity(kv, str(p))
    assert result == {"spearman": None, "pearson": None, "oov_ratio": 1.0, "pairs": str(p), "total": 2, "oov": 2}
    assert format_similarity(result) == (
        f"word-pair similarity on {p}\n"
        "  spearman     n/a\n"
        "  pearson      n/a\n"
        "  pairs     0/2 in vocabulary\n"
        "skipped 2 pairs with out-of-vocabulary words (100.0%)"
    )


@pytest.mark.parametrize("text, line, what", [
    ("# c\na\tb\t1\na b 2\n", 3, "1 tab-separated"),
    ("a\tb\tlots\n", 1, "not a number"),
    ("a\tb\t1\tx\n", 1, "4 tab-separated"),
])
def test_bad_pairs_file(tmp_path, kv, text, line, what):
    p = tmp_path / "p.tsv"
    p.write_text(text)
    with pytest.raises(W2VError, match=f"line {line}: .*{what}") as e:
        similarity(kv, str(p))
    assert "\n" not in str(e.value)
    with pytest.raises(W2VError, match="cannot read pairs file"):
        similarity(kv, str(tmp_path / "missing.tsv"))


# ---------------------------------------------------------------------------------------------
# Loading


@pytest.fixture
def small_kv():
    kv = KeyedVectors(4)
    kv.add_vectors(["the", "café", "λόγος", "한국어"], np.arange(16, dtype=np.float32).reshape(4, 4) / 7)
    return kv


def test_load_sniffs_content_not_suffix(tmp_path, small_kv):
    small_kv.save_word2vec_format(str(tmp_path / "bin.txt"), binary=True)
    small_kv.save_word2vec_format(str(tmp_path / "text.bin"), binary=False)
    save_kv(small_kv, tmp_path / "kv.bin")
    (tmp_path / "run").mkdir()
    save_kv(small_kv, tmp_path / "run" / "vectors.kv")
    for name in ("bin.txt", "text.bin", "kv.bin", "run"):
        loaded = load_vectors(tmp_path / name)
        assert loaded.index_to_key == small_kv.index_to_key
        assert np.array_equal(loaded.vectors, small_kv.vectors)


def _assert_fails(path, match):
    with pytest.raises(W2VError, match=match) as e:
        load_vectors(path)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_load_damaged_files(tmp_path, small_kv):
    good = tmp_path / "good.bin"
    small_kv.save_word2vec_format(str(good), binary=True)
    data = good.read_bytes()
    cases = {
        "truncated.bin": (data[:-5], "truncated or corrupt"),
        "truncated.txt": (b"4 4\nthe 0.0 0.1 0.2 0.3\ncafe 0.1 0.2\n", "truncated or corrupt"),
        "header.txt": (b"the 0.0 0.1 0.2 0.3\n", "'COUNT DIM'"),
        "random.bin": (np.random.default_rng(0).bytes(4096), "not a vectors file"),
        "empty.txt": (b"", "not a vectors file"),
    }
    kv_file = tmp_path / "kv.kv"
    save_kv(small_kv, kv_file)
    cases["truncated.kv"] = (kv_file.read_bytes()[:200], "truncated or corrupt")
    for name, (content, match) in cases.items():
        (tmp_path / name).write_bytes(content)
        message = _assert_fails(tmp_path / name, match)
        assert name in message and "w2v-nce export" in message


def test_load_missing_paths(tmp_path):
    assert "does not exist" in _assert_fails(tmp_path / "nope", "nope")
    (tmp_path / "empty").mkdir()
    assert "has no vectors.kv" in _assert_fails(tmp_path / "empty", "empty")
