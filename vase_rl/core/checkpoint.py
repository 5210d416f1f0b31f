"""Atomic, validated checkpoint files, and :class:`Checkpointable`, the save/load mixin around them."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from typing import TYPE_CHECKING, Any

import torch

from vase_rl.core.config import VASEConfig

if TYPE_CHECKING:
    from typing_extensions import Self

FORMAT = "vase-rl-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated, or was written for another configuration."""


def _temp_prefix(path: str, pid: int | None = None) -> str:
    """Name prefix of the temp files :func:`atomic_torch_save` writes for ``path`` (by process ``pid``)."""
    return f".tmp-{os.path.basename(path)}-" + ("" if pid is None else f"{pid}-")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def remove_stale_temps(path: str) -> list[str]:
    """Delete temp files of ``path`` left by writers that died mid-save (e.g. SIGKILL); returns their names.

    Temp files are named ``.tmp-<file name>-<pid>-<random>.pt``; one whose pid is still alive (this process
    included: another thread may be saving) is a save in progress and is kept.
    """
    folder = os.path.dirname(os.path.abspath(path))
    prefix = _temp_prefix(path)
    removed = []
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, name))
            removed.append(name)
    return removed


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temp file in the same folder, fsync, then ``os.replace``: readers and a crash
    mid-write only ever see the previous complete file or the new complete file. Temp files that an
    earlier, killed writer left behind for the same ``path`` are removed first."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path, os.getpid()), suffix=".pt", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def state_digest(obj: Any) -> str:
    """SHA-256 over every tensor's dtype, shape and bytes and every other value's repr, in a fixed order.

    torch's zip container has no checksum over tensor data, so without this some corrupted bytes
    would load silently as different weights.
    """
    h = hashlib.sha256()

    def feed(o: Any) -> None:
        if isinstance(o, torch.Tensor):
            t = o.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(o, dict):
            h.update(b"{")
            for k in sorted(o, key=str):
                h.update(repr(k).encode())
                feed(o[k])
            h.update(b"}")
        elif isinstance(o, (list, tuple)):
            h.update(b"[")
            for v in o:
                feed(v)
            h.update(b"]")
        else:
            h.update(repr(o).encode())

    feed(obj)
    return h.hexdigest()


def save_checkpoint(path: str, config: VASEConfig, state: dict[str, Any], extra: dict[str, Any]) -> None:
    """Write ``{format, version, config, state, extra, digest}`` atomically to ``path``."""
    blob = {"format": FORMAT, "version": VERSION, "config": config.to_dict(), "state": state, "extra": extra}
    blob["digest"] = state_digest([blob["config"], state, extra])
    atomic_torch_save(blob, path)


def _diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{key}.")
        elif (list(va) if isinstance(va, (tuple, list)) else va) != (
            list(vb) if isinstance(vb, (tuple, list)) else vb
        ):
            out.append(f"{prefix}{key}: checkpoint={va!r} expected={vb!r}")
    return out


def load_checkpoint(
    path: str, expect: VASEConfig | None = None, ignore: tuple[str, ...] = ("steps_per_env", "preset")
) -> tuple[VASEConfig, dict[str, Any], dict[str, Any]]:
    """Read and validate a checkpoint; returns (config, state, extra).

    Raises :class:`CheckpointError` naming the file when it is missing, unreadable (corrupt or
    truncated), not a vase-rl checkpoint, of an unknown version, or -- when ``expect`` is given --
    written with a different configuration (the differing fields are listed; fields in ``ignore`` may
    differ). Nothing is loaded into a model unless every check passes.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt zip archives
        raise CheckpointError(
            f"checkpoint {path!r} is corrupt or truncated and cannot be read ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path!r} is not a vase-rl checkpoint (missing format tag {FORMAT!r})")
    if blob.get("version") != VERSION:
        raise CheckpointError(f"checkpoint {path!r} has version {blob.get('version')}, expected {VERSION}")
    if blob.get("digest") != state_digest([blob.get("config"), blob.get("state"), blob.get("extra", {})]):
        raise CheckpointError(
            f"checkpoint {path!r} is corrupt: the SHA-256 digest of its contents does not match the one "
            "stored when it was written"
        )
    try:
        config = VASEConfig.from_dict(blob["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path!r} holds an invalid config: {exc}") from exc
    if expect is not None:
        a = {k: v for k, v in config.to_dict().items() if k not in ignore}
        b = {k: v for k, v in expect.to_dict().items() if k not in ignore}
        diffs = _diff(a, b)
        if diffs:
            raise CheckpointError(
                f"checkpoint {path!r} was written with another configuration; refusing to load. "
                "Differences: " + "; ".join(diffs)
            )
    return config, blob["state"], blob.get("extra", {})


class Checkpointable:
    """Checkpoint files for a class with ``config``, ``state_dict()``, ``load_state_dict(state)`` and a
    ``cls(config, device=...)`` constructor; a state that does not fit raises :class:`CheckpointError`."""

    config: VASEConfig

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def save(self, path: str, extra: dict[str, Any] | None = None) -> None:
        """Write an atomic checkpoint (temp file + os.replace) that resumes bit-for-bit."""
        save_checkpoint(path, self.config, self.state_dict(), extra or {})

    @classmethod
    def load(cls, path: str, device: str | torch.device = "auto") -> Self:
        """Build an object from a checkpoint (its config is stored in it)."""
        config, state, _ = load_checkpoint(path)
        obj = cls(config, device=device)  # type: ignore[call-arg]
        obj._load_checked(path, state)
        return obj

    def load_into(self, path: str) -> dict[str, Any]:
        """Restore this object from ``path``; refuses a checkpoint written with another config. Returns the
        checkpoint's ``extra``."""
        _, state, extra = load_checkpoint(path, expect=self.config)
        self._load_checked(path, state)
        return extra

    def _load_checked(self, path: str, state: dict[str, Any]) -> None:
        try:
            self.load_state_dict(state)
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint {path!r} holds a learner state that does not fit its configuration: {exc}"
            ) from exc
