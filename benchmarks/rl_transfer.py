"""Appearance-shift transfer: does the representation carry a PPO policy to a new look of the same task?

Protocol, per (method, seed), same seeds and budgets for every method:
  1. env A (moving Fashion goal task, ``SpriteCanvas``): PPO trains for ``steps_a`` env steps; for
     ``vase`` and ``entangled`` the learner trains online from the same rollouts (``VASEVecEnv``,
     ``learn=True``); latents are normalised by SB3's ``VecNormalize``. Return on A.
  2. for each shift B (moving *inverse* Fashion: black on white, same sprites and geometry) and B2
     (moving MNIST: other sprites, same geometry), starting again from the agent as it is after A:
     a. zero-shot return in B before any adaptation;
     b. unsupervised adaptation: the representation sees ``adapt_steps`` frames of B *without reward*
        (random or frozen-policy rollouts, ``adapt_policy``) and keeps learning online (vase,
        entangled); the policy and its ``VecNormalize`` statistics stay frozen (``adapt_normalizer``);
     c. zero-shot return in B after adaptation, with no policy update (the headline number; ``kept``
        = B / A) and the return on A after adaptation (forgetting);
     d. short fine-tune of the policy on B (``steps_b``; VASE keeps learning); return on B.
Returns are means over ``eval_episodes`` episodes of the stochastic PPO policy on held-out seeds; the
random-policy row is measured by the same evaluation.

Methods: ``vase`` (cpu preset), ``entangled`` (VASE with the beta=1 ELBO, same online adaptation),
``untrained`` (PPO on the latents of a frozen untrained VASE encoder: nothing adapts), ``pixels``
(PPO ``CnnPolicy`` on the raw 32x32 frames with ``vase_rl.agents.sb3.SmallCNN`` as features extractor: SB3's
NatureCNN needs >= 36x36 inputs; nothing adapts). One JSON per finished (method, seed) in
``benchmarks/results/rl_transfer/runs/`` (skipped when present, so the script resumes; a folder holding
runs of another budget is refused, never mixed); ``--summarise`` rebuilds ``rl_transfer.md`` and
``rl_transfer.png`` in ``benchmarks/results/rl_transfer/`` from them.

    VASE_DATA_DIR=/work/shared/data python benchmarks/rl_transfer.py --methods vase pixels --seeds 0
    python benchmarks/rl_transfer.py --summarise
"""

from __future__ import annotations

import copy
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
METHODS = ("vase", "entangled", "untrained", "pixels")
LEARNING = ("vase", "entangled")
"""Methods whose representation keeps learning online (from A's rollouts, B's frames, fine-tuning)."""
SHIFTS = ("b", "b2")
"""Record keys of the two appearance shifts (``env_b``, ``env_b2``)."""
ISSUE_SEEDS = 5
"""Seeds per method issue 16 asks for before a verdict is final."""
RUN_FIELDS = ("methods", "seeds", "jobs", "out_dir", "tensorboard", "summarise")
"""Args fields that do not change a run's result (the rest must match to share a results folder)."""


@dataclass
class Args:
    methods: tuple[str, ...] = METHODS
    """Methods to run (vase, entangled, untrained, pixels)."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds; each seeds the learner, PPO and the training envs."""
    env_a: str = "vase_rl/MovingFashion-v0"
    """Training environment (PPO for steps_a)."""
    env_b: str = "vase_rl/MovingInverseFashion-v0"
    """First appearance shift (same sprites and geometry, inverted colours)."""
    env_b2: str = "vase_rl/MovingMNIST-v0"
    """Second appearance shift (other sprites, same geometry); empty to skip."""
    canvas_size: int = 32
    """Sprite canvas side (the cpu preset's input size)."""
    n_envs: int = 8
    """Sub-envs of every VecEnv (training, adaptation, evaluation)."""
    steps_a: int = 28_672
    """Env steps of PPO (and online VASE) in env A (56 PPO rollouts)."""
    adapt_steps: int = 8_192
    """Reward-free frames of each shift the representation learns from before the zero-shot test."""
    adapt_policy: str = "random"
    """Who acts during adaptation: "random" (uniform actions) or "policy" (the frozen A-policy)."""
    adapt_normalizer: bool = False
    """Let the latents' VecNormalize statistics follow B during adaptation (unsupervised too)."""
    steps_b: int = 4_096
    """Env steps of policy fine-tuning on each shift (8 PPO rollouts)."""
    train_every: int = 16
    """Online VASE: frames between training rounds (replay ratio = batch 64 / 16 = 4)."""
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
    pixel_features: int = 128
    """Output width of the pixels method's SmallCNN features extractor."""
    jobs: int = 1
    """Runs in parallel (processes, one torch thread each)."""
    out_dir: str = str(RESULTS / "rl_transfer" / "runs")
    """Folder of the per-run JSONs (the table and figure go to its parent)."""
    tensorboard: bool = False
    """Write SB3 TensorBoard logs (with the vase/* scalars) under out_dir/tb."""
    summarise: bool = False
    """Only rebuild the markdown table and PNG from the JSONs."""


