"""Atari (ALE) frames with their state labels: the AtariARI RAM annotations (Anand et al. 2019).

*Unsupervised State Representation Learning in Atari* (Anand, Racah, Ozair, Bengio, Cote, Hjelm;
NeurIPS 2019) probes a frozen representation for the game's state variables, read from the console's
128-byte RAM at each frame. This module holds

- :data:`RAM_ANNOTATIONS`: game -> {variable: RAM index} for the AtariARI games; list-valued variables
  (``enemy_car_x`` = RAM 108..117) are expanded to ``enemy_car_x_0`` ... ``enemy_car_x_9``, as AtariARI
  does;
- :func:`ram_labels`: the labels of one RAM array;
- :func:`categories`: the AtariARI category (or categories) of a variable name, used for the
  mean-over-categories report (:data:`CATEGORIES`);
- :func:`make_atari_env` and :func:`random_agent_frames`: a grayscale ALE env and the random-agent
  rollout that yields (frame, labels, episode) triples. ``ale_py`` is imported only there.

Verification (2026-12-01). The indices were read from ``atariari/benchmark/ram_annotations.py`` of
github.com/mila-iqia/atari-representation-learning at commits 1a941160 and cc87a29d; the categories
from ``atariari/benchmark/categorization.py`` (``summary_key_dict``). Every game below has the same
variables and indices at both commits; ``qbert`` and ``yarsrevenge`` differ between the two (score and
tile colours added, variables renamed) and are left out. The list we probe matches the file:
Pong player_y 51, player_x 46, enemy_y 50, enemy_x 45, ball_x 49, ball_y 54, enemy_score 13,
player_score 14; Breakout ball_x 99, ball_y 101, player_x 72, blocks_hit_count 77, score 84 (plus
``block_bit_map`` = RAM 0..29, in the file, not probed here); Boxing player_x 32, player_y 34,
enemy_x 33, enemy_y 35, enemy_score 19, clock 17, player_score 18; Freeway player_y 14, score 103,
enemy_car_x 108..117.

>>> ram = np.zeros(128, np.uint8); ram[51], ram[49], ram[14] = 120, 77, 3
>>> labels = ram_labels("pong", ram)
>>> labels["player_y"], labels["ball_x"], labels["player_score"], len(labels)
(120, 77, 3, 8)
>>> categories("player_y"), categories("ball_x"), categories("enemy_car_x_3")
(('agent_localization',), ('small_object_localization',), ('other_localization',))
>>> categories("score"), categories("num_lives_direction"), categories("angle_of_tank")
(('score_clock_lives_display',), ('score_clock_lives_display', 'misc'), ())
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ALE_IDS",
    "CATEGORIES",
    "RAM_ANNOTATIONS",
    "AtariFrame",
    "categories",
    "make_atari_env",
    "ram_labels",
    "random_agent_frames",
]

Indices = int | range | tuple[int, ...]

# game -> variable -> RAM index (an int) or indices (a range or tuple, expanded to name_0, name_1, ...)
_ANNOTATED: dict[str, dict[str, Indices]] = {
    "asteroids": {
        "enemy_asteroids_y": (3, 4, 5, 6, 7, 8, 9, 12, 13, 14, 15, 16, 17, 18, 19),
        "enemy_asteroids_x": (21, 22, 23, 24, 25, 26, 27, 30, 31, 32, 33, 34, 35, 36, 37),
        "player_x": 73,
        "player_y": 74,
        "num_lives_direction": 60,
        "player_score_high": 61,
        "player_score_low": 62,
        "player_missile_x1": 83,
        "player_missile_x2": 84,
        "player_missile_y1": 86,
        "player_missile_y2": 87,
        "player_missile1_direction": 89,
        "player_missile2_direction": 90,
    },
    "battlezone": {
        "blue_tank_facing_direction": 46,
        "blue_tank_size_y": 47,
        "blue_tank_x": 48,
        "blue_tank2_facing_direction": 52,
        "blue_tank2_size_y": 53,
        "blue_tank2_x": 54,
        "num_lives": 58,
        "missile_y": 105,
        "compass_needles_angle": 84,
        "angle_of_tank": 4,
        "left_tread_position": 59,
        "right_tread_position": 60,
        "crosshairs_color": 108,
        "score": 29,
    },
    "berzerk": {
        "player_x": 19,
        "player_y": 11,
        "player_direction": 14,
        "player_missile_x": 22,
        "player_missile_y": 23,
        "player_missile_direction": 21,
        "robot_missile_direction": 26,
        "robot_missile_x": 29,
        "robot_missile_y": 30,
        "num_lives": 90,
        "robots_killed_count": 91,
        "game_level": 92,
        "enemy_evilOtto_x": 46,
        "enemy_evilOtto_y": 89,
        "enemy_robots_x": range(65, 73),
        "enemy_robots_y": range(56, 65),
        "player_score": range(93, 96),
    },
    "bowling": {
        "ball_x": 30,
        "ball_y": 41,
        "player_x": 29,
        "player_y": 40,
        "frame_number_display": 36,
        "pin_existence": range(57, 67),
        "score": 33,
    },
    "boxing": {
        "player_x": 32,
        "player_y": 34,
        "enemy_x": 33,
        "enemy_y": 35,
        "enemy_score": 19,
        "clock": 17,
        "player_score": 18,
    },
    "breakout": {
        "ball_x": 99,
        "ball_y": 101,
        "player_x": 72,
        "blocks_hit_count": 77,
        "block_bit_map": range(30),
        "score": 84,
    },
    "demonattack": {
        "level": 62,
        "player_x": 22,
        "enemy_x1": 17,
        "enemy_x2": 18,
        "enemy_x3": 19,
        "missile_y": 21,
        "enemy_y1": 69,
        "enemy_y2": 70,
        "enemy_y3": 71,
        "num_lives": 114,
    },
    "freeway": {"player_y": 14, "score": 103, "enemy_car_x": range(108, 118)},
    "frostbite": {
        "top_row_iceflow_x": 34,
        "second_row_iceflow_x": 33,
        "third_row_iceflow_x": 32,
        "fourth_row_iceflow_x": 31,
        "enemy_bear_x": 104,
        "num_lives": 76,
        "igloo_blocks_count": 77,
        "enemy_x": range(84, 88),
        "player_x": 102,
        "player_y": 100,
        "player_direction": 4,
        "score": (72, 73, 74),
    },
    "hero": {
        "player_x": 27,
        "player_y": 31,
        "power_meter": 43,
        "room_number": 28,
        "level_number": 117,
        "dynamite_count": 50,
        "score": (56, 57),
    },
    "montezumarevenge": {
        "room_number": 3,
        "player_x": 42,
        "player_y": 43,
        "player_direction": 52,
        "enemy_skull_x": 47,
        "enemy_skull_y": 46,
        "key_monster_x": 44,
        "key_monster_y": 45,
        "level": 57,
        "num_lives": 58,
        "items_in_inventory_count": 61,
        "room_state": 62,
        "score_0": 19,
        "score_1": 20,
        "score_2": 21,
    },
    "mspacman": {
        "enemy_sue_x": 6,
        "enemy_inky_x": 7,
        "enemy_pinky_x": 8,
        "enemy_blinky_x": 9,
        "enemy_sue_y": 12,
        "enemy_inky_y": 13,
        "enemy_pinky_y": 14,
        "enemy_blinky_y": 15,
        "player_x": 10,
        "player_y": 16,
        "fruit_x": 11,
        "fruit_y": 17,
        "ghosts_count": 19,
        "player_direction": 56,
        "dots_eaten_count": 119,
        "player_score": 120,
        "num_lives": 123,
    },
    "pitfall": {
        "player_x": 97,
        "player_y": 105,
        "enemy_logs_x": 98,
        "enemy_scorpion_x": 99,
        "bottom_of_rope_y": 18,
        "clock_sec": 89,
        "clock_min": 88,
    },
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
    "privateeye": {
        "player_x": 63,
        "player_y": 86,
        "room_number": 92,
        "clock": (67, 69),
        "player_direction": 58,
        "score": (73, 74),
        "dove_x": 48,
        "dove_y": 39,
    },
    "riverraid": {
        "player_x": 51,
        "missile_x": 117,
        "missile_y": 50,
        "fuel_meter_high": 55,
        "fuel_meter_low": 56,
    },
    "seaquest": {
        "enemy_obstacle_x": range(30, 34),
        "player_x": 70,
        "player_y": 97,
        "diver_or_enemy_missile_x": range(71, 75),
        "player_direction": 86,
        "player_missile_direction": 87,
        "oxygen_meter_value": 102,
        "player_missile_x": 103,
        "score": (57, 58),
        "num_lives": 59,
        "divers_collected_count": 62,
    },
    "skiing": {
        "player_x": 25,
        "clock_m": 104,
        "clock_s": 105,
        "clock_ms": 106,
        "score": 107,
        "object_y": range(87, 94),
    },
    "spaceinvaders": {
        "invaders_left_count": 17,
        "player_score": 104,
        "num_lives": 73,
        "player_x": 28,
        "enemies_x": 26,
        "missiles_y": 9,
        "enemies_y": 24,
    },
    "tennis": {
        "enemy_x": 27,
        "enemy_y": 25,
        "enemy_score": 70,
        "ball_x": 16,
        "ball_y": 17,
        "player_x": 26,
        "player_y": 24,
        "player_score": 69,
    },
    "venture": {
        **{f"sprite{i}_y": 20 + i for i in range(6)},
        **{f"sprite{i}_x": 79 + i for i in range(6)},
        "player_x": 85,
        "player_y": 26,
        "current_room": 90,
        "num_lives": 70,
        "score_1_2": 71,
        "score_3_4": 72,
    },
    "videopinball": {
        "ball_x": 67,
        "ball_y": 68,
        "player_left_paddle_y": 98,
        "player_right_paddle_y": 102,
        "score_1": 48,
        "score_2": 50,
    },
}


def _expand(variables: Mapping[str, Indices]) -> dict[str, int]:
    """{name: index or indices} -> {name: index}, a sequence ``name`` becoming ``name_0``, ``name_1``, ..."""
    out: dict[str, int] = {}
    for name, where in variables.items():
        if isinstance(where, int):
            out[name] = where
        else:
            out.update({f"{name}_{i}": index for i, index in enumerate(where)})
    return out


RAM_ANNOTATIONS: dict[str, dict[str, int]] = {game: _expand(v) for game, v in _ANNOTATED.items()}
"""game (AtariARI's lower-case name) -> state variable -> RAM index in [0, 128)."""

ALE_IDS: dict[str, str] = {
    game: f"ALE/{name}-v5"
    for game, name in zip(
        _ANNOTATED,
        (
            "Asteroids",
            "BattleZone",
            "Berzerk",
            "Bowling",
            "Boxing",
            "Breakout",
            "DemonAttack",
            "Freeway",
            "Frostbite",
            "Hero",
            "MontezumaRevenge",
            "MsPacman",
            "Pitfall",
            "Pong",
            "PrivateEye",
            "Riverraid",
            "Seaquest",
            "Skiing",
            "SpaceInvaders",
            "Tennis",
            "Venture",
            "VideoPinball",
        ),
        strict=True,
    )
}
"""game -> the gymnasium id of its ALE env (``ale_py`` registers them)."""


def _game(game: str) -> str:
    """The table key of ``game`` (``"Pong"``, ``"pong"``, ``"ALE/Pong-v5"`` -> ``"pong"``)."""
    key = game.split("/")[-1].split("-")[0].split("NoFrameskip")[0].lower()
    if key not in RAM_ANNOTATIONS:
        raise ValueError(
            f"no AtariARI RAM annotations for {game!r}; annotated games: {sorted(RAM_ANNOTATIONS)}"
        )
    return key


def ram_labels(game: str, ram: np.ndarray) -> dict[str, int]:
    """The state labels of one frame: {variable: RAM byte} for ``game``.

    ram: (128,) uint8, ``env.unwrapped.ale.getRAM()``. Raises ValueError for an unannotated game or a
    RAM of another shape.
    """
    ram = np.asarray(ram)
    if ram.shape != (128,):
        raise ValueError(f"an Atari RAM is 128 bytes, shape (128,); got shape {ram.shape}")
    return {name: int(ram[index]) for name, index in RAM_ANNOTATIONS[_game(game)].items()}


CATEGORIES = (
    "agent_localization",
    "small_object_localization",
    "other_localization",
    "score_clock_lives_display",
    "misc",
)
"""AtariARI's five summary categories (``summary_key_dict``; its ``misc_keys`` is named ``misc`` here)."""

_LOCALIZATION = ("_x", "_y", "_z", "_column")
_SMALL_OBJECTS = ("ball", "missile")
_AGENTS = ("agent", "player")
_SCORE_CLOCK_LIVES_DISPLAY = ("score", "clock", "lives", "lifes", "meter", "display")
_MISC = ("count", "bit_map", "existence", "level", "room", "game_state", "direction")


def categories(name: str) -> tuple[str, ...]:
    """The AtariARI categories of a variable name (by substrings, as ``categorization.py``).

    Localization: a name containing ``_x``, ``_y``, ``_z`` or ``_column``; of those, names with ``ball`` or
    ``missile`` are small objects, else names with ``agent`` or ``player`` are the agent, else other.
    Score/clock/lives/display: ``score``, ``clock``, ``lives``/``lifes``, ``meter``, ``display``. Misc:
    ``count``, ``bit_map``/``existence``, ``level``/``room``/``game_state``, ``direction``. A name may fall
    in two categories (``num_lives_direction``) or in none (``angle_of_tank``); the empty tuple then.
    """
    out = []
    if any(s in name for s in _LOCALIZATION):
        if any(s in name for s in _SMALL_OBJECTS):
            out.append("small_object_localization")
        elif any(s in name for s in _AGENTS):
            out.append("agent_localization")
        else:
            out.append("other_localization")
    if any(s in name for s in _SCORE_CLOCK_LIVES_DISPLAY):
        out.append("score_clock_lives_display")
    if any(s in name for s in _MISC):
        out.append("misc")
    return tuple(out)


# ------------------------------------------------------------------------------------ the env
@dataclass(frozen=True)
class AtariEnvConfig:
    """How frames are produced: AtariARI's settings where ALE v5 lets us choose them."""

    frameskip: int = 4
    """Emulator frames per agent step (AtariARI: ``MaxAndSkipEnv(skip=4)``)."""
    repeat_action_probability: float = 0.0
    """Sticky actions (v5's default is 0.25; AtariARI used the v4 ``NoFrameskip`` envs, without)."""
    skip_noop: bool = True
    """The random agent draws from actions 1..n-1 (AtariARI's ``randint(1, n)``), never NOOP."""


def make_atari_env(game: str, config: AtariEnvConfig | None = None, **kwargs: Any) -> Any:
    """The grayscale ALE env of ``game``: observations (210, 160) uint8. Needs ``pip install -e .[atari]``.

    ``kwargs`` go to ``gym.make`` (e.g. ``render_mode``); ``env.unwrapped.ale.getRAM()`` is the RAM.
    """
    import gymnasium as gym

    try:
        import ale_py
    except ImportError as err:
        raise ImportError(
            "Atari envs need ale-py: pip install -e '.[atari]' (ale-py >= 0.12 ships the ROMs)"
        ) from err
    gym.register_envs(ale_py)
    cfg = config or AtariEnvConfig()
    return gym.make(
        ALE_IDS[_game(game)],
        obs_type="grayscale",
        frameskip=cfg.frameskip,
        repeat_action_probability=cfg.repeat_action_probability,
        **kwargs,
    )


@dataclass(frozen=True)
class AtariFrame:
    """One random-agent frame: the observation, the RAM labels after the step and its episode."""

    frame: np.ndarray
    """(210, 160) uint8 grayscale screen."""
    labels: dict[str, int]
    """:func:`ram_labels` of the RAM at that frame."""
    episode: int
    """Index of the episode (0, 1, ... in the order played)."""


def random_agent_frames(
    game: str, n_frames: int, seed: int, config: AtariEnvConfig | None = None
) -> Iterator[AtariFrame]:
    """``n_frames`` frames of a uniformly random agent, with labels; deterministic given ``seed``.

    Episode k is reset with seed ``seed + k``; actions come from ``np.random.default_rng(seed)``. As in
    AtariARI, a frame is recorded after each step (the reset frame is not), labelled from the RAM then.
    """
    cfg = config or AtariEnvConfig()
    env = make_atari_env(game, cfg)
    rng = np.random.default_rng(seed)
    n_actions = int(env.action_space.n)
    low = 1 if cfg.skip_noop and n_actions > 1 else 0
    episode, done = 0, 0
    try:
        env.reset(seed=seed)
        while done < n_frames:
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(low, n_actions)))
            yield AtariFrame(np.asarray(obs, np.uint8), ram_labels(game, env.unwrapped.ale.getRAM()), episode)
            done += 1
            if terminated or truncated:
                episode += 1
                env.reset(seed=seed + episode)
    finally:
        env.close()
