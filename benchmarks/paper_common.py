"""Shared runner of the paper-reproduction benchmarks (Achille et al. 2018).

Used by ``ablation_table1.py``, ``ablation_table3.py``, ``five_datasets.py`` and ``ambiguity.py``.
Each experiment is a list of :class:`RunSpec` (one per ablation row x disentangled/entangled x seed).
:func:`run_all` trains the specs that have no result JSON yet (``jobs`` processes, one torch thread
each), evaluates every finished run with :func:`vase_rl.evaluation.evaluate.evaluate_run` and writes
``benchmarks/results/paper/<experiment>/runs/<key>.json``. Run directories (checkpoints, logs,
TensorBoard) live outside the repository, under ``--runs-dir`` (default ``/tmp/vase_runs/paper``);
their ``tb/`` folder is deleted after a run and the checkpoint is kept there for figures. An
interrupted run resumes from its checkpoint the next time the script is started.

:func:`load_results` reads the JSONs back; ``paper_tables.py`` turns them into mean +- std tables with the
paper's numbers side by side.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import multiprocessing as mp
import os
import shutil
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cli_args
import common

RESULTS = common.RESULTS / "paper"
DEFAULT_RUNS_DIR = "/tmp/vase_runs/paper"
ALL_ROWS = ("-", "S", "D", "A", "SA", "DA", "SD", "SD-[41]", "SDA")
"""Table 1/3 ablation rows (S: environment inference, D: dreaming, A: atypicality mask)."""
MODES = ("dis", "ent")
"""dis: capacity objective of eq. 3; ent: entangled VAE baseline (beta = 1)."""
TABLE1_SEQUENCE = ("moving-fashion", "mnist", "moving-mnist")
"""Table 1's dataset sequence (``ablation_table1.py``, and ``dreaming_check.py`` which investigates it)."""

Extra = Callable[[str, "RunSpec"], dict[str, Any]]
"""(run dir, spec) -> experiment-specific results stored in the run's JSON under "extra"."""
FrozenOverrides = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]
"""Hashable config overrides: ((section, ((field, value), ...)), ...)."""


@dataclass(frozen=True)
class RunSpec:
    """One training run: an ablation row, disentangled or entangled, one seed, one dataset sequence."""

    experiment: str
    """Folder under benchmarks/results/paper/ (e.g. "table1")."""
    row: str
    """Ablation code as in the paper's tables: "-", "S", ..., "SD-[41]", "SDA"."""
    mode: str
    """"dis" (eq. 3 capacity objective) or "ent" (entangled beta=1 VAE)."""
    seed: int
    sequence: tuple[str, ...]
    steps_per_env: int
    preset: str = "cpu"
    overrides: FrozenOverrides = ()
    """Config overrides per section, e.g. (("loss", (("gamma", 200.0),)),) -- hashable form of a dict."""
    probe_eval_every: int = 100

    @property
    def key(self) -> str:
        row = {"-": "none", "SD-[41]": "SD-41"}.get(self.row, self.row)
        return f"{row}_{self.mode}_s{self.seed}"

    def overrides_dict(self) -> dict[str, dict[str, Any]]:
        return {section: dict(items) for section, items in self.overrides}


def freeze_overrides(d: Mapping[str, Mapping[str, Any]]) -> FrozenOverrides:
    """Hashable form of ``{"loss": {"gamma": 200.0}, ...}`` for :attr:`RunSpec.overrides`."""
    return tuple((s, tuple(sorted(v.items()))) for s, v in sorted(d.items()))


def build_config(spec: RunSpec) -> Any:
    """VASEConfig of a spec: the preset's table row (``VASEConfig.for_row``, as the CLI) + overrides.

    Every run uses ``InferenceConfig.on_overflow="merge"`` so that spurious environment allocations past
    ``max_environments`` do not kill a run; the number of allocated environments is reported.
    """
    from vase_rl.core.config import VASEConfig, get_preset

    cfg = VASEConfig.for_row(spec.row, entangled=spec.mode == "ent", base=get_preset(spec.preset))
    cfg = cfg.with_overrides(seed=spec.seed)
    extra = {"inference": {"on_overflow": "merge"}, **scaled_schedule(cfg, spec.steps_per_env)}
    for section, values in spec.overrides_dict().items():
        extra[section] = {**extra.get(section, {}), **values}
    return cfg.with_overrides(steps_per_env=spec.steps_per_env, **extra)


