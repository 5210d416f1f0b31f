"""The summaries of the sprite-canvas RL benchmarks ``rl_transfer.py`` and ``rl_identity.py`` (and the cost
line of ``rl_lifelong_report.py``): the runs of a results folder (:func:`load`), the table's cells
(:func:`cell`, :func:`mean_of`), the learning curves (:func:`plot_curves`) and the cost line
(:func:`cost_line`). The runs themselves are ``rl_common.py``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common
import numpy as np
from rl_methods import ALL_METHODS


def load(args: Any) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], dict[str, float]]:
    """The runs in ``args.out_dir``: all records, the records per method, the random policy's returns."""
    records = common.load_records(args.out_dir)
    rand = common.load_json(Path(args.out_dir) / "random.json", {})
    return records, common.by_method(records, ALL_METHODS), rand


def cell(values: list[Any], percent: bool = False) -> str:
    """mean ± std of the non-None values ('-' when none)."""
    v = np.array([x for x in values if x is not None], dtype=float) * (100.0 if percent else 1.0)
    if not len(v):
        return "-"
    return f"{v.mean():.0f} ± {v.std():.0f} %" if percent else f"{v.mean():.2f} ± {v.std():.2f}"


def mean_of(rs: list[dict[str, Any]], key: str) -> float | None:
    """Mean of ``key`` over the records that have it (None when none has)."""
    v = [r[key] for r in rs if r.get(key) is not None]
    return float(np.mean(v)) if v else None


def plot_curves(
    by_method: dict[str, list[dict[str, Any]]],
    panels: list[tuple[str, str]],
    path: Path,
    ylabel: str = "mean training episode return (last 100)",
) -> None:
    """One panel per (record key, title): mean ± std over seeds of each method's curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for m, rs in by_method.items():
            curves = [np.array(r[key]) for r in rs if r.get(key)]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            steps, ys = curves[0][:n, 0], np.stack([c[:n, 1] for c in curves])
            ax.plot(steps, ys.mean(0), label=m)
            ax.fill_between(steps, ys.mean(0) - ys.std(0), ys.mean(0) + ys.std(0), alpha=0.2)
        ax.set(title=title, xlabel="env steps", ylabel=ylabel)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cost_line(records: list[dict[str, Any]]) -> str:
    """Markdown sentence: hardware, load and the runs' total CPU time."""
    hw = records[0]["hardware"] if records else common.hardware()
    total = sum(r.get("cpu_s", r.get("wall_s", 0.0)) for r in records)
    return (
        f"Hardware: {hw['cpu']}, {hw['cores']} cores shared with other jobs (1-min load average "
        f"{hw['load_avg_1m']:.1f} at the first run's start), one torch thread per run; total CPU time "
        f"{total / 60:.1f} min for {len(records)} runs."
    )
