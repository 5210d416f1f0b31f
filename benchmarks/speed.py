"""Speed and memory of one VASE training step on CPU: paper preset (64x64, widths 64,64,128,128, 24 latents)
and cpu preset (32x32, widths 32,32,64,64, 24 latents).

In one run, for each preset, at batch 64 and at 1 and 2 torch threads, three kinds of
``ContinualLearner.train_step``:

- ``plain``: ablation "-", a plain CCI-VAE step (encoder, decoder, capacity loss, Adam);
- ``vase``: the full VASE step (ablation SDA) with the paper's dream batch (64) and a full eq. 6 scan
  every ``scan_every=10`` steps;
- ``vase-cheap``: the cheapest VASE settings offered, ``dream.batch_size=16`` and ``scan_every=0``.

The VASE steps are timed in the steady state of a run in its second environment: two environments
allocated, past the grace period, the classifier proposing the current environment (eq. 6 tests one
candidate per step, plus every other environment on scan steps) and dreaming of environment 0 (see
:func:`steady_state`). Every timing starts from the same saved learner state, so each of the
``steps`` timed steps does the same work in every repeat; rates use the best of ``repeats``, and
time ratios the median over repeats of the ratio of back-to-back timings.

Reported per kind: steps/s (wall clock and per CPU-second of this process), the FLOPs of a step
(``torch.utils.flop_counter.FlopCounterMode`` around the same steps, forward + backward; it counts
convolutions and matrix products, not element-wise ops), the VASE/plain time ratio against the FLOP
ratio, and the achieved GFLOP/s against a practical peak measured in the same run: a large fp32
``torch.mm`` (MKL) and, because MKL runs AVX2 code on AMD CPUs while oneDNN runs AVX-512, a large 3x3
convolution (oneDNN). Both parameter layouts are measured, set explicitly on the model and the snapshot
before the first step: channels-last (``vase_rl.core.model.channels_last_``, the library's layout since this
measurement made it so) and contiguous NCHW (the layout before); the layout speed-up is the median over
repeats of the paired (back-to-back) CPU-time ratios. Peak RSS is measured in a fresh subprocess that
trains the paper preset in that steady
state for ``rss_steps`` steps. ``--explore`` adds the measurements of what did not pay (torch.compile,
GEMM forms of the single-channel layers, batch size per image) and 2 threads under the default OpenMP
wait policy (the run itself uses ``OMP_WAIT_POLICY=PASSIVE``, see ``Args.omp_wait_policy``).

The reference machine is shared (load average recorded before and after): wall-clock rates understate
what dedicated cores deliver; rates per CPU-second are what the process got while it ran, and the
ratios use them. Writes ``benchmarks/results/speed.{json,md}`` (``--out``).

    python benchmarks/speed.py [--presets paper cpu --threads 1 2 --steps 10 --repeats 2 --no-explore]
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cli_args
import common
import torch
import torch.nn.functional as F
from speed_report import KINDS, summarise
from torch.utils.flop_counter import FlopCounterMode

from vase_rl.core.config import Ablation, VASEConfig, get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.envs.sampler import SpriteSampler

RESULTS = common.RESULTS
LAYOUTS = ("contiguous", "channels_last")
PRESETS = ("paper", "cpu")


@dataclass
class Args:
    presets: tuple[str, ...] = PRESETS
    """Presets to time; the targets are judged on the first (the paper preset by default)."""
    threads: tuple[int, ...] = (1, 2)
    """torch thread counts to time (the reference machine has 2 cores)."""
    steps: int = 10
    """Timed train steps per timing; a multiple of scan_every (10) so each window holds one full scan."""
    repeats: int = 3
    """Timings per cell: rates use the best (wall and CPU separately); VASE/plain time ratios are paired
    within a repeat (back-to-back timings) and the median over repeats is reported."""
    warmup: int = 2
    """Untimed steps after reaching the steady state (oneDNN primitive cache, allocator)."""
    cheap_dream_batch: int = 16
    """Dream batch of the ``vase-cheap`` step."""
    layouts: tuple[str, ...] = LAYOUTS
    """Parameter layouts to time."""
    rss_steps: int = 50
    """Train steps of the peak-RSS subprocess."""
    rss_limit_gib: float = 2.0
    """Target: peak RSS of paper-preset training."""
    ratio_tolerance: float = 0.15
    """Target: VASE/plain time ratio within this fraction of the FLOP ratio."""
    efficiency_target: float = 0.35
    """Target: achieved GFLOP/s >= this fraction of the matmul peak, at the most threads."""
    peak_size: int = 2048
    """Side of the square fp32 matmul that measures the practical peak."""
    omp_wait_policy: str = "PASSIVE"
    """OMP_WAIT_POLICY for the run ("" = the OpenMP default). libgomp reads it when torch loads, so the
    script re-executes itself with it set. PASSIVE: waiting threads sleep instead of spinning, which on a
    loaded machine halves the CPU time of a 2-thread step (see ``--explore``); no effect at 1 thread."""
    explore: bool = True
    """Also measure the alternatives that did not pay, and 2 threads under the default wait policy."""
    seed: int = 0
    """Seed of the learners and the image pool."""
    out: str = str(RESULTS / "speed")
    """Output stem: writes OUT.json and OUT.md."""
    child: str = ""
    """Internal: "rss" or "threads" in the fresh child processes this script starts."""


# ---------------------------------------------------------------------------------------- setup
def step_config(kind: str, args: Args, preset: str = "paper") -> VASEConfig:
    """``preset`` configured for one kind of step (see the module docstring)."""
    cfg = get_preset(preset).with_overrides(seed=args.seed)
    if preset == "cpu":  # near its lambda0/lambda1 an untrained cpu model's mask flips from batch to batch,
        cfg = cfg.with_overrides(inference={"train_on_pending": True})  # so eq. 6 fails on it: train anyway
    if kind == "plain":
        return cfg.with_overrides(ablation=Ablation.parse("-"))
    if kind == "vase-cheap":
        return cfg.with_overrides(dream={"batch_size": args.cheap_dream_batch}, inference={"scan_every": 0})
    if kind != "vase":
        raise ValueError(f"unknown step kind {kind!r}; choose one of {KINDS}")
    return cfg


def image_pool(n_batches: int, batch: int, seed: int, side: int = 64) -> list[torch.Tensor]:
    """``n_batches`` batches (batch, 1, side, side) float in [0, 1] of moving shapes, sampled up front."""
    images, _ = SpriteSampler("moving-shapes", canvas_size=side, seed=seed).sample(n_batches * batch)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0).contiguous()
    return list(x.split(batch))


def steady_state(learner: ContinualLearner, x: torch.Tensor) -> None:
    """Train one step (allocates environment 0), then put a VASE learner where a long run would be.

    Environment 1 is allocated and current, 1,001 steps into it (past ``grace_steps``, off the
    ``used_every`` schedule); L~_0 is set low so that a scan rejects environment 0 (no switch), L~_1 is
    left at inf (the first update sets it); the classifier's bias favours environment 1, as a trained
    classifier would on data of environment 1. Dreams are then drawn from environment 0. A plain
    (ablation "-") learner only takes the first step.
    """
    learner.train_step(x)
    if not learner.config.ablation.infer_env:
        return
    mc = learner.config.model
    mem = learner.memory
    mem.allocate(torch.ones(mc.latent_dim, dtype=torch.bool), float("inf"), torch.zeros(mc.latent_dim))
    mem.recon_avg[0] = 1.0
    mem.steps[1] = 1001
    learner.inference.current_env = 1
    learner.inference.last_allocation = -(10**9)
    with torch.no_grad():
        learner.model.classifier.linear.bias[1] += 10.0


def apply_layout(learner: ContinualLearner, layout: str) -> None:
    """Lay out the parameters of the model and the snapshot as ``layout`` (before any step: no optimizer
    state yet). Explicit both ways, so the rows stay what they say whatever the learner's own default."""
    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    if layout not in formats:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    learner.model.to(memory_format=formats[layout])
    learner.snapshot.model.to(memory_format=formats[layout])


