"""MiniWorld levels (vase_rl.envs.world): gymnasium contract, seeding, shared geometry, task, GL setup."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from vase_rl.envs import world
from vase_rl.envs.world import WORLD_ENV_IDS, WorldConfig, WorldEnv, generate_layout, register_world_envs

LEVELS = tuple(WORLD_ENV_IDS)
SKY = np.array(world.OUTDOOR.sky_color) * 255


@pytest.fixture(scope="module")
def gl() -> str:
    """The OpenGL renderer; skips (with the reason and the packages to install) where GL cannot start."""
    try:
        return world.check_gl()
    except (ImportError, world.GLUnavailableError) as exc:
        pytest.skip(f"headless OpenGL unavailable: {exc}")


def rollout(env: WorldEnv, seed: int, actions: np.ndarray) -> tuple[list[np.ndarray], list[dict]]:
    obs, info = env.reset(seed=seed)
    frames, infos = [obs], [info]
    for action in actions:
        obs, _, terminated, truncated, info = env.step(int(action))
        frames.append(obs)
        infos.append(info)
        if terminated or truncated:
            break
    return frames, infos


def test_layout_is_seeded_and_keeps_clearances() -> None:
    config = WorldConfig()
    first = generate_layout(np.random.default_rng(5), config)
    again = generate_layout(np.random.default_rng(5), config)
    other = generate_layout(np.random.default_rng(6), config)
    np.testing.assert_array_equal(first.obstacle_pos, again.obstacle_pos)
    assert first.doors == again.doors and first.agent_dir == again.agent_dir
    assert not np.allclose(first.obstacle_pos, other.obstacle_pos)
    for seed in range(20):
        lay = generate_layout(np.random.default_rng(seed), config)
        assert len(lay.doors) == 3 and lay.obstacle_pos.shape == (config.num_obstacles, 2)
        obstacles = zip(lay.obstacle_pos, lay.obstacle_radius, strict=True)
        discs = [*obstacles, (lay.target_pos, lay.target_radius)]
        for i, (p, r) in enumerate(discs):
            assert r + config.clearance <= p.min() and p.max() <= config.arena_size - r - config.clearance
            assert np.abs(p - np.array(lay.split)).min() >= r + config.clearance
            for q, s in discs[i + 1 :]:
                assert np.hypot(*(p - q)) >= r + s + config.clearance - 1e-9
        assert np.hypot(*(lay.agent_pos - lay.target_pos)) >= config.min_target_distance - 1e-9


def test_a_config_whose_doorways_cannot_fit_is_refused_and_the_smallest_fitting_arena_generates() -> None:
    """Door width 1.8 + 2 x agent radius 0.4 = 2.6 m must fit the shortest wall segment, arena x 0.4."""
    with pytest.raises(ValueError, match=r"shortest wall segment .* = 2\.40 m.* = 2\.60 m"):
        WorldConfig(arena_size=6.0)
    with pytest.raises(ValueError, match="split_range"):
        WorldConfig(split_range=(0.6, 0.4))
    small = WorldConfig(arena_size=6.5, num_obstacles=2, min_target_distance=1.5)
    for seed in range(20):
        lay = generate_layout(np.random.default_rng(seed), small)
        assert all(0 < door <= small.arena_size for *_, door in lay.doors)
        assert np.hypot(*(lay.agent_pos - lay.target_pos)) >= 1.5 - 1e-9


def test_open_arena_has_one_room_and_keeps_the_partitioned_layouts_discs() -> None:
    """``open_arena``: no doors, one room over the whole arena, the obstacles, target and agent where the
    partitioned layout of the same seed has them whenever it drew them first time (same RNG draws)."""
    walls = WorldConfig()
    open_ = WorldConfig(open_arena=True, arena_size=5.0, num_obstacles=2, min_target_distance=1.5)
    assert WorldConfig(arena_size=5.0, open_arena=True).arena_size == 5.0  # no doorway to fit
    same = 0
    for seed in range(10):
        a = generate_layout(np.random.default_rng(seed), walls)
        b = generate_layout(np.random.default_rng(seed), WorldConfig(open_arena=True))
        assert b.doors == () and b.room_bounds() == [(0.0, 10.0, 0.0, 10.0)]
        same += int(np.allclose(a.obstacle_pos[0], b.obstacle_pos[0]))
        small = generate_layout(np.random.default_rng(seed), open_)
        assert small.target_pos.max() <= 5.0 - small.target_radius - open_.clearance + 1e-9
    assert same >= 5  # the first obstacle lands where it does with walls unless a partition rejected it


def test_registration_imports_no_opengl() -> None:
    code = (
        "import sys, gymnasium as gym; from vase_rl.envs.world import register_world_envs; "
        "register_world_envs(); register_world_envs(); "
        "assert 'vase_rl/WorldOutdoor-v0' in gym.registry and 'vase_rl/WorldIndoor-v0' in gym.registry; "
        "assert 'pyglet' not in sys.modules and 'miniworld' not in sys.modules, sorted(sys.modules); "
        "import os; assert 'PYGLET_HEADLESS' not in os.environ and 'LP_NUM_THREADS' not in os.environ"
    )
    env = {k: v for k, v in os.environ.items() if k not in world.HEADLESS_ENV}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=env)


@pytest.mark.parametrize("level", LEVELS)
def test_check_env_passes_without_warnings(gl: str, level: str) -> None:
    register_world_envs()
    env = gym.make(WORLD_ENV_IDS[level])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    env.close()


@pytest.mark.parametrize("level", LEVELS)
def test_same_seed_reproduces_frames_and_info(gl: str, level: str) -> None:
    actions = np.random.default_rng(0).integers(0, 4, size=30)
    first, second = WorldEnv(level), WorldEnv(level)
    frames_a, infos_a = rollout(first, 11, actions)
    frames_b, infos_b = rollout(second, 11, actions)
    for fa, fb, ia, ib in zip(frames_a, frames_b, infos_a, infos_b, strict=True):
        np.testing.assert_array_equal(fa, fb)
        np.testing.assert_array_equal(ia["agent_pos"], ib["agent_pos"])
        assert ia["agent_dir"] == ib["agent_dir"]
    other, _ = first.reset(seed=12)
    assert not np.array_equal(other, frames_a[0])
    first.close()
    second.close()


def test_levels_share_geometry_and_motion_but_not_pixels(gl: str) -> None:
    actions = np.random.default_rng(1).integers(0, 4, size=60)
    outdoor, indoor = WorldEnv("outdoor"), WorldEnv("indoor")
    frames_o, infos_o = rollout(outdoor, 3, actions)
    frames_i, infos_i = rollout(indoor, 3, actions)
    assert len(infos_o) == len(infos_i) > 1
    for io, ii in zip(infos_o, infos_i, strict=True):
        np.testing.assert_array_equal(io["agent_pos"], ii["agent_pos"])
        assert io["agent_dir"] == ii["agent_dir"]
        np.testing.assert_array_equal(io["object_pos"], ii["object_pos"])
        np.testing.assert_array_equal(io["target_pos"], ii["target_pos"])
    moved = np.hypot(*(infos_o[-1]["agent_pos"] - infos_o[0]["agent_pos"]))
    assert moved > 0.5, "the random walk should move the agent"
    gaps = [np.abs(fo.astype(int) - fi.astype(int)).mean() for fo, fi in zip(frames_o, frames_i, strict=True)]
    assert min(gaps) > 20.0, gaps
    outdoor.close()
    indoor.close()


def test_outdoor_shows_sky_indoor_shows_ceiling(gl: str) -> None:
    outdoor, indoor = WorldEnv("outdoor"), WorldEnv("indoor")
    sky_rows = []
    for seed in range(6):
        top_out = outdoor.reset(seed=seed)[0][0].astype(float)  # top pixel row, (W, 3)
        top_in = indoor.reset(seed=seed)[0][0].astype(float)
        sky_rows.append(np.abs(top_out - SKY).max(axis=1).mean() < 10)
        assert np.abs(top_in - SKY).max(axis=1).min() > 40  # no blue sky under the ceiling
    assert sum(sky_rows) >= 4, sky_rows  # trees may cover the sky in a few views
    outdoor.close()
    indoor.close()


def test_info_reports_motion_in_world_units(gl: str) -> None:
    env = WorldEnv("outdoor")
    _, info = env.reset(seed=0)
    assert set(info) == {"agent_pos", "agent_dir", "object_pos", "target_pos", "level"}
    assert info["object_pos"].shape == (6, 2) and info["target_pos"].shape == (2,)
    assert info["level"] == "outdoor"
    _, _, _, _, turned = env.step(0)  # turn left by turn_step_deg
    turn = math.remainder(turned["agent_dir"] - info["agent_dir"], 2 * math.pi)
    assert turn == pytest.approx(math.radians(15.0))
    heading = turned["agent_dir"]
    _, _, _, _, moved = env.step(2)  # forward by forward_step along (cos, -sin); seed 0 faces open ground
    step = moved["agent_pos"] - turned["agent_pos"]
    np.testing.assert_allclose(step, 0.25 * np.array([math.cos(heading), -math.sin(heading)]), atol=1e-9)
    _, _, _, _, back = env.step(3)
    np.testing.assert_allclose(back["agent_pos"], turned["agent_pos"], atol=1e-9)
    env.close()


def test_progress_reward_pays_per_metre_of_approach(gl: str) -> None:
    env = WorldEnv("outdoor")
    _, info = env.reset(seed=0)
    rewards = []
    for action in np.random.default_rng(3).integers(0, 4, size=40):
        _, reward, terminated, _, new = env.step(int(action))
        before, after = (np.hypot(*(i["agent_pos"] - i["target_pos"])) for i in (info, new))
        assert reward == pytest.approx(0.1 * (before - after)) and not terminated
        rewards.append(reward)
        info = new
    assert sum(r != 0 for r in rewards) >= 10  # moves are paid, turns are not
    env.close()


def test_reaching_target_terminates_with_time_discounted_reward(gl: str) -> None:
    env = WorldEnv("indoor", progress_reward=0.0)
    _, info = env.reset(seed=4)
    sim = env._sim
    sim.agent.pos = np.array([info["target_pos"][0] + 0.75, 0.0, info["target_pos"][1]])  # within reach
    _, reward, terminated, truncated, _ = env.step(1)  # turning does not move the agent
    assert terminated and not truncated
    assert reward == pytest.approx(1.0 - 0.2 * 1 / 400)
    env.close()


def test_truncates_after_max_episode_steps(gl: str) -> None:
    env = WorldEnv("outdoor", max_episode_steps=5)
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]
    env.close()


def test_envs_in_one_process_keep_their_own_scene(gl: str) -> None:
    alone = WorldEnv("outdoor")
    alone.reset(seed=1)
    expected = alone.step(0)[0]
    alone.close()
    first, second = WorldEnv("outdoor"), WorldEnv("indoor")
    first.reset(seed=1)
    second.reset(seed=2)  # compiles its scene after the first env's
    np.testing.assert_array_equal(first.step(0)[0], expected)
    first.close()
    second.close()


def _outdoor() -> gym.Env:
    return WorldEnv("outdoor")


def _indoor() -> gym.Env:
    return WorldEnv("indoor")


@pytest.mark.timeout(60)  # without LP_NUM_THREADS=0 the forked workers deadlock in Mesa
def test_fork_started_vector_env_matches_serial_envs(gl: str) -> None:
    actions = np.random.default_rng(2).integers(0, 4, size=(8, 2))
    serial = [_outdoor(), _indoor()]
    expected = np.stack([env.reset(seed=seed)[0] for env, seed in zip(serial, (5, 6), strict=True)])
    venv = gym.vector.AsyncVectorEnv([_outdoor, _indoor], context="fork")  # GL is already live here
    venv.reset_async(seed=[5, 6])
    np.testing.assert_array_equal(venv.reset_wait(timeout=30)[0], expected)
    for action in actions:
        expected = np.stack([env.step(int(a))[0] for env, a in zip(serial, action, strict=True)])
        venv.step_async(action)
        np.testing.assert_array_equal(venv.step_wait(timeout=30)[0], expected)
    venv.close()
    for env in serial:
        env.close()


def test_options_and_errors(gl: str) -> None:
    register_world_envs()
    env = gym.make(WORLD_ENV_IDS["indoor"], obs_size=32, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32, 32, 3) and env.observation_space.shape == (32, 32, 3)
    assert env.render().shape == (256, 256, 3)
    with pytest.raises(ValueError, match="action must be an int"):
        env.unwrapped.step(4)
    env.close()
    with pytest.raises(ValueError, match="unknown level 'desert'"):
        WorldEnv("desert")


def test_opengl_failure_names_the_packages_to_install() -> None:
    code = (
        "from vase_rl.envs import world\n"
        "try:\n    world.check_gl()\nexcept world.GLUnavailableError as exc:\n    print(exc)\n"
        "else:\n    raise SystemExit('expected GLUnavailableError')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYGLET_HEADLESS"] = "0"  # force pyglet onto X11, which has no display here
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "NoSuchDisplayException" in out.stdout and "scripts/install_gl.sh" in out.stdout
    assert world.GL_PACKAGES in out.stdout