# ------------------------------------------------------------------------------- building blocks
def curve_callback() -> Any:
    """An SB3 callback whose ``points`` are (env steps, mean return of the last 100 training episodes)
    at every rollout end."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Curve(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.points: list[tuple[int, float]] = []

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            episodes = self.model.ep_info_buffer
            if episodes:
                self.points.append((self.num_timesteps, float(np.mean([e["r"] for e in episodes]))))

    return Curve()


def make_learner(method: str, seed: int) -> tuple[Any, dict[str, Any] | None]:
    """The method's learner (None for pixels) and its config dict; ``untrained`` is frozen at once."""
    from vase_rl.core.config import get_preset
    from vase_rl.core.learner import ContinualLearner

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    if method == "pixels":
        return None, None
    config = get_preset("cpu").with_overrides(seed=seed)
    if method == "entangled":
        config = config.with_overrides(loss={"entangled": True})
    learner = ContinualLearner(config, device="cpu")
    if method == "untrained":
        learner.freeze()
    return learner, config.to_dict()


def agent_env(args: Any, env_id: str, env_seed: int, learner: Any, learn: bool, **env_kwargs: Any) -> Any:
    """``n_envs`` sub-envs of ``env_id``: raw frames for pixels, else VASE latents (``learn`` only while
    the learner is not frozen)."""
    from stable_baselines3.common.env_util import make_vec_env

    from vase_rl.agents.sb3_vec import VASEVecEnv

    raw = make_vec_env(
        f"vase_rl.envs:{env_id}",
        args.n_envs,
        seed=env_seed,
        env_kwargs={"canvas_size": args.canvas_size, **env_kwargs},
    )
    if learner is None:
        return raw
    return VASEVecEnv(raw, learner, learn=learn and not learner.frozen, train_every=args.train_every)


def normalised(venv: Any, obs_rms: Any, training: bool = False) -> Any:
    """``venv`` with a latent ``VecNormalize`` holding a copy of ``obs_rms`` (``venv`` when None)."""
    from vase_rl.agents.sb3 import normalize_latents

    if obs_rms is None:
        return venv
    out = normalize_latents(venv, training=training)
    out.obs_rms = copy.deepcopy(obs_rms)
    return out


def make_ppo(args: Any, method: str, venv: Any, seed: int, tb: str | None) -> Any:
    """PPO with the shared hyper-parameters: MlpPolicy on latents, CnnPolicy + SmallCNN on pixels."""
    from stable_baselines3 import PPO

    from vase_rl.agents.sb3 import SmallCNN

    policy, kwargs = "MlpPolicy", {}
    if method == "pixels":
        policy = "CnnPolicy"
        kwargs = {
            "features_extractor_class": SmallCNN,
            "features_extractor_kwargs": {"features_dim": args.pixel_features},
        }
    return PPO(
        policy,
        venv,
        seed=seed,
        n_steps=args.ppo_n_steps,
        batch_size=args.ppo_batch_size,
        n_epochs=args.ppo_epochs,
        learning_rate=args.ppo_lr,
        gamma=args.ppo_gamma,
        policy_kwargs=kwargs,
        tensorboard_log=tb,
    )


