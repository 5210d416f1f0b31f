"""Shared pieces of the 3-D benchmarks ``cross_domain_3d.py`` and ``rl_transfer_3d.py``.

* levels by name (:func:`level_spec`): ``outdoor``/``indoor`` (the embedded MiniWorld pair, NatLab-like and
  EDE-like), ``natlab``/``ede``, any registered gym id, or a DeepMind Lab level name such as
  ``contributed/dmlab30/natlab_varying_map_randomized`` (needs ``deepmind_lab`` installed);
* ground-truth state factors of a frame from the env's ``info`` (:func:`state_factors`);
* the VASE configuration of appendix Table 2's NatLab -> EDE row, step-dependent values scaled to the
  CPU budget (:func:`vase_config`);
* the command-line fields both scripts have (:class:`LevelsArgs`) and the runs' provenance.

The command line is ``benchmarks/cli_args.py``'s; the hardware record, markdown tables, JSON files and the
resumable runs (one JSON per finished (method, seed), ``common.run_pending``) are ``benchmarks/common.py``'s.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cli_args
import common
import numpy as np

RESULTS = common.RESULTS / "3d"
LEVEL_ALIASES: dict[str, str] = {
    "outdoor": "vase_rl/WorldOutdoor-v0",
    "indoor": "vase_rl/WorldIndoor-v0",
    "natlab": "vase_rl/DMLab-NatLab-v0",
    "ede": "vase_rl/DMLab-EDE-v0",
}
"""Short level names accepted by every ``--level-*`` argument."""
LAB_POSE_OBSERVATIONS = ("DEBUG.POS.TRANS", "DEBUG.POS.ROT")
"""DM Lab observations requested as ``info`` entries so that DM Lab frames get pose factors too."""
HALF_FOV = math.radians(30.0)
"""Half of MiniWorld's horizontal field of view (cam_fov_y = 60 degrees on square frames)."""
PAPER_STEPS_PER_DATASET = 60_000
"""Appendix Table 2: the NatLab -> EDE experiment trains 60k steps per dataset."""
TABLE2 = {
    "vase": {
        "loss": {"gamma": 200.0, "c_max": 25.0, "delta_c": 1e-5},
        "mask": {"lambda1": 2.0},
        "inference": {"kappa": 1.1},
        "dream": {"tau": 5000},
    },
    "entangled": {
        "loss": {"entangled": True, "beta_vae": 1.0},
        "mask": {"lambda1": 20.0},
        "inference": {"kappa": 1.1},
        "dream": {"tau": 5000},
    },
}
"""Appendix Table 2, NatLab -> EDE row: disentangled (gamma, C_max, delta_C, lambda, kappa, tau) and
entangled (lambda, kappa, tau); tau and delta_C are per-step values at 60k steps per dataset."""


