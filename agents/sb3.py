"""Stable-Baselines3 glue: train policies on VASE latents, or encode images inside a policy.

Two routes (needs the ``sb3`` extra):

* **Latents as observations** (the design's main route): wrap the env with
  :class:`~vase_rl.rl.wrapper.VASEObservation` or a vector env with :class:`~vase_rl.agents.sb3_vec.VASEVecEnv`
  (VASE keeps learning from the rollouts while ``learn=True``), then :func:`train_on_latents`
  (which normalises the latents with SB3's ``VecNormalize`` by default, see :func:`normalize_latents`).
  :class:`VASELoggingCallback` records the learner's scalars under ``vase/`` in SB3's logger
  (TensorBoard when ``tensorboard_log`` is set). :func:`save_agent` / :func:`load_agent` store the
  policy together with the learner checkpoint, so a reloaded policy sees the same encoder.
* **Encoder inside the policy**: :class:`VASEFeaturesExtractor` is a ``BaseFeaturesExtractor`` that
  maps image observations to the clipped latent means of a frozen copy of a VASE encoder.

>>> import gymnasium as gym, vase_rl.envs
>>> from vase_rl.core.config import get_preset
>>> from vase_rl.core.learner import ContinualLearner
>>> learner = ContinualLearner(get_preset("cpu"), device="cpu")
>>> venv = make_latent_vec_env("vase_rl/MovingShapes-v0", 2, learner, env_kwargs={"canvas_size": 32})
>>> model = train_on_latents(venv, "ppo", total_timesteps=64, n_steps=32, batch_size=32)
>>> model.observation_space.shape == (learner.config.model.latent_dim,)
True
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch
from gymnasium import spaces
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecEnvWrapper, VecNormalize
from torch import nn

from vase_rl.core.learner import ContinualLearner
from vase_rl.core.preprocess import to_model_input
from vase_rl.rl.image_space import image_layout
from vase_rl.rl.online import OnlineVASE
from vase_rl.rl.online_config import OnlineConfig
from vase_rl.rl.wrapper_mixin import VASEWrapperMixin

from .sb3_vec import VASEVecEnv

__all__ = [
    "ALGORITHMS",
    "SmallCNN",
    "VASEFeaturesExtractor",
    "VASELoggingCallback",
    "VASEVecEnv",
    "algorithm_class",
    "find_vase",
    "load_agent",
    "make_latent_vec_env",
    "normalize_latents",
    "normalized_like",
    "save_agent",
    "train_on_latents",
]

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "dqn": DQN, "sac": SAC}
"""Supported algorithms: PPO (any action space), DQN (Discrete), SAC (Box)."""


def algorithm_class(name: str, action_space: gym.Space[Any]) -> type[BaseAlgorithm]:
    """The SB3 class for ``name``; ValueError if unknown or incompatible with ``action_space``."""
    key = name.lower()
    if key not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {sorted(ALGORITHMS)}")
    if key == "dqn" and not isinstance(action_space, spaces.Discrete):
        raise ValueError(f"DQN needs a Discrete action space, got {action_space} (use PPO or SAC)")
    if key == "sac" and not isinstance(action_space, spaces.Box):
        raise ValueError(f"SAC needs a Box action space, got {action_space} (use PPO or DQN)")
    return ALGORITHMS[key]


def make_latent_vec_env(
    env_id: str,
    n_envs: int = 1,
    learner: ContinualLearner | None = None,
    *,
    seed: int = 0,
    vec_env_cls: type[DummyVecEnv | SubprocVecEnv] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> VASEVecEnv:
    """``make_vec_env(env_id, n_envs, ...)`` wrapped in :class:`VASEVecEnv` in this process, so that one
    learner sees the frames of every sub-env even with ``vec_env_cls=SubprocVecEnv``.

    ``options``: :class:`~vase_rl.rl.online_config.OnlineConfig` fields (``learn``, ``train_every``, ...) or
    ``preset``/``device`` for a fresh learner. ``vase_rl/...`` ids are made as ``vase_rl.envs:vase_rl/...``
    so that sub-processes started by spawn/forkserver register the sprite envs before making them.
    """
    if env_id.startswith("vase_rl/"):
        env_id = f"vase_rl.envs:{env_id}"
    venv = make_vec_env(env_id, n_envs=n_envs, seed=seed, vec_env_cls=vec_env_cls, env_kwargs=env_kwargs)
    return VASEVecEnv(venv, learner, **options)


def find_vase(env: Any) -> OnlineVASE | None:
    """The VASE engine inside ``env`` (a VASE wrapper, a VecEnv chain, or a DummyVecEnv's first env)."""
    while env is not None:
        if isinstance(env, VASEWrapperMixin):
            return env.vase
        if isinstance(env, VecEnvWrapper):
            env = env.venv
        elif isinstance(env, DummyVecEnv):
            env = env.envs[0]
        elif isinstance(env, gym.Wrapper):
            env = env.env
        else:
            return None
    return None


class VASELoggingCallback(BaseCallback):
    """Records the VASE learner's numeric stats (``vase/loss``, ``vase/n_envs``, ``vase/train_steps``,
    ...) in SB3's logger at the end of every rollout (nothing when the env holds no VASE wrapper)."""

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        vase = find_vase(self.training_env)
        if vase is None:
            return
        for key, value in vase.stats().items():
            if isinstance(value, (bool, int, float)):
                self.logger.record(f"vase/{key}", float(value))


def normalize_latents(env: gym.Env[Any, Any] | VecEnv, training: bool = True) -> VecNormalize:
    """SB3's ``VecNormalize`` on the latents only (running mean/std; rewards untouched).

    Latent units differ in scale (unused VASE units have mu ~ 0, an untrained encoder's means are
    small) and drift while VASE learns; normalising them made PPO solve MovingShapes in 16k steps
    (return 1.34 vs 0.30-0.57 unnormalised, 3 seeds; ``tests/test_sb3.py``).
    """
    if not isinstance(env, VecEnv):
        single = env
        env = DummyVecEnv([lambda: Monitor(single)])
    keys = ["latent"] if isinstance(env.observation_space, spaces.Dict) else None
    return VecNormalize(env, training=training, norm_obs=True, norm_reward=False, norm_obs_keys=keys)


def normalized_like(model: BaseAlgorithm, env: gym.Env[Any, Any] | VecEnv) -> VecEnv:
    """``env`` normalised with ``model``'s frozen ``VecNormalize`` statistics (for evaluating or
    transferring a policy on another env); ``env`` itself when the model has no ``VecNormalize``."""
    source = model.get_vec_normalize_env()
    if source is None:
        return env if isinstance(env, VecEnv) else DummyVecEnv([lambda: Monitor(env)])
    target = normalize_latents(env, training=False)
    target.obs_rms = copy.deepcopy(source.obs_rms)
    return target


def train_on_latents(
    env: gym.Env[Any, Any] | VecEnv,
    algorithm: str = "ppo",
    total_timesteps: int = 10_000,
    *,
    normalize: bool = True,
    seed: int = 0,
    tensorboard_log: str | None = None,
    callback: MaybeCallback = None,
    verbose: int = 0,
    **algo_kwargs: Any,
) -> BaseAlgorithm:
    """Build ``algorithm`` ("ppo", "dqn" or "sac") on a latent-observation env and train it.

    The policy is ``MlpPolicy`` for Box latents and ``MultiInputPolicy`` for Dict observations
    (``include_env``/``include_mask``); ``normalize`` wraps the env in :func:`normalize_latents`;
    ``algo_kwargs`` go to the SB3 constructor. Continue training (e.g. fine-tuning in a new
    environment) with ``model.set_env(normalized_like(model, new_env))``, set the new
    ``VecNormalize``'s ``training = True``, and ``model.learn(n, reset_num_timesteps=False)``.
    """
    cls = algorithm_class(algorithm, env.action_space)
    if normalize:
        env = normalize_latents(env)
    policy = "MultiInputPolicy" if isinstance(env.observation_space, spaces.Dict) else "MlpPolicy"
    model = cls(policy, env, seed=seed, tensorboard_log=tensorboard_log, verbose=verbose, **algo_kwargs)
    callbacks: list[BaseCallback] = [VASELoggingCallback()]
    if isinstance(callback, list):
        callbacks += callback
    elif callback is not None:
        callbacks.append(callback)  # type: ignore[arg-type]
    model.learn(total_timesteps, callback=CallbackList(callbacks), tb_log_name=algorithm.upper())
    return model


class VASEFeaturesExtractor(BaseFeaturesExtractor):
    """Image observations -> latent means of a frozen VASE encoder, inside an SB3 policy.

    Use with ``policy_kwargs={"features_extractor_class": VASEFeaturesExtractor,
    "features_extractor_kwargs": {"checkpoint": path}}``. SB3 hands images to the extractor as
    (B, C, H, W) float in [0, 1] (it transposes and divides by 255); they are resized to the model's
    input, encoded and clipped to [-clip, clip]: (B, features_dim) with ``features_dim = latent_dim``.
    The encoder's weights are frozen (not optimised) and saved with the policy.

    Args:
        observation_space: the env's image space.
        checkpoint: a learner checkpoint to take the encoder from (preferred: only the path is
            pickled into saved policies), or
        learner: a learner object (pickled whole into saved policies).
        features_dim: must equal the learner's latent_dim if given (explicit for readers).
        clip: as :attr:`~vase_rl.rl.online_config.OnlineConfig.clip`.
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        checkpoint: str | None = None,
        learner: ContinualLearner | None = None,
        features_dim: int | None = None,
        clip: float = OnlineConfig.clip,
    ) -> None:
        if (checkpoint is None) == (learner is None):
            raise ValueError("VASEFeaturesExtractor needs exactly one of checkpoint= or learner=")
        if learner is None:
            learner = ContinualLearner.load(str(checkpoint), device="cpu")
        mc = learner.config.model
        if features_dim is not None and features_dim != mc.latent_dim:
            raise ValueError(
                f"features_dim={features_dim} but the VASE encoder has latent_dim={mc.latent_dim}"
            )
        _, _, channels = image_layout(observation_space)
        if channels != mc.channels:
            raise ValueError(
                f"observations have {channels} channel(s), the VASE encoder expects {mc.channels}"
            )
        super().__init__(observation_space, features_dim=mc.latent_dim)
        self.image_size, self.channels, self.clip = mc.image_size, mc.channels, float(clip)
        encoder = type(learner.model.encoder)(mc)
        encoder.load_state_dict(learner.model.encoder.state_dict())
        self.encoder = encoder.requires_grad_(False).eval()

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """observations (B, C, H, W) float in [0, 1] -> (B, latent_dim) clipped latent means."""
        x = to_model_input(observations, self.image_size, self.channels, observations.device, batched=True)
        with torch.no_grad():
            mu, _, _ = self.encoder(x)
        return mu.clamp(-self.clip, self.clip)

    def apply(self, fn: Callable[[nn.Module], None]) -> VASEFeaturesExtractor:
        """``Module.apply`` that skips the frozen encoder: SB3's policies apply an orthogonal
        re-initialisation to their features extractor (``ortho_init``), which would erase it."""
        for child in self.children():
            if child is not self.encoder:
                child.apply(fn)
        fn(self)
        return self

    def train(self, mode: bool = True) -> VASEFeaturesExtractor:
        """The encoder stays in eval mode (it is frozen)."""
        super().train(mode)
        self.encoder.eval()
        return self


class SmallCNN(BaseFeaturesExtractor):
    """Conv features for small image observations, the baseline "CnnPolicy on pixels" (SB3's
    ``NatureCNN`` needs frames of at least 36x36): conv 32 4x4/2, conv 64 4x4/2, conv 64 3x3/1 (ReLU
    each), then a linear layer to ``features_dim`` with ReLU. Works down to 14x14 frames.

    observations (B, C, H, W) float in [0, 1] (SB3 transposes and scales uint8 images) -> (B, features_dim).

    >>> from stable_baselines3 import PPO
    >>> venv = make_vec_env("vase_rl.envs:vase_rl/MovingShapes-v0", 1, env_kwargs={"canvas_size": 32})
    >>> model = PPO("CnnPolicy", venv, policy_kwargs={"features_extractor_class": SmallCNN}, n_steps=8)
    >>> model.policy.features_extractor.features_dim
    128
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128) -> None:
        super().__init__(observation_space, features_dim)
        shape = observation_space.shape
        if len(shape) != 3 or min(shape[1:]) < 14:
            raise ValueError(f"SmallCNN needs channel-first images of at least 14x14, got shape {shape}")
        self.cnn = nn.Sequential(
            nn.Conv2d(shape[0], 32, 4, 2),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, 1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.cnn(torch.zeros(1, *shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))


def save_agent(model: BaseAlgorithm, folder: str) -> None:
    """Save ``policy.zip`` (SB3), ``vase.pt`` (learner checkpoint + wrapper config), ``agent.json`` and,
    when the model trains on a ``VecNormalize`` env, its statistics ``vecnormalize.pkl``."""
    vase = find_vase(model.get_env())
    if vase is None:
        raise ValueError("save_agent: the model's env holds no VASE wrapper (use model.save for plain SB3)")
    os.makedirs(folder, exist_ok=True)
    vase.save(os.path.join(folder, "vase.pt"))
    model.save(os.path.join(folder, "policy.zip"))
    norm = model.get_vec_normalize_env()
    if norm is not None:
        norm.save(os.path.join(folder, "vecnormalize.pkl"))
    algo = next(k for k, v in ALGORITHMS.items() if isinstance(model, v))
    with open(os.path.join(folder, "agent.json"), "w") as f:
        json.dump({"algorithm": algo, "normalize": norm is not None}, f)


def load_agent(
    folder: str, venv: VecEnv, device: str | torch.device = "auto", **options: Any
) -> tuple[BaseAlgorithm, VecEnv]:
    """Reload :func:`save_agent`'s folder around a raw image ``venv``: returns (model, env), where env
    is the :class:`VASEVecEnv` (inside the restored ``VecNormalize`` if one was saved).

    ``options`` override the stored wrapper config (e.g. ``learn=False`` to evaluate); the
    normalisation statistics keep updating only while the wrapper learns.
    """
    with open(os.path.join(folder, "agent.json")) as f:
        meta = json.load(f)
    env: VecEnv = VASEVecEnv.load(os.path.join(folder, "vase.pt"), venv, device=device, **options)
    if meta.get("normalize"):
        learn = env.learn  # type: ignore[attr-defined]
        env = VecNormalize.load(os.path.join(folder, "vecnormalize.pkl"), env)
        env.training = learn
    model = ALGORITHMS[meta["algorithm"]].load(os.path.join(folder, "policy.zip"), env=env, device=device)
    return model, env
