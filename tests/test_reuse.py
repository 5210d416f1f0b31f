"""Latent reuse across environments: the new environment's decoder code, the per-environment output
affine, the capacity start and the shared-latents diagnostic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import shapes_batches, tiny_config

from vase_rl.core.config import DreamConfig, MaskConfig, ModelConfig
from vase_rl.core.dreaming import Reading, Snapshot, sample_dream, shared_reading_loss
from vase_rl.core.learner import ContinualLearner
from vase_rl.core.losses import capacity_schedule, wasserstein_encoder_proximity
from vase_rl.probing.offline_probe import shared_latents
from vase_rl.rl.inference_copy import InferenceCopy

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _allocate_two(
    new_env_code: str,
    conditioning: str = "input",
    new_env_used: str = "all",
    dream: dict[str, object] | None = None,
    **model: object,
) -> ContinualLearner:
    """Env 0 trained on shapes, env 1 allocated by their inverse; the learning rate is set to 0 before the
    allocating step so that it changes no weight. ``dream``: DreamConfig overrides."""
    cfg = tiny_config(
        model={"new_env_code": new_env_code, "env_conditioning": conditioning, **model},
        inference={"patience": 2},
        mask={"new_env_used": new_env_used},
        dream={"tau": 20, "batch_size": 16, **(dream or {})},
    )
    learner = ContinualLearner(cfg, device="cpu")
    batches = shapes_batches(60, 16, seed=3)
    assert {learner.train_step(b).env for b in batches[:40]} == {0}
    for group in learner.optimizer.param_groups:
        group["lr"] = 0.0
    for b in batches[40:]:  # until eq. 6 allocates (patience 2); nothing after it
        if learner.train_step(255 - b).new_env:
            break
    assert learner.memory.n_seen == 2 and learner.current_env == 1
    return learner


@pytest.mark.parametrize("conditioning", ["input", "input+output"])
def test_inherited_code_makes_the_new_environment_decode_like_the_old(conditioning: str) -> None:
    z = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    inherit = _allocate_two("inherit", conditioning)
    assert torch.allclose(inherit.decode(z, 0), inherit.decode(z, 1), atol=1e-6)
    random = _allocate_two("random", conditioning)
    assert (random.decode(z, 0) - random.decode(z, 1)).abs().max() > 1e-3  # a random code decodes otherwise


def test_output_affine_starts_as_identity_and_can_invert_contrast() -> None:
    cfg = tiny_config()
    plain = ContinualLearner(cfg, device="cpu")
    affine = ContinualLearner(cfg.with_overrides(model={"env_conditioning": "input+output"}), device="cpu")
    z = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(plain.decode(z, 2), affine.decode(z, 2), atol=1e-6)  # same init, identity affine
    assert affine.model.decoder.env_scale is not None
    with torch.no_grad():
        affine.model.decoder.env_scale[2] = -1.0  # Bernoulli logits negated: mean image 1 - x
    assert torch.allclose(affine.decode(z, 2), 1 - plain.decode(z, 2), atol=1e-6)
    assert torch.allclose(affine.decode(z, 0), plain.decode(z, 0), atol=1e-6)  # other environments as before


@pytest.mark.parametrize(("new_env_used", "expected"), [("all", 6), ("none", 0)])
def test_new_environment_starts_with_all_or_no_latents_used(new_env_used: str, expected: int) -> None:
    learner = _allocate_two("random", new_env_used=new_env_used)
    assert int(learner.memory.used[1].sum()) == expected  # before A.2's first test on env 1 (grace 10)


def test_first_environment_starts_with_every_latent_used_whatever_new_env_used() -> None:
    learner = ContinualLearner(tiny_config(mask={"new_env_used": "none"}), device="cpu")
    learner.train_step(shapes_batches(1, 16, seed=3)[0])
    assert learner.memory.n_seen == 1 and bool(learner.memory.used[0].all())  # no old env to mask for it


def test_picked_sign_reads_an_inverted_environment_with_the_old_latents() -> None:
    keep = _allocate_two("inherit", "input+output")
    pick = _allocate_two("inherit", "input+output", new_env_sign="pick")
    assert keep.model.decoder.env_scale is not None and pick.model.decoder.env_scale is not None
    scale_keep, scale_pick = keep.model.decoder.env_scale.detach(), pick.model.decoder.env_scale.detach()
    assert torch.equal(scale_keep[1], scale_keep[0])  # inherited as it is
    assert torch.equal(scale_pick[1], -scale_pick[0]) and float(scale_pick[0, 0]) > 0  # flipped: inverse data
    z = torch.randn(8, 6, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(pick.decode(z, 1), 1 - pick.decode(z, 0), atol=1e-5)  # same latents, inverted image


def test_input_view_reads_an_inverted_environment_as_the_old_one() -> None:
    view = _allocate_two("inherit", "input+output", new_env_sign="pick", env_input_view="pick")
    signs = view.model.encoder.input_sign
    assert signs is not None and signs.tolist()[:2] == [1.0, -1.0]  # follows the picked output sign
    b = torch.as_tensor(shapes_batches(1, 16, seed=7)[0])
    x, inv = view.preprocess(b), view.preprocess(255 - b)
    assert torch.allclose(view.encode(inv, env=1), view.encode(x, env=0), atol=1e-5)  # one reading
    assert not torch.allclose(view.encode(inv, env=0), view.encode(x, env=0), atol=1e-2)  # raw: another
    # without env, each frame is read in the view of the environment the classifier files it under
    filed = view.model.classifier(view.model.encoder(inv)[2], 2).argmax(1)
    expected = torch.where(filed[:, None] == 1, view.encode(inv, env=1), view.encode(inv, env=0))
    assert torch.allclose(view.encode(inv), expected, atol=1e-5)
    copy = InferenceCopy(view)  # what the wrappers encode with: the same reading, input signs included
    copy.refresh()
    mu, env = copy(inv, with_env=True)
    assert env is not None and torch.equal(env, filed) and torch.allclose(mu, view.encode(inv), atol=1e-5)
    with torch.no_grad():
        signs[1] = 1.0  # a sign set after the copy was made (an allocation) reaches it at the next refresh
    copy.refresh()
    assert copy.encoder.input_sign is not None and copy.encoder.input_sign.tolist()[:2] == [1.0, 1.0]
    plain = _allocate_two("inherit", "input+output", new_env_sign="pick")
    assert plain.model.encoder.input_sign is None  # off by default: the state_dict is the paper's
    assert "encoder.input_sign" not in plain.model.state_dict()
    assert torch.equal(plain.encode(inv, env=1), plain.encode(inv))  # and env changes nothing


def test_input_view_keeps_training_in_the_inverted_environment_and_resumes_exactly() -> None:
    cfg = tiny_config(
        model={
            "new_env_code": "inherit",
            "env_conditioning": "input+output",
            "new_env_sign": "pick",
            "env_input_view": "pick",
        },
        inference={"patience": 2},
        dream={"tau": 20, "batch_size": 16},
    )
    batches = shapes_batches(90, 16, seed=3)
    frames = [b if i < 40 else 255 - b for i, b in enumerate(batches)]

    def run(learner: ContinualLearner, part: list[np.ndarray]) -> list[float]:
        return [learner.train_step(b).loss for b in part]

    whole = ContinualLearner(cfg, device="cpu")
    losses = run(whole, frames)
    assert whole.memory.n_seen == 2 and whole.current_env == 1 and all(np.isfinite(losses[50:]))
    # eq. 6 tests each candidate on the batch as it reads it (its view: codes and atypicality)
    assert whole.infer_environment(frames[0]).env == 0 and whole.infer_environment(frames[-1]).env == 1
    first = ContinualLearner(cfg, device="cpu")
    run(first, frames[:60])
    second = ContinualLearner(cfg, device="cpu")
    second.load_state_dict(first.state_dict())
    assert run(second, frames[60:]) == losses[60:]  # the input signs travel in the checkpoint


def test_input_view_is_inert_while_no_sign_is_picked_negative() -> None:
    """A run whose looks all keep the positive sign trains bit for bit as without the view (the relabelling of
    finished benchmark runs between the two settings rests on this)."""
    model = {"new_env_code": "inherit", "env_conditioning": "input+output", "new_env_sign": "pick"}
    batches = shapes_batches(70, 16, seed=3)
    frames = [
        b if i < 40 else np.clip(b.astype(int) + 96, 0, 255).astype(b.dtype) for i, b in enumerate(batches)
    ]

    def run(view: str) -> tuple[ContinualLearner, list[float]]:
        cfg = tiny_config(
            model={**model, "env_input_view": view},
            inference={"patience": 2},
            dream={"tau": 20, "batch_size": 16},
        )
        learner = ContinualLearner(cfg, device="cpu")
        return learner, [learner.train_step(b).loss for b in frames]

    (raw, raw_losses), (view, view_losses) = (
        run("raw"),
        run("pick"),
    )  # the second look: brighter, not inverted
    assert view.memory.n_seen == 2 and view.model.encoder.input_sign is not None
    assert view.model.encoder.input_sign.tolist()[:2] == [1.0, 1.0]  # the second look kept its sign
    assert view_losses == raw_losses
    state = {k: v for k, v in view.model.state_dict().items() if k != "encoder.input_sign"}
    assert all(torch.equal(v, raw.model.state_dict()[k]) for k, v in state.items())
    assert torch.equal(view.encode(frames[-1]), raw.encode(frames[-1]))


def test_young_environment_trains_its_own_decoder_weights_only() -> None:
    learner = _allocate_two("inherit", "input+output", young_decoder_frozen_steps=5)
    for group in learner.optimizer.param_groups:
        group["lr"] = 6e-4
    decoder = learner.model.decoder
    before = {name: p.detach().clone() for name, p in decoder.named_parameters()}
    batch = 255 - shapes_batches(1, 16, seed=4)[0]
    for _ in range(4):  # steps 1-4 of environment 1: its shared decoder is held
        assert learner.train_step(batch).env == 1
    after = dict(decoder.named_parameters())
    assert torch.equal(after["fc2.weight"], before["fc2.weight"])
    assert torch.equal(after["fc1.weight"][:, :6], before["fc1.weight"][:, :6])  # the latents' weights
    assert not torch.equal(after["fc1.weight"][:, 6 + 1], before["fc1.weight"][:, 6 + 1])  # its own code
    assert torch.equal(after["env_scale"][0], before["env_scale"][0])
    for _ in range(3):  # past 5 steps in environment 1: the shared decoder learns again
        learner.train_step(batch)
    assert not torch.equal(decoder.fc2.weight, before["fc2.weight"])


def _brightened_second_look(hold_for: str) -> ContinualLearner:
    """Env 0 trained on shapes, env 1 allocated by the same shapes brightened (the sign pick keeps +1 or
    flips: whichever reconstructs better), the shared decoder held 5 steps for ``hold_for``'s environments."""
    cfg = tiny_config(
        model={
            "new_env_code": "inherit",
            "env_conditioning": "input+output",
            "new_env_sign": "pick",
            "young_decoder_frozen_steps": 5,
            "young_decoder_hold_for": hold_for,
        },
        inference={"patience": 2},
        dream={"tau": 20, "batch_size": 16},
    )
    learner = ContinualLearner(cfg, device="cpu")
    batches = shapes_batches(60, 16, seed=3)
    for i, b in enumerate(batches):
        learner.train_step(b if i < 40 else np.clip(b.astype(int) + 96, 0, 255).astype(b.dtype))
        if learner.memory.n_seen == 2:
            break
    assert learner.memory.n_seen == 2 and learner.current_env == 1
    return learner


