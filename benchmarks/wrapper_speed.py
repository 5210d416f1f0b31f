"""Speed of the VASE wrappers: env steps/s, encoder throughput, cost of online learning and of an agent.

1. Env steps/s of the raw sprite env vs the wrapped one at 1, 8 and 16 sub-envs, for the per-env
   wrapper (``VASEObservation`` inside each sub-env of an SB3 ``DummyVecEnv``: one forward pass per
   sub-env) and the vector wrappers (``VASEVecEnv`` and gymnasium ``VASEVectorObservation``: one
   batched pass). ``learn=False``. The four are timed in turn within each repeat (interleaved, so load
   changes hit them alike). Targets: vector >= 3x per-env at 16 sub-envs; cpu/32 at 8 sub-envs:
   ``VASEVecEnv`` >= 7,500 frames/CPU-s, i.e. >= 43% of the raw env's rate (7,500 / 17,394, the raw
   rate on an idle machine: on a loaded one both rates drop, the fraction is the comparable number).
2. Encoder throughput (images per CPU-second) of both presets at the vector step's batches (8 and 16)
   and at ``encode_batch``, as a fraction of the practical conv peak measured in the same run
   (``common.peak``: a 3x3 conv 512->512 at 64x64, oneDNN; also the matmul peak). Paths, timed in turn
   within each repeat: the encoder alone on a preprocessed batch as the wrapper runs it (channels-last,
   ``torch.inference_mode``), the same under ``torch.no_grad`` (the inference copy before), the
   contiguous NCHW encoder under ``no_grad`` (``learner.encode`` before the model became channels-last),
   and the whole paths from uint8 frames: ``learner.encode`` and the wrapper's ``vase.encode``
   (validation, uint8 -> float, weight-refresh check, clip, numpy). FLOPs per image from
   ``torch.utils.flop_counter``. Targets: cpu/32 >= 50% of the conv peak at batch 8, paper/64 >= 75%.
3. Online learning at the default settings (train round every 64 frames, 1 update, batch 64):
   extra wall time of ``learn=True`` over ``learn=False`` per train step, divided by the time the
   learner's own train steps took inside those rounds. Target: <= 1 (no hidden cost beyond the
   steps); also for ``asynchronous=True`` (training in a background thread, overlapping env steps).
4. The cost an agent pays: CPU seconds per env step of SB3 PPO (``n_steps`` x 8 sub-envs per rollout,
   ``ppo_epochs`` epochs) on 64x64 frames: ``CnnPolicy`` (NatureCNN) on the pixels vs ``MlpPolicy`` on
   frozen VASE latents (cpu preset, frames resized to 32x32; paper preset at 64x64) and on latents
   learned online (cpu preset, ``learn=True``): rollout and updates together, ``model.learn``'s time.
Every number is the best of ``repeats`` timings, both in wall-clock time and in the process's CPU
time. The reference machine is shared with other jobs (the load average is recorded), so wall-clock
rates understate what 2 dedicated cores deliver; with one torch thread, the rate per CPU-second is the
rate of one dedicated core (and two processes or halves of a batch give twice it on 2 cores). Under
heavy load even CPU-second rates drop (shared caches, memory bandwidth): compare within a run.
Writes ``benchmarks/results/wrapper_speed.{json,md}``.

    python benchmarks/wrapper_speed.py [--threads 1 --repeats 3]
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import cli_args
import common
import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv
from torch.utils.flop_counter import FlopCounterMode
from wrapper_speed_report import ENV_ID, summarise

import vase_rl.envs  # noqa: F401
from vase_rl.agents.sb3_vec import VASEVecEnv
from vase_rl.core.config import get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.rl.vector_wrapper import VASEVectorObservation
from vase_rl.rl.wrapper import VASEObservation

RESULTS = common.RESULTS


@dataclass
class Args(cli_args.ThreadsArgs, cli_args.PPOArgs):
    repeats: int = 3
    """Timings per number; the best is kept."""
    steps: int = 100
    """Vector steps per env-speed timing."""
    sub_envs: tuple[int, ...] = (1, 8, 16)
    """Sub-env counts."""
    encode_batch: int = 256
    """Batch of the encoder-throughput timing."""
    learn_steps: int = 256
    """Vector steps (of 16 sub-envs) per online-learning timing, cpu preset (128 for paper)."""
    encoder_batches: tuple[int, ...] = (8, 16)
    """Batches of the encoder-efficiency timing (the vector step's), besides ``encode_batch``."""
    encoder_images: int = 4096
    """Images per encoder-efficiency timing (cpu preset; a quarter of it for the paper preset)."""
    peak_size: int = 2048
    """Side of the square matmul of the practical peak (``common.peak``)."""
    cpu_target_fraction: float = 0.5
    """Target: cpu/32 encoder alone at batch 8 >= this fraction of the conv peak."""
    paper_target_fraction: float = 0.75
    """Target: paper/64 encoder alone at batch 8 >= this fraction of the conv peak."""
    wrapped_target: float = 7500.0
    """Target: VASEVecEnv frames/CPU-s, cpu/32 at 8 sub-envs (against ``raw_reference``)."""
    raw_reference: float = 17394.0
    """Raw env frames/CPU-s, cpu/32 at 8 sub-envs, on an idle machine (the issue's fresh clone)."""
    ppo_envs: int = 8
    """Sub-envs of the PPO cost timing."""
    ppo_timesteps: int = 2048
    """Env steps of each PPO timing (after one untimed rollout + update)."""
    ppo_n_steps: int = 128
    ppo_batch_size: int = 256
    out: str = str(RESULTS / "wrapper_speed")
    """Output stem: writes OUT.json and OUT.md."""


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, tuple[float, float]]:
    """Best (wall, CPU) seconds of each of ``fns``, timed in turn within each repeat (load hits all)."""
    best = {k: (float("inf"), float("inf")) for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = common.best_time(fn, 1)
            best[k] = (min(best[k][0], t[0]), min(best[k][1], t[1]))
    return best


def rates(n: float, times: tuple[float, float]) -> dict[str, float]:
    """n items over (wall, cpu) seconds -> {"wall": items/s, "cpu": items per CPU-second}."""
    return {"wall": n / times[0], "cpu": n / max(times[1], 1e-9)}


def make_raw(n: int, canvas: int) -> DummyVecEnv:
    venv = DummyVecEnv([lambda: gym.make(ENV_ID, canvas_size=canvas) for _ in range(n)])
    venv.seed(0)
    return venv


def stepper(venv: Any, n_steps: int) -> Callable[[], None]:
    """Reset ``venv``; return a function that takes ``n_steps`` vector steps of random actions."""
    actions = np.random.default_rng(0).integers(0, 5, (n_steps, venv.num_envs))
    venv.reset()

    def loop() -> None:
        for a in actions:
            venv.step(a)

    return loop


def steps_per_s(venv: Any, n_steps: int, repeats: int) -> dict[str, float]:
    """Env steps (sub-env frames) per second, wall and CPU, of random actions on a vector env."""
    return rates(venv.num_envs * n_steps, common.best_time(stepper(venv, n_steps), repeats))


def env_speed(args: Args, preset: str, canvas: int) -> list[dict[str, Any]]:
    learner = ContinualLearner(get_preset(preset), device="cpu")
    rows = []
    for n in args.sub_envs:
        per_env = DummyVecEnv(
            [
                lambda: VASEObservation(gym.make(ENV_ID, canvas_size=canvas), learner, learn=False)
                for _ in range(n)
            ]
        )
        gym_vec = VASEVectorObservation(
            gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="sync", canvas_size=canvas),
            learner,
            learn=False,
        )
        venvs = {
            "raw": make_raw(n, canvas),
            "per_env_wrapper": per_env,
            "vec_env_wrapper": VASEVecEnv(make_raw(n, canvas), learner, learn=False),
            "gym_vector_wrapper": gym_vec,
        }
        for venv in venvs.values():  # warm: oneDNN primitives for this batch, allocator
            stepper(venv, 2)()
        best = interleaved({k: stepper(v, args.steps) for k, v in venvs.items()}, args.repeats)
        row: dict[str, Any] = {"preset": preset, "canvas": canvas, "sub_envs": n}
        row.update({k: rates(n * args.steps, t) for k, t in best.items()})
        row["vector_over_per_env"] = {
            k: row["vec_env_wrapper"][k] / row["per_env_wrapper"][k] for k in ("wall", "cpu")
        }
        row["vec_over_raw_cpu"] = row["vec_env_wrapper"]["cpu"] / row["raw"]["cpu"]
        row["gym_over_raw_cpu"] = row["gym_vector_wrapper"]["cpu"] / row["raw"]["cpu"]
        rows.append(row)
        print(row, flush=True)
    return rows


