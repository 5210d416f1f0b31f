"""The online VASE engine behind every wrapper: validate and encode frames, buffer them, train.

Layering (imports run one way): core (``learner``, ``config``, ``preprocess``) <- this module <-
wrappers (:mod:`vase_rl.rl.wrapper`, :mod:`vase_rl.rl.vector_wrapper`, the SB3 ``VecEnvWrapper`` in
:mod:`vase_rl.agents.sb3_vec`). A single env is a batch of one: every wrapper owns one
:class:`OnlineVASE` and forwards ``(B, *frame_shape)`` batches of frames to :meth:`OnlineVASE.process`.

Its parts: the options (:mod:`vase_rl.rl.online_config`), the frame buffer (:mod:`vase_rl.rl.buffer`),
the encoder copy and the per-learner lock (:mod:`vase_rl.rl.inference_copy`); the methods every wrapper
shares: :mod:`vase_rl.rl.wrapper_mixin`. Which spaces are images and the learner a wrapper builds when
given none: :mod:`vase_rl.rl.image_space`.

>>> from gymnasium import spaces
>>> engine = OnlineVASE.create(spaces.Box(0, 255, (210, 160, 3), np.uint8), device="cpu", learn=False)
>>> engine.encode(np.zeros((2, 210, 160, 3), np.uint8)).shape  # frames resized to the cpu preset's 32x32
(2, 24)
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from vase_rl.core.learner import ContinualLearner
from vase_rl.probing.drift import DriftMonitor
from vase_rl.rl.buffer import RolloutBuffer
from vase_rl.rl.image_space import default_learner, image_layout
from vase_rl.rl.inference_copy import InferenceCopy, learner_lock
from vase_rl.rl.online_config import CHECKPOINT_KEY, OnlineConfig

__all__ = ["OnlineVASE"]


class OnlineVASE:
    """The engine behind every VASE wrapper: validate + encode frames in one pass, buffer, train.

    Args:
        learner: the (possibly shared) learner.
        frame_space: the observation space of *one* frame (validated by
            :func:`~vase_rl.rl.image_space.image_layout`).
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
        self.trained_per_env: Counter[int] = Counter()
        """Train steps per environment since this engine was built (pending batches not counted)."""
        self.pending_steps = 0
        """Batches that failed eq. 6 without exhausting the patience and were not trained on."""
        self.drift_monitor = DriftMonitor()
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
        """The engine a wrapper builds: ``learner`` or :func:`~vase_rl.rl.image_space.default_learner`
        (``preset``, ``device``, ``config.agent_loop``),
        and ``config`` (or the defaults) with ``options`` (:class:`OnlineConfig` field names) replaced."""
        config = OnlineConfig.build(config, **options)  # unknown options fail before a learner is built
        if learner is None:
            learner = default_learner(frame_space, preset, device, agent_loop=config.agent_loop)
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

    def used_masks(self) -> np.ndarray:
        """(max_environments, latent_dim) float32: 1 where a latent is in the used set u^s of environment s
        (A.2); rows of environments not allocated yet are all 1 (their frames are emitted as ``mu``)."""
        memory = self.learner.memory
        used = memory.used.cpu().numpy().astype(np.float32)
        used[memory.n_seen :] = 1.0
        return used

    def _encode_input(self, x: torch.Tensor) -> Any:
        self._raise_pending_error()
        if self.lock.acquire(blocking=False):  # a training round in flight keeps the previous copy
            try:
                self.copy.refresh()
            finally:
                self.lock.release()
        c, used_only = self.config.clip, self.config.emit == "used"
        with torch.inference_mode():  # mu is an inference tensor: clamped in place inside the mode
            mu, env = self.copy(x, with_env=self.config.include_env or self.config.include_mask or used_only)
            latent = mu.clamp_(-c, c).cpu().numpy().astype(np.float32, copy=False)
            env_np = None if env is None else env.cpu().numpy()
        if used_only:
            latent = latent * self.used_masks()[env_np]
        if not (self.config.include_env or self.config.include_mask):
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
                result = self.learner.train_step(batch)
                self.last_stats = result.to_log()
                if result.updated:  # a pending batch was not trained on: no count, no drift reference
                    self.trained_per_env[result.env] += 1
                    self.drift_monitor.record(batch, result.env, self.learner.encode)
                else:
                    self.pending_steps += 1
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
        """Counters, the last train step's scalars (``env``, ``n_envs``, ``loss``, ``recon``, ...),
        ``trained/env<e>`` (train steps in environment e through this engine) and ``pending_steps`` (batches
        eq. 6 held back), and ``drift/env<e>``: how far the latents of every environment the learner has left
        moved since it left it (mean over latents, in units of each latent's sd then;
        :class:`~vase_rl.probing.drift.DriftMonitor` on the last 256 frames trained on there)."""
        keep = ("env", "new_env", "n_envs", "loss", "recon", "kl", "C", "reason", "step")
        out = {k: self.last_stats[k] for k in keep if k in self.last_stats}
        self.wait()
        with self.lock:
            out.update(
                {f"drift/env{e}": d.mean for e, d in self.drift_monitor.drift(self.learner.encode).items()}
            )
        out.update(
            env_steps=self.env_steps,
            train_steps=self.train_steps,
            train_time_s=self.train_time_s,
            pending_steps=self.pending_steps,
            **{f"trained/env{e}": n for e, n in sorted(self.trained_per_env.items())},
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
