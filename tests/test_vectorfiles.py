"""Reading vectors files (vectorfiles.py): a crafted .kv pickle never runs, through any command or the API; every real
file still loads, with the vectors gensim's own loader gives."""

import os
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from gensim.models import FastText, KeyedVectors
from gensim.test.utils import common_texts, datapath
from typer.testing import CliRunner

import w2v_nce
from w2v_nce.tools import query, vectorfiles
from w2v_nce.run import train as training
from w2v_nce.cli import app
from w2v_nce.config import make_config
from w2v_nce.errors import UnsafePickle, W2VError

runner = CliRunner()
FIXTURES = Path(__file__).parent / "data" / "kv"


class Call:
    """Pickles as the call f(*args): what a crafted file does."""

    def __init__(self, f, *args):
        self.f, self.args = f, args

    def __reduce__(self):
        return self.f, self.args


class OwnKV(KeyedVectors):
    """A KeyedVectors subclass that gensim does not ship, whose loading runs code."""

    def __setstate__(self, state):
        Path(state["marker"]).touch()
        self.__dict__.update(state)


def small_kv(n=30, dim=8) -> KeyedVectors:
    kv = KeyedVectors(dim)
    kv.add_vectors([f"w{i}" for i in range(n)], np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32))
    return kv


def write(path: Path, obj) -> Path:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)
    return path


def crafted(name: str, d: Path) -> tuple[Path, str]:
    """A .kv file in `d` that, unpickled by anything but the restricted loader, creates d/PWNED; and the name the
    refusal must give."""
    marker = str(d / "PWNED")
    shell = f"touch {marker}"
    path = d / f"{name}.kv"
    if name == "os.system":
        return write(path, Call(os.system, shell)), "system"
    if name == "builtins.eval":
        return write(path, Call(eval, f"__import__('os').system({shell!r})")), "builtins.eval"
    if name == "subprocess.Popen":
        return write(path, Call(subprocess.Popen, ["touch", marker])), "subprocess.Popen"
    if name == "nested":  # a real KeyedVectors with the call deep inside its attributes
        kv = small_kv()
        kv.expandos["note"] = [{"x": Call(os.system, shell)}]
        return write(path, kv), "system"
    if name == "subclass":
        kv = small_kv()
        kv.__class__ = OwnKV
        kv.marker = marker
        return write(path, kv), "OwnKV"
    if name == "numpy.load":  # numpy's own loader, allowed to unpickle: a second file runs the code
        inner = write(d / "inner.pkl", Call(os.system, shell))
        return write(path, Call(np.load, str(inner), None, True)), "numpy.load"
    if name == "gensim.utils.unpickle":
        from gensim import utils
        inner = write(d / "inner.pkl", Call(os.system, shell))
        return write(path, Call(utils.unpickle, str(inner))), "gensim.utils.unpickle"
    if name == "side-pickle":  # gensim's __scipys: gensim would unpickle the side file
        kv = small_kv()
        write(d / f"{name}.kv.vectors.npy", Call(os.system, shell))
        kv.__dict__["__scipys"] = ["vectors"]
        return write(path, kv), "unpickle the files beside it"
    if name == "method":  # the object's own method replaced by another admitted callable
        kv = small_kv()
        kv.__dict__["most_similar"] = np.ndarray
        return write(path, kv), "most_similar"
    raise ValueError(name)


