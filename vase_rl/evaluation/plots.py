"""Figures of a VASE run (matplotlib, Agg): one function per figure, each ``(..., path) -> path``.

Figures follow the paper (Achille et al. 2018): latent traversals per environment (Fig. 2 top),
cross-domain reconstructions (Fig. 4B / 7 / 9), the atypicality profile (Fig. 2 bottom), probe curves
(Fig. 2 bottom, Table 1), plus diagnostics: latent usage per environment, latent usage over training,
inferred environment over training, and loss curves. Every function takes ``figsize`` (inches) and
``dpi``; the PNG is exactly ``figsize * dpi`` pixels (no tight bounding box), so sizes are predictable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from vase_rl.core.learner import ContinualLearner
from vase_rl.evaluation.evaluate import allocations, eval_codes
from vase_rl.probing.probes import ProbeHistory

__all__ = [
    "DPI", "Stages", "env_label", "plot_atypicality", "plot_cross_reconstructions",
    "plot_environment_inference", "plot_latent_traversals", "plot_latent_usage", "plot_losses",
    "plot_probe_curves", "plot_usage_over_training",
]  # fmt: skip

Log = Sequence[Mapping[str, Any]]
"""Records of ``log.jsonl`` (see :func:`vase_rl.runs.training.read_log`)."""
Size = tuple[float, float]

DPI = 100
PAD = 0.5
"""Grey level of the gaps between images in a mosaic."""
USAGE_STATES = ("masked (atypical)", "active, unused", "active & used")
"""Latent states per environment, coded 0, 1, 2 (see :func:`_usage_state`)."""
USAGE_COLOURS = ("#d62728", "#ff9f1c", "#2ca02c")
USAGE_CMAP = ListedColormap(USAGE_COLOURS)


@dataclass(frozen=True)
class Stages:
    """The training sequence: dataset ``names[i]`` is trained on steps [i*T, (i+1)*T), T = steps_per_env."""

    names: tuple[str, ...]
    steps_per_env: int

    @property
    def boundaries(self) -> list[int]:
        """Steps where a new dataset starts (interior boundaries only)."""
        return [i * self.steps_per_env for i in range(1, len(self.names))]

    def mark(self, ax: Axes, label: bool = True) -> None:
        """Dashed vertical lines at the stage boundaries; dataset names on top of each stage if ``label``."""
        for b in self.boundaries:
            ax.axvline(b, color="0.3", ls="--", lw=1.0, zorder=0)
        if label:
            for i, name in enumerate(self.names):
                ax.text(
                    (i + 0.5) * self.steps_per_env,
                    1.01,
                    name,
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    color="0.2",
                )
        total = len(self.names) * self.steps_per_env
        ax.set_xlim(-0.01 * total, 1.01 * total)


def _figure(figsize: Size) -> Figure:
    """A pyplot-free figure (rendered by Agg on save: no global backend switch, no figure manager)."""
    return Figure(figsize=figsize, layout="constrained")


def _save(fig: Figure, path: str, dpi: int) -> str:
    """Write ``fig`` as a PNG of exactly ``figsize * dpi`` pixels, creating the folder; returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _mosaic(images: np.ndarray, pad: int = 1) -> np.ndarray:
    """Tile images (R, K, C, H, W) in [0, 1] into one RGB array (R*(H+pad)-pad, K*(W+pad)-pad, 3)."""
    r, k, c, h, w = images.shape
    rgb = np.repeat(images, 3, axis=2) if c == 1 else images
    out = np.full((r * (h + pad) - pad, k * (w + pad) - pad, 3), PAD, dtype=np.float32)
    for i in range(r):
        for j in range(k):
            y, x = i * (h + pad), j * (w + pad)
            out[y : y + h, x : x + w] = rgb[i, j].transpose(1, 2, 0)
    return out


def _usage_state(mask: torch.Tensor, used: torch.Tensor) -> np.ndarray:
    """(N,) int: 0 masked, 1 active but unused, 2 active and used (indices into USAGE_STATES)."""
    m, u = np.asarray(mask, dtype=bool), np.asarray(used, dtype=bool)
    return np.where(~m, 0, np.where(u, 2, 1))


