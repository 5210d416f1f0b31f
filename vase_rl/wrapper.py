"""``VASEObservation``: image frames in, VASE latent means out, while VASE keeps learning from them.

A gymnasium :class:`~gymnasium.ObservationWrapper` (STYLE.md: modelled on gymnasium's observation
wrappers and SB3's ``VecTransposeImage``). Every frame is validated, resized to the model's input and
encoded to the latent mean ``mu(x)`` of a :class:`~vase_rl.learner.ContinualLearner`; while ``learn``
is on, frames also go into a rollout buffer from which the learner trains, with no task labels,
across every environment the agent visits (one learner may be shared by many wrapped envs).

>>> import gymnasium as gym, vase_rl.envs
>>> from vase_rl.config import get_preset
>>> from vase_rl.learner import ContinualLearner
>>> learner = ContinualLearner(get_preset("cpu"), device="cpu")
>>> env = VASEObservation(gym.make("vase_rl/MovingShapes-v0", canvas_size=32), learner, learn=False)
>>> obs, info = env.reset(seed=0)
>>> env.observation_space == gym.spaces.Box(-10, 10, (learner.config.model.latent_dim,), "float32")
True
>>> obs.dtype, env.observation_space.contains(obs)
(dtype('float32'), True)

Observation space
    ``Box(-clip, clip, (latent_dim,), float32)`` with ``clip = 10`` by default: ``mu`` is clipped to
    that range so that the space has finite bounds (the checkers warn otherwise). Trained VASE means
    stay within a few units of 0 (the prior is N(0, I) and eq. 3 bounds the KL), so the clip only
    ever touches an untrained or diverging encoder. With ``include_env`` / ``include_mask`` the space
    is a ``Dict`` with keys ``"latent"``, ``"env"`` (one-hot of the environment that the auxiliary
    classifier q(s|x) infers from this frame, ``(max_environments,)`` float32) and ``"mask"`` (that
    environment's latent mask a^s, ``(latent_dim,)`` float32 in {0, 1}).

Online learning (``learn=True``)
    Frames are kept in a :class:`~vase_rl.vector_wrapper.RolloutBuffer`, a FIFO of the ``buffer_size``
    (4096) most recent frames of *this* wrapper's stream. Once ``warmup`` frames are held, every
    ``train_every`` env steps (frames) the learner takes ``updates`` train steps on batches of
    ``learner.config.batch_size`` frames drawn without replacement from it. VASE's atypicality (eq. 4)
    and environment inference (eq. 6) assume batches that look like i.i.d. draws from the environment;
    consecutive rollout frames are strongly correlated, so the buffer is large (many episodes) and
    sampled uniformly.
    The learner infers the environment of each batch (eq. 6), so a batch should come from one
    environment phase: give each environment its own wrapper (own buffer, shared learner) and call
    :meth:`~VASEWrapperMixin.clear_buffer` when the wrapped env itself changes source; otherwise
    batches mix old and new frames for ``buffer_size`` steps after the switch.
    While learning, the same frame maps to different latents over time (the encoder trains): the
    observation is **not** stationary, and checkers that compare two rollouts will fail. Agents
    should either alternate phases (learn, then ``freeze()`` and train the policy on fixed latents;
    ``unfreeze()`` for the next environment) or keep fine-tuning the policy while the latents drift
    (VASE's dreaming feedback is meant to limit the drift on past environments; an improving policy
    also shifts the frame distribution, which VASE may take for a new environment --
    ``benchmarks/results/rl_transfer.md``). ``learn=False`` or
    ``freeze()`` gives deterministic latents; ``freeze()`` freezes the (shared) learner itself.
    Normalise the latents for the policy (``vase_rl.agents.sb3.normalize_latents``, SB3's
    ``VecNormalize``): their scales differ per unit and drift while VASE learns.

Asynchronous mode (``asynchronous=True``)
    Training rounds run in a background thread while the env keeps stepping; frames are encoded by a
    copy of the encoder that is refreshed after each round (latents lag by at most one round and are
    not reproducible). It can only hide the env-stepping and encoding time of a round behind the
    round's training (measured on a loaded 2-core CPU: 10% less wall time per train step, which is
    within the noise of that machine; ``benchmarks/results/wrapper_speed.md``), so it is off by default.

Vectorised forms, sub-processes, persistence
    ``vase_rl.vector_wrapper`` holds the gymnasium vector wrapper and the SB3 ``VecEnvWrapper``; both
    encode all sub-envs in one batched pass and return the same latents as this wrapper. With
    ``SubprocVecEnv``, wrap the *vector* env in the main process (``VASEVecEnv``) so one learner sees
    every frame; wrapping inside the workers gives each worker its own copy of the learner (use it
    only frozen, and push weights with ``vec_env.env_method("set_learner_state", state)``).
    ``save(path)`` writes the learner checkpoint plus the wrapper config; ``Cls.load(path, env)``
    rebuilds the wrapper with the same encoder. The rollout buffer is transient and not saved.

Change log: 0.1.0 -- first version.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from .config import VASEConfig, get_preset
from .learner import ContinualLearner

if TYPE_CHECKING:
    from .vector_wrapper import OnlineVASE

__all__ = [
    "VASEObservation",
    "VASEWrapperMixin",
    "WrapperConfig",
    "default_learner",
    "image_layout",
]

CHECKPOINT_KEY = "vase_rl.wrapper"
"""Key of the wrapper config inside a learner checkpoint's ``extra``."""


