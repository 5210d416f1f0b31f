"""Exact resume: a run stopped part way (SIGINT, or a crash after a checkpoint) and resumed with
``resume=True`` ends with the same checkpoint as a straight run -- every tensor ``torch.equal``, every
other value equal: learner, optimiser, snapshot, memory, probes, samplers, batch hook, RNG states -- and
the same log and probe history."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import tiny_config

from vase_rl.runs.run_format import RunSettings
from vase_rl.runs.training import SequenceTrainer

SETTINGS = RunSettings(
    sequence=("moving-shapes", "shapes"), steps_per_env=30, probes=True, probe_eval_every=10,
    probe_eval_size=64, log_every=5, checkpoint_every=20, tb_images_every=25, seed=3,
)  # fmt: skip
"""60 steps over two procedural datasets (no data files): probes, snapshot syncs (tau=20), used-latent
updates (every 20) and a checkpoint at step 20 and 40 all fall inside the run."""
STOP_AT = 27
"""The interrupted run is stopped (or crashes) in the hook of this step, between two checkpoints."""


class Crash(RuntimeError):
    """A process dying part way (the checkpoint on disk is the one of the last ``checkpoint_every``)."""


class Interrupting:
    """Batch hook that delegates to ``inner`` (an ImaginationExplorer, or none) and, at step ``at``, sends
    this process SIGINT (the trainer's Ctrl-C path) or raises :class:`Crash`."""

    def __init__(self, inner: Any | None, at: int | None = None, how: str = "sigint") -> None:
        self.inner, self.at, self.how = inner, at, how

    def __call__(self, step: int, dataset: str, x: torch.Tensor) -> torch.Tensor:
        if step == self.at:
            if self.how == "crash":
                raise Crash(f"crash at step {step}")
            os.kill(os.getpid(), signal.SIGINT)
        return x if self.inner is None else self.inner(step, dataset, x)

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.inner is None else self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.inner is not None and state is not None:
            self.inner.load_state_dict(state)


def _trainer(
    out: Path, imagination: bool, at: int | None = None, how: str = "sigint", resume: bool = False
) -> SequenceTrainer:
    trainer = SequenceTrainer(tiny_config(seed=5), SETTINGS, str(out), device="cpu", resume=resume)
    inner = None
    if imagination:
        from vase_rl.agents.translation import ImaginationConfig, ImaginationExplorer

        inner = ImaginationExplorer(
            trainer.learner, ImaginationConfig(enabled=True, fraction=0.25, hidden=32, filters=4, seed=9)
        )
    trainer.set_batch_hook(Interrupting(inner, at, how))
    return trainer


def leaves(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf of a nested dict/list/tuple, with its path."""
    if isinstance(obj, dict):
        for k in sorted(obj, key=str):
            yield from leaves(obj[k], f"{path}/{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, obj


def checkpoint_differences(a: Path, b: Path) -> tuple[int, list[str]]:
    """(number of tensors compared, paths where the two checkpoints differ)."""
    la = dict(leaves(torch.load(a / "checkpoint.pt", map_location="cpu", weights_only=False)))
    lb = dict(leaves(torch.load(b / "checkpoint.pt", map_location="cpu", weights_only=False)))
    diffs = sorted(set(la) ^ set(lb))
    n_tensors = 0
    for key in sorted(set(la) & set(lb)):
        va, vb = la[key], lb[key]
        if isinstance(va, torch.Tensor):
            n_tensors += 1
            same = isinstance(vb, torch.Tensor) and va.dtype == vb.dtype and torch.equal(va, vb)
        else:
            same = type(va) is type(vb) and va == vb
        if not same:
            diffs.append(key)
    return n_tensors, diffs


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    """The uninterrupted runs, without and with imagination."""
    torch.set_num_threads(1)
    out = {}
    for imagination in (False, True):
        out[imagination] = tmp_path_factory.mktemp(f"straight_{imagination}")
        _trainer(out[imagination], imagination).run(progress=False)
    return out


@pytest.mark.parametrize(("how", "imagination"), [("sigint", False), ("crash", False), ("sigint", True)])
def test_stopped_and_resumed_run_equals_a_straight_run_tensor_for_tensor(
    straight: dict[bool, Path], tmp_path: Path, how: str, imagination: bool
) -> None:
    torch.set_num_threads(1)
    first = _trainer(tmp_path, imagination, at=STOP_AT, how=how)
    if how == "crash":
        with pytest.raises(Crash):
            first.run(progress=False)
        assert not (tmp_path / "done").exists()
    else:
        first.run(progress=False)
        assert first.global_step == STOP_AT + 1 and not (tmp_path / "done").exists()
    resumed = _trainer(tmp_path, imagination, resume=True)
    assert resumed.global_step == (20 if how == "crash" else STOP_AT + 1)
    resumed.run(progress=False)

    ref = straight[imagination]
    n_tensors, diffs = checkpoint_differences(ref, tmp_path)
    assert diffs == []
    assert n_tensors > 100  # model, optimiser, snapshot, memory, probes (weights, Adam), RNG states
    blob = torch.load(tmp_path / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert blob["extra"]["probes"]["generator"].dtype == torch.uint8
    assert (blob["extra"]["batch_hook"] is not None) == imagination
    for name in ("log.jsonl", "probes.json"):
        assert (tmp_path / name).read_text() == (ref / name).read_text(), name
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert timing["sittings"] == (1 if how == "crash" else 2) and timing["steps"] == 60
