"""Import rules, read from the source with `ast` (nothing is imported):

- the core (every module of the faceloop/ folder: faceloop/*.py, storage, report, cli; not
  faceloop/testing, the contract suites for plugin authors) imports
  no faceloop.workflows or faceloop.connectors module at module level, so the vocabulary
  and the catalog load without Temporal or an ad platform; an import inside a function or
  under `if TYPE_CHECKING:` is allowed;
- the module-level imports of the whole distribution form no cycle.

An import counts the way Python runs it: `import a.b.c` and `from a.b import c` run a's and
a.b's __init__ first, except those of the importing module's own packages, which are
already being imported; `from a.b import c` also imports a.b.c when c is a submodule, and
depends on a.b itself only when c is a name defined there; when a.b hands out c lazily
through a module `__getattr__` (PEP 562), it depends on every module that `__getattr__` may
import. A function of the module that its top level calls (faceloop.cli.main registers the
domain CLIs that way) counts with its imports and the module names it spells out.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

# Known debts, each a cycle (its modules) or a (core module, outer module) import, kept
# here while faceloop/storage and optimization/ were being split by others. Empty when this
# test was written: neither had a module-level cycle or a core import of workflows or
# connectors. An entry is a debt, not a rule: the test fails when one no longer matches
# anything, so the list only shrinks.
KNOWN_CYCLES: list[frozenset[str]] = []
KNOWN_CORE_IMPORTS: list[tuple[str, str]] = []

ROOT = Path(__file__).resolve().parents[1]
CORE_DIR = ROOT / "faceloop"
OUTER_LAYERS = ("faceloop.workflows", "faceloop.connectors")
# faceloop.testing ships the contract suites that plugin authors run under pytest: it sits
# above every layer it tests (ConnectorContract drives a connector), and nothing in the
# product imports it (tests/test_packaging.py checks that), so it is not core
NOT_CORE = (CORE_DIR / "testing",)


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


def shipped_modules() -> dict[str, Module]:
    """Every module of the distribution, from pyproject's packages and package-dir."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs: dict[str, str] = config["package-dir"]
    modules: dict[str, Module] = {}
    for package in config["packages"]:
        # the longest mapped prefix names the folder, as setuptools resolves it
        key = max((k for k in dirs if package == k or package.startswith(k + ".")), key=len)
        folder = ROOT / dirs[key] / Path(*package[len(key) :].split(".")[1:])
        for path in sorted(folder.glob("*.py")):
            if path.stem == "__init__":
                modules[package] = Module(package, path, is_package=True)
            else:
                name = f"{package}.{path.stem}"
                modules[name] = Module(name, path, is_package=False)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_level_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements that run when the module is imported: not those in function bodies,
    nor under `if TYPE_CHECKING:` (its else branch does run)."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from module_level_statements(node.body)
            yield from module_level_statements(node.orelse)
        elif isinstance(node, ast.Try | ast.TryStar):
            for block in (node.body, node.orelse, node.finalbody):
                yield from module_level_statements(block)
            for handler in node.handlers:
                yield from module_level_statements(handler.body)
        elif isinstance(node, ast.With | ast.AsyncWith | ast.ClassDef):
            # `with workflow.unsafe.imports_passed_through():` and class bodies run on import
            yield from module_level_statements(node.body)
        elif isinstance(node, ast.For | ast.AsyncFor | ast.While):
            yield from module_level_statements(node.body)
            yield from module_level_statements(node.orelse)


