"""Retention of a fixed readout policy: which dreaming anchor and which emitted observation keep an old
environment's latents meaning what they meant while VASE learns a new one?

Protocol per (variant, seed): the cpu preset with the variant's overrides trains ``steps_a`` steps on
moving Fashion (A); a linear readout of the sprite's position from A's codes is fit on 1,024 labelled
frames and acts greedily toward the goal of the sprite goal task (``vase_rl.probing.readout_policy``);
its return on A is measured on ``episodes`` seeded episodes. VASE then trains ``steps_b`` steps on
moving inverse Fashion (B, reward-free) and the same readout, unchanged, is measured on A again, with
the drift of A's codes (``vase_rl.probing.drift.latent_drift``). Each of three observations a wrapper
could emit is read the same way: ``mu`` (every latent mean, the wrappers' output), ``used`` (latents
outside the used set u^s of the environment the classifier infers per frame set to 0) and ``masked``
(eq. 2 at its mean: latents outside the inferred environment's applied mask a^s set to 0).

Variants: the anchor (``every-tau``, the paper; ``on-switch``) without and with the sign pick
(``+pick``: ``vase_rl.core.config.SIGN_PICK``). One JSON per (variant, seed) in
``benchmarks/results/rl_transfer/readout_retention/runs/`` (skipped when present); ``--summarise``
writes ``readout_retention.md`` beside it.

    VASE_DATA_DIR=/work/shared/data python benchmarks/investigations/readout_retention.py --seeds 0 1 2
    python benchmarks/investigations/readout_retention.py --summarise
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vase_rl.core.config import SIGN_PICK, get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.envs.sampler import SpriteSampler
from vase_rl.probing.drift import latent_drift
from vase_rl.probing.readout_policy import fit_position_readout, readout_return

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helper modules
import cli_args
import common

OUT = common.RESULTS / "rl_transfer" / "readout_retention"
VARIANTS: dict[str, dict[str, Any]] = {
    "every-tau": {"dream": {"anchor": "every-tau"}},
    "on-switch": {"dream": {"anchor": "on-switch"}},
    "every-tau+pick": {"dream": {"anchor": "every-tau"}, "model": SIGN_PICK},
    "on-switch+pick": {"dream": {"anchor": "on-switch"}, "model": SIGN_PICK},
}
"""variant -> ``VASEConfig.with_overrides`` sections on top of the cpu preset."""
EMISSIONS = ("mu", "used", "masked")
"""The observations a wrapper could emit (module docstring)."""


@dataclass
class Args(cli_args.JobsArgs):
    methods: tuple[str, ...] = tuple(VARIANTS)
    """Variants to run (every-tau, on-switch, every-tau+pick, on-switch+pick)."""
    steps_a: int = 300
    """Training steps on moving Fashion (A). Not a multiple of tau (250): the paper's snapshot was last
    synced 50 steps before A ends, as in an agent's loop (at 200 it would still be the untrained model)."""
    steps_b: int = 300
    """Reward-free training steps on moving inverse Fashion (B): the paper's snapshot syncs once inside
    B (step 500), so the last 100 steps dream A from a model trained 200 steps on B."""
    episodes: int = 64
    """Evaluation episodes of the readout policy on A (the same seeded episodes before and after B)."""
    out_dir: str = str(OUT / "runs")
    """Folder of the per-run JSONs."""


def emit(learner: ContinualLearner, frames: np.ndarray, kind: str) -> np.ndarray:
    """The observation ``kind`` (:data:`EMISSIONS`) of frames (n, H, W, C): (n, N) float."""
    x = learner.preprocess(frames)
    with torch.no_grad():
        mu, _, hidden = learner.model.encoder(x)
        if kind == "mu":
            return mu.numpy()
        env = learner.model.classifier(hidden, max(learner.memory.n_seen, 1)).argmax(1)
        keep = learner.memory.used[env] if kind == "used" else learner.applied_masks().cpu()[env]
        return (mu * keep.float()).numpy()


