"""Imagination-driven exploration (Achille et al. 2018, Fig. 5B / appendix A.4) on CPU.

Sequence moving Fashion -> MNIST -> moving MNIST. In the ``imagination`` condition a translation
policy (``vase_rl.agents.translation``) is trained in parallel with VASE from step 0, and a fraction of
every training batch is replaced by imagined images x* = g(z*, x) . x (z* ~ p(z)). In ``baseline`` VASE
trains on the raw batches. Everything else -- learner init, data streams, probes -- is identical per
seed. A.6 probes are trained on z for every dataset at every step; the number we look at is the
accuracy of the *moving-MNIST* object classifier during the *static* MNIST stage (VASE has never seen
a moving digit then), plus the moving-MNIST position-probe MSE.

One JSON per (condition, seed) in ``benchmarks/results/imagination/``; runs whose JSON exists are
skipped, so an interrupted benchmark resumes where it stopped (an unfinished run restarts). Each run
is a subprocess (1 torch thread, ``--jobs`` at a time) importing a snapshot of the library taken at
launch, so all runs of one invocation use the same code even while the tree is edited; the JSON
records a fingerprint of that code. Spurious environment allocations must not crash a run, so the
learner uses ``on_overflow="merge"`` (the allocations are reported). The trainer's run folders (log,
probe history, TensorBoard) are kept under ``runs/``. ``--summarise`` writes ``results.md``,
``curves.png`` and ``examples.png``.

Two modes (``--mode``): ``in-graph`` is the above -- the policy imagines x* with the spatial transformer
inside the training loop (``make_imagination_hook``). ``in-world`` lets the policy *act*, as A.4 puts it
("we let the agent act on the environment in order to realise the imagined configuration"): each dataset
is a continuous-action ``SpriteCanvas`` wrapped in ``VASEObservation(..., frame_in_info=True)`` (one
wrapper and rollout buffer per dataset, one shared learner), and ``vase_rl.agents.explore.explore`` moves
the sprite towards z* ~ p(z) every step while the policy trains on L_agent; the wrapper's online learner
trains on the frames those moves produce. The in-world ``baseline`` takes the zero action (the learner
sees the env as it comes). Both modes give the learner ``steps_per_env`` train steps per dataset (in the
world: ``steps_per_env * world_train_every`` env steps). The in-world number is an offline linear probe
(``vase_rl.probing.offline_probe``) of moving-MNIST class and position on the frozen encoder at the end of each
stage, plus the spread of the sprite positions the learner saw. In-world JSONs go to ``in-world/``;
``results.md`` has a section per mode.

    VASE_DATA_DIR=/work/shared/data python benchmarks/imagination.py            # both modes + summary
    python benchmarks/imagination.py --mode in-world --seeds 0                   # the world only
    python benchmarks/imagination.py --summarise                                 # summary only
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common
import numpy as np
import torch

from vase_rl.agents.explore import ImaginationAgent, env_translation_range
from vase_rl.agents.translation import ImaginationConfig, ImaginationExplorer
from vase_rl.core.config import get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.envs.sampler import SpriteSampler
from vase_rl.envs.sprites import SpriteCanvas
from vase_rl.probing.offline_probe import encode_codes, fit_probe
from vase_rl.rl.wrapper import VASEObservation
from vase_rl.runs.training import RunSettings, SequenceTrainer, read_log

OUT = common.RESULTS / "imagination"
SEQUENCE = ("moving-fashion", "mnist", "moving-mnist")
CONDITIONS = ("baseline", "imagination")
MODES = ("in-graph", "in-world")
WORLD = "in-world"
"""Sub-folder of the in-world JSONs (the in-graph ones stay at the top, as before)."""
TITLE = "# Imagination-driven exploration (Fig. 5B), CPU reproduction"
WORLD_PROBED = "moving-mnist"
"""Dataset whose class and position the in-world probes read out at the end of every stage."""


@dataclass
class Args(common.SequenceArgs, common.JobsArgs):
    steps_per_env: int = 1500
    """Training steps per dataset (the cpu preset's default is 2,500; reduced to fit 40 min on 2 cores)."""
    fraction: float = 0.5
    """Fraction of each batch replaced by imagined images (imagination condition)."""
    policy_lr: float = 6e-4
    """Adam learning rate of the translation policy."""
    target_latents: str = "translation-sensitive"
    """Latents in L_agent (``ImaginationConfig.target_latents``): ``all`` is the paper's; with it the
    policy pushes the sprite into a corner whatever z* is (docs/findings.md section 12)."""
    max_translation: float = 0.5
    """In-graph: the policy's translation range (``ImaginationConfig.max_translation``; 1 = half the image,
    the corner; 0.5 = a quarter)."""
    probe_eval_size: int = 500
    """Held-out images per dataset for each probe evaluation."""
    on_overflow: str = "merge"
    """Learner's ``InferenceConfig.on_overflow``: "merge" keeps a run alive when spurious environment
    allocations exhaust ``max_environments`` (the count is reported); "error" is the library default."""
    mode: str = "both"
    """``in-graph`` (the STN imagines x* inside the training loop), ``in-world`` (the policy moves the
    sprite of a wrapped continuous SpriteCanvas; the online learner trains on the frames), or ``both``."""
    world_train_every: int = 8
    """In-world: env steps per learner train step (``train_every``). Each dataset is stepped until the
    learner has taken ``steps_per_env`` train steps: about ``world_warmup + steps_per_env *
    world_train_every`` env steps, and as many policy steps."""
    world_max_translation: float | None = None
    """In-world: the policy's translation range (``ImaginationConfig.max_translation``); None: what one
    env step realises, ``free / canvas`` (``vase_rl.agents.explore.env_translation_range``)."""
    world_buffer_size: int = 4096
    """In-world: rollout-buffer capacity of each dataset's wrapper, in frames."""
    world_warmup: int = 512
    """In-world: frames buffered before the learner's first train step in each dataset."""
    world_episode_steps: int = 20
    """In-world: steps per episode (each reset draws a new sprite; static datasets restart centred)."""
    world_probe_train: int = 2000
    """In-world: moving-MNIST train-split images the offline linear probes are fit on."""
    world_probe_test: int = 1000
    """In-world: moving-MNIST test-split images the probes are scored on."""
    out: str = str(OUT)
    """Results folder."""
    run: str = ""
    """Internal: run one ``mode:condition:seed`` in this process."""

    def __post_init__(self) -> None:
        if self.mode not in (*MODES, "both"):
            raise ValueError(f"mode must be one of {(*MODES, 'both')}, got {self.mode!r}")

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes this invocation runs and summarises."""
        return MODES if self.mode == "both" else (self.mode,)


def code_fingerprint() -> str:
    """sha256 (12 hex) of the library sources this process imported (vase_rl, its envs, the policy)."""
    import vase_rl
    from vase_rl import envs
    from vase_rl.agents import explore, stn, translation

    sources = [
        *Path(vase_rl.__file__).parent.glob("*.py"),
        *Path(envs.__file__).parent.glob("*.py"),
        *(Path(m.__file__) for m in (translation, stn, explore)),
    ]
    digest = hashlib.sha256()
    for path in sorted(sources, key=lambda p: (p.parent.name, p.name)):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def centre_spread(x: torch.Tensor) -> float:
    """Std (pixels, mean over x and y) of the intensity centres of mass of images x (B, 1, H, W)."""
    grid = torch.arange(x.shape[-1], dtype=x.dtype, device=x.device)
    mass = x.sum((1, 2, 3)).clamp_min(1e-6)
    com = torch.stack([(x.sum((1, 2)) * grid).sum(1), (x.sum((1, 3)) * grid).sum(1)], 1) / mass[:, None]
    return float(com.std(0).mean())


class RecordingHook:
    """Wraps the explorer's batch hook: logs the policy loss, the mean |t| and the spread of object
    positions in imagined vs. input images, and saves x -> x* pairs at ``example_step``."""

    def __init__(self, explorer: ImaginationExplorer, example_step: int, example_path: Path, every: int = 25):
        self.explorer, self.example_step, self.example_path = explorer, example_step, example_path
        self.every = every
        self.agent_loss: list[tuple[int, float, float, float, float]] = []

    def __call__(self, step: int, dataset: str, x: torch.Tensor) -> torch.Tensor:
        out = self.explorer(step, dataset, x)
        k = self.explorer.n_imagined(x.shape[0])
        if step % self.every == 0:
            last = self.explorer.last
            self.agent_loss.append(
                (
                    step,
                    last["agent_loss"],
                    last["translation_abs"],
                    centre_spread(out[:k]),
                    centre_spread(x[:k]),
                )
            )
        if step == self.example_step:  # the first k rows of ``out`` are the imagined versions of x's
            np.savez_compressed(
                self.example_path,
                x=x[:8].cpu().numpy(),
                x_star=out[: min(8, k)].cpu().numpy(),
                step=step,
                dataset=dataset,
            )
        return out


def run_name(condition: str, seed: int) -> str:
    return f"{condition}_seed{seed}"


def run_one(args: Args, condition: str, seed: int) -> dict[str, Any]:
    """Train one (condition, seed) through the sequence; return its record (curves, envs, timing)."""
    torch.set_num_threads(1)
    out = Path(args.out)
    n = args.steps_per_env
    config = get_preset(args.preset).with_overrides(seed=seed, inference={"on_overflow": args.on_overflow})
    settings = RunSettings(
        sequence=SEQUENCE,
        steps_per_env=n,
        probe_eval_every=args.probe_eval_every,
        probe_eval_size=args.probe_eval_size,
        checkpoint_every=10**9,
        tb_images_every=10**9,
        seed=seed,
    )
    trainer = SequenceTrainer(config, settings, str(out / "runs" / run_name(condition, seed)), device="cpu")
    hook = None
    if condition == "imagination":
        im = ImaginationConfig(
            enabled=True,
            fraction=args.fraction,
            lr=args.policy_lr,
            seed=seed,
            target_latents=args.target_latents,  # type: ignore[arg-type]  # validated by the config
            max_translation=args.max_translation,
        )
        hook = RecordingHook(
            ImaginationExplorer(trainer.learner, im), int(1.5 * n), out / f"examples_seed{seed}.npz"
        )
        trainer.batch_hook = hook
    code = code_fingerprint()
    t0, c0 = time.time(), time.process_time()
    trainer.run(progress=False)
    wall, cpu = time.time() - t0, time.process_time() - c0
    os.remove(trainer.ckpt_path)  # the JSON is the result; keep the run folder small (log, probes, tb)
    assert trainer.probes is not None
    curves = {}
    for ds in SEQUENCE:
        for metric in ("accuracy", "position_mse"):
            steps, values = trainer.probes.history.curve(ds, metric)
            if len(steps):
                curves[f"{ds}/{metric}"] = [steps.tolist(), values.tolist()]
    log = read_log(trainer.out_dir)
    envs = [sorted({r["env"] for r in log if r["stage"] == i}) for i in range(len(SEQUENCE))]
    return {
        "condition": condition,
        "seed": seed,
        "preset": args.preset,
        "steps_per_env": n,
        "sequence": list(SEQUENCE),
        "fraction": args.fraction if hook else 0.0,
        "target_latents": args.target_latents if hook else None,
        "max_translation": args.max_translation if hook else None,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "steps_per_s": round(n * len(SEQUENCE) / wall, 2),
        "hardware": common.hardware(),
        "torch_threads": 1,
        "code": code,
        "on_overflow": args.on_overflow,
        "curves": curves,
        "envs_per_stage": envs,
        "n_envs": log[-1]["n_envs"],
        "agent_loss": hook.agent_loss if hook else [],
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------------------------ in the world
def world_env(args: Args, learner: ContinualLearner, dataset: str, seed: int) -> VASEObservation:
    """One dataset of the sequence as a world: a continuous SpriteCanvas at the model's size, wrapped so
    that the learner trains online on its frames and the policy sees each frame in ``info``. The goal
    radius is tiny: the reward plays no part here, episodes end by truncation."""
    canvas = SpriteCanvas(
        dataset=dataset,
        canvas_size=learner.config.model.image_size,
        action_type="continuous",
        goal_radius=1e-6,
        max_episode_steps=args.world_episode_steps,
    )
    return VASEObservation(
        canvas,
        learner,
        frame_in_info=True,
        train_every=args.world_train_every,
        warmup=args.world_warmup,
        buffer_size=args.world_buffer_size,
        seed=seed,
    )


def world_stage(
    args: Args, env: VASEObservation, explorer: ImaginationExplorer | None, seed: int
) -> dict[str, np.ndarray]:
    """Step one dataset's world until its learner has taken ``steps_per_env`` train steps (warm-up and
    episode starts included, so both conditions give the learner the same budget). With an explorer the
    policy acts (:class:`ImaginationAgent`); without, the baseline takes the zero action.
    Returns per step: sprite (x, y) after it, |t| (mean over axes) and L_agent (empty for the baseline)."""
    positions, t_abs, loss = [], [], []
    agent = ImaginationAgent(env, explorer) if explorer is not None else None
    if agent is not None:
        agent.reset(seed)
    else:
        env.reset(seed=seed)
    while env.vase_stats()["train_steps"] < args.steps_per_env:
        if agent is not None:
            step = agent.step()
            positions.append(step.after)
            t_abs.append(float(np.abs(step.translation).mean()))
            loss.append(step.agent_loss)
            continue
        _, _, terminated, truncated, info = env.step(np.zeros(2, np.float32))
        positions.append((info["x"], info["y"]))
        if terminated or truncated:
            env.reset()
    return {
        "positions": np.asarray(positions, np.float64).reshape(-1, 2),
        "t_abs": np.asarray(t_abs),
        "agent_loss": np.asarray(loss),
    }


def world_probes(learner: ContinualLearner, data: dict[str, Any]) -> dict[str, float]:
    """Offline linear probes on the frozen encoder: moving-MNIST class accuracy (%) and position R^2."""
    train, test = (encode_codes(learner.encode, data[k][0]) for k in ("train", "test"))
    pos = {k: np.stack([data[k][1]["x"], data[k][1]["y"]], 1) for k in ("train", "test")}
    return {
        "class_acc": fit_probe(
            train, data["train"][1]["label"], test, data["test"][1]["label"], "class", "linear"
        ),
        "position_r2": fit_probe(train, pos["train"], test, pos["test"], "continuous", "linear"),
    }


def run_world(args: Args, condition: str, seed: int) -> dict[str, Any]:
    """One in-world (condition, seed) through the sequence: per stage, what the learner saw and the probes."""
    torch.set_num_threads(1)
    config = get_preset(args.preset).with_overrides(seed=seed, inference={"on_overflow": args.on_overflow})
    learner = ContinualLearner(config, device="cpu")
    size = config.model.image_size
    data = {
        split: SpriteSampler(WORLD_PROBED, size, split=split, seed=seed).sample(n)
        for split, n in (("train", args.world_probe_train), ("test", args.world_probe_test))
    }
    code = code_fingerprint()
    t0, c0 = time.time(), time.process_time()
    explorer, stages = None, []
    for k, dataset in enumerate(SEQUENCE):
        env = world_env(args, learner, dataset, seed=seed * 1000 + k)
        if condition == "imagination" and explorer is None:  # one policy for the whole sequence
            reach = args.world_max_translation or env_translation_range(env)
            explorer = ImaginationExplorer(
                learner, ImaginationConfig(enabled=True, lr=args.policy_lr, max_translation=reach, seed=seed)
            )
        rec = world_stage(args, env, explorer, seed * 1000 + k)
        stats = env.vase_stats()
        env.close()
        pos, loss, tenth = rec["positions"], rec["agent_loss"], max(1, len(rec["agent_loss"]) // 10)
        free = env.unwrapped.renderer.free
        stages.append(
            {
                "dataset": dataset,
                "env_steps": stats["env_steps"],
                "train_steps": stats["train_steps"],
                "env": stats.get("env"),
                "n_envs": stats.get("n_envs"),
                "position_spread_px": float(pos.std(0).mean() * free),
                "at_edge": float(((pos <= 0) | (pos >= 1)).any(1).mean()),
                "translation_abs": float(rec["t_abs"].mean()) if len(rec["t_abs"]) else None,
                "agent_loss_first": float(loss[:tenth].mean()) if len(loss) else None,
                "agent_loss_last": float(loss[-tenth:].mean()) if len(loss) else None,
                "probes": world_probes(learner, data),
            }
        )
        print(f"{WORLD} {run_name(condition, seed)} {dataset}: {stages[-1]}", flush=True)
    wall, cpu = time.time() - t0, time.process_time() - c0
    return {
        "mode": WORLD,
        "condition": condition,
        "seed": seed,
        "preset": args.preset,
        "steps_per_env": args.steps_per_env,
        "sequence": list(SEQUENCE),
        "max_translation": explorer.config.max_translation if explorer is not None else None,
        "train_every": args.world_train_every,
        "warmup": args.world_warmup,
        "buffer_size": args.world_buffer_size,
        "episode_steps": args.world_episode_steps,
        "probe_sizes": [args.world_probe_train, args.world_probe_test],
        "policy_lr": args.policy_lr,
        "stages": stages,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "hardware": common.hardware(),
        "torch_threads": 1,
        "code": code,
        "on_overflow": args.on_overflow,
        "finished": dt.datetime.now().isoformat(timespec="seconds"),
    }


def result_path(args: Args, mode: str, condition: str, seed: int) -> Path:
    """The JSON of one run: in-graph at the top of ``out`` (as before), in-world ones in ``in-world/``."""
    folder = Path(args.out) / WORLD if mode == WORLD else Path(args.out)
    return folder / f"{run_name(condition, seed)}.json"


def snapshot_library() -> str:
    """Copy the imported library (vase_rl, vase_rl.envs, vase_rl.agents) to a temp folder for PYTHONPATH,
    so that every run of this invocation uses the same code even while the working tree is edited."""
    import vase_rl
    from vase_rl import agents, envs

    root = Path(tempfile.mkdtemp(prefix="vase_snapshot_"))
    ignore = shutil.ignore_patterns("__pycache__", "envs", "agents")
    shutil.copytree(Path(vase_rl.__file__).parent, root / "vase_rl", ignore=ignore)
    for sub in (envs, agents):
        shutil.copytree(
            Path(sub.__file__).parent,
            root / "vase_rl" / sub.__name__.split(".")[-1],
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    return str(root)


def run(args: Args) -> None:
    """Launch every missing (mode, condition, seed) as a subprocess, ``args.jobs`` at a time, on a snapshot
    of the library (see :func:`snapshot_library`)."""
    todo = [
        (m, c, s)
        for m in args.modes
        for s in args.seeds
        for c in CONDITIONS
        if not result_path(args, m, c, s).exists()
    ]
    skip = {"mode", "seeds", "jobs", "summarise", "run"}
    passthrough = [
        f"--{f.name.replace('_', '-')}={getattr(args, f.name)}"
        for f in dataclasses.fields(args)
        if f.name not in skip and getattr(args, f.name) is not None
    ]
    snapshot = snapshot_library()
    env = {**os.environ, "PYTHONPATH": snapshot}
    running: list[subprocess.Popen] = []
    try:
        while todo or running:
            while todo and len(running) < args.jobs:
                m, c, s = todo.pop(0)
                print(f"start {m} {run_name(c, s)}", flush=True)
                cmd = [sys.executable, __file__, f"--run={m}:{c}:{s}", *passthrough]
                running.append(subprocess.Popen(cmd, env=env))
            time.sleep(2)
            for p in [p for p in running if p.poll() is not None]:
                running.remove(p)
                if p.returncode:
                    print(f"run {p.args[2]} failed with exit code {p.returncode}", flush=True)
    finally:
        for p in running:
            p.terminate()
        shutil.rmtree(snapshot, ignore_errors=True)


# ------------------------------------------------------------------------------------- summary
def at(curve: list[list[float]], step: float) -> float:
    """Value of a recorded curve at the last evaluation <= step."""
    steps, values = np.asarray(curve[0]), np.asarray(curve[1])
    return float(values[steps <= step][-1])


def stage_mean(curve: list[list[float]], lo: float, hi: float) -> float:
    """Mean of a curve over evaluations in (lo, hi]."""
    steps, values = np.asarray(curve[0]), np.asarray(curve[1])
    return float(values[(steps > lo) & (steps <= hi)].mean())


METRICS: list[tuple[str, str, Any]] = [
    ("moving-MNIST acc. at end of MNIST stage (%)", "moving-mnist/accuracy", lambda c, n: at(c, 2 * n)),
    (
        "moving-MNIST acc. mean over MNIST stage (%)",
        "moving-mnist/accuracy",
        lambda c, n: stage_mean(c, n, 2 * n),
    ),
    ("moving-MNIST acc. at end of run (%)", "moving-mnist/accuracy", lambda c, n: at(c, 3 * n)),
    (
        "moving-MNIST position MSE at end of MNIST stage",
        "moving-mnist/position_mse",
        lambda c, n: at(c, 2 * n),
    ),
    ("moving-MNIST position MSE at end of run", "moving-mnist/position_mse", lambda c, n: at(c, 3 * n)),
    ("MNIST acc. at end of MNIST stage (%)", "mnist/accuracy", lambda c, n: at(c, 2 * n)),
    ("moving-Fashion acc. at end of run (%)", "moving-fashion/accuracy", lambda c, n: at(c, 3 * n)),
]


def summarise(args: Args) -> None:
    """results.md (a section per mode that has results), curves.png and examples.png (in-graph)."""
    out = Path(args.out)
    records = [common.load_json(p) for p in sorted(out.glob("*_seed*.json"))]
    world = [common.load_json(p) for p in sorted((out / WORLD).glob("*_seed*.json"))]
    if not records and not world:
        raise SystemExit(f"no results in {out}")
    lines = [TITLE, ""]
    if records:
        by = {c: [r for r in records if r["condition"] == c] for c in CONDITIONS}
        losses = [r["agent_loss"] for r in by["imagination"] if r["agent_loss"]]
        lines += _summary_lines(args, out, records, by, losses)
        _plot_curves(out, records, by, losses, records[0]["steps_per_env"])
        _plot_examples(out)
    if world:
        lines += ["", *_world_lines(world)]
    common.write_text(out / "results.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def _world_lines(records: list[dict[str, Any]]) -> list[str]:
    """The in-world section of results.md: per stage, the probes after it and what the learner saw in it."""
    by = {c: [r for r in records if r["condition"] == c] for c in CONDITIONS}
    r0, hw = records[0], records[0]["hardware"]
    lines = [
        "## In the world: the policy moves the sprite of a wrapped SpriteCanvas",
        "",
        (
            f"Sequence {' -> '.join(r0['sequence'])}, each a continuous-action SpriteCanvas in "
            f"`VASEObservation(frame_in_info=True)`; preset `{r0['preset']}`; each dataset is stepped until "
            f"the learner has taken {r0['steps_per_env']} train steps, one every {r0['train_every']} env "
            f"steps after a warm-up of {r0['warmup']} frames (buffer {r0['buffer_size']}); episodes of "
            f"{r0['episode_steps']} steps. imagination: `vase_rl.agents.explore.ImaginationAgent` (one "
            f"policy step on L_agent per env step, policy Adam {r0['policy_lr']}, translation range "
            f"{next((r['max_translation'] for r in by['imagination']), None)}); baseline: zero actions. "
            "Probes: linear, on the frozen encoder after each "
            f"stage, {r0['probe_sizes'][0]} moving-MNIST train / {r0['probe_sizes'][1]} test images. "
            f"Library code {r0.get('code')}. Hardware: {hw['cpu']}, {hw['cores']} cores, 1 thread per run; "
            "wall time per run: "
            + ", ".join(f"{r['condition']}/{r['seed']} {r['wall_s'] / 60:.1f} min" for r in records)
            + "."
        ),
        "",
        "| after stage | metric | "
        + " | ".join(f"{c} (mean ± std, n={len(by[c])})" for c in CONDITIONS)
        + " | per seed |",
        "|---|---|---|---|---|",
    ]
    metrics: list[tuple[str, Any]] = [
        ("moving-MNIST class acc. (linear, %)", lambda st: st["probes"]["class_acc"]),
        ("moving-MNIST position R^2 (linear)", lambda st: st["probes"]["position_r2"]),
        ("spread of sprite positions seen (std, px)", lambda st: st["position_spread_px"]),
        ("sprite at the canvas edge (fraction of steps)", lambda st: st["at_edge"]),
        ("env steps (incl. episode starts)", lambda st: st["env_steps"]),
        ("learner train steps", lambda st: st["train_steps"]),
    ]
    for k, stage in enumerate(r0["sequence"]):
        for label, fn in metrics:
            cells, per_seed = [], []
            for c in CONDITIONS:
                vals = [fn(r["stages"][k]) for r in by[c]]
                cells.append(f"{np.mean(vals):.3g} ± {np.std(vals):.2g}" if vals else "-")
                per_seed.append(f"{c[:3]}: " + ", ".join(f"{v:.3g}" for v in vals))
            lines.append(f"| {stage} | {label} | " + " | ".join(cells) + " | " + "; ".join(per_seed) + " |")
    lines += ["", "Last inferred environment / environments allocated after each stage, per run:", ""]
    for r in records:
        envs = ", ".join(f"{st['dataset']} {st['env']}/{st['n_envs']}" for st in r["stages"])
        loss = ", ".join(
            f"{st['agent_loss_first']:.1f} -> {st['agent_loss_last']:.1f} (|t| {st['translation_abs']:.3f})"
            for st in r["stages"]
            if st["agent_loss_first"] is not None
        )
        tail = f"; L_agent first -> last tenth per stage {loss}" if loss else ""
        lines.append(f"- {r['condition']} seed {r['seed']}: {envs}{tail}")
    return lines


def _run_configs(out: Path, records: list[dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """(the learner config of the first run, whether every run used the same config and library code).

    Read from each run's config.json: the preset may change between commits.
    """
    configs = {}
    for r in records:
        run_dir = out / "runs" / run_name(r["condition"], r["seed"])
        vase = common.load_json(run_dir / "config.json")["vase"]
        configs[run_name(r["condition"], r["seed"])] = {k: v for k, v in vase.items() if k != "seed"}
    cfg = next(iter(configs.values()))
    same = all(c == cfg for c in configs.values()) and len({r.get("code") for r in records}) == 1
    return cfg, same


def _summary_lines(
    args: Args,
    out: Path,
    records: list[dict[str, Any]],
    by: dict[str, list[dict[str, Any]]],
    losses: list[Any],
) -> list[str]:
    """results.md: setup and hardware, the metric table, environments per stage, the policy's loss."""
    n = records[0]["steps_per_env"]
    hw = records[0]["hardware"]
    cfg, same = _run_configs(out, records)
    cpu = [r["cpu_s"] for r in records if "cpu_s" in r]
    lines = [
        "## In the graph: the STN imagines x* inside the training loop",
        "",
        (
            f"Sequence {' -> '.join(records[0]['sequence'])}; preset `{records[0]['preset']}` as run: "
            f"{cfg['model']['image_size']}x{cfg['model']['image_size']}, {cfg['model']['latent_dim']} latents, "
            f"gamma {cfg['loss']['gamma']}, C_max {cfg['loss']['c_max']} "
            f"({cfg['loss'].get('capacity_mode', 'eq. 3')}), batch {cfg['batch_size']}"
            f"{'' if same else ' (WARNING: runs used different learner code/configs, see the JSON)'}; "
            f"library code {records[0].get('code')}; on_overflow={cfg['inference']['on_overflow']}; "
            f"{n} steps per dataset; imagination replaces {args.fraction:.0%} of each batch with x* "
            f"(policy Adam {args.policy_lr}, trained from step 0, {im_setting(records)}). Probes (A.6) evaluated every "
            f"{args.probe_eval_every} steps on {args.probe_eval_size} held-out images."
        ),
        (
            f"Hardware: {hw['cpu']}, {hw['cores']} cores, torch {hw['torch']}, 1 thread per run, "
            f"{args.jobs} runs in parallel on a machine shared with other jobs (load average "
            f"{hw['load_average'][0]}). Wall time per run: "
            + ", ".join(f"{r['condition']}/{r['seed']} {r['wall_s'] / 60:.1f} min" for r in records)
            + "."
            + (
                f" CPU time per run {np.mean(cpu) / 60:.1f} min, i.e. "
                f"{len(CONDITIONS) * len(args.seeds) * np.mean(cpu) / 120:.0f} min for the whole benchmark "
                "on 2 otherwise idle cores."
                if cpu
                else ""
            )
        ),
        "",
        "| metric | " + " | ".join(f"{c} (mean ± std, n={len(by[c])})" for c in CONDITIONS) + " | per seed |",
        "|---|---|---|---|",
    ]
    for label, key, fn in METRICS:
        cells, per_seed = [], []
        for c in CONDITIONS:
            vals = [fn(r["curves"][key], n) for r in by[c] if key in r["curves"]]
            cells.append(f"{np.mean(vals):.3g} ± {np.std(vals):.2g}" if vals else "-")
            per_seed.append(f"{c[:3]}: " + ", ".join(f"{v:.3g}" for v in vals))
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + "; ".join(per_seed) + " |")
    lines += ["", "Environments inferred per stage (env indices seen in the log, per seed):", ""]
    for r in records:
        lines.append(f"- {r['condition']} seed {r['seed']}: {r['envs_per_stage']} ({r['n_envs']} allocated)")
    if losses:
        lines += _policy_loss_lines(losses, n, cfg["model"]["latent_dim"])
    return lines


