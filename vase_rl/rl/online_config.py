"""The options of every VASE wrapper (:class:`OnlineConfig`) and the checkpoint that stores them with the
learner (:func:`load_wrapped`; written by :meth:`vase_rl.rl.online.OnlineVASE.save`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from vase_rl.core.checkpoint import load_checkpoint
from vase_rl.core.learner import ContinualLearner

__all__ = ["CHECKPOINT_KEY", "EMISSIONS", "OnlineConfig", "load_wrapped"]

EMISSIONS = ("mu", "used")
"""The values of :attr:`OnlineConfig.emit`."""
CHECKPOINT_KEY = "vase_rl.wrapper"
"""Key of the wrapper config inside a learner checkpoint's ``extra``."""


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """Options shared by every VASE wrapper (single, gymnasium vector, SB3 VecEnv)."""

    learn: bool = True
    """Train the learner from the wrapped env's frames (False: encode only, deterministic)."""
    train_every: int = 64
    """Env steps (frames; a vector step of n sub-envs counts n) between training rounds."""
    updates: int = 1
    """Learner train steps per round. Replay ratio = updates * batch_size / train_every (1 by default)."""
    buffer_size: int = 4096
    """Capacity K of the FIFO rollout buffer, in frames (about 80 episodes of 50 steps)."""
    warmup: int = 1024
    """Frames buffered before the first round, so that the first batches (which allocate the first
    environment and its mask) are not all from one episode. Clamped to [batch_size, buffer_size]."""
    clip: float = 10.0
    """Latent means are clipped to [-clip, clip] (the observation space's bounds)."""
    emit: str = "mu"
    """What the latent observation holds: ``"mu"``, the means of every latent; ``"used"``, the means with
    every latent outside the used set u^s of the environment q(s|x) assigns the frame (A.2) set to 0 --
    latents a look does not use but whose values still vary with its factors, which a policy or readout fit
    on one environment would otherwise lean on in another (readout transfer moving inverse Fashion -> moving
    Fashion: docs/findings.md section 5)."""
    include_env: bool = False
    """Add the inferred environment one-hot (key ``"env"``; observation becomes a Dict)."""
    include_mask: bool = False
    """Add the inferred environment's latent mask (key ``"mask"``; observation becomes a Dict)."""
    asynchronous: bool = False
    """Run training rounds in a background thread (latents lag by one round, not reproducible)."""
    seed: int = 0
    """Seed of the buffer sampler."""
    agent_loop: bool = True
    """Only when the wrapper builds its own learner (none passed): the preset with
    :data:`vase_rl.core.config.AGENT_LOOP` on top (True: the steady, settled anchor, the sign pick with the input
    view, the two-sided test of eq. 6) or the preset as it is (False). Measured in the agent's loop, 5
    seeds: a PPO policy on moving Fashion kept 100 % of its return on moving inverse Fashion after
    reward-free adaptation with it (96 % without the input view), -40 % with the cpu preset alone
    (``benchmarks/results/rl_transfer``); a life-long agent through five looks forgot 0.00
    (``benchmarks/results/rl_lifelong``)."""

    def __post_init__(self) -> None:
        for name in ("train_every", "updates", "buffer_size", "warmup"):
            if getattr(self, name) < 1:
                raise ValueError(f"OnlineConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.clip > 0 and np.isfinite(self.clip)):
            raise ValueError(f"OnlineConfig.clip must be a positive finite number, got {self.clip}")
        if self.emit not in EMISSIONS:
            raise ValueError(f"OnlineConfig.emit must be one of {EMISSIONS}, got {self.emit!r}")

    @classmethod
    def build(cls, config: OnlineConfig | None = None, **options: Any) -> OnlineConfig:
        """``config`` (or the defaults) with ``options`` replaced; unknown names raise a TypeError."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise TypeError(f"unknown VASE wrapper option(s) {unknown}; valid options: {sorted(valid)}")
        return dataclasses.replace(config or cls(), **options)


def load_wrapped(path: str, device: str | torch.device = "auto") -> tuple[ContinualLearner, OnlineConfig]:
    """Learner and wrapper config stored by :meth:`OnlineVASE.save` (CheckpointError if unreadable)."""
    config, state, extra = load_checkpoint(path)
    learner = ContinualLearner(config, device=device)
    learner.load_state_dict(state)
    stored: Mapping[str, Any] = extra.get(CHECKPOINT_KEY, {})
    return learner, OnlineConfig.build(**stored)
