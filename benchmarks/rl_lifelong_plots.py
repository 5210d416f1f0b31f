"""The figures of the life-long RL summary (``rl_lifelong_report.py``): the R matrix of every method
(:func:`plot_matrices`) and every look's return through the sequence (:func:`plot_curves`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from cl_metrics import normalise
from rl_common import looks, short


def plot_matrices(summary: dict[str, Any], by_method: dict[str, list[dict[str, Any]]], folder: Path) -> None:
    """``R_<method>.png``: the seed-mean R matrix, normalised when the references are there (else raw)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for m in by_method:
        s = summary[m]
        norm = s.get("R_normalised_mean") is not None
        r = np.array(s["R_normalised_mean"] if norm else s["R_raw_mean"], dtype=float)
        names = [short(e) for e in by_method[m][0]["stages"]]
        fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 1.0 * len(names) + 1.5))
        im = ax.imshow(r, cmap="viridis")
        for (i, j), v in np.ndenumerate(r):
            ax.text(j, i, "-" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", color="w")
        ax.set_xticks(range(len(names)), [f"{j}: {n}" for j, n in enumerate(names)], rotation=30, ha="right")
        ax.set_yticks(range(len(names)), [f"after {i}: {n}" for i, n in enumerate(names)])
        ax.set_title(f"{m}\n{'normalised' if norm else 'raw'} return, mean of {s['seeds']} seed(s)")
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(folder / f"R_{m}.png", dpi=110)
        plt.close(fig)


def plot_curves(
    by_method: dict[str, list[dict[str, Any]]],
    refs: list[dict[str, Any]],
    random: dict[str, float],
    path: Path,
) -> None:
    """One panel per method (at most 4 per row): each look's seed-mean return (normalised when its reference
    is there) at every evaluation through the sequence; dotted lines at the stage boundaries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(by_method))
    cols = min(n, 4)  # a grid of at most 4 columns: 7 methods in one row are unreadable
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax, (m, rs) in zip(axes.flat, by_method.items(), strict=False):
        evals = rs[0]["evaluations"]
        steps = [e["env_steps"] for e in evals]
        for env_id in looks(rs[0]["stages"]):
            y = np.array([[e["returns"][env_id] for e in r["evaluations"]] for r in rs]).mean(0)
            finals = [r["final"] for r in refs if r["method"] == m and r["look"] == env_id]
            if finals and env_id in random:
                y = normalise(y, random[env_id], np.mean(finals))
            ax.plot(steps, y, marker=".", label=short(env_id))
        for k in range(1, len(rs[0]["stages"])):
            ax.axvline(k * rs[0]["args"]["steps_per_look"], color="grey", linestyle=":")
        ax.set(title=m, xlabel="env steps", ylabel="return (normalised where referenced)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
