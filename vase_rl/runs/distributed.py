"""Data-parallel training of the VASE learner across processes: ``torchrun``, NCCL on GPUs, gloo on CPU.

Each of W processes (ranks) trains on its own slice of b images of a global batch of B = W * b, and
:class:`DistributedLearner` makes the step equal -- within float tolerance -- to one
:class:`~vase_rl.core.learner.ContinualLearner` step on the combined batch (``tests/test_distributed.py``
checks it with 2 gloo processes):

The learner's step is written once; :class:`DDPCollectives`, the learner's collectives strategy
(:mod:`vase_rl.core.collectives`), supplies what changes:

* **Gradients** are averaged over ranks with one flattened ``all_reduce`` just before
  ``optimizer.step()``. This is data parallelism without ``DistributedDataParallel``'s overlap
  of communication and backward: a VASE step runs several forward passes through the encoder and
  decoder *submodules* (data, dreams, candidates), which DDP's module wrapper does not see.
* **Per-batch statistics** are computed over the combined batch: the atypicality alpha (eq. 4) from the
  all-gathered latent samples, and the batch-mean KL of the capacity term (eq. 3) from the all-gathered
  per-image KL, with a gradient that reaches each rank's own images (see :class:`_GatherBatch`). The
  reconstruction and classifier terms are batch means, so averaging gradients already combines them;
  the reconstruction loss folded into L~_s and the reported scalars are all-reduced.
* **Random numbers**: every rank holds the same generator; posterior/prior noise is drawn for the global
  batch and each rank keeps its rows, so the draws equal the single-process ones. Dreams (eq. 7) are the
  same batch on every rank.
* **Environment inference** (eq. 6 / Algorithm 1) and the **used-latent** test (A.2): rank 0 runs them on
  the all-gathered batch and broadcasts the decision together with the environment memory, the
  generator state and the inference counters, so masks, memories and snapshot syncs (every tau steps,
  identical parameters) are the same on every rank. An exception on rank 0 (e.g.
  ``EnvironmentOverflowError``) is re-raised on every rank.
* **Checkpoints** are ordinary learner checkpoints written by rank 0 (all ranks hold the same state);
  they load into a plain ``ContinualLearner``.

Requirements: equal local batch sizes >= 2 (checked on every step). A non-finite loss is detected by
the rank that computed it; if only some ranks see it the others stop at the collective timeout
(``--timeout-s``). The torchrun entry point (:mod:`vase_rl.torchrun`) runs the loop of ``vase-rl train``
(:class:`~vase_rl.runs.training.SequenceTrainer`) with this learner and :class:`ProcessGroupRanks` and takes
its options (:mod:`vase_rl.cli`; probes and imagination run in one process only). Command line
(``docs/scaling.md``)::

    torchrun --nproc_per_node=2 -m vase_rl.torchrun --sequence moving-fashion,mnist --preset cpu \
        --out runs/ddp
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from vase_rl.core.collectives import Stateful
from vase_rl.core.config import VASEConfig
from vase_rl.core.learner import ContinualLearner
from vase_rl.core.step_result import StepResult
from vase_rl.runs.training import Ranks

T = TypeVar("T")


def gather_batch(local: torch.Tensor) -> torch.Tensor:
    """All ranks' ``local`` (b, ...) concatenated in rank order: (W * b, ...). No gradient."""
    parts = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, local.detach().contiguous())
    return torch.cat(parts)


def mean_over_ranks(values: list[float]) -> list[float]:
    """Element-wise mean of a list of floats over ranks (one ``all_reduce``)."""
    t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class _GatherBatch(torch.autograd.Function):
    """All-gather along the batch with a gradient for the local rows.

    Every rank evaluates the *same* loss L on the gathered (W * b, ...) tensor, so the gradient arriving
    at this rank's rows is dL/d(local rows). It is multiplied by W because the gradients of all ranks are
    then averaged (divided by W): the sum over ranks of each rank's own rows is the full dL/dtheta.
    """

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor) -> torch.Tensor:
        ctx.rows, ctx.rank, ctx.world = local.shape[0], dist.get_rank(), dist.get_world_size()
        return gather_batch(local)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        start = ctx.rank * ctx.rows
        return grad[start : start + ctx.rows] * ctx.world


