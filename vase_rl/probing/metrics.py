"""Evaluation metrics: forgetting (A.6), disentanglement (MIG, DCI), environment inference.

Each metric is one function whose docstring cites its paper and defines the estimator:
:func:`forgetting` (Achille et al. 2018, A.6), :func:`mutual_information_gap` (Chen et al. 2018),
:func:`dci` (Eastwood & Williams 2018), :func:`environment_inference_accuracy` (section 3.4).
The estimators are those of disentanglement_lib (Locatello et al. 2019), built from the same library
pieces so that the numbers are comparable with published ones: scikit-learn's
``mutual_info_score`` (MIG) and gradient-boosted trees (DCI), and scipy's ``linear_sum_assignment``
(environment relabelling). They are imported by the functions that use them (scikit-learn takes seconds
to import), so :func:`forgetting`, which the training loop's probes use, costs nothing extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "AverageForgetting", "DCIResult", "EnvInferenceResult", "ForgettingResult", "average_forgetting", "dci",
    "discrete_entropy",
    "environment_inference_accuracy", "forgetting", "histogram_discretize", "mutual_information_gap",
]  # fmt: skip


# ----------------------------------------------------------------------------------------- forgetting
@dataclass(frozen=True)
class ForgettingResult:
    """Forgetting of one probe metric on one dataset (A.6).

    ``best_during`` is Table 1's MAX (accuracy) or MIN (MSE); ``change`` is its CHANGE column:
    negative means forgetting for accuracy, positive means forgetting for MSE. ``worst_after`` and
    ``change`` are ``None`` when the curve has no point after the stage (the last dataset).
    """

    best_during: float
    worst_after: float | None
    change: float | None
    higher_is_better: bool


@dataclass(frozen=True)
class AverageForgetting:
    """Table 1 row entries averaged over datasets (see :func:`average_forgetting`)."""

    mean_best_during: float
    mean_change: float | None
    n_datasets: int
    n_with_after: int


def forgetting(
    curve_steps: ArrayLike,
    curve_values: ArrayLike,
    stage_start: float,
    stage_end: float | None,
    higher_is_better: bool = True,
) -> ForgettingResult:
    """Catastrophic forgetting of one dataset, appendix A.6 of Achille et al. 2018.

    "The difference between the maximum accuracy obtained while VASE was training on a particular
    dataset and the minimum accuracy obtained for the dataset afterwards", reported (Table 1) as
    CHANGE = min_after - max_during for accuracy (negative = forgetting) and, for an error such as
    position MSE (``higher_is_better=False``), CHANGE = max_after - min_during (positive = forgetting).

    Args:
        curve_steps: (T,) training steps at which the probe was evaluated.
        curve_values: (T,) probe metric at those steps (accuracy % or MSE).
        stage_start: first step of training on the dataset; "during" is ``stage_start <= step < stage_end``.
        stage_end: first step after the dataset; "after" is ``step >= stage_end``. ``None`` (or no
            point after it) means the dataset is the last one: ``worst_after = change = None``.
        higher_is_better: True for accuracy, False for errors.

    Raises:
        ValueError: mismatched or non-1-D inputs, or no evaluation inside the stage.
    """
    steps = np.asarray(curve_steps, dtype=np.float64)
    values = np.asarray(curve_values, dtype=np.float64)
    if steps.ndim != 1 or steps.shape != values.shape:
        raise ValueError(f"need 1-D curves of equal length, got steps {steps.shape}, values {values.shape}")
    end = np.inf if stage_end is None else stage_end
    during = values[(steps >= stage_start) & (steps < end)]
    if during.size == 0:
        raise ValueError(f"no evaluation in stage [{stage_start}, {stage_end}); steps: {steps.tolist()[:20]}")
    after = values[steps >= end]
    sign = 1.0 if higher_is_better else -1.0
    best = float(sign * np.max(sign * during))
    if after.size == 0:
        return ForgettingResult(best, None, None, higher_is_better)
    worst = float(sign * np.min(sign * after))
    return ForgettingResult(best, worst, worst - best, higher_is_better)


def average_forgetting(results: Sequence[ForgettingResult]) -> AverageForgetting:
    """Average forgetting over datasets, as in Table 1 / Table 3 of Achille et al. 2018.

    ``mean_best_during`` averages MAX (or MIN) over all datasets; ``mean_change`` averages CHANGE
    over the datasets that have an "after" (``None`` if none has). All results must share
    ``higher_is_better``.
    """
    if not results:
        raise ValueError("average_forgetting needs at least one ForgettingResult")
    if len({r.higher_is_better for r in results}) != 1:
        raise ValueError("cannot average accuracy-type and error-type forgetting results together")
    changes = [r.change for r in results if r.change is not None]
    return AverageForgetting(
        mean_best_during=float(np.mean([r.best_during for r in results])),
        mean_change=float(np.mean(changes)) if changes else None,
        n_datasets=len(results),
        n_with_after=len(changes),
    )


# ---------------------------------------------------------------------------------------------- MIG
def histogram_discretize(values: ArrayLike, n_bins: int) -> np.ndarray:
    """Equal-width histogram discretisation of each column (disentanglement_lib ``_histogram_discretize``).

    Column j is cut into ``n_bins`` equal-width bins spanning its observed range [min, max]
    (``np.histogram`` edges); a value gets the index of the last left edge <= it, so the maximum
    falls in the last bin. A constant column maps to a single bin.

    Args:
        values: (N, M) float.
    Returns:
        (N, M) int64 bin indices in [0, n_bins).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D (N, M) array, got shape {x.shape}")
    out = np.empty(x.shape, dtype=np.int64)
    for j in range(x.shape[1]):
        edges = np.histogram(x[:, j], bins=n_bins)[1]
        out[:, j] = np.digitize(x[:, j], edges[:-1]) - 1
    return out