def im_setting(records: list[dict[str, Any]]) -> str:
    """The imagination runs' target latents and translation range, as one phrase."""
    settings = {
        (r.get("target_latents", "all"), r.get("max_translation", 1.0)) for r in records if r["fraction"]
    }
    return "; ".join(f"targets: {t} latents, |t| <= {m}" for t, m in sorted(settings, key=str)) or "no runs"


def _policy_loss_lines(losses: list[Any], n: int, latent_dim: int) -> list[str]:
    """L_agent from start to the end of the first stage; per stage, |t| and the spread of x* vs x."""
    end1 = [np.mean([row[1] for row in al if row[0] < n][-10:]) for al in losses]
    start = [al[0][1] for al in losses]
    lines = [
        "",
        (
            f"Policy loss L_agent (over the target latents of {latent_dim}): "
            f"{np.mean(start):.1f} at step 0 -> "
            f"{np.mean(end1):.1f} at the end of the moving-Fashion stage (mean over seeds)."
        ),
    ]
    for lo, hi, name in ((0, n, "moving-Fashion"), (n, 2 * n, "MNIST"), (2 * n, 3 * n, "moving-MNIST")):
        rows = np.array([row for al in losses for row in al if lo + n // 2 <= row[0] < hi]).reshape(-1, 5)
        if not len(rows):
            continue
        lines.append(
            f"- second half of the {name} stage: mean |t| = {rows[:, 2].mean():.3f}; "
            f"spread (std, px) of object centres: imagined x* {rows[:, 3].mean():.2f} "
            f"vs input x {rows[:, 4].mean():.2f}"
        )
    return lines


def _plot_curves(
    out: Path, records: list[dict[str, Any]], by: dict[str, list[dict[str, Any]]], losses: list[Any], n: int
) -> None:
    """curves.png: moving-MNIST probe accuracy and position MSE per condition; spread of x* vs x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    colours = {"baseline": "tab:gray", "imagination": "tab:red"}
    for ax, key in zip(axes[:2], ("moving-mnist/accuracy", "moving-mnist/position_mse"), strict=True):
        for c in CONDITIONS:
            for i, r in enumerate(by[c]):
                s, v = r["curves"][key]
                ax.plot(s, v, color=colours[c], alpha=0.8, lw=1.2, label=c if i == 0 else None)
    for i, al in enumerate(losses):
        a = np.array(al)
        axes[2].plot(a[:, 0], a[:, 3], color="tab:red", lw=1, label="imagined x*" if i == 0 else None)
        axes[2].plot(a[:, 0], a[:, 4], color="tab:gray", lw=1, label="input x" if i == 0 else None)
    axes[2].set_title("spread of object centres in the batch (std, px)", pad=18)
    for ax in axes:
        for k, name in enumerate(records[0]["sequence"]):
            ax.axvspan(k * n, (k + 1) * n, color="tab:blue", alpha=0.06 * (k % 2 + 1))
            ax.text((k + 0.5) * n, 1.0, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom")
        ax.set_xlabel("training step")
        ax.legend()
    axes[0].set_title("moving-MNIST object-ID probe accuracy (%)", pad=18)
    axes[1].set_title("moving-MNIST position probe MSE (log scale)", pad=18)
    axes[1].set_yscale("log")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)


def _plot_examples(out: Path) -> None:
    """examples.png: for each saved example batch, inputs x above imagined x* (8 per row)."""
    examples = sorted(out.glob("examples_seed*.npz"))
    if not examples:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2 * len(examples), 8, figsize=(8, 2.1 * len(examples)), squeeze=False)
    for e, path in enumerate(examples):
        d = np.load(path)
        for j in range(8):
            for row, key in enumerate(("x", "x_star")):
                ax = axes[2 * e + row, j]
                ax.axis("off")
                if j < len(d[key]):
                    ax.imshow(d[key][j, 0], cmap="gray", vmin=0, vmax=1)
            axes[2 * e, 0].set_title(
                f"{path.stem}: x ({d['dataset']}, step {int(d['step'])})", fontsize=8, loc="left"
            )
            axes[2 * e + 1, 0].set_title("x* = g(z*, x) . x", fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(out / "examples.png", dpi=110)
    plt.close(fig)


def main() -> None:
    args = common.parse_args(Args, __doc__)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.run:
        mode, condition, seed = args.run.split(":")
        record = (run_world if mode == WORLD else run_one)(args, condition, int(seed))
        common.write_json(result_path(args, mode, condition, int(seed)), record)
        return
    if not args.summarise:
        run(args)
    summarise(args)


if __name__ == "__main__":
    main()
