"""Shared pieces of the sprite-canvas RL benchmarks ``rl_transfer.py``, ``rl_identity.py`` and
``rl_lifelong.py``.

* the envs and agents (:func:`agent_env`, :func:`make_ppo`): VASE latents through ``VASEVecEnv`` (the
  learners of ``rl_methods.py``), or raw frames for ``pixels`` (PPO ``CnnPolicy`` with
  ``vase_rl.agents.sb3.SmallCNN``: SB3's NatureCNN needs >= 36x36); sprite looks or the MiniWorld levels;
* the command-line fields the scripts share (:class:`SpriteRLArgs`) and the refusal to mix runs of
  another budget, or of a method whose config has changed since, in one results folder
  (:func:`check_budget`);
* evaluation (:func:`evaluate`, :func:`random_returns`), reward-free rollouts (:func:`roll_out`) and the
  learning-curve callback;
* the names of looks (:func:`looks`, :func:`short`);
* where a run's time goes (:class:`CostTimer`, :func:`timed_venv`, :func:`update_timer`): CPU and wall
  seconds of env stepping, the VASE wrapper, PPO updates and evaluation, measured around those parts.

The summary's cells, cost line and curves are ``benchmarks/rl_report.py``'s; the resumable runs, hardware
record, tables and JSON files ``benchmarks/common.py``'s; the base ``Args`` ``benchmarks/cli_args.py``'s.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cli_args
import common
import numpy as np
from rl_methods import ALL_METHODS, make_learner, stale_config

METHODS = ("vase", "entangled", "untrained", "pixels")
"""The methods of ``rl_transfer.py`` and ``rl_identity.py``."""
RUN_FIELDS = ("methods", "seeds", "jobs", "out_dir", "tensorboard", "summarise")
"""Args fields that do not change a run's result (the rest must match to share a results folder)."""


@dataclass
class SpriteRLArgs(cli_args.JobsArgs, cli_args.AgentArgs):
    """A run per (method, seed) of PPO on a sprite-canvas task, ``jobs`` at a time."""

    methods: tuple[str, ...] = METHODS
    """Methods to run (vase, entangled, untrained, pixels)."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds; each seeds the learner, PPO and the training envs."""
    jobs: int = 1
    canvas_size: int = 32
    """Sprite canvas side (the cpu preset's input size)."""
    train_every: int = 16
    """Online VASE: frames between training rounds (replay ratio = batch 64 / 16 = 4)."""
    pixel_features: int = 128
    """Output width of the pixels method's SmallCNN features extractor."""
    tensorboard: bool = False
    """Write SB3 TensorBoard logs (with the vase/* scalars) under out_dir/tb."""


# ------------------------------------------------------------------------------- building blocks
def curve_callback() -> Any:
    """An SB3 callback whose ``points`` are (env steps, mean return of the last 100 training episodes)
    at every rollout end."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Curve(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.points: list[tuple[int, float]] = []

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            episodes = self.model.ep_info_buffer
            if episodes:
                self.points.append((self.num_timesteps, float(np.mean([e["r"] for e in episodes]))))

    return Curve()


class CostTimer:
    """CPU (``time.process_time``) and wall (``time.perf_counter``) seconds per named part of a run.

    >>> t = CostTimer()
    >>> with t("ppo_update"):
    ...     _ = sum(range(1000))
    >>> sorted(t.cpu) == sorted(t.wall) == ["ppo_update"] and t.wall["ppo_update"] >= 0
    True
    """

    def __init__(self) -> None:
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.wall: defaultdict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            self.cpu[part] += time.process_time() - cpu
            self.wall[part] += time.perf_counter() - wall

    def add(self, part: str, cpu: float, wall: float) -> None:
        """Count seconds measured elsewhere (e.g. between two callbacks)."""
        self.cpu[part] += cpu
        self.wall[part] += wall


def timed_venv(venv: Any, timer: CostTimer, part: str) -> Any:
    """``venv`` in a pass-through ``VecEnvWrapper`` whose ``reset`` and ``step_wait`` count as ``part``."""
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class Timed(VecEnvWrapper):
        def reset(self) -> Any:
            with timer(part):
                return self.venv.reset()

        def step_wait(self) -> Any:
            with timer(part):
                return self.venv.step_wait()

    return Timed(venv)


def update_timer(timer: CostTimer, part: str = "ppo_update") -> Any:
    """An SB3 callback counting as ``part`` the time from each rollout's end to the next rollout's start
    (or the end of ``learn``): PPO's gradient updates on that rollout (and SB3's logging)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class UpdateTimer(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.since: tuple[float, float] | None = None

        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            self.since = (time.process_time(), time.perf_counter())

        def _stop(self) -> None:
            if self.since is not None:
                cpu, wall = self.since
                timer.add(part, time.process_time() - cpu, time.perf_counter() - wall)
                self.since = None

        def _on_rollout_start(self) -> None:
            self._stop()

        def _on_training_end(self) -> None:
            self._stop()

    return UpdateTimer()


def new_run(
    args: Any, method: str, seed: int, overrides: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any]]:
    """The start of a (method, seed) run: one torch thread, every RNG seeded; the method's learner (None
    for pixels; ``overrides``: :func:`make_learner`'s) and the head of the run's record."""
    import torch
    from stable_baselines3.common.utils import set_random_seed

    torch.set_num_threads(1)
    set_random_seed(seed)
    learner, vase_config = make_learner(method, seed, overrides)
    return learner, common.run_record(args, method, seed, vase_config=vase_config)


