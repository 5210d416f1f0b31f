"""VASE wrappers (vase_rl.rl.wrapper, vase_rl.rl.vector_wrapper, vase_rl.agents.sb3_vec): contract, learning,
errors, persistence. The default learner (preset, resizing): tests/test_wrapper_defaults.py."""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import vase_rl.envs  # noqa: F401  (registers the sprite envs)
from vase_rl.agents.sb3_vec import VASEVecEnv
from vase_rl.core.checkpoint import CheckpointError
from vase_rl.core.config import VASEConfig, get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.rl.online_config import OnlineConfig
from vase_rl.rl.vector_wrapper import VASEVectorObservation
from vase_rl.rl.wrapper import VASEObservation

ROOT = Path(__file__).resolve().parents[1]
CANVAS = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(**overrides: Any) -> VASEConfig:
    """A 32x32 model small enough for contract tests (batch 16)."""
    base = get_preset("cpu").with_overrides(
        model={"image_size": CANVAS, "conv_channels": (8, 8, 16, 16), "hidden_dim": 32, "latent_dim": 6},
        batch_size=16,
    )
    return base.with_overrides(**overrides)


def tiny_learner(**overrides: Any) -> ContinualLearner:
    return ContinualLearner(tiny_config(**overrides), device="cpu")


def shapes_env(**kwargs: Any) -> gym.Env[Any, Any]:
    return gym.make("vase_rl/MovingShapes-v0", canvas_size=CANVAS, **kwargs)


class ImageEnv(gym.Env[np.ndarray, int]):
    """Seeded random images of a given space; ``nan_at`` puts NaN in the frame of that step."""

    def __init__(self, space: spaces.Space[Any], nan_at: int | None = None) -> None:
        self.observation_space, self.action_space, self.nan_at = space, spaces.Discrete(2), nan_at
        self.t = 0

    def _frame(self) -> Any:
        s = self.observation_space
        if isinstance(s, spaces.Box) and s.dtype == np.uint8:
            return self.np_random.integers(0, 256, s.shape, dtype=np.uint8)
        frame = self.np_random.random(s.shape).astype(s.dtype)  # type: ignore[union-attr]
        if self.t == self.nan_at:
            frame.flat[0] = np.nan
        return frame

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._frame(), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        return self._frame(), 0.0, False, self.t >= 5, {}


def probe_frames(n: int = 8, seed: int = 0) -> np.ndarray:
    """n sprite frames (n, 32, 32, 1) uint8."""
    env = shapes_env()
    frames = [env.reset(seed=seed + i)[0] for i in range(n)]
    return np.stack(frames)


def encoder_params(learner: ContinualLearner) -> list[torch.Tensor]:
    return [p.detach().clone() for p in learner.model.encoder.parameters()]


# -------------------------------------------------------------------------- observation contract


def test_observation_is_clipped_float32_latent_box_in_space() -> None:
    learner = tiny_learner()
    env = VASEObservation(shapes_env(), learner, learn=False, clip=3.0)
    obs, _ = env.reset(seed=0)
    assert env.observation_space == spaces.Box(-3.0, 3.0, (6,), np.float32)
    assert obs.shape == (6,) and obs.dtype == np.float32 and env.observation_space.contains(obs)
    np.testing.assert_allclose(obs, learner.encode(env.unwrapped._obs()[None]).numpy()[0], atol=1e-5)
    with torch.no_grad():  # a diverging encoder: mu far outside the range is clipped onto its bounds
        learner.model.encoder.head.bias.mul_(0).add_(1e4)
    obs, *_ = env.step(0)
    assert np.all(obs == 3.0) and env.observation_space.contains(obs)


def test_include_env_and_mask_give_a_dict_observation() -> None:
    learner = tiny_learner()
    env = VASEObservation(shapes_env(), learner, learn=False, include_env=True, include_mask=True)
    obs, _ = env.reset(seed=0)
    n_env = learner.config.model.max_environments
    assert set(env.observation_space.spaces) == {"latent", "env", "mask"}
    assert obs["env"].shape == (n_env,) and obs["env"].sum() == 1.0 and obs["env"][0] == 1.0
    assert obs["mask"].shape == (6,) and set(np.unique(obs["mask"])) <= {0.0, 1.0}
    assert env.observation_space.contains(obs)


