"""Zarr and OME-Zarr: where large volumes live, read lazily and written slab by slab.

Reading (through :func:`foamlib.lazy.open_scan`): a ``.zarr`` store holding

- a single 2D or 3D array (Zarr format 2 or 3); its voxel size is unknown
  unless given;
- an OME-Zarr image (OME-NGFF 0.4 in Zarr format 2, ``attrs["multiscales"]``,
  or 0.5 in Zarr format 3, ``attrs["ome"]["multiscales"]``): level 0 of the
  first multiscale (the full resolution), with axes ``t``/``c`` of size 1
  dropped and the spatial axes in ``z, y, x`` order. The voxel size is the
  product of the level's ``scale`` transformation and the multiscale's own,
  converted to micrometres from the spatial axes' ``unit`` (any OME length
  unit); where the axes carry no unit it is unknown (None).

Writing (:func:`zarr_slab_writer`, used by :func:`foamlib.segment.segment_file`
when the output ends in ``.zarr``): an OME-Zarr 0.5 image (Zarr format 3) with
one level ``"0"`` of uint8, chunked, written slab by slab, into a temporary
store that replaces the output only when every slice is written. Its group
attributes hold, beside the OME metadata (axes ``z, y, x`` in micrometres, the
voxel size as the level's scale), a ``"foamlib"`` entry: the phase convention
(``{"0": "pore", "255": "solid"}``) and the voxel size in micrometres.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import requires_extra

from .io import ScanError, SlabWriter

__all__ = [
    "ZARR_SUFFIX",
    "OME_VERSION",
    "PHASES",
    "DEFAULT_CHUNKS",
    "ZarrSlabWriter",
    "open_zarr_array",
    "check_zarr_output",
    "zarr_slab_writer",
    "is_zarr_path",
    "ome_attributes",
]

logger = logging.getLogger(__name__)

#: Suffix of a Zarr store (a folder).
ZARR_SUFFIX = ".zarr"

#: OME-NGFF version written.
OME_VERSION = "0.5"

#: Phase convention of a written segmentation (grey value -> phase).
PHASES = {"0": "pore", "255": "solid"}

#: Largest chunk written, (z, y, x) voxels (uint8: 2 MiB).
DEFAULT_CHUNKS = (32, 256, 256)

#: Micrometres per OME-NGFF length unit (the UDUNITS-2 names the specification allows).
_UM_PER_UNIT = {
    "angstrom": 1e-4, "attometer": 1e-12, "centimeter": 1e4, "decimeter": 1e5, "exameter": 1e24,
    "femtometer": 1e-9, "foot": 304800.0, "gigameter": 1e15, "hectometer": 1e8, "inch": 25400.0,
    "kilometer": 1e9, "megameter": 1e12, "meter": 1e6, "micrometer": 1.0, "mile": 1609344000.0,
    "millimeter": 1e3, "nanometer": 1e-3, "parsec": 3.0856775814913673e22, "petameter": 1e21,
    "picometer": 1e-6, "terameter": 1e18, "yard": 914400.0, "yoctometer": 1e-18, "yottameter": 1e30,
    "zeptometer": 1e-15, "zettameter": 1e27,
}  # fmt: skip


def is_zarr_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a Zarr store (its suffix is ``.zarr``, any case)."""
    return Path(path).suffix.lower() == ZARR_SUFFIX


def _is_store(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in ("zarr.json", ".zgroup", ".zarray"))


