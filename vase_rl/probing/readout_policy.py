"""A fixed readout policy: does a representation still mean, to an agent, what it meant?

A policy trained on an environment's latents reads them through fixed weights. The cheapest such reader
whose return depends on nothing else is a linear readout of the sprite's position from the latents (ridge
regression, fit once on labelled frames) that acts greedily toward the goal of the sprite goal task
(:class:`~vase_rl.envs.sprites.SpriteCanvas`, discrete actions). Its return on the environment, measured
again after the representation learned something else, says whether the latents still carry position the
way they did: a fixed PPO policy's retention at a fraction of PPO's cost (used by the retention test and
``benchmarks/investigations/readout_retention.py``).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> codes = rng.normal(size=(200, 3))
>>> factors = {"x": codes[:, 0] * 0.1 + 0.5, "y": 0.5 - codes[:, 1] * 0.1}
>>> w = fit_position_readout(codes, factors)
>>> (np.round(w, 2) + 0.0).T.tolist()  # per target x, y: the latents' weights, then the bias
[[0.1, 0.0, 0.0, 0.5], [0.0, -0.1, 0.0, 0.5]]
>>> greedy_actions(np.array([[0.2, 0.5, 0.0]]), w, goal=(0.75, 0.25)).tolist()  # read (0.52, 0.45): go right
[4]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import numpy as np

from vase_rl.envs.sprites import DEFAULT_GOAL, SpriteCanvas

__all__ = ["fit_position_readout", "greedy_actions", "readout_return"]

Encode = Callable[[np.ndarray], np.ndarray]
"""Frames (n, H, W, C) uint8 -> codes (n, N) float: what the agent receives."""


def fit_position_readout(
    codes: np.ndarray, factors: Mapping[str, np.ndarray], ridge: float = 1e-2
) -> np.ndarray:
    """Ridge weights (N + 1, 2) from codes (n, N) and a bias to the sprite's normalised (x, y).

    Raises ValueError when codes are not 2-D, or the factors miss ``x`` / ``y`` or have another length."""
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2:
        raise ValueError(f"fit_position_readout needs codes of shape (frames, latents), got {codes.shape}")
    if "x" not in factors or "y" not in factors:
        raise ValueError(f"fit_position_readout needs factors 'x' and 'y', got {sorted(factors)}")
    target = np.stack([np.asarray(factors["x"]), np.asarray(factors["y"])], 1).astype(np.float64)
    if len(target) != len(codes):
        raise ValueError(f"{len(codes)} codes but {len(target)} factor values")
    z = np.c_[codes, np.ones(len(codes))]
    return np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ target)


def greedy_actions(
    codes: np.ndarray, weights: np.ndarray, goal: tuple[float, float] = DEFAULT_GOAL
) -> np.ndarray:
    """Discrete actions (noop 0, up 1, down 2, left 3, right 4; y grows downwards) that move the read
    position along the axis with the larger distance to ``goal``: (n,) int64."""
    position = np.c_[codes, np.ones(len(codes))] @ weights
    d = np.asarray(goal) - position
    horizontal = np.abs(d[:, 0]) >= np.abs(d[:, 1])
    return np.where(horizontal, np.where(d[:, 0] > 0, 4, 3), np.where(d[:, 1] > 0, 2, 1)).astype(np.int64)


def readout_return(
    encode: Encode,
    weights: np.ndarray,
    dataset: str,
    episodes: int = 64,
    n_envs: int = 16,
    seed: int = 5000,
    canvas_size: int = 32,
    data_dir: str | os.PathLike[str] | None = None,
) -> float:
    """Mean return of :func:`greedy_actions` over the first ``episodes`` episodes of ``n_envs`` copies of the
    sprite goal task on ``dataset`` (episode k is reset with seed ``seed + k``: the same episodes every
    call)."""
    if episodes < 1 or n_envs < 1:
        raise ValueError(f"readout_return needs episodes >= 1 and n_envs >= 1, got {episodes}, {n_envs}")
    envs = [SpriteCanvas(dataset=dataset, canvas_size=canvas_size, data_dir=data_dir) for _ in range(n_envs)]
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]
    returns: list[float] = []
    running, started = np.zeros(n_envs), n_envs
    while len(returns) < episodes:
        actions = greedy_actions(encode(np.stack(obs)), weights)
        for i, env in enumerate(envs):
            obs[i], reward, terminated, truncated, _ = env.step(int(actions[i]))
            running[i] += float(reward)
            if terminated or truncated:
                returns.append(float(running[i]))
                running[i] = 0.0
                obs[i] = env.reset(seed=seed + started)[0]
                started += 1
    return float(np.mean(returns[:episodes]))
