"""Rollout scaling: frames/s when 1, 2 or 4 worker processes feed one VASE learner.

Data path measured (``docs/scaling.md``): each worker process steps its own sub-env and renders the
frame; frames travel by pipe to the main process (SB3 ``SubprocVecEnv`` / gymnasium ``AsyncVectorEnv``);
there the VASE vector wrapper (``VASEVecEnv`` / ``VASEVectorObservation``) validates and resizes the
whole batch, encodes it in one pass, and -- with ``learn=True`` -- buffers it and runs a learner
``train_step`` every ``train_every`` frames. One learner sees every frame; nothing is synchronised
between processes.

Measured, for worker counts ``workers`` (one sub-env per worker) and for the in-process baseline
(SB3 ``DummyVecEnv`` / gymnasium ``SyncVectorEnv`` with the same number of sub-envs):

1. raw env frames/s (no VASE);
2. frames/s through the VASE wrapper with ``learn=False`` (encode only);
3. frames/s with ``learn=True`` (encode + buffer + train; cpu preset, 1 update of 64 frames every 64
   frames, i.e. replay ratio 1), after the buffer warm-up.

Two env costs: the sprite env as is (microseconds per step: pipes dominate) and the sprite env plus
``env_cost_ms`` of CPU work per step (a stand-in for a physics/3-D renderer such as DM Lab), where
worker processes can pay off. Every number is the best of ``repeats`` timings on a shared machine;
hardware and load average are recorded. Writes ``benchmarks/results/rollout_scaling.{json,md}``.

    python benchmarks/rollout_scaling.py [--workers 1 2 4 --env-cost-ms 2 --repeats 2]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import cli_args
import common
import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from vase_rl.agents.sb3_vec import VASEVecEnv
from vase_rl.core.config import get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.envs import register_envs
from vase_rl.rl.vector_wrapper import VASEVectorObservation

RESULTS = common.RESULTS
ENV_ID = "vase_rl/MovingShapes-v0"


@dataclass
class Args(cli_args.PresetArgs, cli_args.ThreadsArgs):
    workers: tuple[int, ...] = (1, 2, 4)
    """Worker process counts (one sub-env each)."""
    env_cost_ms: float = 2.0
    """Extra CPU work per env step of the 'costly env' rows (busy loop in the worker)."""
    frames: int = 2048
    """Frames timed per measurement (rounded up to whole vector steps)."""
    repeats: int = 3
    """Timings per number; the best is kept."""
    out: str = str(RESULTS / "rollout_scaling")
    """Output stem: writes OUT.json and OUT.md."""


class CostlyEnv(gym.Wrapper[Any, Any, Any, Any]):
    """Adds ``cost_ms`` of busy CPU work to every step (a stand-in for an expensive simulator)."""

    def __init__(self, env: gym.Env[Any, Any], cost_ms: float) -> None:
        super().__init__(env)
        self.cost_s = cost_ms / 1000.0

    def step(self, action: Any) -> Any:
        end = time.perf_counter() + self.cost_s
        while time.perf_counter() < end:
            pass
        return self.env.step(action)


def make_env(canvas: int, cost_ms: float) -> Callable[[], gym.Env[Any, Any]]:
    """Thunk building one sub-env (picklable for worker processes)."""

    def thunk() -> gym.Env[Any, Any]:
        register_envs()  # in the worker process too
        env = gym.make(ENV_ID, canvas_size=canvas)
        return CostlyEnv(env, cost_ms) if cost_ms > 0 else env

    return thunk


def make_vec(api: str, parallel: bool, n: int, canvas: int, cost_ms: float) -> Any:
    """An SB3 (``api="sb3"``) or gymnasium (``"gym"``) vector env of ``n`` sub-envs, in worker processes
    when ``parallel``; started with ``forkserver`` so workers do not inherit the learner's threads."""
    thunks = [make_env(canvas, cost_ms) for _ in range(n)]
    if api == "sb3":
        venv = SubprocVecEnv(thunks, start_method="forkserver") if parallel else DummyVecEnv(thunks)
        venv.seed(0)
        return venv
    if parallel:
        return gym.vector.AsyncVectorEnv(thunks, context="forkserver")
    return gym.vector.SyncVectorEnv(thunks)


def wrap(api: str, venv: Any, learner: ContinualLearner | None, learn: bool) -> Any:
    if learner is None:
        return venv
    cls = VASEVecEnv if api == "sb3" else VASEVectorObservation
    return cls(venv, learner, learn=learn)


