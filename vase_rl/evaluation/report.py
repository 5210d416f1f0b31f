"""``vase-rl report RUN_DIR``: a self-contained markdown report of what a VASE run learned.

:func:`write_report` loads the run once, evaluates it (:mod:`vase_rl.evaluation.evaluate`, also written to
``evaluation.json``), draws every figure of :mod:`vase_rl.evaluation.plots` into ``RUN_DIR/figures/`` and writes
``RUN_DIR/report.md`` with the run settings, the metrics tables and each figure with a sentence on
how to read it. On the cpu preset it takes seconds (held-out data is subsampled, see EvalSettings).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vase_rl.evaluation import plots
from vase_rl.evaluation.evaluate import (
    EvalSettings,
    env_datasets,
    evaluate_loaded,
    held_out,
    stage_environments,
    torch_threads,
    write_evaluation,
)  # fmt: skip
from vase_rl.evaluation.quality import quality_markdown
from vase_rl.runs.loaded_run import LoadedRun, load_run

__all__ = [
    "FIGURES",
    "INFO_MIN_NATS",
    "SECTIONS",
    "WHAT_TO_LOOK_AT",
    "make_figures",
    "render_markdown",
    "write_report",
]

SECTIONS = (
    "## Summary", "## Run settings", "## Metrics", "### Per dataset (held-out test split)",
    "### Probes and forgetting (Table 1 style)", "### Environments", "## Figures",
)  # fmt: skip
"""Section headings every report contains, in order."""
WHAT_TO_LOOK_AT = (
    "**What to look at first.**",
    "",
    "1. *Verdicts* (next section): on each stage's factors, is VASE above the untrained encoder and raw "
    "pixels? A line in capitals says where it is not.",
    "2. *Probe curves* (figure, A.6): a dataset's curve that drops after its own stage is forgetting.",
    "3. *Drift of past stages' latents* (table under the verdicts): how far an earlier dataset's latents "
    "moved while VASE learned the later ones -- what a policy trained on them would see change.",
    "4. *Latent usage* and *environment inference* (figures): which latents each environment uses, and "
    "whether VASE allocated an environment where the data changed.",
)
"""The report's opening: where a reader should look first."""
INFO_MIN_NATS = 1.0
"""Below this NLL gap (shuffled z minus z, nats/image) the report flags latents that carry ~no information."""
N_CROSS = 8
"""Held-out images per dataset in the cross-domain reconstruction figure."""


@dataclass(frozen=True)
class Figure:
    """One report figure: file name, heading and the sentence that tells a reader how to read it."""

    key: str
    filename: str
    title: str
    how_to_read: str


FIGURES = (
    Figure(
        "traversals",
        "latent_traversals.png",
        "Latent traversals per environment (Fig. 2 top)",
        "Each panel starts from one held-out image of a dataset and sweeps one latent (row) from -2 to 2 "
        "with the others fixed, decoded under that dataset's environment: a row that changes one "
        "property (position, class, thickness) is a disentangled factor, a constant row is a latent the "
        "environment ignores; the row colour is the latent's state in that environment "
        "(green used, orange active but unused, red masked).",
    ),
    Figure(
        "cross",
        "cross_reconstructions.png",
        "Cross-domain reconstructions (Fig. 4B / 7)",
        "The first row of each panel holds held-out inputs of one dataset and every further row decodes "
        "the same latents as another environment: shared semantics show as kept position/identity "
        "across rows, and a forgotten environment shows as blurry or wrong reconstructions in its own row.",
    ),
    Figure(
        "atypicality",
        "atypicality.png",
        "Atypicality profile (Fig. 2 bottom)",
        "Each line is the atypicality alpha_n of one latent on the training batch; a latent whose line "
        "crosses the dashed lambda1 line becomes masked for the current environment and is unmasked "
        "only when it drops below the dotted lambda0 line, so spikes right after a dashed stage "
        "boundary mean the new data look atypical to the old latents.",
    ),
    Figure(
        "probes",
        "probe_curves.png",
        "Probe accuracy and position error (Fig. 2 bottom, Table 1)",
        "Each line is a probe trained on the latents for one dataset and scored on held-out data: a "
        "line that rises during its dataset's stage and stays level after the next dashed boundary "
        "means no forgetting, a drop (or a rise in MSE) after it is catastrophic forgetting.",
    ),
    Figure(
        "usage",
        "latent_usage.png",
        "Latent usage per environment",
        "Columns are the environments VASE allocated (labelled with the datasets the log sent to them) "
        "and rows the latents: green latents carry that environment's factors, so a green row shared "
        "by two columns is a factor shared across environments, and a column without green learned "
        "nothing.",
    ),
    Figure(
        "usage_training",
        "latent_usage_over_training.png",
        "Latent usage over training",
        "Each column is a logged batch and shows the state of every latent in the environment inferred "
        "for it, so you can see latents being claimed (turning green) within a stage and the mask "
        "switching at the dashed stage boundaries.",
    ),
    Figure(
        "env_inference",
        "environment_inference.png",
        "Environment inference over training",
        "Each dot is the environment index Algorithm 1 chose for a logged batch, coloured by the dataset "
        "it really came from: ideal inference is one flat level per dataset changing exactly at the "
        "dashed boundaries, and stars mark allocations of new environments.",
    ),
    Figure(
        "losses",
        "losses.png",
        "Loss curves",
        "The top panel is the reconstruction NLL of the training batch, the middle one compares the KL "
        "with the capacity target C of eq. 3 (the KL should track C from below once C is large), and "
        "the bottom one shows the smaller penalty terms on a log scale.",
    ),
)
"""Every figure of the report, in order."""


