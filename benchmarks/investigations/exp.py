"""Investigation runner of the learner-quality fix: one config trained on one dataset, mu(x) offline-probed.

The cpu preset with ``--overrides`` (a JSON dict of ``VASEConfig.with_overrides`` sections, e.g.
``'{"loss": {"entangled": true}}'``) trains alone on ``--dataset`` for ``--steps`` steps on the validation
seed (100, never an evaluation seed); after each of ``--checkpoints`` below ``--steps`` and at the end, the
offline probes of :mod:`vase_rl.probing.offline_probe` (MLP by default) read the dataset's factors from
mu(x) of held-out test-split images, with the CPU seconds, reconstruction NLL, KL and environments of the
last step. ``--refs`` adds the untrained encoder and raw pixels under the same probes. Writes
``benchmarks/results/representation_quality/investigation/<name>.json`` (the table of
``representation_quality/README.md``, "Investigation").

    VASE_DATA_DIR=/work/shared/data python benchmarks/investigations/exp.py --name new_mnist --dataset mnist \
        --steps 2500 --refs
    python benchmarks/investigations/exp.py --name ent_mnist --overrides '{"loss": {"entangled": true}}'
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vase_rl.core.learner import ContinualLearner
from vase_rl.envs.sampler import SpriteSampler
from vase_rl.probing.offline_probe import OfflineProbeConfig, encode_codes, pixel_codes, probe_factors

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helper modules
import cli_args
import common

OUT = common.RESULTS / "representation_quality" / "investigation"


@dataclass
class Args(cli_args.ValidationArgs):
    """Its JSON is ``<name>.json`` (``<dataset>_<steps>.json`` without a name); the probes' images are drawn
    with seed + 1 (train split) and seed + 2 (test split)."""

    dataset: str = "mnist"
    """Sprite dataset the learner trains on alone (and is probed on)."""
    steps: int = 2500
    """Training steps (batches of the preset's batch size)."""
    canvas: int = 32
    """Canvas side (the model's image size follows it)."""
    checkpoints: tuple[int, ...] = (500, 1000, 2500, 5000)
    """Steps at which the probes also run (those below ``steps``)."""
    probes: tuple[str, ...] = ("mlp",)
    """Offline probes: linear and/or mlp."""
    refs: bool = False
    """Also probe the untrained encoder (before training) and the raw pixels."""

    def __post_init__(self) -> None:
        self.name = self.name or f"{self.dataset}_{self.steps}"


def probe(encode: Any, data: tuple[Any, Any], args: Args, config: OfflineProbeConfig) -> dict[str, Any]:
    """The probes' scores on codes of ``encode`` (None: raw pixels) of the (train, test) samples."""
    (tr_x, tr_f), (te_x, te_f) = data
    codes = [pixel_codes(x) if encode is None else encode_codes(encode, x) for x in (tr_x, te_x)]
    return probe_factors(codes[0], tr_f, codes[1], te_f, args.dataset, args.probes, config)


def run(args: Args) -> dict[str, Any]:
    """Train, probing at every checkpoint; the run's record."""
    torch.set_num_threads(args.threads)
    cfg = args.config()
    if args.canvas != cfg.model.image_size:
        cfg = cfg.with_overrides(model={"image_size": args.canvas})
    learner = ContinualLearner(cfg, device="cpu")
    config = args.probe_config()
    data = (
        SpriteSampler(args.dataset, args.canvas, split="train", seed=args.seed + 1).sample(config.train_size),
        SpriteSampler(args.dataset, args.canvas, split="test", seed=args.seed + 2).sample(config.test_size),
    )
    record: dict[str, Any] = {
        "name": args.name,
        "dataset": args.dataset,
        "steps": args.steps,
        "canvas": args.canvas,
        "overrides": json.loads(args.overrides),
    }
    if args.refs:
        record["untrained"] = probe(learner.encode, data, args, config)
    sampler = SpriteSampler(args.dataset, args.canvas, seed=args.seed)
    cpu0, done, curve = time.process_time(), 0, {}
    for checkpoint in sorted({args.steps, *(c for c in args.checkpoints if c < args.steps)}):
        for _ in range(checkpoint - done):
            out = learner.train_step(sampler.sample(cfg.batch_size)[0])
        done = checkpoint
        cpu = time.process_time() - cpu0
        scores = probe(learner.encode, data, args, config)
        curve[checkpoint] = {
            "probe": scores,
            "cpu_s": cpu,
            "recon": out.recon,
            "kl": out.kl,
            "n_envs": out.n_envs,
        }
        print(record["name"], checkpoint, json.dumps(curve[checkpoint]), flush=True)
    record["curve"] = curve
    if args.refs:
        record["pixels"] = probe(None, data, args, config)
    record["hardware"] = common.hardware()
    return record


def summarise(record: dict[str, Any]) -> str:
    """One line per checkpoint: steps, probe scores, CPU seconds."""
    lines = [f"{record['name']} ({record['dataset']}, overrides {record['overrides']}):"]
    lines += [
        f"  {step} steps: {point['probe']} ({point['cpu_s']:.0f} CPU s)"
        for step, point in record["curve"].items()
    ]
    lines += [f"  {ref}: {record[ref]}" for ref in ("untrained", "pixels") if ref in record]
    return "\n".join(lines)


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    common.save_record(OUT / f"{args.name}.json", run(args), summarise)


if __name__ == "__main__":
    main()