def test_emit_used_zeroes_the_latents_outside_the_inferred_environments_used_set() -> None:
    """``emit="used"``: mu with the latents outside u^s of the environment q(s|x) picks set to 0; before any
    environment is allocated every row of u^s counts as all used (the frames emit mu)."""
    learner = tiny_learner()
    plain = VASEObservation(shapes_env(), learner, learn=False, include_env=True)
    used = VASEObservation(shapes_env(), learner, learn=False, include_env=True, emit="used")
    fresh, _ = used.reset(seed=0)
    np.testing.assert_array_equal(fresh["latent"], plain.reset(seed=0)[0]["latent"])  # n_seen 0: all used
    patterns = torch.tensor([[1, 0, 1, 0, 1, 0], [0, 1, 1, 1, 0, 0]], dtype=torch.bool)
    learner.memory.used[:2] = patterns
    learner.memory.n_seen = 2
    for seed in range(3):
        mu, _ = plain.reset(seed=seed)
        out, _ = used.reset(seed=seed)
        env = int(np.argmax(mu["env"]))
        np.testing.assert_array_equal(out["env"], mu["env"])
        np.testing.assert_array_equal(out["latent"], mu["latent"] * patterns[env].numpy())
        assert np.all(out["latent"][~patterns[env].numpy()] == 0) and np.any(mu["latent"] != out["latent"])
    only = VASEObservation(shapes_env(), learner, learn=False, emit="used")  # a Box, as with "mu"
    assert isinstance(only.observation_space, spaces.Box) and only.reset(seed=0)[0].shape == (6,)
    with pytest.raises(ValueError, match="emit must be one of"):
        VASEObservation(shapes_env(), learner, learn=False, emit="mask")


def test_float_hw_frames_give_the_latents_of_the_same_uint8_hwc_frames() -> None:
    learner = tiny_learner()
    frames = probe_frames(4)
    as_uint8 = VASEObservation(shapes_env(), learner, learn=False)
    as_float = VASEObservation(
        ImageEnv(spaces.Box(0.0, 1.0, (CANVAS, CANVAS), np.float32)), learner, learn=False
    )
    for frame in frames:
        np.testing.assert_allclose(
            as_float.observation(frame[..., 0].astype(np.float32) / 255.0),
            as_uint8.observation(frame),
            atol=1e-5,
        )


def test_gymnasium_check_env_passes_when_not_learning() -> None:
    env = VASEObservation(shapes_env(render_mode="rgb_array"), tiny_learner(), learn=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    unexpected = [str(w.message) for w in caught if "different from the unwrapped" not in str(w.message)]
    assert unexpected == []


# ----------------------------------------------------------------------------- vector forms


def test_vector_wrappers_give_the_single_env_wrapper_latents() -> None:
    learner = tiny_learner()
    single = VASEObservation(shapes_env(), learner, learn=False)
    kw = {"canvas_size": CANVAS, "max_episode_steps": 4}  # truncations exercise autoreset / terminal obs

    def make_gym() -> gym.vector.VectorEnv:
        return gym.make_vec("vase_rl/MovingShapes-v0", num_envs=3, vectorization_mode="sync", **kw)

    raw, wrapped = make_gym(), VASEVectorObservation(make_gym(), learner, learn=False)
    assert wrapped.single_observation_space == single.observation_space
    assert wrapped.observation_space.shape == (3, 6)
    frames, lat = raw.reset(seed=3)[0], wrapped.reset(seed=3)[0]
    rng = np.random.default_rng(0)
    for _ in range(10):
        assert lat.shape == (3, 6) and lat.dtype == np.float32
        np.testing.assert_allclose(lat, np.stack([single.observation(f) for f in frames]), atol=1e-5)
        actions = rng.integers(0, 5, 3)
        frames, lat = raw.step(actions)[0], wrapped.step(actions)[0]

    def make_sb3() -> DummyVecEnv:
        return DummyVecEnv([lambda: gym.make("vase_rl/MovingShapes-v0", **kw) for _ in range(3)])

    raw_sb3, sb3 = make_sb3(), VASEVecEnv(make_sb3(), learner, learn=False)
    raw_sb3.seed(5)
    sb3.seed(5)
    frames, lat = raw_sb3.reset(), sb3.reset()
    n_terminal = 0
    for _ in range(10):
        np.testing.assert_allclose(lat, np.stack([single.observation(f) for f in frames]), atol=1e-5)
        actions = rng.integers(0, 5, 3)
        frames, _, dones, raw_infos = raw_sb3.step(actions)
        lat, _, _, infos = sb3.step(actions)
        for i in np.flatnonzero(dones):
            n_terminal += 1
            expected = single.observation(raw_infos[i]["terminal_observation"])
            np.testing.assert_allclose(infos[i]["terminal_observation"], expected, atol=1e-5)
    assert n_terminal >= 3


# ----------------------------------------------------------------------------------- learning


def test_learning_changes_the_encoder_only_when_learn_is_true() -> None:
    learner = tiny_learner()
    frames = probe_frames()
    before, params = learner.encode(frames).numpy(), encoder_params(learner)
    options = {"train_every": 8, "warmup": 16, "buffer_size": 64}
    env = VASEObservation(shapes_env(), learner, learn=False, **options)
    env.reset(seed=0)
    for t in range(100):
        env.step(t % 5)
    assert learner.step == 0 and env.vase_stats()["train_steps"] == 0
    assert all(torch.equal(a, b) for a, b in zip(params, encoder_params(learner), strict=True))
    env.learn = True
    for t in range(100):
        env.step(t % 5)
    assert learner.step > 0 and env.vase_stats()["train_steps"] == learner.step
    after = env.vase.encode(frames)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, learner.encode(frames).numpy(), atol=1e-5)  # copy refreshed
    env.freeze()
    steps = learner.step
    for t in range(50):
        env.step(t % 5)
    assert learner.step == steps and learner.frozen


