"""AtariARI state labels (vase_rl.envs.atari) and the probing protocol (vase_rl.probing.atari_probe)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from vase_rl.envs.atari import RAM_ANNOTATIONS, categories, make_atari_env, ram_labels
from vase_rl.probing.atari_probe import (
    AtariProbeConfig,
    Splits,
    category_scores,
    collect_labelled_frames,
    fit_linear_probes,
    informative_labels,
    label_entropy,
    remove_duplicates,
    split_by_episode,
    weighted_f1,
)

HAVE_ALE = importlib.util.find_spec("ale_py") is not None
needs_ale = pytest.mark.skipif(not HAVE_ALE, reason="ale-py is not installed (pip install -e '.[atari]')")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The probed list, checked against AtariARI's ram_annotations.py.
ISSUE_INDICES = {
    "pong": {
        "player_y": 51,
        "player_x": 46,
        "enemy_y": 50,
        "enemy_x": 45,
        "ball_x": 49,
        "ball_y": 54,
        "enemy_score": 13,
        "player_score": 14,
    },
    "breakout": {"ball_x": 99, "ball_y": 101, "player_x": 72, "blocks_hit_count": 77, "score": 84},
    "boxing": {
        "player_x": 32,
        "player_y": 34,
        "enemy_x": 33,
        "enemy_y": 35,
        "enemy_score": 19,
        "clock": 17,
        "player_score": 18,
    },
    "freeway": {"player_y": 14, "score": 103, **{f"enemy_car_x_{i}": 108 + i for i in range(10)}},
}


# ------------------------------------------------------------------------------------ labels
@pytest.mark.parametrize("game", sorted(ISSUE_INDICES))
def test_ram_labels_read_the_annotated_bytes(game: str) -> None:
    ram = np.arange(128, dtype=np.uint8)  # byte i holds i: a label equals its RAM index
    labels = ram_labels(game, ram)
    assert {k: labels[k] for k in ISSUE_INDICES[game]} == ISSUE_INDICES[game]


def test_ram_labels_of_a_known_pong_state_and_expanded_lists() -> None:
    ram = np.zeros(128, np.uint8)
    ram[[51, 46, 50, 45, 49, 54, 13, 14]] = [130, 140, 60, 16, 99, 170, 5, 20]
    expected = {
        "player_y": 130,
        "player_x": 140,
        "enemy_y": 60,
        "enemy_x": 16,
        "ball_x": 99,
        "ball_y": 170,
        "enemy_score": 5,
        "player_score": 20,
    }
    assert ram_labels("ALE/Pong-v5", ram) == expected
    breakout = ram_labels("Breakout", np.arange(128, dtype=np.uint8))
    assert [breakout[f"block_bit_map_{i}"] for i in range(30)] == list(range(30)) and len(breakout) == 35
    assert len(RAM_ANNOTATIONS["freeway"]) == 12 and "enemy_car_x" not in RAM_ANNOTATIONS["freeway"]
    assert all(0 <= i < 128 for game in RAM_ANNOTATIONS.values() for i in game.values())


def test_ram_labels_reject_an_unknown_game_and_a_wrong_ram() -> None:
    with pytest.raises(ValueError, match="no AtariARI RAM annotations for 'Zork'"):
        ram_labels("Zork", np.zeros(128, np.uint8))
    with pytest.raises(ValueError, match=r"shape \(128,\); got shape \(64,\)"):
        ram_labels("pong", np.zeros(64, np.uint8))


def test_categories_follow_atariari_name_rules() -> None:
    assert categories("player_x") == ("agent_localization",)
    assert categories("player_missile_x1") == ("small_object_localization",)  # missile beats player
    assert categories("enemy_y") == categories("enemy_car_x_0") == ("other_localization",)
    assert categories("enemy_score") == categories("clock") == ("score_clock_lives_display",)
    assert categories("block_bit_map_3") == categories("blocks_hit_count") == ("misc",)
    assert categories("num_lives_direction") == ("score_clock_lives_display", "misc")


def test_category_scores_average_each_category_then_the_categories() -> None:
    names = ["player_x", "player_y", "ball_x", "score"]
    scores = category_scores(names, [1.0, 0.5, 0.25, 0.0])
    assert scores["agent_localization"] == 0.75 and scores["small_object_localization"] == 0.25
    assert scores["mean_over_categories"] == pytest.approx((0.75 + 0.25 + 0.0) / 3)
    assert scores["mean"] == pytest.approx(1.75 / 4) and "misc" not in scores


# ------------------------------------------------------------------------------------ protocol
def test_entropy_filter_drops_labels_below_0_6_nats_on_train() -> None:
    n = 1000
    constant = np.zeros(n, int)
    skewed = (np.arange(n) < 50).astype(int)  # 95/5: 0.199 nats
    coin = np.arange(n) % 2  # ln 2 = 0.693 nats
    four = np.arange(n) % 4  # ln 4 = 1.386 nats
    labels = np.stack([constant, skewed, coin, four], 1)
    np.testing.assert_allclose(label_entropy(labels), [0.0, 0.19851, np.log(2), np.log(4)], atol=1e-5)
    assert informative_labels(labels).tolist() == [2, 3]
    assert informative_labels(labels, threshold=0.7).tolist() == [3]


def test_split_by_episode_is_70_10_20_disjoint_and_seeded() -> None:
    episodes = np.repeat(np.arange(20), 7)  # 20 episodes of 7 frames
    s = split_by_episode(episodes, seed=3)
    parts = [set(episodes[s.train]), set(episodes[s.val]), set(episodes[s.test])]
    assert [len(p) for p in parts] == [14, 2, 4]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sorted(np.concatenate([s.train, s.val, s.test]).tolist()) == list(range(140))
    again, other = split_by_episode(episodes, seed=3), split_by_episode(episodes, seed=4)
    assert np.array_equal(again.test, s.test) and not np.array_equal(other.test, s.test)
    tiny = split_by_episode(np.array([0, 0, 1, 2]), seed=0)  # three episodes: one in each split
    assert (len(set(tiny.val)), len(tiny.train) + len(tiny.val) + len(tiny.test)) == (1, 4)
    with pytest.raises(ValueError, match="need >= 3 episodes"):
        split_by_episode(np.array([0, 1, 1]), seed=0)


def test_remove_duplicates_drops_frames_seen_in_an_earlier_split() -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (10, 4, 4, 1), dtype=np.uint8)
    frames[6] = frames[0]  # val copy of a train frame
    frames[8] = frames[1]  # test copy of a train frame
    frames[9] = frames[7]  # test copy of a val frame
    splits = Splits(train=np.arange(0, 5), val=np.array([5, 6, 7]), test=np.array([8, 9]))
    clean = remove_duplicates(frames, splits)
    assert clean.train.tolist() == [0, 1, 2, 3, 4]
    assert clean.val.tolist() == [5, 7] and clean.test.tolist() == []


# ------------------------------------------------------------------------------------ the probe
def _labels(n: int, seed: int) -> np.ndarray:
    """(n, 2) labels: 8 RAM-like values of a position variable and 4 of a score variable."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, 8, n) * 20 + 10, rng.integers(0, 4, n)], 1)


