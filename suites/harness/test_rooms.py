"""The rooms' one-way arrows (DEVELOPING.md), read from the source with ast: no import cycle
among snapconform's modules, and each room imports only what it may.

Every import statement counts, function-local ones included: an import moved into a function
still makes the two modules depend on each other, it only hides the cycle from Python.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "tools"


def module_files(root: Path) -> dict[str, Path]:
    """{dotted module name: file} for every module under ``root`` (a directory of packages)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found[".".join(parts)] = path
    return found


def imported_modules(name: str, path: Path, known: set[str], top: str) -> set[str]:
    """The modules of ``known`` that the module ``name`` imports, anywhere in its text."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                targets.add(candidate if candidate in known else module)
    found = set()
    for target in targets:
        if target != top and not target.startswith(top + "."):
            continue
        while target and target not in known:  # `import a.b.c` of a name inside a module
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


def import_graph(root: Path, top: str = "snapconform") -> dict[str, set[str]]:
    files = {n: p for n, p in module_files(root).items() if n == top or n.startswith(top + ".")}
    known = set(files)
    return {name: imported_modules(name, path, known, top) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def reaches(graph: dict[str, set[str]], start: str, goal_room: str) -> list[str] | None:
    """An import chain from ``start`` to a module of ``goal_room``, or None."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph.get(node, ())):
            if target in paths:
                continue
            paths[target] = [*paths[node], target]
            if room(target) == goal_room:
                return paths[target]
            queue.append(target)
    return None


# Each room and the modules (exact, or a whole room with ".*") it may import.
ALLOWED = {
    "model": {"snapconform.model.*"},
    "images": {"snapconform.paths", "snapconform.images.*", "snapconform.hosts.base"},
    "hosts": {"snapconform.images.*", "snapconform.hosts.*", "snapconform.paths"},
    # pages read what conformance runs wrote and the model's tables, never harness or hosts
    "reports": {"snapconform.reports.*", "snapconform.conformance.*", "snapconform.model.*"},
}


def allowed(target: str, patterns: set[str]) -> bool:
    return any(
        target == p or (p.endswith(".*") and (target + ".").startswith(p[:-1])) for p in patterns
    )


def arrow_violations(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        patterns = ALLOWED.get(room(module))
        for target in sorted(targets):
            if patterns is not None and not allowed(target, patterns):
                problems.append(f"{module} imports {target}")
        if room(module) == "harness":
            for target in sorted(targets):
                if room(target) in ("model", "served_store"):
                    problems.append(f"{module} imports {target}")
            chain = reaches(graph, module, "model")
            if chain:
                problems.append("harness reaches the model: " + " -> ".join(chain))
    return sorted(problems)


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(PACKAGE_ROOT)


def test_the_graph_sees_the_package(graph: dict[str, set[str]]) -> None:
    for module in ("snapconform.hosts.nspawn", "snapconform.images.golden", "snapconform.model"):
        assert module in graph
    assert "snapconform.images.golden" in graph["snapconform.hosts.nspawn"]
    assert "snapconform.hosts.nspawn_records" in graph["snapconform.hosts.cleanup"]


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_rooms_import_only_along_the_arrows(graph: dict[str, set[str]]) -> None:
    assert arrow_violations(graph) == []


# -- the checker itself, on made-up packages -------------------------------------------------


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = tmp_path / "snapconform" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_a_function_local_import_still_makes_a_cycle(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "hosts/__init__.py": "",
            "hosts/a.py": "from snapconform.hosts import b\n",
            "hosts/b.py": "def f():\n    from snapconform.hosts.a import x\n    return x\n",
            "hosts/c.py": "from . import a\n",
        },
    )
    graph = import_graph(root)
    assert graph["snapconform.hosts.c"] == {"snapconform.hosts.a"}
    assert cycles(graph) == [["snapconform.hosts.a", "snapconform.hosts.b"]]


def test_arrows_against_the_rooms_are_named(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "paths.py": "",
            "model/__init__.py": "",
            "model/store.py": "import snapconform.paths\n",
            "images/__init__.py": "",
            "images/golden.py": "from snapconform.hosts.nspawn import boot\n",
            "hosts/__init__.py": "",
            "hosts/base.py": "",
            "hosts/nspawn.py": "from snapconform.harness import shell\n",
            "harness/__init__.py": "",
            "harness/shell.py": "from snapconform.served_store import catalog\n",
            "served_store/__init__.py": "",
            "served_store/catalog.py": "from snapconform.model import store\n",
        },
    )
    assert arrow_violations(import_graph(root)) == [
        "harness reaches the model: snapconform.harness.shell -> snapconform.served_store.catalog"
        " -> snapconform.model.store",
        "snapconform.harness.shell imports snapconform.served_store.catalog",
        "snapconform.hosts.nspawn imports snapconform.harness.shell",
        "snapconform.images.golden imports snapconform.hosts.nspawn",
        "snapconform.model.store imports snapconform.paths",
    ]
