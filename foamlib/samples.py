"""Samples: put a scan into a run folder, either a built-in demo foam or a user's scan.

This is the first stage of the study. It writes

``run_dir/scan.tif``
    the scan, (Z, Y, X), in its original integer dtype where it had one, else float32,
    with the voxel size in the TIFF metadata;
``run_dir/sample.json``
    provenance, voxel size, the reference porosity and where it comes from;
``run_dir/truth.tif``
    (demo samples only) the ground-truth solid, uint8 0/255.

Later stages call :func:`load_sample` and :func:`load_truth` instead of reading
those files by hand.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io import Scan, read_mask, read_scan, scan_from_array, write_tiff
from .runs import read_json, write_json

__all__ = ["SampleRecord", "demo_names", "prepare_sample", "load_sample", "load_truth"]

SCAN_FILE = "scan.tif"
TRUTH_FILE = "truth.tif"
RECORD_FILE = "sample.json"


@dataclass(frozen=True)
class SampleRecord:
    """What the study knows about a sample, as stored in ``sample.json``.

    Attributes
    ----------
    sample : str
        Name of the sample (also the name of its run folder).
    source : str
        ``"demo"`` for a built-in phantom, else the path of the user's scan.
    shape : tuple of int
        (Z, Y, X) in voxels.
    voxel_size_um : float or None
        Edge length of a voxel in micrometres; None where unknown (lengths are
        then reported in voxels).
    reference_porosity : float or None
        Porosity to validate segmentations against, as a fraction.
    reference_kind : str or None
        ``"truth"`` (exact, from the phantom's fine grid), ``"measured"`` (given by
        the user, e.g. from pycnometry) or None.
    original_dtype : str
        dtype of the scan as stored.
    original_range : tuple of float
        (min, max) grey value of the scan as stored.
    phantom : dict or None
        The phantom's parameters for a demo sample.
    """

    sample: str
    source: str
    shape: tuple[int, int, int]
    voxel_size_um: float | None
    reference_porosity: float | None
    reference_kind: str | None
    original_dtype: str
    original_range: tuple[float, float]
    phantom: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleRecord:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["shape"] = tuple(kwargs["shape"])
        kwargs["original_range"] = tuple(kwargs["original_range"])
        return cls(**kwargs)


def demo_names() -> tuple[str, ...]:
    """Names of the built-in demo samples (simulated PU foams, see :mod:`foamlib.phantom`)."""
    from .phantom import DEMO_SAMPLES

    return tuple(DEMO_SAMPLES)


def _validate_porosity(value: float | None, what: str) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{what} must be a fraction between 0 and 1 (e.g. 0.89), got {value}")
    return value


def prepare_sample(
    run_dir: str | os.PathLike,
    *,
    sample: str,
    scan_path: str | os.PathLike | None = None,
    size: int = 128,
    voxel_size_um: float | None = None,
    reference_porosity: float | None = None,
    shape: tuple[int, int, int] | None = None,
    dtype: str | None = None,
    byte_order: str = "little",
) -> SampleRecord:
    """Write a sample's scan and record into ``run_dir``.

    Parameters
    ----------
    run_dir : path-like
        The sample's run folder; created if missing.
    sample : str
        Sample name. Without ``scan_path`` it must name a demo sample
        (:func:`demo_names`).
    scan_path : path-like, optional
        A user's scan in any format :func:`foamlib.io.read_scan` reads. The file
        is only read, never modified.
    size : int, optional
        Edge length in voxels of a demo sample's cube (ignored for a user's scan).
    voxel_size_um : float, optional
        Voxel size in micrometres; overrides the file's metadata.
    reference_porosity : float, optional
        Measured porosity of a user's sample, as a fraction (e.g. from
        pycnometry, see :mod:`foamlib.pycnometry`). For a demo sample the exact
        porosity of the phantom is used and this must be None.
    shape, dtype, byte_order
        Passed to :func:`foamlib.io.read_scan` for raw files.

    Returns
    -------
    SampleRecord
        What was written to ``run_dir/sample.json``.

    Raises
    ------
    ValueError
        For an unknown demo name, a reference porosity outside (0, 1), a
        reference porosity given for a demo sample, or a ``scan_path`` that
        points into ``run_dir`` itself (it would be overwritten).
    foamlib.io.ScanError
        If the scan cannot be read or is unusable.
    """
    run_dir = Path(run_dir)
    reference_porosity = _validate_porosity(reference_porosity, "reference_porosity")
    if scan_path is not None:
        scan_path = Path(scan_path)
        target = (run_dir / SCAN_FILE).resolve()
        if scan_path.resolve() == target:
            raise ValueError(f"scan_path {scan_path} is the run folder's own copy; pass the original scan")
        scan = read_scan(scan_path, shape=shape, dtype=dtype, byte_order=byte_order, voxel_size_um=voxel_size_um)
        record = SampleRecord(
            sample=sample,
            source=str(scan_path),
            shape=tuple(int(n) for n in scan.volume.shape),
            voxel_size_um=scan.voxel_size_um,
            reference_porosity=reference_porosity,
            reference_kind=None if reference_porosity is None else "measured",
            original_dtype=scan.original_dtype,
            original_range=tuple(float(v) for v in scan.original_range),
        )
        truth = None
    else:
        from .phantom import DEMO_SAMPLES, demo_sample

        if sample not in DEMO_SAMPLES:
            raise ValueError(
                f"unknown sample {sample!r}: give scan_path for a scan of your own, "
                f"or one of the demo samples {', '.join(DEMO_SAMPLES)}"
            )
        if reference_porosity is not None:
            raise ValueError(f"demo sample {sample!r} has an exact reference porosity; do not pass one")
        demo = demo_sample(sample, size=size)
        vs = demo.voxel_size_um if voxel_size_um is None else float(voxel_size_um)
        scan = scan_from_array(demo.scan, voxel_size_um=vs)
        record = SampleRecord(
            sample=sample,
            source="demo",
            shape=tuple(int(n) for n in scan.volume.shape),
            voxel_size_um=vs,
            reference_porosity=float(demo.porosity),
            reference_kind="truth",
            original_dtype=scan.original_dtype,
            original_range=tuple(float(v) for v in scan.original_range),
            phantom=dataclasses.asdict(demo.params),
        )
        truth = demo.truth
    volume = scan.volume
    if np.dtype(record.original_dtype) in (np.dtype(np.uint8), np.dtype(np.uint16)):
        volume = volume.astype(record.original_dtype)  # lossless: values were read from this dtype
    write_tiff(run_dir / SCAN_FILE, volume, voxel_size_um=record.voxel_size_um, overwrite=True)
    if truth is not None:
        write_tiff(run_dir / TRUTH_FILE, truth, voxel_size_um=record.voxel_size_um, overwrite=True)
    else:
        (run_dir / TRUTH_FILE).unlink(missing_ok=True)
    write_json(run_dir / RECORD_FILE, record.to_dict())
    return record


def load_sample(run_dir: str | os.PathLike) -> tuple[Scan, SampleRecord]:
    """Read the scan and record that :func:`prepare_sample` wrote.

    Returns
    -------
    scan : foamlib.io.Scan
        The scan as float32 (Z, Y, X), voxel size from ``sample.json``.
    record : SampleRecord
    """
    run_dir = Path(run_dir)
    record_path = run_dir / RECORD_FILE
    if not record_path.is_file():
        raise FileNotFoundError(
            f"{record_path} does not exist: run the samples stage (notebooks/00_samples.ipynb) for this run folder first"
        )
    record = SampleRecord.from_dict(read_json(record_path))
    scan = read_scan(run_dir / SCAN_FILE, voxel_size_um=record.voxel_size_um)
    return scan, record


def load_truth(run_dir: str | os.PathLike) -> np.ndarray | None:
    """Ground-truth solid of a demo sample, (Z, Y, X) bool, or None for a user's scan."""
    path = Path(run_dir) / TRUTH_FILE
    if not path.is_file():
        return None
    return read_mask(path)