def frames_per_s(
    venv: Any, api: str, n: int, frames: int, repeats: int, warmup_frames: int
) -> tuple[float, float]:
    """Best frames/s of random actions over ``repeats`` timings of ``frames`` frames (after warm-up).

    Also the main (learner) process's CPU milliseconds per frame in that timing (load-independent: the
    wall-clock rate on a shared machine depends on what else runs, the CPU cost of the single learner
    process not).
    """
    rng = np.random.default_rng(0)
    steps = -(-frames // n)
    if api == "sb3":
        venv.reset()
        step = venv.step
    else:
        venv.reset(seed=0)
        step = venv.step
    for _ in range(-(-warmup_frames // n)):
        step(rng.integers(0, 5, n))
    best, cpu_ms = 0.0, float("nan")
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step(rng.integers(0, 5, n))
        fps = steps * n / (time.perf_counter() - start)
        if fps > best:
            best, cpu_ms = fps, 1000 * (time.process_time() - cpu) / (steps * n)
    return best, cpu_ms


def measure(args: Args, api: str, parallel: bool, n: int, cost_ms: float, mode: str) -> tuple[float, float]:
    """(frames/s, main-process CPU ms/frame) of one configuration; ``mode``: raw, encode or learn."""
    config = get_preset(args.preset)
    learner = None if mode == "raw" else ContinualLearner(config, device="cpu")
    venv = wrap(api, make_vec(api, parallel, n, config.model.image_size, cost_ms), learner, mode == "learn")
    warmup = 1024 + 2 * config.batch_size if mode == "learn" else 64  # past the wrapper's buffer warm-up
    try:
        return frames_per_s(venv, api, n, args.frames, args.repeats, warmup)
    finally:
        venv.close()


def run(args: Args) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    rows = []
    for cost in (0.0, args.env_cost_ms):
        for api in ("sb3", "gym"):
            for mode in ("raw", "encode", "learn"):
                if mode == "learn" and cost == 0.0 and api == "gym":
                    continue  # the learner dominates: one API is enough at zero env cost
                for n in args.workers:
                    for parallel in (False, True):
                        fps, cpu_ms = measure(args, api, parallel, n, cost, mode)
                        rows.append(
                            {
                                "api": api,
                                "parallel": parallel,
                                "sub_envs": n,
                                "env_cost_ms": cost,
                                "mode": mode,
                                "frames_per_s": fps,
                                "main_cpu_ms_per_frame": cpu_ms,
                            }
                        )
                        print(json.dumps(rows[-1]), flush=True)
    return {
        "args": {**asdict(args), "workers": list(args.workers)},
        "rows": rows,
        "hardware": common.hardware(gymnasium=gym.__version__, learner_threads=args.threads),  # at the end
    }


def summarise(result: dict[str, Any]) -> str:
    """The markdown tables of a :func:`run` result (one per env cost)."""
    a, hw = result["args"], result["hardware"]
    lines = [
        "# Rollout scaling: worker processes feeding one VASE learner",
        "",
        (
            f"Produced by `python benchmarks/rollout_scaling.py` on a shared {hw['cpu']} "
            f"(load average at the end {(hw.get('load_average') or hw['load_avg_end'])[0]:.1f}), "
            f"torch {hw['torch']} with {hw['learner_threads']} thread in the learner process, "
            f"gymnasium {hw['gymnasium']}. "
            f"Env `{ENV_ID}` at the `{a['preset']}` preset's canvas, random actions, one sub-env per worker; "
            f"best of {a['repeats']} timings of {a['frames']} frames. `learn` = `learn=True`, the wrapper's "
            "defaults (a train step on 64 buffered frames every 64 frames), timed after the buffer warm-up."
        ),
        "",
        (
            "Cells: frames/s (sub-env frames per second, all sub-envs together) and, in brackets, the main "
            "(learner) process's CPU ms per frame -- the load-independent cost that bounds one learner's "
            "throughput. *in-process* = SB3 `DummyVecEnv` / gymnasium `SyncVectorEnv`, *workers* = "
            "`SubprocVecEnv` / `AsyncVectorEnv` (forkserver)."
        ),
        "",
        (
            "Reading it: wall-clock frames/s on a shared machine depend on the other jobs; a process that "
            "blocks on pipes (the worker rows) is scheduled sooner than a CPU-bound one, which favours some "
            "worker rows beyond their cost. 1000 / (CPU ms per frame) is the frames/s ceiling of the single "
            "learner process on a free core; worker processes take the env's own CPU cost out of it."
        ),
        "",
    ]
    for cost in sorted({r["env_cost_ms"] for r in result["rows"]}):
        lines += [
            f"## Env cost +{cost:g} ms of CPU per step",
            "",
            "| API | mode | "
            + " | ".join(f"{n} sub-env(s): in-process / workers" for n in a["workers"])
            + " |",
            "|---|---|" + "---|" * len(a["workers"]),
        ]
        for api in ("sb3", "gym"):
            for mode in ("raw", "encode", "learn"):
                cells = []
                for n in a["workers"]:
                    got = {
                        r["parallel"]: r
                        for r in result["rows"]
                        if (r["api"], r["mode"], r["sub_envs"], r["env_cost_ms"]) == (api, mode, n, cost)
                    }
                    if got:
                        cells.append(
                            " / ".join(
                                f"{got[p]['frames_per_s']:,.0f} ({got[p]['main_cpu_ms_per_frame']:.2f})"
                                for p in (False, True)
                            )
                        )
                if cells:
                    lines.append(f"| {api} | {mode} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    common.write_report(args.out, run(args), summarise)


if __name__ == "__main__":
    main()
