"""Throughput of :class:`vase_rl.envs.sampler.SpriteSampler` (images/s) per dataset and canvas size.

Target: >= 20,000 64x64 images/s on 2 CPU cores. Loading/pre-resizing the sprites is done once
before timing (it is cached per process), so the numbers are the steady-state sampling rate the
learner's training loop sees. Writes ``benchmarks/results/sampler_speed.{json,md}``.

    VASE_DATA_DIR=/path/to/data python benchmarks/sampler_speed.py [--seconds 1.5 --batch-sizes 64 256]
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import cli_args
import common

from vase_rl.envs.sampler import DATASETS, SpriteSampler


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
    return {
        "dataset": dataset,
        "canvas": canvas,
        "sprite": sampler.renderer.sprite_size,
        "batch": batch,
        "images_per_s": round(n / elapsed),
        "setup_s": round(setup_s, 3),
    }


def run(args: Args) -> dict[str, Any]:
    """Every (canvas, dataset, batch) row, and whether the slowest 64x64 row meets the target."""
    rows = []
    for canvas in args.canvas_sizes:
        for dataset in args.datasets:
            for batch in args.batch_sizes:
                rows.append(measure(dataset, canvas, batch, args))
                print(
                    f"{dataset:>24s} canvas {canvas:2d} batch {batch:4d}: "
                    f"{rows[-1]['images_per_s']:>10,} images/s"
                )
    at_64 = [int(str(r["images_per_s"])) for r in rows if r["canvas"] == 64]
    return {
        "benchmark": "sampler_speed",
        "hardware": common.hardware(),
        "args": dataclasses.asdict(args),
        "min_images_per_s_at_64": min(at_64) if at_64 else None,
        "meets_target": bool(at_64) and min(at_64) >= args.target,
        "results": rows,
    }


def summarise(result: dict[str, Any]) -> str:
    """The markdown table of a :func:`run` result."""
    hw, a = result["hardware"], result["args"]
    rows = [
        [r["dataset"], r["canvas"], r["sprite"], r["batch"], f"{r['images_per_s']:,}", r["setup_s"]]
        for r in result["results"]
    ]
    return (
        "\n".join(
            [
                "# SpriteSampler throughput",
                "",
                (
                    f"{hw['date']}, {hw['cpu']}, {hw['cores']} cores (load average "
                    f"{hw['load_average']} at the end: a shared machine), "
                    f"numpy {hw['numpy']}; {a['seconds']:g} s per row, single process "
                    f"(`python benchmarks/sampler_speed.py`). Target >= {a['target']:,.0f} 64x64 images/s: "
                    f"{'met' if result['meets_target'] else 'NOT met'}."
                ),
                "",
                common.markdown_table(
                    ["dataset", "canvas", "sprite", "batch", "images/s", "setup (s)"], rows, align="lrrrrr"
                ),
            ]
        )
        + "\n"
    )


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    result = run(args)
    paths = common.write_results(common.RESULTS / "sampler_speed", result, summarise(result))
    print(f"wrote {paths[0]} and .md; target met: {result['meets_target']}")


if __name__ == "__main__":
    main()
