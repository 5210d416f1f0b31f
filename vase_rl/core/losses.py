"""Loss terms of VASE, one function per equation.

Units: every reconstruction log-likelihood and KL is *summed* over pixels / latents of one image and
*averaged* over the batch, so gamma, C and the dreaming weights are in nats per image as in the paper
(a common bug in public beta-VAE code is to average over pixels, which silently rescales gamma and C).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vase_rl.core.config import Likelihood, LossConfig


def capacity_schedule(step: int, c_max: float, delta_c: float, c_start: float = 0.0) -> float:
    """Capacity target C at training ``step`` (appendix A.3).

    C starts at ``c_start`` (the paper: 0) and grows linearly by ``delta_c * c_max`` per step until it
    reaches ``c_max``, where it stays: ``C(step) = min(c_max, c_start + step * delta_c * c_max)``.

    >>> capacity_schedule(0, 25.0, 1 / 2500, c_start=5.0), capacity_schedule(1250, 25.0, 1 / 2500, 5.0)
    (5.0, 17.5)
    """
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return float(min(c_max, c_start + step * delta_c * c_max))


def reconstruction_nll(
    output: torch.Tensor,
    x: torch.Tensor,
    likelihood: Likelihood,
    gaussian_std: float = 0.1,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """-log p_theta(x|z,s) per image, summed over pixels (first term of eq. 3).

    output: (B, C, H, W) decoder logits (Bernoulli) or means (Gaussian); x: (B, C, H, W) in [0, 1].
    Returns (B,) nats. The Bernoulli NLL is the binary cross-entropy with soft targets (grey pixels
    are allowed, as in the paper's use of a Bernoulli decoder on grey-level images); the Gaussian NLL
    omits its additive constant so that it stays >= 0. ``weight`` (broadcastable to x, e.g.
    :func:`colour_rarity_weights`) scales each pixel's term before the sum; None = the paper's sum.
    """
    if likelihood == "bernoulli":
        nll = F.binary_cross_entropy_with_logits(output, x, reduction="none")
    else:
        # the per-pixel constant 0.5*log(2*pi*sigma^2) is dropped: it carries no gradient, and with it
        # the NLL of a small sigma is negative, which breaks eq. 6's ratio test L <= kappa * L~
        nll = 0.5 * (output - x) ** 2 / gaussian_std**2
    if weight is not None:
        nll = nll * weight
    return nll.flatten(1).sum(1)


def colour_rarity_weights(x: torch.Tensor, power: float, levels: int = 4) -> torch.Tensor:
    """Per-pixel weights of the reconstruction term that favour the batch's rare colours
    (``LossConfig.rarity_power``; not in the paper, whose sum weighs every pixel alike).

    Each pixel's colour is quantised to ``levels`` values per channel; a pixel whose quantised colour
    covers a fraction f of the batch's pixels gets weight f^-power, and the weights are scaled to mean 1
    over the batch, so the term keeps its size in nats while a small object of a colour seen nowhere else
    (the 3-D levels' red target: ~0.3 % of a 32x32 frame) weighs as much as a wall. power 0 gives all 1.
    x: (B, C, H, W) in [0, 1]; returns (B, 1, H, W), no gradient.
    """
    if power < 0:
        raise ValueError(f"rarity power must be >= 0, got {power}")
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    with torch.no_grad():
        q = (x.clamp(0, 1) * (levels - 1)).round().long()
        code = torch.zeros_like(q[:, 0])
        for c in range(q.shape[1]):
            code = code * levels + q[:, c]
        counts = torch.bincount(code.flatten(), minlength=levels ** q.shape[1]).to(x.dtype)
        w = (counts[code] / code.numel()) ** -power
        return (w / w.mean()).unsqueeze(1)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per latent unit, closed form (second term of eq. 3).

    mu, logvar: (B, N). Returns (B, N) nats; sum over units for the per-image KL.
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def capacity_loss(kl: torch.Tensor, capacity: float, gamma: float, mode: str = "two-sided") -> torch.Tensor:
    """MDL capacity constraint of eq. 3 / eq. 9: ``gamma * |KL - C|^2``.

    kl: (B,) per-image KL in nats (already masked, see eq. 2); the batch mean is compared with C.
    ``mode="upper"`` penalises only KL above C: ``gamma * max(0, KL - C)^2`` (see LossConfig).
    """
    gap = kl.mean() - capacity
    if mode == "upper":
        gap = gap.clamp_min(0.0)
    elif mode != "two-sided":
        raise ValueError(f"capacity mode must be 'two-sided' or 'upper', got {mode!r}")
    return gamma * gap**2


def mdl_loss(
    nll: torch.Tensor, kl: torch.Tensor, capacity: float, cfg: LossConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """The objective on current data: eq. 3 (disentangled), or the entangled baseline's ELBO.

    eq. 3: ``E[-log p(x|z^s, s)] + gamma * |KL(q(z^s|x^s) || p(z)) - C|^2`` (:func:`capacity_loss`, with
    ``cfg.capacity_mode``); entangled (``cfg.entangled``): ``E[-log p(x|z^s, s)] + beta_vae * KL`` with no
    capacity target (the paper's beta = 1 VAE baseline).

    nll: (B,) per-image reconstruction NLL; kl: (B',) per-image KL of the masked posterior (eq. 2), in a
    data-parallel step the global batch's (B' >= B); capacity: C in nats. Returns (loss, regulariser),
    scalars, where loss = nll.mean() + regulariser.

    >>> from vase_rl.core.config import LossConfig
    >>> nll, kl = torch.tensor([10.0, 12.0]), torch.tensor([3.0, 5.0])
    >>> [float(t) for t in mdl_loss(nll, kl, 2.0, LossConfig(gamma=10.0))]  # 11 + 10 * (4 - 2)^2
    [51.0, 40.0]
    >>> [float(t) for t in mdl_loss(nll, kl, 2.0, LossConfig(entangled=True))]  # 11 + 1 * 4
    [15.0, 4.0]
    """
    reg = (
        cfg.beta_vae * kl.mean()
        if cfg.entangled
        else capacity_loss(kl, capacity, cfg.gamma, cfg.capacity_mode)
    )
    return nll.mean() + reg, reg


def wasserstein_encoder_proximity(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    mu_old: torch.Tensor,
    logvar_old: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Encoder proximity of eq. 7: squared 2-Wasserstein distance between diagonal Gaussians.

    ``W = ||mu - mu'||^2 + ||Sigma^{1/2} - Sigma'^{1/2}||^2`` with Sigma^{1/2} = diag(sigma).
    All inputs (B, N); ``weights`` (B, N) or (N,), if given, weighs each latent's term (0: left out).
    Returns (B,) summed over latents.
    """
    sigma = (0.5 * logvar).exp()
    sigma_old = (0.5 * logvar_old).exp()
    per_latent = (mu - mu_old) ** 2 + (sigma - sigma_old) ** 2
    return (per_latent if weights is None else per_latent * weights).sum(1)


def decoder_proximity(
    output: torch.Tensor, output_old: torch.Tensor, likelihood: Likelihood, gaussian_std: float = 0.1
) -> torch.Tensor:
    """Decoder proximity of eq. 7: KL(p_theta'(x|z,s') || p_theta(x|z,s')) per image.

    Bernoulli: sum over pixels of KL(Bern(p_old) || Bern(p_new)) from logits (B, C, H, W).
    Gaussian with fixed variance: ``||m_old - m||^2 / (2 sigma^2)`` summed over pixels.
    The snapshot (old) distribution is the target. Returns (B,).
    """
    if likelihood == "bernoulli":
        p_old = torch.sigmoid(output_old)
        # KL(p_old || p) = sum p_old log p_old/p + (1-p_old) log (1-p_old)/(1-p)
        #               = BCE(p, target=p_old) - H(p_old)
        cross = F.binary_cross_entropy_with_logits(output, p_old, reduction="none")
        entropy = F.binary_cross_entropy_with_logits(output_old, p_old, reduction="none")
        kl = cross - entropy
    else:
        kl = 0.5 * (output - output_old) ** 2 / gaussian_std**2
    return kl.flatten(1).sum(1)


def environment_classifier_loss(logits: torch.Tensor, env: torch.Tensor) -> torch.Tensor:
    """L_env of appendix A.1 (one of its two terms): -log q_psi(s|x), averaged over the batch.

    logits: (B, max_environments) with unseen environments at -inf; env: (B,) int64 targets.
    The learner adds the term on current data (target = putative index s-hat) and the term on
    dreamed data x' (target = the dreamed environment s').
    """
    return F.cross_entropy(logits, env)