def _show_usage(ax: Axes, state: np.ndarray, extent: tuple[float, float, float, float] | None = None) -> None:
    """Image of latent states (N, T) coded as in USAGE_STATES."""
    ax.imshow(state, cmap=USAGE_CMAP, vmin=0, vmax=2, aspect="auto", interpolation="nearest", extent=extent)


def _usage_legend(fig: Figure) -> None:
    handles = [Patch(facecolor=c, label=s) for c, s in zip(USAGE_COLOURS, USAGE_STATES, strict=True)]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=9, frameon=False)


def env_label(env: int, env_names: Mapping[int, Sequence[str]]) -> str:
    """``"s1: mnist"`` -- environment index and the datasets the training log sent to it."""
    names = env_names.get(env, [])
    return f"s{env}: " + ("/".join(names) if names else "(unassigned)")


# ------------------------------------------------------------------------------------------ images
def _image_panel(
    ax: Axes, rows: torch.Tensor, labels: Sequence[str], title: str, colours: Sequence[str | None] = ()
) -> None:
    """Show image rows (R, K, C, H, W) in [0, 1] as a mosaic on ``ax`` with a label per row.

    ``colours`` (one per row, or None for none) colours a row's label and draws a bar left of the row.
    """
    grid = _mosaic(rows.cpu().numpy())
    ax.imshow(grid, interpolation="nearest", aspect="auto")
    h, w = rows.shape[-2] + 1, rows.shape[-1] + 1
    ax.set_yticks([(r + 0.5) * h - 1 for r in range(rows.shape[0])])
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xticks([])
    for r, colour in enumerate(colours):
        if colour is not None:
            ax.get_yticklabels()[r].set_color(colour)
            bar = Rectangle((-0.5 - 0.12 * w, r * h - 0.5), 0.1 * w, h - 1, color=colour, clip_on=False)
            ax.add_patch(bar)
    ax.set_title(title, fontsize=10)
    for side in ax.spines.values():
        side.set_visible(False)


def _grid_figsize(
    n_rows: int, n_cols: int, n_panels: int, horizontal: bool, label_in: float, cell: float
) -> tuple[float, float]:
    """Figure inches for ``n_panels`` mosaics of n_rows x n_cols images, ``cell`` inches per image."""
    title = 0.75
    panel_w, panel_h = n_cols * cell + label_in, n_rows * cell + title
    if horizontal:
        return panel_w * n_panels + 0.3, panel_h + 1.2
    return panel_w + 0.3, panel_h * n_panels + 0.8


