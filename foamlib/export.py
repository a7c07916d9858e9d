"""Export a trained segmentation U-Net to ONNX, for use outside foamlib.

:func:`export_onnx` turns a model file written by
:func:`foamlib.training.save_model` into an ONNX file that ONNX Runtime,
deepImageJ (Fiji), ilastik's ONNX support or any other ONNX consumer runs
without foamlib or torch. :func:`onnx_max_difference` runs such a file in ONNX
Runtime against the torch model and returns the largest absolute difference of
the probabilities; :func:`read_onnx_metadata` reads the metadata back.

The ONNX graph
--------------
- input ``"image"``: float32 ``(N, C, H, W)`` (``C`` = 1 for foamlib's
  U-Nets), grey values already mapped to [0, 1] by the model's normalisation
  (metadata ``normalisation``, see below); ``N``, ``H`` and ``W`` are dynamic.
  ``H`` and ``W`` must be at least ``min_input_size`` (``2 ** (levels - 1)``),
  and tiles of at least ``min_tile`` pixels are worth running.
- output ``"probability"``: float32 ``(N, 1, H, W)``, the probability that a
  pixel is solid (cell walls and struts); ``1 - probability`` is the pore
  probability. A model trained to output logits gets its sigmoid inside the
  graph, so every exported file outputs probabilities.

The torch model pads a slice whose sides are not multiples of
``2 ** (levels - 1)`` by reflection and crops the output back
(:class:`foamlib.unet.UNet`). That padding depends on the slice size, so it is
built into the graph from the input's shape (ONNX ``Shape``, ``Pad`` in
reflect mode, ``Slice``): the exported model gives the torch probabilities for
any ``H`` and ``W`` at least ``min_input_size``, square or not (the torch model
switches to replicate padding only for slices smaller than that).

Grey values
-----------
The graph does not normalise: a consumer maps each scan's grey values to
[0, 1] as foamlib does (:class:`foamlib.segment.IntensityNormalisation`): with
``low`` and ``high`` the ``low_percentile`` and ``high_percentile`` of the
scan's grey values, ``x = clip((grey - low) / (high - low), 0, 1)``. The rule
is stored as JSON in the metadata key ``normalisation``.

Metadata
--------
``metadata_props`` of the ONNX model (strings; JSON where structured):
``task`` (``"segmentation"``), ``output`` (what the output means),
``phase_convention``, ``threshold`` (0.5, the threshold ``foamlib segment``
applies), ``normalisation`` (JSON), ``normalisation_rule`` (the formula in
words), ``intensity_range`` (JSON, the training scan's range, where recorded),
``voxel_size_um`` (where recorded), ``receptive_field``, ``min_tile``,
``min_overlap``, ``min_input_size`` (pixels, :func:`foamlib.segment.tiling_limits`),
``unet_config`` (JSON), ``stage`` and ``sample`` (where recorded),
``foamlib_version`` (the version that trained the model), ``exported_by``
(the version that exported it) and ``source_model`` (the model file's name).

Exporter
--------
torch 2.13's ``torch.onnx.export`` defaults to the ``torch.export``-based
("dynamo") exporter, which needs the ``onnxscript`` package and turns the
shape-dependent padding of the U-Net into a guard that a dynamic height and
width cannot pass. foamlib uses the TorchScript-tracing exporter
(``dynamo=False``), which needs only ``torch`` and ``onnx``, works offline
and records the padding arithmetic on the traced input shape. Its deprecation
notice and tracer warnings (the U-Net's own shape checks are traced as
constants, which is what the padded input makes true) are silenced during the
export only, as is its note that instance normalisation is exported "with train=True" (foamlib's
instance normalisation keeps no running statistics, so torch normalises each slice by its own statistics in
evaluation mode too, as ONNX ``InstanceNormalization`` does).
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._optional import requires_extra

__all__ = [
    "OnnxExport",
    "export_onnx",
    "BioimageioExport",
    "export_bioimageio",
    "onnx_max_difference",
    "read_onnx_metadata",
    "onnxruntime_available",
    "DEFAULT_OPSET",
    "ONNX_TOLERANCE",
    "INPUT_NAME",
    "OUTPUT_NAME",
]

#: ONNX opset of exported models: 17 is read by ONNX Runtime >= 1.11 and by deepImageJ's ONNX engine.
DEFAULT_OPSET = 17

#: Largest absolute difference of probabilities between ONNX Runtime and torch that :func:`export_onnx`
#: accepts. Float32 convolutions in two libraries differ by rounding, about 1e-7 for the paper's network.
ONNX_TOLERANCE = 1e-4

#: Name of the ONNX graph's input, ``(N, C, H, W)`` float32 in [0, 1].
INPUT_NAME = "image"

#: Name of the ONNX graph's output, ``(N, 1, H, W)`` float32 probability of solid.
OUTPUT_NAME = "probability"

PHASE_CONVENTION = "probability of solid (cell walls and struts); 1 - probability = pore"


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote.

    Attributes
    ----------
    path : pathlib.Path
        The ONNX file.
    model_path : pathlib.Path
        The foamlib model file it was exported from.
    opset : int
        ONNX opset of the graph.
    metadata : dict of str to str
        The ``metadata_props`` written (module notes).
    max_abs_difference : float or None
        Largest absolute difference between the ONNX Runtime and torch
        probabilities on the check inputs; None where not checked.
    check_shapes : tuple of tuple of int
        ``(N, C, H, W)`` of the check inputs; empty where not checked.
    """

    path: Path
    model_path: Path
    opset: int
    metadata: dict[str, str]
    max_abs_difference: float | None
    check_shapes: tuple[tuple[int, int, int, int], ...]