def scaled_schedule(cfg: Any, steps_per_env: int) -> dict[str, dict[str, Any]]:
    """Step-dependent values of a preset compressed to ``steps_per_env`` (ratio r = steps / preset steps).

    The capacity ramp (C reaches C_max after 1 / delta_C steps) and the snapshot period tau keep the same
    length *relative to a dataset* as in the preset: delta_C / r and tau * r. Everything else is the
    preset's. Experiment-specific overrides (RunSpec.overrides) are applied on top.
    """
    r = steps_per_env / cfg.steps_per_env
    if r == 1:
        return {}
    return {"loss": {"delta_c": cfg.loss.delta_c / r}, "dream": {"tau": max(1, round(cfg.dream.tau * r))}}


def spec_from_record(record: Mapping[str, Any]) -> RunSpec:
    """The :class:`RunSpec` stored in a result JSON (lists turned back into tuples)."""
    d = dict(record["spec"])
    d["sequence"] = tuple(d["sequence"])
    d["overrides"] = tuple((s, tuple(tuple(kv) for kv in items)) for s, items in d["overrides"])
    return RunSpec(**d)


def needs_figures(record: Mapping[str, Any], folder: Path) -> bool:
    """True when a run's figure folder is missing but its checkpoint is still there to draw them."""
    return not folder.exists() and os.path.exists(os.path.join(record["run_dir"], "checkpoint.pt"))


def result_path(spec: RunSpec) -> Path:
    return RESULTS / spec.experiment / "runs" / f"{spec.key}.json"


def run_dir(spec: RunSpec, runs_dir: str) -> str:
    return os.path.join(runs_dir, spec.experiment, spec.key)


def stage_envs(log: Sequence[Mapping[str, Any]], n_stages: int) -> list[int | None]:
    """Majority inferred environment of each stage of the sequence (stage i, not dataset name)."""
    out: list[int | None] = []
    for i in range(n_stages):
        envs = [int(r["env"]) for r in log if r["stage"] == i]
        out.append(max(set(envs), key=envs.count) if envs else None)
    return out


def run_one(spec: RunSpec, runs_dir: str, extra: Extra | None = None) -> dict[str, Any]:
    """Train (or resume) one spec, evaluate it and write its result JSON; returns the record."""
    import torch

    from vase_rl.evaluation.evaluate import evaluate_run
    from vase_rl.runs.run_format import RunSettings, read_log
    from vase_rl.runs.training import SequenceTrainer

    torch.set_num_threads(1)
    out = run_dir(spec, runs_dir)
    if not claim(out):
        return {"skipped": f"{out} is being trained by another process"}
    cfg = build_config(spec)
    settings = RunSettings(
        sequence=spec.sequence,
        steps_per_env=spec.steps_per_env,
        probes=True,
        probe_eval_every=spec.probe_eval_every,
        seed=spec.seed,
    )
    t0 = time.time()
    if not os.path.exists(os.path.join(out, "done")):
        trainer = SequenceTrainer(cfg, settings, out, device="cpu", resume=True)
        trainer.run(progress=False)
    train_wall = time.time() - t0
    if not os.path.exists(os.path.join(out, "done")):  # interrupted (SIGINT): checkpoint saved, no result
        os.remove(os.path.join(out, "claimed"))
        raise RuntimeError(f"{spec.key} was interrupted at a checkpoint; re-run the script to resume it")
    evaluation = evaluate_run(out)
    with open(os.path.join(out, "probes.json")) as f:
        probes = json.load(f)
    with open(os.path.join(out, "timing.json")) as f:
        timing = json.load(f)
    log = read_log(out)
    record = {
        "spec": dataclasses.asdict(spec),
        "config": cfg.to_dict(),
        "timing": {**timing, "wall_this_sitting_s": train_wall, "eval_s": time.time() - t0 - train_wall},
        "hardware": common.hardware(),
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "evaluation": evaluation,
        "probes": probes,
        "stage_envs": stage_envs(log, len(spec.sequence)),
        "n_envs": int(log[-1]["n_envs"]) if log else 0,
        "extra": extra(out, spec) if extra is not None else {},
        "run_dir": out,
    }
    common.write_json(result_path(spec), record)
    shutil.rmtree(os.path.join(out, "tb"), ignore_errors=True)
    os.remove(os.path.join(out, "claimed"))
    return record


def claim(out: str) -> bool:
    """Mark run dir ``out`` as ours (file ``claimed`` holding our pid); False if a live process holds it.

    Lets several invocations of a script (e.g. two shells) share one queue of runs without doubling up.
    """
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "claimed")
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            pid = int(Path(path).read_text() or "0")
            os.kill(pid, 0)
            return False  # alive
        except (ValueError, ProcessLookupError):
            Path(path).write_text(str(os.getpid()))  # stale claim of a dead process: take over
            return True
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    return True


def _worker(spec: RunSpec, runs_dir: str, extra: Extra | None) -> tuple[str, float, str | None]:
    t0 = time.time()
    try:
        rec = run_one(spec, runs_dir, extra)
        return spec.key, time.time() - t0, rec.get("skipped")
    except Exception:  # noqa: BLE001 - reported and the next run goes on
        return spec.key, time.time() - t0, traceback.format_exc()