@pytest.mark.parametrize("asynchronous", [False, True])
def test_training_rounds_follow_train_every_updates_and_warmup(asynchronous: bool) -> None:
    learner = tiny_learner()
    venv = gym.make_vec("vase_rl/MovingShapes-v0", num_envs=4, vectorization_mode="sync", canvas_size=CANVAS)
    env = VASEVectorObservation(
        venv, learner, train_every=4, updates=3, warmup=16, buffer_size=32, asynchronous=asynchronous
    )
    env.reset(seed=0)
    for _ in range(9):  # 4 + 9 * 4 = 40 frames; rounds are due every 4 frames once 16 are buffered
        env.step(np.zeros(4, dtype=np.int64))
    env.vase.wait()
    assert env.vase_stats()["train_steps"] == 3 * 7 == learner.step
    assert env.vase_stats()["env_steps"] == 40 and len(env.vase.buffer) == 32
    env.close()


def test_shared_learner_reaches_every_wrapper_sharing_it() -> None:
    learner = tiny_learner()
    frames = probe_frames(3)
    watcher = VASEObservation(shapes_env(), learner, learn=False)
    before = np.stack([watcher.observation(f) for f in frames])
    trainer = VASEObservation(shapes_env(), learner, train_every=4, warmup=16, buffer_size=32)
    trainer.reset(seed=0)
    for t in range(40):
        trainer.step(t % 5)
    after = np.stack([watcher.observation(f) for f in frames])
    assert learner.step > 0 and np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, learner.encode(frames).numpy(), atol=1e-5)


def test_new_environment_detected_when_the_source_changes(data_dir: str) -> None:
    """MNIST -> Fashion with a small, fast-learning config: the Fashion frames allocate environment 1."""
    config = get_preset("cpu").with_overrides(
        model={"conv_channels": (16, 16, 32, 32), "hidden_dim": 128, "latent_dim": 10},
        inference={"grace_steps": 30, "patience": 3},
        batch_size=32,
        seed=0,
    )
    learner = ContinualLearner(config, device="cpu")

    def wrapped(env_id: str) -> VASEVectorObservation:
        venv = gym.make_vec(env_id, num_envs=8, vectorization_mode="sync", canvas_size=CANVAS)
        env = VASEVectorObservation(venv, learner, train_every=8, updates=2, buffer_size=512, warmup=256)
        env.reset(seed=0)
        env.action_space.seed(0)
        return env

    mnist = wrapped("vase_rl/MovingMNIST-v0")
    while learner.step < 300:
        mnist.step(mnist.action_space.sample())
    assert learner.memory.n_seen == 1
    fashion = wrapped("vase_rl/MovingFashion-v0")  # its own buffer, the same learner
    inferred = []
    for _ in range(60):
        fashion.step(fashion.action_space.sample())
        inferred.append(fashion.vase_stats().get("env"))
    assert learner.memory.n_seen == 2
    trained = [e for e in inferred if e is not None]
    assert len(trained) >= 20 and trained[-20:] == [1] * 20
    for _ in range(30):  # back to MNIST: recognised as a known environment, nothing new allocated
        mnist.step(mnist.action_space.sample())
    assert learner.memory.n_seen == 2


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "space, match",
    [
        (spaces.Discrete(3), "need a Box image space.*got Discrete\\(3\\)"),
        (spaces.Box(0, 1, (4,), np.float32), "got a Box of shape \\(4,\\)"),
        (spaces.Box(0, 255, (32, 32, 4), np.uint8), "got a Box of shape \\(32, 32, 4\\)"),
        (spaces.Box(0, 255, (32, 32, 1), np.float32), "bounds within \\[0, 1\\]"),
        (spaces.Box(0, 255, (32, 32, 1), np.int32), "uint8 or float images; got a Box of dtype int32"),
    ],
)
def test_non_image_spaces_are_rejected_at_construction(space: spaces.Space[Any], match: str) -> None:
    with pytest.raises(TypeError if isinstance(space, spaces.Discrete) else ValueError, match=match):
        VASEObservation(ImageEnv(space), tiny_learner())


