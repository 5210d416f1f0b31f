"""Steps per second of the MiniWorld levels (``vase_rl.envs.world``) on one CPU core.

Reads top to bottom: pin the process to one core, build each level, take ``steps`` seeded random
actions (resetting at episode ends, so reset cost is included) ``repeats`` times, and write
``benchmarks/results/world_speed.json`` and ``.md`` with the machine (CPU model, cores, load average,
OpenGL renderer) and the date. Optionally saves a grid of frames from each level for a visual check.

    python benchmarks/world_speed.py                      # defaults below
    python benchmarks/world_speed.py --steps 500 --repeats 2 --frames-png /tmp/world_frames.png
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import cli_args
import common
import numpy as np

from vase_rl.envs.world import THEMES, WorldEnv, check_gl


@dataclass
class Args:
    levels: tuple[str, ...] = ("outdoor", "indoor")
    """Levels to time (names in ``vase_rl.envs.world.THEMES``)."""
    msaa_samples: tuple[int, ...] = (1, 4)
    """Anti-aliasing settings to time; 4 is the env default."""
    obs_size: int = 64
    """Observation side in pixels (the paper's 64)."""
    steps: int = 2000
    """Environment steps per repeat."""
    repeats: int = 5
    """Timed repeats per setting; the table reports median and best."""
    cpu: int = 0
    """Core to pin the process to (-1: no pinning)."""
    seed: int = 0
    """Seed of the env resets and of the random actions."""
    out_dir: str = str(common.RESULTS)
    """Where world_speed.json and world_speed.md go."""
    frames_png: str = ""
    """If set, save a grid of frames (rows: levels, columns: seeds) to this path."""
    target_steps_per_s: float = 800.0
    """Speed the embedded default should reach on one core."""


def time_level(level: str, msaa: int, args: Args) -> dict[str, Any]:
    """Median/best steps per second of one level and setting, plus the mean reset time."""
    env = WorldEnv(level, obs_size=args.obs_size, msaa_samples=msaa)
    env.reset(seed=args.seed)
    env.step(0)  # warm-up: first draw compiles shaders in llvmpipe
    rates, cpu_rates, resets, reset_s = [], [], 0, 0.0
    for rep in range(args.repeats):
        actions = np.random.default_rng(args.seed + rep).integers(0, env.action_space.n, size=args.steps)
        start, cpu_start = time.perf_counter(), time.process_time()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(int(action))
            if terminated or truncated:
                t0 = time.perf_counter()
                env.reset()
                reset_s += time.perf_counter() - t0
                resets += 1
        rates.append(args.steps / (time.perf_counter() - start))
        cpu_rates.append(args.steps / (time.process_time() - cpu_start))  # as if the core were ours alone
    env.close()
    return {
        "level": level,
        "msaa_samples": msaa,
        "obs_size": args.obs_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "steps_per_s": [round(r, 1) for r in rates],
        "median_steps_per_s": round(statistics.median(rates), 1),
        "best_steps_per_s": round(max(rates), 1),
        "median_steps_per_cpu_s": round(statistics.median(cpu_rates), 1),
        "resets": resets,
        "mean_reset_ms": round(1000 * reset_s / max(resets, 1), 2),
    }


def save_frames(args: Args, path: str, seeds: int = 4, walk: int = 6) -> None:
    """Grid of observations: one row per level, one column per seed, after ``walk`` forward steps."""
    from PIL import Image

    rows = []
    for level in args.levels:
        env = WorldEnv(level, obs_size=args.obs_size)
        frames = []
        for seed in range(seeds):
            obs, _ = env.reset(seed=seed)
            for _ in range(walk):
                obs, *_ = env.step(2)
            frames.append(obs)
        env.close()
        rows.append(np.concatenate(frames, axis=1))
    grid = np.concatenate(rows, axis=0)
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.NEAREST).save(path)


def run(args: Args) -> dict[str, Any]:
    """Time every (level, MSAA) setting, pinned to ``args.cpu``; the machine is recorded before and after."""
    unknown = set(args.levels) - set(THEMES)
    if unknown:
        raise SystemExit(f"unknown levels {sorted(unknown)}; expected some of {sorted(THEMES)}")
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    machine = common.hardware(
        pinned_cores=sorted(os.sched_getaffinity(0)),
        gl_renderer=check_gl(),
        miniworld=metadata.version("miniworld"),
        pyglet=metadata.version("pyglet"),
        LP_NUM_THREADS=os.environ.get("LP_NUM_THREADS"),
    )
    results = []
    for level in args.levels:
        for msaa in args.msaa_samples:
            results.append(time_level(level, msaa, args))
            print(results[-1])
    machine["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return {"args": dataclasses.asdict(args), "machine": machine, "results": results}


def summarise(payload: dict[str, Any]) -> str:
    """world_speed.md: a table a reader can scan."""
    a, machine = payload["args"], payload["machine"]
    rows = [
        [
            r["level"],
            r["msaa_samples"],
            f"{r['median_steps_per_s']:.0f}",
            f"{r['best_steps_per_s']:.0f}",
            f"{r['median_steps_per_cpu_s']:.0f}",
            f"{r['mean_reset_ms']:.1f}",
            "yes" if r["median_steps_per_cpu_s"] >= a["target_steps_per_s"] else "no",
        ]
        for r in payload["results"]
    ]
    lines = [
        "# MiniWorld level speed (`benchmarks/world_speed.py`)",
        "",
        f"- date: {machine['date']}; commit {machine['commit']}",
        (
            f"- CPU: {machine['cpu']}, {machine['cpu_count']} cores on the machine, pinned to "
            f"{machine['pinned_cores']}"
        ),
        f"- load average (1/5/15 min) before / after: {machine['load_average']} / {machine['load_after']}",
        f"- OpenGL: {machine['gl_renderer']}; miniworld {machine['miniworld']}, pyglet {machine['pyglet']}",
        (
            f"- {a['steps']} random-action steps x {a['repeats']} repeats per row, resets included; "
            f"obs {a['obs_size']}x{a['obs_size']}; target {a['target_steps_per_s']:.0f} steps/s"
        ),
        "",
        (
            "Wall-clock steps/s depend on what else runs on the machine (see the load average); steps per "
            "CPU-second"
        ),
        "(process time, llvmpipe threads included) are what one otherwise idle core delivers.",
        "",
        common.markdown_table(
            [
                "level",
                "MSAA samples",
                "median steps/s",
                "best steps/s",
                "median steps/CPU-s",
                "mean reset ms",
                "steps/CPU-s >= target",
            ],
            rows,
        ),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    payload = run(args)
    _, md = common.write_results(Path(args.out_dir) / "world_speed", payload, summarise(payload))
    if args.frames_png:
        save_frames(args, args.frames_png)
    print(md)


if __name__ == "__main__":
    main()
