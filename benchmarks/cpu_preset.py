"""Why the `cpu` preset uses capacity_mode="upper", gamma=10: compare capacity objectives at CPU scale.

For each objective, train a plain CCI-VAE (ablation "-", the cpu preset's model) on moving MNIST and
measure on held-out test images: reconstruction NLL, the information check (NLL with z shuffled across
the batch minus NLL with z), the number of informative latents (KL > 0.5 nat), the largest atypicality,
and an object-ID probe (2x256 MLP on mu, trained on 5,000 train images, tested on 1,000). One JSON per
objective in benchmarks/results/cpu_preset/, skipped when present; ``--summarise`` writes the table.

    VASE_DATA_DIR=/work/shared/data python benchmarks/cpu_preset.py [--steps 1200] [--threads 1]
    python benchmarks/cpu_preset.py --summarise
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cli_args
import common
import numpy as np
import torch

from vase_rl.core.config import Ablation, get_preset
from vase_rl.core.latents import atypicality
from vase_rl.core.learner import ContinualLearner
from vase_rl.envs.sampler import SpriteSampler
from vase_rl.probing.probes import Probe

OUT = common.RESULTS / "cpu_preset"
OBJECTIVES = {
    "two-sided gamma=100": {"gamma": 100.0, "capacity_mode": "two-sided"},
    "two-sided gamma=8": {"gamma": 8.0, "capacity_mode": "two-sided"},
    "two-sided gamma=1": {"gamma": 1.0, "capacity_mode": "two-sided"},
    "upper gamma=10 (cpu preset)": {"gamma": 10.0, "capacity_mode": "upper"},
}


@dataclass
class Args(cli_args.ThreadsArgs, cli_args.SummariseArgs):
    steps: int = 1200
    """Training steps on moving MNIST."""
    seed: int = 0
    """Seed of the learner, the data streams and the probe."""
    probe_train: int = 5000
    """Train images of the object-ID probe."""
    probe_test: int = 1000
    """Test images of the object-ID probe."""
    probe_steps: int = 1500
    """Adam steps (batch 64) of the probe."""
    out_dir: str = str(OUT)
    """Folder of the per-objective JSONs and the README table."""


def probe_accuracy(learner: ContinualLearner, args: Args) -> float:
    """Object-ID accuracy (%) of an A.6 probe trained on mu of train images, tested on test images."""
    seed = args.seed
    train_sampler = SpriteSampler("moving-mnist", 32, split="train", seed=seed + 1)
    train_x, train_f = train_sampler.sample(args.probe_train)
    test_x, test_f = SpriteSampler("moving-mnist", 32, split="test", seed=seed + 2).sample(args.probe_test)
    z_train, z_test = learner.encode(train_x), learner.encode(test_x)
    y_train = torch.as_tensor(train_f["label"])
    torch.manual_seed(seed)
    probe = Probe(z_train.shape[1], 10, "classifier")
    opt = torch.optim.Adam(probe.parameters(), lr=6e-4)
    for _ in range(args.probe_steps):
        idx = torch.randint(0, len(z_train), (64,))
        loss = probe.loss(z_train[idx], y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = probe(z_test).argmax(1).numpy()
    return float((pred == test_f["label"]).mean() * 100)


def run_one(name: str, loss_overrides: dict, args: Args) -> dict:
    cfg = get_preset("cpu").with_overrides(
        loss=loss_overrides, ablation=Ablation(False, False, False), seed=args.seed
    )
    learner = ContinualLearner(cfg, device="cpu")
    sampler = SpriteSampler("moving-mnist", 32, seed=args.seed)
    t0 = time.time()
    for _ in range(args.steps):
        learner.train_step(sampler.sample(64)[0])
    seconds = time.time() - t0
    x = learner.preprocess(SpriteSampler("moving-mnist", 32, split="test", seed=9).sample(500)[0])
    with torch.no_grad():
        mu, logvar = learner.encode(x, return_logvar=True)
        nll = float(learner.reconstruction_nll(mu, 0, x).mean())
        nll_shuffled = float(learner.reconstruction_nll(mu.roll(1, 0), 0, x).mean())
        kl_units = (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).mean(0)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        alpha = atypicality(z)
    return {
        "objective": name,
        "loss": loss_overrides,
        "steps": args.steps,
        "recon_nll": nll,
        "information_nats": nll_shuffled - nll,
        "kl_total": float(kl_units.sum()),
        "informative_latents": int((kl_units > 0.5).sum()),
        "max_atypicality": float(alpha.max()),
        "mu_std_mean": float(mu.std(0).mean()),
        "probe_accuracy": probe_accuracy(learner, args),
        "train_seconds": seconds,
        "threads": args.threads,
        "hardware": common.hardware(),
    }


def run(args: Args) -> None:
    """Train and measure every objective that has no JSON in ``args.out_dir`` yet."""
    torch.set_num_threads(args.threads)
    for name, overrides in OBJECTIVES.items():
        path = Path(args.out_dir, name.split(" (")[0].replace(" ", "_").replace("=", "") + ".json")
        if path.exists():
            continue
        result = run_one(name, overrides, args)
        common.write_json(path, result)
        print(result)


def summarise(out_dir: str) -> str:
    """The table of every objective's JSON in ``out_dir``; also written to ``out_dir/README.md``."""
    rows = [common.load_json(p) for p in sorted(Path(out_dir).glob("*.json"))]
    header = [
        "objective",
        "steps",
        "recon NLL",
        "information (nats)",
        "KL",
        "informative latents",
        "max alpha",
        "probe acc %",
        "train s",
    ]
    table = [
        [
            r["objective"],
            r["steps"],
            f"{r['recon_nll']:.1f}",
            f"{r['information_nats']:.1f}",
            f"{r['kl_total']:.1f}",
            r["informative_latents"],
            f"{r['max_atypicality']:.2f}",
            f"{r['probe_accuracy']:.1f}",
            f"{r['train_seconds']:.0f}",
        ]
        for r in rows
    ]
    lines = [
        "# Capacity objective at CPU scale (moving MNIST, cpu-preset model, 1 seed)",
        "",
        common.markdown_table(header, table),
        "",
        "Produced by `python benchmarks/cpu_preset.py`; held-out test images; threads and CPU in the JSONs.",
    ]
    text = "\n".join(lines) + "\n"
    common.write_text(Path(out_dir) / "README.md", text)
    return text


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    if not args.summarise:
        run(args)
    print(summarise(args.out_dir))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
