"""``SpriteCanvas``: one dataset sprite on a canvas that the agent moves to a goal position.

Observations are ``Box(0, 255, (C, C, 1), uint8)`` images drawn by the same
:class:`~vase_rl.envs.sampler.SpriteRenderer` as the batch sampler. Positions are the sprite's
top-left pixel ``(px, py)`` in ``{0, ..., free}`` with ``free = canvas_size - sprite_size``, and the
normalised factors ``x = px / free``, ``y = py / free`` (``y`` grows downwards).

Actions
    ``action_type="discrete"``: ``Discrete(5)`` = noop, up, down, left, right; each moves the sprite
    by ``step_px`` pixels (default ``max(1, round(canvas_size / 16))``: 4 on 64, 2 on 32).
    ``action_type="continuous"``: ``Box(-1, 1, (2,), float32)`` = ``(a_x, a_y)``, a translation as a
    fraction of half the free range: ``px <- clip(rint(px + a_x * free / 2), 0, free)`` and the same
    for ``py`` (so from the centre ``(1, 1)`` reaches the bottom-right corner). Out-of-range actions
    are clipped to [-1, 1]. This is how the imagination policy (A.4) acts in the world.

Task and reward
    Reach ``goal = (gx, gy)`` (normalised; default ``(0.75, 0.25)``, upper right of the centre, so
    the static start is not already solved). With ``d`` the Euclidean distance between ``(x, y)`` and
    the goal, each step gives ``(d_before - d_after) - time_penalty`` plus ``success_bonus`` when
    ``d_after <= goal_radius``, which terminates the episode. Potential-based shaping, so the optimal
    policy is the shortest path. Episodes truncate after ``max_episode_steps`` (counted here, no
    ``TimeLimit`` wrapper needed).

Identity task (``task="identity"``)
    The reward depends on *what* the sprite is: classes ``< split_label`` (default 5: digits 0-4,
    Fashion T-shirt, trouser, pullover, dress, coat) must be pushed to the left edge, the others to the
    right edge. With ``e`` the horizontal distance ``|x - target_x|`` to the class's edge, each step gives
    ``(e_before - e_after) - time_penalty``; reaching *either* edge (``x <= goal_radius`` or
    ``x >= 1 - goal_radius``) terminates, with ``+success_bonus`` at the right one and
    ``-success_bonus`` at the wrong one, so a policy blind to identity scores about 0 on the bonus.
    Moving variants start at a uniform ``y`` and a uniform ``x`` in the central half (never at an
    edge); static ones start centred. Needs labelled sprites (mnist, fashion, inverse-fashion).

Resets
    Each reset draws a new sprite uniformly from the split; moving variants also draw a uniform start
    position, static ones start centred. ``reset(options={"index": i, "position": (px, py)})`` sets
    either instead (the draws are still made, so the seeded stream does not change).
    ``info``: ``label`` (class, -1 for faces, shape index for
    shapes), ``index``, ``x``, ``y``, plus ``shape``, ``scale`` for shapes, and ``is_success``.

>>> env = SpriteCanvas(source="shapes", moving=True, canvas_size=32)
>>> obs, info = env.reset(seed=0)
>>> obs.shape, obs.dtype, sorted(info)
((32, 32, 1), dtype('uint8'), ['index', 'is_success', 'label', 'scale', 'shape', 'x', 'y'])
"""

from __future__ import annotations

import os
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from vase_rl.envs.sampler import REFERENCE_CANVAS, SpriteRenderer, parse_dataset

DEFAULT_GOAL = (0.75, 0.25)
"""Default goal position (x, y), normalised."""
MOVES = np.array([(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)], dtype=np.int64)
"""Discrete action -> unit move (dx, dy): noop, up, down, left, right."""
STEP_FRACTION = 16
"""Default discrete step = canvas_size / STEP_FRACTION pixels."""
TASKS = ("goal", "identity")
"""``goal``: reach a fixed position; ``identity``: push the sprite to the edge of its class."""
LABELLED_SOURCES = ("mnist", "fashion", "inverse-fashion")
"""Sources with classes 0-9 (the identity task needs them)."""


