"""Dealing with ambiguity, Achille et al. (2018) Fig. 5A: faces (CelebA) -> inverse Fashion.

VASE (SDA, disentangled) is trained on grayscale 32x32 CelebA face patches, then on inverse Fashion,
with Table 2's row "CelebA -> inverted Fashion": gamma = 200, C_max = 20, lambda = 0.8, kappa = 1.1.
lambda0 (hysteresis, A.2) keeps the cpu preset's ratio lambda0 / lambda1 = 0.5 (0.4); the capacity
penalty keeps the cpu preset's one-sided form (``capacity_mode="upper"``, see vase_rl/config.py).

Step-dependent values, measured in datasets: Table 2 reaches C_max after 1 / (delta_C * steps per dataset)
= 1.96 datasets (the ablation row: 1.06) and syncs the snapshot every tau = 500 of 30k steps (ablation:
500 of 150k, 5x rarer per dataset). The cpu preset compresses the ablation row to a ramp of 0.6 datasets
and tau = 0.1 dataset; this experiment multiplies those by the same Table-2 ratios (ramp 0.6 * 1.96 / 1.06
= 1.11 datasets, tau = 0.5 dataset) at whatever ``--steps-per-env`` is used.

After training, ambiguous inputs x_w = w * face + (1 - w) * inverse-Fashion (w = 0 ... 1) are presented in
batches of 64 mixed with real samples of one dataset (the context) at several proportions. Measured:
* q(s = faces | x) of the auxiliary classifier on the ambiguous samples (per sample, no context effect by
  construction) and averaged over the whole batch (the s-hat score of Algorithm 1);
* the Algorithm-1 / eq. 6 decision on the whole batch (``ContinualLearner.infer_environment``: the
  environment that passes the kappa and mask tests under the learner's inference policy; "new" when none
  does) -- where the context acts, via the batch atypicality;
* mu and sigma of q(z|x_w) for the faces-specific, Fashion-specific and shared latents (Fig. 5A top);
* reconstructions of x_w under either environment (Fig. 5A middle).

    # complete experiment (3 seeds, cpu preset's 2,500 steps per dataset):
    VASE_DATA_DIR=/work/shared/data nohup python benchmarks/ambiguity.py --seeds 0 1 2 > amb.log 2>&1 &
    python benchmarks/ambiguity.py --steps-per-env 800     # what this session ran
    python benchmarks/ambiguity.py --summarise
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cli_args
import common
import numpy as np
import paper_common as pc
import paper_tables as pt
import torch

EXPERIMENT = "ambiguity"
SEQUENCE = ("faces", "inverse-fashion")
WEIGHTS = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
"""Interpolation weight w of the face in x_w = w * face + (1 - w) * inverse Fashion."""
CONTEXTS = (
    ("faces", 0.75),
    ("faces", 0.5),
    ("faces", 0.25),
    ("none", 0.0),
    ("inverse-fashion", 0.25),
    ("inverse-fashion", 0.5),
    ("inverse-fashion", 0.75),
)
"""(dataset of the real samples, their fraction of the batch); the rest of the batch is ambiguous."""
BATCH, REPEATS = 64, 4
RAMP_DATASETS = 0.6 * (1 / (1.7e-5 * 30_000)) / (1 / (6.3e-6 * 150_000))
"""C ramp length in datasets: the cpu preset's 0.6 x Table-2 ratio (ambiguity row / ablation row)."""
TAU_DATASETS = 0.1 * (500 / 30_000) / (500 / 150_000)
"""Snapshot period in datasets: the cpu preset's 0.1 (250 of 2,500) x the Table-2 ratio."""


@dataclass
class Args(pc.VaseArgs):
    """VASE only (SDA, disentangled), one seed, 2,500 steps per dataset by default."""


def overrides(steps_per_env: int) -> dict[str, dict[str, Any]]:
    """Table 2 values of this experiment with the step-dependent ones scaled (see the module docstring)."""
    return {
        "loss": {"gamma": 200.0, "c_max": 20.0, "delta_c": 1.0 / (RAMP_DATASETS * steps_per_env)},
        "mask": {"lambda0": 0.4, "lambda1": 0.8},
        "inference": {"kappa": 1.1},
        "dream": {"tau": max(1, round(TAU_DATASETS * steps_per_env))},
    }