CRAFTED = ["os.system", "builtins.eval", "subprocess.Popen", "nested", "subclass", "numpy.load",
           "gensim.utils.unpickle", "side-pickle", "method"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vf") / "run"
    training.train(make_config(epochs=1, min_count=3, dim=16, threads=1), datapath("lee_background.cor"), out,
                   progress=False, log=lambda *_: None)
    return out


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def refused(r, what: str):
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()  # stderr: click 8.1 (the oldest admitted) mixes it in
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.output, r.output
    assert what in lines[0] and "--trust-pickle" in lines[0] and "unsafe" in lines[0], lines[0]


@pytest.mark.parametrize("name", CRAFTED)
def test_a_crafted_file_runs_through_no_command(name, run, tmp_path):
    path, what = crafted(name, tmp_path)
    evil_run = tmp_path / "evilrun"
    shutil.copytree(run, evil_run)
    shutil.copy(path, evil_run / "vectors.kv")
    for side in tmp_path.glob(f"{name}.kv.*"):  # a side file goes with its .kv
        shutil.copy(side, evil_run / side.name.replace(f"{name}.kv", "vectors.kv"))
    for source in (path, evil_run):
        for args in (("similar", "w1", "--vectors", source), ("analogy", "a", "b", "c", "--vectors", source),
                     ("eval", "analogies", source), ("eval", "similarity", source),
                     ("export", source, "--out", tmp_path / "out.txt"),
                     ("export", source, "--format", "projector", "--out", tmp_path / "p")):
            refused(invoke(*args), what)
        with pytest.raises(UnsafePickle, match="trust"):
            vectorfiles.load_vectors(source)
    with pytest.raises(UnsafePickle):
        w2v_nce.load(evil_run).vectors
    with pytest.raises(UnsafePickle):
        query.load(path)
    assert not (tmp_path / "PWNED").exists()
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob("p_*"))  # nothing half-written


def test_the_commands_that_read_no_vectors_file_ignore_a_crafted_one(run, tmp_path):
    """plot reads metrics.jsonl, eval heldout and --init the checkpoint (torch.load(weights_only=True)): a crafted
    vectors.kv in the run changes nothing."""
    path, _ = crafted("os.system", tmp_path)
    evil_run = tmp_path / "evilrun"
    shutil.copytree(run, evil_run)
    shutil.copy(path, evil_run / "vectors.kv")
    assert invoke("plot", evil_run, "--out", tmp_path / "t.png").exit_code == 0
    r = invoke("eval", "heldout", evil_run, "--corpus", datapath("lee.cor"), "--max-contexts", 50)
    assert r.exit_code == 0, r.output
    r = invoke("train", datapath("lee_background.cor"), "--init", evil_run, "--dim", 16, "--epochs", 1, "--min-count", 3,
               "--threads", 1, "--no-progress", "--out", tmp_path / "continued")
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "PWNED").exists()


def test_trust_pickle_loads_with_gensim_itself(tmp_path):
    """The way out the refusal names: --trust-pickle / trust_pickle=True hand the file to gensim's loader (which,
    for this file, runs its code: that is what trusting it means)."""
    path, _ = crafted("os.system", tmp_path)
    r = invoke("similar", "w1", "--vectors", path, "--trust-pickle")
    assert r.exit_code == 1 and "cannot read" in r.output  # it ran, and was no KeyedVectors
    assert (tmp_path / "PWNED").exists()
    kv = small_kv()
    kv.__class__ = OwnKV
    kv.marker = str(tmp_path / "own-loaded")
    write(tmp_path / "own.kv", kv)
    with pytest.raises(UnsafePickle):
        vectorfiles.load_vectors(tmp_path / "own.kv")
    got = vectorfiles.load_vectors(tmp_path / "own.kv", trust_pickle=True)
    assert isinstance(got, OwnKV) and (tmp_path / "own-loaded").exists()


def test_side_arrays_are_read_without_pickle(tmp_path):
    """A large file's side array (NAME.vectors.npy) holding objects is refused by np.load(allow_pickle=False); a
    side array's name that leaves the file's folder is refused before any read."""
    kv = small_kv()
    kv.save(str(tmp_path / "a.kv"), sep_limit=10)
    np.save(tmp_path / "a.kv.vectors.npy", np.array([Call(os.system, f"touch {tmp_path / 'PWNED'}")], dtype=object),
            allow_pickle=True)
    r = invoke("similar", "w1", "--vectors", tmp_path / "a.kv")
    assert r.exit_code == 1 and "a.kv.vectors.npy" in r.output and len(r.output.splitlines()) == 1, r.output
    kv.__dict__["__numpys"] = ["../../etc/passwd"]
    write(tmp_path / "b.kv", kv)
    with pytest.raises(W2VError, match="side arrays that no gensim file has"):
        vectorfiles.load_vectors(tmp_path / "b.kv")
    assert not (tmp_path / "PWNED").exists()