def open_zarr_array(path: str | os.PathLike[str], *, voxel_size: bool = True) -> tuple[Any, tuple[str, ...], float | None]:
    """The full-resolution array of a Zarr or OME-Zarr store, unread.

    Parameters
    ----------
    path : path-like
        A ``.zarr`` folder (module notes).
    voxel_size : bool, optional
        Derive the voxel size from the OME metadata (default). False skips it
        (and its checks) and returns None, for a caller that gives its own.

    Returns
    -------
    array : zarr.Array
        The array as stored (its axes in ``axes``).
    axes : tuple of str
        One letter per axis of ``array``: ``"z"``, ``"y"``, ``"x"`` for space,
        ``"t"``/``"c"``/``"o"`` (other) for the rest, which all have length 1.
    voxel_size_um : float or None
        Micrometres, from the OME metadata; None where unknown.

    Raises
    ------
    foamlib.io.ScanError
        If the store cannot be opened, holds no array or several without OME
        metadata, has channels or time points, anisotropic voxels, axes
        other than OME's, or a unit that is not a length (names the store and
        the value).
    """
    with requires_extra("scale"):
        import zarr

    path = Path(path)
    if not path.exists():
        raise ScanError(f"{path} does not exist")
    if not _is_store(path):
        raise ScanError(f"{path} is not a Zarr store (no zarr.json, .zgroup or .zarray inside)")
    try:
        node = zarr.open(store=str(path), mode="r")
    except Exception as exc:  # zarr raises many types for broken metadata
        raise ScanError(f"{path} could not be opened as a Zarr store ({type(exc).__name__}: {exc})") from exc
    if isinstance(node, zarr.Array):
        return node, _plain_axes(path, node.ndim), None
    attrs = dict(node.attrs)
    ome = attrs.get("ome") if isinstance(attrs.get("ome"), Mapping) else attrs
    multiscales = ome.get("multiscales")
    if multiscales is None:
        arrays = sorted(name for name, _ in node.arrays())
        if len(arrays) != 1:
            raise ScanError(
                f"{path} is a Zarr group without OME-Zarr metadata holding {len(arrays)} arrays "
                f"({', '.join(arrays) or 'none'}); give the path of one array ({path}/NAME) or an OME-Zarr image"
            )
        array = node[arrays[0]]
        return array, _plain_axes(path, array.ndim), None
    if not isinstance(multiscales, list) or not multiscales or not isinstance(multiscales[0], Mapping):
        raise ScanError(f"{path}: OME metadata 'multiscales' must be a non-empty list of objects, got {multiscales!r}")
    if len(multiscales) > 1:
        logger.warning("%s holds %d multiscale images; reading the first", path, len(multiscales))
    image = multiscales[0]
    datasets = image.get("datasets")
    if not isinstance(datasets, list) or not datasets or not isinstance(datasets[0], Mapping) or "path" not in datasets[0]:
        raise ScanError(f"{path}: OME multiscale 'datasets' must list the levels with their 'path', got {datasets!r}")
    level = str(datasets[0]["path"])
    try:
        array = node[level]
    except KeyError as exc:
        raise ScanError(f"{path}: the OME multiscale names level {level!r}, which the store does not hold") from exc
    if not isinstance(array, zarr.Array):
        raise ScanError(f"{path}: level {level!r} is a group, not an array")
    axes_meta = image.get("axes")
    if not isinstance(axes_meta, list) or len(axes_meta) != array.ndim:
        raise ScanError(f"{path}: OME 'axes' must list the {array.ndim} axes of level {level!r}, got {axes_meta!r}")
    axes, units = [], []
    for axis in axes_meta:
        entry = axis if isinstance(axis, Mapping) else {"name": axis}  # 0.3 wrote bare names
        name, kind = str(entry.get("name", "")).lower(), entry.get("type")
        if kind == "space" or (kind is None and name in "zyx" and name):
            if name not in ("z", "y", "x"):
                raise ScanError(f"{path}: spatial axis {name!r} is not z, y or x; foamlib reads (z, y, x) volumes")
            axes.append(name)
            units.append(entry.get("unit"))
        else:
            axes.append("t" if kind == "time" or name == "t" else "c" if kind == "channel" or name == "c" else "o")
    for letter, n in zip(axes, array.shape):
        if letter in "tco" and n != 1:
            what = {"t": "time points", "c": "channels", "o": "entries along a non-spatial axis"}[letter]
            raise ScanError(f"{path} has {n} {what} (axes {''.join(axes)!r}, shape {array.shape}); "
                            "save the one to segment as a single (z, y, x) image")  # fmt: skip
    spatial = [i for i, letter in enumerate(axes) if letter in "zyx"]
    if len(spatial) not in (2, 3):
        raise ScanError(f"{path} has {len(spatial)} spatial axes (axes {''.join(axes)!r}); expected 2D or 3D")
    scale = _scale(path, image.get("coordinateTransformations"), array.ndim, "the multiscale")
    level_scale = _scale(path, datasets[0].get("coordinateTransformations"), array.ndim, f"level {level!r}")
    factors = [scale[i] * level_scale[i] for i in spatial]
    if not voxel_size:
        return array, tuple(axes), None
    return array, tuple(axes), _voxel_size(path, units, factors)


