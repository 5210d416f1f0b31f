"""Representation quality of a run: offline probes per stage next to trivial references, and
cross-domain readout transfer (the shared embeddings of the paper's title, Fig. 4B).

Per stage k of the sequence (dataset d_k), the learner saved at the end of that stage
(``RUN/stages/stage<k>.pt``) encodes ``train_size`` train-split and ``test_size`` test-split images of
d_k; :mod:`vase_rl.probing.offline_probe` fits a linear and a 2x256 MLP probe per ground-truth factor on the
train codes and scores the test codes. The same is done, on the same images, for the references:

- ``pixels``: the raw images;
- ``untrained``: the run's model as initialised (same config, same seed), never trained;
- ``entangled``: the entangled beta=1 baseline trained on the same sequence with the same budget
  (``RUN/reference-entangled``, written by ``vase-rl train --reference-entangled``), at the end of the
  same stage -- present only when that run exists.

Readout transfer (final learner): a linear probe fit on dataset A's codes is scored on dataset B's
codes -- position between moving datasets, class between the Fashion family -- for VASE and the
entangled reference. High transfer means B's factor is written in the same latents as A's.

Drift (:func:`stage_drift`): the held-out frames of every stage's dataset encoded by the learner at the
end of that stage and at the end of every later stage; :func:`vase_rl.probing.drift.latent_drift` says
how far each latent moved, in units of its spread at the end of the stage (what a policy trained on the
stage's latents with frozen normalisation sees), for VASE and the entangled reference.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vase_rl.core.config import VASEConfig
from vase_rl.core.learner import ContinualLearner
from vase_rl.probing.drift import latent_drift
from vase_rl.probing.offline_probe import (
    OfflineProbeConfig,
    encode_codes,
    factor_targets,
    fit_probe,
    pixel_codes,
    probe_factors,
    shared_latents,
)
from vase_rl.runs.run_format import make_sampler, read_run_config

STAGES_DIR = "stages"
REFERENCE_DIR = "reference-entangled"
TRAIN_SEED, TEST_SEED = 30_000, 40_000
FASHION_FAMILY = ("fashion", "inverse-fashion")

__all__ = [
    "REFERENCE_DIR",
    "STAGES_DIR",
    "QualitySettings",
    "drift_markdown",
    "evaluate_quality",
    "quality_markdown",
    "readout_transfer_table",
    "stage_checkpoint",
    "stage_drift",
    "verdicts",
]


@dataclass(frozen=True)
class QualitySettings:
    """What :func:`evaluate_quality` measures."""

    probe: OfflineProbeConfig = field(default_factory=OfflineProbeConfig)
    references: tuple[str, ...] = ("pixels", "untrained", "entangled")
    """Reference rows; "entangled" is skipped when the run has no reference run."""
    device: str = "cpu"


def stage_checkpoint(run_dir: str, stage: int) -> str:
    """Path of the learner saved at the end of ``stage`` (0-based) of the run's sequence."""
    return os.path.join(run_dir, STAGES_DIR, f"stage{stage}.pt")


def _split(dataset: str, image_size: int, split: str, n: int, stage: int) -> tuple[np.ndarray, dict]:
    seed = (TRAIN_SEED if split == "train" else TEST_SEED) + stage
    return make_sampler(dataset, image_size, split, seed).sample(n)


def _encoders(
    run_dir: str, config: VASEConfig, stage: int, qs: QualitySettings
) -> dict[str, Callable | None]:
    """Representation name -> encode function (None = raw pixels) for one stage."""
    out: dict[str, Callable | None] = {}
    path = stage_checkpoint(run_dir, stage)
    if os.path.exists(path):
        out["vase"] = ContinualLearner.load(path, device=qs.device).encode
    ref = stage_checkpoint(os.path.join(run_dir, REFERENCE_DIR), stage)
    if "entangled" in qs.references and os.path.exists(ref):
        out["entangled"] = ContinualLearner.load(ref, device=qs.device).encode
    if "untrained" in qs.references:
        out["untrained"] = ContinualLearner(config, device=qs.device).encode
    if "pixels" in qs.references:
        out["pixels"] = None
    return out


def _codes(encode: Callable | None, images: np.ndarray) -> np.ndarray:
    return pixel_codes(images) if encode is None else encode_codes(encode, images)


def stage_quality(run_dir: str, qs: QualitySettings | None = None) -> list[dict[str, Any]]:
    """Offline probe scores per stage: ``[{stage, dataset, step, scores: {rep: {factor: {probe: s}}}}]``."""
    qs = qs or QualitySettings()
    config, settings = read_run_config(run_dir)
    rows = []
    for stage, dataset in enumerate(settings.sequence):
        size = config.model.image_size
        tr_x, tr_f = _split(dataset, size, "train", qs.probe.train_size, stage)
        te_x, te_f = _split(dataset, size, "test", qs.probe.test_size, stage)
        scores = {
            name: probe_factors(_codes(enc, tr_x), tr_f, _codes(enc, te_x), te_f, dataset, config=qs.probe)
            for name, enc in _encoders(run_dir, config, stage, qs).items()
        }
        rows.append(
            {
                "stage": stage,
                "dataset": dataset,
                "step": (stage + 1) * settings.steps_per_env,
                "scores": scores,
            }
        )
    return rows


