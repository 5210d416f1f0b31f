"""Tests of the A.4 translation policy, its spatial transformer and the imagination explorer."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from vase_rl.agents.translation import (
    ImaginationConfig,
    ImaginationExplorer,
    TranslationPolicy,
    agent_loss,
    make_imagination_hook,
    pixels_to_translation,
    translate,
    translation_sensitivity,
    translation_to_env_action,
    translation_to_pixels,
)
from vase_rl.core.config import get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.core.preprocess import to_model_input


class CentreOfMassEncoder(nn.Module):
    """Hand-built, parameter-free "encoder": z = the image's centre of mass (x, y) in normalised
    coordinates (pixel centres at (2j+1)/W - 1), with a near-zero variance. The answer is known."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w = x.shape[-1]
        grid = (2 * torch.arange(w, dtype=x.dtype) + 1) / w - 1
        mass = x.sum((1, 2, 3)).clamp_min(1e-6)
        mu = torch.stack([(x.sum((1, 2)) * grid).sum(1) / mass, (x.sum((1, 3)) * grid).sum(1) / mass], 1)
        return mu, torch.full_like(mu, -30.0), mu


def fake_learner(encoder: nn.Module, size: int = 32, latent_dim: int = 2) -> SimpleNamespace:
    """The attributes ImaginationExplorer reads from a ContinualLearner, around any encoder."""
    return SimpleNamespace(
        model=SimpleNamespace(encoder=encoder),
        config=SimpleNamespace(model=SimpleNamespace(image_size=size, channels=1, latent_dim=latent_dim)),
        device=torch.device("cpu"),
        memory=None,
        preprocess=lambda x, batched=True: to_model_input(x, size, 1, "cpu", batched),
    )


def squares(n: int, gen: torch.Generator, size: int = 32, side: int = 6) -> torch.Tensor:
    """(n, 1, size, size) images of a white side x side square at random positions away from the edge."""
    x = torch.zeros(n, 1, size, size)
    corners = torch.randint(4, size - side - 3, (n, 2), generator=gen)
    for i, (cx, cy) in enumerate(corners.tolist()):
        x[i, 0, cy : cy + side, cx : cx + side] = 1.0
    return x