def onnxruntime_available() -> bool:
    """Whether the ``onnxruntime`` package can be imported (to check an export)."""
    return importlib.util.find_spec("onnxruntime") is not None


def _padded_module(model: Any) -> Any:
    """Wrap a UNet so that its shape-dependent padding and its sigmoid are traced into the graph."""
    import torch
    import torch.nn.functional as F

    class _PaddedUNet(torch.nn.Module):
        """Reflect-pad ``(N, C, H, W)`` to a multiple of ``2 ** (levels - 1)``, run the U-Net, crop, sigmoid."""

        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net
            self.multiple = 2 ** (int(net.config["levels"]) - 1)
            self.logits = net.config.get("output", "sigmoid") == "logits"

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # while tracing, shape entries are tensors, so the padding follows the input's size in the graph
            height, width = x.shape[2], x.shape[3]
            pad_h = (self.multiple - height % self.multiple) % self.multiple
            pad_w = (self.multiple - width % self.multiple) % self.multiple
            top, left = pad_h // 2, pad_w // 2
            x = F.pad(x, (left, pad_w - left, top, pad_h - top), mode="reflect")
            y = self.net(x)[:, :, top : top + height, left : left + width]
            return torch.sigmoid(y) if self.logits else y

    return _PaddedUNet(model).eval()


