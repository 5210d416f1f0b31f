"""Post-hoc evaluation of a trained sequence run (a run directory, :mod:`vase_rl.runs.run_format`).

:func:`evaluate_run` loads ``checkpoint.pt``, ``log.jsonl`` and ``probes.json`` and measures, for every
dataset of the sequence on held-out (split ``"test"``) samples:

* which environment VASE infers (classifier q(s|x), A.1) and which one the training log assigned
  to the dataset's stage (majority of the logged Algorithm-1 decisions);
* an *information check*: reconstruction NLL with the codes mu(x) versus with the codes shuffled across
  the batch. A model can meet its KL target C with latents that carry nothing about x (constant mu
  offsets); then shuffling changes nothing and the gap is ~0 nats;
* MIG and DCI on the ground-truth factors the dataset has (label, shape, scale, x, y);
* probe maximum/minimum during the dataset's stage and the change afterwards (Table 1, A.6);

plus the latents each environment uses and the accuracy of the logged environment inference against
the true dataset boundaries. Everything is written to ``run_dir/evaluation.json``.

The run is read through :mod:`vase_rl.runs.run_format` only: the evaluation side never imports the trainer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vase_rl.core.learner import ContinualLearner
from vase_rl.core.losses import reconstruction_nll
from vase_rl.evaluation.quality import STAGES_DIR, QualitySettings, evaluate_quality
from vase_rl.probing.metrics import (
    ForgettingResult,
    average_forgetting,
    dci,
    environment_inference_accuracy,
    forgetting,
    mutual_information_gap,
)
from vase_rl.probing.offline_probe import OfflineProbeConfig
from vase_rl.probing.probes import HIGHER_IS_BETTER
from vase_rl.runs.loaded_run import LoadedRun, load_run
from vase_rl.runs.run_format import (
    make_sampler,
)

__all__ = [
    "EvalSettings", "allocations", "disentanglement", "env_datasets", "environment_usage",
    "eval_codes", "evaluate_loaded", "evaluate_run", "ground_truth_factors", "held_out", "information_check",
    "probe_summary", "stage_environments", "torch_threads", "write_evaluation",
]  # fmt: skip

Log = Sequence[Mapping[str, Any]]
"""Records of ``log.jsonl`` (see :func:`vase_rl.runs.run_format.read_log`)."""
TEST_SEED = 20_000
"""Sampler seed of the held-out evaluation batches (distinct from the trainer's probe test sets)."""


@dataclass(frozen=True)
class EvalSettings:
    """How much held-out data the evaluation uses (kept small so a report takes seconds on CPU)."""

    n_samples: int = 2000
    """Held-out images per dataset (MIG uses all; DCI trains on the first half, tests on the second)."""
    info_batch: int = 500
    """Images in the information check (NLL with z vs z shuffled across this batch)."""
    mig_bins: int = 20
    """Histogram bins of MIG (disentanglement_lib default); bias ~ (bins-1)^2 / (2 n_samples) nats."""
    dci_rounds: int = 60
    """Boosting rounds of the DCI predictor (fewer than metrics.dci's 300 to stay fast)."""
    quality: bool = True
    """Offline probes per stage next to the references and readout transfer (:mod:`vase_rl.evaluation.quality`);
    needs the run's stage checkpoints (``RUN/stages``)."""
    quality_probe: OfflineProbeConfig = dataclasses.field(default_factory=OfflineProbeConfig)
    """Protocol of those offline probes (default: 10,000 train / 5,000 test images, 40 MLP epochs)."""
    device: str = "auto"
    """Device the checkpoint is loaded on ("auto": CUDA when available, else CPU)."""
    threads: int | None = 1
    """torch CPU threads while evaluating; None keeps torch's setting. The batches are small, and one thread
    avoids oversubscribing a shared CPU (a cpu-preset report took 9 s with 1 thread vs 24 s with 2 on a
    loaded 2-core machine)."""


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily run torch's CPU ops on ``n`` threads (None: unchanged); restores the previous count."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def held_out(run: LoadedRun, dataset: str, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``n`` test-split images uint8 (n, H, W, 1) of ``dataset`` with their factors (seeded, reproducible)."""
    seed = TEST_SEED + run.datasets.index(dataset)
    return make_sampler(dataset, run.config.model.image_size, "test", seed).sample(n)


def stage_environments(log: Log, sequence: tuple[str, ...]) -> dict[str, int | None]:
    """Environment the training log assigned most often to each dataset's stages (None: never logged)."""
    counts: dict[str, Counter[int]] = {name: Counter() for name in sequence}
    for rec in log:
        counts[sequence[rec["stage"]]][int(rec["env"])] += 1
    return {name: (c.most_common(1)[0][0] if c else None) for name, c in counts.items()}


def env_datasets(log: Log, sequence: tuple[str, ...]) -> dict[int, list[str]]:
    """Datasets whose logged steps each environment received, most frequent first (env -> names)."""
    counts: dict[int, Counter[str]] = {}
    for rec in log:
        counts.setdefault(int(rec["env"]), Counter())[sequence[rec["stage"]]] += 1
    return {env: [name for name, _ in c.most_common()] for env, c in sorted(counts.items())}


def allocations(log: Log) -> np.ndarray:
    """(T,) bool per log record: an environment was allocated since the previous record (``n_envs`` grew).

    ``new_env`` is only logged when the allocation falls on a logged step; ``n_envs`` never misses one.
    """
    n = np.array([r["n_envs"] for r in log], dtype=int)
    return np.diff(n, prepend=0) > 0


def ground_truth_factors(factors: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray, list[bool]]:
    """The non-constant ground-truth factors of a batch: names, values (n, K) float, discrete flags (K,).

    Candidates: ``label`` (discrete; skipped when unlabelled (-1) or when ``shape`` duplicates it),
    ``shape`` (discrete), ``scale``, ``x``, ``y`` (continuous). Static datasets keep only the label.
    """
    candidates: list[tuple[str, bool]] = []
    if "label" in factors and int(np.min(factors["label"])) >= 0 and "shape" not in factors:
        candidates.append(("label", True))
    candidates += [("shape", True), ("scale", False), ("x", False), ("y", False)]
    names, cols, discrete = [], [], []
    for name, is_discrete in candidates:
        if name in factors and np.unique(factors[name]).size > 1:
            names.append(name)
            cols.append(np.asarray(factors[name], dtype=np.float64))
            discrete.append(is_discrete)
    values = np.stack(cols, 1) if cols else np.zeros((0, 0))
    return names, values, discrete


def eval_codes(learner: ContinualLearner, mu: torch.Tensor, env: int) -> torch.Tensor:
    """Codes (B, N) to decode under ``env``: mu (B, N) on its active latents, prior mean 0 on masked ones."""
    if not learner.config.ablation.mask:
        return mu
    return mu * learner.applied_mask(env).to(mu.device).to(mu.dtype)


@torch.no_grad()
def information_check(learner: ContinualLearner, images: Any, env: int) -> dict[str, float]:
    """Does z carry information about x? Reconstruction NLL with z = mu(x) versus z shuffled across the batch.

    images: a batch (B, H, W, 1) uint8 or anything :meth:`ContinualLearner.preprocess` accepts, B >= 2.
    Both NLLs decode under environment ``env`` with the env's masked latents at the prior mean.
    The shuffle is the cyclic shift ``roll(z, 1)``, a derangement: every image gets another image's code.
    Returns nats per image: ``nll_z``, ``nll_shuffled``, ``information`` (= shuffled - z; ~0 when the
    latents carry nothing), ``kl`` (mean KL(q(z|x) || p(z)) over active latents, what the C target sees).
    """
    x = learner.preprocess(images)
    if x.shape[0] < 2:
        raise ValueError(f"the information check needs a batch of at least 2 images, got {x.shape[0]}")
    envs = torch.full((x.shape[0],), env, dtype=torch.long, device=x.device)
    mu, logvar, _ = learner.model.encoder(x, envs)  # read in env's view (ModelConfig.env_input_view)
    z = eval_codes(learner, mu, env)
    mc = learner.config.model

    def nll(codes: torch.Tensor) -> float:
        out = learner.model.decoder(codes, envs)
        return float(reconstruction_nll(out, x, mc.likelihood, mc.gaussian_std).mean())

    nll_z, nll_shuffled = nll(z), nll(torch.roll(z, 1, dims=0))
    kl_units = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
    if learner.config.ablation.mask:
        kl_units = kl_units * learner.applied_mask(env).to(mu.device).to(mu.dtype)
    return {
        "nll_z": nll_z,
        "nll_shuffled": nll_shuffled,
        "information": nll_shuffled - nll_z,
        "kl": float(kl_units.sum(1).mean()),
    }


def disentanglement(
    codes: np.ndarray, factors: dict[str, np.ndarray], es: EvalSettings
) -> dict[str, Any] | None:
    """MIG and DCI of codes (n, N) on the batch's :func:`ground_truth_factors`; None if it has none."""
    names, values, discrete = ground_truth_factors(factors)
    if not names:
        return None
    half = codes.shape[0] // 2
    d = dci(
        codes[:half],
        values[:half],
        codes[half:],
        values[half:],
        discrete_factors=discrete,
        n_rounds=es.dci_rounds,
    )
    return {
        "factors": names,
        "mig": mutual_information_gap(codes, values, discrete_factors=discrete, n_bins=es.mig_bins),
        "dci_disentanglement": d.disentanglement,
        "dci_completeness": d.completeness,
        "dci_informativeness": d.informativeness,
    }


def probe_summary(run: LoadedRun, dataset: str) -> dict[str, dict[str, float | None]]:
    """Table 1 entries of a dataset per probe metric: ``final``, ``best_during``, ``worst_after``, ``change``.

    A probe evaluated at step t saw a model trained t steps, so "during" the stage [start, end) of the
    dataset's first appearance means start < t <= end and "after" t > end (metrics.forgetting is given
    start+1, end+1). ``best_during`` is the max accuracy / min MSE; ``change`` is negative for forgotten
    accuracy and positive for forgotten MSE (A.6); None when the dataset is the last stage.
    """
    out: dict[str, dict[str, float | None]] = {}
    if run.probes is None:
        return out
    start, end = run.stage_span(dataset)
    for metric, higher in HIGHER_IS_BETTER.items():
        steps, values = run.probes.curve(dataset, metric)
        if steps.size == 0:
            continue
        f = forgetting(steps, values, start + 1, None if end is None else end + 1, higher)
        out[metric] = {
            "final": float(values[-1]),
            "best_during": f.best_during,
            "worst_after": f.worst_after,
            "change": f.change,
        }
    return out


def environment_usage(learner: ContinualLearner) -> list[dict[str, Any]]:
    """Per allocated environment s: active latents (the applied mask a^s, eq. 2), used latents (u^s), both, steps."""
    mem = learner.memory
    rows = []
    for s in range(mem.n_seen):
        active, used = learner.applied_mask(s).cpu(), mem.used[s].bool()
        both = active & used
        rows.append(
            {
                "env": s,
                "n_active": int(active.sum()),
                "n_used": int(used.sum()),
                "n_used_and_active": int(both.sum()),
                "latents": torch.nonzero(both).flatten().tolist(),
                "steps": int(mem.steps[s]),
                "recon_avg": float(mem.recon_avg[s]),
            }
        )
    return rows


def _average_forgetting(per_dataset: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Table 1 row: mean best-during and mean change over datasets, per probe metric."""
    out: dict[str, dict[str, float | None]] = {}
    for metric, higher in HIGHER_IS_BETTER.items():
        rows = [d["probes"][metric] for d in per_dataset.values() if metric in d["probes"]]
        if not rows:
            continue
        avg = average_forgetting(
            [ForgettingResult(r["best_during"], r["worst_after"], r["change"], higher) for r in rows]
        )
        out[metric] = {
            "mean_best_during": avg.mean_best_during,
            "mean_change": avg.mean_change,
            "n_datasets": avg.n_datasets,
        }
    return out


def _log_env_inference(run: LoadedRun) -> dict[str, Any] | None:
    """Accuracy of the logged env indices against the dataset of each logged step (up to relabelling)."""
    if not run.log:
        return None
    ids = {name: i for i, name in enumerate(run.datasets)}
    true = [ids[run.settings.sequence[r["stage"]]] for r in run.log]
    res = environment_inference_accuracy([int(r["env"]) for r in run.log], true)
    return {
        "accuracy": res.accuracy,
        "n_inferred": res.n_inferred,
        "n_true": res.n_true,
        "mapping": {str(k): run.datasets[v] for k, v in res.mapping.items()},
        "allocated_by_step": [int(r["step"]) for r, new in zip(run.log, allocations(run.log)) if new],
    }


def evaluate_loaded(run: LoadedRun, es: EvalSettings | None = None) -> dict[str, Any]:
    """:func:`evaluate_run` on an already loaded run (no file written)."""
    es = es or EvalSettings()
    learner = run.learner
    log_envs = stage_environments(run.log, run.settings.sequence)
    per_dataset: dict[str, dict[str, Any]] = {}
    for name in run.datasets:
        images, factors = held_out(run, name, es.n_samples)
        probs = learner.environment_probabilities(images)[: max(learner.memory.n_seen, 1)]
        inferred = int(probs.argmax())
        logged = log_envs[name]
        env = logged if logged is not None else inferred
        codes = learner.encode(images).cpu().numpy().astype(np.float64)
        per_dataset[name] = {
            "stage": run.settings.sequence.index(name),
            "log_env": log_envs[name],
            "inferred_env": inferred,
            "env_probability": float(probs[inferred]),
            "env_probs": [float(p) for p in probs],
            **information_check(learner, images[: es.info_batch], env),
            "disentanglement": disentanglement(codes, factors, es),
            "probes": probe_summary(run, name),
        }
    quality = None
    if es.quality and os.path.isdir(os.path.join(run.run_dir, STAGES_DIR)):
        quality = evaluate_quality(
            run.run_dir, QualitySettings(probe=es.quality_probe, device=str(learner.device))
        )
    return {
        "quality": quality,
        "n_samples": es.n_samples,
        "final_step": int(run.log[-1]["step"]) if run.log else 0,
        "datasets": per_dataset,
        "environments": environment_usage(learner),
        "env_inference": _log_env_inference(run),
        "forgetting": _average_forgetting(per_dataset),
    }


def evaluate_run(run_dir: str, settings: EvalSettings | None = None) -> dict[str, Any]:
    """Evaluate a finished (or checkpointed) run and write ``run_dir/evaluation.json``; returns the dict.

    See the module docstring for what is measured; all NLLs/KLs are nats per image.
    """
    es = settings or EvalSettings()
    with torch_threads(es.threads):
        result = evaluate_loaded(load_run(run_dir, device=es.device), es)
    write_evaluation(run_dir, result)
    return result


def write_evaluation(run_dir: str, result: dict[str, Any]) -> str:
    """Write an evaluation dict to ``run_dir/evaluation.json`` (temp file + os.replace); returns the path."""
    path = os.path.join(run_dir, "evaluation.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
    os.replace(path + ".tmp", path)
    return path
