"""DeepMind Lab levels as gymnasium envs, with the paper's preprocessing (appendix A.5).

Adapter over the real ``deepmind_lab`` Python API (google-deepmind/lab, docs/users/python_api.md):
``Lab(level, observations, config, renderer, level_cache)``, ``reset(episode, seed)``,
``step(action: intc[7], num_steps) -> reward``, ``observations()``, ``is_running()``, ``close()``.
DeepMind Lab is on no package registry; it is imported only when an env is constructed, so registering
the ids below works without it (see :data:`LAB_INSTALL_HINT` for installing it).

Observations (A.5): ``RGB_INTERLEAVED`` frames rendered at 111 x 84 (width x height), the right-most 27
columns cropped away (84 x 84), then area-averaged down to 64 x 64 (``tf.image.resize_area``
semantics: every output pixel is the exact coverage-weighted mean of the input pixels under it):
``Box(0, 255, (64, 64, 3), uint8)``. Actions: IMPALA's ``DEFAULT_ACTION_SET`` (scalable_agent,
environments.py), each repeated ``action_repeat`` frames (4). An episode terminates when the level stops
running (``is_running()`` is False); ``max_episode_steps`` optionally truncates it.

>>> import gymnasium as gym
>>> register_lab_envs()  # needs no deepmind_lab
>>> env = gym.make("vase_rl/DMLab-NatLab-v0")  # doctest: +SKIP
>>> level = "contributed/dmlab30/explore_goal_locations_small"
>>> env = gym.make("vase_rl/DMLab-v0", level=level)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np

from vase_rl.data.transforms import area_weights, resize_area  # noqa: F401  (area_weights: re-exported)

NATLAB_LEVEL = "contributed/dmlab30/natlab_varying_map_randomized"
EDE_LEVEL = "contributed/dmlab30/rooms_exploit_deferred_effects_train"
LAB_ENV_IDS: dict[str, str | None] = {
    "vase_rl/DMLab-NatLab-v0": NATLAB_LEVEL,
    "vase_rl/DMLab-EDE-v0": EDE_LEVEL,
    "vase_rl/DMLab-v0": None,  # any level: gym.make("vase_rl/DMLab-v0", level=...)
}
RGB_OBSERVATION = "RGB_INTERLEAVED"

DEFAULT_ACTION_SET: tuple[tuple[int, ...], ...] = (
    (0, 0, 0, 1, 0, 0, 0),  # forward
    (0, 0, 0, -1, 0, 0, 0),  # backward
    (0, 0, -1, 0, 0, 0, 0),  # strafe left
    (0, 0, 1, 0, 0, 0, 0),  # strafe right
    (-20, 0, 0, 0, 0, 0, 0),  # look left
    (20, 0, 0, 0, 0, 0, 0),  # look right
    (-20, 0, 0, 1, 0, 0, 0),  # look left + forward
    (20, 0, 0, 1, 0, 0, 0),  # look right + forward
    (0, 0, 0, 0, 1, 0, 0),  # fire
)
"""IMPALA's action set (Espeholt et al. 2018, scalable_agent/environments.py), over DM Lab's action spec
(LOOK_LEFT_RIGHT_PIXELS_PER_FRAME, LOOK_DOWN_UP_PIXELS_PER_FRAME, STRAFE_LEFT_RIGHT, MOVE_BACK_FORWARD,
FIRE, JUMP, CROUCH)."""
ACTION_NAMES: tuple[str, ...] = (
    "forward",
    "backward",
    "strafe_left",
    "strafe_right",
    "look_left",
    "look_right",
    "look_left_forward",
    "look_right_forward",
    "fire",
)

LAB_INSTALL_HINT = (
    "DeepMind Lab (the `deepmind_lab` module) is not installed; it is not on PyPI. Build it from source "
    "with Bazel following https://github.com/google-deepmind/lab/blob/master/docs/users/build.md:\n"
    "  git clone https://github.com/google-deepmind/lab && cd lab\n"
    "  bazel build -c opt //python/pip_package:build_pip_package\n"
    "  ./bazel-bin/python/pip_package/build_pip_package /tmp/dmlab_pkg\n"
    "  pip install /tmp/dmlab_pkg/deepmind_lab-*.whl\n"
    "then `pip install 'vase-rl[lab]'`. Without DeepMind Lab, use the embedded MiniWorld levels "
    "vase_rl/WorldOutdoor-v0 and vase_rl/WorldIndoor-v0 (pip install 'vase-rl[world]')."
)


def register_lab_envs() -> None:
    """Register ``vase_rl/DMLab-NatLab-v0``, ``vase_rl/DMLab-EDE-v0`` and ``vase_rl/DMLab-v0`` (needs
    ``level=``). Idempotent; does not import ``deepmind_lab``. ``gym.make`` kwargs go to :class:`LabEnv`."""
    for env_id, level in LAB_ENV_IDS.items():
        if env_id not in gym.registry:
            kwargs = {} if level is None else {"level": level}
            gym.register(id=env_id, entry_point="vase_rl.envs.lab:LabEnv", kwargs=kwargs)


def import_deepmind_lab() -> ModuleType:
    """Import ``deepmind_lab``; raises ImportError with :data:`LAB_INSTALL_HINT` when it is missing."""
    try:
        import deepmind_lab
    except ImportError as exc:
        raise ImportError(LAB_INSTALL_HINT) from exc
    return deepmind_lab


def preprocess_frame(frame: np.ndarray, crop_right: int = 27, size: int = 64) -> np.ndarray:
    """A.5 preprocessing: drop the right-most ``crop_right`` columns, then area-resize to ``size`` x ``size``.

    frame: (H, W, 3) uint8, e.g. DM Lab's 84 x 111 ``RGB_INTERLEAVED``. Returns (size, size, 3) uint8
    (rounded to nearest). 84 x 111 -> crop 27 -> 84 x 84 -> 64 x 64.
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got shape {frame.shape} dtype {frame.dtype}")
    width = frame.shape[1]
    if not 0 <= crop_right < width:
        raise ValueError(f"crop_right must be in [0, {width}) for a frame {width} wide, got {crop_right}")
    cropped = np.moveaxis(frame[:, : width - crop_right], -1, 0)  # (3, H, W - crop_right)
    return np.ascontiguousarray(np.moveaxis(resize_area(cropped, size), 0, -1))


