"""Theme-independent geometry of the MiniWorld levels (``envs/world.py``): settings and episode layouts.

:func:`generate_layout` draws an episode's :class:`WorldLayout` -- a square arena cut into four rooms by
two partitions with doorways, obstacle and target discs, the agent's pose -- from a seeded RNG, so the
same seed gives the same geometry in every theme (outdoor / indoor) and only the pixels differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WorldConfig:
    """Geometry, motion, task and rendering settings shared by every theme (lengths in metres)."""

    obs_size: int = 64
    render_size: int = 256
    """Side of ``render()`` frames (``render_mode="rgb_array"``)."""
    msaa_samples: int = 4
    """Multisample anti-aliasing of observations (1 = off; 4 costs no measurable CPU time at 64 x 64)."""
    arena_size: float = 10.0
    split_range: tuple[float, float] = (0.4, 0.6)
    """Partition positions, as fractions of ``arena_size``."""
    door_width: float = 1.8
    num_obstacles: int = 6
    num_obstacle_kinds: int = 4
    obstacle_radius: tuple[float, float] = (0.35, 0.55)
    target_radius: float = 0.3
    agent_radius: float = 0.4
    """MiniWorld's agent radius; keeps start poses and doorways free."""
    clearance: float = 0.85
    """Free gap around obstacles and target (> 2 * agent_radius: the agent can always pass)."""
    min_target_distance: float = 3.0
    forward_step: float = 0.25
    turn_step_deg: float = 15.0
    max_episode_steps: int = 400
    time_penalty: float = 0.2
    progress_reward: float = 0.1
    """Potential-based shaping (Ng et al. 1999): reward per metre of straight-line approach to the target
    (0 = MiniWorld's sparse task; a random policy almost never reaches the target in 400 steps)."""
    max_tries: int = 10_000
    """Rejection-sampling budget per placed object."""
    open_arena: bool = False
    """One room: no partitions and no doorways (a simpler navigation task: the target is in sight once the
    agent faces it, unless an obstacle hides it). The layout's RNG draws are those of the four rooms, so
    a seed places the obstacles, the target and the agent where the partitioned level would."""

    def __post_init__(self) -> None:
        shortest = self.arena_size * self.split_range[0]
        needed = self.door_width + 2 * self.agent_radius
        if not 0 < self.split_range[0] <= self.split_range[1] < 1:
            raise ValueError(f"WorldConfig.split_range must satisfy 0 < lo <= hi < 1, got {self.split_range}")
        if shortest < needed and not self.open_arena:
            raise ValueError(
                f"WorldConfig: the shortest wall segment (arena_size {self.arena_size} x split_range[0] "
                f"{self.split_range[0]} = {shortest:.2f} m) cannot hold a doorway of door_width "
                f"{self.door_width} + 2 x agent_radius {self.agent_radius} = {needed:.2f} m; enlarge the "
                f"arena or narrow the door"
            )


@dataclass(frozen=True, eq=False)
class WorldLayout:
    """Theme-independent geometry of one episode in MiniWorld floor coordinates (x, z).

    Rooms 0..3 are the quarters of ``[0, S]^2`` cut at ``split`` (0 lower-left, 1 lower-right, 2 upper-left,
    3 upper-right). ``doors``: ``(room_a, room_b, centre)`` for the three open connections (one of four is
    walled up), ``centre`` measured along the shared wall; none in an open arena (one room, ``split``
    unused). ``obstacle_pos`` (K, 2), ``obstacle_radius``,
    ``obstacle_kind`` (int), ``obstacle_dir`` (yaw) (K,); ``target_pos``, ``agent_pos`` (2,).
    """

    arena_size: float
    split: tuple[float, float]
    doors: tuple[tuple[int, int, float], ...]
    obstacle_pos: np.ndarray
    obstacle_radius: np.ndarray
    obstacle_kind: np.ndarray
    obstacle_dir: np.ndarray
    target_pos: np.ndarray
    target_radius: float
    agent_pos: np.ndarray
    agent_dir: float

    def room_bounds(self) -> list[tuple[float, float, float, float]]:
        """``(min_x, max_x, min_z, max_z)`` of rooms 0..3 (of the one room of an open arena, no doors)."""
        size, (xs, zs) = self.arena_size, self.split
        if not self.doors:
            return [(0.0, size, 0.0, size)]
        return [(0.0, xs, 0.0, zs), (xs, size, 0.0, zs), (0.0, xs, zs, size), (xs, size, zs, size)]


def _sample_free(
    rng: np.random.Generator,
    config: WorldConfig,
    split: tuple[float, float],
    radius: float,
    gap: float,
    placed: list[tuple[np.ndarray, float]],
) -> np.ndarray:
    """A point whose disc of ``radius`` keeps ``gap`` from walls, partitions and every placed disc."""
    margin = radius + gap
    for _ in range(config.max_tries):
        pos = rng.uniform(margin, config.arena_size - margin, size=2)
        if not config.open_arena and min(abs(pos[0] - split[0]), abs(pos[1] - split[1])) < margin:
            continue
        if all(np.hypot(*(pos - other)) >= radius + r + gap for other, r in placed):
            return pos
    raise RuntimeError(f"no free spot for radius {radius} in {config.max_tries} tries; too crowded: {config}")


def generate_layout(rng: np.random.Generator, config: WorldConfig) -> WorldLayout:
    """Draw one episode's geometry from ``rng`` (the same RNG state gives the same layout in any theme)."""
    size, k, edge = config.arena_size, config.num_obstacles, config.door_width / 2 + config.agent_radius
    split_x, split_z = rng.uniform(*config.split_range, size=2) * size
    split = (float(split_x), float(split_z))
    spans = {
        (0, 1): (0.0, split[1]),
        (2, 3): (split[1], size),
        (0, 2): (0.0, split[0]),
        (1, 3): (split[0], size),
    }
    walled = int(rng.integers(len(spans)))
    if config.open_arena:  # the same draws as the doors', so the rest of the layout is the partitioned one's
        rng.uniform(size=len(spans) - 1)
        doors: tuple[tuple[int, int, float], ...] = ()
    else:
        doors = tuple(
            (a, b, float(rng.uniform(lo + edge, hi - edge)))
            for i, ((a, b), (lo, hi)) in enumerate(spans.items())
            if i != walled
        )
    radii = rng.uniform(*config.obstacle_radius, size=k)
    placed: list[tuple[np.ndarray, float]] = []
    for radius in radii:
        pos = _sample_free(rng, config, split, float(radius), config.clearance, placed)
        placed.append((pos, float(radius)))
    agent_pos = _sample_free(rng, config, split, config.agent_radius, 0.1, placed)
    # The agent joins as a disc sized so that every accepted target is >= min_target_distance away.
    reach = (agent_pos, config.min_target_distance - config.target_radius - config.clearance)
    target_pos = _sample_free(rng, config, split, config.target_radius, config.clearance, [*placed, reach])
    return WorldLayout(
        arena_size=size,
        split=split,
        doors=doors,
        obstacle_pos=np.array([p for p, _ in placed], dtype=np.float64).reshape(k, 2),
        obstacle_radius=radii,
        obstacle_kind=rng.integers(config.num_obstacle_kinds, size=k),
        obstacle_dir=rng.uniform(-math.pi, math.pi, size=k),
        target_pos=target_pos,
        target_radius=config.target_radius,
        agent_pos=agent_pos,
        agent_dir=float(rng.uniform(-math.pi, math.pi)),
    )
