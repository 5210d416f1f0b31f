"""The imagination benchmark's report (``benchmarks/imagination.py`` runs, this module summarises):
``results.md`` with a section per mode, ``curves.png`` and ``examples.png``; and the run naming both share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common
import numpy as np

CONDITIONS = ("baseline", "imagination", "random-shift")
RANDOM = "random-shift"
"""The in-graph control: z*-blind random translations (``ImaginationConfig.policy="random"``)."""
WORLD = "in-world"
"""Sub-folder of the in-world JSONs (the in-graph ones stay at the top, as before)."""
TITLE = "# Imagination-driven exploration (Fig. 5B), CPU reproduction"


def by_condition(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The records of each condition that has any, in :data:`CONDITIONS` order."""
    return {c: rs for c in CONDITIONS if (rs := [r for r in records if r["condition"] == c])}


def run_name(condition: str, seed: int) -> str:
    return f"{condition}_seed{seed}"


# ------------------------------------------------------------------------------------- summary
def at(curve: list[list[float]], step: float) -> float:
    """Value of a recorded curve at the last evaluation <= step."""
    steps, values = np.asarray(curve[0]), np.asarray(curve[1])
    return float(values[steps <= step][-1])


def stage_mean(curve: list[list[float]], lo: float, hi: float) -> float:
    """Mean of a curve over evaluations in (lo, hi]."""
    steps, values = np.asarray(curve[0]), np.asarray(curve[1])
    return float(values[(steps > lo) & (steps <= hi)].mean())


METRICS: list[tuple[str, str, Any]] = [
    ("moving-MNIST acc. at end of MNIST stage (%)", "moving-mnist/accuracy", lambda c, n: at(c, 2 * n)),
    (
        "moving-MNIST acc. mean over MNIST stage (%)",
        "moving-mnist/accuracy",
        lambda c, n: stage_mean(c, n, 2 * n),
    ),
    ("moving-MNIST acc. at end of run (%)", "moving-mnist/accuracy", lambda c, n: at(c, 3 * n)),
    (
        "moving-MNIST position MSE at end of MNIST stage",
        "moving-mnist/position_mse",
        lambda c, n: at(c, 2 * n),
    ),
    ("moving-MNIST position MSE at end of run", "moving-mnist/position_mse", lambda c, n: at(c, 3 * n)),
    ("MNIST acc. at end of MNIST stage (%)", "mnist/accuracy", lambda c, n: at(c, 2 * n)),
    ("moving-Fashion acc. at end of run (%)", "moving-fashion/accuracy", lambda c, n: at(c, 3 * n)),
]


