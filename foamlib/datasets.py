"""Compact train/val/test data sets of (grey image, binary label) pairs.

A data set is a folder::

    train.npz  val.npz  test.npz  manifest.json

Each split file is a zip of ``.npy`` arrays (readable with :func:`numpy.load`):

``images``
    uint8, shape (N, H, W): grey images.
``labels``
    uint8, shape (N, H, ceil(W / 8)): the bool labels (True = solid) packed
    with ``np.packbits(labels, axis=-1)``.
``label_width``
    int64 scalar: ``W``, to unpack the labels.
``groups``
    int32, shape (N,): source-volume id of each image (the image's own
    position when no groups were given).
``indices``
    int64, shape (N,): position of each image in the arrays given to
    :func:`write_dataset`.

The files are written with fixed zip timestamps, so the same inputs and seed
give byte-identical files (and sha256 sums). ``manifest.json`` is written
last; a folder with a manifest is a complete data set. The manifest holds
the counts per split, image shape and dtype, seed, split fractions, the
sha256 and size of every split file and the caller's generation parameters.

The same format serves the algorithmic (step 1) and the GAN / CycleGAN
(step 2) data sets; :func:`load_split` reads both.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import streams
from .checks import check_real, is_int
from .runs import to_jsonable, atomic_path, read_json, write_json

__all__ = [
    "FORMAT",
    "SPLITS",
    "load_groups",
    "load_indices",
    "load_split",
    "read_manifest",
    "verify_dataset",
    "write_dataset",
]

logger = logging.getLogger(__name__)

#: Names of the splits, in the order of the ``split`` fractions.
SPLITS: tuple[str, str, str] = ("train", "val", "test")
#: ``format`` entry of every manifest.
FORMAT = "foamlib-dataset-v1"
_MANIFEST = "manifest.json"
_HINT = "run the rendering stage first"
#: Fixed zip member timestamp (the zip epoch) for reproducible files.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


# --------------------------------------------------------------------------- checks


def _check_images(images) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise ValueError(f"images must be a non-empty 3-d array (N, H, W), got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
            raise ValueError(
                f"float images must hold values in [0, 1] (stored as round(255 * value)), "
                f"got values in [{arr.min()!r}, {arr.max()!r}]"
            )
        return np.rint(arr * 255.0).astype(np.uint8)
    raise TypeError(f"images must be uint8 or float in [0, 1], got dtype {arr.dtype}")


def _check_labels(labels, shape) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.shape != shape:
        raise ValueError(f"labels must have the shape of images {shape}, got {arr.shape}")
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"labels must be bool or 0/1 numbers, got dtype {arr.dtype}")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError("labels must be bool or hold only 0 and 1")
    return arr.astype(bool)


def _check_groups(groups, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    arr = np.asarray(groups)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"groups must be integers, got dtype {arr.dtype}")
    if arr.shape != (n,):
        raise ValueError(f"groups must have shape ({n},) (one id per image), got {arr.shape}")
    info = np.iinfo(np.int32)
    if arr.size and (arr.min() < info.min or arr.max() > info.max):
        raise ValueError("groups must fit in int32")
    return arr.astype(np.int32)


def _check_split(split) -> tuple[float, float, float]:
    if isinstance(split, (str, bytes)) or not isinstance(split, Sequence) or len(split) != 3:
        raise ValueError(f"split must be three fractions (train, val, test), got {split!r}")
    out = []
    for name, value in zip(SPLITS, split):
        out.append(check_real(f"split fraction for {name!r}", value, low=0.0, low_open=True))
    if abs(sum(out) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {split!r} (sum {sum(out)!r})")
    return tuple(out)


def _check_split_name(split) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


# --------------------------------------------------------------------------- splitting


def _counts(n: int, fractions: tuple[float, ...]) -> np.ndarray:
    """Largest-remainder apportionment of ``n`` items to ``fractions`` (sums to ``n``)."""
    exact = np.asarray(fractions) * n
    counts = np.floor(exact + 1e-9).astype(np.int64)
    remainder = exact - counts
    for k in np.argsort(-remainder, kind="stable")[: n - int(counts.sum())]:
        counts[k] += 1
    return counts


def _split_by_image(n: int, fractions, rng: np.random.Generator) -> list[np.ndarray]:
    counts = _counts(n, fractions)
    if np.any(counts == 0):
        raise ValueError(
            f"{n} images are too few for split {fractions}: the split sizes would be "
            f"{dict(zip(SPLITS, counts.tolist()))}; every split needs at least one image"
        )
    perm = rng.permutation(n)
    bounds = np.cumsum(counts)[:-1]
    return [np.sort(part) for part in np.split(perm, bounds)]


def _split_by_group(groups: np.ndarray, fractions, rng: np.random.Generator) -> list[np.ndarray]:
    ids, inverse, sizes = np.unique(groups, return_inverse=True, return_counts=True)
    if ids.size < len(SPLITS):
        raise ValueError(f"groups has {ids.size} distinct ids; splitting by group needs at least {len(SPLITS)}")
    order = rng.permutation(ids.size)
    # each group (in shuffled order) goes to the split whose share of the images holds its midpoint
    mid = np.cumsum(sizes[order]) - sizes[order] / 2.0
    edges = np.cumsum(fractions)[:-1] * groups.size
    assign = np.empty(ids.size, dtype=np.int64)
    assign[order] = np.searchsorted(edges, mid, side="right")
    # a split left without a group takes the smallest group of the split with the most groups
    for k in range(len(SPLITS)):
        if not np.any(assign == k):
            donor = int(np.argmax(np.bincount(assign, minlength=len(SPLITS))))
            candidates = np.flatnonzero(assign == donor)
            assign[candidates[np.argmin(sizes[candidates])]] = k
    image_split = assign[inverse]
    return [np.flatnonzero(image_split == k) for k in range(len(SPLITS))]


# --------------------------------------------------------------------------- files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as a deflated ``.npz`` with fixed timestamps (reproducible bytes)."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arr), allow_pickle=False)
            zf.writestr(info, buffer.getvalue())


def _seed_of(rng) -> tuple[int | None, np.random.Generator]:
    """The integer seed to record (None for a Generator) and the generator to use."""
    if rng is None or is_int(rng):
        seed = streams.base_seed(rng)
        return seed, streams.rng(seed, "dataset", "split")
    return None, np.random.default_rng(rng)


def write_dataset(
    folder: str | os.PathLike,
    images,
    labels,
    *,
    groups=None,
    split=(0.7, 0.2, 0.1),
    rng=None,
    manifest: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Split (image, label) pairs into train/val/test and write them as a data set.

    Parameters
    ----------
    folder : path-like
        Data-set folder, created if missing.
    images : array_like, shape (N, H, W), uint8 or float
        Grey images. Float images must lie in [0, 1] and are stored as
        ``round(255 * value)`` (uint8).
    labels : array_like, shape (N, H, W), bool or 0/1 numbers
        Binary labels, True = solid.
    groups : array_like of int, shape (N,), optional
        Source-volume id of every image. If given, whole groups go to one
        split (no leakage between neighbouring slices of one volume); each
        group goes to the split whose share of the images contains the
        group's midpoint in a random order of the groups, so the fractions
        hold only approximately (to within about one group's size), and
        every split gets at least one group (needs >= 3 groups). If None,
        every image is its own group and the split sizes are the fractions of
        N rounded by largest remainder (exact for 100 images and 0.7/0.2/0.1).
    split : (float, float, float), default (0.7, 0.2, 0.1)
        Fractions for train, val and test; each > 0, summing to 1.
    rng : int, numpy.random.Generator or None
        Random source of the split. An int is recorded as ``seed`` in the
        manifest; for None a fresh seed is drawn and recorded; for a
        Generator ``seed`` is null.
    manifest : mapping, optional
        Generation parameters (JSON-ready; numpy values and paths are
        converted), stored under ``parameters`` in ``manifest.json``.
    overwrite : bool, default False
        Replace an existing data set (a folder holding ``manifest.json``).

    Returns
    -------
    pathlib.Path
        The folder.

    Raises
    ------
    FileExistsError
        If ``folder`` holds a data set and ``overwrite`` is False.
    ValueError, TypeError
        For bad shapes, dtypes, values, fractions, too few images/groups for
        every split to get one, or parameters that are not JSON-ready.

    Notes
    -----
    Within each split the images keep their input order (the shuffle decides
    only which split an image goes to); ``indices`` records the positions.
    """
    folder = Path(folder)
    imgs = _check_images(images)
    labs = _check_labels(labels, imgs.shape)
    n = imgs.shape[0]
    grp = _check_groups(groups, n)
    fractions = _check_split(split)
    if manifest is None:
        manifest = {}
    if not isinstance(manifest, Mapping):
        raise TypeError(f"manifest must be a mapping of generation parameters, got {type(manifest).__name__}")
    params = to_jsonable(manifest)
    try:
        json.dumps(params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"manifest parameters are not JSON-ready: {exc}") from exc
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} exists and is not a folder")
    manifest_path = folder / _MANIFEST
    if manifest_path.exists():
        if not overwrite:
            raise FileExistsError(f"{folder} already holds a data set; pass overwrite=True to replace it")
        manifest_path.unlink()  # the old data set is incomplete from here on

    seed, gen = _seed_of(rng)
    if grp is None:
        parts = _split_by_image(n, fractions, gen)
        stored_groups = np.arange(n, dtype=np.int32)
    else:
        parts = _split_by_group(grp, fractions, gen)
        stored_groups = grp

    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = {}
    n_groups: dict[str, int] = {}
    for name, idx in zip(SPLITS, parts):
        path = folder / f"{name}.npz"
        _write_npz(path, {
            "images": imgs[idx],
            "labels": np.packbits(labs[idx], axis=-1),
            "label_width": np.int64(imgs.shape[2]),
            "groups": stored_groups[idx],
            "indices": idx.astype(np.int64),
        })
        files[name] = {"name": path.name, "sha256": _sha256(path), "bytes": path.stat().st_size}
        counts[name] = int(idx.size)
        n_groups[name] = int(np.unique(stored_groups[idx]).size)
    write_json(manifest_path, {
        "format": FORMAT,
        "counts": counts,
        "total": n,
        "image_shape": list(imgs.shape[1:]),
        "dtype": "uint8",
        "label_encoding": "np.packbits(labels, axis=-1); unpack with label_width",
        "seed": seed,
        "split": dict(zip(SPLITS, fractions)),
        "split_by": "image" if grp is None else "group",
        "n_groups": n_groups,
        "files": files,
        "parameters": params,
    })
    logger.info("wrote data set %s: %s", folder, counts)
    return folder