def evaluate(args: Any, model: Any, env_id: str, seed: int, learner: Any, obs_rms: Any, **kw: Any) -> float:
    """Mean return of ``model`` (stochastic) on held-out seeds of ``env_id``; the learner does not learn."""
    from stable_baselines3.common.evaluation import evaluate_policy

    venv = normalised(agent_env(args, env_id, 10_000 + seed, learner, learn=False, **kw), obs_rms)
    mean, _ = evaluate_policy(model, venv, n_eval_episodes=args.eval_episodes, deterministic=False)
    venv.close()
    return float(mean)


# ------------------------------------------------------------------------------------ one run
def roll_out(venv: Any, frames: int, act: Any) -> int:
    """Step ``venv`` for ``frames // num_envs`` steps with ``act(obs)`` actions, rewards ignored (the VASE
    wrapper inside learns from the frames); returns the frames stepped."""
    obs = venv.reset()
    rounds = frames // venv.num_envs
    for _ in range(rounds):
        obs, _, _, _ = venv.step(act(obs))
    return rounds * venv.num_envs


def random_actor(venv: Any, seed: int) -> Any:
    """``act(obs)`` of uniform random discrete actions for every sub-env of ``venv``."""
    rng = np.random.default_rng(seed)
    return lambda obs: rng.integers(0, venv.action_space.n, venv.num_envs)


def adapt(args: Args, model: Any, env_id: str, seed: int, learner: Any, obs_rms: Any) -> tuple[Any, int]:
    """Reward-free rollouts of ``env_id`` while the representation learns; the policy is not updated.
    Returns the (possibly updated) latent statistics and the frames seen (0 when nothing can adapt)."""
    can_adapt = learner is not None and (not learner.frozen or args.adapt_normalizer)
    if not can_adapt or args.adapt_steps <= 0:
        return obs_rms, 0
    if args.adapt_policy not in ("random", "policy"):
        raise ValueError(f"adapt_policy must be 'random' or 'policy', got {args.adapt_policy!r}")
    venv = normalised(
        agent_env(args, env_id, 20_000 + seed, learner, learn=True), obs_rms, training=args.adapt_normalizer
    )
    act = (
        random_actor(venv, seed)
        if args.adapt_policy == "random"
        else (lambda obs: model.predict(obs, deterministic=False)[0])
    )
    frames = roll_out(venv, args.adapt_steps, act)
    venv.close()
    return (venv.obs_rms if obs_rms is not None else None), frames


