"""Property-based input fuzzing of the learner and the VASE wrappers (hypothesis).

Contract (DESIGN.md, "Behaviour we rely on"): every input either works or raises a clear ``ValueError`` /
``TypeError`` naming what was received; nothing else escapes, and no NaN/inf ever leaves ``encode``.
Each property runs twice: ``fuzz`` (a few examples, part of the default run) and ``slow`` + ``fuzz``
(many examples: ``pytest -m slow tests/test_fuzz.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import tiny_config
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from stable_baselines3.common.vec_env import DummyVecEnv

from vase_rl.agents.sb3_vec import VASEVecEnv
from vase_rl.core.learner import ContinualLearner
from vase_rl.rl.vector_wrapper import VASEVectorObservation
from vase_rl.rl.wrapper import OnlineConfig, VASEObservation

FAST_EXAMPLES, SLOW_EXAMPLES = 15, 300
CLEAR = (
    "shape",
    "dtype",
    "channel",
    "NaN",
    "[0, 1]",
    "empty",
    "too small",
    "numpy array",
    "batch",
    "Box",
    "image",
)
"""An error is clear when its message names one of these (what was received / expected)."""
DTYPES = (np.uint8, np.float32, np.float64, np.float16, np.int64, np.int8, np.uint16, np.bool_, np.complex64)
SIDES = (1, 2, 3, 5, 16, 17, 40)
LAYOUTS = ("BHW", "BHWC", "BCHW", "HW", "HWC", "B", "BHWCX", "")
SPECIAL_FLOATS = (float("nan"), float("inf"), -float("inf"), -0.0, 1.0005, -5e-4, 1e-40, 1.5, -1.0, 255.0)
WRAPPER_OPTIONS = OnlineConfig(train_every=8, warmup=16, buffer_size=64)  # tiny learner: batch 16


def both(**strategies: st.SearchStrategy[Any]) -> Callable[[Callable[..., None]], tuple[Any, Any]]:
    """Decorate a property into (fast fuzz test, slow fuzz test with many examples)."""

    def build(body: Callable[..., None]) -> tuple[Any, Any]:
        common = {
            "deadline": None,
            "derandomize": True,
            "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
        }
        fast = settings(max_examples=FAST_EXAMPLES, **common)(given(**strategies)(body))
        slow = settings(max_examples=SLOW_EXAMPLES, **common)(given(**strategies)(body))
        return pytest.mark.fuzz(fast), pytest.mark.slow(pytest.mark.fuzz(slow))

    return build


@st.composite
def images(draw: st.DrawFn, canonical: bool = False, side: int | None = None) -> Any:
    """Arbitrary image-like inputs: layout, sides, channels, dtype, values and container all vary.

    ``canonical=True`` draws only inputs the contract accepts: uint8 in [0, 255] or float in [0, 1],
    (B, H, W) or (B, H, W, 1), B >= 1, H, W >= 2 (H = W = ``side`` when given).
    """
    if canonical:
        layout = draw(st.sampled_from(("BHW", "BHWC")))
        h, w = (side, side) if side else (draw(st.sampled_from(SIDES[1:])), draw(st.sampled_from(SIDES[1:])))
        sides = {"B": draw(st.integers(1, 4)), "H": h, "W": w, "C": 1}
        dtype = draw(st.sampled_from((np.uint8, np.float32, np.float64, np.float16)))
        specials: tuple[float, ...] = (0.0, 1.0, 1e-40, 0.5)
    else:
        layout = draw(st.sampled_from(LAYOUTS))
        sides = {
            "B": draw(st.integers(0, 4)),
            "H": draw(st.sampled_from(SIDES)),
            "W": draw(st.sampled_from(SIDES)),
            "C": draw(st.sampled_from((0, 1, 2, 3, 4))),
            "X": draw(st.integers(1, 2)),
        }
        dtype = draw(st.sampled_from(DTYPES))
        specials = SPECIAL_FLOATS
    shape = tuple(sides[k] for k in layout)
    kind = np.dtype(dtype).kind
    elements: st.SearchStrategy[Any]
    if kind == "f":  # values in [0, 1], or specials rounded to the dtype (hypothesis needs exact values)
        exact = np.array(specials, dtype=dtype).tolist()
        width = 16 if dtype == np.float16 else 32
        elements = st.one_of(st.floats(0.0, 1.0, width=width, allow_subnormal=False), st.sampled_from(exact))
    elif kind == "c":
        elements = st.complex_numbers(max_magnitude=2.0, width=64, allow_subnormal=False)
    elif kind == "b":
        elements = st.booleans()
    else:
        info = np.iinfo(dtype)
        elements = st.integers(int(info.min), int(info.max))
    arr = draw(arrays(dtype, shape, elements=elements))
    container = "numpy" if canonical else draw(st.sampled_from(("numpy", "numpy", "torch", "list")))
    if container == "torch":
        assume(dtype not in (np.uint16,))  # torch.from_numpy has no uint16 on every version
        return torch.from_numpy(arr)
    return arr.tolist() if container == "list" else arr


@functools.cache
def learner() -> ContinualLearner:
    """One tiny 16x16 learner (1 channel, 6 latents, batch 16) shared by the fuzzers."""
    return ContinualLearner(tiny_config(), device="cpu")


def accepts_or_rejects_clearly(fn: Callable[[], Any]) -> Any:
    """Call ``fn``; a ValueError/TypeError must say what was wrong (other exceptions propagate).
    Returns fn's result, or None when it was rejected."""
    try:
        return fn()
    except (ValueError, TypeError) as exc:
        message = str(exc)
        assert any(word in message for word in CLEAR), f"unclear error: {type(exc).__name__}: {message}"
        return None