def _metadata_props(metadata: dict[str, Any], config: dict[str, Any], model_path: Path) -> dict[str, str]:
    """The ``metadata_props`` of the exported model (module notes), all strings."""
    from . import __version__
    from .segment import normalisation_from_metadata, tiling_limits

    normalisation = normalisation_from_metadata(metadata, source=str(model_path))
    limits = tiling_limits(config)
    props = {
        "task": "segmentation",
        "input": f"{INPUT_NAME}: float32 (N, {config.get('in_channels', 1)}, H, W), grey values mapped to [0, 1] "
        "by the normalisation below; H, W >= min_input_size",
        "output": f"{OUTPUT_NAME}: float32 (N, 1, H, W), {PHASE_CONVENTION}",
        "phase_convention": PHASE_CONVENTION,
        "threshold": "0.5",
        "normalisation": json.dumps(normalisation.to_dict()),
        "normalisation_rule": "low, high = percentiles low_percentile and high_percentile of the scan's grey values; "
        "x = clip((grey - low) / (high - low), 0, 1)",
        "receptive_field": str(limits.receptive_field),
        "min_tile": str(limits.min_tile),
        "min_overlap": str(limits.min_overlap),
        "min_input_size": str(2 ** (int(config.get("levels", 5)) - 1)),
        "unet_config": json.dumps(config),
        "foamlib_version": str(metadata.get("foamlib_version", "unknown")),
        "exported_by": f"foamlib {__version__}",
        "source_model": model_path.name,
    }
    if metadata.get("intensity_range") is not None:
        props["intensity_range"] = json.dumps([float(v) for v in metadata["intensity_range"]])
    voxel = metadata.get("voxel_size_um")
    if isinstance(voxel, (int, float)) and not isinstance(voxel, bool) and math.isfinite(voxel) and voxel > 0:
        props["voxel_size_um"] = repr(float(voxel))
    for key in ("stage", "sample"):
        if isinstance(metadata.get(key), str):
            props[key] = metadata[key]
    return props


def _default_check_shapes(config: dict[str, Any]) -> tuple[tuple[int, int, int, int], ...]:
    """The export shape and a larger, non-square one whose sides are not multiples of the U-Net's."""
    from .segment import tiling_limits

    tile = tiling_limits(config).min_tile
    channels = int(config.get("in_channels", 1))
    return ((1, channels, tile, tile), (2, channels, tile + 13, 2 * tile + 5))


def _check_output(model_path: Any, out_path: Any, *, suffix: str, what: str, overwrite: bool) -> tuple[Path, Path]:
    """``(model_path, out_path)`` as paths, once ``out_path`` may take an export: not the model, ``suffix``, no folder.

    ``what`` names the export in the message about a wrong suffix (``"an ONNX export"``).
    """
    from .io import same_path

    model_path, out_path = Path(model_path), Path(out_path)
    if same_path(model_path, out_path):
        raise ValueError(f"output {out_path} is the model file; refusing to overwrite the model")
    if out_path.suffix.lower() != suffix:
        raise ValueError(f"{out_path}: {what} is written to a '{suffix}' file, not {out_path.suffix or 'no extension'!r}")
    if out_path.is_dir():
        raise IsADirectoryError(f"{out_path} is a folder; give a file name ending in {suffix}")
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} already exists; pass overwrite=True (--overwrite) to replace it")
    return model_path, out_path


