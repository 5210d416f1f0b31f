"""Dreaming feedback (section 3.5, eq. 7 and the weighted form of eq. 9)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch

from vase_rl.core.config import DreamConfig, ModelConfig
from vase_rl.core.losses import decoder_proximity, environment_classifier_loss, wasserstein_encoder_proximity
from vase_rl.core.model import VASEModel


class Snapshot:
    """The frozen copy (phi', theta') of the model that dreams; when it is synced: :func:`anchor_sync_due`."""

    def __init__(self, model: VASEModel) -> None:
        self.model = copy.deepcopy(model).requires_grad_(False).eval()
        self.settled: dict[str, torch.Tensor] | None = None
        """``DreamConfig.sync_source="settled"``: the model's state as it was before eq. 6 counted the
        first failure of the current run of failures (None while none is counted); a switch syncs from it."""

    def sync(self, model: VASEModel) -> None:
        """phi' <- phi, theta' <- theta."""
        self.model.load_state_dict(model.state_dict())

    def sync_on_switch(self, model: VASEModel) -> None:
        """phi', theta' <- the settled copy when one is held (:meth:`settle`), else the model as it is now."""
        self.model.load_state_dict(self.settled if self.settled is not None else model.state_dict())
        self.settled = None

    def settle(self, model: VASEModel) -> None:
        """Keep a copy of ``model`` as it is now: the environment as it was before a look that may be new
        (eq. 6 has just counted a failure after none). While failures are counted the learner still trains
        on the batches that pass eq. 6, which can be the new look's; the switch that follows anchors the past
        environments to this copy instead of to a model that has taken those updates."""
        self.settled = {k: v.detach().clone() for k, v in model.state_dict().items()}


def anchor_sync_due(
    cfg: DreamConfig, step: int, switched: bool, per_environment: bool = True, visit_steps: int | None = None
) -> bool:
    """Whether the snapshot is synced at this point of a training step (:attr:`DreamConfig.anchor`).

    Called twice per step: once with ``switched`` (the inferred environment changed, before the batch is
    trained on; ``step`` is then ignored) and once after the update with ``switched=False`` and the
    learner's new ``step``. "every-tau" (the paper): every tau steps; "on-switch": at every switch after
    which the environment left had trained ``visit_steps >= cfg.sync_min_visit`` steps since it was entered
    (None: every switch), and every tau steps only without environment inference (``per_environment=False``:
    no switch exists).

    >>> from vase_rl.core.config import DreamConfig
    >>> paper, anchored = DreamConfig(tau=250), DreamConfig(tau=250, anchor="on-switch")
    >>> anchor_sync_due(paper, 500, False), anchor_sync_due(paper, 0, True)
    (True, False)
    >>> anchor_sync_due(anchored, 500, False), anchor_sync_due(anchored, 0, True)
    (False, True)
    >>> anchor_sync_due(anchored, 500, False, per_environment=False)
    True
    >>> patient = DreamConfig(anchor="on-switch", sync_min_visit=100)
    >>> anchor_sync_due(patient, 0, True, visit_steps=10), anchor_sync_due(patient, 0, True, visit_steps=100)
    (False, True)
    """
    if switched:
        return cfg.anchor == "on-switch" and (visit_steps is None or visit_steps >= cfg.sync_min_visit)
    every_tau = cfg.anchor == "every-tau" or not per_environment
    return every_tau and step % cfg.tau == 0


@dataclass
class Dream:
    """A batch hallucinated by the snapshot.

    z: (B, N) from the prior p(z); env: (B,) int64 past environments s'; output_old: (B, C, H, W)
    snapshot decoder output (logits or means) p_theta'(x|z,s'); x: (B, C, H, W) in [0,1], its mean x'.
    """

    z: torch.Tensor
    env: torch.Tensor
    output_old: torch.Tensor
    x: torch.Tensor


@torch.no_grad()
def sample_dream(
    snapshot: Snapshot, envs: list[int], batch_size: int, latent_dim: int, generator: torch.Generator
) -> Dream:
    """Monte-Carlo sample of eq. 7's expectation: z ~ N(0, I), s' uniform over ``envs``, x' from the snapshot.

    x' is the mean of the snapshot decoder's distribution (Bernoulli probabilities / Gaussian means).
    """
    device = next(snapshot.model.parameters()).device
    z = torch.randn(batch_size, latent_dim, device=device, generator=generator)
    choice = torch.randint(len(envs), (batch_size,), device=device, generator=generator)
    env = torch.as_tensor(envs, device=device, dtype=torch.long)[choice]
    output_old = snapshot.model.decoder(z, env)
    x = (
        torch.sigmoid(output_old)
        if snapshot.model.cfg.likelihood == "bernoulli"
        else output_old.clamp(0.0, 1.0)
    )
    return Dream(z=z, env=env, output_old=output_old, x=x)


@dataclass
class Reading:
    """Where the shared-reading term (:func:`shared_reading_loss`) applies: the current environment ``env``,
    ``used`` (max_environments, N) bool, every environment's used latents u^s (A.2), and ``latents``
    (:attr:`DreamConfig.shared_reading_latents`): "both" (u^s and u^s') or "past" (u^s'). ``z`` (B, N) and
    ``past`` (B,) int64, when given (``DreamConfig.shared_reading_source="posterior"``): the codes to render
    (the current batch's posterior means) and the past environment each is rendered in; else the dream's
    z ~ p(z) and s'."""

    env: int
    used: torch.Tensor
    latents: str = "both"
    z: torch.Tensor | None = None
    past: torch.Tensor | None = None


def shared_reading_loss(
    model: VASEModel,
    snapshot: Snapshot,
    z: torch.Tensor,
    past: torch.Tensor,
    reading: Reading,
    target: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Shared reading (:attr:`DreamConfig.shared_reading`; not in the paper): per code (B,),
    ``W[q_phi(z | E[p_theta(x|z, s)]), q_phi'(z | E[p_theta'(x|z, s')])]`` over the latents used by both
    the current environment s and the past environment s' (u^s and u^s', A.2; or u^s' alone:
    ``reading.latents``), for codes z (B, N) and past environments ``past`` (B,).

    The same z rendered in the current environment's look (by the current decoder, without gradient) is to
    be read by the current encoder as the snapshot reads its rendering in the past look (``target``: the
    snapshot's (mu, logvar) of that rendering, (B, N) each, when already computed, as for a dream's x').
    Eq. 7's encoder term anchors how the past looks are read; this one makes a factor the decoder shares
    between s and s' read the same way in s. It trains the encoder only; latents that one of the two
    environments does not use are left free.
    """
    with torch.no_grad():
        now = torch.full_like(past, reading.env)
        x_now = model.encoder.view(model.decoder.mean(z, now), now)
        if target is None:
            x_old = model.encoder.view(snapshot.model.decoder.mean(z, past), past)
            mu_old, logvar_old, _ = snapshot.model.encoder(x_old)
        else:
            mu_old, logvar_old = target
        used = reading.used.to(past.device)
        shared = used[past] if reading.latents == "past" else used[reading.env][None, :] & used[past]
        shared = shared.to(mu_old.dtype)  # (B, N)
    mu, logvar, _ = model.encoder(x_now)
    return wasserstein_encoder_proximity(mu, logvar, mu_old, logvar_old, shared)


def dreaming_loss(
    model: VASEModel,
    snapshot: Snapshot,
    dream: Dream,
    cfg: DreamConfig,
    model_cfg: ModelConfig,
    reading: Reading | None = None,
) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
    """The "dreaming" feedback of eq. 9 on one dream batch.

    ``alpha * W[q_phi(z|x'), q_phi'(z|x')] + beta * KL[p_theta'(x|z,s') || p_theta(x|z,s')]``,
    each averaged over the dream batch (both encoders read x' in the view of its environment s',
    ``ModelConfig.env_input_view``) (encoder term: Wasserstein over latents; decoder term summed over
    pixels; see :mod:`vase_rl.core.losses`). With ``cfg.decoder_proximity=False`` (SD-[41]) only the encoder
    term is used. With ``cfg.shared_reading > 0`` and a ``reading``, plus that weight times
    :func:`shared_reading_loss` (not in the paper).

    Returns (loss, scalars, hidden) where ``hidden`` (B, hidden_dim) is the current encoder's last hidden
    layer on x', reused by the environment classifier's loss on dreamed data (A.1).
    """
    x_view = model.encoder.view(dream.x, dream.env)  # ModelConfig.env_input_view (x' itself by default)
    mu, logvar, hidden = model.encoder(x_view)
    with torch.no_grad():
        mu_old, logvar_old, _ = snapshot.model.encoder(x_view)
        if x_view is not dream.x:  # the classifier reads the raw dreams
            _, _, hidden = model.encoder(dream.x)
    enc = wasserstein_encoder_proximity(mu, logvar, mu_old, logvar_old).mean()
    loss = cfg.alpha * enc
    scalars = {"dream/encoder_w": float(enc.detach())}
    if cfg.decoder_proximity:
        out = model.decoder(dream.z, dream.env)
        dec = decoder_proximity(out, dream.output_old, model_cfg.likelihood, model_cfg.gaussian_std).mean()
        loss = loss + cfg.beta * dec
        scalars["dream/decoder_kl"] = float(dec.detach())
    if cfg.shared_reading > 0 and reading is not None:
        if reading.z is None or reading.past is None:  # the dream's prior codes, rendered in s'
            codes = shared_reading_loss(model, snapshot, dream.z, dream.env, reading, (mu_old, logvar_old))
        else:
            codes = shared_reading_loss(model, snapshot, reading.z, reading.past, reading)
        shared = codes.mean()
        loss = loss + cfg.shared_reading * shared
        scalars["dream/shared_reading_w"] = float(shared.detach())
    return loss, scalars, hidden


def past_environments(env: int, n_seen: int, step: int, per_environment: bool = True) -> list[int]:
    """The environments s' a step may dream of (eq. 7): every allocated one except the current ``env``.

    With the S ablation off (``per_environment=False``) there is one environment, 0, dreamed of from the
    second step on (the snapshot of the same environment).
    """
    if not per_environment:
        return [0] if step > 0 else []
    return [e for e in range(n_seen) if e != env]


@dataclass
class DreamTerms:
    """What one step's dream batch adds to the loss.

    loss: eq. 9's feedback ``alpha * W + beta * KL`` (None when dreaming is off); classifier_loss: the
    environment classifier's loss on the dreams, target s' (A.1; None when the classifier is off);
    scalars: ``dream/encoder_w``, ``dream/decoder_kl``, ``dream/loss`` for the log.
    """

    loss: torch.Tensor | None = None
    classifier_loss: torch.Tensor | None = None
    scalars: dict[str, float] = field(default_factory=dict)


def dream_terms(
    model: VASEModel,
    snapshot: Snapshot,
    envs: list[int],
    cfg: DreamConfig,
    model_cfg: ModelConfig,
    generator: torch.Generator,
    n_seen: int,
    feedback: bool = True,
    classify: bool = True,
    reading: Reading | None = None,
) -> DreamTerms:
    """Sample one dream batch of ``envs`` (:func:`sample_dream`) and compute what it adds to the step's loss.

    feedback: eq. 9's dreaming term (ablation D); classify: the classifier term on dreamed data (ablation S;
    without feedback the encoder's hidden layer is computed without gradient). Nothing is sampled when
    ``envs`` is empty or both are off. n_seen: the classifier's number of allocated environments; reading:
    where the shared-reading term applies (:func:`dreaming_loss`).
    """
    if not envs or not (feedback or classify):
        return DreamTerms()
    dream = sample_dream(snapshot, envs, cfg.batch_size, model_cfg.latent_dim, generator)
    out = DreamTerms()
    if feedback:
        out.loss, out.scalars, hidden = dreaming_loss(model, snapshot, dream, cfg, model_cfg, reading)
        out.scalars["dream/loss"] = float(out.loss.detach())
    else:
        with torch.no_grad():
            _, _, hidden = model.encoder(dream.x)
    if classify:
        out.classifier_loss = environment_classifier_loss(model.classifier(hidden, n_seen), dream.env)
    return out