# --------------------------------------------------------------------------- reading


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``manifest.json`` of a data set.

    Raises
    ------
    FileNotFoundError
        If the folder or its manifest is missing (an unfinished data set).
    ValueError
        If the manifest is not a foamlib data-set manifest.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"data set folder {folder} does not exist; {_HINT}")
    path = folder / _MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist, so {folder} is not a complete data set; {_HINT}")
    data = read_json(path)
    if data.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} manifest (format {data.get('format')!r})")
    return data


def _open_split(folder, split) -> tuple[dict[str, Any], dict[str, np.ndarray], Path]:
    split = _check_split_name(split)
    manifest = read_manifest(folder)
    path = Path(folder) / manifest["files"][split]["name"]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; {_HINT}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path} is not a readable split file: {exc}") from exc
    missing = {"images", "labels", "label_width", "groups", "indices"} - set(arrays)
    if missing:
        raise ValueError(f"{path} lacks the arrays {sorted(missing)}")
    n = arrays["images"].shape[0]
    if n != manifest["counts"][split] or arrays["groups"].shape != (n,) or arrays["labels"].shape[0] != n:
        raise ValueError(f"{path} holds {n} images, the manifest says {manifest['counts'][split]}")
    return manifest, arrays, path


def load_split(folder: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split.

    Parameters
    ----------
    folder : path-like
        Data-set folder.
    split : {"train", "val", "test"}

    Returns
    -------
    images : ndarray, shape (N, H, W), uint8
    labels : ndarray, shape (N, H, W), bool
        True = solid.
    """
    _, arrays, path = _open_split(folder, split)
    images = arrays["images"]
    width = int(arrays["label_width"])
    labels = np.unpackbits(arrays["labels"], axis=-1, count=width).astype(bool)
    if labels.shape != images.shape or images.dtype != np.uint8:
        raise ValueError(f"{path}: labels {labels.shape} and images {images.shape} ({images.dtype}) do not match")
    return images, labels


def load_groups(folder: str | os.PathLike, split: str) -> np.ndarray:
    """Source-volume ids of one split's images, int32 (N,)."""
    return _open_split(folder, split)[1]["groups"]


def load_indices(folder: str | os.PathLike, split: str) -> np.ndarray:
    """Positions of one split's images in the arrays given to :func:`write_dataset`, int64 (N,)."""
    return _open_split(folder, split)[1]["indices"]


def verify_dataset(folder: str | os.PathLike) -> dict[str, Any]:
    """Check a data set against its manifest.

    Checks the sha256 of every split file, then that each holds the counted
    number of images of the recorded shape with matching labels.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    FileNotFoundError
        Missing folder, manifest or split file.
    ValueError
        Naming the file whose checksum, count or shape does not match.
    """
    manifest = read_manifest(folder)
    shape = tuple(manifest["image_shape"])
    for split in SPLITS:
        entry = manifest["files"][split]
        path = Path(folder) / entry["name"]
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; {_HINT}")
        digest = _sha256(path)
        if digest != entry["sha256"]:
            raise ValueError(f"{path} is corrupt: sha256 {digest} differs from the manifest's {entry['sha256']}")
        images, labels = load_split(folder, split)
        if images.shape[1:] != shape:
            raise ValueError(f"{path} holds images of shape {images.shape[1:]}, the manifest says {shape}")
    return manifest