def _transfer_factors(a: str, b: str) -> list[str]:
    """The factors a readout between datasets ``a`` and ``b`` tests: position between moving datasets,
    class within the Fashion family (Fashion and inverse Fashion, static or moving)."""
    out = []
    if a.startswith("moving-") and b.startswith("moving-"):
        out.append("position")
    src_a, src_b = a.removeprefix("moving-"), b.removeprefix("moving-")
    if src_a in FASHION_FAMILY and src_b in FASHION_FAMILY and src_a != src_b:
        out.append("class")
    return out


def readout_transfer_table(
    encoders: dict[str, Callable], datasets: list[str], image_size: int, qs: QualitySettings | None = None
) -> list[dict[str, Any]]:
    """Linear readout transfer A -> B (and A -> A) for every ordered pair of ``datasets`` sharing a factor.

    encoders: representation name -> encode function (e.g. the final VASE learner and the entangled
    reference). Returns rows ``{factor, a, b, representation, in_domain, transfer}``.
    """
    qs = qs or QualitySettings()
    data = {
        d: (
            _split(d, image_size, "train", qs.probe.train_size, 100 + i),
            _split(d, image_size, "test", qs.probe.test_size, 100 + i),
        )
        for i, d in enumerate(datasets)
    }
    rows = []
    for name, enc in encoders.items():
        codes = {d: (encode_codes(enc, tr[0]), encode_codes(enc, te[0])) for d, (tr, te) in data.items()}
        for a, b in itertools.permutations(datasets, 2):
            for factor in _transfer_factors(a, b):
                kind, tgt_a = factor_targets(data[a][0][1], a)[factor]
                _, tgt_a_test = factor_targets(data[a][1][1], a)[factor]
                _, tgt_b = factor_targets(data[b][1][1], b)[factor]
                train = (codes[a][0], tgt_a)
                rows.append({
                    "factor": factor, "a": a, "b": b, "representation": name,
                    "in_domain": fit_probe(*train, codes[a][1], tgt_a_test, kind, "linear", qs.probe),
                    "transfer": fit_probe(*train, codes[b][1], tgt_b, kind, "linear", qs.probe),
                    "latents": (shared_latents(codes[a][1], tgt_a_test, codes[b][1], tgt_b)
                                if kind == "continuous" else []),
                })  # fmt: skip
    return rows


def verdicts(stages: list[dict[str, Any]], probe: str = "mlp") -> list[str]:
    """One line per stage and factor comparing VASE with its references (the report's first lines)."""
    lines = []
    for row in stages:
        scores = row["scores"]
        if "vase" not in scores:
            continue
        for factor, by_probe in scores["vase"].items():
            v = by_probe[probe]
            unit = "%" if factor in ("class", "shape") else " R^2"
            parts = []
            for ref in ("untrained", "entangled", "pixels"):
                if ref in scores and factor in scores[ref]:
                    r = scores[ref][factor][probe]
                    word = "above" if v > r else ("level with" if v == r else "BELOW")
                    parts.append(f"{word} {ref} ({r:.3g}{unit})")
            lines.append(
                f"- stage {row['stage']} {row['dataset']}, {factor}: VASE {v:.3g}{unit} -- "
                + ", ".join(parts)
            )
    return lines


def stage_drift(run_dir: str, n: int = 1000, device: str = "cpu") -> list[dict[str, Any]]:
    """Latent drift of every stage's dataset after its stage: ``[{representation, dataset, stage,
    after_stage, mean, max, worst, per_latent}]`` for each stage k but the last and each later stage j,
    on ``n`` held-out test-split frames of stage k's dataset (VASE, and the entangled reference when the
    run has one)."""
    config, settings = read_run_config(run_dir)
    rows: list[dict[str, Any]] = []
    for rep, folder in (("vase", run_dir), ("entangled", os.path.join(run_dir, REFERENCE_DIR))):
        paths = [stage_checkpoint(folder, k) for k in range(len(settings.sequence))]
        encoders = {
            k: ContinualLearner.load(p, device=device).encode
            for k, p in enumerate(paths)
            if os.path.exists(p)
        }
        for k, dataset in enumerate(settings.sequence[:-1]):
            if k not in encoders:
                continue
            images, _ = _split(dataset, config.model.image_size, "test", n, k)
            before = encode_codes(encoders[k], images)
            for j in range(k + 1, len(settings.sequence)):
                if j in encoders:
                    drift = latent_drift(before, encode_codes(encoders[j], images))
                    rows.append(
                        {
                            "representation": rep,
                            "dataset": dataset,
                            "stage": k,
                            "after_stage": j,
                            **drift.to_dict(),
                        }
                    )
    return rows


