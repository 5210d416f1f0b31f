"""What the benchmark scripts share, written once: the command line and its base ``Args``, provenance,
tables, result files, resumable runs and timings.

Every script in ``benchmarks/`` has CleanRL's shape and reads top to bottom: a docstring saying what it
measures and how to run it, an ``Args`` dataclass with a docstring under each field, ``run(args)`` (the
measurement), ``summarise(...)`` (the tables, from the results) and a ``main()`` that starts with::

    args = common.parse_args(Args, __doc__)

Fields that several scripts have (the run budget: seeds, jobs, torch threads; PPO's hyper-parameters; the
learner preset and steps per dataset; an investigation's validation run) are declared once, in the base
dataclasses below, and a script's ``Args`` inherits them (dataclass inheritance; a subclass re-declares a
field only to change its default or its help; ``--help`` lists the script's own fields first). The helper
modules ``paper_common.py``, ``bench3d_common.py`` and ``rl_common.py`` add the bases and pieces of one
family of scripts; no script imports another script.

The command line is this module's :func:`parse_args` (argparse, ~100 lines), not tyro (CleanRL's choice):
tyro would be one more dependency for a handful of scripts, and the flags the scripts and their tests
have always taken -- ``--field-name`` *and* ``--field_name``, tuples given space- *or* comma-separated
(``--seeds 0,1,2``), ``--x/--no-x`` booleans, fields hidden from ``--help`` by an :data:`INTERNAL`
docstring -- would change under it. The help text is the docstring under each field, as with tyro.

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
import time
import traceback
import typing
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
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


def help_order(cls: type) -> list[dataclasses.Field]:
    """The fields of dataclass ``cls`` in the order ``--help`` lists them: the script's own first (those its
    ``Args`` declares or re-declares), then those of each base class in turn (MRO order).

    >>> @dataclasses.dataclass
    ... class Base:
    ...     seeds: tuple[int, ...] = (0,)
    ...     jobs: int = 1
    >>> @dataclasses.dataclass
    ... class Args(Base):
    ...     steps: int = 10
    ...     jobs: int = 2
    >>> [f.name for f in help_order(Args)]
    ['jobs', 'steps', 'seeds']
    """

    def depth(f: dataclasses.Field) -> int:
        return next(i for i, k in enumerate(cls.__mro__) if f.name in vars(k).get("__annotations__", {}))

    return sorted(dataclasses.fields(cls), key=depth)  # type: ignore[arg-type]


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
    for f in help_order(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        text = helps.get(f.name)
        flags = [f"--{f.name.replace('_', '-')}"]
        kw: dict[str, Any] = {
            "default": default,
            "dest": f.name,
            # argparse %-formats help strings: a literal "90 %" would break --help
            "help": argparse.SUPPRESS
            if text and text.startswith(INTERNAL)
            else text and text.replace("%", "%%"),
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


# ------------------------------------------------------------------------------------ base Args
@dataclass
class SummariseArgs:
    """Runs that each save a result file when they finish: rerunning the script skips finished runs (it
    resumes), ``--summarise`` only rebuilds the report from the files."""

    summarise: bool = False
    """Only rebuild the tables and figures from the result files."""


@dataclass
class SeedsArgs(SummariseArgs):
    """An experiment of one run per (variant, seed) (:class:`SummariseArgs`)."""

    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds to run; each seeds everything random in its run (learner, data, policy, probes)."""


@dataclass
class JobsArgs(SeedsArgs):
    """:class:`SeedsArgs` whose runs go ``jobs`` at a time, in spawned processes (:func:`run_pending` or
    ``paper_common.run_all``)."""

    jobs: int = 2
    """Runs in parallel (processes, one torch thread each)."""


@dataclass
class ThreadsArgs:
    """A measurement in this one process."""

    threads: int = 1
    """torch threads (1: CPU-second rates are per core; the machine is shared with other jobs)."""


@dataclass
class PresetArgs:
    """A learner built from a preset (``vase_rl.core.config.get_preset``)."""

    preset: str = "cpu"
    """Learner preset ('cpu' on CPU: 32x32 inputs; 'paper' on a GPU: 64x64 inputs)."""


@dataclass
class SequenceArgs(PresetArgs):
    """A learner trained on a sequence of datasets (``vase_rl.runs.training.SequenceTrainer``)."""

    steps_per_env: int = 2500
    """Training steps per dataset."""
    probe_eval_every: int = 100
    """Period (steps) of the A.6 probes' evaluation."""


