"""Scale out on Dask: chunked inference over a dask.array, and per-sample work as Dask tasks.

Where one process is not enough, the same work runs on a Dask cluster: a
:class:`distributed.LocalCluster` of this machine's idle cores (``"local"``)
or any running cluster given by its scheduler's address
(``"tcp://host:8786"``, CLI ``--scheduler ADDRESS``).

- :func:`segment_dask` segments a :class:`dask.array.Array` of a scan lazily,
  block by block, with the tiling, blending and grey-value scaling of
  :func:`foamlib.segment.segment_volume`, and gives the same probabilities bit
  for bit: every block holds whole slices, and its depth is a multiple of the
  slices whose tiles fill whole batches, so the network sees the very batches
  it sees in one process (the result does not depend on the chunking). For
  ``axes="xyz"`` the z pass is followed by a y pass over blocks of whole
  ``(Z, X)`` slices and an x pass over blocks of whole ``(Z, Y)`` slices, each
  adding its share to the previous sum in the order of ``segment_volume``.
- :func:`stream_segment` is what :func:`foamlib.segment.segment_file` runs
  with ``scheduler=``: the slabs of a :class:`foamlib.lazy.LazyScan` are
  segmented and thresholded on the workers, and written (TIFF or OME-Zarr) by
  this process as they arrive, a few at a time.
- :func:`run_samples` runs a function once per sample as Dask tasks (the
  study's per-sample stages), results in the order of the samples.

The model travels to each worker once (one graph key). ``"local"`` starts one
single-threaded worker process per idle core (:func:`foamlib.device.idle_cpus`)
with ``OMP_NUM_THREADS=1``, so workers do not compete for cores.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._optional import requires_extra
from .tiling import DEFAULT_BATCH_SIZE, DEFAULT_OVERLAP, DEFAULT_TILE, batch_unit, tiles_per_slice

if TYPE_CHECKING:  # dask and torch are imported where they are used
    import dask.array as da
    import torch
    from torch import nn

__all__ = ["LOCAL", "SampleResult", "dask_client", "scan_to_dask", "segment_dask", "stream_segment", "run_samples"]

logger = logging.getLogger(__name__)

#: The ``scheduler`` value that starts a LocalCluster of the idle cores.
LOCAL = "local"

#: How long a Client tries to reach a scheduler address before giving up.
CONNECT_TIMEOUT = "20s"

#: Bytes of grey values per block of :func:`scan_to_dask` and :func:`segment_dask` where no depth is given (64 MiB).
BLOCK_BYTES = 64 * 2**20


@contextlib.contextmanager
def dask_client(scheduler: Any = LOCAL, *, n_workers: int | None = None) -> Iterator[Any]:
    """A :class:`distributed.Client` for ``scheduler``, closed (with its LocalCluster) on exit.

    Parameters
    ----------
    scheduler : str or distributed.Client, optional
        ``"local"`` (default): a new LocalCluster of ``n_workers``
        single-threaded worker processes. A scheduler address
        (``"tcp://host:8786"``, ``"host:8786"``): connect to that cluster. A
        Client: use it as it is (not closed on exit).
    n_workers : int, optional
        Workers of the LocalCluster; default :func:`foamlib.device.idle_cpus`.

    Yields
    ------
    distributed.Client

    Raises
    ------
    ValueError
        If ``scheduler`` is empty or not a string or Client, ``n_workers`` is
        not a positive integer, or the address cannot be reached (names it).
    """
    with requires_extra("scale"):
        from distributed import Client, LocalCluster

    if isinstance(scheduler, Client):
        yield scheduler
        return
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ValueError(f"scheduler must be 'local' or a Dask scheduler address such as 'tcp://host:8786', got {scheduler!r}")
    if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1):
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    if scheduler.strip().lower() == LOCAL:
        from .device import idle_cpus

        n = idle_cpus() if n_workers is None else n_workers
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                          env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}) as cluster, Client(cluster) as client:  # fmt: skip
            logger.info("started a Dask LocalCluster of %d single-threaded workers", n)
            yield client
        return
    try:
        client = Client(scheduler.strip(), timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r} ({type(exc).__name__}: {exc}); "
                         "is it running, and is the address host:port right?") from exc  # fmt: skip
    with client:
        yield client


def scan_to_dask(scan: Any, *, depth: int | None = None) -> da.Array:
    """A :class:`foamlib.lazy.LazyScan` as a dask array of z slabs, read on the workers.

    Parameters
    ----------
    scan : foamlib.lazy.LazyScan
        The opened scan (it is pickled to the workers, which must see its
        file under the same path).
    depth : int, optional
        Slices per block; default about :data:`BLOCK_BYTES` of grey values.

    Returns
    -------
    dask.array.Array
        ``(Z, Y, X)`` in ``scan.dtype``, blocks of whole slices.
    """
    with requires_extra("scale"):
        import dask.array as da

    from .lazy import slab_starts

    if depth is None:
        depth = max(1, BLOCK_BYTES // max(1, scan.slice_nbytes))
    slab_starts(scan.shape[0], depth)  # validates depth
    return da.from_array(scan, chunks=(int(depth), -1, -1), name=f"scan-{uuid.uuid4().hex}", asarray=False,
                         meta=np.empty((0, 0, 0), dtype=scan.dtype))  # fmt: skip


def _segment_block(grey: np.ndarray, prior: np.ndarray | None, model: nn.Module, *, axis: int, weight: float,
                   clip: bool, options: dict[str, Any]) -> np.ndarray:  # fmt: skip
    """One block: ``prior`` (or zeros) plus ``weight`` x the blended probabilities of its slices along ``axis``."""
    import torch
    from tqdm import tqdm

    from .device import pick_device, pick_precision
    from .segment import segment_axis

    options = dict(options)
    device = pick_device(options.pop("device"))
    options["precision"] = pick_precision(options["precision"], device)  # each worker for its own device
    out = np.zeros(grey.shape, dtype=np.float32) if prior is None else np.array(prior, dtype=np.float32)
    model = model.to(device).eval()
    with torch.inference_mode(), tqdm(disable=True) as bar:
        segment_axis(model, np.moveaxis(grey, axis, 0), np.moveaxis(out, axis, 0), weight, device=device, bar=bar,
                      **options)  # fmt: skip
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out


def _infer_range(array: da.Array) -> tuple[float, float]:
    """:func:`foamlib.segment.infer_intensity_range` for a dask array (a float array is read once)."""
    with requires_extra("scale"):
        import dask

    from .segment import dtype_range_rule

    if not np.issubdtype(array.dtype, np.floating):
        return dtype_range_rule(array.dtype, 0.0, 0.0, True)  # the rule for integers reads no voxel
    low, high, whole = dask.compute(array.min(), array.max(), (array == array.round()).all())
    return dtype_range_rule(array.dtype, float(low), float(high), bool(whole))


def segment_dask(
    model: nn.Module,
    array: da.Array,
    *,
    axes: str = "z",
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = DEFAULT_BATCH_SIZE,
    intensity_range: tuple[float, float] | None = None,
    device: str | None = "cpu",
    precision: str = "auto",
    depth: int | tuple[int, int, int] | None = None,
) -> da.Array:
    """Probability of solid for every voxel of a dask array, as :func:`foamlib.segment.segment_volume` gives it.

    Parameters
    ----------
    model : torch.nn.Module
        As for :func:`~foamlib.segment.segment_volume`; a copy in evaluation
        mode travels to the workers (the caller's model is not changed).
    array : dask.array.Array
        ``(Z, Y, X)`` grey values, unsigned integers or floats, any chunks
        (rechunked to blocks of whole slices).
    axes, tile, overlap, batch_size, intensity_range, precision
        As for :func:`~foamlib.segment.segment_volume`. A float array without
        ``intensity_range`` is read once to apply the dtype rules.
    device : str or None, optional
        Where the workers run the model, resolved on each worker by
        :func:`foamlib.device.pick_device` (None or "auto": its GPU if it has
        one). Default "cpu".
    depth : int or tuple of (int, int, int), optional
        Slices per block of each pass (one for all, or one each for the z, y
        and x passes; 0 for a pass that does not run), rounded down to a
        multiple of the slices whose tiles fill whole batches; default about
        :data:`BLOCK_BYTES` of grey values per block.

    Returns
    -------
    dask.array.Array
        float32 ``(Z, Y, X)`` in [0, 1], lazy; ``.compute()`` equals
        ``segment_volume(model, array.compute(), ...)`` bit for bit for the
        same device and precision.

    Raises
    ------
    ValueError
        If ``array`` is not 3D, empty or of an unusable dtype, or an option is
        out of range.
    """
    with requires_extra("scale"):
        import dask
        import dask.array as da

    from .device import PRECISIONS, pick_precision
    from .segment import check_intensity_range, check_tile, check_tiling_options

    if not isinstance(array, da.Array):
        raise TypeError(f"array must be a dask.array.Array, got {type(array).__name__}; use segment_volume for numpy")
    if array.ndim != 3 or math.prod(array.shape) == 0:
        raise ValueError(f"array must be a non-empty (Z, Y, X) dask array, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"array must hold numbers, got dtype {array.dtype}")
    tile, overlap, batch_size = check_tiling_options(axes, tile, overlap, batch_size)
    check_tile(model, tile)
    depths = _check_depths(depth, axes)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    if device is not None and str(device).strip().lower() == "cpu":
        pick_precision(precision, "cpu")  # bf16/fp16 on the CPU: refused here, not on every worker
    low, high = _infer_range(array) if intensity_range is None else check_intensity_range(intensity_range)
    worker_model = copy.deepcopy(model).cpu().eval()
    model_key = dask.delayed(worker_model, name=f"foamlib-model-{uuid.uuid4().hex}", traverse=False)
    options = dict(tile=tile, overlap=overlap, batch_size=batch_size, low=low, high=high, device=device,
                   precision=precision)  # fmt: skip
    shape = array.shape
    directions = (0,) if axes == "z" else (0, 1, 2)
    weight = 1.0 / len(directions)
    probs = None
    for axis in directions:
        n = shape[axis]
        h, w = (s for i, s in enumerate(shape) if i != axis)
        unit = batch_unit(tiles_per_slice(h, w, tile, overlap), batch_size)
        want = depths[axis] if depths is not None else max(1, BLOCK_BYTES // max(1, h * w * array.dtype.itemsize))
        step = min(n, max(unit, want // unit * unit))
        chunks = tuple(step if i == axis else -1 for i in range(3))
        grey = array.rechunk(chunks)
        last = axis == directions[-1]
        common = dict(axis=axis, weight=weight, clip=last, options=options, dtype=np.float32,
                      meta=np.empty((0, 0, 0), dtype=np.float32))  # fmt: skip
        if probs is None:
            probs = da.map_blocks(_segment_block, grey, None, model_key, name=f"segment-{axis}-{uuid.uuid4().hex}",
                                  **common)  # fmt: skip
        else:
            probs = da.map_blocks(_segment_block, grey, probs.rechunk(chunks), model_key,
                                  name=f"segment-{axis}-{uuid.uuid4().hex}", **common)  # fmt: skip
    return probs


def _check_depths(depth: Any, axes: str) -> tuple[int, int, int] | None:
    """``depth`` of segment_dask as one depth per pass (None: the default)."""
    if depth is None:
        return None
    values = (depth,) * 3 if not isinstance(depth, tuple) else depth
    passes = (0,) if axes == "z" else (0, 1, 2)
    if len(values) != 3 or not all(
        isinstance(d, int) and not isinstance(d, bool) and (d >= 1 or (i not in passes and d == 0))
        for i, d in enumerate(values)
    ):
        raise ValueError(f"depth must be a positive integer or three (z, y, x; 0 for a pass not run), got {depth!r}")
    return values


def _threshold_block(probs: np.ndarray, threshold: float) -> np.ndarray:
    return probs >= threshold


def stream_segment(
    model: nn.Module,
    scan: Any,
    writer: Any,
    plan: Any,
    *,
    scheduler: Any,
    tile: int,
    overlap: int,
    batch_size: int,
    low: float,
    high: float,
    threshold: float,
    device: torch.device,
    precision: str,
    progress: bool = False,
    in_flight: int | None = None,
) -> int:
    """Segment a LazyScan on Dask into ``writer`` slab by slab; return the number of solid voxels.

    The counterpart of the in-process streaming of
    :func:`foamlib.segment.segment_file` (same plan, same result): z slabs of
    ``plan.z_depth`` slices (and for ``axes="xyz"`` y and x blocks of
    ``plan.y_depth`` and ``plan.x_depth``) are read, segmented and
    thresholded on the workers; this process receives each thresholded slab
    (1 byte per voxel) and writes it.

    Parameters
    ----------
    model, scan, writer, plan
        The model (on any device), the :class:`foamlib.lazy.LazyScan`, an
        open slab writer (:func:`foamlib.io.tiff_slab_writer` or
        :func:`foamlib.omezarr.zarr_slab_writer`) and the
        :class:`foamlib.segment.StreamPlan`.
    scheduler : str or distributed.Client
        See :func:`dask_client`.
    tile, overlap, batch_size, low, high, threshold, device, precision
        As resolved by :func:`~foamlib.segment.segment_file`; ``device`` is
        the device type the workers use (``cuda`` workers pick their own GPU).
    progress : bool, optional
        Show a progress bar over the slabs.
    in_flight : int, optional
        Slabs computed ahead of the writer for ``axes="z"``; default twice
        the workers. ``axes="xyz"`` submits every slab at once (they share
        the y and x passes).

    Returns
    -------
    int
        Solid voxels.

    Notes
    -----
    With ``axes="xyz"`` the cluster holds the float32 probability volume (4
    bytes per voxel, spread over the workers, spilled to their disks under
    pressure) between the passes, where the in-process path keeps it in a
    temporary file.
    """
    with requires_extra("scale"):
        from distributed import as_completed
    from tqdm import tqdm

    from .lazy import slab_starts

    worker_device = device.type  # "cpu", or "cuda": each worker its current GPU
    array = scan_to_dask(scan, depth=plan.z_depth)
    probs = segment_dask(model, array, axes=plan.axes, tile=tile, overlap=overlap, batch_size=batch_size,
                         intensity_range=(low, high), device=worker_device, precision=precision,
                         depth=(plan.z_depth, plan.y_depth, plan.x_depth))  # fmt: skip
    solid = probs.rechunk((plan.z_depth, -1, -1)).map_blocks(_threshold_block, threshold, dtype=bool)
    blocks = list(solid.to_delayed().ravel())
    starts = [z0 for z0, _ in slab_starts(scan.shape[0], plan.z_depth)]
    solid_voxels = 0
    start = time.perf_counter()
    with dask_client(scheduler) as client, tqdm(total=len(blocks), desc="segment", unit="slab", disable=not progress) as bar:
        ahead = in_flight or 2 * max(1, len(client.scheduler_info(n_workers=-1).get("workers", {})))
        if plan.axes == "xyz":
            # every output slab depends on every block of the y and x passes: submitted together they share
            # them (computed once); submitted in turns each would recompute them
            ahead = len(blocks)
        pending = list(zip(starts, blocks))
        futures = {}
        queue = as_completed()
        while pending or futures:
            while pending and len(futures) < ahead:
                z0, block = pending.pop(0)
                future = client.compute(block)
                futures[future.key] = (z0, future)
                queue.add(future)
            future = next(queue)
            z0, _ = futures.pop(future.key)
            slab = future.result()
            solid_voxels += int(np.count_nonzero(slab))
            writer.write(z0, slab)
            del slab, future
            bar.update(1)
    logger.info("segmented %s on Dask in %.1f s", scan.path, time.perf_counter() - start)
    return solid_voxels


@dataclass(frozen=True)
class SampleResult:
    """The outcome of one sample's task in :func:`run_samples`.

    Attributes
    ----------
    sample : object
        The sample, as given.
    value : object
        What the function returned; None where it raised.
    error : BaseException or None
        The exception it raised (None on success), with the worker's traceback.
    seconds : float
        Wall time from submission to the result, seconds.
    """

    sample: Any
    value: Any
    error: BaseException | None
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether the function returned."""
        return self.error is None


def run_samples(
    function: Callable[[Any], Any],
    samples: Sequence[Any],
    *,
    scheduler: Any = LOCAL,
    n_workers: int | None = None,
    on_result: Callable[[SampleResult], None] | None = None,
) -> list[SampleResult]:
    """Run ``function(sample)`` for every sample as Dask tasks; one failure fails only its sample.

    Parameters
    ----------
    function : callable
        Takes one sample. Must be importable by the workers (a module-level
        function, or a :func:`functools.partial` of one) along with its
        arguments; it runs in a worker process and should write its outputs
        itself (a run folder), atomically.
    samples : sequence
        The samples, e.g. the study's :class:`foamlib.study.SampleSpec`;
        picklable.
    scheduler : str or distributed.Client, optional
        ``"local"`` (default): a LocalCluster of ``n_workers`` single-threaded
        worker processes; or a Dask scheduler address; or a Client
        (:func:`dask_client`).
    n_workers : int, optional
        Workers of the LocalCluster; default the fewer of the samples and the
        idle cores. Ignored for an address or Client.
    on_result : callable, optional
        Called in this process with each :class:`SampleResult` as it arrives
        (in completion order), e.g. to print progress.

    Returns
    -------
    list of SampleResult
        One per sample, in the order of ``samples``.

    Raises
    ------
    ValueError
        If ``samples`` is empty, or as :func:`dask_client`.
    TypeError
        If ``function`` is not callable.
    """
    with requires_extra("scale"):
        from distributed import as_completed

    from .device import idle_cpus

    if not callable(function):
        raise TypeError(f"function must be callable, got {type(function).__name__}")
    samples = list(samples)
    if not samples:
        raise ValueError("samples is empty; nothing to run")
    if isinstance(scheduler, str) and scheduler.strip().lower() == LOCAL and n_workers is None:
        n_workers = max(1, min(len(samples), idle_cpus()))
    results: list[SampleResult | None] = [None] * len(samples)
    name = getattr(function, "__name__", type(function).__name__)
    token = uuid.uuid4().hex[:8]
    with dask_client(scheduler, n_workers=n_workers) as client:
        start = time.perf_counter()
        futures = [client.submit(function, sample, key=f"{name}-{i}-{token}", pure=False) for i, sample in enumerate(samples)]
        index = {future.key: i for i, future in enumerate(futures)}
        for future in as_completed(futures):
            i = index[future.key]
            if future.status == "error":
                result = SampleResult(samples[i], None, future.exception(), time.perf_counter() - start)
                logger.warning("sample %r failed on Dask: %s", samples[i], result.error)
            else:
                result = SampleResult(samples[i], future.result(), None, time.perf_counter() - start)
            results[i] = result
            if on_result is not None:
                on_result(result)
            future.release()
    return [r for r in results if r is not None]