def _cpu_session(onnx_path: Path) -> Any:
    """An ONNX Runtime session of ``onnx_path`` on the CPU that logs errors only."""
    with requires_extra("export"):
        import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: no notes on the console
    return onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def export_onnx(
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    overwrite: bool = False,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    tolerance: float = ONNX_TOLERANCE,
    check_shapes: Sequence[tuple[int, int, int, int]] | None = None,
    rng: int | np.random.Generator | None = 0,
) -> OnnxExport:
    """Export a foamlib segmentation model to an ONNX file with dynamic batch, height and width.

    Parameters
    ----------
    model_path : path-like
        A segmentation model written by :func:`foamlib.training.save_model`
        (metadata ``task: segmentation``, see
        :func:`foamlib.segment.check_segmentation_model`).
    out_path : path-like
        The ONNX file to write, ending in ``.onnx``; missing folders are
        created. Written atomically (a temporary file beside it, moved into
        place once complete and, with ``verify``, checked).
    overwrite : bool, optional
        Replace an existing ``out_path``. Default False.
    opset : int, optional
        ONNX opset, >= 11 (reflect padding with a dynamic size). Default
        :data:`DEFAULT_OPSET`.
    verify : bool, optional
        Run the exported file in ONNX Runtime on seeded random inputs of
        ``check_shapes`` and compare with torch (:func:`onnx_max_difference`);
        nothing is written if the difference exceeds ``tolerance``. Needs
        ``onnxruntime``. Default True.
    tolerance : float, optional
        Largest accepted absolute difference of probabilities. Default
        :data:`ONNX_TOLERANCE`.
    check_shapes : sequence of (N, C, H, W), optional
        Inputs of the check. Default: the export shape ``(1, C, t, t)`` with
        ``t`` the model's ``min_tile``, and ``(2, C, t + 13, 2 t + 5)``
        (non-square, sides not multiples of ``2 ** (levels - 1)``).
    rng : int, numpy.random.Generator or None, optional
        Seed of the check inputs. Default 0.

    Returns
    -------
    OnnxExport

    Raises
    ------
    FileExistsError
        If ``out_path`` exists and ``overwrite`` is False (checked before the
        model is read).
    ValueError
        If ``out_path`` does not end in ``.onnx`` or is the model file, an
        option is out of range, or the ONNX Runtime output differs from
        torch's by more than ``tolerance`` (nothing is written then).
    foamlib.torchfiles.ModelFileError
        If the model file is missing, not a foamlib model, or not a
        segmentation model.
    ModuleNotFoundError
        If ``verify`` is True and ``onnxruntime`` is not installed.
    """
    with requires_extra("export"):
        import onnx
    import torch

    from .runs import atomic_path
    from .segment import check_segmentation_model
    from .training import load_model

    model_path, out_path = _check_output(model_path, out_path, suffix=".onnx", what="an ONNX export", overwrite=overwrite)
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 11:
        raise ValueError(f"opset must be an integer >= 11 (reflect padding of a dynamic size), got {opset!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance > 0:
        raise ValueError(f"tolerance must be a positive number, got {tolerance!r}")
    if verify and not onnxruntime_available():
        raise ModuleNotFoundError("checking an ONNX export needs onnxruntime (pip install onnxruntime), or verify=False")

    model, metadata = load_model(model_path, device="cpu")
    check_segmentation_model(metadata, source=str(model_path))
    config = dict(model.config)
    shapes = _check_shape_list(check_shapes, config) if verify else ()
    props = _metadata_props(metadata, config, model_path)
    wrapped = _padded_module(model)
    side = int(props["min_tile"])
    example = torch.zeros((1, int(config.get("in_channels", 1)), side, side))
    buffer = io.BytesIO()
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript exporter's deprecation notice, and tracer notes on the U-Net's shape checks (module notes)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"(?s).*(TorchScript-based ONNX export|Constant folding)", category=UserWarning)
        # instance normalisation without running statistics normalises by each slice's own statistics in torch's
        # eval mode too, which is what ONNX InstanceNormalization does; the exporter notes it as "train=True"
        warnings.filterwarnings("ignore", message=r"(?s).*operator 'instance_norm' is set to train=True", category=UserWarning)
        warnings.filterwarnings("ignore", message=r"(?s).*torch\.onnx", category=FutureWarning)
        torch.onnx.export(
            wrapped, (example,), buffer, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
            do_constant_folding=True,
        )  # fmt: skip
    proto = onnx.load_from_string(buffer.getvalue())
    proto.doc_string = (f"foamlib segmentation U-Net exported from {model_path.name}: {INPUT_NAME} (N, C, H, W) float32 "
                        f"grey values in [0, 1] -> {OUTPUT_NAME} (N, 1, H, W), {PHASE_CONVENTION}")  # fmt: skip
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto, full_check=True)
    difference = None
    with atomic_path(out_path, overwrite=overwrite) as tmp:
        onnx.save(proto, tmp)
        if verify:
            difference = _max_difference(tmp, model, shapes, rng)
            if not difference <= tolerance:
                raise ValueError(
                    f"{out_path}: the exported model's probabilities differ from torch's by up to {difference:.3g} "
                    f"(tolerance {tolerance:g}) on inputs {list(shapes)}; nothing written"
                )
    return OnnxExport(path=out_path, model_path=model_path, opset=opset, metadata=props,
                      max_abs_difference=difference, check_shapes=tuple(shapes))  # fmt: skip