@dataclass
class PPOArgs:
    """The size of SB3 PPO's rollouts and updates; :meth:`ppo_kwargs` passes them to ``PPO(...)``."""

    ppo_n_steps: int = 64
    """PPO rollout length per sub-env."""
    ppo_batch_size: int = 128
    """PPO minibatch size."""
    ppo_epochs: int = 4
    """PPO epochs per rollout."""

    def ppo_kwargs(self) -> dict[str, Any]:
        """``PPO(...)`` keyword arguments of these fields."""
        return {"n_steps": self.ppo_n_steps, "batch_size": self.ppo_batch_size, "n_epochs": self.ppo_epochs}


@dataclass
class AgentArgs(PPOArgs):
    """A PPO agent trained and evaluated on ``n_envs`` sub-envs (:class:`PPOArgs` + the optimisation and
    the evaluation)."""

    n_envs: int = 8
    """Sub-envs of every VecEnv of a run (training, evaluation, reward-free rollouts)."""
    ppo_lr: float = 1e-3
    """PPO learning rate."""
    ppo_gamma: float = 0.95
    """Discount."""
    ppo_ent_coef: float = 0.0
    """Entropy bonus (SB3's default 0)."""
    eval_episodes: int = 32
    """Episodes per evaluation (stochastic policy, held-out seeds)."""

    def ppo_kwargs(self) -> dict[str, Any]:
        return {
            **super().ppo_kwargs(),
            "learning_rate": self.ppo_lr,
            "gamma": self.ppo_gamma,
            "ent_coef": self.ppo_ent_coef,
        }


@dataclass
class ValidationArgs(ThreadsArgs):
    """An investigation: one run of the cpu preset with config overrides on the validation seed (never one
    of the evaluation seeds 0-2), its learned codes read by the offline probes."""

    name: str = ""
    """Name of the run, in its result file's name."""
    overrides: str = "{}"
    """JSON dict of ``VASEConfig.with_overrides`` sections on top of the cpu preset, e.g.
    '{"loss": {"entangled": true}}'."""
    seed: int = 100
    """Validation seed of the learner and the data."""
    probe_train: int = 10_000
    """Train-split images the offline probes are fit on."""
    probe_test: int = 5_000
    """Held-out test-split images the offline probes are scored on."""
    probe_epochs: int = 40
    """Epochs of the offline MLP probe."""

    def config(self) -> Any:
        """The cpu preset with :attr:`overrides` on :attr:`seed`."""
        from vase_rl.core.config import get_preset

        return get_preset("cpu").with_overrides(seed=self.seed, **json.loads(self.overrides))

    def probe_config(self) -> Any:
        """The offline probes' ``OfflineProbeConfig`` (sizes and epochs of the ``probe_*`` fields)."""
        from vase_rl.probing.offline_probe import OfflineProbeConfig

        return OfflineProbeConfig(
            train_size=self.probe_train, test_size=self.probe_test, epochs=self.probe_epochs
        )


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


_NO_DEFAULT: Any = object()


def load_json(path: str | Path, default: Any = _NO_DEFAULT) -> Any:
    """The parsed JSON file at ``path``; ``default`` (when given) if there is no such file."""
    if default is not _NO_DEFAULT and not Path(path).exists():
        return default
    return json.loads(Path(path).read_text())


def json_once(path: str | Path, make: Callable[[], Any]) -> Any:
    """The JSON file at ``path``; made with ``make()`` and written first when it does not exist yet."""
    if not Path(path).exists():
        write_json(path, make())
    return load_json(path)


def write_results(stem: str | Path, record: Any, markdown: str) -> tuple[Path, Path]:
    """``stem.json`` (everything) and ``stem.md`` (what a reader scans), both atomic; returns the paths."""
    stem = Path(stem)
    return write_json(stem.with_suffix(".json"), record), write_text(stem.with_suffix(".md"), markdown)


def save_record(path: str | Path, record: Any, summarise: Callable[[Any], str]) -> None:
    """Write ``record`` as JSON at ``path``; print ``summarise(record)``."""
    write_json(path, record)
    print(summarise(record))


def write_report(stem: str | Path, result: Any, summarise: Callable[[Any], str]) -> str:
    """``stem.json`` (``result``) and ``stem.md`` (``summarise(result)``), printed; returns the markdown."""
    markdown = summarise(result)
    write_results(stem, result, markdown)
    print(markdown)
    return markdown


# ------------------------------------------------------------------------------------ resumable runs
def run_path(out_dir: str | Path, method: str, seed: int, ext: str = "json") -> str:
    """Result file of one (method, seed) run: ``out_dir/<method>_seed<seed>.<ext>``."""
    return os.path.join(out_dir, f"{method}_seed{seed}.{ext}")