def test_hold_for_flipped_holds_only_a_contrast_inverted_environment() -> None:
    inverted = _allocate_two(
        "inherit",
        "input+output",
        new_env_sign="pick",
        young_decoder_frozen_steps=5,
        young_decoder_hold_for="flipped",
    )
    picked = inverted.model.decoder.picked_sign
    assert picked is not None and picked.tolist()[:2] == [1.0, -1.0]
    assert inverted._young_decoder_hold(1) is not None  # picked negative: held as with "every"
    brightened = _brightened_second_look("flipped")
    picked = brightened.model.decoder.picked_sign
    assert picked is not None and picked.tolist()[:2] == [1.0, 1.0]  # the brighter look kept the sign
    assert brightened._young_decoder_hold(1) is None  # so its shared decoder is not held
    assert _brightened_second_look("every")._young_decoder_hold(1) is not None
    fc2 = brightened.model.decoder.fc2.weight.detach().clone()
    brightened.train_step(np.clip(shapes_batches(1, 16, seed=4)[0].astype(int) + 96, 0, 255).astype(np.uint8))
    assert not torch.equal(brightened.model.decoder.fc2.weight, fc2)  # it trains from its first steps
    resumed = ContinualLearner(brightened.config, device="cpu")
    resumed.load_state_dict(brightened.state_dict())
    assert torch.equal(resumed.model.decoder.picked_sign, brightened.model.decoder.picked_sign)
    plain = _allocate_two("inherit", "input+output", new_env_sign="pick")
    # off by default: the state_dict is unchanged
    assert "decoder.picked_sign" not in plain.model.state_dict()


