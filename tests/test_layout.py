"""The package's layout (issue 38): a folder per stage, imports running one way down the stages, no circle, no private
name taken from another module, short modules. Read from the source (ast), every import counted, those inside
functions too."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "w2v_nce"
# front doors > tools > run > step > model > corpus; the base (errors, config, files, lock, jit_cache) under all of them
STAGES = {"api": 5, "cli": 5, "help_format": 5, "__init__": 5, "__main__": 5, "tools": 4, "run": 3, "step": 2, "model": 1,
          "corpus": 0, "errors": -1, "config": -1, "files": -1, "lock": -1, "jit_cache": -1}
LONGEST = 400  # lines a module, about


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE).with_suffix("").parts): p for p in PACKAGE.rglob("*.py")}


def stage(module: str) -> int:
    return STAGES[module.split(".")[0]]


def imports(module: str, path: Path) -> list[tuple[str, list[str]]]:
    """(the module imported, the names taken from it) for every import of `module`, resolved to this package's
    module names ('run.rundir'); a name that is itself a module counts as that module."""
    known = modules()
    package = module.split(".")[:-1] if not module.endswith("__init__") else module.split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "w2v_nce":
                target = node.module.split(".")[1:]
            else:
                continue
            names = [a.name for a in node.names]
            for name in names:
                sub = ".".join(target + [name])
                if sub in known or f"{sub}.__init__" in known:
                    out.append((sub, []))
            dotted = ".".join(target) or "__init__"
            if dotted in known or f"{dotted}.__init__" in known:
                out.append((dotted if dotted in known else f"{dotted}.__init__",
                            [n for n in names if ".".join(target + [n]) not in known]))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("w2v_nce."):
                    out.append((a.name[len("w2v_nce."):], []))
    return out


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_run_down_the_stages(module):
    for target, names in imports(module, modules()[module]):
        if target == "__init__":
            continue  # the package itself (its version, its front door)
        private = [n for n in names if n.startswith("_") and not n.startswith("__")]
        assert not private, f"{module} takes private names of {target}: {private}"
        if target.split(".")[0] == module.split(".")[0]:
            continue  # within a stage
        assert stage(target) <= stage(module), f"{module} imports {target}, a later stage"
        if stage(module) < 0:
            assert stage(target) < 0, f"{module} is of the base and imports {target}"


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_private_names_of_other_modules(module):
    """`other._name` where `other` is another module of the package, imported here."""
    path = modules()[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bound = {}  # local name -> the package module it is
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("w2v_nce")):
            for target, _ in imports(module, path):
                for a in node.names:
                    if target.split(".")[-1] == a.name:
                        bound[a.asname or a.name] = target
    used = sorted({f"{bound[n.value.id]}.{n.attr}" for n in ast.walk(tree)
                   if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in bound
                   and bound[n.value.id] != module and n.attr.startswith("_") and not n.attr.startswith("__")})
    assert not used, f"{module} uses private names of other modules: {used}"


def test_no_circles():
    graph = {m: {t for t, _ in imports(m, p) if t not in (m, "__init__")} for m, p in modules().items()}
    index, low, on, stack, circles, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                circles.append(sorted(scc))
    for v in graph:
        if v not in index:
            visit(v)
    assert not circles


@pytest.mark.parametrize("module", sorted(modules()))
def test_modules_are_short(module):
    lines = modules()[module].read_text(encoding="utf-8").count("\n")
    assert lines <= LONGEST * 1.1, f"{module}: {lines} lines"


LONGEST_FUNCTION = 50  # lines of a function's body, its docstring aside, about
# The two CUDA kernels are one loop each, as update.py's loops are; split into device functions they could compile
# to other register counts, and their speed can only be measured on a GPU.
LONG_KERNELS = {"step.cuda_update": {"_logistic_family", "logistic_kernel", "_softmax_family", "softmax_kernel"}}


@pytest.mark.parametrize("module", sorted(modules()))
def test_functions_are_short(module):
    long = []
    for node in ast.walk(ast.parse(modules()[module].read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                node.name not in LONG_KERNELS.get(module, ()):
            body = node.body[1:] if ast.get_docstring(node) is not None and len(node.body) > 1 else node.body
            lines = node.end_lineno - body[0].lineno + 1
            if lines > LONGEST_FUNCTION * 1.1:
                long.append(f"{node.name} ({lines} lines)")
    assert not long, f"{module}: {', '.join(long)}"
