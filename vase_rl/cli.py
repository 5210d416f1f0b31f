"""Command line: ``vase-rl train | report | evaluate | download-data | envs``.

The learner's config comes from one surface, :meth:`VASEConfig.for_row` (preset + table row + objective);
``python -m vase_rl.torchrun`` parses the same options (:func:`add_config_arguments`,
:func:`add_run_arguments`) and runs the same loop (:class:`vase_rl.runs.training.SequenceTrainer`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vase_rl.core.config import VASEConfig, get_preset

if TYPE_CHECKING:
    from vase_rl.evaluation.evaluate import EvalSettings
    from vase_rl.runs.run_format import RunSettings


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """Options choosing the learner's config and the run's datasets (shared with ``vase_rl.torchrun``)."""
    p.add_argument(
        "--sequence",
        default="moving-fashion,mnist,moving-mnist",
        help="comma-separated dataset names, trained one after another",
    )
    p.add_argument(
        "--preset",
        default="cpu",
        help="'cpu' (2-core scale), 'paper' (appendix Table 2, plain Algorithm 1; GPU) or "
        "'paper-heuristics' (Table 2 with the library's inference and mask rules; GPU)",
    )
    p.add_argument(
        "--steps-per-env", type=int, default=None, help="training steps per dataset (preset default)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="global batch (preset default); under torchrun split evenly over the ranks",
    )
    p.add_argument(
        "--ablation",
        default="SDA",
        help="components on: any of S (env inference), D (dreaming), A (mask); '-' for none; "
        "'SD-[41]' = SD without decoder proximity",
    )
    p.add_argument(
        "--entangled", action="store_true", help="entangled baseline: beta=1 ELBO, no capacity target"
    )
    p.add_argument(
        "--dream-anchor",
        default=None,
        choices=("every-tau", "on-switch"),
        help="when dreaming's snapshot is synced (DreamConfig.anchor; preset default): every tau steps "
        "(the paper) or when the inferred environment changes",
    )
    p.add_argument("--seed", type=int, default=0)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the run loop (shared with ``vase_rl.torchrun``)."""
    p.add_argument("--out", required=True, help="run directory (config.json, checkpoint.pt, log.jsonl, ...)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--log-every", type=int, default=25, help="steps between log.jsonl records")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train VASE on a sequence of datasets (checkpoints, TensorBoard, probes)"
    )
    add_config_arguments(p)
    add_run_arguments(p)
    p.add_argument("--imagination", action="store_true", help="imagination-driven exploration (A.4)")
    p.add_argument(
        "--imagination-fraction",
        type=float,
        default=0.5,
        help="share of each batch replaced by imagined (translated) images",
    )
    p.add_argument("--imagination-start-step", type=int, default=0, help="first step that imagines")
    p.add_argument("--no-probes", action="store_true", help="do not train the A.6 probes alongside")
    p.add_argument("--probe-eval-every", type=int, default=250)
    p.add_argument(
        "--probe-train-every",
        type=int,
        default=1,
        help="train the A.6 probes every this many learner steps (1: every step, as A.6)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--report", action="store_true", help="write the report when training finishes")
    p.add_argument(
        "--reference-entangled",
        action="store_true",
        help="also train the entangled beta=1 baseline on the same sequence and budget into "
        "OUT/reference-entangled (the report's reference row; no A.6 probes)",
    )
    add_eval_arguments(p)


def build_config(args: argparse.Namespace) -> VASEConfig:
    """The learner's config from :func:`add_config_arguments`' options: a row of the preset (``for_row``)."""
    cfg = VASEConfig.for_row(args.ablation, args.entangled, base=get_preset(args.preset))
    overrides: dict[str, Any] = {"seed": args.seed}
    for name in ("steps_per_env", "batch_size"):
        if getattr(args, name, None) is not None:
            overrides[name] = getattr(args, name)
    if getattr(args, "dream_anchor", None) is not None:
        overrides["dream"] = {"anchor": args.dream_anchor}
    return cfg.with_overrides(**overrides)


def build_settings(args: argparse.Namespace, config: VASEConfig, probes: bool) -> RunSettings:
    """The run settings of the shared options (sequence, seed, log/checkpoint periods) and ``config``."""
    from vase_rl.runs.run_format import (
        RunSettings,  # imports torch: after cmd_train has set the OpenMP policy
    )

    extra = {
        name: getattr(args, name)
        for name in ("probe_eval_every", "probe_train_every")
        if getattr(args, name, None) is not None
    }
    return RunSettings(
        sequence=tuple(s.strip() for s in args.sequence.split(",") if s.strip()),
        steps_per_env=config.steps_per_env,
        probes=probes,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        seed=args.seed,
        **extra,
    )


