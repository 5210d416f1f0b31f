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
probe history, TensorBoard) are kept under ``runs/``. ``--summarise`` (the code: ``imagination_report.py``)
writes ``results.md``, ``curves.png`` and ``examples.png``.

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

import cli_args
import common
import numpy as np
import torch
from imagination_report import CONDITIONS, RANDOM, WORLD, run_name, summarise

from vase_rl.agents.explore import ImaginationAgent, env_translation_range
from vase_rl.agents.translation import ImaginationConfig, ImaginationExplorer
from vase_rl.core.config import Ablation, VASEConfig, get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.envs.sampler import SpriteSampler
from vase_rl.envs.sprites import SpriteCanvas
from vase_rl.probing.offline_probe import encode_codes, fit_probe
from vase_rl.rl.wrapper import VASEObservation
from vase_rl.runs.training import RunSettings, SequenceTrainer, read_log

OUT = common.RESULTS / "imagination"
SEQUENCE = ("moving-fashion", "mnist", "moving-mnist")
MODES = ("in-graph", "in-world")
WORLD_PROBED = "moving-mnist"
"""Dataset whose class and position the in-world probes read out at the end of every stage."""


@dataclass
class Args(cli_args.SequenceArgs, cli_args.JobsArgs):
    steps_per_env: int = 1500
    """Training steps per dataset (the cpu preset's default is 2,500; reduced to fit 40 min on 2 cores)."""
    fraction: float = 0.5
    """Fraction of each batch replaced by imagined images (imagination condition)."""
    policy_lr: float = 6e-4
    """Adam learning rate of the translation policy."""
    saturation_penalty: float = 0.0
    """In-graph: weight of the policy's mean squared pre-tanh output in its loss (``ImaginationConfig.
    saturation_penalty``, beyond the paper; 0 = the paper's L_agent alone)."""
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
    row: str = "SDA"
    """Ablation row of the learner (``VASEConfig.for_row``): ``SDA`` is VASE; ``DA`` turns environment
    inference off, so both conditions train one environment and the inferred environments cannot differ
    between them (the control of docs/findings.md section 12)."""
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
    world_episode_steps: int = 1
    """In-world: steps per episode (each reset draws a new sprite; static datasets restart centred). 1 is
    A.4's "given an image x from the environment, act to realise z*": each action starts from a frame the
    environment produced, and the learner sees both (half its frames imagined, as ``fraction=0.5`` in the
    graph). Longer episodes chain the moves: with 20 steps a z*-blind push accumulates and pins the sprite
    at the canvas edge (static MNIST, validation seed 100: at the edge in 100 % of steps, against 9 % with
    1; docs/findings.md section 12)."""
    world_policy_every: int = 8
    """In-world: env steps per policy step (``ImaginationAgent(policy_every=...)``); the default matches the
    learner's ``world_train_every``: one policy step per learner step, as in the graph."""
    world_policy_batch: int = 64
    """In-world: frames per policy step, the last ones acted on (``ImaginationAgent(policy_batch=...)``; the
    graph's batch). 1 with ``world_policy_every=1`` trains on each frame as it comes: 8x as many
    single-frame steps, and the policy saturates at a constant corner move (docs/findings.md section 12)."""
    world_saturation_penalty: float = 0.1
    """In-world: ``ImaginationConfig.saturation_penalty`` of the acting policy. With 0 (the paper's loss)
    the policy saturated at a constant corner move in the static-MNIST stage of evaluation seed 2; on
    validation seeds 100-103, 0.1 cut the saturated fraction of its outputs in moving Fashion from
    0.45-0.79 to 0.10-0.29 and left moving-MNIST identity as it was (docs/findings.md section 12)."""
    world_probe_train: int = 2000
    """In-world: moving-MNIST train-split images the offline linear probes are fit on."""
    world_probe_test: int = 1000
    """In-world: moving-MNIST test-split images the probes are scored on."""
    conditions: tuple[str, ...] = ("baseline", "imagination")
    """Conditions to run: ``baseline``, ``imagination``, and the control ``random-shift`` (in the graph the
    same fraction of each batch translated by t uniform in ``[-max_translation, max_translation]^2``, in
    the world each action drawn so; blind to z*: ``ImaginationConfig.policy="random"``)."""
    out: str = str(OUT)
    """Results folder."""
    run: str = ""
    """Internal: run one ``mode:condition:seed`` in this process."""

    def __post_init__(self) -> None:
        if self.mode not in (*MODES, "both"):
            raise ValueError(f"mode must be one of {(*MODES, 'both')}, got {self.mode!r}")
        if unknown := sorted(set(self.conditions) - set(CONDITIONS)):
            raise ValueError(f"unknown conditions {unknown}; choose from {CONDITIONS}")
        Ablation.parse_row(self.row)  # a ValueError naming a bad row code

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes this invocation runs and summarises."""
        return MODES if self.mode == "both" else (self.mode,)


def learner_config(args: Args, seed: int) -> VASEConfig:
    """The learner of every run: ``args.preset`` with the ablation ``args.row``, seeded, with
    ``args.on_overflow``."""
    base = get_preset(args.preset).with_overrides(seed=seed, inference={"on_overflow": args.on_overflow})
    return VASEConfig.for_row(args.row, base=base)


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


def run_one(args: Args, condition: str, seed: int) -> dict[str, Any]:
    """Train one (condition, seed) through the sequence; return its record (curves, envs, timing)."""
    torch.set_num_threads(1)
    out = Path(args.out)
    n = args.steps_per_env
    config = learner_config(args, seed)
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
    if condition in ("imagination", RANDOM):
        im = ImaginationConfig(
            enabled=True,
            fraction=args.fraction,
            lr=args.policy_lr,
            seed=seed,
            target_latents=args.target_latents,  # type: ignore[arg-type]  # validated by the config
            max_translation=args.max_translation,
            policy="random" if condition == RANDOM else "learned",
            saturation_penalty=args.saturation_penalty,
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
        "policy": ("random" if condition == RANDOM else "learned") if hook else None,
        "target_latents": args.target_latents if hook else None,
        "max_translation": args.max_translation if hook else None,
        "saturation_penalty": args.saturation_penalty if hook else None,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "steps_per_s": round(n * len(SEQUENCE) / wall, 2),
        "hardware": common.hardware(),
        "torch_threads": 1,
        "code": code,
        "on_overflow": args.on_overflow,
        "row": args.row,
        "curves": curves,
        "envs_per_stage": envs,
        "n_envs": log[-1]["n_envs"],
        "agent_loss": hook.agent_loss if hook else [],
        "config": config.to_dict(),
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
    Returns per step: sprite (x, y) after it, |t| (mean over axes); per policy step: L_agent and the
    fraction of saturated policy outputs (both empty for the baseline and the z*-blind control)."""
    positions, t_abs, loss, saturated = [], [], [], []
    agent = None
    if explorer is not None:
        every, batch = args.world_policy_every, args.world_policy_batch
        agent = ImaginationAgent(env, explorer, policy_every=every, policy_batch=batch)
        agent.reset(seed)
    else:
        env.reset(seed=seed)
    while env.vase_stats()["train_steps"] < args.steps_per_env:
        if agent is not None:
            step = agent.step()
            positions.append(step.after)
            t_abs.append(float(np.abs(step.translation).mean()))
            if np.isfinite(step.agent_loss):  # NaN: no policy step (and the z*-blind control has none)
                loss.append(step.agent_loss)
                saturated.append(agent.explorer.last["saturated"])
            continue
        _, _, terminated, truncated, info = env.step(np.zeros(2, np.float32))
        positions.append((info["x"], info["y"]))
        if terminated or truncated:
            env.reset()
    return {
        "positions": np.asarray(positions, np.float64).reshape(-1, 2),
        "t_abs": np.asarray(t_abs),
        "agent_loss": np.asarray(loss),
        "saturated": np.asarray(saturated),
    }