def _held_momentum(hold: str, steps: int) -> tuple[float, float]:
    """The largest |Adam first moment| of the shared ``fc2.weight`` just after environment 1's allocation and
    after ``steps`` more held steps (the weights themselves stay put either way)."""
    learner = _allocate_two("inherit", "input+output", young_decoder_frozen_steps=50, young_decoder_hold=hold)
    for group in learner.optimizer.param_groups:
        group["lr"] = 6e-4
    fc2 = learner.model.decoder.fc2.weight
    start, weights = float(learner.optimizer.state[fc2]["exp_avg"].abs().max()), fc2.detach().clone()
    batch = 255 - shapes_batches(1, 16, seed=4)[0]
    for _ in range(steps):
        assert learner.train_step(batch).env == 1
    assert torch.equal(fc2, weights)  # held either way
    return start, float(learner.optimizer.state[fc2]["exp_avg"].abs().max())


def test_holding_gradients_lets_the_held_decoders_momentum_decay() -> None:
    _, weights_end = _held_momentum("weights", 30)
    start, gradients_end = _held_momentum("gradients", 30)
    assert gradients_end == pytest.approx(start * 0.9**30, rel=1e-3)  # beta1 = 0.9, no new gradient
    assert weights_end > 10 * gradients_end  # "weights": the young environment's gradients pile up


