"""Sequence training: VASE on a sequence of datasets, with probes, TensorBoard, checkpoints and resume.

A run directory holds:
  ``config.json``       the VASEConfig and the run settings (sequence, steps, probes, ...)
  ``checkpoint.pt``     the latest atomic checkpoint (learner + samplers + probes + step)
  ``log.jsonl``         one JSON record per ``log_every`` steps (losses, C, env, atypicality, mask, used)
  ``probes.json``       probe evaluation history (A.6)
  ``tb/``               TensorBoard scalars and images
  ``done``              written when the sequence finished
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import VASEConfig
from .learner import ContinualLearner


class BatchSource(Protocol):
    """What the trainer needs from a dataset sampler (``vase_rl.envs.sampler.SpriteSampler``)."""

    def sample(self, n: int) -> tuple[np.ndarray, dict[str, np.ndarray]]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, d: dict) -> None: ...


BatchHook = Callable[[int, str, torch.Tensor], torch.Tensor]
"""(global step, dataset name, x (B,C,H,W) float) -> the batch actually trained on (imagination)."""


@dataclass(frozen=True)
class RunSettings:
    """What a sequence run does besides the learner's own config."""

    sequence: tuple[str, ...] = ("moving-fashion", "mnist", "moving-mnist")
    """Dataset names trained on one after another."""
    steps_per_env: int = 2500
    probes: bool = True
    """Train A.6 probes (object-ID classifier, position regressor) for every dataset alongside."""
    probe_eval_every: int = 250
    probe_eval_size: int = 1000
    probe_train_every: int = 1
    """Train the probes every this many learner steps (A.6 trains them at every step)."""
    log_every: int = 25
    checkpoint_every: int = 500
    tb_images_every: int = 1000
    seed: int = 0


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def make_sampler(dataset: str, image_size: int, split: str, seed: int) -> BatchSource:
    """Sampler for ``dataset`` rendered at the model's input size (imports the envs package lazily)."""
    from vase_rl.envs.sampler import SpriteSampler  # composition root: vase_rl core stays env-free

    return SpriteSampler(dataset, canvas_size=image_size, split=split, seed=seed)


