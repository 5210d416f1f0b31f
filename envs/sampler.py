"""Sprite-on-canvas rendering shared by the :class:`~vase_rl.envs.sprites.SpriteCanvas` env and the
fast batch sampler :class:`SpriteSampler` used by the learner's training loop and the probes.

Geometry: a ``sprite_size`` square sprite on a ``canvas_size`` square canvas; its top-left pixel is
``(px, py)`` with ``0 <= px, py <= free = canvas_size - sprite_size``. The normalised factors are
``x = px / free``, ``y = py / free`` in ``[0, 1]`` (0 = touching the left/top edge, 1 = right/bottom;
0.5 when ``free == 0``). Static datasets put the sprite at ``free // 2`` (centred); moving ones draw
``px, py`` uniformly from ``{0, ..., free}``.

>>> sampler = SpriteSampler("moving-shapes", canvas_size=32, seed=0)
>>> images, factors = sampler.sample(4)
>>> images.shape, images.dtype, sorted(factors)
((4, 32, 32, 1), dtype('uint8'), ['index', 'label', 'scale', 'shape', 'x', 'y'])
"""

from __future__ import annotations

import copy
import functools
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vase_rl.data import datasets, transforms
from vase_rl.envs import shapes

SOURCES: tuple[str, ...] = ("mnist", "fashion", "inverse-fashion", "faces", "shapes")
"""Sprite sources. ``inverse-fashion`` is Fashion through :func:`vase_rl.data.transforms.invert` (A.5)."""
DATASETS: tuple[str, ...] = tuple(f"{m}{s}" for s in SOURCES for m in ("", "moving-"))
"""Dataset names: a source (static, sprite centred) or ``moving-<source>`` (random position)."""
REFERENCE_CANVAS = 64
"""The paper's canvas side; default sprite sizes scale with ``canvas_size / REFERENCE_CANVAS``."""
DIGIT_SPRITE_SIZE = 28
"""MNIST / Fashion / shapes sprite side on the reference canvas."""
BACKGROUND = {"inverse-fashion": 255}
"""Canvas background per source (0 = black when absent)."""


