"""Why does the imagination policy (A.4) push the sprite to the canvas edge? The landscape of L_agent under
fixed translations.

The cpu preset trains ``steps`` steps on ``dataset`` (moving Fashion: the stage before imagination in
Fig. 5B). Then, for each look of ``looks``, ``frames`` frames are translated by every ``t`` of a
``grid`` x ``grid`` lattice over ``[-1, 1]^2`` (``vase_rl.agents.translation.translate``, the policy's
STN) and L_agent = E ||z* - z||^2 (A.4) is computed for ``frames`` targets z* ~ N(0, I), with the
expectation over z ~ q(z | g . x) in closed form (``||z* - mu||^2 + sum sigma^2``). Reported per look and
per (targets, range): L at t = 0, the best *constant* translation (the one a z*-blind policy finds) and the
oracle (the best grid translation per sample). "Targets": every latent (the paper) or only the
translation-sensitive ones (per-latent sd of mu across the grid's translations > ``sensitive_sd``);
"range": ``|t| <= 1`` (the default ``max_translation``) or ``<= 0.5``. Writes
``benchmarks/results/imagination/landscape/landscape.json`` and ``landscape.md``.

    VASE_DATA_DIR=/work/shared/data python benchmarks/investigations/imagination_landscape.py
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vase_rl.agents.translation import translate
from vase_rl.core.config import get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.envs.sampler import SpriteSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helper modules
import cli_args
import common

OUT = common.RESULTS / "imagination" / "landscape"


@dataclass
class Args(cli_args.ThreadsArgs):
    """One learner, trained once; the landscape of each look (no resumable runs)."""

    dataset: str = "moving-fashion"
    """The dataset the learner is trained on first."""
    steps: int = 2500
    """Training steps on it (the cpu preset's stage)."""
    looks: tuple[str, ...] = ("moving-fashion", "mnist")
    """Datasets whose frames are translated."""
    frames: int = 256
    """Frames (and targets z*) per look."""
    grid: int = 9
    """Translations per axis of the lattice over [-1, 1]^2 (odd: t = 0 is on it)."""
    sensitive_sd: float = 0.5
    """A latent is translation-sensitive when its mu's sd across the lattice (mean over frames) exceeds this."""
    seed: int = 100
    """Validation seed of the learner, the frames and the targets."""
    out_dir: str = str(OUT)
    """Folder of landscape.json and landscape.md."""


def encode(learner: ContinualLearner, x: torch.Tensor, ts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """mu and sigma^2 of the frames x translated by each t of ts (T, 2): two (n, T, N) tensors."""
    mus, variances = [], []
    with torch.no_grad():
        for t in ts:
            mu, logvar, _ = learner.model.encoder(
                translate(x, torch.tensor(t, dtype=x.dtype).expand(len(x), 2))
            )
            mus.append(mu)
            variances.append(logvar.exp())
    return torch.stack(mus, 1), torch.stack(variances, 1)


def landscape(mu: torch.Tensor, var: torch.Tensor, z: torch.Tensor, keep: np.ndarray) -> dict[str, Any]:
    """L_agent (n, T) over the translations ``keep`` (bool, T); its value at t = 0 (the lattice's centre),
    best constant translation and per-sample oracle."""
    loss = (((z[:, None] - mu) ** 2).sum(-1) + var.sum(-1)).double()
    centre = mu.shape[1] // 2
    mean = loss.mean(0)
    inside = np.flatnonzero(keep)
    best = int(inside[int(mean[inside].argmin())])
    return {
        "at_zero": float(mean[centre]),
        "best_constant": float(mean[best]),
        "best_constant_index": best,
        "oracle": float(loss[:, inside].min(1).values.mean()),
    }


def run(args: Args) -> dict[str, Any]:
    """Train, then the landscape of every look (module docstring)."""
    if args.grid % 2 == 0 or args.grid < 3:
        raise ValueError(f"--grid must be odd and >= 3 (t = 0 on the lattice), got {args.grid}")
    torch.set_num_threads(args.threads)
    learner = ContinualLearner(get_preset("cpu").with_overrides(seed=args.seed), device="cpu")
    cpu0 = time.process_time()
    sampler = SpriteSampler(args.dataset, learner.config.model.image_size, seed=args.seed)
    for _ in range(args.steps):
        learner.train_step(sampler.sample(learner.config.batch_size)[0])
    axis = np.linspace(-1.0, 1.0, args.grid)
    ts = np.array([(tx, ty) for tx in axis for ty in axis])
    radius = np.abs(ts).max(1)
    g = torch.Generator().manual_seed(args.seed)
    record: dict[str, Any] = {"args": vars(args), "translations": ts.tolist(), "looks": {}}
    for i, look in enumerate(args.looks):
        x = learner.preprocess(
            SpriteSampler(look, learner.config.model.image_size, seed=args.seed + 1 + i).sample(args.frames)[
                0
            ]
        )
        mu, var = encode(learner, x, ts)
        z = torch.randn(args.frames, mu.shape[-1], generator=g)
        sd = mu.std(1).mean(0)
        sensitive = (sd > args.sensitive_sd).numpy()
        with torch.no_grad():
            blank = learner.model.encoder(torch.zeros_like(x[:1]))[0]
        rows = []
        for targets, mask in (("all", np.ones_like(sensitive)), ("translation-sensitive", sensitive)):
            m = torch.from_numpy(mask)
            for limit in (1.0, 0.5):
                row = landscape(mu[..., m], var[..., m], z[:, m], radius <= limit + 1e-9)
                row.update(targets=targets, n_latents=int(mask.sum()), max_translation=limit)
                row["best_constant_t"] = ts[row.pop("best_constant_index")].tolist()
                reachable = row["at_zero"] - row["oracle"]
                row["blind_share"] = (
                    (row["at_zero"] - row["best_constant"]) / reachable if reachable > 0 else None
                )
                rows.append(row)
        record["looks"][look] = {
            "mean_abs_mu": float(mu[:, len(ts) // 2].abs().mean()),
            "blank_abs_mu": float(blank.abs().mean()),
            "sensitive_sd": [round(float(v), 3) for v in sd],
            "rows": rows,
        }
    record.update(cpu_s=time.process_time() - cpu0, hardware=common.hardware())
    return record


def summarise(record: dict[str, Any]) -> str:
    """The markdown table of ``record`` (:func:`run`'s)."""
    a = record["args"]
    lines = [
        "# L_agent (A.4) under fixed translations",
        "",
        f"Produced by `python benchmarks/investigations/imagination_landscape.py` (cpu preset, {a['steps']} steps "
        f"on {a['dataset']}, validation seed {a['seed']}, {a['frames']} frames and targets per look, "
        f"{a['grid']}x{a['grid']} translations; {record['cpu_s']:.0f} CPU s). 'blind share': the part of the "
        "drop from t = 0 to the per-sample oracle that the best z*-blind translation already gets.",
        "",
    ]
    rows = [
        [
            look,
            f"{v['mean_abs_mu']:.2f} / {v['blank_abs_mu']:.2f}",
            f"{r['targets']} ({r['n_latents']})",
            f"<= {r['max_translation']}",
            f"{r['at_zero']:.1f}",
            f"{r['best_constant']:.1f} at ({r['best_constant_t'][0]:.2f}, {r['best_constant_t'][1]:.2f})",
            f"{r['oracle']:.1f}",
            "-" if r["blind_share"] is None else f"{100 * r['blind_share']:.0f} %",
        ]
        for look, v in record["looks"].items()
        for r in v["rows"]
    ]
    header = [
        "look",
        "mean abs mu / blank frame",
        "targets",
        "abs t",
        "L at t = 0",
        "best constant t",
        "oracle",
        "blind share",
    ]
    return "\n".join([*lines, common.markdown_table(header, rows), ""])


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    common.write_report(Path(args.out_dir) / "landscape", run(args), summarise)


if __name__ == "__main__":
    main()