def _action_table(action_set: Sequence[Sequence[int]], spec: list[dict[str, Any]]) -> list[np.ndarray]:
    """The action set as np.intc arrays, checked against the level's ``action_spec()``."""
    if len(action_set) == 0:
        raise ValueError("action_set is empty")
    table = []
    for index, action in enumerate(action_set):
        values = np.asarray(action, dtype=np.intc)
        if values.shape != (len(spec),):
            raise ValueError(
                f"action_set[{index}] must have {len(spec)} entries (one per "
                f"{[s['name'] for s in spec]}), got {tuple(action)}"
            )
        for value, limits in zip(values, spec, strict=True):
            if not limits["min"] <= value <= limits["max"]:
                raise ValueError(
                    f"action_set[{index}]: {limits['name']}={value} is outside "
                    f"[{limits['min']}, {limits['max']}]"
                )
        table.append(values)
    return table


class LabEnv(gym.Env[np.ndarray, np.int64]):
    """A DeepMind Lab level with A.5 observations and IMPALA's discrete actions.

    level: DM Lab level name (e.g. :data:`NATLAB_LEVEL`, :data:`EDE_LEVEL`). action_repeat: frames per
    step (``num_steps``). max_episode_steps: truncate after this many steps (``None``: only the level
    ends episodes). obs_size, width, height, crop_right: A.5 preprocessing. fps, renderer, level_cache:
    passed to ``deepmind_lab.Lab``; config: extra level options (values are converted to ``str``).
    info_observations: extra DM Lab observations (e.g. ``"DEBUG.POS.TRANS"``) returned in ``info``.
    render_mode ``"rgb_array"`` renders the last raw (height, width, 3) frame. ``action_names``: names of
    the discrete actions. ``info``: ``level``, ``episode``, ``lab_seed``, ``frames`` (DM Lab frames since
    reset) and the ``info_observations``.
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 15}  # noqa: RUF012 (gymnasium convention)

    def __init__(
        self,
        level: str | None = None,
        *,
        action_repeat: int = 4,
        max_episode_steps: int | None = None,
        obs_size: int = 64,
        width: int = 111,
        height: int = 84,
        crop_right: int = 27,
        fps: int = 60,
        renderer: str = "software",
        level_cache: Any = None,
        config: Mapping[str, Any] | None = None,
        action_set: Sequence[Sequence[int]] = DEFAULT_ACTION_SET,
        info_observations: Sequence[str] = (),
        render_mode: str | None = None,
    ) -> None:
        if not isinstance(level, str) or not level:
            raise ValueError(f"level must be a DM Lab level name such as {NATLAB_LEVEL!r}, got {level!r}")
        if action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        if not 0 <= crop_right < width:
            raise ValueError(f"crop_right must be in [0, width={width}), got {crop_right}")
        reserved = {"width", "height", "fps"} & set(config or {})
        if reserved:
            raise ValueError(f"set {sorted(reserved)} with the keyword arguments, not in config")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.level, self.action_repeat, self.max_episode_steps = level, action_repeat, max_episode_steps
        self.obs_size, self.crop_right, self.render_mode = obs_size, crop_right, render_mode
        self._info_names = list(info_observations)
        lab_config = {"width": str(width), "height": str(height), "fps": str(fps)}
        lab_config.update({str(k): str(v) for k, v in (config or {}).items()})
        deepmind_lab = import_deepmind_lab()
        self._lab: Any = deepmind_lab.Lab(
            level,
            [RGB_OBSERVATION, *self._info_names],
            config=lab_config,
            renderer=renderer,
            level_cache=level_cache,
        )
        try:
            self._actions = _action_table(action_set, self._lab.action_spec())
        except ValueError:
            self._lab.close()
            raise
        default = [list(a) for a in action_set] == [list(a) for a in DEFAULT_ACTION_SET]
        self.action_names = ACTION_NAMES if default else tuple(str(tuple(a)) for a in action_set)
        self.observation_space = gym.spaces.Box(0, 255, (obs_size, obs_size, 3), np.uint8)
        self.action_space: gym.spaces.Discrete = gym.spaces.Discrete(len(self._actions))
        self._frame = np.zeros((height, width, 3), dtype=np.uint8)
        self._obs = np.zeros(self.observation_space.shape, dtype=np.uint8)
        self._extra: dict[str, Any] = {}
        self._steps, self._lab_seed, self._episode = 0, -1, -1

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode. DM Lab's ``seed`` is drawn from ``self.np_random`` and its ``episode`` index
        restarts at 0 whenever ``seed`` is given (levels may pick content by either), so a seeded reset
        always replays the same episode."""
        super().reset(seed=seed)
        self._episode = 0 if seed is not None else self._episode + 1
        self._lab_seed = int(self.np_random.integers(2**31 - 1))
        self._lab.reset(episode=self._episode, seed=self._lab_seed)
        self._steps = 0
        self._observe()
        return self._obs.copy(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Repeat ``action`` for ``action_repeat`` frames. At termination DM Lab serves no observation,
        so the last one is returned again."""
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, {self.action_space.n}), got {action!r}")
        if not self._lab.is_running():
            raise RuntimeError("the DM Lab episode is over (or never started): call reset() first")
        reward = float(self._lab.step(self._actions[int(action)], num_steps=self.action_repeat))
        self._steps += 1
        terminated = not self._lab.is_running()
        if not terminated:
            self._observe()
        out_of_time = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        truncated = out_of_time and not terminated
        return self._obs.copy(), reward, terminated, truncated, self._info()

    def render(self) -> np.ndarray | None:
        """The last raw DM Lab frame (height, width, 3) when ``render_mode="rgb_array"``."""
        return self._frame.copy() if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        if getattr(self, "_lab", None) is not None:
            self._lab.close()
            self._lab = None
        super().close()

    def _observe(self) -> None:
        observations = self._lab.observations()
        frame = observations[RGB_OBSERVATION]
        if frame.shape != self._frame.shape:
            raise ValueError(
                f"DM Lab returned a {RGB_OBSERVATION} frame of shape {frame.shape}; "
                f"expected {self._frame.shape} (height, width, 3)"
            )
        self._frame = frame
        self._obs = preprocess_frame(frame, self.crop_right, self.obs_size)
        self._extra = {name: observations[name] for name in self._info_names}

    def _info(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "episode": self._episode,
            "lab_seed": self._lab_seed,
            "frames": self._lab.num_steps(),
            **self._extra,
        }