def run(args: Args, method: str, seed: int) -> dict[str, Any]:
    """Train on A, then adapt / evaluate / fine-tune on each shift from the same A agent."""
    import torch
    from stable_baselines3.common.utils import set_random_seed

    from vase_rl.agents.sb3 import VASELoggingCallback, normalize_latents

    torch.set_num_threads(1)
    set_random_seed(seed)
    learner, vase_config = make_learner(method, seed)
    record: dict[str, Any] = {
        "method": method,
        "seed": seed,
        "args": dataclasses.asdict(args),
        "hardware": common.hardware(),
        "vase_config": vase_config,
    }
    t0, cpu0 = time.perf_counter(), time.process_time()
    train_a = agent_env(args, args.env_a, seed, learner, learn=True)
    train_a = train_a if learner is None else normalize_latents(train_a)
    tb = os.path.join(args.out_dir, "tb") if args.tensorboard else None
    model = make_ppo(args, method, train_a, seed, tb)
    curve_a = curve_callback()
    model.learn(args.steps_a, callback=[curve_a, VASELoggingCallback()], tb_log_name=f"{method}_s{seed}_A")
    record["cpu_a_s"] = time.process_time() - cpu0
    rms_a = None if learner is None else copy.deepcopy(train_a.obs_rms)
    policy_a = copy.deepcopy(model.policy.state_dict())
    optim_a = copy.deepcopy(model.policy.optimizer.state_dict())
    learner_a = copy.deepcopy(learner.state_dict()) if method in LEARNING else None
    record["return_a"] = evaluate(args, model, args.env_a, seed, learner, rms_a)
    record["curve_a"] = curve_a.points
    record["learner_steps_a"] = learner.step if learner else None
    record["envs_inferred_a"] = learner.memory.n_seen if learner else None
    for key, env_id in zip(SHIFTS, (args.env_b, args.env_b2), strict=True):
        if not env_id:
            continue
        if learner_a is not None:
            learner.load_state_dict(copy.deepcopy(learner_a))
        model.policy.load_state_dict(policy_a)
        model.policy.optimizer.load_state_dict(copy.deepcopy(optim_a))
        record[f"no_adapt_{key}"] = evaluate(args, model, env_id, seed, learner, rms_a)
        rms, frames = adapt(args, model, env_id, seed, learner, rms_a)
        record[f"adapt_frames_{key}"] = frames
        record[f"zero_shot_{key}"] = evaluate(args, model, env_id, seed, learner, rms)
        record[f"a_after_adapt_{key}"] = evaluate(args, model, args.env_a, seed, learner, rms)
        ret_a = record["return_a"]
        record[f"kept_{key}"] = record[f"zero_shot_{key}"] / ret_a if ret_a else None
        record[f"envs_inferred_{key}"] = learner.memory.n_seen if learner else None
        train_b = normalised(agent_env(args, env_id, seed + 1, learner, learn=True), rms, training=True)
        model.set_env(train_b)
        model.ep_info_buffer = None  # the fine-tune curve starts from B's episodes only
        curve_b = curve_callback()
        model.learn(
            args.steps_b, callback=[curve_b, VASELoggingCallback()], tb_log_name=f"{method}_s{seed}_{key}"
        )
        rms_b = train_b.obs_rms if rms is not None else None
        record[f"fine_tuned_{key}"] = evaluate(args, model, env_id, seed, learner, rms_b)
        record[f"curve_{key}"] = curve_b.points
        train_b.close()
    record["learner_steps"] = learner.step if learner else None
    record["wall_s"] = time.perf_counter() - t0
    record["cpu_s"] = time.process_time() - cpu0  # the machine is shared: CPU time is what the run costs
    return record


class RandomPolicy:
    """Uniform random discrete actions, with the ``predict`` signature ``evaluate_policy`` calls."""

    def __init__(self, n_actions: int, seed: int = 0) -> None:
        self.n_actions, self.rng = n_actions, np.random.default_rng(seed)

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False):
        return self.rng.integers(0, self.n_actions, len(obs)), None


def random_returns(args: Any, env_ids: dict[str, str], **env_kwargs: Any) -> dict[str, float]:
    """Mean return of the uniform random policy per env (same evaluation as the agents, 4x episodes)."""
    from stable_baselines3.common.evaluation import evaluate_policy

    out = {}
    for key, env_id in env_ids.items():
        if env_id:
            venv = agent_env(args, env_id, 10_000, None, learn=False, **env_kwargs)
            policy = RandomPolicy(venv.action_space.n)
            out[key] = float(evaluate_policy(policy, venv, n_eval_episodes=4 * args.eval_episodes)[0])
    return out


def run_and_save(args: Args, method: str, seed: int) -> str:
    record = run(args, method, seed)
    common.write_json(os.path.join(args.out_dir, f"{method}_seed{seed}.json"), record)
    shifts = ", ".join(
        f"{k}: {record[f'no_adapt_{k}']:.2f} -> {record[f'zero_shot_{k}']:.2f} "
        f"(ft {record[f'fine_tuned_{k}']:.2f})"
        for k in SHIFTS
        if f"zero_shot_{k}" in record
    )
    return f"{method} seed {seed}: A {record['return_a']:.2f}; {shifts} ({record['cpu_s']:.0f} CPU s)"


def budget(args: Any) -> dict[str, Any]:
    """The Args that decide a run's result (every field but :data:`RUN_FIELDS`)."""
    return {k: v for k, v in dataclasses.asdict(args).items() if k not in RUN_FIELDS}