def _check_shape_list(shapes: Any, config: dict[str, Any]) -> tuple[tuple[int, int, int, int], ...]:
    if shapes is None:
        return _default_check_shapes(config)
    channels = int(config.get("in_channels", 1))
    smallest = 2 ** (int(config.get("levels", 5)) - 1)
    out = []
    for shape in shapes:
        ok = len(shape) == 4 and all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in shape)
        if not ok or shape[1] != channels or min(shape[2:]) < smallest:
            raise ValueError(f"check shape {tuple(shape)!r} must be (N, {channels}, H, W) with H, W >= {smallest}")
        out.append(tuple(int(n) for n in shape))
    if not out:
        raise ValueError("check_shapes is empty; give at least one (N, C, H, W) or leave it out")
    return tuple(out)


def _max_difference(onnx_path: Path, model: Any, shapes: Sequence[tuple[int, ...]], rng: Any) -> float:
    """Largest |ONNX Runtime - torch| probability on seeded uniform inputs of ``shapes``."""
    import torch

    from .segment import solid_probabilities

    generator = np.random.default_rng(rng)
    session = _cpu_session(onnx_path)
    was_training = model.training
    model.eval()
    worst = 0.0
    try:
        for shape in shapes:
            x = generator.random(shape, dtype=np.float32)
            with torch.inference_mode():
                reference = solid_probabilities(model, torch.from_numpy(x)).float().cpu().numpy()
            (result,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
            if result.shape != reference.shape:
                raise ValueError(f"{onnx_path}: ONNX output shape {result.shape} differs from torch's {reference.shape} "
                                 f"for input {shape}")  # fmt: skip
            worst = max(worst, float(np.max(np.abs(result.astype(np.float64) - reference))))
    finally:
        model.train(was_training)
    return worst


def onnx_max_difference(
    onnx_path: str | os.PathLike,
    model_path: str | os.PathLike,
    *,
    shapes: Sequence[tuple[int, int, int, int]] | None = None,
    rng: int | np.random.Generator | None = 0,
) -> float:
    """Largest absolute difference between an ONNX file's probabilities in ONNX Runtime and the torch model's.

    Parameters
    ----------
    onnx_path : path-like
        A file written by :func:`export_onnx`.
    model_path : path-like
        The foamlib model file it was exported from.
    shapes : sequence of (N, C, H, W), optional
        Input shapes; each input is seeded uniform noise in [0, 1] (a harder
        case for rounding than a real slice). Default: as
        :func:`export_onnx`'s ``check_shapes``.
    rng : int, numpy.random.Generator or None, optional
        Seed of the inputs. Default 0.

    Returns
    -------
    float
        ``max |p_onnx - p_torch|`` over every pixel of every input, both run
        on the CPU in float32.

    Raises
    ------
    ModuleNotFoundError
        If ``onnxruntime`` is not installed.
    FileNotFoundError
        If ``onnx_path`` does not exist.
    ValueError
        If a shape is malformed or the output shapes differ.
    """
    from .training import load_model

    onnx_path = Path(onnx_path)
    if not onnxruntime_available():
        raise ModuleNotFoundError("comparing an ONNX file with torch needs onnxruntime (pip install onnxruntime)")
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path} does not exist")
    model, _ = load_model(model_path, device="cpu")
    return _max_difference(onnx_path, model, _check_shape_list(shapes, dict(model.config)), rng)


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (module notes list foamlib's keys).

    Parameters
    ----------
    path : path-like
        An ONNX file.

    Returns
    -------
    dict of str to str

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a readable ONNX model (names the file).
    """
    with requires_extra("export"):
        import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises several kinds on a damaged file
        raise ValueError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    return {entry.key: entry.value for entry in proto.metadata_props}


# --------------------------------------------------------------------------- bioimage.io model package


@dataclass(frozen=True)
class BioimageioExport:
    """What :func:`export_bioimageio` wrote.

    Attributes
    ----------
    path : pathlib.Path
        The model package (``.zip``): ``rdf.yaml``, the ONNX weights, a test
        input and output (``.npy``), sample images and a README.
    validation_status : str
        ``bioimageio.spec``'s verdict on the written package:
        ``"valid-format"`` (format and files checked, offline) or ``"passed"``.
    test_max_abs_difference : float or None
        Largest absolute difference between the ONNX Runtime output for the
        package's test input (preprocessed as the package says) and its test
        output, computed with torch; None where onnxruntime is not installed.
    """

    path: Path
    validation_status: str
    test_max_abs_difference: float | None


#: The U-Net paper, cited by every package (bioimage.io needs a DOI or URL per citation).
_UNET_DOI = "10.1007/978-3-319-24574-4_28"


def _test_slice(side: int, rng: Any) -> np.ndarray:
    """A seeded CT-like grey slice, ``(1, 1, side, side)`` float32: dark pores, bright walls of a square cell grid, noise."""
    generator = np.random.default_rng(rng)
    yy, xx = np.mgrid[0:side, 0:side]
    cell = max(8, side // 5)
    walls = (np.minimum(yy % cell, xx % cell) < 3).astype(np.float32)
    grey = 1000.0 + 2000.0 * walls + generator.normal(0.0, 150.0, (side, side))
    return grey.astype(np.float32)[None, None]


def export_bioimageio(
    model_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    overwrite: bool = False,
    name: str | None = None,
    authors: Sequence[str] = ("foamseg contributors",),
    opset: int = DEFAULT_OPSET,
    rng: int | np.random.Generator | None = 0,
) -> BioimageioExport:
    """Write a foamlib segmentation model as a bioimage.io model package (deepImageJ, ilastik, bioimageio.core).

    The package holds the ONNX export (:func:`export_onnx`) and describes it
    in the bioimage.io model format 0.5: input ``image`` ``(batch, channel,
    y, x)`` with sizes ``min_tile + n * 2 ** (levels - 1)``, preprocessing
    ``scale_range`` (the model's percentiles, computed jointly over batch, y
    and x) and ``clip`` to [0, 1]; output ``probability`` of solid, same
    size, with a halo of ``min_overlap`` pixels for tiling; the voxel size
    (where recorded) as the scale of y and x in micrometres; foamlib's ONNX
    metadata under ``config.foamlib``.

    Parameters
    ----------
    model_path : path-like
        A segmentation model written by :func:`foamlib.training.save_model`.
    out_path : path-like
        The package, ending in ``.zip``; written atomically, after it has
        validated.
    overwrite : bool, optional
        Replace an existing ``out_path``. Default False.
    name : str, optional
        Name of the model in the package. Default: from the model's stage and
        sample.
    authors : sequence of str, optional
        Author names for the package.
    opset : int, optional
        ONNX opset (:func:`export_onnx`).
    rng : int, numpy.random.Generator or None, optional
        Seed of the test slice's noise. Default 0.

    Returns
    -------
    BioimageioExport

    Raises
    ------
    ModuleNotFoundError
        If ``bioimageio.spec`` is not installed (``pip install bioimageio.spec``).
    FileExistsError
        If ``out_path`` exists and ``overwrite`` is False.
    ValueError
        If ``out_path`` does not end in ``.zip`` or is the model file, or the
        package does not validate (the message holds bioimageio.spec's summary;
        nothing is written then).
    foamlib.torchfiles.ModelFileError
        If the model file is not a foamlib segmentation model.

    Notes
    -----
    foamlib normalises a scan by the percentiles of the whole scan; a
    bioimage.io consumer computes them over what it is given (one image or a
    stack passed as the batch). For a slice that shows both phases the two
    ranges are close; a tile of one phase only is stretched differently.
    """
    import tempfile

    import torch

    from .runs import atomic_path
    from .segment import solid_probabilities
    from .training import load_model

    if importlib.util.find_spec("bioimageio") is None or importlib.util.find_spec("bioimageio.spec") is None:
        raise ModuleNotFoundError("a bioimage.io package needs bioimageio.spec (pip install bioimageio.spec)")
    with requires_extra("export"):
        from bioimageio.spec import load_model_description, save_bioimageio_package
        from bioimageio.spec.model import v0_5 as bio

    model_path, out_path = _check_output(model_path, out_path, suffix=".zip", what="a bioimage.io package",
                                         overwrite=overwrite)  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="foamlib-bioimageio-") as folder:
        work = Path(folder)
        onnx_export = export_onnx(model_path, work / "weights.onnx", opset=opset, verify=onnxruntime_available())
        meta = onnx_export.metadata
        model, _ = load_model(model_path, device="cpu")
        norm = json.loads(meta["normalisation"])
        min_tile, multiple, overlap = int(meta["min_tile"]), int(meta["min_input_size"]), int(meta["min_overlap"])
        side = min_tile + 2 * multiple
        grey = _test_slice(side, rng)
        low, high = np.percentile(grey, [norm["low_percentile"], norm["high_percentile"]])
        eps = 1e-6  # bioimage.io scale_range: (x - low) / (high - low + eps)
        x = np.clip((grey - low) / (high - low + eps), 0.0, 1.0).astype(np.float32)
        with torch.inference_mode():
            expected = solid_probabilities(model.eval(), torch.from_numpy(x)).float().numpy()
        difference = None
        if onnxruntime_available():
            difference = _onnx_output_difference(work / "weights.onnx", x, expected)
            if not difference <= ONNX_TOLERANCE:
                raise ValueError(f"{model_path}: the ONNX weights differ from torch by {difference:.3g} on the test slice")
        np.save(work / "test_input.npy", grey)
        np.save(work / "test_output.npy", expected)
        _write_png(work / "sample_input.png", x[0, 0])
        _write_png(work / "sample_output.png", expected[0, 0])
        title = name or " ".join(["foamlib U-Net", meta.get("stage", ""), meta.get("sample", "")]).strip()
        (work / "README.md").write_text(_package_readme(title, meta, norm), encoding="utf-8")

        voxel = float(meta["voxel_size_um"]) if "voxel_size_um" in meta else None
        space = {"unit": "micrometer", "scale": voxel} if voxel is not None else {}
        size = bio.ParameterizedSize(min=min_tile, step=multiple)
        image_id = bio.TensorId("image")
        inputs = [bio.InputTensorDescr(
            id=image_id,
            description="CT slice(s), grey values as stored; scaled to [0, 1] by percentiles of the image(s)",
            axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("grey")]),
                  bio.SpaceInputAxis(id=bio.AxisId("y"), size=size, **space),
                  bio.SpaceInputAxis(id=bio.AxisId("x"), size=size, **space)],
            test_tensor=bio.FileDescr(source=work / "test_input.npy"),
            sample_tensor=bio.FileDescr(source=work / "sample_input.png"),
            data=bio.IntervalOrRatioDataDescr(type="float32"),
            preprocessing=[
                bio.ScaleRangeDescr(kwargs=bio.ScaleRangeKwargs(
                    axes=[bio.AxisId("batch"), bio.AxisId("y"), bio.AxisId("x")],
                    min_percentile=norm["low_percentile"], max_percentile=norm["high_percentile"], eps=eps)),
                bio.ClipDescr(kwargs=bio.ClipKwargs(min=0.0, max=1.0)),
            ],
        )]  # fmt: skip
        outputs = [bio.OutputTensorDescr(
            id=bio.TensorId("probability"),
            description=PHASE_CONVENTION,
            axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier("solid")]),
                  *(bio.SpaceOutputAxisWithHalo(id=bio.AxisId(a), halo=overlap, size=bio.SizeReference(
                      tensor_id=image_id, axis_id=bio.AxisId(a)), **space) for a in ("y", "x"))],
            test_tensor=bio.FileDescr(source=work / "test_output.npy"),
            sample_tensor=bio.FileDescr(source=work / "sample_output.png"),
            data=bio.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        )]  # fmt: skip
        descr = bio.ModelDescr(
            name=title,
            description="2D U-Net that segments micro-CT slices of foams into solid (cell walls and struts) and pore, "
            "trained on synthetic data after Griem et al., Synthetic training data for CT image segmentation of "
            "microstructures; exported by foamlib",
            authors=[bio.Author(name=author) for author in authors],
            cite=[bio.CiteEntry(text="Ronneberger, Fischer and Brox (2015), U-Net: convolutional networks for "
                                "biomedical image segmentation, MICCAI 2015", doi=bio.Doi(_UNET_DOI))],
            license=bio.LicenseId("MIT"),
            documentation=bio.FileDescr(source=work / "README.md"),
            tags=["segmentation", "micro-ct", "x-ray-tomography", "foam", "materials-science", "u-net", "2d", "onnx"],
            inputs=inputs,
            outputs=outputs,
            weights=bio.WeightsDescr(onnx=bio.OnnxWeightsDescr(
                source=bio.FileDescr(source=work / "weights.onnx").source, opset_version=opset)),
            config=bio.Config(**{"foamlib": meta}),
        )  # fmt: skip
        with atomic_path(out_path, overwrite=overwrite) as tmp:
            save_bioimageio_package(descr, output_path=tmp)
            loaded = load_model_description(tmp, perform_io_checks=True)
            status = str(loaded.validation_summary.status)
            if status not in ("valid-format", "passed"):
                raise ValueError(f"{out_path}: the bioimage.io package did not validate ({status}):\n"
                                 f"{loaded.validation_summary.format()}")  # fmt: skip
    return BioimageioExport(path=out_path, validation_status=status, test_max_abs_difference=difference)


def _onnx_output_difference(onnx_path: Path, x: np.ndarray, expected: np.ndarray) -> float:
    (result,) = _cpu_session(onnx_path).run([OUTPUT_NAME], {INPUT_NAME: x})
    return float(np.max(np.abs(result.astype(np.float64) - expected)))


def _write_png(path: Path, image: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8), extension=".png")


def _package_readme(title: str, meta: dict[str, str], norm: dict[str, Any]) -> str:
    voxel = f"{meta['voxel_size_um']} um" if "voxel_size_um" in meta else "not recorded"
    return f"""# {title}

A 2D U-Net that segments micro-CT slices of foams into solid (cell walls and struts) and pore, trained by
foamlib on synthetic training data (Griem et al., *Synthetic training data for CT image segmentation of
microstructures*).

## Input and output

- `image`: (batch, 1, y, x) float32 grey values as stored in the scan. Preprocessing: the
  {norm['low_percentile']:g}th and {norm['high_percentile']:g}th percentiles of the image (or of the stack passed as the
  batch) are mapped to 0 and 1, values outside clipped. foamlib takes these percentiles over the whole scan;
  pass whole slices (or the stack) rather than small tiles so that both phases are in view.
- `probability`: (batch, 1, y, x) float32, {PHASE_CONVENTION}. foamlib thresholds it at
  {meta['threshold']}.
- Sizes: y and x of at least {meta['min_tile']} px in steps of {meta['min_input_size']}; tiles should overlap by
  at least {meta['min_overlap']} px (the halo). Receptive field {meta['receptive_field']} px.
- Voxel size of the training scan: {voxel}. Trained by foamlib {meta['foamlib_version']}, exported by
  {meta['exported_by']}.

## Validation

The package's test output is the torch model's probability for the test input after the preprocessing above;
the ONNX weights reproduce it to within 1e-4 in ONNX Runtime (checked when the package is written). How well the
model segments a given material is reported by the foamlib study that trained it (its book's step-1 and step-2
pages), not here.
"""