def equal_to_gensims(path: Path):
    """Our load of `path` (both loaders) against gensim's own: the same words and the same vectors."""
    want = KeyedVectors.load(str(path))
    for got in (vectorfiles.load_vectors(path), query.load(path)):
        assert got.index_to_key == want.index_to_key and got.key_to_index == want.key_to_index
        assert np.array_equal(got.vectors, want.vectors) and got.vectors.dtype == want.vectors.dtype
    return want


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # gensim's own load of a numpy 1 file under numpy 2
@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.kv")), ids=lambda p: p.name)
def test_files_of_gensim_4_3_and_4_4_and_of_w2v_nce_load(path, tmp_path):
    """The files in tests/data/kv (gensim 4.3.0 with numpy 1, gensim 4.4.0 with numpy 2, small and with side
    arrays, KeyedVectors and FastTextKeyedVectors, and w2v-nce's own), as gensim loads them; a FastText file answers
    an unseen word as gensim does; each exports to every format."""
    if "numpy2" in path.name and int(np.__version__.split(".")[0]) < 2:
        # gensim under numpy 1 cannot read what numpy 2 pickled (numpy._core); we read it as numpy.core: the vectors
        # are those of its twin written under numpy 1 from the same random numbers
        twin = Path(str(path).replace("gensim4.4.0-numpy2", "gensim4.3.0-numpy1").replace("numpy2", "numpy1"))
        got = vectorfiles.load_vectors(path)
        if "fasttext" not in path.name:
            assert np.array_equal(got.vectors, KeyedVectors.load(str(twin)).vectors)
        return
    want = equal_to_gensims(path)
    got = vectorfiles.load_vectors(path)
    assert type(got) is type(want)
    if "fasttext" in path.name:
        assert np.array_equal(got["unseen-word"], want["unseen-word"])
    for out in ("v.txt", "v.bin", "v.kv", "proj"):
        args = ("--format", "projector") if out == "proj" else ()
        assert invoke("export", path, "--out", tmp_path / out, *args).exit_code == 0
    assert np.array_equal(KeyedVectors.load(str(tmp_path / "v.kv")).vectors, want.vectors)


def test_files_this_gensim_writes_load(tmp_path):
    """With the installed gensim: a small file, a large one (an array of 10M numbers or more goes to a side .npy, by
    gensim's own rule), a compressed one (.kv.gz with a side .npz), and FastText's."""
    equal_to_gensims(write_gensim(small_kv(), tmp_path / "small.kv"))
    big = small_kv(n=110_000, dim=96)  # 10.6M numbers
    assert (write_gensim(big, tmp_path / "large.kv") and (tmp_path / "large.kv.vectors.npy").exists())
    equal_to_gensims(tmp_path / "large.kv")
    write_gensim(big, tmp_path / "large.kv.gz")
    assert (tmp_path / "large.kv.gz.vectors.npz").exists()
    want = KeyedVectors.load(str(tmp_path / "large.kv.gz"))
    assert np.array_equal(vectorfiles.load_vectors(tmp_path / "large.kv.gz").vectors, want.vectors)
    ft = FastText(common_texts, vector_size=8, min_count=1, bucket=100, workers=1, seed=1).wv
    equal_to_gensims(write_gensim(ft, tmp_path / "ft.kv"))


def write_gensim(kv, path: Path) -> Path:
    kv.save(str(path))
    return path


def test_a_runs_vectors_load_quickly_and_safely(run):
    """A run's own vectors.kv through the quick loader (no gensim) and the full one: the same vectors as gensim's."""
    assert isinstance(query.load(run), query.Vectors)
    equal_to_gensims(run / "vectors.kv")
    assert np.array_equal(w2v_nce.load(run).vectors.vectors, KeyedVectors.load(str(run / "vectors.kv")).vectors)
