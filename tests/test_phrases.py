"""Phrases (issue 24): the scores of a toy text by hand for both scorings, word2phrase's output and gensim's npmi
Phrases reproduced, the threshold and min-count edges, the lines kept, three words joined by two passes, `train
--phrases` equal to `phrases` then `train`, phrase questions looked up as gensim does, and bad input."""

import gzip
import math
from collections import Counter

import numpy as np
import pytest
from gensim.test.utils import datapath
from typer.testing import CliRunner

import w2v_nce
from w2v_nce.tools import evaluate
from w2v_nce.corpus import phrases
from w2v_nce.cli import app
from w2v_nce.errors import UsageError

LEE = datapath("lee_background.cor")
runner = CliRunner()
SMALL = dict(epochs=1, dim=8, min_count=3, threads=1, seed=2, progress=False)

# 18 tokens. Unigrams: new 4, york 4, times 3, city 2, the 2, of 2, india 1. Pairs within lines: new york 4,
# york times 2, and 1 each: york city, the city, city of, of new, the times, times of, of india. Across the four
# line breaks (word2phrase counts them): times new, city new, times the, york the, 1 each.
TOY = "new york times\nnew york city\nnew york times\nthe city of new york\nthe times of india\n"


@pytest.fixture(autouse=True)
def elsewhere(tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))  # a finished run's runs/latest goes there, not into the checkout


@pytest.fixture
def toy(tmp_path):
    path = tmp_path / "toy.txt"
    path.write_text(TOY)
    return path


def joined(path, out, **options):
    phrases.build(path, out, **options)
    return out.read_text()


def test_word2vec_scores_by_hand(toy):
    # (ab - m) / a / b * n with n = 18, in float32 as word2phrase computes it
    assert phrases.scores(toy, min_count=2) == {("new", "york"): (4 - 2) / 4 / 4 * 18, ("york", "times"): 0.0}
    one = phrases.scores(toy, min_count=1)
    assert one[("new", "york")] == 3 / 4 / 4 * 18 and one[("york", "times")] == 1 / 4 / 3 * 18
    f32 = np.float32
    assert one[("york", "times")] == float(f32(1) / f32(4) / f32(3) * f32(18))  # 1.5 exactly, as float32 too
    assert one[("the", "city")] == 0.0 and len(one) == 9 + 4  # the pairs across line breaks are counted
    assert one[("times", "new")] == 0.0 and one[("york", "the")] == 0.0


def test_npmi_scores_by_hand(toy):
    s = phrases.scores(toy, min_count=2, scoring="npmi")
    # new york: p_ab = p_a = p_b = 4/18, so ln(p_ab / p_ab^2) / -ln(p_ab) = 1
    assert s[("new", "york")] == pytest.approx(1.0, abs=1e-15)
    # york times: ln((2/18) / ((4/18)(3/18))) / -ln(2/18) = ln 3 / ln 9 = 1/2
    assert s[("york", "times")] == pytest.approx(0.5, abs=1e-15)
    assert set(s) == {("new", "york"), ("york", "times")}
    one = phrases.scores(toy, min_count=1, scoring="npmi")
    assert ("times", "new") not in one and len(one) == 9  # gensim counts within a sentence (a line)
    # of india: p_ab = p_b = 1/18, p_a = 2/18: ln 9 / ln 18
    assert one[("of", "india")] == pytest.approx(math.log(9) / math.log(18), abs=1e-15)


def test_npmi_scores_and_joins_are_gensims(tmp_path):
    from gensim.models.phrases import FrozenPhrases, Phrases, npmi_scorer

    sentences = [line.split() for line in open(LEE, encoding="utf-8")]
    model = Phrases(sentences, min_count=3, threshold=0.5, scoring="npmi")
    ours = phrases.scores(LEE, min_count=3, scoring="npmi")
    n = model.corpus_word_count
    for (a, b), score in ours.items():
        assert score == npmi_scorer(model.vocab[a], model.vocab[b], model.vocab[f"{a}_{b}"], 0, 3, n), (a, b)
    assert len(ours) == sum(1 for k, c in model.vocab.items() if "_" in k and c >= 3)
    frozen = FrozenPhrases(model)
    text = joined(LEE, tmp_path / "out.txt", min_count=3, threshold=0.5, scoring="npmi")
    assert [line.split() for line in text.splitlines()] == [frozen[s] for s in sentences]


