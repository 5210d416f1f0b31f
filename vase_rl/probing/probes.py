"""Task probes on the latent representation, appendix A.6 of Achille et al. 2018.

"We train on top of the representation z ~ q(z|x) a simple 2-hidden layers fully connected
classifier with 256 hidden units per layer and ReLU activations. At each step while training the
representation, we also train a separate classifier on the representation for each environment,
using Adam with learning rate 6e-4 and batch size 64. This classifier training step does not update
the weights in the main network." Section 4 adds a position regressor for the moving datasets.

Usage (the caller owns the learner and the data)::

    probes = ProbeSet([ProbeSpec("moving_fashion", regress_position=True), ProbeSpec("mnist")],
                      latent_dim=24)
    z = probes.latents(learner_encode, x)         # z ~ q(z|x) under torch.no_grad, the set's own generator
    probes.train_step("mnist", z, labels=y)
    probes.evaluate("mnist", probes.latents(learner_encode, x_test), labels=y_test, step=step)
    probes.forgetting("mnist", "accuracy", stage_start=0, stage_end=150_000)   # Table 1 entry

The probes never touch the learner: :func:`probe_latents` encodes without gradients and
:meth:`ProbeSet.train_step` detaches whatever it receives, so no gradient can reach an encoder.
Every random draw of a :class:`ProbeSet` (its weights' initialisation, the noise of z ~ q(z|x) in
:meth:`ProbeSet.latents`) comes from its seed and its own generator, which :meth:`ProbeSet.state_dict`
holds, so a run resumed from a checkpoint trains and scores its probes bit for bit as a straight run.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch import nn

from vase_rl.probing.metrics import ForgettingResult, forgetting

__all__ = [
    "HIGHER_IS_BETTER",
    "EncodeFn",
    "Probe",
    "ProbeConfig",
    "ProbeHistory",
    "ProbeRecord",
    "ProbeSet",
    "ProbeSpec",
    "probe_latents",
]

EncodeFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""x: (B, C, H, W) float in [0, 1] -> (mu, logvar), each (B, latent_dim)."""

ProbeKind = Literal["classifier", "regressor"]

HIGHER_IS_BETTER: dict[str, bool] = {"accuracy": True, "position_mse": False}
"""Metrics recorded by :meth:`ProbeSet.evaluate` and whether larger values are better."""


