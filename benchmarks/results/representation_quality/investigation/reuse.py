"""Investigation runner for latent reuse (issue 15 point 7), validation seed 100.

Trains the cpu preset (with JSON overrides) on dataset A, then on dataset B, and measures at the end:
environments allocated, per-latent |corr| with x / y on A's and B's held-out images, and the linear
readout transfer of position (and class within the Fashion family) both ways.

    python reuse.py NAME '{overrides}' [STEPS_A STEPS_B] [A B]
"""
import json
import os
import sys
import time

import numpy as np
import torch

torch.set_num_threads(1)
from vase_rl.config import get_preset  # noqa: E402
from vase_rl.envs.sampler import SpriteSampler  # noqa: E402
from vase_rl.learner import ContinualLearner  # noqa: E402
from vase_rl.offline_probe import OfflineProbeConfig, encode_codes, factor_targets, fit_probe  # noqa: E402

SEED = 100


def corr(codes, v):
    c = (codes - codes.mean(0)) / (codes.std(0) + 1e-8)
    w = (v - v.mean()) / (v.std() + 1e-8)
    return (c * w[:, None]).mean(0)


def main():
    name, ov = sys.argv[1], json.loads(sys.argv[2])
    steps_a = int(sys.argv[3]) if len(sys.argv) > 3 else 2500
    steps_b = int(sys.argv[4]) if len(sys.argv) > 4 else 2500
    a = sys.argv[5] if len(sys.argv) > 5 else "moving-fashion"
    b = sys.argv[6] if len(sys.argv) > 6 else "moving-inverse-fashion"
    cfg = get_preset("cpu").with_overrides(seed=SEED, **ov)
    learner = ContinualLearner(cfg, device="cpu")
    size = cfg.model.image_size
    pc = OfflineProbeConfig(train_size=5000, test_size=2500, epochs=20)
    data = {d: (SpriteSampler(d, size, split="train", seed=SEED + 1 + i).sample(pc.train_size),
                SpriteSampler(d, size, split="test", seed=SEED + 11 + i).sample(pc.test_size))
            for i, d in enumerate((a, b))}
    log = []
    t0 = time.process_time()
    cache = os.environ.get("STAGE_A")  # a stage-A state shared by variants that differ only in B
    for stage, (d, n) in enumerate(((a, steps_a), (b, steps_b))):
        if stage == 0 and cache and os.path.exists(cache):
            learner.load_state_dict(torch.load(cache, weights_only=False))
            continue
        if stage == 1 and cache and not os.path.exists(cache):
            torch.save(learner.state_dict(), cache)
        sampler = SpriteSampler(d, size, seed=SEED + 100 * stage)
        for i in range(n):
            out = learner.train_step(sampler.sample(cfg.batch_size)[0])
            if out.new_env and stage == 1 and os.environ.get("FRESH_USED"):  # u^s unknown, not all-used
                learner.memory.used[out.env] = False
            if out.new_env and stage == 1 and os.environ.get("FREEZE_CODE"):  # new env's input code fixed
                col = cfg.model.latent_dim + out.env

                def freeze(grad, col=col):
                    grad = grad.clone()
                    grad[:, col] = 0
                    return grad

                learner.model.decoder.fc1.weight.register_hook(freeze)
            if out.new_env or i in (0, 50, 200, 500) or i == n - 1:
                log.append({"stage": stage, "i": i, "env": out.env, "new": out.new_env,
                            "reason": out.reason.value, "recon": round(out.recon, 2), "kl": round(out.kl, 2),
                            "alpha": [round(v, 2) for v in out.atypicality], "mask": list(out.mask),
                            "used": list(out.used)})
                print(name, json.dumps(log[-1]), flush=True)
    cpu = time.process_time() - t0
    codes = {d: (encode_codes(learner.encode, tr[0]), encode_codes(learner.encode, te[0]))
             for d, (tr, te) in data.items()}
    res = {"name": name, "overrides": ov, "a": a, "b": b, "steps": [steps_a, steps_b], "cpu_s": cpu,
           "n_envs": learner.memory.n_seen, "used": learner.memory.used[: learner.memory.n_seen].int().tolist(),
           "log": log, "corr": {}, "transfer": []}
    for d in (a, b):
        f = data[d][1][1]
        res["corr"][d] = {"x": corr(codes[d][1], np.asarray(f["x"], float)).round(2).tolist(),
                          "y": corr(codes[d][1], np.asarray(f["y"], float)).round(2).tolist()}
    for src, dst in ((a, b), (b, a)):
        for factor in ("position", "class"):
            ta = factor_targets(data[src][0][1], src).get(factor)
            if ta is None or (factor == "class" and "mnist" in src + dst and "fashion" in src + dst):
                continue
            kind = ta[0]
            ta_test = factor_targets(data[src][1][1], src)[factor][1]
            tb = factor_targets(data[dst][1][1], dst)[factor][1]
            row = {"factor": factor, "a": src, "b": dst,
                   "in_domain": fit_probe(codes[src][0], ta[1], codes[src][1], ta_test, kind, "linear", pc),
                   "transfer": fit_probe(codes[src][0], ta[1], codes[dst][1], tb, kind, "linear", pc)}
            res["transfer"].append(row)
            print(name, json.dumps(row), flush=True)
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"reuse_{name}.json")
    with open(out, "w") as fh:
        json.dump(res, fh, indent=1)
    print("SUMMARY", name, res["n_envs"], [(r["factor"], r["a"][:9], round(r["in_domain"], 3),
                                          round(r["transfer"], 3)) for r in res["transfer"]], flush=True)


if __name__ == "__main__":
    main()