def test_a_gradual_release_keeps_a_growing_fraction_of_the_shared_decoders_updates() -> None:
    batch = 255 - shapes_batches(1, 16, seed=4)[0]
    learners = {}
    for release in (0, 4):
        learner = _allocate_two(
            "inherit", "input+output", young_decoder_frozen_steps=3, young_decoder_release_steps=release
        )
        for group in learner.optimizer.param_groups:
            group["lr"] = 6e-4
        for _ in range(2):  # environment 1's steps 1-2 (the allocating step was its step 0): held
            learner.train_step(batch)
        learners[release] = learner
    held = learners[0].model.decoder.fc2.weight.detach().clone()
    assert torch.equal(held, learners[4].model.decoder.fc2.weight)  # same state up to the end of the hold
    for learner in learners.values():
        learner.train_step(batch)  # step 3 = the first after the hold: all of it, or 1/4 of it
    free = learners[0].model.decoder.fc2.weight.detach() - held
    ramp = learners[4].model.decoder.fc2.weight.detach() - held
    assert float(free.abs().max()) > 1e-5
    assert torch.allclose(ramp, 0.25 * free, atol=1e-7)
    assert learners[4]._young_decoder_hold(1) is not None  # still releasing (2/4 next)


def _reading(
    learner: ContinualLearner, used: torch.Tensor | None = None, latents: str = "both"
) -> tuple[torch.Tensor, Snapshot]:
    """shared_reading_loss (B,) of a 16-dream batch of environment 0 read in environment 1, the snapshot
    synced to the learner; ``used`` (max_environments, N) replaces u^s; ``latents``: "both" or "past"."""
    snapshot = Snapshot(learner.model)
    dream = sample_dream(snapshot, [0], 16, 6, torch.Generator().manual_seed(2))
    with torch.no_grad():
        mu_old, logvar_old, _ = snapshot.model.encoder(dream.x)
    used = learner.memory.used if used is None else used
    return shared_reading_loss(
        learner.model, snapshot, dream.z, dream.env, Reading(1, used, latents), (mu_old, logvar_old)
    ), snapshot


