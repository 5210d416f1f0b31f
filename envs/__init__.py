"""Gymnasium environments of vase-rl, registered under the ``vase_rl/`` namespace on import.

Registration only records entry points; data is loaded when an env is constructed. ``SpriteCanvas``,
``SpriteSampler`` and ``parse_dataset`` are importable from here (loaded on first access):

>>> import gymnasium as gym, vase_rl.envs
>>> "vase_rl/MovingMNIST-v0" in gym.registry
True
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

SPRITE_ENV_IDS: dict[str, dict[str, Any]] = {
    "vase_rl/SpriteCanvas-v0": {},
    "vase_rl/MNIST-v0": {"dataset": "mnist"},
    "vase_rl/MovingMNIST-v0": {"dataset": "moving-mnist"},
    "vase_rl/Fashion-v0": {"dataset": "fashion"},
    "vase_rl/MovingFashion-v0": {"dataset": "moving-fashion"},
    "vase_rl/InverseFashion-v0": {"dataset": "inverse-fashion"},
    "vase_rl/MovingInverseFashion-v0": {"dataset": "moving-inverse-fashion"},
    "vase_rl/Faces-v0": {"dataset": "faces"},
    "vase_rl/Shapes-v0": {"dataset": "shapes"},
    "vase_rl/MovingShapes-v0": {"dataset": "moving-shapes"},
    "vase_rl/MovingMNISTIdentity-v0": {"dataset": "moving-mnist", "task": "identity"},
    "vase_rl/MovingFashionIdentity-v0": {"dataset": "moving-fashion", "task": "identity"},
    "vase_rl/MovingInverseFashionIdentity-v0": {"dataset": "moving-inverse-fashion", "task": "identity"},
}
"""Registered sprite env ids -> default kwargs (``SpriteCanvas-v0`` takes ``source``/``moving``/...)."""

_LAZY = {
    "SpriteCanvas": "vase_rl.envs.sprites",
    "SpriteSampler": "vase_rl.envs.sampler",
    "SpriteRenderer": "vase_rl.envs.sampler",
    "parse_dataset": "vase_rl.envs.sampler",
    "DATASETS": "vase_rl.envs.sampler",
    "LabEnv": "vase_rl.envs.lab",
    "preprocess_frame": "vase_rl.envs.lab",
    "WorldEnv": "vase_rl.envs.world",
}


def register_envs() -> None:
    """Register every id in :data:`SPRITE_ENV_IDS` (idempotent)."""
    for env_id, kwargs in SPRITE_ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="vase_rl.envs.sprites:SpriteCanvas", kwargs=kwargs)
    from vase_rl.envs.lab import register_lab_envs
    from vase_rl.envs.world import register_world_envs

    register_lab_envs()  # vase_rl/DMLab-NatLab-v0, vase_rl/DMLab-EDE-v0, vase_rl/DMLab-v0 (level=...)
    register_world_envs()  # vase_rl/WorldOutdoor-v0, vase_rl/WorldIndoor-v0


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


register_envs()
