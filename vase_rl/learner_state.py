"""The learner's persistence: the layout of its state (written, validated and loaded here) and checkpoint
save/load around ``state_dict`` (a mixin). Checkpoints are atomic and validated (see vase_rl.checkpoint)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import VASEConfig
from .inference import EnvironmentMemory
from .model import VASEModel

if TYPE_CHECKING:
    from typing_extensions import Self

    from .learner import ContinualLearner


def learner_state(learner: ContinualLearner) -> dict[str, Any]:
    """Everything a learner needs to resume bit-for-bit: parameters, snapshot, optimizer, the inference state
    (``memory``, ``current_env``, ``fail_streak``, ``last_allocation``), ``step`` and the generator."""
    return {
        "model": learner.model.state_dict(),
        "snapshot": learner.snapshot.model.state_dict(),
        "optimizer": learner.optimizer.state_dict(),
        **learner.inference.state_dict(),
        "step": learner.step,
        "generator": learner.generator.get_state(),
    }


def load_learner_state(learner: ContinualLearner, state: dict[str, Any]) -> None:
    """Restore :func:`learner_state`; the state is validated first: a bad one leaves the learner untouched."""
    validate_learner_state(learner.config, state)
    learner.model.load_state_dict(state["model"])
    learner.snapshot.model.load_state_dict(state["snapshot"])
    learner.optimizer.load_state_dict(state["optimizer"])
    learner.inference.load_state_dict(state)
    learner.step = int(state["step"])
    generator = state["generator"]
    learner.generator.set_state(generator.cpu() if learner.device.type == "cpu" else generator)


def validate_learner_state(config: VASEConfig, state: dict[str, Any]) -> None:
    """Dry-run loading a :class:`~vase_rl.learner.ContinualLearner` ``state`` into fresh objects built from
    ``config``; raises ValueError/KeyError/RuntimeError on a mismatch and changes nothing."""
    mc = config.model
    trial = VASEModel(mc)
    trial.load_state_dict(state["model"])
    trial.load_state_dict(state["snapshot"])
    params = list(trial.parameters())
    opt = state["optimizer"]
    if len(opt["param_groups"]) != 1 or len(opt["param_groups"][0]["params"]) != len(params):
        raise ValueError("optimizer state does not match the model's parameters")
    for i, p in enumerate(params):
        for key in ("exp_avg", "exp_avg_sq"):
            t = opt["state"].get(i, {}).get(key)
            if t is not None and t.shape != p.shape:
                raise ValueError(f"optimizer state '{key}' of parameter {i} has shape {tuple(t.shape)}, "
                                 f"expected {tuple(p.shape)}")
    EnvironmentMemory.empty(mc.max_environments, mc.latent_dim).load_state_dict(state["memory"])
    for key in ("step", "current_env", "fail_streak", "last_allocation", "generator"):
        if key not in state:
            raise KeyError(f"learner state lacks '{key}'")


class Checkpointable:
    """Checkpoint files for a class with ``config``, ``state_dict()``, ``load_state_dict(state)`` and a
    ``cls(config, device=...)`` constructor; a state that does not fit raises :class:`CheckpointError`."""

    config: VASEConfig

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def save(self, path: str, extra: dict[str, Any] | None = None) -> None:
        """Write an atomic checkpoint (temp file + os.replace) that resumes bit-for-bit."""
        save_checkpoint(path, self.config, self.state_dict(), extra or {})

    @classmethod
    def load(cls, path: str, device: str | torch.device = "auto") -> Self:
        """Build an object from a checkpoint (its config is stored in it)."""
        config, state, _ = load_checkpoint(path)
        obj = cls(config, device=device)  # type: ignore[call-arg]
        obj._load_checked(path, state)
        return obj

    def load_into(self, path: str) -> dict[str, Any]:
        """Restore this object from ``path``; refuses a checkpoint written with another config. Returns the
        checkpoint's ``extra``."""
        _, state, extra = load_checkpoint(path, expect=self.config)
        self._load_checked(path, state)
        return extra

    def _load_checked(self, path: str, state: dict[str, Any]) -> None:
        try:
            self.load_state_dict(state)
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint {path!r} holds a learner state that does not fit its configuration: {exc}"
            ) from exc