def _plain_axes(path: Path, ndim: int) -> tuple[str, ...]:
    if ndim not in (2, 3):
        raise ScanError(f"{path} holds a {ndim}D array; expected a 2D image or a 3D (z, y, x) volume")
    return ("z", "y", "x")[3 - ndim :]


def _scale(path: Path, transforms: Any, ndim: int, where: str) -> list[float]:
    """The ``scale`` of a coordinateTransformations list (ones where it has none)."""
    if transforms is None:
        return [1.0] * ndim
    if not isinstance(transforms, list):
        raise ScanError(f"{path}: coordinateTransformations of {where} must be a list, got {transforms!r}")
    out = [1.0] * ndim
    for t in transforms:
        if isinstance(t, Mapping) and t.get("type") == "scale":
            values = t.get("scale")
            if "path" in t and values is None:
                raise ScanError(f"{path}: {where} stores its scale in a separate file ({t['path']}); not supported")
            if (not isinstance(values, list) or len(values) != ndim
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                               for v in values)):  # fmt: skip
                raise ScanError(f"{path}: the scale of {where} must be {ndim} positive numbers, got {values!r}")
            out = [a * float(b) for a, b in zip(out, values)]
    return out


def _voxel_size(path: Path, units: list[Any], factors: list[float]) -> float | None:
    """One isotropic voxel size in micrometres, or None where the spatial axes carry no unit."""
    if all(u is None for u in units):
        logger.debug("%s: its spatial axes have no unit; voxel size unknown", path)
        return None
    sizes = []
    for unit, factor in zip(units, factors):
        if unit not in _UM_PER_UNIT:
            raise ScanError(f"{path}: spatial axis unit {unit!r} is not an OME length unit "
                            f"(e.g. 'micrometer', 'nanometer', 'millimeter')")  # fmt: skip
        sizes.append(factor * _UM_PER_UNIT[unit])
    if max(sizes) > min(sizes) * (1 + 1e-6):
        raise ScanError(f"{path} has anisotropic voxels ({' x '.join(f'{s:g}' for s in sizes)} um, z y x); foamlib "
                        "needs cubic voxels: resample the scan, or pass voxel_size_um (--voxel-size) to override")  # fmt: skip
    return float(sizes[-1])


def check_zarr_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Check that :func:`zarr_slab_writer` may write ``path``, without writing anything.

    Raises
    ------
    ValueError
        If the name does not end in ``.zarr``.
    FileExistsError
        If ``path`` exists and ``overwrite`` is False, or exists and is not a
        Zarr store (a file or another folder is never replaced).
    """
    path = Path(path)
    if not is_zarr_path(path):
        raise ValueError(f"{path}: a Zarr output ends in '.zarr', not {path.suffix or 'no extension'!r}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (--overwrite) to replace it")
    if path.exists() and not _is_store(path):
        raise FileExistsError(f"{path} exists and is not a Zarr store; refusing to replace it (remove it or write elsewhere)")
    return path


class ZarrSlabWriter(SlabWriter):
    """Writes a uint8 OME-Zarr level slab by slab (:meth:`foamlib.io.SlabWriter.write`); made by :func:`zarr_slab_writer`.

    Attributes
    ----------
    chunks : tuple of (int, int, int)
        Chunk shape of the stored array.
    """

    def __init__(self, array: Any, path: Path, invert: bool = False) -> None:
        super().__init__(tuple(int(n) for n in array.shape), np.dtype(np.uint8), path, invert=invert,
                         accepts="uint8 or bool")  # fmt: skip
        self._array = array
        self.chunks = tuple(int(n) for n in array.chunks)

    def _store(self, z0: int, data: np.ndarray) -> None:
        self._array[z0 : z0 + data.shape[0]] = data


def ome_attributes(shape: tuple[int, int, int], voxel_size_um: float | None, *, name: str) -> dict[str, Any]:
    """Group attributes of a written segmentation: OME-NGFF 0.5 ``"ome"`` and foamlib's ``"foamlib"``."""
    axes: list[dict[str, Any]] = [{"name": a, "type": "space"} for a in "zyx"]
    if voxel_size_um is not None:
        for axis in axes:
            axis["unit"] = "micrometer"
    scale = [float(voxel_size_um) if voxel_size_um is not None else 1.0] * 3
    return {
        "ome": {
            "version": OME_VERSION,
            "multiscales": [{
                "name": name,
                "axes": axes,
                "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
            }],  # fmt: skip
        },
        "foamlib": {"phases": dict(PHASES), "voxel_size_um": voxel_size_um, "shape": list(shape)},
    }


