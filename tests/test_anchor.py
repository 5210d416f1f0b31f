"""Dreaming's anchor (DreamConfig.anchor): with the paper's "every-tau" the snapshot that dreams the past
environments follows the model every tau steps, into the new environment; with "on-switch" it is the model
as the last environment left it and does not move while the new environment trains."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import shapes_batches, tiny_config

from vase_rl.core.config import DreamConfig, InferenceConfig, VASEConfig
from vase_rl.core.learner import ContinualLearner


def _white(n: int = 16, size: int = 16) -> np.ndarray:
    """A batch unlike the (dark) moving shapes: all-white frames, which allocate a new environment."""
    return np.full((n, size, size, 1), 255, dtype=np.uint8)


def _snapshot(learner: ContinualLearner) -> list[torch.Tensor]:
    return [p.detach().clone() for p in learner.snapshot.model.parameters()]


def _model(learner: ContinualLearner) -> list[torch.Tensor]:
    return [p.detach().clone() for p in learner.model.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _config(anchor: str) -> VASEConfig:
    # A off and the paper's plain inference: the white batch allocates environment 1 at once (as in
    # tests/test_inference.py), then white batches keep it; tau 20
    cfg = tiny_config(ablation={"mask": False}, dream={"tau": 20, "batch_size": 16, "anchor": anchor})
    return dataclasses.replace(cfg, inference=InferenceConfig.paper())


def _to_second_environment(anchor: str) -> tuple[ContinualLearner, list[torch.Tensor]]:
    """30 steps of moving shapes (environment 0), then the switch; returns the learner after the switching
    step and the model's parameters just before it."""
    learner = ContinualLearner(_config(anchor), device="cpu")
    for batch in shapes_batches(30, 16, seed=1):
        learner.train_step(batch)
    before = _model(learner)
    out = learner.train_step(_white())
    assert (out.new_env, out.env) == (True, 1)
    return learner, before


def test_on_switch_anchors_past_environments_to_the_model_that_left_them() -> None:
    learner, left = _to_second_environment("on-switch")
    assert _same(_snapshot(learner), left)  # synced before the first batch of the new environment
    for _ in range(45):  # past two multiples of tau (steps 40 and 60) inside environment 1
        assert learner.train_step(_white()).env == 1
    assert learner.step == 76
    assert _same(_snapshot(learner), left)  # the anchor did not move
    assert not _same(_model(learner), left)


def test_every_tau_follows_the_model_into_the_new_environment() -> None:
    learner, left = _to_second_environment("every-tau")
    assert not _same(_snapshot(learner), left)  # last synced at step 20, before the environment was left
    for _ in range(45):
        learner.train_step(_white())
    assert learner.step == 76
    assert not _same(_snapshot(learner), left)  # re-synced at step 60: trained on environment 1 since


def test_on_switch_without_environment_inference_syncs_every_tau() -> None:
    cfg = tiny_config(
        ablation={"infer_env": False}, dream={"tau": 20, "batch_size": 16, "anchor": "on-switch"}
    )
    learner = ContinualLearner(cfg, device="cpu")
    for batch in shapes_batches(20, 16, seed=1):
        learner.train_step(batch)
    assert _same(_snapshot(learner), _model(learner))  # step 20: synced as the paper


def test_anchor_survives_save_and_load(tmp_path) -> None:
    learner, left = _to_second_environment("on-switch")
    path = str(tmp_path / "learner.pt")
    learner.save(path)
    loaded = ContinualLearner.load(path, device="cpu")
    assert loaded.config.dream.anchor == "on-switch"
    assert _same(_snapshot(loaded), left)


def test_bad_anchor_is_refused_with_its_name() -> None:
    with pytest.raises(ValueError, match="anchor must be 'every-tau' or 'on-switch', got 'sometimes'"):
        DreamConfig(anchor="sometimes")  # type: ignore[arg-type]
    old = tiny_config().to_dict()
    del old["dream"]["anchor"]  # a config stored before the option loads as the paper's anchor
    assert VASEConfig.from_dict(old).dream.anchor == "every-tau"


