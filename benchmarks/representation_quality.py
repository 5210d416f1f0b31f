"""Representation quality vs training budget: offline probes on frozen mu(x) next to trivial references.

For each dataset, variant and seed, a learner is trained on the dataset alone and probed after each
budget in ``--budgets`` (cumulative steps) with :mod:`vase_rl.probing.offline_probe` (linear + 2x256 MLP; class
accuracy, position R^2) on ``--train-size`` train-split / ``--test-size`` held-out test-split images.
The references are measured the same way, on the same images, in the same run: raw pixels and the
variant's encoder untrained (same seed). Variants:

- ``cpu``: the cpu preset as shipped (He init, sharp initial posterior, capacity C_max from step 1; VASE's
  S, D, A on -- with one dataset they leave one environment);
- ``cpu-before``: the cpu preset as it was before the learner-quality fix (PyTorch default init, posterior
  starting at the prior's width, C ramped from 0 to C_max over 1,500 steps);
- ``entangled``: the entangled beta=1 ELBO baseline with the cpu preset's model.

One JSON per (variant, dataset, seed) in ``benchmarks/results/representation_quality/``, skipped when
present (a table can grow over several sittings); ``--summarise`` writes the markdown table and the PNG.

    python benchmarks/representation_quality.py --seeds 0 1 2 --threads 1
    python benchmarks/representation_quality.py --summarise
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cli_args
import common
import numpy as np
import torch

from vase_rl.core.config import VASEConfig, get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.envs.sampler import SpriteSampler
from vase_rl.probing.offline_probe import OfflineProbeConfig, encode_codes, pixel_codes, probe_factors

OUT = common.RESULTS / "representation_quality"
VARIANTS = ("cpu", "cpu-before", "entangled")


@dataclass
class Args(cli_args.SeedsArgs, cli_args.ThreadsArgs):
    datasets: tuple[str, ...] = ("mnist", "moving-mnist", "moving-fashion")
    """Datasets, each trained alone."""
    variants: tuple[str, ...] = VARIANTS
    """Learner variants (see the module docstring)."""
    budgets: tuple[int, ...] = (250, 500, 1000, 2500)
    """Cumulative training steps after which the probes run."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Evaluation seeds (the investigation behind the fix used validation seed 100)."""
    train_size: int = 10_000
    """Train-split images the probes are fit on."""
    test_size: int = 5_000
    """Held-out test-split images the probes are scored on."""
    epochs: int = 40
    """MLP probe epochs."""


def variant_config(variant: str, seed: int) -> VASEConfig:
    """The learner config of a variant (see the module docstring)."""
    cpu = get_preset("cpu").with_overrides(seed=seed)
    if variant == "cpu":
        return cpu
    if variant == "cpu-before":
        return cpu.with_overrides(model={"init": "pytorch", "init_logvar": 0.0}, loss={"delta_c": 1.0 / 1500})
    if variant == "entangled":
        return VASEConfig.for_row("-", True, base=cpu)
    raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")


def _probe(encode: Any, data: tuple, dataset: str, pc: OfflineProbeConfig) -> dict[str, dict[str, float]]:
    (tr_x, tr_f), (te_x, te_f) = data
    codes = (
        (pixel_codes(tr_x), pixel_codes(te_x))
        if encode is None
        else (encode_codes(encode, tr_x), encode_codes(encode, te_x))
    )
    return probe_factors(codes[0], tr_f, codes[1], te_f, dataset, config=pc)


def run(variant: str, dataset: str, seed: int, args: Args) -> dict[str, Any]:
    """Train one variant on one dataset; probe after every budget; references at step 0."""
    torch.set_num_threads(args.threads)
    cfg = variant_config(variant, seed)
    size = cfg.model.image_size
    pc = OfflineProbeConfig(
        train_size=args.train_size, test_size=args.test_size, epochs=args.epochs, seed=seed
    )
    data = (
        SpriteSampler(dataset, size, split="train", seed=50_000 + seed).sample(pc.train_size),
        SpriteSampler(dataset, size, split="test", seed=60_000 + seed).sample(pc.test_size),
    )
    learner = ContinualLearner(cfg, device="cpu")
    record: dict[str, Any] = {
        "variant": variant,
        "dataset": dataset,
        "seed": seed,
        "config": cfg.to_dict(),
        "probe": {"train_size": pc.train_size, "test_size": pc.test_size, "epochs": pc.epochs},
        "untrained": _probe(learner.encode, data, dataset, pc),
        "pixels": _probe(None, data, dataset, pc),
        "curve": [],
    }
    sampler = SpriteSampler(dataset, size, seed=seed)
    cpu0, done, n_envs = time.process_time(), 0, 0
    for budget in sorted(args.budgets):
        for _ in range(budget - done):
            n_envs = learner.train_step(sampler.sample(cfg.batch_size)[0]).n_envs
        done = budget
        train_cpu = time.process_time() - cpu0
        record["curve"].append(
            {
                "steps": budget,
                "train_cpu_s": train_cpu,
                "n_envs": n_envs,
                "scores": _probe(learner.encode, data, dataset, pc),
            }
        )
        cpu0 += time.process_time() - cpu0 - train_cpu  # probe time is not training time
        print(variant, dataset, seed, budget, record["curve"][-1], flush=True)
    record["hardware"] = common.hardware()
    return record


