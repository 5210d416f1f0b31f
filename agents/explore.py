"""Imagination-driven exploration in the world (Achille et al. 2018, appendix A.4), through a wrapped env.

A.4: "Given an image x from the current environment, and a random configuration z* sampled from the
prior p(z), we let the agent act on the environment in order to realise the imagined configuration.
The result of this action is a new image x*, [which] is then added to the training data." Here the
agent acts in a continuous-action ``SpriteCanvas`` wrapped in :class:`~vase_rl.rl.wrapper.VASEObservation`
with ``frame_in_info=True``; each step

1. reads the frame x the wrapper just encoded (``info["frame"]``; the observation itself is the latent),
2. draws z* ~ p(z) = N(0, I) and acts with the translation policy: a = g(z*, x), sent to the env as its
   continuous action (:meth:`~vase_rl.agents.translation.ImaginationExplorer.env_action`),
3. trains the policy on L_agent (A.4) for that same (x, z*) through the spatial transformer
   (:meth:`~vase_rl.agents.translation.ImaginationExplorer.policy_step`; the env is not differentiable,
   the STN imagines the move), unless ``train_policy=False``,
4. steps the env: it re-renders the moved sprite, and the wrapper encodes the new frame x* and, while
   ``learn`` is on, adds it to its online learner's rollout buffer -- the learner trains on exactly the
   frames the policy's actions produce (plus the first frame of each episode).

Episodes that end (goal reached or truncated) are reset; those reset frames go to the learner as well.
The explorer must use the wrapper's learner (the encoder L_agent is computed with is the one trained on
the frames); :func:`env_translation_range` gives the policy range that matches one env step.
Layering: this module imports the wrapper and the explorer; nothing in ``vase_rl/`` imports it.

>>> import gymnasium as gym
>>> from vase_rl.agents.translation import ImaginationConfig, ImaginationExplorer
>>> from vase_rl.core.config import get_preset
>>> from vase_rl.envs.sprites import SpriteCanvas
>>> from vase_rl.core.learner import ContinualLearner
>>> from vase_rl.rl.wrapper import VASEObservation
>>> learner = ContinualLearner(get_preset("cpu"), device="cpu")
>>> canvas = SpriteCanvas(source="shapes", canvas_size=32, action_type="continuous")
>>> env = VASEObservation(canvas, learner, frame_in_info=True, warmup=64, train_every=8)
>>> explorer = ImaginationExplorer(learner, ImaginationConfig(enabled=True, seed=0))
>>> run = explore(env, explorer, steps=16, seed=0)
>>> run.actions.shape, run.positions.shape, run.agent_loss.shape
((16, 2), (16, 2), (16,))
>>> env.vase_stats()["env_steps"] == 16 + run.episodes   # one frame per action + each episode's first
True
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from vase_rl.rl.wrapper import FRAME_KEY, VASEObservation

from .stn import translation_to_env_action
from .translation import ImaginationExplorer

__all__ = [
    "Exploration",
    "ExploreStep",
    "ImaginationAgent",
    "env_translation_range",
    "explore",
    "find_vase_wrapper",
]


def env_translation_range(env: Any) -> float:
    """The largest translation |t| (per axis, normalised units) one step of a continuous ``SpriteCanvas``
    realises: ``free / canvas_size`` (the env moves the sprite by at most ``free / 2`` pixels per step;
    :func:`~vase_rl.agents.translation.translation_to_env_action` clips larger t).

    Give the explorer ``ImaginationConfig(max_translation=env_translation_range(env))`` to keep the STN's
    imagined moves (through which L_agent trains) within what the world does: with the default range of 1
    the STN can move a sprite out of the frame -- an empty image, which an untrained encoder maps near
    z = 0, the cheapest answer to every z* -- while the env pins it at the canvas edge instead.
    From a centred start (static datasets) a move within this range never leaves the canvas.
    """
    translation_to_env_action(env, np.zeros(2))  # ValueError unless a continuous SpriteCanvas
    renderer = env.unwrapped.renderer
    return float(renderer.free / renderer.canvas_size)


def find_vase_wrapper(env: Any) -> VASEObservation:
    """The outermost :class:`VASEObservation` in ``env``'s wrapper chain; ValueError if there is none."""
    inner = env
    while inner is not None:
        if isinstance(inner, VASEObservation):
            return inner
        inner = getattr(inner, "env", None)
    raise ValueError(
        "acting in the world needs an env wrapped in VASEObservation(..., frame_in_info=True) (the policy "
        f"reads the frame from info[{FRAME_KEY!r}]); got {env!r} with no VASEObservation in its wrappers"
    )