def discrete_entropy(labels: np.ndarray) -> float:
    """Plug-in entropy (nats) of a 1-D label array: I(v; v), as disentanglement_lib's ``discrete_entropy``."""
    from sklearn.metrics import mutual_info_score

    return float(mutual_info_score(labels, labels))


def _check_codes_factors(
    codes: ArrayLike, factors: ArrayLike, discrete: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """Validate codes (N, D) finite and factors (N, K) with K discrete flags."""
    c = np.asarray(codes, dtype=np.float64)
    f = np.asarray(factors)
    if c.ndim != 2 or f.ndim != 2 or c.shape[0] != f.shape[0]:
        raise ValueError(f"expected codes (N, D) and factors (N, K) with equal N, got {c.shape}, {f.shape}")
    if len(discrete) != f.shape[1]:
        raise ValueError(f"discrete_factors has {len(discrete)} entries, factors have K={f.shape[1]} columns")
    if not np.all(np.isfinite(c)):
        raise ValueError("codes contain NaN or inf")
    return c, f


def mutual_information_gap(
    codes: ArrayLike, factors: ArrayLike, *, discrete_factors: Sequence[bool], n_bins: int = 20
) -> float:
    """Mutual Information Gap (MIG), Chen et al. 2018 (sec. 4), estimated as in disentanglement_lib.

    Estimator, exactly:
      1. each code dimension z_j is discretised with :func:`histogram_discretize` (``n_bins``
         equal-width bins over its observed range); continuous factors (``discrete_factors[k]``
         False) are discretised the same way; discrete factors are used as given (any labels);
      2. I(z_j; v_k) is the plug-in mutual information of the (D x K) pairs' contingency tables,
         natural log (``sklearn.metrics.mutual_info_score``, as disentanglement_lib);
         H(v_k) = I(v_k; v_k), the plug-in entropy of the (discretised) factor;
      3. MIG = (1/K) sum_k [I(z_(1); v_k) - I(z_(2); v_k)] / H(v_k), where z_(1), z_(2) are the
         codes with the largest and second-largest MI with v_k.
    The plug-in MI is biased upwards by about (n_bins - 1)^2 / (2N) nats for independent pairs, so use
    N >> n_bins^2 samples.

    Args:
        codes: (N, D) latent codes, e.g. mu(x), D >= 2.
        factors: (N, K) ground-truth factors.
        discrete_factors: K flags, True for categorical factors (e.g. object class).
        n_bins: bins per code dimension and per continuous factor.
    Returns:
        MIG in [0, 1] (up to estimator bias).
    Raises:
        ValueError: bad shapes, fewer than two codes, or a constant factor (H = 0).
    """
    from sklearn.metrics import mutual_info_score

    c, f = _check_codes_factors(codes, factors, discrete_factors)
    if c.shape[1] < 2:
        raise ValueError(f"MIG needs at least 2 code dimensions, got D={c.shape[1]}")
    zc = histogram_discretize(c, n_bins)
    gaps = []
    for k, is_discrete in enumerate(discrete_factors):
        v = f[:, k] if is_discrete else histogram_discretize(f[:, k : k + 1].astype(np.float64), n_bins)[:, 0]
        h = discrete_entropy(v)
        if h <= 0.0:
            raise ValueError(f"factor {k} is constant (entropy 0): MIG is undefined for it")
        mi = np.sort([mutual_info_score(zc[:, j], v) for j in range(c.shape[1])])[::-1]
        gaps.append((mi[0] - mi[1]) / h)
    return float(np.mean(gaps))


# ---------------------------------------------------------------------------------------------- DCI
@dataclass(frozen=True)
class DCIResult:
    """Disentanglement, completeness, informativeness (Eastwood & Williams 2018)."""

    disentanglement: float
    completeness: float
    informativeness: float
    """Mean over factors of test accuracy (discrete) or clipped R^2 = 1 - MSE/Var (continuous)."""
    informativeness_per_factor: np.ndarray
    """(K,)"""
    importance: np.ndarray
    """(D, K) importance matrix R, each nonzero column normalised to sum 1."""


def _fit_gbt(x: np.ndarray, y: np.ndarray, discrete: bool, n_rounds: int, lr: float, max_depth: int) -> Any:
    """scikit-learn gradient-boosted trees (Friedman 2001) on x (N, D) for one factor y (N,).

    ``GradientBoostingClassifier`` (multinomial deviance) for a discrete factor, as disentanglement_lib's
    ``compute_importance_gbt``; ``GradientBoostingRegressor`` (squared error) for a continuous one.
    ``random_state=0``: with sklearn's defaults (no subsampling, all features) it only breaks ties.
    """
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

    cls = GradientBoostingClassifier if discrete else GradientBoostingRegressor
    model = cls(n_estimators=n_rounds, learning_rate=lr, max_depth=max_depth, random_state=0)
    return model.fit(x, y if discrete else y.astype(np.float64))


def _one_minus_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """1 - H(p)/log(n) along ``axis`` after normalising; all-zero slices score 0 (uniform)."""
    n = p.shape[axis]
    if n == 1:
        return np.ones(p.shape[1 - axis])
    s = p.sum(axis=axis, keepdims=True)
    q = np.where(s > 0, p / np.where(s > 0, s, 1.0), 1.0 / n)
    plogp = np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0)
    return 1.0 + plogp.sum(axis=axis) / np.log(n)


