"""Drift you can see: vase_rl.probing.drift measures how far an environment's latents moved since the
learner left it, in units of each latent's sd then; the online engine reports it in ``vase_stats()``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import shapes_batches, tiny_config

from vase_rl.core.config import InferenceConfig
from vase_rl.core.learner import ContinualLearner
from vase_rl.probing.drift import SD_FLOOR, DriftMonitor, latent_drift
from vase_rl.rl.online import OnlineVASE
from vase_rl.rl.online_config import OnlineConfig


def test_drift_is_in_units_of_each_latents_spread_with_a_floor_for_constant_latents() -> None:
    before = np.stack([np.linspace(-1, 1, 101), np.zeros(101)], 1)  # latent 1 constant
    after = before + np.array([0.0, 0.01])
    d = latent_drift(before, after)
    assert d.per_latent[0] == 0.0 and d.per_latent[1] == pytest.approx(0.01 / SD_FLOOR)
    assert (d.worst, d.max) == (1, d.per_latent[1])


@pytest.mark.parametrize(
    ("before", "after", "message"),
    [
        (np.zeros((4, 2)), np.zeros((4, 3)), "one shape"),
        (np.zeros((1, 2)), np.zeros((1, 2)), "at least 2 frames"),
        (np.zeros(4), np.zeros(4), "one shape"),
        (np.zeros((4, 2)), np.full((4, 2), np.nan), "non-finite"),
    ],
)
def test_bad_latents_are_refused_with_the_reason(before: np.ndarray, after: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        latent_drift(before, after)


def test_monitor_measures_a_changed_encoder_and_forgets_a_revisited_environment() -> None:
    monitor = DriftMonitor(frames_per_env=8)
    scale = {"value": 1.0}

    def encode(x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3] * scale["value"]

    gen = torch.Generator().manual_seed(0)
    for env in (0, 0, 1):
        monitor.record(torch.rand(6, 1, 2, 2, generator=gen), env, encode)
    assert list(monitor.drift(encode)) == [0] and len(monitor.references[0][0]) == 8  # the last 8 frames
    scale["value"] = 2.0  # the encoder doubles every latent: each moves by its own value
    _, mu = monitor.references[0]
    expected = np.sqrt((mu**2).mean(0)) / mu.std(0)
    np.testing.assert_allclose(monitor.drift(encode)[0].per_latent, expected, rtol=1e-5)
    monitor.record(torch.rand(6, 1, 2, 2, generator=gen), 0, encode)  # back in 0: trained again
    assert list(monitor.drift(encode)) == [1]


def test_online_engine_reports_drift_of_the_environment_it_left() -> None:
    cfg = tiny_config(ablation={"mask": False})
    learner = ContinualLearner(dataclasses.replace(cfg, inference=InferenceConfig.paper()), device="cpu")
    space = spaces.Box(0, 255, (16, 16, 1), np.uint8)
    engine = OnlineVASE(learner, space, OnlineConfig(train_every=16, warmup=16, buffer_size=32))
    for batch in shapes_batches(70, 16, seed=1):  # ~60 train steps on moving shapes, as test_inference
        engine.process(batch)
    assert learner.memory.n_seen == 1 and not any(k.startswith("drift/") for k in engine.stats())
    white = np.full((16, 16, 16, 1), 255, np.uint8)
    for _ in range(4):  # the buffer fills with white frames: the paper's eq. 6 allocates environment 1
        engine.process(white)
    stats = engine.stats()
    assert learner.memory.n_seen == 2 and stats["env"] == 1
    assert 0.0 < stats["drift/env0"] < 100.0  # trained on white frames since: environment 0's latents moved
    assert stats["trained/env1"] >= 1 and stats["pending_steps"] == 0  # the paper's patience 1: none held
    assert stats["trained/env0"] + stats["trained/env1"] == stats["train_steps"] == learner.step


def test_trainer_reports_drift_of_every_finished_stage(tmp_path) -> None:
    from vase_rl.runs.run_format import RunSettings
    from vase_rl.runs.training import SequenceTrainer

    cfg = tiny_config(model={"image_size": 32})
    settings = RunSettings(
        sequence=("moving-shapes", "shapes"), steps_per_env=12, probe_eval_every=6, probe_eval_size=64
    )
    trainer = SequenceTrainer(cfg, settings, str(tmp_path / "run"), device="cpu")
    for _ in range(12):
        trainer.step()
    assert trainer.stage_drift() == {}  # stage 0 has not been saved yet
    trainer.save_stage()
    assert trainer.stage_drift() == {"drift/moving-shapes_stage0": 0.0}  # nothing trained since
    for _ in range(6):
        trainer.step()
    assert trainer.stage_drift()["drift/moving-shapes_stage0"] > 0.0
    trainer.save()
    resumed = SequenceTrainer(cfg, settings, str(tmp_path / "run"), device="cpu", resume=True)
    assert resumed.stage_drift() == trainer.stage_drift()  # the reference survives a resume