# ------------------------------------------------------------------------------------------ analysis
def _images(name: str, n: int, size: int, seed: int) -> torch.Tensor:
    """n held-out images of ``name`` as floats (n, H, W, 1) in [0, 1]."""
    from vase_rl.runs.training import make_sampler

    imgs, _ = make_sampler(name, size, "test", seed).sample(n)
    return torch.as_tensor(imgs, dtype=torch.float32) / 255.0


def mix(w: float, face: torch.Tensor, fashion: torch.Tensor) -> torch.Tensor:
    """Ambiguous input x_w = w * face + (1 - w) * fashion, clamped to [0, 1] against rounding."""
    return (w * face + (1 - w) * fashion).clamp(0.0, 1.0)


def algorithm1(learner: Any, x: torch.Tensor) -> int:
    """Environment eq. 6 / Algorithm 1 assigns to batch x (B, C, H, W) without training; -1 = "new".

    The learner's own decision (every heuristic of its InferenceConfig), as a query that changes nothing;
    a batch that fails eq. 6 (pending, allocating or merging) is "new".
    """
    decision = learner.infer_environment(x)
    return -1 if decision.failure is not None else decision.env


@torch.no_grad()
def context_maps(learner: Any, faces: torch.Tensor, fashion: torch.Tensor, env_faces: int) -> dict[str, Any]:
    """Heatmaps (len(CONTEXTS), len(WEIGHTS)).

    Per-sample q(faces|x), batch q(faces), P(Alg. 1 = faces/new).
    """
    gen = torch.Generator().manual_seed(0)
    real = {"faces": faces, "inverse-fashion": fashion}
    n_seen = max(learner.memory.n_seen, 1)
    shape = (len(CONTEXTS), len(WEIGHTS))
    q_sample, q_batch, p_faces, p_new = (np.zeros(shape) for _ in range(4))
    for i, (ctx, frac) in enumerate(CONTEXTS):
        n_real = round(frac * BATCH)
        for j, w in enumerate(WEIGHTS):
            for _ in range(REPEATS):
                a = torch.randint(len(faces), (BATCH - n_real,), generator=gen)
                b = torch.randint(len(fashion), (BATCH - n_real,), generator=gen)
                amb = mix(w, faces[a], fashion[b])
                parts = [amb]
                if n_real:  # the real images of the context
                    parts.append(real[ctx][torch.randint(len(real[ctx]), (n_real,), generator=gen)])
                x = learner.preprocess(torch.cat(parts))
                _, _, hidden = learner.model.encoder(x)
                probs = torch.softmax(learner.model.classifier(hidden, n_seen), dim=1)[:, env_faces]
                q_sample[i, j] += float(probs[: len(amb)].mean()) / REPEATS
                q_batch[i, j] += float(probs.mean()) / REPEATS
                decision = algorithm1(learner, x)
                p_faces[i, j] += (decision == env_faces) / REPEATS
                p_new[i, j] += (decision == -1) / REPEATS
    return {
        "q_sample": q_sample.tolist(),
        "q_batch": q_batch.tolist(),
        "p_alg1_faces": p_faces.tolist(),
        "p_alg1_new": p_new.tolist(),
    }


@torch.no_grad()
def latent_stats(
    learner: Any, faces: torch.Tensor, fashion: torch.Tensor, envs: tuple[int, int]
) -> dict[str, Any]:
    """Mean mu and sigma of q(z|x_w) per latent and weight, and the latent groups (Fig. 5A top)."""
    used_f, used_i = (learner.memory.used[e] & learner.applied_mask(e).cpu() for e in envs)
    groups = {
        "faces-specific": (used_f & ~used_i),
        "fashion-specific": (used_i & ~used_f),
        "shared": (used_f & used_i),
    }
    mus, sigmas = [], []
    for w in WEIGHTS:
        mu, logvar = learner.encode(mix(w, faces, fashion), return_logvar=True)
        mus.append(mu.mean(0).tolist())
        sigmas.append((0.5 * logvar).exp().mean(0).tolist())
    members = {k: torch.nonzero(v).flatten().tolist() for k, v in groups.items()}
    return {"mu": mus, "sigma": sigmas, "groups": members}


