"""The speed paths compute what the plain paths compute: channels-last parameters, the inference copy
under ``torch.inference_mode``, and one encoder pass for a step's frames and its terminal frames."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from gymnasium import spaces

from vase_rl.core.config import get_preset
from vase_rl.core.learner import ContinualLearner
from vase_rl.core.model import VASEModel, channels_last_
from vase_rl.rl.online import OnlineVASE
from vase_rl.rl.online_config import OnlineConfig

TOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def contiguous_twin(model: VASEModel) -> VASEModel:
    """A copy of ``model`` with every parameter in the contiguous (NCHW) layout."""
    twin = copy.deepcopy(model).to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    assert all(p.is_contiguous() for p in twin.parameters())
    return twin


def seeded_images(n: int, side: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, channels, side, side, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("preset", ["cpu", "paper"])
def test_model_conv_weights_are_channels_last_with_unchanged_values(preset: str) -> None:
    cfg = get_preset(preset).model
    torch.manual_seed(0)
    model = VASEModel(cfg)
    convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert len(convs) == 8
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    twin = contiguous_twin(model)
    for (name, p), q in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.equal(p, q), name  # a layout, not other values


@pytest.mark.parametrize(("preset", "channels"), [("cpu", 1), ("cpu", 3), ("paper", 1)])
def test_channels_last_encoder_and_decoder_match_contiguous_within_float_rounding(
    preset: str, channels: int
) -> None:
    cfg = get_preset(preset).with_overrides(model={"channels": channels}).model
    torch.manual_seed(0)
    model = VASEModel(cfg).eval()
    twin = contiguous_twin(model).eval()
    x = seeded_images(16, cfg.image_size, channels)
    with torch.no_grad():
        for a, b in zip(model.encoder(x), twin.encoder(x), strict=True):
            assert float((a - b).abs().max()) < TOL
        z = torch.randn(16, cfg.latent_dim, generator=torch.Generator().manual_seed(1))
        env = torch.zeros(16, dtype=torch.long)
        diff = model.decoder(z, env) - twin.decoder(z, env)
    assert float(diff.abs().max()) < TOL


def test_channels_last_training_matches_contiguous_training() -> None:
    """Same decisions and losses step for step, and the same gradients. (Parameters after Adam steps are
    not compared: Adam's first updates are ~lr * sign(g), so a near-zero gradient whose rounding differs
    moves a weight by up to lr either way -- measured 4e-4 after 3 steps, in weights of size ~0.1.)"""
    fast = ContinualLearner(get_preset("cpu"), device="cpu")
    plain = ContinualLearner(get_preset("cpu"), device="cpu")
    plain.model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    plain.snapshot.model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    plain.optimizer = torch.optim.Adam(plain.model.parameters(), lr=plain.config.lr)
    for step in range(3):
        x = seeded_images(16, 32, seed=step)
        a, b = fast.train_step(x), plain.train_step(x)
        assert (a.env, a.reason) == (b.env, b.reason)
        assert abs(a.loss - b.loss) < 1e-4 * max(1.0, abs(b.loss))
        if step == 0:  # the same parameters produced these gradients
            for p, q in zip(fast.model.parameters(), plain.model.parameters(), strict=True):
                assert p.grad is not None and q.grad is not None
                assert float((p.grad - q.grad).abs().max()) < TOL * max(1.0, float(q.grad.abs().max()))


def test_channels_last_learner_state_round_trips_exactly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    learner = ContinualLearner(get_preset("cpu"), device="cpu")
    learner.train_step(seeded_images(8, 32))
    learner.save(str(tmp_path / "l.pt"))
    again = ContinualLearner.load(str(tmp_path / "l.pt"), device="cpu")
    assert again.model.encoder.convs[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = seeded_images(8, 32, seed=3)
    a, b = learner.train_step(x), again.train_step(x)
    assert a.loss == b.loss  # bit for bit
    for p, q in zip(learner.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_channels_last_helper_keeps_values_and_returns_the_module() -> None:
    conv = torch.nn.Conv2d(3, 4, 4, 2, 1)
    before = conv.weight.detach().clone()
    assert channels_last_(conv) is conv
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(conv.weight, before)


@pytest.mark.parametrize("channels", [1, 3])
def test_inference_copy_matches_learner_encode(channels: int) -> None:
    space = spaces.Box(0, 255, (32, 32, channels), np.uint8)
    engine = OnlineVASE.create(space, device="cpu", learn=False)
    frames = np.random.default_rng(0).integers(0, 256, (8, 32, 32, channels), dtype=np.uint8)
    expected = engine.learner.encode(frames).numpy()
    assert float(np.abs(engine.encode(frames) - expected).max()) < TOL


def test_one_pass_for_frames_and_terminal_frames_matches_two_passes_and_buffers_only_frames() -> None:
    space = spaces.Box(0, 255, (32, 32, 1), np.uint8)
    config = OnlineConfig(warmup=8, train_every=10**6, include_env=True, include_mask=True)
    engine = OnlineVASE.create(space, device="cpu", config=config)
    rng = np.random.default_rng(0)
    frames, finals = (rng.integers(0, 256, (n, 32, 32, 1), dtype=np.uint8) for n in (8, 3))
    mine, theirs = engine.process_with(frames, finals)
    assert theirs is not None and len(engine.buffer) == 8 and engine.env_steps == 8
    for key in ("latent", "env", "mask"):
        assert float(np.abs(mine[key] - engine.encode(frames)[key]).max()) < TOL
        assert float(np.abs(theirs[key] - engine.encode(finals)[key]).max()) < TOL
    latents, none = engine.process_with(frames, None)
    assert none is None and latents["latent"].shape == (8, 24) and len(engine.buffer) == 16