def _path(variant: str, dataset: str, seed: int) -> Path:
    return OUT / f"{variant}_{dataset}_seed{seed}.json"


def _mean_std(values: list[float]) -> str:
    """``mean +- std`` over seeds (sample std); a single seed is shown alone (no spread to report)."""
    a = np.asarray(values, dtype=float)
    if len(a) == 0:
        return "-"
    return f"{a.mean():.3g}" if len(a) == 1 else f"{a.mean():.3g} +- {a.std(ddof=1):.2g}"


def summarise() -> str:
    """Markdown table (mean +- std over seeds, MLP and linear) and the quality-vs-budget PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [common.load_json(p) for p in sorted(OUT.glob("*_seed*.json"))]
    if not records:
        return "no results yet"
    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    rows, fig_rows = [], []
    for ds in datasets:
        recs = [r for r in records if r["dataset"] == ds]
        factors = list(recs[0]["pixels"])
        for factor in factors:
            for ref in ("pixels", "untrained"):
                for var in dict.fromkeys(r["variant"] for r in recs):
                    if ref == "pixels":  # the same images per seed whatever the variant: one value per seed
                        vals = list({r["seed"]: r[ref][factor] for r in recs}.values())
                    else:
                        vals = [r[ref][factor] for r in recs if r["variant"] == var]
                    rows.append(
                        [
                            ds,
                            factor,
                            f"{ref} ({var} model)" if ref == "untrained" else ref,
                            0,
                            "-",
                            _mean_std([v["linear"] for v in vals]),
                            _mean_std([v["mlp"] for v in vals]),
                            len(vals),
                        ]
                    )
                    if ref == "pixels":
                        break
            for var in dict.fromkeys(r["variant"] for r in recs):
                vr = [r for r in recs if r["variant"] == var]
                for i, point in enumerate(vr[0]["curve"]):
                    pts = [r["curve"][i] for r in vr if len(r["curve"]) > i]
                    rows.append(
                        [
                            ds,
                            factor,
                            var,
                            point["steps"],
                            f"{np.mean([p['train_cpu_s'] for p in pts]):.0f}",
                            _mean_std([p["scores"][factor]["linear"] for p in pts]),
                            _mean_std([p["scores"][factor]["mlp"] for p in pts]),
                            len(pts),
                        ]
                    )
            fig_rows.append((ds, factor, recs))
    fig, axes = plt.subplots(1, len(fig_rows), figsize=(4.2 * len(fig_rows), 3.6), squeeze=False)
    for ax, (ds, factor, recs) in zip(axes[0], fig_rows, strict=True):
        for var in dict.fromkeys(r["variant"] for r in recs):
            vr = [r for r in recs if r["variant"] == var]
            steps = [p["steps"] for p in vr[0]["curve"]]
            vals = np.array(
                [
                    [p["scores"][factor]["mlp"] for p in r["curve"]]
                    for r in vr
                    if len(r["curve"]) == len(steps)
                ]
            )
            ax.errorbar(steps, vals.mean(0), yerr=vals.std(0), marker="o", capsize=3, label=var)
            unt = [r["untrained"][factor]["mlp"] for r in vr]
            ax.axhline(np.mean(unt), ls=":", color=ax.lines[-1].get_color(), lw=1)
        ax.axhline(
            np.mean([r["pixels"][factor]["mlp"] for r in recs]), color="k", ls="--", lw=1, label="raw pixels"
        )
        ax.set(
            xscale="log",
            xlabel="training steps",
            title=f"{ds}: {factor} (MLP probe)",
            ylabel="accuracy (%)" if factor == "class" else "R^2",
        )
        ax.legend(fontsize=7)
    fig.suptitle(
        "Offline probe on frozen mu(x) vs budget (dotted: that variant's untrained encoder)", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(OUT / "quality_vs_budget.png", dpi=120)
    plt.close(fig)
    hw = records[0]["hardware"]
    seeds = sorted({r["seed"] for r in records})
    table = common.markdown_table(
        ["dataset", "factor", "representation", "steps", "train CPU s", "linear", "MLP", "seeds"], rows
    )
    pr = records[0]["probe"]
    text = (
        f"# Representation quality vs budget (offline probes, frozen mu(x))\n\n"
        f"Seeds {seeds}, {len(records)} runs. Each learner is trained on the dataset alone; probes fit on "
        f"{pr['train_size']} train-split images and scored on {pr['test_size']} held-out test-split images "
        f"(MLP: {pr['epochs']} epochs). Class: accuracy %; position: R^2. Mean +- std over seeds; "
        f"`train CPU s` = CPU seconds of training alone (probes excluded). Hardware: {hw.get('cpu')}, "
        f"{hw.get('torch_threads')} torch thread(s); commit {hw.get('commit')}.\n\n"
        f"![quality vs budget](quality_vs_budget.png)\n\n{table}\n\n"
        "Produced by `python benchmarks/representation_quality.py` then `--summarise`.\n"
    )
    common.write_text(OUT / "quality_vs_budget.md", text)
    return text


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    OUT.mkdir(parents=True, exist_ok=True)
    if not args.summarise:
        for seed in args.seeds:
            for dataset in args.datasets:
                for variant in args.variants:
                    path = _path(variant, dataset, seed)
                    if not path.exists():
                        common.write_json(path, run(variant, dataset, seed, args))
    print(summarise())


if __name__ == "__main__":
    main()
