"""A run directory loaded once (:class:`LoadedRun`): its config, settings, final learner, log, A.6 probe
history and timing, read through :mod:`vase_rl.runs.run_format` for the evaluation side (evaluation,
figures, report), which never imports the trainer."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from vase_rl.core.config import VASEConfig
from vase_rl.core.learner import ContinualLearner
from vase_rl.probing.probes import ProbeHistory
from vase_rl.runs.run_format import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    LOG_FILE,
    PROBES_FILE,
    TIMING_FILE,
    RunSettings,
    read_json,
    read_log,
    read_run_config,
)

__all__ = ["LoadedRun", "load_run"]


@dataclass
class LoadedRun:
    """Everything a run directory holds, loaded once for evaluation, figures and the report."""

    run_dir: str
    config: VASEConfig
    settings: RunSettings
    learner: ContinualLearner
    log: list[dict[str, Any]]
    probes: ProbeHistory | None
    timing: dict[str, Any] | None

    @property
    def datasets(self) -> list[str]:
        """Distinct datasets of the sequence, in order of first appearance."""
        return list(dict.fromkeys(self.settings.sequence))

    def stage_span(self, dataset: str) -> tuple[int, int | None]:
        """(first step, first step after) of the dataset's first stage; None when it is the last stage."""
        i = self.settings.sequence.index(dataset)
        end = (i + 1) * self.settings.steps_per_env
        return i * self.settings.steps_per_env, (end if i + 1 < len(self.settings.sequence) else None)


def load_run(run_dir: str, device: str = "cpu") -> LoadedRun:
    """Load a run directory (config.json, checkpoint.pt, log.jsonl, probes.json, timing.json) on ``device``.

    Raises FileNotFoundError naming the missing file when the run has no config or checkpoint yet.
    """
    for name in (CONFIG_FILE, CHECKPOINT_FILE, LOG_FILE):
        if not os.path.exists(os.path.join(run_dir, name)):
            raise FileNotFoundError(f"{os.path.join(run_dir, name)} not found: is {run_dir!r} a trained run?")
    config, settings = read_run_config(run_dir)
    learner = ContinualLearner.load(os.path.join(run_dir, CHECKPOINT_FILE), device=device)
    probes_path = os.path.join(run_dir, PROBES_FILE)
    probes = None
    if os.path.exists(probes_path):
        with open(probes_path) as f:
            probes = ProbeHistory.from_json(f.read())
    timing = read_json(os.path.join(run_dir, TIMING_FILE))
    return LoadedRun(run_dir, config, settings, learner, read_log(run_dir), probes, timing)