@torch.no_grad()
def plot_latent_traversals(
    learner: ContinualLearner,
    seeds: Mapping[str, Any],
    envs: Mapping[str, int],
    path: str,
    values: Sequence[float] = tuple(np.linspace(-2.0, 2.0, 7)),
    figsize: Size | None = None,
    dpi: int = DPI,
) -> str:
    """Latent traversals per dataset (Fig. 2 top): one panel per dataset, one row per latent z_n.

    seeds: dataset -> one seed image (H, W, 1) uint8 (or anything ``learner.preprocess(batched=False)``
    takes); envs: dataset -> environment to decode under. Each row sets z_n to ``values`` (columns) with
    the other latents at mu(seed) (masked ones at the prior mean 0) and decodes under the environment.
    Row labels and the bar left of each row show the latent's state in that environment: green used,
    orange active but unused, red masked. The top row shows the seed and its reconstruction.
    """
    n_lat, vals = learner.config.model.latent_dim, torch.tensor(list(values), dtype=torch.float32)
    names = list(seeds)
    fig = _figure(figsize or _grid_figsize(n_lat + 1, len(vals), len(names), True, label_in=1.1, cell=0.42))
    axes = fig.subplots(1, len(names), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        env = envs[name]
        x = learner.preprocess(seeds[name], batched=False)
        z0 = eval_codes(learner, learner.encode(x), env)[0]
        z = z0.repeat(n_lat, len(vals), 1)  # (N, K, N): row n sweeps latent n
        z[torch.arange(n_lat), :, torch.arange(n_lat)] = vals.to(z.device)
        rows = learner.decode(z.reshape(-1, n_lat), env).reshape(n_lat, len(vals), *x.shape[1:])
        top = torch.ones_like(rows[:1])
        top[0, 0], top[0, 1] = x[0], learner.decode(z0[None], env)[0]
        state = _usage_state(learner.applied_mask(env).cpu(), learner.memory.used[env])
        title = f"{name}: decoded as s{env}\n({int((state == 2).sum())} of {n_lat} latents used)"
        labels = ["input | recon."] + [f"z{n}" for n in range(n_lat)]
        _image_panel(ax, torch.cat([top, rows]), labels, title, [None] + [USAGE_COLOURS[s] for s in state])
        w = x.shape[-1] + 1
        ax.set_xticks([(j + 0.5) * w - 1 for j in range(len(vals))])
        ax.set_xticklabels([f"{v:+.1f}" for v in vals.tolist()], fontsize=8)
        ax.set_xlabel("value of the traversed latent z_n", fontsize=9)
    fig.suptitle("Latent traversals per environment (colour: latent state in that environment)")
    _usage_legend(fig)
    return _save(fig, path, dpi)


@torch.no_grad()
def plot_cross_reconstructions(
    learner: ContinualLearner,
    batches: Mapping[str, Any],
    env_names: Mapping[int, Sequence[str]],
    path: str,
    figsize: Size | None = None,
    dpi: int = DPI,
) -> str:
    """Cross-domain reconstructions (Fig. 4B, 7, 9): encode images of each dataset, decode as every env.

    batches: dataset -> images (K, H, W, 1) uint8 (K columns); env_names: env -> datasets (row labels).
    One panel per source dataset; its rows are the inputs, then the reconstruction x = p(x | mu(x), s)
    for every allocated environment s (latents masked in s at the prior mean).
    """
    n_env = max(learner.memory.n_seen, 1)
    names = list(batches)
    k = len(next(iter(batches.values())))
    fig = _figure(figsize or _grid_figsize(n_env + 1, k, len(names), False, label_in=2.2, cell=0.62))
    axes = fig.subplots(len(names), 1, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=True):
        x = learner.preprocess(batches[name])
        mu = learner.encode(x)
        recs = [learner.decode(eval_codes(learner, mu, s), s) for s in range(n_env)]
        labels = ["input"] + [f"as {env_label(s, env_names)}" for s in range(n_env)]
        title = f"held-out {name} inputs (top row), decoded as each environment"
        _image_panel(ax, torch.stack([x, *recs]), labels, title)
    fig.suptitle("Cross-domain reconstructions")
    return _save(fig, path, dpi)


# ------------------------------------------------------------------------------------------ curves
def _log_series(log: Log, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps (T,), values (T, ...)) of a logged key, skipping records without it."""
    rows = [(r["step"], r[key]) for r in log if key in r]
    if not rows:
        return np.zeros(0), np.zeros(0)
    return np.array([s for s, _ in rows], dtype=np.float64), np.array([v for _, v in rows], dtype=np.float64)


def plot_atypicality(
    log: Log,
    stages: Stages,
    lambda0: float,
    lambda1: float,
    path: str,
    figsize: Size = (11.0, 7.0),
    dpi: int = DPI,
) -> str:
    """Atypicality profile (Fig. 2 bottom): alpha_n (eq. 4) of each latent per logged batch vs step.

    Top: latents that ever exceed lambda1 (become atypical, mask -> 0) get a colour and a legend entry,
    the others are thin grey lines; dashed black: lambda1, dotted: lambda0 (hysteresis, A.2); log scale.
    Bottom: how many latents are active (mask a = 1) and active & used in the inferred environment.
    """
    steps, alpha = _log_series(log, "atypicality")
    fig = _figure(figsize)
    ax, ax_n = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    alpha = np.clip(alpha.reshape(len(steps), -1), 1e-3, None)
    hot = [n for n in range(alpha.shape[1]) if alpha[:, n].max() > lambda1]
    cold = [n for n in range(alpha.shape[1]) if n not in hot]
    colours = matplotlib.colormaps["tab20" if len(hot) > 10 else "tab10"]
    for n in cold:
        label = "latents never > lambda1" if n == cold[0] else None
        ax.plot(steps, alpha[:, n], lw=0.6, color="0.7", label=label)
    for i, n in enumerate(hot):
        ax.plot(steps, alpha[:, n], lw=1.0, color=colours(i % colours.N), label=f"z{n}")
    ax.axhline(lambda1, color="k", ls="--", lw=1.8, label=f"lambda1 = {lambda1}\n(masked above)")
    ax.axhline(lambda0, color="k", ls=":", lw=1.8, label=f"lambda0 = {lambda0}\n(unmasked below)")
    ax.set_yscale("log")
    ax.set_ylabel("atypicality alpha_n (log scale)")
    ax.set_title("Atypicality profile of each latent over training (values below 1e-3 clipped)", pad=18)
    ax.legend(
        loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False, ncol=1 + (len(hot) > 14)
    )
    _, mask = _log_series(log, "mask")
    _, used = _log_series(log, "used")
    if steps.size:
        ax_n.step(steps, mask.sum(1), where="post", color="C0", label="active (mask = 1)")
        ax_n.step(steps, (mask * used).sum(1), where="post", color="C2", label="active & used")
    ax_n.set_ylim(-0.5, alpha.shape[1] + 0.5)
    ax_n.set_ylabel("latents")
    ax_n.set_xlabel("training step")
    ax_n.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    stages.mark(ax)
    stages.mark(ax_n, label=False)
    return _save(fig, path, dpi)


def plot_probe_curves(
    history: ProbeHistory, stages: Stages, path: str, figsize: Size = (10.0, 6.5), dpi: int = DPI
) -> str:
    """Probe accuracy (%) and position MSE on held-out data over training (Fig. 2 bottom, A.6).

    One panel per metric, one line per dataset; dashed lines mark where the next dataset starts.
    """
    metrics = [m for m in ("accuracy", "position_mse") if any(r.metric == m for r in history.records)]
    metrics = metrics or ["accuracy"]
    fig = _figure(figsize)
    axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)
    titles = {
        "accuracy": ("object-identity probe accuracy (%)", "accuracy (%)"),
        "position_mse": ("position probe MSE (lower is better)", "MSE (x, y in [0, 1])"),
    }
    for i, (ax, metric) in enumerate(zip(axes[:, 0], metrics, strict=True)):
        for j, name in enumerate(dict.fromkeys(stages.names)):  # one colour per dataset in every panel
            steps, values = history.curve(name, metric)
            if steps.size:
                ax.plot(steps, values, marker="o", ms=3, color=f"C{j}", label=name)
        stages.mark(ax, label=i == 0)
        ax.set_title(titles[metric][0], pad=16 if i == 0 else 6)
        ax.set_ylabel(titles[metric][1])
        ax.grid(alpha=0.3)
        ax.legend(title="probed dataset", fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("training step")
    fig.suptitle("Probes trained on z ~ q(z|x) throughout training")
    return _save(fig, path, dpi)


def plot_latent_usage(
    masks: torch.Tensor,
    used: torch.Tensor,
    env_names: Mapping[int, Sequence[str]],
    path: str,
    figsize: Size | None = None,
    dpi: int = DPI,
) -> str:
    """Latent x environment matrix at the end of training: masked / active-unused / active-and-used.

    masks, used: (n_envs, N) bool for the allocated environments (rows of EnvironmentMemory).
    """
    state = np.stack([_usage_state(m, u) for m, u in zip(masks, used, strict=True)], 1)  # (N, n_envs)
    n_lat, n_env = state.shape
    fig = _figure(figsize or (max(5.2, 2.2 + 1.6 * n_env), 0.28 * n_lat + 1.8))  # the legend needs ~5 in
    ax = fig.subplots()
    _show_usage(ax, state)
    ax.set_xticks(range(n_env))
    ax.set_xticklabels([env_label(s, env_names).replace(": ", "\n") for s in range(n_env)], fontsize=8)
    ax.set_yticks(range(n_lat))
    ax.set_yticklabels([f"z{n}" for n in range(n_lat)], fontsize=7)
    ax.set_xticks(np.arange(n_env + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n_lat + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="w", lw=1)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("environment (datasets the log assigned to it)")
    ax.set_ylabel("latent")
    counts = ", ".join(str(int((state[:, s] == 2).sum())) for s in range(n_env))
    ax.set_title(f"Latent usage per environment\n(active & used latents: {counts})", fontsize=10)
    _usage_legend(fig)
    return _save(fig, path, dpi)


def plot_usage_over_training(
    log: Log, stages: Stages, path: str, figsize: Size = (10.0, 5.5), dpi: int = DPI
) -> str:
    """Latent use progression (Fig. 2's colours): each latent's state in the current environment vs step."""
    steps, mask = _log_series(log, "mask")
    _, used = _log_series(log, "used")
    if steps.size:
        state = np.stack([_usage_state(m, u) for m, u in zip(mask, used, strict=True)], 1)
    else:
        state = np.zeros((1, 1))
    fig = _figure(figsize)
    ax = fig.subplots()
    half = (steps[1] - steps[0]) / 2 if steps.size > 1 else 0.5
    extent = (steps[0] - half, steps[-1] + half, state.shape[0] - 0.5, -0.5) if steps.size else None
    _show_usage(ax, state, extent)
    stages.mark(ax)
    ax.set_ylim(state.shape[0] - 0.5, -0.5)
    ax.set_yticks(range(state.shape[0]))
    ax.set_yticklabels([f"z{n}" for n in range(state.shape[0])], fontsize=7)
    ax.set_xlabel("training step")
    ax.set_ylabel("latent")
    ax.set_title(
        "Latent usage over training (state in the environment inferred for each logged batch)", pad=18
    )
    _usage_legend(fig)
    return _save(fig, path, dpi)


def plot_environment_inference(
    log: Log, stages: Stages, path: str, figsize: Size = (10.0, 4.0), dpi: int = DPI
) -> str:
    """Inferred environment index (Algorithm 1) per logged batch vs step, coloured by the true dataset.

    Stars mark batches on which a new environment was allocated; dashed lines are the true boundaries.
    """
    fig = _figure(figsize)
    ax = fig.subplots()
    steps, env = _log_series(log, "env")
    stage = np.array([r["stage"] for r in log], dtype=int)
    names = list(dict.fromkeys(stages.names))
    for i, name in enumerate(names):
        sel = np.array([stages.names[s] == name for s in stage], dtype=bool)
        ax.scatter(steps[sel], env[sel], s=10, color=f"C{i}", label=f"batches from {name}")
    new = allocations(log)
    if new.any():
        label = "new environment allocated\n(since the previous logged batch)"
        ax.scatter(steps[new], env[new], marker="*", s=160, color="k", zorder=3, label=label)
    stages.mark(ax)
    top = int(env.max()) if env.size else 0
    ax.set_yticks(range(top + 1))
    ax.set_yticklabels([f"s{s}" for s in range(top + 1)])
    ax.set_ylim(-0.5, top + 0.5)
    ax.set_xlabel("training step")
    ax.set_ylabel("inferred environment")
    ax.set_title("Environment inference over training", pad=18)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    return _save(fig, path, dpi)


def plot_losses(log: Log, stages: Stages, path: str, figsize: Size = (10.0, 8.0), dpi: int = DPI) -> str:
    """Loss curves: reconstruction NLL; KL vs the capacity target C (eq. 3); the other loss terms (log)."""
    fig = _figure(figsize)
    axes = fig.subplots(3, 1, sharex=True)
    axes[0].plot(*_log_series(log, "recon"), color="C0", label="reconstruction NLL")
    axes[0].set_ylabel("nats / image")
    axes[0].set_title("Reconstruction NLL -log p(x|z,s) of the training batch", pad=16)
    axes[1].plot(*_log_series(log, "kl"), color="C1", label="KL(q(z|x) || p(z)) over active latents")
    axes[1].plot(*_log_series(log, "C"), color="k", ls="--", label="capacity target C")
    axes[1].set_ylabel("nats / image")
    axes[1].set_title("KL vs capacity target C")
    others = ("capacity_loss", "classifier_loss", "dream/loss", "dream/encoder_w", "dream/decoder_kl")
    for key in others:
        steps, values = _log_series(log, key)
        if steps.size and np.any(values > 0):  # zeros (term inactive) leave gaps on the log scale
            axes[2].plot(steps, np.where(values > 0, values, np.nan), lw=1, marker=".", ms=3, label=key)
    axes[2].set_yscale("log")
    axes[2].set_ylabel("value (log scale)")
    axes[2].set_title("Other loss terms (capacity penalty, env classifier, dreaming)")
    axes[2].set_xlabel("training step")
    for i, ax in enumerate(axes):
        stages.mark(ax, label=i == 0)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    return _save(fig, path, dpi)
