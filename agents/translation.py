"""Imagination-driven exploration (Achille et al. 2018, appendix A.4): a translation policy and its explorer.

The policy g(z*, x) looks at an image x and a target configuration z* ~ p(z) and outputs a 2-D
translation; the translated image g . x is encoded by VASE and the policy minimises

    L_agent = E_x E_{z*~p(z)} E_{z~q(z | g(z*, x) . x)} ||z* - z||^2            (A.4)

through a spatial transformer, so the whole operation is differentiable. Only the policy's weights
are updated: the VASE encoder is evaluated with detached parameters (:func:`frozen_encoder_forward`).
:class:`ImaginationExplorer` trains the policy alongside the learner and replaces a fraction of each
training batch with imagined images x* = g . x ("moving" a static object before ever seeing it move).

Translation convention (used by :func:`translate`, the policy and :meth:`ImaginationExplorer.env_action`)
------------------------------------------------------------------------------------------------------
``t = (t_x, t_y)`` in ``[-1, 1]^2`` is measured in normalised image coordinates, where the image spans
``[-1, 1]`` along each axis (``F.affine_grid`` with ``align_corners=False``: pixel centres sit at
``(2 j + 1) / W - 1``). Positive ``t_x`` moves the content **right** (towards larger column index),
positive ``t_y`` moves it **down** (towards larger row index). The shift in pixels is
``t * W / 2`` (``t * H / 2`` vertically): ``t = 1`` moves content by half the image, and
``t = 2 k / W`` moves it by exactly ``k`` pixels (:func:`pixels_to_translation`); for power-of-two sizes
the resampling grid then falls exactly on pixel centres and bilinear sampling copies pixels exactly.
Content moved out of the frame is cropped; uncovered pixels are filled with zeros (``padding_mode="zeros"``).

Acting in the world vs. in the graph: the STN (:func:`translate`) works on any image but crops at the
borders and interpolates fractional shifts; :meth:`ImaginationExplorer.env_action` instead turns the
translation into the continuous action of a ``SpriteCanvas`` env, which re-renders the sprite exactly
(no blur) and clips its position at the canvas edge (the sprite is never cut off); one env step
shifts the sprite by at most ``free / 2`` pixels per axis (:func:`translation_to_env_action`).
:func:`vase_rl.agents.explore.explore` runs that loop through a ``VASEObservation``-wrapped env, so the
wrapper's online learner trains on the frames the policy's actions produce.

Wiring into training::

    >>> from vase_rl.core.config import get_preset
    >>> from vase_rl.core.learner import ContinualLearner
    >>> learner = ContinualLearner(get_preset("cpu"), device="cpu")
    >>> hook = make_imagination_hook(learner, ImaginationConfig(enabled=True, fraction=0.5))
    >>> x = torch.rand(8, 1, 32, 32)
    >>> hook(0, "mnist", x).shape            # half of the batch is now imagined x* = g . x
    torch.Size([8, 1, 32, 32])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import nn

from vase_rl.runs.run_format import BatchHook

from .stn import (
    pixels_to_translation,
    translate,
    translation_grid,
    translation_theta,
    translation_to_env_action,
    translation_to_pixels,
)

__all__ = [
    "ImaginationConfig",
    "ImaginationExplorer",
    "TranslationPolicy",
    "agent_loss",
    "check_targets",
    "frozen_encoder_forward",
    "make_imagination_hook",
    "pixels_to_translation",
    "translate",
    "translation_grid",
    "translation_sensitivity",
    "translation_theta",
    "translation_to_env_action",
    "translation_to_pixels",
]

TargetLatents = Literal["all", "used", "translation-sensitive"]
ImaginationPolicy = Literal["learned", "random"]


# ---------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ImaginationConfig:
    """Imagination-driven exploration (A.4). ``enabled=False`` makes the hook a no-op."""

    enabled: bool = False
    """Turn imagination on: train the policy and add imagined images to the training batches."""
    fraction: float = 0.5
    """Fraction of each training batch replaced by imagined images x* = g . x (rounded, in [0, 1])."""
    lr: float = 6e-4
    """Adam learning rate of the policy (A.1's rate; one step per training batch)."""
    hidden: int = 256
    """Units of the policy's single fully connected hidden layer (A.4 does not give the width)."""
    filters: int = 16
    """Filters of each of the policy's four 4x4 stride-2 conv layers (A.4: 16)."""
    start_step: int = 0
    """Global step from which imagined images enter the batches; the policy trains from step 0."""
    max_translation: float = 1.0
    """Scale of the tanh output: translations lie in [-max_translation, max_translation]^2."""
    target_latents: TargetLatents = "all"
    """Latents in L_agent: ``"all"`` (the paper) or ``"used"``: only latents that some environment seen
    so far uses (union of ``learner.memory.used``). A translation can only change position latents, so
    the other terms are constant w.r.t. the policy (harmless but noisy). The union -- not the current
    environment's used set -- is taken because in a static environment (e.g. MNIST) the position
    latents are exactly the ones the current environment does *not* use. ``"translation-sensitive"``
    (beyond the paper): only the latents whose mean moves when the batch is translated
    (:func:`translation_sensitivity` > ``sensitive_sd``, recomputed on every policy step). With every
    latent as a target, any move that brings the code towards the prior mean lowers L_agent whatever z*
    is -- pushing the sprite into a corner does (34 % of the reachable gain needs no z*:
    ``benchmarks/investigations/imagination_landscape.py``, docs/findings.md section 12)."""
    sensitive_sd: float = 0.5
    """``target_latents="translation-sensitive"``: the sd of a latent's mean across a 3x3 lattice of
    translations over [-max_translation, max_translation]^2 (mean over frames) above which it is a target."""
    sensitivity_frames: int = 8
    """Frames of the batch that the sensitivity test translates (9 encoder passes each, no gradient)."""
    seed: int = 0
    """Seed of the policy's initialisation and of the z* / reparameterisation noise."""
    saturation_penalty: float = 0.0
    """Beyond the paper: weight of the mean squared pre-tanh output of the policy, added to L_agent on each
    policy step (0: the paper's loss). Where tanh saturates its gradient vanishes: a policy pushed to a
    constant corner move (|t| at its maximum) gets no gradient back even while L_agent rises, as the
    encoder keeps training under it (the in-world run of docs/findings.md section 12: L_agent 17.6 ->
    30.2 at the corner). The penalty's gradient grows with the pre-activation, so it pulls a saturated
    output back to where L_agent's gradient reaches the weights; inside the range it barely acts."""
    saturation_level: float = 2.0
    """|pre-tanh output| above which an output counts as saturated in the reported ``saturated`` fraction
    (tanh' = 0.07 at 2)."""
    policy: ImaginationPolicy = "learned"
    """``"learned"``: the translation policy g(z*, x) trained on L_agent (A.4). ``"random"`` (a control, not
    the paper): the batch hook translates by t uniform in ``[-max_translation, max_translation]^2``, blind to
    z* and never trained -- plain translation augmentation, the reference that says whether imagination's
    gain comes from following z*."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"ImaginationConfig.fraction must be in [0, 1], got {self.fraction}")
        if self.lr <= 0 or self.max_translation <= 0:
            raise ValueError(f"lr and max_translation must be > 0, got {self.lr}, {self.max_translation}")
        if self.hidden < 1 or self.filters < 1 or self.start_step < 0:
            raise ValueError("hidden and filters must be >= 1 and start_step >= 0")
        if self.target_latents not in ("all", "used", "translation-sensitive"):
            raise ValueError(
                "target_latents must be 'all', 'used' or 'translation-sensitive', "
                f"got {self.target_latents!r}"
            )
        if self.saturation_penalty < 0 or self.saturation_level <= 0:
            raise ValueError(
                "saturation_penalty must be >= 0 and saturation_level > 0, "
                f"got {self.saturation_penalty}, {self.saturation_level}"
            )
        if self.sensitive_sd < 0 or self.sensitivity_frames < 1:
            raise ValueError("sensitive_sd must be >= 0 and sensitivity_frames >= 1")
        if self.policy not in ("learned", "random"):
            raise ValueError(f"ImaginationConfig.policy must be 'learned' or 'random', got {self.policy!r}")


# -------------------------------------------------------------------------------------- policy
class TranslationPolicy(nn.Module):
    """g(z*, x) of A.4: four 4x4 stride-2 ReLU convs (16 filters) -> flatten ++ z* -> fc ReLU -> tanh (2,).

    ``forward(x, z_star)``: x (B, C, S, S) float in [0, 1] with S a multiple of 16, z_star (B, N)
    -> translation t (B, 2) in [-max_translation, max_translation]^2 (convention: module doc).
    """

    def __init__(
        self,
        image_size: int,
        channels: int,
        latent_dim: int,
        hidden: int = 256,
        filters: int = 16,
        max_translation: float = 1.0,
    ) -> None:
        super().__init__()
        if image_size % 16 != 0 or image_size < 16:
            raise ValueError(f"image_size must be a multiple of 16 (halved 4 times), got {image_size}")
        layers: list[nn.Module] = []
        c_in = channels
        for _ in range(4):
            layers += [nn.Conv2d(c_in, filters, kernel_size=4, stride=2, padding=1), nn.ReLU()]
            c_in = filters
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Linear(filters * (image_size // 16) ** 2 + latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2)
        )
        self.image_size, self.channels, self.latent_dim = image_size, channels, latent_dim
        self.max_translation = max_translation

    def pre_activation(self, x: torch.Tensor, z_star: torch.Tensor) -> torch.Tensor:
        """The output before the tanh: (B, 2); ``forward`` is ``max_translation * tanh`` of it."""
        return self.fc(torch.cat([self.convs(x).flatten(1), z_star], dim=1))

    def squash(self, pre: torch.Tensor) -> torch.Tensor:
        """Translations from pre-activations: ``max_translation * tanh(pre)``."""
        return self.max_translation * torch.tanh(pre)

    def forward(self, x: torch.Tensor, z_star: torch.Tensor) -> torch.Tensor:
        return self.squash(self.pre_activation(x, z_star))


# ------------------------------------------------------------------------------------ the loss
def frozen_encoder_forward(encoder: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``encoder(x)`` with detached parameters: gradients flow to x only, never into the encoder.

    Nothing is written to the encoder's ``.grad`` fields, so the policy step cannot disturb the
    learner's own optimisation (and works while another thread or step owns the encoder).
    """
    params = {k: v.detach() for k, v in encoder.named_parameters()}
    params.update(dict(encoder.named_buffers()))
    return torch.func.functional_call(encoder, params, (x,))


@torch.no_grad()
def translation_sensitivity(encoder: nn.Module, x: torch.Tensor, max_translation: float) -> torch.Tensor:
    """How much each latent's mean moves under translation: (N,) the sd of mu across the 3x3 lattice
    ``{-m, 0, m}^2`` (m = ``max_translation``) of translations of each image of x (B, C, S, S), averaged
    over the images. Latents of identity or style barely move; position latents do."""
    axis = (-max_translation, 0.0, max_translation)
    ts = torch.tensor([(tx, ty) for tx in axis for ty in axis], dtype=x.dtype, device=x.device)
    shifted = translate(x.repeat_interleave(len(ts), 0), ts.repeat(x.shape[0], 1))
    mu = encoder(shifted)[0].reshape(x.shape[0], len(ts), -1)
    return mu.std(1).mean(0)


def check_targets(z_star: Any, batch: int, latent_dim: int) -> torch.Tensor:
    """Validate targets z* and return them as a float tensor (batch, latent_dim); ValueError otherwise."""
    if not isinstance(z_star, torch.Tensor):
        z_star = torch.as_tensor(np.asarray(z_star, dtype=np.float32))
    if not z_star.is_floating_point():
        raise ValueError(f"z_star must be a float tensor, got dtype {z_star.dtype}")
    if tuple(z_star.shape) != (batch, latent_dim):
        raise ValueError(
            f"z_star must have shape (batch={batch}, latent_dim={latent_dim}), got {tuple(z_star.shape)}"
        )
    if not bool(torch.isfinite(z_star).all()):
        raise ValueError("z_star contains NaN or inf; targets must be finite samples of p(z)")
    return z_star


def agent_loss(
    encoder: nn.Module,
    x_star: torch.Tensor,
    z_star: torch.Tensor,
    latent_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_agent of A.4: mean over the batch of ||z* - z||^2, z ~ q(z | x*) by reparameterisation.

    Args:
        encoder: the VASE encoder, x -> (mu, logvar, ...); run with frozen parameters.
        x_star: (B, C, H, W) translated images g(z*, x) . x (carrying the graph back to the policy).
        z_star: (B, N) targets.
        latent_mask: optional (N,) bool; only these latents enter the squared distance.
        generator: noise generator for z = mu + sigma * eps.
    Returns:
        scalar loss.
    """
    mu, logvar = frozen_encoder_forward(encoder, x_star)[:2]
    eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
    sq = (z_star - (mu + (0.5 * logvar).exp() * eps)) ** 2
    if latent_mask is not None:
        sq = sq * latent_mask.to(sq.device, sq.dtype)
    return sq.sum(1).mean()


# ------------------------------------------------------------------------------------ explorer
class LearnerLike(Protocol):
    """What the explorer reads from a :class:`vase_rl.core.learner.ContinualLearner`."""

    model: Any  # .encoder: x (B, C, H, W) -> (mu, logvar, hidden)
    config: Any  # .model.image_size, .model.channels, .model.latent_dim
    device: torch.device
    memory: Any  # .used (max_envs, N) bool and .n_seen, for target_latents="used"

    def preprocess(self, x: Any, batched: bool = True) -> torch.Tensor: ...


class ImaginationExplorer:
    """Trains the A.4 policy next to a learner and imagines x* = g(z*, x) . x for its training data.

    Each hook call (``explorer(step, dataset, x)``) does one Adam step of the policy on the batch and,
    from ``start_step`` on, replaces the first ``round(fraction * B)`` images of the batch (an i.i.d.
    batch, so which rows does not matter) with imagined images for fresh targets z* ~ N(0, I).
    With ``enabled=False`` the hook returns the batch untouched and trains nothing.

    Args:
        learner: a ContinualLearner (see :class:`LearnerLike` for the attributes used).
        config: :class:`ImaginationConfig`.
    """

    def __init__(self, learner: LearnerLike, config: ImaginationConfig | None = None) -> None:
        self.learner = learner
        self.config = config or ImaginationConfig(enabled=True)
        mc = learner.config.model
        self.device = torch.device(learner.device)
        self.latent_dim = int(mc.latent_dim)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.policy = TranslationPolicy(
                mc.image_size,
                mc.channels,
                mc.latent_dim,
                self.config.hidden,
                self.config.filters,
                self.config.max_translation,
            ).to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.config.lr)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.config.seed)
        self.policy_steps = 0
        self.imagined = 0
        self.last: dict[str, float] = {}

    # -------------------------------------------------------------------------------- pieces
    def sample_targets(self, n: int) -> torch.Tensor:
        """z* ~ p(z) = N(0, I): (n, N) on the learner's device."""
        return torch.randn(n, self.latent_dim, device=self.device, generator=self.generator)

    def target_mask(self, x: torch.Tensor | None = None) -> torch.Tensor | None:
        """(N,) bool latents entering L_agent, or None for all (``target_latents="all"``, or no latent
        translation-sensitive yet). x (B, C, S, S): the batch, for ``"translation-sensitive"``."""
        cfg = self.config
        if cfg.target_latents == "all":
            return None
        if cfg.target_latents == "translation-sensitive":
            if x is None:
                raise ValueError('target_latents="translation-sensitive" needs the batch x')
            sd = translation_sensitivity(
                self.learner.model.encoder, x[: cfg.sensitivity_frames], cfg.max_translation
            )
            mask = sd > cfg.sensitive_sd
            return mask if bool(mask.any()) else None
        mem = self.learner.memory
        if mem.n_seen == 0:
            return None
        return mem.used[: mem.n_seen].any(0).to(self.device)

    def _targets(self, x: torch.Tensor, z_star: Any | None) -> torch.Tensor:
        if z_star is None:
            return self.sample_targets(x.shape[0])
        return check_targets(z_star, x.shape[0], self.latent_dim).to(self.device, torch.float32)

    def random_translation(self, n: int) -> torch.Tensor:
        """(n, 2) translations uniform in ``[-max_translation, max_translation]^2`` (the z*-blind control of
        ``policy="random"``), drawn from the explorer's generator."""
        u = torch.rand(n, 2, device=self.device, generator=self.generator)
        return (u * 2 - 1) * self.config.max_translation

    def act(self, x: torch.Tensor, z_star: Any | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy action for images x (B, C, S, S): (t (B, 2) with graph, z* (B, N) used)."""
        z = self._targets(x, z_star)
        return self.policy(x, z), z

    @torch.no_grad()
    def imagine(self, x: Any, z_star: Any | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Imagined images in the graph (STN): x* (B, C, S, S), translations t (B, 2), targets z* (B, N).

        x: images accepted by ``learner.preprocess`` (uint8 or float, any layout/size).
        """
        x = self.learner.preprocess(x)
        t, z = self.act(x, z_star)
        return translate(x, t), t, z

    def policy_step(self, x: Any, z_star: Any | None = None) -> dict[str, float]:
        """One Adam step of the policy on L_agent for images x (and targets z*, default z* ~ p(z)).

        Returns ``{"agent_loss", "translation_abs", "target_latents", "saturated"}``: L_agent (without the
        ``saturation_penalty`` term), mean |t|, the latents in L_agent, and the fraction of pre-tanh outputs
        beyond ``saturation_level``. Only the policy's weights change.
        """
        cfg = self.config
        x = self.learner.preprocess(x)
        self.policy.train()
        z = self._targets(x, z_star)
        pre = self.policy.pre_activation(x, z)
        t = self.policy.squash(pre)
        mask = self.target_mask(x)
        loss = agent_loss(self.learner.model.encoder, translate(x, t), z, mask, self.generator)
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(f"non-finite policy loss at policy step {self.policy_steps}")
        total = loss + cfg.saturation_penalty * pre.pow(2).mean() if cfg.saturation_penalty > 0 else loss
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        self.policy_steps += 1
        self.last = {
            "agent_loss": float(loss.detach()),
            "translation_abs": float(t.detach().abs().mean()),
            "target_latents": float(self.latent_dim if mask is None else mask.sum()),
            "saturated": float((pre.detach().abs() > cfg.saturation_level).float().mean()),
        }
        return self.last

    # ---------------------------------------------------------------------------------- hook
    def n_imagined(self, batch: int) -> int:
        """How many of a batch of ``batch`` images are replaced by imagined ones."""
        return round(self.config.fraction * batch)

    def __call__(self, step: int, dataset: str, x: torch.Tensor) -> torch.Tensor:
        """Batch hook (``vase_rl.runs.run_format.BatchHook``): x (B, C, S, S) float -> the batch to train on."""
        if not self.config.enabled:
            return x
        k = self.n_imagined(x.shape[0])
        imagining = step >= self.config.start_step and k > 0
        if self.config.policy == "learned":
            self.policy_step(x)
            if not imagining:
                return x
            x_star, _, _ = self.imagine(x[:k])
        else:
            if not imagining:
                return x
            t = self.random_translation(k)
            self.last = {"agent_loss": float("nan"), "translation_abs": float(t.abs().mean())}
            x_star = translate(x[:k], t)
        self.imagined += k
        return torch.cat([x_star.to(x.dtype), x[k:]], dim=0)

    def as_batch_hook(self) -> BatchHook:
        """This explorer as the ``batch_hook`` of :class:`vase_rl.runs.training.SequenceTrainer`."""
        return self

    # ------------------------------------------------------------------------------ the world
    def env_action(
        self, env: Any, frame: Any, z_star: Any | None = None
    ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """The policy's move in the world for one frame, without stepping the env (no gradient).

        Args:
            env: a ``SpriteCanvas`` (possibly wrapped) made with ``action_type="continuous"``.
            frame: its current image (C, C, 1) uint8 (resized to the model's input if needed); behind a
                :class:`~vase_rl.rl.wrapper.VASEObservation` it is ``info["frame"]`` (``frame_in_info=True``).
            z_star: optional target (N,) or (1, N); default z* ~ p(z) (drawn from the explorer's generator).
        Returns:
            (the env action (2,) float32 of :func:`translation_to_env_action`, the translation t (2,)
            float64, the target z* (1, N) used). With ``policy="random"`` t is uniform in
            ``[-max_translation, max_translation]^2``, blind to z* and to the frame (the control).
        """
        x = self.learner.preprocess(frame, batched=False)
        z = (
            None
            if z_star is None
            else check_targets(
                torch.as_tensor(np.asarray(z_star, dtype=np.float32)).reshape(1, -1), 1, self.latent_dim
            )
        )
        with torch.no_grad():
            if self.config.policy == "random":  # the z*-blind control: no policy pass
                z_used, t = self._targets(x, z), self.random_translation(1)
            else:
                t, z_used = self.act(x, z)
        t_np = t[0].cpu().numpy().astype(np.float64)
        return translation_to_env_action(env, t_np), t_np, z_used

    def act_in_env(self, env: Any, obs: Any, z_star: Any | None = None) -> tuple[Any, ...]:
        """Act in the world: step a continuous-action ``SpriteCanvas`` with the policy's translation.

        The env re-renders the moved sprite exactly (no interpolation) and clips its position at the
        canvas edge, where the STN would crop it. See :func:`translation_to_env_action`. To act through a
        ``VASEObservation``-wrapped env (whose observation is the latent) and train the policy on the way,
        use :func:`vase_rl.agents.explore.explore`.

        Args:
            env: a ``SpriteCanvas`` (possibly wrapped) made with ``action_type="continuous"``.
            obs: its current image (C, C, 1) uint8 (resized to the model's input if needed).
            z_star: optional (N,) target; default z* ~ p(z).
        Returns:
            ``env.step(action)``'s 5-tuple (obs, reward, terminated, truncated, info).
        """
        action, _, _ = self.env_action(env, obs, z_star)
        return env.step(action)

    # ------------------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Policy, optimiser, RNG and counters (checkpoint next to the learner's for resume)."""
        return {
            "config": dataclasses.asdict(self.config),
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "policy_steps": self.policy_steps,
            "imagined": self.imagined,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.policy_steps, self.imagined = int(state["policy_steps"]), int(state["imagined"])


def make_imagination_hook(learner: LearnerLike, config: ImaginationConfig) -> BatchHook:
    """The training-loop switch: a batch hook that imagines when ``config.enabled``, else a no-op.

    Pass the result as ``SequenceTrainer(..., batch_hook=...)``; the returned object is an
    :class:`ImaginationExplorer` (use ``.state_dict()`` to checkpoint its policy).
    """
    return ImaginationExplorer(learner, config).as_batch_hook()
