"""Checksummed loaders, download() with a fake network, and the A.5 transforms (vase_rl.data.datasets)."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from vase_rl.data import datasets as data

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"


@pytest.fixture(scope="module")
def root() -> Path:
    """The real data dir from $VASE_DATA_DIR (skips, saying why, when it is absent)."""
    path = data.get_data_dir()
    if not (path / "mnist" / TEST_LABELS).is_file():
        pytest.skip(
            f"real data not found in {path}: set VASE_DATA_DIR to a folder with mnist/, "
            "fashion_mnist/, faces/ and SHA256SUMS"
        )
    return path


def _copy_split(root: Path, dest: Path, dataset: str = "mnist") -> Path:
    (dest / dataset).mkdir(parents=True)
    for name in (TEST_IMAGES, TEST_LABELS):
        shutil.copy(root / dataset / name, dest / dataset / name)
    return dest / dataset


def _flip_byte(path: Path, offset: int = 100) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))


# ----------------------------------------------------------------------------------- loaders


def test_mnist_loads_canonical_shapes_and_label_counts(root: Path) -> None:
    for split, n, counts in (("train", 60000, MNIST_TRAIN_COUNTS), ("test", 10000, MNIST_TEST_COUNTS)):
        images, labels = data.load_mnist(split)  # type: ignore[arg-type]
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.dtype == np.int64 and np.bincount(labels).tolist() == counts
        assert not images.flags.writeable  # the cached arrays cannot be mutated by a caller
    assert data.load_mnist("train")[0] is data.load_mnist("train")[0]  # cached per process


def test_fashion_has_6000_train_and_1000_test_images_per_class(root: Path) -> None:
    for split, per_class in (("train", 6000), ("test", 1000)):
        images, labels = data.load_fashion_mnist(split)  # type: ignore[arg-type]
        assert images.shape == (10 * per_class, 28, 28)
        assert np.bincount(labels).tolist() == [per_class] * 10


def test_pinned_checksums_match_the_data_dirs_sums_file(root: Path) -> None:
    listed = {}
    for line in (root / data.SUMS_FILE).read_text().splitlines():
        sha, name = line.split()
        listed[name] = sha
    for dataset, files in data.SHA256.items():
        for name, sha in files.items():
            assert listed[f"{dataset}/{name}"] == sha == data.sha256_file(root / dataset / name)


def test_corrupted_copy_is_rejected_naming_file_and_both_checksums(root: Path, tmp_path: Path) -> None:
    folder = _copy_split(root, tmp_path)
    _flip_byte(folder / TEST_LABELS)
    with pytest.raises(data.DataError) as err:
        data.load_mnist("test", data_dir=tmp_path)
    message = str(err.value)
    assert TEST_LABELS in message and str(folder / TEST_LABELS) in message
    assert data.SHA256["mnist"][TEST_LABELS] in message
    assert data.sha256_file(folder / TEST_LABELS) in message
    assert "VASE_DATA_DIR" in message and "download" in message


def test_intact_copy_in_another_dir_loads_identically(root: Path, tmp_path: Path) -> None:
    _copy_split(root, tmp_path)
    images, labels = data.load_mnist("test", data_dir=tmp_path)
    ref_images, ref_labels = data.load_mnist("test")
    assert np.array_equal(images, ref_images) and np.array_equal(labels, ref_labels)


def test_missing_file_error_names_file_expected_checksum_and_fix(tmp_path: Path) -> None:
    with pytest.raises(data.DataError) as err:
        data.load_fashion_mnist("train", data_dir=tmp_path)
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message and "missing" in message
    assert data.SHA256["fashion_mnist"]["train-images-idx3-ubyte.gz"] in message
    assert "download-data fashion_mnist" in message


def test_truncated_gzip_is_rejected(root: Path, tmp_path: Path) -> None:
    folder = _copy_split(root, tmp_path)
    path = folder / TEST_LABELS
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(data.DataError, match="gzip"):
        data.read_idx(path)
    with pytest.raises(data.DataError, match="failed its SHA-256"):
        data.load_mnist("test", data_dir=tmp_path)


def test_wrong_idx_magic_and_size_mismatch_are_rejected(tmp_path: Path) -> None:
    bad_magic = tmp_path / "bad-magic.gz"
    bad_magic.write_bytes(gzip.compress(b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"abc"))
    with pytest.raises(data.DataError, match="wrong IDX magic"):
        data.read_idx(bad_magic)
    short = tmp_path / "short.gz"
    short.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"abc"))
    with pytest.raises(data.DataError, match="does not match"):
        data.read_idx(short)
    good = tmp_path / "good.gz"
    good.write_bytes(gzip.compress(b"\x00\x00\x08\x02" + (2).to_bytes(4, "big") * 2 + bytes([1, 2, 3, 4])))
    assert data.read_idx(good).tolist() == [[1, 2], [3, 4]]


def test_verification_stamp_skips_rehash_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_VERIFIED", {})
    monkeypatch.setattr(data, "_STAMP_LOADED", False)
    path = tmp_path / "f.bin"
    path.write_bytes(b"hello")
    sha = data.sha256_file(path)
    data.verify_files({path: sha})
    assert (tmp_path / "cache" / "vase_rl" / "verified-sha256.json").is_file()

    real_hash = data.sha256_file

    def must_not_hash(p: Path) -> str:
        raise AssertionError(f"re-hashed {p}")

    monkeypatch.setattr(data, "_VERIFIED", {})  # a new process: only the stamp remains
    monkeypatch.setattr(data, "_STAMP_LOADED", False)
    monkeypatch.setattr(data, "sha256_file", must_not_hash)
    data.verify_files({path: sha})
    os.utime(path, ns=(1, 1))  # changed mtime -> hashed again
    with pytest.raises(AssertionError, match="re-hashed"):
        data.verify_files({path: sha})
    monkeypatch.setattr(data, "sha256_file", real_hash)
    data.verify_files({path: sha})  # the stale entry is dropped when the stamp is rewritten
    stamp = json.loads((tmp_path / "cache" / "vase_rl" / data.STAMP_FILE).read_text())
    assert list(stamp) == [f"{path.resolve()}|5|1"]


# ------------------------------------------------------------------------------------- faces


def test_faces_load_as_32x32_patches_with_a_1000_image_test_split(root: Path) -> None:
    files = data.face_files()
    assert len(files) == 10000
    train, test = data.load_faces(split="train"), data.load_faces(split="test")
    assert train.shape == (9000, 32, 32) and test.shape == (1000, 32, 32) and train.dtype == np.uint8
    assert np.array_equal(data.load_faces(n=5), train[:5])
    # Face-centred: the mean face is left-right symmetric and has textured (eyes/mouth) middle rows.
    mean = train.astype(np.float64).mean(axis=0)
    assert np.corrcoef(mean.ravel(), mean[:, ::-1].ravel())[0, 1] > 0.95
    assert 40 < train.mean() < 200 and train.std() > 30


def _face_dir(root: Path, dest: Path) -> Path:
    """A data dir holding only face 000001.jpg and a SHA256SUMS listing it."""
    name = f"{data.FACES_DIR}/000001.jpg"
    (dest / data.FACES_DIR).mkdir(parents=True)
    shutil.copy(root / name, dest / name)
    (dest / data.SUMS_FILE).write_text(f"{data.face_files()[root / name]}  {name}\n")
    return dest / name


def test_face_files_without_sums_file_or_with_a_bad_image_are_rejected(root: Path, tmp_path: Path) -> None:
    with pytest.raises(data.DataError, match="SHA256SUMS is missing"):
        data.load_faces(n=1, data_dir=tmp_path)
    _face_dir(root, tmp_path / "good")
    assert np.array_equal(data.load_faces(data_dir=tmp_path / "good"), data.load_faces(n=1))
    bad = _face_dir(root, tmp_path / "bad")
    _flip_byte(bad, offset=500)
    with pytest.raises(data.DataError) as err:
        data.load_faces(data_dir=tmp_path / "bad")
    expected = data.face_files()[root / data.FACES_DIR / "000001.jpg"]
    assert expected in str(err.value) and str(bad) in str(err.value) and "CelebA" in str(err.value)


def test_face_patch_crops_the_face_box_then_area_resizes() -> None:
    img = np.zeros((109, 89, 3), dtype=np.uint8)
    img[28:88, 14:74] = (200, 100, 50)  # exactly the documented crop box
    patch = data.face_patch(img)
    gray = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    assert patch.shape == (32, 32) and np.all(patch == gray)
    img[27, 14:74] = 255  # a row just above the box does not leak in
    assert np.array_equal(data.face_patch(img), patch)
    assert data.face_patch(np.stack([img, img])).shape == (2, 32, 32)


# ---------------------------------------------------------------------------------- download


class _FakeResponse(io.BytesIO):
    def __init__(self, payload: bytes) -> None:
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


def test_download_fetches_from_mirror_verifies_and_loads(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    urls: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> _FakeResponse:
        urls.append(url)
        if url.startswith(data.MIRRORS["mnist"][0]):
            raise URLError("mirror down")  # first mirror fails -> the next one is used
        return _FakeResponse((root / "mnist" / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(data, "urlopen", fake_urlopen)
    dest = data.download("mnist", data_dir=tmp_path)
    assert dest == tmp_path / "mnist" and len(urls) == 8
    assert sorted(p.name for p in dest.iterdir()) == sorted(data.SHA256["mnist"])
    assert np.array_equal(data.load_mnist("test", data_dir=tmp_path)[1], data.load_mnist("test")[1])
    urls.clear()
    data.download("mnist", data_dir=tmp_path)  # already verified: nothing fetched
    assert urls == []


def test_download_rejects_bad_bytes_and_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data, "urlopen", lambda url, timeout: _FakeResponse(b"not fashion mnist"))
    with pytest.raises(data.DataError) as err:
        data.download("fashion", data_dir=tmp_path)
    assert data.SHA256["fashion_mnist"]["train-images-idx3-ubyte.gz"] in str(err.value)
    assert "failed its SHA-256" in str(err.value)
    assert list((tmp_path / "fashion_mnist").iterdir()) == []  # no partial or unverified file


def test_download_of_faces_or_unknown_dataset_explains_why() -> None:
    with pytest.raises(data.DataError, match="CelebA cannot be downloaded automatically"):
        data.download("faces")
    with pytest.raises(ValueError, match="unknown dataset"):
        data.download("cifar")


# -------------------------------------------------------------------------------- transforms


def test_invert_is_black_on_white_with_reduced_contrast() -> None:
    out = data.invert(np.array([[0, 255, 100]], dtype=np.uint8))
    assert out.dtype == np.uint8 and out.tolist() == [[255, 51, 175]]


def test_place_on_canvas_matches_a_loop_and_rejects_sprites_outside() -> None:
    rng = np.random.default_rng(0)
    sprites = rng.integers(0, 256, (5, 3, 4), dtype=np.uint8)
    xs, ys = rng.integers(0, 7, 5), rng.integers(0, 8, 5)
    out = data.place_on_canvas(sprites, xs, ys, 10, background=7)
    expected = np.full((5, 10, 10), 7, dtype=np.uint8)
    for i in range(5):
        expected[i, ys[i] : ys[i] + 3, xs[i] : xs[i] + 4] = sprites[i]
    assert np.array_equal(out, expected)
    with pytest.raises(ValueError, match="inside"):
        data.place_on_canvas(sprites, xs + 7, ys, 10)
    with pytest.raises(ValueError, match="does not fit"):
        data.place_on_canvas(sprites, xs, ys, 2)


def test_resize_area_averages_blocks_and_preserves_mean_for_any_factor() -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 28, 28)).astype(np.float64)
    halved = data.resize_area(images, 14)
    assert np.allclose(halved, images.reshape(3, 14, 2, 14, 2).mean(axis=(2, 4)), atol=1e-4)
    for size in (9, 13, 32, (10, 20)):
        out = data.resize_area(images, size)
        assert np.allclose(out.mean(axis=(1, 2)), images.mean(axis=(1, 2)), atol=1e-3)
    constant = np.full((2, 28, 28), 77, dtype=np.uint8)
    assert np.all(data.resize_area(constant, 11) == 77) and data.resize_area(constant, 11).dtype == np.uint8
    # 3 -> 2: output cell 0 covers input cells 0 and half of 1.
    assert np.allclose(data.resize_area(np.array([[0.0, 3.0, 6.0]] * 3), (3, 2))[0], [1.0, 5.0])