class ExploreStep(NamedTuple):
    """One env step of :class:`ImaginationAgent`.

    ``target`` z* (N,) float32; ``translation`` t (2,) (normalised image units, the policy's output);
    ``action`` (2,) float32 sent to the env; ``before`` / ``after`` the sprite's (x, y) in [0, 1] from
    ``info``; ``agent_loss`` L_agent of the policy step (NaN on a step without a policy step); ``frame``
    the image (C, C, 1) the action produced; ``reset`` whether the episode ended and was reset after it.
    """

    target: np.ndarray
    translation: np.ndarray
    action: np.ndarray
    before: np.ndarray
    after: np.ndarray
    agent_loss: float
    frame: np.ndarray
    reset: bool


@dataclass
class Exploration:
    """What :func:`explore` did, one row per env step (T steps).

    Attributes:
        targets: (T, N) float32 z* ~ p(z), one per step.
        translations: (T, 2) float64 policy translations t (module :mod:`~vase_rl.agents.translation`).
        actions: (T, 2) float32 continuous env actions (``translation_to_env_action(t)``).
        start_positions, positions: (T, 2) float64 sprite (x, y) before and after each step.
        agent_loss: (T,) float64 L_agent of each policy step (NaN on steps without one).
        resets: (T,) bool, True where the episode ended after that step and the env was reset.
        episodes: episodes started (the first reset included).
        frames: (T, *frame_shape) the frames the actions produced, with ``keep_frames=True``; else None.
    """

    targets: np.ndarray
    translations: np.ndarray
    actions: np.ndarray
    start_positions: np.ndarray
    positions: np.ndarray
    agent_loss: np.ndarray
    resets: np.ndarray
    episodes: int
    frames: np.ndarray | None = None


