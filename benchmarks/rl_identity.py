"""Identity task sample efficiency: PPO must see *what* the sprite is, not only where it is.

Env: ``vase_rl/MovingFashionIdentity-v0`` (``SpriteCanvas(task="identity")``): push the sprite to the
left edge for classes 0-4 (T-shirt, trouser, pullover, dress, coat), to the right edge for 5-9
(sandal, shirt, sneaker, bag, ankle boot); either edge ends the episode with +1 (right one) or -1
(wrong one), so a policy blind to identity earns about 0 on the bonus.

Protocol, per (method, seed), same seeds and budgets for every method:
  1. reward-free pretraining (``vase``, ``entangled``): the learner trains online from
     ``pretrain_steps`` frames of random rollouts of the same env (no reward is used; these frames are
     reported next to the PPO steps, not hidden in them);
  2. PPO for ``steps`` env steps (VASE keeps learning online from the rollouts; latents normalised by
     ``VecNormalize``); the learning curve is the mean return of the last 100 training episodes at every
     rollout end; final return: ``eval_episodes`` episodes of the stochastic policy on held-out seeds.
Sample efficiency: the env steps (of PPO) at which a method's seed-mean curve first reaches the
seed-mean final training return of ``pixels``. Methods and their construction are ``rl_transfer.py``'s,
in ``rl_common.py`` (``vase``, ``entangled``, ``untrained``, ``pixels`` = CnnPolicy + SmallCNN). One JSON
per finished (method, seed) in ``benchmarks/results/rl_transfer/identity/`` (the script resumes);
``--summarise`` writes ``rl_identity.md`` and ``rl_identity.png`` beside them.

    VASE_DATA_DIR=/work/shared/data python benchmarks/rl_identity.py --methods vase pixels --seeds 0
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cli_args
import common
import numpy as np
import rl_common as rlc
import rl_methods as rlm
import rl_report

RESULTS = common.RESULTS
HEADER = (
    "method",
    "seeds",
    "reward-free frames",
    "final return (eval)",
    "final training return",
    "steps to pixels' final",
    "CPU time / run",
)


@dataclass
class Args(rlc.SpriteRLArgs):
    env_id: str = "vase_rl/MovingFashionIdentity-v0"
    """The identity-task env."""
    pretrain_steps: int = 8_192
    """Reward-free random-rollout frames the learning representations train on before PPO starts."""
    steps: int = 49_152
    """Env steps of PPO (96 PPO rollouts)."""
    out_dir: str = str(RESULTS / "rl_transfer" / "identity")
    """Folder of the per-run JSONs, the table and the figure."""


def run(args: Args, method: str, seed: int) -> dict[str, Any]:
    """Pretrain the representation without reward (learning methods), then PPO; returns the JSON record."""
    from vase_rl.agents.sb3 import normalize_latents

    learner, record = rlc.new_run(args, method, seed)
    t0, cpu0 = time.perf_counter(), time.process_time()
    record["pretrain_frames"] = 0
    if method in rlm.LEARNING and args.pretrain_steps > 0:
        venv = rlc.agent_env(args, args.env_id, 20_000 + seed, learner, learn=True)
        record["pretrain_frames"] = rlc.roll_out(venv, args.pretrain_steps, rlc.random_actor(venv, seed))
        venv.close()
    train = rlc.agent_env(args, args.env_id, seed, learner, learn=True)
    train = train if learner is None else normalize_latents(train)
    model, curve = rlc.train_ppo(args, method, train, seed, args.steps, f"{method}_s{seed}")
    rms = None if learner is None else train.obs_rms
    record["final_return"] = rlc.evaluate(args, model, args.env_id, seed, learner, rms)
    record["curve"] = curve.points
    record["final_train_return"] = curve.points[-1][1] if curve.points else None
    record["learner_steps"] = learner.step if learner else None
    record["envs_inferred"] = learner.memory.n_seen if learner else None
    record["wall_s"] = time.perf_counter() - t0
    record["cpu_s"] = time.process_time() - cpu0
    return record


def describe(record: dict[str, Any]) -> str:
    """The line printed when a run is saved."""
    return f"final return {record['final_return']:.2f} ({record['cpu_s']:.0f} CPU s)"


# ---------------------------------------------------------------------------------- summary
def mean_curve(rs: list[dict[str, Any]]) -> np.ndarray | None:
    """(n, 2) steps and seed-mean return over the common length of the seeds' curves; None if none."""
    curves = [np.array(r["curve"]) for r in rs if r.get("curve")]
    if not curves:
        return None
    n = min(len(c) for c in curves)
    return np.stack([curves[0][:n, 0], np.mean([c[:n, 1] for c in curves], axis=0)], axis=1)


