"""Does VASE's code of a 3-D outdoor frame say where the target is? Offline probes against the untrained
encoder and raw pixels, and what changes them.

PPO on VASE's latents learns the 3-D outdoor look no faster than PPO on a frozen untrained encoder, and
both stay below PPO on pixels (docs/findings.md section 6). The task is to walk to a red target: a policy
needs the target's place in the view. This investigation reads how much of it each representation keeps.

Protocol per (variant, seed), on the embedded MiniWorld outdoor level with the 3-D life-long table's world
(``--world``): uniform-random-policy episodes give a training pool (env seeds 20,000+i) and held-out probe
episodes (seeds 100,000+i, the last ``test_episodes`` for testing). A variant's learner (the cpu preset
with ``vase_rl.core.config.AGENT_LOOP``, RGB, plus the variant's overrides) trains offline on i.i.d.
batches of the pool; at each of ``checkpoints`` learner steps the probes read its mean codes. Probes: ridge
and the 2x256 MLP of A.6 (``vase_rl.probing.offline_probe.fit_probe``), R^2 on the held-out episodes, for
the target's egocentric factors (image x and proximity exp(-d / 3 m) inside the 60-degree view cone, 0
outside: ``bench3d_common.view_factors``, occlusion ignored), the nearest obstacle's, and whether the
target is in the view cone (accuracy). The references are measured the same way in every run: the
untrained encoder of the same seed (step 0) and raw pixels at the learner's input size (32x32; 64x64 for
``vase-64px``).

One JSON per (variant, seed) in ``benchmarks/results/rl_lifelong_3d/target_probe/runs/``; ``--summarise``
writes ``target_probe.md`` and ``target_probe.png`` beside it.

    python benchmarks/investigations/world_target_probe.py --seeds 100 101
    python benchmarks/investigations/world_target_probe.py --summarise

Does a longer first look cost the second look's code? ``--level indoor --before outdoor --before-steps N``
trains N steps on outdoor first (the life-long run's outdoor stage takes ~1,000 learner steps online,
~5,000 after a 32,768-frame warm-up), then probes the indoor code as it learns (its own ``--out-dir``):

    python benchmarks/investigations/world_target_probe.py --methods vase-rarity --level indoor \
        --before outdoor --before-steps 5000 --checkpoints 250 1000 --seeds 100 101 102 \
        --out-dir benchmarks/results/rl_lifelong_3d/target_probe/indoor_after_5000/runs
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vase_rl.core.config import AGENT_LOOP, PAPER_LOOP, get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.probing.offline_probe import encode_codes, fit_probe

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helper modules
import bench3d_common as b3d
import cli_args
import common

OUT = common.RESULTS / "rl_lifelong_3d" / "target_probe"
LIFELONG_WORLD = (
    '{"open_arena": true, "arena_size": 6, "num_obstacles": 2, '
    '"min_target_distance": 1.5, "max_episode_steps": 200}'
)
"""The 3-D life-long table's world (docs/findings.md section 6)."""
VARIANTS: dict[str, dict[str, Any]] = {
    "vase": {},
    "vase-cmax100": {"loss": {"c_max": 100.0}},
    "vase-gaussian": {"model": {"likelihood": "gaussian"}},
    "vase-64px": {"model": {"image_size": 64}},
    "vase-cmax100-tol": {"loss": {"c_max": 100.0}, "inference": {"mask_tolerance": 0.1}},
    "vase-rarity": {"loss": {"rarity_power": 0.5}},
    "vase-cmax100-rarity": {"loss": {"c_max": 100.0, "rarity_power": 0.5}},
    "vase-rarity-dream-0.1x": {"loss": {"rarity_power": 0.5}, "dream": {"alpha": 100.0, "beta": 2.0}},
    "vase-rarity-no-dream": {"loss": {"rarity_power": 0.5}, "ablation": {"dream": False}},
    "vase-rarity-no-mask": {"loss": {"rarity_power": 0.5}, "ablation": {"mask": False}},
    "vase-rarity-no-infer": {"loss": {"rarity_power": 0.5}, "ablation": {"infer_env": False}},
    "vase-rarity-no-hold": {"loss": {"rarity_power": 0.5}, "model": {"young_decoder_frozen_steps": 0}},
    "vase-rarity-hold-flipped": {
        "loss": {"rarity_power": 0.5},
        "model": {"young_decoder_hold_for": "flipped"},
    },
    "vase-rarity-paper-model": {"loss": {"rarity_power": 0.5}, "model": PAPER_LOOP["model"]},
}
"""variant -> ``VASEConfig.with_overrides`` sections on top of the cpu preset with ``AGENT_LOOP`` and RGB
input. ``vase`` is the life-long table's learner; ``vase-cmax100`` gives eq. 3's capacity 4x the cpu
preset's 25 nats; ``vase-gaussian`` the fixed-variance Gaussian likelihood of A.1 (std 0.1) in place of
the cpu preset's Bernoulli; ``vase-64px`` reads the levels' 64x64 frames at full size (the cpu preset
area-resizes them to 32x32, where the target covers a quarter as many pixels); ``vase-cmax100-tol`` the
life-long table's variant (4x capacity, eq. 6's mask tolerance 0.1); ``vase-rarity`` weights the
reconstruction's pixels by their colour's rarity in the batch (``LossConfig.rarity_power`` 0.5: the
target's red pixels weigh ~10x the sky's), ``vase-cmax100-rarity`` that with 4x capacity; and, for a second
look after a first (``--before``), ``vase-rarity`` with dreaming's eq. 9 weights at a tenth
(``-dream-0.1x``) or without one of VASE's parts (``-no-dream``, ``-no-mask``, ``-no-infer``: ablation D, A,
S off), without the young decoder's hold (``-no-hold``: ``ModelConfig.young_decoder_frozen_steps`` 0), with
it only for an environment whose sign the pick flipped (``-hold-flipped``: ``ModelConfig.young_decoder_hold_for``
"flipped") or with
the paper's new-environment model (``-paper-model``: ``PAPER_LOOP``'s model section: a random code at the
decoder's input, no sign pick, no view, no hold)."""
FACTORS = ("target", "obstacle")
"""Egocentric factor groups probed (``bench3d_common.state_factors``)."""
PROBES = ("linear", "mlp")