def dci(
    codes_train: ArrayLike,
    factors_train: ArrayLike,
    codes_test: ArrayLike,
    factors_test: ArrayLike,
    *,
    discrete_factors: Sequence[bool],
    n_rounds: int = 100,
    learning_rate: float = 0.1,
    max_depth: int = 3,
) -> DCIResult:
    """DCI scores, Eastwood & Williams 2018 (sec. 2-3), with gradient-boosted trees as the predictor.

    Predictor, as disentanglement_lib's DCI (``GradientBoostingClassifier()``, whose defaults are the
    defaults here: ``n_rounds`` = 100 boosting stages, shrinkage ``learning_rate`` = 0.1, trees of depth
    ``max_depth`` = 3): for each factor k, scikit-learn's ``GradientBoostingClassifier`` on the raw codes
    when the factor is discrete, ``GradientBoostingRegressor`` (squared error) when it is continuous
    (disentanglement_lib only has discrete factors). Trees handle categorical factors (object class) and
    nonlinear code-factor maps that a Lasso would score as uninformative, and splits are invariant to
    monotone rescaling of codes, so no standardisation choice enters.

    R[j, k] = ``feature_importances_`` of code j in factor k's model (impurity reduction of the splits
    on code j, normalised over codes to sum 1; a factor no split could predict keeps a zero column). Then
      disentanglement = sum_j rho_j (1 - H_K(P_j.)),  P_jk = R_jk / sum_k R_jk,  rho_j = sum_k R_jk / sum R;
      completeness    = sum_k w_k (1 - H_D(R_.k / sum_j R_jk)),  w_k = sum_j R_jk / sum R;
      informativeness = mean_k of test accuracy (discrete) or max(0, 1 - MSE_test / Var(v_k test)).
    H_K, H_D are entropies with log base K and D.

    Args:
        codes_train: (N, D); factors_train: (N, K); codes_test: (M, D); factors_test: (M, K).
        discrete_factors: K flags, True for categorical factors.
    """
    ctr, ftr = _check_codes_factors(codes_train, factors_train, discrete_factors)
    cte, fte = _check_codes_factors(codes_test, factors_test, discrete_factors)
    if ctr.shape[1] != cte.shape[1]:
        raise ValueError(f"train codes have D={ctr.shape[1]}, test codes D={cte.shape[1]}")
    k_factors = ftr.shape[1]
    importance = np.zeros((ctr.shape[1], k_factors))
    info = np.zeros(k_factors)
    for k, is_discrete in enumerate(discrete_factors):
        if is_discrete and np.unique(ftr[:, k]).size < 2:  # sklearn refuses one class: nothing to explain
            info[k] = np.mean(fte[:, k] == ftr[0, k])
            continue
        model = _fit_gbt(ctr, ftr[:, k], is_discrete, n_rounds, learning_rate, max_depth)
        importance[:, k] = np.nan_to_num(np.abs(model.feature_importances_))
        pred = model.predict(cte)
        if is_discrete:
            info[k] = np.mean(pred == fte[:, k])
        else:
            y = fte[:, k].astype(np.float64)
            var = np.var(y)
            mse = np.mean((pred - y) ** 2)
            info[k] = max(0.0, 1.0 - mse / var) if var > 0 else float(mse == 0)
    total = importance.sum()
    weights = importance if total > 0 else np.ones_like(importance)
    rho = weights.sum(1) / weights.sum()
    w = weights.sum(0) / weights.sum()
    return DCIResult(
        disentanglement=float(np.sum(rho * _one_minus_entropy(importance, axis=1))),
        completeness=float(np.sum(w * _one_minus_entropy(importance, axis=0))),
        informativeness=float(info.mean()),
        informativeness_per_factor=info,
        importance=importance,
    )


