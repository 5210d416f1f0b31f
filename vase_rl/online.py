"""The online VASE engine behind every wrapper: validate and encode frames, buffer them, train.

Layering (imports run one way): core (``learner``, ``config``, ``preprocess``) <- this module <-
wrappers (:mod:`vase_rl.wrapper`, :mod:`vase_rl.vector_wrapper`, the SB3 ``VecEnvWrapper`` in
:mod:`vase_rl.agents.sb3_vec`). A single env is a batch of one: every wrapper owns one
:class:`OnlineVASE` and forwards ``(B, *frame_shape)`` batches of frames to :meth:`OnlineVASE.process`.

Contents: :class:`OnlineConfig` (the wrapper options), :class:`RolloutBuffer`, :class:`InferenceCopy`,
:class:`OnlineVASE`, :func:`load_wrapped` and :class:`VASEWrapperMixin` (the public methods every
wrapper shares). Which spaces are images and the learner a wrapper builds when given none:
:mod:`vase_rl.image_space`.

>>> from gymnasium import spaces
>>> engine = OnlineVASE.create(spaces.Box(0, 255, (210, 160, 3), np.uint8), device="cpu", learn=False)
>>> engine.encode(np.zeros((2, 210, 160, 3), np.uint8)).shape  # frames resized to the cpu preset's 32x32
(2, 24)

Change log: 0.1.0 -- engine moved here from ``vector_wrapper`` (``OnlineConfig`` was ``WrapperConfig``);
the default learner resizes frames to its preset's image size and takes the preset from the device.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
import weakref
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from .checkpoint import load_checkpoint
from .image_space import default_learner, image_layout
from .learner import ContinualLearner

__all__ = [
    "CHECKPOINT_KEY",
    "InferenceCopy",
    "OnlineConfig",
    "OnlineVASE",
    "RolloutBuffer",
    "VASEWrapperMixin",
    "WrapperConfig",
    "learner_lock",
    "load_wrapped",
]

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
                raise ValueError(f"OnlineConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not (self.clip > 0 and np.isfinite(self.clip)):
            raise ValueError(f"OnlineConfig.clip must be a positive finite number, got {self.clip}")

    @classmethod
    def build(cls, config: OnlineConfig | None = None, **options: Any) -> OnlineConfig:
        """``config`` (or the defaults) with ``options`` replaced; unknown names raise a TypeError."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - valid)
        if unknown:
            raise TypeError(f"unknown VASE wrapper option(s) {unknown}; valid options: {sorted(valid)}")
        return dataclasses.replace(config or cls(), **options)


WrapperConfig = OnlineConfig
"""The name ``OnlineConfig`` had before 0.1.0's engine module (kept for existing code)."""


def load_wrapped(path: str, device: str | torch.device = "auto") -> tuple[ContinualLearner, OnlineConfig]:
    """Learner and wrapper config stored by :meth:`OnlineVASE.save` (CheckpointError if unreadable)."""
    config, state, extra = load_checkpoint(path)
    learner = ContinualLearner(config, device=device)
    learner.load_state_dict(state)
    stored: Mapping[str, Any] = extra.get(CHECKPOINT_KEY, {})
    return learner, OnlineConfig.build(**stored)


# ------------------------------------------------------------------------------------------------
# The engine.