def load_records(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished run's JSON in ``out_dir`` (sorted by file name)."""
    return [load_json(p) for p in sorted(Path(out_dir).glob("*_seed*.json"))]


def by_method(records: Iterable[dict[str, Any]], methods: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by their ``method``, in the order of ``methods``; methods without records left out."""
    records = list(records)
    groups = {m: [r for r in records if r["method"] == m] for m in methods}
    return {m: rs for m, rs in groups.items() if rs}


def run_record(
    args: Any, method: str, seed: int, machine: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """The head of a (method, seed) run's record: the run, its ``Args``, :func:`hardware` (with the
    ``machine`` entries added), then ``fields``."""
    head = {"method": method, "seed": seed, "args": dataclasses.asdict(args)}
    return {**head, "hardware": hardware(**(machine or {})), **fields}


RunFn = Callable[[Any, str, int], dict[str, Any]]
"""(args, method, seed) -> the run's JSON record."""


def _run_and_save(
    fn: RunFn, args: Any, method: str, seed: int, out_dir: str, describe: Any
) -> tuple[bool, str]:
    """One run in a worker: its record written to :func:`run_path`; (success, a line saying how it went)."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        record = fn(args, method, seed)
    except Exception:  # noqa: BLE001 - report and let the other runs go on
        failed = time.perf_counter() - start
        return False, f"{method} seed {seed}: FAILED after {failed:.0f}s\n{traceback.format_exc()}"
    record.setdefault("wall_s", time.perf_counter() - start)
    write_json(run_path(out_dir, method, seed), record)
    said = describe(record) if describe else f"done in {record['wall_s'] / 60:.1f} min"
    return True, f"{method} seed {seed}: {said}"


def run_pending(
    fn: RunFn,
    args: Any,
    methods: Iterable[str],
    seeds: Iterable[int],
    out_dir: str,
    jobs: int,
    describe: Callable[[dict[str, Any]], str] | None = None,
) -> None:
    """Run every (method, seed) without a JSON in ``out_dir``, ``jobs`` processes at a time (spawned, one
    torch thread each; ``jobs=1`` runs in this process). Finished runs are skipped: rerunning resumes.

    ``fn(args, method, seed)`` returns the run's record; ``describe(record)`` the line printed when it is
    saved. A run that raises is reported with its traceback and the others go on; at the end the script
    exits with an error naming the failed runs (their JSONs are missing: a rerun retries them).
    """
    os.makedirs(out_dir, exist_ok=True)
    todo = [(m, s) for s in seeds for m in methods if not os.path.exists(run_path(out_dir, m, s))]
    print(f"{len(todo)} runs to do, {jobs} at a time: {todo}", flush=True)
    start = time.perf_counter()
    failed: list[str] = []

    def report(ok: bool, msg: str) -> None:
        print(f"[{(time.perf_counter() - start) / 60:.1f} min] {msg}", flush=True)
        if not ok:
            failed.append(msg.split(":", 1)[0])

    if jobs <= 1:
        for m, s in todo:
            report(*_run_and_save(fn, args, m, s, out_dir, describe))
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_run_and_save, fn, args, m, s, out_dir, describe) for m, s in todo]
            for fut in futures:
                report(*fut.result())
    report(True, f"all {len(todo)} runs finished")
    if failed:
        raise SystemExit(f"{len(failed)} of {len(todo)} runs failed: {', '.join(failed)}")


# ------------------------------------------------------------------------------------ timings
def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds of this process) of ``repeats`` calls of ``fn``."""
    times = [timed(fn)[:2] for _ in range(repeats)]
    return min(t[0] for t in times), min(t[1] for t in times)


def peak(threads: int, size: int, repeats: int = 3) -> dict[str, float]:
    """GFLOP/s (wall and per CPU-second) of a (size x size) fp32 matmul and of a 3x3 conv 512->512 at
    64x64 (oneDNN), best of ``repeats``: the practical peak the speed benchmarks compare against."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    x, w = torch.randn(1, 512, 64, 64), torch.randn(512, 512, 3, 3)
    cases = {
        "matmul": (lambda: a @ b, 2.0 * size**3),
        "conv3x3": (lambda: F.conv2d(x, w, padding=1), 2.0 * 64 * 64 * 512 * 512 * 9),
    }
    out: dict[str, float] = {}
    with torch.no_grad():
        for name, (fn, flops) in cases.items():
            fn()
            best_wall, best_cpu = best_time(lambda fn=fn: [fn() for _ in range(3)], repeats)
            out[f"{name}_gflops_wall"] = 3 * flops / best_wall / 1e9
            out[f"{name}_gflops_cpu"] = 3 * flops / best_cpu / 1e9
    return out


class RandomPolicy:
    """Uniform random discrete actions with SB3's ``predict`` signature (the random-policy reference row)."""

    def __init__(self, n_actions: int, seed: int = 0) -> None:
        self.n_actions, self.rng = n_actions, np.random.default_rng(seed)

    def predict(
        self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[np.ndarray, None]:
        return self.rng.integers(0, self.n_actions, len(obs)), None
