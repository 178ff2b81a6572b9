"""The package's layout holds: no import cycles, core modules a reader can hold in one sitting."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xpnn"

#: The core packages whose modules stay short (issue 22: one sitting, about 500 lines).
CORE = ("layers", "models", "training", "backend")
MAX_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts
    }


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The xpnn modules ``name`` imports, at the top or inside functions.

    ``from xpnn.a import b`` is an import of ``xpnn.a.b`` where that is a
    module, else of ``xpnn.a``; ``if TYPE_CHECKING:`` blocks run nothing.
    """
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.split(".")[0] == "xpnn")
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: resolve against this module's package
                    pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                    pkg = pkg[: len(pkg) - child.level + 1]
                    base = ".".join([*pkg, base] if base else pkg)
                if base.split(".")[0] != "xpnn":
                    continue
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in modules else base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    found.discard(name)
    return found & set(modules)


def import_graph() -> dict[str, set[str]]:
    """Module -> the xpnn modules it imports (see :func:`_imported`)."""
    modules = _modules()
    return {name: _imported(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module, as one cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_cycle_in(graph, group) for group in groups]


def _cycle_in(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """One path ``a -> b -> ... -> a`` inside a strongly connected ``group``."""
    members, start = set(group), group[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:  # breadth first: the shortest way back to start
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{group} is not a cycle")  # pragma: no cover


def test_the_package_has_no_import_cycle():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles (move the shared piece into a module both import):\n" + (
        "\n".join("  " + " -> ".join(c) for c in cycles)
    )


def test_the_cycle_finder_finds_a_cycle_and_names_it():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_imports_inside_functions_and_from_imports_of_modules_count(tmp_path):
    pkg = tmp_path / "xpnn"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "sub" / "mod.py").write_text("def f():\n    from xpnn.sub import other\n")
    (pkg / "sub" / "other.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import xpnn.sub.mod\n"
    )
    modules = {"xpnn.sub.mod": pkg / "sub" / "mod.py", "xpnn.sub.other": pkg / "sub" / "other.py"}
    assert _imported("xpnn.sub.mod", modules["xpnn.sub.mod"], modules) == {"xpnn.sub.other"}
    assert _imported("xpnn.sub.other", modules["xpnn.sub.other"], modules) == set()


#: The core's order: a package imports only those before it (and the modules
#: at the top, functions, random, params..., which import only the backend).
LAYERS_OF_THE_CORE = ("xpnn.backend", "xpnn.layers", "xpnn.models", "xpnn.training")


def _rank(module: str) -> int | None:
    for i, package in enumerate(LAYERS_OF_THE_CORE):
        if module == package or module.startswith(package + "."):
            return i
    return None


def test_the_core_packages_import_only_the_ones_before_them():
    upward = [
        f"{v} -> {w}"
        for v, targets in sorted(import_graph().items())
        for w in sorted(targets)
        if _rank(v) is not None and _rank(w) is not None and _rank(w) > _rank(v)
    ]
    assert not upward, "imports against the core's order backend <- layers <- models <- " + (
        "training:\n  " + "\n  ".join(upward)
    )
    for top in ("xpnn.functions", "xpnn.random", "xpnn.params", "xpnn.optimizers"):
        assert import_graph()[top] <= {"xpnn.backend", "xpnn.functions"}, top
    for top in ("xpnn.sampling", "xpnn.linalg"):
        assert import_graph()[top] <= {"xpnn.backend", "xpnn.random"}, top


@pytest.mark.parametrize("package", CORE)
def test_core_modules_fit_in_one_sitting(package):
    long = {
        p.relative_to(ROOT).as_posix(): n
        for p in sorted((PACKAGE / package).rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines (split them by idea): {long}"


def test_the_old_module_paths_are_the_moved_modules():
    import xpnn

    for old, new in xpnn.MOVED_MODULES.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
        assert getattr(xpnn, old.rpartition(".")[2]) is importlib.import_module(new)
    from xpnn.multilayer import MultiLayerNet
    from xpnn.trainer import clip_grads

    assert MultiLayerNet is xpnn.models.MultiLayerNet
    assert clip_grads is xpnn.training.clip_grads
