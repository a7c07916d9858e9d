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

Scans larger than memory
------------------------
No stage holds the scan whole. :func:`prepare_sample` copies a user's scan
slab by slab, :func:`load_sample` opens the copy lazily
(:class:`foamlib.lazy.LazyScan`: slices, slabs and boxes are read as they are
indexed), and statistics that need many voxels at once use one of two
bounded samples of at most :data:`SAMPLE_VOXELS` voxels:

- :func:`grey_sample`, a regular grid ``scan[::s, ::s, ::s]`` (grey-value
  histograms and the thresholds that need the values themselves);
- :func:`analysis_region`, the centred box (the structure of a
  segmentation, the grey levels of its phases, comparisons with the truth),
  where neighbouring voxels must stay together.

A scan of at most :data:`SAMPLE_VOXELS` voxels (every demo sample of every
profile) is its own sample, so these numbers are those of the whole scan.
Segmentations are streamed slab by slab (:func:`foamlib.segment.segment_scan`,
:func:`foamlib.threshold.write_threshold_mask`) and read back lazily
(:meth:`foamlib.runfolder.RunFolder.open_segmentation`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io import read_mask, scan_from_array, tiff_slab_writer, write_tiff
from .lazy import LazyScan, central_region, grid_step, open_scan
from .progress import progress_bar
from .runs import read_json, write_json

__all__ = [
    "SampleRecord",
    "SAMPLE_VOXELS",
    "demo_names",
    "prepare_sample",
    "load_sample",
    "load_truth",
    "analysis_region",
    "grey_sample",
]

#: Most voxels of the scan that a stage holds at once for a statistic (:func:`grey_sample`,
#: :func:`analysis_region`): 2**24, a 256^3 cube, 64 MB as float32. Every demo sample of every
#: profile (at most 256^3) is its own sample.
SAMPLE_VOXELS = 2**24

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
    progress: bool = False,
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
    progress : bool, optional
        Show progress bars over the slabs of a user's scan. Default False.

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

    Notes
    -----
    A user's scan is opened lazily (:func:`foamlib.lazy.open_scan`), checked
    in one streamed pass (:meth:`~foamlib.lazy.LazyScan.value_range`: NaN,
    infinities, a constant scan) and copied slab by slab, so its size is not
    bounded by memory. uint8 and uint16 scans keep their dtype; others are
    stored as float32, the values :func:`foamlib.io.read_scan` gives.
    """
    run_dir = Path(run_dir)
    reference_porosity = _validate_porosity(reference_porosity, "reference_porosity")
    if scan_path is not None:
        scan_path = Path(scan_path)
        target = (run_dir / SCAN_FILE).resolve()
        if scan_path.resolve() == target:
            raise ValueError(f"scan_path {scan_path} is the run folder's own copy; pass the original scan")
        scan = open_scan(scan_path, shape=shape, dtype=dtype, byte_order=byte_order, voxel_size_um=voxel_size_um)
        low, high = scan.value_range(progress=progress)  # every check read_scan makes, streamed
        record = SampleRecord(
            sample=sample,
            source=str(scan_path),
            shape=scan.shape,
            voxel_size_um=scan.voxel_size_um,
            reference_porosity=reference_porosity,
            reference_kind=None if reference_porosity is None else "measured",
            original_dtype=scan.dtype.name,
            original_range=(low, high),
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
    if scan_path is not None:
        _copy_scan(scan, run_dir / SCAN_FILE, progress=progress)
    else:
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


def load_sample(run_dir: str | os.PathLike) -> tuple[LazyScan, SampleRecord]:
    """Open the scan and read the record that :func:`prepare_sample` wrote.

    Returns
    -------
    scan : foamlib.lazy.LazyScan
        The scan, opened without reading its voxels: ``scan.shape`` is
        ``(Z, Y, X)``, ``scan[z]`` reads one slice, ``scan[box]`` one box, in
        the dtype it is stored in (uint8, uint16 or float32;
        ``.astype(np.float32)`` gives the values :func:`foamlib.io.read_scan`
        gives). Voxel size from ``sample.json``. See the module notes for the
        bounded samples the stages take of it.
    record : SampleRecord
    """
    run_dir = Path(run_dir)
    record_path = run_dir / RECORD_FILE
    if not record_path.is_file():
        raise FileNotFoundError(
            f"{record_path} does not exist: run the samples stage (notebooks/00_samples.ipynb) for this run folder first"
        )
    record = SampleRecord.from_dict(read_json(record_path))
    scan = open_scan(run_dir / SCAN_FILE, voxel_size_um=record.voxel_size_um)
    return scan, record


def load_truth(run_dir: str | os.PathLike) -> np.ndarray | None:
    """Ground-truth solid of a demo sample, (Z, Y, X) bool, or None for a user's scan."""
    path = Path(run_dir) / TRUTH_FILE
    if not path.is_file():
        return None
    return read_mask(path)


def analysis_region(shape: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    """The centred box of at most :data:`SAMPLE_VOXELS` voxels that the stages analyse in memory.

    :func:`foamlib.lazy.central_region` of ``shape``: the whole scan up to
    :data:`SAMPLE_VOXELS` voxels, else a centred box as cubic as fits (a
    512^3 scan: its central 256^3). ``scan[box]``, ``truth[box]`` and
    ``run.open_segmentation(method)[box]`` are the same voxels.

    Parameters
    ----------
    shape : tuple of (int, int, int)
        ``(Z, Y, X)`` of the scan (``scan.shape`` or ``record.shape``).

    Returns
    -------
    tuple of 3 slice
    """
    return central_region(tuple(shape), SAMPLE_VOXELS)


def grey_sample(scan: LazyScan, *masks: Any) -> list[Any]:
    """Grey values of a regular grid of at most :data:`SAMPLE_VOXELS` voxels, and masks on the same grid.

    Parameters
    ----------
    scan : foamlib.lazy.LazyScan
        The scan (:func:`load_sample`).
    *masks : ndarray, foamlib.lazy.LazyMask or None
        Volumes of the scan's shape (e.g. the truth); None stays None.

    Returns
    -------
    list
        ``[grey, *masks]``: ``grey`` is ``scan[::s, ::s, ::s]`` as float32
        (the values :func:`foamlib.io.read_scan` gives), ``s`` the smallest
        step that leaves at most :data:`SAMPLE_VOXELS` voxels
        (:func:`foamlib.lazy.grid_step`; 1, the whole scan, up to that size);
        each mask cut the same way.

    Raises
    ------
    ValueError
        If a mask's shape is not the scan's.
    """
    step = grid_step(scan.shape, SAMPLE_VOXELS)
    grid = (slice(None, None, step),) * 3
    out: list[Any] = [scan.grid_sample(SAMPLE_VOXELS).astype(np.float32)]
    for mask in masks:
        if mask is not None and tuple(mask.shape) != tuple(scan.shape):
            raise ValueError(f"a mask of shape {tuple(mask.shape)} does not fit the scan {scan.path} of shape {scan.shape}")
        out.append(None if mask is None else np.asarray(mask[grid]))
    return out


def _copy_scan(scan: LazyScan, path: Path, *, progress: bool) -> None:
    """Write ``scan`` to ``path`` slab by slab: uint8 and uint16 as they are, other dtypes as float32."""
    dtype = scan.dtype if scan.dtype in (np.dtype(np.uint8), np.dtype(np.uint16)) else np.dtype(np.float32)
    slabs = list(scan.slabs(scan.default_depth()))
    with tiff_slab_writer(path, scan.shape, voxel_size_um=scan.voxel_size_um, dtype=dtype, overwrite=True) as writer:
        for z0, z1 in progress_bar(slabs, desc="copy", unit="slab", disable=not progress):
            writer.write(z0, scan.read(z0, z1).astype(dtype, copy=False))
