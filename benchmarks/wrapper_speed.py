"""Speed of the VASE wrappers: env steps/s, encoder throughput, cost of online learning.

1. Env steps/s of the raw sprite env vs the wrapped one at 1, 8 and 16 sub-envs, for the per-env
   wrapper (``VASEObservation`` inside each sub-env of an SB3 ``DummyVecEnv``: one forward pass per
   sub-env) and the vector wrappers (``VASEVecEnv`` and gymnasium ``VASEVectorObservation``: one
   batched pass). ``learn=False``. Target: vector >= 3x per-env at 16 sub-envs.
2. Encoder throughput (images/s) of the 64x64 paper-preset model on CPU: ``learner.encode`` (the
   learner's layout) and the wrapper's channels-last inference copy. Target: >= 1,000 images/s.
3. Online learning at the default settings (train round every 64 frames, 1 update, batch 64):
   extra wall time of ``learn=True`` over ``learn=False`` per train step, divided by the time the
   learner's own train steps took inside those rounds. Target: <= 1 (no hidden cost beyond the
   steps); also for ``asynchronous=True`` (training in a background thread, overlapping env steps).
Every number is the best of ``repeats`` timings, both in wall-clock time and in the process's CPU
time. The reference machine is shared with other jobs (the load average is recorded), so wall-clock
rates understate what 2 dedicated cores deliver; with one torch thread, the rate per CPU-second is the
rate of one dedicated core (and two processes or halves of a batch give twice it on 2 cores).
Writes ``benchmarks/results/wrapper_speed.{json,md}``.

    python benchmarks/wrapper_speed.py [--threads 1 --repeats 3]
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import common
import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

import vase_rl.envs  # noqa: F401
from vase_rl.agents.sb3_vec import VASEVecEnv
from vase_rl.config import get_preset
from vase_rl.learner import ContinualLearner
from vase_rl.vector_wrapper import VASEVectorObservation
from vase_rl.wrapper import VASEObservation

RESULTS = common.RESULTS
ENV_ID = "vase_rl/MovingShapes-v0"


@dataclass
class Args:
    threads: int = 1
    """torch threads (1: per-CPU-second rates are per core; 2 OpenMP threads thrash on a loaded machine)."""
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
    out: str = str(RESULTS / "wrapper_speed")
    """Output stem: writes OUT.json and OUT.md."""


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Best (wall seconds, CPU seconds of this process) of ``repeats`` calls of ``fn``."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def rates(n: float, times: tuple[float, float]) -> dict[str, float]:
    """n items over (wall, cpu) seconds -> {"wall": items/s, "cpu": items per CPU-second}."""
    return {"wall": n / times[0], "cpu": n / max(times[1], 1e-9)}


def make_raw(n: int, canvas: int) -> DummyVecEnv:
    venv = DummyVecEnv([lambda: gym.make(ENV_ID, canvas_size=canvas) for _ in range(n)])
    venv.seed(0)
    return venv


def steps_per_s(venv: Any, n_steps: int, repeats: int) -> dict[str, float]:
    """Env steps (sub-env frames) per second, wall and CPU, of random actions on a vector env."""
    n = venv.num_envs
    actions = np.random.default_rng(0).integers(0, 5, (n_steps, n))
    venv.reset()

    def loop() -> None:
        for a in actions:
            venv.step(a)

    return rates(n * n_steps, best_time(loop, repeats))


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
        row = {
            "preset": preset,
            "canvas": canvas,
            "sub_envs": n,
            "raw": steps_per_s(make_raw(n, canvas), args.steps, args.repeats),
            "per_env_wrapper": steps_per_s(per_env, args.steps, args.repeats),
            "vec_env_wrapper": steps_per_s(
                VASEVecEnv(make_raw(n, canvas), learner, learn=False), args.steps, args.repeats
            ),
            "gym_vector_wrapper": steps_per_s(gym_vec, args.steps, args.repeats),
        }
        row["vector_over_per_env"] = {
            k: row["vec_env_wrapper"][k] / row["per_env_wrapper"][k] for k in ("wall", "cpu")
        }
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
            args.encode_batch, best_time(lambda: learner.encode(frames), args.repeats)
        )
        out[f"wrapper_encode_{threads}t"] = rates(
            args.encode_batch, best_time(lambda: wrapper.vase.encode(frames), args.repeats)
        )
    torch.set_num_threads(args.threads)
    print(out, flush=True)
    return out


def learning_cost(args: Args, preset: str, canvas: int, n_steps: int) -> dict[str, Any]:
    """Extra wall/CPU time of learn=True over learn=False, per train step, against the time the
    learner's own train steps took inside the rounds (and a standalone warm train step)."""
    out: dict[str, Any] = {"preset": preset, "canvas": canvas, "frames": 16 * n_steps}
    for mode in ("sync", "async"):
        learner = ContinualLearner(get_preset(preset), device="cpu")
        frozen = VASEVecEnv(make_raw(16, canvas), learner, learn=False)
        learning = VASEVecEnv(make_raw(16, canvas), learner, asynchronous=(mode == "async"))
        t_frozen = best_time(lambda: steps_per_s(frozen, n_steps, 1), 1)  # noqa: B023
        t_learning = best_time(lambda: steps_per_s(learning, n_steps, 1), 1)  # noqa: B023
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
    wall, cpu = best_time(lambda: probe.train_step(batch), max(args.repeats, 5))
    out["warm_train_step"] = {"wall": wall, "cpu": cpu}
    print(out, flush=True)
    return out