def build(
    kind: str, layout: str, args: Args, pool: list[torch.Tensor], preset: str = "paper"
) -> tuple[ContinualLearner, dict]:
    """A warmed learner in the steady state and a copy of its state to restore before each timing."""
    learner = ContinualLearner(step_config(kind, args, preset), device="cpu")
    apply_layout(learner, layout)
    steady_state(learner, pool[0])
    for i in range(args.warmup):
        learner.train_step(pool[i % len(pool)])
    return learner, copy.deepcopy(learner.state_dict())


def restore(learner: ContinualLearner, state: dict) -> None:
    learner.load_state_dict(copy.deepcopy(state))  # deep: Adam would otherwise update the saved tensors


def run_steps(learner: ContinualLearner, pool: list[torch.Tensor], n: int) -> collections.Counter:
    """``n`` train steps; returns how many ended with each eq. 6 outcome (and how many dreamed)."""
    outcomes: collections.Counter = collections.Counter()
    for i in range(n):
        out = learner.train_step(pool[i % len(pool)])
        outcomes[out.reason_label] += 1
        outcomes["dreamed"] += "dream/loss" in out.dream
    return outcomes


# ---------------------------------------------------------------------------------------- measurements
def count_flops(learner: ContinualLearner, state: dict, pool: list[torch.Tensor], n: int) -> dict[str, Any]:
    """FLOPs per step (mean, min, max over the ``n`` timed steps) and the mean per aten op."""
    restore(learner, state)
    per_step, by_op = [], collections.Counter()
    for i in range(n):
        with FlopCounterMode(display=False) as counter:
            learner.train_step(pool[i % len(pool)])
        per_step.append(counter.get_total_flops())
        by_op.update({str(k): v for k, v in counter.get_flop_counts()["Global"].items()})
    return {
        "mean": sum(per_step) / n,
        "min": min(per_step),
        "max": max(per_step),
        "by_op": {k: v / n for k, v in sorted(by_op.items())},
    }


