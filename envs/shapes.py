"""Procedural sprites (no download): dSprites-like square / ellipse / heart at six scales.

Each shape is an implicit inside-test on coordinates ``(u, v)`` in ``[-1, 1]^2`` (``v`` pointing down),
evaluated at ``SUPERSAMPLE x SUPERSAMPLE`` points per pixel and averaged, so edges are anti-aliased
and the image is an exact function of the factors ``(shape, scale, sprite size)``:

>>> sprite = render_shape(0, 0.5, 14)
>>> sprite.shape, sprite.dtype, int(sprite[7, 7]), int(sprite[0, 0])
((14, 14), dtype('uint8'), 255, 0)
"""

from __future__ import annotations

import functools

import numpy as np

SHAPES: tuple[str, ...] = ("square", "ellipse", "heart")
"""Shape names; a sprite's ``label`` / ``shape`` factor is the index into this tuple."""
SCALES: tuple[float, ...] = tuple(float(s) for s in np.linspace(0.5, 1.0, 6))
"""Scale factor values (as dSprites): the shape's extent relative to its sprite box."""
SUPERSAMPLE = 4
"""Sub-samples per pixel side used for anti-aliasing."""
EXTENT = 0.9
"""Half-extent of a scale-1 shape in box coordinates (leaves a one-pixel-ish margin)."""
ELLIPSE_ASPECT = 0.6
"""Minor / major semi-axis of the ellipse (major axis horizontal)."""


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean inside-test of shape ``shape`` at normalised points u, v (any equal shapes, |.| <= 1)."""
    if shape == 0:
        return np.maximum(np.abs(u), np.abs(v)) <= 1.0
    if shape == 1:
        return u**2 + (v / ELLIPSE_ASPECT) ** 2 <= 1.0
    if shape == 2:
        # Classic heart curve (x^2 + y^2 - 1)^3 <= x^2 y^3, y up; spans x in [-1.14, 1.14],
        # y in [-1, 1.25]: rescale it to [-1, 1]^2 and centre it vertically.
        x, y = u * 1.14, 0.125 - v * 1.125
        return (x**2 + y**2 - 1.0) ** 3 <= x**2 * y**3
    raise ValueError(f"shape must be in 0..{len(SHAPES) - 1} ({', '.join(SHAPES)}), got {shape}")


def render_shape(shape: int, scale: float, size: int) -> np.ndarray:
    """Anti-aliased white-on-black sprite of one shape: uint8 (size, size), shape centred in the box."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    n = size * SUPERSAMPLE
    centres = (np.arange(n) + 0.5) / n * 2.0 - 1.0  # sub-pixel centres in [-1, 1]
    v, u = np.meshgrid(centres, centres, indexing="ij")
    inside = _inside(shape, u / (EXTENT * scale), v / (EXTENT * scale))
    coverage = inside.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    return np.rint(coverage * 255.0).astype(np.uint8)


@functools.lru_cache(maxsize=16)
def shape_bank(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (shape, scale) combinations, shape-major.

    Returns sprites uint8 (K, size, size), shape int64 (K,), scale float32 (K,), K = 3 * 6 = 18;
    read-only (cached).
    """
    shapes, scales = np.meshgrid(np.arange(len(SHAPES)), np.asarray(SCALES), indexing="ij")
    shapes, scales = shapes.ravel().astype(np.int64), scales.ravel().astype(np.float32)
    sprites = np.stack([render_shape(int(s), float(c), size) for s, c in zip(shapes, scales, strict=True)])
    for array in (sprites, shapes, scales):
        array.setflags(write=False)
    return sprites, shapes, scales
