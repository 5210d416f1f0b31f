"""The RL tasks: the identity task, the inverse-appearance shift, the pixel CNN, and the
benchmark helpers that turn runs into verdicts (envs/sprites.py, agents/sb3.py, benchmarks/rl_*.py)."""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import vase_rl.envs  # noqa: F401 (registers the envs)
from vase_rl.data.transforms import INVERT_CONTRAST
from vase_rl.envs.sprites import SpriteCanvas

IDENTITY_IDS = (
    "vase_rl/MovingMNISTIdentity-v0",
    "vase_rl/MovingFashionIdentity-v0",
    "vase_rl/MovingInverseFashionIdentity-v0",
)
LEFT, RIGHT = 3, 4  # discrete actions


def identity_env(**kw: object) -> SpriteCanvas:
    return SpriteCanvas(dataset="moving-mnist", task="identity", canvas_size=32, **kw)  # type: ignore[arg-type]


def first_index(env: SpriteCanvas, label: int) -> int:
    return int(np.nonzero(env.renderer.bank.labels == label)[0][0])


# ------------------------------------------------------------------------------------ identity task
@pytest.mark.parametrize("env_id", IDENTITY_IDS)
@pytest.mark.parametrize("action_type", ["discrete", "continuous"])
def test_identity_envs_pass_check_env(env_id: str, action_type: str, data_dir: str) -> None:
    env = gym.make(env_id, action_type=action_type, render_mode="rgb_array", canvas_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)


def test_identity_reward_depends_on_the_class_at_the_edge(data_dir: str) -> None:
    env = identity_env()
    # class 3 one step from the left edge: pushing left reaches its edge -> +bonus, terminated, success
    env.reset(seed=0, options={"index": first_index(env, 3), "position": (2, 5)})
    _, reward, terminated, truncated, info = env.step(LEFT)
    assert terminated and not truncated and info["is_success"] and info["label"] == 3
    assert reward == pytest.approx(2 / 18 - 0.01 + 1.0)  # shaping (x 2/18 -> 0) - penalty + bonus
    # class 7 at the same place: the left edge is the wrong one -> -bonus, terminated, no success
    env.reset(seed=0, options={"index": first_index(env, 7), "position": (2, 5)})
    _, reward, terminated, _, info = env.step(LEFT)
    assert terminated and not info["is_success"] and info["label"] == 7
    assert reward == pytest.approx(-2 / 18 - 0.01 - 1.0)
    # class 7 pushed right to the right edge is rewarded
    env.reset(seed=0, options={"index": first_index(env, 7), "position": (16, 5)})
    _, reward, terminated, _, info = env.step(RIGHT)
    assert terminated and info["is_success"] and reward == pytest.approx(2 / 18 - 0.01 + 1.0)


def test_identity_start_is_in_the_central_half_and_a_blind_policy_earns_no_bonus(data_dir: str) -> None:
    env = identity_env()
    xs, bonus = [], []
    for seed in range(60):
        _, info = env.reset(seed=seed)
        xs.append(info["x"])
        done, total = False, 0.0
        while not done:  # always push left: right for classes 0-4 only
            _, reward, terminated, truncated, info = env.step(LEFT)
            total, done = total + reward, terminated or truncated
        bonus.append(1.0 if info["is_success"] else -1.0)
        assert terminated and info["is_success"] == (info["label"] < 5)
    assert min(xs) >= 0.2 and max(xs) <= 0.8
    assert set(bonus) == {1.0, -1.0}
    # in expectation the blind policy's bonus is 2 P(label < 5) - 1, about 0 on MNIST
    assert abs(2 * np.mean(env.renderer.bank.labels < 5) - 1) < 0.05