class ImaginationAgent:
    """The A.4 translation policy acting in a ``VASEObservation``-wrapped continuous ``SpriteCanvas``.

    Args:
        env: ``VASEObservation(SpriteCanvas(..., action_type="continuous"), learner, frame_in_info=True)``,
            possibly inside further wrappers that keep ``info``.
        explorer: an :class:`~vase_rl.agents.translation.ImaginationExplorer` on the wrapper's learner,
            with ``enabled=True``.
        train_policy: train the policy on L_agent (False: act with a fixed policy). An explorer with
            ``ImaginationConfig(policy="random")`` acts z*-blind and never trains.
        policy_every: env steps per policy step (1: every step).
        policy_batch: frames per policy step. 1 (the default): the frame just acted on, with the z* acted
            towards. Above 1: the last ``policy_batch`` frames the agent acted on, each with a fresh z*
            ~ p(z) -- the graph's setting (one Adam step per learner step on a batch) in the world. One
            frame per env step gives ``world_train_every`` times as many, single-frame, steps as the graph
            has: the policy saturates at a constant corner move (docs/findings.md section 12).

    The agent resets the env itself (:meth:`reset`, or the first :meth:`step` / :meth:`run`): it needs the
    info of the current frame, which an ``env.reset()`` called from outside would not hand it.
    """

    def __init__(
        self,
        env: Any,
        explorer: ImaginationExplorer,
        *,
        train_policy: bool = True,
        policy_every: int = 1,
        policy_batch: int = 1,
    ) -> None:
        for name, value in (("policy_every", policy_every), ("policy_batch", policy_batch)):
            given: object = value  # callers may pass anything; bool is not an int here
            if type(given) is not int or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        wrapper = find_vase_wrapper(env)
        if not wrapper.frame_in_info:
            raise ValueError(
                "the VASEObservation wrapper must be built with frame_in_info=True so that the policy can "
                f"see the frame it acts on (info[{FRAME_KEY!r}]); its observation is only the latent"
            )
        translation_to_env_action(env, np.zeros(2))  # ValueError unless a continuous SpriteCanvas
        if explorer.learner is not wrapper.learner:
            raise ValueError(
                "the explorer's learner is not the wrapper's learner: L_agent must use the encoder that "
                "trains on the frames; build ImaginationExplorer(env.learner, config)"
            )
        if not explorer.config.enabled:
            raise ValueError("the explorer has ImaginationConfig(enabled=False); explore with enabled=True")
        self.env, self.explorer, self.train_policy = env, explorer, bool(train_policy)
        self.policy_every, self.policy_batch = policy_every, policy_batch
        self.recent: deque[np.ndarray] = deque(maxlen=policy_batch)
        self.steps = 0
        self.info: dict[str, Any] | None = None
        self.episodes = 0

    def reset(self, seed: int | None = None) -> dict[str, Any]:
        """Start an episode (``env.reset(seed=seed)``); returns its info (with the frame)."""
        _, info = self.env.reset(seed=seed)
        self.info = self._checked(info)
        self.episodes += 1
        return self.info

    def _checked(self, info: dict[str, Any]) -> dict[str, Any]:
        for key in (FRAME_KEY, "x", "y"):
            if key not in info:
                raise ValueError(
                    f"info has no {key!r} (keys {sorted(info)}): a wrapper outside "
                    "VASEObservation dropped it, or the env is not a SpriteCanvas"
                )
        return info

    def step(self) -> ExploreStep:
        """Act towards a fresh z* ~ p(z), train the policy on (x, z*), step the env (reset at its end)."""
        info = self.info if self.info is not None else self.reset()
        frame, before = info[FRAME_KEY], np.array([info["x"], info["y"]], dtype=np.float64)
        action, t, z = self.explorer.env_action(self.env, frame)
        loss = float("nan")
        self.recent.append(frame)
        self.steps += 1
        due = self.steps % self.policy_every == 0
        if self.train_policy and self.explorer.config.policy == "learned" and due:
            if self.policy_batch == 1:
                loss = self.explorer.policy_step(frame[None], z)["agent_loss"]
            else:  # the recent frames, fresh targets
                loss = self.explorer.policy_step(np.stack(self.recent))["agent_loss"]
        _, _, terminated, truncated, info = self.env.step(action)
        self.info = self._checked(info)
        after, new_frame = np.array([info["x"], info["y"]], dtype=np.float64), info[FRAME_KEY]
        ended = bool(terminated or truncated)
        if ended:
            self.reset()
        target = z[0].detach().cpu().numpy().astype(np.float32)
        return ExploreStep(target, t, action, before, after, loss, new_frame, ended)

    def run(
        self, steps: int, seed: int | None = None, *, keep_frames: bool = False, progress: bool = False
    ) -> Exploration:
        """``steps`` :meth:`step` calls, after a reset with ``seed`` (or continuing the current episode when
        ``seed`` is None and one is running). ``progress`` shows a tqdm bar."""
        if isinstance(steps, bool) or not float(steps).is_integer() or steps < 0:
            raise ValueError(f"steps must be an int >= 0, got {steps!r}")
        if seed is not None or self.info is None:
            self.reset(seed)
        first = self.episodes - 1
        rows: list[ExploreStep] = []
        it: Any = range(int(steps))
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc="explore", unit="step")
        for _ in it:
            rows.append(self.step())
        n = self.explorer.latent_dim

        def stack(field: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            return np.array([getattr(r, field) for r in rows], dtype=dtype).reshape(len(rows), *shape)

        frames = None
        if keep_frames:
            frames = np.stack([r.frame for r in rows]) if rows else None
        return Exploration(
            targets=stack("target", (n,), np.float32),
            translations=stack("translation", (2,), np.float64),
            actions=stack("action", (2,), np.float32),
            start_positions=stack("before", (2,), np.float64),
            positions=stack("after", (2,), np.float64),
            agent_loss=stack("agent_loss", (), np.float64),
            resets=stack("reset", (), bool),
            episodes=self.episodes - first,
            frames=frames,
        )


def explore(
    env: Any,
    explorer: ImaginationExplorer,
    steps: int,
    *,
    seed: int | None = None,
    train_policy: bool = True,
    keep_frames: bool = False,
    progress: bool = False,
) -> Exploration:
    """Imagination-driven exploration in the world: ``steps`` policy actions in a wrapped env (module doc).

    ``ImaginationAgent(env, explorer, train_policy=train_policy).run(steps, seed, ...)``: the env is reset
    with ``seed`` first. The wrapper's learner trains (while ``learn``) on the frames the actions produce.
    """
    agent = ImaginationAgent(env, explorer, train_policy=train_policy)
    return agent.run(steps, seed, keep_frames=keep_frames, progress=progress)