@dataclass(frozen=True)
class ProbeConfig:
    """Probe hyperparameters (appendix A.6)."""

    hidden: int = 256
    """Units in each of the two hidden ReLU layers."""
    n_classes: int = 10
    """Object-identity classes (MNIST / Fashion)."""
    position_dim: int = 2
    """Regressed position coordinates (x, y), expected normalised to [0, 1]."""
    lr: float = 6e-4
    """Adam learning rate."""
    batch_size: int = 64
    """Batch the caller passes to :meth:`ProbeSet.train_step` (one Adam step per call)."""
    train_every: int = 1
    """Train the probes every this many learner steps (1 = every step, as in A.6)."""
    eval_every: int = 1000
    """Evaluate the probes every this many learner steps."""
    eval_size: int = 1000
    """Held-out samples the caller encodes for each evaluation."""
    sample_z: bool = True
    """Probe z ~ q(z|x) (A.6) rather than the mean mu(x)."""

    def __post_init__(self) -> None:
        for name in (
            "hidden",
            "n_classes",
            "position_dim",
            "batch_size",
            "train_every",
            "eval_every",
            "eval_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"ProbeConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"ProbeConfig.lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class ProbeSpec:
    """Which probes a dataset gets: a classifier if it has labels, a regressor if its object moves."""

    name: str
    classify: bool = True
    regress_position: bool = False


def probe_latents(
    encode: EncodeFn, x: torch.Tensor, sample_z: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Encode x for the probes under ``torch.no_grad``: z ~ q(z|x) (or mu(x) if not ``sample_z``).

    Args:
        encode: the learner's encoder, x (B, C, H, W) in [0, 1] -> (mu, logvar), each (B, latent_dim).
        x: (B, C, H, W) float in [0, 1].
        generator: optional torch.Generator for the reparameterisation noise.
    Returns:
        (B, latent_dim) detached z.
    """
    with torch.no_grad():
        mu, logvar = encode(x)
        if not sample_z:
            return mu.detach()
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return (mu + torch.exp(0.5 * logvar) * eps).detach()


class Probe(nn.Module):
    """2-hidden-layer ReLU MLP on z (A.6): logits (classifier) or positions (regressor)."""

    def __init__(self, latent_dim: int, out_dim: int, kind: ProbeKind, hidden: int = 256) -> None:
        super().__init__()
        if kind not in ("classifier", "regressor"):
            raise ValueError(f"kind must be 'classifier' or 'regressor', got {kind!r}")
        self.kind = kind
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (B, latent_dim) -> (B, out_dim) logits or predicted positions."""
        return self.net(z)

    def loss(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on labels (B,) int, or MSE on positions (B, out_dim)."""
        out = self(z)
        if self.kind == "classifier":
            return nn.functional.cross_entropy(out, target)
        return nn.functional.mse_loss(out, target)


class ProbeRecord(NamedTuple):
    """One evaluation: probe ``metric`` of ``dataset`` had ``value`` at learner ``step``."""

    step: int
    dataset: str
    metric: str
    value: float


class ProbeHistory:
    """Append-only list of :class:`ProbeRecord`, JSON-serialisable, with per-curve access."""

    def __init__(self, records: Sequence[ProbeRecord] = ()) -> None:
        self.records: list[ProbeRecord] = [ProbeRecord(*r) for r in records]

    def add(self, step: int, dataset: str, metric: str, value: float) -> None:
        self.records.append(ProbeRecord(int(step), str(dataset), str(metric), float(value)))

    def curve(self, dataset: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps (T,), values (T,)) of one dataset's metric, in recording order."""
        rows = [(r.step, r.value) for r in self.records if r.dataset == dataset and r.metric == metric]
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 2)
        return arr[:, 0], arr[:, 1]

    def to_json(self) -> str:
        return json.dumps([list(r) for r in self.records])

    @classmethod
    def from_json(cls, text: str) -> ProbeHistory:
        return cls([ProbeRecord(int(s), d, m, float(v)) for s, d, m, v in json.loads(text)])

    def __len__(self) -> int:
        return len(self.records)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProbeHistory) and self.records == other.records


def _resolve_device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class ProbeSet:
    """One classifier and/or position regressor per dataset, each with its own Adam (A.6).

    Args:
        datasets: a :class:`ProbeSpec` per dataset; a plain string means ``ProbeSpec(name)``
            (classifier only).
        latent_dim: size of z.
        config: probe hyperparameters.
        device: ``"cpu"``, ``"cuda"``, ``"auto"`` or a torch.device.
        seed: initialisation seed; each probe's weights depend only on (seed, dataset, kind), and
            :attr:`generator` (the noise of :meth:`latents`) starts from it.
    """

    def __init__(
        self,
        datasets: Sequence[ProbeSpec | str],
        latent_dim: int,
        config: ProbeConfig | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        self.specs = [ProbeSpec(d) if isinstance(d, str) else d for d in datasets]
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"dataset names must be unique and non-empty, got {names}")
        self.latent_dim = int(latent_dim)
        self.config = config or ProbeConfig()
        self.device = _resolve_device(device)
        self.history = ProbeHistory()
        self.generator = torch.Generator(device=self.device)
        """Noise of z ~ q(z|x) in :meth:`latents`; its state is part of :meth:`state_dict`."""
        self.generator.manual_seed(seed * 1_000_003 + zlib.crc32(b"probe latents"))
        self.probes: dict[tuple[str, ProbeKind], Probe] = {}
        self.optimizers: dict[tuple[str, ProbeKind], torch.optim.Adam] = {}
        for spec in self.specs:
            kinds: list[tuple[ProbeKind, int]] = []
            if spec.classify:
                kinds.append(("classifier", self.config.n_classes))
            if spec.regress_position:
                kinds.append(("regressor", self.config.position_dim))
            for kind, out_dim in kinds:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed * 1_000_003 + zlib.crc32(f"{spec.name}/{kind}".encode()))
                    probe = Probe(self.latent_dim, out_dim, kind, self.config.hidden).to(self.device)
                self.probes[(spec.name, kind)] = probe
                self.optimizers[(spec.name, kind)] = torch.optim.Adam(probe.parameters(), lr=self.config.lr)

    def latents(self, encode: EncodeFn, x: torch.Tensor) -> torch.Tensor:
        """:func:`probe_latents` with this set's ``config.sample_z`` and noise from :attr:`generator`.

        x: (B, C, H, W) float in [0, 1] -> (B, latent_dim) detached z on ``x``'s device.
        """
        return probe_latents(encode, x, self.config.sample_z, self.generator)

    # ------------------------------------------------------------------------------------- schedule
    def should_train(self, step: int) -> bool:
        return step % self.config.train_every == 0

    def should_evaluate(self, step: int) -> bool:
        return step % self.config.eval_every == 0

    # ------------------------------------------------------------------------------------- checks
    def _targets(
        self, dataset: str, z: torch.Tensor, labels: torch.Tensor | None, positions: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[ProbeKind, torch.Tensor]]:
        """Validate inputs; return detached z on device and the targets keyed by probe kind."""
        if dataset not in {s.name for s in self.specs}:
            raise ValueError(f"unknown dataset {dataset!r}; probes exist for {[s.name for s in self.specs]}")
        if z.ndim != 2 or z.shape[1] != self.latent_dim or z.shape[0] == 0 or not z.is_floating_point():
            raise ValueError(
                f"z must be float (B, {self.latent_dim}) with B >= 1, got {tuple(z.shape)} {z.dtype}"
            )
        if not torch.isfinite(z).all():
            raise ValueError("z contains NaN or inf")
        batch = z.shape[0]
        targets: dict[ProbeKind, torch.Tensor] = {}
        checks: tuple[tuple[ProbeKind, torch.Tensor | None, tuple[int, ...]], ...] = (
            ("classifier", labels, (batch,)),
            ("regressor", positions, (batch, self.config.position_dim)),
        )
        for kind, t, shape in checks:
            if t is None:
                continue
            if (dataset, kind) not in self.probes:
                raise ValueError(f"dataset {dataset!r} has no {kind} probe (see its ProbeSpec)")
            if tuple(t.shape) != shape:
                raise ValueError(f"{kind} targets must have shape {shape}, got {tuple(t.shape)}")
            if kind == "classifier":
                t = t.long()
                if t.min() < 0 or t.max() >= self.config.n_classes:
                    raise ValueError(
                        f"labels must lie in [0, {self.config.n_classes}), "
                        f"got [{int(t.min())}, {int(t.max())}]"
                    )
            else:
                t = t.float()
            targets[kind] = t.detach().to(self.device)
        return z.detach().float().to(self.device), targets

    # ------------------------------------------------------------------------------------ training
    def train_step(
        self,
        dataset: str,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """One Adam step of the dataset's probes on a batch; never updates the learner.

        Args:
            z: (B, latent_dim), computed by the caller under ``torch.no_grad`` (it is detached here too).
            labels: (B,) int object class, or None to skip the classifier.
            positions: (B, position_dim) float object position, or None to skip the regressor.
        Returns:
            ``{"classifier_loss": ..., "regressor_loss": ...}`` for the probes trained.
        """
        z, targets = self._targets(dataset, z, labels, positions)
        losses: dict[str, float] = {}
        for kind, target in targets.items():
            probe, opt = self.probes[(dataset, kind)], self.optimizers[(dataset, kind)]
            probe.train()
            loss = probe.loss(z, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses[f"{kind}_loss"] = float(loss.detach())
        return losses

    def evaluate(
        self,
        dataset: str,
        z: torch.Tensor,
        labels: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
        step: int | None = None,
    ) -> dict[str, float]:
        """Score the dataset's probes on held-out latents; record them in :attr:`history` at ``step``.

        Args:
            z: (N, latent_dim) held-out latents; labels (N,) int; positions (N, position_dim).
            step: learner step to record; ``None`` evaluates without recording.
        Returns:
            ``{"accuracy": percent, "position_mse": mean squared error per coordinate}`` for the
            probes whose targets were given.
        """
        z, targets = self._targets(dataset, z, labels, positions)
        out: dict[str, float] = {}
        with torch.no_grad():
            for kind, target in targets.items():
                probe = self.probes[(dataset, kind)]
                probe.eval()
                pred = probe(z)
                if kind == "classifier":
                    out["accuracy"] = 100.0 * float((pred.argmax(1) == target).float().mean())
                else:
                    out["position_mse"] = float(nn.functional.mse_loss(pred, target))
        if step is not None:
            for metric, value in out.items():
                self.history.add(step, dataset, metric, value)
        return out

    def forgetting(
        self, dataset: str, metric: str, stage_start: float, stage_end: float | None
    ) -> ForgettingResult:
        """A.6 forgetting of a recorded curve (see :func:`vase_rl.probing.metrics.forgetting`)."""
        if metric not in HIGHER_IS_BETTER:
            raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(HIGHER_IS_BETTER)}")
        steps, values = self.history.curve(dataset, metric)
        return forgetting(steps, values, stage_start, stage_end, HIGHER_IS_BETTER[metric])

    # ------------------------------------------------------------------------------- serialisation
    def _layout(self) -> dict[str, Any]:
        return {
            "latent_dim": self.latent_dim,
            "config": dataclasses.asdict(self.config),
            "specs": [dataclasses.asdict(s) for s in self.specs],
        }

    def state_dict(self) -> dict[str, Any]:
        """Probe weights, Adam states, generator, history and the layout a reload checks (a deep copy)."""
        return copy.deepcopy(
            {
                **self._layout(),
                "probes": {f"{d}/{k}": p.state_dict() for (d, k), p in self.probes.items()},
                "optimizers": {f"{d}/{k}": o.state_dict() for (d, k), o in self.optimizers.items()},
                "generator": self.generator.get_state(),
                "history": [list(r) for r in self.history.records],
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; raises ValueError if the layouts differ.

        A state without ``"generator"`` (written before probes had one) leaves the generator as it is.
        """
        saved = {key: state.get(key) for key in ("latent_dim", "config", "specs")}
        if saved != self._layout():
            raise ValueError(
                f"probe state does not match this ProbeSet: saved {saved}, expected {self._layout()}"
            )
        for (d, k), probe in self.probes.items():
            probe.load_state_dict(state["probes"][f"{d}/{k}"])
            self.optimizers[(d, k)].load_state_dict(state["optimizers"][f"{d}/{k}"])
        if "generator" in state:
            self.generator.set_state(state["generator"].cpu())
        self.history = ProbeHistory([ProbeRecord(*r) for r in state["history"]])
