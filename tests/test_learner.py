"""ContinualLearner: capacity tracking (eq. 3), resume, bad input and failure handling."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import shapes_batches, straight_and_resumed, tiny_config

from vase_rl.core.checkpoint import CheckpointError
from vase_rl.core.collectives import LocalCollectives, SharedState
from vase_rl.core.config import Ablation
from vase_rl.core.inference import EnvironmentOverflowError, Reason
from vase_rl.core.learner import ContinualLearner, NonFiniteLossError


def _params(learner: ContinualLearner) -> list[torch.Tensor]:
    return [p.detach().clone() for p in learner.model.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_kl_tracks_capacity_target_and_c_changes_the_loss():
    torch.manual_seed(0)
    batches = shapes_batches(300, 32, seed=1)
    # C ramps to 4 nats in 100 steps, then stays; two-sided eq. 3 with a strong gamma
    cfg = tiny_config(
        loss={"gamma": 50.0, "c_max": 4.0, "delta_c": 0.01, "capacity_mode": "two-sided"},
        ablation=Ablation(False, False, False),
        batch_size=32,
    )
    learner = ContinualLearner(cfg, device="cpu")
    kls = [learner.train_step(b).kl for b in batches]
    assert learner.capacity == 4.0
    final_kl = sum(kls[-50:]) / 50
    assert abs(final_kl - 4.0) < 1.0, final_kl
    # the same batch under a different C gives a different loss
    other = ContinualLearner(cfg.with_overrides(loss={"c_max": 8.0}), device="cpu")
    other.load_state_dict(learner.state_dict())
    a = ContinualLearner(cfg, device="cpu")
    a.load_state_dict(learner.state_dict())
    assert a.train_step(batches[0]).loss != pytest.approx(other.train_step(batches[0]).loss, rel=1e-3)


def test_resume_after_n_steps_equals_training_straight_through(tmp_path):
    batches = shapes_batches(40, 16, seed=2)
    straight, _, resumed = straight_and_resumed(tiny_config(), batches, 25, os.path.join(tmp_path, "ckpt.pt"))
    assert resumed.step == straight.step == 40
    assert _same(_params(resumed), _params(straight))  # bit-for-bit
    assert _same(list(resumed.snapshot.model.parameters()), list(straight.snapshot.model.parameters()))
    assert torch.equal(resumed.memory.masks, straight.memory.masks)


def test_a_loaded_state_is_copied_not_shared():
    """Two learners loaded from one state train as the first did, each: loading does not alias the given
    state (the optimizer's moments were shared, and a second learner resumed from moments the first had
    moved)."""
    batches = shapes_batches(14, 16, seed=5)
    source = ContinualLearner(tiny_config(), device="cpu")
    for b in batches[:8]:
        source.train_step(b)
    state = source.state_dict()
    moments = [
        t.clone() for v in state["optimizer"]["state"].values() for t in v.values() if torch.is_tensor(t)
    ]
    losses = []
    for _ in range(2):
        learner = ContinualLearner(tiny_config(), device="cpu")
        learner.load_state_dict(state)
        losses.append([learner.train_step(b).loss for b in batches[8:]])
    assert losses[0] == losses[1]
    now = [t for v in state["optimizer"]["state"].values() for t in v.values() if torch.is_tensor(t)]
    assert len(now) == len(moments) > 0 and all(torch.equal(a, b) for a, b in zip(moments, now, strict=True))


def test_encode_is_deterministic_and_never_trains():
    learner = ContinualLearner(tiny_config(), device="cpu")
    x = shapes_batches(1, 8)[0]
    before = _params(learner)
    a, b = learner.encode(x), learner.encode(x)
    assert a.shape == (8, 6) and a.dtype == torch.float32
    assert torch.equal(a, b) and _same(before, _params(learner))


@pytest.mark.parametrize(
    "bad, err, match",
    [
        (torch.rand(4, 2, 16, 16), ValueError, "channel"),
        (torch.rand(16, 16), ValueError, "shape"),
        (torch.full((4, 1, 16, 16), float("nan")), ValueError, "NaN"),
        (torch.rand(4, 1, 16, 16) * 3, ValueError, r"\[0, 1\]"),
        (torch.zeros(4, 16, 16, dtype=torch.int64), TypeError, "uint8 or float"),
        ([[0.0]], TypeError, "numpy array or torch tensor"),
        (torch.rand(1, 1, 16, 16), ValueError, "at least 2"),
    ],
)
def test_bad_input_raises_clear_error(bad, err, match):
    learner = ContinualLearner(tiny_config(), device="cpu")
    with pytest.raises(err, match=match):
        learner.train_step(bad)


def test_other_sizes_and_layouts_are_resized():
    learner = ContinualLearner(tiny_config(), device="cpu")
    hwc = torch.randint(0, 255, (3, 40, 40, 1), dtype=torch.uint8).numpy()
    assert learner.encode(hwc).shape == (3, 6)
    assert learner.encode(torch.rand(3, 28, 28)).shape == (3, 6)


def test_nan_loss_stops_training_without_applying_the_update(monkeypatch):
    learner = ContinualLearner(tiny_config(), device="cpu")
    batch = shapes_batches(1, 8)[0]
    learner.train_step(batch)
    before = _params(learner)
    nan = float("nan")
    nans = lambda z, env, x: torch.full((z.shape[0],), nan)  # noqa: E731
    monkeypatch.setattr(learner, "_reconstruction_terms", lambda z, env, x: (nans(z, env, x),) * 2)
    with pytest.raises(NonFiniteLossError, match="not applied"):
        learner.train_step(batch)
    assert _same(before, _params(learner))


def test_frozen_learner_refuses_to_train():
    learner = ContinualLearner(tiny_config(), device="cpu")
    learner.freeze()
    with pytest.raises(RuntimeError, match="frozen"):
        learner.train_step(shapes_batches(1, 8)[0])
    learner.unfreeze()
    learner.train_step(shapes_batches(1, 8)[0])


def test_more_environments_than_max_raises_or_merges():
    learner = ContinualLearner(tiny_config(model={"max_environments": 2}), device="cpu")
    mask = torch.ones(6, dtype=torch.bool)
    learner.memory.allocate(mask, 1.0)
    learner.memory.allocate(mask, 1.0)
    with pytest.raises(EnvironmentOverflowError, match="max_environments=2"):
        learner.memory.allocate(mask, 1.0)


def test_corrupt_truncated_and_mismatched_checkpoints_are_refused(tmp_path):
    learner = ContinualLearner(tiny_config(), device="cpu")
    learner.train_step(shapes_batches(1, 8)[0])
    path = str(tmp_path / "ok.pt")
    learner.save(path)
    data = Path(path).read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt.*corrupt or truncated"):
        ContinualLearner.load(str(truncated), device="cpu")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"garbage\.pt"):
        ContinualLearner.load(str(garbage), device="cpu")
    with pytest.raises(CheckpointError, match="does not exist"):
        ContinualLearner.load(str(tmp_path / "missing.pt"), device="cpu")
    other = ContinualLearner(tiny_config(model={"latent_dim": 8}), device="cpu")
    before = _params(other)
    with pytest.raises(CheckpointError, match=r"model\.latent_dim: checkpoint=6 expected=8"):
        other.load_into(path)
    assert _same(before, _params(other))  # refused, not half-loaded


def test_checkpoint_save_is_atomic(tmp_path, monkeypatch):
    learner = ContinualLearner(tiny_config(), device="cpu")
    path = str(tmp_path / "ckpt.pt")
    learner.save(path)
    good = Path(path).read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        learner.save(path)
    assert Path(path).read_bytes() == good
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp")] == []


def test_an_environment_never_gets_every_latent_masked():
    learner = ContinualLearner(tiny_config(), device="cpu")
    none = torch.zeros(6, dtype=torch.bool)
    learner.memory.allocate(torch.ones(6, dtype=torch.bool), 1.0)  # env 0 uses every latent
    learner.memory.allocate(none, 1.0)  # env 1: all latents atypical
    learner.memory.used[1] = none  # and uses none of them itself (its own latents would stay active)
    assert learner.applied_mask(1).all()
    learner.memory.masks[1, :3] = True  # some typical -> only the atypical ones used elsewhere are masked
    assert learner.applied_mask(1).tolist() == [True, True, True, False, False, False]


def test_latents_an_environment_uses_itself_stay_active():
    learner = ContinualLearner(tiny_config(), device="cpu")
    learner.memory.allocate(torch.ones(6, dtype=torch.bool), 1.0)
    learner.memory.allocate(torch.ones(6, dtype=torch.bool), 1.0)
    learner.memory.used[0] = torch.tensor([True, True, True, True, False, False])  # env 0 uses z0..z3
    learner.memory.used[1] = torch.tensor([False, True, False, False, False, False])  # env 1 uses z1
    learner.memory.masks[1] = torch.tensor([False, False, True, True, True, True])  # z0, z1 atypical in env 1
    # z0: atypical and used only by env 0 -> masked; z1: atypical but env 1's own latent -> active
    assert learner.applied_mask(1).tolist() == [False, True, True, True, True, True]


def test_step_result_is_typed_and_to_log_keeps_the_log_format():
    cfg = tiny_config(ablation=Ablation(infer_env=False, dream=True, mask=True))
    learner = ContinualLearner(cfg, device="cpu")
    batches = shapes_batches(2, 8)
    first, second = learner.train_step(batches[0]), learner.train_step(batches[1])
    assert first.reason is Reason.FIRST and second.reason is Reason.KEPT
    assert second.dream  # S off: the second step dreams of environment 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.env = 3  # type: ignore[misc]
    log = second.to_log()
    assert list(log) == [
        "dream/encoder_w",
        "dream/decoder_kl",
        "dream/loss",
        "loss",
        "recon",
        "kl",
        "C",
        "capacity_loss",
        "classifier_loss",
        "env",
        "new_env",
        "reason",
        "n_envs",
        "atypicality",
        "mask",
        "raw_mask",
        "used",
        "step",
        "updated",
    ]
    assert log["reason"] == "kept" and log["step"] == 2 and log["mask"] == list(second.mask)
    assert json.loads(json.dumps(log)) == log


def test_applied_masks_holds_every_environments_applied_mask():
    learner = ContinualLearner(tiny_config(), device="cpu")
    learner.memory.allocate(torch.ones(6, dtype=torch.bool), 1.0)
    learner.memory.allocate(torch.tensor([False, False, True, True, True, True]), 1.0)
    learner.memory.used[0] = torch.tensor([True, True, False, False, False, False])
    learner.memory.used[1] = torch.zeros(6, dtype=torch.bool)
    masks = learner.applied_masks()
    assert masks.shape == (7, 6) and masks[2:].all()  # unallocated slots: all active
    assert masks[1].tolist() == learner.applied_mask(1).tolist() == [False, False, True, True, True, True]
    assert learner.applied_mask(-1).all()  # before the first environment


def test_local_collectives_are_the_identity():
    c = LocalCollectives()
    t = torch.randn(3, 2, requires_grad=True)
    assert c.gather(t).requires_grad is False and torch.equal(c.gather(t), t.detach())
    assert c.gather_with_grad(t) is t and c.mean([1.0, 2.0]) == [1.0, 2.0]
    shared = SharedState(ContinualLearner(tiny_config(), device="cpu").inference, torch.Generator())
    assert c.on_leader(lambda: 5, shared) == 5
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(c.randn(t, g1), torch.randn(3, 2, generator=g2))


def test_rarity_power_weights_the_training_loss_only():
    """LossConfig.rarity_power changes the loss of a step, not the reported NLL that eq. 6 tests."""
    cfg = tiny_config(model={"channels": 3})
    x = np.zeros((16, 16, 16, 3), np.uint8)
    x[..., 2] = 255
    x[:, 6:9, 6:9] = (255, 0, 0)  # a small red square on blue
    plain = ContinualLearner(cfg, device="cpu")
    rare = ContinualLearner(cfg.with_overrides(loss={"rarity_power": 0.5}), device="cpu")
    rare.load_state_dict(plain.state_dict())
    a, b = plain.train_step(x), rare.train_step(x)
    assert a.recon == pytest.approx(b.recon, rel=1e-6) and a.env == b.env
    assert a.loss != pytest.approx(b.loss, rel=1e-3)
