"""Representation drift: how far the latents of a past environment's frames moved since its stage ended.

A policy trained on an environment's latents reads them through fixed weights (and, with SB3's
``VecNormalize``, through frozen normalisation statistics): what matters to it is how far each latent moved,
in units of that latent's spread over the environment's frames when the policy was trained. This module
measures exactly that, on the same frames encoded by two versions of the learner.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> noise = rng.normal(size=(1000, 3))
>>> before = (noise - noise.mean(0)) / noise.std(0) * np.array([1.0, 2.0, 0.5])  # sd 1, 2, 0.5
>>> after = before + np.array([0.1, 0.0, 0.5])  # latent 0 moves 0.1 sd, latent 2 one sd
>>> d = latent_drift(before, after)
>>> np.round(d.per_latent, 2).tolist(), round(d.mean, 2), d.worst
([0.1, 0.0, 1.0], 0.37, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

__all__ = ["DriftMonitor", "DriftResult", "latent_drift"]

SD_FLOOR = 1e-3
"""A latent whose spread over the reference frames is below this (a collapsed, constant latent) is measured
in units of this floor instead of its own near-zero sd (VecNormalize's epsilon is 1e-8; a constant latent
that starts to move is a large drift either way)."""


@dataclass(frozen=True)
class DriftResult:
    """Drift of one environment's latents between two versions of the learner.

    per_latent: (N,) root-mean-square change of each latent over the frames, divided by that latent's
    standard deviation over the same frames before (floored at :data:`SD_FLOOR`); mean: its mean over
    latents; worst: the index of the latent that moved most; max: its drift.
    """

    per_latent: np.ndarray
    mean: float
    max: float
    worst: int

    def to_dict(self) -> dict[str, object]:
        return {
            "per_latent": [float(v) for v in self.per_latent],
            "mean": self.mean,
            "max": self.max,
            "worst": self.worst,
        }


def latent_drift(before: ArrayLike, after: ArrayLike) -> DriftResult:
    """Drift of latents (n, N) of the same n frames encoded before and after (row i = frame i in both).

    ``per_latent[j] = sqrt(mean_i (after[i, j] - before[i, j])^2) / max(sd_i before[i, j], SD_FLOOR)``.
    Raises ValueError when the arrays differ in shape, are not 2-D or hold fewer than 2 frames.
    """
    b, a = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if b.ndim != 2 or b.shape != a.shape:
        raise ValueError(
            f"latent_drift needs two (frames, latents) arrays of one shape, got {b.shape} and {a.shape}"
        )
    if b.shape[0] < 2:
        raise ValueError(f"latent_drift needs at least 2 frames to measure a spread, got {b.shape[0]}")
    if not (np.isfinite(b).all() and np.isfinite(a).all()):
        raise ValueError("latent_drift got non-finite latents")
    sd = np.maximum(b.std(axis=0), SD_FLOOR)
    per = np.sqrt(np.mean((a - b) ** 2, axis=0)) / sd
    worst = int(np.argmax(per))
    return DriftResult(per_latent=per, mean=float(per.mean()), max=float(per[worst]), worst=worst)


class DriftMonitor:
    """Drift of every environment a continual learner has left, measured on frames it trained on there.

    Fed with each training batch and the environment it was trained in (:meth:`record`), it keeps the
    ``frames_per_env`` most recent frames of the current environment. When the learner leaves an
    environment, those frames and their latents are frozen as its reference; :meth:`drift` re-encodes the
    references with the learner as it is now. Returning to an environment drops its reference (it is being
    trained again) until it is left again. Transient: not saved with the learner.

    >>> import torch
    >>> monitor = DriftMonitor(frames_per_env=4)
    >>> encode = lambda x: x.flatten(1)[:, :2]  # a stand-in encoder: the first two pixels
    >>> monitor.record(torch.rand(4, 1, 2, 2), env=0, encode=encode)
    >>> monitor.record(torch.rand(4, 1, 2, 2), env=1, encode=encode)  # environment 0 is left
    >>> {env: d.mean for env, d in monitor.drift(encode).items()}  # the encoder did not change
    {0: 0.0}
    """

    def __init__(self, frames_per_env: int = 256) -> None:
        if frames_per_env < 2:
            raise ValueError(f"DriftMonitor needs frames_per_env >= 2, got {frames_per_env}")
        self.frames_per_env = frames_per_env
        self.current = -1
        self.recent: torch.Tensor | None = None
        self.references: dict[int, tuple[torch.Tensor, np.ndarray]] = {}

    def record(self, batch: torch.Tensor, env: int, encode: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """A batch (B, C, S, S) the learner was trained on in environment ``env``."""
        if env != self.current:
            if self.current >= 0 and self.recent is not None and len(self.recent) >= 2:
                self.references[self.current] = (self.recent, _latents(encode, self.recent))
            self.references.pop(env, None)
            self.current, self.recent = env, None
        frames = batch.detach()
        self.recent = frames if self.recent is None else torch.cat([self.recent, frames])
        self.recent = self.recent[-self.frames_per_env :]

    def drift(self, encode: Callable[[torch.Tensor], torch.Tensor]) -> dict[int, DriftResult]:
        """Environment -> drift of its reference frames since it was left (empty until one is left)."""
        return {
            env: latent_drift(mu, _latents(encode, x)) for env, (x, mu) in sorted(self.references.items())
        }


def _latents(encode: Callable[[torch.Tensor], torch.Tensor], frames: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return encode(frames).detach().float().cpu().numpy()