@dataclass
class Args(cli_args.JobsArgs):
    methods: tuple[str, ...] = tuple(VARIANTS)
    """Variants to run (:data:`VARIANTS`)."""
    world: str = LIFELONG_WORLD
    """JSON dict of ``WorldConfig`` overrides of the MiniWorld levels."""
    level: str = "outdoor"
    """The level whose frames train the learner and are probed (``bench3d_common.level_spec``)."""
    before: str = ""
    """A level the learner trains on first, for ``before_steps`` steps (the life-long sequence's earlier
    look); its frames come from the same seeds' random-policy episodes. Empty: none."""
    before_steps: int = 0
    """Learner steps on ``before``'s pool before ``level``'s; the checkpoints count ``level``'s steps."""
    pool_episodes: int = 160
    """Random-policy episodes of the training pool (env seeds 20,000+i)."""
    probe_episodes: int = 80
    """Held-out random-policy episodes for the probes (env seeds 100,000+i)."""
    episode_steps: int = 50
    """Steps per episode (pool and probes): short episodes, many layouts."""
    test_episodes: int = 20
    """Of the probe episodes, the last ones are the probes' test set."""
    checkpoints: tuple[int, ...] = (1000, 4000)
    """Learner steps (batch 64) at which the probes read the codes; the life-long run's outdoor stage
    takes ~1,000."""
    out_dir: str = str(OUT / "runs")
    """Folder of the per-run JSONs."""


def collect(args: Args, first_seed: int, episodes: int, level: str = "") -> dict[str, np.ndarray]:
    """Random-policy episodes of ``level`` (default ``args.level``): frames (n, 64, 64, 3) uint8, factor
    groups, in-view flag, episode id."""
    env = b3d.LevelsArgs(world=args.world).make_level(level or args.level)
    try:
        got = b3d.random_episodes(env, first_seed, episodes, args.episode_steps)
    finally:
        env.close()
    out = {"frames": got["frames"], "episode": got["episode"]}
    out.update({k: np.asarray(v, np.float64) for k, v in got["factors"].items() if k in FACTORS})
    out["in_view"] = (out["target"][:, 1] > 0).astype(np.int64)
    return out


