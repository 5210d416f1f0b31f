"""Post-hoc evaluation (vase_rl.evaluation.evaluate) and the markdown report (vase_rl.evaluation.report)
of a tiny run."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from test_plots import build_tiny_run, one_thread  # the same tiny run, built once per session

from vase_rl.core.config import get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.core.losses import reconstruction_nll
from vase_rl.evaluation.evaluate import (
    EvalSettings,
    evaluate_loaded,
    evaluate_run,
    ground_truth_factors,
    information_check,
    probe_summary,
    torch_threads,
)
from vase_rl.evaluation.report import FIGURES, INFO_MIN_NATS, SECTIONS, write_report
from vase_rl.probing.metrics import environment_inference_accuracy
from vase_rl.probing.offline_probe import OfflineProbeConfig
from vase_rl.probing.probes import ProbeHistory
from vase_rl.runs.loaded_run import LoadedRun, load_run

FAST = EvalSettings(
    n_samples=300,
    info_batch=200,
    dci_rounds=10,
    quality_probe=OfflineProbeConfig(train_size=200, test_size=100, epochs=2),
)
"""Small evaluation so the tests stay fast."""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def run(run_dir: str) -> LoadedRun:
    return load_run(run_dir)


# ------------------------------------------------------------------------------- information check
def _black_or_white(n: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 1, 16, 16) images, each entirely black or entirely white: one bit of information per image."""
    bit = (torch.rand(n, generator=gen) > 0.5).float()
    return bit.view(n, 1, 1, 1).expand(n, 1, 16, 16).clone()


@pytest.fixture(scope="module")
def autoencoder() -> ContinualLearner:
    """A tiny learner trained as a plain autoencoder on mu(x), so its codes carry the image's bit."""
    cfg = get_preset("cpu").with_overrides(
        model={"image_size": 16, "conv_channels": (8, 8, 16, 16), "hidden_dim": 64, "latent_dim": 6}
    )
    learner = ContinualLearner(cfg, device="cpu")
    learner.memory.allocate(torch.ones(6, dtype=torch.bool), float("inf"))
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(learner.model.parameters(), lr=3e-3)
    env = torch.zeros(32, dtype=torch.long)
    with one_thread():
        for _ in range(60):
            x = _black_or_white(32, gen)
            mu = learner.model.encoder(x)[0]
            loss = reconstruction_nll(learner.model.decoder(mu, env), x, "bernoulli").mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return learner


def test_information_check_shuffled_codes_cost_nats_when_z_encodes_x(autoencoder: ContinualLearner) -> None:
    x = _black_or_white(64, torch.Generator().manual_seed(1))
    info = information_check(autoencoder, x, env=0)
    assert info["nll_shuffled"] > info["nll_z"] + 100.0  # ~half the images get the other colour's code
    assert info["information"] == pytest.approx(info["nll_shuffled"] - info["nll_z"])


def test_information_check_is_zero_when_codes_are_constant(autoencoder: ContinualLearner) -> None:
    """A model whose mu ignores x (it can still meet a KL target with a constant offset) shows no gap."""
    blind = ContinualLearner(autoencoder.config, device="cpu")
    blind.load_state_dict(autoencoder.state_dict())
    n = blind.config.model.latent_dim
    with torch.no_grad():
        blind.model.encoder.head.weight[:n] = 0.0  # mu = bias: the same code for every image
        blind.model.encoder.head.bias[:n] = 1.5  # far from the prior: KL > 0 but no information
    info = information_check(blind, _black_or_white(64, torch.Generator().manual_seed(1)), env=0)
    assert info["nll_shuffled"] == pytest.approx(info["nll_z"], abs=1e-4)
    assert abs(info["information"]) < 1e-4 and info["kl"] > 1.0


def test_information_check_rejects_single_image(autoencoder: ContinualLearner) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        information_check(autoencoder, torch.zeros(1, 1, 16, 16), env=0)


# ------------------------------------------------------------------------------------- evaluation
def test_ground_truth_factors_per_dataset_kind() -> None:
    n = 50
    rng = np.random.default_rng(0)
    shapes = {
        "label": rng.integers(0, 3, n),
        "shape": rng.integers(0, 3, n),
        "scale": rng.random(n),
        "x": rng.random(n),
        "y": rng.random(n),
        "index": np.arange(n),
    }
    names, values, discrete = ground_truth_factors(shapes)
    assert names == ["shape", "scale", "x", "y"] and discrete == [True, False, False, False]
    assert values.shape == (n, 4)
    static = {"label": rng.integers(0, 10, n), "x": np.full(n, 0.5), "y": np.full(n, 0.5)}
    assert ground_truth_factors(static)[0] == ["label"]  # constant positions are no factor
    faces = {"label": np.full(n, -1), "x": np.full(n, 0.5), "y": np.full(n, 0.5)}
    assert ground_truth_factors(faces)[0] == []


