"""Figures of a run (vase_rl.evaluation.plots): each writes a non-empty PNG of the requested pixel size."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from vase_rl.core.config import get_preset
from vase_rl.data import datasets as data
from vase_rl.evaluation import plots
from vase_rl.evaluation.evaluate import env_datasets, held_out
from vase_rl.runs.loaded_run import LoadedRun, load_run
from vase_rl.runs.training import RunSettings, SequenceTrainer

HAVE_MNIST = (data.get_data_dir() / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()
TINY_SEQUENCE = ("moving-shapes", "mnist") if HAVE_MNIST else ("moving-shapes", "shapes")
"""The tiny run's datasets (static shapes stand in for MNIST when the real data is absent)."""
_TINY_RUNS: dict[str, str] = {}
"""Built tiny runs, shared by test_plots and test_report within one pytest session."""


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread (tiny convolutions: more threads only add overhead on a shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def build_tiny_run(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 120-step two-dataset run on 16x16 images (built once per session, ~10 s on one CPU core)."""
    if "run" not in _TINY_RUNS:
        cfg = get_preset("cpu").with_overrides(
            model={"image_size": 16, "conv_channels": (8, 8, 16, 16), "hidden_dim": 64, "latent_dim": 6},
            inference={"grace_steps": 10},
            dream={"tau": 20},
            mask={"used_every": 20},
        )
        settings = RunSettings(
            sequence=TINY_SEQUENCE,
            steps_per_env=60,
            probe_eval_every=20,
            probe_eval_size=200,
            log_every=5,
            checkpoint_every=60,
        )
        out = str(tmp_path_factory.mktemp("tiny_run"))
        with one_thread(), torch.random.fork_rng(devices=[]):
            SequenceTrainer(cfg, settings, out, device="cpu").run(progress=False)
        _TINY_RUNS["run"] = out
    return _TINY_RUNS["run"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> LoadedRun:
    return load_run(build_tiny_run(tmp_path_factory))


def _stages(run: LoadedRun) -> plots.Stages:
    return plots.Stages(run.settings.sequence, run.settings.steps_per_env)


def _figure_calls(run: LoadedRun) -> dict[str, Callable[..., str]]:
    """Each figure function bound to the tiny run's data; call with (path, figsize=..., dpi=...)."""
    learner, stages, cfg = run.learner, _stages(run), run.config
    batches = {name: held_out(run, name, 4)[0] for name in run.datasets}
    names = env_datasets(run.log, run.settings.sequence)
    n = max(learner.memory.n_seen, 1)
    return {
        "traversals": lambda p, **kw: plots.plot_latent_traversals(
            learner, {k: b[0] for k, b in batches.items()}, {k: 0 for k in batches}, p, **kw
        ),
        "cross": lambda p, **kw: plots.plot_cross_reconstructions(learner, batches, names, p, **kw),
        "atypicality": lambda p, **kw: plots.plot_atypicality(
            run.log, stages, cfg.mask.lambda0, cfg.mask.lambda1, p, **kw
        ),
        "probes": lambda p, **kw: plots.plot_probe_curves(run.probes, stages, p, **kw),
        "usage": lambda p, **kw: plots.plot_latent_usage(
            learner.memory.masks[:n], learner.memory.used[:n], names, p, **kw
        ),
        "usage_training": lambda p, **kw: plots.plot_usage_over_training(run.log, stages, p, **kw),
        "env_inference": lambda p, **kw: plots.plot_environment_inference(run.log, stages, p, **kw),
        "losses": lambda p, **kw: plots.plot_losses(run.log, stages, p, **kw),
    }


FIGURES = (
    "traversals",
    "cross",
    "atypicality",
    "probes",
    "usage",
    "usage_training",
    "env_inference",
    "losses",
)


@pytest.mark.parametrize("name", FIGURES)
def test_figure_writes_png_of_requested_pixel_size(run: LoadedRun, tmp_path: Path, name: str) -> None:
    path = str(tmp_path / "sub" / f"{name}.png")  # a missing folder is created
    out = _figure_calls(run)[name](path, figsize=(4.0, 3.0), dpi=50)
    assert out == path and os.path.getsize(path) > 1000
    img = mpimg.imread(path)
    assert img.shape[:2] == (150, 200)
    assert float(np.std(img[..., :3])) > 0.01  # something was drawn, not a blank canvas


@pytest.mark.parametrize("name", ["traversals", "cross", "atypicality", "probes"])
def test_default_figure_size_is_readable(run: LoadedRun, tmp_path: Path, name: str) -> None:
    img = mpimg.imread(_figure_calls(run)[name](str(tmp_path / f"{name}.png")))
    assert img.shape[0] >= 400 and img.shape[1] >= 450


def test_stages_boundaries_and_usage_states() -> None:
    assert plots.Stages(("a", "b", "c"), 10).boundaries == [10, 20]
    state = plots._usage_state(torch.tensor([True, True, False]), torch.tensor([True, False, True]))
    assert state.tolist() == [2, 1, 0]  # used & active, active unused, masked
    assert plots.env_label(1, {1: ["mnist", "fashion"]}) == "s1: mnist/fashion"
    assert plots.env_label(2, {}) == "s2: (unassigned)"


def test_mosaic_tiles_rows_and_columns() -> None:
    images = np.zeros((2, 3, 1, 4, 5), dtype=np.float32)
    images[1, 2] = 1.0
    grid = plots._mosaic(images, pad=1)
    assert grid.shape == (2 * 5 - 1, 3 * 6 - 1, 3)
    assert np.all(grid[5:9, 12:17] == 1.0) and np.all(grid[0:4, 0:5] == 0.0)
    assert np.all(grid[4, :] == plots.PAD)  # the gap between rows
