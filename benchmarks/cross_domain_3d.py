"""Semantic transfer across 3-D levels (Fig. 4A of Achille et al. 2018): VASE vs the entangled baseline.

Protocol, per (method, seed):
  1. VASE (``vase``: Table 2's NatLab -> EDE disentangled values; ``entangled``: the beta=1 ELBO with that
     row's entangled values; both scaled to the CPU budget by ``bench3d_common.vase_config``) learns online
     through :class:`~vase_rl.rl.wrapper.VASEObservation` from rollouts of a **uniform random policy** in
     level A (``--level-a``, default the outdoor, NatLab-like MiniWorld level) until the learner has taken
     ``steps_per_level`` train steps, then in level B (``--level-b``, default the indoor, EDE-like level)
     through a new wrapper (own rollout buffer, same learner; no task labels: the learner infers that B is
     a new environment, eq. 6).
  2. Held-out *paired* episodes: the MiniWorld levels share seeded geometry and motion, so the same seed and
     actions give the same agent states in both levels, rendered differently. On them, after A and after B:
     * probes (ridge regression and the 2x256 MLP of A.6) trained on one level's latent means mu(x) for the
       agent's heading (sin, cos) and position (x, z), and for what is in view: the target and the nearest
       obstacle (image x, proximity), tested on held-out episodes of the same level and of the other level
       (R^2; 1 = perfect, 0 = the test mean);
     * cross-domain reconstructions x_A -> decode(mu(x_A), s_B) compared with the paired frame x_B of the
       same state (MSE) and with unpaired frames x_B of other states: paired / unpaired < 1 means the
       cross-reconstruction renders *that* state in the other level.
One JSON (+ one small .npz of figure images) per finished (method, seed) in ``--out-dir`` (skipped when
present: rerunning resumes); ``--summarise`` rebuilds ``cross_domain.md`` and the PNGs. DM Lab levels
(``--level-a natlab --level-b ede`` or level names) work when ``deepmind_lab`` is installed; they are not
paired, so only the probes are reported for them.

    python benchmarks/cross_domain_3d.py [--jobs 2] [--summarise]
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench3d_common as b3d
import cli_args
import common
import numpy as np

METHODS = ("vase", "entangled")
FOLDER = b3d.RESULTS / "cross_domain"


@dataclass
class Args(b3d.LevelsArgs):
    methods: tuple[str, ...] = METHODS
    """Methods: vase (disentangled, eq. 3) and entangled (beta=1 ELBO)."""
    steps_per_level: int = 600
    """Learner train steps (batch 64) per level (the paper: 60k)."""
    train_every: int = 8
    """Frames between learner steps (replay ratio 64 / 8 = 8 views per frame)."""
    buffer_size: int = 4096
    """Rollout buffer of the wrapper (frames)."""
    episode_steps: int = 100
    """Episode length of the training rollouts (short episodes: more layouts per frame budget)."""
    probe_episodes: int = 40
    """Held-out paired episodes (seeds 100000+i) for probes and reconstructions."""
    probe_episode_steps: int = 50
    """Random-policy steps per held-out episode."""
    test_episodes: int = 10
    """Of the held-out episodes, the last ones are the probes' test set (the others train them)."""
    mlp_steps: int = 1500
    """Adam steps (lr 6e-4, batch 64, A.6) of each MLP probe."""
    figure_columns: int = 8
    """Test frames shown in the reconstruction figure."""
    out_dir: str = str(FOLDER / "runs")
    """Folder of the per-run JSON/NPZ files."""
    runs_dir: str = "/tmp/vase_runs/3d/cross_domain"
    """Learner checkpoints after each level (outside the repository; "" = none)."""


# ------------------------------------------------------------------------------------ data
def collect_episodes(args: Args, level: str) -> dict[str, Any]:
    """Held-out random-policy episodes: frames (N, H, W, C) uint8, factor groups (N, k), episode ids (N,).

    Episode i resets with seed 100000+i and draws its actions from an RNG with the same seed, so two
    MiniWorld levels give the same states frame for frame.
    """
    env = args.make_level(level)
    try:
        return b3d.random_episodes(env, 100_000, args.probe_episodes, args.probe_episode_steps)
    finally:
        env.close()