def analyse(run_dir: str, spec: pc.RunSpec) -> dict[str, Any]:
    """Everything of Fig. 5A for a finished run; draws the PNGs and returns the numbers for the JSON."""
    from vase_rl.evaluation.evaluate import torch_threads
    from vase_rl.runs.loaded_run import load_run

    with torch_threads(1):
        run = load_run(run_dir)
        learner, size = run.learner, run.config.model.image_size
        envs = pc.stage_envs(run.log, len(SEQUENCE))
        env_faces, env_fashion = (e if e is not None else 0 for e in envs)
        faces, fashion = _images("faces", 256, size, 1), _images("inverse-fashion", 256, size, 2)
        result = {
            "env_faces": env_faces,
            "env_fashion": env_fashion,
            "n_envs": learner.memory.n_seen,
            "weights": list(WEIGHTS),
            "contexts": [list(c) for c in CONTEXTS],
            **context_maps(learner, faces, fashion, env_faces),
            "latents": latent_stats(learner, faces[:BATCH], fashion[:BATCH], (env_faces, env_fashion)),
        }
        out = pc.RESULTS / EXPERIMENT / spec.key
        out.mkdir(parents=True, exist_ok=True)
        plot_reconstructions(
            learner, faces[:3], fashion[:3], (env_faces, env_fashion), out / "reconstructions.png"
        )
    plot_heatmaps(result, out / "heatmaps.png")
    plot_latents(result, out / "latents.png")
    pt.shrink_pngs(out)
    return result


# ------------------------------------------------------------------------------------------ figures
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_heatmaps(res: dict[str, Any], path: Path) -> None:
    """Fig. 5A bottom: x = face weight w, y = context (real samples in the batch), colour = probability."""
    plt = _plt()
    keys = (
        ("q_sample", "classifier q(s=faces|x)\non the ambiguous samples"),
        ("q_batch", "classifier q(s=faces|x)\naveraged over the batch (Alg. 1's s-hat)"),
        ("p_alg1_faces", "P(Algorithm 1 / eq. 6 assigns\nthe batch to faces)"),
        ("p_alg1_new", "P(Algorithm 1 finds no match:\n'new environment')"),
    )
    fig, axes = plt.subplots(1, len(keys), figsize=(18, 4.6))
    labels = [f"{int(f * 100)}% real {c}" if c != "none" else "ambiguous only" for c, f in res["contexts"]]
    for ax, (key, title) in zip(axes, keys, strict=True):
        im = ax.imshow(np.array(res[key]), vmin=0, vmax=1, cmap="coolwarm", aspect="auto")
        ax.set_xticks(range(len(res["weights"])))
        ax.set_xticklabels([f"{w:.1f}" for w in res["weights"]], fontsize=7)
        ax.set_yticks(range(len(labels)))
        ax.set_yticklabels(labels if ax is axes[0] else [], fontsize=8)
        ax.set_xlabel("w (0 = inverse Fashion, 1 = face)")
        ax.set_title(title, fontsize=9)
        for (i, j), v in np.ndenumerate(np.array(res[key])):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=axes, fraction=0.02)
    fig.suptitle(
        y=1.06,
        t=f"Ambiguous inputs in context (faces = s{res['env_faces']}, inverse Fashion = "
        f"s{res['env_fashion']}, {res['n_envs']} envs allocated)",
    )
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def plot_latents(res: dict[str, Any], path: Path) -> None:
    """Fig. 5A top: mean mu (line) +- mean sigma (band) of each used latent vs w, coloured by group."""
    plt = _plt()
    w, mu, sigma = np.array(res["weights"]), np.array(res["latents"]["mu"]), np.array(res["latents"]["sigma"])
    colours = {"faces-specific": "C0", "fashion-specific": "C3", "shared": "0.4"}
    fig, (ax, ax_s) = plt.subplots(1, 2, figsize=(12, 4.5))
    for group, latents in res["latents"]["groups"].items():
        for k, n in enumerate(latents):
            label = f"{group} ({len(latents)})" if k == 0 else None
            ax.plot(w, mu[:, n], color=colours[group], label=label)
            band = (mu[:, n] - sigma[:, n], mu[:, n] + sigma[:, n])
            ax.fill_between(w, *band, color=colours[group], alpha=0.12)
        if latents:
            ax_s.plot(w, sigma[:, latents].mean(1), color=colours[group], marker="o", label=group)
    ax.set_xlabel("w (0 = inverse Fashion, 1 = face)")
    ax.set_ylabel("mean mu over 64 inputs (band: +- mean sigma)")
    ax.set_title("q(z|x_w) of the used latents")
    ax.legend(fontsize=8)
    ax_s.set_xlabel("w (0 = inverse Fashion, 1 = face)")
    ax_s.set_ylabel("mean sigma of the group")
    ax_s.set_title("posterior std vs ambiguity")
    ax_s.legend(fontsize=8)
    for a in (ax, ax_s):
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