def assert_finite_latents(mu: Any, n: int | None = None) -> None:
    mu = torch.as_tensor(mu)
    assert mu.dtype == torch.float32 and mu.shape[-1] == learner().config.model.latent_dim
    assert n is None or mu.shape[0] == n
    assert bool(torch.isfinite(mu).all()), "NaN/inf left encode"


# ------------------------------------------------------------------------------------------- learner
@both(x=images())
def _encode_any_input(x: Any) -> None:
    mu = accepts_or_rejects_clearly(lambda: learner().encode(x))
    if mu is not None:
        assert_finite_latents(mu)


(test_encode_any_input_works_or_raises_clearly, test_encode_any_input_works_or_raises_clearly_many) = (
    _encode_any_input
)


@both(x=images(canonical=True))
def _encode_valid_input(x: np.ndarray) -> None:
    assert_finite_latents(learner().encode(x), n=x.shape[0])


test_encode_accepts_every_valid_input, test_encode_accepts_every_valid_input_many = _encode_valid_input


@both(x=images(), extreme=st.sampled_from(("none", "zeros", "ones", "checker")))
def _train_any_batch(x: Any, extreme: str) -> None:
    if extreme != "none" and isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.size:
        x = {
            "zeros": np.zeros_like(x),
            "ones": np.full_like(x, 255),
            "checker": (np.indices(x.shape).sum(0) % 2 * 255).astype(np.uint8),
        }[extreme]
    out = accepts_or_rejects_clearly(lambda: learner().train_step(x))
    if out is not None:
        assert np.isfinite(out.loss) and np.isfinite(out.atypicality).all()
        assert_finite_latents(learner().encode(x))


test_train_step_any_batch_works_or_raises_clearly, test_train_step_any_batch_works_or_raises_clearly_many = (
    _train_any_batch
)