def probe_scores(train: np.ndarray, test: np.ndarray, data: dict[str, np.ndarray], split: np.ndarray) -> dict:
    """R^2 of every factor group and the in-view accuracy (%), per probe kind."""
    out: dict[str, dict[str, float]] = {}
    for probe in PROBES:
        row = {
            k: fit_probe(train, data[k][~split], test, data[k][split], "continuous", probe)  # type: ignore[arg-type]
            for k in FACTORS
        }
        row["in_view_acc"] = fit_probe(
            train,
            data["in_view"][~split],
            test,
            data["in_view"][split],
            "class",
            probe,  # type: ignore[arg-type]
        )
        out[probe] = row
    return out


def run(args: Args, variant: str, seed: int) -> dict[str, Any]:
    """Train the variant offline on the pool, probing its codes at step 0 and at every checkpoint.

    With ``before``, the learner first trains ``before_steps`` on that level's pool (eq. 6 then meets
    ``level`` as a new look) and the codes are also probed at the end of it (``before<steps>``)."""
    if args.before and args.before_steps <= 0:
        raise ValueError(f"--before {args.before!r} needs --before-steps > 0, got {args.before_steps}")
    torch.set_num_threads(1)
    cpu0 = time.process_time()
    pool = collect(args, 20_000 + 1000 * seed, args.pool_episodes)["frames"]
    data = collect(args, 100_000 + 1000 * seed, args.probe_episodes)
    split = data["episode"] >= args.probe_episodes - args.test_episodes
    overrides = {**AGENT_LOOP, "model": {**AGENT_LOOP.get("model", {}), "channels": 3}}
    config = get_preset("cpu").with_overrides(seed=seed, **overrides).with_overrides(**VARIANTS[variant])
    learner = ContinualLearner(config, device="cpu")
    rng = np.random.default_rng(seed)
    frames = data["frames"]
    scores: dict[str, Any] = {}

    def read(key: str, x: np.ndarray) -> None:  # probe scores of features x of the probe frames
        scores[key] = probe_scores(x[~split], x[split], data, split)

    def train(frames_pool: np.ndarray, steps: int) -> None:  # i.i.d. batches of a pool
        for _ in range(steps):
            learner.train_step(frames_pool[rng.integers(0, len(frames_pool), config.batch_size)])

    read("pixels", learner.preprocess(frames).flatten(1).numpy())
    read("untrained", encode_codes(learner.encode, frames))
    envs_before = 0
    if args.before:
        train(
            collect(args, 20_000 + 1000 * seed, args.pool_episodes, args.before)["frames"], args.before_steps
        )
        envs_before = learner.memory.n_seen
        read(f"{args.before}{args.before_steps}", encode_codes(learner.encode, frames))
    step = 0
    for target in args.checkpoints:
        train(pool, target - step)
        step = max(step, target)
        read(f"step{target}", encode_codes(learner.encode, frames))
    memory, signs = learner.memory, learner.model.encoder.input_sign
    return common.run_record(
        args,
        variant,
        seed,
        overrides=VARIANTS[variant],
        frames={"pool": len(pool), "probe_train": int((~split).sum()), "probe_test": int(split.sum())},
        in_view_fraction=float(data["in_view"].mean()),
        envs=memory.n_seen,
        envs_before=envs_before,
        used=[int(u.sum()) for u in memory.used[: memory.n_seen]],
        signs=[] if signs is None else [int(v) for v in signs[: memory.n_seen]],
        scores=scores,
        cpu_s=time.process_time() - cpu0,
    )


def describe(record: dict[str, Any]) -> str:
    last = f"step{record['args']['checkpoints'][-1]}"
    s = record["scores"]
    return "target R^2 (mlp): " + ", ".join(
        f"{k} {s[k]['mlp']['target']:.2f}" for k in ("pixels", "untrained", last) if k in s
    )