def world_probes(learner: ContinualLearner, data: dict[str, Any]) -> dict[str, float]:
    """Offline probes on the frozen encoder: moving-MNIST class accuracy (%, linear and the 2x256 MLP of
    A.6) and position R^2 (linear)."""
    train, test = (encode_codes(learner.encode, data[k][0]) for k in ("train", "test"))
    pos = {k: np.stack([data[k][1]["x"], data[k][1]["y"]], 1) for k in ("train", "test")}
    labels = data["train"][1]["label"], data["test"][1]["label"]
    return {
        "class_acc": fit_probe(train, labels[0], test, labels[1], "class", "linear"),
        "class_acc_mlp": fit_probe(train, labels[0], test, labels[1], "class", "mlp"),
        "position_r2": fit_probe(train, pos["train"], test, pos["test"], "continuous", "linear"),
    }


def run_world(args: Args, condition: str, seed: int) -> dict[str, Any]:
    """One in-world (condition, seed) through the sequence: per stage, what the learner saw and the probes."""
    torch.set_num_threads(1)
    config = learner_config(args, seed)
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
        if condition in ("imagination", RANDOM) and explorer is None:  # one policy for the whole sequence
            reach = args.world_max_translation or env_translation_range(env)
            explorer = ImaginationExplorer(
                learner,
                ImaginationConfig(
                    enabled=True,
                    lr=args.policy_lr,
                    max_translation=reach,
                    target_latents=args.target_latents,  # type: ignore[arg-type]
                    seed=seed,
                    policy="random" if condition == RANDOM else "learned",
                    saturation_penalty=args.world_saturation_penalty,
                ),
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
                "saturated": float(rec["saturated"].mean()) if len(loss) else None,
                "saturated_last": float(rec["saturated"][-tenth:].mean()) if len(loss) else None,
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
        "target_latents": explorer.config.target_latents if explorer is not None else None,
        "train_every": args.world_train_every,
        "warmup": args.world_warmup,
        "buffer_size": args.world_buffer_size,
        "episode_steps": args.world_episode_steps,
        "probe_sizes": [args.world_probe_train, args.world_probe_test],
        "policy_lr": args.policy_lr,
        "saturation_penalty": args.world_saturation_penalty if explorer is not None else None,
        "policy_every": args.world_policy_every if explorer is not None else None,
        "policy_batch": args.world_policy_batch if explorer is not None else None,
        "stages": stages,
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "hardware": common.hardware(),
        "torch_threads": 1,
        "code": code,
        "on_overflow": args.on_overflow,
        "row": args.row,
        "config": config.to_dict(),
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
        for c in args.conditions
        if not result_path(args, m, c, s).exists()
    ]
    skip = {"mode", "seeds", "jobs", "summarise", "run", "conditions"}
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


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
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
