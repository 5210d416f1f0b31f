"""Configuration dataclasses and presets for VASE.

Every hyperparameter carries the paper's name (Achille et al. 2018, appendix Table 2 and A.1-A.3).
Configs are frozen dataclasses; derive variants with :func:`dataclasses.replace` or
:func:`VASEConfig.with_overrides`.

Presets
-------
``paper``
    Appendix Table 2, ablation-study row: 64x64 inputs, 24 latents, ``max_environments=7``,
    Adam 6e-4, batch 64, gamma=100, C_max=35, delta_C=6.3e-6, lambda=0.6, kappa=1.5, tau=500,
    alpha=1000 (encoder proximity), beta=20 (decoder proximity), 150k steps per dataset; the plain
    Algorithm 1 and mask (:meth:`InferenceConfig.paper`, :meth:`MaskConfig.paper`).

    alpha/beta: the appendix text says "alpha=1000 and beta=20 were used for all experiments,
    except for in the hyperparameter sweep" while the sweep ranges read alpha in {10,20,40},
    beta in {500,1000,2000}. We use the text's values because they are stated as the ones used,
    and because with our units (Wasserstein distance summed over latents, Bernoulli KL summed over
    pixels, both averaged over the batch -- the same units as eq. 3's reconstruction term and
    gamma) they put each dreaming term on the scale of the reconstruction term (hundreds of nats),
    whereas the sweep's beta=1000 on a summed 4096-pixel KL would outweigh the current data by ~100x.

``paper-heuristics``
    ``paper`` with the library's inference and mask rules on (the defaults of :class:`InferenceConfig`
    and :class:`MaskConfig`); the wrappers' default learner on CUDA.

``cpu``
    Same algorithm scaled for 2 CPU cores: 32x32 canvas, half-width encoder, fewer steps.
    Its capacity values were chosen on a validation split (see ``benchmarks/cpu_preset.py`` and
    docs/findings.md) -- gamma=100 at C_max=35 with a short C ramp learns latents that carry no information
    at CPU step counts, so the preset uses a smaller gamma and a ramp matched to its step budget.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Likelihood = Literal["bernoulli", "gaussian"]


@dataclass(frozen=True)
class ModelConfig:
    """Encoder/decoder architecture (appendix A.1)."""

    image_size: int = 64
    """Square input side; must halve cleanly four times (a multiple of 16)."""
    channels: int = 1
    """Image channels: 1 (sprites) or 3 (RGB, e.g. 3-D levels)."""
    latent_dim: int = 24
    """N, number of latent units z_n."""
    max_environments: int = 7
    """Size of the one-hot environment code fed to the decoder and of the classifier's softmax."""
    conv_channels: tuple[int, int, int, int] = (64, 64, 128, 128)
    """Filters of the four 4x4 stride-2 conv layers."""
    hidden_dim: int = 256
    """Units of the fully connected layer after the convolutions."""
    likelihood: Likelihood = "bernoulli"
    """p(x|z,s): product of Bernoullis (sprites) or fixed-variance Gaussians (DM Lab, A.1)."""
    gaussian_std: float = 0.1
    """Standard deviation of the fixed-variance Gaussian likelihood (pixels in [0,1])."""
    init: Literal["kaiming", "pytorch"] = "kaiming"
    """Weight initialisation. "kaiming": He-normal weights (fan-in, ReLU gain) and zero biases in every
    conv / linear layer, so that the signal keeps its scale through the 12 layers from pixels to
    logits. "pytorch": PyTorch's default (Kaiming-uniform with a=sqrt(5)), which shrinks activations by
    ~sqrt(3) per layer: measured on the cpu preset, mu(x) starts at std ~0, the decoder learns to ignore z,
    and a plain autoencoder is still at the mean-image NLL after 600 steps (48 vs 30 nats with "kaiming";
    see benchmarks/results/representation_quality/README.md)."""

    init_logvar: float = 0.0
    """Initial log sigma^2 of q(z|x): the bias of the encoder head's log-variance outputs (weights
    start He-initialised, see ``init``). 0 = the prior's width. A negative value starts the posterior
    sharp, so the decoder sees z with a usable signal-to-noise ratio from the first step; with
    sigma = 1 and mu ~ 0 at the start, the decoder learns the mean image, the encoder gets no gradient
    to use z, and any KL pressure keeps it there (measured on the cpu preset: docs/findings.md,
    "Why the latents carried no identity")."""
    new_env_code: Literal["random", "inherit"] = "random"
    """How the decoder's weights for a newly allocated environment's one-hot code start: "random" (as
    initialised; the paper) or "inherit", a copy of those of the environment the batch was decoded under
    when eq. 6 rejected it, so that p(x|z, s_new) starts as p(x|z, s_old) and the new environment can
    read the latents the old one wrote (latent reuse, section 3.3)."""
    env_conditioning: Literal["input", "input+output"] = "input"
    """How the decoder p(x|z, s) sees the environment: "input", its one-hot code concatenated to z (A.1);
    "input+output", also a learnt per-environment affine (scale, bias) of each output channel's logits
    (or means), initialised to the identity. An environment that renders the same factors differently
    (inverted contrast, another colour) can then change its rendering without re-mapping what the
    latents mean: reading the same latents with the same sign is what readout transfer measures."""
    new_env_sign: Literal["keep", "pick"] = "keep"
    """With ``env_conditioning="input+output"``: a newly allocated environment's output scale starts as the
    identity ("keep") or is picked at allocation ("pick"): +|s| or -|s| of the environment the batch was
    decoded under when eq. 6 rejected it (s: that environment's scale), whichever reconstructs the
    allocating batch better. A contrast inversion then reads the old latents with the old sign from its
    first step (a learnt scale would need thousands of Adam steps to cross zero). Beyond the paper; meant
    with ``new_env_code="inherit"``."""
    env_input_view: Literal["raw", "pick"] = "raw"
    """What the encoder reads of an environment's frames: "raw" (the paper: q(z|x) sees every frame as it is)
    or "pick": with ``new_env_sign="pick"``, an environment whose output sign was picked negative at
    allocation has its frames read inverted (1 - x), the encoder-side counterpart of the flip, so that the
    encoder reads a contrast-inverted look exactly as it reads the look it was allocated from. The sign is
    fixed at allocation (a buffer, not learnt). The environment classifier (A.1, eq. 6) always reads the raw
    frames; consumers' codes (``ContinualLearner.encode``) read each frame in the view of the environment
    the classifier files it under. Beyond the paper."""
    young_decoder_frozen_steps: int = 0
    """While an environment allocated after the first has trained fewer than this many steps, the decoder's
    shared weights are held where they were at its allocation: only the environment's own code and output
    affine (and the encoder) learn, so the new environment adapts its rendering to the old latents instead
    of the shared decoder re-mapping them. 0 = off (the paper)."""
    young_decoder_release_steps: int = 0
    """Steps over which the held shared decoder is released after ``young_decoder_frozen_steps``: in the
    k-th of them it keeps (k + 1) / R of each update (0 = all at once). Released at once, the first updates
    after the hold move every shared weight by about the learning rate in the direction the held gradient
    kept for the whole hold (Adam's moments), and the young environment's reconstruction jumps (45 -> 70-77
    nats within 3 steps, seed 0 of the anchor benchmark), which eq. 6 can take for a new environment. Beyond
    the paper."""
    young_decoder_hold_for: Literal["every", "flipped"] = "every"
    """Which young environments ``young_decoder_frozen_steps`` holds the shared decoder for: "every" one
    allocated after the first, or "flipped": only those whose output sign ``new_env_sign="pick"`` picked
    negative at allocation (a contrast inversion of the look they were allocated from; the decoder keeps
    the picks in ``Decoder.picked_sign``), so a new look that changes colours or textures but not polarity
    trains the shared decoder from its first step. Beyond the paper."""
    young_decoder_hold: Literal["weights", "gradients"] = "weights"
    """How ``young_decoder_frozen_steps`` holds the shared decoder: "weights" puts its weights back after
    every step, while the optimizer's moments of those weights keep accumulating the young environment's
    gradients and act on the first step after the hold; "gradients" also zeroes those gradients before each
    step, so the moments decay during the hold and the release starts from rest. Beyond the paper."""

    def __post_init__(self) -> None:
        if self.image_size % 16 != 0 or self.image_size < 16:
            raise ValueError(
                f"image_size must be a multiple of 16 (it is halved 4 times), got {self.image_size}"
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.latent_dim < 1 or self.max_environments < 1:
            raise ValueError("latent_dim and max_environments must be positive")
        choices = {
            "init": ("kaiming", "pytorch"),
            "likelihood": ("bernoulli", "gaussian"),
            "new_env_code": ("random", "inherit"),
            "env_conditioning": ("input", "input+output"),
            "new_env_sign": ("keep", "pick"),
            "env_input_view": ("raw", "pick"),
            "young_decoder_hold": ("weights", "gradients"),
            "young_decoder_hold_for": ("every", "flipped"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be "
                    + " or ".join(repr(a) for a in allowed)
                    + f", got {getattr(self, name)!r}"
                )
        if self.new_env_sign == "pick" and self.env_conditioning != "input+output":
            raise ValueError("new_env_sign='pick' needs env_conditioning='input+output' (the scale it picks)")
        if self.env_input_view == "pick" and self.new_env_sign != "pick":
            raise ValueError("env_input_view='pick' needs new_env_sign='pick' (the sign it follows)")
        if self.young_decoder_hold_for == "flipped" and self.new_env_sign != "pick":
            raise ValueError("young_decoder_hold_for='flipped' needs new_env_sign='pick' (the sign it reads)")
        for name in ("young_decoder_frozen_steps", "young_decoder_release_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class LossConfig:
    """MDL objective, eq. 3 (disentangled) or the plain ELBO (entangled baseline, beta=1)."""

    gamma: float = 100.0
    """gamma, weight of the capacity constraint |KL - C|^2 (eq. 3)."""
    c_max: float = 35.0
    """C_max in nats: final value of the capacity target C."""
    delta_c: float = 6.3e-6
    """delta_C: C grows by delta_C * C_max per step from ``c_start`` until it reaches C_max (A.3)."""
    c_start: float = 0.0
    """C at step 0 in nats. The paper's schedule starts at 0 (A.3); a positive start keeps the ramp's
    order of discovery (the factors worth the most nats first) without squeezing a sharp initial
    posterior back to the prior at C = 0 (see ``ModelConfig.init_logvar``)."""
    capacity_mode: Literal["two-sided", "upper"] = "two-sided"
    """"two-sided": eq. 3 as written, gamma*(KL - C)^2. "upper": gamma*max(0, KL - C)^2, equal to eq. 3
    whenever KL >= C but without the push *up* towards C that, at CPU step counts, the encoder meets
    with constant mu offsets carrying no information (see the cpu preset)."""
    entangled: bool = False
    """Entangled baseline: loss = recon + beta_vae * KL, no capacity target (paper's beta=1)."""
    beta_vae: float = 1.0
    """KL weight of the entangled baseline."""
    rarity_power: float = 0.0
    """Weights each pixel's reconstruction term by its colour's rarity in the batch, f^-power scaled to
    mean 1 (:func:`vase_rl.core.losses.colour_rarity_weights`), in the training loss only (eq. 6's tests
    and the reported NLL stay the paper's sum). 0 = the paper: every pixel alike. For small objects of a
    colour seen nowhere else (the 3-D levels' target) that the capacity budget otherwise leaves out."""

    def __post_init__(self) -> None:
        if self.rarity_power < 0:
            raise ValueError(f"LossConfig.rarity_power must be >= 0, got {self.rarity_power}")


@dataclass(frozen=True)
class MaskConfig:
    """Atypicality mask, eq. 4-5 with the hysteresis of A.2, and used latents (A.2)."""

    lambda0: float = 0.3
    """Below lambda0 a latent becomes typical again (mask -> 1). lambda0 < lambda1."""
    lambda1: float = 0.6
    """Above lambda1 a latent becomes atypical (mask -> 0); the paper's lambda (Table 2)."""
    used_threshold: float = 0.75
    """T: a latent whose optimal noise scale sigma_n exceeds T is unused by the environment. Measured on
    the cpu preset after 1k steps on moving Fashion: used latents tolerate sigma 0.13-0.43, the others
    0.98-1.28 (A.2: "picking a threshold is very easy")."""
    used_steps: int = 30
    """Gradient steps of the noise-tolerance optimisation (A.2)."""
    used_lr: float = 0.1
    """Adam learning rate on log sigma_n during the noise-tolerance optimisation."""
    used_every: int = 500
    """Recompute the current environment's used latents every this many steps."""

    # Rules of the applied mask a^s (eq. 2) beyond the paper, where a^s is the stored mask itself; each one
    # is a switch of :func:`vase_rl.core.latents.applied_mask` (docs/findings.md, "Masking", has the measurements).
    spare_unmasked: bool = True
    """Latents no *other* environment uses stay active: the spare capacity of section 3.3 ("automatically
    unmasked"). The paper relies on their atypicality staying ~0; at CPU step counts spare latents drift
    on new data and, once masked (no gradient), would never return. False = the paper."""
    protect_own_used: bool = True
    """Latents the environment's own decoder uses (u^s, A.2) stay active: masking them would replace what it
    reconstructs from by prior noise (the demo's MNIST environment lost both of its latents). False = the
    paper."""
    new_env_used: Literal["all", "none"] = "all"
    """u^s of a newly allocated environment until A.2's noise-tolerance test first runs on it: "all" (every
    latent counts as used; with ``protect_own_used`` that keeps every latent active, so a new environment
    masks nothing until its first test -- and that test then finds every latent used, since all were
    trained on) or "none" (nothing known to be used: eq. 5 masks the old environments' atypical latents
    from the environment's first step; the first environment, with no old ones, always starts with "all").
    Measured on moving Fashion -> moving inverse Fashion (validation
    seed 100, representation_quality README, "Latent reuse"): "all" lets the new environment use all 24
    latents and re-use position mirrored; "none" uses 16 and writes position in spare latents. Its effect
    on forgetting is not measured yet, so "all" (the behaviour before the option) stays the default."""
    never_all_masked: bool = True
    """An environment whose every latent would be masked shares all latents instead (it could never learn:
    masked latents get no gradient). False = the paper."""

    def __post_init__(self) -> None:
        if not 0 <= self.lambda0 < self.lambda1:
            raise ValueError(f"need 0 <= lambda0 < lambda1, got {self.lambda0}, {self.lambda1}")
        if self.new_env_used not in ("all", "none"):
            raise ValueError(f"new_env_used must be 'all' or 'none', got {self.new_env_used!r}")

    @classmethod
    def paper(cls, **overrides: Any) -> MaskConfig:
        """The paper's mask: a^s applied as stored (eq. 2, 5 with A.2's hysteresis), no extra rule.

        >>> cfg = MaskConfig.paper()
        >>> (cfg.spare_unmasked, cfg.protect_own_used, cfg.never_all_masked, cfg.lambda1)
        (False, False, False, 0.6)
        """
        plain = {"spare_unmasked": False, "protect_own_used": False, "never_all_masked": False}
        return cls(**{**plain, **overrides})


@dataclass(frozen=True)
class InferenceConfig:
    """Environment inference, eq. 6 / Algorithm 1 (:class:`vase_rl.core.inference.EnvironmentInference`).

    The paper's test uses ``kappa`` and ``recon_ema``; every other field is a heuristic beyond the paper,
    documented with the case it exists for and switched off by :meth:`paper`. The defaults are the
    presets' behaviour.
    """

    kappa: float = 1.5
    """kappa: data is from candidate s if its recon loss <= kappa * L~_s."""
    kappa_low: float = 0.0
    """Two-sided test: data is from candidate s only if also ``L_s(x) >= L~_s / kappa_low`` (0 = off, the
    paper's one-sided test). A model gives some new data a *higher* likelihood than its own (Nalisnick et
    al., ICLR 2019: a Fashion model and MNIST); the paper's test then files the new data under the old
    environment, which keeps training on it, and the old environment's latents drift (moving MNIST after
    moving Fashion reconstructs at 0.74 L~). A typical batch's loss is two-sided (Nalisnick et al. 2019,
    "Detecting out-of-distribution inputs ... using typicality")."""
    recon_ema: float = 0.99
    """Decay of the running average L~_s of each environment's reconstruction loss."""
    grace_steps: int = 200
    """Grace period: after allocating an environment, inference is paused this many steps so that the
    classifier and L~_s of the new environment settle (otherwise the still-untrained classifier
    re-proposes the old environment and each batch would allocate another one). 0 = the paper."""
    patience: int = 3
    """Consecutive failing batches needed before a new environment is allocated: 1 in the paper's
    Algorithm 1 (:meth:`paper`); more filters single noisy batches (the paper and cpu presets use 3
    and 10)."""
    patience_window: int = 0
    """0: the ``patience`` failures must be consecutive -- one passing batch resets the count. W > 0: a new
    environment is allocated once ``patience`` of the last W tested batches failed. For new data near the
    threshold of a test (moving MNIST after moving Fashion at 0.74-0.84 L~ against ``kappa_low`` 1.25's
    0.8), consecutive counting lets the occasional passing batch reset the streak; the passing batches
    train the old environment on the new data, its L~ follows, and the new data is never separated
    (rl_transfer B2, seed 2). Beyond the paper (patience 1 there)."""
    train_on_pending: bool = False
    """Whether a batch that failed eq. 6 but has not yet exhausted ``patience`` (a *pending* batch) trains
    the current environment. False: it is not trained on -- training the current environment on what may
    be a new one would both forget the current environment and erase the evidence. The paper has no
    pending batches (patience 1)."""
    keep_current: bool = True
    """Besides the classifier's candidate s-hat, test the current environment too (the untrained classifier
    of a young environment often proposes an older one). False = the paper: s-hat only."""
    scan_every: int = 10
    """Periodic scan: every this many steps the test of eq. 6 runs on every known environment, not only
    on the classifier's candidate and the current one (finds a revisited environment the classifier does
    not propose yet; one decoder pass per environment). 0 = never (the paper: classifier only)."""
    scan_before_allocating: bool = True
    """Before a failing batch counts towards an allocation, every known environment not yet tested gets
    its chance (a revisited environment is not allocated twice). False = the paper."""
    best_candidate: bool = True
    """Among the candidates that pass eq. 6, keep the best-reconstructing one (Algorithm 1's s-hat is an
    argmin of the reconstruction loss). False: the first that passes, s-hat before the current one."""
    jump_ratio: float = 0.0
    """Jump test: for the *current* environment, a latent's switch to atypical counts in eq. 6's mask test
    only if its atypicality also exceeds ``jump_ratio`` times its running average in that environment --
    the "sharp changes in alpha_n at dataset boundaries" of section 3.3 -- so that latents still being
    learnt, whose atypicality drifts slowly across lambda1, do not allocate spurious environments;
    with it on, a latent of the current environment settling back to typical is not a mismatch
    either. 0 = the paper's plain test."""
    young_recon_ema: float | None = 0.9
    """While an environment is young (its first ``grace_steps`` steps) its losses fall fast: L~_s and its
    atypicality average use the shorter decay min(young_recon_ema, recon_ema) (0.9: ~10 steps) so that L~_s
    stays close to the current loss. None = the paper (always ``recon_ema``)."""
    mask_tolerance: float = 0.0
    """Mask test of eq. 6 with slack: the batch's mask may differ from the candidate's on up to
    ``floor(mask_tolerance * |u_s|)`` of the latents the candidate uses before the test fails (0: one latent
    fails it, the paper). An environment that uses every latent (3-D frames at 4x the cpu preset's capacity
    use all 24) fails the exact test whenever one latent's atypicality crosses lambda1 on a batch, and
    allocates spurious environments within one look (docs/findings.md section 6)."""
    on_overflow: Literal["error", "merge"] = "error"
    """What to do when a new environment would exceed max_environments: raise (the paper has no bound to
    handle), or reuse the existing environment whose loss on the batch is closest to its L~_s ("merge")."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.mask_tolerance < 1.0:
            raise ValueError(f"InferenceConfig.mask_tolerance must be in [0, 1), got {self.mask_tolerance}")

    @classmethod
    def paper(cls, **overrides: Any) -> InferenceConfig:
        """The paper's plain eq. 6 / Algorithm 1: test the classifier's candidate s-hat once per batch and
        allocate a new environment on the first failure; every batch is trained on. Use it with
        :meth:`MaskConfig.paper` for the paper's mask.

        >>> cfg = InferenceConfig.paper()
        >>> (cfg.patience, cfg.grace_steps, cfg.scan_every, cfg.jump_ratio, cfg.train_on_pending, cfg.kappa)
        (1, 0, 0, 0.0, True, 1.5)
        """
        plain: dict[str, Any] = {
            "grace_steps": 0,
            "patience": 1,
            "patience_window": 0,
            "train_on_pending": True,
            "keep_current": False,
            "scan_every": 0,
            "scan_before_allocating": False,
            "best_candidate": False,
            "jump_ratio": 0.0,
            "kappa_low": 0.0,
            "young_recon_ema": None,
            "on_overflow": "error",
            "mask_tolerance": 0.0,
        }
        return cls(**{**plain, **overrides})


@dataclass(frozen=True)
class DreamConfig:
    """Dreaming feedback, eq. 7 / eq. 9."""

    tau: int = 500
    """Snapshot (phi', theta') is synced to the current parameters every tau steps (``anchor="every-tau"``)."""
    anchor: Literal["every-tau", "on-switch"] = "every-tau"
    """When the snapshot that dreams the past environments (eq. 7) is synced. "every-tau": every ``tau``
    steps whatever the environment (the paper, section 3.5); once a new environment has trained for tau
    steps, the old ones are dreamt by -- and anchored to -- a model already trained on the new one, so
    their latents drift. "on-switch": when the inferred environment changes (a switch or an allocation),
    before the batch of the new environment is trained on, so every past environment stays anchored to the
    model as it was when the last environment was left; while one environment trains the anchor does not
    move. Without environment inference (ablation S off) there is no switch: "on-switch" syncs every tau
    steps as the paper."""
    sync_min_visit: int = 0
    """With ``anchor="on-switch"``: a switch syncs the snapshot only when the environment being left trained
    at least this many steps since it was entered (0: every switch, as before). A new look's first batches
    are often tested against several environments, and a brief visit of one of them is a switch too; each
    such sync re-anchors every past environment to a model that has already taken the new look's first
    updates, so their transient drift becomes permanent (issue 23: the inverted look's latents jumped 1.08
    sd in the first ~64 steps of the next stage, then stayed). The paper's every-tau sync ignores it."""
    sync_source: Literal["current", "settled"] = "current"
    """What a switch syncs the snapshot to (``anchor="on-switch"``): "current", the model as it is at the
    switch; "settled", the model as it was before eq. 6 counted the first failure of the run of failures
    that ended in the switch (an allocation, usually). While failures are counted towards ``patience`` the
    learner keeps training the old environment on the batches that pass eq. 6, which can be the new look's:
    in the 3-D life-long run one such batch moved outdoor's latents 0.5 sd, the allocation that followed
    synced the anchor to that model, and dreaming then held the drift instead of undoing it (findings,
    section 6). Costs one copy of the model while failures are counted. Not in the paper; on in
    :data:`AGENT_LOOP` (:data:`SETTLED_ANCHOR`)."""
    alpha: float = 1000.0
    """Weight of the Wasserstein encoder proximity."""
    beta: float = 20.0
    """Weight of the Bernoulli-KL (or Gaussian) decoder proximity."""
    batch_size: int = 64
    """Dream batch size (z ~ p(z), s' ~ past environments)."""
    decoder_proximity: bool = True
    """False gives SD-[41]: dreaming with the encoder term only."""
    shared_reading: float = 0.0
    """Weight of the shared-reading term (not in the paper; 0 = the paper's eq. 9,
    :func:`vase_rl.core.dreaming.shared_reading_loss`): the current encoder reads the current environment's
    rendering of each dream's z, ``E[p_theta(x|z, s)]``, as the snapshot reads the past environment's
    ``x'`` of the same z, on the latents both environments use (u^s and u^s' of A.2). A factor that two
    environments share is then read the same way in both (issue 22: a position readout fit on moving inverse
    Fashion read 0.69 R^2 on moving Fashion, 0.79 the other way)."""
    shared_reading_source: Literal["prior", "posterior"] = "prior"
    """Codes the shared-reading term renders: "prior", each dream's z ~ p(z) (in the dream's past
    environment s'); "posterior", the current batch's posterior means mu(x), each in a past environment drawn
    uniformly, so that the current look's renderings are reconstructions of its real frames."""
    shared_reading_latents: Literal["both", "past"] = "both"
    """Latents the shared-reading term covers: "both", those used by the current and the past environment
    (u^s and u^s'); "past", every latent the past environment uses (u^s'), so that the current one cannot
    move a shared factor's reading into latents only it uses."""

    def __post_init__(self) -> None:
        if self.anchor not in ("every-tau", "on-switch"):
            raise ValueError(f"DreamConfig.anchor must be 'every-tau' or 'on-switch', got {self.anchor!r}")
        if self.tau < 1:
            raise ValueError(f"DreamConfig.tau must be >= 1, got {self.tau}")
        if self.sync_min_visit < 0:
            raise ValueError(f"DreamConfig.sync_min_visit must be >= 0, got {self.sync_min_visit}")
        if self.sync_source not in ("current", "settled"):
            raise ValueError(
                f"DreamConfig.sync_source must be 'current' or 'settled', got {self.sync_source!r}"
            )
        if self.shared_reading_source not in ("prior", "posterior"):
            raise ValueError(
                f"DreamConfig.shared_reading_source must be 'prior' or 'posterior', got {self.shared_reading_source!r}"
            )
        if self.shared_reading_latents not in ("both", "past"):
            raise ValueError(
                f"DreamConfig.shared_reading_latents must be 'both' or 'past', got {self.shared_reading_latents!r}"
            )
        if self.shared_reading < 0:
            raise ValueError(f"DreamConfig.shared_reading must be >= 0, got {self.shared_reading}")


@dataclass(frozen=True)
class Ablation:
    """Which VASE components are on: S (environment inference), D (dreaming), A (atypicality mask)."""

    infer_env: bool = True
    dream: bool = True
    mask: bool = True

    @classmethod
    def parse_row(cls, code: str) -> tuple[Ablation, bool]:
        """Parse a paper table row: ``(ablation, decoder_proximity)``; the one parser of ablation codes.

        Codes (case-insensitive): any of S, D, A (``"SDA"``, ``"SD"``, ...), ``"-"`` for none, and the
        suffix ``"-[41]"`` (Table 1's SD-[41] row: dreaming without the decoder proximity term, which
        needs D). Raises ValueError naming the code for anything else.

        >>> Ablation.parse_row("SD-[41]")
        (Ablation(infer_env=True, dream=True, mask=False), False)
        """
        raw = code.strip().upper()
        encoder_only = raw.endswith("-[41]")
        base = raw[: -len("-[41]")] if encoder_only else raw
        if base in ("-", "", "NONE"):
            base = ""
        unknown = set(base) - set("SDA")
        if unknown or len(set(base)) != len(base):
            raise ValueError(
                f"bad ablation code {code!r}: use each of S, D, A at most once, '-' for none, "
                "optionally followed by '-[41]'"
            )
        if encoder_only and "D" not in base:
            raise ValueError(f"bad ablation code {code!r}: '-[41]' drops dreaming's decoder term: needs D")
        return cls(infer_env="S" in base, dream="D" in base, mask="A" in base), not encoder_only

    @classmethod
    def parse(cls, code: str) -> Ablation:
        """Parse a code like ``"SDA"``, ``"SD"`` or ``"-"``; ``"SD-[41]"`` raises: use
        :meth:`VASEConfig.for_row`, which also switches the decoder proximity off."""
        ablation, decoder_proximity = cls.parse_row(code)
        if not decoder_proximity:
            raise ValueError(
                f"{code!r} also switches DreamConfig.decoder_proximity off; use VASEConfig.for_row({code!r})"
            )
        return ablation

    @property
    def code(self) -> str:
        out = ("S" if self.infer_env else "") + ("D" if self.dream else "") + ("A" if self.mask else "")
        return out or "-"


@dataclass(frozen=True)
class VASEConfig:
    """Everything a :class:`~vase_rl.core.learner.ContinualLearner` needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    dream: DreamConfig = field(default_factory=DreamConfig)
    ablation: Ablation = field(default_factory=Ablation)
    lr: float = 6e-4
    """Adam learning rate (A.1)."""
    batch_size: int = 64
    steps_per_env: int = 150_000
    """Training steps per dataset in the sequence experiments."""
    seed: int = 0
    preset: str = "custom"
    grad_clip_ratio: float = 0.0
    """Bounded updates (a departure; 0 = off, the paper): each step's gradient norm (after the processes'
    average) is clipped to ``grad_clip_ratio`` times a running mean of the past steps' (clipped) norms. A
    look the model has not learned yet (a new environment, or a switch to an environment that then trains
    on new frames) gives gradients 20-70x the usual norm for tens of steps, faster than Adam's second moment
    (beta2 = 0.999) follows, so the first updates are ~10x the usual step and move the shared encoder, and
    with it every past environment's latents, before dreaming can hold them (findings, section 6). Clipping
    keeps the change in gradient scale gradual (3x: the threshold grows ~2 % per step at
    ``grad_clip_decay`` 0.99); in steady training (norms within ~1.5x of their mean) it never acts."""
    grad_clip_decay: float = 0.99
    """Decay of the running mean of :attr:`grad_clip_ratio` (the first step's norm starts it)."""

    def __post_init__(self) -> None:
        if self.grad_clip_ratio != 0.0 and not self.grad_clip_ratio > 1.0:
            raise ValueError(f"VASEConfig.grad_clip_ratio must be 0 (off) or > 1, got {self.grad_clip_ratio}")
        if not 0.0 < self.grad_clip_decay < 1.0:
            raise ValueError(f"VASEConfig.grad_clip_decay must be in (0, 1), got {self.grad_clip_decay}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VASEConfig:
        m = dict(d["model"])
        m["conv_channels"] = tuple(m["conv_channels"])
        return cls(
            model=ModelConfig(**m),
            loss=LossConfig(**d["loss"]),
            mask=MaskConfig(**d["mask"]),
            inference=InferenceConfig(**d["inference"]),
            dream=DreamConfig(**d["dream"]),
            ablation=Ablation(**d["ablation"]),
            **{k: d[k] for k in ("lr", "batch_size", "steps_per_env", "seed", "preset")},
            **{k: d[k] for k in ("grad_clip_ratio", "grad_clip_decay") if k in d},  # absent before them
        )

    def with_overrides(self, **sections: Any) -> VASEConfig:
        """Return a copy with fields replaced, e.g. ``cfg.with_overrides(loss={"gamma": 1.0}, seed=3)``."""
        kw: dict[str, Any] = {}
        for name, value in sections.items():
            current = getattr(self, name)
            if isinstance(value, dict):
                kw[name] = dataclasses.replace(current, **value)
            else:
                kw[name] = value
        return dataclasses.replace(self, **kw)

    @classmethod
    def for_row(cls, code: str, entangled: bool = False, base: VASEConfig | None = None) -> VASEConfig:
        """The config of one row of the paper's tables: ``base`` (default: the paper preset) with the
        row's ablation ``code`` (:meth:`Ablation.parse_row`: ``"SDA"``, ``"SD-[41]"``, ``"-"``, ...) and
        objective (``entangled``: the beta=1 ELBO baseline, else eq. 3). Raises ValueError for a bad code.

        >>> cfg = VASEConfig.for_row("SD-[41]", entangled=True)
        >>> cfg.ablation.code, cfg.dream.decoder_proximity, cfg.loss.entangled, cfg.preset
        ('SD', False, True, 'paper')
        """
        ablation, decoder_proximity = Ablation.parse_row(code)
        base = base if base is not None else paper_preset()
        return base.with_overrides(
            ablation=ablation, dream={"decoder_proximity": decoder_proximity}, loss={"entangled": entangled}
        )


def paper_preset() -> VASEConfig:
    """The paper: appendix Table 2 (ablation-study row, 150k steps per dataset; meant for GPUs) with the
    plain Algorithm 1 (:meth:`InferenceConfig.paper`) and the stored mask of eq. 2/5
    (:meth:`MaskConfig.paper`). No rule beyond the paper runs.

    >>> cfg = paper_preset()
    >>> cfg.inference == InferenceConfig.paper(), cfg.mask == MaskConfig.paper(), cfg.steps_per_env
    (True, True, 150000)
    >>> cfg.inference.patience, cfg.inference.grace_steps, cfg.inference.scan_every, cfg.mask.spare_unmasked
    (1, 0, 0, False)
    """
    return VASEConfig(mask=MaskConfig.paper(), inference=InferenceConfig.paper(), preset="paper")


def paper_heuristics_preset() -> VASEConfig:
    """Appendix Table 2 at the paper's scale with the library's inference and mask rules on (the defaults
    of :class:`InferenceConfig` and :class:`MaskConfig`: patience 3, grace 200, keep the current
    environment, scan every 10 steps and before allocating, best candidate, pending batches not trained;
    spare latents unmasked, own used latents protected, never all masked) and dreaming's snapshot synced when
    the environment changes (``DreamConfig.anchor="on-switch"``: the drift of the left environments' latents
    falls from ~0.8 to ~0.2 sd in the agent's loop, docs/findings.md). The wrappers' default on CUDA.

    >>> cfg = paper_heuristics_preset()
    >>> cfg.model == paper_preset().model, cfg.loss == paper_preset().loss, cfg.dream.tau == paper_preset().dream.tau
    (True, True, True)
    >>> cfg.inference.patience, cfg.inference.grace_steps, cfg.inference.scan_every, cfg.mask.spare_unmasked
    (3, 200, 10, True)
    >>> cfg.dream.anchor  # dreaming anchored where each past environment was left
    'on-switch'
    """
    return VASEConfig(dream=DreamConfig(anchor="on-switch"), preset="paper-heuristics")


def cpu_preset() -> VASEConfig:
    """The paper's algorithm scaled to train the 3-dataset sequence in minutes on 2 CPU cores.

    32x32 canvas, half-width encoder (32,32,64,64 filters), 24 latents, 2,500 steps per dataset.
    Capacity: gamma=10, C_max=25 from step 1 (delta_C=1), upper-sided, with He init and a sharp initial
    posterior (init_logvar=-3); the choice and the measurements behind it are in docs/findings.md ("The cpu
    preset", "Why the latents carried no identity"). tau and the inference grace
    period are scaled with the step budget (tau=250, grace=200). The library's rules of
    :func:`paper_heuristics_preset` (inference, masks, the on-switch dreaming anchor) apply.

    >>> cfg = cpu_preset()
    >>> cfg.model.image_size, cfg.model.latent_dim, cfg.loss.gamma, cfg.loss.c_max, cfg.steps_per_env
    (32, 24, 10.0, 25.0, 2500)
    >>> cfg.dream.tau, cfg.dream.anchor, cfg.inference.grace_steps, cfg.inference.patience
    (250, 'on-switch', 200, 10)
    """
    return VASEConfig(
        model=ModelConfig(image_size=32, conv_channels=(32, 32, 64, 64), latent_dim=24, init_logvar=-3.0),
        loss=LossConfig(gamma=10.0, c_max=25.0, delta_c=1.0, capacity_mode="upper"),
        mask=MaskConfig(lambda0=0.5, lambda1=1.0, used_every=250, used_steps=20),
        inference=InferenceConfig(grace_steps=200, patience=10, jump_ratio=2.0, recon_ema=0.95),
        dream=DreamConfig(tau=250, anchor="on-switch"),
        steps_per_env=2500,
        preset="cpu",
    )


SIGN_PICK: dict[str, Any] = {
    "env_conditioning": "input+output",
    "new_env_code": "inherit",
    "new_env_sign": "pick",
    "env_input_view": "pick",
    "young_decoder_frozen_steps": 1000,
}
""":class:`ModelConfig` settings of the sign pick at allocation: a new environment starts as a copy of the
one the batch came from (``new_env_code="inherit"``), its output affine flipped when that reconstructs the
allocating batch better (``new_env_sign="pick"``), the encoder reading a flipped environment's frames
inverted (``env_input_view="pick"``), and the shared decoder held while it is young, so that a factor
shared across a contrast inversion is read with the same sign and the same values (``VASEConfig.
with_overrides(model=SIGN_PICK)``). Position readouts transfer 0.87 / 0.86 between moving Fashion and its
inverse with the view, 0.76 / 0.12 without it (3 validation seeds, findings section 5)."""
NO_VIEW: dict[str, Any] = {**SIGN_PICK, "env_input_view": "raw"}
""":data:`SIGN_PICK` as it was before the input view (``env_input_view="raw"``): the finished runs of the
benchmarks' ``vase-no-view`` method and the variants measured against it."""
TWO_SIDED: dict[str, Any] = {"kappa_low": 1.25, "patience_window": 20}
""":class:`InferenceConfig` settings of the two-sided test of eq. 6: a batch reconstructed below L~_s / 1.25
is not from s either (moving MNIST under a moving-Fashion model: 0.67-0.84 L~; a trained environment's
batches: 0.87-1.07), and the patience counts failures among the last 20 tested batches (10 of 20 with the
cpu preset's patience) so that new data near the threshold is not kept in the old environment by the
occasional batch that passes."""
STEADY_ANCHOR: dict[str, Any] = {"anchor": "on-switch", "sync_min_visit": 250}
""":class:`DreamConfig` settings of an anchor that a brief visit does not move: synced at a switch only after
the environment left trained a cpu-preset tau (250 steps) since it was entered (``DreamConfig.sync_min_visit``;
``cfg.with_overrides(dream=STEADY_ANCHOR)``)."""
SETTLED_ANCHOR: dict[str, Any] = {**STEADY_ANCHOR, "sync_source": "settled"}
""":data:`STEADY_ANCHOR` whose switch syncs the snapshot to the model as it was before eq. 6 began counting
the failures that ended in the switch (``DreamConfig.sync_source="settled"``), not to a model that a passing
batch of the new look has already moved. 3-D life-long run, seed 0: outdoor's drift 0.65 -> 0.35 sd after
the switch; where no batch passes before the switch it changes nothing (3-D seeds 1-2, bit for bit); sprite
life-long (5 seeds) and appearance-shift (5 seeds) returns level (docs/findings.md sections 6 and 11)."""
AGENT_LOOP: dict[str, dict[str, Any]] = {
    "dream": SETTLED_ANCHOR,
    "model": SIGN_PICK,
    "inference": TWO_SIDED,
}
"""``VASEConfig.with_overrides`` sections of VASE in an agent's loop: dreaming anchored where each past
environment was left, not moved by a brief visit nor by a batch of the new look that passed eq. 6 before the
switch (:data:`SETTLED_ANCHOR`), the :data:`SIGN_PICK`, and the :data:`TWO_SIDED` test, so that a look the
old environment reconstructs *better* gets its own environment instead of training (and moving) the old
one's latents. Life-long PPO through five looks, 5 seeds: forgetting 0.00 with it, 0.18 with every switch
syncing (``benchmarks/results/rl_lifelong``)."""
BOUNDED: dict[str, Any] = {"grad_clip_ratio": 3.0}
"""``VASEConfig.with_overrides`` settings of bounded updates (:attr:`VASEConfig.grad_clip_ratio`): each step's
gradient norm at most 3x its running mean (``cfg.with_overrides(**AGENT_LOOP, **BOUNDED)``)."""
PAPER_LOOP: dict[str, dict[str, Any]] = {
    "dream": {"anchor": "every-tau"},
    "model": {
        "env_conditioning": "input",
        "new_env_code": "random",
        "new_env_sign": "keep",
        "env_input_view": "raw",
        "young_decoder_frozen_steps": 0,
    },
}
"""The same sections as the paper has them, whatever a preset's defaults: the snapshot synced every tau
steps (eq. 7), a new environment's one-hot code random and fed to the decoder's input only, every weight
trained from the first step."""


PRESETS = {"paper": paper_preset, "paper-heuristics": paper_heuristics_preset, "cpu": cpu_preset}


def get_preset(name: str) -> VASEConfig:
    """Return the preset ``name``: ``"paper"``, ``"paper-heuristics"`` or ``"cpu"`` (README, "Presets")."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def rules_beyond_paper(cfg: VASEConfig) -> tuple[str, ...]:
    """The rules of ``cfg`` that depart from the paper: every :class:`InferenceConfig` / :class:`MaskConfig`
    field whose value differs from :meth:`InferenceConfig.paper` / :meth:`MaskConfig.paper`, and
    :attr:`DreamConfig.anchor` when it is not the paper's every-tau sync, :attr:`DreamConfig.shared_reading`
    and :attr:`LossConfig.rarity_power` when they are on, as
    ``"section.field"`` for a rule switched on and ``"section.field=value"`` otherwise. The paper's own
    hyperparameters (kappa, the L~_s decay, lambda0/lambda1, the noise-tolerance test's T, steps, learning
    rate and period) are values, not rules, and are never listed.

    >>> rules_beyond_paper(get_preset("paper"))
    ()
    >>> rules_beyond_paper(get_preset("cpu"))[:3]
    ('inference.grace_steps=200', 'inference.patience=10', 'inference.train_on_pending=False')
    >>> "inference.jump_ratio=2.0" in rules_beyond_paper(get_preset("cpu"))
    True
    >>> rules_beyond_paper(paper_preset().with_overrides(mask={"new_env_used": "none"}))
    ('mask.new_env_used=none',)
    >>> rules_beyond_paper(paper_preset().with_overrides(dream={"anchor": "on-switch"}))
    ('dream.anchor=on-switch',)
    >>> rules_beyond_paper(paper_preset().with_overrides(dream={"shared_reading": 1000.0}))
    ('dream.shared_reading=1000',)
    >>> rules_beyond_paper(paper_preset().with_overrides(loss={"rarity_power": 0.5}))
    ('loss.rarity_power=0.5',)
    """
    values = {
        "kappa",
        "recon_ema",
        "lambda0",
        "lambda1",
        "used_threshold",
        "used_steps",
        "used_lr",
        "used_every",
    }
    out = []
    for section, plain in (("inference", InferenceConfig.paper()), ("mask", MaskConfig.paper())):
        current = getattr(cfg, section)
        for f in dataclasses.fields(current):
            value = getattr(current, f.name)
            if f.name in values or value == getattr(plain, f.name):
                continue
            out.append(f"{section}.{f.name}" if value is True else f"{section}.{f.name}={value}")
    if cfg.dream.anchor != DreamConfig().anchor:
        out.append(f"dream.anchor={cfg.dream.anchor}")
    if cfg.dream.shared_reading > 0:
        out.append(f"dream.shared_reading={cfg.dream.shared_reading:g}")
    if cfg.loss.rarity_power > 0:
        out.append(f"loss.rarity_power={cfg.loss.rarity_power:g}")
    return tuple(out)
