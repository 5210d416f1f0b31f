"""Why does dreaming without environment inference (Table 1 row D) learn less than "-" at CPU scale?

Investigation of a Table 1 disagreement (``ablation_table1.py``): in the paper row D matches "-"
(object-ID max 88.6 vs 88.6 %), here D learns clearly less (max and position MSE) at 800 steps per
dataset. Row D dreams of the single environment from a snapshot synced every tau steps, from step 1
on, so its proximity terms (eq. 7-9: Wasserstein encoder term x alpha, decoder KL term x beta) pull a
model that is still learning its first dataset back towards its state <= tau steps ago.

One run per variant on a *validation* seed (100, not one of Table 1's evaluation seeds 0-2), same
sequence, preset and step count as Table 1: "-" (reference), D as in the table, D with beta = 0
(decoder term off), D with alpha = 0 (encoder term off), D with tau = 8 (snapshot nearly current).
Each variant is its own experiment folder ``benchmarks/results/paper/dreaming_check/<variant>/runs/``;
``dreaming_check.md`` tabulates Table 1's columns.

    python benchmarks/dreaming_check.py --jobs 1       # ~2-3 min per run on one core
    python benchmarks/dreaming_check.py --summarise
"""

from __future__ import annotations

from dataclasses import dataclass

import cli_args
import common
import paper_common as pc
import paper_tables as pt

EXPERIMENT = "dreaming_check"
VARIANTS: dict[str, tuple[str, dict[str, dict[str, float]]]] = {
    "none": ("-", {}),
    "D": ("D", {}),
    "D_beta0": ("D", {"dream": {"beta": 0.0}}),
    "D_alpha0": ("D", {"dream": {"alpha": 0.0}}),
    "D_tau8": ("D", {"dream": {"tau": 8}}),
}
"""variant -> (ablation row, config overrides on top of Table 1's scaled schedule)."""


@dataclass
class Args(pc.ExperimentArgs):
    """Table 1's sequence at 800 steps per dataset, every variant, on a validation seed."""

    steps_per_env: int = 800
    """Training steps per dataset."""
    seeds: tuple[int, ...] = (100,)
    """Seeds to run (a validation seed, not one of Table 1's evaluation seeds 0-2)."""
    variants: tuple[str, ...] = tuple(VARIANTS)
    """Variants to run, of none D D_beta0 D_alpha0 D_tau8."""

    def __post_init__(self) -> None:
        super().__post_init__()
        pc.check_choices("variants", self.variants, tuple(VARIANTS))


def run(args: Args) -> None:
    """Train and evaluate every (variant, seed) without a result JSON (``rows``/``modes`` do not apply)."""
    specs = [
        pc.RunSpec(
            f"{EXPERIMENT}/{variant}",
            row,
            "dis",
            seed,
            pc.TABLE1_SEQUENCE,
            args.steps_per_env,
            args.preset,
            pc.freeze_overrides(overrides),
            args.probe_eval_every,
        )
        for seed in args.seeds
        for variant, (row, overrides) in VARIANTS.items()
        if variant in args.variants
    ]
    pc.run_all(specs, args.runs_dir, args.jobs)


def summarise(args: Args) -> None:
    """``dreaming_check.md`` from the result JSONs."""
    out = pc.RESULTS / EXPERIMENT
    done = [(v, r) for v in VARIANTS for r in pc.load_results(f"{EXPERIMENT}/{v}")]
    columns = pt.forgetting_columns()
    lines = [[v, r["spec"]["seed"]] + [pt.fmt(c.value(r), c.scale) for c in columns] for v, r in done]
    text = [
        "# Dreaming without environment inference at CPU scale (Table 1 row D)",
        "",
        pt.provenance([r for _, r in done]),
        "",
        (
            "Validation seed (not a Table 1 evaluation seed); columns as Table 1 (mean over the sequence's "
            "datasets)."
        ),
        "",
        common.markdown_table(["variant", "seed"] + [c.title for c in columns], lines),
        "",
    ]
    pt.write_summary(out / "dreaming_check.md", text)


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    pc.run_then_summarise(args, run, summarise)


if __name__ == "__main__":
    main()
