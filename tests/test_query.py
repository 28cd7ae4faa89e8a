"""`w2v-nce similar` and `w2v-nce analogy`: gensim's most_similar, from a run directory or any vectors file."""

import json

import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath
from typer.testing import CliRunner

from w2v_nce import training as train_mod
from w2v_nce.cli import app
from w2v_nce.config import make_config

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "run"
    train_mod.train(make_config(epochs=2, min_count=3, dim=16, threads=1), datapath("lee_background.cor"), out,
                    progress=False, log=lambda *_: None)
    return out


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_similar_equals_gensim_most_similar(run, tmp_path):
    kv = KeyedVectors.load(str(run / "vectors.kv"))
    r = invoke("similar", "government", "police", "--vectors", run, "--topn", 7, "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert list(got) == ["government", "police"]
    for word, pairs in got.items():
        assert pairs == [[w, pytest.approx(c, abs=1e-6)] for w, c in kv.most_similar(word, topn=7)]
    # the same from a word2vec binary file, and in the human format
    assert invoke("export", run, "--out", tmp_path / "v.bin").exit_code == 0
    r = invoke("similar", "government", "--vectors", tmp_path / "v.bin", "--topn", 3)
    assert r.exit_code == 0 and r.stdout.startswith("nearest to 'government' (cosine):")
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == [w for w, _ in kv.most_similar("government", topn=3)]


def test_analogy_equals_gensim_most_similar(run):
    kv = KeyedVectors.load(str(run / "vectors.kv"))
    r = invoke("analogy", "he", "his", "she", "--vectors", run, "--json")
    assert r.exit_code == 0, r.output
    expect = kv.most_similar(positive=["his", "she"], negative=["he"], topn=10)
    assert json.loads(r.stdout) == [[w, pytest.approx(s, abs=1e-6)] for w, s in expect]
    r = invoke("analogy", "he", "his", "she", "--vectors", run, "--topn", 2)
    assert r.exit_code == 0 and r.stdout.splitlines()[0] == "he is to his as she is to:"
    assert len(r.stdout.splitlines()) == 3


def test_defaults_to_the_latest_run(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke("similar", "police").exit_code == 1  # no runs/latest here
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "latest").symlink_to(run)
    r = invoke("similar", "police", "--json", "--topn", 2)
    assert r.exit_code == 0 and len(json.loads(r.stdout)["police"]) == 2


def test_an_unknown_word_is_a_one_line_error_naming_it(run):
    kv = KeyedVectors.load(str(run / "vectors.kv"))
    lower = next(w for w in kv.index_to_key if w.isalpha() and w.islower() and w.capitalize() not in kv)
    for args, msg in [(["similar", "government", "zzzunknown"], "'zzzunknown' is not in the vocabulary of"),
                      (["similar", lower.capitalize()], f"(did you mean {lower!r}?)"),
                      (["analogy", "he", "his", "Xyzzy"], "'Xyzzy' is not in the vocabulary")]:
        r = invoke(*args, "--vectors", run)
        lines = r.output.strip().splitlines()
        assert r.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], r.output
        assert lines[0].endswith("; query a word it has")


def test_topn_must_be_positive(run):
    r = invoke("similar", "government", "--vectors", run, "--topn", 0)
    assert r.exit_code == 2 and "--topn must be > 0" in r.output


def test_without_words_a_prompt_answers_each_line_until_the_end(run):
    """word2vec.c's distance and word-analogy: the vectors loaded once, one query a line; a bad line is one error
    line and the prompt goes on. (r.output: older click mixes stderr into it.)"""
    def lines(r):
        out = r.output.splitlines()
        return [json.loads(x) for x in out if x[:1] in "{["], [x for x in out if x.startswith("error:")]
    kv = KeyedVectors.load(str(run / "vectors.kv"))
    r = runner.invoke(app, ["similar", "--vectors", str(run), "--json", "--topn", "3"],
                      input="government\nnotaword\n\npolice fire\n")
    assert r.exit_code == 0, r.output
    answers, errors = lines(r)
    assert [list(a) for a in answers] == [["government"], ["police", "fire"]]
    assert answers[0]["government"] == [[w, pytest.approx(c)] for w, c in kv.most_similar("government", topn=3)]
    assert len(errors) == 1 and "'notaword' is not in the vocabulary" in errors[0]
    r = runner.invoke(app, ["analogy", "--vectors", str(run), "--json", "--topn", "2"],
                      input="he his she\nhe his\n")
    assert r.exit_code == 0, r.output
    (answer,), errors = lines(r)
    assert answer == [[w, pytest.approx(c)] for w, c in kv.most_similar(positive=["his", "she"],
                                                                         negative=["he"], topn=2)]
    assert errors == ["error: expected three words: A B C, got 2 words"]
    assert invoke("analogy", "man", "king", "--vectors", run).exit_code == 2  # two of three: a usage error


def test_the_quick_loader_answers_as_gensim_without_importing_it(run):
    """`similar` and `analogy` read vectors.kv without gensim (a second of the query's start-up): the answers are
    gensim's most_similar for many words and analogies, and gensim is not imported on that path."""
    import subprocess
    import sys
    from w2v_nce import query
    kv, quick = KeyedVectors.load(str(run / "vectors.kv")), query.load(run)
    assert isinstance(quick, query.Vectors)
    for w in kv.index_to_key[:200:4]:
        got, want = quick.most_similar(w, topn=10), kv.most_similar(w, topn=10)
        assert [v for v, _ in got] == [v for v, _ in want], w
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-6)
    words = kv.index_to_key[:30]
    for a, b, c in zip(words, words[1:], words[2:]):
        got, want = (x.most_similar(positive=[b, c], negative=[a], topn=5) for x in (quick, kv))
        assert [v for v, _ in got] == [v for v, _ in want]
    code = (f"import sys; from w2v_nce import query; query.load({str(run)!r}); "
            "assert 'gensim' not in sys.modules and 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
