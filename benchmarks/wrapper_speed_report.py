"""The markdown report of ``wrapper_speed.py``'s result (:func:`summarise`): env and wrapper throughput, the
encoding paths' efficiency against the conv peak, PPO's cost per env step and online learning's."""

from __future__ import annotations

from typing import Any

ENV_ID = "vase_rl/MovingShapes-v0"
"""The sprite look every timing of ``wrapper_speed.py`` steps."""


def summarise(result: dict[str, Any]) -> str:
    """The markdown tables of a :func:`run` result."""
    a, hw, e = result["args"], result["hardware"], result["encoder"]
    threads = sorted({1, a["threads"]})
    intro = (
        f"Produced by `python benchmarks/wrapper_speed.py` at commit {hw.get('commit')} on {hw.get('date')}. "
        f"{hw['cpu']}, {hw['cores']} cores, torch "
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
        "The four envs of a row are timed in turn within each repeat; wrapped / raw is per CPU-second.",
        "",
        (
            "| preset / canvas | sub-envs | raw env | per-env wrapper | VASEVecEnv | gym vector wrapper "
            "| vector / per-env | VASEVecEnv / raw | gym vector / raw |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def both(r: dict[str, float], fmt: str = ",.0f") -> str:
        return f"{r['wall']:{fmt}} / {r['cpu']:{fmt}}"

    for r in result["env_speed"]:
        cells = [both(r[k]) for k in ("raw", "per_env_wrapper", "vec_env_wrapper", "gym_vector_wrapper")]
        lines.append(
            f"| {r['preset']} / {r['canvas']} | {r['sub_envs']} | "
            + " | ".join(cells)
            + f" | {both(r['vector_over_per_env'], '.1f')} | {r.get('vec_over_raw_cpu', float('nan')):.0%} | "
            + f"{r.get('gym_over_raw_cpu', float('nan')):.0%} |"
        )
    lines += [
        "",
        (
            f"## Encoder throughput, paper preset (64x64), batch {a['encode_batch']}: "
            "img/s wall / per CPU-second"
        ),
        "",
        "| path | " + " | ".join(f"{t} thread(s)" for t in threads) + " |",
        "|---|" + "---|" * len(threads),
    ]
    for path in ("learner_encode", "wrapper_encode"):
        lines.append(f"| `{path}` | " + " | ".join(both(e[f"{path}_{t}t"]) for t in threads) + " |")
    lines += efficiency_lines(result)
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
    lines += ppo_lines(result)
    return "\n".join(lines) + "\n"


PATHS = {
    "encoder_inference_mode": "encoder alone, channels-last, inference_mode (the wrapper's, now)",
    "encoder_no_grad": "encoder alone, channels-last, no_grad (the inference copy before)",
    "encoder_nchw_no_grad": "encoder alone, NCHW, no_grad (`learner.encode`'s model before)",
    "learner_encode": "`learner.encode(uint8 frames)`",
    "wrapper_encode": "`vase.encode(uint8 frames)` (the wrapper's whole path)",
}


def efficiency_lines(result: dict[str, Any]) -> list[str]:
    """Markdown of the encoder-efficiency rows and the targets (empty for results without them)."""
    rows, pk = result.get("encoder_efficiency"), result.get("peak")
    if not rows or not pk:
        return []
    a, t = result["args"], result.get("targets_met", {})
    yes = {True: "met", False: "NOT met", None: "not measured"}
    batches = [r["batch"] for r in rows if r["preset"] == "cpu"]
    lines = [
        "",
        (f"## Encoder efficiency, {a['threads']} thread(s): images per CPU-second (% of the conv peak)"),
        "",
        (
            f"Practical peak measured in this run (`common.peak`, fp32, per CPU-second): 3x3 conv (oneDNN) "
            f"{pk['conv3x3_gflops_cpu']:.0f} GFLOP/s, matmul (MKL) {pk['matmul_gflops_cpu']:.0f} GFLOP/s. "
            "The paths of a cell's column are timed in turn within each repeat. FLOPs per image: "
            + ", ".join(
                f"{r['preset']} {r['mflop_per_image']:.1f} M" for r in rows if r["batch"] == batches[0]
            )
            + "."
        ),
        "",
        "| preset | path | " + " | ".join(f"batch {b}" for b in batches) + " |",
        "|---|---|" + "---:|" * len(batches),
    ]
    for preset in ("cpu", "paper"):
        by_batch = {r["batch"]: r for r in rows if r["preset"] == preset}
        for path, label in PATHS.items():
            cells = [
                f"{by_batch[b][path]['cpu']:,.0f} ({by_batch[b][path]['fraction_of_conv_peak']:.0%})"
                if b in by_batch
                else "-"
                for b in batches
            ]
            lines.append(f"| {preset} | {label} | " + " | ".join(cells) + " |")
    env8 = next((r for r in result["env_speed"] if (r["preset"], r["sub_envs"]) == ("cpu", 8)), None)
    lines += [
        "",
        "Targets:",
        "",
        (
            f"- cpu/32 encoder alone at batch 8 >= {a['cpu_target_fraction']:.0%} of the conv peak: "
            f"{yes[t.get('cpu_encoder_b8_fraction_of_conv_peak')]}"
        ),
        (
            f"- paper/64 encoder alone at batch 8 >= {a['paper_target_fraction']:.0%} of the conv peak: "
            f"{yes[t.get('paper_encoder_b8_fraction_of_conv_peak')]}"
        ),
    ]
    if env8 is not None:
        lines.append(
            f"- cpu/32, 8 sub-envs, VASEVecEnv >= {a['wrapped_target']:,.0f} frames/CPU-s: "
            f"{yes[t.get('cpu_wrapped_8_absolute')]} ({env8['vec_env_wrapper']['cpu']:,.0f}; raw "
            f"{env8['raw']['cpu']:,.0f} in this run); >= {a['wrapped_target'] / a['raw_reference']:.0%} of "
            f"the raw env's rate (the same target relative to the idle machine's raw "
            f"{a['raw_reference']:,.0f}): {yes[t.get('cpu_wrapped_8_fraction_of_raw')]} "
            f"({env8['vec_over_raw_cpu']:.0%})"
        )
    lines.append(f"- vector >= 3x per-env at 16 sub-envs: {yes[t.get('vector_over_per_env_16')]}")
    return lines


def ppo_lines(result: dict[str, Any]) -> list[str]:
    """Markdown of the PPO cost rows (empty for results without them)."""
    rows = result.get("ppo")
    if not rows:
        return []
    a = result["args"]
    lines = [
        "",
        (
            f"## The cost an agent pays: SB3 PPO on 64x64 frames, {a['ppo_envs']} sub-envs, n_steps "
            f"{a['ppo_n_steps']}, {a['ppo_epochs']} epochs, minibatch {a['ppo_batch_size']} "
            "(rollout + updates, the agents timed in turn)"
        ),
        "",
        "| agent | policy | env steps | CPU ms per env step | wall ms per env step | CPU / pixels |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['agent']} | {r['policy']} | {r['env_steps']} | {r['cpu_ms_per_step']:.2f} | "
            f"{r['wall_ms_per_step']:.2f} | {r['cpu_over_pixels']:.2f} |"
        )
    return lines