def run(args: Args, variant: str, seed: int) -> dict[str, Any]:
    """Stage A, the readouts, stage B, the readouts again (module docstring)."""
    torch.set_num_threads(1)
    learner = ContinualLearner(get_preset("cpu").with_overrides(seed=seed, **VARIANTS[variant]), device="cpu")
    cpu0 = time.process_time()
    for dataset, steps, offset in (
        ("moving-fashion", args.steps_a, 0),
        ("moving-inverse-fashion", args.steps_b, 1),
    ):
        if offset == 1:
            frames, factors = SpriteSampler("moving-fashion", 32, seed=999 + seed).sample(1024)
            codes = {k: emit(learner, frames, k) for k in EMISSIONS}
            weights = {k: fit_position_readout(codes[k], factors) for k in EMISSIONS}
            before = {
                k: readout_return(
                    lambda f, k=k: emit(learner, f, k), weights[k], "moving-fashion", args.episodes
                )
                for k in EMISSIONS
            }
        sampler = SpriteSampler(dataset, 32, seed=seed + offset)
        for _ in range(steps):
            learner.train_step(sampler.sample(learner.config.batch_size)[0])
    after = {
        k: readout_return(lambda f, k=k: emit(learner, f, k), weights[k], "moving-fashion", args.episodes)
        for k in EMISSIONS
    }
    record = common.run_record(args, variant, seed, overrides=VARIANTS[variant])
    memory = learner.memory
    record.update(
        envs=memory.n_seen,
        used=[int(u.sum()) for u in memory.used[: memory.n_seen]],
        mask=[int(m.sum()) for m in learner.applied_masks()[: memory.n_seen]],
        cpu_s=time.process_time() - cpu0,
        emissions={
            k: {
                "before": before[k],
                "after": after[k],
                "retained": after[k] / before[k] if before[k] else None,
                "drift": latent_drift(
                    codes[k][:, codes[k].std(0) > 1e-6], emit(learner, frames, k)[:, codes[k].std(0) > 1e-6]
                ).mean,
            }
            for k in EMISSIONS
        },
    )
    return record


def describe(record: dict[str, Any]) -> str:
    mu = record["emissions"]["mu"]
    return f"A {mu['before']:.2f} -> {mu['after']:.2f} (drift {mu['drift']:.2f} sd), {record['envs']} envs"


def summarise(args: Args) -> str:
    """``readout_retention.md``: per variant and emission, mean +- std over seeds."""
    records = common.load_records(args.out_dir)
    groups = common.by_method(records, tuple(VARIANTS))

    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.2f} +- {np.std(values):.2f}"

    rows = []
    for variant, rs in groups.items():
        for k in EMISSIONS:
            e = [r["emissions"][k] for r in rs]
            rows.append(
                [
                    variant,
                    k,
                    len(rs),
                    cell([x["before"] for x in e]),
                    cell([x["after"] for x in e]),
                    cell([x["retained"] for x in e]),
                    cell([x["drift"] for x in e]),
                    sorted({r["envs"] for r in rs}),
                    sorted({tuple(r["mask"]) for r in rs}),
                ]
            )
    a = records[0]["args"] if records else vars(args)
    text = [
        "# Retention of a fixed readout policy while VASE learns a new environment",
        "",
        f"Produced by `python benchmarks/investigations/readout_retention.py` (then `--summarise`): cpu preset, "
        f"{a['steps_a']} steps of moving Fashion (A), then {a['steps_b']} reward-free steps of moving inverse "
        f"Fashion (B); a linear position readout fit on A's codes acts greedily on A's goal task "
        f"({a['episodes']} seeded episodes, random policy ~0.14). Retained = A's return after B / before. "
        f"Drift: A's codes, sd units. Hardware: {records[0]['hardware']['cpu'] if records else '-'}, one torch "
        f"thread per run, {np.mean([r['cpu_s'] for r in records]) if records else 0:.0f} CPU s per run.",
        "",
        common.markdown_table(
            [
                "variant",
                "emission",
                "seeds",
                "A before",
                "A after B",
                "retained",
                "drift (sd)",
                "envs",
                "active latents per env",
            ],
            rows,
        ),
        "",
    ]
    md = "\n".join(text)
    common.write_text(Path(args.out_dir).parent / "readout_retention.md", md)
    return md


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    if not args.summarise:
        common.run_pending(run, args, args.methods, args.seeds, args.out_dir, args.jobs, describe)
    print(summarise(args))


if __name__ == "__main__":
    main()
