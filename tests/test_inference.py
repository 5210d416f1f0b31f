"""Environment inference, eq. 6 / Algorithm 1 (vase_rl.core.inference): the paper's rule and each heuristic's case.

Component tests drive :class:`EnvironmentInference` with a hand-made memory and hand-set losses (a
``recon_fn`` table), starting from ``InferenceConfig.paper()`` and switching on the one heuristic under
test; learner tests show the same decisions inside ``train_step``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import shapes_batches, tiny_config

from vase_rl.core.config import Ablation, InferenceConfig, MaskConfig, VASEConfig
from vase_rl.core.inference import (
    Decision,
    EnvironmentInference,
    EnvironmentMemory,
    EnvironmentOverflowError,
    Failure,
    Reason,
    environment_check,
)
from vase_rl.core.learner import ContinualLearner
from vase_rl.core.step_result import StepResult

N = 4
MASK = MaskConfig(lambda0=0.5, lambda1=1.0)
TYPICAL = torch.zeros(N)
"""alpha of a batch on which every latent is typical: its mask a(x) is all-active, equal to the stored one."""


def known(
    policy: InferenceConfig, recon_avg: tuple[float, ...] = (10.0, 20.0), max_envs: int = 4, current: int = 1
) -> EnvironmentInference:
    """An inference with environments 0..m-1 allocated (all latents active and used, L~_s = recon_avg),
    ``current`` the current one, the last allocation long ago."""
    inf = EnvironmentInference(policy, MASK, Ablation(), EnvironmentMemory.empty(max_envs, N))
    for avg in recon_avg:
        inf.memory.allocate(torch.ones(N, dtype=torch.bool), avg, torch.zeros(N))
    inf.current_env, inf.last_allocation = current, -1000
    return inf


def proposes(env: int, max_envs: int = 4) -> torch.Tensor:
    """Classifier probabilities q(s|x) (max_envs,) favouring ``env``."""
    return torch.nn.functional.one_hot(torch.tensor(env), max_envs).float()


def decide(
    inf: EnvironmentInference,
    losses: dict[int, float],
    s_hat: int,
    step: int = 0,
    alpha: torch.Tensor = TYPICAL,
    commit: bool = True,
) -> Decision:
    """One decision on a batch whose loss under environment s is ``losses[s]``."""
    return inf.decide(
        step,
        alpha,
        proposes(s_hat, inf.memory.max_environments),
        losses[inf.current_env],
        losses.__getitem__,
        commit,
    )


# ------------------------------------------------------------------------------- the paper's rule
def test_paper_allocates_on_the_first_failing_batch_and_keeps_a_matching_one():
    inf = known(InferenceConfig.paper())
    assert decide(inf, {0: 99.0, 1: 21.0}, s_hat=1) == Decision(1, False, Reason.MATCHED)
    d = decide(inf, {0: 99.0, 1: 99.0}, s_hat=1)  # 99 > kappa * L~_1 = 30
    assert (d.env, d.allocated, d.reason, d.failure) == (2, True, Reason.ALLOCATED, Failure.RECONSTRUCTION)
    assert inf.memory.n_seen == 3 and inf.current_env == 2 and inf.last_allocation == 0


def test_paper_tests_only_the_classifier_candidate():
    inf = known(InferenceConfig.paper())  # current = 1 would pass, but the classifier proposes 0
    d = decide(inf, {0: 99.0, 1: 21.0}, s_hat=0)
    assert d.reason is Reason.ALLOCATED and d.env == 2
    inf = known(InferenceConfig.paper(keep_current=True))  # keep_current: the current env is tested too
    assert decide(inf, {0: 99.0, 1: 21.0}, s_hat=0).reason is Reason.MATCHED


def test_paper_mask_test_rejects_an_atypical_used_latent():
    inf = known(InferenceConfig.paper())
    alpha = torch.tensor([3.0, 0.0, 0.0, 0.0])  # z0 turns atypical (> lambda1) and env 1 uses it
    d = decide(inf, {0: 99.0, 1: 21.0}, s_hat=1, alpha=alpha)
    assert (d.reason, d.failure, d.label) == (Reason.ALLOCATED, Failure.MASK, "mask")
    inf = known(InferenceConfig.paper())
    inf.memory.used[1, 0] = False  # a latent env 1 does not use may change freely
    assert decide(inf, {0: 99.0, 1: 21.0}, s_hat=1, alpha=alpha).reason is Reason.MATCHED


def test_environment_check_names_the_failure():
    ones = torch.ones(N, dtype=torch.bool)
    assert environment_check(16.0, 10.0, 1.5, ones, ones, ones) is Failure.RECONSTRUCTION
    assert environment_check(14.0, 10.0, 1.5, ~ones, ones, ones) is Failure.MASK
    assert environment_check(14.0, 10.0, 1.5, None, ones, ones) is None  # ablation A off: no mask test
    assert Failure.MASK == "mask"  # the strings the log writes


def test_mask_tolerance_lets_a_few_used_latents_differ():
    used, stored = torch.ones(24, dtype=torch.bool), torch.ones(24, dtype=torch.bool)
    one_off, three_off = stored.clone(), stored.clone()
    one_off[5] = False
    three_off[:3] = False
    assert environment_check(10.0, 10.0, 1.5, one_off, stored, used) is Failure.MASK  # the paper: exact
    assert environment_check(10.0, 10.0, 1.5, one_off, stored, used, mask_tolerance=0.1) is None  # 2 of 24
    assert environment_check(10.0, 10.0, 1.5, three_off, stored, used, mask_tolerance=0.1) is Failure.MASK
    few = torch.zeros(24, dtype=torch.bool)
    few[:5] = True  # 5 used latents: floor(0.1 * 5) = 0, the exact test again
    assert environment_check(10.0, 10.0, 1.5, one_off, stored, few, mask_tolerance=0.1) is None  # z5 unused
    assert environment_check(10.0, 10.0, 1.5, three_off, stored, few, mask_tolerance=0.1) is Failure.MASK
    assert InferenceConfig.paper(mask_tolerance=0.3).mask_tolerance == 0.3
    assert InferenceConfig().mask_tolerance == 0.0 and InferenceConfig.paper().mask_tolerance == 0.0
    with pytest.raises(ValueError, match="mask_tolerance"):
        InferenceConfig(mask_tolerance=1.0)


def test_the_first_batch_allocates_environment_zero():
    inf = EnvironmentInference(InferenceConfig.paper(), MASK, Ablation(), EnvironmentMemory.empty(3, N))
    d = inf.decide(7, TYPICAL, proposes(0, 3), 50.0, lambda s: 50.0)
    assert d == Decision(0, True, Reason.FIRST) and inf.last_allocation == 7 and inf.current_env == 0


def test_reason_is_an_enum_and_the_log_label_keeps_the_old_strings():
    inf = known(InferenceConfig.paper(patience=2))
    d = decide(inf, {0: 99.0, 1: 99.0}, s_hat=1)
    assert isinstance(d.reason, Reason) and d.reason is Reason.PENDING and d.failure is Failure.RECONSTRUCTION
    assert d.label == "pending-reconstruction"
    assert decide(inf, {0: 99.0, 1: 99.0}, s_hat=1).label == "reconstruction"  # allocated: the failure
    values = ["first", "kept", "matched", "switched", "pending", "allocated", "merged"]
    assert [r.value for r in Reason] == values


def test_an_uncommitted_decision_changes_nothing():
    inf = known(InferenceConfig.paper(patience=2))
    before = inf.state_dict()
    assert decide(inf, {0: 99.0, 1: 99.0}, s_hat=1, commit=False).reason is Reason.PENDING
    assert inf.fail_streak == 0
    inf.fail_streak = 1
    d = decide(inf, {0: 99.0, 1: 99.0}, s_hat=1, commit=False)
    assert (d.env, d.allocated) == (2, True) and inf.memory.n_seen == 2 and inf.fail_streak == 1
    inf.fail_streak = 0
    after = inf.state_dict()
    assert all(torch.equal(before["memory"][k], after["memory"][k]) for k in ("masks", "recon_avg", "steps"))


# ------------------------------------------------------------------------------- heuristics, one by one
def test_grace_period_keeps_a_new_environment_whatever_its_loss():
    inf = known(InferenceConfig.paper(grace_steps=10))
    inf.last_allocation = 5
    assert decide(inf, {0: 99.0, 1: 99.0}, s_hat=1, step=8) == Decision(1, False, Reason.KEPT)
    assert inf.memory.n_seen == 2
    assert decide(inf, {0: 99.0, 1: 99.0}, s_hat=1, step=15).reason is Reason.ALLOCATED  # grace is over


def test_patience_delays_allocation_until_consecutive_failures():
    inf = known(InferenceConfig.paper(patience=3, train_on_pending=False))
    bad, good = {0: 99.0, 1: 99.0}, {0: 99.0, 1: 21.0}
    first, second = decide(inf, bad, 1), decide(inf, bad, 1)
    assert [first.reason, second.reason] == [Reason.PENDING, Reason.PENDING] and inf.memory.n_seen == 2
    assert not first.trains  # a pending batch is not trained on
    assert decide(inf, good, 1).reason is Reason.MATCHED and inf.fail_streak == 0  # a good batch resets
    reasons = [decide(inf, bad, 1).reason for _ in range(3)]
    assert reasons == [Reason.PENDING, Reason.PENDING, Reason.ALLOCATED]
    assert inf.memory.n_seen == 3


def test_patience_window_counts_failures_that_one_passing_batch_interrupts():
    bad, good = {0: 99.0, 1: 99.0}, {0: 99.0, 1: 21.0}
    pattern = [bad, good, bad, good, bad]  # 3 failures, never 2 in a row
    for window, expected in ((0, 2), (5, 3)):
        inf = known(InferenceConfig.paper(patience=3, patience_window=window, train_on_pending=False))
        reasons = [decide(inf, batch, 1).reason for batch in pattern]
        assert inf.memory.n_seen == expected, (window, reasons)
    assert reasons == [Reason.PENDING, Reason.MATCHED, Reason.PENDING, Reason.MATCHED, Reason.ALLOCATED]
    assert inf.fail_streak == 0 and inf.fail_history == []  # cleared by the allocation
    inf = known(InferenceConfig.paper(patience=3, patience_window=3))
    reasons = [decide(inf, batch, 1).reason for batch in [bad, good, good, good, bad, bad]]
    assert Reason.ALLOCATED not in reasons and inf.fail_history == [0, 1, 1]  # old failures leave the window
    state = inf.state_dict()
    inf.fail_history = []
    inf.load_state_dict(state)
    assert (inf.fail_streak, inf.fail_history) == (2, [0, 1, 1])


def test_train_on_pending_lets_a_pending_batch_train_the_current_environment():
    inf = known(InferenceConfig.paper(patience=3, train_on_pending=True))
    d = decide(inf, {0: 99.0, 1: 99.0}, 1)
    assert d.reason is Reason.PENDING and d.trains and d.env == 1


def test_periodic_scan_finds_a_revisited_environment_the_classifier_does_not_propose():
    revisit = {0: 11.0, 1: 99.0, 2: 99.0}  # a batch of environment 0; the classifier still says 1
    paper = known(InferenceConfig.paper())
    assert decide(paper, revisit, s_hat=1, step=10).reason is Reason.ALLOCATED  # plain eq. 6 allocates
    scan = known(InferenceConfig.paper(scan_every=5))
    assert decide(scan, revisit, s_hat=1, step=11).reason is Reason.ALLOCATED  # not a scan step
    scan = known(InferenceConfig.paper(scan_every=5))
    assert decide(scan, revisit, s_hat=1, step=10) == Decision(0, False, Reason.SWITCHED)
    assert scan.current_env == 0 and scan.memory.n_seen == 2


def test_scan_before_allocating_gives_every_known_environment_its_chance():
    revisit = {0: 11.0, 1: 99.0}
    inf = known(InferenceConfig.paper(scan_before_allocating=True))
    assert decide(inf, revisit, s_hat=1, step=11) == Decision(0, False, Reason.SWITCHED)
    tested: list[int] = []
    inf = known(InferenceConfig.paper(scan_before_allocating=True))
    inf.decide(11, TYPICAL, proposes(0), 99.0, lambda s: tested.append(s) or revisit.get(s, 99.0))
    assert tested == [0]  # the candidate passed: nothing else is evaluated


def test_best_candidate_prefers_the_best_reconstructing_environment():
    losses = {0: 9.5, 1: 5.0}  # both pass (<= 15 and <= 30); env 1 reconstructs better
    best = known(InferenceConfig.paper(keep_current=True, best_candidate=True))
    assert decide(best, losses, s_hat=0) == Decision(1, False, Reason.MATCHED)
    first = known(InferenceConfig.paper(keep_current=True, best_candidate=False))
    assert decide(first, losses, s_hat=0) == Decision(0, False, Reason.SWITCHED)  # s-hat comes first


def test_drift_without_a_jump_does_not_allocate():
    """A latent still being learnt drifts across lambda1 (its running atypicality is already near it):
    the plain mask test allocates, the jump test does not -- but a sharp jump still does."""

    def drifting(jump_ratio: float) -> EnvironmentInference:
        inf = known(InferenceConfig.paper(jump_ratio=jump_ratio))
        inf.memory.alpha_avg[1, 0] = 0.9  # z0 of the current env is close to lambda1 = 1.0
        return inf

    drift, jump = torch.tensor([1.1, 0.0, 0.0, 0.0]), torch.tensor([5.0, 0.0, 0.0, 0.0])
    losses = {0: 99.0, 1: 21.0}
    assert decide(drifting(0.0), losses, 1, alpha=drift).failure is Failure.MASK  # the paper's test
    assert decide(drifting(2.0), losses, 1, alpha=drift).reason is Reason.MATCHED  # 1.1 <= 2 * 0.9
    d = decide(drifting(2.0), losses, 1, alpha=jump)  # 5.0 > 2 * 0.9: a dataset boundary
    assert (d.reason, d.failure) == (Reason.ALLOCATED, Failure.MASK)


def test_two_sided_test_allocates_for_data_reconstructed_far_better_than_usual():
    """A model of Fashion reconstructs MNIST *better* than Fashion: the paper's one-sided test keeps it;
    ``kappa_low`` rejects a loss below L~ / kappa_low (env 1: L~ = 20, so below 16 with kappa_low 1.25),
    and an environment whose usual loss is that low still matches (the scan finds env 0: L~ = 10)."""
    low = {0: 99.0, 1: 12.0}
    assert decide(known(InferenceConfig.paper()), low, s_hat=1).reason is Reason.MATCHED  # the paper
    d = decide(known(InferenceConfig.paper(kappa_low=1.25)), low, s_hat=1)
    assert (d.env, d.reason, d.failure, d.label) == (2, Reason.ALLOCATED, Failure.TOO_LIKELY, "too-likely")
    near = {0: 99.0, 1: 16.5}  # 16.5 >= 20 / 1.25: typical
    assert decide(known(InferenceConfig.paper(kappa_low=1.25)), near, s_hat=1).reason is Reason.MATCHED
    scan = known(InferenceConfig.paper(kappa_low=1.25, scan_before_allocating=True))
    assert decide(scan, {0: 11.0, 1: 12.0}, s_hat=1) == Decision(0, False, Reason.SWITCHED)


def test_merge_on_overflow_reuses_the_closest_environment():
    losses = {0: 100.0, 1: 100.0}  # both fail; relative to L~: env 0 10x, env 1 5x
    merge = known(InferenceConfig.paper(on_overflow="merge"), max_envs=2)
    d = decide(merge, losses, s_hat=1)
    assert (d.env, d.allocated, d.reason, d.failure) == (1, False, Reason.MERGED, Failure.RECONSTRUCTION)
    assert merge.memory.n_seen == 2
    with pytest.raises(EnvironmentOverflowError, match="max_environments=2"):
        decide(known(InferenceConfig.paper(), max_envs=2), losses, s_hat=1)


def test_young_environment_uses_the_short_decay():
    inf = known(InferenceConfig.paper(grace_steps=5, recon_ema=0.99, young_recon_ema=0.9))
    assert inf.recon_decay(1) == 0.9
    inf.memory.steps[1] = 5
    assert inf.recon_decay(1) == 0.99
    plain = known(InferenceConfig.paper(grace_steps=5, recon_ema=0.99))
    assert plain.recon_decay(1) == 0.99  # the paper: young_recon_ema=None
    inf.memory.steps[1] = 0
    inf.record(1, torch.ones(N, dtype=torch.bool), 30.0, TYPICAL)
    assert float(inf.memory.recon_avg[1]) == pytest.approx(0.9 * 20.0 + 0.1 * 30.0)


def test_ablation_s_off_keeps_environment_zero():
    memory = EnvironmentMemory.empty(3, N)
    inf = EnvironmentInference(InferenceConfig.paper(), MASK, Ablation(infer_env=False), memory)
    inf.decide(0, TYPICAL, proposes(0, 3), 10.0, lambda s: 10.0)
    inf.record(0, torch.ones(N, dtype=torch.bool), 10.0, TYPICAL)
    assert inf.decide(1, TYPICAL, proposes(0, 3), 999.0, lambda s: 999.0) == Decision(0, False, Reason.KEPT)


def test_presets_keep_their_heuristics_and_paper_switches_them_all_off():
    paper = InferenceConfig.paper()
    assert (paper.patience, paper.grace_steps, paper.scan_every, paper.jump_ratio, paper.young_recon_ema) == (
        1,
        0,
        0,
        0.0,
        None,
    )
    assert not (paper.keep_current or paper.scan_before_allocating or paper.best_candidate)
    assert paper.train_on_pending and paper.on_overflow == "error" and paper.kappa_low == 0.0
    assert InferenceConfig.paper(kappa=1.1).kappa == 1.1
    default = InferenceConfig()
    assert default.keep_current and default.scan_before_allocating and default.best_candidate
    assert (default.young_recon_ema, default.train_on_pending) == (0.9, False)


# ------------------------------------------------------------------------------- inside train_step
def _white(n: int = 16, size: int = 16) -> np.ndarray:
    """A batch unlike the (dark) moving shapes: all-white frames."""
    return np.full((n, size, size, 1), 255, dtype=np.uint8)


def _trained(cfg: VASEConfig, steps: int = 60) -> tuple[ContinualLearner, list[StepResult]]:
    learner = ContinualLearner(cfg, device="cpu")
    return learner, [learner.train_step(b) for b in shapes_batches(steps, 16, seed=1)]


def _params(learner: ContinualLearner) -> list[torch.Tensor]:
    return [p.detach().clone() for p in learner.model.parameters()]


@pytest.mark.parametrize("train_on_pending", [False, True])
def test_pending_batches_are_not_trained_on(train_on_pending: bool):
    cfg = tiny_config(inference={"grace_steps": 2, "patience": 3, "train_on_pending": train_on_pending})
    learner, _ = _trained(cfg)
    before, steps = _params(learner), learner.memory.steps.clone()
    out = learner.train_step(_white())
    assert out.reason is Reason.PENDING and out.failure is Failure.RECONSTRUCTION and out.env == 0
    assert out.updated is train_on_pending and learner.step == 61
    same = all(torch.equal(a, b) for a, b in zip(before, _params(learner), strict=True))
    assert same is not train_on_pending
    assert torch.equal(learner.memory.steps, steps) is not train_on_pending
    log = out.to_log()
    assert log["reason"] == "pending-reconstruction" and (np.isnan(log["loss"]) is not train_on_pending)


def test_paper_inference_allocates_on_the_first_failing_batch_in_train_step():
    # A off: with the sharp initial posterior of the presets, latents still being learnt cross lambda1 within
    # these 60 steps and the paper's plain mask test would allocate on them (what jump_ratio exists for)
    cfg = dataclasses.replace(tiny_config(ablation={"mask": False}), inference=InferenceConfig.paper())
    learner, outs = _trained(cfg)
    assert [o.reason for o in outs] == [Reason.FIRST] + [Reason.MATCHED] * 59  # no grace, every batch tested
    out = learner.train_step(_white())
    assert (out.new_env, out.env, out.reason, out.failure, out.updated) == (
        True,
        1,
        Reason.ALLOCATED,
        Failure.RECONSTRUCTION,
        True,
    )
    assert out.to_log()["reason"] == "reconstruction"


def test_infer_environment_is_a_query_that_changes_nothing():
    learner, _ = _trained(tiny_config(inference={"grace_steps": 2, "patience": 1}))
    state = learner.state_dict()
    rng = learner.generator.get_state()
    assert learner.infer_environment(shapes_batches(1, 16, seed=2)[0]).env == 0
    d = learner.infer_environment(_white())
    assert (d.env, d.allocated, d.failure) == (1, True, Failure.RECONSTRUCTION)
    assert learner.memory.n_seen == 1 and torch.equal(learner.generator.get_state(), rng)
    assert learner.inference.state_dict()["fail_streak"] == state["fail_streak"]
    assert torch.equal(learner.memory.recon_avg, state["memory"]["recon_avg"])
