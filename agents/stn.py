"""Spatial-transformer translation of images (A.4) and conversions between translation units.

The convention (normalised image coordinates, positive t_x moves content right, positive t_y down, ``t = 1``
= half the image) is documented in :mod:`vase_rl.agents.translation`, which re-exports everything here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

TranslationLike = torch.Tensor | np.ndarray | tuple[float, float]


def _as_translation(t: TranslationLike, batch: int, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a translation (2,) or (B, 2) to (B, 2) with ``like``'s dtype/device; check it."""
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.dim() == 1:
        t = t.expand(batch, -1)
    if tuple(t.shape) != (batch, 2):
        raise ValueError(f"translation must have shape (2,) or ({batch}, 2), got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError("translation contains NaN or inf")
    return t


def translation_theta(t: torch.Tensor) -> torch.Tensor:
    """Affine matrices (B, 2, 3) of ``F.affine_grid`` that move content by t (B, 2) (see module doc).

    affine_grid maps each *output* location p to the *input* location theta @ [p, 1] it samples,
    so moving content by +t samples at p - t: theta = [[1, 0, -t_x], [0, 1, -t_y]].
    """
    eye = torch.eye(2, dtype=t.dtype, device=t.device).expand(t.shape[0], 2, 2)
    return torch.cat([eye, -t.unsqueeze(2)], dim=2)


def translation_grid(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``F.affine_grid(translation_theta(t), (B, C, H, W), align_corners=False)``, computed exactly.

    affine_grid builds its base grid as ``linspace(-1, 1, W) * (W - 1) / W``, which is off by
    ~1e-7 for W = 64 and makes an integer-pixel shift leak ~2e-6 into neighbouring pixels. Here the
    pixel centres ``(2 j + 1) / W - 1`` are formed in float64 and the translation subtracted, so for
    power-of-two sizes every coordinate is exact in float32 and bilinear sampling at an integer-pixel
    shift copies pixels bit for bit. Same transform, same gradient w.r.t. t.

    Returns: grid (B, H, W, 2) of (x, y) sampling locations in normalised coordinates.
    """

    def centres(n: int) -> torch.Tensor:
        return ((2 * torch.arange(n, dtype=torch.float64) + 1) / n - 1).to(t.device, t.dtype)

    gy, gx = torch.meshgrid(centres(height), centres(width), indexing="ij")
    base = torch.stack([gx, gy], dim=-1)  # (H, W, 2)
    return base.unsqueeze(0) - t[:, None, None, :]


def translate(x: torch.Tensor, t: TranslationLike, mode: str = "bilinear") -> torch.Tensor:
    """Spatial-transformer translation g . x (``F.grid_sample``), differentiable in x and t.

    Args:
        x: (B, C, H, W) float images.
        t: (2,) or (B, 2) translations in normalised coordinates (module doc: +x right, +y down,
            ``t = 2 k / W`` is ``k`` pixels, bit-exact for power-of-two sizes, see :func:`translation_grid`).
        mode: ``"bilinear"`` (differentiable in t) or ``"nearest"``.
    Returns:
        (B, C, H, W) translated images; content leaving the frame is cropped, uncovered pixels are 0.
    """
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be float (B, C, H, W), got {tuple(x.shape)} {x.dtype}")
    t = _as_translation(t, x.shape[0], x)
    grid = translation_grid(t, x.shape[2], x.shape[3])
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


def pixels_to_translation(
    dx: float | np.ndarray, dy: float | np.ndarray, width: int, height: int | None = None
) -> np.ndarray:
    """Pixel shifts (dx right, dy down) -> normalised translation t = (2 dx / W, 2 dy / H), shape (..., 2)."""
    h = width if height is None else height
    return np.stack([2.0 * np.asarray(dx, np.float64) / width, 2.0 * np.asarray(dy, np.float64) / h], -1)


def translation_to_pixels(t: torch.Tensor | np.ndarray, width: int, height: int | None = None) -> np.ndarray:
    """Normalised translation (..., 2) -> pixel shifts (..., 2) = (t_x W / 2, t_y H / 2)."""
    h = width if height is None else height
    t = np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t, dtype=np.float64)
    return t * np.array([width / 2.0, h / 2.0])


def translation_to_env_action(env: Any, t: np.ndarray) -> np.ndarray:
    """Normalised translation t (2,) -> the continuous action of a ``SpriteCanvas`` env, float32 (2,).

    The env moves the sprite's corner by ``rint(a * free / 2)`` pixels (``free = canvas - sprite``),
    while t moves content by ``t * canvas / 2`` pixels; so ``a = t * canvas / free``, clipped to
    [-1, 1]. The env's action therefore spans shifts of at most ``free / 2`` pixels per step
    (``|t| <= free / canvas``); larger translations are clipped, and the env also clips the final
    position at the canvas edge.
    """
    base = getattr(env, "unwrapped", env)
    if getattr(base, "action_type", None) != "continuous" or not hasattr(base, "renderer"):
        raise ValueError(
            "acting in the world needs a SpriteCanvas with action_type='continuous', got "
            f"{type(base).__name__} with action_type={getattr(base, 'action_type', None)!r}"
        )
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    if t.shape != (2,) or not np.all(np.isfinite(t)):
        raise ValueError(f"translation must be 2 finite floats, got {t!r}")
    free = base.renderer.free
    if free == 0:
        return np.zeros(2, dtype=np.float32)
    return np.clip(t * base.renderer.canvas_size / free, -1.0, 1.0).astype(np.float32)