def cmd_train(args: argparse.Namespace) -> int:
    # idle OpenMP threads sleep instead of spinning (read when torch loads): on a loaded 2-core machine
    # a 2-thread step otherwise took 3-7x the CPU time (benchmarks/speed.py)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from vase_rl.runs.training import SequenceTrainer

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = build_config(args)
    settings = build_settings(args, cfg, probes=not args.no_probes)
    trainer = SequenceTrainer(cfg, settings, args.out, device=args.device, resume=args.resume)
    if args.imagination:
        from vase_rl.agents.translation import ImaginationConfig, make_imagination_hook

        icfg = ImaginationConfig(
            enabled=True,
            fraction=args.imagination_fraction,
            start_step=args.imagination_start_step,
            seed=args.seed,
        )
        trainer.set_batch_hook(make_imagination_hook(trainer.learner, icfg))
    t0 = time.time()
    trainer.run(progress=not args.quiet)
    print(f"trained to step {trainer.global_step} in {time.time() - t0:.0f}s -> {args.out}")
    if args.reference_entangled and trainer.global_step >= trainer.total_steps:
        from vase_rl.evaluation.quality import REFERENCE_DIR

        ref_cfg = VASEConfig.for_row("-", True, base=get_preset(args.preset)).with_overrides(
            seed=cfg.seed, steps_per_env=cfg.steps_per_env, batch_size=cfg.batch_size
        )
        ref_out = os.path.join(args.out, REFERENCE_DIR)
        ref = SequenceTrainer(
            ref_cfg,
            build_settings(args, ref_cfg, probes=False),
            ref_out,
            device=args.device,
            resume=args.resume,
        )
        ref.run(progress=not args.quiet)
        print(f"entangled reference trained to step {ref.global_step} -> {ref_out}")
    if args.report:
        from vase_rl.evaluation.report import write_report

        print("report:", write_report(args.out, eval_settings(args)))
    return 0


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the evaluation (``train --report``, ``report``, ``evaluate``)."""
    p.add_argument(
        "--quality",
        default="full",
        choices=("full", "quick", "off"),
        help="offline probes per stage: full (10,000 / 5,000 images, 40 MLP epochs), quick (5,000 / "
        "2,500, 20 epochs: a first run) or off",
    )


def eval_settings(args: argparse.Namespace) -> EvalSettings:
    """The evaluation settings of :func:`add_eval_arguments`' options."""
    from vase_rl.evaluation.evaluate import EvalSettings
    from vase_rl.probing.offline_probe import OfflineProbeConfig

    probe = OfflineProbeConfig.quick() if args.quality == "quick" else OfflineProbeConfig()
    return EvalSettings(quality=args.quality != "off", quality_probe=probe)


def cmd_report(args: argparse.Namespace) -> int:
    from vase_rl.evaluation.report import write_report

    print(write_report(args.run_dir, eval_settings(args)))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from vase_rl.evaluation.evaluate import evaluate_run

    result = evaluate_run(args.run_dir, eval_settings(args))
    print(json.dumps(result, indent=2, default=str)[:4000])
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from vase_rl.data.datasets import download

    for ds in args.datasets:
        print(download(ds, data_dir=args.data_dir))
    return 0


def cmd_envs(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import vase_rl.envs  # noqa: F401  (registers the ids)

    for env_id in sorted(k for k in gym.registry if k.startswith("vase_rl/")):
        print(env_id)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vase-rl",
        description="VASE: life-long disentangled representations (Achille et al. 2018) for RL agents.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    p = sub.add_parser("report", help="write RUN_DIR/report.md with figures and a metrics table")
    p.add_argument("run_dir")
    add_eval_arguments(p)
    p = sub.add_parser("evaluate", help="evaluate a trained run (writes RUN_DIR/evaluation.json)")
    p.add_argument("run_dir")
    add_eval_arguments(p)
    p = sub.add_parser("download-data", help="download MNIST / Fashion-MNIST with checksum verification")
    p.add_argument("datasets", nargs="+", choices=["mnist", "fashion_mnist"])
    p.add_argument(
        "--data-dir", default=None, help="target folder (default: $VASE_DATA_DIR or the user cache)"
    )
    sub.add_parser("envs", help="list the registered gymnasium ids")
    args = parser.parse_args(argv)
    handlers = {
        "train": cmd_train,
        "report": cmd_report,
        "evaluate": cmd_evaluate,
        "download-data": cmd_download,
        "envs": cmd_envs,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