def run_all(specs: Sequence[RunSpec], runs_dir: str, jobs: int = 2, extra: Extra | None = None) -> None:
    """Run every spec without a result JSON, ``jobs`` at a time (spawned processes, 1 thread each)."""
    todo = [s for s in specs if not result_path(s).exists()]
    print(f"{len(specs) - len(todo)} of {len(specs)} runs already done; {len(todo)} to run", flush=True)
    if not todo:
        return
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_worker, s, runs_dir, extra) for s in todo]
        for i, fut in enumerate(as_completed(futures), 1):
            key, secs, err = fut.result()
            if err is None:
                status = "ok"
            else:
                status = ("SKIPPED: " if "claimed" in err or "another" in err else "FAILED\n") + err
            print(
                f"[{i}/{len(todo)}] {key}: {secs / 60:.1f} min ({(time.time() - t0) / 60:.1f} min total) "
                f"{status}",
                flush=True,
            )


# ------------------------------------------------------------------------------------------ CLI
@dataclass
class ExperimentArgs(cli_args.SequenceArgs, cli_args.JobsArgs):
    """Options shared by every experiment script (defaults = the complete experiment); a script's ``Args``
    subclasses it, changing defaults, and is parsed by ``cli_args.parse_args``."""

    rows: tuple[str, ...] = ALL_ROWS
    """Ablation rows, of - S D A SA DA SD SD-[41] SDA."""
    modes: tuple[str, ...] = MODES
    """dis (eq. 3 capacity objective) and/or ent (entangled beta=1 VAE)."""
    runs_dir: str = DEFAULT_RUNS_DIR
    """Where run directories go (outside git)."""

    def __post_init__(self) -> None:
        check_choices("rows", self.rows, ALL_ROWS)
        check_choices("modes", self.modes, MODES)


def check_choices(name: str, values: Sequence[str], allowed: Sequence[str]) -> None:
    """ValueError naming the values of option ``name`` that are not in ``allowed``."""
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {name} {unknown}; choose from {' '.join(allowed)}")


@dataclass
class VaseArgs(ExperimentArgs):
    """VASE only (SDA, disentangled), one seed, 2,500 steps per dataset by default."""

    seeds: tuple[int, ...] = (0,)
    rows: tuple[str, ...] = ("SDA",)
    modes: tuple[str, ...] = ("dis",)


@dataclass
class VariantArgs(VaseArgs):
    """:class:`VaseArgs` plus ``variants``: named config overrides of one experiment (a script's
    ``VARIANTS``), each run as its own sub-experiment ``EXPERIMENT/VARIANT`` by :func:`variant_specs`."""

    variants: tuple[str, ...] = ()
    """Variants to run (the script's ``VARIANTS``; its ``Args`` sets them all as the default)."""


def variant_specs(
    experiment: str,
    args: VariantArgs,
    variants: Mapping[str, Mapping[str, Mapping[str, Any]]],
    sequence: Sequence[str] = TABLE1_SEQUENCE,
) -> list[RunSpec]:
    """Specs of every (seed, variant) in ``args``, seed-major so a cut-short sitting compares every variant at
    >= 1 seed; ``variants``: variant -> config overrides; a ValueError names unknown variants."""
    check_choices("variants", args.variants, tuple(variants))
    return [
        spec
        for seed in args.seeds
        for variant in args.variants
        for spec in make_specs(
            f"{experiment}/{variant}", dataclasses.replace(args, seeds=(seed,)), sequence, variants[variant]
        )
    ]


def run_then_summarise(
    args: ExperimentArgs, run: Callable[[Any], None], summarise: Callable[[Any], None]
) -> None:
    """A script's ``main`` after parsing: ``run(args)`` (unless ``--summarise``), then ``summarise(args)``."""
    if not args.summarise:
        run(args)
    summarise(args)


def make_specs(
    experiment: str,
    args: ExperimentArgs,
    sequence: Sequence[str],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[RunSpec]:
    """Specs seed-major (every row of seed 0 first), so a cut-short session has all rows at >= 1 seed."""
    frozen = freeze_overrides(overrides or {})
    return [
        RunSpec(
            experiment,
            row,
            mode,
            seed,
            tuple(sequence),
            args.steps_per_env,
            args.preset,
            frozen,
            args.probe_eval_every,
        )
        for seed in args.seeds
        for row in args.rows
        for mode in args.modes
    ]


# ------------------------------------------------------------------------------------------ results
def load_results(experiment: str) -> list[dict[str, Any]]:
    """Every result JSON of an experiment."""
    folder = RESULTS / experiment / "runs"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
