"""Life-long visual RL: one PPO agent through a sequence of looks of the same task, the representation
learning online from the agent's own rollouts.

Task: the sprite goal task (``SpriteCanvas``: move the sprite to a fixed goal; same dynamics, reward and
geometry in every stage); only the look changes, stage by stage (``--stages``):

    moving Fashion -> moving MNIST -> moving inverse Fashion -> moving procedural shapes -> moving Fashion

(``vase_rl/MovingFashion-v0``, ``MovingMNIST-v0``, ``MovingInverseFashion-v0``, ``MovingShapes-v0``; the
last stage revisits the first look.) Per (method, seed), same seeds and budgets for every method:

  1. one PPO agent (SB3, ``rl_common.make_ppo``: MlpPolicy on VecNormalize'd latents, or CnnPolicy on the
     pixels) is trained ``steps_per_look`` env steps on each stage in turn. The learning representations
     (``vase``, ``vase-paper-anchor``, ``cci``, ``entangled``) keep training online from the same rollouts
     (``VASEVecEnv``, ``learn=True``; a new wrapper per stage, so each stage's frame buffer starts empty,
     the learner trains again once 1,024 frames of the new look are in it and sees only that look); the
     latent normaliser's statistics carry over from stage to stage and keep following the rollouts. No
     stage label reaches the agent or the learner.
  2. evaluation (stochastic policy, held-out env seeds, the learner not learning): every distinct look
     before the first stage and at the end of every stage (``eval_episodes``, >= 64 by default), and at
     ``curve_at`` env steps into every stage (``curve_episodes`` each, fewer; dense early: 512, 1k, 2k,
     4k, 8k, 16k, 24k of 32k, since a reference learns a look within ~4k steps). This gives
     the matrix ``R[stage, look]`` (return on each look at the end of each stage) and the curves.
  3. single-look references (run kind ``reference``, >= 3 seeds, seeds apart from the sequence's): the
     same method trained from scratch on one look alone for ``steps_per_look`` env steps, evaluated on
     that look with the same schedule. One JSON per (method, look, seed) in ``ref_dir``.

Methods (``rl_common.make_learner``): ``vase`` (cpu preset with ``vase_rl.core.config.AGENT_LOOP``: the
anchor synced on switches but not after a brief visit, to the model from before eq. 6 began counting
failures, the sign pick with the input view and the two-sided test), ``vase-current-sync`` (a switch
syncing to the model as it is then, ``AGENT_LOOP`` before the settled anchor joined it),
``vase-no-view`` (that without the input view, ``AGENT_LOOP`` before the view joined it),
``vase-brief-sync`` (``vase-no-view`` with every switch syncing the anchor, ``AGENT_LOOP`` before
``STEADY_ANCHOR``), ``vase-bounded`` (``vase-current-sync`` and ``vase_rl.core.config.BOUNDED``: the
gradient norm at most 3x its running mean),
``vase-paper-anchor`` (cpu preset with the paper's every-tau
sync and reuse, ``vase_rl.core.config.PAPER_LOOP``),
``cci`` (VASE's objective with ablation "-": no environment inference, dreaming or masks,
``VASEConfig.for_row("-", base=get_preset("cpu"))``), ``entangled`` (beta = 1 ELBO), ``untrained`` (frozen
random encoder), ``pixels`` (CnnPolicy + ``SmallCNN`` end to end: the fine-tuning baseline).

R matrix layout: ``R`` is (stages x stages) = 5 x 5, as Continual World lays out CW20 (its ten tasks
twice): column ``j`` is stage ``j``'s look, so the revisited look has two columns (0 and 4) holding the
same numbers (each distinct look is evaluated once per evaluation point; nothing is evaluated twice).
Returns are normalised per look: ``(R - random) / (ref - random)``, ``ref`` = the seed-mean final return
of the method's single-look reference on that look, ``random`` = the uniform random policy's return there
(same evaluation, 4x the episodes). 1 = as good as learning that look alone from scratch.

Metrics, as Continual World defines them (Wolczyk et al., NeurIPS 2021; code: ``awarelab/continual_world``,
``continualworld/results_processing/tables.py``: ``calculate_forgetting_individual``,
``calculate_forward_transfer``, ``compute_mean_and_ci``, ``BootstrapCI``), on normalised returns, with
T = 5 stages:

* average performance: ``mean_j R[T-1, j]``, the mean over the columns of the last row;
* forgetting of stage ``i``'s look: ``R[i, i] - R[T-1, i]`` (end of its own stage minus end of the
  sequence; the last stage's is 0 by construction and, as in CW, it counts in the mean over stages);
* forward transfer of stage ``i``: ``(AUC_i - AUC_i^ref) / (1 - AUC_i^ref)``, ``AUC_i`` = the area under
  the normalised return on stage ``i``'s look over the stage's first ``ft_window`` env steps divided by
  the window (trapezoids through the return just before the stage and the evaluations up to the window),
  ``AUC_i^ref`` = the same area of the reference (from its evaluation before training); as in CW the seed
  means are taken before the ratio. Departure from CW, which integrates over the whole stage: the
  references learn a look within ~4k of the 32k steps, so a whole-stage AUC is ~1 and the ratio divides
  noise by ~0.01 (the first table, at 8 evenly spaced points, read -11 to -20); the window (default 8k
  steps) is where learning happens. The ``1`` of CW's success rate is here the reference's final
  return (so random's level cancels: FT = the part of the reference's in-stage gap to its final return
  that the sequence closes). Undefined (null) where ``AUC_i^ref >= 1`` or ``ref == random``, and noisy
  where the reference learns its look within the first evaluation interval (``AUC_i^ref`` near 1);
* 90% intervals: CW's bootstrap over seeds (4000 resamples with replacement, quantiles 0.05 and 0.95 by
  midpoint); for forward transfer the sequence's seeds and the reference's seeds are resampled apart.
  Also reported: the zero-shot return on each stage's look just before its stage (row ``i - 1``; for
  stage 0 the evaluation before any training) and the revisit's return at its first evaluation (the first
  point inside the revisit stage; beside it the first point inside the first visit).
Whose forgetting (``ForgettingSplit``, learning representations only): at the end of the sequence each stage's
look is also evaluated with the policy of the end of its stage on today's representation, and with today's
policy on the representation of the end of its stage (``2 x eval_episodes`` each); the report normalises
both like R.

Departure from CW: CW's "end of stage" is the mean of the last 5 logged evaluations; here it is one
evaluation of ``eval_episodes`` (>= 64) episodes.

Cost: CPU seconds per run and per 1,000 env steps; each run's time split, measured around the parts
(``rl_common.CostTimer``: ``time.process_time`` and ``time.perf_counter``), into env stepping (the raw
envs), encoding (the VASE wrapper's time less the env's and the training's), online learning (the
wrapper's ``vase_stats()["train_time_s"]``), PPO updates (rollout end to next rollout start), evaluation,
and the rest (the policy acting, SB3's bookkeeping, set-up). The split is given in wall seconds (all
single-threaded; on a shared machine wall > CPU), the totals in CPU seconds.

Planned cost of the full table -- an ESTIMATE, not a measurement of it: 5 stages x 32,768 env steps per
sequence run, 4 looks x 32,768 per reference run; 6 methods x (5 sequence seeds + 3 reference seeds x 4
looks) = 30 sequence and 72 reference runs, 7.3M PPO env steps. Per-part rates, one thread on this
machine's shared AMD EPYC cores: a 5 x 2,048-step vase sequence with the default episodes and 3 points
inside each stage (67 CPU s) gave ~45 ms per online VASE train step (one per 16 frames after the
1,024-frame warm-up of each stage: ~2.7 ms per env step), ~0.7 ms per env step for env + encoding + PPO,
and ~18 ms per evaluation episode (8 sub-envs, 50-step episodes of a poor policy: an upper bound); rl_transfer.py's runs
measured 4.5-5.0 ms per env step for vase/entangled, 2.2 for pixels, 1.1 for untrained. So a vase-like
sequence run (vase, vase-paper-anchor, cci, entangled) costs ~10-15 CPU min (evaluation ~1 min of it:
5 x 4 looks x (7 x 16 + 64) episodes), a reference run ~2-3 min per look; pixels ~7 min per sequence
run, untrained ~4. In all about 6-9 CPU-hours (~3-4.5 h on 2 free cores with ``--jobs 2``). The tiny
case of ``tests/test_benchmarks.py`` (256 env steps per look, ~20 s) measures nothing of this scale.
Evaluation stays a minority: at most ~10 % of a vase run and ~30 % of the cheap untrained one (less once
the policy is good: its episodes end at the goal, not at 50 steps).

    export VASE_DATA_DIR=/work/shared/data
    python benchmarks/rl_lifelong.py --methods vase pixels --seeds 0 --ref-seeds 100 --jobs 2
    python benchmarks/rl_lifelong.py --kinds reference          # only the single-look references
    python benchmarks/rl_lifelong.py --summarise                # summary.json, rl_lifelong.md, PNGs

Outputs in ``benchmarks/results/rl_lifelong/``: ``runs/<method>_seed<s>.json`` (one per sequence run),
``references/<method>__<look>_seed<s>.json`` (one per reference run), ``runs/random.json``; rerunning skips
finished runs (a folder of another budget is refused, never mixed). ``--summarise`` (the code:
``rl_lifelong_report.py``) writes ``summary.json`` (per method: ``seeds``, ``average_performance``,
``forgetting``, ``forward_transfer`` as ``{"mean", "ci90"}``, plus per-look values, zero-shot, revisit and
cost; the key ``protocol`` holds the set-up), ``rl_lifelong.md``, ``R_<method>.png`` (the normalised R
matrix) and ``rl_lifelong_curves.png``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cli_args
import common
import numpy as np
import rl_common as rlc
import rl_methods as rlm
from rl_common import looks, short
from rl_lifelong_report import SEP, ref_key, summarise

from vase_rl.core.config import AGENT_LOOP

RESULTS = common.RESULTS
FOLDER = RESULTS / "rl_lifelong"
KINDS = ("sequence", "reference")
VASE_OVERRIDES: dict[str, Any] = AGENT_LOOP
"""Config overrides of the ``vase`` method on top of the cpu preset: the agent loop's anchor and sign pick."""


