"""The life-long RL benchmark's metrics (``benchmarks/cl_metrics.py``, used by ``benchmarks/rl_lifelong.py``),
Continual World's definitions, on hand-made R matrices and runs whose answers are worked out by hand. No RL
runs: milliseconds."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

A, B = "vase_rl/A-v0", "vase_rl/B-v0"


def _bench_module(name: str) -> Any:
    bench = str(Path(__file__).resolve().parent.parent / "benchmarks")
    sys.path.insert(0, bench)
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(bench)
        sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def ll() -> Any:
    """The runner, ``benchmarks/rl_lifelong.py``."""
    yield from _bench_module("rl_lifelong")


@pytest.fixture(scope="module")
def rep() -> Any:
    """The summary, ``benchmarks/rl_lifelong_report.py`` (with ``cl_metrics``' functions imported)."""
    yield from _bench_module("rl_lifelong_report")


R = np.array([[1.0, 0.2, 0.0], [0.5, 0.9, 0.1], [0.4, 0.6, 0.8]])
"""Normalised returns: row i = end of stage i, column j = stage j's look."""


def test_average_performance_is_the_mean_of_the_last_row(rep: Any) -> None:
    assert rep.average_performance(R) == pytest.approx(0.6)
    assert rep.average_performance(np.stack([R, R + 1])).tolist() == pytest.approx([0.6, 1.6])  # per seed


def test_forgetting_is_end_of_own_stage_minus_end_of_sequence(rep: Any) -> None:
    assert rep.forgetting(R).tolist() == pytest.approx([0.6, 0.3, 0.0])  # the last stage's is 0
    assert rep.forgetting(np.stack([R, R])).shape == (2, 3)


def test_normalise_maps_random_to_0_and_the_reference_to_1(rep: Any) -> None:
    random, ref = np.array([0.1, -0.5]), np.array([1.1, 1.5])
    out = rep.normalise([[0.1, 1.5], [0.6, 0.5]], random, ref)
    assert out == pytest.approx(np.array([[0.0, 1.0], [0.5, 0.5]]))
    assert np.isnan(rep.normalise([0.3], [0.2], [0.2])).all()  # a reference no better than random


def test_forward_transfer_takes_seed_means_before_the_ratio(rep: Any) -> None:
    auc = np.array([[0.5, 0.2], [0.7, 0.4]])  # seed means 0.6, 0.3
    ref = np.array([[0.2, 0.5], [0.4, 0.3], [0.3, 0.4]])  # seed means 0.3, 0.4
    assert rep.forward_transfer(auc, ref).tolist() == pytest.approx([0.3 / 0.7, -0.1 / 0.6])
    assert np.isnan(rep.forward_transfer(auc, np.array([[1.0, 1.2]]))).all()  # reference AUC >= 1: undefined


def test_bootstrap_interval_of_a_mean(rep: Any) -> None:
    x = np.array([0.0, 1.0, 2.0, 3.0])
    lo, hi = rep.bootstrap_ci(lambda v: v.mean(1), [x], n=4000)
    assert 0.0 <= lo < 1.5 < hi <= 3.0
    assert rep.bootstrap_ci(lambda v: v.mean(1), [np.array([2.0])]) == (2.0, 2.0)  # one seed: no spread
    lo, hi = rep.bootstrap_ci(lambda v: v.mean(1), [np.full((5, 3), 0.25)])
    assert lo.tolist() == hi.tolist() == [0.25] * 3  # per-column intervals
    fixed = rep.bootstrap_ci(rep.forward_transfer, [np.array([[0.5], [0.5]]), np.array([[0.0], [0.0]])])
    assert fixed == (pytest.approx([0.5]), pytest.approx([0.5]))


def evaluation(stage: int, point: int, a: float, b: float) -> dict[str, Any]:
    returns = {A: a, B: b}
    return {"stage": stage, "point": point, "stage_step": 500 * point, "episodes": 4, "returns": returns}


def sequence_record(seed: int) -> dict[str, Any]:
    """Stages A -> B -> A (a revisit), one point inside each stage (500 steps in) and one at its end (1,000)."""
    evals = [evaluation(-1, 0, 0.0, 0.0)]
    points = {0: [(0.5, 0.0), (1.0, 0.2)], 1: [(0.8, 1.0), (0.6, 2.0)], 2: [(0.9, 1.6), (1.0, 1.6)]}
    evals += [evaluation(s, k + 1, a, b) for s, pts in points.items() for k, (a, b) in enumerate(pts)]
    stages = [A, B, A]
    parts = {"env": 1.0, "encode": 1.0, "learn": 1.0, "ppo_update": 1.0, "evaluation": 1.0, "other": 1.0}
    return {
        "kind": "sequence",
        "method": "vase",
        "seed": seed,
        "stages": stages,
        "evaluations": evals,
        "R": [[pts[-1][0] if e == A else pts[-1][1] for e in stages] for pts in points.values()],
        "cpu_s": 6.0,
        "wall_s": 6.0,
        "train_env_steps": 3000,
        "cost": {"wall_s": parts},
        "args": {"ft_window": 1000},
    }


def reference_record(look: str, points: tuple[float, float], seed: int) -> dict[str, Any]:
    evals = [
        {"stage": s, "point": k, "stage_step": 500 * k, "episodes": 4, "returns": {look: v}}
        for s, k, v in ((-1, 0, 0.0), (0, 1, points[0]), (0, 2, points[1]))
    ]
    return {
        "kind": "reference",
        "method": "vase",
        "stages": [look],
        "look": look,
        "seed": seed,
        "final": points[-1],
        "evaluations": evals,
        "cpu_s": 2.0,
    }


def test_method_summary_on_hand_made_runs(rep: Any) -> None:
    """random = 0 on both looks; references end at 1 (A) and 2 (B), so normalised B = raw B / 2.

    Normalised R = [[1, .1, 1], [.6, 1, .6], [1, .8, 1]]: average performance (1 + .8 + 1) / 3, forgetting
    [0, .2, 0]. Forward transfer over the first 1,000 steps, trapezoids from the return before the stage:
    stage AUCs .5 (A from 0), .525 (B from .1) and .85 (A from .6) against the references' .375 (A) and .5
    (B, both from 0): [.125 / .625, .025 / .5, .475 / .625]. Zero-shot [0, .1, .6]; the revisit's first
    evaluation .9 (first visit .5).
    """
    records = [sequence_record(0), sequence_record(1)]
    refs = [reference_record(A, (0.25, 1.0), 100), reference_record(B, (1.0, 2.0), 100)]
    s = rep.method_summary(records, refs, {A: 0.0, B: 0.0}, n_boot=200)
    assert s["seeds"] == 2 and s["reference_seeds"] == 1
    assert s["average_performance"] == {"mean": pytest.approx(2.8 / 3), "ci90": pytest.approx([2.8 / 3] * 2)}
    assert [e["mean"] for e in s["forgetting"]["per_look"]] == pytest.approx([0.0, 0.2, 0.0])
    assert s["forgetting"]["mean"] == pytest.approx(0.2 / 3)
    ft = [0.125 / 0.625, 0.025 / 0.5, 0.475 / 0.625]
    assert [e["mean"] for e in s["forward_transfer"]["per_look"]] == pytest.approx(ft)
    assert s["forward_transfer"]["mean"] == pytest.approx(np.mean(ft))
    assert [e["mean"] for e in s["zero_shot"]["per_look"]] == pytest.approx([0.0, 0.1, 0.6])
    (revisit,) = s["revisits"]
    assert (revisit["stage"], revisit["look"], revisit["first_visit_stage"]) == (2, "A", 0)
    assert revisit["first_eval"]["mean"] == pytest.approx(0.9)
    assert revisit["first_visit_first_eval"]["mean"] == pytest.approx(0.5)
    assert revisit["zero_shot"]["mean"] == pytest.approx(0.6)
    assert np.array(s["R_normalised_mean"]) == pytest.approx(
        np.array([[1, 0.1, 1], [0.6, 1, 0.6], [1, 0.8, 1]])
    )
    assert s["cpu_s_per_1k_env_steps"] == pytest.approx(2.0) and s["reference_cpu_s_per_run"] == 2.0
    assert s["wall_split_fraction"]["learn"] == pytest.approx(1 / 6)


def test_method_summary_without_references_reports_no_metric(rep: Any) -> None:
    s = rep.method_summary([sequence_record(0)], [], {A: 0.0, B: 0.0}, n_boot=10)
    assert s["average_performance"] == {"mean": None, "ci90": None} and s["reference_seeds"] == 0
    assert np.array(s["R_raw_mean"]).shape == (3, 3)


def test_budget_split_is_checked(ll: Any) -> None:
    assert ll.check_args(ll.Args()) == [512, 1024, 2048, 4096, 8192, 16384, 24576, 32768]
    with pytest.raises(ValueError, match="increasing"):
        ll.check_args(ll.Args(curve_at=(1024, 512)))
    with pytest.raises(ValueError, match="ft_window"):
        ll.check_args(ll.Args(ft_window=3000))
    with pytest.raises(ValueError, match="whole number of PPO rollouts"):
        ll.check_args(ll.Args(steps_per_look=1000))
    with pytest.raises(ValueError, match="unknown methods"):
        ll.check_args(ll.Args(methods=("vase", "dqn")))


def test_reference_rows_list_each_seeds_final_and_the_mean(rep: Any) -> None:
    """The report's single-look reference table: one row per (method, look), seeds in order, their final
    raw returns and the mean -- also for a folder that holds references only."""
    refs = [
        {"method": "vase", "look": B, "seed": 101, "final": 0.5},
        {"method": "vase", "look": B, "seed": 100, "final": 0.25},
        {"method": "pixels", "look": A, "seed": 100, "final": 1.0},
    ]
    assert rep.reference_rows(refs) == [
        ["pixels", "A", "100", "1.00", "1.00"],
        ["vase", "B", "100 101", "0.25 / 0.50", "0.38"],
    ]


def test_raw_rows_read_each_stage_end_per_look_with_every_seed(rep: Any) -> None:
    """The raw-return table: one row per (method, stage), one column per distinct look (a revisit's column
    is its first visit's), the seed mean then each seed's value in seed order."""
    r1 = {"seed": 1, "R": [[0.5, 0.1, 0.5], [0.3, 0.9, 0.3], [0.7, 0.8, 0.7]]}
    r0 = {"seed": 0, "R": [[0.25, 0.0, 0.25], [0.1, 0.5, 0.1], [0.5, 0.6, 0.5]]}
    rows = rep.raw_rows({"vase": [r1, r0]}, [A, B, A])
    assert rows[0] == ["vase", "0 (A)", "0.38 (0.25 / 0.50)", "0.05 (0.00 / 0.10)"]
    assert rows[2] == ["vase", "2 (A)", "0.60 (0.50 / 0.70)", "0.70 (0.60 / 0.80)"]
    assert len(rows) == 3


def test_budget_flags_write_booleans_as_argparse_reads_them(ll: Any, rep: Any) -> None:
    """The report's command line reproduces the runs: a boolean as ``--flag`` / ``--no-flag``, never
    ``--flag True``; defaults are left out."""
    flags = rep.budget_flags(ll.Args(), {"pretrain_frames": 32768, "pretrain_freeze": True})
    assert flags == " --pretrain-frames 32768 --pretrain-freeze"