def check_task(task: str, source: str, split_label: int, goal_radius: float) -> None:
    """ValueError naming the problem when ``task`` and its arguments do not fit ``source``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if task == "identity" and source not in LABELLED_SOURCES:
        raise ValueError(
            f"task='identity' needs class labels: source must be one of {LABELLED_SOURCES}, got {source!r}"
        )
    if not 1 <= split_label <= 9:
        raise ValueError(f"split_label must be in 1..9 (classes below it go left), got {split_label}")
    if task == "identity" and not 0 < goal_radius < 0.5:
        raise ValueError(
            f"task='identity' needs 0 < goal_radius < 0.5 (the edge bands must not "
            f"overlap), got {goal_radius}"
        )


class SpriteCanvas(gym.Env[np.ndarray, Any]):
    """A sprite from ``source`` on a ``canvas_size`` canvas; see the module docstring for the MDP.

    Args:
        source: "mnist", "fashion", "inverse-fashion", "faces" or "shapes" (default "mnist").
        moving: random start position (True) or centred start (False).
        dataset: alternatively a dataset name ("moving-fashion", ...) giving both source and moving.
        canvas_size, sprite_size, split, data_dir: as :class:`~vase_rl.envs.sampler.SpriteRenderer`.
        action_type: "discrete" or "continuous".
        step_px: discrete step in pixels.
        goal, goal_radius: target position (x, y) in [0, 1]^2 and success radius (normalised units).
        success_bonus, time_penalty: reward terms.
        max_episode_steps: truncation horizon.
        task: "goal" (reach ``goal``) or "identity" (push to the class's edge; module docstring).
        split_label: identity task: classes below it go left, the others right (in 1..9).
        render_mode: None or "rgb_array" ((C, C, 3) uint8).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012 (gymnasium convention)

    def __init__(
        self,
        source: str | None = None,
        moving: bool = False,
        dataset: str | None = None,
        canvas_size: int = REFERENCE_CANVAS,
        sprite_size: int | None = None,
        split: str = "train",
        action_type: Literal["discrete", "continuous"] = "discrete",
        step_px: int | None = None,
        goal: tuple[float, float] = DEFAULT_GOAL,
        goal_radius: float = 0.1,
        success_bonus: float = 1.0,
        time_penalty: float = 0.01,
        max_episode_steps: int = 50,
        render_mode: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        task: Literal["goal", "identity"] = "goal",
        split_label: int = 5,
    ) -> None:
        if dataset is not None:
            if source is not None:
                raise ValueError(f"give either dataset={dataset!r} or source={source!r}, not both")
            source, moving = parse_dataset(dataset)
        self.moving = bool(moving)
        source = source or "mnist"
        check_task(task, source, split_label, goal_radius)
        self.task, self.split_label = task, int(split_label)
        self.renderer = SpriteRenderer(source, canvas_size, sprite_size, split, data_dir)
        if action_type == "discrete":
            self.action_space: spaces.Space[Any] = spaces.Discrete(len(MOVES))
        elif action_type == "continuous":
            self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        else:
            raise ValueError(f"action_type must be 'discrete' or 'continuous', got {action_type!r}")
        self.step_px = max(1, round(canvas_size / STEP_FRACTION)) if step_px is None else int(step_px)
        if self.step_px < 1:
            raise ValueError(f"step_px must be >= 1, got {step_px}")
        self.goal = np.asarray(goal, dtype=np.float64)
        if self.goal.shape != (2,) or not np.all((self.goal >= 0) & (self.goal <= 1)):
            raise ValueError(f"goal must be (gx, gy) in [0, 1]^2, got {goal}")
        if goal_radius <= 0 or max_episode_steps < 1:
            raise ValueError(
                f"need goal_radius > 0 and max_episode_steps >= 1, got {goal_radius}, {max_episode_steps}"
            )
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.action_type = action_type
        self.goal_radius, self.success_bonus, self.time_penalty = goal_radius, success_bonus, time_penalty
        self.max_episode_steps, self.render_mode = max_episode_steps, render_mode
        c = canvas_size
        self.observation_space = spaces.Box(0, 255, (c, c, 1), np.uint8)
        self._index, self._pos, self._steps = 0, np.zeros(2, dtype=np.int64), 0

    # ----------------------------------------------------------------------------------- helpers
    def _obs(self) -> np.ndarray:
        """Current image (C, C, 1) uint8."""
        px, py = self._pos[:1], self._pos[1:]
        return self.renderer.render(np.array([self._index]), px, py)[0]

    def _xy(self) -> np.ndarray:
        return self.renderer.normalise(self._pos).astype(np.float64)

    def _target_x(self) -> float:
        """Identity task: 0.0 (left edge) for classes below ``split_label``, else 1.0 (right edge)."""
        return 0.0 if self.renderer.bank.labels[self._index] < self.split_label else 1.0

    def _distance(self) -> float:
        """Goal task: distance to the goal; identity task: horizontal distance to the class's edge."""
        if self.task == "identity":
            return abs(float(self._xy()[0]) - self._target_x())
        return float(np.linalg.norm(self._xy() - self.goal))

    def _at_edge(self) -> bool:
        x = float(self._xy()[0])
        return x <= self.goal_radius or x >= 1.0 - self.goal_radius

    def _info(self) -> dict[str, Any]:
        factors = self.renderer.factors(np.array([self._index]), self._pos[:1], self._pos[1:])
        info: dict[str, Any] = {k: v[0].item() for k, v in factors.items()}
        info["is_success"] = self._distance() <= self.goal_radius
        return info

    def _move(self, action: Any) -> np.ndarray:
        """New top-left corner (2,) int64 after ``action`` (clipped to stay inside the canvas)."""
        free = self.renderer.free
        if self.action_type == "discrete":
            if not self.action_space.contains(action):
                raise ValueError(f"action must be an int in [0, {len(MOVES) - 1}], got {action!r}")
            delta = MOVES[int(action)] * self.step_px
        else:
            a = np.asarray(action, dtype=np.float64).reshape(-1)
            if a.shape != (2,) or not np.all(np.isfinite(a)):
                raise ValueError(f"action must be 2 finite floats in [-1, 1], got {action!r}")
            delta = np.rint(np.clip(a, -1.0, 1.0) * free / 2.0).astype(np.int64)
        return np.clip(self._pos + delta, 0, free)

    # ------------------------------------------------------------------------------ gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """New episode: new sprite; random start when moving, centred otherwise. Returns (obs, info)."""
        super().reset(seed=seed)
        r = self.renderer
        self._index = int(self.np_random.integers(0, r.num_sprites))
        if self.moving:
            px, py = r.random_positions(self.np_random, 1)
            if self.task == "identity":  # x in the central half, never at an edge
                px = r.free // 4 + px * (r.free - 2 * (r.free // 4)) // max(r.free, 1)
            self._pos = np.array([px[0], py[0]], dtype=np.int64)
        else:
            self._pos = np.full(2, r.centre, dtype=np.int64)
        if options:
            self._apply_options(options)
        self._steps = 0
        return self._obs(), self._info()

    def _apply_options(self, options: dict[str, Any]) -> None:
        """``reset(options=...)``: ``index`` (sprite, int in [0, num_sprites)) and/or ``position``
        (top-left pixel (px, py) in [0, free]^2) replace the random draws (which are still made, so the
        seeded stream is the same with or without options)."""
        unknown = sorted(set(options) - {"index", "position"})
        if unknown:
            raise ValueError(f"unknown reset option(s) {unknown}; valid: ['index', 'position']")
        r = self.renderer
        if "index" in options:
            index = options["index"]
            if not (isinstance(index, (int, np.integer)) and 0 <= index < r.num_sprites):
                raise ValueError(f"reset option index must be an int in [0, {r.num_sprites}), got {index!r}")
            self._index = int(index)
        if "position" in options:
            pos = np.asarray(options["position"])
            if pos.shape != (2,) or pos.dtype.kind not in "iu" or pos.min() < 0 or pos.max() > r.free:
                raise ValueError(
                    f"reset option position must be 2 ints (px, py) in [0, {r.free}], "
                    f"got {options['position']!r}"
                )
            self._pos = pos.astype(np.int64)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move the sprite; reward = shaping + bonus - penalty (module docstring)."""
        before = self._distance()
        self._pos = self._move(action)
        self._steps += 1
        after = self._distance()
        success = after <= self.goal_radius
        terminated = self._at_edge() if self.task == "identity" else success
        bonus = (self.success_bonus if success else -self.success_bonus) if terminated else 0.0
        reward = (before - after) - self.time_penalty + bonus
        truncated = not terminated and self._steps >= self.max_episode_steps
        return self._obs(), float(reward), terminated, truncated, self._info()

    def render(self) -> np.ndarray | None:
        """``rgb_array``: the observation as (C, C, 3) uint8; None without a render mode."""
        if self.render_mode != "rgb_array":
            return None
        return np.repeat(self._obs(), 3, axis=-1)
