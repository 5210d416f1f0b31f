"""What the benchmark scripts share, written once: the command line, provenance, tables and result files.

Every script in ``benchmarks/`` has CleanRL's shape and reads top to bottom: a docstring saying what it
measures and how to run it, an ``Args`` dataclass with a docstring under each field, ``run(args)`` (the
measurement), ``summarise(...)`` (the tables, from the results) and a ``main()`` that starts with::

    args = common.parse_args(Args, __doc__)

Results go under :data:`RESULTS` (``benchmarks/results/``). The environment variable
``VASE_BENCH_RESULTS`` moves that root, for the script and for every worker process it starts (the tests
run each script with it pointing at a temporary folder, so committed results are never overwritten).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import datetime as dt
import inspect
import itertools
import json
import os
import platform
import subprocess
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS_ENV = "VASE_BENCH_RESULTS"
RESULTS = Path(os.environ.get(RESULTS_ENV) or REPO / "benchmarks" / "results")
"""Root of the result files: ``$VASE_BENCH_RESULTS`` if set, else ``benchmarks/results``."""
INTERNAL = "Internal:"
"""A field whose docstring starts with this is left out of ``--help`` (e.g. a child process's role)."""

T = TypeVar("T")


# ------------------------------------------------------------------------------------ command line
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` and of its dataclass bases (subclass wins)."""
    helps: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            body = ast.parse(inspect.getsource(klass)).body[0].body  # type: ignore[attr-defined]
        except (OSError, TypeError):  # no source (defined interactively): no help texts
            continue
        helps.update(
            {
                a.target.id: " ".join(b.value.value.split())
                for a, b in itertools.pairwise(body)
                if isinstance(a, ast.AnnAssign)
                and isinstance(a.target, ast.Name)
                and isinstance(b, ast.Expr)
                and isinstance(b.value, ast.Constant)
            }
        )
    return helps


def _scalar_type(hint: Any, default: Any) -> Any:
    """The argparse ``type`` of a scalar field (``int | None`` -> int; unknown -> the default's type)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if hint in (int, float, str):
        return hint
    if len(args) == 1 and args[0] in (int, float, str):
        return args[0]
    return type(default) if default is not None else str


def parse_args(cls: type[T], description: str | None = None, argv: Sequence[str] | None = None) -> T:
    """Build ``cls`` (a dataclass) from the command line (CleanRL style; help = the docstring under a field).

    ``--field-name`` (``--field_name`` is accepted too); booleans become ``--x/--no-x``; tuples take
    several values, space- or comma-separated (``--seeds 0 1 2`` or ``--seeds 0,1,2``). Fields whose
    docstring starts with :data:`INTERNAL` are hidden from ``--help``.

    >>> @dataclasses.dataclass
    ... class Args:
    ...     seeds: tuple[int, ...] = (0, 1)
    ...     '''Seeds to run.'''
    ...     fast: bool = False
    >>> parse_args(Args, argv=["--seeds", "3,4", "5", "--fast"])
    Args(seeds=(3, 4, 5), fast=True)
    """
    helps = field_docs(cls)
    try:
        hints = typing.get_type_hints(cls)  # each field's annotation in the module of its class
    except (NameError, KeyError):  # an annotation that does not resolve: fall back to the defaults' types
        hints = {}
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    tuples: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        text = helps.get(f.name)
        flags = [f"--{f.name.replace('_', '-')}"]
        kw: dict[str, Any] = {
            "default": default,
            "dest": f.name,
            "help": argparse.SUPPRESS if text and text.startswith(INTERNAL) else text,
        }
        hint = hints.get(f.name)
        if isinstance(default, bool):
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kw)
        elif isinstance(default, tuple) or typing.get_origin(hint) is tuple:
            element = next(iter(typing.get_args(hint)), None)
            fallback = type(default[0]) if default else str
            tuples[f.name] = element if element in (int, float, str) else fallback
            parser.add_argument(*flags, nargs="+", **kw)
        else:
            parser.add_argument(*flags, type=_scalar_type(hint, default), **kw)
    tokens = list(sys.argv[1:] if argv is None else argv)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    known = {f"--{name}": f"--{name.replace('_', '-')}" for name in names}
    known |= {f"--no-{k[2:]}": f"--no-{v[2:]}" for k, v in known.items()}
    for i, token in enumerate(tokens):  # --field_name spelling -> --field-name
        flag, eq, value = token.partition("=")
        tokens[i] = known.get(flag, flag) + eq + value
    values = vars(parser.parse_args(tokens))
    for name, element in tuples.items():
        if isinstance(values[name], list):  # given on the command line: split commas, convert
            values[name] = tuple(element(v) for item in values[name] for v in str(item).split(",") if v)
    return cls(**values)


# ------------------------------------------------------------------------------------ provenance
def cpu_info() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where there is none)."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def cpu_name() -> str:
    """CPU model name (``/proc/cpuinfo``; else ``platform.processor()`` or the machine type)."""
    return cpu_info().get("model name") or platform.processor() or platform.machine() or "unknown"


def git_commit() -> str | None:
    """Short commit of the repository, ``+dirty`` when the working tree has changes; None outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=20
        ).stdout.strip()

    try:
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return git("rev-parse", "--short", "HEAD") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def hardware(**extra: Any) -> dict[str, Any]:
    """Where and when a result was measured (stored in every result file); ``extra`` entries are added.

    CPU model (family/model numbers), usable cores (``cores``: this process's affinity) and the machine's
    (``cpu_count``), load average (1/5/15 min and ``load_avg_1m``), Python, platform, numpy and torch
    versions, torch threads, the git commit and the UTC date.
    """
    import torch

    info = cpu_info()
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else [float("nan")] * 3
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_name(),
        "cpu_family": info.get("cpu family"),
        "cpu_model": info.get("model"),
        "cores": cores,
        "cpu_count": os.cpu_count(),
        "load_average": load,
        "load_avg_1m": load[0],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "commit": git_commit(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


# ------------------------------------------------------------------------------------ tables
def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub markdown table; ``align``: one character per column, ``l`` (default) or ``r``.

    >>> print(markdown_table(["a", "b"], [[1, 2.5]], align="lr"))
    | a | b |
    |---|---:|
    | 1 | 2.5 |
    """
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in (align or "l" * len(header)))
    lines = ["| " + " | ".join(str(c) for c in header) + " |", rule]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ result files
def _json_default(value: Any) -> Any:
    """numpy scalars and arrays, and paths, as JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file + ``os.replace``), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_json(path: str | Path, record: Any) -> Path:
    """Write ``record`` as indented JSON, atomically (numpy values converted)."""
    return write_text(path, json.dumps(record, indent=1, default=_json_default) + "\n")


def load_json(path: str | Path) -> Any:
    """The parsed JSON file at ``path``."""
    return json.loads(Path(path).read_text())


def write_results(stem: str | Path, record: Any, markdown: str) -> tuple[Path, Path]:
    """``stem.json`` (everything) and ``stem.md`` (what a reader scans), both atomic; returns the paths."""
    stem = Path(stem)
    return write_json(stem.with_suffix(".json"), record), write_text(stem.with_suffix(".md"), markdown)