def module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in module_level_statements(body):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def _functions_called_on_import(tree: ast.Module) -> list[ast.FunctionDef]:
    """The module's own functions that its top level calls (`_register_subcommands()`),
    and those they call in turn: their imports run on import too."""
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}

    def calls(nodes: Iterator[ast.AST]) -> set[str]:
        return {
            n.func.id
            for node in nodes
            for n in ast.walk(node)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in defs
        }

    top = (
        n
        for n in module_level_statements(tree.body)
        if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not isinstance(n, ast.If | ast.Try | ast.TryStar | ast.With | ast.AsyncWith)
        and not isinstance(n, ast.For | ast.AsyncFor | ast.While)
    )
    todo = calls(top)
    done: set[str] = set()
    while todo:
        name = todo.pop()
        done.add(name)
        todo |= calls(iter([defs[name]])) - done
    return [defs[name] for name in sorted(done)]


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _bound_names(tree: ast.Module) -> set[str]:
    """Names a module binds when it runs (a name outside them goes to its __getattr__)."""
    names: set[str] = set()
    for imp in module_level_imports(tree.body):
        names.update((a.asname or a.name).split(".")[0] for a in imp.names)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def _lazy_targets(package: Module, modules: dict[str, Module]) -> set[str]:
    """What a package's `__getattr__` may import: the modules it imports and the module
    names the package spells out as strings (for `importlib.import_module`)."""
    tree = _parse(package.path)
    getattr_fn = [
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"
    ]
    if not getattr_fn:
        return set()
    targets = {
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in modules
    }
    for node in ast.walk(getattr_fn[0]):
        if isinstance(node, ast.ImportFrom) and node.module:
            targets.update(f"{node.module}.{a.name}" for a in node.names)
            targets.add(node.module)
        elif isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
    return targets & set(modules)


