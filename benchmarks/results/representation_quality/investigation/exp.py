"""Investigation runner: train one config on one dataset for N steps; offline-probe mu."""
import json, sys, time, os
import numpy as np, torch
torch.set_num_threads(1)
from vase_rl.config import get_preset, Ablation
from vase_rl.learner import ContinualLearner
from vase_rl.envs.sampler import SpriteSampler
from vase_rl.offline_probe import encode_codes, probe_factors, OfflineProbeConfig, pixel_codes

def run(name, dataset, steps, overrides, canvas=32, seed=100, probes=("mlp",), refs=False):
    cfg = get_preset("cpu").with_overrides(seed=seed, **overrides)
    if canvas != cfg.model.image_size:
        cfg = cfg.with_overrides(model={"image_size": canvas})
    learner = ContinualLearner(cfg, device="cpu")
    pc = OfflineProbeConfig()
    tr_x, tr_f = SpriteSampler(dataset, canvas, split="train", seed=seed + 1).sample(pc.train_size)
    te_x, te_f = SpriteSampler(dataset, canvas, split="test", seed=seed + 2).sample(pc.test_size)
    res = {"name": name, "dataset": dataset, "steps": steps, "canvas": canvas, "overrides": overrides}
    if refs:
        res["untrained"] = probe_factors(encode_codes(learner.encode, tr_x), tr_f, encode_codes(learner.encode, te_x), te_f, dataset, probes)
    sampler = SpriteSampler(dataset, canvas, seed=seed)
    t0 = time.process_time()
    checkpoints = sorted(set([steps] + [s for s in (500, 1000, 2500, 5000) if s < steps]))
    done = 0
    curve = {}
    for c in checkpoints:
        for _ in range(c - done):
            out = learner.train_step(sampler.sample(cfg.batch_size)[0])
        done = c
        cpu = time.process_time() - t0
        r = probe_factors(encode_codes(learner.encode, tr_x), tr_f, encode_codes(learner.encode, te_x), te_f, dataset, probes)
        o = out.to_log() if hasattr(out, "to_log") else out
        curve[c] = {"probe": r, "cpu_s": cpu, "recon": o["recon"], "kl": o["kl"], "n_envs": o["n_envs"]}
        print(name, c, json.dumps(curve[c]), flush=True)
    res["curve"] = curve
    if refs:
        res["pixels"] = probe_factors(pixel_codes(tr_x), tr_f, pixel_codes(te_x), te_f, dataset, probes)
    return res

if __name__ == "__main__":
    name, dataset, steps, ov = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
    canvas = int(sys.argv[5]) if len(sys.argv) > 5 else 32
    refs = len(sys.argv) > 6 and sys.argv[6] == "refs"
    r = run(name, dataset, steps, ov, canvas, refs=refs)
    os.makedirs("/tmp/inv/out", exist_ok=True)
    json.dump(r, open(f"/tmp/inv/out/{name}.json", "w"), indent=1)
    print("RESULT", json.dumps(r))
