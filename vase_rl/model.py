"""Networks of VASE (appendix A.1): encoder, environment-conditioned decoder, environment classifier."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig


class Encoder(nn.Module):
    """q_phi(z|x): four 4x4 stride-2 ReLU convs -> fc(hidden) ReLU -> linear (mu, log sigma^2).

    ``forward(x)``: x (B, C, H, W) float in [0, 1] -> mu (B, N), logvar (B, N), hidden (B, hidden_dim).
    ``hidden`` is the encoder's last hidden layer, on which the environment classifier sits.
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
        self.latent_dim = cfg.latent_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.convs(x).flatten(1)
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
        self.top_channels = widths[-1]

    def forward(self, z: torch.Tensor, env: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(env, self.cfg.max_environments).to(z.dtype)
        h = F.relu(self.fc1(torch.cat([z, one_hot], dim=1)))
        h = F.relu(self.fc2(h)).view(-1, self.top_channels, self.feature_side, self.feature_side)
        return self.deconvs(h)

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


class VASEModel(nn.Module):
    """The three networks together, so one ``state_dict`` / ``deepcopy`` covers the snapshot."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.classifier = EnvClassifier(cfg)
