"""The ``torchrun`` entry point of data-parallel training: ``vase-rl train``'s run loop
(:class:`~vase_rl.runs.training.SequenceTrainer`) with a
:class:`~vase_rl.runs.distributed.DistributedLearner` on every rank (``docs/scaling.md``)::

    torchrun --nproc_per_node=2 -m vase_rl.torchrun --sequence moving-fashion,mnist --preset cpu --out runs/ddp

Without torchrun it runs as a world of one process.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.distributed as dist

from vase_rl.cli import add_config_arguments, add_run_arguments, build_config, build_settings
from vase_rl.runs.distributed import DistributedLearner, ProcessGroupRanks, init_from_env
from vase_rl.runs.training import SequenceTrainer


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """Options of ``vase-rl train``'s config and run loop (:mod:`vase_rl.cli`), and the process group's."""
    p = argparse.ArgumentParser(
        prog="python -m vase_rl.torchrun",
        description="Data-parallel VASE training on a sequence of datasets; run under "
        "`torchrun --nproc_per_node=N` (without torchrun: one process). The options are "
        "`vase-rl train`'s (probes and imagination run in one process only).",
    )
    add_config_arguments(p)
    add_run_arguments(p)
    p.add_argument("--backend", default="auto", choices=("auto", "nccl", "gloo"), help="auto: nccl with CUDA")
    p.add_argument("--timeout-s", type=float, default=600.0, help="collective timeout")
    return p.parse_args(argv)


def run(args: argparse.Namespace, device: torch.device) -> int:
    """The run loop of ``vase-rl train`` on every rank (process group initialised); returns the final step.

    The run directory has ``vase-rl train``'s layout, so ``vase-rl evaluate/report OUT`` read it.
    """
    config = build_config(args)
    trainer = SequenceTrainer(
        config,
        build_settings(args, config, probes=False),
        args.out,
        resume=args.resume,
        learner=DistributedLearner(config, device=device),
        ranks=ProcessGroupRanks.current(),
    )
    trainer.run(progress=not args.quiet)
    return trainer.global_step


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = init_from_env(args.backend, args.timeout_s)
    try:
        step = run(args, device)
        if dist.get_rank() == 0:
            print(f"trained to step {step} on {dist.get_world_size()} process(es) -> {args.out}")
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