def summarise(args: Any) -> None:
    """results.md (a section per mode that has results), curves.png and examples.png (in-graph)."""
    out = Path(args.out)
    records = [common.load_json(p) for p in sorted(out.glob("*_seed*.json"))]
    world = [common.load_json(p) for p in sorted((out / WORLD).glob("*_seed*.json"))]
    if not records and not world:
        raise SystemExit(f"no results in {out}")
    lines = [TITLE, ""]
    if records:
        by = by_condition(records)
        losses = [r["agent_loss"] for r in by.get("imagination", []) if r["agent_loss"]]
        lines += _summary_lines(args, out, records, by, losses)
        _plot_curves(out, records, by, losses, records[0]["steps_per_env"])
        _plot_examples(out)
    if world:
        lines += ["", *_world_lines(world)]
    common.write_text(out / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def _world_lines(records: list[dict[str, Any]]) -> list[str]:
    """The in-world section of results.md: per stage, the probes after it and what the learner saw in it."""
    by = by_condition(records)
    r0, hw = records[0], records[0]["hardware"]
    ima = next(iter(by.get("imagination", [])), {})
    lines = [
        "## In the world: the policy moves the sprite of a wrapped SpriteCanvas",
        "",
        (
            f"Sequence {' -> '.join(r0['sequence'])}, each a continuous-action SpriteCanvas in "
            f"`VASEObservation(frame_in_info=True)`; preset `{r0['preset']}`; each dataset is stepped until "
            f"the learner has taken {r0['steps_per_env']} train steps, one every {r0['train_every']} env "
            f"steps after a warm-up of {r0['warmup']} frames (buffer {r0['buffer_size']}); episodes of "
            f"{r0['episode_steps']} steps. imagination: `vase_rl.agents.explore.ImaginationAgent` (a "
            f"policy step on L_agent every {ima.get('policy_every', 1)} env steps on the last "
            f"{ima.get('policy_batch', 1)} frames, policy Adam {r0['policy_lr']}, translation range "
            f"{ima.get('max_translation')}, targets {ima.get('target_latents')}, saturation penalty "
            f"{ima.get('saturation_penalty') or 0}); {RANDOM}: "
            "each action uniform in that range, blind to z*; baseline: zero actions. "
            "Probes: linear (and a 2x256 MLP for the class), on the frozen encoder after each "
            f"stage, {r0['probe_sizes'][0]} moving-MNIST train / {r0['probe_sizes'][1]} test images. "
            f"Library code {r0.get('code')}. Hardware: {hw['cpu']}, {hw['cores']} cores, 1 thread per run; "
            "wall time per run: "
            + ", ".join(f"{r['condition']}/{r['seed']} {r['wall_s'] / 60:.1f} min" for r in records)
            + "."
        ),
        "",
        "| after stage | metric | "
        + " | ".join(f"{c} (mean ± std, n={len(by[c])})" for c in by)
        + " | per seed |",
        "|---|---|" + "---|" * len(by) + "---|",
    ]
    metrics: list[tuple[str, Any]] = [
        ("moving-MNIST class acc. (linear, %)", lambda st: st["probes"]["class_acc"]),
        ("moving-MNIST class acc. (MLP, %)", lambda st: st["probes"].get("class_acc_mlp", float("nan"))),
        ("moving-MNIST position R^2 (linear)", lambda st: st["probes"]["position_r2"]),
        ("spread of sprite positions seen (std, px)", lambda st: st["position_spread_px"]),
        ("sprite at the canvas edge (fraction of steps)", lambda st: st["at_edge"]),
        (
            "saturated policy outputs (pre-tanh beyond +-2, fraction)",
            lambda st: st.get("saturated"),
        ),
        ("env steps (incl. episode starts)", lambda st: st["env_steps"]),
        ("learner train steps", lambda st: st["train_steps"]),
    ]
    for k, stage in enumerate(r0["sequence"]):
        for label, fn in metrics:
            cells, per_seed = [], []
            for c in by:
                vals = [v for v in (fn(r["stages"][k]) for r in by[c]) if v is not None]  # None: not measured
                cells.append(f"{np.mean(vals):.3g} ± {np.std(vals):.2g}" if vals else "-")
                per_seed.append(f"{c[:3]}: " + (", ".join(f"{v:.3g}" for v in vals) or "-"))
            lines.append(f"| {stage} | {label} | " + " | ".join(cells) + " | " + "; ".join(per_seed) + " |")
    lines += ["", "Last inferred environment / environments allocated after each stage, per run:", ""]
    for r in records:
        envs = ", ".join(f"{st['dataset']} {st['env']}/{st['n_envs']}" for st in r["stages"])
        loss = ", ".join(
            f"{st['agent_loss_first']:.1f} -> {st['agent_loss_last']:.1f} (|t| {st['translation_abs']:.3f})"
            for st in r["stages"]
            if st["agent_loss_first"] is not None
        )
        tail = f"; L_agent first -> last tenth per stage {loss}" if loss else ""
        lines.append(f"- {r['condition']} seed {r['seed']}: {envs}{tail}")
    return lines


def _run_configs(out: Path, records: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, bool]:
    """(the learner config of the first run, whether every run used the same config and library code).

    Read from each run's record (``config``), or for records written before it carried one from the run
    folder's config.json (kept under ``runs/``, outside git): the preset may change between commits. A
    field added to the config after a run counts at its default (the value that reproduces the code before
    it existed). (None, False) when some run's config is in neither place (a clone without the run folders
    of records written before they carried the config).
    """
    from vase_rl.core.config import VASEConfig

    configs, missing = {}, []
    for r in records:
        name = run_name(r["condition"], r["seed"])
        path = out / "runs" / name / "config.json"
        if "config" in r:
            stored = r["config"]
        elif path.exists():
            stored = common.load_json(path)["vase"]
        else:
            missing.append(name)
            continue
        vase = VASEConfig.from_dict(stored).to_dict()
        configs[name] = {k: v for k, v in vase.items() if k != "seed"}
    if missing:
        return None, False
    cfg = next(iter(configs.values()))
    same = all(c == cfg for c in configs.values()) and len({r.get("code") for r in records}) == 1
    return cfg, same


def _summary_lines(
    args: Any,
    out: Path,
    records: list[dict[str, Any]],
    by: dict[str, list[dict[str, Any]]],
    losses: list[Any],
) -> list[str]:
    """results.md: setup and hardware, the metric table, environments per stage, the policy's loss."""
    n = records[0]["steps_per_env"]
    hw = records[0]["hardware"]
    cfg, same = _run_configs(out, records)
    cpu = [r["cpu_s"] for r in records if "cpu_s" in r]
    if cfg is None:  # records from before they carried the config, their run folders not in this clone
        from vase_rl.core.config import get_preset

        cfg = get_preset(records[0]["preset"]).to_dict()  # only for the latent count below
        as_run = "the learner config is not stored with these runs (nor their run folders here)"
    else:
        as_run = (
            f"{cfg['model']['image_size']}x{cfg['model']['image_size']}, {cfg['model']['latent_dim']} latents, "
            f"gamma {cfg['loss']['gamma']}, C_max {cfg['loss']['c_max']} "
            f"({cfg['loss'].get('capacity_mode', 'eq. 3')}), batch {cfg['batch_size']}"
            f"{'' if same else ' (WARNING: runs used different learner code/configs, see the JSON)'}"
        )
    lines = [
        "## In the graph: the STN imagines x* inside the training loop",
        "",
        (
            f"Sequence {' -> '.join(records[0]['sequence'])}; preset `{records[0]['preset']}` as run: {as_run}; "
            f"library code {records[0].get('code')}; ablation row {records[0].get('row', 'SDA')}; "
            f"on_overflow={records[0].get('on_overflow')}; "
            f"{n} steps per dataset; imagination replaces {args.fraction:.0%} of each batch with x* "
            f"(policy Adam {args.policy_lr}, trained from step 0, {im_setting(records)}). Probes (A.6) evaluated every "
            f"{args.probe_eval_every} steps on {args.probe_eval_size} held-out images."
        ),
        (
            f"Hardware: {hw['cpu']}, {hw['cores']} cores, torch {hw['torch']}, 1 thread per run, "
            f"{args.jobs} runs in parallel on a machine shared with other jobs (load average "
            f"{hw['load_average'][0]}). Wall time per run: "
            + ", ".join(f"{r['condition']}/{r['seed']} {r['wall_s'] / 60:.1f} min" for r in records)
            + "."
            + (
                f" CPU time per run {np.mean(cpu) / 60:.1f} min, i.e. "
                f"{len(by) * len(args.seeds) * np.mean(cpu) / 120:.0f} min for the whole benchmark "
                "on 2 otherwise idle cores."
                if cpu
                else ""
            )
        ),
        "",
        "| metric | " + " | ".join(f"{c} (mean ± std, n={len(by[c])})" for c in by) + " | per seed |",
        "|---|" + "---|" * len(by) + "---|",
    ]
    for label, key, fn in METRICS:
        cells, per_seed = [], []
        for c in by:
            vals = [fn(r["curves"][key], n) for r in by[c] if key in r["curves"]]
            cells.append(f"{np.mean(vals):.3g} ± {np.std(vals):.2g}" if vals else "-")
            per_seed.append(f"{c[:3]}: " + ", ".join(f"{v:.3g}" for v in vals))
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + "; ".join(per_seed) + " |")
    lines += ["", "Environments inferred per stage (env indices seen in the log, per seed):", ""]
    for r in records:
        lines.append(f"- {r['condition']} seed {r['seed']}: {r['envs_per_stage']} ({r['n_envs']} allocated)")
    if losses:
        lines += _policy_loss_lines(losses, n, cfg["model"]["latent_dim"])
    return lines


