"""Imagination in the world (A.4): the translation policy acts through a wrapped SpriteCanvas."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from vase_rl.agents.explore import ImaginationAgent, env_translation_range, explore
from vase_rl.agents.translation import ImaginationConfig, ImaginationExplorer, translation_to_env_action
from vase_rl.core.config import get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.envs.sprites import SpriteCanvas
from vase_rl.rl.wrapper import FRAME_KEY, VASEObservation

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAR_GOAL = {"goal": (0.123457, 0.654321), "goal_radius": 1e-9}  # never reached: no resets mid-run


def make_learner(seed: int = 0) -> ContinualLearner:
    return ContinualLearner(get_preset("cpu").with_overrides(seed=seed, batch_size=8), device="cpu")


def canvas(**kw: Any) -> SpriteCanvas:
    kw = {
        "source": "shapes",
        "canvas_size": 32,
        "action_type": "continuous",
        "moving": True,
        "max_episode_steps": 1000,
        **FAR_GOAL,
        **kw,
    }
    return SpriteCanvas(**kw)


def world(learner: ContinualLearner, learn: bool = False, **canvas_kw: Any) -> VASEObservation:
    return VASEObservation(
        canvas(**canvas_kw),
        learner,
        learn=learn,
        frame_in_info=True,
        warmup=8,
        train_every=4,
        buffer_size=256,
    )


def explorer_for(learner: ContinualLearner, seed: int = 0) -> ImaginationExplorer:
    return ImaginationExplorer(learner, ImaginationConfig(enabled=True, seed=seed))


def test_policy_acting_through_the_wrapper_moves_the_sprite_as_its_actions_say() -> None:
    learner = make_learner()
    env = world(learner)
    run = explore(env, explorer_for(learner), steps=12, seed=3)
    free = env.unwrapped.renderer.free
    expected = np.clip(np.rint(run.start_positions * free + run.actions * free / 2), 0, free) / free
    np.testing.assert_allclose(run.positions, expected, atol=1e-6)
    np.testing.assert_allclose(run.start_positions[1:], run.positions[:-1])  # one episode, no resets
    assert run.episodes == 1 and not run.resets.any()
    assert np.abs(run.positions - run.start_positions).max() * free >= 1  # the sprite did move
    # the action is the policy's translation in env units (t * canvas / free, clipped to [-1, 1])
    np.testing.assert_allclose(run.actions, np.clip(run.translations * 32 / free, -1, 1), rtol=1e-6)


def test_online_learner_receives_exactly_the_frames_the_actions_produced() -> None:
    learner = make_learner()
    env = world(learner, learn=True)
    batches: list[torch.Tensor] = []
    train_step = learner.train_step
    learner.train_step = lambda x: (batches.append(x.clone()), train_step(x))[1]  # type: ignore[method-assign]
    agent = ImaginationAgent(env, explorer_for(learner))
    first = agent.reset(seed=5)
    steps = 20
    run = agent.run(steps, keep_frames=True)  # continues the episode reset above
    assert run.frames is not None and run.frames.shape == (steps, 32, 32, 1)
    # each kept frame is the canvas re-rendered at the position the action moved the sprite to
    base = env.unwrapped
    px, py = np.rint(run.positions * base.renderer.free).astype(np.int64).T
    np.testing.assert_array_equal(run.frames, base.renderer.render(np.full(steps, first["index"]), px, py))
    # the buffer holds the reset frame and then one frame per action, in order, and nothing else
    assert env.vase_stats()["env_steps"] == steps + 1 and len(env.vase.buffer) == steps + 1
    frames = np.concatenate([first[FRAME_KEY][None], run.frames])
    expected = env.vase.to_input(frames).mul(255).round().to(torch.uint8)
    assert env.vase.buffer.data is not None
    torch.testing.assert_close(env.vase.buffer.data[: steps + 1], expected, rtol=0, atol=0)
    # training batches (every 4 frames once 8 are held) are drawn from exactly those frames
    assert len(batches) == env.vase_stats()["train_steps"] == (steps + 1) // 4 - 1
    held = {bytes(f.numpy()) for f in expected}
    assert all(bytes(row.mul(255).round().to(torch.uint8).numpy()) in held for b in batches for row in b)


def test_episodes_that_end_are_reset_and_their_first_frames_also_reach_the_learner() -> None:
    learner = make_learner()
    env = world(learner, learn=True, max_episode_steps=3)
    run = explore(env, explorer_for(learner), steps=7, seed=0)
    assert run.resets.tolist() == [False, False, True, False, False, True, False]
    assert run.episodes == 3 and env.vase_stats()["env_steps"] == 7 + 3


def test_policy_trains_on_the_imagined_targets_and_only_the_policy_changes() -> None:
    learner = make_learner()
    ex = explorer_for(learner)
    env = world(learner)
    enc = {k: v.clone() for k, v in learner.model.encoder.state_dict().items()}
    pol = {k: v.clone() for k, v in ex.policy.state_dict().items()}
    run = explore(env, ex, steps=6, seed=1)
    assert ex.policy_steps == 6 and np.isfinite(run.agent_loss).all() and (run.agent_loss > 0).all()
    assert run.targets.shape == (6, learner.config.model.latent_dim)
    assert any(not torch.equal(v, ex.policy.state_dict()[k]) for k, v in pol.items())
    assert all(torch.equal(v, learner.model.encoder.state_dict()[k]) for k, v in enc.items())
    frozen = explore(env, ex, steps=3, seed=1, train_policy=False)
    assert ex.policy_steps == 6 and np.isnan(frozen.agent_loss).all()


def test_policy_steps_every_k_env_steps_on_a_batch_of_the_recent_frames() -> None:
    learner = make_learner()
    ex = explorer_for(learner)
    env = world(learner)
    agent = ImaginationAgent(env, ex, policy_every=4, policy_batch=3)
    seen: list[int] = []
    original = ex.policy_step

    def spy(x: Any, z_star: Any = None) -> dict[str, float]:
        seen.append(len(x))
        assert z_star is None  # fresh targets for the batch
        return original(x, z_star)

    ex.policy_step = spy  # type: ignore[method-assign]
    run = agent.run(12, seed=0)
    assert ex.policy_steps == 3 and seen == [3, 3, 3]
    assert np.isfinite(run.agent_loss[3::4]).all() and np.isnan(np.delete(run.agent_loss, [3, 7, 11])).all()
    with pytest.raises(ValueError, match="policy_batch must be an int >= 1"):
        ImaginationAgent(env, ex, policy_batch=0)
    with pytest.raises(ValueError, match="policy_every must be an int >= 1"):
        ImaginationAgent(env, ex, policy_every=True)


def test_the_z_star_blind_control_acts_uniformly_in_range_and_never_trains() -> None:
    learner = make_learner()
    env = world(learner)
    reach = env_translation_range(env)
    cfg = ImaginationConfig(enabled=True, seed=3, policy="random", max_translation=reach)
    ex = ImaginationExplorer(learner, cfg)
    pol = {k: v.clone() for k, v in ex.policy.state_dict().items()}
    run = explore(env, ex, steps=200, seed=1)
    assert ex.policy_steps == 0 and np.isnan(run.agent_loss).all()
    assert all(torch.equal(v, ex.policy.state_dict()[k]) for k, v in pol.items())
    t = run.translations
    assert np.abs(t).max() <= reach and np.abs(t).max() > 0.9 * reach
    # uniform on [-reach, reach]: mean ~0 (sd reach / sqrt(3 * 200) = 0.04 reach), |t| mean ~ reach / 2
    assert np.abs(t.mean(0)).max() < 0.15 * reach and abs(np.abs(t).mean() - reach / 2) < 0.08 * reach
    # blind to z*: the same frame with two different targets gives draws that do not follow the target
    frame = env.reset(seed=2)[1][FRAME_KEY]
    zero, big = np.zeros(learner.config.model.latent_dim), np.full(learner.config.model.latent_dim, 3.0)
    draws = [ex.env_action(env, frame, z)[1] for z in (zero, big) * 50]
    assert abs(np.mean(draws[0::2]) - np.mean(draws[1::2])) < 0.2 * reach


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")
def test_frame_in_info_off_leaves_observations_and_infos_unchanged() -> None:
    learner = make_learner()
    plain = canvas()
    off = VASEObservation(canvas(), learner, learn=False)
    on = VASEObservation(canvas(), learner, learn=False, frame_in_info=True)
    assert off.frame_in_info is False
    results = [e.reset(seed=2) for e in (plain, off, on)]
    for a in ([0.5, -0.25], [-1.0, 1.0]):
        results += [e.step(np.array(a, np.float32)) for e in (plain, off, on)]
    for k in range(0, len(results), 3):
        (raw_obs, raw_info), (off_obs, off_info), (on_obs, on_info) = (
            (r[0], r[-1]) for r in results[k : k + 3]
        )
        assert off_info == raw_info and FRAME_KEY not in off_info
        np.testing.assert_array_equal(on_obs, off_obs)
        np.testing.assert_array_equal(on_info.pop(FRAME_KEY), raw_obs)
        assert on_info == raw_info
        np.testing.assert_array_equal(off_obs, off.vase.encode(raw_obs[None])[0])
    for e in (off, on):
        check_env(e, skip_render_check=True)


def test_bad_arguments_raise_clear_errors() -> None:
    learner = make_learner()
    ex = explorer_for(learner)
    with pytest.raises(ValueError, match="VASEObservation"):
        ImaginationAgent(canvas(), ex)
    with pytest.raises(ValueError, match="frame_in_info=True"):
        ImaginationAgent(VASEObservation(canvas(), learner, learn=False), ex)
    with pytest.raises(ValueError, match="continuous"):
        ImaginationAgent(world(learner, action_type="discrete"), ex)
    with pytest.raises(ValueError, match="wrapper's learner"):
        ImaginationAgent(world(make_learner()), ex)
    with pytest.raises(ValueError, match="enabled=False"):
        ImaginationAgent(world(learner), ImaginationExplorer(learner, ImaginationConfig(enabled=False)))
    with pytest.raises(ValueError, match="steps must be an int >= 0"):
        explore(world(learner), ex, steps=-1)
    with pytest.raises(TypeError, match="frame_in_info must be True or False"):
        VASEObservation(canvas(), learner, frame_in_info="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="z_star must have shape"):
        ex.env_action(world(learner), canvas().reset(seed=0)[0], np.zeros(3))

    class FrameInfo(gym.Wrapper):  # type: ignore[type-arg]
        def reset(self, **kw: Any) -> Any:
            obs, info = self.env.reset(**kw)
            return obs, {**info, FRAME_KEY: "mine"}

    with pytest.raises(ValueError, match="overwrite the wrapped env's own info"):
        VASEObservation(FrameInfo(canvas()), learner, learn=False, frame_in_info=True).reset(seed=0)


def test_exploration_is_deterministic_given_seeds() -> None:
    def once() -> tuple[Any, ...]:
        learner = make_learner(seed=7)
        env = world(learner, learn=True)
        run = explore(env, explorer_for(learner, seed=3), steps=16, seed=11, keep_frames=True)
        return run, env.vase_stats()["train_steps"], learner.model.encoder.state_dict()

    (a, na, wa), (b, nb, wb) = once(), once()
    assert na == nb > 0
    fields = ("targets", "translations", "actions", "start_positions", "positions", "agent_loss", "frames")
    for field in fields:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_saved_wrapper_reloads_with_frame_in_info(tmp_path: Any) -> None:
    learner = make_learner()
    world(learner).save(str(tmp_path / "w.pt"))
    env = VASEObservation.load(str(tmp_path / "w.pt"), canvas(), device="cpu", frame_in_info=True)
    obs, info = env.reset(seed=0)
    assert env.frame_in_info and info[FRAME_KEY].shape == (32, 32, 1)
    np.testing.assert_array_equal(obs, world(learner).reset(seed=0)[0])


def test_env_translation_range_is_what_one_env_step_realises() -> None:
    env = world(make_learner())
    free = env.unwrapped.renderer.free
    reach = env_translation_range(env)
    assert reach == free / 32
    np.testing.assert_array_equal(translation_to_env_action(env, np.array([reach, -reach])), [1.0, -1.0])
    with pytest.raises(ValueError, match="continuous"):
        env_translation_range(canvas(action_type="discrete"))
