"""Shared test helpers: tiny configs and seeded batches."""

from __future__ import annotations

import os

import numpy as np
import pytest

from vase_rl.core.config import VASEConfig, get_preset

DATA_DIR = os.environ.get(
    "VASE_DATA_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
)
HAVE_DATA = os.path.isfile(os.path.join(DATA_DIR, "mnist", "train-labels-idx1-ubyte.gz"))
needs_data = pytest.mark.skipif(not HAVE_DATA, reason=f"real data not found in {DATA_DIR}: set VASE_DATA_DIR")


def tiny_config(**overrides) -> VASEConfig:
    """A 16x16, narrow version of the cpu preset: milliseconds per step."""
    cfg = get_preset("cpu").with_overrides(
        model={"image_size": 16, "conv_channels": (8, 8, 16, 16), "hidden_dim": 64, "latent_dim": 6},
        inference={"grace_steps": 10},
        dream={"tau": 20, "batch_size": 16},
        mask={"used_every": 20, "used_steps": 5},
        batch_size=16,
    )
    return cfg.with_overrides(**overrides) if overrides else cfg


def shapes_batches(n_batches: int, batch: int, size: int = 16, seed: int = 0) -> list[np.ndarray]:
    """Seeded batches of procedural moving shapes (no data files needed): uint8 (batch, size, size, 1)."""
    from vase_rl.envs.sampler import SpriteSampler

    s = SpriteSampler("moving-shapes", canvas_size=size, seed=seed)
    return [s.sample(batch)[0] for _ in range(n_batches)]


def straight_and_resumed(cfg: VASEConfig, batches: list[np.ndarray], at: int, path: str) -> tuple:
    """Two learners over ``batches``: one straight through, one saved to ``path`` after ``at`` batches,
    loaded into a fresh process-like object and trained on the rest; returns (straight, first, resumed),
    ``first`` being the learner that was saved."""
    from vase_rl.core.learner import ContinualLearner

    straight = ContinualLearner(cfg, device="cpu")
    for b in batches:
        straight.train_step(b)
    first = ContinualLearner(cfg, device="cpu")
    for b in batches[:at]:
        first.train_step(b)
    first.save(path)
    resumed = ContinualLearner.load(path, device="cpu")
    for b in batches[at:]:
        resumed.train_step(b)
    return straight, first, resumed
