"""Environment inference: eq. 6 / Algorithm 1 of appendix A.2 as one component, and the environment memory.

:class:`EnvironmentInference` owns what Algorithm 1 remembers (the :class:`EnvironmentMemory` and the
current environment) and decides, batch by batch, which environment s the batch comes from. Its
:meth:`~EnvironmentInference.decide` receives what it needs from the learner as arguments -- the batch's
atypicality alpha, the classifier's q(s|x), the loss under the current environment and a function giving
the loss under any candidate -- so this module never imports the learner.

The paper's rule is ``s = s-hat if L_shat(x) <= kappa * L~_shat and a(x) . u_shat == a^shat . u_shat,
else m+1``. The heuristics beyond it (grace period, patience, testing the current environment, periodic
and pre-allocation scans, best-reconstructing choice, jump test, young-environment decay, not training on
pending batches, merge on overflow) are named fields of :class:`~vase_rl.core.config.InferenceConfig`, each
switched off by :meth:`InferenceConfig.paper() <vase_rl.core.config.InferenceConfig.paper>`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vase_rl.core.config import Ablation, InferenceConfig, MaskConfig
from vase_rl.core.latents import hysteresis_mask


class EnvironmentOverflowError(RuntimeError):
    """Raised when a new environment would exceed ``max_environments``."""


@dataclass
class EnvironmentMemory:
    """What VASE remembers of each environment s it has allocated.

    masks: (max_environments, N) bool, the latent mask a^s (True = active latent);
    used: (max_environments, N) bool, the used latents u^s (A.2);
    recon_avg: (max_environments,) float, the running average reconstruction loss L~_s (nats/image);
    steps: (max_environments,) int, training steps spent in each environment;
    alpha_avg: (max_environments, N) float, running average of each latent's atypicality;
    n_seen: m, the number of environments allocated so far.
    """

    masks: torch.Tensor
    used: torch.Tensor
    recon_avg: torch.Tensor
    steps: torch.Tensor
    alpha_avg: torch.Tensor
    n_seen: int = 0

    @classmethod
    def empty(cls, max_environments: int, latent_dim: int) -> EnvironmentMemory:
        return cls(
            masks=torch.ones(max_environments, latent_dim, dtype=torch.bool),
            used=torch.ones(max_environments, latent_dim, dtype=torch.bool),
            recon_avg=torch.full((max_environments,), float("inf")),
            steps=torch.zeros(max_environments, dtype=torch.long),
            alpha_avg=torch.zeros(max_environments, latent_dim),
        )

    @property
    def max_environments(self) -> int:
        return int(self.masks.shape[0])

    def ensure_room(self) -> None:
        """Raise :class:`EnvironmentOverflowError` if every environment is allocated."""
        if self.n_seen >= self.max_environments:
            raise EnvironmentOverflowError(
                f"a new environment was detected but all max_environments={self.max_environments} "
                "are allocated; raise ModelConfig.max_environments (a new model is needed: the decoder's "
                "one-hot input and the classifier are sized by it) or set "
                "InferenceConfig.on_overflow='merge' to reuse the closest environment"
            )

    def allocate(self, mask: torch.Tensor, recon: float, alpha: torch.Tensor | None = None) -> int:
        """Allocate environment m+1 (index ``n_seen``) with an initial mask and L~; return its index."""
        self.ensure_room()
        s = self.n_seen
        self.masks[s] = mask.cpu()
        self.used[s] = True
        self.recon_avg[s] = recon
        self.steps[s] = 0
        self.alpha_avg[s] = alpha.cpu() if alpha is not None else 0.0
        self.n_seen += 1
        return s

    def update(
        self, env: int, mask: torch.Tensor, recon: float, ema: float, alpha: torch.Tensor | None = None
    ) -> None:
        """Store the current mask of ``env``; fold ``recon`` into L~_s and ``alpha`` into its average."""
        self.masks[env] = mask.cpu()
        if alpha is not None:
            self.alpha_avg[env] = ema * self.alpha_avg[env] + (1 - ema) * alpha.cpu()
        old = float(self.recon_avg[env])
        self.recon_avg[env] = ema * old + (1 - ema) * recon if math.isfinite(old) else recon
        self.steps[env] += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "masks": self.masks.clone(),
            "used": self.used.clone(),
            "recon_avg": self.recon_avg.clone(),
            "steps": self.steps.clone(),
            "alpha_avg": self.alpha_avg.clone(),
            "n_seen": self.n_seen,
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        for key in ("masks", "used", "recon_avg", "steps", "alpha_avg"):
            if d[key].shape != getattr(self, key).shape:
                raise ValueError(
                    f"environment memory '{key}' has shape {tuple(d[key].shape)}, "
                    f"expected {tuple(getattr(self, key).shape)}"
                )
            setattr(self, key, d[key].clone())
        self.n_seen = int(d["n_seen"])


class Failure(str, enum.Enum):
    """Why eq. 6 rejected a candidate environment."""

    RECONSTRUCTION = "reconstruction"
    """L_shat(x) > kappa * L~_shat: the batch is reconstructed significantly worse than usual."""
    MASK = "mask"
    """a(x) . u_shat != a^shat . u_shat: a latent the candidate uses changed typicality."""
    TOO_LIKELY = "too-likely"
    """L_shat(x) < L~_shat / kappa_low: the batch is reconstructed far *better* than usual (the two-sided
    test of ``InferenceConfig.kappa_low``; not in the paper)."""


class Reason(str, enum.Enum):
    """Outcome of :meth:`EnvironmentInference.decide` for one batch."""

    FIRST = "first"
    """The very first batch: environment 0 is allocated."""
    KEPT = "kept"
    """No test ran (grace period, or the S ablation is off): the current environment is kept."""
    MATCHED = "matched"
    """eq. 6 accepted the current environment."""
    SWITCHED = "switched"
    """eq. 6 accepted another known environment (a revisit)."""
    PENDING = "pending"
    """eq. 6 rejected every candidate, but fewer than ``patience`` batches in a row: wait."""
    ALLOCATED = "allocated"
    """eq. 6 rejected every candidate: environment m+1 is allocated."""
    MERGED = "merged"
    """An allocation was due but every environment is taken: the closest one is reused (on_overflow)."""


@dataclass(frozen=True)
class Decision:
    """The environment a batch is assigned to and why.

    env: the environment index s; allocated: s is new (m+1); reason: the outcome; failure: why eq. 6
    rejected the candidates (the first candidate's failure) for PENDING, ALLOCATED and MERGED, else None;
    trains: whether the learner trains on the batch (False only for a pending batch, see
    ``InferenceConfig.train_on_pending``).
    """

    env: int
    allocated: bool
    reason: Reason
    failure: Failure | None = None
    trains: bool = True

    @property
    def label(self) -> str:
        """The outcome as the training log writes it (:func:`outcome_label`)."""
        return outcome_label(self.reason, self.failure)


def outcome_label(reason: Reason, failure: Failure | None) -> str:
    """An outcome as the training log writes it: the reason, except ``"pending-<failure>"`` for a pending
    batch and the failure (``"reconstruction"`` / ``"mask"``) for an allocation after a failed test.

    >>> outcome_label(Reason.PENDING, Failure.MASK), outcome_label(Reason.ALLOCATED, Failure.RECONSTRUCTION)
    ('pending-mask', 'reconstruction')
    >>> outcome_label(Reason.MATCHED, None), outcome_label(Reason.MERGED, Failure.MASK)
    ('matched', 'merged')
    """
    if reason is Reason.PENDING and failure is not None:
        return f"pending-{failure.value}"
    if reason is Reason.ALLOCATED and failure is not None:
        return failure.value
    return reason.value


@dataclass(frozen=True)
class CandidateCheck:
    """eq. 6's test of one candidate environment: the batch's loss under it (nats/image), failure or None."""

    env: int
    recon: float
    failure: Failure | None


def environment_check(
    recon: float,
    recon_avg: float,
    kappa: float,
    batch_mask: torch.Tensor | None,
    stored_mask: torch.Tensor,
    used: torch.Tensor,
    kappa_low: float = 0.0,
    mask_tolerance: float = 0.0,
) -> Failure | None:
    """One candidate test of eq. 6 / Algorithm 1; returns None if the batch belongs to the candidate.

    The batch x is accepted as coming from candidate environment s-hat iff
      (i) its reconstruction loss under s-hat is not significantly larger than the running average,
          ``L_shat(x) <= kappa * L~_shat``, and
      (ii) its latent mask equals the stored one on the latents s-hat uses,
          ``a(x) . u_shat == a^shat . u_shat`` (skipped when ``batch_mask`` is None, i.e. ablation A off).
    Otherwise the reason for rejection is returned (a :class:`Failure`, equal to the strings
    ``"reconstruction"`` / ``"mask"``), and Algorithm 1 allocates environment m+1. With ``kappa_low > 0``
    (beyond the paper) a loss far *below* the average, ``L_shat(x) < L~_shat / kappa_low``, rejects too
    (``"too-likely"``). With ``mask_tolerance > 0`` (beyond the paper) test (ii) fails only when the masks
    differ on more than ``floor(mask_tolerance * |u_shat|)`` used latents.

    recon, recon_avg: nats per image; batch_mask, stored_mask, used: (N,) bool.

    >>> one = torch.ones(2, dtype=torch.bool)
    >>> environment_check(7.0, 10.0, 1.5, None, one, one), environment_check(7.0, 10.0, 1.5, None, one, one, 1.25)
    (None, <Failure.TOO_LIKELY: 'too-likely'>)
    """
    if recon > kappa * recon_avg:
        return Failure.RECONSTRUCTION
    if kappa_low > 0 and recon * kappa_low < recon_avg:
        return Failure.TOO_LIKELY
    if batch_mask is not None:
        used = used.to(batch_mask.device)
        differ = int(((batch_mask != stored_mask.to(batch_mask.device)) & used).sum())
        if differ > math.floor(mask_tolerance * int(used.sum())):
            return Failure.MASK
    return None


ReconFn = Callable[[int], float]
"""Maps a candidate environment s to the batch's reconstruction loss under s (nats/image, eq. 6's L_s(x))."""
AlphaFn = Callable[[int], torch.Tensor]
"""Maps a candidate environment s to the batch's atypicality (N,) as s reads it (eq. 4)."""