def _split(codes: np.ndarray, y: np.ndarray) -> tuple:
    return (codes[:600], y[:600]), (codes[600:700], y[600:700]), (codes[700:], y[700:])


def test_probe_reads_an_identity_code_and_not_noise() -> None:
    y = _labels(1000, 0)
    identity = np.concatenate([np.eye(8)[(y[:, 0] - 10) // 20], np.eye(4)[y[:, 1]]], 1)
    cfg = AtariProbeConfig(lr=3e-3, epochs=25, seed=0)
    f1 = fit_linear_probes(*_split(identity, y), cfg)
    assert f1.min() > 0.98
    noise = np.random.default_rng(1).standard_normal((1000, 12))
    f1_noise = fit_linear_probes(*_split(noise, y), cfg)
    assert f1_noise.max() < 0.4  # chance: weighted F1 ~ 1/8 and ~ 1/4
    again = fit_linear_probes(*_split(noise, y), cfg)
    np.testing.assert_array_equal(f1_noise, again)  # deterministic given the seed


def test_probe_rejects_non_byte_labels_and_weighted_f1_weights_by_support() -> None:
    codes, y = np.zeros((10, 2)), np.full((10, 1), 300)
    with pytest.raises(ValueError, match=r"RAM bytes in \[0, 256\)"):
        fit_linear_probes((codes, y), (codes, y), (codes, y))
    # class 0 (support 3) perfectly predicted, class 1 (support 1) missed: weighted F1 = 0.75 * 6/7
    assert weighted_f1(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0])) == pytest.approx(0.75 * 6 / 7)


# ------------------------------------------------------------------------------------ the env
@needs_ale
def test_random_agent_frames_are_labelled_preprocessed_and_deterministic() -> None:
    env = make_atari_env("pong")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (210, 160) and obs.dtype == np.uint8
    assert set(ram_labels("pong", env.unwrapped.ale.getRAM())) == set(ISSUE_INDICES["pong"])
    env.close()
    data = collect_labelled_frames("pong", 60, seed=0, image_size=32, segment_frames=20)
    assert data.frames.shape == (60, 32, 32, 1) and data.frames.dtype == np.uint8
    assert data.labels.shape == (60, 8) and data.names == tuple(RAM_ANNOTATIONS["pong"])
    assert data.episodes.tolist() == [0] * 20 + [1] * 20 + [2] * 20
    assert len(np.unique(data.labels[:, data.names.index("player_y")])) > 1  # the paddle moves
    again = collect_labelled_frames("pong", 60, seed=0, image_size=32, segment_frames=20)
    assert np.array_equal(again.frames, data.frames) and np.array_equal(again.labels, data.labels)