class SequenceTrainer:
    """Trains a :class:`ContinualLearner` on ``settings.sequence`` and records everything for the report."""

    def __init__(
        self,
        config: VASEConfig,
        settings: RunSettings,
        out_dir: str,
        device: str = "auto",
        batch_hook: BatchHook | None = None,
        resume: bool = False,
    ) -> None:
        self.config, self.settings, self.out_dir = config, settings, out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.learner = ContinualLearner(config, device=device)
        size = config.model.image_size
        self.samplers = {
            name: make_sampler(name, size, "train", settings.seed * 1000 + i)
            for i, name in enumerate(dict.fromkeys(settings.sequence))
        }
        self.test_sets = {
            name: make_sampler(name, size, "test", 10_000 + i).sample(settings.probe_eval_size)
            for i, name in enumerate(dict.fromkeys(settings.sequence))
        }
        self.probe_targets: dict[str, tuple[bool, bool]] = {}
        self.probes = self._make_probes() if settings.probes else None
        self.batch_hook = batch_hook
        self._pending_hook_state: dict | None = None
        self.global_step = 0
        self.ckpt_path = os.path.join(out_dir, "checkpoint.pt")
        if resume and os.path.exists(self.ckpt_path):
            self._resume()
        else:
            self._write_config()
            open(os.path.join(out_dir, "log.jsonl"), "w").close()
        self._stop = False

    def set_batch_hook(self, hook: BatchHook) -> None:
        """Install a batch hook (e.g. imagination); a hook with ``state_dict`` is checkpointed and resumed."""
        self.batch_hook = hook
        state = self._pending_hook_state
        if state is not None and hasattr(hook, "load_state_dict"):
            hook.load_state_dict(state)

    # ------------------------------------------------------------------ set-up
    def _make_probes(self) -> Any:
        from .probes import ProbeConfig, ProbeSet, ProbeSpec

        specs = []
        for name, (_, factors) in self.test_sets.items():
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

    def _write_config(self) -> None:
        with open(os.path.join(self.out_dir, "config.json"), "w") as f:
            json.dump(
                {"vase": self.config.to_dict(), "run": dataclasses.asdict(self.settings)}, f, indent=2
            )

    def _resume(self) -> None:
        extra = self.learner.load_into(self.ckpt_path)
        self.global_step = int(extra["global_step"])
        for name, st in extra["samplers"].items():
            self.samplers[name].load_state_dict(st)
        if self.probes is not None and extra.get("probes") is not None:
            self.probes.load_state_dict(extra["probes"])
        self._pending_hook_state = extra.get("batch_hook")
        # drop log lines written after the checkpoint so the log matches the resumed state
        log = os.path.join(self.out_dir, "log.jsonl")
        if os.path.exists(log):
            with open(log) as f:
                keep = [ln for ln in f if json.loads(ln)["step"] <= self.global_step]
            with open(log, "w") as f:
                f.writelines(keep)

    def save(self) -> None:
        extra = {
            "global_step": self.global_step,
            "samplers": {k: s.state_dict() for k, s in self.samplers.items()},
            "probes": self.probes.state_dict() if self.probes is not None else None,
            "batch_hook": self.batch_hook.state_dict() if hasattr(self.batch_hook, "state_dict") else None,
        }
        self.learner.save(self.ckpt_path, extra)
        if self.probes is not None:
            with open(os.path.join(self.out_dir, "probes.json"), "w") as f:
                f.write(self.probes.history.to_json())

    # ------------------------------------------------------------------ loop
    def stage_of(self, step: int) -> tuple[int, str]:
        i = min(step // self.settings.steps_per_env, len(self.settings.sequence) - 1)
        return i, self.settings.sequence[i]

    def _probe_step(self, name: str, x: torch.Tensor, factors: dict[str, np.ndarray]) -> None:
        assert self.probes is not None
        with torch.no_grad():
            mu, logvar = self.learner.encode(x, return_logvar=True)
            z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        self.probes.train_step(name, z, *self._targets(name, factors))

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

    def evaluate_probes(self) -> dict[str, Any]:
        assert self.probes is not None
        out = {}
        for name, (imgs, factors) in self.test_sets.items():
            with torch.no_grad():
                mu, logvar = self.learner.encode(imgs, return_logvar=True)
                z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
            out[name] = self.probes.evaluate(name, z, *self._targets(name, factors), step=self.global_step)
        return out

    def run(self, progress: bool = True) -> None:
        """Train until the end of the sequence (or SIGINT, which saves a resumable checkpoint first)."""
        from torch.utils.tensorboard import SummaryWriter

        s = self.settings
        total = s.steps_per_env * len(s.sequence)
        writer = SummaryWriter(os.path.join(self.out_dir, "tb"), purge_step=self.global_step)
        old_handler = signal.signal(signal.SIGINT, self._on_sigint)
        bar = tqdm(total=total, initial=self.global_step, disable=not progress, desc="VASE", unit="step")
        log = open(os.path.join(self.out_dir, "log.jsonl"), "a")  # noqa: SIM115 - closed in the finally below
        t0, steps0 = time.time(), self.global_step
        try:
            while self.global_step < total and not self._stop:
                stage, name = self.stage_of(self.global_step)
                imgs, factors = self.samplers[name].sample(self.config.batch_size)
                x = self.learner.preprocess(imgs)
                if self.batch_hook is not None:
                    x = self.batch_hook(self.global_step, name, x)
                out = self.learner.train_step(x)
                if self.probes is not None and self.global_step % s.probe_train_every == 0:
                    # probes train on every dataset of the sequence at each step (A.6), on fresh samples
                    for pname, sampler in self.samplers.items():
                        p_imgs, p_fac = (imgs, factors) if pname == name else sampler.sample(self.config.batch_size)
                        self._probe_step(pname, self.learner.preprocess(p_imgs), p_fac)
                self.global_step += 1
                bar.update(1)
                if self.global_step % s.log_every == 0 or self.global_step == total or out["new_env"]:
                    rec = {"step": self.global_step, "stage": stage, "dataset": name, **out}
                    log.write(json.dumps(rec, default=_json_default) + "\n")
                    log.flush()
                    for k in ("loss", "recon", "kl", "C", "capacity_loss", "classifier_loss", "n_envs", "env"):
                        writer.add_scalar(f"train/{k}", out[k], self.global_step)
                    for k, v in out.items():
                        if k.startswith("dream/"):
                            writer.add_scalar(k, v, self.global_step)
                    writer.add_scalar("train/active_latents", sum(out["mask"]), self.global_step)
                    writer.add_scalar(
                        "train/steps_per_s", (self.global_step - steps0) / (time.time() - t0), self.global_step
                    )
                    bar.set_postfix(env=out["env"], n_envs=out["n_envs"], recon=f"{out['recon']:.1f}",
                                    kl=f"{out['kl']:.1f}" if out["updated"] else out["reason"])
                if self.probes is not None and (
                    self.global_step % s.probe_eval_every == 0 or self.global_step == total
                ):
                    for dname, metrics in self.evaluate_probes().items():
                        for k, v in metrics.items():
                            writer.add_scalar(f"probe/{dname}/{k}", v, self.global_step)
                if self.global_step % s.tb_images_every == 0:
                    with torch.no_grad():
                        rec_imgs = self.learner.decode(self.learner.encode(x[:16]), out["env"])
                    writer.add_images("reconstruction", torch.cat([x[:16], rec_imgs]), self.global_step)
                if self.global_step % s.checkpoint_every == 0:
                    self.save()
        finally:
            bar.close()
            log.close()
            writer.close()
            signal.signal(signal.SIGINT, old_handler)
        self.save()
        self._write_timing(time.time() - t0, self.global_step - steps0)
        if self.global_step >= total:
            open(os.path.join(self.out_dir, "done"), "w").close()

    def _write_timing(self, seconds: float, steps: int) -> None:
        """Accumulate wall time over (resumed) sittings in ``timing.json``."""
        path = os.path.join(self.out_dir, "timing.json")
        prev = {"train_seconds": 0.0, "sittings": 0}
        if os.path.exists(path):
            with open(path) as f:
                prev.update(json.load(f))
        rec = {
            "train_seconds": prev["train_seconds"] + seconds,
            "sittings": prev["sittings"] + 1,
            "steps": self.global_step,
            "steps_this_sitting": steps,
            "device": str(self.learner.device),
            "threads": torch.get_num_threads(),
            "cpu": _cpu_name(),
        }
        with open(path, "w") as f:
            json.dump(rec, f, indent=2)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self._stop = True
        print("\ninterrupted: saving a resumable checkpoint ...")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores visible)"
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def read_log(run_dir: str) -> list[dict[str, Any]]:
    """The ``log.jsonl`` records of a run."""
    with open(os.path.join(run_dir, "log.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_run_config(run_dir: str) -> tuple[VASEConfig, RunSettings]:
    with open(os.path.join(run_dir, "config.json")) as f:
        d = json.load(f)
    run = dict(d["run"])
    run["sequence"] = tuple(run["sequence"])
    return VASEConfig.from_dict(d["vase"]), RunSettings(**run)


__all__ = ["RunSettings", "SequenceTrainer", "make_sampler", "read_log", "read_run_config"]