def make_figures(run: LoadedRun, fig_dir: str) -> dict[str, str]:
    """Draw every figure of :data:`FIGURES` into ``fig_dir``; returns figure key -> PNG path."""
    os.makedirs(fig_dir, exist_ok=True)
    stages = plots.Stages(tuple(run.settings.sequence), run.settings.steps_per_env)
    learner, mk, mem = run.learner, run.config.mask, run.learner.memory
    log_envs = stage_environments(run.log, run.settings.sequence)
    names = env_datasets(run.log, run.settings.sequence)
    batches = {name: held_out(run, name, N_CROSS)[0] for name in run.datasets}
    envs = {
        name: env if env is not None else int(learner.environment_probabilities(batches[name]).argmax())
        for name, env in log_envs.items()
    }
    seeds = {k: b[0] for k, b in batches.items()}
    n = max(learner.memory.n_seen, 1)
    draw: dict[str, Callable[[str], str]] = {
        "traversals": lambda p: plots.plot_latent_traversals(learner, seeds, envs, p),
        "cross": lambda p: plots.plot_cross_reconstructions(learner, batches, names, p),
        "atypicality": lambda p: plots.plot_atypicality(run.log, stages, mk.lambda0, mk.lambda1, p),
        "probes": lambda p: plots.plot_probe_curves(run.probes, stages, p),  # type: ignore[arg-type]
        "usage": lambda p: plots.plot_latent_usage(learner.applied_masks()[:n].cpu(), mem.used[:n], names, p),
        "usage_training": lambda p: plots.plot_usage_over_training(run.log, stages, p),
        "env_inference": lambda p: plots.plot_environment_inference(run.log, stages, p),
        "losses": lambda p: plots.plot_losses(run.log, stages, p),
    }
    out = {}
    for fig in FIGURES:
        if fig.key == "probes" and run.probes is None:
            continue
        out[fig.key] = draw[fig.key](os.path.join(fig_dir, fig.filename))
    return out


