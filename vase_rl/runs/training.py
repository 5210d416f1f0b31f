"""Sequence training: VASE on a sequence of datasets, with probes, TensorBoard, checkpoints and exact resume.

:class:`SequenceTrainer` is the one run loop: ``vase-rl train`` runs it in one process, and
``python -m vase_rl.torchrun`` (torchrun) runs it on every rank with a data-parallel learner and a
:class:`Ranks` object that says which rows of each batch the rank trains on and that only rank 0
writes files. The run directory's layout, and its readers, are in :mod:`vase_rl.runs.run_format`.

Everything random in a run draws from a generator the checkpoint holds: the learner's, the probes'
(:attr:`vase_rl.probing.probes.ProbeSet.generator`), the samplers' and a batch hook's (imagination), so a run
stopped by SIGINT and resumed from its checkpoint ends with the same checkpoint, tensor for tensor, as a
straight run (``tests/test_resume_exact.py``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import torch
from tqdm.auto import tqdm

from vase_rl.core.config import VASEConfig
from vase_rl.core.learner import ContinualLearner
from vase_rl.runs.run_format import (
    CHECKPOINT_FILE,
    DONE_FILE,
    LOG_FILE,
    PROBES_FILE,
    TB_DIR,
    BatchHook,
    BatchSource,
    RunSettings,
    json_default,
    make_sampler,
    read_log,
    read_run_config,
    truncate_log,
    update_timing,
    write_run_config,
)

if TYPE_CHECKING:
    from vase_rl.probing.probes import ProbeSet


__all__ = [
    "BatchHook", "BatchSource", "Ranks", "RunSettings", "SequenceTrainer", "make_sampler", "read_log",
    "read_run_config",
]  # fmt: skip

TB_SCALARS = ("loss", "recon", "kl", "C", "capacity_loss", "classifier_loss", "n_envs", "env")
"""Keys of a step's log record written to TensorBoard as ``train/<key>`` (plus every ``dream/...``)."""


@dataclass(frozen=True)
class Ranks:
    """The processes of a run as the loop sees them; the default is one process doing everything.

    Each step every rank draws the same global batch of ``config.batch_size`` images from identically
    seeded samplers and trains on its :meth:`local_rows`; rank 0 writes the run's files.
    ``vase_rl.torchrun`` passes a subclass whose :meth:`agree_stop` is a collective.
    """

    rank: int = 0
    world_size: int = 1

    def local_rows(self, batch: int) -> slice:
        """This rank's rows of a global batch of ``batch`` images (all of them in one process)."""
        local = batch // self.world_size
        return slice(self.rank * local, (self.rank + 1) * local)

    @property
    def writes_files(self) -> bool:
        """Only rank 0 writes the config, the log, TensorBoard, probes.json, timing.json and ``done``."""
        return self.rank == 0

    def agree_stop(self, stop: bool) -> bool:
        """True when any rank was asked to stop (SIGINT), so that all ranks stop at the same step."""
        return stop

    def describe(self) -> dict[str, Any]:
        """Fields recorded in ``timing.json``."""
        return {"world_size": self.world_size}


