"""Continual World's metrics (Wolczyk et al., NeurIPS 2021; code: ``awarelab/continual_world``,
``continualworld/results_processing/tables.py``) on an R matrix of returns and on a run's learning curves:
average performance, forgetting, forward transfer, their bootstrap intervals, and the stage AUCs that
forward transfer compares. ``benchmarks/rl_lifelong.py`` defines the protocol (its docstring: R's layout,
the normalisation, the window of the AUC); this module only computes.

A run record (``rl_lifelong``'s JSON) holds ``stages`` (the env id of each stage), ``R`` (raw returns,
stages x stages) and ``evaluations`` (``{"stage", "point", "stage_step", "returns": {env_id: return}}``;
stage -1 is the evaluation before any training).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

CONFIDENCE = 0.9
"""Confidence of the bootstrap intervals (Continual World's 90 %)."""


def normalise(returns: Any, random: Any, reference: Any) -> np.ndarray:
    """``(returns - random) / (reference - random)``, broadcast over the last axis (looks); NaN where the
    reference is no better or worse than random (undefined)."""
    r, lo, hi = (np.asarray(x, dtype=float) for x in (returns, random, reference))
    span = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(span != 0, (r - lo) / np.where(span != 0, span, 1.0), np.nan)


def average_performance(r: np.ndarray) -> np.ndarray:
    """CW's average performance of (..., T, T) normalised R: the mean of the last row."""
    return np.asarray(r)[..., -1, :].mean(-1)


def forgetting(r: np.ndarray) -> np.ndarray:
    """CW's forgetting of each stage's look, (..., T): ``R[i, i] - R[T-1, i]``."""
    r = np.asarray(r)
    return np.diagonal(r, axis1=-2, axis2=-1) - r[..., -1, :]


def forward_transfer(auc: np.ndarray, auc_ref: np.ndarray) -> np.ndarray:
    """CW's normalised forward transfer per stage, (..., T), from the stage AUCs of the sequence's seeds
    (..., n, T) and of the reference's seeds (..., m, T): ``(mean AUC - mean AUC_ref) / (1 - mean AUC_ref)``
    (seed means before the ratio); NaN where ``mean AUC_ref >= 1``."""
    a, b = np.asarray(auc, dtype=float).mean(-2), np.asarray(auc_ref, dtype=float).mean(-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b < 1, (a - b) / np.where(b < 1, 1 - b, 1.0), np.nan)


def bootstrap_ci(
    statistic: Callable[..., np.ndarray],
    samples: list[np.ndarray],
    n: int = 4000,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """CW's ``BootstrapCI``: each array of ``samples`` resampled with replacement along its first axis
    (its seeds), apart from the others, ``n`` times; ``statistic(*resampled)`` reduces axis 1 of arrays
    of shape (n, seeds, ...) to (n, ...). Returns the (1 - c) / 2 and (1 + c) / 2 quantiles (midpoint)."""
    rng = np.random.default_rng(seed)
    resampled = [np.asarray(x)[rng.integers(0, len(x), (n, len(x)))] for x in samples]
    values = np.asarray(statistic(*resampled), dtype=float)
    q = (1.0 - confidence) / 2.0
    return (
        np.quantile(values, q, axis=0, method="midpoint"),
        np.quantile(values, 1.0 - q, axis=0, method="midpoint"),
    )


def stage_points(evaluations: list[dict[str, Any]], stage: int, env_id: str) -> list[float]:
    """The returns on ``env_id`` at stage ``stage``'s evaluation points (inside it and at its end)."""
    return [e["returns"][env_id] for e in evaluations if e["stage"] == stage and e["point"] >= 1]


def stage_auc(record: dict[str, Any], stage: int, window: int) -> float:
    """The area under stage ``stage``'s learning curve on its look over its first ``window`` env steps,
    divided by ``window`` (trapezoids between its evaluation points; the curve starts at the return just
    before the stage, :func:`before`): the mean return over the window."""
    env_id = record["stages"][stage]
    curve = [(0, before(record, stage))] + [
        (e["stage_step"], e["returns"][env_id])
        for e in record["evaluations"]
        if e["stage"] == stage and e["point"] >= 1 and e["stage_step"] <= window
    ]
    x, y = (np.array(v, dtype=float) for v in zip(*curve, strict=True))
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / window)


def before(record: dict[str, Any], stage: int) -> float:
    """The return on stage ``stage``'s look just before the stage (end of the previous one; for stage 0
    the evaluation before any training)."""
    env_id = record["stages"][stage]
    if stage:
        return record["R"][stage - 1][stage]
    return next(e["returns"][env_id] for e in record["evaluations"] if e["stage"] == -1)
