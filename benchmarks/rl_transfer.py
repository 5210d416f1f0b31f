"""RL transfer on VASE latents: train PPO in env A while VASE learns online, then move to env B.

Protocol, per (method, seed), same seeds and budgets for every method:
  1. env A (moving Fashion): PPO trains for ``steps_a`` env steps; for the latent methods the learner
     trains online from the same rollouts (``VASEVecEnv``, ``learn=True``) and the latents are
     normalised by SB3's ``VecNormalize`` (``vase_rl.agents.sb3.normalize_latents``).
  2. zero-shot: the A-policy's return on env B (moving MNIST), latents encoded by the current learner.
  3. fine-tune on B for ``steps_b`` env steps (VASE keeps learning from B's rollouts through a new
     wrapper -- own buffer, same learner); return on B.
  4. forgetting: the return on A after B (policy, encoder and normalisation as they are after B).
Returns are means over ``eval_episodes`` episodes of the stochastic PPO policy on held-out seeds.

Methods: ``vase`` (cpu preset), ``entangled`` (VASE with the beta=1 ELBO), ``ccivae`` (the CCI-VAE
objective without continual mechanisms: ``Ablation(False, False, False)``), ``pixels`` (PPO on the
raw 32x32 frames, MlpPolicy: SB3's NatureCNN needs at least 36x36 inputs, and a CNN on CPU would
blow the budget). One JSON per finished (method, seed) in ``benchmarks/results/rl_transfer/``
(skipped when present: the script resumes); ``--summarise`` rebuilds ``rl_transfer.md`` and
``rl_transfer.png`` from them.

    VASE_DATA_DIR=/work/shared/data python benchmarks/rl_transfer.py [--jobs 2] [--summarise]
"""

from __future__ import annotations

import dataclasses
import glob
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import common
import numpy as np

RESULTS = common.RESULTS
METHODS = ("vase", "entangled", "ccivae", "pixels")


@dataclass
class Args:
    methods: tuple[str, ...] = METHODS
    """Methods to run (vase, entangled, ccivae, pixels)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds; each seeds the learner, PPO and the training envs."""
    env_a: str = "vase_rl/MovingFashion-v0"
    """First environment (trained for steps_a)."""
    env_b: str = "vase_rl/MovingMNIST-v0"
    """Transfer environment (fine-tuned for steps_b)."""
    canvas_size: int = 32
    """Sprite canvas side (the cpu preset's input size)."""
    n_envs: int = 8
    """Sub-envs of the training VecEnv."""
    steps_a: int = 28_672
    """Env steps of PPO (and online VASE) in env A (56 PPO rollouts)."""
    steps_b: int = 12_288
    """Env steps of fine-tuning in env B (24 PPO rollouts)."""
    train_every: int = 16
    """Online VASE: frames between training rounds (replay ratio = batch 64 / 16 = 4): 1,792 learner
    steps in A and 768 in B."""
    eval_episodes: int = 32
    """Episodes per evaluation."""
    ppo_n_steps: int = 64
    """PPO rollout length per sub-env."""
    ppo_batch_size: int = 128
    """PPO minibatch size."""
    ppo_epochs: int = 4
    """PPO epochs per rollout."""
    ppo_lr: float = 1e-3
    """PPO learning rate."""
    ppo_gamma: float = 0.95
    """Discount."""
    jobs: int = 2
    """Runs in parallel (processes, one torch thread each)."""
    out_dir: str = str(RESULTS / "rl_transfer")
    """Folder of the per-run JSONs."""
    tensorboard: bool = False
    """Write SB3 TensorBoard logs (with the vase/* scalars) under out_dir/tb."""
    summarise: bool = False
    """Only rebuild the markdown table and PNG from the JSONs."""


# ------------------------------------------------------------------------------------ one run


