"""Why the `cpu` preset uses capacity_mode="upper", gamma=10: compare capacity objectives at CPU scale.

For each objective, train a plain CCI-VAE (ablation "-", the cpu preset's model) on moving MNIST and
measure on held-out test images: reconstruction NLL, the information check (NLL with z shuffled across
the batch minus NLL with z), the number of informative latents (KL > 0.5 nat), the largest atypicality,
and an object-ID probe (2x256 MLP on mu, trained on 5,000 train images, tested on 1,000). One JSON per
objective in benchmarks/results/cpu_preset/, skipped when present; ``--summarise`` writes the table.

    python benchmarks/cpu_preset.py [--steps 1200] [--threads 1]
    python benchmarks/cpu_preset.py --summarise
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vase_rl.config import Ablation, get_preset
from vase_rl.envs.sampler import SpriteSampler
from vase_rl.latents import atypicality
from vase_rl.learner import ContinualLearner
from vase_rl.probes import Probe

OUT = os.path.join(os.path.dirname(__file__), "results", "cpu_preset")
OBJECTIVES = {
    "two-sided gamma=100": {"gamma": 100.0, "capacity_mode": "two-sided"},
    "two-sided gamma=8": {"gamma": 8.0, "capacity_mode": "two-sided"},
    "two-sided gamma=1": {"gamma": 1.0, "capacity_mode": "two-sided"},
    "upper gamma=10 (cpu preset)": {"gamma": 10.0, "capacity_mode": "upper"},
}


@dataclass
class Args:
    steps: int = 1200
    """Training steps on moving MNIST."""
    threads: int = 1
    seed: int = 0
    summarise: bool = False


def probe_accuracy(learner: ContinualLearner, seed: int) -> float:
    """Object-ID accuracy (%) of an A.6 probe trained on mu of 5k train images, tested on 1k test images."""
    train_x, train_f = SpriteSampler("moving-mnist", 32, split="train", seed=seed + 1).sample(5000)
    test_x, test_f = SpriteSampler("moving-mnist", 32, split="test", seed=seed + 2).sample(1000)
    z_train, z_test = learner.encode(train_x), learner.encode(test_x)
    y_train = torch.as_tensor(train_f["label"])
    torch.manual_seed(seed)
    probe = Probe(z_train.shape[1], 10, "classifier")
    opt = torch.optim.Adam(probe.parameters(), lr=6e-4)
    for _ in range(1500):
        idx = torch.randint(0, len(z_train), (64,))
        loss = probe.loss(z_train[idx], y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = probe(z_test).argmax(1).numpy()
    return float((pred == test_f["label"]).mean() * 100)


def run_one(name: str, loss_overrides: dict, args: Args) -> dict:
    cfg = get_preset("cpu").with_overrides(loss=loss_overrides, ablation=Ablation(False, False, False),
                                           seed=args.seed)
    learner = ContinualLearner(cfg, device="cpu")
    sampler = SpriteSampler("moving-mnist", 32, seed=args.seed)
    t0 = time.time()
    for _ in range(args.steps):
        learner.train_step(sampler.sample(64)[0])
    seconds = time.time() - t0
    x = learner.preprocess(SpriteSampler("moving-mnist", 32, split="test", seed=9).sample(500)[0])
    with torch.no_grad():
        mu, logvar = learner.encode(x, return_logvar=True)
        nll = float(learner._recon(mu, 0, x).mean())
        nll_shuffled = float(learner._recon(mu.roll(1, 0), 0, x).mean())
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
        "probe_accuracy": probe_accuracy(learner, args.seed),
        "train_seconds": seconds,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
    }


def summarise() -> str:
    rows = [json.loads(Path(OUT, f).read_text()) for f in sorted(os.listdir(OUT)) if f.endswith(".json")]
    lines = [
        "# Capacity objective at CPU scale (moving MNIST, cpu-preset model, 1 seed)",
        "",
        "| objective | steps | recon NLL | information (nats) | KL | informative latents | max alpha | probe acc % | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['objective']} | {r['steps']} | {r['recon_nll']:.1f} | {r['information_nats']:.1f} | "
            f"{r['kl_total']:.1f} | {r['informative_latents']} | {r['max_atypicality']:.2f} | "
            f"{r['probe_accuracy']:.1f} | {r['train_seconds']:.0f} |"
        )
    lines += ["", "Produced by `python benchmarks/cpu_preset.py`; held-out test images; threads and CPU in the JSONs."]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=Args.steps)
    p.add_argument("--threads", type=int, default=Args.threads)
    p.add_argument("--seed", type=int, default=Args.seed)
    p.add_argument("--summarise", action="store_true")
    args = Args(**vars(p.parse_args()))
    os.makedirs(OUT, exist_ok=True)
    if not args.summarise:
        torch.set_num_threads(args.threads)
        for name, overrides in OBJECTIVES.items():
            path = os.path.join(OUT, name.split(" (")[0].replace(" ", "_").replace("=", "") + ".json")
            if os.path.exists(path):
                continue
            result = run_one(name, overrides, args)
            with open(path, "w") as f:
                json.dump(result, f, indent=2)
            print(json.dumps(result))
    print(summarise())


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
