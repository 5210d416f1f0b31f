"""Image transforms of appendix A.5 (numpy, uint8): inverse contrast, sprites, area resize, face patch.

Used by the dataset loaders (:mod:`vase_rl.data.datasets`) and the sprite sampler (:mod:`vase_rl.envs.sampler`);
:mod:`vase_rl.data.datasets` re-exports them.
"""

from __future__ import annotations

import functools

import numpy as np

FACE_PATCH_SIZE = 32
"""Side of the grayscale face patch (A.5: "a patch of size 32x32 centered on the face")."""
FACE_CROP = (58 / 109, 0.5, 60 / 89)
"""Face-centred square crop of a CelebA aligned image: (centre row / H, centre col / W, side / W).
On the 89x109 half-size images this is rows 28:88, cols 14:74 (chosen by inspecting the mean face:
brow-to-chin with a little hair); fractions keep it valid on the 178x218 originals."""
INVERT_CONTRAST = 0.8
"""A.5 inverse Fashion: black on white "slightly reducing the contrast": out = 255 - 0.8 * in."""
LUMA = (0.299, 0.587, 0.114)
"""ITU-R 601 RGB -> gray weights (same as Pillow's "L" mode)."""


def invert(images: np.ndarray, contrast: float = INVERT_CONTRAST) -> np.ndarray:
    """Black-on-white with reduced contrast (A.5): ``rint(255 - contrast * images)``, uint8 in and out.

    A black background (0) becomes white (255) and a full-intensity stroke (255) dark grey (51).
    """
    lut = np.rint(255.0 - contrast * np.arange(256.0)).clip(0, 255).astype(np.uint8)
    return lut[np.asarray(images, dtype=np.uint8)]


def place_on_canvas(
    sprites: np.ndarray, xs: np.ndarray, ys: np.ndarray, canvas_size: int, background: int = 0
) -> np.ndarray:
    """Paste sprites (N, h, w) uint8 with top-left corners (xs, ys) (N,) int onto (N, C, C) canvases.

    Vectorised: one flat fancy-index assignment for the whole batch. Sprites must lie fully inside.
    """
    n, h, w = sprites.shape
    xs, ys = np.asarray(xs, dtype=np.int64), np.asarray(ys, dtype=np.int64)
    if h > canvas_size or w > canvas_size:
        raise ValueError(f"sprite {h}x{w} does not fit a {canvas_size}x{canvas_size} canvas")
    if xs.shape != (n,) or ys.shape != (n,):
        raise ValueError(f"xs, ys must have shape ({n},), got {xs.shape}, {ys.shape}")
    if n and (xs.min() < 0 or ys.min() < 0 or xs.max() > canvas_size - w or ys.max() > canvas_size - h):
        raise ValueError(
            f"positions must keep the sprite inside: 0 <= x <= {canvas_size - w}, 0 <= y <= {canvas_size - h}"
        )
    out = np.full((n, canvas_size, canvas_size), background, dtype=np.uint8)
    offsets = (np.arange(h)[:, None] * canvas_size + np.arange(w)[None, :]).ravel()
    base = np.arange(n) * canvas_size * canvas_size + ys * canvas_size + xs
    out.reshape(-1)[(base[:, None] + offsets[None, :]).ravel()] = sprites.reshape(-1)
    return out


@functools.lru_cache(maxsize=64)
def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float64 matrix of area averaging along one axis (rows sum to 1), read-only.

    Output pixel ``i`` covers ``[i * s, (i + 1) * s)`` with ``s = n_in / n_out``; its weight on input
    pixel ``j`` is the length of the overlap with ``[j, j + 1)`` divided by ``s`` (as
    ``tf.image.resize_area``). The one definition of area resizing: :func:`resize_area` (numpy, the
    datasets and DM Lab frames) and :func:`vase_rl.core.preprocess.to_model_input` (torch) both use it.

    >>> area_weights(4, 2)
    array([[0.5, 0.5, 0. , 0. ],
           [0. , 0. , 0.5, 0.5]])
    """
    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be positive, got n_in={n_in}, n_out={n_out}")
    edges = np.arange(n_out + 1) * (n_in / n_out)
    pixels = np.arange(n_in)[None, :]
    overlap = np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels)
    weights = np.clip(overlap, 0.0, None) / (n_in / n_out)
    weights.setflags(write=False)
    return weights


def resize_area(images: np.ndarray, size: int | tuple[int, int], chunk: int = 4096) -> np.ndarray:
    """Area-averaging resize (as ``tf.image.resize_area``) of (..., h, w) images to (..., H, W).

    Exact fractional-overlap weights (:func:`area_weights`), so integer and non-integer factors (and
    upsampling) work. uint8 in -> rounded uint8 out; float in -> float32 out. Channels-last images
    (..., h, w, C) go through ``np.moveaxis`` (see ``vase_rl.envs.lab.preprocess_frame``).
    """
    images = np.asarray(images)
    out_h, out_w = (size, size) if isinstance(size, int) else size
    if out_h < 1 or out_w < 1:
        raise ValueError(f"size must be positive, got {size}")
    *lead, h, w = images.shape
    wy, wx = area_weights(h, out_h), area_weights(w, out_w).T
    flat = images.reshape(-1, h, w)
    out = np.empty((len(flat), out_h, out_w), dtype=np.float64)
    for i in range(0, len(flat), chunk):
        out[i : i + chunk] = wy @ flat[i : i + chunk].astype(np.float64) @ wx
    out = out.reshape(*lead, out_h, out_w)
    if images.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(np.float32)


def face_patch(img_rgb: np.ndarray, size: int = FACE_PATCH_SIZE) -> np.ndarray:
    """Grayscale face-centred patch (A.5): CelebA aligned (..., H, W, 3) uint8 -> (..., size, size).

    Crops the square :data:`FACE_CROP` (rows 28:88, cols 14:74 of an 89x109 image), converts to
    gray with ITU-R 601 luma and area-resizes to ``size``.
    """
    img_rgb = np.asarray(img_rgb)
    if img_rgb.ndim < 3 or img_rgb.shape[-1] != 3:
        raise ValueError(f"expected (..., H, W, 3) RGB, got shape {img_rgb.shape}")
    h, w = img_rgb.shape[-3:-1]
    cy, cx, side_frac = FACE_CROP
    side = min(round(side_frac * w), h, w)
    top = min(max(round(cy * h - side / 2), 0), h - side)
    left = min(max(round(cx * w - side / 2), 0), w - side)
    crop = img_rgb[..., top : top + side, left : left + side, :].astype(np.float64)
    gray = crop @ np.asarray(LUMA)
    return resize_area(np.clip(np.rint(gray), 0, 255).astype(np.uint8), size)
