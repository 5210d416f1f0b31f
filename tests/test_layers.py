"""The tree shows the layers of docs/architecture.md: every module of vase_rl (vase_rl.agents and
vase_rl.envs included) sits in the package the architecture's layer table names, imports only from its
own package or a lower layer, and no import circle exists -- imports inside functions and
``if TYPE_CHECKING:`` imports included. The evaluation side reads a run through vase_rl.runs.run_format,
never the trainer."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"vase_rl": ROOT / "vase_rl", "vase_rl.agents": ROOT / "agents", "vase_rl.envs": ROOT / "envs"}
MAX_TOP_LEVEL_MODULES = 10


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three installed folders."""
    out = {}
    for pkg, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((pkg, *parts))
            out[name.removesuffix(".__init__")] = path
    return out


def layer_table() -> dict[str, tuple[int, set[str]]]:
    """docs/architecture.md section 1: package -> (layer, its modules)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| (\d+) \| `([\w.]+)` \| ([^|]+) \|", text, flags=re.M)
    assert rows, "docs/architecture.md has no layer table"
    return {pkg: (int(layer), set(re.findall(r"`(\w+)`", mods))) for layer, pkg, mods in rows}


def package_of(module: str, files: dict[str, Path]) -> str:
    """The package a module belongs to (a package's ``__init__`` belongs to the package itself)."""
    return module if files[module].name == "__init__.py" else module.rsplit(".", 1)[0]


def absolute(node: ast.ImportFrom, package: str) -> str:
    """The module a ``from ... import`` names, relative imports resolved against ``package``."""
    if not node.level:
        return str(node.module)
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def import_graph() -> dict[str, set[str]]:
    """Module -> the vase_rl modules it imports anywhere in its file (functions and ``TYPE_CHECKING`` blocks
    included; ``from x import name`` counts x.name when that is a module)."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = package_of(name, files)
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
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


def layering_violations(graph: dict[str, set[str]], files: dict[str, Path]) -> list[str]:
    """Imports that reach a package in the same or a higher layer (other than the importer's own package)."""
    table = layer_table()
    bad = []
    for module, deps in graph.items():
        own = package_of(module, files)
        for dep in deps:
            other = package_of(dep, files)
            if other != own and table[other][0] >= table[own][0]:
                bad.append(f"{module} (layer {table[own][0]}) imports {dep} (layer {table[other][0]})")
    return sorted(bad)


def test_the_tree_matches_the_layer_table_of_the_architecture() -> None:
    files = module_files()
    table = layer_table()
    tree: dict[str, set[str]] = {}
    for module, path in files.items():
        if path.name != "__init__.py":
            tree.setdefault(package_of(module, files), set()).add(module.rsplit(".", 1)[1])
    assert {pkg: mods for pkg, (_, mods) in table.items()} == tree
    assert len(table["vase_rl"][1]) <= MAX_TOP_LEVEL_MODULES


def test_every_import_goes_down_the_layers() -> None:
    files = module_files()
    assert layering_violations(import_graph(), files) == []


def test_layering_check_catches_an_upward_import() -> None:
    """The check is not vacuous: the core importing the trainer is reported."""
    files = module_files()
    graph = import_graph()
    graph["vase_rl.core.learner"] = {*graph["vase_rl.core.learner"], "vase_rl.runs.training"}
    assert layering_violations(graph, files) == [
        "vase_rl.core.learner (layer 1) imports vase_rl.runs.training (layer 3)"
    ]


def test_no_import_cycle_type_only_imports_included() -> None:
    graph = import_graph()
    assert {"vase_rl.runs.training", "vase_rl.evaluation.evaluate", "vase_rl.runs.run_format"} <= set(graph)
    assert cycles(graph) == []
    graph["vase_rl.core.losses"] = {*graph["vase_rl.core.losses"], "vase_rl.core.learner"}
    (found,) = cycles(graph)  # the check is not vacuous: a circle through the learner is reported
    assert {"vase_rl.core.learner", "vase_rl.core.losses"} <= set(found)


def test_run_format_imports_neither_the_trainer_nor_the_evaluation() -> None:
    graph = import_graph()
    assert not graph["vase_rl.runs.run_format"] & {
        "vase_rl.runs.training",
        "vase_rl.evaluation.evaluate",
        "vase_rl.core.learner",
    }
    assert "vase_rl.runs.training" not in graph["vase_rl.agents.translation"]


@pytest.mark.parametrize("entry", ["vase_rl.evaluation.evaluate", "vase_rl.evaluation.report"])
def test_evaluation_and_report_never_load_the_trainer(entry: str) -> None:
    code = (
        f"import sys, {entry}, vase_rl.evaluation.plots; "
        "print(sorted(m for m in sys.modules if m in ('vase_rl.runs.training', 'vase_rl.runs.distributed')))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