def run(args: Args, method: str, seed: int) -> dict[str, Any]:
    """Train, transfer and evaluate one (method, seed); returns the JSON record."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.utils import set_random_seed

    import vase_rl.envs  # noqa: F401
    from vase_rl.agents.sb3 import VASELoggingCallback, find_vase, normalize_latents, normalized_like
    from vase_rl.agents.sb3_vec import VASEVecEnv
    from vase_rl.config import Ablation, get_preset
    from vase_rl.learner import ContinualLearner

    torch.set_num_threads(1)
    set_random_seed(seed)
    config = get_preset("cpu").with_overrides(seed=seed)
    config = {
        "entangled": config.with_overrides(loss={"entangled": True}),
        "ccivae": config.with_overrides(ablation=Ablation(False, False, False)),
    }.get(method, config)
    learner = None if method == "pixels" else ContinualLearner(config, device="cpu")

    def env(env_id: str, env_seed: int, learn: bool, n: int) -> Any:
        raw = make_vec_env(
            f"vase_rl.envs:{env_id}", n, seed=env_seed, env_kwargs={"canvas_size": args.canvas_size}
        )
        if learner is None:
            return raw
        return VASEVecEnv(raw, learner, learn=learn, train_every=args.train_every)

    def evaluate(model: Any, env_id: str) -> float:
        eval_env = normalized_like(model, env(env_id, 10_000 + seed, learn=False, n=8))
        mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=False)
        return float(mean)

    class Curve(BaseCallback):
        """(env steps, mean return of the last 100 training episodes) at every rollout end."""

        def __init__(self) -> None:
            super().__init__()
            self.points: list[tuple[int, float]] = []

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            if self.model.ep_info_buffer:
                self.points.append(
                    (self.num_timesteps, float(np.mean([e["r"] for e in self.model.ep_info_buffer])))
                )

    record: dict[str, Any] = {
        "method": method,
        "seed": seed,
        "args": dataclasses.asdict(args),
        "hardware": common.hardware(),
        "torch_threads": torch.get_num_threads(),
        "vase_config": config.to_dict() if learner else None,
    }
    t0, cpu0 = time.perf_counter(), time.process_time()
    train_a = env(args.env_a, seed, learn=True, n=args.n_envs)
    train_a = train_a if learner is None else normalize_latents(train_a)
    tb = os.path.join(args.out_dir, "tb") if args.tensorboard else None
    model = PPO(
        "MlpPolicy",
        train_a,
        seed=seed,
        n_steps=args.ppo_n_steps,
        batch_size=args.ppo_batch_size,
        n_epochs=args.ppo_epochs,
        learning_rate=args.ppo_lr,
        gamma=args.ppo_gamma,
        tensorboard_log=tb,
    )
    curve_a, curve_b = Curve(), Curve()
    model.learn(args.steps_a, callback=[curve_a, VASELoggingCallback()], tb_log_name=f"{method}_s{seed}_A")
    record["time_a_s"] = time.perf_counter() - t0
    vase_a = find_vase(train_a)
    record["vase_a"] = vase_a.stats() if vase_a else None
    record["return_a"] = evaluate(model, args.env_a)
    record["zero_shot_b"] = evaluate(model, args.env_b)

    t1 = time.perf_counter()
    train_b = normalized_like(model, env(args.env_b, seed + 1, learn=True, n=args.n_envs))
    if hasattr(train_b, "training"):
        train_b.training = True  # fine-tuning keeps updating the latent statistics
    model.set_env(train_b)
    model.ep_info_buffer = None  # the B curve starts from B's episodes only
    model.learn(
        args.steps_b,
        callback=[curve_b, VASELoggingCallback()],
        reset_num_timesteps=False,
        tb_log_name=f"{method}_s{seed}_B",
    )
    record["time_b_s"] = time.perf_counter() - t1
    vase_b = find_vase(train_b)
    record["vase_b"] = vase_b.stats() if vase_b else None
    record["return_b"] = evaluate(model, args.env_b)
    record["return_a_after_b"] = evaluate(model, args.env_a)
    record["forgetting"] = record["return_a"] - record["return_a_after_b"]
    record["n_envs_inferred"] = learner.memory.n_seen if learner else None
    record["learner_steps"] = learner.step if learner else None
    record["curve_a"], record["curve_b"] = curve_a.points, curve_b.points
    record["wall_s"] = time.perf_counter() - t0
    record["cpu_s"] = time.process_time() - cpu0  # the machine is shared: CPU time is what the run costs
    return record


def random_returns(args: Args) -> dict[str, float]:
    """Mean return of the uniform random policy on A and B (the table's reference row)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    import vase_rl.envs  # noqa: F401

    class RandomPolicy:
        rng = np.random.default_rng(0)

        def predict(
            self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
        ):
            return self.rng.integers(0, 5, len(obs)), None

    out = {}
    for key, env_id in (("A", args.env_a), ("B", args.env_b)):
        venv = make_vec_env(
            f"vase_rl.envs:{env_id}", 8, seed=10_000, env_kwargs={"canvas_size": args.canvas_size}
        )
        out[key] = float(evaluate_policy(RandomPolicy(), venv, n_eval_episodes=4 * args.eval_episodes)[0])
    return out


def run_and_save(args: Args, method: str, seed: int) -> str:
    path = os.path.join(args.out_dir, f"{method}_seed{seed}.json")
    record = run(args, method, seed)
    common.write_json(path, record)
    return (
        f"{method} seed {seed}: A {record['return_a']:.2f}, zero-shot B {record['zero_shot_b']:.2f}, "
        f"B {record['return_b']:.2f}, A after B {record['return_a_after_b']:.2f} ({record['wall_s']:.0f}s)"
    )


# ---------------------------------------------------------------------------------- summary


def summarise(args: Args) -> str:
    """Markdown table (mean +- std over seeds) + PNG learning curves from the JSONs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [common.load_json(p) for p in sorted(glob.glob(os.path.join(args.out_dir, "*_seed*.json")))]
    by_method = {m: [r for r in records if r["method"] == m] for m in METHODS}
    rand_path = os.path.join(args.out_dir, "random.json")
    rand = common.load_json(rand_path) if os.path.exists(rand_path) else None
    cols = ("return_a", "zero_shot_b", "return_b", "return_a_after_b", "forgetting")

    def cell(rs: list[dict[str, Any]], key: str) -> str:
        v = np.array([r[key] for r in rs if r.get(key) is not None], dtype=float)
        return f"{v.mean():.2f} ± {v.std():.2f}" if len(v) else "-"

    lines = [
        (
            "| method | seeds | return A | zero-shot B | B after fine-tune | A after B "
            "| forgetting (A - A after B) | envs inferred | CPU time / run |"
        ),
        "|" + "---|" * 9,
    ]
    for m, rs in by_method.items():
        if rs:
            envs = sorted({r["n_envs_inferred"] for r in rs if r["n_envs_inferred"] is not None})
            lines.append(
                f"| {m} | {len(rs)} | "
                + " | ".join(cell(rs, c) for c in cols)
                + f" | {envs or '-'} | {np.mean([r.get('cpu_s', r['wall_s']) for r in rs]):.0f} s |"
            )
    if rand:
        lines.append(
            f"| random policy | - | {rand['A']:.2f} | {rand['B']:.2f} | {rand['B']:.2f} | {rand['A']:.2f} "
            "| - | - | - |"
        )
    a = records[0]["args"] if records else dataclasses.asdict(args)
    hw = records[0]["hardware"] if records else common.hardware()
    total = sum(r.get("cpu_s", r["wall_s"]) for r in records)
    wall = sum(r["wall_s"] for r in records) / max(a["jobs"], 1)
    intro = (
        f"Produced by `python benchmarks/rl_transfer.py` (then `--summarise`). Budget per run: "
        f"{a['steps_a']} env steps in A, {a['steps_b']} in B ({a['n_envs']} sub-envs, "
        f"{a['canvas_size']}x{a['canvas_size']} canvas, cpu preset, online VASE round every "
        f"{a['train_every']} frames, batch 64); evaluation: {a['eval_episodes']} episodes of the stochastic "
        f"policy. Hardware: {hw['cpu']}, {hw['cores']} cores, {a['jobs']} runs in parallel with one torch "
        f"thread each (machine shared with other jobs: 1-min load average {hw['load_avg_1m']:.1f} at the "
        f"start). Total CPU time {total / 60:.1f} min (one thread per run), i.e. {total / 120:.1f} min of "
        f"wall time on 2 dedicated cores; on the shared machine the runs took {wall / 60:.1f} min of wall "
        f"time ({a['jobs']} at a time)."
    )
    header = ["# RL transfer: PPO on VASE latents, moving Fashion (A) -> moving MNIST (B)", "", intro, ""]
    md = "\n".join(header + lines) + "\n"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in (
        (axes[0], "curve_a", "env A (training)"),
        (axes[1], "curve_b", "env B (fine-tuning)"),
    ):
        for m, rs in by_method.items():
            curves = [np.array(r[key]) for r in rs if r[key]]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            steps, ys = curves[0][:n, 0], np.stack([c[:n, 1] for c in curves])
            ax.plot(steps, ys.mean(0), label=m)
            ax.fill_between(steps, ys.mean(0) - ys.std(0), ys.mean(0) + ys.std(0), alpha=0.2)
        ax.set(title=title, xlabel="env steps", ylabel="mean training episode return (last 100)")
        ax.legend()
    fig.tight_layout()
    folder = Path(args.out_dir).parent  # benchmarks/results by default
    fig.savefig(folder / "rl_transfer.png", dpi=120)
    common.write_text(folder / "rl_transfer.md", md + "\n![learning curves](rl_transfer.png)\n")
    return md


def main() -> None:
    args = common.parse_args(Args, __doc__)
    os.makedirs(args.out_dir, exist_ok=True)
    if not args.summarise:
        rand_path = os.path.join(args.out_dir, "random.json")
        if not os.path.exists(rand_path):
            common.write_json(rand_path, random_returns(args))
        todo = [
            (m, s)
            for s in args.seeds
            for m in args.methods
            if not os.path.exists(os.path.join(args.out_dir, f"{m}_seed{s}.json"))
        ]
        print(f"{len(todo)} runs to do, {args.jobs} at a time; hardware {common.hardware()}", flush=True)
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_and_save, args, m, s) for m, s in todo]
            for fut in futures:
                line = fut.result()
                print(f"[{(time.perf_counter() - start) / 60:.1f} min] {line}", flush=True)
        print(f"all runs done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    print(summarise(args))


if __name__ == "__main__":
    main()