class DDPCollectives:
    """The :class:`~vase_rl.core.collectives.Collectives` of ``torch.distributed`` (see the module docstring).

    Needs an initialised default process group and equal local batch sizes (checked by
    :meth:`DistributedLearner.train_step`). Rank 0 is the leader: :meth:`on_leader` runs there on
    global-batch tensors, during which :meth:`randn` draws for the whole (gathered) tensor.
    """

    def __init__(self) -> None:
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self._leading = False  # True while rank 0 runs a step part on the all-gathered batch

    def randn(self, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Noise for this rank's rows, drawn for the global batch so that it equals one process's draw."""
        if self._leading:
            return torch.randn(like.shape, device=like.device, generator=generator)
        rows = like.shape[0]
        full = torch.randn((self.world_size * rows, *like.shape[1:]), device=like.device, generator=generator)
        return full[self.rank * rows : (self.rank + 1) * rows]

    def gather(self, local: torch.Tensor) -> torch.Tensor:
        return gather_batch(local)

    def gather_with_grad(self, local: torch.Tensor) -> torch.Tensor:
        return _GatherBatch.apply(local)

    def mean(self, values: list[float]) -> list[float]:
        return mean_over_ranks(values)

    def on_leader(self, fn: Callable[[], T], shared: Stateful) -> T:
        """Run ``fn`` on rank 0 only, broadcast its result and the ``shared`` state; the other ranks load it.

        ``fn`` must not call collectives. An exception raised by ``fn`` is raised on every rank.
        """
        box: list[Any] = [None]
        if self.rank == 0:
            self._leading = True
            try:
                box[0] = ("ok", fn(), shared.state_dict())
            except Exception as exc:  # noqa: BLE001  (re-raised on every rank below)
                box[0] = ("error", exc, None)
            finally:
                self._leading = False
        dist.broadcast_object_list(box, src=0)
        kind, value, state = box[0]
        if kind == "error":
            raise value
        if self.rank != 0:
            shared.load_state_dict(state)
        return value

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        """Replace every gradient by its mean over ranks (one flat all_reduce).

        Which parameters have a gradient is the same on every rank (same control flow, broadcast decisions).
        """
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


class DistributedLearner(ContinualLearner):
    """A :class:`ContinualLearner` whose ``train_step`` is one data-parallel step of the combined batch.

    Needs an initialised default process group (``torch.distributed.init_process_group``; ``torchrun``
    sets the environment). Construct it on every rank with the same config; parameters are broadcast
    from rank 0. ``train_step(x)`` takes this rank's b images (same b on every rank) and returns the
    scalars of the combined batch. The step itself is the learner's, with :class:`DDPCollectives`.
    """

    def __init__(self, config: VASEConfig, device: str | torch.device = "auto") -> None:
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(
                "DistributedLearner needs an initialised process group: launch with torchrun and call "
                "torch.distributed.init_process_group(), or use ContinualLearner in a single process"
            )
        super().__init__(config, device, collectives=DDPCollectives())
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        with torch.no_grad():
            for tensor in self.model.state_dict().values():
                dist.broadcast(tensor, src=0)
        self.snapshot.sync(self.model)

    def on_rank0(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on rank 0 only (on all-gathered tensors), broadcast its result and the shared state
        (inference state and generator). ``fn`` must not call collectives; its exception is raised on every
        rank."""
        return self.collectives.on_leader(fn, self.shared)

    def train_step(self, x: Any) -> StepResult:
        """One data-parallel VASE update; ``x``: this rank's images (b >= 2, the same b on every rank).

        Returns :meth:`ContinualLearner.train_step`'s result for the combined batch of W * b images.
        """
        local, rows, problem = None, 0, ""
        try:  # validate before any collective, so that a bad batch on one rank cannot hang the others
            local = self.preprocess(x)
            rows = local.shape[0]
        except (TypeError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        sizes = gather_batch(torch.tensor([rows], device=self.device)).tolist()
        if problem or len(set(sizes)) > 1 or min(sizes) < 2:
            raise ValueError(
                f"rank {self.rank}: every rank needs a valid batch of the same size b >= 2; "
                f"local batch sizes by rank: {sizes} (0 = invalid input){'; ' + problem if problem else ''}"
            )
        assert local is not None
        return super().train_step(local)

    def save(self, path: str, extra: dict[str, Any] | None = None) -> None:
        """Rank 0 writes the (rank-identical) checkpoint atomically; every rank waits for it."""
        if self.rank == 0:
            super().save(path, extra)
        dist.barrier()

    def parameters_in_sync(self) -> bool:
        """True when every rank holds bit-identical parameters (a checksum all-gather; for tests/debug)."""
        flat = torch.cat([p.detach().reshape(-1).double() for p in self.model.parameters()])
        mine = torch.stack([flat.sum(), (flat * torch.arange(len(flat), device=flat.device)).sum()])
        return bool((gather_batch(mine[None]) == mine).all())


def init_from_env(backend: str = "auto", timeout_s: float = 600.0) -> torch.device:
    """Initialise the default process group from torchrun's variables (or as a world of one without
    them) and return this rank's device: ``cuda:LOCAL_RANK`` with NCCL, else CPU."""
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    timeout = datetime.timedelta(seconds=timeout_s)
    if "RANK" in os.environ:
        dist.init_process_group(backend, timeout=timeout)
    else:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1, timeout=timeout)
    if backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


@dataclasses.dataclass(frozen=True)
class ProcessGroupRanks(Ranks):
    """The ranks of the default process group for :class:`~vase_rl.runs.training.SequenceTrainer`: each rank
    trains on its rows of the global batch, rank 0 writes the files, and a stop request (SIGINT) on any
    rank stops every rank after the same step (one ``all_reduce`` per step)."""

    backend: str = "gloo"

    @classmethod
    def current(cls) -> ProcessGroupRanks:
        return cls(dist.get_rank(), dist.get_world_size(), dist.get_backend())

    def agree_stop(self, stop: bool) -> bool:
        flag = torch.tensor([float(stop)], device=_collective_device())
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def describe(self) -> dict[str, Any]:
        return {"world_size": self.world_size, "backend": self.backend}
