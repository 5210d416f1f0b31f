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
