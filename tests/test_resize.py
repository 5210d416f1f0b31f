"""Area resizing has one definition (``vase_rl.data.transforms.area_weights``) used by the numpy path (datasets,
DM Lab frames) and the torch path (``vase_rl.core.preprocess.to_model_input``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vase_rl.core.preprocess import resize_area_tensor, to_model_input
from vase_rl.data.transforms import area_weights, resize_area
from vase_rl.envs.lab import preprocess_frame


def test_area_weights_cover_each_input_pixel_exactly_once() -> None:
    for n_in, n_out in ((84, 64), (210, 64), (160, 64), (64, 32), (3, 2)):
        w = area_weights(n_in, n_out)
        np.testing.assert_allclose(w.sum(axis=1), 1.0)
        np.testing.assert_allclose(w.sum(axis=0), n_out / n_in)
    np.testing.assert_allclose(area_weights(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    with pytest.raises(ValueError, match="positive"):
        area_weights(0, 4)


def test_torch_resize_equals_numpy_resize_for_any_factor() -> None:
    images = np.random.default_rng(0).random((2, 3, 210, 160))
    for size in (64, 40, 32):
        got = resize_area_tensor(torch.as_tensor(images), size).numpy()
        np.testing.assert_allclose(got, resize_area(images, size), atol=1e-6)


def test_interpolate_area_matches_only_for_integer_factors() -> None:
    """Why the torch path does not use F.interpolate(mode="area"): its pooling windows are whole pixels."""
    x = torch.rand(2, 1, 64, 64, dtype=torch.float64)
    np.testing.assert_allclose(
        resize_area_tensor(x, 32), F.interpolate(x, size=(32, 32), mode="area"), atol=1e-12
    )
    y = torch.rand(2, 1, 84, 84, dtype=torch.float64)
    assert (resize_area_tensor(y, 64) - F.interpolate(y, size=(64, 64), mode="area")).abs().max() > 1e-3


def test_model_input_of_an_atari_frame_is_its_exact_area_average() -> None:
    frame = np.random.default_rng(1).integers(0, 256, (210, 160, 3), dtype=np.uint8)
    got = to_model_input(frame, 64, 3, batched=False)
    assert got.shape == (1, 3, 64, 64)
    expected = resize_area(np.moveaxis(frame, -1, 0).astype(np.float64) / 255.0, 64)
    np.testing.assert_allclose(got[0].numpy(), expected, atol=1e-5)
    assert abs(float(got.mean()) - frame.mean() / 255.0) < 1e-5  # area averaging keeps the mean


def test_lab_frames_use_the_same_resize() -> None:
    frame = np.random.default_rng(2).integers(0, 256, (84, 111, 3), dtype=np.uint8)
    expected = np.moveaxis(resize_area(np.moveaxis(frame[:, :84], -1, 0), 64), 0, -1)
    np.testing.assert_array_equal(preprocess_frame(frame), expected)