def train_phase(args: Args, learner: Any, level: str, seed: int) -> dict[str, Any]:
    """Random-policy rollouts of ``level`` through ``VASEObservation`` until the learner took
    ``steps_per_level`` more train steps; returns counters and the inference trace."""
    from vase_rl.rl.wrapper import VASEObservation

    env = VASEObservation(
        args.make_level(level, max_episode_steps=args.episode_steps),
        learner,
        learn=True,
        train_every=args.train_every,
        buffer_size=args.buffer_size,
        seed=seed,
    )
    rng, target, start = np.random.default_rng(seed), learner.step + args.steps_per_level, time.perf_counter()
    trace: list[dict[str, Any]] = []
    next_trace = learner.step + 100
    env.reset(seed=seed)
    while learner.step < target:
        _, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        if terminated or truncated:
            env.reset()
        if learner.step >= next_trace:  # every 100 learner steps: what eq. 6 decided, losses, capacity
            stats, next_trace = env.vase_stats(), next_trace + 100
            trace.append({k: stats.get(k) for k in ("step", "env", "n_envs", "recon", "kl", "C", "reason")})
    stats = env.vase_stats()
    out = {
        "level": level,
        "frames": stats["env_steps"],
        "train_s": stats["train_time_s"],
        "trace": trace,
        "wall_s": time.perf_counter() - start,
        "env": learner.current_env,
        "n_envs": learner.memory.n_seen,
    }
    env.close()
    return out


