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
     c. zero-shot return in B after adaptation, with no policy update (``kept`` = B / A), the return on
        A after adaptation (retention, the headline: ``retained`` = A after / A) and the drift of A's
        latents (``vase_rl.probing.drift.latent_drift`` on ``drift_frames`` fixed frames of A, in units
        of each latent's sd over them before adaptation);
     d. short fine-tune of the policy on B (``steps_b``; VASE keeps learning); return on B.
Returns are means over ``eval_episodes`` episodes of the stochastic PPO policy on held-out seeds; the
random-policy row is measured by the same evaluation.

Methods: ``vase-paper-anchor`` (cpu preset with the paper's every-tau dreaming anchor and reuse,
``vase_rl.core.config.PAPER_LOOP``), ``vase-on-switch`` (the anchor synced on environment switches,
``DreamConfig.anchor="on-switch"``, the cpu preset's default), ``vase-pick`` (that anchor and the sign pick
at allocation without the input view, ``vase_rl.core.config.NO_VIEW``), ``vase-brief-sync`` (those and the
two-sided test of eq. 6), ``vase-no-view`` (and an anchor that a brief visit does not re-sync),
``vase-current-sync`` (and the input view), ``vase-agent-loop`` (and a switch anchoring to the model from
before eq. 6 began counting failures: ``vase_rl.core.config.AGENT_LOOP``, the library's agent-loop
default), ``vase-ramp`` (``vase-no-view`` with the held decoder
released over 250 steps, ``ModelConfig.young_decoder_release_steps``), ``entangled`` (VASE with the beta=1
ELBO, same online adaptation),
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
from rl_common import check_budget  # noqa: F401  (part of this script's API: tests/test_rl_tasks.py)

RESULTS = common.RESULTS
SHIFTS = ("b", "b2")
"""Record keys of the two appearance shifts (``env_b``, ``env_b2``)."""
ISSUE_SEEDS = 5
"""Seeds per method before a verdict is final."""
METHODS = (
    "vase-paper-anchor",
    "vase-on-switch",
    "vase-pick",
    "vase-brief-sync",
    "vase-ramp",
    "vase-no-view",
    "vase-current-sync",
    "vase-agent-loop",
    "entangled",
    "untrained",
    "pixels",
)
"""The methods of this benchmark (``rl_common.make_learner`` builds them)."""


@dataclass
class Args(rlc.SpriteRLArgs):
    methods: tuple[str, ...] = METHODS
    """Methods to run (vase-paper-anchor, vase-on-switch, vase-pick, vase-brief-sync, vase-ramp,
    vase-no-view, vase-current-sync, vase-agent-loop, entangled, untrained, pixels)."""
    eval_episodes: int = 128
    """Episodes per evaluation (32 misread a return by 0.25)."""
    drift_frames: int = 512
    """Fixed frames of A whose latents' drift is measured after each adaptation."""
    env_a: str = "vase_rl/MovingFashion-v0"
    """Training environment (PPO for steps_a)."""
    env_b: str = "vase_rl/MovingInverseFashion-v0"
    """First appearance shift (same sprites and geometry, inverted colours)."""
    env_b2: str = "vase_rl/MovingMNIST-v0"
    """Second appearance shift (other sprites, same geometry); empty to skip."""
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
    out_dir: str = str(RESULTS / "rl_transfer" / "runs")
    """Folder of the per-run JSONs (the table and figure go to its parent)."""


# ------------------------------------------------------------------------------------ one run
def adapt(args: Args, model: Any, env_id: str, seed: int, learner: Any, obs_rms: Any) -> tuple[Any, int]:
    """Reward-free rollouts of ``env_id`` while the representation learns; the policy is not updated.
    Returns the (possibly updated) latent statistics and the frames seen (0 when nothing can adapt)."""
    can_adapt = learner is not None and (not learner.frozen or args.adapt_normalizer)
    if not can_adapt or args.adapt_steps <= 0:
        return obs_rms, 0
    if args.adapt_policy not in ("random", "policy"):
        raise ValueError(f"adapt_policy must be 'random' or 'policy', got {args.adapt_policy!r}")
    venv = rlc.normalised(
        rlc.agent_env(args, env_id, 20_000 + seed, learner, learn=True),
        obs_rms,
        training=args.adapt_normalizer,
    )
    act = (
        rlc.random_actor(venv, seed)
        if args.adapt_policy == "random"
        else (lambda obs: model.predict(obs, deterministic=False)[0])
    )
    frames = rlc.roll_out(venv, args.adapt_steps, act)
    venv.close()
    return (venv.obs_rms if obs_rms is not None else None), frames


def run(args: Args, method: str, seed: int) -> dict[str, Any]:
    """Train on A, then adapt / evaluate / fine-tune on each shift from the same A agent."""
    from vase_rl.agents.sb3 import VASELoggingCallback, normalize_latents
    from vase_rl.probing.drift import latent_drift

    learner, record = rlc.new_run(args, method, seed)
    t0, cpu0 = time.perf_counter(), time.process_time()
    train_a = rlc.agent_env(args, args.env_a, seed, learner, learn=True)
    train_a = train_a if learner is None else normalize_latents(train_a)
    model, curve_a = rlc.train_ppo(args, method, train_a, seed, args.steps_a, f"{method}_s{seed}_A")
    record["cpu_a_s"] = time.process_time() - cpu0
    rms_a = None if learner is None else copy.deepcopy(train_a.obs_rms)
    policy_a = copy.deepcopy(model.policy.state_dict())
    optim_a = copy.deepcopy(model.policy.optimizer.state_dict())
    learner_a = copy.deepcopy(learner.state_dict()) if method in rlm.LEARNING else None
    record["return_a"] = rlc.evaluate(args, model, args.env_a, seed, learner, rms_a)
    record["curve_a"] = curve_a.points
    record["learner_steps_a"] = learner.step if learner else None
    record["envs_inferred_a"] = learner.memory.n_seen if learner else None
    frames_a = rlc.look_frames(args, args.env_a, seed, args.drift_frames) if learner_a is not None else None
    mu_a = None if frames_a is None else learner.encode(frames_a).cpu().numpy()
    for key, env_id in zip(SHIFTS, (args.env_b, args.env_b2), strict=True):
        if not env_id:
            continue
        if learner_a is not None:
            learner.load_state_dict(copy.deepcopy(learner_a))
        model.policy.load_state_dict(policy_a)
        model.policy.optimizer.load_state_dict(copy.deepcopy(optim_a))
        record[f"no_adapt_{key}"] = rlc.evaluate(args, model, env_id, seed, learner, rms_a)
        rms, frames = adapt(args, model, env_id, seed, learner, rms_a)
        record[f"adapt_frames_{key}"] = frames
        record[f"zero_shot_{key}"] = rlc.evaluate(args, model, env_id, seed, learner, rms)
        record[f"a_after_adapt_{key}"] = rlc.evaluate(args, model, args.env_a, seed, learner, rms)
        ret_a = record["return_a"]
        record[f"kept_{key}"] = record[f"zero_shot_{key}"] / ret_a if ret_a else None
        record[f"retained_{key}"] = record[f"a_after_adapt_{key}"] / ret_a if ret_a else None
        if mu_a is not None:
            drift = latent_drift(mu_a, learner.encode(frames_a).cpu().numpy())
            record[f"drift_a_{key}"] = drift.to_dict()
        record[f"envs_inferred_{key}"] = learner.memory.n_seen if learner else None
        train_b = rlc.normalised(
            rlc.agent_env(args, env_id, seed + 1, learner, learn=True), rms, training=True
        )
        model.set_env(train_b)
        model.ep_info_buffer = None  # the fine-tune curve starts from B's episodes only
        curve_b = rlc.curve_callback()
        model.learn(
            args.steps_b, callback=[curve_b, VASELoggingCallback()], tb_log_name=f"{method}_s{seed}_{key}"
        )
        rms_b = train_b.obs_rms if rms is not None else None
        record[f"fine_tuned_{key}"] = rlc.evaluate(args, model, env_id, seed, learner, rms_b)
        record[f"curve_{key}"] = curve_b.points
        train_b.close()
    record["learner_steps"] = learner.step if learner else None
    record["wall_s"] = time.perf_counter() - t0
    record["cpu_s"] = time.process_time() - cpu0  # the machine is shared: CPU time is what the run costs
    return record


def describe(record: dict[str, Any]) -> str:
    """The line printed when a run is saved: its returns in A and on each shift, its CPU time."""
    shifts = ", ".join(
        f"{k}: {record[f'no_adapt_{k}']:.2f} -> {record[f'zero_shot_{k}']:.2f} "
        f"(ft {record[f'fine_tuned_{k}']:.2f})"
        for k in SHIFTS
        if f"zero_shot_{k}" in record
    )
    return f"A {record['return_a']:.2f}; {shifts} ({record['cpu_s']:.0f} CPU s)"


# ---------------------------------------------------------------------------------- summary
def verdict(by_method: dict[str, list[dict[str, Any]]]) -> str:
    """The agent-loop targets per VASE variant, each clause marked met / not met / not measured: the A
    return kept after reward-free adaptation to every shift (>= 95 %) with A's latents drifting <= 0.2 sd,
    and >= 80 % of the A return on B without a policy update; the pixels' B / A beside them."""

    def mark(ok: bool | None) -> str:
        return "not measured" if ok is None else ("**met**" if ok else "**not met**")

    def pct(v: float | None) -> str:
        return "" if v is None else f" ({100 * v:.0f} %)"

    lines = []
    for m, rs in by_method.items():
        if not m.startswith("vase"):
            continue
        kept = {
            k: rl_report.mean_of(rs, f"retained_{k}")
            for k in SHIFTS
            if rl_report.mean_of(rs, f"retained_{k}") is not None
        }
        drifts = {
            k: float(np.mean([r[f"drift_a_{k}"]["mean"] for r in rs if r.get(f"drift_a_{k}")]))
            for k in kept
            if any(r.get(f"drift_a_{k}") for r in rs)
        }
        worst = min(kept.values()) if kept else None
        drift = (
            ", ".join(f"{k.upper()} {mark(d <= 0.2)} ({d:.2f} sd)" for k, d in drifts.items())
            if drifts
            else "not measured"
        )
        b = rl_report.mean_of(rs, "kept_b")
        lines += [
            f"- `{m}`: A after adaptation >= 95 % of A on every shift: "
            f"{mark(None if worst is None else worst >= 0.95)}{pct(worst)}; A's latent drift <= 0.2 sd: {drift}; "
            f"B without a policy update >= 80 % of A: {mark(None if b is None else b >= 0.8)}{pct(b)}"
        ]
    pix = rl_report.mean_of(by_method.get("pixels", []), "kept_b")
    lines.append(f"- reference: pixels keep{pct(pix) if pix is not None else ' (not measured)'} of A on B")
    return "Targets (mean over seeds):\n\n" + "\n".join(lines)


def settings(records: list[dict[str, Any]]) -> str:
    """The dreaming anchor (the shortest visit that re-syncs it on a switch, "settled" where a switch syncs
    to the model from before eq. 6 counted failures) and the new environment's sign rule the runs'
    learners had, "+ view" where the encoder reads a look picked negative inverted
    (``ModelConfig.env_input_view``; '-' without a learner)."""

    def anchor(dream: dict[str, Any]) -> str:
        if dream["anchor"] != "on-switch":
            return str(dream["anchor"])
        visit = dream.get("sync_min_visit", 0)
        rules = [f"visits >= {visit} steps"] if visit else []
        rules += ["settled"] if dream.get("sync_source", "current") == "settled" else []
        return "on-switch" + (f" ({', '.join(rules)})" if rules else "")

    def sign(model: dict[str, Any]) -> str:
        return model["new_env_sign"] + (" + view" if model.get("env_input_view", "raw") == "pick" else "")

    found = {
        f"{anchor(r['vase_config']['dream'])}, {sign(r['vase_config']['model'])}"
        for r in records
        if r.get("vase_config")
    }
    return " / ".join(sorted(found)) or "-"


def summarise(args: Args) -> str:
    """Markdown tables (mean ± std over seeds) + PNG learning curves from the JSONs."""
    records, by_method, rand = rl_report.load(args)
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
        f"episodes of the stochastic policy. " + rl_report.cost_line(records),
        "",
        common.markdown_table(
            [
                "method",
                "seeds",
                "anchor, new env's sign",
                "return A",
                "learner steps in A",
                "envs inferred in A",
                "CPU time / run",
            ],
            [
                [
                    m,
                    len(rs),
                    settings(rs),
                    rl_report.cell([r["return_a"] for r in rs]),
                    "-"
                    if rl_report.mean_of(rs, "learner_steps_a") is None
                    else f"{rl_report.mean_of(rs, 'learner_steps_a'):.0f}",
                    sorted({r["envs_inferred_a"] for r in rs if r["envs_inferred_a"] is not None}) or "-",
                    f"{np.mean([r['cpu_s'] for r in rs]):.0f} s",
                ]
                for m, rs in by_method.items()
            ]
            + ([["random policy", "-", "-", f"{rand['A']:.2f}", "-", "-", "-"]] if "A" in rand else []),
        ),
        "",
    ]
    for k, env_id in shifts:
        rows = [
            [
                m,
                len(rs),
                rl_report.cell([r[f"a_after_adapt_{k}"] for r in rs]),
                rl_report.cell([r.get(f"retained_{k}") for r in rs], percent=True),
                rl_report.cell([r[f"drift_a_{k}"]["mean"] if r.get(f"drift_a_{k}") else None for r in rs]),
                rl_report.cell([r[f"no_adapt_{k}"] for r in rs]),
                rl_report.cell([r[f"zero_shot_{k}"] for r in rs]),
                rl_report.cell([r[f"kept_{k}"] for r in rs], percent=True),
                rl_report.cell([r[f"fine_tuned_{k}"] for r in rs]),
                sorted({r[f"envs_inferred_{k}"] for r in rs if r[f"envs_inferred_{k}"] is not None}) or "-",
            ]
            for m, rs in by_method.items()
            if all(f"zero_shot_{k}" in r for r in rs)
        ]
        if k.upper() in rand:
            rb, ra = rand[k.upper()], rand["A"]
            rows.append(
                [
                    "random policy",
                    "-",
                    f"{ra:.2f}",
                    "-",
                    "-",
                    f"{rb:.2f}",
                    f"{rb:.2f}",
                    f"{100 * rb / ra:.0f} % (of random A)",
                    f"{rb:.2f}",
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
                    "**A after adaptation**",
                    "retained (A after / A)",
                    "A's latent drift (sd)",
                    "B zero-shot before adaptation",
                    "B zero-shot after adaptation",
                    "kept (B / A)",
                    "B after fine-tune",
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
    folder.mkdir(parents=True, exist_ok=True)
    panels = [("curve_a", "env A (training)")]
    panels += [(f"curve_{k}", f"fine-tuning on {k.upper()}") for k, _ in shifts]
    rl_report.plot_curves(by_method, panels, folder / "rl_transfer.png")
    text = "\n".join(md) + "\n![learning curves](rl_transfer.png)\n"
    common.write_text(folder / "rl_transfer.md", text)
    return text


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    if not args.summarise:
        rlc.start(args, {"A": args.env_a, "B": args.env_b, "B2": args.env_b2})
        common.run_pending(run, args, args.methods, args.seeds, args.out_dir, args.jobs, describe)
    print(summarise(args))


if __name__ == "__main__":
    main()
