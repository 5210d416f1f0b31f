"""Environment memory and environment inference (eq. 6, Algorithm 1 of appendix A.2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


class EnvironmentOverflowError(RuntimeError):
    """Raised when a new environment would exceed ``max_environments``."""


@dataclass
class EnvironmentMemory:
    """What VASE remembers of each environment s it has allocated.

    masks: (max_environments, N) bool, the latent mask a^s (True = active latent);
    used: (max_environments, N) bool, the used latents u^s (A.2);
    recon_avg: (max_environments,) float, the running average reconstruction loss L~_s (nats/image);
    steps: (max_environments,) int, training steps spent in each environment;
    alpha_avg: (max_environments, N) float, running average of each latent's atypicality;
    n_seen: m, the number of environments allocated so far.
    """

    masks: torch.Tensor
    used: torch.Tensor
    recon_avg: torch.Tensor
    steps: torch.Tensor
    alpha_avg: torch.Tensor
    n_seen: int = 0

    @classmethod
    def empty(cls, max_environments: int, latent_dim: int) -> EnvironmentMemory:
        return cls(
            masks=torch.ones(max_environments, latent_dim, dtype=torch.bool),
            used=torch.ones(max_environments, latent_dim, dtype=torch.bool),
            recon_avg=torch.full((max_environments,), float("inf")),
            steps=torch.zeros(max_environments, dtype=torch.long),
            alpha_avg=torch.zeros(max_environments, latent_dim),
        )

    @property
    def max_environments(self) -> int:
        return int(self.masks.shape[0])

    def allocate(self, mask: torch.Tensor, recon: float, alpha: torch.Tensor | None = None) -> int:
        """Allocate environment m+1 (index ``n_seen``) with an initial mask and L~; return its index."""
        if self.n_seen >= self.max_environments:
            raise EnvironmentOverflowError(
                f"a new environment was detected but all max_environments={self.max_environments} "
                "are allocated; raise ModelConfig.max_environments (a new model is needed: the decoder's "
                "one-hot input and the classifier are sized by it) or set "
                "InferenceConfig.on_overflow='merge' to reuse the closest environment"
            )
        s = self.n_seen
        self.masks[s] = mask.cpu()
        self.used[s] = True
        self.recon_avg[s] = recon
        self.steps[s] = 0
        self.alpha_avg[s] = alpha.cpu() if alpha is not None else 0.0
        self.n_seen += 1
        return s

    def update(
        self, env: int, mask: torch.Tensor, recon: float, ema: float, alpha: torch.Tensor | None = None
    ) -> None:
        """Store the current mask of ``env``; fold ``recon`` into L~_s and ``alpha`` into its average."""
        self.masks[env] = mask.cpu()
        if alpha is not None:
            self.alpha_avg[env] = ema * self.alpha_avg[env] + (1 - ema) * alpha.cpu()
        old = float(self.recon_avg[env])
        self.recon_avg[env] = recon if not torch.isfinite(torch.tensor(old)) else ema * old + (1 - ema) * recon
        self.steps[env] += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "masks": self.masks.clone(),
            "used": self.used.clone(),
            "recon_avg": self.recon_avg.clone(),
            "steps": self.steps.clone(),
            "alpha_avg": self.alpha_avg.clone(),
            "n_seen": self.n_seen,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for key in ("masks", "used", "recon_avg", "steps", "alpha_avg"):
            if d[key].shape != getattr(self, key).shape:
                raise ValueError(
                    f"environment memory '{key}' has shape {tuple(d[key].shape)}, "
                    f"expected {tuple(getattr(self, key).shape)}"
                )
            setattr(self, key, d[key].clone())
        self.n_seen = int(d["n_seen"])


def environment_check(
    recon: float,
    recon_avg: float,
    kappa: float,
    batch_mask: torch.Tensor | None,
    stored_mask: torch.Tensor,
    used: torch.Tensor,
) -> str | None:
    """One candidate test of eq. 6 / Algorithm 1; returns None if the batch belongs to the candidate.

    The batch x is accepted as coming from candidate environment s-hat iff
      (i) its reconstruction loss under s-hat is not significantly larger than the running average,
          ``L_shat(x) <= kappa * L~_shat``, and
      (ii) its latent mask equals the stored one on the latents s-hat uses,
          ``a(x) . u_shat == a^shat . u_shat`` (skipped when ``batch_mask`` is None, i.e. ablation A off).
    Otherwise the reason for rejection is returned (``"reconstruction"`` or ``"mask"``), and Algorithm 1
    allocates environment m+1.

    recon, recon_avg: nats per image; batch_mask, stored_mask, used: (N,) bool.
    """
    if recon > kappa * recon_avg:
        return "reconstruction"
    if batch_mask is not None:
        used = used.to(batch_mask.device)
        if bool(((batch_mask != stored_mask.to(batch_mask.device)) & used).any()):
            return "mask"
    return None