def encoder_speed(args: Args) -> dict[str, Any]:
    learner = ContinualLearner(get_preset("paper"), device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (args.encode_batch, 64, 64, 1), dtype=np.uint8)
    wrapper = VASEVecEnv(make_raw(1, 64), learner, learn=False)
    out = {}
    for threads in sorted({1, args.threads}):
        torch.set_num_threads(threads)
        learner.encode(frames)
        wrapper.vase.encode(frames)
        out[f"learner_encode_{threads}t"] = rates(
            args.encode_batch, common.best_time(lambda: learner.encode(frames), args.repeats)
        )
        out[f"wrapper_encode_{threads}t"] = rates(
            args.encode_batch, common.best_time(lambda: wrapper.vase.encode(frames), args.repeats)
        )
    torch.set_num_threads(args.threads)
    print(out, flush=True)
    return out


def encoder_paths(learner: ContinualLearner, frames: np.ndarray) -> dict[str, Callable[[], Any]]:
    """The encoding paths of the module docstring (2.) on one batch of uint8 frames (B, S, S, 1)."""
    wrapper = VASEVecEnv(make_raw(1, frames.shape[1]), learner, learn=False)
    fast = wrapper.vase.copy.encoder  # the wrapper's inference copy: channels-last on CPU
    nchw = copy.deepcopy(fast).to(memory_format=torch.contiguous_format)
    x = learner.preprocess(frames)

    def under(mode: Callable[[], Any], net: torch.nn.Module) -> Callable[[], Any]:
        def run() -> Any:
            with mode():
                return net(x)

        return run

    return {
        "encoder_inference_mode": under(torch.inference_mode, fast),
        "encoder_no_grad": under(torch.no_grad, fast),
        "encoder_nchw_no_grad": under(torch.no_grad, nchw),
        "learner_encode": lambda: learner.encode(frames),
        "wrapper_encode": lambda: wrapper.vase.encode(frames),
    }