def check_budget(args: Any, out_dir: str) -> None:
    """Refuse to add runs to a folder that holds runs of another budget (results are never mixed)."""
    mine = budget(args)
    for path in sorted(glob.glob(os.path.join(out_dir, "*_seed*.json"))):
        stored = {k: v for k, v in common.load_json(path)["args"].items() if k not in RUN_FIELDS}
        stored = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
        diff = sorted(k for k in set(mine) | set(stored) if mine.get(k) != stored.get(k))
        if diff:
            raise SystemExit(
                f"{path} was run with other settings ({', '.join(diff)}); use another "
                f"--out-dir or delete the old runs"
            )


# ---------------------------------------------------------------------------------- summary
def cell(values: list[Any], percent: bool = False) -> str:
    """mean ± std of the non-None values ('-' when none)."""
    v = np.array([x for x in values if x is not None], dtype=float) * (100.0 if percent else 1.0)
    if not len(v):
        return "-"
    return f"{v.mean():.0f} ± {v.std():.0f} %" if percent else f"{v.mean():.2f} ± {v.std():.2f}"


def mean_of(rs: list[dict[str, Any]], key: str) -> float | None:
    v = [r[key] for r in rs if r.get(key) is not None]
    return float(np.mean(v)) if v else None


def verdict(by_method: dict[str, list[dict[str, Any]]]) -> str:
    """The issue's target on the first shift, each clause marked met / not met / not measured."""
    vase, pix, ent = (mean_of(by_method.get(m, []), "kept_b") for m in ("vase", "pixels", "entangled"))

    def mark(ok: bool | None) -> str:
        return "not measured" if ok is None else ("**met**" if ok else "**not met**")

    def pct(v: float | None) -> str:
        return "" if v is None else f" ({100 * v:.0f} %)"

    clauses = [
        f"VASE keeps >= 80 % of its A return in B without a policy update: "
        f"{mark(None if vase is None else vase >= 0.8)}{pct(vase)}",
        f"pixels keep <= 50 %: {mark(None if pix is None else pix <= 0.5)}{pct(pix)}",
        f"entangled keeps less than VASE: "
        f"{mark(None if ent is None or vase is None else ent < vase)}{pct(ent)}",
    ]
    return "Target (issue 16), on B:\n\n" + "\n".join(f"- {c}" for c in clauses)


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
    hw = records[0]["hardware"] if records else common.hardware()
    total = sum(r.get("cpu_s", r.get("wall_s", 0.0)) for r in records)
    return (
        f"Hardware: {hw['cpu']}, {hw['cores']} cores shared with other jobs (1-min load average "
        f"{hw['load_avg_1m']:.1f} at the first run's start), one torch thread per run; total CPU time "
        f"{total / 60:.1f} min for {len(records)} runs."
    )


