"""Atypicality (eq. 4), hysteresis mask (eq. 5 + A.2) and used latents by noise tolerance (A.2)."""

import math

import pytest
import torch

from vase_rl.core.config import MaskConfig
from vase_rl.core.latents import applied_mask, atypicality, hysteresis_mask, noise_tolerance, used_latents


def test_atypicality_closed_form_agrees_with_monte_carlo_kl():
    g = torch.Generator().manual_seed(0)
    m, s = torch.tensor([0.0, 0.5, 2.0]), torch.tensor([1.0, 0.3, 1.5])
    z = m + s * torch.randn(20000, 3, generator=g)
    alpha = atypicality(z)
    # Monte-Carlo KL(N(m, s^2) || N(0, 1)) = E_q[log q(z) - log p(z)]
    log_q = -0.5 * ((z - m) / s) ** 2 - torch.log(s) - 0.5 * math.log(2 * math.pi)
    log_p = -0.5 * z**2 - 0.5 * math.log(2 * math.pi)
    mc = (log_q - log_p).mean(0)
    assert torch.allclose(alpha, mc, atol=0.03)
    assert float(alpha[0]) < 0.01  # a prior-like latent is typical


def test_atypicality_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        atypicality(torch.zeros(1, 4))


def test_hysteresis_keeps_previous_value_between_lambda0_and_lambda1():
    alpha = torch.tensor([0.1, 0.45, 0.45, 0.9])
    prev = torch.tensor([False, True, False, True])
    out = hysteresis_mask(alpha, prev, lambda0=0.3, lambda1=0.6)
    # below lambda0 -> active; in between -> unchanged; above lambda1 -> masked
    assert out.tolist() == [True, True, False, False]


def test_decoder_that_ignores_latents_gets_them_found_unused():
    torch.manual_seed(0)
    x = torch.rand(64, 2)

    def nll(z: torch.Tensor) -> torch.Tensor:  # depends on latents 0 and 1 only, sharply
        return 50.0 * ((z[:, :2] - x) ** 2).sum(1)

    mu = torch.cat([x, torch.zeros(64, 3)], 1)
    sigma = noise_tolerance(nll, mu, MaskConfig(used_steps=30, used_lr=0.1))
    used = used_latents(sigma, MaskConfig().used_threshold)
    assert used.tolist() == [True, True, False, False, False]
    assert float(sigma[2:].min()) > 10.0 and float(sigma[:2].max()) < 1.0


# ------------------------------------------------------------------ the applied mask a^s (eq. 2)
def _memory() -> tuple[torch.Tensor, torch.Tensor]:
    """Two environments over 4 latents: env 0 uses z0, z1; env 1 uses z1 and has z0, z1, z3 atypical."""
    masks = torch.tensor([[True, True, True, True], [False, False, True, False]])
    used = torch.tensor([[True, True, False, False], [False, True, False, False]])
    return masks, used


def test_paper_mask_is_the_stored_mask():
    masks, used = _memory()
    assert applied_mask(masks, used, 1, 2, MaskConfig.paper()).tolist() == [False, False, True, False]


def test_spare_latents_stay_unmasked():
    masks, used = _memory()  # z3 is atypical in env 1 but no other environment uses it: spare capacity
    cfg = MaskConfig.paper(spare_unmasked=True)
    assert applied_mask(masks, used, 1, 2, cfg).tolist() == [False, False, True, True]
    # the only environment: nothing is used elsewhere, every latent is spare
    only, only_used = masks[1:], used[1:]
    assert applied_mask(only, only_used, 0, 1, cfg).all()
    assert not applied_mask(only, only_used, 0, 1, MaskConfig.paper()).all()


def test_an_environments_own_used_latents_stay_active():
    masks, used = _memory()  # z1: atypical in env 1, used by env 0 -- but env 1 uses it itself
    cfg = MaskConfig.paper(protect_own_used=True)
    assert applied_mask(masks, used, 1, 2, cfg).tolist() == [False, True, True, False]
    assert applied_mask(masks, used, 1, 2, MaskConfig()).tolist() == [False, True, True, True]  # all rules


def test_never_all_masked_shares_every_latent_instead():
    masks, used = torch.zeros(2, 3, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool)
    assert not applied_mask(masks, used, 1, 2, MaskConfig.paper()).any()
    assert applied_mask(masks, used, 1, 2, MaskConfig.paper(never_all_masked=True)).all()


def test_ablations_of_the_applied_mask():
    masks, used = _memory()
    assert applied_mask(masks, used, 1, 2, MaskConfig.paper(), masking=False).all()  # A off
    # S off: one environment; what it does not use itself is spare, and its own used latents are maskable
    single = applied_mask(masks, used, 1, 2, MaskConfig(), per_environment=False)
    assert single.tolist() == [True, False, True, True]