def test_shared_reading_is_zero_where_the_new_look_renders_as_the_old() -> None:
    inherit = _allocate_two("inherit", "input+output")  # env 1 decodes exactly as env 0
    every = torch.ones(inherit.memory.used.shape, dtype=torch.bool)
    loss, _ = _reading(inherit, every)
    assert float(loss.detach().abs().max()) < 1e-10
    pick = _allocate_two("inherit", "input+output", new_env_sign="pick")  # env 1: the inverted rendering
    loss, _ = _reading(pick, every)
    assert float(loss.detach().mean()) > 0.1  # the encoder reads an inverted image otherwise


def test_shared_reading_counts_only_latents_both_environments_use() -> None:
    pick = _allocate_two("inherit", "input+output", new_env_sign="pick")
    used = torch.ones(pick.memory.used.shape, dtype=torch.bool)
    full, snapshot = _reading(pick, used)
    used[1] = False
    assert float(_reading(pick, used)[0].detach().abs().max()) == 0.0  # env 1 uses nothing: nothing is shared
    past, _ = _reading(pick, used, "past")  # every latent env 0 uses, whatever env 1 uses
    assert torch.allclose(past.detach(), full.detach())
    used[1, 2] = True
    only_2, _ = _reading(pick, used)
    dream = sample_dream(snapshot, [0], 16, 6, torch.Generator().manual_seed(2))
    with torch.no_grad():
        mu_old, logvar_old, _ = snapshot.model.encoder(dream.x)
        mu, logvar, _ = pick.model.encoder(pick.model.decoder.mean(dream.z, torch.ones_like(dream.env)))
    w = wasserstein_encoder_proximity(mu[:, 2:3], logvar[:, 2:3], mu_old[:, 2:3], logvar_old[:, 2:3])
    assert torch.allclose(only_2.detach(), w, atol=1e-6) and float(only_2.detach().sum()) < float(
        full.detach().sum()
    )
    rendered = shared_reading_loss(
        pick.model, snapshot, dream.z, dream.env, Reading(1, used)
    )  # no target given
    assert torch.allclose(rendered.detach(), only_2.detach(), atol=1e-6)  # the snapshot renders x' itself


def test_shared_reading_trains_the_encoder_to_read_the_new_look_as_the_old() -> None:
    pick = _allocate_two("inherit", "input+output", new_env_sign="pick")
    every = torch.ones(pick.memory.used.shape, dtype=torch.bool)
    loss, _ = _reading(pick, every)
    pick.model.zero_grad(set_to_none=True)
    loss.mean().backward()
    assert all(p.grad is None for p in pick.model.decoder.parameters())  # the rendering is a target
    assert any(p.grad is not None and float(p.grad.abs().max()) > 0 for p in pick.model.encoder.parameters())
    optimizer = torch.optim.Adam(pick.model.encoder.parameters(), lr=1e-3)
    start = float(loss.detach().mean())
    for _ in range(50):
        optimizer.zero_grad(set_to_none=True)
        _reading(pick, every)[0].mean().backward()
        optimizer.step()
    assert float(_reading(pick, every)[0].detach().mean()) < 0.3 * start


