"""Summaries of the paper-reproduction benchmarks (the runs of ``paper_common.py``): the markdown summary of
an experiment (:func:`summary_start`, :func:`write_summary`), mean +- std tables with the paper's numbers
side by side (:class:`Column`, :func:`summarise_table`; Table 1's forgetting columns), the provenance line of
a set of runs, the probe-curve figures and the forgetting-per-row figure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
import numpy as np
from paper_common import ALL_ROWS, RESULTS, load_results


def summary_start(experiment: str, title: str) -> tuple[list[dict[str, Any]], Path, list[str]]:
    """An experiment's results, its folder (created) and the first lines of its markdown summary (the
    title and :func:`provenance`)."""
    results = load_results(experiment)
    out = RESULTS / experiment
    out.mkdir(parents=True, exist_ok=True)
    return results, out, [title, "", provenance(results), ""]


def write_summary(path: Path, lines: Sequence[str]) -> None:
    """Write the markdown summary ``lines`` to ``path`` and print it."""
    common.write_text(path, "\n".join(lines))
    print(path.read_text())


def write_table_summary(
    experiment: str, results: Sequence[dict[str, Any]], lines: Sequence[str], title: str
) -> None:
    """An ablation table's summary: ``lines``, then the probe curves ``<experiment>_probes.png`` (drawn by
    :func:`plot_probe_means` with ``title``) and the forgetting per row ``<experiment>_forgetting.png``
    (:func:`plot_forgetting`), written to ``<experiment>.md`` and printed."""
    out, png, bars = RESULTS / experiment, f"{experiment}_probes.png", f"{experiment}_forgetting.png"
    figures = [f"![probe curves]({png})", ""]
    if results:
        plot_probe_means(results, out / png, title)
        plot_forgetting(results, out / bars, title)
        figures += [f"![forgetting per row]({bars})", ""]
    write_summary(out / f"{experiment}.md", [*lines, *figures])


def mean_std(values: Iterable[float | None], scale: float = 1.0, digits: int = 1) -> str:
    """ "m (+-s)" of the non-None values times ``scale``; "n/a" when there are none."""
    v = np.array([x for x in values if x is not None], dtype=float) * scale
    if v.size == 0:
        return "n/a"
    return f"{v.mean():.{digits}f} (±{v.std(ddof=1) if v.size > 1 else 0.0:.{digits}f})"


def fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    """One number times ``scale`` with ``digits`` decimals; "-" for None."""
    return "-" if value is None else f"{value * scale:.{digits}f}"


def group(results: Sequence[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Results keyed by (row, mode), rows in the paper's order."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in sorted(results, key=lambda r: (ALL_ROWS.index(r["spec"]["row"]), r["spec"]["seed"])):
        out.setdefault((r["spec"]["row"], r["spec"]["mode"]), []).append(r)
    return out


def forgetting_value(r: Mapping[str, Any], metric: str, key: str) -> float | None:
    """Table-1 average over datasets: ``key`` in mean_best_during / mean_change of probe ``metric``."""
    return r["evaluation"]["forgetting"].get(metric, {}).get(key)


@dataclass
class Column:
    """One table column: a title and how to get a value from a run record (None = not applicable)."""

    title: str
    value: Callable[[Mapping[str, Any]], float | None]
    scale: float = 1.0
    digits: int = 1
    paper: Mapping[tuple[str, str], str] = field(default_factory=dict)
    """(row, mode) -> the paper's entry, shown as "ours / paper"."""


def forgetting_columns(paper: Sequence[Mapping[tuple[str, str], str]] = ({}, {}, {}, {})) -> list[Column]:
    """Table 1's four forgetting columns (A.6: object-ID accuracy max and change, position MSE min and change,
    averaged over datasets); ``paper``: the paper's entries of each, (row, mode) -> text."""
    specs = (
        ("object-ID max (%)", "accuracy", "mean_best_during", 1.0),
        ("object-ID change (%)", "accuracy", "mean_change", 1.0),
        ("position MSE min (1e-4)", "position_mse", "mean_best_during", 1e4),
        ("position MSE change (1e-4)", "position_mse", "mean_change", 1e4),
    )
    return [
        Column(title, lambda r, m=metric, k=key: forgetting_value(r, m, k), scale=scale, paper=entries)
        for (title, metric, key, scale), entries in zip(specs, paper, strict=True)
    ]