@pytest.fixture(autouse=True, scope="module")
def one_thread():  # type: ignore[no-untyped-def]
    """Tiny tensors: one thread avoids thread-sync stalls on a busy 2-core machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def learner() -> ContinualLearner:
    return ContinualLearner(get_preset("cpu"), device="cpu")


# ---------------------------------------------------------------------------------------- STN
@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("dx,dy", [(3, 0), (0, 5), (-4, 2), (7, -6)])
def test_translation_of_2k_over_w_moves_a_pixel_by_k_pixels_exactly(size: int, dx: int, dy: int) -> None:
    x = torch.zeros(1, 1, size, size)
    x[0, 0, 12, 10] = 1.0  # row (y) 12, column (x) 10
    y = translate(x, pixels_to_translation(dx, dy, size))
    expected = torch.zeros_like(x)
    expected[0, 0, 12 + dy, 10 + dx] = 1.0  # +x moves right, +y moves down
    assert torch.equal(y, expected)


def test_square_moved_by_known_translation_and_cropped_at_border() -> None:
    x = torch.zeros(2, 1, 32, 32)
    x[:, 0, 10:16, 10:16] = torch.rand(6, 6)
    t = torch.tensor(pixels_to_translation([5, 20], [-3, 0], 32), dtype=torch.float32)
    y = translate(x, t)
    assert torch.equal(y[0], torch.roll(x[0], shifts=(-3, 5), dims=(1, 2)))
    # 20 px right: columns 30..35 -> only 30, 31 remain inside, the rest is cropped (zeros padding)
    assert torch.equal(y[1, 0, 10:16, 30:32], x[1, 0, 10:16, 10:12])
    assert float(y[1].sum()) == pytest.approx(float(x[1, 0, 10:16, 10:12].sum()), abs=1e-5)


def test_pixel_and_normalised_translations_round_trip() -> None:
    t = pixels_to_translation(np.array([3.0, -8.0]), np.array([1.0, 16.0]), 32)
    assert np.allclose(t, [[0.1875, 0.0625], [-0.5, 1.0]])
    assert np.allclose(translation_to_pixels(t, 32), [[3, 1], [-8, 16]])


def test_bad_translations_raise() -> None:
    x = torch.zeros(2, 1, 32, 32)
    with pytest.raises(ValueError, match="shape"):
        translate(x, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="NaN"):
        translate(x, torch.tensor([float("nan"), 0.0]))


# ------------------------------------------------------------------------------------- the env
def continuous_canvas(**kw: object):  # type: ignore[no-untyped-def]
    from vase_rl.envs.sprites import SpriteCanvas

    return SpriteCanvas(source="shapes", canvas_size=32, action_type="continuous", **kw)


def test_env_action_moves_sprite_like_the_stn_inside_the_canvas() -> None:
    env = continuous_canvas(moving=False)
    obs, info = env.reset(seed=3)
    t = pixels_to_translation(3, -2, 32)
    obs2, *_, info2 = env.step(translation_to_env_action(env, t))
    free = env.renderer.free
    assert info2["x"] == pytest.approx(info["x"] + 3 / free)
    assert info2["y"] == pytest.approx(info["y"] - 2 / free)
    stn = translate(torch.from_numpy(obs).permute(2, 0, 1)[None].float(), t)
    assert torch.equal(stn[0, 0], torch.from_numpy(obs2[..., 0]).float())


def test_env_clips_at_the_edge_where_the_stn_crops() -> None:
    env = continuous_canvas(moving=False)
    obs, _ = env.reset(seed=0)
    t = np.array([0.9, 0.0])  # 14 px right from the centre: past the right edge
    obs2, *_, info2 = env.step(translation_to_env_action(env, t))
    assert info2["x"] == pytest.approx(1.0)
    assert int(obs2.astype(np.int64).sum()) == int(obs.astype(np.int64).sum())  # re-rendered, not cut
    stn = translate(torch.from_numpy(obs).permute(2, 0, 1)[None].float(), t)
    assert float(stn.sum()) < 0.8 * float(obs.astype(np.float64).sum())


def test_act_in_env_steps_a_continuous_env_and_rejects_discrete(learner: ContinualLearner) -> None:
    ex = ImaginationExplorer(learner, ImaginationConfig(enabled=True))
    env = continuous_canvas(moving=True)
    obs, info = env.reset(seed=1)
    z = torch.zeros(learner.config.model.latent_dim)
    *_, info2 = ex.act_in_env(env, obs, z)
    t = ex.act(learner.preprocess(obs, batched=False), z[None])[0][0].detach().numpy()
    free = env.renderer.free
    expected = (
        np.clip(
            np.rint(np.array([info["x"], info["y"]]) * free + translation_to_env_action(env, t) * free / 2),
            0,
            free,
        )
        / free
    )
    assert np.allclose([info2["x"], info2["y"]], expected)
    with pytest.raises(ValueError, match="continuous"):
        from vase_rl.envs.sprites import SpriteCanvas

        ex.act_in_env(SpriteCanvas(source="shapes", canvas_size=32), obs)


# -------------------------------------------------------------------------- policy and loss
def test_gradients_reach_the_policy_through_the_stn_but_not_the_encoder(learner: ContinualLearner) -> None:
    mc = learner.config.model
    policy = TranslationPolicy(mc.image_size, mc.channels, mc.latent_dim)
    x, z = torch.rand(4, 1, mc.image_size, mc.image_size), torch.randn(4, mc.latent_dim)
    loss = agent_loss(learner.model.encoder, translate(x, policy(x, z)), z)
    loss.backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in policy.parameters())
    assert all(p.grad is None for p in learner.model.encoder.parameters())


def test_policy_step_does_not_change_the_vase_encoder(learner: ContinualLearner) -> None:
    ex = ImaginationExplorer(learner, ImaginationConfig(enabled=True, lr=1e-2))
    enc_before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    pol_before = [p.clone() for p in ex.policy.parameters()]
    for _ in range(3):
        ex.policy_step(torch.rand(8, 1, 32, 32))
    assert all(torch.equal(v, learner.model.state_dict()[k]) for k, v in enc_before.items())
    assert any(not torch.equal(a, b) for a, b in zip(pol_before, ex.policy.parameters(), strict=True))


@pytest.mark.parametrize("penalty", [0.0, 0.1])
def test_policy_learns_to_move_a_sprite_to_the_position_z_star_encodes(penalty: float) -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    com = CentreOfMassEncoder()
    cfg = ImaginationConfig(enabled=True, lr=2e-3, seed=0, saturation_penalty=penalty)
    ex = ImaginationExplorer(fake_learner(com), cfg)
    first = None
    for _ in range(100):
        z_star = torch.rand(32, 2, generator=gen) - 0.5  # reachable centres, within +-8 px of the middle
        out = ex.policy_step(squares(32, gen), z_star)
        first = out["agent_loss"] if first is None else first
    x, z_star = squares(256, gen), torch.rand(256, 2, generator=gen) - 0.5
    x_star, _, _ = ex.imagine(x, z_star)
    err_before = float(((com(x)[0] - z_star) ** 2).sum(1).mean())
    err_after = float(((com(x_star)[0] - z_star) ** 2).sum(1).mean())
    assert first > 0.2 and out["agent_loss"] < 0.02
    assert err_before > 0.2 and err_after < 0.02  # rms error < 0.1 = 1.6 px per axis


class BlindEncoder(nn.Module):
    """An "encoder" whose code does not depend on the image: L_agent has no gradient for the policy."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu = 0.0 * x.sum((1, 2, 3))[:, None].repeat(1, 2)
        return mu, torch.full_like(mu, -30.0), mu


