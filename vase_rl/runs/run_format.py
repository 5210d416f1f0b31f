"""The run directory of a sequence run: what it holds and how to read and write it (no trainer needed).

Both sides of a run import this module and nothing of each other: the trainer
(:mod:`vase_rl.runs.training`, also under :mod:`vase_rl.runs.distributed`) writes a run directory, the
evaluation side (:mod:`vase_rl.evaluation.evaluate`, :mod:`vase_rl.evaluation.report`,
:mod:`vase_rl.evaluation.plots`) reads it.

A run directory holds:
  ``config.json``       the VASEConfig, the :class:`RunSettings` and the number of processes (``world_size``)
  ``checkpoint.pt``     the latest atomic checkpoint (learner + samplers + probes + batch hook + step)
  ``log.jsonl``         one JSON record per ``log_every`` steps (losses, C, env, atypicality, mask, used)
  ``probes.json``       probe evaluation history (A.6)
  ``timing.json``       wall time accumulated over (resumed) sittings, device, threads, CPU
  ``tb/``               TensorBoard scalars and images
  ``done``              written when the sequence finished

Example (a config round trip)::

    >>> import tempfile
    >>> from vase_rl.core.config import get_preset
    >>> d = tempfile.mkdtemp()
    >>> write_run_config(d, get_preset("cpu"), RunSettings(sequence=("mnist",), steps_per_env=10))
    >>> cfg, settings = read_run_config(d)
    >>> cfg.preset, settings.sequence, settings.steps_per_env
    ('cpu', ('mnist',), 10)
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from vase_rl.core.config import VASEConfig

__all__ = [
    "CHECKPOINT_FILE", "CONFIG_FILE", "DONE_FILE", "LOG_FILE", "PROBES_FILE", "TB_DIR", "TIMING_FILE",
    "BatchHook", "BatchSource", "RunSettings", "cpu_name", "json_default", "make_sampler", "read_json",
    "read_log", "read_run_config", "truncate_log", "update_timing", "write_run_config",
]  # fmt: skip

CONFIG_FILE = "config.json"
CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "log.jsonl"
PROBES_FILE = "probes.json"
TIMING_FILE = "timing.json"
DONE_FILE = "done"
TB_DIR = "tb"


class BatchSource(Protocol):
    """What the trainer needs from a dataset sampler (``vase_rl.envs.sampler.SpriteSampler``)."""

    def sample(self, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, d: dict) -> None: ...


BatchHook = Callable[[int, str, torch.Tensor], torch.Tensor]
"""(global step, dataset name, x (B,C,H,W) float) -> the batch actually trained on (imagination).
A hook with ``state_dict``/``load_state_dict`` is checkpointed with the run and resumed."""


@dataclass(frozen=True)
class RunSettings:
    """What a sequence run does besides the learner's own config."""

    sequence: tuple[str, ...] = ("moving-fashion", "mnist", "moving-mnist")
    """Dataset names trained on one after another."""
    steps_per_env: int = 2500
    probes: bool = True
    """Train A.6 probes (object-ID classifier, position regressor) for every dataset alongside."""
    probe_eval_every: int = 250
    probe_eval_size: int = 1000
    probe_train_every: int = 1
    """Train the probes every this many learner steps (A.6 trains them at every step)."""
    log_every: int = 25
    checkpoint_every: int = 500
    tb_images_every: int = 1000
    seed: int = 0


def make_sampler(dataset: str, image_size: int, split: str, seed: int) -> BatchSource:
    """Sampler for ``dataset`` rendered at the model's input size (imports the envs package lazily)."""
    from vase_rl.envs.sampler import SpriteSampler  # composition root: vase_rl core stays env-free

    return SpriteSampler(dataset, canvas_size=image_size, split=split, seed=seed)


def json_default(o: Any) -> Any:
    """``json.dump`` fallback for numpy scalars and arrays in log records."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"cannot write {type(o).__name__} to a run's JSON files")


def read_json(path: str) -> Any | None:
    """The JSON content of ``path``, or None when the file does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_run_config(run_dir: str, config: VASEConfig, settings: RunSettings, world_size: int = 1) -> None:
    """Write ``config.json``: the learner's config, the run settings and the number of processes."""
    with open(os.path.join(run_dir, CONFIG_FILE), "w") as f:
        json.dump(
            {"vase": config.to_dict(), "run": dataclasses.asdict(settings), "world_size": world_size},
            f,
            indent=2,
        )


def read_run_config(run_dir: str) -> tuple[VASEConfig, RunSettings]:
    """(VASEConfig, RunSettings) of the run's ``config.json``."""
    with open(os.path.join(run_dir, CONFIG_FILE)) as f:
        d = json.load(f)
    run = dict(d["run"])
    run["sequence"] = tuple(run["sequence"])
    return VASEConfig.from_dict(d["vase"]), RunSettings(**run)


def read_log(run_dir: str) -> list[dict[str, Any]]:
    """The ``log.jsonl`` records of a run."""
    with open(os.path.join(run_dir, LOG_FILE)) as f:
        return [json.loads(line) for line in f if line.strip()]


def truncate_log(run_dir: str, step: int) -> None:
    """Drop the log records written after ``step`` (a resumed run continues from its checkpoint's step)."""
    path = os.path.join(run_dir, LOG_FILE)
    if not os.path.exists(path):
        return
    with open(path) as f:
        keep = [ln for ln in f if ln.strip() and json.loads(ln)["step"] <= step]
    with open(path, "w") as f:
        f.writelines(keep)


def update_timing(run_dir: str, seconds: float, steps: int, **fields: Any) -> dict[str, Any]:
    """Add a sitting of ``seconds`` to ``timing.json`` (``train_seconds`` accumulates over resumed sittings).

    ``steps`` is the global step reached; ``fields`` (device, threads, world size, ...) replace the
    previous sitting's. Returns the record written.
    """
    path = os.path.join(run_dir, TIMING_FILE)
    prev = {"train_seconds": 0.0, "sittings": 0, **(read_json(path) or {})}
    rec = {
        "train_seconds": prev["train_seconds"] + seconds,
        "sittings": prev["sittings"] + 1,
        "steps": steps,
        **fields,
        "cpu": cpu_name(),
    }
    with open(path, "w") as f:
        json.dump(rec, f, indent=2)
    return rec


def cpu_name() -> str:
    """CPU model and visible cores (``/proc/cpuinfo``), else the platform's processor name."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores visible)"
    except OSError:
        pass
    return platform.processor() or platform.machine()