def summarise(result: dict[str, Any]) -> str:
    """The markdown tables of a :func:`run` result."""
    a, hw, e = result["args"], result["hardware"], result["encoder"]
    threads = sorted({1, a["threads"]})
    intro = (
        f"Produced by `python benchmarks/wrapper_speed.py`. {hw['cpu']}, {hw['cores']} cores, torch "
        f"{hw['torch']} with {a['threads']} thread(s); best of {a['repeats']} timings. The machine was "
        f"shared (1-min load average {hw.get('load_avg_1m', hw.get('load_before')):.1f} before, "
        f"{hw['load_after']:.1f} after, on 2 cores), so each "
        f"cell gives the wall-clock rate / the rate per CPU-second of this process (= one dedicated core at "
        f"1 thread). Random actions on `{ENV_ID}`, `learn=False`, CPU."
    )
    lines = [
        "# VASE wrapper speed",
        "",
        intro,
        "",
        "## Env steps/s (sub-env frames per second): wall / per CPU-second",
        "",
        ("| preset / canvas | sub-envs | raw env | per-env wrapper | VASEVecEnv | gym vector wrapper "
         "| vector / per-env |"),
        "|---|---|---|---|---|---|---|",
    ]

    def both(r: dict[str, float], fmt: str = ",.0f") -> str:
        return f"{r['wall']:{fmt}} / {r['cpu']:{fmt}}"

    for r in result["env_speed"]:
        cells = [both(r[k]) for k in ("raw", "per_env_wrapper", "vec_env_wrapper", "gym_vector_wrapper")]
        lines.append(
            f"| {r['preset']} / {r['canvas']} | {r['sub_envs']} | "
            + " | ".join(cells)
            + f" | {both(r['vector_over_per_env'], '.1f')} |"
        )
    lines += [
        "",
        (f"## Encoder throughput, paper preset (64x64), batch {a['encode_batch']}: "
         "img/s wall / per CPU-second"),
        "",
        "| path | " + " | ".join(f"{t} thread(s)" for t in threads) + " |",
        "|---|" + "---|" * len(threads),
    ]
    for path in ("learner_encode", "wrapper_encode"):
        lines.append(f"| `{path}` | " + " | ".join(both(e[f"{path}_{t}t"]) for t in threads) + " |")
    head = (
        "| preset / canvas | frames | mode | train steps | learner's steps inside the rounds (wall) "
        "| extra wall time of learn=True per step | ratio | extra CPU per step "
        "| warm train_step alone (wall / CPU) |"
    )
    lines += [
        "",
        "## Online learning at the default settings (16 sub-envs, round every 64 frames, 1 update)",
        "",
        head,
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["learning"]:
        warm = f"{r['warm_train_step']['wall'] * 1e3:,.0f} / {r['warm_train_step']['cpu'] * 1e3:,.0f} ms"
        for mode in ("sync", "async"):
            m = r[mode]
            lines.append(
                f"| {r['preset']} / {r['canvas']} | {r['frames']} | {mode} | {m['train_steps']} | "
                f"{m['in_round_step_wall_s'] * 1e3:,.0f} ms | {m['extra_wall_s'] * 1e3:,.0f} ms | "
                f"{m['ratio']:.2f} | {m['extra_cpu_s'] * 1e3:,.0f} ms | {warm} |"
            )
    return "\n".join(lines) + "\n"


def run(args: Args) -> dict[str, Any]:
    """Env speed (paper and cpu presets), encoder throughput and the cost of online learning."""
    torch.set_num_threads(args.threads)
    hw = common.hardware()  # load average before
    result: dict[str, Any] = {"args": asdict(args), "hardware": hw}
    result["env_speed"] = env_speed(args, "paper", 64) + env_speed(args, "cpu", 32)
    result["encoder"] = encoder_speed(args)
    result["learning"] = [
        learning_cost(args, "cpu", 32, args.learn_steps),
        learning_cost(args, "paper", 64, args.learn_steps // 2),
    ]
    hw["load_after"] = os.getloadavg()[0]
    return result


def main() -> None:
    args = common.parse_args(Args, __doc__)
    result = run(args)
    markdown = summarise(result)
    common.write_results(args.out, result, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
