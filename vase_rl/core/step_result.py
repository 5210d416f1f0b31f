"""What one :meth:`ContinualLearner.train_step <vase_rl.core.learner.ContinualLearner.train_step>` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vase_rl.core.inference import Failure, Reason, outcome_label


@dataclass(frozen=True)
class StepResult:
    """The scalars of one VASE step (over the global batch in a data-parallel step).

    Losses are nats per image (batch means); ``loss`` is NaN and ``kl`` NaN when the batch was not
    trained on (``updated`` False: a pending batch, see ``InferenceConfig.train_on_pending``).
    Per-latent fields are tuples of length N.
    """

    loss: float
    """The total loss minimised (eq. 3 or the entangled ELBO, + dreaming eq. 9, + classifier A.1)."""
    recon: float
    """Reconstruction NLL under the inferred environment."""
    kl: float
    """KL(q(z^s|x) || p(z)) over the active latents."""
    C: float
    """Capacity target C after this step (A.3)."""
    capacity_loss: float
    """The regulariser: gamma |KL - C|^2, or beta_vae * KL for the entangled baseline."""
    classifier_loss: float
    """Environment classifier loss (A.1), on current and dreamed data."""
    env: int
    """The inferred environment s (eq. 6)."""
    new_env: bool
    """s was allocated by this step."""
    reason: Reason
    """Outcome of Algorithm 1."""
    failure: Failure | None
    """Why eq. 6 rejected the candidates (pending, allocated, merged), else None."""
    n_envs: int
    """Environments allocated so far (m)."""
    atypicality: tuple[float, ...]
    """alpha_n of the batch (eq. 4)."""
    mask: tuple[int, ...]
    """The applied mask a^s (eq. 2), 1 = active."""
    raw_mask: tuple[int, ...]
    """The batch's mask a(x) (eq. 5 + A.2 hysteresis), stored as env's mask."""
    used: tuple[int, ...]
    """Used latents u^s of ``env`` (A.2)."""
    step: int
    """The learner's step count after this step."""
    updated: bool
    """Whether the parameters were updated (False for a pending batch)."""
    dream: dict[str, float] = field(default_factory=dict)
    """Scalars of the dream batch: ``dream/encoder_w``, ``dream/decoder_kl``, ``dream/loss``."""

    @property
    def reason_label(self) -> str:
        """The outcome as the log writes it: ``"matched"``, ``"pending-mask"``, ``"reconstruction"``, ..."""
        return outcome_label(self.reason, self.failure)

    def to_log(self) -> dict[str, Any]:
        """The step as the training log's JSON record (keys and values of the log format).

        >>> r = StepResult(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1, True, Reason.ALLOCATED, Failure.MASK, 2,
        ...                (0.5,), (1,), (0,), (1,), 7, True)
        >>> r.to_log()["reason"], r.to_log()["mask"], list(r.to_log())[:3]
        ('mask', [1], ['loss', 'recon', 'kl'])
        """
        return {
            **self.dream,
            "loss": self.loss,
            "recon": self.recon,
            "kl": self.kl,
            "C": self.C,
            "capacity_loss": self.capacity_loss,
            "classifier_loss": self.classifier_loss,
            "env": self.env,
            "new_env": self.new_env,
            "reason": self.reason_label,
            "n_envs": self.n_envs,
            "atypicality": list(self.atypicality),
            "mask": list(self.mask),
            "raw_mask": list(self.raw_mask),
            "used": list(self.used),
            "step": self.step,
            "updated": self.updated,
        }
