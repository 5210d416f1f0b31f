"""VASEConfig.grad_clip_ratio: the gradient norm is clipped to a multiple of its running mean (bound_update)."""

from __future__ import annotations

import os

import pytest
import torch
from helpers import shapes_batches, straight_and_resumed, tiny_config

from vase_rl.core.config import Ablation, VASEConfig
from vase_rl.core.learner import ContinualLearner, bound_update

PLAIN = Ablation(False, False, False)  # every batch trains: no pending batches in the way


def _total_norm(learner: ContinualLearner) -> float:
    grads = [p.grad for p in learner.model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


def _set_grads(learner: ContinualLearner, norm: float) -> None:
    params = list(learner.model.parameters())
    count = sum(p.numel() for p in params)
    for p in params:
        p.grad = torch.full_like(p, norm / count**0.5)


@pytest.mark.parametrize(("norm", "kept"), [(10.0, 2.0), (1.5, 1.5)])
def test_the_norm_is_clipped_to_ratio_times_the_running_mean_which_follows_the_kept_norm(norm, kept):
    learner = ContinualLearner(tiny_config(grad_clip_ratio=2.0, grad_clip_decay=0.9), device="cpu")
    learner.grad_norm_mean = 1.0
    _set_grads(learner, norm)
    bound_update(learner)
    assert _total_norm(learner) == pytest.approx(kept, rel=1e-5)
    assert learner.grad_norm_mean == pytest.approx(0.9 * 1.0 + 0.1 * kept)


def test_off_by_default_and_the_first_step_only_starts_the_mean():
    off = ContinualLearner(tiny_config(), device="cpu")
    _set_grads(off, 50.0)
    bound_update(off)
    assert _total_norm(off) == pytest.approx(50.0, rel=1e-5) and off.grad_norm_mean == 0.0
    on = ContinualLearner(tiny_config(grad_clip_ratio=3.0), device="cpu")
    _set_grads(on, 50.0)
    bound_update(on)
    assert _total_norm(on) == pytest.approx(50.0, rel=1e-5) and on.grad_norm_mean == pytest.approx(
        50.0, rel=1e-5
    )


@pytest.mark.parametrize(
    ("field", "value"), [("grad_clip_ratio", 0.5), ("grad_clip_ratio", -1.0), ("grad_clip_decay", 1.0)]
)
def test_bad_settings_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        VASEConfig(**{field: value})


def test_steady_training_is_untouched_and_a_new_look_moves_the_encoder_less():
    """On one look the norms stay within 3x of their mean (the first 100 steps here): bit-identical to no
    clipping. The same learner, 400 steps in, then meets the inverted look, whose gradients are ~50x the
    mean: 10 clipped steps move the encoder ~0.6x as far as the unclipped ones (0.25 vs 0.40 in parameter
    distance when written)."""
    torch.manual_seed(0)
    clipped = ContinualLearner(tiny_config(grad_clip_ratio=3.0, ablation=PLAIN), device="cpu")
    plain = ContinualLearner(tiny_config(ablation=PLAIN), device="cpu")
    batches = shapes_batches(400, 16, seed=3)
    for b in batches[:100]:
        clipped.train_step(b)
        plain.train_step(b)
    pairs = zip(clipped.model.parameters(), plain.model.parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs)
    for b in batches[100:]:
        clipped.train_step(b)
    state, inverted = clipped.state_dict(), [255 - b for b in shapes_batches(10, 16, seed=9)]
    moved = {}
    for ratio in (0.0, 3.0):
        learner = ContinualLearner(tiny_config(grad_clip_ratio=ratio, ablation=PLAIN), device="cpu")
        learner.load_state_dict(state)
        before = [p.detach().clone() for p in learner.model.encoder.parameters()]
        for b in inverted:
            learner.train_step(b)
        after = learner.model.encoder.parameters()
        moved[ratio] = float(
            sum(((p.detach() - q) ** 2).sum() for p, q in zip(after, before, strict=True)) ** 0.5
        )
    assert moved[3.0] < 0.8 * moved[0.0], moved


def test_resume_is_exact_with_clipping_and_old_checkpoints_start_the_mean_again(tmp_path):
    cfg = tiny_config(grad_clip_ratio=3.0)
    path = os.path.join(tmp_path, "ckpt.pt")
    straight, first, resumed = straight_and_resumed(cfg, shapes_batches(30, 16, seed=2), 15, path)
    assert ContinualLearner.load(path, device="cpu").grad_norm_mean == first.grad_norm_mean > 0
    assert resumed.grad_norm_mean == straight.grad_norm_mean
    pairs = zip(resumed.model.parameters(), straight.model.parameters(), strict=True)
    assert all(torch.equal(p, q) for p, q in pairs)
    old = {k: v for k, v in first.state_dict().items() if k != "grad_norm_mean"}
    fresh = ContinualLearner(cfg, device="cpu")
    fresh.load_state_dict(old)
    assert fresh.grad_norm_mean == 0.0
