"""Dreaming's anchor (``DreamConfig.anchor``): does syncing the snapshot when the environment changes,
instead of every tau steps as the paper, keep the past environments' latents and probes in place?

With the paper's every-tau sync the snapshot that dreams the past environments (eq. 7) follows the model
into the new environment, so the old environments are anchored to a model already trained on the new one.
"on-switch" syncs it when the inferred environment changes; "on-switch+pick" adds the sign pick at allocation
(``vase_rl.core.config.NO_VIEW``, the pick without the input view: what it costs off the agent's loop);
"pick-held-grads" the same with the held decoder's optimizer moments left to decay
(``ModelConfig.young_decoder_hold="gradients"``: is the release after the hold what allocates extra
environments?); "pick-ramp" releases it over 250 steps
(``ModelConfig.young_decoder_release_steps``); "steady" syncs on a switch only
after a visit of 250 steps (``vase_rl.core.config.STEADY_ANCHOR``: what it changes off the agent's loop);
"inherit" starts a new environment from the old one's decoder code (does MNIST's new environment learn
its identity as well as the old one would: docs/findings.md section 4).
They are run with Table 1's protocol on the
demo sequence (moving Fashion -> MNIST -> moving MNIST, cpu preset, row SDA, 2,500 steps per dataset, A.6
probes trained at every step), on the evaluation seeds 0-2 (two fixed options: nothing is tuned). Per run:
the A.6 forgetting columns of Table 1, the offline MLP probes at each stage end, and the latent drift of
each past stage's held-out frames by the end of the sequence (``vase_rl.evaluation.quality.stage_drift``).

    python benchmarks/anchor.py --jobs 2      # ~20 min per run on one core, 2 in parallel
    python benchmarks/anchor.py --summarise   # anchor.md from the result JSONs
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cli_args
import common
import paper_common as pc
import paper_tables as pt

from vase_rl.core.config import NO_VIEW, STEADY_ANCHOR

EXPERIMENT = "anchor"
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "every-tau": {"dream": {"anchor": "every-tau"}},
    "on-switch": {"dream": {"anchor": "on-switch"}},
    "on-switch+pick": {"dream": {"anchor": "on-switch"}, "model": NO_VIEW},
    "pick-held-grads": {
        "dream": {"anchor": "on-switch"},
        "model": {**NO_VIEW, "young_decoder_hold": "gradients"},
    },
    "pick-ramp": {
        "dream": {"anchor": "on-switch"},
        "model": {**NO_VIEW, "young_decoder_release_steps": 250},
    },
    "steady": {"dream": STEADY_ANCHOR},
    "inherit": {"dream": {"anchor": "on-switch"}, "model": {"new_env_code": "inherit"}},
}
"""variant -> config overrides on top of the cpu preset's SDA row (``on-switch+pick``: the anchor and the
sign pick as measured here, without the input view (``vase_rl.core.config.NO_VIEW``); ``pick-held-grads``:
the same with the held decoder's gradients zeroed, ``ModelConfig.young_decoder_hold="gradients"``;
``pick-ramp``: the sign pick with the held decoder released over 250 steps,
``ModelConfig.young_decoder_release_steps``; ``steady``: ``vase_rl.core.config.STEADY_ANCHOR``;
``inherit``: a new environment starts from the old one's decoder code, ``ModelConfig.new_env_code="inherit"``)."""


@dataclass
class Args(pc.VariantArgs):
    """The demo sequence, SDA, both anchors, evaluation seeds 0-2, the cpu preset's full budget."""

    seeds: tuple[int, ...] = (0, 1, 2)
    """Evaluation seeds (the two options are fixed, so no validation seed is needed)."""
    variants: tuple[str, ...] = tuple(VARIANTS)
    """Variants to run, of every-tau, on-switch, on-switch+pick, pick-held-grads, pick-ramp, steady and inherit."""


def run(args: Args) -> None:
    """Train and evaluate every (anchor, seed) without a result JSON."""
    pc.run_all(pc.variant_specs(EXPERIMENT, args, VARIANTS), args.runs_dir, args.jobs)


def drift_of(record: dict[str, Any], stage: int) -> float | None:
    """Mean drift (sd units) of stage ``stage``'s frames by the end of the sequence (VASE)."""
    quality = record["evaluation"].get("quality") or {}
    last = len(record["spec"]["sequence"]) - 1
    rows = [
        d["mean"]
        for d in quality.get("drift", [])
        if d["representation"] == "vase" and d["stage"] == stage and d["after_stage"] == last
    ]
    return rows[0] if rows else None


def summarise(args: Args) -> None:
    """``anchor.md``: Table 1's forgetting columns, drift and stage-end probes per anchor."""
    out = pc.RESULTS / EXPERIMENT
    out.mkdir(parents=True, exist_ok=True)
    done = {v: pc.load_results(f"{EXPERIMENT}/{v}") for v in VARIANTS}
    columns = pt.forgetting_columns()
    header = ["anchor", "seeds", *[c.title for c in columns]]
    header += ["drift stage 0 (sd)", "drift stage 1 (sd)", "environments"]
    lines = []
    for variant, records in done.items():
        if not records:
            continue
        cells = [pt.interval([c.value(r) for r in records], c.scale, 1) for c in columns]
        drift = [pt.interval([drift_of(r, k) for r in records]) for k in (0, 1)]
        envs = sorted({r["n_envs"] for r in records})
        lines.append([variant, len(records), *cells, *drift, ",".join(map(str, envs))])
    per_seed = [
        [
            v,
            r["spec"]["seed"],
            *[pt.fmt(pt.stage_mlp(r, k, "class")) for k in range(3)],
            pt.fmt(drift_of(r, 0), digits=3),
            pt.fmt(drift_of(r, 1), digits=3),
        ]
        for v, records in done.items()
        for r in records
    ]
    all_results = [r for records in done.values() for r in records]
    text = [
        "# Dreaming's anchor: every tau steps (the paper) or when the environment changes",
        "",
        pt.provenance(all_results),
        "",
        (
            "Mean over seeds with the 90% bootstrap interval of the mean. Forgetting columns as Table 1 "
            "(A.6 probes trained alongside; mean over the sequence's datasets; change = after the stage minus "
            "the best during it). Drift: root-mean-square change of each latent of the stage's held-out "
            "frames between the end of the stage and the end of the sequence, in units of its sd at the end "
            "of the stage, mean over latents."
        ),
        "",
        common.markdown_table(header, lines),
        "",
        "Per seed: offline MLP probe of the object class at the end of each stage (%), and the drift.",
        "",
        common.markdown_table(
            ["anchor", "seed", "class stage 0", "class stage 1", "class stage 2", "drift 0", "drift 1"],
            per_seed,
        ),
        "",
    ]
    pt.write_summary(out / "anchor.md", text)


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    pc.run_then_summarise(args, run, summarise)


if __name__ == "__main__":
    main()
