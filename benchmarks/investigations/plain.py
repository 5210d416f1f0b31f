"""Investigation of the learner-quality fix: the cpu preset's networks alone, in a plain training loop.

No VASE machinery (no environments, masks, dreaming or probes): ``VASEModel`` of the cpu preset trained on
one dataset with Adam, on one of three objectives -- ``elbo`` (reconstruction + beta * KL), ``upper``
(reconstruction + gamma * max(0, KL - C)^2) or ``two-sided`` (reconstruction + gamma * (KL - C)^2), with
the capacity C ramped from 0 to ``c_max`` over ``ramp`` steps (``ramp`` 1: C_max from the first step).
``--logvar-bias`` sets the encoder's initial log-variance (0: the posterior starts at the prior's width;
-3: a sharp initial posterior). Prints the batch's reconstruction NLL and KL every ``print_every`` steps
and writes them to ``benchmarks/results/representation_quality/investigation/<name>.json`` (the rows
"posterior starting at the prior" and "capacity ramp" of ``representation_quality/README.md``).

    VASE_DATA_DIR=/work/shared/data python benchmarks/investigations/plain.py --mode upper --ramp 1 \
        --logvar-bias -3 --steps 1001
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vase_rl.core.config import get_preset
from vase_rl.core.losses import gaussian_kl, reconstruction_nll
from vase_rl.core.model import VASEModel
from vase_rl.envs.sampler import SpriteSampler

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helper modules
import cli_args
import common

OUT = common.RESULTS / "representation_quality" / "investigation"
MODES = ("elbo", "upper", "two-sided")


@dataclass
class Args(cli_args.ThreadsArgs):
    name: str = ""
    """Name of the run: its JSON is ``<name>.json`` ("" = ``plain_<mode>_lvb<logvar_bias>``)."""
    dataset: str = "mnist"
    """Sprite dataset (32x32 canvas)."""
    steps: int = 1001
    """Adam steps (batch 64)."""
    lr: float = 6e-4
    """Adam learning rate."""
    mode: str = "elbo"
    """Objective: elbo, upper or two-sided (see the module docstring)."""
    beta: float = 1.0
    """KL weight of the elbo objective."""
    gamma: float = 10.0
    """Weight of the capacity penalty (upper, two-sided)."""
    c_max: float = 25.0
    """Capacity target C_max (nats)."""
    ramp: float = 1500.0
    """Steps over which C rises from 0 to C_max."""
    logvar_bias: float = 0.0
    """Initial bias of the encoder's log-variance outputs."""
    seed: int = 0
    """Seed of the network and of the data stream."""
    print_every: int = 250
    """Period (steps) of the printed and recorded losses."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        self.name = self.name or f"plain_{self.mode}_lvb{self.logvar_bias:g}"


def loss(args: Args, rec: torch.Tensor, kl: torch.Tensor, step: int) -> torch.Tensor:
    """The objective of ``args.mode`` at ``step`` from the batch's mean reconstruction NLL and KL."""
    if args.mode == "elbo":
        return rec + args.beta * kl
    gap = kl - min(args.c_max, step / args.ramp * args.c_max)
    return rec + args.gamma * (gap.clamp_min(0) if args.mode == "upper" else gap) ** 2


def run(args: Args) -> dict[str, Any]:
    """Train the networks; the record of the printed losses."""
    torch.set_num_threads(args.threads)
    cfg = get_preset("cpu")
    torch.manual_seed(args.seed)
    model = VASEModel(cfg.model)
    with torch.no_grad():
        model.encoder.head.bias[cfg.model.latent_dim :] = args.logvar_bias
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    sampler = SpriteSampler(args.dataset, 32, seed=args.seed)
    env = torch.zeros(64, dtype=torch.long)
    curve = []
    for step in range(args.steps):
        x = torch.from_numpy(sampler.sample(64)[0]).permute(0, 3, 1, 2).float() / 255
        mu, logvar, _ = model.encoder(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        rec = reconstruction_nll(model.decoder(z, env), x, "bernoulli").mean()
        kl = gaussian_kl(mu, logvar).sum(1).mean()
        opt.zero_grad()
        loss(args, rec, kl, step).backward()
        opt.step()
        if step % args.print_every == 0:
            curve.append({"step": step, "recon": round(rec.item(), 1), "kl": round(kl.item(), 2)})
            print(step, curve[-1]["recon"], curve[-1]["kl"], flush=True)
    return {
        "name": args.name,
        "args": dataclasses.asdict(args),
        "curve": curve,
        "hardware": common.hardware(),
    }


def summarise(record: dict[str, Any]) -> str:
    """The last recorded losses."""
    last = record["curve"][-1] if record["curve"] else {}
    return f"{record['name']}: recon {last.get('recon')} KL {last.get('kl')} at step {last.get('step')}"


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    common.save_record(OUT / f"{args.name}.json", run(args), summarise)


if __name__ == "__main__":
    main()
