"""Loss terms: capacity schedule (A.3), eq. 3 units, eq. 7 distances against hand-computed values."""

import math

import pytest
import torch

from vase_rl.core.config import LossConfig
from vase_rl.core.losses import (
    capacity_loss,
    capacity_schedule,
    colour_rarity_weights,
    decoder_proximity,
    gaussian_kl,
    mdl_loss,
    reconstruction_nll,
    wasserstein_encoder_proximity,
)


def test_capacity_schedule_grows_linearly_then_stays_at_c_max():
    assert capacity_schedule(0, 35.0, 6.3e-6) == 0.0
    assert capacity_schedule(1000, 35.0, 6.3e-6) == pytest.approx(1000 * 6.3e-6 * 35.0)
    # reaches C_max after 1 / delta_C steps and stays
    assert capacity_schedule(int(1 / 6.3e-6) + 1, 35.0, 6.3e-6) == 35.0
    assert capacity_schedule(10**7, 35.0, 6.3e-6) == 35.0
    with pytest.raises(ValueError):
        capacity_schedule(-1, 35.0, 1e-3)


def test_capacity_loss_is_gamma_times_squared_gap_of_batch_mean_kl():
    kl = torch.tensor([10.0, 14.0])
    assert float(capacity_loss(kl, 5.0, 100.0)) == pytest.approx(100.0 * (12.0 - 5.0) ** 2)
    assert float(capacity_loss(kl, 12.0, 100.0)) == 0.0


def test_reconstruction_nll_is_summed_over_pixels_in_nats():
    x = torch.zeros(2, 1, 4, 4)
    logits = torch.zeros(2, 1, 4, 4)  # p = 0.5 everywhere -> log 2 nats per pixel
    nll = reconstruction_nll(logits, x, "bernoulli")
    assert nll.shape == (2,)
    assert torch.allclose(nll, torch.full((2,), 16 * math.log(2.0)))
    g = reconstruction_nll(torch.full((1, 1, 2, 2), 0.1), torch.zeros(1, 1, 2, 2), "gaussian", 0.1)
    assert float(g) == pytest.approx(4 * 0.5 * 1.0, rel=1e-5)  # constant omitted: NLL >= 0


def test_gaussian_kl_closed_form_values():
    mu = torch.tensor([[0.0, 1.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    kl = gaussian_kl(mu, logvar)
    assert float(kl[0, 0]) == 0.0
    assert float(kl[0, 1]) == pytest.approx(0.5 * (1 + 4 - 1 - math.log(4.0)))


def test_wasserstein_matches_hand_computed_value():
    mu, mu_old = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    logvar, logvar_old = torch.log(torch.tensor([[4.0, 1.0]])), torch.log(torch.tensor([[1.0, 9.0]]))
    # ||mu - mu'||^2 = 1 + 4; ||sigma - sigma'||^2 = (2-1)^2 + (1-3)^2 = 1 + 4
    assert float(wasserstein_encoder_proximity(mu, logvar, mu_old, logvar_old)) == pytest.approx(10.0)


def test_bernoulli_kl_decoder_proximity_matches_hand_computed_value():
    p_new, p_old = 0.3, 0.8
    out = torch.full((1, 1, 1, 2), math.log(p_new / (1 - p_new)))  # logits
    out_old = torch.full((1, 1, 1, 2), math.log(p_old / (1 - p_old)))
    kl_one = p_old * math.log(p_old / p_new) + (1 - p_old) * math.log((1 - p_old) / (1 - p_new))
    assert float(decoder_proximity(out, out_old, "bernoulli")) == pytest.approx(2 * kl_one, rel=1e-5)
    assert float(decoder_proximity(out_old, out_old, "bernoulli")) == pytest.approx(0.0, abs=1e-6)
    g = decoder_proximity(torch.full((1, 1, 1, 1), 0.5), torch.full((1, 1, 1, 1), 0.3), "gaussian", 0.1)
    assert float(g) == pytest.approx(0.5 * 0.04 / 0.01)


def test_mdl_loss_is_eq3_or_the_entangled_elbo():
    nll, kl = torch.tensor([100.0, 120.0]), torch.tensor([3.0, 7.0])  # mean NLL 110, mean KL 5
    loss, reg = mdl_loss(nll, kl, 2.0, LossConfig(gamma=10.0))
    assert (float(loss), float(reg)) == (110.0 + 10.0 * 9.0, 90.0)
    assert float(mdl_loss(nll, kl, 8.0, LossConfig(gamma=10.0))[1]) == 90.0  # two-sided: KL below C too
    assert float(mdl_loss(nll, kl, 8.0, LossConfig(gamma=10.0, capacity_mode="upper"))[1]) == 0.0
    loss, reg = mdl_loss(nll, kl, 2.0, LossConfig(entangled=True, beta_vae=1.0))  # no capacity target
    assert (float(loss), float(reg)) == (115.0, 5.0)


def test_colour_rarity_weights_favour_the_rare_colour_and_keep_mean_one():
    x = torch.zeros(2, 3, 8, 8)
    x[:, 2] = 1.0  # a blue batch ...
    x[0, :, 3, 3] = torch.tensor([1.0, 0.0, 0.0])  # ... with one red pixel in 128
    w = colour_rarity_weights(x, 0.5)
    assert w.shape == (2, 1, 8, 8) and float(w.mean()) == pytest.approx(1.0)
    # f = 1/128 against 127/128: the ratio of weights is sqrt(127)
    assert float(w[0, 0, 3, 3] / w[0, 0, 0, 0]) == pytest.approx(math.sqrt(127.0), rel=1e-5)
    assert torch.equal(colour_rarity_weights(x, 0.0), torch.ones(2, 1, 8, 8))
    # the weighted NLL scales each pixel's term: all-0.5 logits -> log 2 per pixel and channel
    nll = reconstruction_nll(torch.zeros_like(x), x, "bernoulli", weight=w)
    assert torch.allclose(nll, 3 * math.log(2.0) * w.flatten(1).sum(1))
    with pytest.raises(ValueError, match="rarity power"):
        colour_rarity_weights(x, -1.0)
    with pytest.raises(ValueError, match="rarity_power"):
        LossConfig(rarity_power=-0.5)