# ------------------------------------------------------------------------------------------ wrappers
class ImageEnv(gym.Env[Any, int]):
    """Returns one sample of its observation space whatever the action."""

    def __init__(self, space: spaces.Space[Any]) -> None:
        self.observation_space, self.action_space = space, spaces.Discrete(2)
        self.frame = space.sample()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self.frame, {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        return self.frame, 0.0, False, False, {}


@st.composite
def observation_spaces(draw: st.DrawFn) -> spaces.Space[Any]:
    """Boxes of any rank/side/dtype/bounds, plus a few non-Box spaces."""
    if draw(st.integers(0, 9)) == 0:
        return draw(
            st.sampled_from(
                (
                    spaces.Discrete(3),
                    spaces.MultiBinary(4),
                    spaces.Dict({"img": spaces.Box(0, 255, (16, 16, 1), np.uint8)}),
                )
            )
        )
    shape = tuple(draw(st.lists(st.sampled_from((1, 2, 3, 4, 16, 20)), min_size=0, max_size=4)))
    dtype = draw(st.sampled_from((np.uint8, np.float32, np.float64, np.int64)))
    if np.dtype(dtype).kind == "f":
        low, high = draw(st.sampled_from(((0.0, 1.0), (0.0, 255.0), (-1.0, 1.0), (0.25, 0.75))))
    else:
        low, high = draw(st.sampled_from(((0, 255), (0, 10)) + (((-5, 5),) if dtype == np.int64 else ())))
    return spaces.Box(low, high, shape, dtype)


def _vector_envs(space: spaces.Space[Any]) -> list[tuple[str, Any]]:
    """(name, wrapper factory) for the single wrapper and both vector wrappers around ``space``."""
    options = {"config": WRAPPER_OPTIONS}
    return [
        ("single", lambda: VASEObservation(ImageEnv(space), learner(), **options)),
        (
            "gym-vector",
            lambda: VASEVectorObservation(
                gym.vector.SyncVectorEnv([lambda: ImageEnv(space)] * 2), learner(), **options
            ),
        ),
        ("sb3-vec", lambda: VASEVecEnv(DummyVecEnv([lambda: ImageEnv(space)] * 2), learner(), **options)),
    ]


def _base_vector_env_accepts(space: spaces.Space[Any]) -> bool:
    """gymnasium / SB3 must themselves accept the space before our wrappers are asked to."""
    try:
        gym.vector.SyncVectorEnv([lambda: ImageEnv(space)] * 2).close()
        DummyVecEnv([lambda: ImageEnv(space)] * 2).close()
    except Exception:  # noqa: BLE001  (any refusal by the base env)
        return False
    return True


@both(space=observation_spaces())
def _wrap_any_space(space: spaces.Space[Any]) -> None:
    assume(_base_vector_env_accepts(space))
    outcomes = []
    for name, make in _vector_envs(space):
        wrapper = accepts_or_rejects_clearly(make)
        outcomes.append(wrapper is not None)
        if wrapper is not None:
            obs = wrapper.reset(seed=0)[0] if name != "sb3-vec" else wrapper.reset()
            assert_finite_latents(obs)
            wrapper.close()
    assert len(set(outcomes)) == 1, f"wrappers disagree on {space}: {outcomes}"


test_wrappers_accept_or_reject_any_space_clearly, test_wrappers_accept_or_reject_any_space_clearly_many = (
    _wrap_any_space
)

FRAME_SPACE = spaces.Box(0, 255, (16, 16, 1), np.uint8)


@both(frames=st.one_of(images(), images(canonical=True, side=16)), learn=st.booleans())
def _wrapper_frames(frames: Any, learn: bool) -> None:
    single = VASEObservation(ImageEnv(FRAME_SPACE), learner(), config=WRAPPER_OPTIONS, learn=learn)
    vector = VASEVectorObservation(
        gym.vector.SyncVectorEnv([lambda: ImageEnv(FRAME_SPACE)] * 2),
        learner(),
        config=WRAPPER_OPTIONS,
        learn=learn,
    )
    sb3 = VASEVecEnv(
        DummyVecEnv([lambda: ImageEnv(FRAME_SPACE)] * 2), learner(), config=WRAPPER_OPTIONS, learn=learn
    )
    frame = frames[0] if len(getattr(frames, "shape", ())) > 0 and len(frames) else frames  # one observation
    accepted = 0
    for _ in range(16):  # >= 16 frames: a learning wrapper's first training round (warm-up = batch = 16)
        one = accepts_or_rejects_clearly(lambda: single.observation(frame))
        if one is not None:
            assert_finite_latents(one[None])
        for batch in (
            accepts_or_rejects_clearly(lambda: vector.observations(frames)),
            accepts_or_rejects_clearly(lambda: sb3.vase.process(frames)),
        ):  # what step_wait calls
            if batch is not None:
                assert_finite_latents(batch, n=len(frames))
                accepted += 1
    if learn and accepted == 32:
        assert vector.vase.train_steps >= 1 and sb3.vase.train_steps >= 1  # the learning path was exercised
    for wrapper in (single, vector, sb3):
        wrapper.close()


test_wrappers_accept_or_reject_any_frames_clearly, test_wrappers_accept_or_reject_any_frames_clearly_many = (
    _wrapper_frames
)
