"""ContinualLearner: one VASE training step (eq. 2-9, Algorithm 1) composed of its parts; encode, save, load.

The parts, each in its own module: environment inference, Algorithm 1 (:mod:`vase_rl.core.inference`); the
atypicality and the applied mask, eq. 2/4/5 (:mod:`vase_rl.core.latents`); the objective, eq. 3 and the
entangled baseline (:func:`vase_rl.core.losses.mdl_loss`); dreaming, eq. 7/9 (:mod:`vase_rl.core.dreaming`); and the
collectives strategy that makes a step data-parallel (:mod:`vase_rl.core.collectives`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

from vase_rl.core.checkpoint import Checkpointable
from vase_rl.core.collectives import Collectives, LocalCollectives, SharedState
from vase_rl.core.config import VASEConfig
from vase_rl.core.dreaming import Reading, Snapshot, anchor_sync_due, dream_terms, past_environments
from vase_rl.core.inference import Decision, EnvironmentInference, EnvironmentMemory
from vase_rl.core.latents import applied_mask, atypicality, noise_tolerance, used_latents
from vase_rl.core.losses import (
    capacity_schedule,
    colour_rarity_weights,
    environment_classifier_loss,
    gaussian_kl,
    mdl_loss,
    reconstruction_nll,
)
from vase_rl.core.model import VASEModel, read_in_view
from vase_rl.core.preprocess import to_model_input
from vase_rl.core.step_result import StepResult
from vase_rl.core.young_decoder import restore_shared, young_hold, zero_shared_grads

NAN = float("nan")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
    return dev


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss; the update was not applied."""


