"""MiniWorld 3-D levels: the embedded stand-in for the paper's DM Lab pair NatLab -> EDE.

DeepMind Lab is on no package registry, so the DM Lab experiments default to two procedurally generated
MiniWorld levels (``pip install 'vase-rl[world]'``): ``outdoor`` (NatLab-like: grass under a blue sky
with fog, low rock ridges, trees and boulders, a red mushroom to reach) and ``indoor`` (EDE-like: brick
rooms with ceilings and doorways, wooden floor, coloured crates and a barrel, a yellow ball to reach).

Both share **geometry and agent motion**: an episode's :class:`WorldLayout` (square arena cut into four
rooms by two partitions with doorways; obstacle and target discs; agent pose) is drawn from the env's
seeded RNG by :func:`generate_layout` whatever the theme, so the same seed and actions give the same
trajectory in both levels and only the pixels differ. Observations: ``(obs_size, obs_size, 3)`` uint8,
rendered by Mesa through headless EGL. Actions: 0 turn left, 1 turn right, 2 forward, 3 back. Reward:
``1 - time_penalty * t / max_episode_steps`` on reaching the target (terminates) plus ``progress_reward``
per metre of approach. ``info``: ``agent_pos`` (x, z), ``agent_dir`` (radians in [-pi, pi]),
``object_pos`` (K, 2), ``target_pos`` (2,), ``level``. Headless OpenGL needs Mesa's EGL/GL libraries:
on Debian/Ubuntu run scripts/install_gl.sh.

>>> import gymnasium as gym
>>> register_world_envs()
>>> obs, info = gym.make("vase_rl/WorldOutdoor-v0").reset(seed=0)
>>> obs.shape, obs.dtype, sorted(info)
((64, 64, 3), dtype('uint8'), ['agent_dir', 'agent_pos', 'level', 'object_pos', 'target_pos'])
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.util
import io
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from .world_layout import WorldConfig, WorldLayout, generate_layout

HEADLESS_ENV = {"PYGLET_HEADLESS": "1", "LP_NUM_THREADS": "0"}
"""Defaults set before pyglet and Mesa load. PYGLET_HEADLESS: EGL, no X display. LP_NUM_THREADS=0:
llvmpipe rasterises in the calling thread -- as fast at 64 x 64, one core per env, and fork-safe (with
its worker threads, envs created after a fork, e.g. in a fork-started AsyncVectorEnv, deadlock)."""

GL_PACKAGES = "libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libglu1-mesa libfreetype6"
"""Debian packages headless MiniWorld needs (what ``scripts/install_gl.sh`` installs)."""

__all__ = [
    "WORLD_ENV_IDS",
    "GLUnavailableError",
    "WorldConfig",
    "WorldEnv",
    "WorldLayout",
    "check_gl",
    "generate_layout",
    "register_world_envs",
]

WORLD_ENV_IDS: dict[str, str] = {"outdoor": "vase_rl/WorldOutdoor-v0", "indoor": "vase_rl/WorldIndoor-v0"}


class GLUnavailableError(RuntimeError):
    """MiniWorld could not be imported or could not open a headless OpenGL context."""


@dataclass(frozen=True)
class ObjectStyle:
    """One object kind's look: a low-poly primitive (``"box"`` or a :data:`SHAPES` key) ``height`` metres
    tall, coloured ``color`` (RGB in [0, 1]); its footprint radius comes from the layout."""

    kind: Literal["box", "ball", "mushroom", "pine", "tree", "barrel"]
    height: float
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)


_BARK, _STEM = (0.4, 0.26, 0.13), (0.92, 0.88, 0.78)
SHAPES: dict[str, tuple[tuple[Any, ...], ...]] = {
    "ball": (("blob", 1.0, 0.5, 0.5, None),),
    "mushroom": (("cone", 0.35, 0.3, 0.6, 0.0, _STEM), ("blob", 1.0, 0.4, 0.6, None)),
    "pine": (
        ("cone", 0.15, 0.12, 0.3, 0.0, _BARK),
        ("cone", 1.0, 0.0, 0.45, 0.25, None),
        ("cone", 0.75, 0.0, 0.4, 0.45, None),
        ("cone", 0.5, 0.0, 0.35, 0.65, None),
    ),
    "tree": (("cone", 0.15, 0.1, 0.55, 0.0, _BARK), ("blob", 1.0, 0.3, 0.68, None)),
    "barrel": (("cone", 0.8, 0.8, 1.0, 0.0, None),),
}
"""Primitive parts: ``("cone", r_bottom, r_top, height, base, colour)`` a (truncated) cone, ``("blob", r,
half_height, centre, colour)`` an ellipsoid. Radii are fractions of the footprint radius, heights of the
object's height; colour ``None`` is the style's colour."""


@dataclass(frozen=True)
class WorldTheme:
    """What differs between levels: textures, wall and door heights, sky, fog, light, object looks.

    fog: linear fog ``(start, end)`` in metres in the sky colour, or ``None``. door_height: doorway lintel,
    ``None`` = open to the top. Layout obstacle kind ``k`` looks like ``obstacles[k % len(obstacles)]``.
    """

    name: str
    floor_tex: str
    wall_tex: str
    ceil_tex: str
    no_ceiling: bool
    wall_height: float
    door_height: float | None
    sky_color: tuple[float, float, float]
    fog: tuple[float, float] | None
    light_ambient: tuple[float, float, float]
    light_color: tuple[float, float, float]
    obstacles: tuple[ObjectStyle, ...]
    target: ObjectStyle


OUTDOOR = WorldTheme(
    name="outdoor",
    floor_tex="grass",
    wall_tex="rock",
    ceil_tex="concrete_tiles",
    no_ceiling=True,
    wall_height=0.9,
    door_height=None,
    sky_color=(0.55, 0.75, 0.95),
    fog=(3.0, 18.0),
    light_ambient=(0.55, 0.55, 0.5),
    light_color=(0.75, 0.72, 0.6),
    obstacles=(
        ObjectStyle("tree", 2.6, (0.25, 0.55, 0.15)),
        ObjectStyle("pine", 3.0, (0.08, 0.35, 0.15)),
        ObjectStyle("ball", 0.8, (0.5, 0.48, 0.45)),
        ObjectStyle("pine", 2.2, (0.15, 0.45, 0.2)),
    ),
    target=ObjectStyle("mushroom", 0.6, (0.85, 0.1, 0.1)),
)
INDOOR = WorldTheme(
    name="indoor",
    floor_tex="wood_planks",
    wall_tex="brick_wall",
    ceil_tex="ceiling_tiles",
    no_ceiling=False,
    wall_height=2.74,
    door_height=2.2,
    sky_color=(0.1, 0.1, 0.1),
    fog=None,
    light_ambient=(0.45, 0.45, 0.45),
    light_color=(0.7, 0.7, 0.7),
    obstacles=(
        ObjectStyle("box", 0.9, (0.1, 0.2, 0.9)),
        ObjectStyle("box", 0.7, (0.1, 0.8, 0.2)),
        ObjectStyle("barrel", 1.0, (0.75, 0.3, 0.1)),
        ObjectStyle("box", 1.1, (0.55, 0.2, 0.8)),
    ),
    target=ObjectStyle("ball", 0.6, (1.0, 0.9, 0.0)),
)
THEMES: dict[str, WorldTheme] = {OUTDOOR.name: OUTDOOR, INDOOR.name: INDOOR}


def register_world_envs() -> None:
    """Register ``vase_rl/WorldOutdoor-v0`` and ``vase_rl/WorldIndoor-v0`` (idempotent; imports no GL).

    Extra ``gym.make`` kwargs override :class:`WorldConfig` fields, e.g. ``obs_size=84``.
    """
    for level, env_id in WORLD_ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="vase_rl.envs.world:WorldEnv", kwargs={"level": level})


def _import_miniworld() -> None:
    """Import miniworld headlessly; every failure becomes an error that says what to install."""
    if importlib.util.find_spec("miniworld") is None:
        raise ImportError("MiniWorld is not installed: pip install 'vase-rl[world]' (miniworld>=2.1)")
    for name, value in HEADLESS_ENV.items():
        os.environ.setdefault(name, value)
    pyglet_mod = sys.modules.get("pyglet")
    if pyglet_mod is not None and "pyglet.gl" not in sys.modules:
        # pyglet was imported before PYGLET_HEADLESS was set; its options act once pyglet.gl loads.
        pyglet_mod.options["headless"] = os.environ["PYGLET_HEADLESS"] not in ("0", "false", "")
    try:
        import miniworld  # noqa: F401
    except Exception as exc:  # pyglet raises ImportError (missing lib), NoSuchDisplayException, EGL errors
        raise GLUnavailableError(
            f"MiniWorld could not open a headless OpenGL (EGL) context: {type(exc).__name__}: {exc}. "
            f"Install Mesa's EGL/GL libraries: on Debian/Ubuntu run scripts/install_gl.sh "
            f"(apt-get install {GL_PACKAGES}). PYGLET_HEADLESS={os.environ.get('PYGLET_HEADLESS')!r}."
        ) from exc


def check_gl() -> str:
    """Import MiniWorld headlessly and return the OpenGL renderer, e.g. ``"llvmpipe ... / OpenGL 4.5"``.

    Raises :class:`GLUnavailableError` (naming the packages to install) when OpenGL cannot start.
    """
    _import_miniworld()
    from pyglet.gl import gl_info

    return f"{gl_info.get_renderer()} / OpenGL {gl_info.get_version()}"


@functools.cache
def _simulator_class() -> type:  # noqa: C901 (mccabe sums the nested classes' methods; each is small)
    """Build the MiniWorld subclass lazily, so that importing this module never touches OpenGL."""
    _import_miniworld()
    import pyglet
    from miniworld.entity import Entity
    from miniworld.miniworld import MiniWorldEnv
    from miniworld.opengl import FrameBuffer, Texture, drawBox
    from miniworld.params import DEFAULT_PARAMS
    from miniworld.utils import get_file_path
    from PIL import Image
    from pyglet import gl
    from pyglet.gl import glu

    class Primitive(Entity):
        """A static low-poly object (GLU quadrics) standing on its footprint disc of radius ``radius``."""

        is_static = True

        def __init__(self, style: ObjectStyle, radius: float, quadric: Any) -> None:
            super().__init__()
            self.style, self.radius, self.height, self.quadric = style, radius, style.height, quadric

        def render(self) -> None:
            r, h = self.radius, self.height
            gl.glDisable(gl.GL_TEXTURE_2D)
            gl.glDisable(gl.GL_CULL_FACE)  # cones are open underneath
            gl.glPushMatrix()
            gl.glTranslatef(*self.pos)
            gl.glRotatef(math.degrees(self.dir), 0, 1, 0)
            if self.style.kind == "box":
                half = r / math.sqrt(2.0)  # the footprint disc circumscribes the square
                gl.glColor3f(*self.style.color)
                drawBox(x_min=-half, x_max=half, y_min=0, y_max=h, z_min=-half, z_max=half)
            for shape, *dims, color in SHAPES.get(self.style.kind, ()):
                gl.glColor3f(*(color or self.style.color))
                gl.glPushMatrix()
                if shape == "cone":
                    r0, r1, height, base = dims
                    gl.glTranslatef(0, base * h, 0)
                    gl.glRotatef(-90, 1, 0, 0)
                    glu.gluCylinder(self.quadric, r0 * r, r1 * r, height * h, 10, 1)
                    gl.glTranslatef(0, 0, height * h)
                    glu.gluDisk(self.quadric, 0, r1 * r, 10, 1)  # lid (empty when r1 == 0)
                else:
                    radius, half_height, centre = dims
                    gl.glTranslatef(0, centre * h, 0)
                    gl.glScalef(radius * r, half_height * h, radius * r)
                    glu.gluSphere(self.quadric, 1.0, 12, 8)
                gl.glPopMatrix()
            gl.glPopMatrix()
            gl.glEnable(gl.GL_CULL_FACE)

    def upload_texture(name: str) -> None:
        """Cache MiniWorld texture ``name`` decoded by Pillow (pyglet's Python RGB->RGBA takes ~1 s)."""
        path = get_file_path("textures", f"{name}_1", "png")
        if path not in Texture.tex_cache:
            with Image.open(path) as img:
                rgba = img.convert("RGBA").transpose(Image.Transpose.FLIP_TOP_BOTTOM)  # GL rows go up
            tex = pyglet.image.ImageData(rgba.width, rgba.height, "RGBA", rgba.tobytes()).get_texture()
            gl.glBindTexture(tex.target, tex.id)
            gl.glGenerateMipmap(tex.target)
            gl.glTexParameteri(tex.target, gl.GL_TEXTURE_MIN_FILTER, gl.GL_LINEAR_MIPMAP_LINEAR)
            gl.glBindTexture(tex.target, 0)
            Texture.tex_cache[path] = Texture(tex, name)

    class Simulator(MiniWorldEnv):
        """MiniWorld world built from a :class:`WorldLayout` and painted with a :class:`WorldTheme`."""

        def __init__(self, theme: WorldTheme, config: WorldConfig, layout: WorldLayout) -> None:
            self.theme, self.config, self.layout, self.target, self._list_id = theme, config, layout, None, 0
            self._quadric = glu.gluNewQuadric()
            glu.gluQuadricNormals(self._quadric, glu.GLU_SMOOTH)
            params = DEFAULT_PARAMS.no_random()
            for name, value in {
                "forward_step": config.forward_step,
                "turn_step": config.turn_step_deg,
                "sky_color": list(theme.sky_color),
                "light_color": list(theme.light_color),
                "light_ambient": list(theme.light_ambient),
            }.items():
                params.set(name, value, value, value)
            with contextlib.redirect_stdout(io.StringIO()):  # silences "Falling back to num_samples=4"
                super().__init__(
                    max_episode_steps=config.max_episode_steps,
                    obs_width=config.obs_size,
                    obs_height=config.obs_size,
                    window_width=config.render_size,
                    window_height=config.render_size,
                    params=params,
                    domain_rand=False,
                )
                self.obs_fb = FrameBuffer(config.obs_size, config.obs_size, config.msaa_samples)

        def _gen_world(self) -> None:
            self.shadow_window.switch_to()  # MiniWorld's reset draws in whichever context is current
            lay, theme, half = self.layout, self.theme, self.config.door_width / 2
            for name in (theme.floor_tex, theme.wall_tex, theme.ceil_tex):
                upload_texture(name)
            rooms = [
                self.add_rect_room(
                    *bounds,
                    wall_height=theme.wall_height,
                    floor_tex=theme.floor_tex,
                    wall_tex=theme.wall_tex,
                    ceil_tex=theme.ceil_tex,
                    no_ceiling=theme.no_ceiling,
                )
                for bounds in lay.room_bounds()
            ]
            for a, b, centre in lay.doors:
                axis = "z" if b == a + 1 else "x"  # rooms side by side share a wall of constant x
                span = {f"min_{axis}": centre - half, f"max_{axis}": centre + half}
                self.connect_rooms(rooms[a], rooms[b], max_y=theme.door_height, **span)
            kinds = [theme.obstacles[k % len(theme.obstacles)] for k in lay.obstacle_kind]
            obstacles = zip(kinds, lay.obstacle_pos, lay.obstacle_radius, lay.obstacle_dir, strict=True)
            for style, pos, radius, yaw in obstacles:
                self._place(style, pos, radius, yaw)
            self.target = self._place(theme.target, lay.target_pos, lay.target_radius, 0.0)
            self.place_agent(pos=np.array([lay.agent_pos[0], 0.0, lay.agent_pos[1]]), dir=lay.agent_dir)

        def _place(self, style: ObjectStyle, pos: np.ndarray, radius: float, yaw: float) -> Any:
            ent = Primitive(style, float(radius), self._quadric)
            return self.place_entity(ent, pos=np.array([pos[0], 0.0, pos[1]]), dir=float(yaw))

        def _render_static(self) -> None:
            # An own display list: MiniWorld hard-codes list 1, shared by every env of the process.
            self._list_id = self._list_id or gl.glGenLists(1)
            gl.glNewList(self._list_id, gl.GL_COMPILE)
            for param, value in (
                (gl.GL_POSITION, (*self.light_pos, 1)),
                (gl.GL_AMBIENT, self.light_ambient),
                (gl.GL_DIFFUSE, self.light_color),
            ):
                gl.glLightfv(gl.GL_LIGHT0, param, (gl.GLfloat * 4)(*value))
            caps = (gl.GL_LIGHTING, gl.GL_LIGHT0, gl.GL_COLOR_MATERIAL, gl.GL_NORMALIZE, gl.GL_TEXTURE_2D)
            for cap in caps:
                gl.glEnable(cap)
            gl.glShadeModel(gl.GL_SMOOTH)
            gl.glColorMaterial(gl.GL_FRONT_AND_BACK, gl.GL_AMBIENT_AND_DIFFUSE)
            gl.glDisable(gl.GL_FOG)
            if self.theme.fog is not None:
                gl.glEnable(gl.GL_FOG)
                gl.glFogi(gl.GL_FOG_MODE, gl.GL_LINEAR)
                gl.glFogfv(gl.GL_FOG_COLOR, (gl.GLfloat * 4)(*self.theme.sky_color, 1.0))
                gl.glFogf(gl.GL_FOG_START, self.theme.fog[0])
                gl.glFogf(gl.GL_FOG_END, self.theme.fog[1])
            for room in self.rooms:
                room._render()
            for ent in self.entities:
                if ent.is_static:
                    ent.render()
            gl.glEndList()

        def _render_world(self, frame_buffer: Any, render_agent: bool) -> np.ndarray:
            gl.glCallList(self._list_id)
            for ent in self.entities:
                if not ent.is_static and ent is not self.agent:
                    ent.render()
            if render_agent:
                self.agent.render()
            return frame_buffer.resolve()

        def close(self) -> None:
            if self._list_id:
                self.shadow_window.switch_to()
                gl.glDeleteLists(self._list_id, 1)
                glu.gluDeleteQuadric(self._quadric)
                self._list_id = 0
                self.shadow_window.close()
            super().close()

    return Simulator


class WorldEnv(gym.Env[np.ndarray, np.int64]):
    """A MiniWorld level: seeded theme-independent layout, themed rendering, reach-the-target task.

    level: ``"outdoor"``, ``"indoor"`` (see :data:`THEMES`) or a :class:`WorldTheme`. config: settings;
    keyword overrides replace its fields (``WorldEnv("indoor", obs_size=84)``). render_mode: ``None`` or
    ``"rgb_array"`` (the agent's view at ``config.render_size``).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 30}  # noqa: RUF012 (gymnasium convention)
    ACTION_NAMES: tuple[str, ...] = ("turn_left", "turn_right", "move_forward", "move_back")

    def __init__(
        self,
        level: str | WorldTheme = "outdoor",
        config: WorldConfig | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(level, str):
            if level not in THEMES:
                raise ValueError(f"unknown level {level!r}; expected one of {sorted(THEMES)} or a WorldTheme")
            level = THEMES[level]
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.theme, self.render_mode = level, render_mode
        self.config = dataclasses.replace(config or WorldConfig(), **overrides)
        size = self.config.obs_size
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space: gym.spaces.Discrete = gym.spaces.Discrete(len(self.ACTION_NAMES))
        self._layout = generate_layout(np.random.default_rng(0), self.config)
        self._sim: Any = _simulator_class()(self.theme, self.config, self._layout)
        self._distance = 0.0  # agent-target distance after the last step, for the progress reward

    @property
    def layout(self) -> WorldLayout:
        """The current episode's theme-independent geometry."""
        return self._layout

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._layout = self._sim.layout = generate_layout(self.np_random, self.config)
        obs, _ = self._sim.reset()
        info = self._info()
        self._distance = float(np.hypot(*(info["agent_pos"] - info["target_pos"])))
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, {self.action_space.n}), got {action!r}")
        obs, _, _, out_of_time, _ = self._sim.step(int(action))
        info, cfg = self._info(), self.config
        distance = float(np.hypot(*(info["agent_pos"] - info["target_pos"])))
        reward, self._distance = cfg.progress_reward * (self._distance - distance), distance
        reached = bool(self._sim.near(self._sim.target))
        if reached:
            reward += 1.0 - cfg.time_penalty * self._sim.step_count / cfg.max_episode_steps
        return obs, reward, reached, bool(out_of_time) and not reached, info

    def render(self) -> np.ndarray | None:
        """The agent's view at ``render_size`` when ``render_mode="rgb_array"``, else ``None``."""
        return self._sim.render_obs(self._sim.vis_fb) if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        if getattr(self, "_sim", None) is not None:
            self._sim.close()
            self._sim = None
        super().close()

    def _info(self) -> dict[str, Any]:
        agent = self._sim.agent
        return {
            "agent_pos": np.array([agent.pos[0], agent.pos[2]], dtype=np.float64),
            "agent_dir": math.remainder(float(agent.dir), 2.0 * math.pi),
            "object_pos": self._layout.obstacle_pos.copy(),
            "target_pos": self._layout.target_pos.copy(),
            "level": self.theme.name,
        }