def test_bad_frames_and_options_raise_clear_errors() -> None:
    learner = tiny_learner()
    with pytest.raises(ValueError, match=r"3 channel\(s\).*expects 1"):
        VASEObservation(ImageEnv(spaces.Box(0, 255, (32, 32, 3), np.uint8)), learner)
    env = VASEObservation(shapes_env(), learner, learn=False)
    with pytest.raises(
        ValueError, match=r"expected frames of shape \(32, 32, 1\).*got a batch of shape \(16, 16, 1\)"
    ):
        env.observation(np.zeros((16, 16, 1), np.uint8))
    nan_env = VASEObservation(ImageEnv(spaces.Box(0.0, 1.0, (32, 32), np.float32), nan_at=2), learner)
    nan_env.reset(seed=0)
    nan_env.step(0)
    with pytest.raises(ValueError, match="NaN or inf"):
        nan_env.step(0)
    with pytest.raises(ValueError, match="float images must lie in \\[0, 1\\]"):
        nan_env.observation(np.full((32, 32), 2.0, np.float32))
    with pytest.raises(TypeError, match="unknown VASE wrapper option\\(s\\) \\['train_evry'\\]"):
        VASEObservation(shapes_env(), learner, train_evry=4)
    with pytest.raises(ValueError, match="train_every must be >= 1, got 0"):
        OnlineConfig(train_every=0)
    with pytest.raises(ValueError, match="buffer_size=8 is smaller than the learner's batch_size=16"):
        VASEObservation(shapes_env(), learner, buffer_size=8)


# -------------------------------------------------------------------------------- persistence


def test_save_load_round_trip_gives_identical_latents(tmp_path: Any) -> None:
    learner = tiny_learner()
    env = VASEObservation(shapes_env(), learner, train_every=4, warmup=16, buffer_size=32, include_env=True)
    env.reset(seed=0)
    for t in range(40):
        env.step(t % 5)
    path = str(tmp_path / "vase.pt")
    env.save(path)
    frames = probe_frames()
    loaded = VASEObservation.load(path, shapes_env(), device="cpu", learn=False)
    assert loaded.vase.config == OnlineConfig.build(env.vase.config, learn=False)
    assert loaded.learner.step == learner.step and loaded.learner.memory.n_seen == learner.memory.n_seen
    expected, got = env.vase.encode(frames), loaded.vase.encode(frames)
    for key in ("latent", "env"):
        np.testing.assert_array_equal(got[key], expected[key])
    venv = gym.make_vec("vase_rl/MovingShapes-v0", num_envs=2, vectorization_mode="sync", canvas_size=CANVAS)
    vector = VASEVectorObservation.load(path, venv, device="cpu")
    np.testing.assert_allclose(vector.vase.encode(frames)["latent"], expected["latent"], atol=1e-5)
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"broken\.pt"):
        VASEObservation.load(str(tmp_path / "broken.pt"), shapes_env())


# ------------------------------------------------------------------------------------- layering


def vase_imports(path: str) -> set[str]:
    """Absolute names of the vase_rl / stable_baselines3 modules that the file at ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom):
            names = [str(node.module)]
        found |= {n for n in names if n.startswith(("vase_rl", "stable_baselines3"))}
    return found


def test_wrapper_modules_import_one_way() -> None:
    """core <- online engine <- wrappers <- SB3 glue; the core package never imports stable-baselines3."""
    assert not vase_imports("vase_rl/rl/online.py") & {"vase_rl.rl.wrapper", "vase_rl.rl.vector_wrapper"}
    assert "vase_rl.rl.vector_wrapper" not in vase_imports("vase_rl/rl/wrapper.py")
    assert "vase_rl.rl.wrapper" not in vase_imports("vase_rl/rl/vector_wrapper.py")
    for path in sorted((ROOT / "vase_rl" / "rl").glob("*.py")):
        assert not {m for m in vase_imports(f"vase_rl/rl/{path.name}") if "agents" in m or "stable" in m}
    core = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "vase_rl").rglob("*.py"))]
    assert [p for p in core if any(m.startswith("stable_baselines3") for m in vase_imports(p))] == []
    assert "vase_rl.rl.online" in vase_imports("agents/sb3_vec.py")


def test_importing_vase_rl_is_lazy_and_exports_the_public_api() -> None:
    code = (
        "import sys, vase_rl; heavy = {'torch', 'gymnasium', 'stable_baselines3'} & set(sys.modules); "
        "print(sorted(heavy)); from vase_rl import VASEObservation, VASEVectorObservation, OnlineConfig; "
        "print(VASEObservation.__module__, VASEVectorObservation.__module__, OnlineConfig.__module__, "
        "'stable_baselines3' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == [
        "[]",
        "vase_rl.rl.wrapper vase_rl.rl.vector_wrapper vase_rl.rl.online_config False",
    ]