@torch.no_grad()
def plot_reconstructions(
    learner: Any, faces: torch.Tensor, fashion: torch.Tensor, envs: tuple[int, int], path: Path
) -> None:
    """Fig. 5A middle: for 3 face/Fashion pairs, x_w and its reconstructions under either environment."""
    plt = _plt()
    fig, axes = plt.subplots(9, len(WEIGHTS), figsize=(len(WEIGHTS) * 0.9, 9 * 0.95))
    for p in range(len(faces)):
        x = torch.stack([mix(w, faces[p], fashion[p]) for w in WEIGHTS])
        mu = learner.encode(x)
        as_env = [learner.decode(mu * learner.applied_mask(e).to(mu.dtype), e) for e in envs]
        rows = [learner.preprocess(x), *as_env]
        for r, imgs in enumerate(rows):
            for j in range(len(WEIGHTS)):
                ax = axes[3 * p + r, j]
                ax.imshow(imgs[j, 0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if j == 0:
                    names = ["input x_w", f"as faces (s{envs[0]})", f"as inv. F. (s{envs[1]})"]
                    ax.set_ylabel(names[r], fontsize=6)
                if 3 * p + r == 8:
                    ax.set_xlabel(f"w={WEIGHTS[j]:.1f}", fontsize=7)
    fig.suptitle("Ambiguous inputs and their reconstructions under either environment", fontsize=9)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


# ------------------------------------------------------------------------------------------ run, summary
def run(args: Args) -> None:
    """Train and analyse every (row, objective, seed) without a result JSON."""
    specs = pc.make_specs(EXPERIMENT, args, SEQUENCE, overrides(args.steps_per_env))
    pc.run_all(specs, args.runs_dir, args.jobs, extra=analyse)


def summarise(args: Args) -> None:
    """``ambiguity.md`` from the result JSONs (with ``--summarise``, also the figures of runs whose folder
    is missing)."""
    results, out, text = pt.summary_start(
        EXPERIMENT, "# Ambiguity: faces (CelebA) -> inverse Fashion (Fig. 5A)"
    )
    text += [
        (
            f"Overrides of the cpu preset at {results[0]['spec']['steps_per_env'] if results else '?'} "
            f"steps per dataset: {overrides(results[0]['spec']['steps_per_env']) if results else '-'} "
            "(see the script's docstring for the scaling)."
        ),
        "",
    ]
    for r in results:
        spec = pc.spec_from_record(r)
        if args.summarise and pc.needs_figures(r, out / spec.key):
            r["extra"] = analyse(r["run_dir"], spec)
        a = r["extra"]
        q = np.array(a["q_sample"])
        mid = CONTEXTS.index(("none", 0.0))
        text += [
            f"## {spec.row} ({spec.mode}), seed {spec.seed}",
            "",
            (
                f"Environments allocated: {a['n_envs']}; faces -> s{a['env_faces']}, inverse Fashion -> "
                f"s{a['env_fashion']} (majority per stage); latent groups: {a['latents']['groups']}."
            ),
            "",
            common.markdown_table(
                ["w (face weight)", *(f"{w:.1f}" for w in a["weights"])],
                [
                    ["q(s=faces given x_w), no context", *(f"{v:.2f}" for v in q[mid])],
                    ["P(Alg. 1 = faces), no context", *(f"{v:.2f}" for v in a["p_alg1_faces"][mid])],
                    ["P(Alg. 1 = faces), 75% real faces", *(f"{v:.2f}" for v in a["p_alg1_faces"][0])],
                    [
                        "P(Alg. 1 = faces), 75% real inv. Fashion",
                        *(f"{v:.2f}" for v in a["p_alg1_faces"][-1]),
                    ],
                ],
            ),
            "",
            f"![heatmaps]({spec.key}/heatmaps.png)",
            "",
            f"![latents]({spec.key}/latents.png)",
            "",
            f"![reconstructions]({spec.key}/reconstructions.png)",
            "",
        ]
    pt.write_summary(out / "ambiguity.md", text)


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    pc.run_then_summarise(args, run, summarise)


if __name__ == "__main__":
    main()
