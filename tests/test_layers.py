"""The floors of the house: imports only go down, and no module imports itself round a cycle.

    speechtok   the command (the only place that knows every subcommand)
    bench       benchmarks
    serving     gRPC service, Ray Serve, batch jobs    |  lm_probe  the report card
    vocoder     unit HiFi-GAN
    tokenizer   the core: audio, model directories, kinds, quantizers, windows, runtimes, training

Every import counts, wherever it is written (module top, inside a function, under
``TYPE_CHECKING``): a lazy import still couples two modules. For example, a line
``from serving.app import build_app`` anywhere in ``tokenizer/`` fails
``test_floors_only_go_down`` with ``tokenizer.x imports serving.app (floor 2 >= 0)``;
``test_checker_sees_upward_imports_and_cycles`` builds such a tree and shows it failing.
"""

from __future__ import annotations

import ast
import gc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLOORS = {"tokenizer": 0, "proto": 0, "vocoder": 1, "lm_probe": 2, "serving": 2, "bench": 3}
FLOORS["speechtok"] = 4


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every package of ``FLOORS`` under ``root``."""
    out = {}
    for package in FLOORS:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports (``from a import b`` counts as ``a.b`` when
    that is a module, else as ``a``)."""
    known = modules(root)
    graph: dict[str, set[str]] = {}
    # the garbage collector off while parsing: a finalizer of another test's object (Ray,
    # gRPC) running inside ast.parse trips CPython 3.11's AST recursion-depth check
    gc.collect()
    gc.disable()
    try:
        trees = {name: ast.parse(path.read_text(), str(path)) for name, path in known.items()}
    finally:
        gc.enable()
    for name, tree in trees.items():
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = {f"{node.module}.{alias.name}" for alias in node.names}
                targets |= {s for s in subs if s in known} or {node.module}
        graph[name] = {t for t in targets if t in known and t != name}
    return graph


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a package on the same floor or above (other than its own)."""
    out = []
    for name, targets in sorted(graph.items()):
        here = name.split(".")[0]
        for t in sorted(targets):
            there = t.split(".")[0]
            if there != here and FLOORS[there] >= FLOORS[here]:
                out.append(f"{name} imports {t} (floor {FLOORS[there]} >= {FLOORS[here]})")
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

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
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_floors_only_go_down() -> None:
    graph = import_graph(REPO)
    assert len(graph) > 50  # the walk found the project
    assert upward(graph) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph(REPO)) == []


def test_command_is_imported_by_nothing_below_it() -> None:
    graph = import_graph(REPO)
    users = {m for m, targets in graph.items() for t in targets if t.startswith("speechtok")}
    assert {m.split(".")[0] for m in users} <= {"speechtok"}


def test_checker_sees_upward_imports_and_cycles(tmp_path: Path) -> None:
    files = {
        "tokenizer/__init__.py": "",
        "tokenizer/core.py": "def f():\n    from serving.app import build\n",
        "tokenizer/a.py": "import tokenizer.b\n",
        "tokenizer/b.py": "from tokenizer import a\n",
        "serving/__init__.py": "",
        "serving/app.py": "from tokenizer.core import f\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    graph = import_graph(tmp_path)
    assert upward(graph) == ["tokenizer.core imports serving.app (floor 2 >= 0)"]
    assert sorted(cycles(graph)) == [
        ["serving.app", "tokenizer.core"],
        ["tokenizer.a", "tokenizer.b"],
    ]