class RolloutBuffer:
    """FIFO of the ``capacity`` most recent preprocessed frames, sampled uniformly without replacement.

    Storage: (capacity, C, S, S) uint8 on the learner's device (frames in [0, 1] quantised to 1/255,
    a quarter of float32's memory: 16 MB for 4096 frames at 64x64), allocated on the first ``add``.
    """

    def __init__(self, capacity: int, frame_shape: tuple[int, int, int], device: torch.device) -> None:
        self.capacity, self.frame_shape, self.device = capacity, frame_shape, device
        self.data: torch.Tensor | None = None
        self.size = self.head = 0

    def __len__(self) -> int:
        return self.size

    def add(self, x: torch.Tensor) -> None:
        """Append frames x (B, C, S, S) float in [0, 1], overwriting the oldest once full."""
        if self.data is None:
            self.data = torch.empty((self.capacity, *self.frame_shape), dtype=torch.uint8, device=self.device)
        x = x[-self.capacity :]
        idx = (self.head + torch.arange(x.shape[0], device=self.device)) % self.capacity
        self.data[idx] = x.mul(255.0).round_().to(torch.uint8)
        self.head = (self.head + x.shape[0]) % self.capacity
        self.size = min(self.size + x.shape[0], self.capacity)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n distinct buffered frames (n, C, S, S) float in [0, 1]; ValueError if fewer than n are held."""
        if self.data is None or n > self.size:
            raise ValueError(f"cannot sample {n} frames from a rollout buffer holding {self.size}")
        idx = torch.randperm(self.size, generator=generator)[:n]
        return self.data[idx.to(self.device)].float().div_(255.0)

    def clear(self) -> None:
        self.size = self.head = 0


class InferenceCopy:
    """A copy of the learner's encoder and environment classifier used to encode observations.

    Encoding from a copy lets a background training round (asynchronous mode) update the learner
    without blocking or tearing the weights the env steps read. The copy runs under
    ``torch.inference_mode`` (no autograd bookkeeping) and, on CPU, channels-last: its conv weights
    are (as the learner's, :func:`vase_rl.model.channels_last_`) and NCHW inputs (RGB HxWx3 or CxHxW
    frames) are laid out so too; 1-channel frames are both layouts at once (no copy).
    ``refresh()`` copies the learner's weights whenever they changed (tensor version counters or the
    learner's step moved), so the copy's latents equal ``learner.encode`` up to float rounding.
    """

    def __init__(self, learner: ContinualLearner) -> None:
        self.learner = learner
        self.encoder = copy.deepcopy(learner.model.encoder).eval().requires_grad_(False)
        self.classifier = copy.deepcopy(learner.model.classifier).eval().requires_grad_(False)
        self.channels_last = learner.device.type == "cpu"
        if self.channels_last:
            self.encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        model = learner.model  # parameter lists cached: walking the modules costs ~0.5 ms per frame
        self._sources = [*model.encoder.parameters(), *model.classifier.parameters()]
        self._targets = [*self.encoder.parameters(), *self.classifier.parameters()]
        self._stamp: tuple[int, int] | None = None

    def refresh(self) -> None:
        """Copy the learner's weights into the copy if they changed since the last refresh."""
        stamp = (self.learner.step, sum(p._version for p in self._sources))
        if stamp == self._stamp:
            return
        with torch.no_grad():
            for dst, src in zip(self._targets, self._sources, strict=True):
                dst.copy_(src)
        self._stamp = stamp

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, with_env: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, C, S, S) -> mu (B, N) and, if ``with_env``, the argmax of q(s|x) per frame (B,) int64."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        mu, _, hidden = self.encoder(x)
        if not with_env:
            return mu, None
        n_seen = max(self.learner.memory.n_seen, 1)
        return mu, self.classifier(hidden, n_seen).argmax(1)


