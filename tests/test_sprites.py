"""SpriteCanvas envs, the shared renderer and the batch sampler (vase_rl.envs)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import vase_rl.envs
from vase_rl.data import datasets as data
from vase_rl.envs import sampler as sampler_mod
from vase_rl.envs.sampler import DATASETS, SpriteRenderer, SpriteSampler, parse_dataset
from vase_rl.envs.shapes import render_shape
from vase_rl.envs.sprites import SpriteCanvas

HAVE_DATA = (data.get_data_dir() / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()
needs_data = pytest.mark.skipif(
    not HAVE_DATA, reason=f"real data not found in {data.get_data_dir()}: set VASE_DATA_DIR"
)


def _data_param(value: str) -> object:
    """Parametrise ``value``, skipping it when it needs real data that is absent."""
    return value if "shapes" in value else pytest.param(value, marks=needs_data)


# ----------------------------------------------------------------------------------- names


def test_parse_dataset_maps_every_name_and_rejects_unknown_ones() -> None:
    assert parse_dataset("moving-inverse-fashion") == ("inverse-fashion", True)
    assert parse_dataset("faces") == ("faces", False)
    for name in (
        "mnist",
        "moving-mnist",
        "fashion",
        "moving-fashion",
        "inverse-fashion",
        "moving-inverse-fashion",
        "faces",
        "shapes",
        "moving-shapes",
    ):
        assert name in DATASETS
    with pytest.raises(ValueError, match="valid names: mnist, moving-mnist"):
        parse_dataset("moving-cifar")


def test_registration_imports_neither_env_code_nor_torch() -> None:
    code = (
        "import sys, gymnasium as gym, vase_rl.envs; assert 'vase_rl/Faces-v0' in gym.registry; "
        "print(sorted(m for m in sys.modules if m in ('torch', 'vase_rl.envs.sprites', 'vase_rl.data.datasets')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------- envs


@pytest.mark.parametrize(
    "env_id", [_data_param(i) if "Shapes" not in i else i for i in vase_rl.envs.SPRITE_ENV_IDS]
)
@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_registered_env_passes_check_env_without_warnings(env_id: str, action_type: str) -> None:
    env = gym.make(env_id, action_type=action_type, render_mode="rgb_array", canvas_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)
    obs, info = env.reset(seed=0)
    frame = env.render()
    assert obs.shape == (32, 32, 1) and isinstance(frame, np.ndarray) and frame.shape == (32, 32, 3)
    assert {"label", "index", "x", "y"} <= set(info)


@pytest.mark.parametrize("dataset", ["moving-shapes", _data_param("moving-fashion")])
def test_same_seed_gives_same_episode_and_another_seed_differs(dataset: str) -> None:
    def rollout(seed: int) -> list[np.ndarray]:
        env = SpriteCanvas(dataset=dataset, canvas_size=32)
        frames = [env.reset(seed=seed)[0]]
        frames += [env.step(a)[0] for a in (1, 4, 4, 2, 3, 0)]
        return frames

    first, again, other = rollout(7), rollout(7), rollout(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_discrete_actions_move_by_step_px_and_clip_at_the_edges() -> None:
    env = SpriteCanvas(source="shapes", canvas_size=64)  # sprite 28, free 36, centre 18, step 4
    _, info = env.reset(seed=0)
    assert (info["x"], info["y"]) == (0.5, 0.5)
    _, _, _, _, info = env.step(1)  # up
    assert info["y"] == pytest.approx(14 / 36) and info["x"] == 0.5
    for _ in range(10):
        _, _, _, _, info = env.step(3)  # left, into the wall
    assert info["x"] == 0.0


def test_continuous_action_translates_by_a_fraction_of_half_the_free_range() -> None:
    env = SpriteCanvas(source="shapes", canvas_size=64, action_type="continuous", goal=(0.0, 0.0))
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1.0, 1.0], dtype=np.float32))  # centre -> bottom-right
    assert (info["x"], info["y"]) == (1.0, 1.0)
    _, _, _, _, info = env.step(np.array([-0.5, -2.0], dtype=np.float32))  # 9 px left, clipped -1
    assert info["x"] == pytest.approx(27 / 36) and info["y"] == pytest.approx(18 / 36)


def test_reaching_the_goal_terminates_with_the_bonus_and_idling_truncates() -> None:
    env = SpriteCanvas(source="shapes", canvas_size=64, goal=(0.75, 0.25), max_episode_steps=5)
    env.reset(seed=0)
    total, terminated, steps = 0.0, False, 0
    while not terminated:  # right x2, up x2: (0.5, 0.5) -> (26/36, 10/36), within 0.1 of the goal
        _, reward, terminated, truncated, info = env.step([4, 4, 1, 1][steps])
        total, steps = total + reward, steps + 1
        assert not truncated
    assert steps == 4 and info["is_success"]
    start_d, end_d = np.hypot(0.25, 0.25), np.hypot(26 / 36 - 0.75, 10 / 36 - 0.25)
    assert total == pytest.approx(start_d - end_d - 4 * env.time_penalty + env.success_bonus)
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]


def test_bad_env_arguments_raise_clear_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown source 'cifar'"):
        SpriteCanvas(source="cifar")
    with pytest.raises(ValueError, match="sprite fits the canvas"):
        SpriteCanvas(source="shapes", canvas_size=16, sprite_size=28)
    with pytest.raises(ValueError, match="action_type"):
        SpriteCanvas(source="shapes", action_type="joystick")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="goal"):
        SpriteCanvas(source="shapes", goal=(1.5, 0.0))
    with pytest.raises(ValueError, match="not both"):
        SpriteCanvas(source="mnist", dataset="moving-mnist")
    with pytest.raises(ValueError, match="split"):
        SpriteSampler("shapes", split="val")


def test_default_sprite_sizes_scale_with_the_canvas() -> None:
    assert sampler_mod.default_sprite_size("mnist", 64) == 28
    assert sampler_mod.default_sprite_size("fashion", 32) == 14
    assert sampler_mod.default_sprite_size("faces", 64) == 32
    assert sampler_mod.default_sprite_size("faces", 16) == 16


# ---------------------------------------------------------------------------------- sampler


@pytest.mark.parametrize("dataset", [_data_param(d) for d in DATASETS])
def test_sampler_batches_have_documented_shapes_and_dtypes(dataset: str) -> None:
    images, factors = SpriteSampler(dataset, canvas_size=32, seed=1).sample(64)
    assert images.shape == (64, 32, 32, 1) and images.dtype == np.uint8
    assert factors["label"].dtype == np.int64 and factors["x"].dtype == np.float32
    assert np.all((factors["x"] >= 0) & (factors["x"] <= 1) & (factors["y"] >= 0) & (factors["y"] <= 1))
    assert (factors["label"] == -1).all() == dataset.endswith("faces")
    assert images.std() > 10  # not blank


@pytest.mark.parametrize("dataset", ["moving-shapes", _data_param("moving-mnist")])
def test_moving_positions_cover_the_whole_canvas(dataset: str) -> None:
    images, f = SpriteSampler(dataset, canvas_size=64, seed=2).sample(4000)
    quadrants = np.bincount((f["x"] >= 0.5).astype(int) * 2 + (f["y"] >= 0.5), minlength=4) / 4000
    assert np.all(quadrants > 0.2)
    assert f["x"].min() == 0 and f["x"].max() == 1 and f["y"].min() == 0 and f["y"].max() == 1
    # the pixels follow the factors: ink centre of mass moves with x (columns) and y (rows)
    ink = images[..., 0].astype(np.float64)
    cols = (ink.sum(axis=1) * np.arange(64)).sum(axis=1) / ink.sum(axis=(1, 2))
    rows = (ink.sum(axis=2) * np.arange(64)).sum(axis=1) / ink.sum(axis=(1, 2))
    assert np.corrcoef(cols, f["x"])[0, 1] > 0.95 and np.corrcoef(rows, f["y"])[0, 1] > 0.95


@pytest.mark.parametrize("dataset", ["shapes", _data_param("mnist")])
def test_static_sprites_are_centred(dataset: str) -> None:
    images, f = SpriteSampler(dataset, canvas_size=64, seed=3).sample(500)
    assert np.all(f["x"] == 0.5) and np.all(f["y"] == 0.5)
    ink = images[..., 0].astype(np.float64).sum(axis=0)
    cy = (ink.sum(axis=1) * np.arange(64)).sum() / ink.sum()
    cx = (ink.sum(axis=0) * np.arange(64)).sum() / ink.sum()
    assert abs(cx - 31.5) < 1.5 and abs(cy - 31.5) < 1.5
    env_info = SpriteCanvas(dataset=dataset).reset(seed=0)[1]
    assert (env_info["x"], env_info["y"]) == (0.5, 0.5)


@needs_data
def test_inverse_fashion_is_black_on_white_and_the_exact_inverse_of_fashion() -> None:
    images, f = SpriteSampler("moving-inverse-fashion", canvas_size=64, seed=4).sample(200)
    assert images.mean() > 200 and np.median(images) == 255
    assert np.all(images.reshape(200, -1).min(axis=1) < 150)  # every sprite has dark ink
    plain = SpriteRenderer("fashion", canvas_size=64)
    free = plain.free
    px, py = np.rint(f["x"] * free).astype(int), np.rint(f["y"] * free).astype(int)
    assert np.array_equal(images, data.invert(plain.render(f["index"], px, py)))


@pytest.mark.parametrize("dataset", ["moving-shapes", *map(_data_param, ("moving-faces", "moving-mnist"))])
def test_env_observation_equals_the_renderer_at_the_env_factors(dataset: str) -> None:
    env = SpriteCanvas(dataset=dataset, canvas_size=64)
    sampler = SpriteSampler(dataset, canvas_size=64)
    free = sampler.renderer.free
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        for action in (0, 2, 4):
            px, py = round(info["x"] * free), round(info["y"] * free)
            rendered = sampler.renderer.render(np.array([info["index"]]), np.array([px]), np.array([py]))
            assert np.array_equal(obs, rendered[0])
            obs, _, _, _, info = env.step(action)


def test_shape_factors_reproduce_the_image_exactly() -> None:
    sampler = SpriteSampler("moving-shapes", canvas_size=32, seed=5)
    images, f = sampler.sample(50)
    size, free = sampler.renderer.sprite_size, sampler.renderer.free
    for i in range(50):
        sprite = render_shape(int(f["shape"][i]), float(f["scale"][i]), size)
        px, py = round(float(f["x"][i]) * free), round(float(f["y"][i]) * free)
        expected = data.place_on_canvas(sprite[None], np.array([px]), np.array([py]), 32)[0]
        assert np.array_equal(images[i, ..., 0], expected)
    assert set(np.unique(f["label"])) <= {0, 1, 2} and np.array_equal(f["label"], f["shape"])


def test_sampler_state_dict_resumes_bit_for_bit() -> None:
    a = SpriteSampler("moving-shapes", canvas_size=32, seed=11)
    a.sample(10)
    state = a.state_dict()
    expected, _ = a.sample(20)
    b = SpriteSampler("moving-shapes", canvas_size=32, seed=999)
    b.load_state_dict(state)
    assert np.array_equal(b.sample(20)[0], expected)
    with pytest.raises(ValueError, match="moving-shapes"):
        SpriteSampler("shapes").load_state_dict(state)
    assert a.observation_shape == (32, 32, 1)


@needs_data
def test_test_split_serves_held_out_images() -> None:
    train = SpriteRenderer("mnist", canvas_size=32, split="train")
    test = SpriteRenderer("mnist", canvas_size=32, split="test")
    assert (train.num_sprites, test.num_sprites) == (60000, 10000)
    assert not np.array_equal(train.bank.sprites[:100], test.bank.sprites[:100])
    assert SpriteRenderer("faces", canvas_size=32, split="test").num_sprites == 1000