def word2phrase(text: str, min_count: int, threshold: float) -> list[list[str]]:
    """word2phrase.c's LearnVocabFromTrainFile and TrainModel, step for step, in Python (one string table of
    unigrams and bigrams, pairs counted across line breaks, float32 scores, `pb = 0` after a join), for text
    whose tokens hold no '_', read as if it ended with a line break (word2phrase drops a last token that none
    follows); its output's lines as token lists."""
    stream = [t for line in text.splitlines() for t in (*line.split(), "\n")]
    words = [t for t in stream if t != "\n"]
    counts = Counter(words) + Counter(f"{a}_{b}" for a, b in zip(words, words[1:]))
    vocab = {k: c for k, c in counts.items() if c >= min_count}
    f32, out = np.float32, []
    last, last_known, pa, pb = "", False, 0, 0
    for word in stream:
        if word == "\n":
            out.append("\n")
            last = "\n"
            continue
        oov = word not in vocab or not last_known
        pb = vocab.get(word, pb)
        last_known = word in vocab
        pab = vocab.get(f"{last}_{word}")
        oov = oov or pab is None or pa < min_count or pb < min_count
        score = 0 if oov else f32(pab - min_count) / f32(pa) / f32(pb) * f32(len(words))
        if score > f32(threshold):
            out.append("_")
            pb = 0
        else:
            out.append(" ")
        out.append(word)
        pa, last = pb, word
    return [line.split() for line in "".join(out).splitlines()]


@pytest.mark.parametrize("min_count, threshold", [(5, 100), (3, 30), (2, 10)])
def test_word2vec_scoring_is_word2phrases_output(tmp_path, min_count, threshold):
    text = open(LEE, encoding="utf-8").read()
    ours = joined(LEE, tmp_path / "out.txt", min_count=min_count, threshold=threshold)
    expected = word2phrase(text, min_count, threshold)
    assert [line.split() for line in ours.splitlines()] == expected
    assert sum(t.count("_") for line in expected for t in line) > 20  # phrases were joined


def test_threshold_is_strict_and_min_count_never_joins(toy, tmp_path):
    out = tmp_path / "out.txt"
    # new york scores 2.25 at min_count 2: joined above a threshold just under it, not at 2.25 itself
    below = float(np.nextafter(np.float32(2.25), np.float32(0)))
    assert joined(toy, out, min_count=2, threshold=below).count("new_york") == 4
    assert "_" not in joined(toy, out, min_count=2, threshold=2.25)
    # a pair seen exactly min_count times scores 0 with word2vec scoring: never above a threshold >= 0
    assert "york_times" not in joined(toy, out, min_count=2, threshold=0)
    # npmi: strict too; a pair seen min_count times can join (gensim's bigram_count >= min_count), fewer cannot
    score = phrases.scores(toy, min_count=2, scoring="npmi")
    assert "_" not in joined(toy, out, min_count=2, threshold=score[("new", "york")], scoring="npmi")
    below = float(np.nextafter(score[("new", "york")], 0))
    assert joined(toy, out, min_count=2, threshold=below, scoring="npmi").count("new_york") == 4
    below = float(np.nextafter(score[("york", "times")], 0))
    text = joined(toy, out, min_count=2, threshold=below, scoring="npmi")
    assert text.splitlines()[0] == "new_york times"  # york ended a join: it does not start another
    assert joined(toy, out, min_count=4, threshold=0.99, scoring="npmi").count("new_york") == 4
    assert "_" not in joined(toy, out, min_count=5, threshold=-1, scoring="npmi")


