"""Latent bookkeeping of VASE: atypicality (eq. 4), the latent mask (eq. 5 + A.2 hysteresis) and the
used-latent test by noise tolerance (A.2)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from vase_rl.core.config import MaskConfig


def atypicality(z: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Atypicality alpha_n of each latent on a batch (eq. 4, closed form of A.2).

    eq. 4 is ``alpha_n = KL(E_x[q(z_n|x)] || p(z_n))``. As in A.2 we fit a Gaussian N(m_n, v_n) to the
    batch's latent samples z[:, n] and use the closed-form KL to the unit Gaussian prior:
    ``alpha_n = 0.5 * (m_n^2 + v_n - 1 - log v_n)``.

    z: (B, N) samples z ~ q(z|x), B >= 2. Returns (N,) nats.
    """
    if z.dim() != 2:
        raise ValueError(f"atypicality expects z of shape (B, N), got {tuple(z.shape)}")
    if z.shape[0] < 2:
        raise ValueError(
            f"atypicality needs a batch of at least 2 samples to fit a Gaussian, got batch size {z.shape[0]}"
        )
    m = z.mean(0)
    v = z.var(0, unbiased=True).clamp_min(eps)
    return 0.5 * (m.pow(2) + v - 1.0 - v.log())


def hysteresis_mask(
    alpha: torch.Tensor, previous: torch.Tensor, lambda0: float, lambda1: float
) -> torch.Tensor:
    """Latent mask a_n of eq. 5 with the hysteresis filtering of A.2.

    eq. 5: a_n = 1 (active, typical) if alpha_n < lambda, else 0. Because alpha is estimated on a small
    batch, A.2 filters it: a latent becomes atypical (a_n = 0) only when alpha_n > lambda1, typical
    again (a_n = 1) only when alpha_n < lambda0 (lambda0 < lambda1); in between it keeps ``previous``.

    alpha: (N,) float; previous: (N,) bool (True = active). Returns (N,) bool.
    """
    if alpha.shape != previous.shape:
        raise ValueError(f"alpha {tuple(alpha.shape)} and previous mask {tuple(previous.shape)} differ")
    out = previous.clone()
    out[alpha > lambda1] = False
    out[alpha < lambda0] = True
    return out


def noise_tolerance(
    nll_fn: Callable[[torch.Tensor], torch.Tensor],
    mu: torch.Tensor,
    cfg: MaskConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-latent noise scales sigma_n of the used-latent test (A.2).

    Optimises ``Sigma = argmin_{diag(sigma)} E_eps[-log p(x | z + sigma * eps, s)] - log|Sigma|`` with
    a few Adam steps on log sigma (initialised at 0, i.e. sigma = 1). A latent the decoder of
    environment s ignores can take unbounded noise (sigma grows every step), a used one cannot.

    nll_fn: maps z (B, N) to the per-image reconstruction NLL (B,) of a fixed batch x under env s;
    mu: (B, N) encoder means of that batch. Only ``log_sigma`` is optimised (the decoder's parameters
    receive no update). Returns sigma (N,).
    """
    log_sigma = torch.zeros(mu.shape[1], device=mu.device, requires_grad=True)
    opt = torch.optim.Adam([log_sigma], lr=cfg.used_lr)
    mu = mu.detach()
    for _ in range(cfg.used_steps):
        eps = torch.randn(mu.shape, device=mu.device, generator=generator)
        loss = nll_fn(mu + log_sigma.exp() * eps).mean() - log_sigma.sum()
        (grad,) = torch.autograd.grad(loss, [log_sigma])
        log_sigma.grad = grad
        opt.step()
    return log_sigma.detach().exp()


def used_latents(sigma: torch.Tensor, threshold: float) -> torch.Tensor:
    """u_s of A.2: latent n is used by the environment unless its tolerated noise sigma_n > T.

    sigma: (N,). Returns (N,) bool (True = used).
    """
    return sigma <= threshold


def applied_mask(
    raw_masks: torch.Tensor,
    used: torch.Tensor,
    env: int,
    n_seen: int,
    cfg: MaskConfig,
    masking: bool = True,
    per_environment: bool = True,
) -> torch.Tensor:
    """The mask a^s that eq. 2 applies for environment ``env``: (N,) bool, True = active.

    The paper applies the stored mask itself (``raw_masks[env]``, eq. 5 with A.2's hysteresis), which is
    what this returns with every rule of ``cfg`` off (:meth:`MaskConfig.paper`). The rules, each a switch:

    * ``spare_unmasked``: a latent that no *other* environment uses stays active -- the spare capacity of
      section 3.3 ("automatically unmasked"). The paper relies on their atypicality staying ~0; at CPU step
      counts spare latents drift on new data and, once masked (no gradient), would never return.
    * ``protect_own_used``: a latent ``env``'s own decoder uses (u^s, A.2's noise-tolerance test) stays
      active; masking it would replace what the environment reconstructs from by prior noise (measured in
      the demo: the MNIST environment lost both of its latents). See docs/findings.md, "Masking".
    * ``never_all_masked``: if every latent would be masked the environment shares all latents instead
      (masked latents get no gradient: it could never learn).

    raw_masks, used: (max_environments, N) bool, the rows of the environment memory; n_seen: m.
    ``masking=False`` (ablation A off) returns all-active. ``per_environment=False`` (ablation S off): there
    is one environment, and the latents it uses itself are the maskable ones (``spare_unmasked`` then
    keeps the ones it does not use; ``protect_own_used`` does not apply).

    >>> masks = torch.tensor([[True, True, True], [False, False, True]])
    >>> used = torch.tensor([[True, True, False], [False, True, False]])
    >>> applied_mask(masks, used, 1, 2, MaskConfig()).tolist()  # z0: used by env 0 only -> masked
    [False, True, True]
    >>> applied_mask(masks, used, 1, 2, MaskConfig.paper()).tolist()  # the stored mask
    [False, False, True]
    """
    raw = raw_masks[env]
    if not masking:
        return torch.ones_like(raw)
    applied = raw.clone()
    if cfg.spare_unmasked:
        others = [e for e in range(n_seen) if e != env] if per_environment else [env]
        applied |= ~used[others].any(0)
    if cfg.protect_own_used and per_environment:
        applied |= used[env]
    if cfg.never_all_masked and not bool(applied.any()):
        return torch.ones_like(raw)
    return applied
