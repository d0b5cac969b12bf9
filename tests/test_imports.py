"""The import graph of online/, flows/, serving/ and benchmarks/: no circles, and the server stays off the flow.

The graph is built from the source with :mod:`ast` (nothing is imported), from every import statement
in a module, including those inside functions: an import deferred into a function to dodge a circle is
still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("online", "flows", "serving", "benchmarks")


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of :data:`PACKAGES`, by dotted name (a package by its own name, for its ``__init__.py``)."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``name`` (at ``path``) imports, anywhere in its source."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package_of(name, path).split(".")
                anchor = ".".join(package[: len(package) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            # ``from pkg import sub`` imports the module pkg.sub when there is one, else a name of pkg
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # ``import a.b.c`` of a name inside a module: the module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = module_files(root)
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as ``[a, b, ..., a]``, or ``None``.

    >>> find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    ['a', 'b', 'c', 'a']
    >>> find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None
    True
    """
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = [start]
        on_path = {start}
        stack = [iter(sorted(graph[start]))]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if step in on_path:
                return [*path[path.index(step):], step]
            if step in done or step not in graph:
                continue
            path.append(step)
            on_path.add(step)
            stack.append(iter(sorted(graph[step])))
    return None


def test_the_graph_sees_function_level_imports_and_resolves_relative_ones(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "__init__.py").write_text("")
    (tmp_path / "flows" / "a.py").write_text("def f():\n    from flows.b import g\n    return g\n")
    (tmp_path / "flows" / "b.py").write_text("from . import a\nimport flows.c.thing\n")
    (tmp_path / "flows" / "c.py").write_text("import os\n")
    graph = import_graph(tmp_path)
    assert graph["flows.a"] == {"flows.b"}
    assert graph["flows.b"] == {"flows.a", "flows.c"}
    assert find_cycle(graph) == ["flows.a", "flows.b", "flows.a"]


def test_the_graph_covers_every_package() -> None:
    graph = import_graph()
    assert {name.partition(".")[0] for name in graph} == set(PACKAGES)
    assert "benchmarks.machine" in graph["benchmarks.serving"]
    assert all(deps <= set(graph) for deps in graph.values())


def test_no_import_circle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_serving_imports_nothing_from_flows() -> None:
    graph = import_graph()
    reaching = {name: sorted(d for d in deps if d.partition(".")[0] == "flows")
                for name, deps in graph.items() if name.partition(".")[0] == "serving"}
    assert {name: deps for name, deps in reaching.items() if deps} == {}
