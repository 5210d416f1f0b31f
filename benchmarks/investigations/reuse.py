"""Investigation of latent reuse across environments (issue 15 point 7), on the validation seed 100.

The cpu preset (with ``--overrides``, a JSON dict of ``VASEConfig.with_overrides`` sections) trains
``--steps-a`` steps on dataset A, then ``--steps-b`` on dataset B (S/D/A on, A.6 probes off), and at the
end: the environments allocated, every latent's correlation with x and y on A's and B's held-out images,
and the linear readout transfer (``vase_rl.probing.offline_probe.readout_transfer``) of position, and of
class within one sprite family, both ways, on ``mu`` and on ``mu`` with the latents outside the used set
u^s of the environment each dataset is inferred under set to 0 (``transfer_used``).
Each environment allocation and a few steps per stage are
logged (Algorithm 1's outcome, losses, atypicality, mask, used latents). Writes
``benchmarks/results/representation_quality/investigation/reuse_<name>.json`` (the latent-reuse table of
``representation_quality/README.md``).

Experiment switches (not options of the library): ``--fresh-used`` starts a new environment of stage B
with no used latents instead of all (now ``MaskConfig.new_env_used="none"``), ``--freeze-code`` fixes the
decoder's input code of a new environment of stage B, ``--affine-lr M`` lets the output affine learn at M x
the learning rate in stage B; ``--stage-a-cache FILE`` saves the learner after
stage A (first run) or loads it instead of training stage A (later runs: variants that differ in B only).

    VASE_DATA_DIR=/work/shared/data python benchmarks/investigations/reuse.py --name base
    python benchmarks/investigations/reuse.py --name inherit --overrides '{"model": {"new_env_code": "inherit"}}'
    python benchmarks/investigations/reuse.py --name mnist --b moving-mnist
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vase_rl.core.learner import ContinualLearner
from vase_rl.envs.sampler import SpriteSampler
from vase_rl.probing.offline_probe import OfflineProbeConfig, encode_codes, factor_targets, readout_transfer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared helper modules
import cli_args
import common

OUT = common.RESULTS / "representation_quality" / "investigation"


@dataclass
class Args(cli_args.ValidationArgs):
    """Its JSON is ``reuse_<name>.json``; the probes are linear readouts (``probe_epochs``: unused)."""

    name: str = "base"
    probe_train: int = 5000
    probe_test: int = 2500
    probe_epochs: int = 20
    steps_a: int = 2500
    """Training steps on dataset A."""
    steps_b: int = 2500
    """Training steps on dataset B."""
    a: str = "moving-fashion"
    """Dataset A."""
    b: str = "moving-inverse-fashion"
    """Dataset B."""
    fresh_used: bool = False
    """Experiment switch: a new environment of stage B starts with no used latents."""
    freeze_code: bool = False
    """Experiment switch: the decoder's input code of a new environment of stage B stays as allocated."""
    affine_lr: float = 1.0
    """Experiment switch: from stage B on, the environments' output affine (``env_scale``, ``env_bias``)
    learns at this multiple of the learning rate (Adam's moments carried over)."""
    stage_a_cache: str = ""
    """Learner state after stage A (a .pt file): written when missing, else loaded instead of stage A."""


