"""Long-run stability of the learner: 10,000 steps over a 7-dataset sequence, 1 thread.

What it checks, and how (every number lands in ``benchmarks/results/long_run.{json,md}``):

1. **No NaN.** Every ``train_step`` loss is finite (the learner raises ``NonFiniteLossError``
   otherwise, which is caught and reported), and every ``probe_every`` steps ``learner.encode`` of a
   fixed probe batch from each dataset is checked for NaN/inf.
2. **Bounded memory.** All datasets are loaded *before* training (so loading data is not counted as
   growth); RSS (``/proc/self/statm``) is sampled every ``rss_every`` steps. Growth = (max RSS after
   warm-up - RSS at the end of warm-up) / RSS at the end of warm-up; target < 5 %. The least-squares
   slope after warm-up (MiB per 1,000 steps) is reported too.
3. **Environment inference vs the truth.** The truth after step t is the number of distinct datasets
   seen so far. The excess is ``memory.n_seen - truth``; target: never more than one. The timeline of
   inferred environments (runs of equal ``env``), every allocation with its step, dataset and reason,
   and the dominant environment of each dataset are reported. ``EnvironmentOverflowError`` (more than
   ``max_environments`` = 7 allocations) is caught and reported as a finding, not hidden; with
   ``--continue_after_overflow`` (default) the run then does what the error message suggests -- sets
   ``InferenceConfig.on_overflow="merge"`` -- and goes on, so checks 1 and 2 still cover every step.

Run it in the background (about 30-60 min on a shared 2-core CPU)::

    nohup .venv/bin/python benchmarks/long_run.py > /tmp/long_run.log 2>&1 &

It checkpoints every ``checkpoint_every`` steps; ``--resume`` continues an interrupted run.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import cli_args
import common
import numpy as np
import torch
from tqdm.auto import tqdm

from vase_rl.core.checkpoint import load_checkpoint
from vase_rl.core.config import get_preset
from vase_rl.core.inference import EnvironmentOverflowError
from vase_rl.core.learner import ContinualLearner, NonFiniteLossError
from vase_rl.runs.training import make_sampler

RESULTS = common.RESULTS
SEQUENCE = (
    "moving-mnist",
    "fashion",
    "inverse-fashion",
    "mnist",
    "moving-fashion",
    "shapes",
    "moving-shapes",
)


@dataclass
class Args(cli_args.PresetArgs, cli_args.ThreadsArgs):
    steps: int = 10_000
    """Total learner steps, split evenly over the sequence (ceil(steps / len(sequence)) each)."""
    sequence: tuple[str, ...] = SEQUENCE
    """Datasets trained on one after another (7 = the cpu preset's max_environments)."""
    seed: int = 0
    """Seed of the learner and the data streams."""
    warmup: int = 1000
    """Steps before the RSS baseline is taken."""
    rss_every: int = 100
    """RSS sampling period (steps)."""
    probe_every: int = 500
    """Period of the NaN check of ``encode`` on a fixed batch of every dataset."""
    checkpoint_every: int = 1000
    """Checkpoint period (steps)."""
    checkpoint: str = "/tmp/vase_long_run/checkpoint.pt"
    """Resumable checkpoint (learner + samplers + records)."""
    resume: bool = False
    """Continue from ``checkpoint`` if it exists."""
    continue_after_overflow: bool = True
    """After EnvironmentOverflowError: record it, switch to on_overflow='merge' and go on (False: stop)."""
    out: str = str(RESULTS / "long_run")
    """Output stem: writes OUT.json and OUT.md."""


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def env_runs(envs: list[int]) -> list[list[int]]:
    """Compress a per-step environment list into runs ``[first_step, last_step, env]`` (steps from 0)."""
    runs: list[list[int]] = []
    for step, env in enumerate(envs):
        if runs and runs[-1][2] == env:
            runs[-1][1] = step
        else:
            runs.append([step, step, env])
    return runs


class LongRun:
    """The training loop with its measurements; ``state`` is what a checkpoint carries."""

    def __init__(self, args: Args) -> None:
        self.args = args
        self.config = get_preset(args.preset).with_overrides(seed=args.seed)
        self.learner = ContinualLearner(self.config, device="cpu")
        size = self.config.model.image_size
        self.samplers = {
            n: make_sampler(n, size, "train", args.seed * 1000 + i) for i, n in enumerate(args.sequence)
        }
        self.probe_batches = {
            n: make_sampler(n, size, "test", 10_000 + i).sample(64)[0] for i, n in enumerate(args.sequence)
        }
        self.per_stage = math.ceil(args.steps / len(args.sequence))
        self.state: dict[str, Any] = {
            "step": 0,
            "envs": [],
            "allocations": [],
            "rss": [],
            "max_excess": 0,
            "min_excess": 0,
            "encode_nan": [],
            "findings": [],
            "reasons": {n: {} for n in args.sequence},
            "stopped": None,
            "seconds": 0.0,
        }
        if args.resume and os.path.exists(args.checkpoint):
            # its config: may be 'merge' by now
            config, learner_state, extra = load_checkpoint(args.checkpoint)
            self.learner = ContinualLearner(config, device="cpu")
            self.learner.load_state_dict(learner_state)
            self.state = extra["state"]
            for name, st in extra["samplers"].items():
                self.samplers[name].load_state_dict(st)

    def save(self) -> None:
        samplers = {k: s.state_dict() for k, s in self.samplers.items()}
        self.learner.save(self.args.checkpoint, {"state": self.state, "samplers": samplers})

    def stage(self, step: int) -> int:
        return min(step // self.per_stage, len(self.args.sequence) - 1)

    def check_encode(self, step: int) -> None:
        for name, imgs in self.probe_batches.items():
            if not bool(torch.isfinite(self.learner.encode(imgs)).all()):
                self.state["encode_nan"].append({"step": step, "dataset": name})

    def one_step(self, step: int) -> None:
        st, stage = self.state, self.stage(step)
        name = self.args.sequence[stage]
        out = self.learner.train_step(self.samplers[name].sample(self.config.batch_size)[0]).to_log()
        st["envs"].append(out["env"])
        excess = out["n_envs"] - (stage + 1)
        st["max_excess"], st["min_excess"] = max(st["max_excess"], excess), min(st["min_excess"], excess)
        reasons = st["reasons"][name]
        reasons[out["reason"]] = reasons.get(out["reason"], 0) + 1
        if out["new_env"]:
            st["allocations"].append(
                {"step": step, "dataset": name, "env": out["env"], "reason": out["reason"]}
            )
        if step % self.args.rss_every == 0:
            st["rss"].append([step, rss_mib()])
        if step % self.args.probe_every == 0:
            self.check_encode(step)

    def merge_from_now_on(self) -> None:
        """What the overflow error suggests: reuse the closest environment instead of raising."""
        self.learner.config = self.learner.config.with_overrides(inference={"on_overflow": "merge"})
        self.state["findings"][-1]["action"] = "continued with InferenceConfig.on_overflow='merge'"

    def run(self) -> None:
        a, st = self.args, self.state
        torch.set_num_threads(a.threads)
        bar = tqdm(total=a.steps, initial=st["step"], desc="long run", unit="step", mininterval=30)
        t0, base = time.time(), st["seconds"]
        try:
            while st["step"] < a.steps and st["stopped"] is None:
                try:
                    self.one_step(st["step"])
                except (EnvironmentOverflowError, NonFiniteLossError) as exc:
                    finding = {"step": st["step"], "error": type(exc).__name__, "message": str(exc)}
                    st["findings"].append(finding)
                    if isinstance(exc, EnvironmentOverflowError) and a.continue_after_overflow:
                        self.merge_from_now_on()
                        continue  # the same step again, on a fresh batch
                    st["stopped"] = st["findings"][-1]
                    break
                st["step"] += 1
                st["seconds"] = base + time.time() - t0
                bar.update(1)
                if st["step"] % 100 == 0:
                    bar.set_postfix(
                        env=st["envs"][-1],
                        n_envs=self.learner.memory.n_seen,
                        rss=f"{st['rss'][-1][1]:.0f}MiB",
                    )
                if st["step"] % a.checkpoint_every == 0:
                    self.save()
        finally:
            bar.close()
        self.check_encode(st["step"])
        st["rss"].append([st["step"], rss_mib()])

    def summary(self) -> dict[str, Any]:
        a, st = self.args, self.state
        rss = np.array(st["rss"], dtype=float)
        after = rss[rss[:, 0] >= a.warmup]
        base = float(after[0, 1]) if len(after) else float("nan")
        growth = (float(after[:, 1].max()) - base) / base if len(after) else float("nan")
        slope = float(np.polyfit(after[:, 0], after[:, 1], 1)[0] * 1000) if len(after) > 2 else float("nan")
        envs = st["envs"]
        dominant = {}
        for i, name in enumerate(a.sequence):
            seg = envs[i * self.per_stage : (i + 1) * self.per_stage]
            if seg:
                vals, counts = np.unique(seg, return_counts=True)
                dominant[name] = {
                    "env": int(vals[counts.argmax()]),
                    "share": float(counts.max() / len(seg)),
                    "envs_seen": {int(v): int(c) for v, c in zip(vals, counts, strict=True)},
                }
        return {
            "args": {**asdict(a), "sequence": list(a.sequence)},
            "steps_done": st["step"],
            "steps_per_dataset": self.per_stage,
            "findings": st["findings"],
            "stopped_by": st["stopped"],
            "nan": {
                "train_loss_nonfinite": any(f["error"] == "NonFiniteLossError" for f in st["findings"]),
                "encode_nonfinite": st["encode_nan"],
            },
            "rss_mib": {
                "warmup_end": base,
                "max_after_warmup": float(after[:, 1].max()) if len(after) else None,
                "final": float(rss[-1, 1]),
                "growth_after_warmup": growth,
                "slope_mib_per_1k_steps": slope,
                "samples": st["rss"],
            },
            "inference": {
                "n_envs_final": self.learner.memory.n_seen,
                "truth_final": self.stage(st["step"] - 1) + 1,
                "max_excess_over_truth": st["max_excess"],
                "min_excess_over_truth": st["min_excess"],
                "allocations": st["allocations"],
                "dominant_env_per_dataset": dominant,
                "inference_outcomes_per_dataset": st["reasons"],
                "timeline": env_runs(envs),
            },
            "seconds": st["seconds"],
            "steps_per_s": st["step"] / max(st["seconds"], 1e-9),
            "hardware": common.hardware(),  # at the end of the run
        }


def summarise(s: dict[str, Any]) -> str:
    """The markdown report of a :meth:`LongRun.summary`."""
    inf, rss, hw = s["inference"], s["rss_mib"], s["hardware"]
    by = s["stopped_by"]
    stopped = "no" if by is None else f"**{by['error']} at step {by['step']}**"
    within = inf["max_excess_over_truth"] <= 1
    lines = [
        "# Long-run stability",
        "",
        (
            f"Produced by `python benchmarks/long_run.py` (preset `{s['args']['preset']}`, {s['steps_done']} of "
            f"{s['args']['steps']} steps, {s['steps_per_dataset']} per dataset, seed {s['args']['seed']}, "
            f"{hw.get('torch_threads', hw.get('threads'))} torch thread on a shared {hw['cpu']}, "
            f"torch {hw['torch']}; "
            f"{s['seconds'] / 60:.1f} min, {s['steps_per_s']:.2f} steps/s)."
        ),
        "",
        f"Sequence: {', '.join(s['args']['sequence'])}.",
        "",
        "| check | result | target |",
        "|---|---|---|",
        f"| run stopped early by an error | {stopped} | no |",
        f"| errors caught (see Findings) | {len(s['findings'])} | 0 |",
        f"| non-finite training loss | {s['nan']['train_loss_nonfinite']} | False |",
        (
            f"| non-finite `encode` outputs (every {s['args']['probe_every']} steps, all datasets) | "
            f"{len(s['nan']['encode_nonfinite'])} | 0 |"
        ),
        f"| RSS at end of warm-up (step {s['args']['warmup']}) | {rss['warmup_end']:.1f} MiB | |",
        f"| max RSS after warm-up / final | {rss['max_after_warmup']:.1f} / {rss['final']:.1f} MiB | |",
        f"| RSS growth after warm-up | {100 * rss['growth_after_warmup']:.2f} % | < 5 % |",
        f"| RSS slope after warm-up | {rss['slope_mib_per_1k_steps']:.2f} MiB / 1k steps | ~0 |",
        f"| environments allocated / datasets seen | {inf['n_envs_final']} / {inf['truth_final']} | |",
        (
            f"| max (allocated - seen) at any step | {inf['max_excess_over_truth']} | "
            f"<= 1 ({'met' if within else 'NOT met'}) |"
        ),
        (
            f"| min (allocated - seen) at any step | {inf['min_excess_over_truth']} | "
            "(negative = datasets merged) |"
        ),
        "",
        "## Findings",
        "",
    ]
    lines += [
        f"- step {f['step']}: `{f['error']}`: {f['message']}"
        + (f" -> {f['action']}." if "action" in f else "")
        for f in s["findings"]
    ] or ["- none"]
    lines += ["", "## Allocations", "", "| step | dataset | env | reason |", "|---|---|---|---|"]
    lines += [
        f"| {al['step']} | {al['dataset']} | {al['env']} | {al['reason']} |" for al in inf["allocations"]
    ]
    lines += [
        "",
        "## Inferred environment per dataset",
        "",
        "| dataset | dominant env | share | envs (steps) | inference outcomes (steps) |",
        "|---|---|---|---|---|",
    ]
    for name, d in inf["dominant_env_per_dataset"].items():
        outcomes = inf["inference_outcomes_per_dataset"].get(name, {})
        lines.append(f"| {name} | {d['env']} | {100 * d['share']:.1f} % | {d['envs_seen']} | {outcomes} |")
    return "\n".join(lines) + "\n"


def run(args: Args) -> dict[str, Any]:
    """Train (or resume) the long run and return its :meth:`LongRun.summary`."""
    long_run = LongRun(args)
    long_run.run()
    return long_run.summary()


def main() -> None:
    args = cli_args.parse_args(Args, __doc__)
    common.write_report(args.out, run(args), summarise)


if __name__ == "__main__":
    main()
