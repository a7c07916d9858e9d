"""Read CT scans into float32 volumes and write ImageJ TIFF stacks.

:func:`read_scan` reads a scan from a multi-page TIFF, a single 2D TIFF or
PNG image, a folder of 2D slices, a headerless raw file or a ``.npy`` file and
returns a :class:`Scan`: the grey values as a float32 ``(Z, Y, X)`` array
(values as stored, not rescaled) plus the voxel size and the original dtype
and range. :func:`scan_from_array` applies the same checks to an in-memory
array. :func:`write_tiff` writes a volume as an ImageJ hyperstack that Fiji
opens with the voxel size set.

Under both :func:`read_scan` and :func:`foamlib.lazy.open_scan` lies one
format layer, a reader per kind of file that both use: :func:`scan_kind` tells
the kind, :func:`read_tiff`, :func:`read_png`, :func:`folder_slices` with
:func:`read_slice`, :func:`read_raw` and :func:`read_npy` read it as stored,
and :func:`to_grey`, :func:`tiff_voxel_size`, :func:`tifffile_errors` with
:func:`raise_collected`, :func:`unreadable_tiff`, :func:`check_voxel_size` and
:func:`check_dtype` apply the same rules and messages in both.

Phase convention
----------------
foamlib's binary volumes are ``True`` = solid (cell walls and struts),
``False`` = pore, and a mask TIFF is uint8 with 255 = solid and 0 = pore. A
mask may instead be written with 255 = pore (``label="pore"``, ``foamlib
segment --label pore``), as PoreSpy takes ``True`` = pore. Either way the
stack says which phase is which: its ImageJ description holds
``foreground=solid`` (or ``pore``: the phase stored as 255) and
``background=pore`` (or ``solid``), and its ImageJ ``Info`` (Fiji: Image >
Show Info) a sentence such as "255 = solid (cell walls and struts), 0 =
pore". A float32 probability map (:func:`write_probabilities`) holds
``probability=solid``. :func:`read_mask` honours the label and always
returns ``True`` = solid; a mask without a label (written by other software
or before labels existed) is taken as 255 = solid. :func:`read_scan` reads
grey values as stored and warns where a file is a mask whose 255 is pore.

Every unreadable or unusable input raises :class:`ScanError`, a
:class:`ValueError` whose message names the file and the problem. Input files
and arrays are never modified.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import math
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np
import tifffile

from .checks import check_int
from .runs import atomic_path

__all__ = [
    "Scan",
    "ScanError",
    "read_scan",
    "scan_from_array",
    "write_tiff",
    "write_probabilities",
    "read_mask",
    "mask_label",
    "MASK_LABELS",
    "SlabWriter",
    "TiffSlabWriter",
    "tiff_slab_writer",
    "check_tiff_output",
    "same_path",
    "path_inside",
    "image_grid",
    "write_image_grid",
    "unreadable_tiff",
    # the format layer: one reader per kind of file, shared by read_scan and foamlib.lazy.open_scan
    "scan_kind",
    "read_tiff",
    "read_png",
    "folder_slices",
    "read_slice",
    "read_raw",
    "read_npy",
    "to_grey",
    "tiff_voxel_size",
    "tifffile_errors",
    "raise_collected",
    "check_voxel_size",
    "check_dtype",
]

logger = logging.getLogger(__name__)

_TIFF_SUFFIXES = (".tif", ".tiff")
_PNG_SUFFIXES = (".png",)
_RAW_SUFFIXES = (".raw", ".bin", ".vol")
_NPY_SUFFIXES = (".npy",)
_SUPPORTED = "'.tif', '.tiff', '.png', '.raw', '.bin', '.vol', '.npy', a '.zarr' store (Zarr, OME-Zarr) or a folder of '.tif'/'.tiff'/'.png' slices"

#: Length units that ImageJ writes, in micrometres. Other units ('pixel',
#: 'inch', '') carry no physical voxel size and are ignored.
_UNIT_TO_UM = {
    "nm": 1e-3,
    "nanometer": 1e-3,
    "nanometre": 1e-3,
    "um": 1.0,
    "µm": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "mm": 1e3,
    "millimeter": 1e3,
    "millimetre": 1e3,
    "cm": 1e4,
}

#: Standard TIFF ``ResolutionUnit`` values (2 inch, 3 centimetre) in micrometres;
#: 1 (no unit) carries no physical voxel size.
_RESOLUTION_UNIT_TO_UM = {2: 25400.0, 3: 10000.0}

#: Pixels per inch that software writes for any image (screen and Pillow defaults):
#: not a voxel size.
_DEFAULT_DPI = (72.0, 96.0)

#: Relative difference above which the x, y and z voxel sizes count as different.
_ANISOTROPY_RTOL = 1e-3

#: dtypes that ImageJ reads natively (after converting to native byte order).
_TIFF_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))

#: Phases a mask's 255 (or a probability map's values) can stand for; "solid" is foamlib's own convention.
MASK_LABELS = ("solid", "pore")

_PHASE_WORDS = {"solid": "solid (cell walls and struts)", "pore": "pore"}


class ScanError(ValueError):
    """A scan that cannot be read or cannot be used.

    The message names the file (or "the array") and what is wrong with it.
    """


@dataclass(frozen=True)
class Scan:
    """A CT scan as read from disk or from memory.

    Attributes
    ----------
    volume : ndarray of float32, shape (Z, Y, X)
        Grey values as stored in the file, converted to float32 but not
        rescaled. A 2D image has ``Z == 1``. Finite and not constant.
    voxel_size_um : float or None
        Edge length of a voxel in micrometres, or None where unknown.
    original_dtype : str
        Name of the dtype the data was stored in, e.g. ``'uint8'``.
    original_range : tuple of (float, float)
        Minimum and maximum of the data as read.
    path : pathlib.Path or None
        The file or folder the scan was read from; None for an in-memory array.
    """

    volume: np.ndarray
    voxel_size_um: float | None
    original_dtype: str
    original_range: tuple[float, float]
    path: Path | None = None


def read_scan(
    path: str | os.PathLike[str],
    *,
    shape: tuple[int, int, int] | None = None,
    dtype: Any = None,
    byte_order: str = "little",
    voxel_size_um: float | None = None,
) -> Scan:
    """Read a CT scan into a float32 ``(Z, Y, X)`` volume.

    Parameters
    ----------
    path : str or path-like
        One of

        - a TIFF file (``.tif``, ``.tiff``), multi-page or a single 2D image;
          the voxel size is read from ImageJ metadata (``XResolution`` and
          ``unit``, ``spacing`` for z) where its unit is a length, and in files
          without ImageJ metadata from the standard ``XResolution`` /
          ``YResolution`` tags where ``ResolutionUnit`` is centimetre or inch
          (no unit: unknown; 72 or 96 pixels per inch, an image editor's
          default: unknown, with a warning; unequal x and y: the x size, with a
          warning; no z spacing in these tags, so voxels are taken as cubes);
        - a 2D PNG image (``.png``);
        - a folder of 2D TIFF or PNG slices, stacked along z in natural order
          of their names (``slice_2.png`` before ``slice_10.png``); files with
          other extensions and hidden files are ignored;
        - a headerless raw file (``.raw``, ``.bin``, ``.vol``), x varying
          fastest; needs ``shape`` and ``dtype``;
        - a NumPy ``.npy`` file (read without pickle);
        - a Zarr store or OME-Zarr image (``.zarr`` folder; level 0, voxel
          size from the OME scale and unit, see :mod:`foamlib.omezarr`).

        RGB(A) images are accepted when R == G == B and the alpha channel is
        constant, and read as grey.
    shape : tuple of 3 int, optional
        ``(z, y, x)`` shape of a raw file, in voxels. Only for raw files.
    dtype : numpy dtype or str, optional
        dtype of a raw file, e.g. ``'uint16'``. Only for raw files; its byte
        order is replaced by ``byte_order``.
    byte_order : {'little', 'big'}, optional
        Byte order of a raw file. Default 'little'.
    voxel_size_um : float, optional
        Voxel size in micrometres. Overrides the size in the file's metadata.

    Returns
    -------
    Scan
        ``volume`` float32 of shape (Z, Y, X), 2D images as (1, Y, X).
        ``voxel_size_um`` from the argument, else from the file, else None.

    Raises
    ------
    ScanError
        If the path does not exist, has an unsupported extension, cannot be
        parsed (the reader's exception is chained), is a raw file without
        ``shape``/``dtype`` or of the wrong size, is a colour image, is not 2D
        or 3D, is empty or constant, holds NaN or infinite values or a
        non-numeric or complex dtype; or if an argument is invalid.

    Notes
    -----
    A boolean volume written by :func:`write_tiff` is stored as uint8 0/255
    and comes back as float32 0.0/255.0 with ``original_dtype == 'uint8'``.
    """
    path = Path(path)
    override = check_voxel_size(voxel_size_um, ScanError, f"{path}: voxel_size_um")
    if byte_order not in ("little", "big"):
        raise ScanError(f"{path}: byte_order must be 'little' or 'big', got {byte_order!r}")
    if path.suffix.lower() == ".zarr":  # Zarr / OME-Zarr: foamlib.omezarr, through the lazy reader
        from .lazy import open_scan

        lazy = open_scan(path, shape=shape, dtype=dtype, voxel_size_um=voxel_size_um)
        data, file_voxel_size = lazy[:], lazy.voxel_size_um
    else:
        data, file_voxel_size = _read_any(path, shape=shape, dtype=dtype, byte_order=byte_order)
    voxel = override if override is not None else file_voxel_size
    scan = _make_scan(data, voxel_size_um=voxel, path=path, source=str(path))
    logger.debug(
        "read %s: shape %s, dtype %s, voxel size %s um",
        path,
        scan.volume.shape,
        scan.original_dtype,
        scan.voxel_size_um,
    )
    return scan


def scan_from_array(volume: np.ndarray, *, voxel_size_um: float | None = None) -> Scan:
    """Validate an in-memory array and wrap it as a :class:`Scan`.

    Parameters
    ----------
    volume : array_like, shape (Z, Y, X) or (Y, X)
        Grey values of a real numeric or bool dtype. Not modified; the
        returned volume is a float32 copy.
    voxel_size_um : float, optional
        Voxel size in micrometres.

    Returns
    -------
    Scan
        ``volume`` float32 of shape (Z, Y, X), a 2D array as (1, Y, X);
        ``path`` is None.

    Raises
    ------
    ScanError
        If the array is not 2D or 3D, is empty or constant, holds NaN or
        infinite values, has a non-numeric or complex dtype, or if
        ``voxel_size_um`` is not a positive finite number.
    """
    voxel = check_voxel_size(voxel_size_um, ScanError, "voxel_size_um")
    return _make_scan(np.asarray(volume), voxel_size_um=voxel, path=None, source="the array")


def write_tiff(
    path: str | os.PathLike[str],
    volume: np.ndarray,
    *,
    voxel_size_um: float | None = None,
    overwrite: bool = False,
    label: str = "solid",
) -> Path:
    """Write a volume as an ImageJ TIFF stack that Fiji opens with its voxel size.

    Parameters
    ----------
    path : str or path-like
        Output file, ending in ``.tif`` or ``.tiff``. Missing parent folders
        are created.
    volume : array_like, shape (Z, Y, X) or (Y, X)
        uint8, uint16 and float32 are written as they are; float64 is written
        as float32; bool (a mask, ``True`` = solid) is written as uint8 0/255
        with its phase convention in the metadata (module notes).
    voxel_size_um : float, optional
        Voxel size in micrometres, stored as the ImageJ resolution and
        ``spacing`` with unit ``um``.
    overwrite : bool, optional
        Replace an existing file. Default False.
    label : {"solid", "pore"}, optional
        For a bool volume: the phase written as 255. ``"solid"`` (default):
        True -> 255; ``"pore"``: True (solid) -> 0 and False (pore) -> 255,
        PoreSpy's convention. Other dtypes are written as they are, without a
        label.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    IsADirectoryError
        If ``path`` is a folder.
    TypeError
        If the dtype is none of bool, uint8, uint16, float32, float64.
    ValueError
        If the suffix is not ``.tif``/``.tiff``, the volume is not 2D or 3D
        or is empty, or ``voxel_size_um`` is not a positive finite number.

    Notes
    -----
    The file is written to a temporary file in the same folder and moved into
    place with :func:`os.replace`, so ``path`` never holds a partial file.
    """
    path = check_tiff_output(path, overwrite=overwrite)
    voxel = check_voxel_size(voxel_size_um, ValueError, "voxel_size_um")
    label = _check_label(label, path)
    is_mask = np.asarray(volume).dtype == np.bool_
    data = _tiff_ready(volume, invert=is_mask and label == "pore")
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_imagej_write(path, data, voxel, _label_metadata("mask", label) if is_mask else {})
    logger.debug("wrote %s: shape %s, dtype %s, voxel size %s um", path, data.shape, data.dtype, voxel)
    return path


class SlabWriter(abc.ABC):
    """What the slab writers share: the slab checks, bool slabs by the label, the record of slices written.

    :class:`TiffSlabWriter` and :class:`foamlib.omezarr.ZarrSlabWriter` store the slabs.

    Attributes
    ----------
    shape : tuple of (int, int, int)
        ``(Z, Y, X)`` of the whole stack or volume.
    dtype : numpy.dtype
        What the slabs are stored as.
    """

    def __init__(self, shape: tuple[int, int, int], dtype: np.dtype, path: Path, *, invert: bool, accepts: str) -> None:
        self.shape = shape
        self.dtype = dtype
        self._path = path
        self._invert = bool(invert)
        self._accepts = accepts  # what a slab may be, for the message about another one
        self._done = np.zeros(shape[0], dtype=bool)

    @abc.abstractmethod
    def _store(self, z0: int, data: np.ndarray) -> None:
        """Store the checked slab ``data`` (of :attr:`dtype`) as slices from ``z0``."""

    def write(self, z0: int, slab: np.ndarray) -> None:
        """Write ``slab`` as slices ``z0 .. z0 + len(slab) - 1``.

        Parameters
        ----------
        z0 : int
            First slice, >= 0.
        slab : ndarray, shape (n, Y, X)
            Of the writer's :attr:`dtype`; for uint8 also bool, ``True`` =
            solid, written as the label says (``"solid"``: True -> 255;
            ``"pore"``: True -> 0, False -> 255).

        Raises
        ------
        ValueError
            If the slab does not fit the stack or volume, or has another dtype.
        """
        data = np.asarray(slab)
        if data.dtype == np.bool_ and self.dtype == np.uint8:
            data = np.where(data, np.uint8(0 if self._invert else 255), np.uint8(255 if self._invert else 0))
        if data.dtype.newbyteorder("=") != self.dtype or data.ndim != 3 or data.shape[1:] != self.shape[1:]:
            raise ValueError(f"{self._path}: a slab must be {self._accepts} of shape (n, {self.shape[1]}, {self.shape[2]}), "
                             f"got {data.dtype} {data.shape}")  # fmt: skip
        if isinstance(z0, bool) or not isinstance(z0, (int, np.integer)) or z0 < 0 or z0 + data.shape[0] > self.shape[0]:
            raise ValueError(f"{self._path}: slab at z {z0} of {data.shape[0]} slices lies outside {self.shape[0]} slices")
        self._store(int(z0), data)
        self._done[z0 : z0 + data.shape[0]] = True

    @property
    def complete(self) -> bool:
        """Whether every slice has been written."""
        return bool(self._done.all())

    @property
    def missing(self) -> int:
        """How many slices have not been written yet."""
        return int(np.count_nonzero(~self._done))

    def check_complete(self) -> None:
        """Raise if a slice was never written; the writers' context managers then keep nothing.

        Raises
        ------
        RuntimeError
            Naming the file and how many of its slices are missing.
        """
        if self.missing:
            raise RuntimeError(f"{self._path}: {self.missing} of {self.shape[0]} slices were never written; nothing kept")


class TiffSlabWriter(SlabWriter):
    """Writes an ImageJ stack slab by slab (:meth:`SlabWriter.write`); made by :func:`tiff_slab_writer`."""

    def __init__(self, handle: Any, offset: int, shape: tuple[int, int, int], dtype: np.dtype, path: Path,
                 invert: bool = False) -> None:  # fmt: skip
        super().__init__(shape, dtype, path, invert=invert, accepts=str(dtype))
        self._handle = handle
        self._offset = offset

    def _store(self, z0: int, data: np.ndarray) -> None:
        self._handle.seek(self._offset + z0 * self.shape[1] * self.shape[2] * self.dtype.itemsize)
        self._handle.write(np.ascontiguousarray(data, dtype=self.dtype).data)


@contextlib.contextmanager
def tiff_slab_writer(
    path: str | os.PathLike[str],
    shape: tuple[int, int, int],
    *,
    voxel_size_um: float | None = None,
    dtype: Any = np.uint8,
    overwrite: bool = False,
    label: str | None = None,
) -> Iterator[TiffSlabWriter]:
    """Write an ImageJ TIFF stack slab by slab, atomically, in bounded memory.

    The file has the layout and metadata of :func:`write_tiff` (ImageJ
    hyperstack, image data uncompressed and contiguous after the header,
    voxel size as resolution and ``spacing`` in ``um``), so Fiji, tifffile and
    :func:`read_scan` / :func:`foamlib.lazy.open_scan` read it. Stacks above
    4 GB are written as ImageJ itself writes them: a classic TIFF whose first
    image file directory describes the stack (``images=Z`` in its description)
    followed by all the data; tifffile and ImageJ read them, some other
    readers see only the first slice (BigTIFF is not used, as ImageJ's own
    reader does not take it).

    Parameters
    ----------
    path : str or path-like
        Output ``.tif``/``.tiff``; missing parent folders are created.
    shape : tuple of (int, int, int)
        ``(Z, Y, X)`` of the stack, voxels.
    voxel_size_um : float, optional
        Voxel size in micrometres.
    dtype : {uint8, uint16, float32}, optional
        dtype of the stack (ImageJ's). Default uint8 (a segmentation).
    overwrite : bool, optional
        Replace an existing file. Default False.
    label : {"solid", "pore"} or None, optional
        Phase convention written into the metadata (module notes). For a
        uint8 stack, the phase stored as 255 (bool slabs, True = solid, are
        converted accordingly); for a float32 stack, the phase whose
        probability the values are. None (default): no label.

    Yields
    ------
    TiffSlabWriter
        Call its :meth:`~SlabWriter.write` for every slab, in any order.

    Raises
    ------
    FileExistsError, IsADirectoryError, ValueError
        As :func:`check_tiff_output`, and for a bad shape or voxel size.
    RuntimeError
        If the body returns without writing every slice (nothing is kept).

    Notes
    -----
    The data go to a temporary file beside ``path`` (created sparse, so
    unwritten slices take no disk space) that replaces ``path`` only when the
    body has written every slice; on an error it is removed and ``path`` is
    left as it was.
    """
    path = check_tiff_output(path, overwrite=overwrite)
    voxel = check_voxel_size(voxel_size_um, ValueError, "voxel_size_um")
    if len(shape) != 3 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in shape):
        raise ValueError(f"{path}: shape must be three positive integers (z, y, x), got {shape!r}")
    shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    try:
        dt = np.dtype(dtype).newbyteorder("=")
    except TypeError as exc:
        raise TypeError(f"{path}: dtype {dtype!r} is not a numpy dtype") from exc
    if dt not in _TIFF_DTYPES:
        raise TypeError(f"{path}: an ImageJ stack holds uint8, uint16 or float32, not {dt}")
    metadata: dict[str, Any] = {"axes": "ZYX"}
    if label is not None:
        label = _check_label(label, path)
        if dt == np.uint16:
            raise ValueError(f"{path}: a label describes a uint8 mask or a float32 probability map, not a uint16 stack")
        metadata.update(_label_metadata("mask" if dt == np.uint8 else "probability", label))
    options: dict[str, Any] = {}
    if voxel is not None:
        metadata.update(unit="um", spacing=voxel)
        options["resolution"] = (1.0 / voxel, 1.0 / voxel)
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            # above 4 GB tifffile writes one IFD for the stack, as ImageJ does, and says so
            warnings.filterwarnings("ignore", message=".*truncating ImageJ file", category=UserWarning)
            offset, _ = tifffile.imwrite(tmp, shape=shape, dtype=dt, imagej=True, metadata=metadata,
                                         returnoffset=True, **options)  # fmt: skip
        with open(tmp, "r+b") as handle:
            writer = TiffSlabWriter(handle, int(offset), shape, dt, path, invert=label == "pore" and dt == np.uint8)
            yield writer
            writer.check_complete()
    logger.debug("wrote %s slab by slab: shape %s, voxel size %s um", path, shape, voxel)


def write_probabilities(
    path: str | os.PathLike[str],
    probabilities: np.ndarray,
    *,
    voxel_size_um: float | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a map of solid probabilities as a float32 ImageJ TIFF stack, labelled ``probability=solid``.

    Parameters
    ----------
    path : str or path-like
        Output ``.tif``/``.tiff``; missing parent folders are created; written
        atomically, as :func:`write_tiff`.
    probabilities : array_like of float, shape (Z, Y, X) or (Y, X)
        Probability of solid per voxel, in [0, 1] (as
        :func:`foamlib.segment.segment_volume` returns it).
    voxel_size_um : float, optional
        Voxel size in micrometres.
    overwrite : bool, optional
        Replace an existing file. Default False.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If the values are not floats, hold NaN or lie outside [0, 1], or as
        :func:`write_tiff`.
    FileExistsError, IsADirectoryError
        As :func:`write_tiff`.
    """
    path = check_tiff_output(path, overwrite=overwrite)
    voxel = check_voxel_size(voxel_size_um, ValueError, "voxel_size_um")
    data = np.asarray(probabilities)
    if data.dtype.kind != "f":
        raise ValueError(f"{path}: probabilities must be floats in [0, 1], got dtype {data.dtype}")
    outside = int(np.count_nonzero(~((data >= 0) & (data <= 1))))  # NaN counts as outside
    if outside:
        raise ValueError(f"{path}: probabilities must lie in [0, 1]; {outside} of {data.size} values do not "
                         "(or are NaN)")  # fmt: skip
    data = _tiff_ready(data.astype(np.float32, copy=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_imagej_write(path, data, voxel, _label_metadata("probability", "solid"))
    return path


def mask_label(path: str | os.PathLike[str]) -> str | None:
    """The phase that a foamlib TIFF labels (module notes): ``"solid"``, ``"pore"`` or None.

    Parameters
    ----------
    path : str or path-like
        A TIFF file.

    Returns
    -------
    str or None
        For a mask, the phase stored as 255 (its ``foreground``); for a
        probability map, the phase whose probability it holds; None for a
        file without a foamlib label.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a readable TIFF, or its label names no known phase.
    """
    path = Path(path)
    meta, _ = _read_imagej_tiff(path, missing=f"{path} does not exist", data=False)
    return _label_of(meta, path)


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a binary image or stack (uint8 0/255 or 0/1) as bool, ``True`` = solid, whatever its label.

    Unlike :func:`read_scan`, which refuses a scan that holds one value only,
    a mask may be all solid or all pore (a GAN can collapse to that); this
    reads it as it is.

    Parameters
    ----------
    path : path-like
        A TIFF written by :func:`write_tiff` from a bool array, by
        :func:`foamlib.segment.segment_file`, or by other software.

    Returns
    -------
    ndarray of bool
        ``(Z, Y, X)`` or ``(N, H, W)`` (a 2D image as ``(Y, X)``); True =
        solid. A mask labelled ``foreground=pore`` (255 = pore) is inverted;
        one labelled ``foreground=solid`` or without a label (module notes) is
        True where the file holds a non-zero value.

    Raises
    ------
    FileNotFoundError
        If the file does not exist (names the file).
    ValueError
        If it is not a readable TIFF, holds values other than 0 and one
        non-zero level, is a probability map, or has an unknown label.
    """
    path = Path(path)
    meta, data = _read_imagej_tiff(path, missing=f"{path} does not exist; run the stage that writes it first", data=True)
    if "probability" in meta:
        raise ValueError(f"{path} is a probability map (probability of {meta['probability']}), not a mask; "
                         "threshold it (>= 0.5) or read it with read_scan")  # fmt: skip
    label = _label_of(meta, path)
    values = np.unique(data[:: max(1, data.shape[0] // 64)]) if data.ndim else np.unique(data)
    if len(values) > 2 or (len(values) == 2 and values[0] != 0):
        raise ValueError(f"{path} is not a mask: it holds the values {values[:5].tolist()}...")
    return data == 0 if label == "pore" else data != 0


def _read_imagej_tiff(path: Path, *, missing: str, data: bool) -> tuple[dict[str, Any], np.ndarray | None]:
    """A TIFF's ImageJ metadata (``{}`` without) and, where ``data``, its pixels (else None).

    FileNotFoundError with the message ``missing`` where there is no file; ValueError where it is not a readable TIFF.
    """
    if not path.is_file():
        raise FileNotFoundError(missing)
    try:
        with tifffile.TiffFile(path) as tif:
            meta = tif.imagej_metadata or {}
            pixels = tif.asarray() if data else None
    except Exception as exc:  # noqa: BLE001 - tifffile raises many kinds on a damaged file
        raise ValueError(f"{path} is not a readable TIFF ({type(exc).__name__}: {exc})") from exc
    return meta, pixels


def _check_label(label: Any, path: Path) -> str:
    if label not in MASK_LABELS:
        raise ValueError(f"{path}: label must be one of {', '.join(map(repr, MASK_LABELS))}, got {label!r}")
    return label


def _label_metadata(kind: str, label: str) -> dict[str, str]:
    """ImageJ metadata that says which phase a mask's 255 (or a probability map's values) stands for."""
    from . import __version__

    other = "pore" if label == "solid" else "solid"
    if kind == "probability":
        info = (f"Values = probability of {_PHASE_WORDS[label]}, 0 to 1; 1 - value = probability of "
                f"{_PHASE_WORDS[other]}. Written by foamlib {__version__}.")  # fmt: skip
        return {"probability": label, "Info": info}
    info = f"255 = {_PHASE_WORDS[label]}, 0 = {_PHASE_WORDS[other]}. Written by foamlib {__version__}."
    return {"foreground": label, "background": other, "Info": info}


def _label_of(meta: dict[str, Any], path: Path) -> str | None:
    """The ``foreground`` (mask) or ``probability`` label of ImageJ metadata; None where absent."""
    for key in ("foreground", "probability"):
        if key in meta:
            value = str(meta[key]).strip().lower()
            if value not in MASK_LABELS:
                raise ValueError(f"{path}: its ImageJ metadata says {key}={meta[key]!r}; foamlib knows only "
                                 f"{' and '.join(MASK_LABELS)}")  # fmt: skip
            return value
    return None


def check_tiff_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Check that :func:`write_tiff` may write ``path``, without writing anything.

    Commands that write several files call this for every output before
    writing the first, so that a refused output leaves nothing behind.

    Parameters
    ----------
    path : str or path-like
        Output file.
    overwrite : bool, optional
        Whether an existing file may be replaced. Default False.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If the suffix is not ``.tif``/``.tiff``.
    IsADirectoryError
        If ``path`` is a folder.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.suffix.lower() not in _TIFF_SUFFIXES:
        raise ValueError(f"{path}: write_tiff writes '.tif' or '.tiff' files, not {path.suffix or 'no extension'!r}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name ending in .tif")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (--overwrite) to replace it")
    return path


def same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same file, through links and other spellings.

    Existing files are compared with :func:`os.path.samefile` (hard links,
    symbolic links, ``./`` and ``..``); otherwise the resolved absolute paths
    are compared (on a case-insensitive file system, two names differing
    only in case count as different until one of the files exists).

    Parameters
    ----------
    a, b : str or path-like

    Returns
    -------
    bool
    """
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def path_inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Whether ``path`` lies in ``folder`` or below it (or is it), after resolving links.

    Parameters
    ----------
    path, folder : str or path-like

    Returns
    -------
    bool
    """
    resolved, root = Path(path).resolve(), Path(folder).resolve()
    return resolved == root or root in resolved.parents


def image_grid(images: np.ndarray, *, columns: int = 8, pad: int = 2, pad_value: int = 128) -> np.ndarray:
    """Tile a stack of grey images into one uint8 image, row by row.

    Parameters
    ----------
    images : array_like, shape (N, H, W)
        bool (False -> 0, True -> 255), uint8, or float in [0, 1] (scaled by
        255 and rounded; values outside are clipped).
    columns : int, optional
        Images per row, >= 1 (fewer if N is smaller).
    pad : int, optional
        Pixels of ``pad_value`` between and around the images, >= 0.
    pad_value : int, optional
        Grey value of the padding, 0-255 (mid-grey by default, so both black
        and white image borders show).

    Returns
    -------
    numpy.ndarray of uint8, shape (rows * (H + pad) + pad, cols * (W + pad) + pad)

    Raises
    ------
    ValueError
        If ``images`` is not a non-empty (N, H, W) stack or a setting is out of range.
    """
    arr = np.asarray(images)
    if arr.ndim != 3 or arr.size == 0:
        raise ValueError(f"images must be a non-empty (N, H, W) stack, got shape {arr.shape}")
    columns = check_int("columns", columns, low=1)
    pad = check_int("pad", pad, low=0)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        arr = np.rint(np.clip(np.asarray(arr, dtype=np.float64), 0.0, 1.0) * 255).astype(np.uint8)
    n, h, w = arr.shape
    cols = min(columns, n)
    rows = -(-n // cols)
    grid = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), pad_value, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + c * (w + pad)
        grid[y : y + h, x : x + w] = arr[i]
    return grid


def write_image_grid(path: str | os.PathLike[str], images: np.ndarray, *, columns: int = 8, pad: int = 2) -> Path:
    """Write a stack of grey images as one PNG grid (see :func:`image_grid`), atomically.

    Parameters
    ----------
    path : str or path-like
        Output file ending in ``.png``; missing parent folders are created and
        an existing file is replaced.
    images : array_like, shape (N, H, W)
        bool, uint8 or float in [0, 1].
    columns, pad : int, optional
        See :func:`image_grid`.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: write_image_grid writes '.png' files, not {path.suffix or 'no extension'!r}")
    grid = image_grid(images, columns=columns, pad=pad)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, grid, extension=".png")
    return path


# --------------------------------------------------------------------------- validation


def check_voxel_size(value: float | None, error: type[Exception], what: str) -> float | None:
    """Check a voxel size given by the caller and return it as a float (None stays None).

    :func:`read_scan`, :func:`scan_from_array`, the TIFF writers and
    :func:`foamlib.lazy.open_scan` check their ``voxel_size_um`` argument with it.

    Parameters
    ----------
    value : float or None
        Voxel size in micrometres, or anything :class:`float` accepts; None
        for "not given".
    error : type of Exception
        The exception class to raise (:class:`ScanError` for the readers,
        :class:`ValueError` for the writers).
    what : str
        What the value is, to begin the message with, e.g.
        ``"scan.tif: voxel_size_um"``.

    Returns
    -------
    float or None
        ``value`` as a float in micrometres, or None if it is None.

    Raises
    ------
    Exception
        ``error``, if ``value`` is not a number or not positive and finite.
    """
    if value is None:
        return None
    try:
        size = float(value)
    except (TypeError, ValueError) as exc:
        raise error(f"{what} must be a positive number of micrometres, got {value!r}") from exc
    if not (math.isfinite(size) and size > 0):
        raise error(f"{what} must be a positive finite number of micrometres, got {value!r}")
    return size


def _make_scan(data: np.ndarray, *, voxel_size_um: float | None, path: Path | None, source: str) -> Scan:
    """Validate ``data`` and convert it to a :class:`Scan` (float32 copy, 3D)."""
    check_dtype(data.dtype, source)
    if data.ndim not in (2, 3):
        raise ScanError(
            f"{source} has {data.ndim} dimensions (shape {data.shape}); expected a 2D image or a 3D (z, y, x) volume"
        )
    if data.size == 0:
        raise ScanError(f"{source} is empty (shape {data.shape})")
    _check_finite(data, source)
    low, high = float(np.min(data)), float(np.max(data))
    if low == high:
        raise ScanError(f"{source} contains only the value {low:g}; nothing to segment")
    limit = float(np.finfo(np.float32).max)
    if low < -limit or high > limit:
        raise ScanError(f"{source} has values outside the float32 range ({low:g} to {high:g})")
    volume = np.asarray(data).astype(np.float32, order="C", copy=True)
    if volume.ndim == 2:
        volume = volume[np.newaxis]
    return Scan(
        volume=volume,
        voxel_size_um=voxel_size_um,
        original_dtype=data.dtype.name,
        original_range=(low, high),
        path=path,
    )


def check_dtype(dtype: np.dtype, source: str) -> None:
    """Refuse a dtype that cannot hold grey values: only bool, integer and real float are accepted.

    Parameters
    ----------
    dtype : numpy.dtype
        The dtype of the stored data.
    source : str
        The file or array it came from, to begin the message with.

    Raises
    ------
    ScanError
        If ``dtype`` is complex or not numeric (object, string, structured,
        datetime, ...).
    """
    if dtype.kind == "c":
        raise ScanError(f"{source} has the complex dtype {dtype}; expected real grey values")
    if dtype.kind not in "biuf":
        raise ScanError(f"{source} has the non-numeric dtype {dtype}; expected integer, float or bool grey values")


def _check_finite(data: np.ndarray, source: str) -> None:
    if data.dtype.kind != "f":
        return
    n_nan = int(np.count_nonzero(np.isnan(data)))
    n_inf = int(np.count_nonzero(np.isinf(data)))
    if n_nan or n_inf:
        raise ScanError(
            f"{source} contains {n_nan} NaN and {n_inf} infinite values; replace or mask them before segmentation"
        )


# --------------------------------------------------------------------------- readers


def _read_any(path: Path, *, shape: Any, dtype: Any, byte_order: str) -> tuple[np.ndarray, float | None]:
    """Dispatch on the kind of ``path``; return the data as stored and the file's voxel size."""
    kind = scan_kind(path, shape=shape, dtype=dtype)
    if kind == "folder":
        return _read_folder(path)
    if kind == "raw":
        return read_raw(path, shape=shape, dtype=dtype, byte_order=byte_order), None
    if kind == "npy":
        return read_npy(path), None
    return _read_image(path)


def scan_kind(path: Path, *, shape: Any, dtype: Any) -> str:
    """Tell which reader of this module reads ``path``, from its type and suffix.

    The first step of :func:`read_scan` and :func:`foamlib.lazy.open_scan`
    (both tell a Zarr store apart before calling it). Nothing is read.

    Parameters
    ----------
    path : pathlib.Path
        The scan: a folder or a file.
    shape, dtype : any
        The caller's ``shape`` and ``dtype`` arguments; only a raw file may
        have them (not None).

    Returns
    -------
    str
        ``'folder'`` (slices, :func:`folder_slices`), ``'raw'``
        (:func:`read_raw`), ``'npy'`` (:func:`read_npy`), ``'tiff'``
        (:func:`read_tiff`) or ``'png'`` (:func:`read_png`).

    Raises
    ------
    ScanError
        If ``path`` does not exist, is a file with an unsupported extension,
        or is not a raw file but ``shape`` or ``dtype`` is given.
    """
    if not path.exists():
        raise ScanError(f"{path} does not exist")
    suffix = path.suffix.lower()
    is_raw = path.is_file() and suffix in _RAW_SUFFIXES
    if not path.is_dir() and suffix not in _TIFF_SUFFIXES + _PNG_SUFFIXES + _RAW_SUFFIXES + _NPY_SUFFIXES:
        described = f"the unknown extension {path.suffix!r}" if path.suffix else "no extension"
        raise ScanError(f"{path} has {described}; supported are {_SUPPORTED}")
    if not is_raw and (shape is not None or dtype is not None):
        raise ScanError(f"{path}: shape and dtype apply only to raw files ({', '.join(_RAW_SUFFIXES)}); leave them out")
    if path.is_dir():
        return "folder"
    if is_raw:
        return "raw"
    if suffix in _NPY_SUFFIXES:
        return "npy"
    return "tiff" if suffix in _TIFF_SUFFIXES else "png"


def _read_image(path: Path) -> tuple[np.ndarray, float | None]:
    """Read one TIFF (2D or stack) or PNG file; colour channels are reduced to grey."""
    if path.suffix.lower() in _TIFF_SUFFIXES:
        return read_tiff(path)
    return read_png(path), None


class _Collect(logging.Handler):
    """Keeps the error records that tifffile logs while it reads a damaged file."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def tifffile_errors() -> Iterator[_Collect]:
    """Collect the errors tifffile logs (instead of raising) while the body reads a file.

    tifffile reads what it can of a truncated or damaged file and only logs an
    error; within this block the ``tifffile`` logger's errors are kept (and
    not passed on to the caller's logging), so that :func:`raise_collected`
    can refuse the partial data afterwards. The logger's level, handlers and
    propagation are restored on exit.

    Yields
    ------
    logging.Handler
        The collector; its ``messages`` attribute (list of str) holds the
        message of every error tifffile logged in the block, in order.

    Examples
    --------
    >>> with tifffile_errors() as collect:  # doctest: +SKIP
    ...     data = tifffile.imread(path)
    >>> raise_collected(collect, path, data.shape)  # doctest: +SKIP
    """
    collect = _Collect()
    tifffile_log = logging.getLogger("tifffile")
    saved = tifffile_log.level, tifffile_log.propagate
    tifffile_log.addHandler(collect)
    tifffile_log.setLevel(logging.ERROR)  # whatever the caller's logging set-up
    tifffile_log.propagate = False  # the ScanError of raise_collected carries the message
    try:
        yield collect
    finally:
        tifffile_log.removeHandler(collect)
        tifffile_log.setLevel(saved[0])
        tifffile_log.propagate = saved[1]


def raise_collected(collect: _Collect, path: Path, shape: tuple[int, ...]) -> None:
    """Refuse a TIFF file if tifffile logged an error while reading it.

    Parameters
    ----------
    collect : logging.Handler
        The collector that :func:`tifffile_errors` yielded for the read.
    path : pathlib.Path
        The file that was read.
    shape : tuple of int
        Shape of what was read of it, for the message.

    Raises
    ------
    ScanError
        ``"<path> is truncated or corrupt (<tifffile's last error>); ..."``,
        if ``collect`` holds any message.
    """
    if collect.messages:
        problem = collect.messages[-1].replace(f"<tifffile.TiffFile {path.name!r}> ", "")
        raise ScanError(f"{path} is truncated or corrupt ({problem}); read {shape} of it, refusing a partial scan")


@contextlib.contextmanager
def unreadable_tiff(path: Path) -> Iterator[None]:
    """Raise what the body raises while it reads ``path`` as a :class:`ScanError` naming the file.

    tifffile raises many exception types for a broken file; within this block
    every exception but :class:`ScanError` and :class:`MemoryError` becomes
    ``ScanError("<path> is not a readable TIFF image: ...")`` (with the type
    and message of the original, which it is chained to). :func:`read_scan`
    and :func:`foamlib.lazy.open_scan` read TIFF files within it.

    Parameters
    ----------
    path : pathlib.Path
        The TIFF file the body reads.

    Yields
    ------
    None

    Raises
    ------
    ScanError
        For any exception of the body other than :class:`MemoryError`.
    """
    try:
        yield
    except (ScanError, MemoryError):
        raise
    except Exception as exc:  # tifffile raises many exception types for broken files
        raise ScanError(
            f"{path} is not a readable TIFF image: it could not be read as a TIFF file ({type(exc).__name__}: {exc})"
        ) from exc


def read_tiff(path: Path) -> tuple[np.ndarray, float | None]:
    """Read the first image series of a TIFF file as stored, with its voxel size.

    A file with more than one series: the first is read, with a warning. A
    mask whose ImageJ metadata says ``foreground=pore`` is read as grey values,
    with a warning (:func:`read_mask` reads it as a mask).

    Parameters
    ----------
    path : pathlib.Path
        A ``.tif`` or ``.tiff`` file.

    Returns
    -------
    data : numpy.ndarray
        The series in its stored dtype and shape, e.g. (Y, X) or (Z, Y, X);
        a samples (RGB(A)) axis is reduced to grey by :func:`to_grey`.
    voxel_size_um : float or None
        From :func:`tiff_voxel_size`; None where the file has none.

    Raises
    ------
    ScanError
        If the file is not a readable TIFF, holds no image, is truncated or
        corrupt (tifffile logged an error), has a channel axis, or is a colour
        image.
    """
    # tifffile reads what it can of a truncated or damaged file (e.g. only the first slice
    # of a cut-off stack) and only logs an error; a silently shortened scan is worse than none.
    with tifffile_errors() as collect:
        data, voxel, n_series, axes = _read_tiff_file(path)
    raise_collected(collect, path, data.shape)
    if n_series > 1:
        logger.warning("%s holds %d image series; reading only the first, of shape %s", path, n_series, data.shape)
    if "C" in axes:
        raise ScanError(
            f"{path} has {data.shape[axes.index('C')]} channels (axes {axes!r}); "
            "save the channel to segment as a single-channel stack"
        )
    if axes.endswith("S"):
        data = to_grey(data, path)
    return data, voxel


def _read_tiff_file(path: Path) -> tuple[np.ndarray, float | None, int, str]:
    with unreadable_tiff(path), tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ScanError(f"{path} contains no images; is it a broken TIFF file?")
        n_series = len(tif.series)
        axes = tif.series[0].axes
        data = tif.series[0].asarray()
        voxel = tiff_voxel_size(tif, path)
        foreground = str((tif.imagej_metadata or {}).get("foreground", "")).strip().lower()
    if foreground == "pore":
        logger.warning(
            "%s is a mask with 255 = pore (its metadata says foreground=pore); read as grey values, bright is pore "
            "here. Use foamlib.io.read_mask for True = solid", path,
        )  # fmt: skip
    return data, voxel, n_series, axes


def read_png(path: Path) -> np.ndarray:
    """Read a PNG image as stored, colour channels reduced to grey.

    Parameters
    ----------
    path : pathlib.Path
        A ``.png`` file.

    Returns
    -------
    numpy.ndarray
        Shape (Y, X), in the stored dtype (uint8 or uint16 for most files); a grey+alpha or
        RGB(A) image is reduced to grey by :func:`to_grey`.

    Raises
    ------
    ScanError
        If the file cannot be read as a PNG (damaged, truncated or not a PNG),
        or is a colour image.
    """
    try:
        data = iio.imread(path)
    except MemoryError:
        raise
    except Exception as exc:  # imageio/Pillow raise many exception types for broken files
        # imageio's own message advises installing plugins, which never helps with a damaged file
        raise ScanError(f"{path} is not a readable PNG image: it could not be read as a PNG file "
                        "(damaged, truncated or not a PNG)") from exc  # fmt: skip
    if data.ndim == 3:
        data = to_grey(data, path)
    return data


def to_grey(data: np.ndarray, path: Path) -> np.ndarray:
    """Reduce a channels-last grey(+alpha) or RGB(A) array to one channel, refusing real colour.

    An alpha channel (2 or 4 samples) is dropped if it is constant; the colour
    channels must be equal (R == G == B).

    Parameters
    ----------
    data : numpy.ndarray, shape (..., C)
        Samples last, C from 1 to 4; any dtype.
    path : pathlib.Path
        The file it was read from, for the messages.

    Returns
    -------
    numpy.ndarray, shape data.shape[:-1]
        The first channel, in ``data``'s dtype (a view of ``data``).

    Raises
    ------
    ScanError
        If C is not 1 to 4, the alpha channel varies, or the colour channels
        differ.
    """
    n = data.shape[-1]
    if n not in (1, 2, 3, 4):
        raise ScanError(f"{path} has {n} samples per pixel; expected a greyscale image")
    has_alpha = n in (2, 4)
    colour = data[..., : n - 1] if has_alpha else data
    if has_alpha:
        alpha = data[..., -1]
        if np.any(alpha != alpha.flat[0]):
            raise ScanError(f"{path} has a varying alpha (transparency) channel; convert it to greyscale")
    grey = colour[..., 0]
    for channel in range(1, colour.shape[-1]):
        if not np.array_equal(colour[..., channel], grey):
            raise ScanError(f"{path} is a colour image; convert it to greyscale")
    return grey


def tiff_voxel_size(tif: tifffile.TiffFile, path: Path) -> float | None:
    """Voxel size in micrometres from ImageJ metadata, else from the standard resolution tags.

    The rules are those :func:`read_scan` states for a TIFF file: ImageJ's
    ``unit`` (a length unit, else unknown), ``XResolution``/``YResolution`` and
    ``spacing`` (the first of x, y, z where they differ, with a warning); without ImageJ
    metadata the first page's ``XResolution`` and ``ResolutionUnit``
    (centimetre or inch; 72 or 96 pixels per inch is an editor's default and
    unknown, with a warning).

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file.
    path : pathlib.Path
        Its path, for the log messages.

    Returns
    -------
    float or None
        Voxel size in micrometres (positive, finite), or None where the file
        records no physical size.
    """
    meta = tif.imagej_metadata
    if meta:
        return _imagej_voxel_size(tif, meta, path)
    return _resolution_tag_voxel_size(tif.pages[0], path)


def _resolution_tag_voxel_size(page: Any, path: Path) -> float | None:
    """Voxel size in micrometres from XResolution/YResolution and ResolutionUnit, or None.

    The tags give pixels per unit; a unit of centimetre or inch gives a size,
    no unit (or an unknown one) gives None. Unequal x and y resolutions: the x
    size is taken (as ImageJ takes XResolution as the pixel width) and a
    warning names both. 72 and 96 pixels per inch are the defaults that image
    editors and libraries write for any image, not a measurement: None, with a
    warning. The tags carry no z spacing; voxels are taken as cubes.
    """
    unit_tag = page.tags.get("ResolutionUnit")
    unit = int(unit_tag.value) if unit_tag is not None else 2  # TIFF 6.0: inch when the tag is absent
    factor = _RESOLUTION_UNIT_TO_UM.get(unit)
    if factor is None:
        return None
    per_unit = {}
    for axis, tag_name in (("x", "XResolution"), ("y", "YResolution")):
        tag = page.tags.get(tag_name)
        if tag is None:
            continue
        try:
            numerator, denominator = (float(v) for v in tag.value)
        except (TypeError, ValueError):
            continue
        if numerator > 0 and denominator > 0:
            per_unit[axis] = numerator / denominator
    if "x" not in per_unit:
        return None
    if unit == 2 and all(any(abs(v - dpi) < 1e-6 for dpi in _DEFAULT_DPI) for v in per_unit.values()):
        logger.warning(
            "%s: resolution %g pixels per inch is an image editor's default, not a voxel size; voxel size unknown "
            "(give it with voxel_size_um / --voxel-size)",
            path, per_unit["x"],
        )  # fmt: skip
        return None
    sizes = {axis: factor / value for axis, value in per_unit.items()}
    voxel = sizes["x"]
    if "y" in sizes and abs(sizes["y"] - voxel) > _ANISOTROPY_RTOL * voxel:
        logger.warning(
            "%s has different x and y resolutions (%g and %g um per pixel); using the x size %g um",
            path, sizes["x"], sizes["y"], voxel,
        )  # fmt: skip
    if not (math.isfinite(voxel) and voxel > 0):
        return None
    logger.info("%s: voxel size %g um from the TIFF resolution tags", path, voxel)
    return voxel


def _imagej_voxel_size(tif: tifffile.TiffFile, meta: dict[str, Any], path: Path) -> float | None:
    """Voxel size in micrometres from ImageJ metadata, or None where it has no length unit."""
    unit = _normalise_unit(meta.get("unit", ""))
    factor = _UNIT_TO_UM.get(unit)
    if factor is None:
        if unit or "spacing" in meta:
            logger.info("%s: ImageJ unit %r is not a length unit; voxel size unknown", path, unit)
        return None
    page = tif.pages[0]
    sizes = {}
    for axis, tag_name in (("x", "XResolution"), ("y", "YResolution")):
        tag = page.tags.get(tag_name)
        if tag is not None and tag.value[0] > 0:
            sizes[axis] = factor * tag.value[1] / tag.value[0]
    spacing = meta.get("spacing")
    if isinstance(spacing, (int, float)) and spacing > 0:
        sizes["z"] = factor * float(spacing)
    if not sizes:
        return None
    voxel = next(iter(sizes.values()))
    if any(abs(size - voxel) > _ANISOTROPY_RTOL * voxel for size in sizes.values()):
        logger.warning("%s has anisotropic voxels %s um; using %g um", path, sizes, voxel)
    return voxel if math.isfinite(voxel) and voxel > 0 else None


def _normalise_unit(unit: Any) -> str:
    text = str(unit).strip()
    for escaped in ("\\u00B5", "\\u00b5", "\u03bc"):  # ImageJ escape, Greek mu
        text = text.replace(escaped, "\u00b5")
    return text.lower()


def _natural_key(path: Path) -> tuple[list[str | int], str]:
    """Sort key that orders ``slice_2`` before ``slice_10``."""
    parts = re.split(r"(\d+)", path.name.lower())
    return [int(part) if part.isdigit() else part for part in parts], path.name


def _read_folder(folder: Path) -> tuple[np.ndarray, float | None]:
    """Stack the 2D TIFF or PNG slices in ``folder`` along z, in natural order."""
    files, first, voxel = folder_slices(folder)
    stack = np.empty((len(files), *first.shape), dtype=first.dtype)
    stack[0] = first
    for index, file in enumerate(files[1:], start=1):
        stack[index] = read_slice(folder, file, first, files[0])
    logger.info("%s: stacked %d slices of shape %s", folder, len(files), first.shape)
    return stack, voxel


def folder_slices(folder: Path) -> tuple[list[Path], np.ndarray, float | None]:
    """The slice files of ``folder`` in natural order, the first slice and its voxel size.

    Slices are the ``.tif``, ``.tiff`` and ``.png`` files directly in
    ``folder`` (hidden files and other extensions ignored), sorted so that
    ``slice_2`` comes before ``slice_10``. Only the first is read; read the
    others with :func:`read_slice`.

    Parameters
    ----------
    folder : pathlib.Path
        The folder of 2D slices.

    Returns
    -------
    files : list of pathlib.Path
        The slice files in z order.
    first : numpy.ndarray, shape (Y, X)
        The first slice, in its stored dtype.
    voxel_size_um : float or None
        The first slice's voxel size in micrometres (see
        :func:`tiff_voxel_size`); None for PNG slices or where it records none.

    Raises
    ------
    ScanError
        If ``folder`` holds no slices, mixes PNG and TIFF slices, or its first
        slice is unreadable, a colour image or not a 2D image.
    """
    slice_suffixes = _TIFF_SUFFIXES + _PNG_SUFFIXES
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in slice_suffixes
    ]
    if not files:
        raise ScanError(f"{folder} contains no '.tif', '.tiff' or '.png' slices")
    if len({p.suffix.lower() in _TIFF_SUFFIXES for p in files}) > 1:
        raise ScanError(f"{folder} mixes PNG and TIFF slices; keep one format per folder")
    files.sort(key=_natural_key)
    first, voxel = _read_image(files[0])
    if first.ndim != 2:
        raise ScanError(f"{folder}: slice {files[0].name} is not a 2D image (shape {first.shape})")
    return files, first, voxel


def read_slice(folder: Path, file: Path, first: np.ndarray, first_file: Path) -> np.ndarray:
    """One slice of a folder, refused unless its shape and dtype match the first slice's.

    Parameters
    ----------
    folder : pathlib.Path
        The folder of slices, for the message.
    file : pathlib.Path
        The slice to read, a TIFF or PNG file (one of :func:`folder_slices`'s
        ``files``).
    first : numpy.ndarray, shape (Y, X)
        The first slice, as :func:`folder_slices` returned it.
    first_file : pathlib.Path
        The first slice's file, for the message.

    Returns
    -------
    numpy.ndarray, shape (Y, X)
        The slice in its stored dtype, that of ``first``.

    Raises
    ------
    ScanError
        If ``file`` is unreadable, a colour image, or differs from ``first``
        in shape or dtype.
    """
    image, _ = _read_image(file)
    if image.shape != first.shape or image.dtype != first.dtype:
        raise ScanError(
            f"{folder}: slice {file.name} has shape {image.shape} and dtype {image.dtype}, but "
            f"{first_file.name} has shape {first.shape} and dtype {first.dtype}; all slices must match"
        )
    return image


def read_raw(path: Path, *, shape: Any, dtype: Any, byte_order: str) -> np.ndarray:
    """Memory-map a headerless raw file as a read-only (z, y, x) array.

    Parameters
    ----------
    path : pathlib.Path
        A ``.raw``, ``.bin`` or ``.vol`` file, x varying fastest.
    shape : tuple of 3 int
        ``(z, y, x)`` in voxels; all positive.
    dtype : numpy dtype or str
        The stored dtype, e.g. ``'uint16'``; bool, integer or real float. Its
        byte order is replaced by ``byte_order``.
    byte_order : {'little', 'big'}
        Byte order of the file (anything but ``'little'`` is taken as big).

    Returns
    -------
    numpy.memmap, shape (z, y, x)
        Read-only, in ``dtype`` with the given byte order; nothing is read
        until it is indexed.

    Raises
    ------
    ScanError
        If ``shape`` or ``dtype`` is missing or invalid, ``dtype`` is not a
        real numeric dtype, or the file's size is not that of ``shape`` and
        ``dtype``.
    """
    if shape is None or dtype is None:
        raise ScanError(f"{path} is a raw file without a header: give shape=(z, y, x) and dtype (e.g. 'uint16')")
    dims = _check_raw_shape(shape, path)
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise ScanError(f"{path}: dtype {dtype!r} is not a numpy dtype") from exc
    if dt.kind not in "biuf":
        raise ScanError(f"{path}: dtype {dt} is not a real numeric dtype (integer, float or bool)")
    dt = dt.newbyteorder("<" if byte_order == "little" else ">")
    expected = math.prod(dims) * dt.itemsize
    size = path.stat().st_size
    if size != expected:
        raise ScanError(
            f"{path} is {size} bytes, but shape {dims} of {dt.name} needs {expected} bytes; check shape and dtype"
        )
    return np.memmap(path, dtype=dt, mode="r", shape=dims)


def _check_raw_shape(shape: Any, path: Path) -> tuple[int, int, int]:
    message = f"{path}: shape must be three positive integers (z, y, x), got {shape!r}"
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 3:
        raise ScanError(message)
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in shape):
        raise ScanError(message)
    return int(shape[0]), int(shape[1]), int(shape[2])


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def read_npy(path: Path) -> np.ndarray:
    """Memory-map a ``.npy`` array; never unpickles, and never advises to.

    Parameters
    ----------
    path : pathlib.Path
        A file written by :func:`numpy.save`.

    Returns
    -------
    numpy.ndarray
        The stored array with its shape and dtype, read-only (a
        :class:`numpy.memmap` wherever numpy maps it); shape and dtype are not
        checked here.

    Raises
    ------
    ScanError
        If the file cannot be opened, is an ``.npz`` (or other zip) archive,
        does not start with the NumPy header, holds Python objects, or its
        header or data is damaged or truncated.
    """
    try:
        with open(path, "rb") as file:
            head = file.read(len(_NPY_MAGIC))
    except OSError as exc:
        raise ScanError(f"{path} could not be opened ({type(exc).__name__}: {exc.strerror or exc})") from exc
    if head.startswith(_ZIP_MAGIC):
        raise ScanError(f"{path} is an .npz archive (or another zip file), not a single .npy array; save one with numpy.save")
    if head != _NPY_MAGIC:
        raise ScanError(f"{path} is not a readable .npy array file: it does not start with the NumPy array header")
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except MemoryError:
        raise
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        if "pickle" in str(exc) or "Python objects" in str(exc):  # a valid header of an object array
            raise ScanError(f"{path} is not a readable .npy array of grey values: it holds Python objects") from exc
        raise ScanError(
            f"{path} is not a readable .npy array file: its header or data is damaged or truncated "
            f"({type(exc).__name__})"
        ) from exc
    return data


# --------------------------------------------------------------------------- writer


def _tiff_ready(volume: np.ndarray, *, invert: bool = False) -> np.ndarray:
    """Return ``volume`` in a dtype and byte order ImageJ reads (bool: True -> 255, or 0 with ``invert``); never modifies it."""
    data = np.asarray(volume)
    if data.ndim not in (2, 3):
        raise ValueError(f"write_tiff needs a 2D (y, x) or 3D (z, y, x) volume, got shape {data.shape}")
    if data.size == 0:
        raise ValueError(f"write_tiff cannot write an empty volume (shape {data.shape})")
    if data.dtype == np.bool_:
        return np.where(data, np.uint8(0 if invert else 255), np.uint8(255 if invert else 0))
    if data.dtype.kind == "f" and data.dtype.itemsize == 8:
        return data.astype(np.float32)
    native = data.dtype.newbyteorder("=")
    if native not in _TIFF_DTYPES:
        raise TypeError(
            f"write_tiff cannot write dtype {data.dtype} to an ImageJ TIFF; "
            "convert to uint8, uint16, float32 or bool first"
        )
    return data.astype(native, copy=False)


def _atomic_imagej_write(path: Path, data: np.ndarray, voxel_size_um: float | None,
                         extra: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Write ``data`` to a temporary file beside ``path``, then move it into place; ``extra`` goes to the metadata."""
    metadata: dict[str, Any] = {"axes": "ZYX" if data.ndim == 3 else "YX", **(extra or {})}
    options: dict[str, Any] = {}
    if voxel_size_um is not None:
        metadata["unit"] = "um"
        if data.ndim == 3:
            metadata["spacing"] = voxel_size_um
        options["resolution"] = (1.0 / voxel_size_um, 1.0 / voxel_size_um)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, imagej=True, metadata=metadata, **options)
