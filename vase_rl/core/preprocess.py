"""Input validation and conversion of images to the model's input tensor."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from vase_rl.data.transforms import area_weights

_FLOAT_TOL = 1e-3


def to_model_input(
    x: Any, image_size: int, channels: int, device: torch.device | str = "cpu", batched: bool = True
) -> torch.Tensor:
    """Convert images to a float tensor (B, C, image_size, image_size) in [0, 1] on ``device``.

    Accepted: numpy arrays or torch tensors, uint8 in [0, 255] or float in [0, 1], laid out as
    (B, H, W), (B, H, W, C) or (B, C, H, W) with C in {1, 3} (with ``batched=False`` the same without B).
    Other sizes are resized to ``image_size`` (area averaging when shrinking, :func:`resize_area_tensor`;
    bilinear when growing).

    Raises TypeError for a non-array or a dtype other than uint8/float, ValueError for a wrong rank,
    a channel count different from ``channels``, NaN/inf, or floats outside [0, 1]; each message names
    what was received and what was expected.
    """
    t = _as_tensor(x)
    t = _channels_first(t, tuple(x.shape), batched)
    if t.shape[1] != channels:
        raise ValueError(
            f"images have {t.shape[1]} channel(s) (shape {tuple(x.shape)}) but the model expects {channels}"
        )
    if min(t.shape[-2:]) < 2:
        raise ValueError(f"images of shape {tuple(x.shape)} are too small to be resized to {image_size}")
    t = _unit_float(t.to(device), tuple(x.shape))
    if tuple(t.shape[-2:]) != (image_size, image_size):
        if t.shape[-1] < image_size or t.shape[-2] < image_size:
            t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", align_corners=False)
        else:
            t = resize_area_tensor(t, image_size)
    return t.contiguous()


def _as_tensor(x: Any) -> torch.Tensor:
    """x as a torch tensor (numpy arrays shared, not copied); TypeError unless uint8 or float."""
    if isinstance(x, np.ndarray):
        if x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating):
            return torch.from_numpy(np.ascontiguousarray(x))
        raise TypeError(f"images must be uint8 or float, got numpy dtype {x.dtype}")
    if isinstance(x, torch.Tensor):
        if not (x.dtype == torch.uint8 or x.is_floating_point()):
            raise TypeError(f"images must be uint8 or float, got torch dtype {x.dtype}")
        return x
    raise TypeError(f"images must be a numpy array or torch tensor, got {type(x).__name__}")


def _channels_first(t: torch.Tensor, shape: tuple[int, ...], batched: bool) -> torch.Tensor:
    """t laid out (B, C, H, W); ``shape`` (the input's) names the input in errors. ValueError if empty."""
    expected = "(B, H, W), (B, H, W, C) or (B, C, H, W)" if batched else "(H, W), (H, W, C) or (C, H, W)"
    if not batched:
        t = t.unsqueeze(0)
    if t.dim() == 3:
        t = t.unsqueeze(1)
    elif t.dim() == 4:
        if t.shape[1] in (1, 3) and t.shape[-1] not in (1, 3):
            pass  # channels-first
        elif t.shape[-1] in (1, 3):
            t = t.permute(0, 3, 1, 2)
        else:
            raise ValueError(
                f"cannot find the channel axis of images with shape {shape}: expected {expected} "
                f"with C in (1, 3)"
            )
    else:
        raise ValueError(f"images must have shape {expected}, got shape {shape}")
    if t.shape[0] == 0:
        raise ValueError("received an empty batch of images")
    return t


def _unit_float(t: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """uint8 [0, 255] -> float [0, 1]; float checked finite and in [0, 1] (within _FLOAT_TOL), clamped."""
    if t.dtype == torch.uint8:
        return t.float().div_(255.0)
    t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"images contain NaN or inf values (shape {shape})")
    lo, hi = float(t.min()), float(t.max())
    if lo < -_FLOAT_TOL or hi > 1.0 + _FLOAT_TOL:
        raise ValueError(
            f"float images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
            "pass uint8 images in [0, 255] or divide by 255"
        )
    return t.clamp(0.0, 1.0)


def resize_area_tensor(t: torch.Tensor, size: int) -> torch.Tensor:
    """Area-averaging resize of t: (B, C, h, w) float to (B, C, size, size), on t's device.

    The weights are :func:`vase_rl.data.transforms.area_weights` (exact fractional overlaps, as the numpy
    ``resize_area`` of the datasets and of DM Lab frames), so 210x160 -> 64x64 averages exactly the area
    under each output pixel. ``F.interpolate(mode="area")`` (adaptive average pooling) agrees only when
    ``size`` divides h and w; for other factors its windows are whole input pixels.
    """
    # torch.tensor copies: the cached weights are read-only (torch.as_tensor would warn about it)
    rows = torch.tensor(area_weights(t.shape[-2], size), dtype=t.dtype, device=t.device)
    cols = torch.tensor(area_weights(t.shape[-1], size), dtype=t.dtype, device=t.device)
    return rows @ t @ cols.T