class SequenceTrainer:
    """Trains a :class:`ContinualLearner` on ``settings.sequence`` and records everything for the report.

    Args:
        config, settings: the learner's config and the run's settings (written to ``config.json``).
        out_dir: the run directory (see :mod:`vase_rl.runs.run_format`).
        device: where a learner built here lives ("auto": CUDA when available).
        batch_hook: optional :data:`BatchHook` (e.g. imagination); see :meth:`set_batch_hook`.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists.
        learner: a learner to train instead of a new ``ContinualLearner(config)`` (the distributed run
            passes its data-parallel learner); its config must be ``config``.
        ranks: the processes of the run (:class:`Ranks`; default one).
    """

    def __init__(
        self,
        config: VASEConfig,
        settings: RunSettings,
        out_dir: str,
        device: str = "auto",
        batch_hook: BatchHook | None = None,
        resume: bool = False,
        learner: ContinualLearner | None = None,
        ranks: Ranks | None = None,
    ) -> None:
        self.config, self.settings, self.out_dir = config, settings, out_dir
        self.ranks = ranks or Ranks()
        if learner is not None and learner.config != config:
            raise ValueError("the learner passed to SequenceTrainer was built with another config")
        if settings.probes and self.ranks.world_size > 1:
            raise ValueError(
                "probes train in one process only; set RunSettings(probes=False) for "
                f"{self.ranks.world_size} ranks"
            )
        if config.batch_size % self.ranks.world_size or config.batch_size // self.ranks.world_size < 2:
            raise ValueError(
                f"global batch {config.batch_size} must split into {self.ranks.world_size} "
                "equal local batches of at least 2 images"
            )
        os.makedirs(out_dir, exist_ok=True)
        self.learner = learner if learner is not None else ContinualLearner(config, device=device)
        datasets = list(dict.fromkeys(settings.sequence))
        size = config.model.image_size
        self.samplers: dict[str, BatchSource] = {
            name: make_sampler(name, size, "train", settings.seed * 1000 + i)
            for i, name in enumerate(datasets)
        }
        self.test_sets: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
        self.probe_targets: dict[str, tuple[bool, bool]] = {}
        self.drift_refs: dict[int, tuple[str, np.ndarray]] = {}
        """Stage -> (dataset, latents of its probe test set at the end of the stage): drift's references."""
        self.probes = self._make_probes() if settings.probes else None
        self.batch_hook: BatchHook | None = None
        self._pending_hook_state: dict | None = None
        self.global_step = 0
        self.ckpt_path = os.path.join(out_dir, CHECKPOINT_FILE)
        if resume and os.path.exists(self.ckpt_path):
            self._resume()
        elif self.ranks.writes_files:
            write_run_config(out_dir, config, settings, self.ranks.world_size)
            open(os.path.join(out_dir, LOG_FILE), "w").close()
        if batch_hook is not None:
            self.set_batch_hook(batch_hook)
        self._stop = False

    @property
    def total_steps(self) -> int:
        return self.settings.steps_per_env * len(self.settings.sequence)

    def set_batch_hook(self, hook: BatchHook) -> None:
        """Install a batch hook (e.g. imagination); a hook with ``state_dict`` is checkpointed and resumed."""
        if self.ranks.world_size > 1:
            raise ValueError("a batch hook would see only this rank's rows; hooks run in one process only")
        self.batch_hook = hook
        state = self._pending_hook_state
        if state is not None and hasattr(hook, "load_state_dict"):
            hook.load_state_dict(state)

    # ------------------------------------------------------------------ set-up
    def _make_probes(self) -> ProbeSet:
        from vase_rl.probing.probes import (  # metrics import scikit-learn: only with probes
            ProbeConfig,
            ProbeSet,
            ProbeSpec,
        )

        specs = []
        for i, name in enumerate(dict.fromkeys(self.settings.sequence)):
            sampler = make_sampler(name, self.config.model.image_size, "test", 10_000 + i)
            self.test_sets[name] = sampler.sample(self.settings.probe_eval_size)
            factors = self.test_sets[name][1]
            has_labels = "label" in factors and int(np.min(factors["label"])) >= 0
            moving = float(np.std(factors["x"])) > 1e-6
            specs.append(ProbeSpec(name, classify=has_labels, regress_position=moving))
            self.probe_targets[name] = (has_labels, moving)
        return ProbeSet(
            specs,
            self.config.model.latent_dim,
            ProbeConfig(),
            device=self.learner.device,
            seed=self.settings.seed,
        )

    def _resume(self) -> None:
        extra = self.learner.load_into(self.ckpt_path)
        self.global_step = int(extra["global_step"])
        for name, st in extra["samplers"].items():
            self.samplers[name].load_state_dict(st)
        self.drift_refs = {
            int(k): (name, np.asarray(mu)) for k, (name, mu) in extra.get("drift_refs", {}).items()
        }
        if self.probes is not None and extra.get("probes") is not None:
            self.probes.load_state_dict(extra["probes"])
        self._pending_hook_state = extra.get("batch_hook")
        if self.ranks.writes_files:  # drop log lines written after the checkpoint: the log matches the state
            truncate_log(self.out_dir, self.global_step)

    def save(self) -> None:
        """Write the checkpoint (every rank calls it; the learner decides who writes) and probes.json."""
        hook_state = getattr(self.batch_hook, "state_dict", None)
        extra = {
            "global_step": self.global_step,
            "world_size": self.ranks.world_size,
            "samplers": {k: s.state_dict() for k, s in self.samplers.items()},
            "probes": self.probes.state_dict() if self.probes is not None else None,
            "batch_hook": hook_state() if hook_state is not None else None,
            "drift_refs": {k: (name, torch.from_numpy(mu)) for k, (name, mu) in self.drift_refs.items()},
        }
        self.learner.save(self.ckpt_path, extra)
        if self.probes is not None and self.ranks.writes_files:
            with open(os.path.join(self.out_dir, PROBES_FILE), "w") as f:
                f.write(self.probes.history.to_json())

    def save_stage(self) -> None:
        """Keep the learner as it is at the end of a stage (``RUN/stages/stage<k>.pt``) for the offline
        probes of :mod:`vase_rl.evaluation.quality` (every rank calls it, like :meth:`save`)."""
        stage = self.global_step // self.settings.steps_per_env - 1
        os.makedirs(os.path.join(self.out_dir, "stages"), exist_ok=True)
        self.learner.save(os.path.join(self.out_dir, "stages", f"stage{stage}.pt"))
        name = self.settings.sequence[stage]
        if self.probes is not None and name in self.test_sets:  # drift's reference: this stage's test latents
            self.drift_refs[stage] = (name, self._test_latents(name))

    # ------------------------------------------------------------------ probes
    def stage_of(self, step: int) -> tuple[int, str]:
        i = min(step // self.settings.steps_per_env, len(self.settings.sequence) - 1)
        return i, self.settings.sequence[i]

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.learner.encode(x, return_logvar=True)

    def _targets(
        self, name: str, factors: dict[str, np.ndarray]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Probe targets of dataset ``name``: object labels (B,) and positions (B, 2), None where unprobed."""
        dev = self.learner.device
        classify, regress = self.probe_targets[name]
        labels = torch.as_tensor(factors["label"], device=dev) if classify else None
        pos = (
            torch.as_tensor(np.stack([factors["x"], factors["y"]], 1), device=dev, dtype=torch.float32)
            if regress
            else None
        )
        return labels, pos

    def _train_probes(self, name: str, imgs: np.ndarray, factors: dict[str, np.ndarray]) -> None:
        """A.6: a probe step for every dataset of the sequence, on the step's batch or on fresh samples."""
        assert self.probes is not None
        for pname, sampler in self.samplers.items():
            p_imgs, p_fac = (imgs, factors) if pname == name else sampler.sample(self.config.batch_size)
            z = self.probes.latents(self._encode, self.learner.preprocess(p_imgs))
            self.probes.train_step(pname, z, *self._targets(pname, p_fac))

    def _test_latents(self, name: str) -> np.ndarray:
        """mu of dataset ``name``'s probe test set (the latents a policy would read), (n, N)."""
        with torch.no_grad():
            return self.learner.encode(self.learner.preprocess(self.test_sets[name][0])).cpu().numpy()

    def stage_drift(self) -> dict[str, float]:
        """``drift/<dataset>_stage<k>``: mean drift (sd units, :func:`~vase_rl.probing.drift.latent_drift`)
        of every finished stage's test latents since the end of that stage (stages still running: none)."""
        from vase_rl.probing.drift import latent_drift

        current = self.global_step // self.settings.steps_per_env
        return {
            f"drift/{name}_stage{k}": latent_drift(mu, self._test_latents(name)).mean
            for k, (name, mu) in sorted(self.drift_refs.items())
            if k < current
        }

    def evaluate_probes(self) -> dict[str, Any]:
        """Score every probe on its dataset's held-out set and record it at the current step."""
        assert self.probes is not None
        out = {}
        for name, (imgs, factors) in self.test_sets.items():
            z = self.probes.latents(self._encode, self.learner.preprocess(imgs))
            out[name] = self.probes.evaluate(name, z, *self._targets(name, factors), step=self.global_step)
        return out

    # ------------------------------------------------------------------ loop
    def step(self) -> tuple[dict[str, Any], torch.Tensor]:
        """One step of the sequence: learner (and probe) update; returns (log record, batch trained on)."""
        stage, name = self.stage_of(self.global_step)
        imgs, factors = self.samplers[name].sample(self.config.batch_size)
        x = self.learner.preprocess(imgs[self.ranks.local_rows(len(imgs))])
        if self.batch_hook is not None:
            x = self.batch_hook(self.global_step, name, x)
        out = self.learner.train_step(x).to_log()
        if self.probes is not None and self.global_step % self.settings.probe_train_every == 0:
            self._train_probes(name, imgs, factors)
        self.global_step += 1
        return {"step": self.global_step, "stage": stage, "dataset": name, **out}, x

    def run(self, progress: bool = True) -> None:
        """Train until the end of the sequence (or SIGINT, which saves a resumable checkpoint first)."""
        from torch.utils.tensorboard import SummaryWriter

        s, total, writes = self.settings, self.total_steps, self.ranks.writes_files
        tb = os.path.join(self.out_dir, TB_DIR)
        writer = SummaryWriter(tb, purge_step=self.global_step) if writes else None
        old_handler = signal.signal(signal.SIGINT, self._on_sigint)
        desc = "VASE" if self.ranks.world_size == 1 else f"VASE x{self.ranks.world_size}"
        bar = tqdm(
            total=total, initial=self.global_step, disable=not (progress and writes), desc=desc, unit="step"
        )
        log = open(os.path.join(self.out_dir, LOG_FILE), "a") if writes else None  # noqa: SIM115 - closed below
        t0, steps0 = time.time(), self.global_step
        try:
            while self.global_step < total and not self.ranks.agree_stop(self._stop):
                rec, x = self.step()
                bar.update(1)
                if writer is not None and log is not None:
                    self._record(rec, x, log, writer, bar, (self.global_step - steps0) / (time.time() - t0))
                if self.global_step % s.steps_per_env == 0:
                    self.save_stage()
                if self.global_step % s.checkpoint_every == 0:
                    self.save()  # on every rank: the learner's save is a collective under torchrun
        finally:
            bar.close()
            for closing in (log, writer):
                if closing is not None:
                    closing.close()
            signal.signal(signal.SIGINT, old_handler)
        self.save()
        if writes:
            self._write_timing(time.time() - t0, self.global_step - steps0)
            if self.global_step >= total:
                open(os.path.join(self.out_dir, DONE_FILE), "w").close()

    def _record(
        self, rec: dict[str, Any], x: torch.Tensor, log: TextIO, writer: Any, bar: Any, steps_per_s: float
    ) -> None:
        """What the writing rank records after a step: log line, probe scores, reconstruction images."""
        s, step = self.settings, self.global_step
        if step % s.log_every == 0 or step == self.total_steps or rec["new_env"]:
            self._log(rec, log, writer, bar, steps_per_s)
        if self.probes is not None and (step % s.probe_eval_every == 0 or step == self.total_steps):
            for dname, metrics in self.evaluate_probes().items():
                for k, v in metrics.items():
                    writer.add_scalar(f"probe/{dname}/{k}", v, step)
            for tag, value in self.stage_drift().items():
                writer.add_scalar(tag, value, step)
        if step % s.tb_images_every == 0:
            with torch.no_grad():
                rec_imgs = self.learner.decode(self.learner.encode(x[:16]), rec["env"])
            writer.add_images("reconstruction", torch.cat([x[:16], rec_imgs]), step)

    def _log(self, rec: dict[str, Any], log: TextIO, writer: Any, bar: Any, steps_per_s: float) -> None:
        """Write a step's record to log.jsonl and TensorBoard, and show it on the progress bar."""
        log.write(json.dumps(rec, default=json_default) + "\n")
        log.flush()
        step = rec["step"]
        for k in TB_SCALARS:
            writer.add_scalar(f"train/{k}", rec[k], step)
        for k, v in rec.items():
            if k.startswith("dream/"):
                writer.add_scalar(k, v, step)
        writer.add_scalar("train/active_latents", sum(rec["mask"]), step)
        writer.add_scalar("train/steps_per_s", steps_per_s, step)
        bar.set_postfix(
            env=rec["env"],
            n_envs=rec["n_envs"],
            recon=f"{rec['recon']:.1f}",
            kl=f"{rec['kl']:.1f}" if rec["updated"] else rec["reason"],
        )

    def _write_timing(self, seconds: float, steps: int) -> None:
        """Accumulate wall time over (resumed) sittings in ``timing.json``."""
        update_timing(
            self.out_dir, seconds, self.global_step,
            steps_this_sitting=steps,
            images_per_s=steps * self.config.batch_size / max(seconds, 1e-9),
            device=str(self.learner.device),
            threads=torch.get_num_threads(),
            **self.ranks.describe(),
        )  # fmt: skip

    def request_stop(self) -> None:
        """Stop after the current step, save a resumable checkpoint and return from :meth:`run` (SIGINT)."""
        self._stop = True

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.request_stop()
        print("\ninterrupted: saving a resumable checkpoint ...")