@pytest.mark.parametrize("penalty", [0.0, 0.1])
def test_saturation_penalty_unpins_a_cornered_policy_that_l_agent_cannot_move(penalty: float) -> None:
    gen = torch.Generator().manual_seed(0)
    cfg = ImaginationConfig(enabled=True, lr=2e-3, seed=0, max_translation=0.5, saturation_penalty=penalty)
    ex = ImaginationExplorer(fake_learner(BlindEncoder()), cfg)
    with torch.no_grad():
        ex.policy.fc[-1].bias.fill_(6.0)  # every pre-tanh output near +6: the corner, |t| at 0.5
    outs = [ex.policy_step(squares(16, gen), torch.randn(16, 2, generator=gen)) for _ in range(300)]
    assert outs[0]["saturated"] == 1.0 and outs[0]["translation_abs"] > 0.49
    if penalty == 0:  # nothing moves the policy: it stays in the corner
        assert outs[-1]["saturated"] == 1.0 and outs[-1]["translation_abs"] > 0.49
    else:  # the penalty alone pulls it back to where tanh has a gradient
        assert outs[-1]["saturated"] == 0.0 and outs[-1]["translation_abs"] < 0.4


def test_used_target_latents_are_the_union_over_seen_environments(learner: ContinualLearner) -> None:
    ex = ImaginationExplorer(learner, ImaginationConfig(enabled=True, target_latents="used"))
    n = learner.config.model.latent_dim
    saved = learner.memory
    try:
        used = torch.zeros(3, n, dtype=torch.bool)
        used[0, 1], used[1, 4], used[2, 7] = True, True, True  # env 2 not seen yet
        learner.memory = SimpleNamespace(used=used, n_seen=2)
        assert ex.target_mask().nonzero().flatten().tolist() == [1, 4]
    finally:
        learner.memory = saved
    assert ImaginationExplorer(learner, ImaginationConfig(enabled=True)).target_mask() is None