def drift_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The drift table: one line per (representation, past stage, later stage)."""
    if not rows:
        return []
    out = [
        "| representation | dataset (stage) | after stage | mean drift (sd) | max drift (sd), latent |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['representation']} | `{r['dataset']}` ({r['stage']}) | {r['after_stage']} | "
            f"{r['mean']:.3f} | {r['max']:.3f}, z{r['worst']} |"
        )
    return out


def evaluate_quality(run_dir: str, qs: QualitySettings | None = None) -> dict[str, Any]:
    """Stage probes, verdicts and readout transfer of a run (the dict ``vase-rl evaluate`` stores)."""
    qs = qs or QualitySettings()
    config, settings = read_run_config(run_dir)
    stages = stage_quality(run_dir, qs)
    final = os.path.join(run_dir, "checkpoint.pt")
    encoders: dict[str, Callable] = {}
    if os.path.exists(final):
        encoders["vase"] = ContinualLearner.load(final, device=qs.device).encode
    ref_final = os.path.join(run_dir, REFERENCE_DIR, "checkpoint.pt")
    if "entangled" in qs.references and os.path.exists(ref_final):
        encoders["entangled"] = ContinualLearner.load(ref_final, device=qs.device).encode
    datasets = list(dict.fromkeys(settings.sequence))
    transfer = readout_transfer_table(encoders, datasets, config.model.image_size, qs) if encoders else []
    return {
        "probe": "offline (frozen mu(x)); linear + 2x256 MLP",
        "train_size": qs.probe.train_size,
        "test_size": qs.probe.test_size,
        "stages": stages,
        "verdicts": verdicts(stages),
        "transfer": transfer,
        "drift": stage_drift(run_dir, device=qs.device),
    }


def _fmt_score(v: float | None, factor: str) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if factor in ("class", "shape") else f"{v:.3f}"


def _latents_cell(latents: list[dict[str, Any]]) -> str:
    return ", ".join(f"z{r['latent']}: {r['corr_a']:+.2f} / {r['corr_b']:+.2f}" for r in latents) or "-"


def quality_markdown(q: dict[str, Any]) -> list[str]:
    """The report's leading section: verdicts, a table per stage, the readout-transfer table."""
    out = [
        (
            f"Offline probes on frozen mu(x) ({q['train_size']} train-split images to fit, {q['test_size']} "
            "held-out test-split images to score), each fit the same way on every representation: VASE at "
            "the end of the dataset's stage, the same model untrained (same seed), the entangled beta=1 "
            "baseline trained on the same sequence and budget (when trained), raw pixels. Class: accuracy "
            "(%); position / scale: R^2."
        ),
        "",
        "**Verdicts (MLP probe)**",
        "",
        *q["verdicts"],
        "",
    ]
    for row in q["stages"]:
        reps = list(row["scores"])
        factors = list(dict.fromkeys(f for r in reps for f in row["scores"][r]))
        header = ["representation"] + [f"{f} {p}" for f in factors for p in ("linear", "mlp")]
        out += [
            f"Stage {row['stage']} -- `{row['dataset']}` (step {row['step']}):",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        for r in reps:
            cells = [
                _fmt_score(row["scores"][r].get(f, {}).get(p), f) for f in factors for p in ("linear", "mlp")
            ]
            out.append(f"| {r} | " + " | ".join(cells) + " |")
        out.append("")
    if q["transfer"]:
        out += [
            (
                "Readout transfer (final learner): a linear probe fit on A's codes, scored on B's held-out "
                "codes; *in-domain* = the same probe scored on A's held-out codes."
            ),
            "",
            "| factor | A | B | representation | in-domain A->A | transfer A->B | latent: corr in A / in B |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in q["transfer"]:
            out.append(
                f"| {t['factor']} | {t['a']} | {t['b']} | {t['representation']} | "
                f"{_fmt_score(t['in_domain'], t['factor'])} | {_fmt_score(t['transfer'], t['factor'])} | "
                f"{_latents_cell(t.get('latents', []))} |"
            )
        out += [
            "",
            "The last column: for each coordinate of a continuous factor, the latent most correlated "
            "with it on A and that latent's correlation on A / on B (a sign flip = the same latent, "
            "mirrored; ~0 = B wrote the factor elsewhere).",
        ]
        out.append("")
    if q.get("drift"):
        out += [
            (
                "Drift of past stages' latents: each stage's held-out frames encoded at the end of the stage "
                "and at the end of every later stage; root-mean-square change per latent in units of its sd "
                "over those frames at the end of the stage (what a policy trained then, with frozen "
                "normalisation, sees move)."
            ),
            "",
            *drift_markdown(q["drift"]),
            "",
        ]
    return out