@dataclass(frozen=True)
class BatchReading:
    """How eq. 6 reads one batch under each candidate: ``alpha`` (N,) its atypicality (eq. 4) and
    ``recon_current`` its loss under the current environment; ``recon_fn`` / ``alpha_fn`` the same under
    another candidate (``alpha_fn`` None: ``alpha`` for every candidate)."""

    alpha: torch.Tensor
    recon_current: float
    recon_fn: ReconFn
    alpha_fn: AlphaFn | None = None


class EnvironmentInference:
    """Algorithm 1 with its state: the environment memory, the current environment, the failure streak.

    Args:
        config: the inference policy (paper: :meth:`InferenceConfig.paper`).
        mask: lambda0/lambda1 of the batch mask a(x) (eq. 5 with A.2's hysteresis).
        ablation: with S off every batch keeps environment 0; with A off the mask test is skipped.
        memory: the environment memory (max_environments, N).

    Example (a loss far above L~_0 with patience 1 allocates environment 1)::

        >>> from vase_rl.core.config import Ablation, InferenceConfig, MaskConfig
        >>> memory = EnvironmentMemory.empty(3, 4)
        >>> inf = EnvironmentInference(InferenceConfig.paper(), MaskConfig(), Ablation(), memory)
        >>> alpha, probs = torch.zeros(4), torch.tensor([1.0, 0.0, 0.0])
        >>> inf.decide(0, alpha, probs, 10.0, lambda s: 10.0).reason
        <Reason.FIRST: 'first'>
        >>> inf.record(0, inf.batch_mask(alpha, 0), 10.0, alpha)
        >>> d = inf.decide(1, alpha, probs, 99.0, lambda s: 99.0)
        >>> d.env, d.allocated, d.reason.value, d.failure.value
        (1, True, 'allocated', 'reconstruction')
    """

    def __init__(
        self, config: InferenceConfig, mask: MaskConfig, ablation: Ablation, memory: EnvironmentMemory
    ) -> None:
        self.config, self.mask_config, self.ablation, self.memory = config, mask, ablation, memory
        self.current_env = -1
        """The environment of the last batch (-1 before the first)."""
        self.fail_streak = 0
        """Failures counted towards ``patience``: consecutive ones, or those among the last
        ``patience_window`` tested batches."""
        self.fail_history: list[int] = []
        """With ``patience_window`` > 0: the outcomes of the last tested batches, 1 = failed eq. 6."""
        self.last_allocation = -(10**9)
        """Learner step of the last allocation (grace period)."""

    # ------------------------------------------------------------------ Algorithm 1
    def decide(
        self,
        step: int,
        alpha: torch.Tensor,
        probs: torch.Tensor,
        recon_current: float,
        recon_fn: ReconFn,
        commit: bool = True,
        alpha_fn: AlphaFn | None = None,
    ) -> Decision:
        """Infer the environment of one batch (eq. 6 / Algorithm 1) and, if ``commit``, remember it.

        ::

            s-hat <- argmax_s q(s|x)                     (+ the current env, scans: see InferenceConfig)
            if L_shat(x) > kappa L~_shat:       s <- m+1  (Failure.RECONSTRUCTION)
            elif a^shat . u_shat != a(x) . u_shat: s <- m+1  (Failure.MASK)
            else:                               s <- s-hat

        step: the learner's step (grace period, periodic scan); alpha: (N,) atypicality of the batch (eq. 4);
        probs: (max_environments,) the classifier's q(s|x) averaged over the batch (zero for unseen s);
        recon_current: the batch's loss under the current environment; recon_fn: the loss under any
        candidate (called only for candidates other than the current one, in test order).
        ``commit=False`` is a side-effect-free query (nothing is allocated or counted); an allocation past
        ``max_environments`` with ``on_overflow="error"`` raises either way. ``alpha_fn``: the batch's
        atypicality as candidate ``env`` reads it, where that differs from ``alpha``
        (``ModelConfig.env_input_view``: a candidate that reads the batch in another view); None: ``alpha``.
        """
        ic, mem = self.config, self.memory
        if mem.n_seen == 0:
            return self._allocate(step, alpha, Reason.FIRST, None, commit)
        if not self.ablation.infer_env or step - self.last_allocation < ic.grace_steps:
            return Decision(self.current_env, False, Reason.KEPT)
        checks = self.evaluate_candidates(step, probs, BatchReading(alpha, recon_current, recon_fn, alpha_fn))
        passed = [c for c in checks if c.failure is None]
        if passed:
            best = min(passed, key=lambda c: c.recon) if ic.best_candidate else passed[0]
            reason = Reason.MATCHED if best.env == self.current_env else Reason.SWITCHED
            return self._commit(Decision(best.env, False, reason), commit, self._count(failed=False))
        failure = checks[0].failure
        counted = self._count(failed=True)
        if counted[0] < ic.patience:
            pending = Decision(self.current_env, False, Reason.PENDING, failure, trains=ic.train_on_pending)
            return self._commit(pending, commit, counted)
        if commit:
            self.fail_streak, self.fail_history = 0, []
        if mem.n_seen < mem.max_environments or ic.on_overflow != "merge":
            return self._allocate(step, alpha, Reason.ALLOCATED, failure, commit)
        closest = min(checks, key=lambda c: c.recon / float(mem.recon_avg[c.env]))
        return self._commit(Decision(closest.env, False, Reason.MERGED, failure), commit, (0, []))

    def _count(self, failed: bool) -> tuple[int, list[int]]:
        """The failure count towards ``patience`` (and the window's outcomes) after one more tested batch."""
        window = self.config.patience_window
        if window <= 0:
            return (self.fail_streak + 1 if failed else 0), []
        history = [*self.fail_history, int(failed)][-window:]
        return sum(history), history

    def evaluate_candidates(
        self, step: int, probs: torch.Tensor, batch: BatchReading
    ) -> list[CandidateCheck]:
        """eq. 6's test on the candidates, in order: s-hat and the current environment (``keep_current``), or
        every environment on a periodic scan; if none passes, the rest (``scan_before_allocating``).

        No state changes; ``probs`` as in :meth:`decide`, ``batch`` the rest of its arguments.
        """
        ic = self.config
        everyone = list(range(self.memory.n_seen))
        scan = ic.scan_every > 0 and step % ic.scan_every == 0
        s_hat = int(probs.argmax())
        proposed = [s_hat, self.current_env] if ic.keep_current else [s_hat]
        first = everyone if scan else list(dict.fromkeys(proposed))
        checks = [self.check(c, batch) for c in first]
        if ic.scan_before_allocating and not scan and all(c.failure is not None for c in checks):
            checks += [self.check(c, batch) for c in everyone if c not in first]
        return checks

    def check(self, env: int, batch: BatchReading) -> CandidateCheck:
        """eq. 6's test of candidate ``env`` (the current one with the jump test, ``jump_ratio``) on the batch
        as ``env`` reads it."""
        mem, ic = self.memory, self.config
        current = env == self.current_env
        recon = batch.recon_current if current else batch.recon_fn(env)
        alpha = batch.alpha if current or batch.alpha_fn is None else batch.alpha_fn(env)
        batch_mask = self.batch_mask(alpha, env) if self.ablation.mask else None
        if batch_mask is not None and env == self.current_env and ic.jump_ratio > 0:
            # in the current environment only a sharp switch to atypical is evidence of a new one:
            # gradual drift and latents settling back to typical are part of learning it
            stored = mem.masks[env].to(alpha.device)
            gradual = alpha <= ic.jump_ratio * mem.alpha_avg[env].to(alpha.device)
            batch_mask = stored & (batch_mask | gradual)
        failure = environment_check(
            recon,
            float(mem.recon_avg[env]),
            ic.kappa,
            batch_mask,
            mem.masks[env],
            mem.used[env],
            ic.kappa_low,
            ic.mask_tolerance,
        )
        return CandidateCheck(env, recon, failure)

    def _commit(self, decision: Decision, commit: bool, counted: tuple[int, list[int]]) -> Decision:
        if commit:
            (self.fail_streak, self.fail_history), self.current_env = counted, decision.env
        return decision

    def _allocate(
        self, step: int, alpha: torch.Tensor, reason: Reason, failure: Failure | None, commit: bool
    ) -> Decision:
        if not commit:
            self.memory.ensure_room()
            return Decision(self.memory.n_seen, True, reason, failure)
        env = self.memory.allocate(self.batch_mask(alpha, None).cpu(), math.inf, alpha.detach())
        if self.mask_config.new_env_used == "none" and env > 0:
            # u^s unknown until A.2's test has run on env; the first environment has no old ones whose
            # latents could be masked for it, so it keeps every latent counted as used
            self.memory.used[env] = False
        self.last_allocation, self.current_env = step, env
        return Decision(env, True, reason, failure)

    # ------------------------------------------------------------------ masks and running averages
    def batch_mask(self, alpha: torch.Tensor, env: int | None) -> torch.Tensor:
        """a(x): the batch's mask (eq. 5 + A.2 hysteresis) relative to ``env``'s stored one (None: all on).

        alpha: (N,). Returns (N,) bool on alpha's device; all-active when the A ablation is off.
        """
        ones = torch.ones(alpha.shape, dtype=torch.bool, device=alpha.device)
        if not self.ablation.mask:
            return ones
        prev = self.memory.masks[env].to(alpha.device) if env is not None else ones
        return hysteresis_mask(alpha, prev, self.mask_config.lambda0, self.mask_config.lambda1)

    def recon_decay(self, env: int) -> float:
        """EMA decay of L~_s and of the atypicality average of ``env`` (``young_recon_ema`` while young)."""
        ic = self.config
        if ic.young_recon_ema is not None and int(self.memory.steps[env]) < ic.grace_steps:
            return min(ic.young_recon_ema, ic.recon_ema)
        return ic.recon_ema

    def record(self, env: int, mask: torch.Tensor, recon: float, alpha: torch.Tensor) -> None:
        """After training on a batch of ``env``: store its mask a(x) (N,) bool, fold its loss (nats/image)
        into L~_s and its atypicality alpha (N,) into the running average."""
        self.memory.update(env, mask.cpu(), recon, self.recon_decay(env), alpha.detach())

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict[str, Any]:
        return {
            "memory": self.memory.state_dict(),
            "current_env": self.current_env,
            "fail_streak": self.fail_streak,
            "fail_history": list(self.fail_history),
            "last_allocation": self.last_allocation,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.memory.load_state_dict(state["memory"])
        self.current_env = int(state["current_env"])
        self.fail_streak = int(state["fail_streak"])
        self.fail_history = [int(f) for f in state.get("fail_history", [])]  # absent before patience_window
        self.last_allocation = int(state["last_allocation"])
