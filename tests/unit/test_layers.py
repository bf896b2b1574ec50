"""The package layering of docs/architecture.md §2, checked on the code's own imports, so it cannot drift.

Layers, bottom up: the shared modules (`dlcot/*.py`: records, answers, config, the command table ..., and the
`schema` package), then
`engines`, then `data` (problem, trace and benchmark sources), then the stages (`enhance`, `mcts`, `train`, `eval`),
then `orchestrate`. A module imports only its own package and the layers below; stages never import each other.
Every import counts, including the ones inside functions and under `TYPE_CHECKING`: a lazy import is still a
dependency, it only moves the failure to run time.
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import dlcot
from dlcot.commands import usage

ROOT = Path(dlcot.__file__).resolve().parent
LAYERS = ({"shared"}, {"engines"}, {"data"}, {"enhance", "mcts", "train", "eval"}, {"orchestrate"})
RANK = {pkg: rank for rank, pkgs in enumerate(LAYERS) for pkg in pkgs}
ENTRY_POINTS = {"dlcot.train.__main__"}  # `-m dlcot.train` runs the command line: above every layer by definition
# Known exceptions, each with its way out. An entry that no longer occurs fails the test, so the list only shrinks.
EXCEPTIONS: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("dlcot", *path.relative_to(ROOT).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _target(name: str) -> str | None:
    """The dlcot module an imported name lives in (`dlcot.records.Trace` → `dlcot.records`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}:{node.lineno}: relative import; dlcot uses absolute ones"
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            found |= {t for n in names if n.startswith("dlcot") and (t := _target(n)) not in (None, module)}
        graph[module] = found - {"dlcot"}  # `from dlcot import procs` also names the package itself
    return graph


SHARED_PACKAGES = {"schema"}  # a shared module grown into a package: still the bottom layer


def package(module: str) -> str:
    parts = module.split(".")
    name = parts[1] if len(parts) > 2 or (ROOT / parts[-1]).is_dir() else "shared"
    return "shared" if name in SHARED_PACKAGES else name


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            if comp:
                out.append(sorted([v, *comp]))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_every_module_imports() -> None:
    """A moved module leaves no import behind (walks the installed tree, not the AST)."""
    names = [m.name for m in pkgutil.walk_packages(dlcot.__path__, "dlcot.")]
    for name in names:
        importlib.import_module(name)
    assert set(names) | {"dlcot"} == set(MODULES)


def test_no_module_imports_itself_back() -> None:
    graph = _imports()
    assert _cycles(graph) == []


def test_packages_import_only_the_layers_below() -> None:
    graph = _imports()
    assert set(RANK) >= {package(m) for m in MODULES}, "a new package: give it a layer here and in the docs"
    seen, wrong = set(), []
    for module, targets in graph.items():
        if module in ENTRY_POINTS:
            continue
        for target in targets:
            a, b = package(module), package(target)
            if a == b or RANK[b] < RANK[a]:
                continue
            if (module, target) in EXCEPTIONS:
                seen.add((module, target))
            else:
                wrong.append(f"{module} ({a}) imports {target} ({b})")
    assert wrong == []
    assert seen == EXCEPTIONS, f"no longer imported, drop from EXCEPTIONS: {EXCEPTIONS - seen}"


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    """The checks above can fail: a back edge makes a cycle, a stage importing orchestration is out of layer."""
    graph = {"dlcot.a": {"dlcot.b"}, "dlcot.b": {"dlcot.c"}, "dlcot.c": {"dlcot.a"}, "dlcot.d": set()}
    assert _cycles(graph) == [["dlcot.a", "dlcot.b", "dlcot.c"]]
    assert RANK[package("dlcot.eval.commands")] < RANK[package("dlcot.orchestrate.chain")]
    assert RANK[package("dlcot.records")] < RANK[package("dlcot.engines.hf")] < RANK[package("dlcot.data.sources")]


def test_help_lists_every_config_group() -> None:
    groups = sorted(p.name for p in (ROOT.parent / "conf").iterdir()
                    if p.is_dir() and p.name != "recipes" and any(p.glob("*.yaml")))
    line = next(x for x in usage().splitlines() if "groups:" in x)
    assert line.split("groups:", 1)[1].strip(" .").split() == groups
    assert {"cot", "benchmark"} <= set(groups)


def test_the_layout_docs_name_every_package_and_shared_module() -> None:
    """A newcomer finds where a change belongs from the README's layout and docs/architecture.md §2: both name
    every package, and the architecture table every shared module."""
    readme = (ROOT.parent / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    architecture = (ROOT.parent / "docs" / "architecture.md").read_text().split("## 2.", 1)[1].split("\n## ", 1)[0]
    packages = sorted({m.split(".")[1] for m in MODULES if package(m) != "shared"})
    assert [p for p in packages if f"dlcot/{p}/" not in readme or f"dlcot/{p}/" not in architecture] == []
    paths = [MODULES[m].relative_to(ROOT) for m in MODULES if package(m) == "shared" and m != "dlcot"]
    shared = sorted({f"{p.parts[0]}/" if len(p.parts) > 1 else p.name for p in paths})  # a shared package by its folder
    assert [f for f in shared if f"dlcot/{f}" not in architecture] == []
