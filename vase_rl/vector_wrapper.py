"""``VASEVectorObservation``: the gymnasium vector form of :class:`~vase_rl.wrapper.VASEObservation`.

A :class:`~gymnasium.vector.VectorObservationWrapper` that encodes the frames of all sub-envs in one
batched pass of the shared engine :class:`~vase_rl.online.OnlineVASE` and returns the latents of
:class:`~vase_rl.wrapper.VASEObservation`, frame for frame. Its buffer holds the frames of *all*
sub-envs, so the sub-envs of one vector env should be one environment; ``train_every`` counts frames.
With ``AsyncVectorEnv``, wrap it here in the main process and one learner sees every frame (nothing
to synchronise). The options and their rationale: :mod:`vase_rl.wrapper`.

The Stable-Baselines3 ``VecEnvWrapper`` (``VASEVecEnv``, formerly here) lives next to the SB3 glue:
``from vase_rl.agents.sb3_vec import VASEVecEnv`` (``sb3`` extra), so that the core package never
imports stable-baselines3.

Change log: 0.1.0 -- first version; the engine moved to :mod:`vase_rl.online`, ``VASEVecEnv`` to
:mod:`vase_rl.agents.sb3_vec`.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium.vector import VectorEnv, VectorObservationWrapper
from gymnasium.vector.utils import batch_space

from .learner import ContinualLearner
from .online import OnlineConfig, OnlineVASE, VASEWrapperMixin

__all__ = ["VASEVectorObservation"]

_MOVED = {"VASEVecEnv": "vase_rl.agents.sb3_vec"}


def __getattr__(name: str) -> Any:
    """Point old imports of names that moved elsewhere to their new module (without importing it)."""
    if name in _MOVED:
        raise ImportError(
            f"{name} moved out of vase_rl.vector_wrapper (the core package does not import "
            f"stable-baselines3): use 'from {_MOVED[name]} import {name}'"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class VASEVectorObservation(VASEWrapperMixin, VectorObservationWrapper):
    """Gymnasium vector env of images -> (num_envs, latent_dim) latents (or a dict of batched arrays).

    Args: as :class:`~vase_rl.wrapper.VASEObservation`, with a ``VectorEnv`` (autoreset NEXT_STEP or
    DISABLED) instead of an env.
    """

    def __init__(
        self,
        env: VectorEnv,
        learner: ContinualLearner | None = None,
        *,
        config: OnlineConfig | None = None,
        preset: str | None = None,
        device: str | torch.device = "auto",
        **options: Any,
    ) -> None:
        super().__init__(env)
        space = env.single_observation_space
        self.vase = OnlineVASE.create(space, learner, config, preset, device, **options)
        self.single_observation_space = self.vase.observation_space
        self.observation_space = batch_space(self.vase.observation_space, self.num_envs)

    def observations(self, observations: Any) -> Any:
        """(num_envs, *frame_shape) images -> (num_envs, latent_dim) float32 (or a dict of arrays)."""
        return self.vase.process(observations)

    def close(self, **kwargs: Any) -> None:
        self.vase.close()
        super().close(**kwargs)
