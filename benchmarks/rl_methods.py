"""The methods of the sprite-canvas RL benchmarks (``rl_transfer.py``, ``rl_identity.py``,
``rl_lifelong.py``) and the config each one builds.

``vase`` (the cpu preset, learning online from the agent's frames), ``entangled`` (VASE with the beta=1
ELBO, same online learning), ``untrained`` (a frozen untrained VASE encoder), ``pixels`` (no learner: PPO on
the raw frames) and ``cci`` (VASE's objective with ablation "-": environment inference, dreaming and masks
off); and the cpu preset's named :data:`VARIANTS` (``vase-paper-anchor``: the paper's every-tau dreaming
anchor whatever the preset's default; ``vase-on-switch``: the anchor synced on switches; ``vase-pick``: that
anchor and the sign pick without the input view, ``vase_rl.core.config.NO_VIEW``; ``vase-agent-loop``:
``vase_rl.core.config.AGENT_LOOP`` -- the sign pick with the input view, the two-sided test of eq. 6 and an
anchor that a brief visit does not move, synced at a switch to the model from before eq. 6 began counting
failures, ``SETTLED_ANCHOR``; ``vase-current-sync``: :data:`LOOP_BEFORE_SETTLED`, ``AGENT_LOOP`` with a
switch syncing to the model as it is then (``STEADY_ANCHOR``, ``AGENT_LOOP`` before ``SETTLED_ANCHOR`` joined
it); ``vase-no-view``: that without the input view (``ModelConfig.env_input_view="raw"``, ``AGENT_LOOP``
before the view joined it); and, each measured against ``vase-no-view`` and so without the view:
``vase-brief-sync`` (every switch syncing the anchor, as before ``STEADY_ANCHOR``), ``vase-ramp`` (the held
decoder released over 250 steps, ``ModelConfig.young_decoder_release_steps``); ``vase-bounded``:
:data:`LOOP_BEFORE_SETTLED` and ``BOUNDED``, the gradient-norm bound); ``vase-64px``: ``AGENT_LOOP`` reading
64x64 frames (the MiniWorld levels' size, which PPO on pixels reads) instead of the cpu preset's 32x32);
``vase-cmax100``: ``AGENT_LOOP`` with eq. 3's capacity at 100 nats, 4x the cpu preset's;
``vase-cmax100-tol``: that with eq. 6's mask test letting 10 % of the used latents differ,
``InferenceConfig.mask_tolerance``); ``vase-rarity``: ``AGENT_LOOP`` with the reconstruction's pixels
weighted by their colour's rarity in the batch, ``LossConfig.rarity_power`` 0.5; ``vase-cmax100-rarity``: that
with eq. 3's capacity at 100 nats; ``vase-rarity-dream-0.1x``: ``vase-rarity`` with dreaming's eq. 9 weights
alpha, beta at a tenth; ``vase-rarity-no-hold``: ``vase-rarity`` without the young decoder's hold,
``ModelConfig.young_decoder_frozen_steps`` 0; ``vase-rarity-hold-250``: with it for 250 steps instead of 1,000;
``vase-dream-0.1x``: ``AGENT_LOOP`` with eq. 9's weights at a tenth, the weights at which Table 1's maximum
accuracy meets CCI-VAE's).
:func:`stale_config` tells a finished run whose method has changed since.
"""

from __future__ import annotations

from typing import Any

from vase_rl.core.config import AGENT_LOOP, BOUNDED, NO_VIEW, PAPER_LOOP, STEADY_ANCHOR

LOOP_BEFORE_SETTLED: dict[str, Any] = {**AGENT_LOOP, "dream": STEADY_ANCHOR}
"""``AGENT_LOOP`` before the settled anchor joined it (a switch syncs to the model as it is then): the
finished runs of ``vase-current-sync`` and of the variants measured against it."""

DREAM_TENTH: dict[str, Any] = {**AGENT_LOOP["dream"], "alpha": 100.0, "beta": 2.0}
"""``AGENT_LOOP``'s dreaming with eq. 9's weights alpha, beta at a tenth of the paper's 1000 / 20."""

RARITY: dict[str, Any] = {**AGENT_LOOP, "loss": {"rarity_power": 0.5}}
"""``AGENT_LOOP`` with the reconstruction's pixels weighted by their colour's rarity (``vase-rarity``)."""

