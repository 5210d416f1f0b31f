"""The markdown report of ``speed.py``'s result (:func:`summarise`): the step table per preset, thread count
and layout, the practical peaks, FLOPs, the used-latent search, peak RSS and what ``--explore`` tried."""

from __future__ import annotations

import statistics
from typing import Any

KINDS = ("plain", "vase", "vase-cheap")
"""The training-step kinds ``speed.py`` times, in the report's order (its docstring defines them)."""


def cores(rows: list[dict[str, Any]], threads: int) -> float:
    """Mean CPU time / wall time of the rows at ``threads``: the cores this process actually got."""
    return statistics.mean(
        x["ms_per_step_cpu"] / x["ms_per_step_wall"] for x in rows if x["threads"] == threads
    )


def summarise(r: dict[str, Any]) -> str:
    """The markdown report of a :func:`run` result."""
    a, hw = r["args"], r["hardware"]
    yes = {True: "met", False: "NOT met"}
    t = r["targets_met"]
    lines = [
        "# Training-step speed and memory (`benchmarks/speed.py`)",
        "",
        (
            f"- date: {r['date']}; {hw['cpu']} (family {hw['cpu_family']} model {hw['cpu_model']}), "
            f"{hw['cores']} cores; "
            f"torch {hw['torch']}, Python {hw['python']}"
        ),
        (
            f"- load average (1/5/15 min) before / after: {r['load_average_before']} / "
            f"{r['load_average_after']} "
            "(shared machine: wall-clock rates understate dedicated cores; ratios use CPU time)"
        ),
        (
            f"- presets {', '.join(a.get('presets', ['paper']))} (paper 64x64, cpu 32x32), batch 64; "
            f"{a['repeats']} timings of {a['steps']} steps from the "
            "same state per cell (ms and rates: best; time ratios: median of back-to-back pairs); "
            f"`vase-cheap` = dream batch {a['cheap_dream_batch']}, scan_every=0; "
            f"OMP_WAIT_POLICY={a['omp_wait_policy'] or '(default)'}; runtime {r['runtime_s']:.0f} s"
        ),
        (
            f"- targets (first preset, {a['layouts'][0]} layout): time ratio within "
            f"{a['ratio_tolerance']:.0%} of FLOP ratio (CPU time): "
            f"{yes[t['ratio_within_tolerance_cpu']]} (no overhead above it: {yes[t['ratio_no_overhead_cpu']]}); "
            f">= {a['efficiency_target']:.0%} of matmul peak at {max(a['threads'])} threads: "
            f"{yes[t['efficiency_at_most_threads_cpu']]}; peak RSS <= {a['rss_limit_gib']} GiB: "
            f"{yes[t['peak_rss']]}"
        ),
        (
            "- cores the process got (CPU time / wall time, mean over rows): "
            + ", ".join(f"{th} thread(s) {cores(r['rows'], th):.2f}" for th in a["threads"])
            + " (2 dedicated cores would give up to 2 at 2 threads)"
        ),
        (
            "- layout speed-up = CPU time of the other layout / this one, paired back to back, median over "
            "repeats; channels-last is the library's layout (`vase_rl.core.model.channels_last_`), contiguous the "
            "layout before it"
        ),
        "",
        (
            "| preset | threads | layout | step | ms/step wall | ms/step CPU | steps/s wall | steps/CPU-s | "
            "GFLOP/step | GFLOP/s wall | GFLOP/CPU-s | % matmul peak (CPU) | % conv peak (CPU) | "
            "time ratio (CPU) | FLOP ratio | deviation | layout speed-up (CPU) |"
        ),
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    order = a.get("presets", ["paper"])
    for row in sorted(
        r["rows"],
        key=lambda x: (
            order.index(x.get("preset", "paper")),
            x["threads"],
            x["layout"],
            KINDS.index(x["kind"]),
        ),
    ):
        up = row.get("speedup_over_other_layout_cpu")
        lines.append(
            f"| {row.get('preset', 'paper')} | {row['threads']} | {row['layout']} | {row['kind']} | "
            f"{row['ms_per_step_wall']:.0f} | "
            f"{row['ms_per_step_cpu']:.0f} | {row['steps_per_s_wall']:.2f} | {row['steps_per_cpu_s']:.2f} | "
            f"{row['gflop_per_step']:.1f} | {row['gflops_wall']:.0f} | {row['gflops_cpu']:.0f} | "
            f"{row['fraction_of_matmul_peak_cpu']:.0%} | {row['fraction_of_conv_peak_cpu']:.0%} | "
            f"{row['time_ratio_cpu']:.2f} | {row['flop_ratio']:.2f} | {row['ratio_deviation_cpu']:+.0%} | "
            + ("-" if up is None else f"{up:.2f}x")
            + " |"
        )
    lines += [
        "",
        "Practical peak, fp32, best of 3 (GFLOP/s wall / per CPU-second):",
        "",
        "| threads | matmul (MKL) | 3x3 conv (oneDNN) |",
        "|---:|---:|---:|",
    ]
    for th, p in r["peaks"].items():
        lines.append(
            f"| {th} | {p['matmul_gflops_wall']:.0f} / {p['matmul_gflops_cpu']:.0f} | "
            f"{p['conv3x3_gflops_wall']:.0f} / {p['conv3x3_gflops_cpu']:.0f} |"
        )
    u, s = r["used_latent_search"], r["peak_rss"]
    fl = r["flops"]
    lines += [
        "",
        "FLOPs per step (mean / min / max over the timed steps; the max of `vase` is its scan step): "
        + "; ".join(
            f"{k} {v['mean'] / 1e9:.2f} / {v['min'] / 1e9:.2f} / {v['max'] / 1e9:.2f} G"
            for k, v in fl.items()
        )
        + ".",
        f"Eq. 6 outcomes and dreaming in the last timed window: {r['outcomes_last_repeat']}.",
        "",
        (
            f"Used-latent search (A.2, every {u['every_steps']} steps, 1 thread, not in the timed steps): "
            f"{u['wall_s']:.2f} s wall / {u['cpu_s']:.2f} s CPU, {u['gflop']:.1f} GFLOP = "
            f"{u['gflop_per_step']:.2f} GFLOP per step amortised."
        ),
        "",
        (
            f"Peak RSS (fresh process, full VASE with dreaming, {s['steps']} steps + one used-latent search, "
            f"{s['threads']} threads): {s['peak_rss_mib']:.0f} MiB ({s['rss_before_learner_mib']:.0f} MiB after "
            "imports and data, before the learner)."
        ),
    ]
    e = r.get("explore") or {}
    if e:
        lines += [
            "",
            "## Tried (1 thread, CPU ms)",
            "",
            (
                f"- torch.compile (inductor) of encoder + decoder, plain step, channels-last: "
                f"{e['plain_step_cpu_ms_compiled']:.0f} ms vs eager {e['plain_step_cpu_ms_eager']:.0f} ms "
                f"(compile + 2 steps {e['compile_wall_s']:.0f} s wall)."
            ),
            (
                f"- decoder's single-channel last layer as GEMM + col2im instead of oneDNN deconv: forward "
                f"{e['last_layer_fwd_ms_gemm']:.1f} vs {e['last_layer_fwd_ms_onednn']:.1f} ms, forward+backward "
                f"{e['last_layer_fwd_bwd_ms_gemm']:.1f} vs {e['last_layer_fwd_bwd_ms_onednn']:.1f} ms "
                f"(max abs diff {e['last_layer_max_abs_diff']:.1e})."
            ),
            "- OpenMP wait policy, plain channels-last step (fresh process each, ms per step wall / CPU): "
            + "; ".join(
                f"{name}: "
                + ", ".join(
                    f"{th} thread(s) {v['ms_per_step_wall']:.0f} / {v['ms_per_step_cpu']:.0f}"
                    for th, v in pol.items()
                    if th != "omp_wait_policy"
                )
                for name, pol in e["wait_policy"].items()
            )
            + ".",
            "- batch size, conv 64->64 at 32x32 forward+backward, ms per image: "
            + ", ".join(f"batch {b} {e[f'conv2_fwd_bwd_ms_per_image_b{b}']:.2f}" for b in (16, 64, 128))
            + " (concatenating the current and dream batches would not pay).",
        ]
    return "\n".join(lines) + "\n"
