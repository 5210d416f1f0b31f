"""Offline probes on synthetic codes whose answer is known (vase_rl.probing.offline_probe)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vase_rl.probing.offline_probe import (
    OfflineProbeConfig,
    factor_targets,
    fit_probe,
    pixel_codes,
    probe_factors,
    readout_transfer,
)

FAST = OfflineProbeConfig(epochs=8, seed=0)


@pytest.mark.parametrize("probe", ["linear", "mlp"])
def test_identity_code_gives_full_accuracy_and_noise_gives_chance(probe: str) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 10, 3000)
    one_hot = np.eye(10, dtype=np.float32)[y] + 0.05 * rng.standard_normal((3000, 10)).astype(np.float32)
    acc = fit_probe(one_hot[:2000], y[:2000], one_hot[2000:], y[2000:], "class", probe, FAST)  # type: ignore[arg-type]
    assert acc > 99.0
    noise = rng.standard_normal((3000, 10)).astype(np.float32)
    chance = fit_probe(noise[:2000], y[:2000], noise[2000:], y[2000:], "class", probe, FAST)  # type: ignore[arg-type]
    assert 5.0 < chance < 16.0  # 10 classes: chance is 10 %


@pytest.mark.parametrize("probe", ["linear", "mlp"])
def test_position_code_gives_r2_near_one_and_noise_near_zero(probe: str) -> None:
    rng = np.random.default_rng(2)
    pos = rng.uniform(0, 1, (3000, 2)).astype(np.float32)
    codes = np.concatenate([pos * 3 - 1, rng.standard_normal((3000, 4)).astype(np.float32)], 1)
    r2 = fit_probe(codes[:2000], pos[:2000], codes[2000:], pos[2000:], "continuous", probe, FAST)  # type: ignore[arg-type]
    assert r2 > 0.98
    noise = rng.standard_normal((3000, 6)).astype(np.float32)
    r2_noise = fit_probe(noise[:2000], pos[:2000], noise[2000:], pos[2000:], "continuous", probe, FAST)  # type: ignore[arg-type]
    assert r2_noise < 0.05


def test_mlp_reads_a_nonlinear_code_the_linear_probe_cannot() -> None:
    rng = np.random.default_rng(3)
    angle = rng.uniform(0, 2 * np.pi, 4000)
    y = (np.floor(angle / (np.pi / 2)) % 2).astype(np.int64)  # alternating quadrants: not linearly separable
    codes = np.stack([np.cos(angle), np.sin(angle)], 1).astype(np.float32)
    lin = fit_probe(codes[:3000], y[:3000], codes[3000:], y[3000:], "class", "linear", FAST)
    mlp = fit_probe(
        codes[:3000], y[:3000], codes[3000:], y[3000:], "class", "mlp", OfflineProbeConfig(epochs=30)
    )
    assert lin < 65.0 and mlp > 95.0


def test_probe_is_deterministic_and_leaves_the_global_rng_alone() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 600)
    codes = rng.standard_normal((600, 5)).astype(np.float32) + y[:, None]
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = fit_probe(codes[:400], y[:400], codes[400:], y[400:], "class", "mlp", FAST)
    after = torch.rand(1)
    b = fit_probe(codes[:400], y[:400], codes[400:], y[400:], "class", "mlp", FAST)
    assert a == b
    assert torch.equal(before, after)


def test_readout_transfer_is_high_only_when_b_writes_the_factor_in_the_same_latents() -> None:
    rng = np.random.default_rng(5)
    pos_a, pos_b = rng.uniform(0, 1, (2000, 2)), rng.uniform(0, 1, (2000, 2))
    noise = rng.standard_normal((2000, 4)) * 0.01
    codes_a = np.concatenate([pos_a, noise], 1).astype(np.float32)
    shared_b = np.concatenate([pos_b, noise], 1).astype(np.float32)
    moved_b = np.concatenate([noise[:, :2], pos_b, noise[:, 2:]], 1).astype(
        np.float32
    )  # position re-encoded elsewhere
    assert readout_transfer(codes_a, pos_a, shared_b, pos_b, "continuous") > 0.99
    assert readout_transfer(codes_a, pos_a, moved_b, pos_b, "continuous") < 0.0


def test_factor_targets_per_dataset_kind() -> None:
    n = 50
    rng = np.random.default_rng(6)
    moving = {"label": rng.integers(0, 10, n), "x": rng.uniform(0, 1, n), "y": rng.uniform(0, 1, n)}
    static = {"label": rng.integers(0, 10, n), "x": np.full(n, 0.5), "y": np.full(n, 0.5)}
    faces = {"label": np.full(n, -1), "x": rng.uniform(0, 1, n), "y": rng.uniform(0, 1, n)}
    shapes = {
        "label": rng.integers(0, 3, n),
        "shape": rng.integers(0, 3, n),
        "scale": rng.uniform(0.5, 1, n),
        "x": rng.uniform(0, 1, n),
        "y": rng.uniform(0, 1, n),
    }
    assert sorted(factor_targets(moving, "moving-mnist")) == ["class", "position"]
    assert sorted(factor_targets(static, "mnist")) == ["class"]
    assert sorted(factor_targets(faces, "moving-faces")) == ["position"]
    assert sorted(factor_targets(shapes, "moving-shapes")) == ["position", "scale", "shape"]


def test_probe_factors_scores_every_factor_and_pixels_reference_shape() -> None:
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, (400, 8, 8, 1), dtype=np.uint8)
    codes = pixel_codes(images)
    assert codes.shape == (400, 64) and codes.dtype == np.float32 and codes.max() <= 1.0
    y = rng.integers(0, 2, 400)
    codes[:, 0] = y
    f = {"label": y, "x": rng.uniform(0, 1, 400), "y": rng.uniform(0, 1, 400)}
    out = probe_factors(
        codes[:300],
        {k: v[:300] for k, v in f.items()},
        codes[300:],
        {k: v[300:] for k, v in f.items()},
        "moving-mnist",
        ("linear",),
        FAST,
    )
    assert out["class"]["linear"] > 99.0
    assert out["position"]["linear"] < 0.2  # positions here are noise


def test_bad_inputs_raise_clear_errors() -> None:
    codes = np.zeros((10, 3), np.float32)
    with pytest.raises(ValueError, match="same d"):
        fit_probe(codes, np.zeros(10), np.zeros((5, 4), np.float32), np.zeros(5), "class", "linear")
    with pytest.raises(ValueError, match="same number of rows"):
        fit_probe(codes, np.zeros(9), codes, np.zeros(10), "class", "linear")
    with pytest.raises(ValueError, match="probe must be"):
        fit_probe(codes, np.zeros(10), codes, np.zeros(10), "class", "boosted")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="epochs"):
        OfflineProbeConfig(epochs=0)
