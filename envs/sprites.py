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

Resets
    Each reset draws a new sprite uniformly from the split; moving variants also draw a uniform start
    position, static ones start centred. ``info``: ``label`` (class, -1 for faces, shape index for
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
    ) -> None:
        if dataset is not None:
            if source is not None:
                raise ValueError(f"give either dataset={dataset!r} or source={source!r}, not both")
            source, moving = parse_dataset(dataset)
        self.moving = bool(moving)
        self.renderer = SpriteRenderer(source or "mnist", canvas_size, sprite_size, split, data_dir)
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
            raise ValueError(f"need goal_radius > 0 and max_episode_steps >= 1, got {goal_radius}, "
                             f"{max_episode_steps}")
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

    def _distance(self) -> float:
        xy = self.renderer.normalise(self._pos).astype(np.float64)
        return float(np.linalg.norm(xy - self.goal))

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
            self._pos = np.array([px[0], py[0]], dtype=np.int64)
        else:
            self._pos = np.full(2, r.centre, dtype=np.int64)
        self._steps = 0
        return self._obs(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Move the sprite; reward = shaping + bonus - penalty (module docstring)."""
        before = self._distance()
        self._pos = self._move(action)
        self._steps += 1
        after = self._distance()
        terminated = after <= self.goal_radius
        reward = (before - after) - self.time_penalty + (self.success_bonus if terminated else 0.0)
        truncated = not terminated and self._steps >= self.max_episode_steps
        return self._obs(), float(reward), terminated, truncated, self._info()

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """``rgb_array``: the observation as (C, C, 3) uint8; None without a render mode."""
        if self.render_mode != "rgb_array":
            return None
        return np.repeat(self._obs(), 3, axis=-1)
