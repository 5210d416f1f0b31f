"""Checksummed loaders for the real image datasets (the A.5 transforms live in :mod:`vase_rl.data.transforms`).

Data directory
--------------
``$VASE_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/vase_rl/data`` (default ``~/.cache/vase_rl/data``),
with this layout::

    mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz       (SHA-256 pinned below)
    fashion_mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz
    faces/celeba/000001.jpg ...                                 (CelebA aligned crops, any size)
    SHA256SUMS                                                  (``sha256sum`` lines for faces/)

Every file is checked against its SHA-256 before first use. A successful check is remembered for the
process and in a stamp in the user cache (``<cache>/vase_rl/verified-sha256.json``, keyed by absolute
path, size and mtime), so the 10,000 face images are hashed once per machine, not per run. Any missing,
corrupt or mismatching file raises :class:`DataError`; there is no silent fallback.
``load_mnist("test")`` -> ``(uint8 (10000, 28, 28), int64 (10000,))``.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Literal
from urllib.request import urlopen

import numpy as np

from vase_rl.data.transforms import (  # re-exported: callers use vase_rl.data.datasets.invert etc.
    FACE_CROP,
    FACE_PATCH_SIZE,
    INVERT_CONTRAST,
    LUMA,
    face_patch,
    invert,
    place_on_canvas,
    resize_area,
)

__all__ = [
    "FACE_CROP",
    "FACE_PATCH_SIZE",
    "INVERT_CONTRAST",
    "LUMA",
    "DataError",
    "download",
    "face_files",
    "face_patch",
    "get_data_dir",
    "invert",
    "load_faces",
    "load_fashion_mnist",
    "load_mnist",
    "place_on_canvas",
    "read_idx",
    "resize_area",
    "sha256_file",
    "verify_files",
]

Split = Literal["train", "test"]
PathLike = str | os.PathLike[str]

DATA_DIR_ENV = "VASE_DATA_DIR"
SUMS_FILE = "SHA256SUMS"
STAMP_FILE = "verified-sha256.json"
CHECKSUM_FAILED = "failed its SHA-256 check"
FACES_DIR = "faces/celeba"
FACE_TEST_COUNT = 1000
"""Faces have no official split here: the last 1,000 listed images are ``test``, the rest ``train``."""

IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
"""SHA-256 of the canonical upstream files (shared data README; MD5s match torchvision's)."""
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    "fashion_mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
FACES_HELP = (
    "CelebA cannot be downloaded automatically (it is on Google Drive under a non-commercial, "
    "no-redistribution licence). Get 'Align&Cropped Images' from "
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html after accepting its agreement, put the JPEGs in "
    "<data dir>/faces/celeba/, then from <data dir> run "
    "`sha256sum faces/celeba/*.jpg >> SHA256SUMS` and set VASE_DATA_DIR=<data dir>."
)


class DataError(ValueError):
    """A data file is missing, corrupt or fails its checksum; the message names it and says how to fix."""


def get_data_dir(override: PathLike | None = None) -> Path:
    """The data directory: ``override``, else ``$VASE_DATA_DIR``, else ``<user cache>/vase_rl/data``."""
    if override is not None:
        return Path(override).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return cache_dir() / "data"


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vase_rl``, default ``~/.cache/vase_rl`` (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vase_rl"


def _fix_hint(path: Path) -> str:
    if FACES_DIR in path.as_posix():
        return "Fix: " + FACES_HELP
    dataset = path.parent.name
    return (
        f"Fix: set {DATA_DIR_ENV} to a folder holding verified copies (layout: mnist/, fashion_mnist/, "
        f"faces/celeba/ + SHA256SUMS), or fetch them with `vase-rl download-data {dataset}` / "
        f"vase_rl.data.datasets.download({dataset!r})."
    )


def _file_error(path: Path, expected: str, actual: str, problem: str = CHECKSUM_FAILED) -> DataError:
    return DataError(
        f"{path.parent.name}/{path.name} {problem}.\n  file:     {path}\n"
        f"  expected: {expected}\n  actual:   {actual}\n{_fix_hint(path)}"
    )


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


_VERIFIED: dict[str, str] = {}
_STAMP_LOADED = False


def _load_stamp() -> None:
    global _STAMP_LOADED
    if _STAMP_LOADED:
        return
    _STAMP_LOADED = True
    try:
        stamp = json.loads((cache_dir() / STAMP_FILE).read_text())
        if isinstance(stamp, dict):
            _VERIFIED.update({str(k): str(v) for k, v in stamp.items()})
    except (OSError, ValueError):
        pass  # no stamp yet, or unreadable: files are simply re-hashed


def _stamp_key(path: Path) -> str:
    """``"<absolute path>|<size>|<mtime_ns>"``; raises OSError when the file is missing."""
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _still_valid(key: str) -> bool:
    try:
        return _stamp_key(Path(key.rsplit("|", 2)[0])) == key
    except OSError:
        return False


def _save_stamp() -> None:
    """Atomically write the stamp, dropping entries of files since changed or deleted (skipped
    silently when the cache is not writable)."""
    path = cache_dir() / STAMP_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".verified-", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({k: v for k, v in _VERIFIED.items() if _still_valid(k)}, f)
        os.replace(tmp, path)
    except OSError:
        pass


def verify_files(expected: dict[Path, str]) -> None:
    """Check each file's SHA-256 against ``expected`` (path -> hex digest); raise :class:`DataError`.

    A file already verified with the same absolute path, size and mtime is not re-hashed.
    """
    _load_stamp()
    added = False
    try:
        for path, sha in expected.items():
            try:
                key = _stamp_key(path)
            except OSError:
                raise _file_error(path, sha, "(no such file)", "is missing") from None
            if _VERIFIED.get(key) == sha:
                continue
            actual = sha256_file(path)
            if actual != sha:
                raise _file_error(path, sha, actual)
            _VERIFIED[key] = sha
            added = True
    finally:
        if added:
            _save_stamp()


def read_idx(path: Path) -> np.ndarray:
    """Parse a gzip-compressed IDX file of unsigned bytes (magic 0x0000 08 <ndim>).

    Returns a read-only uint8 array of the stored shape, e.g. (N, 28, 28) or (N,).
    Raises :class:`DataError` for an unreadable/truncated gzip, a wrong magic or a size mismatch.
    """
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is not a readable gzip file ({e}).\n{_fix_hint(path)}") from e
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] == 0:
        raise DataError(
            f"{path}: wrong IDX magic {raw[:4].hex()!r} (expected 00000801 labels / 00000803 images)."
            f"\n{_fix_hint(path)}"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4")) if len(raw) >= header else ()
    if len(shape) != ndim or len(raw) != header + int(np.prod(shape)):
        raise DataError(f"{path}: IDX header {shape} does not match its {len(raw)} bytes.\n{_fix_hint(path)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


@functools.lru_cache(maxsize=8)
def _load_idx_pair(root: str, dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    if split not in IDX_FILES:
        raise ValueError(f"split must be one of {sorted(IDX_FILES)}, got {split!r}")
    paths = [Path(root) / dataset / name for name in IDX_FILES[split]]
    verify_files({p: SHA256[dataset][p.name] for p in paths})
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{paths[0]}: images {images.shape} and labels {labels.shape} do not pair up.")
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def load_mnist(split: Split = "train", data_dir: PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits: images uint8 (N, 28, 28) white on black, labels int64 (N,); N = 60000 / 10000.

    Arrays are cached per process and read-only.
    """
    return _load_idx_pair(str(get_data_dir(data_dir).resolve()), "mnist", split)


def load_fashion_mnist(
    split: Split = "train", data_dir: PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST: images uint8 (N, 28, 28) white on black, labels int64 (N,); cached, read-only."""
    return _load_idx_pair(str(get_data_dir(data_dir).resolve()), "fashion_mnist", split)


def face_files(data_dir: PathLike | None = None) -> dict[Path, str]:
    """The face JPEGs listed in ``<data dir>/SHA256SUMS`` (sorted) -> their expected SHA-256."""
    root = get_data_dir(data_dir)
    sums = root / SUMS_FILE
    if not sums.is_file():
        raise DataError(f"{sums} is missing: it lists the SHA-256 of every face image.\nFix: {FACES_HELP}")
    files: dict[Path, str] = {}
    for line in sums.read_text().splitlines():
        sha, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if name.startswith(FACES_DIR + "/") and name.lower().endswith((".jpg", ".jpeg", ".png")):
            files[root / name] = sha.lower()
    if not files:
        raise DataError(f"{sums} lists no images under {FACES_DIR}/.\nFix: {FACES_HELP}")
    return dict(sorted(files.items()))


def load_faces(
    n: int | None = None, split: Split | None = None, data_dir: PathLike | None = None
) -> np.ndarray:
    """Grayscale face-centred patches (A.5), uint8 (N, 32, 32), from the verified CelebA JPEGs.

    ``split``: None = all listed images, ``"test"`` = the last 1,000 (half if fewer than 2,000),
    ``"train"`` = the others. ``n`` keeps the first ``n`` of those. Decoded once per process (cached).
    """
    total = len(face_files(data_dir))
    if split is not None and split not in IDX_FILES:
        raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")
    cut = total - min(FACE_TEST_COUNT, total // 2)
    start, stop = {None: (0, total), "train": (0, cut), "test": (cut, total)}[split]
    if n is not None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        stop = min(stop, start + n)
    return _face_patches(str(get_data_dir(data_dir).resolve()), start, stop)


@functools.lru_cache(maxsize=4)
def _face_patches(root: str, start: int, stop: int) -> np.ndarray:
    from PIL import Image  # deferred: only faces need Pillow

    files = dict(list(face_files(root).items())[start:stop])
    verify_files(files)
    patches = np.empty((len(files), FACE_PATCH_SIZE, FACE_PATCH_SIZE), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as im:
                patches[i] = face_patch(np.asarray(im.convert("RGB")))
        except OSError as e:
            raise DataError(f"{path} could not be decoded ({e}).\nFix: {FACES_HELP}") from e
    patches.setflags(write=False)
    return patches


def download(dataset: str, data_dir: PathLike | None = None, force: bool = False) -> Path:
    """Fetch ``dataset`` ("mnist" or "fashion_mnist") into the data dir, verified; return its folder.

    Each file is streamed from the first mirror that answers with a tqdm progress bar, its SHA-256 is
    checked, and only then is it atomically renamed into place. Files already present and verified
    are kept unless ``force``. "faces" raises :class:`DataError` with manual instructions.
    """
    if dataset in ("faces", "celeba"):
        raise DataError(FACES_HELP)
    dataset = {"fashion": "fashion_mnist"}.get(dataset, dataset)
    if dataset not in SHA256:
        raise ValueError(f"unknown dataset {dataset!r}; downloadable: {sorted(SHA256)} (faces: manual)")
    dest = get_data_dir(data_dir) / dataset
    dest.mkdir(parents=True, exist_ok=True)
    for name, sha in SHA256[dataset].items():
        target = dest / name
        if target.exists() and not force:
            try:
                verify_files({target: sha})
                continue
            except DataError:
                pass  # corrupt local copy: fetch again
        errors = []
        for base in MIRRORS[dataset]:
            try:
                _fetch(base + name, target, sha)
                break
            except (OSError, DataError) as e:
                errors.append(f"  {base}{name}: {e}")
        else:
            raise DataError(f"could not download {dataset}/{name}:\n" + "\n".join(errors))
    return dest


def _fetch(url: str, target: Path, sha: str) -> None:
    """Stream ``url`` to a temp file next to ``target``, check its SHA-256, then ``os.replace``."""
    from tqdm import tqdm

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with urlopen(url, timeout=60) as resp, os.fdopen(fd, "wb") as out:
            total = int(getattr(resp, "headers", {}).get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, leave=False) as bar:
                while chunk := resp.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != sha:
            raise _file_error(target, sha, f"{digest.hexdigest()} (downloaded from {url})")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