# ------------------------------------------------------------------------------------ probes
def r2_score(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column: pred, y (N, k) -> (k,); 0 = predicting y's mean."""
    sst = ((y - y.mean(0)) ** 2).sum(0)
    return 1.0 - ((pred - y) ** 2).sum(0) / np.maximum(sst, 1e-12)


def fit_ridge(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> Any:
    """Ridge regression on standardised x; the penalty is picked on the last 20% of training episodes."""
    mean, std = x.mean(0), x.std(0) + 1e-6

    def solve(xs: np.ndarray, ys: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
        xc, ym = (xs - mean) / std, ys.mean(0)
        w = np.linalg.solve(xc.T @ xc + lam * len(xc) * np.eye(xc.shape[1]), xc.T @ (ys - ym))
        return w, ym - ((xs - mean) / std).mean(0) @ w

    cut = np.unique(groups)[int(0.8 * len(np.unique(groups)))]
    fit, val = groups < cut, groups >= cut
    scores = {}
    for lam in (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0):
        w, b = solve(x[fit], y[fit], lam)
        scores[lam] = float(r2_score((x[val] - mean) / std @ w + b, y[val]).mean())
    w, b = solve(x, y, max(scores, key=lambda k: scores[k]))
    return lambda xt: (xt - mean) / std @ w + b


def fit_mlp(x: np.ndarray, y: np.ndarray, steps: int, seed: int) -> Any:
    """A.6's 2x256 ReLU MLP (``vase_rl.probing.probes.Probe``), Adam 6e-4, batch 64, on standardised x and y."""
    import torch

    from vase_rl.probing.probes import Probe

    xm, xs, ym, ys = x.mean(0), x.std(0) + 1e-6, y.mean(0), y.std(0) + 1e-6
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = Probe(x.shape[1], y.shape[1], "regressor")
    opt = torch.optim.Adam(probe.parameters(), lr=6e-4)
    xt, yt = (torch.as_tensor(v, dtype=torch.float32) for v in ((x - xm) / xs, (y - ym) / ys))
    for _ in range(steps):
        idx = torch.randint(len(xt), (64,), generator=gen)
        opt.zero_grad()
        probe.loss(xt[idx], yt[idx]).backward()
        opt.step()

    def predict(xq: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return probe(torch.as_tensor((xq - xm) / xs, dtype=torch.float32)).numpy() * ys + ym

    return predict


def probe_transfer(
    args: Args, mu: dict[str, np.ndarray], data: dict[str, dict[str, Any]], seed: int, mlp: bool
) -> dict[str, Any]:
    """R^2 per factor group of probes trained on one level's training episodes and tested on the test
    episodes of both levels: ``{probe: {"A->A": {group: r2}, "A->B": ..., "B->B": ..., "B->A": ...}}``."""
    names = list(data["A"]["factors"])
    widths = [data["A"]["factors"][g].shape[1] for g in names]
    bounds = np.cumsum([0, *widths])
    out: dict[str, Any] = {}
    fitters = {"ridge": lambda x, y, g: fit_ridge(x, y, g)}
    if mlp:
        fitters["mlp"] = lambda x, y, g: fit_mlp(x, y, args.mlp_steps, seed)
    for probe, fitter in fitters.items():
        res: dict[str, Any] = {}
        for src, dst in (("A", "B"), ("B", "A")):
            d = data[src]
            y = np.concatenate([d["factors"][g] for g in names], axis=1)
            train = d["episode"] < args.probe_episodes - args.test_episodes
            predict = fitter(mu[src][train], y[train], d["episode"][train])
            for test in (src, dst):
                t = data[test]
                mask = t["episode"] >= args.probe_episodes - args.test_episodes
                yt = np.concatenate([t["factors"][g] for g in names], axis=1)[mask]
                r2 = r2_score(predict(mu[test][mask]), yt)
                res[f"{src}->{test}"] = {
                    g: float(r2[bounds[i] : bounds[i + 1]].mean()) for i, g in enumerate(names)
                }
        out[probe] = res
    return out


# ------------------------------------------------------------------------------------ evaluation
def evaluate(
    args: Args,
    learner: Any,
    data: dict[str, dict[str, Any]],
    envs: dict[str, int],
    paired: bool,
    seed: int,
    mlp: bool,
) -> tuple[dict[str, Any], np.ndarray]:
    """Probes, inferred environments and (when ``paired``) cross-domain reconstruction errors; also the
    figure's images (6, K, S, S, 3) uint8: x_A, A as A, A as B, x_B, B as B, B as A."""
    import torch

    from vase_rl.evaluation.evaluate import eval_codes

    x = {k: learner.preprocess(d["frames"]) for k, d in data.items()}
    mu = {k: learner.encode(v) for k, v in x.items()}
    probes = probe_transfer(args, {k: v.numpy() for k, v in mu.items()}, data, seed, mlp)
    out: dict[str, Any] = {"probes": probes}
    out["inferred_env"] = {k: int(learner.environment_probabilities(v).argmax()) for k, v in x.items()}

    def decode(src: str, dst: str) -> torch.Tensor:
        return learner.decode(eval_codes(learner, mu[src], envs[dst]), envs[dst])

    def mse(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(((a - b) ** 2).mean())

    recon = {}
    for src, dst in (("A", "B"), ("B", "A")):
        recon[f"{src}->{src}"] = mse(decode(src, src), x[src])
        recon[f"mean_frame_{src}"] = mse(x[src].mean(0, keepdim=True), x[src])
        if paired:
            cross = decode(src, dst)
            shift = len(x[dst]) // 2  # half the episodes away: frames of other states
            recon[f"{src}->{dst}_paired"] = mse(cross, x[dst])
            recon[f"{src}->{dst}_unpaired"] = mse(cross, x[dst].roll(shift, 0))
            recon[f"{src}->{dst}_ratio"] = recon[f"{src}->{dst}_paired"] / recon[f"{src}->{dst}_unpaired"]
    out["recon_mse"] = recon
    test = np.flatnonzero(data["A"]["episode"] >= args.probe_episodes - args.test_episodes)
    cols = test[np.linspace(0, len(test) - 1, args.figure_columns).round().astype(int)]
    rows = [
        x["A"][cols],
        decode("A", "A")[cols],
        decode("A", "B")[cols],
        x["B"][cols],
        decode("B", "B")[cols],
        decode("B", "A")[cols],
    ]
    images = (torch.stack(rows).permute(0, 1, 3, 4, 2).numpy() * 255).round().astype(np.uint8)
    return out, images


def run(args: Args, method: str, seed: int) -> dict[str, Any]:
    """Train on A then B from random rollouts, evaluating after each level; returns the JSON record."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    t0, cpu0 = time.perf_counter(), time.process_time()
    config = b3d.vase_config(method, seed, args.steps_per_level, args.image_size)
    learner = b3d.make_learner(config)
    data = {"A": collect_episodes(args, args.level_a), "B": collect_episodes(args, args.level_b)}
    paired = (
        b3d.is_world(args.level_a)
        and b3d.is_world(args.level_b)
        and len(data["A"]["episode"]) == len(data["B"]["episode"])
        and np.allclose(data["A"]["factors"]["position"], data["B"]["factors"]["position"])
    )
    record = common.run_record(
        args,
        method,
        seed,
        {"opengl": b3d.opengl()},
        vase_config=config.to_dict(),
        paired=bool(paired),
        probe_frames={k: len(d["episode"]) for k, d in data.items()},
    )
    print(f"{method} seed {seed}: {record['probe_frames']} held-out frames, paired={paired}", flush=True)
    envs: dict[str, int] = {}
    images = None
    for phase, level in (("A", args.level_a), ("B", args.level_b)):
        record[f"train_{phase}"] = train_phase(args, learner, level, seed + (1000 if phase == "B" else 0))
        envs[phase] = record[f"train_{phase}"]["env"]
        if phase == "A":
            envs["B"] = envs["A"]  # before B no other environment exists
        if args.runs_dir:
            os.makedirs(args.runs_dir, exist_ok=True)
            learner.save(os.path.join(args.runs_dir, f"{method}_seed{seed}_after_{phase}.pt"))
        evaluation, images = evaluate(args, learner, data, envs, paired, seed, mlp=phase == "B")
        record[f"eval_after_{phase}"] = evaluation
        print(
            f"{method} seed {seed}: level {phase} done at {(time.perf_counter() - t0) / 60:.1f} min, "
            f"envs {envs}, n_envs {learner.memory.n_seen}",
            flush=True,
        )
    record.update(
        envs=envs,
        n_envs=learner.memory.n_seen,
        learner_steps=learner.step,
        wall_s=time.perf_counter() - t0,
        cpu_s=time.process_time() - cpu0,
    )
    np.savez_compressed(common.run_path(args.out_dir, method, seed, "npz"), images=images)
    return record


# ------------------------------------------------------------------------------------ summary
DIRECTIONS = ("A->A", "A->B", "B->B", "B->A")
XREC_ROWS = ("A input", "A as A", "A as B", "B (same state)", "B as B", "B as A")


def plot_probes(by_method: dict[str, list[dict[str, Any]]], path: str) -> None:
    """Bars of probe R^2 (mean ± std over seeds) per factor group, direction and method; a row per probe."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(by_method.values()))[0]["eval_after_B"]["probes"]
    groups, probes = list(first["ridge"]["A->A"]), list(first)
    fig, axes = plt.subplots(
        len(probes), len(groups), figsize=(4 * len(groups), 3.2 * len(probes)), squeeze=False
    )
    width = 0.8 / len(by_method)
    for (i, probe), (j, g) in itertools.product(enumerate(probes), enumerate(groups)):
        ax = axes[i, j]
        for k, (m, rs) in enumerate(by_method.items()):
            v = np.array([[r["eval_after_B"]["probes"][probe][d][g] for d in DIRECTIONS] for r in rs])
            x, mean = np.arange(4) + (k - (len(by_method) - 1) / 2) * width, v.mean(0)
            ax.bar(
                x,
                np.maximum(mean, -1),
                width,
                yerr=np.where(mean > -1, v.std(0), 0),
                capsize=2,
                label=f"{m} ({len(rs)} seeds)",
            )
            for xi, mi in zip(x[mean <= -1], mean[mean <= -1], strict=True):  # clipped bars: print the mean
                ax.text(xi, -0.97, f"{mi:.1f}", rotation=90, ha="center", va="bottom", fontsize=7)
        ax.axhline(0, color="k", lw=0.6)
        ax.set(
            xticks=range(4),
            xticklabels=DIRECTIONS,
            ylim=(-1, 1),
            title=f"{g} ({probe} probe)",
            ylabel="R^2 (clipped at -1)",
        )
        ax.legend(fontsize=7)
    fig.suptitle("Probes trained on one level's latents, tested on both (train->test)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summarise(args: Args) -> str:
    """Markdown tables (mean ± std over seeds) and the figures, from the run files."""
    records = common.load_records(args.out_dir)
    folder = Path(args.out_dir).parent  # benchmarks/results/3d/cross_domain by default
    folder.mkdir(parents=True, exist_ok=True)
    by_method = common.by_method(records, METHODS)
    a = records[0]["args"] if records else dataclasses.asdict(args)
    parts = [
        f"# Semantic transfer across 3-D levels: {a['level_a']} (A) -> {a['level_b']} (B)",
        "",
        b3d.provenance(records, "python benchmarks/cross_domain_3d.py"),
        "",
        budget_text(by_method, a),
        "",
    ]
    groups = list(records[0]["eval_after_B"]["probes"]["ridge"]["A->A"]) if records else []
    for g in groups:
        rows = []
        for (m, rs), probe in itertools.product(by_method.items(), ("ridge", "mlp")):
            cells = [b3d.mean_std(r["eval_after_B"]["probes"][probe][d][g] for r in rs) for d in DIRECTIONS]
            zero = b3d.mean_std(r["eval_after_A"]["probes"]["ridge"]["A->B"][g] for r in rs)
            zero = zero if probe == "ridge" else ""
            rows.append([m, probe, len(rs), *cells, zero])
        parts += [
            f"### Probe R^2 for {g} (after training on A then B; held-out test episodes)",
            "",
            common.markdown_table(
                [
                    "method",
                    "probe",
                    "seeds",
                    "A->A (in-domain)",
                    "A->B (transfer)",
                    "B->B (in-domain)",
                    "B->A (transfer)",
                    "A->B after A only",
                ],
                rows,
            ),
            "",
        ]
    rows = []
    for m, rs in by_method.items():
        rec = [r["eval_after_B"]["recon_mse"] for r in rs]
        rows.append(
            [
                m,
                len(rs),
                sorted({r["n_envs"] for r in rs}),
                sorted({(r["envs"]["A"], r["envs"]["B"]) for r in rs}),
                b3d.mean_std((r["eval_after_A"]["recon_mse"]["A->A"] for r in rs), 4),
                *(b3d.mean_std((q[k] for q in rec), 4) for k in ("A->A", "B->B", "mean_frame_B")),
                *(b3d.mean_std((q.get(k) for q in rec), 3) for k in ("A->B_ratio", "B->A_ratio")),
            ]
        )
    parts += [
        "### Environments and reconstructions (pixel MSE of the 32x32 inputs in [0, 1])",
        "",
        common.markdown_table(
            [
                "method",
                "seeds",
                "environments allocated",
                "(env of A, env of B)",
                "A recon after A",
                "A recon after B",
                "B recon",
                "B mean-frame baseline",
                "A->B paired/unpaired",
                "B->A paired/unpaired",
            ],
            rows,
        ),
        "",
        (
            "paired/unpaired: MSE of the cross-reconstruction decode(mu(x_A), s_B) against the frame x_B "
            "of the *same* state, divided by its MSE against frames of other states (< 1: the "
            "cross-reconstruction depicts that state in the other level; 1: it does not depend on it)."
        ),
        "",
    ]
    if records:
        plot_probes(by_method, str(folder / "cross_domain_probes.png"))
        seed = min(r["seed"] for r in records)
        paths = {m: common.run_path(args.out_dir, m, seed, "npz") for m in by_method}
        images = {f"{m} (seed {seed})": np.load(p)["images"] for m, p in paths.items() if os.path.exists(p)}
        title = (
            f"Cross-domain reconstructions, A = {a['level_a']}, B = {a['level_b']} (held-out paired states)"
        )
        b3d.plot_image_rows(images, XREC_ROWS, title, str(folder / "cross_domain_xrec.png"))
        parts += [
            "![probe transfer](cross_domain_probes.png)",
            "",
            "![cross-domain reconstructions](cross_domain_xrec.png)",
            "",
        ]
    md = "\n".join(parts)
    common.write_text(folder / "cross_domain.md", md)
    return md


def budget_text(by_method: dict[str, list[dict[str, Any]]], a: dict[str, Any]) -> str:
    """What one run costs and which hyperparameters it used (from the records)."""
    if not by_method:
        return ""
    frames = next(iter(by_method.values()))[0]["train_A"]["frames"]
    return (
        f"Budget per run: {a['steps_per_level']} learner steps (batch 64) per level (the paper: 60k), "
        f"one every {a['train_every']} frames of a **uniform random policy** ({frames} frames of A, "
        f"episodes of {a['episode_steps']} steps). "
        + b3d.describe_configs(by_method)
        + f" Probes: {a['probe_episodes']} held-out paired episodes of {a['probe_episode_steps']} random "
        f"steps, the last {a['test_episodes']} for testing; R^2 is the mean over a group's columns "
        "(heading: sin, cos; position: x, z; target and "
        "obstacle: image x and proximity exp(-d/3m) when in the view cone, else 0)."
    )


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    if not args.summarise:
        common.run_pending(run, args, args.methods, args.seeds, args.out_dir, args.jobs)
    print(summarise(args))


if __name__ == "__main__":
    main()
