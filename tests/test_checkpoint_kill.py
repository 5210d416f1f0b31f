"""Checkpoint faults: SIGKILL during a save, truncated / corrupt / mismatched files, other configs."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import shapes_batches, tiny_config

from vase_rl.core.checkpoint import CheckpointError, remove_stale_temps, save_checkpoint
from vase_rl.core.learner import ContinualLearner

TESTS = Path(__file__).resolve().parent

# The child trains one step, saves (the "previous" checkpoint), keeps a copy of its bytes, then trains
# again and saves with a torch.save slowed to 4 KiB per 20 ms; it prints WRITING once the new file is
# partly written, and the parent SIGKILLs it there.
CHILD = textwrap.dedent("""
    import io, shutil, sys, time
    sys.path.insert(0, {tests!r})
    import torch
    from helpers import shapes_batches, tiny_config
    from vase_rl.core.learner import ContinualLearner

    path = {path!r}
    learner = ContinualLearner(tiny_config(), device="cpu")
    batches = shapes_batches(2, 8)
    learner.train_step(batches[0])
    if {save_first}:
        learner.save(path)
        shutil.copyfile(path, path + ".expected")
    real_save = torch.save

    def slow_save(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        for i in range(0, len(data), 4096):
            f.write(data[i:i + 4096])
            f.flush()
            if i == 4 * 4096:
                print("WRITING", flush=True)
            time.sleep(0.02)

    torch.save = slow_save
    learner.train_step(batches[1])
    learner.save(path)
    print("FINISHED", flush=True)
""")


def _kill_during_save(tmp_path: Path, save_first: bool) -> Path:
    """Run the child and SIGKILL it while its second checkpoint is half written; return the path."""
    path = tmp_path / "checkpoint.pt"
    code = CHILD.format(tests=str(TESTS), path=str(path), save_first=save_first)
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert child.stdout is not None
    try:
        line = child.stdout.readline().strip()
        assert line == "WRITING", f"child did not reach the slowed write (said {line!r})"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=120)
    assert child.returncode == -signal.SIGKILL
    return path


def test_sigkill_during_save_leaves_the_previous_checkpoint_loadable(tmp_path: Path) -> None:
    path = _kill_during_save(tmp_path, save_first=True)
    assert path.read_bytes() == (tmp_path / "checkpoint.pt.expected").read_bytes()
    learner = ContinualLearner.load(str(path), device="cpu")
    assert learner.step == 1  # the previous checkpoint, not the half-written one
    learner.train_step(shapes_batches(1, 8, seed=5)[0])  # and training resumes from it
    # the partial temp file is left behind by the kill; it is never mistaken for a checkpoint
    partial = [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")]
    assert len(partial) == 1
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        ContinualLearner.load(str(tmp_path / partial[0]), device="cpu")
    learner.save(str(path))  # a later save in the same folder succeeds and removes the dead writer's temp
    assert ContinualLearner.load(str(path), device="cpu").step == 2
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp-")] == []


def test_stale_temp_cleanup_keeps_a_live_writers_file(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.pt"
    live = tmp_path / f".tmp-checkpoint.pt-{os.getppid()}-abc.pt"  # the parent process is alive
    dead_pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    dead = tmp_path / f".tmp-checkpoint.pt-{dead_pid}-xyz.pt"
    other = tmp_path / f".tmp-other.pt-{dead_pid}-xyz.pt"  # another checkpoint's temp: not ours to touch
    for f in (live, dead, other):
        f.write_bytes(b"partial")
    assert remove_stale_temps(str(target)) == [dead.name]
    assert live.exists() and other.exists() and not dead.exists()


@pytest.mark.slow
def test_sigkill_during_the_first_save_leaves_no_checkpoint(tmp_path: Path) -> None:
    path = _kill_during_save(tmp_path, save_first=False)
    with pytest.raises(CheckpointError, match="does not exist"):
        ContinualLearner.load(str(path), device="cpu")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[ContinualLearner, bytes]:
    learner = ContinualLearner(tiny_config(), device="cpu")
    learner.train_step(shapes_batches(1, 8)[0])
    path = tmp_path_factory.mktemp("ckpt") / "ok.pt"
    learner.save(str(path))
    return learner, path.read_bytes()


def test_a_file_truncated_anywhere_is_rejected_with_its_name(
    saved: tuple[ContinualLearner, bytes], tmp_path: Path
) -> None:
    _, data = saved
    cuts = sorted({0, 1, 100, len(data) - 1, len(data) - 22, *np.linspace(0, len(data) - 1, 40).astype(int)})
    for cut in cuts:
        path = tmp_path / f"cut{cut}.pt"
        path.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=f"cut{cut}.pt"):
            ContinualLearner.load(str(path), device="cpu")


def _full_state(learner: ContinualLearner) -> dict[str, Any]:
    return copy.deepcopy(learner.state_dict())


def _states_equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_states_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_states_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    return bool(a == b)


@pytest.mark.parametrize(
    "override, field",
    [
        ({"model": {"latent_dim": 8}}, "model.latent_dim"),
        ({"model": {"max_environments": 3}}, "model.max_environments"),
        ({"model": {"likelihood": "gaussian"}}, "model.likelihood"),
        ({"loss": {"gamma": 3.0}}, "loss.gamma"),
        ({"lr": 1e-3}, "lr"),
    ],
)
def test_a_checkpoint_from_another_config_is_refused_and_nothing_is_loaded(
    saved: tuple[ContinualLearner, bytes], tmp_path: Path, override: dict[str, Any], field: str
) -> None:
    path = tmp_path / "ok.pt"
    path.write_bytes(saved[1])
    other = ContinualLearner(tiny_config(**override), device="cpu")
    other.train_step(shapes_batches(1, 8, seed=9)[0])
    before = _full_state(other)
    with pytest.raises(CheckpointError, match=f"another configuration.*{field}: checkpoint="):
        other.load_into(str(path))
    assert _states_equal(before, _full_state(other))


def test_steps_per_env_and_preset_name_may_differ(
    saved: tuple[ContinualLearner, bytes], tmp_path: Path
) -> None:
    path = tmp_path / "ok.pt"
    path.write_bytes(saved[1])
    other = ContinualLearner(tiny_config(steps_per_env=7, preset="renamed"), device="cpu")
    other.load_into(str(path))
    assert other.step == 1


def test_wrapper_load_rejects_a_corrupt_checkpoint(
    saved: tuple[ContinualLearner, bytes], tmp_path: Path
) -> None:
    import gymnasium as gym

    import vase_rl.envs  # noqa: F401
    from vase_rl.rl.wrapper import VASEObservation

    path = tmp_path / "half.pt"
    path.write_bytes(saved[1][: len(saved[1]) // 3])
    with pytest.raises(CheckpointError, match=r"half\.pt"):
        VASEObservation.load(str(path), gym.make("vase_rl/MovingShapes-v0", canvas_size=16))


def test_a_tampered_state_with_a_matching_config_is_refused_and_nothing_is_loaded(tmp_path: Path) -> None:
    learner = ContinualLearner(tiny_config(), device="cpu")
    foreign = ContinualLearner(tiny_config(model={"latent_dim": 8}), device="cpu")
    path = tmp_path / "tampered.pt"
    save_checkpoint(str(path), learner.config, foreign.state_dict(), {})
    before = _full_state(learner)
    with pytest.raises(CheckpointError, match=r"tampered\.pt"):
        learner.load_into(str(path))
    assert _states_equal(before, _full_state(learner))


def test_every_single_byte_corruption_is_rejected_or_harmless(
    saved: tuple[ContinualLearner, bytes], tmp_path: Path
) -> None:
    learner, data = saved
    reference = learner.model.state_dict()
    rng = np.random.default_rng(0)
    for i, pos in enumerate(rng.integers(0, len(data), 60)):
        corrupt = bytearray(data)
        corrupt[int(pos)] ^= 0xFF
        path = tmp_path / f"flip{i}.pt"
        path.write_bytes(bytes(corrupt))
        try:
            loaded = ContinualLearner.load(str(path), device="cpu")
        except CheckpointError:
            continue
        assert all(torch.equal(v, reference[k]) for k, v in loaded.model.state_dict().items()), f"byte {pos}"
