"""Train/val/test data sets: writing, splitting, loading and verifying."""
from __future__ import annotations

import json

import numpy as np
import pytest

from foamlib.datasets import (
    FORMAT,
    SPLITS,
    load_groups,
    load_indices,
    load_split,
    read_manifest,
    verify_dataset,
    write_dataset,
)


def pairs(n=20, shape=(12, 13), seed=0):
    """Random uint8 images and bool labels (a width that is not a multiple of 8)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    labels = rng.random((n, *shape)) < 0.3
    return images, labels


def test_round_trip_is_exact(tmp_path):
    images, labels = pairs()
    groups = np.repeat(np.arange(5), 4) + 100
    folder = write_dataset(tmp_path / "ds", images, labels, groups=groups, rng=1)
    seen = []
    for split in SPLITS:
        imgs, labs = load_split(folder, split)
        idx = load_indices(folder, split)
        assert imgs.dtype == np.uint8 and labs.dtype == bool
        np.testing.assert_array_equal(imgs, images[idx])
        np.testing.assert_array_equal(labs, labels[idx])
        grp = load_groups(folder, split)
        assert grp.dtype == np.int32
        np.testing.assert_array_equal(grp, groups[idx])
        seen.append(idx)
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(20))


def test_split_by_image_is_exact_for_100_images(tmp_path):
    images, labels = pairs(100, (4, 4))
    folder = write_dataset(tmp_path, images, labels, rng=0)
    manifest = read_manifest(folder)
    assert manifest["counts"] == {"train": 70, "val": 20, "test": 10}
    assert manifest["split_by"] == "image"
    idx = [load_indices(folder, s) for s in SPLITS]
    assert all(np.all(np.diff(i) > 0) for i in idx)  # input order within a split
    np.testing.assert_array_equal(load_groups(folder, "val"), idx[1])  # no groups: own position


def test_split_by_group_keeps_groups_together_and_is_approximate(tmp_path):
    images, labels = pairs(100, (4, 4))
    groups = np.repeat(np.arange(20), 5)  # 20 volumes of 5 slices
    folder = write_dataset(tmp_path, images, labels, groups=groups, rng=3)
    manifest = read_manifest(folder)
    counts = manifest["counts"]
    assert sum(counts.values()) == 100 and manifest["split_by"] == "group"
    for split, target in zip(SPLITS, (70, 20, 10)):
        assert abs(counts[split] - target) <= 5  # within one group
    sets = [set(load_groups(folder, s).tolist()) for s in SPLITS]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert [manifest["n_groups"][s] for s in SPLITS] == [len(s) for s in sets]


def test_every_split_gets_a_group_even_with_unequal_groups(tmp_path):
    images, labels = pairs(30, (4, 4))
    groups = np.array([0] * 26 + [1, 2, 3, 4])
    for seed in range(5):
        folder = write_dataset(tmp_path / str(seed), images, labels, groups=groups, rng=seed)
        assert all(n >= 1 for n in read_manifest(folder)["counts"].values())


def test_same_seed_same_bytes(tmp_path):
    images, labels = pairs()
    a = write_dataset(tmp_path / "a", images, labels, rng=5, manifest={"seed": 5})
    b = write_dataset(tmp_path / "b", images, labels, rng=np.int64(5), manifest={"seed": 5})
    c = write_dataset(tmp_path / "c", images, labels, rng=6, manifest={"seed": 5})
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
    assert read_manifest(a)["files"] != read_manifest(c)["files"]
    gen = write_dataset(tmp_path / "d", images, labels, rng=np.random.default_rng(5))
    assert read_manifest(gen)["seed"] is None
    fresh = write_dataset(tmp_path / "e", images, labels)
    assert isinstance(read_manifest(fresh)["seed"], int)


def test_manifest_contents_and_verification(tmp_path):
    images, labels = pairs()
    params = {"renderer": "algorithmic", "model": {"pore_level": np.float32(60.0)}, "sizes": np.arange(2)}
    folder = write_dataset(tmp_path, images, labels, split=(0.5, 0.25, 0.25), rng=2, manifest=params)
    manifest = verify_dataset(folder)
    assert manifest["format"] == FORMAT
    assert manifest["counts"] == {"train": 10, "val": 5, "test": 5} and manifest["total"] == 20
    assert manifest["image_shape"] == [12, 13] and manifest["dtype"] == "uint8"
    assert manifest["seed"] == 2 and manifest["split"] == {"train": 0.5, "val": 0.25, "test": 0.25}
    assert manifest["parameters"] == {"renderer": "algorithmic", "model": {"pore_level": 60.0}, "sizes": [0, 1]}
    assert set(manifest["files"]) == set(SPLITS)
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())
    path = folder / "val.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="val.npz"):
        verify_dataset(folder)


def test_count_mismatch_is_reported(tmp_path):
    images, labels = pairs()
    folder = write_dataset(tmp_path, images, labels, rng=0)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["counts"]["test"] += 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="test.npz"):
        load_split(folder, "test")


def test_refuses_to_overwrite_a_data_set(tmp_path):
    images, labels = pairs()
    folder = write_dataset(tmp_path / "ds", images, labels, rng=0)
    with pytest.raises(FileExistsError, match="ds"):
        write_dataset(folder, images[:10], labels[:10], rng=0)
    assert read_manifest(folder)["total"] == 20
    write_dataset(folder, images[:10], labels[:10], rng=0, overwrite=True)
    assert verify_dataset(folder)["total"] == 10


def test_float_images_and_numeric_labels_are_converted(tmp_path):
    images, labels = pairs(10)
    folder = write_dataset(tmp_path, images / 255.0, labels.astype(np.float32), split=(0.6, 0.2, 0.2), rng=0)
    imgs, labs = load_split(folder, "train")
    idx = load_indices(folder, "train")
    np.testing.assert_array_equal(imgs, images[idx])
    np.testing.assert_array_equal(labs, labels[idx])


def test_bad_inputs_are_rejected(tmp_path):
    images, labels = pairs(10)
    with pytest.raises(ValueError, match="images"):
        write_dataset(tmp_path, images[0], labels[0])
    with pytest.raises(ValueError, match="labels"):
        write_dataset(tmp_path, images, labels[:, :5])
    with pytest.raises(TypeError, match="images"):
        write_dataset(tmp_path, images.astype(np.int16), labels)
    with pytest.raises(ValueError, match="float images"):
        write_dataset(tmp_path, images * 2.0, labels)
    with pytest.raises(ValueError, match="labels"):
        write_dataset(tmp_path, images, labels * 2)
    with pytest.raises(ValueError, match="sum to 1"):
        write_dataset(tmp_path, images, labels, split=(0.7, 0.2, 0.2))
    with pytest.raises(ValueError, match="'test'"):
        write_dataset(tmp_path, images, labels, split=(0.8, 0.2, 0.0))
    with pytest.raises(ValueError, match="too few"):
        write_dataset(tmp_path, images[:2], labels[:2])
    with pytest.raises(ValueError, match="groups"):
        write_dataset(tmp_path, images, labels, groups=np.arange(9))
    with pytest.raises(TypeError, match="groups"):
        write_dataset(tmp_path, images, labels, groups=np.zeros(10))
    with pytest.raises(ValueError, match="distinct"):
        write_dataset(tmp_path, images, labels, groups=np.repeat([0, 1], 5))
    with pytest.raises(ValueError, match="JSON"):
        write_dataset(tmp_path, images, labels, manifest={"model": object()})
    assert not any(tmp_path.iterdir())  # nothing written by a refused call


def test_missing_data_set_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="rendering stage"):
        load_split(tmp_path / "nowhere", "train")
    with pytest.raises(FileNotFoundError, match="rendering stage"):
        read_manifest(tmp_path)
    images, labels = pairs()
    folder = write_dataset(tmp_path / "ds", images, labels, rng=0)
    with pytest.raises(ValueError, match="split"):
        load_split(folder, "validation")
    (folder / "test.npz").unlink()
    with pytest.raises(FileNotFoundError, match="test.npz"):
        verify_dataset(folder)


def test_500_pairs_are_small_on_disk(tmp_path):
    images, labels = pairs(500, (64, 64))  # incompressible noise images: the worst case
    folder = write_dataset(tmp_path, images, labels, rng=0)
    on_disk = sum((folder / f"{s}.npz").stat().st_size for s in SPLITS)
    raw = images.nbytes + labels.nbytes
    assert on_disk < 0.6 * raw
