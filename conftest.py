"""Root conftest: doctest collection of the package (``--doctest-modules`` over vase_rl/, envs/, agents/).

Collecting a module imports it. Modules that import an optional extra at module level are skipped when
that extra is not installed, so ``pytest`` collects cleanly with only ``.[dev]``. DeepMind Lab
(envs/lab.py) and miniworld (envs/world.py) are imported only when an env is constructed, so their
modules always collect.
"""

from __future__ import annotations

import importlib.util

# module path (relative to this file) -> the optional package it imports at module level
_NEEDS = {
    "agents/sb3.py": "stable_baselines3",  # extra: sb3
    "agents/sb3_vec.py": "stable_baselines3",  # extra: sb3
}

collect_ignore = [path for path, package in _NEEDS.items() if importlib.util.find_spec(package) is None]