# ------------------------------------------------------------------------------------ Args
@dataclass
class LevelsArgs(cli_args.JobsArgs):
    """A run per (method, seed) on level A then level B, ``jobs`` at a time."""

    level_a: str = "outdoor"
    """Level A: outdoor, indoor, natlab, ede, a gym id or a DM Lab level name (:func:`level_spec`)."""
    level_b: str = "indoor"
    """Level B (the transfer level)."""
    image_size: int = 32
    """VASE input side: the levels' 64x64 frames are area-resized to it."""
    world: str = "{}"
    """JSON dict of ``vase_rl.envs.world_layout.WorldConfig`` overrides for the embedded MiniWorld levels,
    e.g. '{"arena_size": 7, "num_obstacles": 2}' (a smaller, denser task); ignored by DM Lab levels."""

    def level_spec(self, level: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        """:func:`level_spec` of ``level`` with :attr:`world`'s overrides when it is a MiniWorld level."""
        world = world_overrides(self.world) if is_world(level) else {}
        return level_spec(level, **{**world, **kwargs})

    def make_level(self, level: str, **kwargs: Any) -> Any:
        """``gym.make`` of :meth:`level_spec`."""
        import gymnasium as gym

        env_id, kw = self.level_spec(level, **kwargs)
        return gym.make(env_id, **kw)


# ------------------------------------------------------------------------------------ levels
def level_spec(level: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    """(gym id, make kwargs) of a level name, alias, gym id or DM Lab level name.

    DM Lab envs also get :data:`LAB_POSE_OBSERVATIONS` as ``info_observations`` (for the probes).
    """
    import gymnasium as gym

    import vase_rl.envs  # noqa: F401  (registers the vase_rl/ ids)

    env_id, extra = LEVEL_ALIASES.get(level, level), {}
    if env_id not in gym.registry:
        if "/" not in level or level.startswith("vase_rl/"):
            raise ValueError(
                f"unknown level {level!r}: use one of {sorted(LEVEL_ALIASES)}, a registered gym "
                "id, or a DM Lab level name such as "
                "'contributed/dmlab30/natlab_varying_map_randomized'"
            )
        env_id, extra = "vase_rl/DMLab-v0", {"level": level}
    if "lab:LabEnv" in str(gym.spec(env_id).entry_point):
        extra["info_observations"] = LAB_POSE_OBSERVATIONS
    return env_id, {**extra, **kwargs}


def world_overrides(text: str) -> dict[str, Any]:
    """The ``WorldConfig`` overrides of a ``--world`` JSON object; a ValueError naming anything else."""
    world = json.loads(text)
    if not isinstance(world, dict):
        raise ValueError(f"--world must be a JSON object of WorldConfig fields, got {text!r}")
    return world


def is_world(level: str) -> bool:
    """True for the MiniWorld levels (shared seeded geometry and motion; ``terminated`` = target reached)."""
    return LEVEL_ALIASES.get(level, level).startswith("vase_rl/World")


def view_factors(rel: np.ndarray, yaw: float) -> list[float]:
    """(image x in [-1, 1], proximity exp(-d / 3 m)) of a floor point at offset ``rel`` (dx, dz) from the
    agent; (0, 0) outside the view cone. MiniWorld's forward vector at yaw d is (cos d, -sin d) in (x, z)."""
    bearing = math.remainder(math.atan2(-rel[1], rel[0]) - yaw, 2 * math.pi)
    if abs(bearing) >= HALF_FOV:
        return [0.0, 0.0]
    return [-math.tan(bearing) / math.tan(HALF_FOV), math.exp(-math.hypot(*rel) / 3.0)]


def state_factors(info: dict[str, Any]) -> dict[str, list[float]]:
    """Ground-truth factors of the frame that came with ``info``; groups of target columns.

    ``heading``: (sin, cos) of the agent's yaw; ``position``: (x, z) metres (MiniWorld) or DM Lab's (x, y)
    units. Neither is identifiable from one frame of a randomly generated layout, except through lighting
    cues, so MiniWorld frames also get egocentric factors that are visible: ``target`` and ``obstacle``
    (the nearest obstacle inside the view cone), each as :func:`view_factors` (occlusion ignored).
    """
    if "agent_dir" in info:
        yaw, pos = float(info["agent_dir"]), np.asarray(info["agent_pos"], dtype=float)
    elif LAB_POSE_OBSERVATIONS[1] in info:
        yaw = math.radians(float(np.asarray(info[LAB_POSE_OBSERVATIONS[1]])[1]))
        pos = np.asarray(info[LAB_POSE_OBSERVATIONS[0]], dtype=float)[:2]
    else:
        raise KeyError(
            f"no pose in info (keys {sorted(info)}); expected agent_dir/agent_pos or {LAB_POSE_OBSERVATIONS}"
        )
    out = {"heading": [math.sin(yaw), math.cos(yaw)], "position": [float(pos[0]), float(pos[1])]}
    if "target_pos" in info:
        out["target"] = view_factors(np.asarray(info["target_pos"], dtype=float) - pos, yaw)
        seen = [view_factors(p - pos, yaw) for p in np.asarray(info["object_pos"], dtype=float)]
        out["obstacle"] = max(seen, key=lambda v: v[1])  # largest proximity; (0, 0) when none is in view
    return out


def random_episodes(env: Any, first_seed: int, episodes: int, steps: int) -> dict[str, Any]:
    """Uniform-random-policy episodes of ``env``: frames (N, H, W, C) uint8, :func:`state_factors` groups
    (name -> (N, k)) and episode ids (N,). Episode i resets with seed ``first_seed + i`` and draws its
    actions from an RNG with the same seed (so two MiniWorld levels give the same states frame for frame);
    it ends after ``steps`` steps or when the env ends it. ``env`` is not closed."""
    frames, episode = [], []
    factors: dict[str, list[list[float]]] = defaultdict(list)
    for i in range(episodes):
        rng = np.random.default_rng(first_seed + i)
        obs, info = env.reset(seed=first_seed + i)
        for _ in range(steps):
            frames.append(obs)
            episode.append(i)
            for k, v in state_factors(info).items():
                factors[k].append(v)
            obs, _, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
            if terminated or truncated:
                break
    return {
        "frames": np.stack(frames),
        "episode": np.array(episode),
        "factors": {k: np.array(v) for k, v in factors.items()},
    }


# ------------------------------------------------------------------------------------ VASE config
def vase_config(method: str, seed: int, steps_per_level: int, image_size: int = 32) -> Any:
    """cpu-preset model (RGB, fixed-variance Gaussian likelihood, A.1) with Table 2's NatLab -> EDE values.

    Scaling to ``steps_per_level`` learner steps per level: delta_C / r and tau * r with
    r = steps_per_level / 60k (the C ramp and the snapshot period keep their length relative to a level);
    ``used_every`` and ``grace_steps`` scale with the cpu preset's own budget (steps_per_level / 2,500).
    lambda0 = lambda1 / 2 (the cpu preset's hysteresis ratio). ``patience`` is twice the cpu preset's (20
    consecutive failing batches before allocating): reconstruction losses of random-policy batches of 3-D
    frames vary by +-20% from batch to batch, and with kappa = 1.1 ten failures in a row happened inside one
    level (measured: a spurious environment after 487 steps of the outdoor level). ``capacity_mode`` stays the
    cpu preset's ``"upper"`` (docs/findings.md, "The cpu preset": the two-sided eq. 3 with large gamma learns no
    information at CPU step counts). Environment overflow merges with the closest environment (no error).
    """
    from vase_rl.core.config import get_preset

    if method not in TABLE2:
        raise ValueError(f"unknown VASE method {method!r}; choose one of {sorted(TABLE2)}")
    base = get_preset("cpu")
    r, r_cpu = steps_per_level / PAPER_STEPS_PER_DATASET, steps_per_level / base.steps_per_env
    t2 = TABLE2[method]
    lam = t2["mask"]["lambda1"]
    loss = dict(t2["loss"])
    if "delta_c" in loss:
        loss["delta_c"] = loss["delta_c"] / r
    return base.with_overrides(
        model={"image_size": image_size, "channels": 3, "likelihood": "gaussian"},
        loss=loss,
        mask={"lambda0": lam / 2, "lambda1": lam, "used_every": max(1, round(base.mask.used_every * r_cpu))},
        inference={
            "kappa": t2["inference"]["kappa"],
            "on_overflow": "merge",
            "patience": 2 * base.inference.patience,
            "grace_steps": max(1, round(base.inference.grace_steps * r_cpu)),
        },
        dream={"tau": max(1, round(t2["dream"]["tau"] * r))},
        steps_per_env=steps_per_level,
        seed=seed,
        preset=f"cpu+table2-natlab-ede-{method}",
    )


def make_learner(config: Any) -> Any:
    """A CPU :class:`~vase_rl.core.learner.ContinualLearner` for ``config``.

    (The results committed in this session were produced with a subclass that dropped the Gaussian NLL's
    constant 0.5 log(2 pi sigma^2) per pixel; ``vase_rl.core.losses.reconstruction_nll`` now omits it itself,
    so the numbers are unchanged.)
    """
    from vase_rl.core.learner import ContinualLearner

    return ContinualLearner(config, device="cpu")


def describe_configs(by_method: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown sentence on the VASE configurations of a benchmark's records (``record["vase_config"]``)."""
    hyper, model = [], None
    for m, rs in by_method.items():
        c = rs[0].get("vase_config")
        if not c:
            continue
        model, loss = c["model"], c["loss"]
        cap = (
            "beta=1 ELBO"
            if loss["entangled"]
            else f"gamma={loss['gamma']}, C_max={loss['c_max']}, delta_C={loss['delta_c']:.2e}"
        )
        hyper.append(
            f"{m}: {cap}, lambda={c['mask']['lambda1']} (lambda0={c['mask']['lambda0']}), "
            f"kappa={c['inference']['kappa']}, patience={c['inference']['patience']}, "
            f"tau={c['dream']['tau']}, used_every={c['mask']['used_every']}, "
            f"grace_steps={c['inference']['grace_steps']}"
        )
    if model is None:
        return ""
    return (
        f"VASE: {model['image_size']}x{model['image_size']} RGB inputs (64x64 frames area-resized by the "
        f"wrapper), fixed-variance Gaussian likelihood (A.1, std {model['gaussian_std']}), cpu-preset "
        f"networks ({model['latent_dim']} latents); Table 2 NatLab->EDE values, delta_C and tau scaled "
        "from 60k steps per level to this budget (``bench3d_common.vase_config``), capacity_mode 'upper' "
        "(cpu preset) -- " + "; ".join(hyper) + "."
    )


# ------------------------------------------------------------------------------------ runs
def opengl() -> str:
    """The OpenGL renderer MiniWorld draws with (recorded with the hardware), or why there is none."""
    try:
        from vase_rl.envs.world import check_gl

        return str(check_gl())
    except Exception as exc:  # noqa: BLE001 - informational only
        return f"unavailable ({type(exc).__name__})"


# ------------------------------------------------------------------------------------ tables
def mean_std(values: Iterable[float | None], digits: int = 2) -> str:
    """``"m ± s (n)"`` over the non-missing values (population std), ``"-"`` when there are none."""
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not len(v):
        return "-"
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


def provenance(records: Sequence[dict[str, Any]], command: str) -> str:
    """Markdown paragraph: command, hardware, parallelism and the runs' wall/CPU time."""
    if not records:
        return f"No finished runs yet (`{command}`)."
    hw, a = records[0]["hardware"], records[0]["args"]
    wall = sum(r["wall_s"] for r in records)
    cpu = sum(r.get("cpu_s", r["wall_s"]) for r in records)
    return (
        f"Produced by `{command}` (then `--summarise`). Hardware: {hw['cpu']}, {hw['cores']} cores, "
        f"torch {hw['torch']} on {hw['torch_threads']} thread per run, {a['jobs']} runs in parallel, "
        f"OpenGL {hw.get('opengl')}; the machine was shared (1-min load average {hw['load_avg_1m']} when "
        f"the first run started). {len(records)} runs: {wall / 60:.1f} min of run wall time in total, "
        f"i.e. ~{wall / 60 / max(1, a['jobs']):.0f} min elapsed ({cpu / 60:.1f} min of process CPU "
        "time: each run got a fraction of a core)."
    )


# ------------------------------------------------------------------------------------ figures
def plot_image_rows(panels: dict[str, np.ndarray], row_labels: Sequence[str], title: str, path: str) -> None:
    """Side-by-side mosaics: panels name -> images (R, K, S, S, 3) uint8, R = len(row_labels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not panels:
        return
    r, k, s = next(iter(panels.values())).shape[:3]
    size = (0.75 * k * len(panels) + 1.8, 0.75 * r + 0.9)
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False)
    for ax, (name, images) in zip(axes[0], panels.items(), strict=True):
        grid = np.full((r * (s + 2) - 2, k * (s + 2) - 2, 3), 255, dtype=np.uint8)
        for i, j in itertools.product(range(r), range(k)):
            grid[i * (s + 2) : i * (s + 2) + s, j * (s + 2) : j * (s + 2) + s] = images[i, j]
        ax.imshow(grid, interpolation="nearest")
        ax.set_yticks([i * (s + 2) + s / 2 for i in range(r)], row_labels, fontsize=8)
        ax.set_xticks([])
        ax.set_title(name, fontsize=10)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