@contextlib.contextmanager
def zarr_slab_writer(
    path: str | os.PathLike[str],
    shape: tuple[int, int, int],
    *,
    voxel_size_um: float | None = None,
    chunks: tuple[int, int, int] | None = None,
    label: str = "solid",
    overwrite: bool = False,
) -> Iterator[ZarrSlabWriter]:
    """Write a uint8 segmentation as an OME-Zarr 0.5 image, slab by slab, atomically.

    Parameters
    ----------
    path : path-like
        Output ``.zarr`` folder; missing parent folders are created.
    shape : tuple of (int, int, int)
        ``(Z, Y, X)``, voxels.
    voxel_size_um : float, optional
        Micrometres; stored as the level's scale with axes in ``micrometer``.
        None: scale 1 and no unit (unknown).
    chunks : tuple of (int, int, int), optional
        Chunk shape; default :data:`DEFAULT_CHUNKS` clipped to ``shape``.
    label : {"solid", "pore"}, optional
        The phase written as 255 for bool slabs (``True`` = solid), recorded
        in the ``foamlib`` attributes as ``phases``. Default ``"solid"``.
    overwrite : bool, optional
        Replace an existing Zarr store. Default False.

    Yields
    ------
    ZarrSlabWriter
        Call its :meth:`~foamlib.io.SlabWriter.write` for every slab, in any order.

    Raises
    ------
    FileExistsError, ValueError
        As :func:`check_zarr_output`, and for a bad shape, chunk shape or
        voxel size.
    RuntimeError
        If the body returns without writing every slice (nothing is kept).

    Notes
    -----
    The store is written to a hidden folder beside ``path`` that is renamed
    to ``path`` when complete (an existing store is moved aside first and
    removed after); on an error it is removed and ``path`` left as it was.
    """
    with requires_extra("scale"):
        import zarr

    from .checks import check_real

    path = check_zarr_output(path, overwrite=overwrite)
    if label not in ("solid", "pore"):
        raise ValueError(f"{path}: label must be 'solid' or 'pore' (the phase written as 255), got {label!r}")
    voxel = None if voxel_size_um is None else check_real("voxel_size_um", voxel_size_um, low=0.0, low_open=True)
    if len(shape) != 3 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in shape):
        raise ValueError(f"{path}: shape must be three positive integers (z, y, x), got {shape!r}")
    shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    chunks = tuple(min(c, n) for c, n in zip(DEFAULT_CHUNKS, shape)) if chunks is None else chunks
    if len(chunks) != 3 or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c > 0 for c in chunks):
        raise ValueError(f"{path}: chunks must be three positive integers (z, y, x), got {chunks!r}")
    chunks = tuple(int(c) for c in chunks)
    path.absolute().parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        group = zarr.open_group(store=str(tmp), mode="w-", zarr_format=3)
        attributes = ome_attributes(shape, voxel, name=path.stem)
        if label == "pore":
            attributes["foamlib"]["phases"] = {"0": "solid", "255": "pore"}
        group.attrs.update(attributes)
        array = group.create_array("0", shape=shape, chunks=chunks, dtype="uint8", fill_value=0,
                                   dimension_names=("z", "y", "x"))  # fmt: skip
        writer = ZarrSlabWriter(array, path, invert=label == "pore")
        yield writer
        writer.check_complete()
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.{uuid.uuid4().hex}.old")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    logger.debug("wrote %s slab by slab: shape %s, chunks %s, voxel size %s um", path, shape, chunks, voxel)