def summarise(args: Args) -> str:
    """``target_probe.md`` (mean +- std over seeds per variant, representation and probe) and a figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = common.load_records(args.out_dir)
    groups = common.by_method(records, tuple(VARIANTS))
    cols = [*FACTORS, "in_view_acc"]
    rows, bars = [], defaultdict(dict)
    for variant, rs in groups.items():
        reps = list(rs[0]["scores"])
        for rep in reps:
            for probe in PROBES:
                vals = {c: [r["scores"][rep][probe][c] for r in rs] for c in cols}
                rows.append(
                    [variant, rep, probe, len(rs)]
                    + [f"{np.mean(v):.2f} +- {np.std(v):.2f}" for v in vals.values()]
                )
                if probe == "mlp":
                    bars[variant][rep] = (np.mean(vals["target"]), np.std(vals["target"]))
    fig, ax = plt.subplots(figsize=(10, 3.5))
    width = 0.8 / max(len(bars), 1)
    for i, (variant, reps) in enumerate(bars.items()):
        names = list(reps)
        ax.bar(
            np.arange(len(names)) + i * width,
            [reps[n][0] for n in names],
            width,
            yerr=[reps[n][1] for n in names],
            label=variant,
        )
        ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("target R^2 (MLP probe, held-out)")
    level = records[0]["args"].get("level", "outdoor") if records else args.level
    ax.set_title(f"Where is the target? {level} frames, random policy")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, not on them
    fig.tight_layout()
    fig.savefig(Path(args.out_dir).parent / "target_probe.png", dpi=120)
    plt.close(fig)
    a = records[0]["args"] if records else vars(args)
    text = [
        f"# Where is the target? Probes of 3-D {a.get('level', 'outdoor')} frames",
        "",
        f"Produced by `python benchmarks/investigations/world_target_probe.py` (then `--summarise`). "
        f"Each run: {a['pool_episodes']} random-policy {a.get('level', 'outdoor')} episodes of "
        f"{a['episode_steps']} steps as the "
        f"training pool, {a['probe_episodes']} held-out episodes for the probes (the last "
        f"{a['test_episodes']} for testing); world `{a['world']}`. The learner (cpu preset, `AGENT_LOOP`, RGB, "
        "the variant's overrides) trains offline on i.i.d. batches of the pool; `untrained` is its step 0, "
        "`pixels` its input (32x32, 64x64 for `vase-64px`). R^2 of the target's and the nearest obstacle's "
        "(image x, proximity) (0 outside the view cone); in-view accuracy in % (the target is in view in "
        f"{100 * np.mean([r['in_view_fraction'] for r in records]) if records else 0:.0f} % of the probe "
        "frames: always answering 'not in view' scores 100 minus that). Mean +- std over seeds "
        f"{sorted({r['seed'] for r in records})}; hardware: "
        f"{records[0]['hardware']['cpu'] if records else '-'}, one torch thread, "
        f"{np.mean([r['cpu_s'] for r in records]) if records else 0:.0f} CPU s per run.",
        "",
        common.markdown_table(["variant", "codes", "probe", "seeds", *cols], rows),
        "",
    ]
    if a.get("before"):
        text += [
            f"Before this level the learner trained {a['before_steps']} steps on random-policy {a['before']} "
            f"episodes of the same seeds (codes `{a['before']}{a['before_steps']}`: this level's frames read by "
            f"that learner); `stepN` counts this level's steps after it. Environments eq. 6 held after "
            f"{a['before']} / at the end, latents used per environment (and the input signs the pick set), per run: "
            + "; ".join(
                f"{r['method']} seed {r['seed']}: {r['envs_before']} / {r['envs']} {r['used']}"
                + (f" signs {r['signs']}" if r.get("signs") else "")
                for r in records
            )
            + ".",
            "",
        ]
    text += [
        "![target probe](target_probe.png)",
        "",
    ]
    md = "\n".join(text)
    common.write_text(Path(args.out_dir).parent / "target_probe.md", md)
    return md


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    if not args.summarise:
        common.run_pending(run, args, args.methods, args.seeds, args.out_dir, args.jobs, describe)
    print(summarise(args))


if __name__ == "__main__":
    main()
