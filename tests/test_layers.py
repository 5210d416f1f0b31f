"""Imports run one way: no import cycle among the modules of vase_rl (vase_rl.agents and vase_rl.envs
included, imports inside functions too; ``if TYPE_CHECKING:`` imports never run and do not count), and
the evaluation/report side reads a run directory through vase_rl.run_format, never the trainer."""

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


def absolute(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from ... import`` names, relative imports resolved against ``package``."""
    if not node.level:
        return str(node.module)
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


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
                module = absolute(node, package)
                deps.add(module)
                deps.update(f"{module}.{a.name}" for a in node.names)
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Modules ``start`` imports directly or through others."""
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(graph[m])
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import cycles: groups of two or more modules that each import all the others (maybe indirectly)."""
    reach = {m: reachable(graph, m) for m in graph}
    groups = {tuple(sorted({m} | {o for o in reach[m] if m in reach[o]})) for m in graph}
    return sorted(list(g) for g in groups if len(g) > 1)


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
