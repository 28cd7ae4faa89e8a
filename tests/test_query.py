"""`w2v-nce similar` and `w2v-nce analogy`: gensim's most_similar, from a run directory or any vectors file."""

import json
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath
from typer.testing import CliRunner

from w2v_nce.run import train as train_mod
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
    r = invoke("similar", "government", "police", "--vectors", run, "--topn", 7, "--json", "--each")
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
    assert [list(a) for a in answers] == [["government"], ["police + fire"]]  # several words: their sum
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
    from w2v_nce.tools import query
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
    code = (f"import sys; from w2v_nce.tools import query; query.load({str(run)!r}); "
            "assert 'gensim' not in sys.modules and 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# --- word2vec text and binary files, read without gensim ---------------------------------------------------------

GENSIM_DATA = ["euclidean_vectors.bin", "poincare_vectors.bin", "high_precision.kv.bin",  # binary, by gensim/others
               "lee_fasttext.vec", "toy-model.vec", "crime-and-punishment.vec",  # fastText: a space ends each line
               "high_precision.kv.txt", "EN.1-10.cbow1_wind5_hs0_neg10_size300_smpl1e-05.txt"]  # 17-19 digits


@pytest.fixture(scope="module")
def files(run, tmp_path_factory):
    """The run's vectors exported as .bin and .txt, compressed, and files gensim writes itself."""
    import bz2
    import gzip
    d = tmp_path_factory.mktemp("w2v")
    for name in ("v.bin", "v.txt"):
        assert invoke("export", run, "--out", d / name).exit_code == 0
    (d / "v.txt.gz").write_bytes(gzip.compress((d / "v.txt").read_bytes()))
    (d / "v.bin.bz2").write_bytes(bz2.compress((d / "v.bin").read_bytes()))
    # gensim's own writer, on values of every magnitude float32 has (subnormals, 1e38, -0.0, exact zeros)
    rng = np.random.default_rng(0)
    kv = KeyedVectors(5, count=0)
    values = (rng.standard_normal((300, 5)) * 10.0 ** rng.integers(-44, 37, (300, 5))).astype(np.float32)
    values[0] = [0.0, -0.0, 1e-45, -3.4028235e38, 1.0]
    kv.add_vectors([f"w{i}" for i in range(300)], values)
    kv.save_word2vec_format(str(d / "gensim.txt"))
    kv.save_word2vec_format(str(d / "gensim.bin"), binary=True)
    # numbers in every form gensim's float parsing takes: the compiled pass and the exact path
    forms = ["%.1f", "%f", "%.9f", "%.12f", "%.17g", "%g", "%.3e", "%.8E", "%r"]
    lines = [f"x{i} " + " ".join((forms[(i + j) % len(forms)] % v) for j, v in enumerate(row))
             for i, row in enumerate(values.astype(float).tolist())]
    lines[1] = "x1 +.5 5. 1E5 -0 1_0"  # a sign, no digits before or after the point, an underscore (float() takes it)
    (d / "forms.txt").write_text(f"{len(lines)} 5\n" + "\n".join(lines) + "\n")
    return d


def _gensim_load(path):
    binary = ".bin" in path.name
    return KeyedVectors.load_word2vec_format(str(path), binary=binary)


@pytest.mark.parametrize("name", ["v.bin", "v.txt", "v.txt.gz", "v.bin.bz2", "gensim.txt", "gensim.bin", "forms.txt"]
                         + GENSIM_DATA)
def test_the_word2vec_readers_equal_gensims_load(files, name):
    """Words in order and every float32 bit for bit, as gensim's load_word2vec_format gives them."""
    from w2v_nce.tools import query
    path = files / name if (files / name).exists() else Path(datapath(name))
    quick, kv = query.load(path), _gensim_load(path)
    assert isinstance(quick, query.Vectors)  # read without gensim
    assert quick.index_to_key == kv.index_to_key
    assert quick.vectors.dtype == np.float32 and quick.vectors.shape == kv.vectors.shape
    assert np.array_equal(quick.vectors.view(np.uint32), kv.vectors.view(np.uint32))


@pytest.mark.parametrize("name", ["v.bin", "v.txt"])
def test_similar_and_analogy_on_word2vec_files_answer_as_gensim(files, name):
    kv = _gensim_load(files / name)
    for args, want in [(["government"], {"government": kv.most_similar("government", topn=5)}),
                       (["government", "police"], {"government + police":
                                                    kv.most_similar(positive=["government", "police"], topn=5)}),
                       (["government", "police", "--each"], {w: kv.most_similar(w, topn=5)
                                                             for w in ("government", "police")})]:
        r = invoke("similar", *args, "--vectors", files / name, "--topn", 5, "--json")
        assert r.exit_code == 0, r.output
        assert json.loads(r.output) == {q: [[w, pytest.approx(c, abs=1e-6)] for w, c in pairs]
                                        for q, pairs in want.items()}
    r = invoke("analogy", "he", "his", "she", "--vectors", files / name, "--json")
    assert r.exit_code == 0, r.output
    want = kv.most_similar(positive=["his", "she"], negative=["he"], topn=10)
    assert json.loads(r.output) == [[w, pytest.approx(s, abs=1e-6)] for w, s in want]


def test_word2vec_queries_import_neither_gensim_nor_torch(files):
    import subprocess
    import sys
    for name in ("v.bin", "v.txt", "v.txt.gz"):
        code = ("import sys; from w2v_nce import cli; "
                f"sys.argv = ['w2v-nce', 'similar', 'government', 'police', '--vectors', {str(files / name)!r}]\n"
                "try:\n    cli.main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
                "assert 'gensim' not in sys.modules and 'torch' not in sys.modules, 'imported'")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("nearest to 'government' + 'police' (cosine):\n"), r.stdout


def test_a_malformed_word2vec_file_is_one_line_of_error(files, tmp_path):
    """What the quick readers cannot read goes to gensim's loader, with its one-line errors; nothing else is
    printed."""
    from w2v_nce.tools import vectorfiles
    from w2v_nce.errors import W2VError
    good = (files / "v.bin").read_bytes()
    cases = {"truncated.bin": (good[:len(good) // 2], "unexpected end of input"),
             "short-line.txt": (b"2 3\na 1 2 3\nb 3 4\n", "cannot read"),
             "bad-header.txt": (b"2 x\na 1 2 3\nb 3 4 5\n", "is not a vectors file"),
             "truncated.txt": (b"3 2\na 1 2\nb 3 4\n", "unexpected end of input"),
             "not-finite.txt": (b"2 2\na 1 inf\nb 3 4\n", "not finite"),
             "bad-utf8.txt": (b"2 2\na\xff 1 2\nb 3 4\n", "cannot read")}
    for name, (content, msg) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(W2VError) as established:
            vectorfiles.load_vectors(tmp_path / name)
        r = invoke("similar", "a", "--vectors", tmp_path / name)
        lines = r.output.strip().splitlines()
        assert r.exit_code == 1 and lines == [f"error: {established.value}"] and msg in lines[0], (name, r.output)


def test_what_the_quick_readers_leave_gensim_reads(tmp_path):
    """A duplicate word (gensim keeps the first) and a line of one number (gensim repeats it) are gensim's rules,
    not repeated: gensim reads those files, and the answers are its own."""
    from gensim.models import KeyedVectors as Gensim
    from w2v_nce.tools import query
    (tmp_path / "dup.txt").write_bytes(b"3 2\na 1 0\nb 0 1\na 1 1\n")
    (tmp_path / "one.txt").write_bytes(b"2 3\na 1 2 3\nb 7\n")
    for name in ("dup.txt", "one.txt"):
        kv = query.load(tmp_path / name)
        assert isinstance(kv, Gensim) and kv.index_to_key[:2] == ["a", "b"]
    assert kv.vectors[1].tolist() == [7.0, 7.0, 7.0]


def test_several_words_are_their_sum_and_each_gives_one_list_per_word(run):
    """word2vec.c's distance answers a line of several words with the neighbours of their sum: most_similar(positive=
    [...]) (the mean of the unit vectors: the same direction), the words themselves left out."""
    kv = KeyedVectors.load(str(run / "vectors.kv"))
    want = kv.most_similar(positive=["government", "police"], topn=4)
    r = invoke("similar", "government", "police", "--vectors", run, "--topn", 4)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "nearest to 'government' + 'police' (cosine):" and len(lines) == 5
    assert [x.split()[0] for x in lines[1:]] == [w for w, _ in want]
    assert not {"government", "police"} & {x.split()[0] for x in lines[1:]}
    r = invoke("similar", "government", "police", "--vectors", run, "--topn", 4, "--each")
    assert r.exit_code == 0, r.output
    blocks = r.output.strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["nearest to 'government' (cosine):", "nearest to 'police' (cosine):"]
    r = invoke("similar", "government", "zzzunknown", "--vectors", run)
    lines = r.output.strip().splitlines()
    assert r.exit_code == 1 and len(lines) == 1 and "'zzzunknown' is not in the vocabulary" in lines[0], r.output
    # at the prompt: a line of several words is their sum, or with --each a list per word
    line = "government police\nfire\ngovernment zzzunknown\n"
    r = runner.invoke(app, ["similar", "--vectors", str(run), "--json", "--topn", "4"], input=line)
    out = r.output.splitlines()
    assert r.exit_code == 0 and [list(json.loads(x)) for x in out if x.startswith("{")] == [
        ["government + police"], ["fire"]], r.output
    assert json.loads(out[0])["government + police"] == [[w, pytest.approx(c, abs=1e-6)] for w, c in want]
    assert [x for x in out if x.startswith("error:")] == [
        next(x for x in out if "'zzzunknown' is not in the vocabulary" in x)]
    r = runner.invoke(app, ["similar", "--vectors", str(run), "--json", "--topn", "4", "--each"], input=line)
    assert [list(json.loads(x)) for x in r.output.splitlines() if x.startswith("{")] == [
        ["government", "police"], ["fire"]], r.output


def test_the_readme_example(run):
    """docs/queries.md's example of a query of two words is what `similar` prints for it; the same command on this
    run prints that shape."""
    import re
    from w2v_nce.tools import query
    section = (Path(__file__).parents[1] / "docs" / "queries.md").read_text()
    example = re.search(r"\$ (w2v-nce similar .*)\n((?:(?!```).+\n)+)", section)
    assert example, "docs/queries.md shows a `$ w2v-nce similar ...` example and its output"
    argv, shown = example.group(1).split()[1:], example.group(2).rstrip("\n")
    words = [a for a in argv[1:argv.index("--vectors")]]
    rows = [line.split() for line in shown.splitlines()[1:]]
    result = {" + ".join(words): [[w, float(c)] for w, c in rows]}
    assert query.format_similar(result, words, each=False) == shown
    assert len(rows) == int(argv[argv.index("--topn") + 1])
    r = invoke("similar", "government", "police", "--vectors", run, "--topn", len(rows))
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[0] == "nearest to 'government' + 'police' (cosine):"
    assert [re.fullmatch(r"  \S+ +\d\.\d{4}", x) is not None for x in r.output.splitlines()[1:]] == [True] * len(rows)
