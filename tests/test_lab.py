"""DeepMind Lab adapter (vase_rl.envs.lab) against a fake ``deepmind_lab`` that honours the real API,
plus one test on the real engine that runs wherever ``import deepmind_lab`` works."""

from __future__ import annotations

import subprocess
import sys
import warnings
from types import ModuleType

import fake_deepmind_lab
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from vase_rl.envs.lab import (
    DEFAULT_ACTION_SET,
    EDE_LEVEL,
    NATLAB_LEVEL,
    LabEnv,
    area_weights,
    preprocess_frame,
    register_lab_envs,
)

HUD = np.array(fake_deepmind_lab.HUD_COLOUR)


@pytest.fixture
def fake_lab(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``deepmind_lab`` replaced by the fake for one test."""
    monkeypatch.setitem(sys.modules, "deepmind_lab", fake_deepmind_lab)
    fake_deepmind_lab.INSTANCES.clear()
    register_lab_envs()
    return fake_deepmind_lab


def reference_area_resize(frame: np.ndarray, crop_right: int = 27, size: int = 64) -> np.ndarray:
    """A.5 by brute force: 84 x 84 upsampled 16x to 1344 = 64 * 21, then 21 x 21 block means."""
    cropped = frame[:, : frame.shape[1] - crop_right].astype(np.float64)
    assert cropped.shape[:2] == (84, 84)
    fine = cropped.repeat(16, axis=0).repeat(16, axis=1)
    blocks = fine.reshape(size, 21, size, 21, 3).mean(axis=(1, 3))
    return np.clip(np.rint(blocks), 0, 255).astype(np.uint8)


def test_fake_raises_like_the_real_module(fake_lab: ModuleType) -> None:
    with pytest.raises(TypeError, match="must be list, not tuple"):
        fake_lab.Lab(NATLAB_LEVEL, ("RGB_INTERLEAVED",))
    with pytest.raises(TypeError, match="must be dict, not list"):
        fake_lab.Lab(NATLAB_LEVEL, [], ["wrongconfig"])
    with pytest.raises(TypeError, match="bad argument type"):
        fake_lab.Lab(NATLAB_LEVEL, [], {"width": 111})
    with pytest.raises(ValueError, match="Unknown observation 'nonexisting_obs'"):
        fake_lab.Lab(NATLAB_LEVEL, ["nonexisting_obs"], {})
    lab = fake_lab.Lab(NATLAB_LEVEL, ["RGB_INTERLEAVED"], {"width": "111", "height": "84"})
    noop = np.zeros(7, dtype=np.intc)
    with pytest.raises(RuntimeError, match="wrong status to advance"):
        lab.step(noop)
    with pytest.raises(RuntimeError, match="wrong status"):
        lab.observations()
    with pytest.raises(ValueError, match="'seed' must be int or None"):
        lab.reset(seed="invalid")
    lab.reset(seed=1)
    with pytest.raises(ValueError, match=r"dtype np\.intc"):
        lab.step(np.zeros(7, dtype=np.int64))
    with pytest.raises(ValueError, match=r"shape \(7\)"):
        lab.step(np.zeros(6, dtype=np.intc))
    assert lab.step(noop, num_steps=4) == 0.0 and lab.num_steps() == 4
    assert lab.observations()["RGB_INTERLEAVED"].shape == (84, 111, 3)
    assert lab.close() is True and lab.close() is False
    with pytest.raises(RuntimeError, match="wrong status to advance"):
        lab.step(noop)


@pytest.mark.parametrize("env_id", ["vase_rl/DMLab-NatLab-v0", "vase_rl/DMLab-EDE-v0"])
def test_check_env_passes_on_fake(fake_lab: ModuleType, env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    lab = fake_lab.INSTANCES[0]
    assert lab.level == (NATLAB_LEVEL if "NatLab" in env_id else EDE_LEVEL)
    assert lab.config["width"] == "111" and lab.config["height"] == "84" and lab.config["fps"] == "60"
    env.close()


def test_area_weights_are_exact_coverage() -> None:
    weights = area_weights(84, 64)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights.sum(axis=0), 64 / 84)  # every input pixel counted once in total
    np.testing.assert_allclose(weights[0, :2], [1 / 1.3125, 0.3125 / 1.3125])  # [0, 1.3125) covers 1 + 0.3125
    np.testing.assert_allclose(area_weights(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])


def test_preprocess_drops_right_columns_and_averages_area() -> None:
    frame = np.zeros((84, 111, 3), dtype=np.uint8)
    frame[:, :84] = (10, 200, 30)
    frame[:, 84:] = HUD  # the 27 right-most columns
    out = preprocess_frame(frame)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert np.all(out == (10, 200, 30)), "the cropped strip leaked into the observation"
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(84, 111, 3), dtype=np.uint8)
    np.testing.assert_array_equal(preprocess_frame(noise), reference_area_resize(noise))
    assert abs(preprocess_frame(noise).mean() - noise[:, :84].mean()) < 0.5  # area averaging keeps the mean
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) uint8 frame, got shape \(84, 111\)"):
        preprocess_frame(noise[..., 0])


def test_observations_are_a5_preprocessed_frames(fake_lab: ModuleType) -> None:
    env = LabEnv(NATLAB_LEVEL, render_mode="rgb_array")
    obs, info = env.reset(seed=3)
    raw = env.render()
    assert raw.shape == (84, 111, 3) and np.all(raw[:, -27:] == HUD)
    assert env.observation_space.contains(obs)
    np.testing.assert_array_equal(obs, reference_area_resize(raw))
    assert not np.any(np.all(obs == HUD, axis=-1))
    assert info == {"level": NATLAB_LEVEL, "episode": 0, "lab_seed": info["lab_seed"], "frames": 0}
    assert env.reset()[1]["episode"] == 1 and env.reset(seed=3)[1] == info
    env.close()


def test_actions_map_to_impala_set_with_repeat(fake_lab: ModuleType) -> None:
    env = LabEnv(EDE_LEVEL, action_repeat=4, config={"episodeLengthSeconds": 60})
    env.reset(seed=0)
    lab = fake_lab.INSTANCES[-1]
    assert lab.config["episodeLengthSeconds"] == "60"  # config values reach DM Lab as str
    assert env.action_space.n == 9 and env.action_names[4] == "look_left"
    for index, expected in enumerate(DEFAULT_ACTION_SET):
        _, reward, terminated, truncated, info = env.step(index)
        sent = lab.actions[-1]
        assert sent.dtype == np.intc and tuple(sent) == expected
        assert info["frames"] == 4 * (index + 1)
        # the fake scores 1 per FIRE frame
        assert reward == (4.0 if env.action_names[index] == "fire" else 0.0)
        assert not terminated and not truncated
    with pytest.raises(ValueError, match=r"action must be an int in \[0, 9\)"):
        env.step(9)
    env.close()


def test_same_seed_same_episode(fake_lab: ModuleType) -> None:
    actions = [0, 4, 6, 2, 7, 1]
    runs = []
    for _ in range(2):
        env = LabEnv(NATLAB_LEVEL)
        obs, info = env.reset(seed=42)
        runs.append([obs, info["lab_seed"]] + [env.step(a)[0] for a in actions])
        env.close()
    assert runs[0][1] == runs[1][1]
    for a, b in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(a, b)
    env = LabEnv(NATLAB_LEVEL)
    assert not np.array_equal(env.reset(seed=43)[0], runs[0][0])
    env.close()


def test_episode_terminates_when_level_stops_running(fake_lab: ModuleType) -> None:
    env = LabEnv(NATLAB_LEVEL, config={"episodeLengthSeconds": "1"})  # 60 frames = 15 steps of 4
    obs, _ = env.reset(seed=0)
    for _ in range(14):
        obs, _, terminated, truncated, _ = env.step(0)
        assert not terminated and not truncated
    last, _, terminated, truncated, info = env.step(0)
    assert terminated and not truncated and info["frames"] == 60
    np.testing.assert_array_equal(last, obs)  # DM Lab serves no observation once it stopped
    assert last is not obs
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)
    env.reset()
    assert not env.step(0)[2]
    env.close()


def test_max_episode_steps_truncates(fake_lab: ModuleType) -> None:
    env = LabEnv(NATLAB_LEVEL, max_episode_steps=3)
    env.reset(seed=0)
    assert [env.step(2)[2:4] for _ in range(3)] == [(False, False), (False, False), (False, True)]
    env.close()


def test_generic_id_needs_a_level_and_forwards_options(fake_lab: ModuleType) -> None:
    with pytest.raises(ValueError, match="level must be a DM Lab level name"):
        gym.make("vase_rl/DMLab-v0")
    env = gym.make(
        "vase_rl/DMLab-v0",
        level="seekavoid_arena_01",
        obs_size=32,
        renderer="hardware",
        info_observations=("DEBUG.POS.TRANS",),
    )
    obs, info = env.reset(seed=0)
    lab = fake_lab.INSTANCES[-1]
    assert lab.level == "seekavoid_arena_01" and lab.renderer == "hardware" and obs.shape == (32, 32, 3)
    _, _, _, _, moved = env.step(0)  # forward 4 frames, 1 unit per frame in the fake
    assert np.linalg.norm(moved["DEBUG.POS.TRANS"] - info["DEBUG.POS.TRANS"]) == pytest.approx(4.0)
    env.close()
    with pytest.raises(RuntimeError, match="Could not find level"):
        LabEnv("no/such_level")


def test_bad_options_are_rejected(fake_lab: ModuleType) -> None:
    with pytest.raises(ValueError, match=r"MOVE_BACK_FORWARD=2 is outside \[-1, 1\]"):
        LabEnv(NATLAB_LEVEL, action_set=[(0, 0, 0, 2, 0, 0, 0)])
    with pytest.raises(ValueError, match="must have 7 entries"):
        LabEnv(NATLAB_LEVEL, action_set=[(0, 0, 1)])
    assert len(fake_lab.INSTANCES) == 2
    assert all(lab.close() is False for lab in fake_lab.INSTANCES)  # the rejecting envs closed them
    with pytest.raises(ValueError, match=r"set \['width'\] with the keyword arguments"):
        LabEnv(NATLAB_LEVEL, config={"width": "320"})
    with pytest.raises(ValueError, match="crop_right"):
        LabEnv(NATLAB_LEVEL, crop_right=111)


def test_missing_deepmind_lab_explains_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "deepmind_lab", None)  # makes `import deepmind_lab` fail
    register_lab_envs()
    with pytest.raises(ImportError) as info:
        gym.make("vase_rl/DMLab-EDE-v0")
    message = str(info.value)
    for needle in (
        "not on PyPI",
        "bazel build",
        "docs/users/build.md",
        "pip install /tmp/dmlab_pkg",
        "vase-rl[lab]",
    ):
        assert needle in message, needle


def test_registration_does_not_import_deepmind_lab() -> None:
    code = (
        "import sys, gymnasium as gym; from vase_rl.envs.lab import register_lab_envs; register_lab_envs(); "
        "register_lab_envs(); assert {'vase_rl/DMLab-NatLab-v0', 'vase_rl/DMLab-EDE-v0', "
        "'vase_rl/DMLab-v0'} <= set(gym.registry); assert 'deepmind_lab' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_real_deepmind_lab_engine() -> None:
    """Runs on the real engine; skipped only where ``import deepmind_lab`` fails."""
    pytest.importorskip("deepmind_lab", reason="DeepMind Lab is not installed (build it from source)")
    env = LabEnv("seekavoid_arena_01", render_mode="rgb_array")
    obs, _ = env.reset(seed=1)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    for action in range(env.action_space.n):
        obs, reward, terminated, truncated, info = env.step(action)
        assert isinstance(reward, float) and not terminated and not truncated
        np.testing.assert_array_equal(obs, preprocess_frame(env.render()))
    assert info["frames"] == 4 * env.action_space.n
    env.close()