def looks(stages: tuple[str, ...] | list[str]) -> list[str]:
    """The distinct env ids of ``stages``, in first-seen order."""
    return list(dict.fromkeys(stages))


def short(env_id: str) -> str:
    """``vase_rl/MovingFashion-v0`` -> ``MovingFashion``."""
    return env_id.split("/")[-1].rsplit("-v", 1)[0]


def is_world(env_id: str) -> bool:
    """True for the embedded MiniWorld levels (``vase_rl/WorldOutdoor-v0``, ``vase_rl/WorldIndoor-v0``)."""
    import gymnasium as gym

    import vase_rl.envs  # noqa: F401  (registers the ids)

    return "world:WorldEnv" in str(gym.spec(env_id).entry_point)


def look_kwargs(args: Any, env_id: str) -> dict[str, Any]:
    """``gym.make`` kwargs of a look: the canvas side for sprite envs, ``args.world``'s ``WorldConfig``
    overrides (a JSON object, when ``args`` has one) for the MiniWorld levels (RGB frames: the learners get
    3 channels, :func:`frame_channels`)."""
    from bench3d_common import world_overrides

    if is_world(env_id):
        return world_overrides(getattr(args, "world", "{}"))
    return {"canvas_size": args.canvas_size}


def frame_channels(env_ids: Iterable[str]) -> int:
    """Channels of the frames of ``env_ids`` (3 for the MiniWorld levels, 1 for the sprite envs); a ValueError
    when they differ (one learner reads every look)."""
    found = {3 if is_world(e) else 1 for e in env_ids}
    if len(found) != 1:
        raise ValueError(f"looks {list(env_ids)} mix RGB (MiniWorld) and grayscale (sprite) frames")
    return found.pop()


def agent_env(
    args: Any,
    env_id: str,
    env_seed: int,
    learner: Any,
    learn: bool,
    timer: CostTimer | None = None,
    **env_kwargs: Any,
) -> Any:
    """``n_envs`` sub-envs of ``env_id``: raw frames for pixels, else VASE latents (``learn`` only while
    the learner is not frozen). With a ``timer``, the raw envs' steps and resets count as its ``env`` part
    and the VASE wrapper's (the raw steps, encoding and online training inside) as its ``vase`` part."""
    from stable_baselines3.common.env_util import make_vec_env

    from vase_rl.agents.sb3_vec import VASEVecEnv

    raw = make_vec_env(
        f"vase_rl.envs:{env_id}",
        args.n_envs,
        seed=env_seed,
        env_kwargs={**look_kwargs(args, env_id), **env_kwargs},
    )
    if timer is not None:
        raw = timed_venv(raw, timer, "env")
    if learner is None:
        return raw
    out = VASEVecEnv(raw, learner, learn=learn and not learner.frozen, train_every=args.train_every)
    return out if timer is None else timed_venv(out, timer, "vase")


def normalised(venv: Any, obs_rms: Any, training: bool = False) -> Any:
    """``venv`` with a latent ``VecNormalize`` holding a copy of ``obs_rms`` (``venv`` when None)."""
    from vase_rl.agents.sb3 import normalize_latents

    if obs_rms is None:
        return venv
    out = normalize_latents(venv, training=training)
    out.obs_rms = copy.deepcopy(obs_rms)
    return out


def make_ppo(args: Any, method: str, venv: Any, seed: int, tb: str | None) -> Any:
    """PPO with the shared hyper-parameters: MlpPolicy on latents, CnnPolicy + SmallCNN on pixels."""
    from stable_baselines3 import PPO

    from vase_rl.agents.sb3 import SmallCNN

    policy, kwargs = "MlpPolicy", {}
    if method == "pixels":
        policy = "CnnPolicy"
        kwargs = {
            "features_extractor_class": SmallCNN,
            "features_extractor_kwargs": {"features_dim": args.pixel_features},
        }
    return PPO(policy, venv, seed=seed, policy_kwargs=kwargs, tensorboard_log=tb, **args.ppo_kwargs())


def train_ppo(args: Any, method: str, venv: Any, seed: int, steps: int, name: str) -> tuple[Any, Any]:
    """PPO (:func:`make_ppo`) trained ``steps`` env steps on ``venv``; returns it and its learning curve
    (:func:`curve_callback`). TensorBoard logs (run ``name``) under ``out_dir/tb`` with ``--tensorboard``."""
    from vase_rl.agents.sb3 import VASELoggingCallback

    tb = os.path.join(args.out_dir, "tb") if args.tensorboard else None
    model = make_ppo(args, method, venv, seed, tb)
    curve = curve_callback()
    model.learn(steps, callback=[curve, VASELoggingCallback()], tb_log_name=name)
    return model, curve


