"""What every VASE wrapper shares (single, gymnasium vector, SB3 VecEnv): :class:`VASEWrapperMixin`, the
public methods around the wrapper's :class:`~vase_rl.rl.online.OnlineVASE` engine."""

from __future__ import annotations

from typing import Any

import torch

from vase_rl.core.learner import ContinualLearner
from vase_rl.rl.online import OnlineVASE
from vase_rl.rl.online_config import load_wrapped

__all__ = ["VASEWrapperMixin"]


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