def im_setting(records: list[dict[str, Any]]) -> str:
    """The imagination runs' target latents and translation range, as one phrase."""
    settings = {
        (r.get("target_latents", "all"), r.get("max_translation", 1.0)) for r in records if r["fraction"]
    }
    return "; ".join(f"targets: {t} latents, |t| <= {m}" for t, m in sorted(settings, key=str)) or "no runs"


def _policy_loss_lines(losses: list[Any], n: int, latent_dim: int) -> list[str]:
    """L_agent from start to the end of the first stage; per stage, |t| and the spread of x* vs x."""
    end1 = [np.mean([row[1] for row in al if row[0] < n][-10:]) for al in losses]
    start = [al[0][1] for al in losses]
    lines = [
        "",
        (
            f"Policy loss L_agent (over the target latents of {latent_dim}): "
            f"{np.mean(start):.1f} at step 0 -> "
            f"{np.mean(end1):.1f} at the end of the moving-Fashion stage (mean over seeds)."
        ),
    ]
    for lo, hi, name in ((0, n, "moving-Fashion"), (n, 2 * n, "MNIST"), (2 * n, 3 * n, "moving-MNIST")):
        rows = np.array([row for al in losses for row in al if lo + n // 2 <= row[0] < hi]).reshape(-1, 5)
        if not len(rows):
            continue
        lines.append(
            f"- second half of the {name} stage: mean |t| = {rows[:, 2].mean():.3f}; "
            f"spread (std, px) of object centres: imagined x* {rows[:, 3].mean():.2f} "
            f"vs input x {rows[:, 4].mean():.2f}"
        )
    return lines


def _plot_curves(
    out: Path, records: list[dict[str, Any]], by: dict[str, list[dict[str, Any]]], losses: list[Any], n: int
) -> None:
    """curves.png: moving-MNIST probe accuracy and position MSE per condition; spread of x* vs x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    colours = {"baseline": "tab:gray", "imagination": "tab:red", RANDOM: "tab:blue"}
    for ax, key in zip(axes[:2], ("moving-mnist/accuracy", "moving-mnist/position_mse"), strict=True):
        for c in by:
            for i, r in enumerate(by[c]):
                s, v = r["curves"][key]
                ax.plot(s, v, color=colours[c], alpha=0.8, lw=1.2, label=c if i == 0 else None)
    for i, al in enumerate(losses):
        a = np.array(al)
        axes[2].plot(a[:, 0], a[:, 3], color="tab:red", lw=1, label="imagined x*" if i == 0 else None)
        axes[2].plot(a[:, 0], a[:, 4], color="tab:gray", lw=1, label="input x" if i == 0 else None)
    axes[2].set_title("spread of object centres in the batch (std, px)", pad=18)
    for ax in axes:
        for k, name in enumerate(records[0]["sequence"]):
            ax.axvspan(k * n, (k + 1) * n, color="tab:blue", alpha=0.06 * (k % 2 + 1))
            ax.text((k + 0.5) * n, 1.0, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom")
        ax.set_xlabel("training step")
        ax.legend()
    axes[0].set_title("moving-MNIST object-ID probe accuracy (%)", pad=18)
    axes[1].set_title("moving-MNIST position probe MSE (log scale)", pad=18)
    axes[1].set_yscale("log")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)


def _plot_examples(out: Path) -> None:
    """examples.png: for each saved example batch, inputs x above imagined x* (8 per row)."""
    examples = sorted(out.glob("examples_seed*.npz"))
    if not examples:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2 * len(examples), 8, figsize=(8, 2.1 * len(examples)), squeeze=False)
    for e, path in enumerate(examples):
        d = np.load(path)
        for j in range(8):
            for row, key in enumerate(("x", "x_star")):
                ax = axes[2 * e + row, j]
                ax.axis("off")
                if j < len(d[key]):
                    ax.imshow(d[key][j, 0], cmap="gray", vmin=0, vmax=1)
            axes[2 * e, 0].set_title(
                f"{path.stem}: x ({d['dataset']}, step {int(d['step'])})", fontsize=8, loc="left"
            )
            axes[2 * e + 1, 0].set_title("x* = g(z*, x) . x", fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(out / "examples.png", dpi=110)
    plt.close(fig)
