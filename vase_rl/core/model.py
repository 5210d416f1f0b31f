"""Networks of VASE (appendix A.1): encoder, environment-conditioned decoder, environment classifier."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vase_rl.core.config import ModelConfig


class Encoder(nn.Module):
    """q_phi(z|x): four 4x4 stride-2 ReLU convs -> fc(hidden) ReLU -> linear (mu, log sigma^2).

    ``forward(x, env=None)``: x (B, C, H, W) float in [0, 1] -> mu (B, N), logvar (B, N), hidden
    (B, hidden_dim). ``hidden`` is the encoder's last hidden layer, on which the environment classifier sits.
    With ``ModelConfig.env_input_view="pick"`` the encoder holds ``input_sign`` (max_environments,), +1 or
    -1 per environment (set at allocation by the learner), and ``env`` (B,) int64, when given, makes it read
    each frame in its environment's view: as it is (+1) or inverted, 1 - x (-1). ``env=None``: the raw
    frames, what the environment classifier reads.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = cfg.channels
        for c_out in cfg.conv_channels:
            layers += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.ReLU(inplace=True)]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.feature_side = cfg.image_size // 16
        self.fc = nn.Linear(c_in * self.feature_side**2, cfg.hidden_dim)
        self.head = nn.Linear(cfg.hidden_dim, 2 * cfg.latent_dim)
        self.head._vase_linear_output = True  # type: ignore[assignment]  # feeds no ReLU (kaiming_init)
        self.latent_dim = cfg.latent_dim
        self.input_sign: torch.Tensor | None
        self.register_buffer(
            "input_sign", torch.ones(cfg.max_environments) if cfg.env_input_view == "pick" else None
        )

    def view(self, x: torch.Tensor, env: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, H, W) as environments ``env`` (B,) view it: frames of an environment with input sign -1
        inverted (1 - x); x itself when no frame needs it (or ``env`` is None, or views are off)."""
        if env is None or self.input_sign is None:
            return x
        sign = self.input_sign[env]
        if bool((sign > 0).all()):
            return x
        return 0.5 + sign[:, None, None, None] * (x - 0.5)

    def forward(
        self, x: torch.Tensor, env: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.convs(self.view(x, env)).flatten(1)
        hidden = F.relu(self.fc(h))
        mu, logvar = self.head(hidden).chunk(2, dim=1)
        return mu, logvar, hidden


class Decoder(nn.Module):
    """p_theta(x|z, s): the transpose of the encoder, fed [z, one_hot(s)].

    ``forward(z, env)``: z (B, N), env (B,) int64 -> logits (Bernoulli) or means (Gaussian), (B, C, H, W).
    For the Bernoulli likelihood the output is the pre-sigmoid logit; for the Gaussian it is the mean.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        widths = list(cfg.conv_channels)
        self.feature_side = cfg.image_size // 16
        self.fc1 = nn.Linear(cfg.latent_dim + cfg.max_environments, cfg.hidden_dim)
        self.fc2 = nn.Linear(cfg.hidden_dim, widths[-1] * self.feature_side**2)
        layers: list[nn.Module] = []
        outs = widths[-2::-1] + [cfg.channels]
        c_in = widths[-1]
        for i, c_out in enumerate(outs):
            layers.append(nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1))
            if i < len(outs) - 1:
                layers.append(nn.ReLU(inplace=True))
            c_in = c_out
        self.deconvs = nn.Sequential(*layers)
        layers[-1]._vase_linear_output = True  # type: ignore[assignment]  # logits / means: no ReLU after
        self.top_channels = widths[-1]
        self.env_scale: nn.Parameter | None = None
        self.env_bias: nn.Parameter | None = None
        if cfg.env_conditioning == "input+output":  # per-environment affine of the output channels
            self.env_scale = nn.Parameter(torch.ones(cfg.max_environments, cfg.channels))
            self.env_bias = nn.Parameter(torch.zeros(cfg.max_environments, cfg.channels))
        self.picked_sign: torch.Tensor | None  # ModelConfig.young_decoder_hold_for="flipped": +1 / -1 per env
        self.register_buffer(
            "picked_sign",
            torch.ones(cfg.max_environments) if cfg.young_decoder_hold_for == "flipped" else None,
        )

    def forward(self, z: torch.Tensor, env: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(env, self.cfg.max_environments).to(z.dtype)
        h = F.relu(self.fc1(torch.cat([z, one_hot], dim=1)))
        h = F.relu(self.fc2(h)).view(-1, self.top_channels, self.feature_side, self.feature_side)
        out = self.deconvs(h)
        if self.env_scale is not None and self.env_bias is not None:
            out = out * self.env_scale[env][:, :, None, None] + self.env_bias[env][:, :, None, None]
        return out

    def mean(self, z: torch.Tensor, env: torch.Tensor) -> torch.Tensor:
        """Mean of p(x|z,s) in [0, 1] (sigmoid of the logits for Bernoulli)."""
        out = self.forward(z, env)
        return torch.sigmoid(out) if self.cfg.likelihood == "bernoulli" else out.clamp(0.0, 1.0)


class EnvClassifier(nn.Module):
    """q_psi(s|x) (A.1): one linear layer + softmax on the encoder's last hidden layer.

    Gradients to the encoder are stopped: ``forward`` detaches its input.
    ``forward(hidden (B, hidden_dim), n_seen)`` -> logits (B, max_environments) where logits of
    environments not yet allocated (index >= n_seen) are -inf.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(cfg.hidden_dim, cfg.max_environments)

    def forward(self, hidden: torch.Tensor, n_seen: int) -> torch.Tensor:
        logits = self.linear(hidden.detach())
        if n_seen < logits.shape[1]:
            mask = torch.zeros_like(logits, dtype=torch.bool)
            mask[:, n_seen:] = True
            logits = logits.masked_fill(mask, float("-inf"))
        return logits


def read_in_view(
    encoder: Encoder, classifier: EnvClassifier, x: torch.Tensor, n_seen: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes of frames x (B, C, H, W) of unknown environments: (mu, logvar, env) with env (B,) int64 the
    argmax of q(s|x) per frame (the classifier reads the raw frames) and each frame encoded in that
    environment's view (``ModelConfig.env_input_view``); one encoder pass when no frame is viewed otherwise."""
    mu, logvar, hidden = encoder(x)
    env = classifier(hidden, max(n_seen, 1)).argmax(1)
    if encoder.input_sign is None:
        return mu, logvar, env
    flip = encoder.input_sign[env] < 0
    if bool(flip.any()):
        mu, logvar = mu.clone(), logvar.clone()
        mu[flip], logvar[flip], _ = encoder(x[flip], env[flip])
    return mu, logvar, env


class VASEModel(nn.Module):
    """The three networks together, so one ``state_dict`` / ``deepcopy`` covers the snapshot.

    The 4-D weights (convolutions) are laid out channels-last (:func:`channels_last_`): a layout, not a
    change of the model -- the same parameters, state_dict keys and values, outputs equal to the
    contiguous layout's within float rounding (``tests/test_speed_paths.py``), and oneDNN's fast path on
    CPU (``benchmarks/results/speed.md``: 1.2-1.3x the training steps per CPU-second). ``.to(device)``
    keeps the layout.

    >>> model = VASEModel(ModelConfig(image_size=32, conv_channels=(32, 32, 64, 64)))
    >>> model.encoder.convs[0].weight.is_contiguous(memory_format=torch.channels_last)
    True
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.classifier = EnvClassifier(cfg)
        if cfg.init == "kaiming":
            kaiming_init(self)
        with torch.no_grad():  # (mu, log sigma^2) head: log-variance outputs start at init_logvar
            self.encoder.head.bias[cfg.latent_dim :] += cfg.init_logvar
        channels_last_(self)


def channels_last_(module: nn.Module) -> nn.Module:
    """Lay out ``module``'s 4-D parameters (conv weights) channels-last, in place; returns ``module``.

    Values are unchanged (only strides): oneDNN then runs the convolutions on NHWC data, 1.2-1.35x
    faster per CPU-second than on NCHW for both presets' training steps (``benchmarks/speed.py``).
    1-D and 2-D parameters (biases, linear layers) have no channels-last form and are left as they are.
    """
    return module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def kaiming_init(module: nn.Module) -> None:
    """He-normal weights and zero biases for every conv / linear layer of ``module``.

    PyTorch's default init shrinks the signal by ~sqrt(3) per layer; through VASE's 12 layers from
    pixels to logits that leaves mu(x) ~0 at the start, and the decoder learns the mean image instead
    of using z (see ``ModelConfig.init``). Weights get ``std = gain / sqrt(fan_in)`` with the ReLU gain
    sqrt(2), where ``fan_in`` is the number of inputs one output unit sums: ``in * k * k`` for a conv,
    ``in * (k / stride)^2`` for a transposed conv (each output pixel sees (k/s)^2 kernel taps per input
    channel). Layers feeding no ReLU (the encoder's (mu, log sigma^2) head, the decoder's logits) get
    gain 1.
    """
    layers = [m for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    for m in layers:
        if isinstance(m, nn.ConvTranspose2d):
            k, s = m.kernel_size[0], m.stride[0]
            fan_in = m.in_channels * max(1.0, (k / s) ** 2)
        else:
            fan_in = m.weight[0].numel()
        gain = 1.0 if getattr(m, "_vase_linear_output", False) else 2.0**0.5
        with torch.no_grad():
            m.weight.normal_(0.0, gain / fan_in**0.5)
            if m.bias is not None:
                m.bias.zero_()