def test_probe_summary_counts_the_stage_end_evaluation_as_during(run: LoadedRun) -> None:
    """A probe evaluated at step 60 (= steps_per_env) saw the model after all of stage 0: it is 'during'."""
    history = ProbeHistory()
    for step, acc in [(20, 50.0), (40, 70.0), (60, 90.0), (80, 60.0), (100, 65.0), (120, 80.0)]:
        history.add(step, run.datasets[0], "accuracy", acc)
    fake = LoadedRun(run.run_dir, run.config, run.settings, run.learner, run.log, history, None)
    acc = probe_summary(fake, run.datasets[0])["accuracy"]
    assert acc == {"final": 80.0, "best_during": 90.0, "worst_after": 60.0, "change": -30.0}


def test_evaluate_run_writes_json_with_every_dataset(run_dir: str, run: LoadedRun) -> None:
    ev = evaluate_run(run_dir, FAST)
    with open(os.path.join(run_dir, "evaluation.json")) as f:
        assert json.load(f) == json.loads(json.dumps(ev))
    assert list(ev["datasets"]) == run.datasets
    for d in ev["datasets"].values():
        assert 0 <= d["inferred_env"] < max(run.learner.memory.n_seen, 1)
        assert d["log_env"] is not None and d["nll_z"] > 0
        assert d["disentanglement"] is not None and 0 <= d["disentanglement"]["dci_informativeness"] <= 1
    moving = ev["datasets"][run.datasets[0]]
    assert {"x", "y"} <= set(moving["disentanglement"]["factors"])
    assert {"accuracy", "position_mse"} <= set(moving["probes"])
    expected = environment_inference_accuracy([r["env"] for r in run.log], [r["stage"] for r in run.log])
    assert ev["env_inference"]["accuracy"] == pytest.approx(expected.accuracy)
    assert len(ev["environments"]) == run.learner.memory.n_seen
    for e in ev["environments"]:
        assert e["n_used_and_active"] == len(e["latents"]) <= min(e["n_active"], e["n_used"])


def test_evaluation_is_reproducible_and_restores_threads(run: LoadedRun) -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        a, b = evaluate_loaded(run, FAST), evaluate_loaded(run, FAST)
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert json.dumps(a) == json.dumps(b)


# ----------------------------------------------------------------------------------------- report
@pytest.fixture(scope="module")
def report(run_dir: str) -> str:
    """The tiny run's report text (written once for the report tests)."""
    with one_thread():
        path = write_report(run_dir, FAST)
    assert path == os.path.join(run_dir, "report.md")
    with open(path) as f:
        return f.read()


def test_report_has_every_section_and_every_figure_on_disk(run_dir: str, report: str) -> None:
    text = report
    positions = [text.index(f"\n{heading}\n") for heading in SECTIONS]
    assert positions == sorted(positions)  # all present, in order
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(FIGURES)
    for fig, link in zip(FIGURES, links, strict=True):
        assert f"### {fig.title}\n\n{fig.how_to_read}" in text
        assert not os.path.isabs(link) and link == f"figures/{fig.filename}"
        assert os.path.getsize(os.path.join(run_dir, link)) > 1000
    with open(os.path.join(run_dir, "config.json")) as f:
        sequence = json.load(f)["run"]["sequence"]
    assert "| preset | cpu |" in text and "| sequence | " + " → ".join(sequence) + " |" in text
    # the offline-probe section leads the report: verdicts, then one table per stage with its references
    lead = text.index("## Representation quality (offline probes, the headline numbers)")
    assert lead < positions[0] and "**Verdicts (MLP probe)**" in text
    assert text.index("**What to look at first.**") < lead  # the report opens with where to look
    assert all(f"Stage {i} -- `{name}`" in text for i, name in enumerate(sequence))
    assert "| pixels |" in text and "| untrained |" in text and "| vase |" in text


def test_report_warns_exactly_for_datasets_without_information(run_dir: str, report: str) -> None:
    with open(os.path.join(run_dir, "evaluation.json")) as f:
        ev = json.load(f)
    for name, d in ev["datasets"].items():
        warned = f"carry almost no information about {name}" in report
        assert warned == (d["information"] < INFO_MIN_NATS)


def test_load_run_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        load_run(str(tmp_path))
