"""Offline probes: how much of each ground-truth factor a *frozen* representation keeps.

The A.6 probes (:mod:`vase_rl.probing.probes`) follow the paper's protocol and train alongside the learner;
this module is the headline measurement instead: encode a train split and a held-out test split once
with a frozen encoder, fit a probe on the train codes and score the test codes.

- codes are standardised with the train split's mean and standard deviation;
- **linear** probe: multinomial logistic regression (full-batch L-BFGS, small L2) for classes,
  ridge least squares for continuous factors;
- **mlp** probe: 2 x 256 ReLU MLP, Adam 1e-3, mini-batches of 256, ``epochs`` passes over the train
  split (cross-entropy for classes, MSE on standardised targets for continuous factors);
- scores: accuracy (%) for classes; R^2 for continuous factors (position = x and y jointly).

Everything is deterministic given ``OfflineProbeConfig.seed`` (own ``torch.Generator``; the global
RNG is neither used nor changed). Reference rows are computed the same way by the caller, e.g.
raw pixels (:func:`pixel_codes`) or the same encoder untrained.

>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 4, 600)
>>> codes = np.eye(4, dtype=np.float32)[y] + 0.01 * rng.standard_normal((600, 4)).astype(np.float32)
>>> r = fit_probe(codes[:400], y[:400], codes[400:], y[400:], "class", "linear")
>>> round(r, 1)
100.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

__all__ = [
    "FactorKind",
    "OfflineProbeConfig",
    "ProbeKindName",
    "encode_codes",
    "factor_targets",
    "fit_probe",
    "pixel_codes",
    "probe_factors",
    "readout_transfer",
    "shared_latents",
    "standardise",
]

FactorKind = Literal["class", "continuous"]
ProbeKindName = Literal["linear", "mlp"]


@dataclass(frozen=True)
class OfflineProbeConfig:
    """Offline probe protocol (defaults: 10,000 train / 5,000 test images, a 2x256 MLP for 40 epochs)."""

    train_size: int = 10_000
    """Train-split images encoded to fit the probes."""
    test_size: int = 5_000
    """Held-out test-split images the probes are scored on."""
    hidden: int = 256
    """Units of each of the MLP's two hidden ReLU layers."""
    epochs: int = 40
    """Passes of the MLP over the train codes."""
    lr: float = 1e-3
    """Adam learning rate of the MLP."""
    batch_size: int = 256
    """MLP mini-batch."""
    l2: float = 1e-4
    """L2 weight of the linear probes (logistic regression and ridge), relative to the sample count."""
    linear_iters: int = 200
    """L-BFGS iterations of the logistic regression."""
    seed: int = 0
    """Seed of the probes' initialisation and shuffling."""

    @classmethod
    def quick(cls, **overrides: Any) -> OfflineProbeConfig:
        """A first run's protocol, about a quarter of the default's cost: 5,000 train / 2,500 test images and
        20 MLP epochs (the protocol of ``benchmarks/results/representation_quality/quality_vs_budget.md``).

        >>> cfg = OfflineProbeConfig.quick()
        >>> cfg.train_size, cfg.test_size, cfg.epochs, cfg.hidden
        (5000, 2500, 20, 256)
        """
        return cls(**{"train_size": 5000, "test_size": 2500, "epochs": 20, **overrides})

    def __post_init__(self) -> None:
        for name in ("train_size", "test_size", "hidden", "epochs", "batch_size", "linear_iters"):
            if getattr(self, name) < 1:
                raise ValueError(f"OfflineProbeConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.l2 < 0:
            raise ValueError(f"need lr > 0 and l2 >= 0, got lr={self.lr}, l2={self.l2}")


def encode_codes(
    encode: Callable[[np.ndarray], torch.Tensor], images: np.ndarray, batch: int = 500
) -> np.ndarray:
    """Encode images (n, H, W, C) uint8 in batches with ``encode`` (e.g. ``learner.encode``): (n, d)."""
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            out.append(encode(images[i : i + batch]).detach().float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def pixel_codes(images: np.ndarray) -> np.ndarray:
    """The raw-pixel reference representation: images (n, H, W, C) uint8 -> (n, H*W*C) float32 in [0, 1]."""
    return images.reshape(len(images), -1).astype(np.float32) / 255.0


def factor_targets(
    factors: Mapping[str, np.ndarray], dataset: str
) -> dict[str, tuple[FactorKind, np.ndarray]]:
    """The ground-truth factors worth probing for a sprite dataset's factors dict.

    ``class`` (label, when labels exist), ``position`` (x, y jointly; moving datasets only), and for
    procedural shapes ``shape`` and ``scale``. Factors that are constant over the sample are dropped.
    """
    out: dict[str, tuple[FactorKind, np.ndarray]] = {}
    label = np.asarray(factors.get("label", []))
    if "shape" in factors:
        out["shape"] = ("class", np.asarray(factors["shape"]))
        out["scale"] = ("continuous", np.asarray(factors["scale"], np.float32)[:, None])
    elif label.size and (label >= 0).all():
        out["class"] = ("class", label)
    if "x" in factors and "y" in factors:
        pos = np.stack([factors["x"], factors["y"]], 1).astype(np.float32)
        if pos.std(0).max() > 0:
            out["position"] = ("continuous", pos)
    return {k: v for k, v in out.items() if np.unique(v[1], axis=0).shape[0] > 1}


def standardise(train: np.ndarray, *others: np.ndarray) -> list[torch.Tensor]:
    """Codes (n, d) scaled by the train split's mean and std (constant columns left unscaled), as float32
    tensors: [train, *others]."""
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 1e-6, std, 1.0)
    return [torch.as_tensor((a - mean) / std, dtype=torch.float32) for a in (train, *others)]


def _r2(pred: np.ndarray, target: np.ndarray) -> float:
    """Coefficient of determination over all output columns jointly (1 - SSE / SST)."""
    sse = float(((pred - target) ** 2).sum())
    sst = float(((target - target.mean(0)) ** 2).sum())
    return 1.0 - sse / max(sst, 1e-12)


def _linear_class(x: torch.Tensor, y: torch.Tensor, n_classes: int, cfg: OfflineProbeConfig) -> nn.Module:
    model = nn.Linear(x.shape[1], n_classes)
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    opt = torch.optim.LBFGS(
        model.parameters(), lr=1.0, max_iter=cfg.linear_iters, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y) + cfg.l2 * model.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model


def _ridge(
    x: torch.Tensor, y: torch.Tensor, cfg: OfflineProbeConfig
) -> Callable[[torch.Tensor], torch.Tensor]:
    xd, yd = x.double(), y.double()
    xm, ym = xd.mean(0), yd.mean(0)
    xc = xd - xm
    gram = xc.T @ xc + cfg.l2 * len(x) * torch.eye(x.shape[1], dtype=torch.float64)
    w = torch.linalg.solve(gram, xc.T @ (yd - ym))
    return lambda q: ((q.double() - xm) @ w + ym).float()


def _mlp(
    x: torch.Tensor, y: torch.Tensor, out_dim: int, kind: FactorKind, cfg: OfflineProbeConfig
) -> nn.Module:
    gen = torch.Generator().manual_seed(cfg.seed)
    model = nn.Sequential(
        nn.Linear(x.shape[1], cfg.hidden),
        nn.ReLU(),
        nn.Linear(cfg.hidden, cfg.hidden),
        nn.ReLU(),
        nn.Linear(cfg.hidden, out_dim),
    )
    with torch.no_grad():  # deterministic init from our own generator (PyTorch's default scheme)
        for layer in model:
            if isinstance(layer, nn.Linear):
                bound = 1.0 / layer.in_features**0.5
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.uniform_(-bound, bound, generator=gen)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss_fn = nn.functional.cross_entropy if kind == "class" else nn.functional.mse_loss
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model


def fit_probe(
    train_codes: np.ndarray,
    train_target: np.ndarray,
    test_codes: np.ndarray,
    test_target: np.ndarray,
    kind: FactorKind,
    probe: ProbeKindName,
    config: OfflineProbeConfig | None = None,
) -> float:
    """Fit one probe on train codes (n, d) and score it on test codes (m, d).

    Targets: int labels (n,) for ``kind="class"`` (score: accuracy in %), float (n,) or (n, k) for
    ``"continuous"`` (score: R^2 over all k columns jointly; targets standardised for the MLP).
    """
    cfg = config or OfflineProbeConfig()
    if train_codes.ndim != 2 or test_codes.ndim != 2 or train_codes.shape[1] != test_codes.shape[1]:
        raise ValueError(
            f"codes must be (n, d) with the same d, got {train_codes.shape} and {test_codes.shape}"
        )
    if len(train_codes) != len(train_target) or len(test_codes) != len(test_target):
        raise ValueError("codes and targets must have the same number of rows")
    if probe not in ("linear", "mlp") or kind not in ("class", "continuous"):
        raise ValueError(
            f"probe must be 'linear' or 'mlp' and kind 'class' or 'continuous', got {probe!r}, {kind!r}"
        )
    xtr, xte = standardise(train_codes, test_codes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        if kind == "class":
            ytr = torch.as_tensor(train_target, dtype=torch.long)
            n_classes = int(max(train_target.max(), test_target.max())) + 1
            model = (
                _linear_class(xtr, ytr, n_classes, cfg)
                if probe == "linear"
                else _mlp(xtr, ytr, n_classes, kind, cfg)
            )
            with torch.no_grad():
                pred = model(xte).argmax(1).numpy()
            return float((pred == np.asarray(test_target)).mean() * 100)
        ytr_np = np.asarray(train_target, np.float32).reshape(len(train_target), -1)
        yte_np = np.asarray(test_target, np.float32).reshape(len(test_target), -1)
        ym, ys = ytr_np.mean(0), np.where(ytr_np.std(0) > 1e-12, ytr_np.std(0), 1.0)
        ytr = torch.as_tensor((ytr_np - ym) / ys)
        predict = _ridge(xtr, ytr, cfg) if probe == "linear" else _mlp(xtr, ytr, ytr.shape[1], kind, cfg)
        with torch.no_grad():
            pred = predict(xte).numpy() * ys + ym
        return _r2(pred, yte_np)


def probe_factors(
    train_codes: np.ndarray,
    train_factors: Mapping[str, np.ndarray],
    test_codes: np.ndarray,
    test_factors: Mapping[str, np.ndarray],
    dataset: str,
    probes: tuple[ProbeKindName, ...] = ("linear", "mlp"),
    config: OfflineProbeConfig | None = None,
) -> dict[str, dict[str, float]]:
    """Every probe on every factor of :func:`factor_targets`: ``{factor: {probe: score}}``."""
    train_t, test_t = factor_targets(train_factors, dataset), factor_targets(test_factors, dataset)
    out: dict[str, dict[str, float]] = {}
    for name, (kind, target) in train_t.items():
        if name not in test_t:
            continue
        out[name] = {
            p: fit_probe(train_codes, target, test_codes, test_t[name][1], kind, p, config) for p in probes
        }
    return out


def readout_transfer(
    codes_a: np.ndarray,
    target_a: np.ndarray,
    codes_b: np.ndarray,
    target_b: np.ndarray,
    kind: FactorKind,
    config: OfflineProbeConfig | None = None,
) -> float:
    """Cross-domain readout: a *linear* probe fit on dataset A's codes, scored on dataset B's codes.

    Standardisation uses A's statistics only (B is never looked at while fitting), so a high score
    means B's factor is written in the same latents, with the same scale, as A's -- the paper's shared
    embedding (Fig. 4B). Accuracy (%) for classes, R^2 for continuous factors.
    """
    return fit_probe(codes_a, target_a, codes_b, target_b, kind, "linear", config)


def _columns_corr(codes: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson correlation of every code column with every target column: (d, k)."""
    c = (codes - codes.mean(0)) / np.where(codes.std(0) > 1e-8, codes.std(0), 1.0)
    t = (target - target.mean(0)) / np.where(target.std(0) > 1e-8, target.std(0), 1.0)
    return c.T @ t / len(codes)


def shared_latents(
    codes_a: np.ndarray, target_a: np.ndarray, codes_b: np.ndarray, target_b: np.ndarray
) -> list[dict[str, float | int]]:
    """Which latent carries each continuous factor column in A, and what that latent does in B.

    For factor column k (e.g. x, y of position): the latent n most correlated with it on A's codes, its
    correlation in A and the correlation of the *same* latent with the same factor on B's codes, and the
    latent most correlated in B. ``corr_b ~ corr_a``: shared and read the same way (readout transfers);
    ``corr_b ~ -corr_a``: the same latent, mirrored (a linear readout fit on A fails on B although the
    latent is reused); ``|corr_b| ~ 0``: B wrote the factor elsewhere.

    codes: (n, d); target: (n, k) float. Returns one dict per column: ``latent``, ``corr_a``, ``corr_b``,
    ``best_b``, ``best_corr_b``.

    >>> rng = np.random.default_rng(0)
    >>> t = rng.standard_normal((500, 1))
    >>> a = np.concatenate([t, rng.standard_normal((500, 2))], 1)
    >>> b = np.concatenate([-t, rng.standard_normal((500, 2))], 1)  # the same latent, mirrored
    >>> r = shared_latents(a, t, b, t)[0]
    >>> r["latent"], round(r["corr_a"], 2), round(r["corr_b"], 2), r["best_b"]
    (0, 1.0, -1.0, 0)
    """
    ca, cb = _columns_corr(codes_a, target_a), _columns_corr(codes_b, target_b)
    out: list[dict[str, float | int]] = []
    for k in range(ca.shape[1]):
        n, m = int(np.abs(ca[:, k]).argmax()), int(np.abs(cb[:, k]).argmax())
        out.append(
            {
                "latent": n,
                "corr_a": float(ca[n, k]),
                "corr_b": float(cb[n, k]),
                "best_b": m,
                "best_corr_b": float(cb[m, k]),
            }
        )
    return out