def imported_by(module: Module, modules: dict[str, Module]) -> set[str]:
    """The distribution's modules that importing `module` runs directly (see the header)."""
    tree = _parse(module.path)
    own_packages = set(_prefixes(module.name)[:-1])
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    statements: list[ast.Import | ast.ImportFrom] = list(module_level_imports(tree.body))
    targets: set[str] = set()
    for fn in _functions_called_on_import(tree):
        statements += [n for n in ast.walk(fn) if isinstance(n, ast.Import | ast.ImportFrom)]
        # importlib.import_module("faceloop...") with the name spelt out
        targets |= {
            p
            for n in ast.walk(fn)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value in modules
            for p in _prefixes(n.value)
            if p not in own_packages
        }
    for node in statements:
        if isinstance(node, ast.Import):
            for alias in node.names:
                targets.update(p for p in _prefixes(alias.name) if p not in own_packages)
            continue
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join([*parts, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        targets.update(p for p in _prefixes(base) if p not in own_packages)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if sub in modules:
                targets.add(sub)
            else:
                # a name defined in base's __init__: needs it run, even when it is our own
                # package (that is the cycle a package __init__ re-exporting us makes)
                targets.add(base)
                package_of_name = modules.get(base)
                if package_of_name is not None and alias.name not in _bound_names(
                    _parse(package_of_name.path)
                ):
                    targets |= _lazy_targets(package_of_name, modules)
    return {t for t in targets if t in modules and t != module.name}


def import_graph() -> dict[str, set[str]]:
    modules = shipped_modules()
    return {name: imported_by(m, modules) for name, m in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Tarjan's algorithm; the components with more than one module, i.e. the cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, set())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: set[str] = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def a_cycle(graph: dict[str, set[str]], component: frozenset[str]) -> list[str]:
    """One shortest path from the component's first module back to itself, to print."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{sorted(component)} is not a cycle")


def core_violations(
    graph: dict[str, set[str]], modules: dict[str, Module], core_dir: Path = CORE_DIR
) -> set[tuple[str, str]]:
    return {
        (name, target)
        for name, targets in graph.items()
        if modules[name].path.is_relative_to(core_dir)
        and not any(modules[name].path.is_relative_to(d) for d in NOT_CORE)
        for target in targets
        if any(target == layer or target.startswith(layer + ".") for layer in OUTER_LAYERS)
    }


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_covers_the_distribution(graph: dict[str, set[str]]) -> None:
    # a mistake in reading pyproject would make the rules below pass on nothing
    assert {"faceloop.models", "faceloop.storage.catalog", "faceloop.report.build"} <= set(graph)
    assert {"faceloop.workflows.worker", "faceloop.agents.planner.graph"} <= set(graph)
    assert "faceloop.models" in graph["faceloop.report.data"]
    assert len(graph) > 90


def test_the_core_does_not_import_workflows_or_connectors(graph: dict[str, set[str]]) -> None:
    found = core_violations(graph, shipped_modules())
    new = sorted(found - set(KNOWN_CORE_IMPORTS))
    assert not new, (
        "core modules import an outer layer at module level; move the import into the "
        "function that needs it (or under `if TYPE_CHECKING:` for a type):\n"
        + "\n".join(f"  {m} -> {t}" for m, t in new)
    )
    stale = sorted(set(KNOWN_CORE_IMPORTS) - found)
    assert not stale, f"remove from KNOWN_CORE_IMPORTS, these are gone: {stale}"


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    cycles = strongly_connected(graph)
    # a known cycle that shrank is progress; one that grew or is new fails
    new = [c for c in cycles if not any(c <= known for known in KNOWN_CYCLES)]
    assert not new, "module-level import cycles:\n" + "\n".join(
        "  " + " -> ".join(a_cycle(graph, c)) + f"   (all of: {', '.join(sorted(c))})" for c in new
    )
    stale = [sorted(k) for k in KNOWN_CYCLES if not any(c <= k for c in cycles)]
    assert not stale, f"remove from KNOWN_CYCLES, these cycles are gone: {stale}"


def test_the_rules_catch_what_they_describe(tmp_path: Path) -> None:
    # the reading of imports on a tiny tree: TYPE_CHECKING and function bodies do not count,
    # `from pkg import name` depends on pkg's __init__, `from pkg import sub` on pkg.sub only,
    # a name pkg hands out through __getattr__ on what __getattr__ imports, a function the
    # module calls while it loads with what that function imports
    src = {
        "faceloop.x": (
            "from faceloop.x.a import A\n"
            "def __getattr__(name):\n"
            "    import importlib\n"
            "    return getattr(importlib.import_module('faceloop.x.lazy'), name)\n"
        ),
        "faceloop.x.a": (
            "from typing import TYPE_CHECKING\n"
            "from faceloop.x import b\n"
            "if TYPE_CHECKING:\n    from faceloop.workflows import w\n"
            "def f():\n    import faceloop.connectors.c\n"
            "class A: ...\n"
        ),
        "faceloop.x.b": "from faceloop.x import A\nimport faceloop.workflows.w\n",
        "faceloop.x.lazy": "L = 1\n",
        "faceloop.y": "from faceloop.x import A\n",
        "faceloop.z": "from faceloop.x import L\n",
        "faceloop.v": (
            "import importlib\n"
            "def _load():\n    return importlib.import_module('faceloop.x.lazy')\n"
            "def _later():\n    import faceloop.workflows.w\n"
            "_load()\n"
        ),
        "faceloop.workflows": "",
        "faceloop.workflows.w": "",
    }
    modules: dict[str, Module] = {}
    for name, text in src.items():
        is_package = name in ("faceloop.x", "faceloop.workflows")
        path = tmp_path / Path(*name.split(".")) / "__init__.py"
        if not is_package:
            path = path.parent.with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        modules[name] = Module(name, path, is_package)
    graph = {n: imported_by(m, modules) for n, m in modules.items()}
    assert graph == {
        "faceloop.x": {"faceloop.x.a"},
        "faceloop.x.a": {"faceloop.x.b"},
        "faceloop.x.b": {"faceloop.x", "faceloop.workflows", "faceloop.workflows.w"},
        "faceloop.x.lazy": set(),
        "faceloop.y": {"faceloop.x"},
        "faceloop.z": {"faceloop.x", "faceloop.x.lazy"},
        "faceloop.v": {"faceloop.x", "faceloop.x.lazy"},
        "faceloop.workflows": set(),
        "faceloop.workflows.w": set(),
    }
    assert core_violations(graph, modules, tmp_path / "faceloop" / "x") == {
        ("faceloop.x.b", "faceloop.workflows"),
        ("faceloop.x.b", "faceloop.workflows.w"),
    }
    cycle = frozenset({"faceloop.x", "faceloop.x.a", "faceloop.x.b"})
    assert strongly_connected(graph) == [cycle]
    assert a_cycle(graph, cycle) == ["faceloop.x", "faceloop.x.a", "faceloop.x.b", "faceloop.x"]
