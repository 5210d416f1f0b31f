"""ContinualLearner: one VASE training step combining eq. 2-9 and Algorithm 1, plus encode/save/load."""

from __future__ import annotations

import math
from typing import Any

import torch

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import VASEConfig
from .dreaming import Snapshot, dreaming_loss, sample_dream
from .inference import EnvironmentMemory, EnvironmentOverflowError, environment_check
from .latents import atypicality, hysteresis_mask, noise_tolerance, used_latents
from .losses import (
    capacity_loss,
    capacity_schedule,
    environment_classifier_loss,
    gaussian_kl,
    reconstruction_nll,
)
from .model import VASEModel
from .preprocess import to_model_input


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


class ContinualLearner:
    """VASE trained continually from batches of images, with no task labels.

    ``train_step(x)`` infers the environment of the batch (eq. 6), masks atypical latents (eq. 4-5),
    minimises the MDL objective (eq. 3) plus the dreaming feedback (eq. 7/9) and the environment
    classifier loss (A.1). ``encode(x)`` returns the latent means for consumers (RL agents, probes).

    Example::

        >>> from vase_rl.config import get_preset
        >>> learner = ContinualLearner(get_preset("cpu"), device="cpu")
        >>> import torch; out = learner.train_step(torch.rand(8, 1, 32, 32))
        >>> out["env"], learner.encode(torch.rand(2, 1, 32, 32)).shape
        (0, torch.Size([2, 16]))
    """

    def __init__(self, config: VASEConfig, device: str | torch.device = "auto") -> None:
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
        mc = config.model
        self.memory = EnvironmentMemory.empty(mc.max_environments, mc.latent_dim)
        self.step = 0
        self.current_env = -1
        self.fail_streak = 0
        self.last_allocation = -(10**9)
        self.frozen = False

    # ------------------------------------------------------------------ consumers
    def preprocess(self, x: Any, batched: bool = True) -> torch.Tensor:
        """Validate and convert images to (B, C, H, W) float on the learner's device (see preprocess)."""
        mc = self.config.model
        return to_model_input(x, mc.image_size, mc.channels, self.device, batched=batched)

    @torch.no_grad()
    def encode(self, x: Any, return_logvar: bool = False) -> Any:
        """Latent means mu(x) (B, N) float32 (and log-variances if ``return_logvar``). Never trains."""
        mu, logvar, _ = self.model.encoder(self.preprocess(x))
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
        n = max(self.memory.n_seen, 1)
        return torch.softmax(self.model.classifier(hidden, n), dim=1).mean(0)

    def freeze(self) -> None:
        """Stop learning: ``train_step`` raises until ``unfreeze()``."""
        self.frozen = True

    def unfreeze(self) -> None:
        self.frozen = False

    @property
    def capacity(self) -> float:
        lc = self.config.loss
        return capacity_schedule(self.step, lc.c_max, lc.delta_c)

    # ------------------------------------------------------------------ pieces of a step
    def _sample_z(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        eps = torch.randn(mu.shape, device=mu.device, generator=self.generator)
        return mu + (0.5 * logvar).exp() * eps

    def _atypicality(self, z: torch.Tensor) -> torch.Tensor:
        """eq. 4 on this step's batch of samples z (B, N); the data-parallel learner uses the global batch."""
        return atypicality(z)

    def _capacity_loss(self, kl: torch.Tensor, capacity: float) -> torch.Tensor:
        """eq. 3's capacity term on the per-image KL (B,); the data-parallel learner uses the global batch."""
        lc = self.config.loss
        return capacity_loss(kl, capacity, lc.gamma, lc.capacity_mode)

    def _masked(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """z^s of eq. 2: active latents keep the posterior sample, masked ones are drawn from N(0, I)."""
        prior = torch.randn(z.shape, device=z.device, generator=self.generator)
        m = mask.to(z.device).to(z.dtype)
        return m * z + (1 - m) * prior

    def _recon(self, z: torch.Tensor, env: int, x: torch.Tensor) -> torch.Tensor:
        mc = self.config.model
        envs = torch.full((z.shape[0],), env, device=self.device, dtype=torch.long)
        return reconstruction_nll(self.model.decoder(z, envs), x, mc.likelihood, mc.gaussian_std)

    def _batch_mask(self, alpha: torch.Tensor, env: int | None) -> torch.Tensor:
        """Filtered atypicality mask of this batch (eq. 5 + A.2 hysteresis), relative to ``env``'s stored mask.

        This is the mask eq. 6 compares; it is all-active when the A ablation is off.
        """
        mc, mk = self.config.model, self.config.mask
        ones = torch.ones(mc.latent_dim, dtype=torch.bool, device=self.device)
        if not self.config.ablation.mask:
            return ones
        prev = self.memory.masks[env].to(self.device) if env is not None else ones
        return hysteresis_mask(alpha, prev, mk.lambda0, mk.lambda1)

    def applied_mask(self, env: int) -> torch.Tensor:
        """The mask a^s applied in eq. 2 for environment ``env``: (N,) bool, True = active.

        A latent is masked when it is atypical, some other environment uses it, and ``env`` itself
        does not. Latents that no other environment uses are the spare capacity of section 3.3
        ("automatically unmasked"): the paper relies on their atypicality staying ~0; at CPU step counts
        spare latents are only approximately prior-like, drift on new data, and -- once masked, receiving
        no gradient -- would never return, so the learner enforces the intent explicitly. Latents that
        ``env``'s own decoder relies on (A.2's noise-tolerance test) are a shared embedding: masking them
        would replace what the environment reconstructs from by prior noise (measured in the demo: the
        MNIST environment lost both of its latents this way and its reconstructions stopped depending on
        the input). See README, "Masking". With the S ablation off there is one environment, and the
        latents it uses itself are the maskable ones.
        """
        raw = self.memory.masks[env].to(self.device)
        if not self.config.ablation.mask:
            return torch.ones_like(raw)
        # with S off there is a single environment: what it uses itself can be masked (A-only ablation)
        others = [e for e in range(self.memory.n_seen) if e != env] if self.config.ablation.infer_env else [env]
        if not others:
            return torch.ones_like(raw)
        used_elsewhere = self.memory.used[others].any(0).to(self.device)
        applied = raw | ~used_elsewhere
        if self.config.ablation.infer_env:
            applied = applied | self.memory.used[env].to(self.device)
        if not bool(applied.any()):
            # no spare capacity left: an environment with every latent masked could never learn
            # (masked latents get no gradient), so it shares all latents instead
            return torch.ones_like(raw)
        return applied

    def _infer(
        self, z: torch.Tensor, hidden: torch.Tensor, x: torch.Tensor, alpha: torch.Tensor, recon_cur: float
    ) -> tuple[int, bool, str]:
        """Algorithm 1 / eq. 6 for this batch; returns (env, allocated_new, reason)."""
        ic, mem = self.config.inference, self.memory
        if mem.n_seen == 0:
            return self._allocate(alpha, recon_cur), True, "first"
        if not self.config.ablation.infer_env or self.step - self.last_allocation < ic.grace_steps:
            return self.current_env, False, "kept"
        with torch.no_grad():
            probs = torch.softmax(self.model.classifier(hidden, mem.n_seen), dim=1).mean(0)
            s_hat = int(probs.argmax())
            everyone = list(range(mem.n_seen))
            scan = ic.scan_every > 0 and self.step % ic.scan_every == 0
            first = everyone if scan else list(dict.fromkeys([s_hat, self.current_env]))
            reasons: list[str] = []
            recons: dict[int, float] = {}
            passed = self._check_candidates(first, z, x, alpha, recon_cur, recons, reasons)
            if not passed and not scan:  # before allocating, give every known environment its chance
                rest = [e for e in everyone if e not in recons]
                passed = self._check_candidates(rest, z, x, alpha, recon_cur, recons, reasons)
        if passed:
            # Algorithm 1's s-hat is the best-reconstructing environment: among the candidates that pass
            # eq. 6, keep the one with the lowest reconstruction loss.
            self.fail_streak = 0
            best = min(passed, key=lambda c: recons[c])
            return best, False, "matched" if best == self.current_env else "switched"
        self.fail_streak += 1
        if self.fail_streak < ic.patience:
            return self.current_env, False, "pending-" + reasons[0]
        self.fail_streak = 0
        try:
            return self._allocate(alpha, recon_cur), True, reasons[0]
        except EnvironmentOverflowError:
            if ic.on_overflow != "merge":
                raise
            best = min(recons, key=lambda c: recons[c] / float(mem.recon_avg[c]))
            return best, False, "merged"

    def _check_candidates(
        self,
        candidates: list[int],
        z: torch.Tensor,
        x: torch.Tensor,
        alpha: torch.Tensor,
        recon_cur: float,
        recons: dict[int, float],
        reasons: list[str],
    ) -> list[int]:
        """Run eq. 6's test for each candidate; fill ``recons``/``reasons``; return those that pass."""
        mem, ic = self.memory, self.config.inference
        passed = []
        for cand in candidates:
            if cand == self.current_env:
                recon = recon_cur
            else:
                recon = float(self._recon(self._masked(z, self.applied_mask(cand)), cand, x).mean())
            recons[cand] = recon
            batch_mask = self._batch_mask(alpha, cand) if self.config.ablation.mask else None
            if batch_mask is not None and cand == self.current_env and ic.jump_ratio > 0:
                # in the current environment only a sharp switch to atypical is evidence of a new one:
                # gradual drift and latents settling back to typical are part of learning it
                stored = mem.masks[cand].to(alpha.device)
                gradual = alpha <= ic.jump_ratio * mem.alpha_avg[cand].to(alpha.device)
                batch_mask = stored & (batch_mask | gradual)
            why = environment_check(
                recon, float(mem.recon_avg[cand]), ic.kappa, batch_mask, mem.masks[cand], mem.used[cand]
            )
            if why is None:
                passed.append(cand)
            else:
                reasons.append(why)
        return passed

    def _allocate(self, alpha: torch.Tensor, recon: float) -> int:
        s = self.memory.allocate(self._batch_mask(alpha, None).cpu(), math.inf, alpha.detach())
        self.last_allocation = self.step
        return s

    def _update_used(self, x: torch.Tensor, mu: torch.Tensor, env: int) -> None:
        """Refresh u_s of environment ``env`` by the noise-tolerance test (A.2) on this batch."""
        mask = self.applied_mask(env)

        def nll(z: torch.Tensor) -> torch.Tensor:
            return self._recon(self._masked(z, mask), env, x)

        sigma = noise_tolerance(nll, mu, self.config.mask, self.generator)
        self.memory.used[env] = used_latents(sigma, self.config.mask.used_threshold).cpu()
        self.model.zero_grad(set_to_none=True)

    def _dream_envs(self, env: int) -> list[int]:
        if not self.config.ablation.infer_env:
            return [0] if self.step > 0 else []
        return [e for e in range(self.memory.n_seen) if e != env]

    # ------------------------------------------------------------------ training
    def train_step(self, x: Any) -> dict[str, Any]:
        """One VASE update on a batch of images from the (unknown) current environment.

        x: images accepted by :meth:`preprocess`, batch size >= 2. Returns named scalars: ``loss``,
        ``recon``, ``kl``, ``C``, ``env`` (inferred index), ``new_env`` (allocated this step),
        ``n_envs``, ``reason`` (inference outcome), ``atypicality`` and ``mask`` (lists per latent),
        ``used`` (used latents of ``env``), dreaming and classifier terms when active.
        """
        if self.frozen:
            raise RuntimeError("learner is frozen (freeze() was called); call unfreeze() to train")
        cfg, mc, lc = self.config, self.config.model, self.config.loss
        x = self.preprocess(x)
        if x.shape[0] < 2:
            raise ValueError(
                f"train_step needs a batch of at least 2 images (atypicality fits a Gaussian to the batch), "
                f"got {x.shape[0]}"
            )
        self.model.train()
        mu, logvar, hidden = self.model.encoder(x)
        z = self._sample_z(mu, logvar)
        alpha = self._atypicality(z.detach())

        env_prev = self.current_env if self.current_env >= 0 else None
        active = self.applied_mask(env_prev) if env_prev is not None else torch.ones_like(alpha, dtype=torch.bool)
        recon_vec = self._recon(self._masked(z, active), max(self.current_env, 0), x)
        env, new_env, reason = self._infer(z.detach(), hidden, x, alpha, float(recon_vec.detach().mean()))
        if env != env_prev:  # switched or allocated: redo the forward under the inferred environment
            active = self.applied_mask(env)
            recon_vec = self._recon(self._masked(z, active), env, x)
        self.current_env = env
        mask = self._batch_mask(alpha, env)
        if reason.startswith("pending"):
            # the batch may come from a new environment: do not train the current one on it (that would
            # both forget the current environment and erase the evidence) until eq. 6 has decided.
            self.step += 1
            return self._outputs({}, None, float(recon_vec.detach().mean()), float("nan"), 0.0, 0.0,
                                 env, new_env, reason, alpha, active, mask)

        kl_units = gaussian_kl(mu, logvar) * active.to(mu.dtype)
        kl = kl_units.sum(1)
        recon = recon_vec.mean()
        C = self.capacity
        if lc.entangled:
            reg = lc.beta_vae * kl.mean()
        else:
            reg = self._capacity_loss(kl, C)
        loss = recon + reg
        out: dict[str, Any] = {}

        envs_t = torch.full((x.shape[0],), env, device=self.device, dtype=torch.long)
        cls_loss = environment_classifier_loss(self.model.classifier(hidden, self.memory.n_seen), envs_t)
        dream_envs = self._dream_envs(env)
        if dream_envs and (cfg.ablation.dream or cfg.ablation.infer_env):
            dream = sample_dream(self.snapshot, dream_envs, cfg.dream.batch_size, mc.latent_dim, self.generator)
            if cfg.ablation.dream:
                d_loss, d_scalars, d_hidden = dreaming_loss(self.model, self.snapshot, dream, cfg.dream, mc)
                loss = loss + d_loss
                out.update(d_scalars)
                out["dream/loss"] = float(d_loss.detach())
            else:
                with torch.no_grad():
                    _, _, d_hidden = self.model.encoder(dream.x)
            if cfg.ablation.infer_env:
                d_logits = self.model.classifier(d_hidden, self.memory.n_seen)
                cls_loss = cls_loss + environment_classifier_loss(d_logits, dream.env)
        if cfg.ablation.infer_env:
            loss = loss + cls_loss

        if not bool(torch.isfinite(loss)):
            raise NonFiniteLossError(
                f"non-finite loss at step {self.step} (recon={float(recon.detach()):.4g}, kl={float(kl.detach().mean()):.4g}); "
                "the update was not applied -- the last saved checkpoint is intact. Lower the learning rate "
                "or gamma, or check the input data."
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

        recon_f = float(recon.detach())
        self.memory.update(env, mask.cpu(), recon_f, self._recon_decay(env), alpha.detach())
        steps_in_env = int(self.memory.steps[env])
        if cfg.ablation.mask and (
            steps_in_env == cfg.inference.grace_steps or steps_in_env % cfg.mask.used_every == 0
        ):
            self._update_used(x, mu.detach(), env)
        self.step += 1
        if self.step % cfg.dream.tau == 0:
            self.snapshot.sync(self.model)
        return self._outputs(out, loss, recon_f, float(kl.detach().mean()), float(reg.detach()),
                             float(cls_loss.detach()), env, new_env, reason, alpha, active, mask)

    def _outputs(
        self,
        out: dict[str, Any],
        loss: torch.Tensor | None,
        recon: float,
        kl: float,
        reg: float,
        cls_loss: float,
        env: int,
        new_env: bool,
        reason: str,
        alpha: torch.Tensor,
        active: torch.Tensor,
        raw_mask: torch.Tensor,
    ) -> dict[str, Any]:
        out.update(
            loss=float(loss.detach()) if loss is not None else float("nan"),
            recon=recon,
            kl=kl,
            C=self.capacity,
            capacity_loss=reg,
            classifier_loss=cls_loss,
            env=env,
            new_env=new_env,
            reason=reason,
            n_envs=self.memory.n_seen,
            atypicality=alpha.tolist(),
            mask=active.int().tolist(),
            raw_mask=raw_mask.int().tolist(),
            used=self.memory.used[env].int().tolist(),
            step=self.step,
            updated=loss is not None,
        )
        return out

    def _recon_decay(self, env: int) -> float:
        """EMA decay for L~_s and the atypicality average of ``env``.

        While an environment is young (its first ``grace_steps``) its losses fall fast, so a short
        horizon (decay 0.9, ~10 steps) keeps L~_s close to the current loss; afterwards the slower
        ``recon_ema`` averages batch noise.
        """
        if int(self.memory.steps[env]) < self.config.inference.grace_steps:
            return min(0.9, self.config.inference.recon_ema)
        return self.config.inference.recon_ema

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "snapshot": self.snapshot.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "memory": self.memory.state_dict(),
            "step": self.step,
            "current_env": self.current_env,
            "fail_streak": self.fail_streak,
            "last_allocation": self.last_allocation,
            "generator": self.generator.get_state(),
        }

    def validate_state_dict(self, state: dict[str, Any]) -> None:
        """Dry-run a load on fresh objects; raises ValueError/KeyError/RuntimeError and changes nothing."""
        mc = self.config.model
        trial = VASEModel(mc)
        trial.load_state_dict(state["model"])
        trial.load_state_dict(state["snapshot"])
        params = list(trial.parameters())
        opt = state["optimizer"]
        if len(opt["param_groups"]) != 1 or len(opt["param_groups"][0]["params"]) != len(params):
            raise ValueError("optimizer state does not match the model's parameters")
        for i, p in enumerate(params):
            for key in ("exp_avg", "exp_avg_sq"):
                t = opt["state"].get(i, {}).get(key)
                if t is not None and t.shape != p.shape:
                    raise ValueError(f"optimizer state '{key}' of parameter {i} has shape {tuple(t.shape)}, "
                                     f"expected {tuple(p.shape)}")
        EnvironmentMemory.empty(mc.max_environments, mc.latent_dim).load_state_dict(state["memory"])
        for key in ("step", "current_env", "fail_streak", "last_allocation", "generator"):
            if key not in state:
                raise KeyError(f"learner state lacks '{key}'")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore everything; the state is validated first, so a bad one leaves the learner untouched."""
        self.validate_state_dict(state)
        self.model.load_state_dict(state["model"])
        self.snapshot.model.load_state_dict(state["snapshot"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.memory.load_state_dict(state["memory"])
        self.step = int(state["step"])
        self.current_env = int(state["current_env"])
        self.fail_streak = int(state["fail_streak"])
        self.last_allocation = int(state["last_allocation"])
        self.generator.set_state(state["generator"].cpu() if self.device.type == "cpu" else state["generator"])

    def save(self, path: str, extra: dict[str, Any] | None = None) -> None:
        """Write an atomic checkpoint (temp file + os.replace) that resumes bit-for-bit."""
        save_checkpoint(path, self.config, self.state_dict(), extra or {})

    @classmethod
    def load(cls, path: str, device: str | torch.device = "auto") -> ContinualLearner:
        """Build a learner from a checkpoint (its config is stored in it)."""
        config, state, _ = load_checkpoint(path)
        learner = cls(config, device=device)
        learner._load_checked(path, state)
        return learner

    def _load_checked(self, path: str, state: dict[str, Any]) -> None:
        try:
            self.load_state_dict(state)
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint {path!r} holds a learner state that does not fit its configuration: {exc}"
            ) from exc

    def load_into(self, path: str) -> dict[str, Any]:
        """Restore this learner from ``path``; refuses a checkpoint written with another config."""
        _, state, extra = load_checkpoint(path, expect=self.config)
        self._load_checked(path, state)
        return extra
