"""Retention in the agent's loop: a policy that reads environment A's latents keeps its return on A after
VASE learns reward-free from B (moving Fashion -> moving inverse Fashion, the cpu preset at 32x32).

The policy is a fixed linear readout of the sprite's position from the latents of A's frames (ridge, fit
once after stage A) acting greedily toward the goal (``vase_rl.probing.readout_policy``), so its return
depends on nothing but whether A's latents still mean what they meant. Stage A is trained once and
shared; stage B runs twice from the same state: with the library's agent-loop settings
(``DreamConfig.anchor="on-switch"`` and the sign pick) and with the paper's every-tau anchor. The same
protocol at more seeds: ``benchmarks/investigations/readout_retention.py``. A second look, moving MNIST,
is reconstructed *better* by A's environment than A itself: only the two-sided test of eq. 6
(``InferenceConfig.kappa_low``, in ``AGENT_LOOP``) gives it an environment of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from helpers import DATA_DIR, needs_data

from vase_rl.core.config import AGENT_LOOP, SIGN_PICK, VASEConfig, get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.envs.sampler import SpriteSampler
from vase_rl.probing.drift import latent_drift
from vase_rl.probing.readout_policy import fit_position_readout, readout_return

STEPS = 300
"""Training steps per stage. Not a multiple of tau (250): the paper's snapshot was last synced 50 steps
before A ends and syncs again 200 steps into B, as in an agent's loop."""


def _config(anchor: str, kappa_low: float = 0.0) -> VASEConfig:
    return get_preset("cpu").with_overrides(
        seed=0, dream={"anchor": anchor}, model=SIGN_PICK, inference={"kappa_low": kappa_low}
    )


def _train(learner: ContinualLearner, dataset: str, seed: int, steps: int = STEPS) -> None:
    sampler = SpriteSampler(dataset, canvas_size=32, seed=seed, data_dir=DATA_DIR)
    for _ in range(steps):
        learner.train_step(sampler.sample(learner.config.batch_size)[0])


def _return(learner: ContinualLearner, weights: np.ndarray) -> float:
    """The readout policy's mean return on 64 held-out episodes of moving Fashion (seeded)."""
    return readout_return(lambda f: learner.encode(f).numpy(), weights, "moving-fashion", data_dir=DATA_DIR)


@dataclass
class StageA:
    """The learner's state after stage A, the readout fit on it, its return and A's fixed frames' codes."""

    state: dict
    weights: np.ndarray
    before: float
    frames: np.ndarray
    mu_before: np.ndarray

    def branch(
        self, config: VASEConfig, dataset: str, steps: int = STEPS
    ) -> tuple[ContinualLearner, float, float]:
        """Stage B from A's state: the learner, the readout's return on A kept (fraction) and A's drift."""
        learner = ContinualLearner(config, device="cpu")
        learner.load_state_dict(self.state)
        _train(learner, dataset, seed=1, steps=steps)
        kept = _return(learner, self.weights) / self.before
        return learner, kept, latent_drift(self.mu_before, learner.encode(self.frames).numpy()).mean


@pytest.fixture(scope="module")
def stage_a() -> StageA:
    torch.set_num_threads(1)
    learner = ContinualLearner(_config("on-switch"), device="cpu")
    _train(learner, "moving-fashion", seed=0)
    frames, factors = SpriteSampler("moving-fashion", canvas_size=32, seed=999, data_dir=DATA_DIR).sample(
        1024
    )
    mu = learner.encode(frames).numpy()
    weights = fit_position_readout(mu, factors)
    return StageA(learner.state_dict(), weights, _return(learner, weights), frames, mu)


@needs_data
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_policy_on_old_latents_keeps_its_return_while_vase_learns_a_new_environment(
    stage_a: StageA,
) -> None:
    assert stage_a.before > 1.2  # the readout policy solves A (random: 0.14)
    kept, drift = {}, {}
    for anchor in ("on-switch", "every-tau"):
        branch, kept[anchor], drift[anchor] = stage_a.branch(_config(anchor), "moving-inverse-fashion")
        assert branch.memory.n_seen == 2  # the inverse look is inferred as a new environment
    # measured: on-switch keeps 103 % (drift 0.20 sd), every-tau 83 % (drift 0.42 sd)
    assert kept["on-switch"] >= 0.9 and drift["on-switch"] <= 0.25, (kept, drift)
    assert kept["every-tau"] < kept["on-switch"] - 0.1, (kept, drift)
    assert drift["every-tau"] >= 1.5 * drift["on-switch"], (kept, drift)  # the paper's anchor moves


@needs_data
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_look_reconstructed_better_gets_its_own_environment_with_the_two_sided_test(
    stage_a: StageA,
) -> None:
    assert AGENT_LOOP["inference"]["kappa_low"] > 0
    envs, drift = {}, {}
    for kappa_low in (0.0, AGENT_LOOP["inference"]["kappa_low"]):
        branch, _, drift[kappa_low] = stage_a.branch(_config("on-switch", kappa_low), "moving-mnist", 100)
        envs[kappa_low] = branch.memory.n_seen
    assert envs == {0.0: 1, 1.25: 2}, envs  # the paper's one-sided test files moving MNIST under A
    # measured after 100 steps: A's drift 0.23 sd one-sided (A's environment trains on MNIST), 0.07 two-sided
    assert drift[1.25] <= 0.5 * drift[0.0], drift