class PositionAndMassEncoder(CentreOfMassEncoder):
    """Latents (x, y, mass / 100): the centre of mass, which translation moves, and the total intensity,
    which it does not (the sprite stays inside the frame)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pos = super().forward(x)[0]
        mu = torch.cat([pos, x.sum((1, 2, 3))[:, None] / 100], 1)
        return mu, torch.full_like(mu, -30.0), mu


def test_translation_sensitive_targets_are_the_position_latents() -> None:
    enc, x = PositionAndMassEncoder(), squares(8, torch.Generator().manual_seed(3))
    sd = translation_sensitivity(enc, x, 0.25)
    # t in {-0.25, 0, 0.25} moves the centre by exactly those amounts: sd = 0.25 * sqrt(6/8) per axis
    assert torch.allclose(sd[:2], torch.full((2,), 0.25 * (6 / 8) ** 0.5), atol=1e-4)
    assert float(sd[2]) < 1e-4
    cfg = ImaginationConfig(
        enabled=True, target_latents="translation-sensitive", max_translation=0.25, sensitive_sd=0.1
    )
    ex = ImaginationExplorer(fake_learner(enc, latent_dim=3), cfg)
    assert ex.target_mask(x).tolist() == [True, True, False]
    assert ex.policy_step(x)["target_latents"] == 2.0
    with pytest.raises(ValueError, match="needs the batch"):
        ex.target_mask()
    blind = ImaginationExplorer(fake_learner(enc, latent_dim=3), dataclasses.replace(cfg, sensitive_sd=1.0))
    assert blind.target_mask(x) is None  # nothing sensitive yet: every latent is a target


# ------------------------------------------------------------------------------------ explorer
def test_explorer_adds_imagined_images_only_when_enabled(learner: ContinualLearner) -> None:
    x = squares(8, torch.Generator().manual_seed(1))
    off = make_imagination_hook(learner, ImaginationConfig(enabled=False))
    assert off(0, "mnist", x) is x
    on = make_imagination_hook(learner, ImaginationConfig(enabled=True, fraction=0.25, start_step=10))
    assert torch.equal(on(5, "mnist", x), x)  # before start_step: policy trains, batch untouched
    assert on.policy_steps == 1
    y = on(10, "mnist", x)
    assert y.shape == x.shape and torch.equal(y[2:], x[2:])
    assert not torch.equal(y[:2], x[:2]) and on.imagined == 2
    none = make_imagination_hook(learner, ImaginationConfig(enabled=True, fraction=0.0))
    assert torch.equal(none(0, "mnist", x), x)


def test_random_policy_control_translates_blindly_and_never_trains(learner: ContinualLearner) -> None:
    """``policy="random"``: half the batch moved by t ~ U[-0.5, 0.5]^2 (each image its own t, the content
    conserved up to cropping), the policy's weights untouched, the same t for the same seed."""
    x = squares(8, torch.Generator().manual_seed(1))
    cfg = ImaginationConfig(enabled=True, fraction=0.5, policy="random", max_translation=0.5, seed=3)
    hook = make_imagination_hook(learner, cfg)
    before = [p.detach().clone() for p in hook.policy.parameters()]
    y = hook(0, "mnist", x)
    assert torch.equal(y[4:], x[4:]) and not torch.equal(y[:4], x[:4]) and hook.imagined == 4
    kept = zip(hook.policy.parameters(), before, strict=True)
    assert hook.policy_steps == 0 and all(torch.equal(p, q) for p, q in kept)
    assert 0.0 < hook.last["translation_abs"] <= 0.5
    again = make_imagination_hook(learner, cfg)(0, "mnist", x)
    assert torch.equal(again, y)
    with pytest.raises(ValueError, match="policy must be 'learned' or 'random'"):
        ImaginationConfig(policy="greedy")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda n: torch.zeros(4, n + 1), "latent_dim"),
        (lambda n: torch.full((4, n), float("nan")), "NaN"),
        (lambda n: torch.zeros(4, n, dtype=torch.long), "float"),
        (lambda n: torch.zeros(5, n), "batch"),
    ],
)
def test_bad_targets_raise_clear_errors(learner: ContinualLearner, make, match: str) -> None:  # type: ignore[no-untyped-def]
    ex = ImaginationExplorer(learner, ImaginationConfig(enabled=True))
    z_star = make(learner.config.model.latent_dim)
    with pytest.raises(ValueError, match=match):
        ex.policy_step(torch.rand(4, 1, 32, 32), z_star)


@pytest.mark.parametrize(
    "kw",
    [
        {"fraction": 1.5},
        {"lr": 0.0},
        {"target_latents": "current"},
        {"start_step": -1},
        {"filters": 0},
        {"saturation_penalty": -0.1},
        {"saturation_level": 0.0},
    ],
)
def test_invalid_config_raises(kw: dict) -> None:
    with pytest.raises(ValueError):
        ImaginationConfig(**kw)


def test_state_dict_round_trip_resumes_identically(learner: ContinualLearner) -> None:
    x = torch.rand(8, 1, 32, 32)
    a = ImaginationExplorer(learner, ImaginationConfig(enabled=True, seed=1))
    a.policy_step(x)
    b = ImaginationExplorer(learner, ImaginationConfig(enabled=True, seed=2))
    b.load_state_dict(a.state_dict())
    assert a.policy_step(x) == b.policy_step(x)


def test_hook_plugs_into_the_sequence_trainer(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from vase_rl.runs.training import RunSettings, SequenceTrainer

    cfg = get_preset("cpu").with_overrides(batch_size=8)
    settings = RunSettings(
        sequence=("moving-shapes", "shapes"), steps_per_env=2, probes=False, checkpoint_every=100
    )
    trainer = SequenceTrainer(cfg, settings, str(tmp_path), device="cpu")
    explorer = ImaginationExplorer(trainer.learner, ImaginationConfig(enabled=True))
    trainer.batch_hook = explorer.as_batch_hook()
    trainer.run(progress=False)
    assert explorer.policy_steps == 4 and explorer.imagined == 16


@pytest.mark.parametrize("size", [32, 48])
def test_exact_grid_is_the_affine_grid_of_the_translation_theta(size: int) -> None:
    import torch.nn.functional as F

    from vase_rl.agents.translation import translation_grid, translation_theta

    t = torch.rand(3, 2) * 2 - 1
    ref = F.affine_grid(translation_theta(t), [3, 1, size, size], align_corners=False)
    assert torch.allclose(translation_grid(t, size, size), ref, atol=1e-6)
