"""The package's modules import each other without cycles (every import counts, including
those inside functions: a lazy import only hides a cycle, it does not remove it)."""

from __future__ import annotations

import ast
from pathlib import Path

import actionbook

SRC = Path(actionbook.__file__).resolve().parent


def _module_name(path: Path, src: Path) -> str:
    parts = ["actionbook", *path.relative_to(src).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """{module: the actionbook modules it imports}, from the source with `ast`."""
    files = {_module_name(p, src): p for p in src.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_pkg = path.name == "__init__.py"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative import
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                # `from pkg import mod` imports the module pkg.mod when it exists
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                while t and t not in files:  # a name inside a module -> the module
                    t = t.rpartition(".")[0]
                if t and t != name and t != "actionbook":
                    deps.add(t)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_reads_lazy_and_relative_imports(tmp_path):
    pkg = tmp_path
    (pkg / "__init__.py").write_text("")
    (pkg / "sub").mkdir()
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("def f():\n    from actionbook.sub import b\n")
    (pkg / "sub" / "b.py").write_text("from . import a\n")
    graph = import_graph(pkg)
    assert graph["actionbook.sub.a"] == {"actionbook.sub.b"}
    assert graph["actionbook.sub.b"] == {"actionbook.sub.a"}
    assert find_cycle(graph) is not None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "actionbook.features.backbones" in graph and graph["actionbook.features.backbones"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_ci_networks_are_a_leaf():
    graph = import_graph()
    assert graph["actionbook.features.ci_nets"] == set()
    assert "actionbook.features.backbones" not in graph["actionbook.features.pretrain"]
