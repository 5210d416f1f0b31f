"""Imports run one way: no import cycle among the modules of vase_rl (vase_rl.agents and vase_rl.envs
included, imports inside functions too; ``if TYPE_CHECKING:`` imports never run and do not count), and the evaluation/report side reads a run directory through
vase_rl.run_format without ever importing the trainer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"vase_rl": ROOT / "vase_rl", "vase_rl.agents": ROOT / "agents", "vase_rl.envs": ROOT / "envs"}


def module_files() -> dict[str, Path]:
    out = {}
    for pkg, folder in PACKAGES.items():
        for path in folder.glob("*.py"):
            out[pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"] = path
    return out


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (annotations only, never run)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the vase_rl modules it imports anywhere in its file at run time (functions included;
    ``from x import name`` counts x.name when that is a module)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
        deps: set[str] = set()
        for node in runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = (f"{base}.{node.module}" if node.module else base) if node.level else str(node.module)
                deps.add(module)
                deps.update(f"{module}.{a.name}" for a in node.names)
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_inside_vase_rl() -> None:
    graph = import_graph()
    assert {"vase_rl.training", "vase_rl.evaluation", "vase_rl.run_format"} <= set(graph)
    assert cycles(graph) == []


def test_run_format_imports_neither_the_trainer_nor_the_evaluation() -> None:
    graph = import_graph()
    assert not graph["vase_rl.run_format"] & {"vase_rl.training", "vase_rl.evaluation", "vase_rl.learner"}
    assert "vase_rl.training" not in graph["vase_rl.agents.translation"]


def test_evaluation_and_report_never_load_the_trainer() -> None:
    code = ("import sys, vase_rl.evaluation, vase_rl.report, vase_rl.plots; "
            "print(sorted(m for m in sys.modules if m in ('vase_rl.training', 'vase_rl.distributed')))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