_LOCKS: weakref.WeakKeyDictionary[ContinualLearner, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def learner_lock(learner: ContinualLearner) -> threading.RLock:
    """The lock that serialises training of ``learner`` across every wrapper and thread sharing it."""
    with _LOCKS_GUARD:
        if learner not in _LOCKS:
            _LOCKS[learner] = threading.RLock()
        return _LOCKS[learner]


class OnlineVASE:
    """The engine behind every VASE wrapper: validate + encode frames in one pass, buffer, train.

    Args:
        learner: the (possibly shared) learner.
        frame_space: the observation space of *one* frame (validated by
            :func:`~vase_rl.image_space.image_layout`).
        config: wrapper options.
    """

    def __init__(
        self, learner: ContinualLearner, frame_space: spaces.Space[Any], config: OnlineConfig
    ) -> None:
        _, _, channels = image_layout(frame_space)
        mc = learner.config.model
        if channels != mc.channels:
            raise ValueError(
                f"the env's images have {channels} channel(s) (space {frame_space}) but the learner's model "
                f"expects {mc.channels}"
            )
        batch = learner.config.batch_size
        if config.buffer_size < batch:
            raise ValueError(
                f"buffer_size={config.buffer_size} is smaller than the learner's batch_size={batch}"
            )
        assert isinstance(frame_space, spaces.Box)
        self.learner, self.config, self.frame_shape = learner, config, tuple(frame_space.shape)
        self.learn = config.learn
        self.min_frames = max(batch, min(config.warmup, config.buffer_size))
        self.buffer = RolloutBuffer(
            config.buffer_size, (mc.channels, mc.image_size, mc.image_size), learner.device
        )
        self.copy = InferenceCopy(learner)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.lock = learner_lock(learner)
        self.observation_space = self._make_space()
        self.env_steps = self.train_steps = 0
        self.train_time_s = 0.0
        self.last_stats: dict[str, Any] = {}
        self._since_round = 0
        self._executor: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None

    @classmethod
    def create(
        cls,
        frame_space: spaces.Space[Any],
        learner: ContinualLearner | None = None,
        config: OnlineConfig | None = None,
        preset: str | None = None,
        device: str | torch.device = "auto",
        **options: Any,
    ) -> OnlineVASE:
        """The engine a wrapper builds: ``learner`` or :func:`~vase_rl.image_space.default_learner`
        (``preset``, ``device``),
        and ``config`` (or the defaults) with ``options`` (:class:`OnlineConfig` field names) replaced."""
        config = OnlineConfig.build(config, **options)  # unknown options fail before a learner is built
        if learner is None:
            learner = default_learner(frame_space, preset, device)
        return cls(learner, frame_space, config)

    def _make_space(self) -> spaces.Space[Any]:
        mc, c = self.learner.config.model, float(self.config.clip)
        latent = spaces.Box(-c, c, (mc.latent_dim,), np.float32)
        if not (self.config.include_env or self.config.include_mask):
            return latent
        parts: dict[str, spaces.Space[Any]] = {"latent": latent}
        if self.config.include_env:
            parts["env"] = spaces.Box(0.0, 1.0, (mc.max_environments,), np.float32)
        if self.config.include_mask:
            parts["mask"] = spaces.Box(0.0, 1.0, (mc.latent_dim,), np.float32)
        return spaces.Dict(parts)

    # ----------------------------------------------------------------------------- encoding
    @property
    def learning(self) -> bool:
        """True when frames are buffered and trained on (``learn`` and the learner not frozen)."""
        return self.learn and not self.learner.frozen

    def to_input(self, frames: Any) -> torch.Tensor:
        """frames (B, *frame_shape) uint8 or float -> (B, C, S, S) float on the learner's device."""
        shape = tuple(getattr(frames, "shape", ()))
        if shape[1:] != self.frame_shape:
            raise ValueError(
                f"expected frames of shape {self.frame_shape} (the wrapped env's observation space), "
                f"got a batch of shape {shape[1:] if shape else type(frames).__name__}"
            )
        return self.learner.preprocess(frames, batched=True)

    def encode(self, frames: Any) -> Any:
        """Latents of frames (B, *frame_shape), no learning: (B, latent_dim) float32, or a dict of arrays."""
        return self._encode_input(self.to_input(frames))

    def process_with(self, frames: Any, others: Any | None) -> tuple[Any, Any | None]:
        """:meth:`process` of frames (B, *frame_shape), and the latents of ``others`` (B', *frame_shape)
        -- frames that are encoded but not trained on, e.g. an SB3 step's terminal observations -- from
        the same batched encoder pass (one pass instead of two; ``others=None``: no second output).
        Only ``frames`` go into the buffer and count as env steps."""
        if others is None or len(others) == 0:
            return self.process(frames), None
        x = self.to_input(frames)
        out = self._encode_input(torch.cat([x, self.to_input(others)]))
        n = x.shape[0]
        if isinstance(out, dict):
            mine, theirs = {k: v[:n] for k, v in out.items()}, {k: v[n:] for k, v in out.items()}
        else:
            mine, theirs = out[:n], out[n:]
        self._learn_from(x)
        return mine, theirs

    def _encode_input(self, x: torch.Tensor) -> Any:
        self._raise_pending_error()
        if self.lock.acquire(blocking=False):  # a training round in flight keeps the previous copy
            try:
                self.copy.refresh()
            finally:
                self.lock.release()
        c = self.config.clip
        with torch.inference_mode():  # mu is an inference tensor: clamped in place inside the mode
            mu, env = self.copy(x, with_env=self.config.include_env or self.config.include_mask)
            latent = mu.clamp_(-c, c).cpu().numpy().astype(np.float32, copy=False)
            env_np = None if env is None else env.cpu().numpy()
        if env_np is None:
            return latent
        out = {"latent": latent}
        if self.config.include_env:
            out["env"] = np.eye(self.learner.config.model.max_environments, dtype=np.float32)[env_np]
        if self.config.include_mask:
            out["mask"] = self.learner.applied_masks().cpu()[env_np].numpy().astype(np.float32)
        return out

    def process(self, frames: Any) -> Any:
        """Encode frames (B, *frame_shape); while learning, buffer them and train when a round is due."""
        x = self.to_input(frames)
        out = self._encode_input(x)
        self._learn_from(x)
        return out

    def _learn_from(self, x: torch.Tensor) -> None:
        """While learning: buffer x (B, C, S, S) in [0, 1], count the frames, train when a round is due."""
        if self.learning:
            self.buffer.add(x)
            self.env_steps += x.shape[0]
            self._since_round += x.shape[0]
            rounds, self._since_round = divmod(self._since_round, self.config.train_every)
            if rounds and len(self.buffer) >= self.min_frames:
                self._start_rounds(rounds)

    # ----------------------------------------------------------------------------- training
    def _start_rounds(self, rounds: int) -> None:
        n, bs = rounds * self.config.updates, self.learner.config.batch_size
        batches = [self.buffer.sample(bs, self.generator) for _ in range(n)]
        if not self.config.asynchronous:
            self._train(batches)
            return
        self.wait()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vase-train")
        self._pending = self._executor.submit(self._train, batches)

    def _train(self, batches: list[torch.Tensor]) -> None:
        with self.lock:
            if self.learner.frozen:
                return
            start = time.perf_counter()
            for batch in batches:
                result: Any = self.learner.train_step(batch)
                # a typed step result (``to_log()``) or the plain dict of scalars
                self.last_stats = result.to_log() if hasattr(result, "to_log") else dict(result)
                self.train_steps += 1
            self.train_time_s += time.perf_counter() - start

    def wait(self) -> None:
        """Block until a background training round (asynchronous mode) has finished; re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _raise_pending_error(self) -> None:
        if self._pending is not None and self._pending.done():
            self.wait()

    def stats(self) -> dict[str, Any]:
        """Counters and the last train step's scalars (``env``, ``n_envs``, ``loss``, ``recon``, ...)."""
        keep = ("env", "new_env", "n_envs", "loss", "recon", "kl", "C", "reason", "step")
        out = {k: self.last_stats[k] for k in keep if k in self.last_stats}
        out.update(
            env_steps=self.env_steps,
            train_steps=self.train_steps,
            train_time_s=self.train_time_s,
            buffer=len(self.buffer),
            learning=self.learning,
        )
        return out

    def close(self) -> None:
        """Finish any background round and stop the training thread."""
        try:
            self.wait()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    def save(self, path: str) -> None:
        """Atomic learner checkpoint with this wrapper's config in ``extra`` (waits for a pending round)."""
        self.wait()
        with self.lock:
            self.learner.save(path, extra={CHECKPOINT_KEY: dataclasses.asdict(self.config)})

    def __getstate__(self) -> dict[str, Any]:
        self.wait()
        state = dict(self.__dict__)
        state.update(_executor=None, _pending=None, lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.lock = learner_lock(self.learner)


# ------------------------------------------------------------------------------------------------
# What every wrapper shares.


class VASEWrapperMixin:
    """Public API shared by every VASE wrapper; ``self.vase`` is the wrapper's :class:`OnlineVASE`."""

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
        learner, config = load_wrapped(path, device)
        return cls(env, learner, config=config, **options)  # type: ignore[call-arg]
