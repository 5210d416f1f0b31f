"""``VASEVecEnv``: the Stable-Baselines3 ``VecEnvWrapper`` form of :class:`~vase_rl.rl.wrapper.VASEObservation`.

Modelled on SB3's ``VecTransposeImage``: ``reset`` and ``step_wait`` encode the frames of all sub-envs
in one batched pass of the shared engine :class:`~vase_rl.rl.online.OnlineVASE` and return the latents of
``VASEObservation``, frame for frame; ``terminal_observation`` infos are encoded too (in the same
encoder pass as the step's frames, not trained on). With ``SubprocVecEnv``, wrap it here in the main
process -- ``VASEVecEnv(SubprocVecEnv(...), learner)`` -- and one learner sees every frame (nothing to
synchronise). The options and their rationale: :mod:`vase_rl.rl.wrapper`. Needs the ``sb3`` extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn

from vase_rl.core.learner import ContinualLearner
from vase_rl.rl.online import OnlineVASE
from vase_rl.rl.online_config import OnlineConfig
from vase_rl.rl.wrapper_mixin import VASEWrapperMixin

__all__ = ["VASEVecEnv"]


class VASEVecEnv(VASEWrapperMixin, VecEnvWrapper):
    """SB3 ``VecEnv`` of images -> latents; one batched encoding per step for all sub-envs.

    Args: as :class:`~vase_rl.rl.wrapper.VASEObservation` except ``frame_in_info`` (single envs only), with an
    SB3 ``VecEnv`` instead of an env.
    """

    def __init__(
        self,
        venv: VecEnv,
        learner: ContinualLearner | None = None,
        *,
        config: OnlineConfig | None = None,
        preset: str | None = None,
        device: str | torch.device = "auto",
        **options: Any,
    ) -> None:
        self.vase = OnlineVASE.create(venv.observation_space, learner, config, preset, device, **options)
        super().__init__(venv, observation_space=self.vase.observation_space)

    def reset(self) -> Any:
        return self.vase.process(self.venv.reset())

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, dones, infos = self.venv.step_wait()
        terminal = [i for i, info in enumerate(infos) if "terminal_observation" in info]
        finals = np.stack([infos[i]["terminal_observation"] for i in terminal]) if terminal else None
        latents, final_latents = self.vase.process_with(obs, finals)  # one encoder pass for both
        if final_latents is not None:  # None exactly when no sub-env ended (``terminal`` is empty)
            for j, i in enumerate(terminal):
                infos[i]["terminal_observation"] = (
                    {k: v[j] for k, v in final_latents.items()}
                    if isinstance(final_latents, dict)
                    else final_latents[j]
                )
        return latents, rewards, dones, infos

    def close(self) -> None:
        self.vase.close()
        self.venv.close()
