"""Throughput of :class:`vase_rl.envs.sampler.SpriteSampler` (images/s) per dataset and canvas size.

Target: >= 20,000 64x64 images/s on 2 CPU cores. Loading/pre-resizing the sprites is done once
before timing (it is cached per process), so the numbers are the steady-state sampling rate the
learner's training loop sees. Writes ``benchmarks/results/sampler_speed.{json,md}``.

    VASE_DATA_DIR=/path/to/data python benchmarks/sampler_speed.py [--seconds 1.5 --batch-sizes 64 256]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vase_rl.envs.sampler import DATASETS, SpriteSampler

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Args:
    seconds: float = 1.5
    """Timed sampling per (dataset, canvas, batch size) row."""
    batch_sizes: tuple[int, ...] = (64, 256)
    """Images per ``sample`` call (64 = the paper's training batch)."""
    canvas_sizes: tuple[int, ...] = (64, 32)
    """Canvas sides to measure."""
    datasets: tuple[str, ...] = field(default_factory=lambda: DATASETS)
    """Dataset names to measure (default: all)."""
    target: float = 20_000.0
    """Required images/s at canvas 64."""
    seed: int = 0
    """Sampler seed."""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for f in dataclasses.fields(Args):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if isinstance(default, tuple):
            parser.add_argument(f"--{f.name.replace('_', '-')}", nargs="+", default=default,
                                type=type(default[0]))
        else:
            parser.add_argument(f"--{f.name.replace('_', '-')}", default=default, type=type(default))
    ns = parser.parse_args()
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in vars(ns).items()}
    return Args(**values)


def hardware() -> dict[str, object]:
    """CPU model, usable cores and software versions, for the results header."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {"cpu": model, "cores": cores, "load_average_1_5_15min": load,
            "python": platform.python_version(), "numpy": np.__version__}


def measure(dataset: str, canvas: int, batch: int, args: Args) -> dict[str, object]:
    """Images/s of ``SpriteSampler(dataset, canvas).sample(batch)`` over ``args.seconds``.

    ``setup_s`` is the construction time (loading, verifying and pre-resizing sprites; 0 when the
    per-process cache already holds them).
    """
    t0 = time.perf_counter()
    sampler = SpriteSampler(dataset, canvas_size=canvas, seed=args.seed)
    setup_s = time.perf_counter() - t0
    sampler.sample(batch)  # warm-up
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < args.seconds:
        sampler.sample(batch)
        n += batch
    return {"dataset": dataset, "canvas": canvas, "sprite": sampler.renderer.sprite_size, "batch": batch,
            "images_per_s": round(n / elapsed), "setup_s": round(setup_s, 3)}


def main() -> None:
    args = parse_args()
    rows = []
    for canvas in args.canvas_sizes:
        for dataset in args.datasets:
            for batch in args.batch_sizes:
                rows.append(measure(dataset, canvas, batch, args))
                print(f"{dataset:>24s} canvas {canvas:2d} batch {batch:4d}: "
                      f"{rows[-1]['images_per_s']:>10,} images/s")
    at_64 = [int(str(r["images_per_s"])) for r in rows if r["canvas"] == 64]
    hw = hardware()
    result: dict[str, Any] = {
        "benchmark": "sampler_speed",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "hardware": hw,
        "args": dataclasses.asdict(args),
        "min_images_per_s_at_64": min(at_64) if at_64 else None,
        "meets_target": bool(at_64) and min(at_64) >= args.target,
        "results": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sampler_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# SpriteSampler throughput",
        "",
        (
            f"{result['date']}, {hw['cpu']}, {hw['cores']} cores (load average "
            f"{hw['load_average_1_5_15min']} at the end: a shared machine), "
            f"numpy {hw['numpy']}; {args.seconds:g} s per row, single process "
            f"(`python benchmarks/sampler_speed.py`). Target >= {args.target:,.0f} 64x64 images/s: "
            f"{'met' if result['meets_target'] else 'NOT met'}."
        ),
        "",
        "| dataset | canvas | sprite | batch | images/s | setup (s) |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {r['dataset']} | {r['canvas']} | {r['sprite']} | {r['batch']} | {r['images_per_s']:,} | "
          f"{r['setup_s']} |"
          for r in rows),
    ]
    (RESULTS / "sampler_speed.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'sampler_speed.json'} and .md; target met: {result['meets_target']}")


if __name__ == "__main__":
    main()