def test_goal_task_is_unchanged_by_the_new_options(data_dir: str) -> None:
    """Default task is still the goal task; reset options do not change the seeded stream."""
    a, b = (SpriteCanvas(dataset="moving-mnist", canvas_size=32) for _ in range(2))
    obs_a, info_a = a.reset(seed=3)
    _, info_b = b.reset(seed=3, options={"index": info_a["index"]})
    assert a.task == "goal" and info_a == info_b
    obs_a2, *_ = a.step(0)
    assert np.array_equal(obs_a, obs_a2)  # noop


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "moving-mnist", "task": "reach"}, "task must be one of"),
        ({"dataset": "moving-shapes", "task": "identity"}, "needs class labels: source must be one of"),
        ({"dataset": "faces", "task": "identity"}, "needs class labels"),
        ({"dataset": "moving-mnist", "task": "identity", "split_label": 0}, "split_label must be in 1..9"),
        ({"dataset": "moving-mnist", "task": "identity", "split_label": 10}, "split_label must be in 1..9"),
        ({"dataset": "moving-mnist", "task": "identity", "goal_radius": 0.5}, "0 < goal_radius < 0.5"),
    ],
)
def test_bad_task_arguments_raise_errors_that_name_the_problem(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpriteCanvas(canvas_size=32, **kwargs)


def test_bad_reset_options_raise_errors_that_name_the_problem(data_dir: str) -> None:
    env = identity_env()
    for options, message in (
        ({"label": 3}, "unknown reset option"),
        ({"index": -1}, "index must be an int"),
        ({"index": 1.5}, "index must be an int"),
        ({"position": (0, 19)}, r"in \[0, 18\]"),
        ({"position": (0.5, 1)}, "position must be 2 ints"),
    ):
        with pytest.raises(ValueError, match=message):
            env.reset(seed=0, options=options)


# ------------------------------------------------------------------------------ appearance shift
def test_inverse_fashion_env_inverts_the_fashion_env_frame_by_frame(data_dir: str) -> None:
    """Same seed -> same sprite and positions; pixels are 255 - 0.8 x (A.5's reduced-contrast inversion),
    so the mean of the inverse frame is 1 - 0.8 x the mean of the normal one (in [0, 1] units)."""
    normal = gym.make("vase_rl/MovingFashion-v0", canvas_size=32)
    inverse = gym.make("vase_rl/MovingInverseFashion-v0", canvas_size=32)
    obs_n, info_n = normal.reset(seed=7)
    obs_i, info_i = inverse.reset(seed=7)
    for action in (1, 3, 4, 2):
        assert info_n == info_i
        expected = np.rint(255.0 - INVERT_CONTRAST * obs_n.astype(np.float64))
        assert np.abs(obs_i.astype(np.float64) - expected).max() <= 1.0  # resized before inverting
        mean_n, mean_i = obs_n.mean() / 255.0, obs_i.mean() / 255.0
        assert mean_i == pytest.approx(1.0 - INVERT_CONTRAST * mean_n, abs=2e-3)
        assert mean_i > 0.5 > mean_n  # black on white vs white on black
        obs_n, r_n, *_, info_n = normal.step(action)
        obs_i, r_i, *_, info_i = inverse.step(action)
        assert r_n == r_i  # the task does not change, only the look


# ------------------------------------------------------------------------------------ pixel CNN
def test_small_cnn_accepts_32x32_frames_and_rejects_tiny_ones() -> None:
    import torch

    from vase_rl.agents.sb3 import SmallCNN

    cnn = SmallCNN(gym.spaces.Box(0, 255, (1, 32, 32), np.uint8), features_dim=16)
    assert cnn(torch.zeros(3, 1, 32, 32)).shape == (3, 16)
    with pytest.raises(ValueError, match="at least 14x14, got shape"):
        SmallCNN(gym.spaces.Box(0, 255, (1, 8, 8), np.uint8))


# ------------------------------------------------------------------------------ benchmark helpers
@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import rl_identity
    import rl_transfer

    yield rl_transfer, rl_identity
    for name in ("rl_transfer", "rl_identity"):
        sys.modules.pop(name, None)


def test_verdict_marks_each_clause_of_the_agent_loop_targets(bench) -> None:
    rt, _ = bench
    drift = {"mean": 0.1}
    vase = [{"kept_b": 0.9, "retained_b": 0.97, "retained_b2": 0.94, "drift_a_b": drift, "drift_a_b2": drift}]
    runs = {"vase-pick": vase, "pixels": [{"kept_b": 0.3}], "entangled": [{"kept_b": 0.95}]}
    text = rt.verdict(runs)
    assert "`vase-pick`: A after adaptation >= 95 % of A on every shift: **not met** (94 %)" in text
    assert (
        "<= 0.2 sd: B **met** (0.10 sd), B2 **met** (0.10 sd)" in text
        and "update >= 80 % of A: **met** (90 %)" in text
    )
    assert "pixels keep (30 %) of A on B" in text and "entangled" not in text
    assert "drift <= 0.2 sd: not measured" in rt.verdict({"vase": [{"kept_b": 0.5}]})


def test_steps_to_reach_finds_the_first_crossing(bench) -> None:
    _, ri = bench
    curve = np.array([[512, 0.1], [1024, 0.8], [1536, 0.7], [2048, 1.2]])
    assert ri.steps_to_reach(curve, 0.75) == 1024 and ri.steps_to_reach(curve, 1.2) == 2048
    assert ri.steps_to_reach(curve, 2.0) is None and ri.steps_to_reach(None, 0.5) is None
    runs = [{"curve": [[1, 0.0], [2, 1.0], [3, 2.0]]}, {"curve": [[1, 1.0], [2, 2.0]]}]
    assert ri.mean_curve(runs).tolist() == [[1, 0.5], [2, 1.5]]


def test_a_results_folder_of_another_budget_is_refused(bench, tmp_path: Path) -> None:
    rt, _ = bench
    args = rt.Args(out_dir=str(tmp_path))
    rt.common.write_json(tmp_path / "vase_seed0.json", {"args": dataclasses.asdict(args)})
    rt.check_budget(dataclasses.replace(args, seeds=(7,), methods=("pixels",)), str(tmp_path))  # same budget
    with pytest.raises(SystemExit, match="other settings \\(steps_a\\)"):
        rt.check_budget(dataclasses.replace(args, steps_a=64), str(tmp_path))


def test_a_run_whose_method_config_changed_since_is_refused(bench, tmp_path: Path) -> None:
    """A finished run keeps its method's config; when the method's config changes (as ``AGENT_LOOP`` did
    when it took the steady anchor, the input view, then the settled anchor) the folder refuses new runs
    until the stale one is moved, and a field the old run lacks counts at its default."""
    rt, _ = bench
    rlm = rt.rlm
    args = rt.Args(out_dir=str(tmp_path))
    current = rlm.method_config("vase-agent-loop", 0).to_dict()
    assert current["dream"]["sync_min_visit"] == 250 and current["dream"]["sync_source"] == "settled"
    record = {
        "args": dataclasses.asdict(args),
        "method": "vase-agent-loop",
        "seed": 0,
        "vase_config": current,
    }
    rt.common.write_json(tmp_path / "vase-agent-loop_seed0.json", record)
    rt.check_budget(args, str(tmp_path))  # current: accepted
    old = {  # AGENT_LOOP before the steady anchor, the input view and the settled anchor
        **current,
        "dream": {
            **{k: v for k, v in current["dream"].items() if k != "sync_min_visit"},
            "sync_source": "current",
        },
        "model": {**current["model"], "env_input_view": "raw"},
    }
    assert rlm.stale_config({**record, "vase_config": old}) == [
        "dream.sync_min_visit",
        "dream.sync_source",
        "model.env_input_view",
    ]
    assert rlm.stale_config({**record, "vase_config": old, "method": "vase-brief-sync"}) == []
    rt.common.write_json(tmp_path / "vase-agent-loop_seed0.json", {**record, "vase_config": old})
    with pytest.raises(
        SystemExit,
        match=r"another config of 'vase-agent-loop' \(dream.sync_min_visit, dream.sync_source, model.env_input",
    ):
        rt.check_budget(args, str(tmp_path))
