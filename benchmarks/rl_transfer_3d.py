"""RL transfer across 3-D levels: PPO on VASE latents vs PPO on entangled latents vs PPO on pixels.

Protocol, per (method, seed); every method gets the same env steps, seeds, PPO settings and evaluation:
  1. level A (``--level-a``, default the outdoor, NatLab-like MiniWorld level; navigation: reach the target):
     PPO trains for ``steps_a`` env steps. For ``vase`` / ``entangled`` the learner (Table 2's NatLab -> EDE
     values, scaled; ``bench3d_common.vase_config``) trains online from the same rollouts through
     ``VASEVecEnv`` (``learn=True``; one learner step every ``train_every`` frames) and PPO's MlpPolicy sees
     the latent means, normalised by SB3's ``VecNormalize``. ``pixels``: PPO on the frames through a CNN with
     the VASE encoder's architecture (``vase_rl.core.model.Encoder``, same 32x32 area-resized input) trained
     end-to-end by PPO.
  2. zero-shot: the A-policy in level B (``--level-b``, default the indoor, EDE-like level), encoder frozen.
  3. fine-tuning in B for ``steps_b`` env steps (VASE keeps learning through a new wrapper: own rollout
     buffer, same learner, no task label); then B again, and A after B (forgetting).
Evaluations: ``eval_episodes`` episodes of the stochastic policy on held-out layouts (env seed 10000 + seed),
as many per sub-env; return and success rate (target reached before the episode's step limit, MiniWorld only).
One JSON per finished (method, seed) in ``--out-dir`` (skipped when present: rerunning resumes);
``--summarise`` rebuilds ``rl_transfer.md`` and ``rl_transfer.png``. With ``deepmind_lab`` installed the
same script takes DM Lab levels: ``--level-a natlab --level-b ede`` or DM Lab level names.

    python benchmarks/rl_transfer_3d.py [--jobs 2] [--summarise]
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench3d_common as b3d
import cli_args
import common
import numpy as np

METHODS = ("vase", "entangled", "pixels")


@dataclass
class Args(b3d.LevelsArgs, cli_args.AgentArgs):
    methods: tuple[str, ...] = METHODS
    """Methods: vase (disentangled latents), entangled (beta=1 latents), pixels (CNN on frames)."""
    steps_a: int = 16_384
    """PPO env steps in level A."""
    steps_b: int = 8_192
    """PPO env steps of fine-tuning in level B."""
    train_every: int = 16
    """Online VASE: frames between learner steps (1,024 learner steps in A, 512 in B by default)."""
    eval_episodes: int = 16
    """Episodes per evaluation (spread evenly over the sub-envs)."""
    # PPO on 3-D levels: longer rollouts, larger minibatches, SB3's learning rate and discount
    ppo_n_steps: int = 128
    ppo_batch_size: int = 256
    ppo_lr: float = 3e-4
    ppo_gamma: float = 0.99
    ppo_ent_coef: float = 0.01
    out_dir: str = str(b3d.RESULTS / "rl_transfer" / "runs")
    """Folder of the per-run JSONs."""
    tensorboard_dir: str = "/tmp/vase_runs/3d/rl_transfer_tb"
    """SB3 TensorBoard logs with the vase/* scalars, kept outside the repository ("" = none)."""


# ------------------------------------------------------------------------------------ pieces
def pixel_extractor_class() -> type:
    """SB3 features extractor: the VASE encoder's architecture on raw frames, trained by PPO (built lazily so
    that importing this script does not import torch)."""
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    from vase_rl.core.config import ModelConfig, get_preset
    from vase_rl.core.model import Encoder
    from vase_rl.core.preprocess import to_model_input

    class PixelEncoder(BaseFeaturesExtractor):  # type: ignore[misc]
        """(B, 3, H, W) float in [0, 1] -> area-resized to image_size -> conv encoder -> (B, 256) hidden."""

        def __init__(self, observation_space: Any, image_size: int = 32) -> None:
            widths = get_preset("cpu").model.conv_channels
            cfg = ModelConfig(image_size=image_size, channels=3, conv_channels=widths)
            super().__init__(observation_space, features_dim=cfg.hidden_dim)
            self.encoder, self.image_size = Encoder(cfg), image_size

        def forward(self, observations: Any) -> Any:
            x = to_model_input(observations, self.image_size, 3, observations.device, batched=True)
            return self.encoder(x)[2]

    return PixelEncoder


def evaluate(agent: Any, venv: Any, episodes: int, track_success: bool) -> dict[str, Any]:
    """Mean return, success rate (episode ended by ``terminated``, not the time limit) and length over
    ``episodes`` episodes, ``episodes / n_envs`` from each sub-env (no bias towards short episodes)."""
    n = venv.num_envs
    targets = np.array([(episodes + i) // n for i in range(n)])
    counts, ret, length = np.zeros(n, int), np.zeros(n), np.zeros(n, int)
    returns, success, lengths = [], [], []
    obs = venv.reset()
    while (counts < targets).any():
        action, _ = agent.predict(obs, deterministic=False)
        obs, rewards, dones, infos = venv.step(action)
        ret, length = ret + rewards, length + 1
        for i in np.flatnonzero(dones):
            if counts[i] < targets[i]:
                returns.append(float(ret[i]))
                success.append(not infos[i].get("TimeLimit.truncated", False))
                lengths.append(int(length[i]))
                counts[i] += 1
            ret[i], length[i] = 0.0, 0
    return {
        "return": float(np.mean(returns)),
        "success": float(np.mean(success)) if track_success else None,
        "length": float(np.mean(lengths)),
        "episodes": len(returns),
    }


def curve_callback() -> Any:
    """SB3 callback recording (env steps, mean return, success rate, episodes averaged) of the last 100
    training episodes at every rollout end."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Curve(BaseCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.points: list[tuple[int, float, float, int]] = []
            self.returns: deque[float] = deque(maxlen=100)
            self.success: deque[bool] = deque(maxlen=100)

        def _on_step(self) -> bool:
            for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
                if done and "episode" in info:
                    self.returns.append(float(info["episode"]["r"]))
                    self.success.append(not info.get("TimeLimit.truncated", False))
            return True

        def _on_rollout_end(self) -> None:
            if self.returns:
                ret, success = float(np.mean(self.returns)), float(np.mean(self.success))
                self.points.append((self.num_timesteps, ret, success, len(self.returns)))

    return Curve()


# ------------------------------------------------------------------------------------ one run
def run(args: Args, method: str, seed: int) -> dict[str, Any]:
    """Train in A, zero-shot B, fine-tune in B, evaluate; returns the JSON record."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.utils import set_random_seed

    from vase_rl.agents.sb3 import VASELoggingCallback, find_vase, normalize_latents, normalized_like
    from vase_rl.agents.sb3_vec import VASEVecEnv

    torch.set_num_threads(1)
    set_random_seed(seed)
    t0, cpu0 = time.perf_counter(), time.process_time()
    learner = config = None
    if method != "pixels":
        config = b3d.vase_config(method, seed, max(1, args.steps_a // args.train_every), args.image_size)
        learner = b3d.make_learner(config)
    track = b3d.is_world(args.level_a) and b3d.is_world(args.level_b)

    def venv(level: str, env_seed: int, learn: bool) -> Any:
        env_id, kwargs = args.level_spec(level)
        raw = make_vec_env(env_id, args.n_envs, seed=env_seed, env_kwargs=kwargs)
        return (
            raw
            if learner is None
            else VASEVecEnv(raw, learner, learn=learn, train_every=args.train_every, seed=env_seed)
        )

    def score(model: Any, level: str) -> dict[str, Any]:
        env = normalized_like(model, venv(level, 10_000 + seed, learn=False))
        result = evaluate(model, env, args.eval_episodes, track)
        env.close()
        return result

    record = common.run_record(
        args, method, seed, {"opengl": b3d.opengl()}, vase_config=config.to_dict() if config else None
    )
    train_a = venv(args.level_a, seed, learn=True)
    if learner is None:
        policy, policy_kwargs = (
            "CnnPolicy",
            {
                "features_extractor_class": pixel_extractor_class(),
                "features_extractor_kwargs": {"image_size": args.image_size},
            },
        )
    else:
        train_a, policy, policy_kwargs = normalize_latents(train_a), "MlpPolicy", {}
    tb = args.tensorboard_dir or None
    model = PPO(
        policy, train_a, seed=seed, policy_kwargs=policy_kwargs, tensorboard_log=tb, **args.ppo_kwargs()
    )
    curve_a, curve_b = curve_callback(), curve_callback()
    model.learn(args.steps_a, callback=[curve_a, VASELoggingCallback()], tb_log_name=f"{method}_s{seed}_A")
    record["time_a_s"] = time.perf_counter() - t0
    vase = find_vase(train_a)
    record["vase_a"] = vase.stats() if vase else None
    if learner is not None:
        learner.freeze()  # evaluations encode with the encoder as it is; no learning from evaluation frames
    record["eval_a"] = score(model, args.level_a)
    record["zero_shot_b"] = score(model, args.level_b)
    print(
        f"{method} seed {seed}: A done at {(time.perf_counter() - t0) / 60:.1f} min: "
        f"A {record['eval_a']}, zero-shot B {record['zero_shot_b']}",
        flush=True,
    )

    t1 = time.perf_counter()
    if learner is not None:
        learner.unfreeze()
    train_b = normalized_like(model, venv(args.level_b, seed + 1, learn=True))
    if hasattr(train_b, "training"):
        train_b.training = True  # fine-tuning keeps updating the latent statistics
    model.set_env(train_b)
    train_a.close()
    model.ep_info_buffer = None  # the B curve starts from B's episodes only
    model.learn(
        args.steps_b,
        callback=[curve_b, VASELoggingCallback()],
        reset_num_timesteps=False,
        tb_log_name=f"{method}_s{seed}_B",
    )
    record["time_b_s"] = time.perf_counter() - t1
    vase = find_vase(train_b)
    record["vase_b"] = vase.stats() if vase else None
    if learner is not None:
        learner.freeze()
    record["eval_b"] = score(model, args.level_b)
    record["eval_a_after_b"] = score(model, args.level_a)
    record["n_envs_inferred"] = learner.memory.n_seen if learner else None
    record["learner_steps"] = learner.step if learner else None
    record["curve_a"], record["curve_b"] = curve_a.points, curve_b.points
    train_b.close()
    record.update(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - cpu0)
    return record


def random_reference(args: Args) -> dict[str, Any]:
    """The uniform random policy under the same evaluation protocol (seed 0's evaluation layouts)."""
    from stable_baselines3.common.env_util import make_vec_env

    out = {}
    for key, level in (("A", args.level_a), ("B", args.level_b)):
        env_id, kwargs = args.level_spec(level)
        venv = make_vec_env(env_id, args.n_envs, seed=10_000, env_kwargs=kwargs)
        out[key] = evaluate(
            common.RandomPolicy(venv.action_space.n, 0),
            venv,
            args.eval_episodes,
            b3d.is_world(args.level_a) and b3d.is_world(args.level_b),
        )
        venv.close()
    return out


# ------------------------------------------------------------------------------------ summary
def summarise(args: Args) -> str:
    """Markdown table (mean ± std over seeds) + PNG learning curves from the JSONs."""
    records = common.load_records(args.out_dir)
    folder = Path(args.out_dir).parent
    folder.mkdir(parents=True, exist_ok=True)
    by_method = common.by_method(records, METHODS)
    rand = common.load_json(folder / "random.json", None)
    evals = (
        ("eval_a", "A"),
        ("zero_shot_b", "zero-shot B"),
        ("eval_b", "B after fine-tuning"),
        ("eval_a_after_b", "A after B"),
    )

    def cells(rs: list[dict[str, Any]]) -> list[str]:
        return [b3d.mean_std(r[k][q] for r in rs) for k, _ in evals for q in ("return", "success")]

    header = ["method", "seeds"] + [f"{name} {q}" for _, name in evals for q in ("return", "success")]
    header += ["envs inferred", "wall / run", "CPU / run"]
    rows = [
        [
            m,
            len(rs),
            *cells(rs),
            sorted({r["n_envs_inferred"] for r in rs if r["n_envs_inferred"] is not None}) or "-",
            *(f"{np.mean([r[k] for r in rs]) / 60:.1f} min" for k in ("wall_s", "cpu_s")),
        ]
        for m, rs in by_method.items()
    ]
    if rand:
        rows.append(["random policy", "-", *random_cells(rand), "-", "-", "-"])
    a = records[0]["args"] if records else dataclasses.asdict(args)
    world = json.loads(a.get("world", "{}"))
    intro = (
        f"Budget per run: {a['steps_a']} PPO env steps in A ({a['level_a']}), {a['steps_b']} in B "
        f"({a['level_b']}), {a['n_envs']} sub-envs, PPO n_steps={a['ppo_n_steps']}, batch "
        f"{a['ppo_batch_size']}, {a['ppo_epochs']} epochs, lr {a['ppo_lr']}, gamma {a['ppo_gamma']}, "
        f"ent_coef {a['ppo_ent_coef']}; online VASE: one learner step (batch 64) every "
        f"{a['train_every']} frames, {a['image_size']}x{a['image_size']} inputs; evaluation: "
        f"{a['eval_episodes']} episodes of the stochastic policy on held-out layouts. Success = target "
        f"reached before the {world.get('max_episode_steps', 400)}-step limit. WorldConfig overrides: "
        f"{world or 'none'}. " + b3d.describe_configs(by_method)
    )
    note = (
        "Curves: mean training-episode return and success over the last 100 episodes at each rollout "
        "end; an episode ends early only on success, so points that average few episodes (the first of "
        "each phase in records without episode counts) overstate success."
    )
    md = "\n".join(
        [
            f"# RL transfer across 3-D levels: {a['level_a']} (A) -> {a['level_b']} (B)",
            "",
            b3d.provenance(records, "python benchmarks/rl_transfer_3d.py"),
            "",
            intro,
            "",
            common.markdown_table(header, rows),
            "",
            "![learning curves](rl_transfer.png)",
            "",
            note,
            "",
        ]
    )
    plot_curves(by_method, str(folder / "rl_transfer.png"))
    common.write_text(folder / "rl_transfer.md", md)
    return md


def plot_curves(by_method: dict[str, list[dict[str, Any]]], path: str) -> None:
    """Training return and success rate (last 100 episodes; mean ± std over seeds) in A and in B.

    Points averaging fewer than 16 episodes are left out when the records hold the count (the first episodes
    to end are the successful ones: early points overstate success)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    panels = (("curve_a", "level A (training)"), ("curve_b", "level B (fine-tuning)"))
    ylabels = ("mean training return (last 100 episodes)", "success rate (last 100 episodes)")
    for (col, (key, title)), (row, ylabel) in itertools.product(enumerate(panels), enumerate(ylabels)):
        ax = axes[row, col]
        for m, rs in by_method.items():
            raw = [np.array(r[key]) for r in rs if r[key]]
            curves = [c[c[:, 3] >= 16] if c.shape[1] > 3 else c for c in raw]
            curves = [c for c in curves if len(c)]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            steps, ys = curves[0][:n, 0], np.stack([c[:n, 1 + row] for c in curves])
            ax.plot(steps, ys.mean(0), label=f"{m} ({len(curves)} seeds)")
            ax.fill_between(steps, ys.mean(0) - ys.std(0), ys.mean(0) + ys.std(0), alpha=0.2)
        ax.set(title=title, xlabel="env steps", ylabel=ylabel)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def random_cells(rand: dict[str, Any]) -> list[str]:
    """Table cells of the random policy: its A numbers stand for A and A after B, B's for both B columns."""
    out = []
    for k in ("A", "B", "B", "A"):
        success = rand[k]["success"]
        out += [f"{rand[k]['return']:.2f}", "-" if success is None else f"{success:.2f}"]
    return out


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    if not args.summarise:
        common.json_once(Path(args.out_dir).parent / "random.json", lambda: random_reference(args))
        common.run_pending(run, args, args.methods, args.seeds, args.out_dir, args.jobs)
    print(summarise(args))


if __name__ == "__main__":
    main()
