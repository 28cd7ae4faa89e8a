"""numba's cache follows the kernels across files (w2v_nce/jit_cache.py): a kernel cached before an edit of any file it
can reach is compiled again, not loaded with the old code."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from w2v_nce import jit_cache

numba = pytest.importorskip("numba")
ROOT = Path(__file__).resolve().parents[1]
# one small kernel of the package, called once (corpus/examples.py's pass over a chunk)
CALL = ("import numpy as np; from w2v_nce.corpus import examples as e; "
        "e._examples(np.arange(5), np.zeros(5, np.int32), np.ones(5, np.int64), 2, np.zeros((40, 1), np.int64), "
        "np.ones((1, 1), np.bool_), np.zeros(40, np.int64), False)")


def test_the_packages_kernels_carry_the_hash_of_every_file_they_reach():
    from w2v_nce.step import cpu
    locator = cpu._logistic_step._cache._impl._locator
    assert type(locator).__name__.startswith("W2VNCE")
    assert locator.get_source_stamp()[1] == jit_cache.source_hash()


def test_the_hash_changes_with_any_compiled_stage_and_not_with_the_cli(tmp_path, monkeypatch):
    copy = tmp_path / "w2v_nce"
    shutil.copytree(jit_cache.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(jit_cache, "PACKAGE", copy)
    before = jit_cache.source_hash()
    (copy / "cli.py").write_text((copy / "cli.py").read_text() + "\n# a comment\n")
    assert jit_cache.source_hash() == before
    for name in ("step/inputs.py", "corpus/examples.py", "model/heads.py", "tools/query.py"):
        (copy / name).write_text((copy / name).read_text() + "\n# a comment\n")
        assert jit_cache.source_hash() != before, name
        before = jit_cache.source_hash()


def test_a_kernel_cached_before_an_edit_is_compiled_again(tmp_path):
    """The bug it fixes: a copy of the package, a kernel compiled and cached, then loaded; a file it reaches edited
    (step/inputs.py: another file than the kernel's own): compiled again; then loaded again."""
    shutil.copytree(jit_cache.PACKAGE, tmp_path / "w2v_nce", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "NUMBA_DEBUG_CACHE": "1"}
    env.pop("NUMBA_CACHE_DIR", None)

    def run() -> str:
        p = subprocess.run([sys.executable, "-c", CALL], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        return p.stdout + p.stderr

    assert "data saved" in run()
    assert "data loaded" in run()
    inputs = tmp_path / "w2v_nce" / "step" / "inputs.py"
    inputs.write_text(inputs.read_text() + "\n# an edit\n")
    out = run()
    assert "data saved" in out and "data loaded" not in out
    assert "data loaded" in run()


def test_a_function_outside_the_package_keeps_numbas_own_cache(tmp_path):
    (tmp_path / "mine.py").write_text("import numba\n@numba.njit(cache=True)\ndef f(x):\n    return x + 1\n")
    p = subprocess.run([sys.executable, "-c", "import w2v_nce.jit_cache, mine; print(type(mine.f._cache._impl._locator)"
                        ".__name__, mine.f(1))"], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"})
    assert p.returncode == 0, p.stderr
    name, value = p.stdout.split()
    assert not name.startswith("W2VNCE") and value == "2"


AVX512 = "+sse4.2,+avx2,+fma,+avx512f,+avx512bw,-amx-tile"


def test_512_bit_vectors_where_the_core_runs_them_at_full_clock():
    assert jit_cache.wide_features(AVX512, "emeraldrapids") == AVX512 + ",-prefer-256-bit"
    assert jit_cache.wide_features(AVX512, "znver4") == AVX512 + ",-prefer-256-bit"
    assert jit_cache.wide_features(AVX512, "skylake-avx512") is None  # its clock drops: LLVM's 256 bits kept
    assert jit_cache.wide_features(AVX512, "cascadelake") is None
    assert jit_cache.wide_features("+sse4.2,+avx2,+fma,-avx512f,-avx512bw", "alderlake") is None  # no AVX-512
    assert jit_cache.wide_features("+sse4.2,+neon", "generic") is None


FEATURES = ("import w2v_nce.step.cpu; from numba.core.registry import cpu_target; "
            "print(cpu_target.target_context.codegen().magic_tuple()[2])")


@pytest.mark.parametrize("mine", [None, "+avx2,+fma"])
def test_the_compilers_features_are_the_hosts_or_the_users(mine):
    """In a fresh process the code generator numba makes (at the package's first kernel) has wide_features' string, or
    the host's where that is None; a user's NUMBA_CPU_FEATURES is kept."""
    import llvmlite.binding as ll
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME")}
    if mine:
        env["NUMBA_CPU_FEATURES"] = mine
    p = subprocess.run([sys.executable, "-c", FEATURES], capture_output=True, text=True, env=env, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    host = ll.get_host_cpu_features().flatten()
    want = mine or jit_cache.wide_features(host, ll.get_host_cpu_name()) or host
    assert p.stdout.strip() == want


KERNEL = """import numba, numpy as np
import w2v_nce.jit_cache
@numba.njit(parallel=True, fastmath=True, cache=True)
def total(a):
    s = np.float32(0.0)
    for i in numba.prange(a.shape[0]):
        s += a[i] * np.float32(1.5)
    return s
"""
RUN = ("import numpy as np, sys; from w2v_nce import jit_cache; {imp}; a = np.arange(1000, dtype=np.float32); "
       "jit_cache.compiled_apart(total, a); print(total(a), len(total._cache_hits), len(total._cache_misses))")


def _apart(tmp_path, imp: str) -> tuple[float, int, int]:
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    p = subprocess.run([sys.executable, "-c", RUN.format(imp=imp)], capture_output=True, text=True, cwd=tmp_path,
                       env=env)
    assert p.returncode == 0, p.stderr
    value, hits, misses = p.stdout.split()
    return float(value), int(hits), int(misses)


def test_a_kernel_missing_from_the_cache_is_compiled_in_a_child_and_loaded(tmp_path):
    """compiled_apart: the first process's kernel is the cache's (loaded: a hit, no miss), as every later one's."""
    (tmp_path / "mine.py").write_text(KERNEL)
    assert _apart(tmp_path, "from mine import total") == (1.5 * 999 * 1000 / 2, 1, 0)
    assert _apart(tmp_path, "from mine import total") == (1.5 * 999 * 1000 / 2, 1, 0)  # no child: the cache has it


def test_a_kernel_the_child_cannot_find_is_compiled_here(tmp_path):
    """A kernel the child cannot import (a script's own, in its __main__): compiled in this process, as numba would."""
    (tmp_path / "main.py").write_text(KERNEL + RUN.format(imp="pass") + "\n")
    p = subprocess.run([sys.executable, "main.py"], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": str(tmp_path / "cache")})
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(1.5 * 999 * 1000 / 2), "0", "1"]


SAVER = """import sys
from numba.core import caching
from w2v_nce import jit_cache
path, who = sys.argv[1:]
jit_cache.OURS.add(path)  # a folder of the package's kernels
index = caching.IndexDataCacheFile(path, "kernel", "stamp")
for i in range(300):
    index.save((who, i), (who, i))
"""


def test_processes_saving_one_kernels_cache_at_once_lose_nothing(tmp_path):
    """numba's save reads the index, takes the first free data file and writes both back: two processes saving at
    once, unlocked, kept 359 and 393 of 600 entries and pointed 18-19 of them at the other process's data (a kernel
    loaded for the wrong types). jit_cache.one_saver: every entry kept, each with its own data."""
    (tmp_path / "saver.py").write_text(SAVER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ps = [subprocess.Popen([sys.executable, "saver.py", str(tmp_path), who], cwd=tmp_path, env=env) for who in "ab"]
    assert [p.wait() for p in ps] == [0, 0]
    from numba.core import caching
    index = caching.IndexDataCacheFile(str(tmp_path), "kernel", "stamp")
    keys = index._load_index()
    assert sorted(keys) == sorted((who, i) for who in "ab" for i in range(300))
    assert all(index.load(key) == key for key in keys)


def test_processes_that_need_one_kernel_at_once_compile_it_once(tmp_path):
    """compiled_apart's turns: two processes started together, each missing the kernel: one child compiles it, the
    other process waits and loads it from the cache (each would otherwise compile it on a core of its own)."""
    (tmp_path / "mine.py").write_text(KERNEL)
    counted = RUN.format(imp="from mine import total; import subprocess; children = []; real = subprocess.run; "
                         "jit_cache.subprocess.run = lambda *a, **k: children.append(1) or real(*a, **k)")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    ps = [subprocess.Popen([sys.executable, "-c", counted + "; print(len(children))"], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate()[0].split() for p in ps]
    assert [p.returncode for p in ps] == [0, 0]
    assert [o[:3] for o in outs] == [[str(1.5 * 999 * 1000 / 2), "1", "0"]] * 2  # both ran the cache's machine code
    assert sum(int(o[3]) for o in outs) == 1
