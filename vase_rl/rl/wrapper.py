"""``VASEObservation``: image frames in, VASE latent means out, while VASE keeps learning from them.

A gymnasium :class:`~gymnasium.ObservationWrapper` (modelled on gymnasium's observation wrappers
and SB3's ``VecTransposeImage``). Every frame is validated, resized to the model's input and
encoded to the latent mean ``mu(x)`` of a :class:`~vase_rl.core.learner.ContinualLearner`; while ``learn``
is on, frames also go into a rollout buffer from which the learner trains, with no task labels,
across every environment the agent visits (one learner may be shared by many wrapped envs).

>>> import gymnasium as gym, vase_rl.envs
>>> from vase_rl.core.config import get_preset
>>> from vase_rl.core.learner import ContinualLearner
>>> learner = ContinualLearner(get_preset("cpu"), device="cpu")
>>> env = VASEObservation(gym.make("vase_rl/MovingShapes-v0", canvas_size=32), learner, learn=False)
>>> obs, info = env.reset(seed=0)
>>> env.observation_space == gym.spaces.Box(-10, 10, (learner.config.model.latent_dim,), "float32")
True
>>> obs.dtype, env.observation_space.contains(obs)
(dtype('float32'), True)

Observation space
    ``Box(-clip, clip, (latent_dim,), float32)`` with ``clip = 10`` by default: ``mu`` is clipped to
    that range so that the space has finite bounds (the checkers warn otherwise). Trained VASE means
    stay within a few units of 0 (the prior is N(0, I) and eq. 3 bounds the KL), so the clip only
    ever touches an untrained or diverging encoder. With ``include_env`` / ``include_mask`` the space
    is a ``Dict`` with keys ``"latent"``, ``"env"`` (one-hot of the environment that the auxiliary
    classifier q(s|x) infers from this frame, ``(max_environments,)`` float32) and ``"mask"`` (that
    environment's latent mask a^s, ``(latent_dim,)`` float32 in {0, 1}).

Default learner (``learner=None``)
    :func:`~vase_rl.rl.image_space.default_learner` builds a fresh learner from ``preset``; without one, the
    preset follows the device the learner runs on: ``"paper-heuristics"`` (64x64) on CUDA, ``"cpu"`` (32x32)
    otherwise (``device="auto"``: CUDA when ``torch.cuda.is_available()``). Frames are resized to the
    preset's image size, never the model to the frame: ``gym.make("ALE/Pong-v5")``'s 210x160x3 frames
    become 64x64 or 32x32 inputs (area averaging; the aspect ratio is not kept). The model's channels
    follow the frame (3 for RGB frames, also with the presets' default of 1). On top of the preset it
    sets :data:`vase_rl.core.config.AGENT_LOOP` (``agent_loop=True``, the default; False: the preset as
    it is): a learner that keeps learning under a policy needs the steady, settled anchor, the sign pick and the
    two-sided test of eq. 6 (5 seeds: a PPO policy keeps 96 % of its return across a contrast inversion
    with them, -40 % with the cpu preset alone; ``benchmarks/results/rl_transfer/rl_transfer.md``). The
    wrapper logs the preset and the resize at INFO level on the ``logging`` logger ``"vase_rl"``.

Online learning (``learn=True``)
    Frames are kept in a :class:`~vase_rl.rl.buffer.RolloutBuffer`, a FIFO of the ``buffer_size``
    (4096) most recent frames of *this* wrapper's stream. Once ``warmup`` frames are held, every
    ``train_every`` env steps (frames) the learner takes ``updates`` train steps on batches of
    ``learner.config.batch_size`` frames drawn without replacement from it. VASE's atypicality (eq. 4)
    and environment inference (eq. 6) assume batches that look like i.i.d. draws from the environment;
    consecutive rollout frames are strongly correlated, so the buffer is large (many episodes) and
    sampled uniformly.
    The learner infers the environment of each batch (eq. 6), so a batch should come from one
    environment phase: give each environment its own wrapper (own buffer, shared learner) and call
    :meth:`~vase_rl.rl.wrapper_mixin.VASEWrapperMixin.clear_buffer` when the wrapped env itself changes source;
    otherwise batches mix old and new frames for ``buffer_size`` steps after the switch.
    While learning, the same frame maps to different latents over time (the encoder trains): the
    observation is **not** stationary, and checkers that compare two rollouts will fail. Agents
    should either alternate phases (learn, then ``freeze()`` and train the policy on fixed latents;
    ``unfreeze()`` for the next environment) or keep fine-tuning the policy while the latents drift
    (VASE's dreaming feedback is meant to limit the drift on past environments; an improving policy
    also shifts the frame distribution, which VASE may take for a new environment --
    ``benchmarks/results/rl_transfer/rl_transfer.md``). ``learn=False`` or
    ``freeze()`` gives deterministic latents; ``freeze()`` freezes the (shared) learner itself.
    Normalise the latents for the policy (``vase_rl.agents.sb3.normalize_latents``, SB3's
    ``VecNormalize``): their scales differ per unit and drift while VASE learns; freeze the normaliser's
    statistics (``training=False``) when evaluating a policy. ``vase_stats()["drift/env<e>"]`` says how far
    the latents of an environment the learner has left moved since (mean over latents, in units of each
    latent's sd then: :class:`~vase_rl.probing.drift.DriftMonitor`); ``DreamConfig.anchor="on-switch"``
    keeps the snapshot that dreams the left environments where that environment left it.

What a policy receives, and what stays stable (the observation contract)
    By default the latent means ``mu(x)`` of *every* latent, clipped; ``include_env`` / ``include_mask``
    add the inferred environment and its mask alongside. ``emit="used"`` sets the latents outside the used
    set u^s of the environment q(s|x) picks to 0: latents a look does not use still vary with its factors,
    and a readout or policy fit on one environment leans on them where they mean something else. Position
    readout moving inverse Fashion -> moving Fashion (sign pick, on-switch anchor, validation seeds
    100-102): ``mu`` -0.04 / 0.21 / 0.19, ``used`` 0.73 / 0.55 / 0.80 (docs/findings.md, section 5). It
    is not the default: in the agent's-loop benchmarks every latent of every environment is used at the
    cpu preset's budget, so both emit exactly ``mu``
    (``benchmarks/results/rl_transfer/readout_retention/readout_retention.md``); eq. 2 at its mean (latents
    outside the mask a^s set to 0) was measured there too.
    Stable while VASE learns: the latents of an environment the learner has *left*, as far as dreaming
    anchors them -- with ``DreamConfig.anchor="on-switch"`` (the ``cpu`` and ``paper-heuristics``
    presets) they move ~0.2 sd while a new environment trains, with the paper's every-tau sync ~0.8 sd
    (``benchmarks/results/rl_transfer/rl_transfer.md``). Reused across a contrast inversion, shared
    latents read mirrored unless the sign pick is on (``vase_rl.core.config.AGENT_LOOP``: on in a wrapper's
    default learner, off in every preset, since on the demo sequence it allocated extra environments).
    With ``ModelConfig.env_input_view="pick"`` (part of ``AGENT_LOOP``) each frame is read in the view of
    the environment the classifier files it under: a look allocated with a negative output sign is read inverted, so a
    contrast-inverted look emits the latents of the look it was allocated from (position readout moving
    Fashion <-> moving inverse Fashion 0.87 / 0.86 on ``mu``, docs/findings.md, section 5); a frame the
    classifier misfiles between such looks is read in the wrong view.
    Not stable: the latents of the
    environment being trained, including a look that VASE files under it -- with the paper's one-sided
    test of eq. 6, moving MNIST after moving Fashion (reconstructed *better*) moves Fashion's latents
    ~0.9 sd; ``AGENT_LOOP``'s two-sided test (``InferenceConfig.kappa_low``) gives it its own environment
    -- and a new environment's until it is left. A user must: normalise the latents for the policy and freeze the
    normaliser's statistics whenever the policy is evaluated or VASE adapts without reward
    (``VecNormalize(training=False)``); evaluate with ``learn=False`` (or ``freeze()``) so that the
    latents are deterministic; save and reload the policy together with its learner and normaliser
    (``vase_rl.agents.sb3.save_agent`` / ``load_agent``: ``policy.zip``, ``vase.pt``,
    ``vecnormalize.pkl``).

Asynchronous mode (``asynchronous=True``)
    Training rounds run in a background thread while the env keeps stepping; frames are encoded by a
    copy of the encoder that is refreshed after each round (latents lag by at most one round and are
    not reproducible). It can only hide the env-stepping and encoding time of a round behind the
    round's training (measured on a loaded 2-core CPU: 10% less wall time per train step, which is
    within the noise of that machine; ``benchmarks/results/wrapper_speed.md``), so it is off by default.

The encoded frame in ``info`` (``frame_in_info=True``, off by default)
    ``reset`` and ``step`` also return the frame the wrapper just encoded, as the wrapped env returned
    it (a copy, e.g. ``(C, C, 1)`` uint8), under ``info["frame"]`` (:data:`FRAME_KEY`). An agent that
    needs the image as well as the latent -- the A.4 translation policy acting in the world
    (:func:`vase_rl.agents.explore.explore`) -- reads it there; while ``learn`` is on, the online learner
    trains on exactly these frames. Off, observations and infos are those of gymnasium's
    ``ObservationWrapper``; an env whose own info already has a ``"frame"`` key raises a ValueError.

>>> env = VASEObservation(gym.make("vase_rl/MovingShapes-v0", canvas_size=32), learner, learn=False,
...                       frame_in_info=True)
>>> obs, info = env.reset(seed=0)
>>> obs.shape, info["frame"].shape, info["frame"].dtype
((24,), (32, 32, 1), dtype('uint8'))

Vectorised forms, sub-processes, persistence
    ``vase_rl.rl.vector_wrapper.VASEVectorObservation`` (gymnasium) and ``vase_rl.agents.sb3_vec.VASEVecEnv``
    (SB3 ``VecEnvWrapper``) encode all sub-envs in one batched pass and return the same latents as
    this wrapper; all three share the engine :class:`~vase_rl.rl.online.OnlineVASE`. With
    ``SubprocVecEnv``, wrap the *vector* env in the main process (``VASEVecEnv``) so one learner sees
    every frame; wrapping inside the workers gives each worker its own copy of the learner (use it
    only frozen, and push weights with ``vec_env.env_method("set_learner_state", state)``).
    ``save(path)`` writes the learner checkpoint plus the wrapper config; ``Cls.load(path, env)``
    rebuilds the wrapper with the same encoder. The rollout buffer is transient and not saved.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch

from vase_rl.core.learner import ContinualLearner
from vase_rl.rl.online import OnlineVASE
from vase_rl.rl.online_config import OnlineConfig
from vase_rl.rl.wrapper_mixin import VASEWrapperMixin

__all__ = ["FRAME_KEY", "VASEObservation"]

FRAME_KEY = "frame"
"""The ``info`` key of the encoded frame when ``frame_in_info=True``."""


class VASEObservation(
    VASEWrapperMixin, gym.ObservationWrapper[Any, Any, Any], gym.utils.RecordConstructorArgs
):
    """Image observations -> clipped VASE latent means; trains the learner online while ``learn``.

    Args:
        env: an env with an image observation space (see :func:`~vase_rl.rl.image_space.image_layout`).
        learner: the learner to use and share; None builds :func:`~vase_rl.rl.image_space.default_learner`
            (``preset``; None: ``"paper-heuristics"`` on CUDA, ``"cpu"`` otherwise; ``device``).
        config: an :class:`~vase_rl.rl.online_config.OnlineConfig`; ``options`` (its field names, e.g.
            ``learn=False``) override it.
        frame_in_info: also return the encoded frame as ``info["frame"]`` (module docstring).
    """

    def __init__(
        self,
        env: gym.Env[Any, Any],
        learner: ContinualLearner | None = None,
        *,
        config: OnlineConfig | None = None,
        preset: str | None = None,
        device: str | torch.device = "auto",
        frame_in_info: bool = False,
        **options: Any,
    ) -> None:
        if not isinstance(frame_in_info, bool):
            raise TypeError(f"frame_in_info must be True or False, got {frame_in_info!r}")
        self.vase = OnlineVASE.create(env.observation_space, learner, config, preset, device, **options)
        self.frame_in_info = frame_in_info
        # env.spec.make() rebuilds the wrapper with the same learner and options
        recorded: dict[str, Any] = {"frame_in_info": True} if frame_in_info else {}
        gym.utils.RecordConstructorArgs.__init__(
            self, learner=self.vase.learner, config=self.vase.config, **recorded
        )
        gym.ObservationWrapper.__init__(self, env)
        self.observation_space = self.vase.observation_space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """``ObservationWrapper.reset``; with ``frame_in_info`` the encoded frame is ``info["frame"]``."""
        frame, info = self.env.reset(seed=seed, options=options)
        return self.observation(frame), self._with_frame(info, frame)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """``ObservationWrapper.step``; with ``frame_in_info`` the encoded frame is ``info["frame"]``."""
        frame, reward, terminated, truncated, info = self.env.step(action)
        return self.observation(frame), reward, terminated, truncated, self._with_frame(info, frame)

    def _with_frame(self, info: dict[str, Any], frame: Any) -> dict[str, Any]:
        if not self.frame_in_info:
            return info
        if FRAME_KEY in info:
            raise ValueError(
                f"frame_in_info=True would overwrite the wrapped env's own info[{FRAME_KEY!r}]; "
                "use frame_in_info=False for this env"
            )
        return {**info, FRAME_KEY: np.array(frame, copy=True)}

    def observation(self, observation: Any) -> Any:
        """One frame (*frame_shape) -> latent (latent_dim,) float32 (or a dict of such arrays)."""
        out = self.vase.process(np.asarray(observation)[None])
        if isinstance(out, dict):
            return {k: v[0] for k, v in out.items()}
        return out[0]

    def close(self) -> None:
        self.vase.close()
        super().close()