def encoder_efficiency(args: Args, peak: dict[str, float]) -> list[dict[str, Any]]:
    """Images/CPU-s of each path at each batch, both presets, and the fraction of the conv peak."""
    rows = []
    for preset in ("cpu", "paper"):
        learner = ContinualLearner(get_preset(preset), device="cpu")
        side = learner.config.model.image_size
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            learner.model.encoder(torch.rand(1, 1, side, side))
        flops = counter.get_total_flops()
        images = args.encoder_images if preset == "cpu" else args.encoder_images // 4
        for batch in sorted({*args.encoder_batches, args.encode_batch}):
            frames = np.random.default_rng(batch).integers(0, 256, (batch, side, side, 1), dtype=np.uint8)
            paths = encoder_paths(learner, frames)
            calls = max(1, images // batch)
            for fn in paths.values():  # warm
                fn()
            timed = {k: (lambda f=fn, c=calls: [f() for _ in range(c)]) for k, fn in paths.items()}
            best = interleaved(timed, args.repeats)
            row: dict[str, Any] = {
                "preset": preset,
                "side": side,
                "batch": batch,
                "mflop_per_image": flops / 1e6,
            }
            for k, t in best.items():
                r = rates(batch * calls, t)
                gflops = r["cpu"] * flops / 1e9
                row[k] = {
                    **r,
                    "gflops_cpu": gflops,
                    "fraction_of_conv_peak": gflops / peak["conv3x3_gflops_cpu"],
                    "fraction_of_matmul_peak": gflops / peak["matmul_gflops_cpu"],
                }
            rows.append(row)
            print(
                {
                    k: (round(v["cpu"]), f"{v['fraction_of_conv_peak']:.0%}")
                    for k, v in row.items()
                    if isinstance(v, dict)
                },
                preset,
                batch,
                flush=True,
            )
    return rows


def ppo_cost(args: Args) -> list[dict[str, Any]]:
    """CPU (and wall) seconds per env step of PPO training on pixels vs on VASE latents (docstring, 4.)."""
    n = args.ppo_envs
    batch = min(args.ppo_batch_size, n * args.ppo_n_steps)
    kinds: dict[str, tuple[str, Callable[[], Any]]] = {
        "pixels_cnn": ("CnnPolicy", lambda: make_raw(n, 64)),
        "vase_cpu_frozen": (
            "MlpPolicy",
            lambda: VASEVecEnv(make_raw(n, 64), preset="cpu", device="cpu", learn=False),
        ),
        "vase_paper_frozen": (
            "MlpPolicy",
            lambda: VASEVecEnv(make_raw(n, 64), preset="paper", device="cpu", learn=False),
        ),
        "vase_cpu_online": ("MlpPolicy", lambda: VASEVecEnv(make_raw(n, 64), preset="cpu", device="cpu")),
    }
    models = {}
    for name, (policy, make) in kinds.items():
        model = PPO(
            policy, make(), seed=0, device="cpu", verbose=0, **{**args.ppo_kwargs(), "batch_size": batch}
        )
        model.learn(n * args.ppo_n_steps)  # untimed: one rollout + update (allocations, oneDNN primitives)
        models[name] = model
    best = interleaved(
        {k: lambda m=m: m.learn(args.ppo_timesteps, reset_num_timesteps=False) for k, m in models.items()},
        args.repeats,
    )
    rollout = n * args.ppo_n_steps
    steps = -(-args.ppo_timesteps // rollout) * rollout  # learn() runs whole rollouts
    rows = []
    for name, (wall, cpu) in best.items():
        rows.append(
            {
                "agent": name,
                "policy": kinds[name][0],
                "env_steps": steps,
                "cpu_ms_per_step": cpu / steps * 1e3,
                "wall_ms_per_step": wall / steps * 1e3,
            }
        )
    pixels = rows[0]["cpu_ms_per_step"]
    for row in rows:
        row["cpu_over_pixels"] = row["cpu_ms_per_step"] / pixels
    for model in models.values():
        model.get_env().close()
    print(rows, flush=True)
    return rows


def learning_cost(args: Args, preset: str, canvas: int, n_steps: int) -> dict[str, Any]:
    """Extra wall/CPU time of learn=True over learn=False, per train step, against the time the
    learner's own train steps took inside the rounds (and a standalone warm train step)."""
    out: dict[str, Any] = {"preset": preset, "canvas": canvas, "frames": 16 * n_steps}
    for mode in ("sync", "async"):
        learner = ContinualLearner(get_preset(preset), device="cpu")
        frozen = VASEVecEnv(make_raw(16, canvas), learner, learn=False)
        learning = VASEVecEnv(make_raw(16, canvas), learner, asynchronous=(mode == "async"))
        t_frozen = common.best_time(lambda: steps_per_s(frozen, n_steps, 1), 1)  # noqa: B023
        t_learning = common.best_time(lambda: steps_per_s(learning, n_steps, 1), 1)  # noqa: B023
        learning.close()
        stats = learning.vase_stats()
        steps = max(stats["train_steps"], 1)
        out[mode] = {
            "train_steps": stats["train_steps"],
            "extra_wall_s": (t_learning[0] - t_frozen[0]) / steps,
            "extra_cpu_s": (t_learning[1] - t_frozen[1]) / steps,
            "in_round_step_wall_s": stats["train_time_s"] / steps,
        }
        out[mode]["ratio"] = out[mode]["extra_wall_s"] / max(out[mode]["in_round_step_wall_s"], 1e-9)
    probe = ContinualLearner(get_preset(preset), device="cpu")
    batch = torch.rand(64, 1, probe.config.model.image_size, probe.config.model.image_size)
    for _ in range(3):
        probe.train_step(batch)
    wall, cpu = common.best_time(lambda: probe.train_step(batch), max(args.repeats, 5))
    out["warm_train_step"] = {"wall": wall, "cpu": cpu}
    print(out, flush=True)
    return out


def run(args: Args) -> dict[str, Any]:
    """Env speed (paper and cpu presets), encoder throughput and the cost of online learning."""
    torch.set_num_threads(args.threads)
    hw = common.hardware()  # load average before
    result: dict[str, Any] = {"args": asdict(args), "hardware": hw}
    result["env_speed"] = env_speed(args, "paper", 64) + env_speed(args, "cpu", 32)
    result["encoder"] = encoder_speed(args)
    result["peak"] = common.peak(args.threads, args.peak_size)
    result["encoder_efficiency"] = encoder_efficiency(args, result["peak"])
    result["learning"] = [
        learning_cost(args, "cpu", 32, args.learn_steps),
        learning_cost(args, "paper", 64, args.learn_steps // 2),
    ]
    result["ppo"] = ppo_cost(args)
    result["targets_met"] = targets(args, result)
    hw["load_after"] = os.getloadavg()[0]
    return result


def targets(args: Args, result: dict[str, Any]) -> dict[str, Any]:
    """The targets of the module docstring, judged on this run (None where the run lacks the cell)."""
    enc = {(r["preset"], r["batch"]): r["encoder_inference_mode"] for r in result["encoder_efficiency"]}
    env = {(r["preset"], r["sub_envs"]): r for r in result["env_speed"]}
    cpu8, paper8, cpu_env8 = enc.get(("cpu", 8)), enc.get(("paper", 8)), env.get(("cpu", 8))
    vec16 = [r["vector_over_per_env"]["cpu"] for r in result["env_speed"] if r["sub_envs"] == 16]
    return {
        "cpu_encoder_b8_fraction_of_conv_peak": None
        if cpu8 is None
        else cpu8["fraction_of_conv_peak"] >= args.cpu_target_fraction,
        "paper_encoder_b8_fraction_of_conv_peak": None
        if paper8 is None
        else paper8["fraction_of_conv_peak"] >= args.paper_target_fraction,
        "cpu_wrapped_8_absolute": None
        if cpu_env8 is None
        else cpu_env8["vec_env_wrapper"]["cpu"] >= args.wrapped_target,
        "cpu_wrapped_8_fraction_of_raw": None
        if cpu_env8 is None
        else cpu_env8["vec_over_raw_cpu"] >= args.wrapped_target / args.raw_reference,
        "vector_over_per_env_16": None if not vec16 else all(v >= 3.0 for v in vec16),
    }


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    common.write_report(args.out, run(args), summarise)


if __name__ == "__main__":
    main()
