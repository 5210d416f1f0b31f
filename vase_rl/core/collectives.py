"""How a learner step combines its batch with those of other processes: the collectives strategy.

:class:`~vase_rl.core.learner.ContinualLearner` writes one VASE step for one batch and asks its
:class:`Collectives` for the few points where data parallelism changes the step: the noise of this
process's rows, the global batch of the batch statistics (atypicality, eq. 4; the capacity term, eq. 3),
running inference and the used-latent test once for all processes, the mean of reported scalars, and the
gradient all-reduce. :class:`LocalCollectives` (the default) is one process: every operation is the
identity. :class:`vase_rl.runs.distributed.DDPCollectives` is the ``torch.distributed`` one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import torch

T = TypeVar("T")


class Stateful(Protocol):
    """State that a leader-only part of a step changes and every process must then hold."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> None: ...


@dataclass
class SharedState:
    """The learner state that environment inference and the used-latent test change: the inference state
    (memory, current environment, counters) and the random generator."""

    inference: Stateful
    generator: torch.Generator

    def state_dict(self) -> tuple[Any, torch.Tensor]:
        return self.inference.state_dict(), self.generator.get_state()

    def load_state_dict(self, state: tuple[Any, torch.Tensor]) -> None:
        self.inference.load_state_dict(state[0])
        self.generator.set_state(state[1])


class Collectives(Protocol):
    """The data-parallel operations of a learner step (see the module docstring)."""

    def randn(self, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """N(0, I) noise of ``like``'s shape for this process's rows of the global batch."""
        ...

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        """The global batch (W * b, ...) of every process's ``local`` (b, ...), without gradient."""
        ...

    def gather_with_grad(self, local: torch.Tensor) -> torch.Tensor:
        """As :meth:`gather`, with the gradient of a loss on the global batch reaching the local rows."""
        ...

    def mean(self, values: list[float]) -> list[float]:
        """Element-wise mean over processes of per-process batch means."""
        ...

    def on_leader(self, fn: Callable[[], T], shared: Stateful) -> T:
        """Run ``fn`` once for all processes (on global-batch tensors) and return its result everywhere;
        afterwards every process holds the leader's ``shared`` state. An exception is raised everywhere."""
        ...

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace each gradient by its mean over processes (before the optimizer step)."""
        ...


class LocalCollectives:
    """One process: the global batch is the local batch, and every operation is the identity."""

    def randn(self, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(like.shape, device=like.device, generator=generator)

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        return local.detach()

    def gather_with_grad(self, local: torch.Tensor) -> torch.Tensor:
        return local

    def mean(self, values: list[float]) -> list[float]:
        return list(values)

    def on_leader(self, fn: Callable[[], T], shared: Stateful) -> T:
        return fn()

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        return None