def test_lines_are_kept(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt.gz"
    a.write_text("new york\n\n  new\tyork city \n\nthe end")  # blank lines, odd spaces, no final line break
    b.write_bytes(gzip.compress(b"new york\nlast line\n"))
    text = joined([a, b], tmp_path / "out.txt", min_count=1, threshold=0)
    # the files read as one text with a line break between them; one space between tokens
    assert text == "new_york\n\nnew_york city\n\nthe end\nnew_york\nlast line\n"
    assert joined(a, tmp_path / "one.txt", min_count=1, threshold=0).endswith("\nthe end")


def test_two_passes_join_three_words(toy, tmp_path):
    # pass 1 at 2: new york (3.375) joins, york times (1.5) would not, and it follows a join anyway;
    # pass 2 at 1, on 14 tokens: new_york times scores (2 - 1) / 4 / 3 * 14 = 1.17
    expected = "new_york_times\nnew_york city\nnew_york_times\nthe city of new_york\nthe times of india\n"
    assert joined(toy, tmp_path / "a.txt", min_count=1, threshold=[2, 1], passes=2) == expected
    assert joined(toy, tmp_path / "b.txt", min_count=1, threshold=1, passes=2) == expected  # 2 x 1, then 1
    one = joined(toy, tmp_path / "c.txt", min_count=1, threshold=1)  # one pass joins two tokens, not three
    assert one.splitlines()[0] == "new_york times"
    figures = phrases.build(toy, tmp_path / "d.txt", min_count=1, threshold=1, passes=2)
    assert figures["thresholds"] == [2, 1] and figures["joined"] == [4, 2] and figures["tokens_out"] == 18 - 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "c.txt", "d.txt", "toy.txt"]


def test_thresholds_of_the_passes():
    assert phrases.thresholds(None, 2, "word2vec") == [200, 100]  # demo-phrases.sh's
    assert phrases.thresholds(50, 3, "word2vec") == [200, 100, 50]
    assert phrases.thresholds(0.3, 3, "npmi") == [0.3, 0.3, 0.3]
    assert phrases.thresholds([10, 20], 2, "word2vec") == [10, 20]
    for bad in [([1, 2, 3], 2, "word2vec"), (None, 1, "npmi"), (1.5, 1, "npmi"), (-1, 1, "word2vec")]:
        with pytest.raises(UsageError):
            phrases.thresholds(*bad)


def test_train_phrases_is_phrases_then_train(tmp_path):
    run = w2v_nce.train(LEE, tmp_path / "on-the-fly", phrases=2, keep_corpus=True, **SMALL)
    text = tmp_path / "lee-phrases.txt"
    phrases.build(LEE, text, min_count=3, passes=2)
    ref = w2v_nce.train(text, tmp_path / "ref", keep_corpus=True, **SMALL)
    for name in ("vocab.tsv", "corpus.ids"):
        assert (run.path / name).read_bytes() == (ref.path / name).read_bytes()
    np.testing.assert_array_equal(run.vectors.vectors, ref.vectors.vectors)
    assert "united_states" in {w.lower() for w in run.vectors.index_to_key}
    assert run.config["phrases"] == 2 and ref.config["phrases"] == 0
    assert "phrases = 2" in (run.path / "config.toml").read_text()
    assert sorted(p.name for p in run.path.iterdir()) == sorted(p.name for p in ref.path.iterdir())