def used_latent_cost(args: Args, pool: list[torch.Tensor]) -> dict[str, float]:
    """Cost of one used-latent search (A.2, every ``used_every`` steps), 1 thread, and its share per step."""
    torch.set_num_threads(1)
    learner, _ = build("vase", "contiguous", args, pool)
    x = learner.preprocess(pool[0])
    with torch.no_grad():
        mu = learner.model.encoder(x)[0]
    with FlopCounterMode(display=False) as counter:
        learner.update_used(x, mu, learner.current_env)
    wall, cpu, _ = common.timed(lambda: learner.update_used(x, mu, learner.current_env))
    every = learner.config.mask.used_every
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "gflop": counter.get_total_flops() / 1e9,
        "every_steps": every,
        "gflop_per_step": counter.get_total_flops() / 1e9 / every,
    }


def peak_rss_mib() -> float:
    """High-water RSS of this process (VmHWM). Not ru_maxrss: after fork + exec, Linux carries the
    parent's maximum into the child's ru_maxrss, so a child of a large parent would report the parent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: KiB on most systems


def rss_child(args: Args) -> None:
    """In a fresh process: train the paper preset (full VASE, dreaming) for rss_steps; print peak RSS."""
    torch.set_num_threads(max(args.threads))
    pool = image_pool(4, 64, args.seed)
    before = peak_rss_mib()
    learner = ContinualLearner(step_config("vase", args), device="cpu")
    steady_state(learner, pool[0])
    outcomes = run_steps(learner, pool, args.rss_steps - 1)
    x = learner.preprocess(pool[0])
    learner.update_used(x, learner.encode(x), learner.current_env)  # the used-latent search too
    print(
        json.dumps(
            {
                "peak_rss_mib": peak_rss_mib(),
                "rss_before_learner_mib": before,
                "steps": args.rss_steps,
                "threads": max(args.threads),
                "outcomes": dict(outcomes),
            }
        )
    )


def run_child(kind: str, args: Args, wait_policy: str) -> dict[str, Any]:
    """Run this script as a fresh ``--child kind`` process under ``wait_policy``; return its JSON line."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--rss-steps",
        str(args.rss_steps),
        "--steps",
        str(args.steps),
        "--threads",
        *map(str, args.threads),
        "--seed",
        str(args.seed),
        "--omp-wait-policy",
        wait_policy,
    ]
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def threads_child(args: Args) -> None:
    """In a fresh process (under the wait policy it was started with): plain channels-last step, CPU and
    wall ms per step at each thread count; prints one JSON line."""
    pool = image_pool(4, 64, args.seed)
    torch.set_num_threads(1)
    learner, state = build("plain", "channels_last", args, pool)
    out: dict[str, Any] = {"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    for threads in args.threads:
        torch.set_num_threads(threads)
        restore(learner, state)
        wall, cpu, _ = common.timed(lambda: run_steps(learner, pool, args.steps))
        out[str(threads)] = {
            "ms_per_step_wall": wall / args.steps * 1e3,
            "ms_per_step_cpu": cpu / args.steps * 1e3,
        }
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------- exploration
def single_channel_gemm(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The decoder's last layer (ConvTranspose2d C->1, k4 s2 p1) as a matmul + col2im (same result)."""
    n, c, side, _ = h.shape
    cols = torch.matmul(h.permute(0, 2, 3, 1).reshape(n, side * side, c), w.reshape(c, -1))
    return F.fold(cols.transpose(1, 2), (2 * side, 2 * side), 4, padding=1, stride=2) + b.view(1, -1, 1, 1)


def best_cpu_ms(fn: Callable[[], Any], n: int = 5, repeats: int = 3) -> float:
    fn()
    return min(common.timed(lambda: [fn() for _ in range(n)])[1] for _ in range(repeats)) / n * 1e3


def explore(args: Args, pool: list[torch.Tensor]) -> dict[str, Any]:
    """CPU ms of the alternatives that were tried and did not pay (or paid too little), 1 thread."""
    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    # torch.compile (inductor) of encoder and decoder, plain step, channels-last
    for compiled in (False, True):
        learner, state = build("plain", "channels_last", args, pool)
        if compiled:
            learner.model.encoder.compile()  # in place: state_dict keys unchanged
            learner.model.decoder.compile()
            compile_wall, _, _ = common.timed(lambda learner=learner: run_steps(learner, pool, 2))
            out["compile_wall_s"] = compile_wall
        restore(learner, state)
        cpu = min(
            common.timed(lambda learner=learner: run_steps(learner, pool, args.steps))[1]
            for _ in range(args.repeats)
        )
        out["plain_step_cpu_ms_" + ("compiled" if compiled else "eager")] = cpu / args.steps * 1e3
    # thread wait policy: the plain step at 1 and 2 threads under the OpenMP default and under PASSIVE
    out["wait_policy"] = {name or "default": run_child("threads", args, name) for name in ("", "PASSIVE")}
    # the single-channel decoder layer (64 -> 1 channel, 32x32 -> 64x64) as oneDNN deconv vs GEMM + fold
    layer = torch.nn.ConvTranspose2d(64, 1, 4, 2, 1).to(memory_format=torch.channels_last)
    h = torch.randn(64, 64, 32, 32).contiguous(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn(64, 1, 64, 64)
    for name, fn in (
        ("onednn", lambda: layer(h)),
        ("gemm", lambda: single_channel_gemm(h, layer.weight, layer.bias)),
    ):
        with torch.no_grad():
            out[f"last_layer_fwd_ms_{name}"] = best_cpu_ms(fn)
        out[f"last_layer_fwd_bwd_ms_{name}"] = best_cpu_ms(lambda fn=fn: fn().backward(grad))
    with torch.no_grad():
        diff = layer(h) - single_channel_gemm(h, layer.weight, layer.bias)
        out["last_layer_max_abs_diff"] = float(diff.abs().max())
    # batch size per image: one batch of 128 (e.g. current + dream batch concatenated) vs 64 vs 16
    conv = torch.nn.Conv2d(64, 64, 4, 2, 1).to(memory_format=torch.channels_last)
    for batch in (16, 64, 128):
        x = torch.randn(batch, 64, 32, 32).contiguous(memory_format=torch.channels_last).requires_grad_()
        ms = best_cpu_ms(lambda x=x: conv(x).sum().backward())
        out[f"conv2_fwd_bwd_ms_per_image_b{batch}"] = ms / batch
    return out


# ---------------------------------------------------------------------------------------- main
def run(args: Args) -> dict[str, Any]:
    """Every measurement of the module docstring; returns the result record (see :func:`summarise`)."""
    started = time.perf_counter()
    load_before = os.getloadavg()
    rss = run_child("rss", args, args.omp_wait_policy)
    print(f"peak RSS of {args.rss_steps} paper-preset VASE steps: {rss['peak_rss_mib']:.0f} MiB", flush=True)
    pools = {p: image_pool(8, 64, args.seed, get_preset(p).model.image_size) for p in args.presets}
    torch.set_num_threads(1)
    learners = {
        (p, k, lay): build(k, lay, args, pools[p], p)
        for p in args.presets
        for lay in args.layouts
        for k in KINDS
    }
    print(f"built {len(learners)} learners in {time.perf_counter() - started:.0f} s", flush=True)

    # timings, interleaved so that load changes hit every cell alike
    times: dict[tuple[int, str, str, str], list[tuple[float, float]]] = collections.defaultdict(list)
    outcomes: dict[str, dict[str, int]] = {}
    for rep in range(args.repeats):
        for threads in args.threads:
            torch.set_num_threads(threads)
            for (preset, kind, layout), (learner, state) in learners.items():
                restore(learner, state)
                pool = pools[preset]
                wall, cpu, seen = common.timed(lambda lr=learner, pool=pool: run_steps(lr, pool, args.steps))
                times[(threads, preset, layout, kind)].append((wall, cpu))
                outcomes[f"{preset}/{kind}/{layout}"] = dict(seen)
                print(
                    f"repeat {rep} threads {threads} {preset:>5s} {layout:>13s} {kind:>10s}: "
                    f"{wall / args.steps * 1e3:7.0f} ms wall {cpu / args.steps * 1e3:6.0f} ms CPU per step",
                    flush=True,
                )

    torch.set_num_threads(1)
    flops = {
        (p, kind): count_flops(*learners[(p, kind, args.layouts[0])], pools[p], args.steps)
        for p in args.presets
        for kind in KINDS
    }
    pool = pools.get("paper") or image_pool(8, 64, args.seed)  # the used-latent search and explore: paper
    peaks = {t: common.peak(t, args.peak_size) for t in args.threads}
    used = used_latent_cost(args, pool)
    explored = explore(args, pool) if args.explore else {}
    del learners
    load_after = os.getloadavg()

    rows = []
    for (threads, preset, layout, kind), cell in times.items():
        wall_step, cpu_step = min(w for w, _ in cell) / args.steps, min(c for _, c in cell) / args.steps
        plain = times[(threads, preset, layout, "plain")]
        # ratios paired within a repeat (the two timings ran back to back), median over repeats
        ratio_cpu = statistics.median(c / pc for (_, c), (_, pc) in zip(cell, plain, strict=True))
        ratio_wall = statistics.median(w / pw for (w, _), (pw, _) in zip(cell, plain, strict=True))
        f = flops[(preset, kind)]["mean"]
        flop_ratio = f / flops[(preset, "plain")]["mean"]
        pk = peaks[threads]
        other = next(c for c in LAYOUTS if c != layout)
        paired = times.get((threads, preset, other, kind))
        # layout speed-up: CPU time of the other layout / this one, paired within a repeat, median
        speedup = (
            statistics.median(oc / c for (_, c), (_, oc) in zip(cell, paired, strict=True))
            if paired
            else None
        )
        rows.append(
            {
                "preset": preset,
                "threads": threads,
                "layout": layout,
                "kind": kind,
                "ms_per_step_wall": wall_step * 1e3,
                "ms_per_step_cpu": cpu_step * 1e3,
                "steps_per_s_wall": 1 / wall_step,
                "steps_per_cpu_s": 1 / cpu_step,
                "gflop_per_step": f / 1e9,
                "gflops_wall": f / wall_step / 1e9,
                "gflops_cpu": f / cpu_step / 1e9,
                "fraction_of_matmul_peak_cpu": f / cpu_step / 1e9 / pk["matmul_gflops_cpu"],
                "fraction_of_matmul_peak_wall": f / wall_step / 1e9 / pk["matmul_gflops_wall"],
                "fraction_of_conv_peak_cpu": f / cpu_step / 1e9 / pk["conv3x3_gflops_cpu"],
                "time_ratio_cpu": ratio_cpu,
                "time_ratio_wall": ratio_wall,
                "flop_ratio": flop_ratio,
                "ratio_deviation_cpu": ratio_cpu / flop_ratio - 1,
                "speedup_over_other_layout_cpu": speedup,
                "timings_wall_cpu_s": cell,
            }
        )
    most = max(args.threads)
    default = [r for r in rows if r["layout"] == args.layouts[0] and r["preset"] == args.presets[0]]
    targets = {
        "ratio_within_tolerance_cpu": all(
            abs(r["ratio_deviation_cpu"]) <= args.ratio_tolerance for r in default
        ),
        "ratio_no_overhead_cpu": all(r["ratio_deviation_cpu"] <= args.ratio_tolerance for r in default),
        "efficiency_at_most_threads_cpu": all(
            r["fraction_of_matmul_peak_cpu"] >= args.efficiency_target
            for r in default
            if r["threads"] == most
        ),
        "peak_rss": rss["peak_rss_mib"] <= args.rss_limit_gib * 1024,
    }
    hw = common.hardware()
    return {
        "benchmark": "speed",
        "date": hw["date"],
        "hardware": hw,
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after],
        "args": dataclasses.asdict(args),
        "targets_met": targets,
        "rows": rows,
        "flops": {f"{p}/{k}": v for (p, k), v in flops.items()},
        "peaks": {str(t): p for t, p in peaks.items()},
        "outcomes_last_repeat": outcomes,
        "used_latent_search": used,
        "peak_rss": rss,
        "explore": explored,
        "runtime_s": time.perf_counter() - started,
    }


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    if os.environ.get("OMP_WAIT_POLICY", "") != args.omp_wait_policy:  # read when torch loaded: re-exec
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if args.omp_wait_policy:
            env["OMP_WAIT_POLICY"] = args.omp_wait_policy
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)
    if args.child == "rss":
        rss_child(args)
    elif args.child == "threads":
        threads_child(args)
    elif args.child:
        raise SystemExit(f"unknown --child {args.child!r}; expected 'rss' or 'threads'")
    else:
        common.write_report(args.out, run(args), summarise)


if __name__ == "__main__":
    main()