def summarise_table(results: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Markdown table, one line per (row, mode): mean (+-std) over seeds for each column, paper alongside."""
    header = ["row", "objective", "seeds"] + [c.title + " (ours / paper)" for c in columns]
    lines = []
    for (row, mode), runs in group(results).items():
        cells: list[Any] = [
            row if row != "SDA" else "VASE (SDA)",
            "disentangled" if mode == "dis" else "entangled",
            len(runs),
        ]
        for c in columns:
            ours = mean_std((c.value(r) for r in runs), c.scale, c.digits)
            cells.append(f"{ours} / {c.paper.get((row, mode), '-')}")
        lines.append(cells)
    return common.markdown_table(header, lines)


def offline_probe_table(results: Sequence[dict[str, Any]], probe: str = "mlp") -> str:
    """Markdown table of the offline probes at each stage end (``evaluation.quality``: a probe fit on the
    frozen mu(x) of the dataset just trained, 10k train / 5k test images), one line per (row, mode) and one
    per trivial reference measured in the same runs (the untrained encoder and raw pixels, over the runs'
    distinct seeds): object-ID accuracy (%) per dataset and its mean, mean (+-std) over seeds."""
    runs = [r for r in results if r["evaluation"].get("quality")]
    if not runs:
        return "_no run carries offline probes_"
    datasets = [st["dataset"] for st in runs[0]["evaluation"]["quality"]["stages"]]

    def accs(r: Mapping[str, Any], who: str) -> list[float]:
        return [st["scores"][who]["class"][probe] for st in r["evaluation"]["quality"]["stages"]]

    def cells(values: list[list[float]]) -> list[str]:
        per = [mean_std(v[k] for v in values) for k in range(len(datasets))]
        return [*per, mean_std(float(np.mean(v)) for v in values)]

    lines: list[list[Any]] = []
    for (row, mode), rs in group(runs).items():
        label = row if row != "SDA" else "VASE (SDA)"
        obj = "disentangled" if mode == "dis" else "entangled"
        lines.append([label, obj, len(rs), *cells([accs(r, "vase") for r in rs])])
    by_seed = {r["spec"]["seed"]: r for r in runs}
    for who, label in (("untrained", "untrained encoder"), ("pixels", "raw pixels")):
        lines.append([label, "reference", len(by_seed), *cells([accs(r, who) for r in by_seed.values()])])
    header = ["row", "objective", "seeds", *(f"{d} ID (%)" for d in datasets), "mean ID (%)"]
    return common.markdown_table(header, lines)


def stage_mlp(record: dict[str, Any], stage: int, factor: str) -> float | None:
    """The offline MLP probe of ``factor`` at the end of stage ``stage`` (VASE); None where not probed."""
    quality = record["evaluation"].get("quality") or {}
    for row in quality.get("stages", []):
        if row["stage"] == stage:
            return row["scores"].get("vase", {}).get(factor, {}).get("mlp")
    return None


def interval(values: list[float | None], scale: float = 1.0, digits: int = 2) -> str:
    """mean, and the 90% bootstrap interval of the mean when there are >= 3 values."""
    v = np.array([x for x in values if x is not None], dtype=float) * scale
    if v.size == 0:
        return "n/a"
    if v.size < 3:
        return f"{v.mean():.{digits}f} (n={v.size})"
    rng = np.random.default_rng(0)
    means = rng.choice(v, size=(10_000, v.size), replace=True).mean(1)
    lo, hi = np.quantile(means, [0.05, 0.95])
    return f"{v.mean():.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def provenance(results: Sequence[dict[str, Any]]) -> str:
    """Preset, steps per dataset, seeds, wall time and hardware of a set of runs (one markdown paragraph)."""
    if not results:
        return "_no finished runs_"
    presets = sorted({r["spec"]["preset"] for r in results})
    steps = sorted({r["spec"]["steps_per_env"] for r in results})
    seeds = sorted({r["spec"]["seed"] for r in results})
    walls = [r["timing"]["train_seconds"] for r in results]
    cpus = sorted({r["hardware"]["cpu"] for r in results})
    return (
        f"Preset `{', '.join(presets)}`, {', '.join(map(str, steps))} training steps per dataset, seeds "
        f"{seeds}, {len(results)} runs; training wall time per run {np.mean(walls) / 60:.1f} min "
        f"(min {min(walls) / 60:.1f}, max {max(walls) / 60:.1f}; 1 torch thread, 2 runs in parallel on a "
        f"shared machine); hardware: {'; '.join(cpus)}, no GPU."
    )


def shrink_pngs(folder: Path, colours: int = 128) -> None:
    """Re-save every PNG in ``folder`` with a ``colours``-entry palette (2-3x smaller files)."""
    from PIL import Image

    for path in Path(folder).glob("*.png"):
        Image.open(path).convert("RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(
            path, optimize=True
        )


def plot_probe_means(results: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Probe accuracy / position MSE vs step, mean over seeds, one panel per (row, mode) group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = group(results)
    metrics = [
        m for m in ("accuracy", "position_mse") if any(rec[2] == m for r in results for rec in r["probes"])
    ]
    ncol = min(len(groups), 6)  # wrap: each band of len(metrics) rows shows up to 6 (row, mode) groups
    bands = -(-len(groups) // ncol)
    fig, axes = plt.subplots(
        len(metrics) * bands,
        ncol,
        figsize=(3.6 * ncol + 1, 3.2 * len(metrics) * bands),
        squeeze=False,
        sharey="row",
    )
    for g in range(len(groups), bands * ncol):  # empty slots of the last band
        for m in range(len(metrics)):
            axes[(g // ncol) * len(metrics) + m, g % ncol].set_visible(False)
    for g, ((row, mode), runs) in enumerate(groups.items()):
        spec = runs[0]["spec"]
        names = list(dict.fromkeys(spec["sequence"]))
        band, j = divmod(g, ncol)
        for m, metric in enumerate(metrics):
            i = band * len(metrics) + m
            ax = axes[i, j]
            for k, name in enumerate(names):
                curves = [
                    [(rec[0], rec[3]) for rec in r["probes"] if rec[1] == name and rec[2] == metric]
                    for r in runs
                ]
                curves = [c for c in curves if c]
                if not curves:
                    continue
                n = min(len(c) for c in curves)
                steps = np.array([s for s, _ in curves[0][:n]])
                vals = np.array([[v for _, v in c[:n]] for c in curves])
                ax.plot(steps, vals.mean(0), color=f"C{k}", label=name)
                ax.fill_between(steps, vals.min(0), vals.max(0), color=f"C{k}", alpha=0.2)
            for b in range(1, len(spec["sequence"])):
                ax.axvline(b * spec["steps_per_env"], color="k", ls="--", lw=0.8)
            ax.grid(alpha=0.3)
            if m == 0:
                kind = "disent." if mode == "dis" else "entangled"
                ax.set_title(f"{row} {kind} (n={len(runs)})", fontsize=9)
            if j == 0:
                ax.set_ylabel("object-ID accuracy (%)" if metric == "accuracy" else "position MSE")
            if m == len(metrics) - 1:
                ax.set_xlabel("training step")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title + " (line: mean over seeds, band: min-max; dashed: dataset switches)")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    shrink_pngs(path.parent)


def plot_forgetting(results: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """A.6's change after each dataset's stage per (row, objective): object-ID accuracy (points) and position
    MSE (1e-4), averaged over datasets; each seed a dot, the bar the mean, the whisker its 90 % bootstrap
    interval over seeds (``cl_metrics.bootstrap_ci``; none for one seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from cl_metrics import bootstrap_ci

    groups = group(results)
    panels = (
        ("accuracy", 1.0, "object-ID change (points)"),
        ("position_mse", 1e4, "position MSE change (1e-4)"),
    )
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 0.6 * len(groups) + 2), 7.5), squeeze=False)
    labels = [f"{row}\n{'dis' if mode == 'dis' else 'ent'}" for row, mode in groups]
    for ax, (metric, scale, name) in zip(axes[:, 0], panels, strict=True):
        for i, runs in enumerate(groups.values()):
            v = (
                np.array([x for r in runs if (x := forgetting_value(r, metric, "mean_change")) is not None])
                * scale
            )
            if v.size == 0:
                continue
            colour = "C0" if runs[0]["spec"]["mode"] == "dis" else "C1"
            ax.bar(i, v.mean(), color=colour, alpha=0.5)
            if v.size > 1:
                lo, hi = bootstrap_ci(lambda x: x.mean(axis=1), [v])
                ax.errorbar(i, v.mean(), yerr=[[v.mean() - lo], [hi - v.mean()]], color="k", capsize=4)
            ax.scatter(np.full(v.size, i), v, color="k", s=10, zorder=3)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_ylabel(name)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title + ": forgetting per row\n(bar: mean; whisker: 90 % bootstrap interval; dots: seeds)")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