@pytest.mark.parametrize(("min_visit", "resynced"), [(0, True), (20, False)])
def test_a_brief_visit_does_not_move_the_anchor_with_sync_min_visit(min_visit: int, resynced: bool) -> None:
    """Environment 0 trains 30 steps and is left for environment 1 (synced: 30 >= 20); environment 1 trains
    4 white batches and then the next shapes batches until one switches back to 0 (10 steps in 1). Every
    switch re-syncs by default; with ``sync_min_visit=20`` the brief visit leaves the anchor where
    environment 0 left it."""
    cfg = tiny_config(
        ablation={"mask": False},
        dream={"tau": 20, "batch_size": 16, "anchor": "on-switch", "sync_min_visit": min_visit},
        inference={"patience": 1, "grace_steps": 0, "jump_ratio": 0.0},
    )
    learner = ContinualLearner(cfg, device="cpu")
    for batch in shapes_batches(30, 16, seed=1):
        learner.train_step(batch)
    left = _model(learner)
    assert learner.train_step(_white()).new_env and _same(_snapshot(learner), left)
    for _ in range(3):
        assert learner.train_step(_white()).env == 1
    for batch in shapes_batches(12, 16, seed=7):
        visit, before_back = learner.visit_steps, _model(learner)
        if learner.train_step(batch).env == 0:
            break
    assert learner.current_env == 0 and learner.visit_steps == 1 and 4 <= visit < 20
    assert _same(_snapshot(learner), before_back) is resynced
    assert _same(_snapshot(learner), left) is not resynced


def test_visit_steps_survive_save_and_load(tmp_path) -> None:
    learner, _ = _to_second_environment("on-switch")
    path = str(tmp_path / "c.pt")
    learner.save(path)
    assert learner.visit_steps == 1 and ContinualLearner.load(path, device="cpu").visit_steps == 1
    with pytest.raises(ValueError, match="sync_min_visit must be >= 0"):
        DreamConfig(sync_min_visit=-1)


def _pending_then_allocation(source: str) -> tuple[ContinualLearner, list[torch.Tensor], list[torch.Tensor]]:
    """Environment 0 trains 30 shapes steps; then a white batch fails eq. 6 (the first failure counted of
    2 needed, ``patience_window`` 5), a shapes batch passes and trains environment 0, and a second white
    batch allocates environment 1. Returns the learner and the model before the first white batch and
    before the allocating step."""
    cfg = tiny_config(
        ablation={"mask": False},
        dream={"tau": 20, "batch_size": 16, "anchor": "on-switch", "sync_source": source},
        inference={"patience": 2, "patience_window": 5, "grace_steps": 0, "jump_ratio": 0.0},
    )
    learner = ContinualLearner(cfg, device="cpu")
    batches = shapes_batches(31, 16, seed=1)
    for batch in batches[:30]:
        learner.train_step(batch)
    settled = _model(learner)
    first = learner.train_step(_white())
    assert (first.env, first.updated, learner.inference.fail_streak) == (0, False, 1)  # pending
    assert learner.train_step(batches[30]).updated and learner.inference.fail_streak == 1  # trains env 0
    before = _model(learner)
    assert learner.train_step(_white()).new_env
    return learner, settled, before


@pytest.mark.parametrize("source", ["current", "settled"])
def test_settled_sync_anchors_to_the_model_before_the_failures_began(source: str, tmp_path) -> None:
    learner, settled, before = _pending_then_allocation(source)
    assert not _same(settled, before)  # the passing batch in between trained environment 0
    assert _same(_snapshot(learner), settled if source == "settled" else before)
    assert learner.snapshot.settled is None and "settled" not in learner.state_dict()  # the copy was used


def test_the_settled_copy_travels_in_the_checkpoint() -> None:
    cfg = tiny_config(
        ablation={"mask": False},
        dream={"tau": 20, "batch_size": 16, "anchor": "on-switch", "sync_source": "settled"},
        inference={"patience": 2, "patience_window": 5, "grace_steps": 0, "jump_ratio": 0.0},
    )
    batches = shapes_batches(31, 16, seed=1)
    rest = [_white(), batches[30], _white(), _white(), _white()]
    straight = ContinualLearner(cfg, device="cpu")
    for batch in batches[:30]:
        straight.train_step(batch)
    straight.train_step(rest[0])  # a failure counted: the copy is held
    state = straight.state_dict()
    assert "settled" in state
    resumed = ContinualLearner(cfg, device="cpu")
    resumed.load_state_dict(state)
    for batch in rest[1:]:
        assert straight.train_step(batch).loss == resumed.train_step(batch).loss
    assert _same(_snapshot(straight), _snapshot(resumed))
    with pytest.raises(ValueError, match="sync_source must be 'current' or 'settled', got 'old'"):
        DreamConfig(sync_source="old")  # type: ignore[arg-type]
