"""Test-only stand-in for DeepMind Lab's ``deepmind_lab`` C extension (python/dmlab_module.c).

It honours the real module's API and its errors: ``Lab(level, observations: list, config: dict[str, str],
renderer, level_cache)``, ``reset(episode=-1, seed=None)``, ``step(action: intc[7], num_steps=1)``,
``observations()``, ``is_running()``, ``num_steps()``, ``action_spec()``, ``observation_spec()``,
``fps()``, ``events()``, ``close()``, with the same exception types and messages.

The "engine" is a point agent on a plane: LOOK_LEFT_RIGHT turns it (degrees = pixels * LOOK_DEG_PER_PIXEL),
MOVE_BACK_FORWARD / STRAFE_LEFT_RIGHT move it, FIRE scores 1 per frame. Frames are a deterministic
function of the agent's state, and the right-most ``HUD_COLUMNS`` columns are a solid ``HUD_COLOUR``
strip, so a test can check the A.5 crop numerically. Episodes last ``episodeLengthSeconds`` (a level
option, default 2) times ``fps`` frames. ``make_lab`` records the constructed instances in ``INSTANCES``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

HUD_COLUMNS = 27
HUD_COLOUR = (255, 0, 255)
LOOK_DEG_PER_PIXEL = 0.1
KNOWN_LEVELS = {
    "contributed/dmlab30/natlab_varying_map_randomized",
    "contributed/dmlab30/rooms_exploit_deferred_effects_train",
    "tests/empty_room_test",
    "seekavoid_arena_01",
}
ACTION_SPEC = [
    {"name": "LOOK_LEFT_RIGHT_PIXELS_PER_FRAME", "min": -512, "max": 512},
    {"name": "LOOK_DOWN_UP_PIXELS_PER_FRAME", "min": -512, "max": 512},
    {"name": "STRAFE_LEFT_RIGHT", "min": -1, "max": 1},
    {"name": "MOVE_BACK_FORWARD", "min": -1, "max": 1},
    {"name": "FIRE", "min": 0, "max": 1},
    {"name": "JUMP", "min": 0, "max": 1},
    {"name": "CROUCH", "min": 0, "max": 1},
]
INSTANCES: list[Lab] = []
_CLOSED, _UNINITIALISED, _RUNNING, _TERMINATED = "closed", "uninitialised", "running", "terminated"


def version() -> str:
    return "1.0"


def runfiles_path() -> str:
    return "/nonexistent/fake_deepmind_lab"


def set_runfiles_path(path: str) -> bool:
    if not isinstance(path, str):
        raise TypeError(f"argument 1 must be str, not {type(path).__name__}")
    return True


class Lab:
    """Fake ``deepmind_lab.Lab``; see the module docstring."""

    def __init__(
        self,
        level: str,
        observations: list[str],
        config: dict[str, str] | None = None,
        renderer: str = "software",
        level_cache: Any = None,
    ) -> None:
        self._status = _CLOSED
        if not isinstance(level, str):
            raise TypeError(f"argument 1 must be str, not {type(level).__name__}")
        if not isinstance(observations, list):
            raise TypeError(f"argument 2 must be list, not {type(observations).__name__}")
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"argument 3 must be dict, not {type(config).__name__}")
        if renderer not in ("hardware", "software"):
            raise RuntimeError(
                f'Failed to set renderer must be "hardware" or "software" actual "{renderer}"!'
            )
        settings = {"width": "320", "height": "240", "fps": "60", "episodeLengthSeconds": "2"}
        for key, value in (config or {}).items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"bad argument type for built-in operation ({key!r}: {value!r})")
            settings[key] = value
        try:
            self.width, self.height = int(settings["width"]), int(settings["height"])
            self._fps, seconds = int(settings["fps"]), float(settings["episodeLengthSeconds"])
        except ValueError as exc:
            raise RuntimeError(f'Failed to apply setting - "{exc}"') from exc
        if level not in KNOWN_LEVELS:
            raise RuntimeError(f"Failed to init environment - \"Could not find level '{level}'\"")
        self.level, self.renderer, self.level_cache, self.config = level, renderer, level_cache, settings
        self._spec = self._make_observation_spec()
        for name in observations:
            if not isinstance(name, str):
                raise TypeError(f"bad argument type for built-in operation ({name!r})")
            if name not in self._spec:
                raise ValueError(f"Unknown observation '{name}'.")
        self._observations = list(observations)
        self._episode_frames = int(seconds * self._fps)
        self._episode, self._frames = 0, 0
        self._pos, self._yaw, self._seed = np.zeros(2), 0.0, 0
        self.actions: list[np.ndarray] = []
        self._status = _UNINITIALISED
        INSTANCES.append(self)

    def _make_observation_spec(self) -> dict[str, dict[str, Any]]:
        h, w = self.height, self.width
        shapes = {
            "RGB_INTERLEAVED": (h, w, 3),
            "RGBD_INTERLEAVED": (h, w, 4),
            "RGB": (3, h, w),
            "RGBD": (4, h, w),
            "DEBUG.POS.TRANS": (3,),
            "DEBUG.POS.ROT": (3,),
            "VEL.TRANS": (3,),
            "VEL.ROT": (3,),
        }
        spec = {
            name: {"name": name, "shape": shape, "dtype": np.uint8 if "RGB" in name else np.float64}
            for name, shape in shapes.items()
        }
        spec["INSTR"] = {"name": "INSTR", "shape": (), "dtype": str}
        return spec

    def _check_open(self) -> None:
        if self._status == _CLOSED:
            raise RuntimeError("Environment is closed.")

    def reset(self, episode: int = -1, seed: int | None = None) -> bool:
        self._check_open()
        if not isinstance(episode, int):
            raise TypeError(f"an integer is required (got type {type(episode).__name__})")
        if seed is not None and not isinstance(seed, int):
            raise ValueError(f"'seed' must be int or None, was '{type(seed).__name__}'.")
        if episode >= 0:
            self._episode = episode
        self._seed = int(np.random.default_rng().integers(2**31)) if seed is None else seed
        rng = np.random.default_rng([self._seed, self._episode])
        self._pos, self._yaw = rng.uniform(-100, 100, size=2), float(rng.uniform(0, 360))
        self._frames, self._status = 0, _RUNNING
        self._episode += 1
        return True

    def num_steps(self) -> int:
        return self._frames

    def is_running(self) -> bool:
        return self._status == _RUNNING

    def step(self, action: np.ndarray, num_steps: int = 1) -> float:
        if not isinstance(action, np.ndarray):
            raise TypeError(f"argument 1 must be numpy.ndarray, not {type(action).__name__}")
        if not isinstance(num_steps, int):
            raise TypeError(f"an integer is required (got type {type(num_steps).__name__})")
        if not self.is_running():
            raise RuntimeError("Environment in wrong status to advance.")
        if action.ndim != 1 or action.shape[0] != len(ACTION_SPEC):
            raise ValueError(f"action must have shape ({len(ACTION_SPEC)})")
        if action.dtype != np.intc:
            raise ValueError("action must have dtype np.intc")
        self.actions.append(action.copy())
        look, _, strafe, forward, fire = (int(v) for v in action[:5])
        reward = 0.0
        for _ in range(num_steps):
            self._yaw = (self._yaw + LOOK_DEG_PER_PIXEL * look) % 360.0
            rad = math.radians(self._yaw)
            self._pos = self._pos + np.array([math.cos(rad), math.sin(rad)]) * forward
            self._pos = self._pos + np.array([math.sin(rad), -math.cos(rad)]) * strafe
            reward += float(fire)
            self._frames += 1
            if self._frames >= self._episode_frames:
                self._status = _TERMINATED
                break
        return reward

    def render_frame(self) -> np.ndarray:
        """(height, width, 3) uint8: a pattern determined by (seed, position, yaw), plus the HUD strip."""
        rows = np.arange(self.height)[:, None]
        cols = np.arange(self.width)[None, :]
        frame = np.empty((self.height, self.width, 3), dtype=np.uint8)
        frame[..., 0] = (cols * 2 + int(self._yaw)) % 200
        frame[..., 1] = (rows * 3 + int(self._pos[0])) % 200
        frame[..., 2] = (rows + cols + int(self._pos[1]) + self._seed) % 200
        frame[:, self.width - HUD_COLUMNS :] = HUD_COLOUR
        return frame

    def observations(self) -> dict[str, Any]:
        if not self.is_running():
            raise RuntimeError("Environment in wrong status for call to observations()")
        frame = self.render_frame()
        depth = np.full((*frame.shape[:2], 1), 128, dtype=np.uint8)
        values = {
            "RGB_INTERLEAVED": frame,
            "RGBD_INTERLEAVED": np.concatenate([frame, depth], axis=2),
            "RGB": np.ascontiguousarray(frame.transpose(2, 0, 1)),
            "RGBD": np.ascontiguousarray(np.concatenate([frame, depth], axis=2).transpose(2, 0, 1)),
            "DEBUG.POS.TRANS": np.array([self._pos[0], self._pos[1], 0.0]),
            "DEBUG.POS.ROT": np.array([0.0, self._yaw, 0.0]),
            "VEL.TRANS": np.zeros(3),
            "VEL.ROT": np.zeros(3),
            "INSTR": "",
        }
        return {name: values[name] for name in self._observations}

    def observation_spec(self) -> list[dict[str, Any]]:
        self._check_open()
        return [dict(spec) for spec in self._spec.values()]

    def action_spec(self) -> list[dict[str, Any]]:
        self._check_open()
        return [dict(spec) for spec in ACTION_SPEC]

    def fps(self) -> int:
        self._check_open()
        return self._fps

    def events(self) -> list[tuple[str, list[Any]]]:
        if self._status not in (_RUNNING, _TERMINATED):
            raise RuntimeError("Environment in wrong status for call to events()")
        return []

    def close(self) -> bool:
        if self._status == _CLOSED:
            return False
        self._status = _CLOSED
        return True
