"""What the benchmark scripts share, written once: provenance (the hardware record), tables, result files,
resumable runs, timings and the random policy.

The command line and the base ``Args`` dataclasses every script's ``Args`` inherits from are
``cli_args.py``'s. The helper modules ``paper_common.py`` (with ``paper_tables.py``), ``bench3d_common.py``
and ``rl_common.py`` (with ``rl_report.py``) add the pieces of one family of scripts; no script imports
another script.

Results go under :data:`RESULTS` (``benchmarks/results/``). The environment variable
``VASE_BENCH_RESULTS`` moves that root, for the script and for every worker process it starts (the tests
run each script with it pointing at a temporary folder, so committed results are never overwritten).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS_ENV = "VASE_BENCH_RESULTS"
RESULTS = Path(os.environ.get(RESULTS_ENV) or REPO / "benchmarks" / "results")
"""Root of the result files: ``$VASE_BENCH_RESULTS`` if set, else ``benchmarks/results``."""


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
