"""What a new user's install needs: every import declared, the Python version claimed true to the code, and
the installed (non-editable) tool working outside the repository, presets by name included."""

import ast
import importlib.metadata as md
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from gensim.test.utils import datapath

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(requirement: str) -> str:
    return re.split(r"[ <>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def imports(tree: ast.AST):
    """(top-level module, whether the import is at module level and unguarded) for each import."""
    guarded = set()
    for node in ast.walk(tree):  # imports inside `try: ... except ImportError` may be optional
        if isinstance(node, ast.Try) and any("ImportError" in ast.unparse(h.type or ast.Name("")) for h in node.handlers):
            guarded |= {id(n) for n in ast.walk(node)}
    top = {id(n) for n in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            yield name.split(".")[0], id(node) in top and id(node) not in guarded


def test_every_import_is_declared():
    base = {_name(r) for r in PROJECT["dependencies"]}
    extras = {_name(r) for reqs in PROJECT["optional-dependencies"].values() for r in reqs}
    dists = md.packages_distributions()  # module -> the distributions that provide it
    for path in sorted((ROOT / "w2v_nce").glob("*.py")):
        for module, required in imports(ast.parse(path.read_text(encoding="utf-8"))):
            if module in sys.stdlib_module_names or module == "w2v_nce":
                continue
            names = {d.lower() for d in dists.get(module, [module])}
            declared = base if required else base | extras
            assert names & declared, f"{path.name} imports {module} ({', '.join(names)}), which pyproject.toml " \
                                     f"does not declare{'' if required else ' (not even as an extra)'}"


def test_the_code_parses_as_the_oldest_python_it_claims():
    oldest = tuple(int(x) for x in re.match(r">=\s*(\d+)\.(\d+)", PROJECT["requires-python"]).groups())
    assert sys.version_info[:2] >= oldest
    for path in sorted((ROOT / "w2v_nce").glob("*.py")) + sorted((ROOT / "tests").glob("*.py")):
        ast.parse(path.read_text(encoding="utf-8"), str(path), feature_version=oldest)  # no newer syntax


def test_installed_tool_runs_outside_the_repository_with_a_preset_by_name(tmp_path):
    """A wheel of the package, installed with pip (not editable) into a folder of its own, run from elsewhere."""
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)], check=True,
                   cwd=tmp_path)
    (wheel,) = wheels.glob("w2v_nce-*.whl")
    subprocess.run(pip + ["install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import w2v_nce; print(w2v_nce.__file__)"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout
    assert Path(where).is_relative_to(target)  # the installed copy, not the checkout
    tool = [str(target / "bin" / "w2v-nce")]
    version = subprocess.run(tool + ["--version"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith(f"w2v-nce {md.version('w2v-nce')} (torch ")
    p = subprocess.run(tool + ["train", datapath("lee_background.cor"), "--config", "cbow-nce", "--epochs", "1",
                               "--dim", "8", "--min-count", "3", "--no-progress"],
                       env=env, cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    config = (tmp_path / "runs" / "lee_background-cbow-nce" / "config.toml").read_text()
    assert 'model = "cbow"' in config and 'loss = "nce"' in config and "lr = 0.05" in config
    p = subprocess.run(tool + ["train", "x.txt", "--config", "sg-nec"], env=env, cwd=tmp_path, capture_output=True,
                       text=True)
    assert p.returncode == 2 and p.stderr.strip() == (
        "error: config file sg-nec not found; did you mean sg-neg or sg-nce? pass a TOML file or a preset: cbow-hs, "
        "cbow-infonce, cbow-nce, cbow-neg, cbow-sampled-softmax, cbow-softmax, sg-hs, sg-infonce, sg-nce, sg-neg, "
        "sg-sampled-softmax")

