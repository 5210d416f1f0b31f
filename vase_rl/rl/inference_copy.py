"""How env steps read the learner while it trains: :class:`InferenceCopy` (the encoder and classifier copy
that encodes observations) and :func:`learner_lock` (one lock per learner, shared by every wrapper)."""

from __future__ import annotations

import copy
import threading
import weakref

import torch

from vase_rl.core.learner import ContinualLearner
from vase_rl.core.model import read_in_view

__all__ = ["InferenceCopy", "learner_lock"]


class InferenceCopy:
    """A copy of the learner's encoder and environment classifier used to encode observations.

    Encoding from a copy lets a background training round (asynchronous mode) update the learner
    without blocking or tearing the weights the env steps read. The copy runs under
    ``torch.inference_mode`` (no autograd bookkeeping) and, on CPU, channels-last: its conv weights
    are (as the learner's, :func:`vase_rl.core.model.channels_last_`) and NCHW inputs (RGB HxWx3 or CxHxW
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
        self._sources = [
            *model.encoder.parameters(),
            *model.encoder.buffers(),
            *model.classifier.parameters(),
        ]
        self._targets = [*self.encoder.parameters(), *self.encoder.buffers(), *self.classifier.parameters()]
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
        if self.encoder.input_sign is not None:  # ModelConfig.env_input_view: each frame in its env's view
            mu, _, env = read_in_view(self.encoder, self.classifier, x, self.learner.memory.n_seen)
            return mu, env if with_env else None
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