def summarise(args: Args) -> str:
    """Markdown tables (mean ± std over seeds) + PNG learning curves from the JSONs."""
    records = [common.load_json(p) for p in sorted(glob.glob(os.path.join(args.out_dir, "*_seed*.json")))]
    by_method = {m: [r for r in records if r["method"] == m] for m in METHODS}
    by_method = {m: rs for m, rs in by_method.items() if rs}
    rand_path = os.path.join(args.out_dir, "random.json")
    rand = common.load_json(rand_path) if os.path.exists(rand_path) else {}
    a = records[0]["args"] if records else dataclasses.asdict(args)
    shifts = [(k, a[f"env_{k}"]) for k in SHIFTS if a.get(f"env_{k}")]
    md = [
        "# Appearance-shift transfer: PPO on VASE latents, moving Fashion (A) -> "
        + ", ".join(f"{k.upper()} = {e.split('/')[-1]}" for k, e in shifts),
        "",
        f"Produced by `python benchmarks/rl_transfer.py` (then `--summarise`). Budget per run: "
        f"{a['steps_a']} env steps of PPO in A; per shift {a['adapt_steps']} reward-free frames of "
        f"unsupervised adaptation ({a['adapt_policy']} actions; latent normaliser "
        f"{'adapting' if a['adapt_normalizer'] else 'frozen'}; policy frozen), then {a['steps_b']} env "
        f"steps of fine-tuning. {a['n_envs']} sub-envs, {a['canvas_size']}x{a['canvas_size']} canvas, cpu "
        f"preset, online VASE round every {a['train_every']} frames; evaluation: {a['eval_episodes']} "
        f"episodes of the stochastic policy. " + cost_line(records),
        "",
        common.markdown_table(
            ["method", "seeds", "return A", "learner steps in A", "envs inferred in A", "CPU time / run"],
            [
                [
                    m,
                    len(rs),
                    cell([r["return_a"] for r in rs]),
                    "-"
                    if mean_of(rs, "learner_steps_a") is None
                    else f"{mean_of(rs, 'learner_steps_a'):.0f}",
                    sorted({r["envs_inferred_a"] for r in rs if r["envs_inferred_a"] is not None}) or "-",
                    f"{np.mean([r['cpu_s'] for r in rs]):.0f} s",
                ]
                for m, rs in by_method.items()
            ]
            + ([["random policy", "-", f"{rand['A']:.2f}", "-", "-", "-"]] if "A" in rand else []),
        ),
        "",
    ]
    for k, env_id in shifts:
        rows = [
            [
                m,
                len(rs),
                cell([r[f"no_adapt_{k}"] for r in rs]),
                cell([r[f"zero_shot_{k}"] for r in rs]),
                cell([r[f"kept_{k}"] for r in rs], percent=True),
                cell([r[f"fine_tuned_{k}"] for r in rs]),
                cell([r[f"a_after_adapt_{k}"] for r in rs]),
                sorted({r[f"envs_inferred_{k}"] for r in rs if r[f"envs_inferred_{k}"] is not None}) or "-",
            ]
            for m, rs in by_method.items()
            if all(f"zero_shot_{k}" in r for r in rs)
        ]
        if k.upper() in rand:
            rows.append(
                [
                    "random policy",
                    "-",
                    f"{rand[k.upper()]:.2f}",
                    f"{rand[k.upper()]:.2f}",
                    f"{100 * rand[k.upper()] / rand['A']:.0f} % (of random A)",
                    f"{rand[k.upper()]:.2f}",
                    f"{rand['A']:.2f}",
                    "-",
                ]
            )
        md += [
            f"## {k.upper()} = {env_id}",
            "",
            common.markdown_table(
                [
                    "method",
                    "seeds",
                    "zero-shot before adaptation",
                    "zero-shot after adaptation",
                    "kept (B / A)",
                    "after fine-tune",
                    "A after adaptation",
                    "envs inferred",
                ],
                rows,
            ),
            "",
        ]
    md += [verdict(by_method), ""]
    fewest = min((len(rs) for rs in by_method.values()), default=0)
    if fewest < ISSUE_SEEDS:
        md += [f"Preliminary: {fewest} seed(s) per method, fewer than the issue's {ISSUE_SEEDS}.", ""]
    folder = Path(args.out_dir).parent
    panels = [("curve_a", "env A (training)")]
    panels += [(f"curve_{k}", f"fine-tuning on {k.upper()}") for k, _ in shifts]
    plot_curves(by_method, panels, folder / "rl_transfer.png")
    text = "\n".join(md) + "\n![learning curves](rl_transfer.png)\n"
    common.write_text(folder / "rl_transfer.md", text)
    return text


def main() -> None:
    args = common.parse_args(Args, __doc__)
    os.makedirs(args.out_dir, exist_ok=True)
    if not args.summarise:
        check_budget(args, args.out_dir)
        rand_path = os.path.join(args.out_dir, "random.json")
        if not os.path.exists(rand_path):
            common.write_json(
                rand_path, random_returns(args, {"A": args.env_a, "B": args.env_b, "B2": args.env_b2})
            )
        todo = [
            (m, s)
            for s in args.seeds
            for m in args.methods
            if not os.path.exists(os.path.join(args.out_dir, f"{m}_seed{s}.json"))
        ]
        print(f"{len(todo)} runs to do, {args.jobs} at a time; hardware {common.hardware()}", flush=True)
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
            for fut in [pool.submit(run_and_save, args, m, s) for m, s in todo]:
                print(f"[{(time.perf_counter() - start) / 60:.1f} min] {fut.result()}", flush=True)
        print(f"all runs done in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    print(summarise(args))


if __name__ == "__main__":
    main()