def test_learner_adds_the_shared_reading_term_only_when_weighted() -> None:
    batch = 255 - shapes_batches(1, 16, seed=4)[0]
    for weight, source, logged in (
        (0.0, "prior", False),
        (1000.0, "prior", True),
        (1000.0, "posterior", True),
    ):
        dream = {"shared_reading": weight, "shared_reading_source": source}
        learner = _allocate_two("inherit", "input+output", new_env_sign="pick", dream=dream)
        for group in learner.optimizer.param_groups:
            group["lr"] = 6e-4
        out = learner.train_step(batch)
        assert out.env == 1 and ("dream/shared_reading_w" in out.dream) is logged
    with pytest.raises(ValueError, match="shared_reading must be >= 0"):
        DreamConfig(shared_reading=-1.0)
    with pytest.raises(ValueError, match="shared_reading_source must be 'prior' or 'posterior'"):
        DreamConfig(shared_reading_source="batch")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shared_reading_latents must be 'both' or 'past'"):
        DreamConfig(shared_reading_latents="all")  # type: ignore[arg-type]


def test_bad_reuse_options_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="new_env_code"):
        ModelConfig(new_env_code="copy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="env_conditioning"):
        ModelConfig(env_conditioning="film")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="new_env_used"):
        MaskConfig(new_env_used="some")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="new_env_sign='pick' needs env_conditioning='input\\+output'"):
        ModelConfig(new_env_sign="pick")
    with pytest.raises(ValueError, match="env_input_view='pick' needs new_env_sign='pick'"):
        ModelConfig(env_input_view="pick")
    with pytest.raises(ValueError, match="young_decoder_hold must be 'weights' or 'gradients'"):
        ModelConfig(young_decoder_hold="moments")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="young_decoder_hold_for='flipped' needs new_env_sign='pick'"):
        ModelConfig(young_decoder_hold_for="flipped")
    with pytest.raises(ValueError, match="young_decoder_hold_for must be 'every' or 'flipped'"):
        ModelConfig(young_decoder_hold_for="inverted")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="young_decoder_frozen_steps must be >= 0"):
        ModelConfig(young_decoder_frozen_steps=-1)
    with pytest.raises(ValueError, match="young_decoder_release_steps must be >= 0"):
        ModelConfig(young_decoder_release_steps=-2)


def test_capacity_starts_at_c_start_and_ramps_to_c_max() -> None:
    assert capacity_schedule(0, 25.0, 1e-3, c_start=6.0) == 6.0
    assert capacity_schedule(400, 25.0, 1e-3, c_start=6.0) == pytest.approx(16.0)
    assert capacity_schedule(10_000, 25.0, 1e-3, c_start=6.0) == 25.0
    learner = ContinualLearner(tiny_config(loss={"c_start": 3.0, "delta_c": 0.0}), device="cpu")
    assert learner.capacity == 3.0


def test_shared_latents_tells_shared_mirrored_and_moved_factors_apart() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((800, 1))
    noise = rng.standard_normal((800, 3))
    a = np.concatenate([x, noise], 1)
    same = shared_latents(a, x, np.concatenate([x, noise], 1), x)[0]
    mirrored = shared_latents(a, x, np.concatenate([-x, noise], 1), x)[0]
    moved = shared_latents(a, x, np.concatenate([noise[:, :1], x, noise[:, 1:]], 1), x)[0]
    assert same["latent"] == 0 and same["corr_b"] > 0.99
    assert mirrored["corr_b"] < -0.99 and mirrored["best_b"] == 0
    assert abs(moved["corr_b"]) < 0.1 and moved["best_b"] == 1 and moved["best_corr_b"] > 0.99
