"""Tests for vase_rl.probing.probes: A.6 probes never update the learner, learn, and serialise."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from vase_rl.probing.probes import ProbeConfig, ProbeHistory, ProbeSet, ProbeSpec, probe_latents

LATENT = 8


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Tiny MLPs: intra-op threads only add contention (30x slower on a loaded 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyEncoder(nn.Module):
    """x (B, 1, 8, 8) -> (mu, logvar), each (B, LATENT)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 2 * LATENT)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.fc(x.flatten(1)).chunk(2, dim=1)
        return mu, logvar


def separable_latents(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """z (n, LATENT): 10 well-separated class centroids + unit noise; labels (n,); positions (n, 2)."""
    g = torch.Generator().manual_seed(seed)
    centroids = 4.0 * torch.randn(10, LATENT, generator=torch.Generator().manual_seed(123))
    labels = torch.randint(0, 10, (n,), generator=g)
    positions = torch.rand(n, 2, generator=g)
    z = centroids[labels] + torch.randn(n, LATENT, generator=g)
    z[:, :2] = positions * 3.0 + 0.05 * torch.randn(n, 2, generator=g)  # position linearly readable
    return z, labels, positions


def make_probes(seed: int = 0) -> ProbeSet:
    specs = [ProbeSpec("moving_fashion", classify=True, regress_position=True), ProbeSpec("mnist")]
    return ProbeSet(specs, latent_dim=LATENT, seed=seed)  # paper config: 2x256, Adam 6e-4


def test_probe_step_never_updates_the_encoder_even_with_grad_carrying_z() -> None:
    torch.manual_seed(0)
    encoder = TinyEncoder()
    before = copy.deepcopy(encoder.state_dict())
    x = torch.rand(16, 1, 8, 8)
    probes = ProbeSet([ProbeSpec("a", regress_position=True)], latent_dim=LATENT)
    z_safe = probe_latents(encoder, x)
    assert not z_safe.requires_grad
    z_leaky, _ = encoder(x)  # the caller forgot no_grad: train_step must still detach
    assert z_leaky.requires_grad
    for z in (z_safe, z_leaky):
        probes.train_step("a", z, labels=torch.randint(0, 10, (16,)), positions=torch.rand(16, 2))
    assert all(p.grad is None for p in encoder.parameters())
    for name, value in encoder.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_classifier_reaches_high_accuracy_on_separable_latents() -> None:
    probes = make_probes()
    z, labels, positions = separable_latents(64 * 300, seed=1)
    z_te, labels_te, positions_te = separable_latents(1000, seed=2)
    untrained = probes.evaluate("moving_fashion", z_te, labels=labels_te, positions=positions_te)
    assert untrained["accuracy"] < 30.0 and untrained["position_mse"] > 0.05
    for i in range(300):
        sl = slice(64 * i, 64 * (i + 1))
        losses = probes.train_step("moving_fashion", z[sl], labels=labels[sl], positions=positions[sl])
    scores = probes.evaluate("moving_fashion", z_te, labels=labels_te, positions=positions_te, step=300)
    assert scores["accuracy"] > 98.0
    assert scores["position_mse"] < 0.005  # Var(U[0,1]) = 0.083: the regressor learned
    assert set(losses) == {"classifier_loss", "regressor_loss"}
    assert [(r.step, r.dataset, r.metric) for r in probes.history.records] == [
        (300, "moving_fashion", "accuracy"),
        (300, "moving_fashion", "position_mse"),
    ]


def test_probe_latents_samples_or_returns_mean() -> None:
    encoder = TinyEncoder()
    x = torch.rand(4, 1, 8, 8)
    mu, _ = encoder(x)
    assert torch.allclose(probe_latents(encoder, x, sample_z=False), mu)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = probe_latents(encoder, x, generator=g1), probe_latents(encoder, x, generator=g2)
    assert torch.equal(a, b) and not torch.allclose(a, mu)


def test_history_round_trips_through_json() -> None:
    history = ProbeHistory()
    history.add(0, "mnist", "accuracy", 11.5)
    history.add(1000, "mnist", "accuracy", 91.25)
    history.add(1000, "moving_fashion", "position_mse", 3.2e-4)
    restored = ProbeHistory.from_json(history.to_json())
    assert restored == history and len(restored) == 3
    steps, values = restored.curve("mnist", "accuracy")
    np.testing.assert_array_equal(steps, [0, 1000])
    np.testing.assert_array_equal(values, [11.5, 91.25])


def test_forgetting_from_recorded_history() -> None:
    probes = make_probes()
    for step, acc in [(0, 20.0), (100, 90.0), (200, 85.0), (300, 60.0)]:
        probes.history.add(step, "mnist", "accuracy", acc)
    res = probes.forgetting("mnist", "accuracy", stage_start=0, stage_end=200)
    assert (res.best_during, res.worst_after, res.change) == (90.0, 60.0, -30.0)


def test_state_dict_round_trip_resumes_identically() -> None:
    z, labels, positions = separable_latents(64 * 6, seed=3)
    a = make_probes(seed=7)
    for i in range(3):
        sl = slice(64 * i, 64 * (i + 1))
        a.train_step("moving_fashion", z[sl], labels[sl], positions[sl])
    a.evaluate("mnist", z[:64], labels=labels[:64], step=3)
    b = make_probes(seed=99)
    b.load_state_dict(a.state_dict())
    assert b.history == a.history
    for i in range(3, 6):
        sl = slice(64 * i, 64 * (i + 1))
        la = a.train_step("moving_fashion", z[sl], labels[sl], positions[sl])
        lb = b.train_step("moving_fashion", z[sl], labels[sl], positions[sl])
        assert la == lb
    with pytest.raises(ValueError, match="does not match"):
        ProbeSet(["mnist"], latent_dim=LATENT).load_state_dict(a.state_dict())


def test_latent_noise_comes_from_the_checkpointed_generator_not_the_global_rng() -> None:
    def encode(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.flatten(1)[:, :LATENT], torch.zeros(x.shape[0], LATENT)

    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    a = make_probes(seed=4)
    a.latents(encode, x)
    b = make_probes(seed=11)
    b.load_state_dict(a.state_dict())  # the generator travels with the state
    torch.manual_seed(0)
    za = a.latents(encode, x)
    torch.manual_seed(1)  # the global RNG plays no part
    zb = b.latents(encode, x)
    assert torch.equal(za, zb)
    assert not torch.equal(za, encode(x)[0])  # sampled: z ~ q(z|x), not mu
    assert torch.equal(make_probes(seed=4).latents(encode, x), make_probes(seed=4).latents(encode, x))


def test_probe_initialisation_is_seeded_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    a, b = make_probes(seed=1), make_probes(seed=1)
    assert torch.equal(torch.rand(3), expected)
    key = ("moving_fashion", "classifier")
    for pa, pb in zip(a.probes[key].parameters(), b.probes[key].parameters(), strict=True):
        assert torch.equal(pa, pb)
    c = make_probes(seed=2)
    assert not torch.equal(next(a.probes[key].parameters()), next(c.probes[key].parameters()))


def test_bad_inputs_raise_clear_errors() -> None:
    probes = make_probes()
    z = torch.zeros(4, LATENT)
    with pytest.raises(ValueError, match="unknown dataset"):
        probes.train_step("cifar", z, labels=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"z must be float \(B, 8\) with B >= 1"):
        probes.train_step("mnist", torch.zeros(4, 3), labels=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="no regressor probe"):
        probes.train_step("mnist", z, positions=torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        probes.train_step("mnist", z, labels=torch.full((4,), 10))
    with pytest.raises(ValueError, match="NaN"):
        probes.train_step("mnist", torch.full((4, LATENT), float("nan")), labels=torch.zeros(4).long())
    with pytest.raises(ValueError, match="lr"):
        ProbeConfig(lr=0.0)