def test_train_phrases_leaves_nothing_of_a_run_that_fails(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"new york \xff\n")
    with pytest.raises(w2v_nce.W2VError, match="not valid UTF-8 at byte 9"):
        w2v_nce.train(bad, tmp_path / "r", phrases=1, **SMALL)
    rare = tmp_path / "rare.txt"
    rare.write_text("a b c d e f\n")
    with pytest.raises(w2v_nce.W2VError, match=f"{rare} \\(its phrases joined\\)"):  # not the phrased text's name
        w2v_nce.train(rare, tmp_path / "r", phrases=1, **SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.txt", "rare.txt"]


def test_a_stopped_phrased_run_resumes_and_continues(tmp_path):
    stopped = w2v_nce.train(LEE, tmp_path / "r", phrases=1, on_epoch=lambda *_: False, **{**SMALL, "epochs": 2})
    assert not stopped.finished
    run = w2v_nce.train(out=stopped, resume=True, progress=False)
    whole = w2v_nce.train(LEE, tmp_path / "whole", phrases=1, **{**SMALL, "epochs": 2})
    assert run.finished and run.config["phrases"] == 1
    np.testing.assert_array_equal(run.vectors.vectors, whole.vectors.vectors)
    more = w2v_nce.train(LEE, tmp_path / "more", init=run, phrases=1, **SMALL)  # continued training
    assert more.finished and set(run.vectors.index_to_key) <= set(more.vectors.index_to_key)


def test_phrase_analogies_are_looked_up_like_gensim(tmp_path):
    from gensim.models import KeyedVectors

    words = ["boston", "boston_globe", "baltimore", "baltimore_sun", "chicago", "chicago_tribune", "denver",
             "denver_post", "the", "new_york_times"]
    kv = KeyedVectors(4)
    kv.add_vectors(words, np.random.default_rng(0).normal(size=(len(words), 4)).astype(np.float32))
    questions = tmp_path / "phrases.txt"
    questions.write_text(": newspapers\nBoston Boston_Globe Baltimore Baltimore_Sun\n"
                         "Boston Boston_Globe Chicago Chicago_Tribune\nBaltimore Baltimore_Sun Denver Denver_Post\n"
                         "Denver Denver_Post Houston Houston_Chronicle\n")
    for restrict in (10, 6):
        ours = evaluate.analogies(kv, questions, restrict_vocab=restrict)
        score, sections = kv.evaluate_word_analogies(str(questions), restrict_vocab=restrict)
        total = sections[-1]
        assert ours["total"] == len(total["correct"]) + len(total["incorrect"])
        assert ours["correct"] == len(total["correct"]) and ours["accuracy"] == pytest.approx(score)
    assert evaluate.analogies(kv, questions, restrict_vocab=6)["total"] == 2  # Denver is 7th: not in the top 6


def test_help_and_a_run_through_the_cli(toy, tmp_path):
    r = runner.invoke(app, ["phrases", "--help"])
    assert r.exit_code == 0 and "{" not in r.output and "<list" not in r.output
    out = tmp_path / "out.txt"
    r = runner.invoke(app, ["phrases", str(toy), "--out", str(out), "--min-count", "1", "--threshold", "2"])
    assert r.exit_code == 0, r.output
    assert out.read_text().count("new_york") == 4 and "4 pairs joined" in r.output


@pytest.mark.parametrize("args, code, message", [
    (["nothere.txt"], 1, "corpus nothere.txt does not exist"),
    (["{toy}", "--scoring", "npmi"], 2, "--scoring npmi needs a --threshold in [-1, 1]"),
    (["{toy}", "--scoring", "npmi", "--threshold", "2"], 2, "outside [-1, 1]"),
    (["{toy}", "--threshold", "-1"], 2, "must be >= 0 with word2vec scoring"),
    (["{toy}", "--scoring", "pmi"], 2, "unknown scoring 'pmi'"),
    (["{toy}", "--passes", "0"], 2, "--passes must be >= 1"),
    (["{toy}", "--min-count", "0"], 2, "--min-count must be >= 1"),
    (["{toy}", "--delimiter", " "], 2, "without whitespace"),
    (["{toy}", "--passes", "3", "--threshold", "1", "--threshold", "2"], 2, "2 thresholds for 3 passes"),
    (["{empty}"], 1, "has no tokens"),
    (["{bad}"], 1, "is not valid UTF-8 at byte 9; fix the file or pass --encoding-errors replace"),
    (["{toy}", "{bad}"], 1, "is not valid UTF-8"),
])
def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, toy, args, code, message):
    (tmp_path / "empty.txt").write_text(" \n\n")
    (tmp_path / "bad.txt").write_bytes(b"new york \xff\n")
    out = tmp_path / "out.txt"
    out.write_text("an earlier file\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    names = {"toy": toy, "empty": tmp_path / "empty.txt", "bad": tmp_path / "bad.txt"}
    r = runner.invoke(app, ["phrases", *[a.format(**names) for a in args], "--out", str(out)])
    assert r.exit_code == code and message in r.output, r.output
    assert r.output.count("\n") == 1 and r.output.startswith("error: ") and "Traceback" not in r.output
    assert out.read_text() == "an earlier file\n" and sorted(p.name for p in tmp_path.iterdir()) == before


def test_out_is_not_the_corpus_nor_a_directory(toy, tmp_path):
    for out, message in ((toy, "is the corpus itself"), (tmp_path, "is a directory")):
        r = runner.invoke(app, ["phrases", str(toy), "--out", str(out)])
        assert r.exit_code == 2 and message in r.output, r.output
    assert toy.read_text() == TOY
    r = runner.invoke(app, ["phrases", str(toy), "--out", str(tmp_path / "x.txt"), "--encoding-errors", "replace"])
    assert r.exit_code == 0, r.output
    with pytest.raises(UsageError, match="encoding-errors"):
        phrases.build(toy, tmp_path / "y.txt", encoding_errors="ignore")
