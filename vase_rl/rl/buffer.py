"""The rollout buffer an online learner trains from: a FIFO of recent preprocessed frames (no replay of
old environments: VASE's dreaming replaces it)."""

from __future__ import annotations

import torch

__all__ = ["RolloutBuffer"]


class RolloutBuffer:
    """FIFO of the ``capacity`` most recent preprocessed frames, sampled uniformly without replacement.

    Storage: (capacity, C, S, S) uint8 on the learner's device (frames in [0, 1] quantised to 1/255,
    a quarter of float32's memory: 16 MB for 4096 frames at 64x64), allocated on the first ``add``.
    """

    def __init__(self, capacity: int, frame_shape: tuple[int, int, int], device: torch.device) -> None:
        self.capacity, self.frame_shape, self.device = capacity, frame_shape, device
        self.data: torch.Tensor | None = None
        self.size = self.head = 0

    def __len__(self) -> int:
        return self.size

    def add(self, x: torch.Tensor) -> None:
        """Append frames x (B, C, S, S) float in [0, 1], overwriting the oldest once full."""
        if self.data is None:
            self.data = torch.empty((self.capacity, *self.frame_shape), dtype=torch.uint8, device=self.device)
        x = x[-self.capacity :]
        idx = (self.head + torch.arange(x.shape[0], device=self.device)) % self.capacity
        self.data[idx] = x.mul(255.0).round_().to(torch.uint8)
        self.head = (self.head + x.shape[0]) % self.capacity
        self.size = min(self.size + x.shape[0], self.capacity)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n distinct buffered frames (n, C, S, S) float in [0, 1]; ValueError if fewer than n are held."""
        if self.data is None or n > self.size:
            raise ValueError(f"cannot sample {n} frames from a rollout buffer holding {self.size}")
        idx = torch.randperm(self.size, generator=generator)[:n]
        return self.data[idx.to(self.device)].float().div_(255.0)

    def clear(self) -> None:
        self.size = self.head = 0