# ------------------------------------------------------------------------------ environment inference
@dataclass(frozen=True)
class EnvInferenceResult:
    """Accuracy of inferred environment indices up to relabelling."""

    accuracy: float
    """Fraction of steps whose inferred label maps to the true one under the best 1-to-1 mapping."""
    n_inferred: int
    """Number of distinct inferred environments (over-splitting shows here)."""
    n_true: int
    mapping: dict[int, int]
    """Best one-to-one map inferred label -> true label (unmapped inferred labels count as errors)."""


def environment_inference_accuracy(inferred: ArrayLike, true: ArrayLike) -> EnvInferenceResult:
    """Environment-inference accuracy up to relabelling (Achille et al. 2018, section 3.4 / fig. 2).

    The inferred index s is arbitrary, so labels are matched by the one-to-one map that maximises
    the number of agreeing steps (maximum-weight bipartite matching of the contingency table, solved
    exactly by ``scipy.optimize.linear_sum_assignment``). Surplus inferred labels stay unmapped and count
    as errors.

    Args:
        inferred: (T,) inferred environment index per step (or batch).
        true: (T,) true dataset index per step.
    """
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics.cluster import contingency_matrix

    a, b = np.asarray(inferred).ravel(), np.asarray(true).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"need non-empty inferred and true of equal length, got {a.shape} and {b.shape}")
    la, lb = np.unique(a), np.unique(b)
    table = contingency_matrix(a, b)  # (len(la), len(lb)) counts, rows and columns in sorted label order
    rows, cols = linear_sum_assignment(table, maximize=True)
    return EnvInferenceResult(
        accuracy=float(table[rows, cols].sum() / a.size),
        n_inferred=int(la.size),
        n_true=int(lb.size),
        mapping={la[r].item(): lb[c].item() for r, c in zip(rows, cols, strict=True)},
    )