def parse_dataset(name: str) -> tuple[str, bool]:
    """Split a dataset name into ``(source, moving)``; e.g. ``"moving-mnist" -> ("mnist", True)``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    moving = name.startswith("moving-")
    return name.removeprefix("moving-"), moving


def default_sprite_size(source: str, canvas_size: int) -> int:
    """Faces: ``min(32, canvas_size)``; others: ``round(28 * canvas_size / 64)`` (14 on 32, 28 on 64)."""
    if source == "faces":
        return min(transforms.FACE_PATCH_SIZE, canvas_size)
    return max(1, round(DIGIT_SPRITE_SIZE * canvas_size / REFERENCE_CANVAS))


@dataclass(frozen=True)
class SpriteBank:
    """Pre-resized sprites of one (source, sprite_size, split), cached per process.

    sprites: uint8 (K, s, s) already in display colours; labels: int64 (K,) (-1 for faces);
    background: canvas fill value; extra: more per-sprite factors, e.g. ``shape``, ``scale`` (K,).
    """

    sprites: np.ndarray
    labels: np.ndarray
    background: int
    extra: dict[str, np.ndarray] = field(default_factory=dict)


@functools.lru_cache(maxsize=16)
def sprite_bank(source: str, sprite_size: int, split: str, root: str | None) -> SpriteBank:
    """Load ``source`` from the verified data in ``root`` (None: default data dir) and area-resize once."""
    extra: dict[str, np.ndarray] = {}
    if source == "shapes":
        sprites, shape, scale = shapes.shape_bank(sprite_size)
        labels, extra = shape, {"shape": shape, "scale": scale}
    elif source == "faces":
        sprites = datasets.load_faces(split=split, data_dir=root)  # type: ignore[arg-type]
        labels = np.full(len(sprites), -1, dtype=np.int64)
    elif source in ("mnist", "fashion", "inverse-fashion"):
        loader = datasets.load_mnist if source == "mnist" else datasets.load_fashion_mnist
        sprites, labels = loader(split, data_dir=root)  # type: ignore[arg-type]
    else:
        raise ValueError(f"unknown source {source!r}; valid sources: {', '.join(SOURCES)}")
    if sprites.shape[1:] != (sprite_size, sprite_size):
        sprites = transforms.resize_area(sprites, sprite_size)
    if source == "inverse-fashion":
        sprites = transforms.invert(sprites)
    sprites = np.ascontiguousarray(sprites)
    sprites.setflags(write=False)
    return SpriteBank(sprites, labels, BACKGROUND.get(source, 0), extra)


class SpriteRenderer:
    """Draws sprites of one source on a canvas: the single rendering path of env and sampler.

    Args:
        source: one of :data:`SOURCES`.
        canvas_size: canvas side C in pixels.
        sprite_size: sprite side s; default :func:`default_sprite_size`.
        split: ``"train"`` or ``"test"`` (held-out images; ignored by ``shapes``).
        data_dir: data directory override (default ``$VASE_DATA_DIR`` / user cache).
    """

    def __init__(
        self,
        source: str,
        canvas_size: int = REFERENCE_CANVAS,
        sprite_size: int | None = None,
        split: str = "train",
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; valid sources: {', '.join(SOURCES)}")
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if canvas_size < 1:
            raise ValueError(f"canvas_size must be positive, got {canvas_size}")
        self.sprite_size = default_sprite_size(source, canvas_size) if sprite_size is None else sprite_size
        if not 1 <= self.sprite_size <= canvas_size:
            raise ValueError(
                f"sprite_size must be in [1, canvas_size={canvas_size}] so the sprite fits the canvas, "
                f"got {self.sprite_size}"
            )
        self.source, self.canvas_size = source, canvas_size
        self.free = canvas_size - self.sprite_size
        root = None if data_dir is None else str(datasets.get_data_dir(data_dir).resolve())
        self.bank = sprite_bank(source, self.sprite_size, split, root)

    @property
    def num_sprites(self) -> int:
        """K, the number of distinct sprites."""
        return len(self.bank.sprites)

    @property
    def centre(self) -> int:
        """Top-left pixel coordinate that centres the sprite (both axes)."""
        return self.free // 2

    def random_positions(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniform top-left corners px, py int64 (n,) in ``{0, ..., free}`` (x drawn before y)."""
        return rng.integers(0, self.free + 1, n), rng.integers(0, self.free + 1, n)

    def normalise(self, p: np.ndarray) -> np.ndarray:
        """Pixel corner (n,) -> position factor float32 (n,) in [0, 1] (0.5 when free == 0)."""
        if self.free == 0:
            return np.full(np.shape(p), 0.5, dtype=np.float32)
        return (np.asarray(p, dtype=np.float32) / np.float32(self.free)).astype(np.float32)

    def render(self, index: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Images uint8 (n, C, C, 1) of sprites ``index`` (n,) at top-left corners ``px``, ``py`` (n,)."""
        sprites = self.bank.sprites[np.asarray(index, dtype=np.int64)]
        canvas = transforms.place_on_canvas(sprites, px, py, self.canvas_size, self.bank.background)
        return canvas[..., None]

    def factors(self, index: np.ndarray, px: np.ndarray, py: np.ndarray) -> dict[str, np.ndarray]:
        """Ground-truth factors of rendered sprites: ``label``, ``index`` int64, ``x``, ``y`` float32
        (n,), plus ``shape`` int64 and ``scale`` float32 for shapes."""
        index = np.asarray(index, dtype=np.int64)
        out = {
            "label": self.bank.labels[index],
            "index": index,
            "x": self.normalise(px),
            "y": self.normalise(py),
        }
        out.update({k: v[index] for k, v in self.bank.extra.items()})
        return out


class SpriteSampler:
    """Fast i.i.d. batches of a dataset's observations with their ground-truth factors.

    Args:
        dataset: one of :data:`DATASETS`, e.g. ``"moving-fashion"``.
        canvas_size, sprite_size, split, data_dir: as :class:`SpriteRenderer`.
        seed: seed of the sampler's own ``numpy`` Generator (see :meth:`state_dict`).
    """

    def __init__(
        self,
        dataset: str,
        canvas_size: int = REFERENCE_CANVAS,
        sprite_size: int | None = None,
        split: str = "train",
        seed: int = 0,
        data_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.dataset = dataset
        source, self.moving = parse_dataset(dataset)
        self.renderer = SpriteRenderer(source, canvas_size, sprite_size, split, data_dir)
        self._rng = np.random.default_rng(seed)

    @property
    def observation_shape(self) -> tuple[int, int, int]:
        """(H, W, 1) of one image."""
        c = self.renderer.canvas_size
        return (c, c, 1)

    def sample(self, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Draw ``n`` observations.

        Returns images uint8 (n, H, W, 1) and factors: ``label`` int64 (n,) (class; -1 for faces;
        shape index for shapes), ``index`` int64 (n,) (sprite index in the split), ``x``, ``y``
        float32 (n,) in [0, 1], plus ``shape`` int64 and ``scale`` float32 (n,) for shapes.
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        r = self.renderer
        index = self._rng.integers(0, r.num_sprites, n)
        if self.moving:
            px, py = r.random_positions(self._rng, n)
        else:
            px = py = np.full(n, r.centre, dtype=np.int64)
        return r.render(index, px, py), r.factors(index, px, py)

    def state_dict(self) -> dict[str, Any]:
        """The sampler's RNG state (a plain dict), for bit-for-bit resume."""
        return {"dataset": self.dataset, "rng": copy.deepcopy(self._rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the dataset must match."""
        if state.get("dataset") != self.dataset:
            raise ValueError(
                f"state is for dataset {state.get('dataset')!r}, this sampler is {self.dataset!r}"
            )
        self._rng.bit_generator.state = copy.deepcopy(state["rng"])
