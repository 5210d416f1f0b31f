"""vase-rl: VASE (Achille et al. 2018), a continual beta-VAE learner, as gymnasium observation wrappers.

The public API, imported on first use (``import vase_rl`` stays light: no torch model, gymnasium
wrapper or stable-baselines3 import until a name is asked for):

>>> import vase_rl
>>> vase_rl.get_preset("cpu").model.image_size
32
>>> sorted(vase_rl.__all__)[:3]
['ContinualLearner', 'OnlineConfig', 'VASEConfig']

The SB3 glue (``vase_rl.agents.sb3``, ``VASEVecEnv`` in ``vase_rl.agents.sb3_vec``) needs the ``sb3``
extra and is not exported here.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vase_rl.core.config import VASEConfig, get_preset
    from vase_rl.core.learner import ContinualLearner
    from vase_rl.rl.online_config import OnlineConfig
    from vase_rl.rl.vector_wrapper import VASEVectorObservation
    from vase_rl.rl.wrapper import VASEObservation

try:
    __version__ = version("vase-rl")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    __version__ = "0.1.0"

_EXPORTS = {
    "ContinualLearner": "vase_rl.core.learner",
    "OnlineConfig": "vase_rl.rl.online_config",
    "VASEConfig": "vase_rl.core.config",
    "VASEObservation": "vase_rl.rl.wrapper",
    "VASEVectorObservation": "vase_rl.rl.vector_wrapper",
    "get_preset": "vase_rl.core.config",
}

__all__ = [
    "ContinualLearner",
    "OnlineConfig",
    "VASEConfig",
    "VASEObservation",
    "VASEVectorObservation",
    "__version__",
    "get_preset",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first access (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
