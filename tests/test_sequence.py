"""VASE on short real-data sequences: environment allocation and revisits (eq. 6 / Algorithm 1),
dreaming against forgetting (eq. 7). Small seeded models; these are the slowest tests of the suite."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import needs_data

from vase_rl.core.config import Ablation, VASEConfig, get_preset
from vase_rl.core.learner import ContinualLearner

pytestmark = needs_data


def small_cpu_config(**overrides) -> VASEConfig:
    """The cpu preset (32x32) at half width with its step-dependent settings scaled to ~300 steps/dataset."""
    cfg = get_preset("cpu").with_overrides(
        model={"conv_channels": (16, 16, 32, 32), "hidden_dim": 128},
        loss={"delta_c": 1.0 / 400},
        inference={"grace_steps": 60, "patience": 5},
        mask={"used_every": 100},
        dream={"tau": 100},
    )
    return cfg.with_overrides(**overrides) if overrides else cfg


def run_sequence(
    learner: ContinualLearner, sequence: list[tuple[str, int]], seed: int = 0
) -> list[list[int]]:
    """Train on (dataset, steps) stages; return the inferred environment of every step, per stage."""
    from vase_rl.envs.sampler import SpriteSampler

    samplers = {
        name: SpriteSampler(name, canvas_size=32, seed=seed + i) for i, (name, _) in enumerate(sequence)
    }
    envs = []
    for name, steps in sequence:
        envs.append([learner.train_step(samplers[name].sample(64)[0]).env for _ in range(steps)])
    return envs


@pytest.fixture(scope="module")
def revisit_run() -> tuple[ContinualLearner, list[list[int]]]:
    torch.set_num_threads(1)
    learner = ContinualLearner(small_cpu_config(), device="cpu")
    envs = run_sequence(learner, [("mnist", 300), ("fashion", 300), ("mnist", 150)])
    return learner, envs


def _majority(stage: list[int], tail: int = 50) -> int:
    return int(np.bincount(stage[-tail:]).argmax())


def test_new_dataset_allocates_a_new_environment(revisit_run):
    learner, envs = revisit_run
    assert _majority(envs[0]) == 0
    assert _majority(envs[1]) == 1  # Fashion got an environment of its own
    assert learner.memory.n_seen == 2  # and nothing spurious was allocated


def test_returning_to_the_first_dataset_recovers_its_index(revisit_run):
    _, envs = revisit_run
    revisit = envs[2]
    assert _majority(revisit) == 0
    assert np.mean(np.array(revisit[20:]) == 0) > 0.9


def _recon_nll(learner: ContinualLearner, dataset: str, env: int) -> float:
    from vase_rl.envs.sampler import SpriteSampler

    x = learner.preprocess(SpriteSampler(dataset, canvas_size=32, split="test", seed=123).sample(256)[0])
    with torch.no_grad():
        mu, _ = learner.encode(x, return_logvar=True)
        return float(learner.reconstruction_nll(mu, env, x).mean())


def test_dreaming_reduces_forgetting_of_the_first_dataset():
    torch.set_num_threads(1)
    results = {}
    for dream in (True, False):
        cfg = small_cpu_config(ablation=Ablation(infer_env=True, dream=dream, mask=True))
        learner = ContinualLearner(cfg, device="cpu")
        run_sequence(learner, [("mnist", 250)], seed=5)
        before = _recon_nll(learner, "mnist", 0)
        run_sequence(learner, [("fashion", 250)], seed=7)
        results[dream] = _recon_nll(learner, "mnist", 0) - before
    # forgetting = increase of MNIST's reconstruction loss under its own environment after Fashion.
    # Measured with the current learner (He init, sharp initial posterior): 10.6 vs 15.4 nats (0.69x);
    # with the old init, whose latents carried little, the ratio was below 0.5 -- there was less to forget.
    assert results[True] < 0.8 * results[False], results
