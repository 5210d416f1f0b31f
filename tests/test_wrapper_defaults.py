"""The learner a VASE wrapper builds when none is given (vase_rl.rl.image_space.default_learner):
frames are resized to the preset's image size, the preset follows the device, the choice is logged."""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.vec_env import DummyVecEnv

from vase_rl.agents.sb3_vec import VASEVecEnv
from vase_rl.core.config import AGENT_LOOP, VASEConfig, get_preset
from vase_rl.rl.image_space import default_preset
from vase_rl.rl.vector_wrapper import VASEVectorObservation
from vase_rl.rl.wrapper import VASEObservation

ATARI = spaces.Box(0, 255, (210, 160, 3), np.uint8)
"""The frame space of ``gym.make("ALE/Pong-v5")``."""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


class FrameEnv(gym.Env[np.ndarray, int]):
    """Seeded random uint8 frames of ``space`` (an Atari-sized stand-in; no ALE needed)."""

    def __init__(self, space: spaces.Box = ATARI) -> None:
        self.observation_space, self.action_space = space, spaces.Discrete(6)
        self.t = 0

    def _frame(self) -> np.ndarray:
        return self.np_random.integers(0, 256, self.observation_space.shape, dtype=np.uint8)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._frame(), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        return self._frame(), 0.0, False, self.t >= 5, {}


def agent_loop_config(preset: str, channels: int) -> VASEConfig:
    """What a wrapper builds by default: ``preset`` with AGENT_LOOP on top and the frames' channels."""
    model = {**AGENT_LOOP["model"], "channels": channels}
    return get_preset(preset).with_overrides(**{**AGENT_LOOP, "model": model})


def model_layout(wrapper: Any) -> tuple[int, int]:
    mc = wrapper.learner.config.model
    return mc.image_size, mc.channels


def test_default_preset_is_paper_heuristics_with_cuda_and_cpu_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert (default_preset(), default_preset("auto"), default_preset("cuda")) == ("paper-heuristics",) * 3
    assert default_preset("cpu") == "cpu"  # an explicit CPU learner gets the CPU preset
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert (default_preset(), default_preset("cpu")) == ("cpu", "cpu")


def test_atari_frames_give_a_32x32_rgb_cpu_model_without_cuda(
    no_cuda: None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="vase_rl"):
        env = VASEObservation(FrameEnv(), learn=False)  # preset=None, device="auto"
    assert env.learner.device.type == "cpu"
    assert model_layout(env) == (32, 3)
    assert env.learner.config == agent_loop_config("cpu", 3)
    assert env.vase.to_input(np.zeros((2, *ATARI.shape), np.uint8)).shape == (2, 3, 32, 32)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (get_preset("cpu").model.latent_dim,) and env.observation_space.contains(obs)
    messages = [r.getMessage() for r in caplog.records if r.name == "vase_rl"]
    assert len(messages) == 1
    assert "preset 'cpu' (default for the device) with AGENT_LOOP on cpu" in messages[0]
    assert "210x160x3 frames are resized to 32x32x3" in messages[0]


def test_atari_frames_give_a_64x64_rgb_model_with_the_paper_preset(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="vase_rl"):
        env = VASEObservation(FrameEnv(), preset="paper", device="cpu", learn=False)
    assert model_layout(env) == (64, 3)  # not 208: the model is never grown to the frame
    assert env.vase.to_input(np.zeros((1, *ATARI.shape), np.uint8)).shape == (1, 3, 64, 64)
    assert env.reset(seed=0)[0].shape == (get_preset("paper").model.latent_dim,)
    assert "preset 'paper' with AGENT_LOOP on cpu; 210x160x3 frames are resized to 64x64x3" in caplog.text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_atari_frames_give_a_64x64_paper_model_on_cuda() -> None:
    env = VASEObservation(FrameEnv(), learn=False)
    assert env.learner.device.type == "cuda" and model_layout(env) == (64, 3)
    assert env.reset(seed=0)[0].shape == (get_preset("paper").model.latent_dim,)


def test_grayscale_and_channels_first_frames_keep_one_channel_and_the_preset_size(no_cuda: None) -> None:
    gray = VASEObservation(FrameEnv(spaces.Box(0, 255, (84, 84), np.uint8)), learn=False)
    assert model_layout(gray) == (32, 1)
    first = VASEObservation(FrameEnv(spaces.Box(0, 255, (1, 64, 64), np.uint8)), preset="paper", device="cpu")
    assert first.learner.config == agent_loop_config("paper", 1)  # already the preset's input
    assert first.reset(seed=0)[0].shape == (get_preset("paper").model.latent_dim,)


def test_the_default_learner_is_the_preset_with_the_agent_loop_unless_turned_off(no_cuda: None) -> None:
    loop = VASEObservation(FrameEnv(), learn=False).learner.config
    plain = VASEObservation(FrameEnv(), learn=False, agent_loop=False).learner.config
    assert plain == dataclasses.replace(
        get_preset("cpu"), model=dataclasses.replace(get_preset("cpu").model, channels=3)
    )
    assert loop == agent_loop_config("cpu", 3)
    assert (loop.dream.sync_min_visit, loop.model.new_env_sign, loop.inference.kappa_low) == (
        250,
        "pick",
        1.25,
    )
    assert (plain.dream.sync_min_visit, plain.model.new_env_sign, plain.inference.kappa_low) == (
        0,
        "keep",
        0.0,
    )


def test_vector_wrappers_build_the_same_default_learner(no_cuda: None) -> None:
    gym_vec = VASEVectorObservation(gym.vector.SyncVectorEnv([FrameEnv] * 2), learn=False)
    sb3_vec = VASEVecEnv(DummyVecEnv([FrameEnv] * 2), learn=False)
    assert model_layout(gym_vec) == model_layout(sb3_vec) == (32, 3)
    assert gym_vec.learner.config == sb3_vec.learner.config == agent_loop_config("cpu", 3)
    assert gym_vec.reset(seed=0)[0].shape == sb3_vec.reset().shape == (2, get_preset("cpu").model.latent_dim)


def test_check_env_passes_on_a_resized_atari_frame_wrapper(no_cuda: None) -> None:
    env = VASEObservation(FrameEnv(), learn=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    unexpected = [str(w.message) for w in caught if "different from the unwrapped" not in str(w.message)]
    assert unexpected == []
