"""Data-parallel learner (vase_rl.runs.distributed): 2 gloo processes equal one process on the combined batch.

One module-scoped spawn of 2 CPU ranks runs every distributed scenario (process start-up dominates the
cost); the tests assert on what the ranks recorded. The torchrun entry point runs under ``-m slow``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import shapes_batches, tiny_config

from vase_rl.core.config import VASEConfig
from vase_rl.core.inference import EnvironmentOverflowError
from vase_rl.core.learner import ContinualLearner
from vase_rl.runs.distributed import DistributedLearner

WORLD = 2
ROOT = Path(__file__).resolve().parents[1]


def scenario_config() -> VASEConfig:
    """Tiny model; inference tuned so that the noise phase allocates a second environment (which turns
    dreaming and the dream classifier term on) within 32 steps, with used-latent updates and tau syncs."""
    return tiny_config(inference={"grace_steps": 10, "patience": 1, "kappa": 1.01})


def scenario_batches() -> list[np.ndarray]:
    """32 global batches of 16: 20 of moving shapes, then 12 of uniform noise (a new environment)."""
    shapes = shapes_batches(20, 16, seed=3)
    noise = [np.random.default_rng(i).integers(0, 256, shapes[0].shape, dtype=np.uint8) for i in range(12)]
    return shapes + noise


def _expect_error(fn: Any) -> str:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001  (recorded for the parent process to assert on)
        return f"{type(exc).__name__}: {exc}"
    return "no error"


def _overflow() -> None:
    raise EnvironmentOverflowError("full")


def _rank_main(rank: int, rendezvous: str, out_dir: str) -> None:
    """One rank: error propagation first (no state change), then the training scenario and a checkpoint."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD)
    learner = DistributedLearner(scenario_config(), device="cpu")
    good = scenario_batches()[0][rank * 8 : (rank + 1) * 8]
    record: dict[str, Any] = {
        "bad_input": _expect_error(
            lambda: learner.train_step(good.astype(np.float32) if rank == 1 else good)
        ),
        "unequal": _expect_error(lambda: learner.train_step(good[: 8 - 2 * rank])),
        "rank0_error": _expect_error(lambda: learner.on_rank0(_overflow)),
    }
    record["outs"] = [learner.train_step(x[rank * 8 : (rank + 1) * 8]).to_log() for x in scenario_batches()]
    record["in_sync"] = learner.parameters_in_sync()
    record["state"] = learner.state_dict()
    learner.save(os.path.join(out_dir, "checkpoint.pt"))
    torch.save(record, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """The reference runs like each rank: one thread (restored afterwards for the other test modules)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], str]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_rank_main, args=(str(out / "rendezvous"), str(out)), nprocs=WORLD, join=True)
    records = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    return records, str(out / "checkpoint.pt")


@pytest.fixture(scope="module")
def reference() -> tuple[list[dict[str, Any]], ContinualLearner]:
    """One process, the same config, the combined batches."""
    learner = ContinualLearner(scenario_config(), device="cpu")
    return [learner.train_step(x).to_log() for x in scenario_batches()], learner


def test_two_gloo_ranks_equal_one_process_on_the_combined_batch(ranks, reference) -> None:
    records, _ = ranks
    ref_outs, ref = reference
    outs = records[0]["outs"]
    # the discrete decisions are identical, step by step, and the scenario exercises allocation + dreaming
    for key in ("env", "new_env", "n_envs", "reason", "mask", "raw_mask", "used", "step"):
        assert [o[key] for o in outs] == [o[key] for o in ref_outs], key
    assert ref_outs[-1]["n_envs"] == 2 and "dream/loss" in ref_outs[-1]
    # combined-batch statistics and losses agree within float tolerance
    for key in ("loss", "recon", "kl", "capacity_loss", "classifier_loss", "dream/loss"):
        got = [o.get(key, 0.0) for o in outs]
        want = [o.get(key, 0.0) for o in ref_outs]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4, err_msg=key)
    np.testing.assert_allclose(
        [o["atypicality"] for o in outs], [o["atypicality"] for o in ref_outs], atol=1e-4
    )
    state = records[0]["state"]
    for name, tensor in ref.model.state_dict().items():
        torch.testing.assert_close(state["model"][name], tensor, atol=1e-5, rtol=1e-4, msg=name)
    assert torch.equal(state["generator"], ref.generator.get_state())  # the same random draws
    mem, ref_mem = state["memory"], ref.memory.state_dict()
    assert mem["n_seen"] == ref_mem["n_seen"]
    for key in ("masks", "used", "steps"):
        assert torch.equal(mem[key], ref_mem[key]), key
    seen = ref_mem["n_seen"]
    torch.testing.assert_close(mem["recon_avg"][:seen], ref_mem["recon_avg"][:seen], rtol=1e-5, atol=1e-4)


def test_every_rank_holds_the_same_parameters_memory_and_generator(ranks) -> None:
    records, _ = ranks
    assert all(r["in_sync"] for r in records)
    a, b = (r["state"] for r in records)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["snapshot"][k], b["snapshot"][k]) for k in a["snapshot"])
    assert torch.equal(a["generator"], b["generator"])
    for key in ("masks", "used", "recon_avg", "steps", "alpha_avg"):
        assert torch.equal(a["memory"][key], b["memory"][key]), key
    assert [o["loss"] for o in records[0]["outs"]] == [o["loss"] for o in records[1]["outs"]]


def test_bad_or_unequal_local_batches_raise_on_every_rank(ranks) -> None:
    records, _ = ranks
    for rank, rec in enumerate(records):
        assert rec["bad_input"].startswith("ValueError")
        assert "local batch sizes by rank: [8, 0]" in rec["bad_input"]
        assert rec["unequal"].startswith("ValueError") and "[8, 6]" in rec["unequal"], rank
    # the rank with the bad batch says why
    assert "float images must lie in [0, 1]" in records[1]["bad_input"]


def test_an_error_on_rank0_is_raised_on_every_rank(ranks) -> None:
    records, _ = ranks
    assert [r["rank0_error"] for r in records] == ["EnvironmentOverflowError: full"] * WORLD


def test_rank0_checkpoint_loads_into_a_plain_learner(ranks) -> None:
    records, path = ranks
    learner = ContinualLearner.load(path, device="cpu")
    assert learner.step == len(scenario_batches()) and learner.memory.n_seen == 2
    state = records[0]["state"]["model"]
    assert all(torch.equal(state[k], v) for k, v in learner.model.state_dict().items())


def test_distributed_learner_needs_a_process_group() -> None:
    with pytest.raises(RuntimeError, match="init_process_group"):
        DistributedLearner(tiny_config(), device="cpu")


def _entry_point(launcher: list[str], out: Path) -> ContinualLearner:
    cmd = [
        *launcher,
        "-m",
        "vase_rl.torchrun",
        "--sequence",
        "moving-shapes,shapes",
        "--preset",
        "cpu",
        "--steps-per-env",
        "6",
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--quiet",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, cwd=ROOT, env=env, capture_output=True, timeout=600)
    assert (out / "done").exists()
    return ContinualLearner.load(str(out / "checkpoint.pt"), device="cpu")


@pytest.mark.slow
def test_torchrun_entry_point_with_two_ranks_equals_one_process(tmp_path: Path) -> None:
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    two = _entry_point(torchrun, tmp_path / "two")
    one = _entry_point([sys.executable], tmp_path / "one")
    assert two.step == one.step == 12
    assert torch.equal(two.generator.get_state(), one.generator.get_state())
    assert torch.equal(two.memory.masks, one.memory.masks) and two.memory.n_seen == one.memory.n_seen
    for a, b in zip(two.model.parameters(), one.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
