"""Fig. 2 of Achille et al. (2018) side by side: VASE (SDA) and CCI-VAE ("-") after the same sequence and seed.

The two models are Table 1's runs (``ablation_table1.py``: moving Fashion -> MNIST -> moving MNIST, cpu
preset, 2,500 steps per dataset, disentangled objective) of the same seed. For each seed one figure, one
column per model, three rows a reader compares across:

1. latent traversals seeded from one held-out image of each dataset, decoded under the environment the
   training log assigned to it (row colours: used / active but unused / masked in that environment);
2. which latents each environment uses at the end of training (the latent x environment matrix);
3. the A.6 probe curves through training (object identity and position of every dataset).

The column titles carry the run's Table 1 numbers (object-ID max during a dataset's stage and change
after it, mean over datasets; environments allocated). A run whose folder (checkpoint) is missing under
``--runs-dir`` is trained first (``paper_common.run_one``: the same spec as Table 1, so its result JSON is
Table 1's). Writes ``benchmarks/results/paper/fig2/fig2_seed<S>.png`` and ``fig2.md``.

    VASE_DATA_DIR=/work/shared/data python benchmarks/fig2_side_by_side.py --seeds 0
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cli_args
import common
import paper_common as pc
import paper_tables as pt

OUT = pc.RESULTS / "fig2"
ROWS = ("SDA", "-")
LABELS = {"SDA": "VASE (SDA)", "-": 'CCI-VAE ("-")'}
PANELS = (
    ("traversals", "latent traversals"),
    ("usage", "latents used per environment"),
    ("probes", "probes"),
)
"""Report figures (``vase_rl.evaluation.report.FIGURES`` keys) composed, top to bottom."""


@dataclass
class Args(pc.ExperimentArgs):
    """Table 1's VASE and "-" runs (disentangled) of seed 0, 2,500 steps per dataset."""

    seeds: tuple[int, ...] = (0,)
    rows: tuple[str, ...] = ROWS
    modes: tuple[str, ...] = ("dis",)
    out_dir: str = str(OUT)
    """Folder of the figures and fig2.md."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if sorted(self.rows) != sorted(ROWS) or self.modes != ("dis",):
            raise ValueError(
                f"fig2 compares rows {ROWS} in mode dis, got rows {self.rows} modes {self.modes}"
            )


def ensure_runs(args: Args) -> list[pc.RunSpec]:
    """Table 1's specs of ``args``; any whose run folder has no finished checkpoint is trained (resumed)."""
    specs = pc.make_specs("table1", args, pc.TABLE1_SEQUENCE)
    for spec in specs:
        folder = pc.run_dir(spec, args.runs_dir)
        if not os.path.exists(os.path.join(folder, "done")):
            print(f"training {spec.key} into {folder} (its checkpoint is needed for the figure)", flush=True)
            pc.run_one(spec, args.runs_dir)
    return specs


def run_figures(run_dir: str, folder: str) -> dict[str, str]:
    """The report figures of one finished run (``make_figures``), drawn into ``folder``."""
    from vase_rl.evaluation.evaluate import torch_threads
    from vase_rl.evaluation.report import make_figures
    from vase_rl.runs.loaded_run import load_run

    with torch_threads(1):
        return make_figures(load_run(run_dir), folder)


def title(spec: pc.RunSpec, record: dict[str, Any] | None) -> str:
    """Column title: the model and its Table 1 numbers (when its result JSON exists)."""
    if record is None:
        return LABELS[spec.row]
    acc_max = pt.forgetting_value(record, "accuracy", "mean_best_during")
    change = pt.forgetting_value(record, "accuracy", "mean_change")
    return (
        f"{LABELS[spec.row]}: object-ID max {pt.fmt(acc_max)} %, change after {pt.fmt(change)} points, "
        f"{record['n_envs']} environment(s)"
    )


def compose(columns: list[tuple[str, dict[str, str]]], path: Path, suptitle: str, dpi: int = 80) -> None:
    """One PNG: a column per model, a row per :data:`PANELS` entry, each cell a report figure shown at its
    own size (``plots.DPI`` inches), so that equal things have equal sizes across the columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vase_rl.evaluation.plots import DPI

    images = [[plt.imread(figs[key]) for key, _ in PANELS] for _, figs in columns]
    width = max(im.shape[1] for col in images for im in col) / DPI
    heights = [max(col[r].shape[0] for col in images) / DPI + 0.4 for r in range(len(PANELS))]
    fig = plt.figure(figsize=(width * len(columns), sum(heights) + 1.0), layout="constrained")
    axes = fig.subplots(len(PANELS), len(columns), gridspec_kw={"height_ratios": heights}, squeeze=False)
    for c, (name, _) in enumerate(columns):
        for r, (_, label) in enumerate(PANELS):
            ax = axes[r, c]
            ax.imshow(images[c][r])
            ax.set_axis_off()
            ax.set_title(f"{name}\n{label}" if r == 0 else label, fontsize=14 if r == 0 else 11)
    fig.suptitle(suptitle, fontsize=16)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def run(args: Args) -> None:
    """Train missing runs, then one side-by-side figure per seed."""
    specs = ensure_runs(args)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        pair = sorted((s for s in specs if s.seed == seed), key=lambda s: ROWS.index(s.row))
        columns = []
        with tempfile.TemporaryDirectory() as tmp:
            for spec in pair:
                path = pc.result_path(spec)
                record = common.load_json(path) if path.exists() else None
                figs = run_figures(pc.run_dir(spec, args.runs_dir), os.path.join(tmp, spec.key))
                columns.append((title(spec, record), figs))
            compose(
                columns,
                out / f"fig2_seed{seed}.png",
                f"Fig. 2 side by side: moving Fashion -> MNIST -> moving MNIST, "
                f"{pair[0].steps_per_env} steps per dataset, seed {seed}",
            )
        pt.shrink_pngs(out)


def summarise(args: Args) -> None:
    """``fig2.md``: what the figures show and where they come from."""
    out = Path(args.out_dir)
    pngs = sorted(out.glob("fig2_seed*.png"))
    if not pngs:
        raise SystemExit(f"no figures in {out}; run without --summarise first")
    lines = [
        '# Fig. 2 side by side: VASE (SDA) and CCI-VAE ("-")',
        "",
        "Produced by `python benchmarks/fig2_side_by_side.py` from Table 1's disentangled runs of the same seed "
        f"(moving Fashion -> MNIST -> moving MNIST, cpu preset, {args.steps_per_env} steps per dataset; "
        '[table](../table1/table1.md)). Left: VASE; right: the "-" row (VASE\'s objective with '
        "environment inference, dreaming and masks off). Top: latent traversals seeded from a held-out image "
        "of each dataset, decoded under the environment the log assigned to it (green: used, orange: active "
        "but unused, red: masked there); middle: the latents each environment uses; bottom: the A.6 probes "
        "through training. Column titles: the run's Table 1 numbers.",
        "",
        *[f"![seed {p.stem.removeprefix('fig2_seed')}]({p.name})" for p in pngs],
        "",
    ]
    (out / "fig2.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    pc.run_then_summarise(args, run, summarise)


if __name__ == "__main__":
    main()