# ------------------------------------------------------------------------------------------ markdown
def _fmt(v: Any, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` significant digits, None as "n/a"."""
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if abs(v) < 1e-9:  # estimator round-off (e.g. MIG 5e-17) reads as zero
            return "0"
        return f"{v:.{digits}g}" if abs(v) < 10**digits else f"{v:.0f}"
    return str(v)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """Markdown table lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]


def _settings_rows(run: LoadedRun) -> list[list[Any]]:
    cfg, s, t = run.config, run.settings, run.timing or {}
    lc, mc = cfg.loss, cfg.model
    dream = "on" if cfg.ablation.dream else "off"
    if cfg.ablation.dream and not cfg.dream.decoder_proximity:
        dream = "on, encoder term only (SD-[41])"
    objective = f"capacity eq. 3: gamma={lc.gamma}, C_max={lc.c_max}, {lc.capacity_mode}"
    model = (
        f"{mc.image_size}x{mc.image_size}x{mc.channels}, {mc.latent_dim} latents, "
        f"max {mc.max_environments} environments, {mc.likelihood} decoder"
    )
    wall = t.get("train_seconds")
    return [
        ["preset", cfg.preset],
        ["sequence", " → ".join(s.sequence)],
        ["steps per dataset / total logged", f"{s.steps_per_env} / {run.log[-1]['step'] if run.log else 0}"],
        ["ablation (S env inference, D dreaming, A mask)", f"{cfg.ablation.code} (dreaming {dream})"],
        ["objective", "entangled ELBO (beta=1)" if lc.entangled else objective],
        ["model", model],
        ["lambda0 / lambda1 / kappa / tau",
         f"{cfg.mask.lambda0} / {cfg.mask.lambda1} / {cfg.inference.kappa} / {cfg.dream.tau}"],
        ["seed", cfg.seed],
        ["device (threads)", f"{t.get('device', '?')} ({t.get('threads', '?')})"],
        ["training wall time", "not recorded (no timing.json)" if wall is None else f"{wall / 60:.1f} min"],
    ]  # fmt: skip


def _summary(run: LoadedRun, ev: dict[str, Any]) -> list[str]:
    """Bullet points: environments vs datasets, information warnings, empty environments, forgetting."""
    inf = ev["env_inference"] or {}
    lines = [
        (
            f"- {len(ev['environments'])} environment(s) allocated for {len(run.datasets)} dataset(s); "
            f"the logged environment inference matches the true dataset boundaries on "
            f"{100 * inf.get('accuracy', 0):.1f}% of logged batches (up to relabelling)."
        )
    ]
    lines += [
        f"- **Warning: the latents carry almost no information about {name}**: shuffling z across the "
        f"batch changes the reconstruction NLL by only {d['information']:.2f} nats/image (KL "
        f"{d['kl']:.2f} nats) -- a KL target can be met without encoding x."
        for name, d in ev["datasets"].items()
        if d["information"] < INFO_MIN_NATS
    ]
    lines += [
        f"- **Warning: environment s{e['env']} has no latent that is both active and used** "
        f"({e['n_active']} active, {e['n_used']} used): its reconstructions ignore every latent."
        for e in ev["environments"]
        if e["n_used_and_active"] == 0
    ]
    for metric, label in (("accuracy", "object-ID probe accuracy (%)"), ("position_mse", "position MSE")):
        f = ev["forgetting"].get(metric)
        if f:
            best, change = _fmt(f["mean_best_during"]), _fmt(f["mean_change"])
            lines.append(
                f"- {label}: mean best during stage {best}, mean change after {change} "
                "(negative accuracy / positive MSE change = forgetting)."
            )
    return lines  # fmt: skip


def _dataset_rows(ev: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, d in ev["datasets"].items():
        dis = d["disentanglement"] or {}
        rows.append([name, d["log_env"], f"s{d['inferred_env']} ({100 * d['env_probability']:.0f}%)",
                     d["nll_z"], d["nll_shuffled"], d["information"], d["kl"], dis.get("mig"),
                     dis.get("dci_disentanglement"), dis.get("dci_completeness"),
                     dis.get("dci_informativeness"),
                     ", ".join(dis.get("factors", [])) or None])  # fmt: skip
    return rows


def _probe_rows(ev: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, d in ev["datasets"].items():
        a, m = d["probes"].get("accuracy", {}), d["probes"].get("position_mse", {})
        rows.append([name, a.get("final"), a.get("best_during"), a.get("change"),
                     m.get("final"), m.get("best_during"), m.get("change")])  # fmt: skip
    a, m = ev["forgetting"].get("accuracy", {}), ev["forgetting"].get("position_mse", {})
    return rows + [["**mean**", None, a.get("mean_best_during"), a.get("mean_change"),
                    None, m.get("mean_best_during"), m.get("mean_change")]]  # fmt: skip


def _metric_sections(run: LoadedRun, ev: dict[str, Any]) -> list[str]:
    names = env_datasets(run.log, run.settings.sequence)
    inf = ev["env_inference"] or {}
    out = [SECTIONS[2], "", SECTIONS[3], "",
           (f"{ev['n_samples']} held-out images per dataset. *Information check*: reconstruction NLL with "
           "z = mu(x) vs with z shuffled across the batch, both decoded under the dataset's environment "
           "(log); their gap is what the latents tell that decoder about x. MIG/DCI use mu(x) and the "
           "listed ground-truth factors."), ""]  # fmt: skip
    out += _table(["dataset", "env (log)", "env (classifier)", "NLL z", "NLL shuffled z", "information", "KL",
                   "MIG", "DCI D", "DCI C", "DCI I", "factors"], _dataset_rows(ev))  # fmt: skip
    out += ["", SECTIONS[4], "",
            ("Probes on z ~ q(z|x) (A.6): best value during the dataset's first stage and CHANGE = worst "
            "value after it minus that best (Table 1)."), ""]  # fmt: skip
    if run.probes is None:
        out += ["No probes were trained in this run (probes.json is missing: trained with --no-probes?)."]
    else:
        out += _table(["dataset", "acc. final (%)", "acc. max during", "acc. change after", "MSE final",
                       "MSE min during", "MSE change after"], _probe_rows(ev))  # fmt: skip
    out += [
        "",
        SECTIONS[5],
        "",
        (
            f"Logged environment inference accuracy {100 * inf.get('accuracy', 0):.1f}% "
            f"({inf.get('n_inferred')} inferred vs {inf.get('n_true')} true environments; best mapping "
            f"{inf.get('mapping')}; environments appeared by logged steps "
            f"{inf.get('allocated_by_step')})."
        ),
        "",
    ]
    rows = [[f"s{e['env']}", "/".join(names.get(e["env"], [])) or None, e["steps"], e["n_active"],
             e["n_used"], e["n_used_and_active"], " ".join(f"z{i}" for i in e["latents"]) or None]
            for e in ev["environments"]]  # fmt: skip
    return out + _table(["env", "datasets (log)", "steps", "active", "used", "used & active",
                         "used & active latents"], rows)  # fmt: skip


def _quality_section(ev: dict[str, Any]) -> list[str]:
    """The offline-probe section that leads the report (empty when the run has no stage checkpoints)."""
    if not ev.get("quality"):
        return []
    return [
        "## Representation quality (offline probes, the headline numbers)",
        "",
        *quality_markdown(ev["quality"]),
    ]


def render_markdown(run: LoadedRun, ev: dict[str, Any], figures: dict[str, str]) -> str:
    """The report text; figure links are relative to ``run.run_dir``."""
    title = os.path.basename(os.path.normpath(run.run_dir))
    out = [f"# VASE run report: `{title}`", "",
           ("VASE (Achille et al., NeurIPS 2018) trained continually on the sequence below without task "
           "labels. Numbers are on held-out data; NLL and KL in nats per image."), "",
           *WHAT_TO_LOOK_AT, "", *_quality_section(ev), SECTIONS[0], "", *_summary(run, ev), "", SECTIONS[1],
           ""]  # fmt: skip
    out += _table(["setting", "value"], _settings_rows(run))
    out += ["", *_metric_sections(run, ev), "", SECTIONS[6], ""]
    for fig in FIGURES:
        if fig.key in figures:
            rel = os.path.relpath(figures[fig.key], run.run_dir)
            out += [f"### {fig.title}", "", fig.how_to_read, "", f"![{fig.title}]({rel})", ""]
    return "\n".join(out)


def write_report(run_dir: str, settings: EvalSettings | None = None) -> str:
    """Evaluate ``run_dir``, draw its figures into ``run_dir/figures/`` and write ``run_dir/report.md``.

    Also writes ``run_dir/evaluation.json``. Returns the report's path.
    """
    es = settings or EvalSettings()
    with torch_threads(es.threads):
        run = load_run(run_dir, device=es.device)
        ev = evaluate_loaded(run, es)
        figures = make_figures(run, os.path.join(run_dir, "figures"))
    write_evaluation(run_dir, ev)
    path = os.path.join(run_dir, "report.md")
    with open(path, "w") as f:
        f.write(render_markdown(run, ev, figures))
    return path
