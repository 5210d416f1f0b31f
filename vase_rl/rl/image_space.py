"""Which observation spaces are images, and the learner a VASE wrapper builds for one when given none.

:func:`image_layout` validates a frame space; :func:`default_preset` picks the preset for a device
(``"paper-heuristics"``, 64x64, on CUDA; ``"cpu"``, 32x32, otherwise); :func:`default_learner` builds a fresh
learner from it whose model keeps the preset's image size (frames are resized to it, never the model
grown to the frame) and takes the frames' channels.

>>> atari = spaces.Box(0, 255, (210, 160, 3), np.uint8)  # gym.make("ALE/Pong-v5").observation_space
>>> image_layout(atari)
(210, 160, 3)
>>> learner = default_learner(atari, device="cpu")  # CPU -> "cpu" preset: frames resized to 32x32
>>> learner.config.model.image_size, learner.config.model.channels
(32, 3)
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from vase_rl.core.config import AGENT_LOOP, VASEConfig, get_preset
from vase_rl.core.learner import ContinualLearner, resolve_device

__all__ = ["default_learner", "default_preset", "image_layout"]

logger = logging.getLogger("vase_rl")


def image_layout(space: spaces.Space[Any]) -> tuple[int, int, int]:
    """(H, W, C) of an image observation space; TypeError (not a Box) or ValueError (a Box that is not
    an image) saying what an image space is.

    Accepted: ``Box`` of dtype uint8 (any bounds within [0, 255]) or float (bounds within [0, 1]) and
    shape (H, W), (H, W, C) or (C, H, W) with C in {1, 3} -- the layouts ``learner.preprocess`` reads.
    """
    expected = "a Box image space of shape (H, W), (H, W, C) or (C, H, W) with C in (1, 3)"
    if not isinstance(space, spaces.Box):
        raise TypeError(f"VASE wrappers need {expected}; got {space!r}")
    shape = space.shape
    if len(shape) == 2:
        h, w, c = shape[0], shape[1], 1
    elif len(shape) == 3 and shape[-1] in (1, 3):
        h, w, c = shape
    elif len(shape) == 3 and shape[0] in (1, 3):
        c, h, w = shape
    else:
        raise ValueError(f"VASE wrappers need {expected}; got a Box of shape {shape}")
    if min(h, w) < 2:
        raise ValueError(f"image observations of shape {shape} are too small to encode")
    if space.dtype == np.uint8:
        return h, w, c
    if np.issubdtype(space.dtype, np.floating):
        if np.all(space.low >= 0.0) and np.all(space.high <= 1.0):
            return h, w, c
        raise ValueError(
            f"float image spaces must have bounds within [0, 1]; got low={space.low.min()}, "
            f"high={space.high.max()} (rescale to [0, 1] or use uint8 images)"
        )
    raise ValueError(f"VASE wrappers need uint8 or float images; got a Box of dtype {space.dtype}")


def default_preset(device: str | torch.device = "auto") -> str:
    """The preset for a learner on ``device``: ``"paper-heuristics"`` (64x64: the paper's Table 2 with the
    library's inference and mask rules, which an online learner needs) on CUDA, ``"cpu"`` (32x32) elsewhere.

    ``device="auto"`` means CUDA when ``torch.cuda.is_available()``, so by default the rule reads
    "paper-heuristics when CUDA is available, cpu otherwise".

    >>> default_preset("cpu"), get_preset(default_preset("cpu")).model.image_size
    ('cpu', 32)
    """
    return "paper-heuristics" if resolve_device(device).type == "cuda" else "cpu"


def default_learner(
    space: spaces.Space[Any],
    preset: str | None = None,
    device: str | torch.device = "auto",
    agent_loop: bool = True,
) -> ContinualLearner:
    """A fresh learner for frames of ``space``: ``preset`` (None: :func:`default_preset` for ``device``)
    with the model's channels set to the frames' (3 for RGB frames, also with the sprite presets' 1) and,
    with ``agent_loop``, :data:`~vase_rl.core.config.AGENT_LOOP` on top: a learner that keeps learning
    under a policy needs its anchor, sign pick and two-sided test (``OnlineConfig.agent_loop``; measured
    with the cpu preset, not yet on a GPU with ``"paper-heuristics"``).

    The model keeps its preset's ``image_size`` S: frames of any H x W are resized to S x S (area
    averaging when shrinking, bilinear when growing; not cropped, so the aspect ratio is not kept).
    A 210x160x3 Atari frame gives a 3-channel 64x64 model on CUDA, 32x32 on CPU. The choice is logged
    (``logging`` logger ``"vase_rl"``, level INFO).
    """
    h, w, c = image_layout(space)
    name = preset if preset is not None else default_preset(device)
    loop: dict[str, dict[str, Any]] = AGENT_LOOP if agent_loop else {}
    config: VASEConfig = get_preset(name).with_overrides(
        **{**loop, "model": {**loop.get("model", {}), "channels": c}}
    )
    learner = ContinualLearner(config, device=device)
    size = config.model.image_size
    how = "used as" if (h, w) == (size, size) else "resized to"
    logger.info(
        "VASE wrapper: new learner, preset %r%s%s on %s; %s frames are %s %s model inputs",
        name,
        "" if preset is not None else " (default for the device)",
        " with AGENT_LOOP" if agent_loop else "",
        learner.device,
        f"{h}x{w}x{c}",
        how,
        f"{size}x{size}x{c}",
    )
    return learner