def overrides(method: str, stages: tuple[str, ...]) -> dict[str, Any] | None:
    """The config overrides of ``method`` in this benchmark: :data:`VASE_OVERRIDES` for ``vase``, and the
    frames' channels when the looks are RGB (the MiniWorld levels)."""
    sections = {k: dict(v) for k, v in VASE_OVERRIDES.items()} if method == "vase" else {}
    channels = rlc.frame_channels(stages)
    if channels != 1:
        sections["model"] = {**sections.get("model", {}), "channels": channels}
    return sections or None


METHODS = (
    "vase",
    "vase-current-sync",
    "vase-no-view",
    "vase-brief-sync",
    "vase-bounded",
    "vase-paper-anchor",
    "cci",
    "entangled",
    "untrained",
    "pixels",
)
"""The methods of the table (``rl_common.make_learner``)."""
NOT_BUDGET = ("kinds", "ref_seeds", "ref_dir", "bootstrap", "save_learner_dir")
"""Args fields that do not change a run's result (beyond ``rl_common.RUN_FIELDS``)."""


@dataclass
class Args(rlc.SpriteRLArgs):
    methods: tuple[str, ...] = METHODS
    """Methods to run (vase, vase-current-sync, vase-no-view, vase-brief-sync, vase-bounded, vase-paper-anchor, cci,
    entangled, untrained, pixels)."""
    stages: tuple[str, ...] = (
        "vase_rl/MovingFashion-v0",
        "vase_rl/MovingMNIST-v0",
        "vase_rl/MovingInverseFashion-v0",
        "vase_rl/MovingShapes-v0",
        "vase_rl/MovingFashion-v0",
    )
    """The looks in sequence (sprite goal-task env ids, or the MiniWorld levels ``vase_rl/WorldOutdoor-v0``
    and ``vase_rl/WorldIndoor-v0`` -- the 3-D variant; a repeated id is a revisit)."""
    world: str = "{}"
    """JSON dict of ``vase_rl.envs.world_layout.WorldConfig`` overrides for MiniWorld looks (e.g. a smaller
    arena: '{"arena_size": 7, "num_obstacles": 2}'); ignored by sprite looks."""
    steps_per_look: int = 32_768
    """PPO env steps per stage (and per reference run): 64 rollouts of 8 x 64."""
    curve_at: tuple[int, ...] = (512, 1024, 2048, 4096, 8192, 16384, 24576)
    """Env steps into each stage at which the look is evaluated before the stage's end (increasing, each
    a whole number of PPO rollouts, below ``steps_per_look``); dense early, where a look is learned."""
    ft_window: int = 8192
    """Env steps from each stage's start over which forward transfer's AUC is taken (one of ``curve_at``
    or ``steps_per_look``): the references learn a look within ~4k steps, so a whole-stage AUC is ~1."""
    curve_episodes: int = 16
    """Episodes per look at each evaluation inside a stage."""
    eval_episodes: int = 64
    """Episodes per look at the end of each stage and before the first (the R matrix)."""
    kinds: tuple[str, ...] = KINDS
    """Run kinds to do: "sequence" (the life-long runs) and/or "reference" (single-look runs)."""
    ref_seeds: tuple[int, ...] = (100, 101, 102)
    """Seeds of the single-look reference runs (apart from the sequence's)."""
    bootstrap: int = 4000
    """Bootstrap resamples of the 90% intervals (Continual World's 4000)."""
    out_dir: str = str(FOLDER / "runs")
    """Folder of the sequence runs' JSONs (summary, table and figures go to its parent)."""
    ref_dir: str = str(FOLDER / "references")
    """Folder of the reference runs' JSONs."""
    pretrain_frames: int = 0
    """A diagnosis, not the benchmark's protocol: before PPO's first step the learner trains on this many
    reward-free frames of the first stage's look under uniform random actions (through the wrapper, a round
    every ``pretrain_train_every`` frames); 0 = off. With ``pretrain_freeze`` PPO then reads a fixed code:
    what separates the code's content from its moving under PPO."""
    pretrain_train_every: int = 8
    """Frames per learner round during the pretraining (8: 4,096 learner steps in 32,768 frames)."""
    pretrain_freeze: bool = False
    """Freeze the learner after the pretraining."""
    save_learner_dir: str = ""
    """If set, a folder (outside ``benchmarks/results``: checkpoints are not results) where each sequence
    run's learner is saved at the end of every stage, ``<method>_seed<seed>_stage<s>.pt``, for offline
    diagnosis (drift, inference) of what the run's JSON only summarises; "" = off."""


