"""One config surface: ``VASEConfig.for_row`` (the one parser of table rows incl. SD-[41]) behind
``vase-rl train`` and ``python -m vase_rl.torchrun``, which parse the same options."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

from vase_rl import cli
from vase_rl.core.config import Ablation, VASEConfig, get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.runs.run_format import read_log, read_run_config


def test_sd41_row_is_sd_without_the_decoder_proximity_and_nothing_else() -> None:
    cpu = get_preset("cpu")
    sd41 = VASEConfig.for_row("SD-[41]", entangled=False, base=cpu)
    sd = VASEConfig.for_row("sd", entangled=False, base=cpu)
    assert sd41.ablation == sd.ablation == Ablation(infer_env=True, dream=True, mask=False)
    assert (sd41.dream.decoder_proximity, sd.dream.decoder_proximity) == (False, True)
    assert dataclasses.replace(sd41, dream=sd.dream) == sd
    assert dataclasses.replace(sd, ablation=cpu.ablation) == cpu  # SD only switches the mask off


def test_entangled_row_switches_the_objective_and_keeps_the_base() -> None:
    cfg = VASEConfig.for_row("-", entangled=True, base=get_preset("cpu"))
    assert cfg.loss.entangled and cfg.ablation.code == "-" and cfg.preset == "cpu"
    assert VASEConfig.for_row("SDA").preset == "paper"  # default base: the paper preset


@pytest.mark.parametrize("code", ["SDX", "SSD", "S-[41]", "SD-[4]", "SD-[41]-[41]", "S D"])
def test_bad_row_code_raises_naming_it(code: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(code))):
        VASEConfig.for_row(code)


def test_ablation_parse_refuses_the_41_suffix_instead_of_dropping_it() -> None:
    assert Ablation.parse("SDA") == Ablation()
    with pytest.raises(ValueError, match="for_row"):
        Ablation.parse("SD-[41]")


def test_train_cli_and_distributed_entry_build_the_same_config_and_settings() -> None:
    from vase_rl.torchrun import _parse

    argv = [
        "--preset",
        "cpu",
        "--ablation",
        "SD-[41]",
        "--entangled",
        "--steps-per-env",
        "7",
        "--batch-size",
        "12",
        "--seed",
        "4",
        "--dream-anchor",
        "on-switch",
        "--log-every",
        "3",
        "--sequence",
        "mnist,shapes",
        "--out",
        "unused",
    ]
    p = argparse.ArgumentParser()
    cli.add_config_arguments(p)
    cli.add_run_arguments(p)
    train, ddp = p.parse_args(argv), _parse(argv)
    cfg = cli.build_config(train)
    assert cli.build_config(ddp) == cfg
    assert (cfg.steps_per_env, cfg.batch_size, cfg.seed, cfg.dream.decoder_proximity) == (7, 12, 4, False)
    assert cfg.dream.anchor == "on-switch"  # the flag, and the presets' own anchors without it:
    assert cli.build_config(p.parse_args(["--out", "x", "--preset", "paper"])).dream.anchor == "every-tau"
    assert cli.build_config(p.parse_args(["--out", "x", "--preset", "cpu"])).dream.anchor == "on-switch"
    s_train, s_ddp = cli.build_settings(train, cfg, probes=False), cli.build_settings(ddp, cfg, probes=False)
    assert s_train == s_ddp
    assert (s_train.sequence, s_train.steps_per_env, s_train.log_every, s_train.seed) == (
        ("mnist", "shapes"),
        7,
        3,
        4,
    )


def test_vase_rl_train_writes_a_run_with_the_row_config_and_resumes(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    args = [
        "train",
        "--sequence",
        "moving-shapes",
        "--steps-per-env",
        "3",
        "--batch-size",
        "4",
        "--ablation",
        "SD-[41]",
        "--no-probes",
        "--quiet",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--log-every",
        "1",
        "--out",
        str(tmp_path),
    ]
    try:
        assert cli.main(args) == 0
        assert (tmp_path / "done").exists()
        cfg, settings = read_run_config(str(tmp_path))
        assert cfg == VASEConfig.for_row("SD-[41]", base=get_preset("cpu")).with_overrides(
            steps_per_env=3, batch_size=4
        )
        assert settings.sequence == ("moving-shapes",) and not settings.probes
        assert [r["step"] for r in read_log(str(tmp_path))] == [1, 2, 3]
        assert cli.main([*args, "--resume"]) == 0  # a finished run resumes to its end: nothing to add
        assert [r["step"] for r in read_log(str(tmp_path))] == [1, 2, 3]
        assert ContinualLearner.load(str(tmp_path / "checkpoint.pt"), device="cpu").step == 3
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_torchrun_entry_runs_the_same_loop_with_checkpoints_on_every_rank(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "vase_rl.torchrun",
        "--sequence",
        "moving-shapes,shapes",
        "--preset",
        "cpu",
        "--steps-per-env",
        "5",
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--quiet",
        "--log-every",
        "2",
        "--checkpoint-every",
        "3",
        "--timeout-s",
        "120",
        "--ablation",
        "SD-[41]",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        cmd, check=True, cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, timeout=600
    )
    cfg, settings = read_run_config(str(out))
    assert not cfg.dream.decoder_proximity and cfg.batch_size == 8 and not settings.probes
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    timing = json.loads((out / "timing.json").read_text())
    assert (timing["world_size"], timing["backend"], timing["steps"]) == (2, "gloo", 10)
    assert [r["step"] for r in read_log(str(out))][-1] == 10 and (out / "done").exists()
    assert ContinualLearner.load(str(out / "checkpoint.pt"), device="cpu").step == 10