VARIANTS: dict[str, dict[str, Any]] = {
    "vase-paper-anchor": PAPER_LOOP,
    "vase-on-switch": {**PAPER_LOOP, "dream": {"anchor": "on-switch"}},
    "vase-pick": {"dream": {"anchor": "on-switch"}, "model": NO_VIEW},
    "vase-agent-loop": AGENT_LOOP,
    "vase-current-sync": LOOP_BEFORE_SETTLED,
    "vase-no-view": {**LOOP_BEFORE_SETTLED, "model": NO_VIEW},
    "vase-brief-sync": {
        **AGENT_LOOP,
        "model": NO_VIEW,
        "dream": {"anchor": "on-switch", "sync_min_visit": 0},
    },
    "vase-bounded": {**LOOP_BEFORE_SETTLED, **BOUNDED},
    "vase-ramp": {**LOOP_BEFORE_SETTLED, "model": {**NO_VIEW, "young_decoder_release_steps": 250}},
    "vase-64px": {**AGENT_LOOP, "model": {**AGENT_LOOP["model"], "image_size": 64}},
    "vase-cmax100": {**AGENT_LOOP, "loss": {"c_max": 100.0}},
    "vase-cmax100-tol": {
        **AGENT_LOOP,
        "loss": {"c_max": 100.0},
        "inference": {**AGENT_LOOP["inference"], "mask_tolerance": 0.1},
    },
    "vase-rarity": RARITY,
    "vase-cmax100-rarity": {**AGENT_LOOP, "loss": {"c_max": 100.0, "rarity_power": 0.5}},
    "vase-dream-0.1x": {**AGENT_LOOP, "dream": DREAM_TENTH},
    "vase-rarity-no-hold": {**RARITY, "model": {**AGENT_LOOP["model"], "young_decoder_frozen_steps": 0}},
    "vase-rarity-hold-250": {**RARITY, "model": {**AGENT_LOOP["model"], "young_decoder_frozen_steps": 250}},
    "vase-rarity-dream-0.1x": {**RARITY, "dream": DREAM_TENTH},
}
"""The cpu preset's variants by name: ``VASEConfig.with_overrides`` sections on top of it, explicit whatever
the preset's defaults (``vase_rl.core.config.PAPER_LOOP``: the paper's anchor and reuse)."""
ALL_METHODS = ("vase", *VARIANTS, "cci", "entangled", "untrained", "pixels")
"""Every method :func:`make_learner` builds."""
LEARNING = ("vase", *VARIANTS, "cci", "entangled")
"""Methods whose representation keeps learning online (from the agent's rollouts and reward-free frames)."""


def method_config(method: str, seed: int, overrides: dict[str, Any] | None = None) -> Any:
    """The ``VASEConfig`` of ``method`` at ``seed`` (None for pixels): the cpu preset; ``entangled``: the
    beta=1 ELBO; the named :data:`VARIANTS` (``vase-paper-anchor``, ``vase-on-switch``, ``vase-pick``: the
    anchor on switch and the sign pick, ``vase-agent-loop``: ``vase_rl.core.config.AGENT_LOOP``, ...);
    ``cci``: ``VASEConfig.for_row("-")`` on the cpu preset (S, D and A off). ``overrides``
    (``VASEConfig.with_overrides`` sections) go on top, e.g. ``{"dream": {"anchor": "on-switch"}}``."""
    from vase_rl.core.config import VASEConfig, get_preset

    if method not in ALL_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {ALL_METHODS}")
    if method == "pixels":
        return None
    config = get_preset("cpu").with_overrides(seed=seed)
    if method == "entangled":
        config = config.with_overrides(loss={"entangled": True})
    elif method in VARIANTS:
        config = config.with_overrides(**VARIANTS[method])
    elif method == "cci":
        config = VASEConfig.for_row("-", base=config)
    return config.with_overrides(**overrides) if overrides else config


def make_learner(
    method: str, seed: int, overrides: dict[str, Any] | None = None
) -> tuple[Any, dict[str, Any] | None]:
    """The method's learner (None for pixels) and its config dict (:func:`method_config`); ``untrained``
    is frozen at once."""
    from vase_rl.core.learner import ContinualLearner

    config = method_config(method, seed, overrides)
    if config is None:
        return None, None
    learner = ContinualLearner(config, device="cpu")
    if method == "untrained":
        learner.freeze()
    return learner, config.to_dict()


def stale_config(record: dict[str, Any], overrides: dict[str, Any] | None = None) -> list[str]:
    """The config fields where a finished run's ``vase_config`` differs from what its method builds today
    (``overrides``: the script's for that method); a field the run's config lacks is read at its default,
    the value that reproduces the code before the field existed. Empty: the run is current.

    >>> rec = {"method": "vase-agent-loop", "seed": 0, "vase_config": method_config("vase-agent-loop", 0).to_dict()}
    >>> stale_config(rec)
    []
    >>> del rec["vase_config"]["dream"]["sync_min_visit"]  # a run from before the steady anchor
    >>> stale_config(rec)
    ['dream.sync_min_visit']
    """
    import json

    from vase_rl.core.config import VASEConfig

    if record.get("vase_config") is None:
        return []
    now = method_config(record["method"], record["seed"], overrides)

    def flat(config: Any) -> dict[str, Any]:
        d = json.loads(json.dumps(config.to_dict()))
        return {
            f"{name}.{k}" if isinstance(v, dict) else name: x
            for name, v in d.items()
            for k, x in (v.items() if isinstance(v, dict) else [(None, v)])
        }

    then, want = flat(VASEConfig.from_dict(record["vase_config"])), flat(now)
    return sorted(k for k in want if then.get(k) != want[k])