@dataclasses.dataclass(frozen=True)
class WrapperConfig:
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
    include_env: bool = False
    """Add the inferred environment one-hot (key ``"env"``; observation becomes a Dict)."""
    include_mask: bool = False
    """Add the inferred environment's latent mask (key ``"mask"``; observation becomes a Dict)."""
    asynchronous: bool = False
    """Run training rounds in a background thread (latents lag by one round, not reproducible)."""
    seed: int = 0
    """Seed of the buffer sampler."""

    def __post_init__(self) -> None:
        for name in ("train_every", "updates", "buffer_size", "warmup"):
            if getattr(self, name) < 1:
                raise ValueError(f"WrapperConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.clip > 0 and np.isfinite(self.clip)):
            raise ValueError(f"WrapperConfig.clip must be a positive finite number, got {self.clip}")

    @classmethod
    def build(cls, config: WrapperConfig | None = None, **options: Any) -> WrapperConfig:
        """``config`` (or the defaults) with ``options`` replaced; unknown names raise a TypeError."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise TypeError(f"unknown VASE wrapper option(s) {unknown}; valid options: {sorted(valid)}")
        return dataclasses.replace(config or cls(), **options)


def image_layout(space: gym.Space[Any]) -> tuple[int, int, int]:
    """(H, W, C) of an image observation space; TypeError (not a Box) or ValueError (a Box that is not
    an image) saying what an image space is.

    Accepted: ``Box`` of dtype uint8 (any bounds within [0, 255]) or float (bounds within [0, 1]) and
    shape (H, W), (H, W, C) or (C, H, W) with C in {1, 3} -- the layouts ``learner.preprocess`` reads.
    """
    expected = "a Box image space of shape (H, W), (H, W, C) or (C, H, W) with C in (1, 3)"
    if not isinstance(space, spaces.Box):
        raise TypeError(f"VASE wrappers need {expected}; got {space!r}")
    shape = space.shape
    if len(shape) == 2:
        h, w, c = shape[0], shape[1], 1
    elif len(shape) == 3 and shape[-1] in (1, 3):
        h, w, c = shape
    elif len(shape) == 3 and shape[0] in (1, 3):
        c, h, w = shape
    else:
        raise ValueError(f"VASE wrappers need {expected}; got a Box of shape {shape}")
    if min(h, w) < 2:
        raise ValueError(f"image observations of shape {shape} are too small to encode")
    if space.dtype == np.uint8:
        return h, w, c
    if np.issubdtype(space.dtype, np.floating):
        if np.all(space.low >= 0.0) and np.all(space.high <= 1.0):
            return h, w, c
        raise ValueError(
            f"float image spaces must have bounds within [0, 1]; got low={space.low.min()}, "
            f"high={space.high.max()} (rescale to [0, 1] or use uint8 images)"
        )
    raise ValueError(f"VASE wrappers need uint8 or float images; got a Box of dtype {space.dtype}")


def default_learner(
    space: gym.Space[Any], preset: str = "paper", device: str | torch.device = "auto"
) -> ContinualLearner:
    """A fresh learner from ``preset`` sized to ``space``: image_size = max(H, W) rounded to the
    nearest multiple of 16 (at least 16), channels from the space."""
    h, w, c = image_layout(space)
    size = max(16, int(max(h, w) / 16.0 + 0.5) * 16)  # half-way rounds up (84 -> 80, 40 -> 48)
    config: VASEConfig = get_preset(preset).with_overrides(model={"image_size": size, "channels": c})
    return ContinualLearner(config, device=device)


def _engine() -> Any:
    """``vase_rl.vector_wrapper``, home of the batched engine (imported on use: it imports this module)."""
    from . import vector_wrapper

    return vector_wrapper


class VASEWrapperMixin:
    """Public API shared by :class:`VASEObservation` and the vector wrappers; ``self.vase`` is the engine."""

    vase: OnlineVASE

    @property
    def learner(self) -> ContinualLearner:
        return self.vase.learner

    @property
    def learn(self) -> bool:
        """Whether this wrapper trains the learner (settable; ``freeze()`` stops the learner itself)."""
        return self.vase.learn

    @learn.setter
    def learn(self, value: bool) -> None:
        self.vase.learn = bool(value)

    def freeze(self) -> None:
        """Evaluation: stop training the learner (it is frozen for every wrapper sharing it)."""
        self.vase.wait()
        self.learner.freeze()

    def unfreeze(self) -> None:
        self.learner.unfreeze()

    def clear_buffer(self) -> None:
        """Drop the buffered frames (call when the wrapped env switches to another environment)."""
        self.vase.wait()
        self.vase.buffer.clear()

    def vase_stats(self) -> dict[str, Any]:
        """See :meth:`OnlineVASE.stats`."""
        return self.vase.stats()

    def set_learner_state(self, state: dict[str, Any]) -> None:
        """Load ``learner.state_dict()`` from elsewhere (e.g. broadcast to SubprocVecEnv workers)."""
        self.vase.wait()
        with self.vase.lock:
            self.learner.load_state_dict(state)

    def save(self, path: str) -> None:
        """Write the learner checkpoint + wrapper config to ``path`` (atomic)."""
        self.vase.save(path)

    @classmethod
    def load(cls, path: str, env: Any, device: str | torch.device = "auto", **options: Any) -> Any:
        """Rebuild the wrapper around ``env`` from :meth:`save`'s file; ``options`` override its config."""
        learner, config = _engine().load_wrapped(path, device)
        return cls(env, learner, config=config, **options)  # type: ignore[call-arg]


class VASEObservation(
    VASEWrapperMixin, gym.ObservationWrapper[Any, Any, Any], gym.utils.RecordConstructorArgs
):
    """Image observations -> clipped VASE latent means; trains the learner online while ``learn``.

    Args:
        env: an env with an image observation space (see :func:`image_layout`).
        learner: the learner to use and share; None builds :func:`default_learner` (``preset``, ``device``).
        config: a :class:`WrapperConfig`; ``options`` (its field names, e.g. ``learn=False``) override it.
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        learner: ContinualLearner | None = None,
        *,
        config: WrapperConfig | None = None,
        preset: str = "paper",
        device: str | torch.device = "auto",
        **options: Any,
    ) -> None:
        learner = learner if learner is not None else default_learner(env.observation_space, preset, device)
        config = WrapperConfig.build(config, **options)
        gym.utils.RecordConstructorArgs.__init__(self, learner=learner, config=config)  # env.spec.make()
        gym.ObservationWrapper.__init__(self, env)
        self.vase = _engine().OnlineVASE(learner, env.observation_space, config)
        self.observation_space = self.vase.observation_space

    def observation(self, observation: Any) -> Any:
        """One frame (*frame_shape) -> latent (latent_dim,) float32 (or a dict of such arrays)."""
        out = self.vase.process(np.asarray(observation)[None])
        if isinstance(out, dict):
            return {k: v[0] for k, v in out.items()}
        return out[0]

    def close(self) -> None:
        self.vase.close()
        super().close()