def evaluate(
    args: Any,
    model: Any,
    env_id: str,
    seed: int,
    learner: Any,
    obs_rms: Any,
    episodes: int | None = None,
    **kw: Any,
) -> float:
    """Mean return of ``model`` (stochastic) over ``episodes`` (default ``args.eval_episodes``) on held-out
    seeds of ``env_id``; the learner does not learn."""
    from stable_baselines3.common.evaluation import evaluate_policy

    venv = normalised(agent_env(args, env_id, 10_000 + seed, learner, learn=False, **kw), obs_rms)
    n = args.eval_episodes if episodes is None else episodes
    mean, _ = evaluate_policy(model, venv, n_eval_episodes=n, deterministic=False)
    venv.close()
    return float(mean)


def roll_out(venv: Any, frames: int, act: Any) -> int:
    """Step ``venv`` for ``frames // num_envs`` steps with ``act(obs)`` actions, rewards ignored (the VASE
    wrapper inside learns from the frames); returns the frames stepped."""
    obs = venv.reset()
    rounds = frames // venv.num_envs
    for _ in range(rounds):
        obs, _, _, _ = venv.step(act(obs))
    return rounds * venv.num_envs


def look_frames(args: Any, env_id: str, seed: int, frames: int) -> np.ndarray:
    """``frames`` raw observations of ``env_id`` under uniform random actions (env seeds apart from the
    training and evaluation ones): the fixed frames a drift measurement re-encodes."""
    venv = agent_env(args, env_id, 30_000 + seed, None, learn=False)
    act = random_actor(venv, seed)
    obs, out = venv.reset(), []
    while sum(len(o) for o in out) < frames:
        out.append(np.asarray(obs))
        obs, _, _, _ = venv.step(act(obs))
    venv.close()
    return np.concatenate(out)[:frames]


def random_actor(venv: Any, seed: int) -> Any:
    """``act(obs)`` of uniform random discrete actions for every sub-env of ``venv``."""
    rng = np.random.default_rng(seed)
    return lambda obs: rng.integers(0, venv.action_space.n, venv.num_envs)


def random_returns(args: Any, env_ids: dict[str, str], **env_kwargs: Any) -> dict[str, float]:
    """Mean return of the uniform random policy per env (same evaluation as the agents, 4x episodes)."""
    from stable_baselines3.common.evaluation import evaluate_policy

    out = {}
    for key, env_id in env_ids.items():
        if env_id:
            venv = agent_env(args, env_id, 10_000, None, learn=False, **env_kwargs)
            policy = common.RandomPolicy(venv.action_space.n)
            out[key] = float(evaluate_policy(policy, venv, n_eval_episodes=4 * args.eval_episodes)[0])
    return out


def start(args: Any, random_envs: dict[str, str]) -> None:
    """Before the runs: refuse a folder of another budget; the random policy's returns (once per folder)."""
    check_budget(args, args.out_dir)
    common.json_once(Path(args.out_dir) / "random.json", lambda: random_returns(args, random_envs))


def budget(args: Any, ignore: Iterable[str] = ()) -> dict[str, Any]:
    """The Args that decide a run's result (every field but :data:`RUN_FIELDS` and ``ignore``)."""
    skip = set(RUN_FIELDS) | set(ignore)
    return {k: v for k, v in dataclasses.asdict(args).items() if k not in skip}


def check_budget(
    args: Any,
    out_dir: str,
    ignore: Iterable[str] = (),
    overrides: Callable[[str], dict[str, Any] | None] = lambda method: None,
) -> None:
    """Refuse to add runs to a folder that holds runs of another budget, or runs whose method builds
    another config today (:func:`stale_config`; ``overrides(method)``: the script's overrides), so results
    are never mixed; ``ignore``: more fields that do not change a run's result (beyond :data:`RUN_FIELDS`).
    A field a stored run lacks (added since) counts at its default, the value that reproduces the code
    before the field existed."""
    skip = set(RUN_FIELDS) | set(ignore)
    mine = budget(args, skip)
    defaults = {  # of fields newer than a stored run
        f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        for f in dataclasses.fields(args)
    }
    for path in sorted(Path(out_dir).glob("*_seed*.json")):
        record = common.load_json(path)
        stored = {k: v for k, v in {**defaults, **record["args"]}.items() if k not in skip}
        stored = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
        diff = sorted(k for k in set(mine) | set(stored) if mine.get(k) != stored.get(k))
        if diff:
            raise SystemExit(
                f"{path} was run with other settings ({', '.join(diff)}); use another "
                f"--out-dir or delete the old runs"
            )
        stale = (
            stale_config(record, overrides(record["method"])) if record.get("method") in ALL_METHODS else []
        )
        if stale:
            raise SystemExit(
                f"{path} was run with another config of {record['method']!r} ({', '.join(stale)} changed "
                f"since); delete it to rerun, or move it to another --out-dir"
            )