def corr(codes: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Pearson correlation of every latent (column of ``codes``) with the values ``v``."""
    c = (codes - codes.mean(0)) / (codes.std(0) + 1e-8)
    w = (v - v.mean()) / (v.std() + 1e-8)
    return (c * w[:, None]).mean(0)


def freeze_column(learner: ContinualLearner, env: int) -> None:
    """Zero the gradient of environment ``env``'s one-hot input column of the decoder's first layer."""
    col = learner.config.model.latent_dim + env

    def hook(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[:, col] = 0
        return grad

    learner.model.decoder.fc1.weight.register_hook(hook)


def boost_affine(learner: ContinualLearner, multiple: float) -> None:
    """Give the decoder's output affine its own Adam parameter group at ``multiple`` x the learning rate,
    keeping every parameter's optimizer state."""
    decoder = learner.model.decoder
    affine = [decoder.env_scale, decoder.env_bias]
    if any(p is None for p in affine):
        raise ValueError("--affine-lr needs env_conditioning='input+output' (an output affine)")
    rest = [p for p in learner.model.parameters() if all(p is not a for a in affine)]
    lr = learner.config.lr
    boosted = torch.optim.Adam([{"params": rest}, {"params": affine, "lr": lr * multiple}], lr=lr)
    for p, state in learner.optimizer.state.items():
        boosted.state[p] = state
    learner.optimizer = boosted


def with_input_signs(learner: ContinualLearner, state: dict[str, Any]) -> dict[str, Any]:
    """A stage-A cache saved without ``ModelConfig.env_input_view`` made loadable by a learner with it: stage A
    has one environment, read as it is, so its input signs are all +1 (the buffer the cache lacks)."""
    signs = learner.model.encoder.input_sign
    if signs is not None:
        for part in ("model", "snapshot"):
            state[part].setdefault("encoder.input_sign", torch.ones_like(signs))
    return state


def train(args: Args, learner: ContinualLearner) -> list[dict[str, Any]]:
    """Stage A then stage B (stage A from ``--stage-a-cache`` when there is one); the log."""
    cache, log = args.stage_a_cache, []
    for stage, (dataset, steps) in enumerate(((args.a, args.steps_a), (args.b, args.steps_b))):
        if stage == 0 and cache and os.path.exists(cache):
            learner.load_state_dict(with_input_signs(learner, torch.load(cache, weights_only=False)))
            continue
        if stage == 1 and cache and not os.path.exists(cache):
            torch.save(learner.state_dict(), cache)
        if stage == 1 and args.affine_lr != 1.0:
            boost_affine(learner, args.affine_lr)
        sampler = SpriteSampler(dataset, learner.config.model.image_size, seed=args.seed + 100 * stage)
        for i in range(steps):
            out = learner.train_step(sampler.sample(learner.config.batch_size)[0])
            if out.new_env and stage == 1 and args.fresh_used:
                learner.memory.used[out.env] = False
            if out.new_env and stage == 1 and args.freeze_code:
                freeze_column(learner, out.env)
            if out.new_env or i in (0, 50, 200, 500) or i == steps - 1:
                log.append(
                    {
                        "stage": stage,
                        "i": i,
                        "env": out.env,
                        "new": out.new_env,
                        "reason": out.reason.value,
                        "recon": round(out.recon, 2),
                        "kl": round(out.kl, 2),
                        "alpha": [round(v, 2) for v in out.atypicality],
                        "mask": list(out.mask),
                        "used": list(out.used),
                    }
                )
                print(args.name, json.dumps(log[-1]), flush=True)
    return log


def used_codes(learner: ContinualLearner, frames: np.ndarray, codes: tuple[Any, Any]) -> tuple[Any, Any, int]:
    """``codes`` (train, test) with every latent outside the used set u^s of the environment eq. 6 files
    ``frames`` under (a query on 64 of them) set to 0, and that environment (the current one when the
    query would allocate)."""
    decision = learner.infer_environment(frames[:64])
    env = decision.env if 0 <= decision.env < learner.memory.n_seen else learner.current_env
    keep = learner.memory.used[env].numpy().astype(codes[0].dtype)
    return codes[0] * keep, codes[1] * keep, int(env)


def transfer_rows(
    args: Args, data: dict[str, Any], codes: dict[str, Any], pc: OfflineProbeConfig
) -> list[dict]:
    """Linear readouts fit on one dataset's codes, scored in-domain and on the other dataset's codes."""
    rows = []
    for src, dst in ((args.a, args.b), (args.b, args.a)):
        for factor in ("position", "class"):
            target = factor_targets(data[src][0][1], src).get(factor)
            if target is None or (factor == "class" and "mnist" in src + dst and "fashion" in src + dst):
                continue
            kind, train_target = target
            test_target = factor_targets(data[src][1][1], src)[factor][1]
            other_target = factor_targets(data[dst][1][1], dst)[factor][1]
            row = {
                "factor": factor,
                "a": src,
                "b": dst,
                "in_domain": readout_transfer(
                    codes[src][0], train_target, codes[src][1], test_target, kind, pc
                ),
                "transfer": readout_transfer(
                    codes[src][0], train_target, codes[dst][1], other_target, kind, pc
                ),
            }
            rows.append(row)
            print(args.name, json.dumps(row), flush=True)
    return rows


def run(args: Args) -> dict[str, Any]:
    """Train A then B; correlations and readout transfer of the final learner; the run's record."""
    torch.set_num_threads(args.threads)
    learner = ContinualLearner(args.config(), device="cpu")
    size = learner.config.model.image_size
    pc = args.probe_config()
    data = {
        d: (
            SpriteSampler(d, size, split="train", seed=args.seed + 1 + i).sample(pc.train_size),
            SpriteSampler(d, size, split="test", seed=args.seed + 11 + i).sample(pc.test_size),
        )
        for i, d in enumerate((args.a, args.b))
    }
    cpu0 = time.process_time()
    log = train(args, learner)
    cpu = time.process_time() - cpu0
    codes = {
        d: (encode_codes(learner.encode, tr[0]), encode_codes(learner.encode, te[0]))
        for d, (tr, te) in data.items()
    }
    memory = learner.memory
    record: dict[str, Any] = {
        "name": args.name,
        "overrides": json.loads(args.overrides),
        "a": args.a,
        "b": args.b,
        "steps": [args.steps_a, args.steps_b],
        "cpu_s": cpu,
        "n_envs": memory.n_seen,
        "used": memory.used[: memory.n_seen].int().tolist(),
        "log": log,
        "corr": {},
    }
    for d in (args.a, args.b):
        factors = data[d][1][1]
        record["corr"][d] = {
            k: corr(codes[d][1], np.asarray(factors[k], float)).round(2).tolist() for k in ("x", "y")
        }
    record["transfer"] = transfer_rows(args, data, codes, pc)
    # the same readouts on the emission "unused latents set to 0" (each dataset under its inferred env's u^s)
    masked = {d: used_codes(learner, data[d][1][0], codes[d]) for d in codes}
    record["inferred"] = {d: m[2] for d, m in masked.items()}
    record["transfer_used"] = transfer_rows(args, data, {d: m[:2] for d, m in masked.items()}, pc)
    record["hardware"] = common.hardware()
    return record


def summarise(record: dict[str, Any]) -> str:
    """Environments allocated and the readouts (factor, from, in-domain, transfer)."""
    rows = [
        (r["factor"], r["a"][:9], round(r["in_domain"], 3), round(r["transfer"], 3))
        for r in record["transfer"]
    ]
    used = [round(r["transfer"], 3) for r in record.get("transfer_used", []) if r["factor"] == "position"]
    return f"SUMMARY {record['name']} {record['n_envs']} {rows} used-latents position transfer {used}"


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    common.save_record(OUT / f"reuse_{args.name}.json", run(args), summarise)


if __name__ == "__main__":
    main()