def check_training_batch(x: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) unchanged if B >= 2 (atypicality fits a Gaussian to the batch), else ValueError."""
    if x.shape[0] < 2:
        raise ValueError(
            f"train_step needs a batch of at least 2 images (atypicality fits a Gaussian to the batch), "
            f"got {x.shape[0]}"
        )
    return x


def optimizer_step(
    learner: ContinualLearner,
    loss: torch.Tensor,
    nll: torch.Tensor,
    kl: torch.Tensor,
    edit_gradients: Callable[[], None] | None = None,
) -> None:
    """One update of ``learner``'s parameters on ``loss`` (gradients averaged over processes by its
    collectives, then ``edit_gradients()`` if given); a non-finite loss raises :class:`NonFiniteLossError`
    before anything changes. nll, kl: (B,) per-image terms, for the message."""
    if not bool(torch.isfinite(loss)):
        raise NonFiniteLossError(
            f"non-finite loss at step {learner.step} (recon={float(nll.detach().mean()):.4g}, "
            f"kl={float(kl.detach().mean()):.4g}); the update was not applied -- the last saved checkpoint "
            "is intact. Lower the learning rate or gamma, or check the input data."
        )
    learner.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    learner.collectives.average_gradients(learner.model.parameters())
    if edit_gradients is not None:
        edit_gradients()
    bound_update(learner)
    learner.optimizer.step()


def bound_update(learner: ContinualLearner) -> None:
    """:attr:`VASEConfig.grad_clip_ratio`: clip the (averaged) gradients' total norm to ``ratio`` times the
    running mean of the past steps' clipped norms (``learner.grad_norm_mean``, 0 until the first step);
    nothing happens when the ratio is 0 (the paper)."""
    cfg = learner.config
    if cfg.grad_clip_ratio == 0.0:
        return
    grads = [p.grad for p in learner.model.parameters() if p.grad is not None]
    norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
    mean = learner.grad_norm_mean
    bound = cfg.grad_clip_ratio * mean if mean > 0.0 else norm
    if norm > bound:
        for g in grads:
            g.mul_(bound / norm)
    kept = min(norm, bound)
    learner.grad_norm_mean = (
        kept if mean == 0.0 else cfg.grad_clip_decay * mean + (1 - cfg.grad_clip_decay) * kept
    )


def validate_learner_state(config: VASEConfig, state: dict[str, Any]) -> None:
    """Dry-run loading a :class:`~vase_rl.core.learner.ContinualLearner` ``state`` into fresh objects built from
    ``config``; raises ValueError/KeyError/RuntimeError on a mismatch and changes nothing."""
    mc = config.model
    trial = VASEModel(mc)
    trial.load_state_dict(state["model"])
    trial.load_state_dict(state["snapshot"])
    if state.get("settled") is not None:
        trial.load_state_dict(state["settled"])
    params = list(trial.parameters())
    opt = state["optimizer"]
    if len(opt["param_groups"]) != 1 or len(opt["param_groups"][0]["params"]) != len(params):
        raise ValueError("optimizer state does not match the model's parameters")
    for i, p in enumerate(params):
        for key in ("exp_avg", "exp_avg_sq"):
            t = opt["state"].get(i, {}).get(key)
            if t is not None and t.shape != p.shape:
                raise ValueError(
                    f"optimizer state '{key}' of parameter {i} has shape {tuple(t.shape)}, "
                    f"expected {tuple(p.shape)}"
                )
    EnvironmentMemory.empty(mc.max_environments, mc.latent_dim).load_state_dict(state["memory"])
    for key in ("step", "current_env", "fail_streak", "last_allocation", "generator"):
        if key not in state:
            raise KeyError(f"learner state lacks '{key}'")


class ContinualLearner(Checkpointable):
    """VASE trained continually from batches of images, with no task labels.

    ``train_step(x)`` infers the environment of the batch (eq. 6), masks atypical latents (eq. 4-5),
    minimises the MDL objective (eq. 3) plus the dreaming feedback (eq. 7/9) and the environment
    classifier loss (A.1). ``encode(x)`` returns the latent means for consumers (RL agents, probes).
    ``collectives`` makes the step data-parallel (:class:`vase_rl.runs.distributed.DistributedLearner`);
    ``save``/``load``/``load_into``: checkpoints (:class:`~vase_rl.core.checkpoint.Checkpointable`).

    Example::

        >>> from vase_rl.core.config import get_preset
        >>> learner = ContinualLearner(get_preset("cpu"), device="cpu")
        >>> import torch; out = learner.train_step(torch.rand(8, 1, 32, 32))
        >>> out.env, out.reason.value, learner.encode(torch.rand(2, 1, 32, 32)).shape
        (0, 'first', torch.Size([2, 24]))
    """

    def __init__(
        self, config: VASEConfig, device: str | torch.device = "auto", collectives: Collectives | None = None
    ) -> None:
        self.config = config
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            torch.set_flush_denormal(True)  # denormals slowed CPU steps ~18x after a few dozen steps
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.model = VASEModel(config.model).to(self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.snapshot = Snapshot(self.model)
        memory = EnvironmentMemory.empty(config.model.max_environments, config.model.latent_dim)
        self.inference = EnvironmentInference(config.inference, config.mask, config.ablation, memory)
        self.collectives: Collectives = collectives or LocalCollectives()
        self.shared = SharedState(self.inference, self.generator)
        """What a leader-only part of a step changes (collectives): inference state and generator."""
        self.step = 0
        self.frozen = False
        self.grad_norm_mean = 0.0
        """Running mean of the clipped gradient norms (:func:`bound_update`; 0 before the first update)."""
        self.visit_steps = 0
        """Steps trained in the current environment since it was entered (``DreamConfig.sync_min_visit``)."""

    @property
    def memory(self) -> EnvironmentMemory:
        """What Algorithm 1 remembers of each environment (held by :attr:`inference`)."""
        return self.inference.memory

    @memory.setter
    def memory(self, memory: EnvironmentMemory) -> None:
        self.inference.memory = memory

    @property
    def current_env(self) -> int:
        """The environment of the last batch (-1 before the first); set it through :attr:`inference`."""
        return self.inference.current_env

    # ------------------------------------------------------------------ consumers
    def preprocess(self, x: Any, batched: bool = True) -> torch.Tensor:
        """Validate and convert images to (B, C, H, W) float on the learner's device (see preprocess)."""
        mc = self.config.model
        return to_model_input(x, mc.image_size, mc.channels, self.device, batched=batched)

    @torch.no_grad()
    def encode(self, x: Any, return_logvar: bool = False, env: int | None = None) -> Any:
        """Latent means mu(x) (B, N) float32 (and log-variances if ``return_logvar``). Never trains.

        With ``ModelConfig.env_input_view="pick"`` each frame is read in the view of environment ``env``, or,
        when None, of the environment the classifier files it under (:func:`read_in_view`); otherwise the
        frames are read as they are and ``env`` changes nothing."""
        x, encoder = self.preprocess(x), self.model.encoder
        if encoder.input_sign is None:
            mu, logvar, _ = encoder(x)
        elif env is not None:
            mu, logvar, _ = encoder(x, torch.full((x.shape[0],), env, device=self.device))
        else:
            mu, logvar, _ = read_in_view(encoder, self.model.classifier, x, self.memory.n_seen)
        return (mu, logvar) if return_logvar else mu

    @torch.no_grad()
    def decode(self, z: torch.Tensor, env: int | torch.Tensor) -> torch.Tensor:
        """Mean image of p(x|z, s) (B, C, H, W) in [0, 1] for latents z (B, N) and environment(s) ``env``."""
        z = z.to(self.device)
        envs = torch.as_tensor(env, device=self.device, dtype=torch.long).expand(z.shape[0])
        return self.model.decoder.mean(z, envs)

    @torch.no_grad()
    def environment_probabilities(self, x: Any) -> torch.Tensor:
        """q(s|x) of the auxiliary classifier averaged over the batch: (max_environments,)."""
        _, _, hidden = self.model.encoder(self.preprocess(x))
        return self._classify(hidden)

    def freeze(self) -> None:
        """Stop learning: ``train_step`` raises until ``unfreeze()``."""
        self.frozen = True

    def unfreeze(self) -> None:
        self.frozen = False

    @property
    def capacity(self) -> float:
        lc = self.config.loss
        return capacity_schedule(self.step, lc.c_max, lc.delta_c, lc.c_start)

    # ------------------------------------------------------------------ pieces of a step
    def sample_z(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z ~ q(z|x) = N(mu, exp(logvar)) by reparameterisation, mu and logvar (B, N); the learner's RNG."""
        return mu + (0.5 * logvar).exp() * self.collectives.randn(mu, self.generator)

    def masked(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """z^s of eq. 2: active latents (mask (N,) True) keep z (B, N), masked ones are drawn from N(0, I)."""
        m = mask.to(z.device).to(z.dtype)
        return m * z + (1 - m) * self.collectives.randn(z, self.generator)

    def reconstruction_nll(self, z: torch.Tensor, env: int, x: torch.Tensor) -> torch.Tensor:
        """-log p(x|z, s=env) per image (B,) for latents z (B, N) and images x (B, C, H, W)."""
        return self._reconstruction_terms(z, env, x)[0]

    def _reconstruction_terms(
        self, z: torch.Tensor, env: int, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(-log p(x|z, s=env), the training loss's reconstruction term) per image, one decoder pass: the
        same tensor unless ``LossConfig.rarity_power`` weights the loss's pixels by colour rarity."""
        mc, power = self.config.model, self.config.loss.rarity_power
        envs = torch.full((z.shape[0],), env, device=self.device, dtype=torch.long)
        out = self.model.decoder(z, envs)
        nll = reconstruction_nll(out, x, mc.likelihood, mc.gaussian_std)
        if power == 0:
            return nll, nll
        weight = colour_rarity_weights(x, power)
        return nll, reconstruction_nll(out, x, mc.likelihood, mc.gaussian_std, weight)

    def batch_mask(self, alpha: torch.Tensor, env: int | None) -> torch.Tensor:
        """a(x) of a batch with atypicality alpha (N,): eq. 5 + A.2 hysteresis relative to ``env``'s mask, the
        mask eq. 6 compares (all-active when the A ablation is off)."""
        return self.inference.batch_mask(alpha, env)

    def applied_mask(self, env: int) -> torch.Tensor:
        """The mask a^s applied in eq. 2 for environment ``env`` (N,) bool, True = active; all-active before
        the first environment (``env`` -1). The rules: :func:`vase_rl.core.latents.applied_mask`."""
        mem, ab = self.memory, self.config.ablation
        if env < 0:
            return torch.ones(self.config.model.latent_dim, dtype=torch.bool, device=self.device)
        mask = applied_mask(mem.masks, mem.used, env, mem.n_seen, self.config.mask, ab.mask, ab.infer_env)
        return mask.to(self.device)

    def applied_masks(self) -> torch.Tensor:
        """a^s of every environment slot (max_environments, N) bool (unallocated slots: all active)."""
        return torch.stack([self.applied_mask(e) for e in range(self.memory.max_environments)])

    def update_used(self, x: torch.Tensor, mu: torch.Tensor, env: int) -> None:
        """Refresh u_s of ``env`` by the noise-tolerance test (A.2) on images x (B, C, H, W) with encoder
        means mu (B, N): on the global batch, once for all processes."""
        xg, mg, mc = self.collectives.gather(x), self.collectives.gather(mu), self.config.mask

        def search() -> None:
            mask = self.applied_mask(env)
            sigma = noise_tolerance(
                lambda z: self.reconstruction_nll(self.masked(z, mask), env, xg), mg, mc, self.generator
            )
            self.memory.used[env] = used_latents(sigma, mc.used_threshold).cpu()
            self.model.zero_grad(set_to_none=True)

        self.collectives.on_leader(search, self.shared)

    @torch.no_grad()
    def infer_environment(self, x: Any) -> Decision:
        """The environment eq. 6 / Algorithm 1 would assign to the batch x now, as a query: the inference
        state, the memory and the learner's random generator are left as they were."""
        x, rng = self.preprocess(x), self.generator.get_state()
        try:
            env = self.inference.current_env
            mu, logvar, hidden = self._forward(x, env)
            z = self.sample_z(mu, logvar)
            nll = self.reconstruction_nll(self.masked(z, self.applied_mask(env)), max(env, 0), x)
            alpha = atypicality(self.collectives.gather(z))
            return self._infer(z, hidden, x, alpha, float(nll.mean()), commit=False)
        finally:
            self.generator.set_state(rng)

    # ------------------------------------------------------------------ training
    def train_step(self, x: Any) -> StepResult:
        """One VASE update on a batch of images x (any layout :meth:`preprocess` takes, B >= 2) from the
        (unknown) current environment; returns the step's :class:`~vase_rl.core.step_result.StepResult`."""
        if self.frozen:
            raise RuntimeError("learner is frozen (freeze() was called); call unfreeze() to train")
        cfg, coll = self.config, self.collectives
        x = check_training_batch(self.preprocess(x))
        self.model.train()
        prev = self.inference.current_env
        mu, logvar, hidden = self._forward(x, prev)
        z = self.sample_z(mu, logvar)
        alpha = atypicality(coll.gather(z))  # eq. 4 (on the global batch)
        active = self.applied_mask(prev)
        nll, nll_fit = self._reconstruction_terms(self.masked(z, active), max(prev, 0), x)
        counting = self.inference.fail_streak > 0
        decision = self._infer(z.detach(), hidden, x, alpha, float(nll.detach().mean()))  # eq. 6 / Alg. 1
        env, n_seen = decision.env, self.memory.n_seen
        if decision.allocated and prev >= 0 and cfg.model.new_env_code == "inherit":
            self._inherit_env_code(prev, env)
        if decision.allocated and prev >= 0 and cfg.model.new_env_sign == "pick":
            self._pick_env_sign(prev, env, z.detach(), x)
        self._anchor_at_decision(prev, env, counting)  # eq. 7's anchor
        if env != prev:  # switched or allocated: redo the forward under the inferred environment
            if self._sign(env) != self._sign(prev):  # env_input_view: the encoder reads env's view
                mu, logvar, _ = self._forward(x, env)
                z = self.sample_z(mu, logvar)
                alpha = atypicality(coll.gather(z))  # eq. 4 as env reads the batch
            active = self.applied_mask(env)  # a^s, eq. 2
            nll, nll_fit = self._reconstruction_terms(self.masked(z, active), env, x)
        mask = self.batch_mask(alpha, env)  # a(x), eq. 5 + A.2
        if not decision.trains:  # a pending batch: not trained on until eq. 6 has decided
            self.step += 1
            scalars = coll.mean([NAN, float(nll.detach().mean()), NAN, 0.0, 0.0])
            return self._result(decision, alpha, active, mask, scalars)
        kl = (gaussian_kl(mu, logvar) * active.to(mu.dtype)).sum(1)
        loss, reg = mdl_loss(nll_fit, coll.gather_with_grad(kl), self.capacity, cfg.loss)  # eq. 3
        envs = torch.full((x.shape[0],), env, device=self.device, dtype=torch.long)
        cls_loss = environment_classifier_loss(self.model.classifier(hidden, n_seen), envs)  # A.1
        past = past_environments(env, n_seen, self.step, cfg.ablation.infer_env)
        dream = dream_terms(
            self.model,
            self.snapshot,
            past,
            cfg.dream,
            cfg.model,
            self.generator,
            n_seen,
            cfg.ablation.dream,
            cfg.ablation.infer_env,
            self._reading(env, past, mu) if cfg.ablation.infer_env else None,
        )  # eq. 9, and A.1 on the dreams
        loss = loss if dream.loss is None else loss + dream.loss  # eq. 9
        cls_loss = cls_loss if dream.classifier_loss is None else cls_loss + dream.classifier_loss
        loss = loss + cls_loss if cfg.ablation.infer_env else loss
        young = self._young_decoder_hold(env)
        hold_grads = young is not None and young[1] == 0.0 and cfg.model.young_decoder_hold == "gradients"
        decoder = self.model.decoder
        optimizer_step(self, loss, nll, kl, (lambda: zero_shared_grads(decoder, env)) if hold_grads else None)
        if young is not None:
            held, keep = young
            restore_shared(decoder, held, env, keep=keep)
        scalars = coll.mean([float(t.detach()) for t in (loss, nll.mean(), kl.mean(), reg, cls_loss)])
        self.inference.record(env, mask, scalars[1], alpha)  # a^s and L~_s
        self.visit_steps += 1
        n = int(self.memory.steps[env])  # steps trained in env
        if cfg.ablation.mask and (n == cfg.inference.grace_steps or n % cfg.mask.used_every == 0):
            self.update_used(x, mu.detach(), env)  # u^s, A.2
        self.step += 1
        if anchor_sync_due(cfg.dream, self.step, switched=False, per_environment=cfg.ablation.infer_env):
            self.snapshot.sync(self.model)
        return self._result(decision, alpha, active, mask, scalars, dream.scalars, updated=True)

    def _anchor_at_decision(self, prev: int, env: int, counting: bool) -> None:
        """Dreaming's anchor (eq. 7) around eq. 6's decision on a batch, ``counting``: whether failures were
        counted before it. With ``DreamConfig.sync_source="settled"`` the model is copied when the first
        failure is counted (before the batch is trained on); at a switch whose sync is due
        (:func:`anchor_sync_due`) the snapshot takes that copy when one is held, else the model as the
        environment left it; the copy is dropped once no failure is counted."""
        dc = self.config.dream
        if dc.sync_source == "settled" and not counting and self.inference.fail_streak > 0:
            self.snapshot.settle(self.model)
        if env != prev:
            if prev >= 0 and anchor_sync_due(dc, self.step, switched=True, visit_steps=self.visit_steps):
                self.snapshot.sync_on_switch(self.model)
            self.visit_steps = 0
        if self.inference.fail_streak == 0:
            self.snapshot.settled = None

    def _sign(self, env: int) -> float:
        """Environment ``env``'s input sign (``ModelConfig.env_input_view``; +1 when views are off or env < 0)."""
        signs = self.model.encoder.input_sign
        return 1.0 if signs is None or env < 0 else float(signs[env])

    def _forward(self, x: torch.Tensor, env: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mu, logvar) of x (B, C, H, W) read in environment ``env``'s view, and the encoder's hidden layer
        on the raw frames (what the classifier reads): one pass unless ``env`` views them inverted."""
        if self._sign(env) > 0:
            return self.model.encoder(x)
        mu, logvar, _ = self.model.encoder(x, torch.full((x.shape[0],), env, device=self.device))
        with torch.no_grad():
            _, _, hidden = self.model.encoder(x)
        return mu, logvar, hidden

    def _reading(self, env: int, past: list[int], mu: torch.Tensor) -> Reading:
        """Where :attr:`DreamConfig.shared_reading` applies in this step of environment ``env``: with
        ``shared_reading_source="posterior"`` the batch's posterior means mu (B, N), each to be rendered in a
        past environment of ``past`` drawn uniformly (the learner's generator; only then)."""
        dc = self.config.dream
        reading = Reading(env, self.memory.used, dc.shared_reading_latents)
        if dc.shared_reading > 0 and dc.shared_reading_source == "posterior" and past:
            pick = torch.randint(len(past), (mu.shape[0],), device=self.device, generator=self.generator)
            reading.z = mu.detach()
            reading.past = torch.as_tensor(past, device=self.device, dtype=torch.long)[pick]
        return reading

    @torch.no_grad()
    def _inherit_env_code(self, source: int, target: int) -> None:
        """``ModelConfig.new_env_code == "inherit"``: the decoder's input weights of environment ``target``'s
        one-hot code become a copy of ``source``'s, so p(x|z, target) starts equal to p(x|z, source)."""
        decoder, n = self.model.decoder, self.config.model.latent_dim
        decoder.fc1.weight[:, n + target] = decoder.fc1.weight[:, n + source]
        for per_env in (decoder.env_scale, decoder.env_bias):
            if per_env is not None:
                per_env[target] = per_env[source]

    @torch.no_grad()
    def _pick_env_sign(self, source: int, target: int, z: torch.Tensor, x: torch.Tensor) -> None:
        """``ModelConfig.new_env_sign == "pick"``: environment ``target``'s output affine becomes +1 or -1
        times ``source``'s, whichever reconstructs the allocating batch (z (B, N), x) better."""
        decoder = self.model.decoder
        assert decoder.env_scale is not None and decoder.env_bias is not None  # checked by ModelConfig
        z_s = self.masked(z, self.applied_mask(target))
        best: tuple[float, float] | None = None
        for sign in (1.0, -1.0):
            decoder.env_scale[target] = sign * decoder.env_scale[source]
            decoder.env_bias[target] = sign * decoder.env_bias[source]
            nll = float(self.reconstruction_nll(z_s, target, x).mean())
            if best is None or nll < best[0]:
                best = (nll, sign)
        assert best is not None
        decoder.env_scale[target] = best[1] * decoder.env_scale[source]
        decoder.env_bias[target] = best[1] * decoder.env_bias[source]
        signs = self.model.encoder.input_sign
        if signs is not None:  # env_input_view="pick": the encoder reads target inverted iff it renders so
            signs[target] = best[1] * signs[source]
        if decoder.picked_sign is not None:  # young_decoder_hold_for="flipped": the hold reads the pick
            decoder.picked_sign[target] = best[1]

    def _young_decoder_hold(self, env: int) -> tuple[dict[str, torch.Tensor], float] | None:
        """:func:`~vase_rl.core.young_decoder.young_hold` of environment ``env`` in this step."""
        return young_hold(self.model.decoder, self.config.model, env, int(self.memory.steps[env]))

    def _classify(self, hidden: torch.Tensor) -> torch.Tensor:
        """q(s|x) averaged over the batch (max_environments,) from the encoder's hidden layer (B, hidden)."""
        return torch.softmax(self.model.classifier(hidden, max(self.memory.n_seen, 1)), dim=1).mean(0)

    def _infer(
        self,
        z: torch.Tensor,
        hidden: torch.Tensor,
        x: torch.Tensor,
        alpha: torch.Tensor,
        recon: float,
        commit: bool = True,
    ) -> Decision:
        """Algorithm 1 on the global batch (z (B, N), hidden, x; ``recon`` under the current environment)."""
        coll = self.collectives
        zg, hg, xg, recon_g = coll.gather(z), coll.gather(hidden), coll.gather(x), coll.mean([recon])[0]

        sign, viewed = self._sign(self.inference.current_env), {}

        def codes(env: int) -> torch.Tensor:  # env_input_view: a candidate reads the batch in its own view
            if self._sign(env) == sign:
                return zg
            if env not in viewed:
                with torch.no_grad():
                    viewed[env] = self.sample_z(*self._forward(xg, env)[:2])
            return viewed[env]

        def recon_fn(env: int) -> float:
            return float(
                self.reconstruction_nll(self.masked(codes(env), self.applied_mask(env)), env, xg).mean()
            )

        def alpha_fn(env: int) -> torch.Tensor:
            return alpha if self._sign(env) == sign else atypicality(codes(env))

        def decide() -> Decision:
            with torch.no_grad():
                probs = self._classify(hg)
                return self.inference.decide(self.step, alpha, probs, recon_g, recon_fn, commit, alpha_fn)

        return self.collectives.on_leader(decide, self.shared)

    def _result(
        self,
        d: Decision,
        alpha: torch.Tensor,
        active: torch.Tensor,
        mask: torch.Tensor,
        scalars: list[float],
        dream: dict[str, float] | None = None,
        updated: bool = False,
    ) -> StepResult:
        loss, recon, kl, reg, cls_loss = scalars
        return StepResult(
            loss=loss,
            recon=recon,
            kl=kl,
            C=self.capacity,
            capacity_loss=reg,
            classifier_loss=cls_loss,
            env=d.env,
            new_env=d.allocated,
            reason=d.reason,
            failure=d.failure,
            n_envs=self.memory.n_seen,
            atypicality=tuple(alpha.tolist()),
            mask=tuple(active.int().tolist()),
            raw_mask=tuple(mask.int().tolist()),
            used=tuple(self.memory.used[d.env].int().tolist()),
            step=self.step,
            updated=updated,
            dream=dict(dream or {}),
        )

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        """Everything the learner needs to resume bit-for-bit: parameters, snapshot, optimizer, the inference
        state (``memory``, ``current_env``, ``fail_streak``, ``last_allocation``), ``step`` and the generator."""
        return {
            "model": self.model.state_dict(),
            "snapshot": self.snapshot.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **self.inference.state_dict(),
            "step": self.step,
            "generator": self.generator.get_state(),
            "grad_norm_mean": self.grad_norm_mean,
            "visit_steps": self.visit_steps,
            **({"settled": self.snapshot.settled} if self.snapshot.settled is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; the state is validated first, so a bad one leaves the learner untouched."""
        validate_learner_state(self.config, state)
        self.model.load_state_dict(state["model"])
        self.snapshot.model.load_state_dict(state["snapshot"])
        settled = state.get("settled")  # DreamConfig.sync_source="settled", while failures are counted
        self.snapshot.settled = None if settled is None else {k: v.clone() for k, v in settled.items()}
        # torch's Optimizer.load_state_dict keeps the given moment tensors: copy them, so that training this
        # learner does not change the state it was loaded from (two learners loaded from one state)
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.inference.load_state_dict(state)
        self.step = int(state["step"])
        self.grad_norm_mean = float(state.get("grad_norm_mean", 0.0))  # absent in checkpoints before it
        self.visit_steps = int(state.get("visit_steps", 0))
        generator = state["generator"]
        self.generator.set_state(generator.cpu() if self.device.type == "cpu" else generator)