def check_args(args: Args) -> list[int]:
    """ValueError naming the problem in ``args``; else the env steps into a stage of its evaluations."""
    unknown = sorted(set(args.methods) - set(rlm.ALL_METHODS)) + sorted(set(args.kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown methods or kinds {unknown}; choose from {rlm.ALL_METHODS} and {KINDS}")
    if not args.stages:
        raise ValueError("--stages is empty")
    if args.pretrain_frames < 0 or args.pretrain_train_every < 1:
        raise ValueError(
            f"pretrain_frames must be >= 0 and pretrain_train_every >= 1, got {args.pretrain_frames} "
            f"and {args.pretrain_train_every}"
        )
    rollout = args.n_envs * args.ppo_n_steps
    at = [*args.curve_at, args.steps_per_look]
    if any(b <= a for a, b in zip([0, *at], at, strict=False)) or any(x % rollout for x in at):
        raise ValueError(
            f"curve_at={args.curve_at} and steps_per_look={args.steps_per_look} must be increasing, each a "
            f"whole number of PPO rollouts (n_envs x ppo_n_steps = {rollout})"
        )
    if args.ft_window not in at:
        raise ValueError(f"ft_window={args.ft_window} must be one of curve_at or steps_per_look ({at})")
    return at


# ------------------------------------------------------------------------------------ one run
def stage_env(venv: Any, learner: Any, rms: Any) -> Any:
    """The training VecEnv of a stage: pixels as they are; latents normalised, the statistics carried over
    from the previous stage (fresh in the first) and updated by the rollouts."""
    from vase_rl.agents.sb3 import normalize_latents

    if learner is None:
        return venv
    return normalize_latents(venv) if rms is None else rlc.normalised(venv, rms, training=True)


def train_stages(
    args: Args, method: str, seed: int, stages: list[str], evaluated: list[str], save: bool = False
) -> dict[str, Any]:
    """One PPO agent (and the method's learner) through ``stages``, ``steps_per_look`` env steps each, every
    env of ``evaluated`` evaluated before the first stage and at ``curve_at`` and the end of each; the record
    holds the evaluations, training curves, the learner's counters per stage and the cost split. ``save``:
    the learner is saved at each stage's end into ``args.save_learner_dir`` when that is set."""
    from vase_rl.agents.sb3 import VASELoggingCallback, find_vase

    at = check_args(args)
    learner, record = rlc.new_run(args, method, seed, overrides(method, args.stages))
    if learner is not None and args.pretrain_frames > 0:
        pretrain(args, learner, stages[0], seed)
    timer = rlc.CostTimer()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    tb = os.path.join(args.out_dir, "tb") if args.tensorboard else None
    callbacks = [rlc.update_timer(timer)] + ([VASELoggingCallback()] if args.tensorboard else [])
    model: Any = None
    rms: Any = None
    evaluations: list[dict[str, Any]] = []
    record.update(stages=stages, evaluated=evaluated, train_curves=[], learner=[])
    drift = (
        LookDrift(learner, {e: rlc.look_frames(args, e, seed, 256) for e in evaluated}) if learner else None
    )
    split = ForgettingSplit()

    def evaluate(stage: int, point: int, episodes: int, stage_step: int) -> None:
        with timer("evaluation"):
            returns = {e: rlc.evaluate(args, model, e, seed, learner, rms, episodes) for e in evaluated}
        step = int(model.num_timesteps)
        evaluations.append(
            {
                "stage": stage,
                "point": point,
                "env_steps": step,
                "stage_step": stage_step,
                "episodes": episodes,
                "returns": returns,
                **({"drift": drift.now()} if drift is not None else {}),
            }
        )

    for s, env_id in enumerate(stages):
        train = stage_env(rlc.agent_env(args, env_id, seed + 1000 * s, learner, True, timer), learner, rms)
        rms = train.obs_rms if learner is not None else None
        if model is None:
            model = rlc.make_ppo(args, method, train, seed, tb)
            evaluate(-1, 0, args.eval_episodes, 0)  # before any training: the curves' and AUCs' start
        else:
            model.set_env(train)
        model.ep_info_buffer = None  # the training curve of a stage starts from its own episodes
        curve = rlc.curve_callback()
        for point, (begin, end) in enumerate(zip([0, *at], at, strict=False), start=1):
            model.learn(
                end - begin, callback=[curve, *callbacks], reset_num_timesteps=False, tb_log_name=method
            )
            rms = train.obs_rms if learner is not None else None
            evaluate(s, point, args.eval_episodes if end == at[-1] else args.curve_episodes, end)
        if drift is not None:
            drift.stage_ended(env_id)
        if learner is not None:
            split.stage_ended(model, learner, rms)
            if save and args.save_learner_dir:
                os.makedirs(args.save_learner_dir, exist_ok=True)
                learner.save(os.path.join(args.save_learner_dir, f"{method}_seed{seed}_stage{s}.pt"))
        record["train_curves"].append(curve.points)
        if learner is not None:
            stats = find_vase(train).stats()
            timer.wall["learn"] += stats["train_time_s"]  # wall seconds of the synchronous rounds
            record["learner"].append(
                {
                    "stage": s,
                    "learner_steps": learner.step,
                    "envs_inferred": learner.memory.n_seen,
                    "train_steps": stats["train_steps"],
                    "train_time_s": stats["train_time_s"],
                    "inferred": inferred_environments(learner, drift.frames if drift else {}),
                    "trained_per_env": {k: v for k, v in stats.items() if k.startswith("trained/")},
                    "pending_steps": stats["pending_steps"],
                    "drift": {k: v for k, v in stats.items() if k.startswith("drift/")},
                    # latents in each environment's used set u^s (A.2): what OnlineConfig.emit="used" keeps
                    "used_per_env": learner.memory.used[: learner.memory.n_seen].sum(1).tolist(),
                }
            )
        train.close()
    record["evaluations"] = evaluations
    record["R"] = r_matrix(evaluations, stages, len(at))
    if learner is not None:
        with timer("evaluation"):
            record["attribution"] = split.evaluate(args, model, learner, rms, seed, stages)
    record["train_env_steps"] = int(model.num_timesteps)
    record["cpu_s"] = time.process_time() - cpu0  # the machine is shared: CPU time is what the run costs
    record["wall_s"] = time.perf_counter() - wall0
    record["cost"] = cost_split(timer, record["cpu_s"], record["wall_s"])
    return record


class ForgettingSplit:
    """Whose forgetting it is, the representation's or the policy's: at the end of every stage a copy of the
    policy's parameters, the latent normaliser's statistics and the learner's state; at the end of the
    sequence each stage's look (the last stage's excepted) is evaluated twice more, on ``2 x eval_episodes``
    episodes: with the policy (and normaliser) of the end of its stage reading the representation of the end
    of the sequence, and with the final policy reading the representation of the end of its stage. A policy
    that keeps its return on the old representation but not on today's: the representation moved; the
    reverse: the policy was overwritten (as a frozen encoder's is)."""

    def __init__(self) -> None:
        self.saved: list[tuple[Any, Any, Any]] = []

    def stage_ended(self, model: Any, learner: Any, rms: Any) -> None:
        self.saved.append(
            (
                copy.deepcopy(model.policy.state_dict()),
                copy.deepcopy(learner.state_dict()),
                copy.deepcopy(rms),
            )
        )

    def evaluate(
        self, args: Args, model: Any, learner: Any, rms: Any, seed: int, stages: list[str]
    ) -> list[dict[str, Any]]:
        policy_now, learner_now = (
            copy.deepcopy(model.policy.state_dict()),
            copy.deepcopy(learner.state_dict()),
        )
        episodes, out = 2 * args.eval_episodes, []
        for i, env_id in enumerate(stages[:-1]):
            policy, state, rms_then = self.saved[i]
            learner.load_state_dict(state)
            repr_then = rlc.evaluate(args, model, env_id, seed, learner, rms, episodes)
            learner.load_state_dict(learner_now)
            model.policy.load_state_dict(policy)
            policy_then = rlc.evaluate(args, model, env_id, seed, learner, rms_then, episodes)
            model.policy.load_state_dict(policy_now)
            out.append(
                {
                    "stage": i,
                    "look": env_id,
                    "episodes": episodes,
                    "policy_now_representation_then": repr_then,
                    "policy_then_representation_now": policy_then,
                }
            )
        return out


class LookDrift:
    """How far each look's latents moved since the end of its own (latest) stage: 256 fixed frames per look
    (``rl_common.look_frames``) re-encoded at every evaluation, the mean over latents of
    ``vase_rl.probing.drift.latent_drift`` (units of each latent's sd over the frames then)."""

    def __init__(self, learner: Any, frames: dict[str, np.ndarray]) -> None:
        self.learner, self.frames = learner, frames
        self.reference: dict[str, np.ndarray] = {}

    def codes(self, env_id: str) -> np.ndarray:
        return self.learner.encode(self.frames[env_id]).detach().cpu().numpy()

    def stage_ended(self, env_id: str) -> None:
        """The stage of ``env_id`` ended: its latents now are the reference."""
        self.reference[env_id] = self.codes(env_id)

    def now(self) -> dict[str, float]:
        """Look -> mean drift since its stage ended (looks whose stage has ended)."""
        from vase_rl.probing.drift import latent_drift

        return {e: float(latent_drift(ref, self.codes(e)).mean) for e, ref in self.reference.items()}


def inferred_environments(learner: Any, frames: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per look: the environment eq. 6 assigns now to the first 64 of its fixed frames (a query: the
    learner's state is left as it was) and the decision's label -- which look each past look is filed under."""
    out = {}
    for env_id, x in frames.items():
        d = learner.infer_environment(x[:64])
        out[short(env_id)] = {"env": int(d.env), "allocated": bool(d.allocated), "reason": d.label}
    return out


def r_matrix(evaluations: list[dict[str, Any]], stages: list[str], last_point: int) -> list[list[float]]:
    """R[i][j]: the return on stage ``j``'s look at the end of stage ``i`` (raw returns)."""
    ends = {e["stage"]: e["returns"] for e in evaluations if e["point"] == last_point}
    return [[ends[i][env] for env in stages] for i in range(len(stages))]


def cost_split(timer: rlc.CostTimer, cpu_s: float, wall_s: float) -> dict[str, Any]:
    """The run's wall seconds per part (env, encode, learn, ppo_update, evaluation, other), the measured
    parts' CPU seconds, and the totals."""
    w = timer.wall
    vase = w.get("vase", 0.0)
    parts = {
        "env": w.get("env", 0.0),
        "encode": max(0.0, vase - w.get("env", 0.0) - w.get("learn", 0.0)) if vase else 0.0,
        "learn": w.get("learn", 0.0),
        "ppo_update": w.get("ppo_update", 0.0),
        "evaluation": w.get("evaluation", 0.0),
    }
    parts["other"] = max(0.0, wall_s - sum(parts.values()))
    return {"wall_s": parts, "measured_cpu_s": dict(timer.cpu), "cpu_s": cpu_s, "total_wall_s": wall_s}


def run(args: Args, method: str, seed: int) -> dict[str, Any]:
    """A sequence run: the agent through ``args.stages``, every distinct look evaluated."""
    record = train_stages(args, method, seed, list(args.stages), looks(args.stages), save=True)
    record["kind"] = "sequence"
    return record


def pretrain(args: Args, learner: Any, env_id: str, seed: int) -> None:
    """``args.pretrain_frames`` reward-free random-action frames of ``env_id`` (env seeds 40,000+) through
    the learning wrapper, a learner round every ``args.pretrain_train_every`` frames; then frozen if
    ``args.pretrain_freeze``."""
    venv = rlc.agent_env(
        dataclasses.replace(args, train_every=args.pretrain_train_every), env_id, 40_000 + seed, learner, True
    )
    rlc.roll_out(venv, args.pretrain_frames, rlc.random_actor(venv, seed))
    venv.close()
    if args.pretrain_freeze:
        learner.freeze()


def run_reference(args: Args, key: str, seed: int) -> dict[str, Any]:
    """A reference run ``<method>__<look>``: the method from scratch on that look alone."""
    method, name = key.split(SEP)
    env_id = next(e for e in looks(args.stages) if short(e) == name)
    record = train_stages(args, method, seed, [env_id], [env_id])
    record.update(kind="reference", method=method, look=env_id, key=key, final=record["R"][0][0])
    return record


def describe(record: dict[str, Any]) -> str:
    """The line printed when a run is saved: the last row of R (or the reference's final return)."""
    cost = f"({record['cpu_s']:.0f} CPU s)"
    if record.get("kind") == "reference":
        return f"final return {record['final']:.2f} {cost}"
    return "end of sequence: " + ", ".join(f"{x:.2f}" for x in record["R"][-1]) + f" {cost}"


def start(args: Args) -> None:
    """Before the runs: refuse folders of another budget; the random policy's returns (once per folder)."""
    check_args(args)

    def check(method: str) -> dict[str, Any] | None:
        return overrides(method, args.stages)

    rlc.check_budget(args, args.out_dir, NOT_BUDGET, check)
    # a reference trains one look alone: the order of the sequence does not change it, so sequences of the
    # same looks in another order share the references
    rlc.check_budget(args, args.ref_dir, (*NOT_BUDGET, "stages"), check)
    env_ids = {e: e for e in looks(args.stages)}
    common.json_once(Path(args.out_dir) / "random.json", lambda: rlc.random_returns(args, env_ids))


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    if not args.summarise:
        start(args)
        if "sequence" in args.kinds:
            common.run_pending(run, args, args.methods, args.seeds, args.out_dir, args.jobs, describe)
        if "reference" in args.kinds:
            keys = [ref_key(m, e) for m in args.methods for e in looks(args.stages)]
            common.run_pending(run_reference, args, keys, args.ref_seeds, args.ref_dir, args.jobs, describe)
    print(summarise(args))


if __name__ == "__main__":
    main()
