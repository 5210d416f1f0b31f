"""``VASEVectorObservation``: the gymnasium vector form of :class:`~vase_rl.rl.wrapper.VASEObservation`.

A :class:`~gymnasium.vector.VectorObservationWrapper` that encodes the frames of all sub-envs in one
batched pass of the shared engine :class:`~vase_rl.rl.online.OnlineVASE` and returns the latents of
:class:`~vase_rl.rl.wrapper.VASEObservation`, frame for frame. Its buffer holds the frames of *all*
sub-envs, so the sub-envs of one vector env should be one environment; ``train_every`` counts frames.
With ``AsyncVectorEnv``, wrap it here in the main process and one learner sees every frame (nothing
to synchronise). The options and their rationale: :mod:`vase_rl.rl.wrapper`.

The Stable-Baselines3 ``VecEnvWrapper`` (``VASEVecEnv``, formerly here) lives next to the SB3 glue:
``from vase_rl.agents.sb3_vec import VASEVecEnv`` (``sb3`` extra), so that the core package never
imports stable-baselines3.
"""

from __future__ import annotations

from typing import Any

import torch
from gymnasium.vector import VectorEnv, VectorObservationWrapper
from gymnasium.vector.utils import batch_space

from vase_rl.core.learner import ContinualLearner
from vase_rl.rl.online import OnlineVASE
from vase_rl.rl.online_config import OnlineConfig
from vase_rl.rl.wrapper_mixin import VASEWrapperMixin

__all__ = ["VASEVectorObservation"]


class VASEVectorObservation(VASEWrapperMixin, VectorObservationWrapper):
    """Gymnasium vector env of images -> (num_envs, latent_dim) latents (or a dict of batched arrays).

    Args: as :class:`~vase_rl.rl.wrapper.VASEObservation` except ``frame_in_info`` (single envs only),
    with a ``VectorEnv`` (autoreset NEXT_STEP or DISABLED) instead of an env.
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
