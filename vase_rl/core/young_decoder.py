"""The young decoder's hold (beyond the paper): while an environment allocated after the first is young, the
decoder's shared weights are held where they were, so that the new environment adapts its own code and
output affine (and the encoder) to the old latents instead of the shared decoder re-mapping them.

``ModelConfig.young_decoder_frozen_steps`` sets how long, ``young_decoder_release_steps`` how gradually it
lets go, ``young_decoder_hold`` whether the held weights' gradients are zeroed too, and
``young_decoder_hold_for`` which environments are held (every one, or those the sign pick flipped). The
learner calls :func:`young_hold` before its optimizer step and :func:`restore_shared` after it.
"""

from __future__ import annotations

from typing import Any

import torch

from vase_rl.core.config import ModelConfig
from vase_rl.core.model import Decoder


def young_hold(
    decoder: Decoder, mc: ModelConfig, env: int, steps_in_env: int
) -> tuple[dict[str, torch.Tensor], float] | None:
    """(the decoder's weights before this step, the fraction of the step its shared part keeps) while
    ``mc.young_decoder_frozen_steps`` holds it (fraction 0; ``env`` allocated after the first and younger
    than that, ``steps_in_env`` its training steps so far; with ``young_decoder_hold_for="flipped"`` only if
    its sign was picked negative) or ``young_decoder_release_steps`` releases it (fraction (k + 1) / R in the
    k-th of R steps after the hold), else None."""
    hold, n = mc.young_decoder_frozen_steps, steps_in_env
    if hold <= 0 or env <= 0 or n >= hold + mc.young_decoder_release_steps:
        return None
    picked = decoder.picked_sign
    if picked is not None and float(picked[env]) > 0:  # hold_for="flipped" and env kept the sign
        return None
    keep = 0.0 if n < hold else (n - hold + 1) / mc.young_decoder_release_steps
    return {name: p.detach().clone() for name, p in decoder.named_parameters()}, keep


def own_index(name: str, env: int, latent_dim: int) -> tuple[Any, ...] | None:
    """The entries of decoder parameter ``name`` that belong to environment ``env`` alone (its code column,
    its output affine), or None for a shared parameter."""
    if name == "fc1.weight":
        return (slice(None), latent_dim + env)
    if name in ("env_scale", "env_bias"):
        return (env,)
    return None


def _pull_shared(
    name: str, t: torch.Tensor, toward: torch.Tensor | float, keep: float, env: int, latent_dim: int
) -> None:
    """In place: ``t`` (decoder parameter ``name`` or its gradient) <- keep * t + (1 - keep) * toward, except
    the entries environment ``env`` owns alone, which stay as they are."""
    own = own_index(name, env, latent_dim)
    kept = None if own is None else t[own].clone()
    t.mul_(keep).add_(toward, alpha=1.0 - keep)
    if kept is not None:
        t[own] = kept


@torch.no_grad()
def restore_shared(decoder: Decoder, held: dict[str, torch.Tensor], env: int, keep: float = 0.0) -> None:
    """Move ``decoder`` back towards ``held`` so that its shared part keeps the fraction ``keep`` of this
    step's update (0: put back); environment ``env``'s own code column and output affine keep all of it."""
    for name, p in decoder.named_parameters():
        _pull_shared(name, p, held[name], keep, env, decoder.cfg.latent_dim)


@torch.no_grad()
def zero_shared_grads(decoder: Decoder, env: int) -> None:
    """``ModelConfig.young_decoder_hold == "gradients"``: zero the gradients of the decoder's shared entries
    (all but environment ``env``'s own), so the optimizer's moments of the held weights decay."""
    for name, p in decoder.named_parameters():
        if p.grad is not None:
            _pull_shared(name, p.grad, 0.0, 0.0, env, decoder.cfg.latent_dim)