def steps_to_reach(curve: np.ndarray | None, threshold: float | None) -> int | None:
    """First env step at which ``curve`` (n, 2) reaches ``threshold``; None if never (or no curve)."""
    if curve is None or threshold is None:
        return None
    hits = np.nonzero(curve[:, 1] >= threshold)[0]
    return int(curve[hits[0], 0]) if len(hits) else None


def summarise(args: Args) -> str:
    """Markdown table (mean ± std over seeds, steps to pixels' final return) + PNG learning curves."""
    records, by_method, rand = rl_report.load(args)
    curves = {m: mean_curve(rs) for m, rs in by_method.items()}
    pix = curves.get("pixels")
    threshold = None if pix is None else float(pix[-1, 1])
    reach = {m: steps_to_reach(c, threshold) for m, c in curves.items()}
    rows = [
        [
            m,
            len(rs),
            f"{np.mean([r['pretrain_frames'] for r in rs]):.0f}",
            rl_report.cell([r["final_return"] for r in rs]),
            rl_report.cell([r["final_train_return"] for r in rs]),
            "never" if reach[m] is None else reach[m],
            f"{np.mean([r['cpu_s'] for r in rs]):.0f} s",
        ]
        for m, rs in by_method.items()
    ]
    if "env" in rand:
        rows.append(["random policy", "-", "-", f"{rand['env']:.2f}", "-", "-", "-"])
    a = records[0]["args"] if records else dataclasses.asdict(args)
    vase, pixels = reach.get("vase"), reach.get("pixels")
    if vase is None or pixels is None or threshold is None:
        never = "**not met** (VASE never got there)"
        target = "not measured" if "vase" not in reach or pixels is None else never
    else:
        target = f"**{'met' if vase < pixels else 'not met'}** (VASE at {vase} env steps, pixels at {pixels})"
    md = [
        f"# Identity task: sample efficiency on {a['env_id']}",
        "",
        f"Produced by `python benchmarks/rl_identity.py` (then `--summarise`). Budget per run: "
        f"{a['pretrain_steps']} reward-free random-rollout frames for the learning representations "
        f"(vase, entangled), then {a['steps']} env steps of PPO; {a['n_envs']} sub-envs, "
        f"{a['canvas_size']}x{a['canvas_size']} canvas, cpu preset, online VASE round every "
        f"{a['train_every']} frames. 'steps to pixels' final' = the PPO env steps at which the seed-mean "
        f"training curve first reaches pixels' seed-mean final training return"
        f"{'' if threshold is None else f' ({threshold:.2f})'}. " + rl_report.cost_line(records),
        "",
        common.markdown_table(HEADER, rows),
        "",
        f"Target (issue 16): VASE reaches pixels' final return in fewer env steps: {target}",
        "",
    ]
    Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    rl_report.plot_curves(by_method, [("curve", a["env_id"])], Path(args.out_dir) / "rl_identity.png")
    text = "\n".join(md) + "\n![learning curves](rl_identity.png)\n"
    common.write_text(Path(args.out_dir) / "rl_identity.md", text)
    return text


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    if not args.summarise:
        rlc.start(args, {"env": args.env_id})
        common.run_pending(run, args, args.methods, args.seeds, args.out_dir, args.jobs, describe)
    print(summarise(args))


if __name__ == "__main__":
    main()
