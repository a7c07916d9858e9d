"""Training, evaluating, saving and loading the segmentation U-Net.

Data
----
Functions here take NumPy stacks of slices: images of shape ``(N, H, W)``
(``uint8`` is divided by 255, other unsigned integers by their maximum, floats
are used as they are and should lie in [0, 1]) and labels of the same shape
(``bool``, or 0/1 numbers; 1 = solid). Batches are converted to float32 tensors
of shape ``(N, 1, H, W)`` on the fly, so a large stack is never held in memory
twice.

Reproducibility
---------------
Everything random in :func:`train_unet` derives from ``TrainConfig.seed``
through generators owned by the run (named streams of :mod:`foamlib.streams`:
``("unet", "order")`` for the order of the slices, ``("unet", "noise")`` for the
input noise); global RNG
state is neither read nor changed. Initial weights come from
:func:`foamlib.unet.build_unet` with its own seed. On the CPU, a run with the
same data, configuration, initial weights and thread count gives the same
weights every time, and a run resumed from a checkpoint gives the same weights
as one that was never interrupted.

Files
-----
Checkpoints and model files are single ``torch.save`` files that hold only
tensors and plain Python types, so they load with ``weights_only=True`` (no
arbitrary code runs when a file is read). Both are written atomically (a
temporary file in the same folder, then :func:`os.replace`). Checkpoints are
kept by :class:`foamlib.trainloop.TrainingRun`, the bookkeeping that
:func:`train_unet` shares with the GAN and the CycleGAN; they also record the
``foamlib`` version that wrote them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import streams
from .checks import check_int, check_real, is_real
from .device import autocast, grad_scaler, pick_device, pick_precision
from .losses import ConfusionCounts, confusion_counts, dice_loss
from .progress import progress_bar
from .torchfiles import ModelFileError, data_fingerprint, load_module_file, save_module_file
from .trainloop import TrainingRun, check_config
from .unet import UNet, build_unet

__all__ = [
    "TrainConfig",
    "TrainResult",
    "SegmentationMetrics",
    "DegenerateModelError",
    "LEARNT_MARGIN",
    "check_learnt",
    "ModelFileError",
    "train_unet",
    "evaluate",
    "predict",
    "save_model",
    "load_model",
    "build_unet",
]

logger = logging.getLogger(__name__)

MODEL_FORMAT = "foamlib-unet"
CHECKPOINT_FORMAT = "foamlib-checkpoint"
FORMAT_VERSION = 1

_LOSSES = ("dice", "bce", "dice+bce")
#: TrainConfig fields that may differ between a checkpoint and the run that resumes it.
_RESUMABLE_CHANGES = frozenset({"epochs", "patience", "num_workers", "eval_batch_size"})


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Parameters
    ----------
    epochs : int
        Maximum number of epochs (passes over the training slices), >= 1.
    batch_size : int
        Slices per optimisation step, >= 1.
    learning_rate : float
        Learning rate of the Adam optimiser, >= 0.
    noise_sigma : float
        Standard deviation of the Gaussian noise added to the training inputs
        (grey values in [0, 1]) at every step; 0 switches it off. The noisy
        input is clipped to [0, 1], the range of every real input, so the
        network never sees values it will not meet at inference. Griem et al.
        use 0.05.
    patience : int or None
        Stop when the validation mean Dice has not improved (by more than
        ``min_delta``) for this many epochs; None trains all ``epochs``.
    seed : int
        Seed of the slice order and of the noise, >= 0.
    num_workers : int
        Worker processes of the :class:`torch.utils.data.DataLoader` that
        converts batches (0: in the main process). Does not change results.
    loss : {"dice", "bce", "dice+bce"}
        Training loss: soft Dice (:func:`foamlib.losses.dice_loss`), binary
        cross-entropy, or their sum.
    min_delta : float
        Smallest increase of the validation mean Dice that counts as an improvement.
    eval_batch_size : int or None
        Batch size for validation; None uses ``batch_size``.

    Raises
    ------
    ValueError
        If a value is out of range.
    """

    epochs: int = 50
    batch_size: int = 16
    learning_rate: float = 1e-3
    noise_sigma: float = 0.05
    patience: int | None = 10
    seed: int = 0
    num_workers: int = 0
    loss: str = "dice"
    min_delta: float = 0.0
    eval_batch_size: int | None = None

    def __post_init__(self) -> None:
        def positive_int(name: str, value: Any, minimum: int) -> None:
            object.__setattr__(self, name, check_int(f"TrainConfig.{name}", value, low=minimum))

        def nonnegative_float(name: str, value: Any) -> None:
            object.__setattr__(self, name, check_real(f"TrainConfig.{name}", value, low=0.0))

        positive_int("epochs", self.epochs, 1)
        positive_int("batch_size", self.batch_size, 1)
        nonnegative_float("learning_rate", self.learning_rate)
        nonnegative_float("noise_sigma", self.noise_sigma)
        if self.patience is not None:
            positive_int("patience", self.patience, 1)
        positive_int("seed", self.seed, 0)
        positive_int("num_workers", self.num_workers, 0)
        if self.loss not in _LOSSES:
            raise ValueError(f"TrainConfig.loss must be one of {', '.join(map(repr, _LOSSES))}, got {self.loss!r}")
        nonnegative_float("min_delta", self.min_delta)
        if self.eval_batch_size is not None:
            positive_int("eval_batch_size", self.eval_batch_size, 1)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_unet` reports.

    Attributes
    ----------
    history : list of dict
        One entry per epoch, including epochs run before a resume: ``epoch``
        (1-based), ``train_loss``, ``val_loss``, ``val_dice`` (solid),
        ``val_pore_dice``, ``val_mean_dice``, ``val_iou``, ``val_accuracy``,
        ``learning_rate``, ``train_seconds`` and ``seconds`` (the whole epoch,
        validation included).
    best_epoch : int
        Epoch (1-based) with the highest validation mean Dice of the two
        phases (:attr:`SegmentationMetrics.mean_dice`); the model holds its
        weights.
    best_val_mean_dice : float
        That mean Dice (pixels of the whole validation set pooled).
    epochs_run : int
        Epochs trained in total, resumed ones included.
    seconds : float
        Training time summed over all epochs (also across resumes).
    stopped_early : bool
        Whether early stopping ended the run before ``epochs``.
    """

    history: list[dict[str, Any]]
    best_epoch: int
    best_val_mean_dice: float
    epochs_run: int
    seconds: float
    stopped_early: bool = False


@dataclass(frozen=True)
class SegmentationMetrics:
    """Quality of a segmentation, all pixels of all slices pooled.

    Attributes
    ----------
    accuracy : float
        Fraction of pixels classified correctly.
    dice : float
        Dice coefficient of the solid phase.
    iou : float
        Intersection over union of the solid phase.
    n_images : int
        Number of slices evaluated.
    pore_dice : float
        Dice coefficient of the pore phase.
    mean_dice : float
        Mean of the two phases' Dice coefficients. Unlike the solid Dice it
        cannot be won by marking everything one phase: a segmentation that
        calls every pixel solid scores ``s / (1 + s)`` at a solid fraction
        ``s`` (below 0.5), where its solid Dice ``2 s / (1 + s)`` is 0.82 at
        ``s = 0.7``. Model selection (early stopping, the hyperparameter
        search) maximises it.
    solid_fraction : float
        Fraction of the labels that is solid.
    predicted_solid_fraction : float
        Fraction of the segmentation that is solid.
    """

    accuracy: float
    dice: float
    iou: float
    n_images: int
    pore_dice: float
    mean_dice: float
    solid_fraction: float
    predicted_solid_fraction: float

    @property
    def constant_mean_dice(self) -> float:
        """The best mean Dice a constant segmentation (all solid or all pore) gets on these labels."""
        s = self.solid_fraction
        return max(s / (1 + s), (1 - s) / (2 - s))


class DegenerateModelError(RuntimeError):
    """A trained U-Net segments no better than marking every pixel one phase.

    Raised by :func:`check_learnt`; the message names the model, its scores
    and what to change.
    """


#: How much a model's mean Dice must exceed that of the better constant segmentation (see :func:`check_learnt`).
LEARNT_MARGIN = 0.05


def check_learnt(metrics: SegmentationMetrics, *, what: str = "the U-Net") -> None:
    """Refuse a model whose segmentation of its test split is no better than one phase everywhere.

    A U-Net trained with the Dice loss on labels that are mostly solid can sit
    in the loss's trivial minimum, marking every pixel solid (its solid Dice is
    then high, 0.82 at a solid fraction of 0.7); applied to a scan it gives a
    porosity near 0 with exit status 0. This check compares the model's mean
    Dice of the two phases with that of the better constant segmentation
    (:attr:`SegmentationMetrics.constant_mean_dice`, at most 0.5) and raises if
    it is not at least :data:`LEARNT_MARGIN` above it.

    Parameters
    ----------
    metrics : SegmentationMetrics
        The model's metrics on labelled data it was not trained on
        (:func:`evaluate` on the test split).
    what : str, optional
        How the error names the model.

    Raises
    ------
    DegenerateModelError
        If ``metrics.mean_dice <= metrics.constant_mean_dice + LEARNT_MARGIN``.
    """
    if not isinstance(metrics, SegmentationMetrics):
        raise TypeError(f"metrics must be a SegmentationMetrics, got {type(metrics).__name__}")
    floor = metrics.constant_mean_dice
    if metrics.mean_dice <= floor + LEARNT_MARGIN:
        raise DegenerateModelError(
            f"{what} has not learnt to segment: on its {metrics.n_images} test images it marks "
            f"{metrics.predicted_solid_fraction:.1%} of the pixels solid where the labels have "
            f"{metrics.solid_fraction:.1%}, with a mean Dice of the two phases of {metrics.mean_dice:.3f} against "
            f"{floor:.3f} for marking every pixel one phase (solid Dice {metrics.dice:.3f}, pore Dice "
            f"{metrics.pore_dice:.3f}). Train longer or on more images (a larger profile than smoke: epochs, "
            "n_foams, foam_size), or try another seed; its segmentation of the scan would not mean anything."
        )


# --------------------------------------------------------------------------- data


def _image_scale(images: np.ndarray, name: str) -> float:
    """Factor that maps the image dtype to [0, 1]."""
    if images.dtype == np.uint8:
        return 1.0 / 255.0
    if np.issubdtype(images.dtype, np.unsignedinteger):
        return 1.0 / float(np.iinfo(images.dtype).max)
    if np.issubdtype(images.dtype, np.floating):
        return 1.0
    raise ValueError(f"{name} must be unsigned integers or floats, got dtype {images.dtype}")


def _check_images(images: Any, name: str) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, H, W) with N >= 1, got {images.shape}")
    _image_scale(images, name)
    return images


def _check_pair(pair: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate an ``(images, labels)`` pair; labels become bool."""
    if not isinstance(pair, Sequence) or len(pair) != 2:
        raise ValueError(f"{name} must be a pair (images, labels), got {type(pair).__name__}")
    images = _check_images(pair[0], f"{name} images")
    labels = np.asarray(pair[1])
    if labels.shape != images.shape:
        raise ValueError(f"{name} labels must have the shape of the images {images.shape}, got {labels.shape}")
    if labels.dtype != np.bool_:
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(f"{name} labels must be bool or 0/1 (1 = solid)")
        labels = labels.astype(bool)
    return images, labels


def _images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """``(n, H, W)`` array -> float32 tensor ``(n, 1, H, W)`` in [0, 1]."""
    scale = _image_scale(images, "images")
    array = images.astype(np.float32)
    if scale != 1.0:
        array *= np.float32(scale)
    return torch.from_numpy(array).unsqueeze(1)


class _BatchDataset(torch.utils.data.Dataset):
    """Indexable by an array of slice indices; returns one whole batch."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = _images_to_tensor(self.images[index])
        if self.labels is None:
            return x, torch.empty(0)
        return x, torch.from_numpy(self.labels[index].astype(np.float32)).unsqueeze(1)


def _batches(n: int, batch_size: int, order: np.ndarray | None = None) -> list[np.ndarray]:
    """Split ``order`` (default ``arange(n)``) into batches; a last batch of one joins the previous."""
    order = np.arange(n) if order is None else order
    chunks = [order[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2] = np.concatenate([chunks[-2], chunks.pop()])
    return chunks


def _loader(dataset: _BatchDataset, batches: list[np.ndarray], num_workers: int, device: torch.device):
    return torch.utils.data.DataLoader(
        dataset, sampler=batches, batch_size=None, num_workers=num_workers, pin_memory=device.type == "cuda"
    )


def _probabilities(model: nn.Module, output: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(output) if getattr(model, "output", "sigmoid") == "logits" else output


def _loss(model: nn.Module, output: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Training loss on the raw model output (probabilities or logits)."""
    logits = getattr(model, "output", "sigmoid") == "logits"
    probs = torch.sigmoid(output) if logits else output
    total = output.new_zeros(())
    if kind in ("dice", "dice+bce"):
        total = total + dice_loss(probs, target)
    if kind in ("bce", "dice+bce"):
        bce = F.binary_cross_entropy_with_logits(output, target) if logits else F.binary_cross_entropy(probs, target)
        total = total + bce
    return total


def _add_counts(total: ConfusionCounts | None, counts: ConfusionCounts) -> ConfusionCounts:
    pooled = ConfusionCounts(*(c.sum() for c in (counts.tp, counts.fp, counts.fn, counts.tn)))
    if total is None:
        return pooled
    return ConfusionCounts(total.tp + pooled.tp, total.fp + pooled.fp, total.fn + pooled.fn, total.tn + pooled.tn)


def _metrics(counts: ConfusionCounts, n_images: int) -> SegmentationMetrics:
    tp, fp, fn, tn = (float(c) for c in (counts.tp, counts.fp, counts.fn, counts.tn))
    total = tp + fp + fn + tn
    dice = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) > 0 else 1.0
    pore_dice = 2 * tn / (2 * tn + fp + fn) if (2 * tn + fp + fn) > 0 else 1.0  # pore as the positive class
    iou_value = tp / (tp + fp + fn) if (tp + fp + fn) > 0 else 1.0
    return SegmentationMetrics(
        accuracy=(tp + tn) / total, dice=dice, iou=iou_value, n_images=n_images, pore_dice=pore_dice,
        mean_dice=(dice + pore_dice) / 2, solid_fraction=(tp + fn) / total, predicted_solid_fraction=(tp + fp) / total,
    )


def _validate(
    model: nn.Module, dataset: _BatchDataset, batch_size: int, loss_kind: str, num_workers: int, device: torch.device
) -> tuple[float, SegmentationMetrics]:
    """Mean loss and pooled metrics of ``model`` (eval mode) on ``dataset``."""
    model.eval()
    total_loss, counts = 0.0, None
    with torch.inference_mode():
        for x, y in _loader(dataset, _batches(len(dataset), batch_size), num_workers, device):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x)
            total_loss += float(_loss(model, out, y, loss_kind)) * len(x)
            counts = _add_counts(counts, confusion_counts(_probabilities(model, out), y))
    return total_loss / len(dataset), _metrics(counts, len(dataset))


# --------------------------------------------------------------------------- files


def _model_config(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    if not isinstance(config, Mapping):
        raise ValueError(f"model {type(model).__name__} has no config dict; save and resume need a foamlib UNet")
    return dict(config)


def save_model(path: str | os.PathLike, model: nn.Module, *, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a trained model to one ``.pt`` file, atomically.

    Parameters
    ----------
    path : path-like
        Destination; missing parent folders are created, an existing file is
        replaced.
    model : UNet
        The model; its ``config`` and weights are stored.
    metadata : mapping, optional
        Anything worth keeping with the weights (training data, metrics, ...).
        Must hold plain values; NumPy scalars and arrays and paths are
        converted, tuples become lists. These keys have a meaning for
        :func:`foamlib.segment.segment_file` and are checked here:

        ``"task"`` : str
            What the network does: ``"segmentation"`` for a U-Net that maps
            grey slices to solid probabilities (the only kind
            :func:`~foamlib.segment.segment_file` accepts), ``"translation"``
            for a CycleGAN generator. Write it for every new model.
        ``"stage"`` : str
            The study stage that trained it: ``"step1"``, ``"step2"``
            (segmentation) or ``"cyclegan"``. Files without ``"task"`` are
            judged by it (:func:`~foamlib.segment.check_segmentation_model`).
        ``"normalisation"`` : dict
            ``IntensityNormalisation.to_dict()``: how each scan's grey values
            were mapped to [0, 1] in training; segmentation applies the same
            rule to every scan (:class:`~foamlib.segment.IntensityNormalisation`).
        ``"intensity_range"`` : [low, high]
            The range the training scan was mapped with (its
            ``normalisation.range_for(scan)``), for the record. A model with
            this key but no ``"normalisation"`` is a legacy model: it is
            taken to have used each scan's (min, max).
        ``"voxel_size_um"`` : float or None
            Voxel size of the training scan, micrometres; a scan more than
            1.5 times larger or smaller gets a warning when segmented.

        A step 1 model, say: ``{"task": "segmentation", "stage": "step1",
        "normalisation": norm.to_dict(), "intensity_range": [low, high],
        "voxel_size_um": 10.0, "sample": ...}``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If ``model`` has no ``config``, or a key listed above has a value of
        the wrong form (the message names the key); nothing is written then.
    TypeError
        If ``metadata`` holds something other than plain values.

    Notes
    -----
    The file holds ``{"format": "foamlib-unet", "format_version": 1,
    "model_config": ..., "state_dict": ..., "metadata": ..., "foamlib_version":
    ...}``, with the weights on the CPU.
    """
    _check_model_metadata(metadata or {})
    path = save_module_file(path, model, file_format=MODEL_FORMAT, config_key="model_config",
                            config=_model_config(model), metadata=metadata, version=FORMAT_VERSION)  # fmt: skip
    logger.info("saved model to %s", path)
    return path


def _check_model_metadata(metadata: Mapping[str, Any]) -> None:
    """Check the metadata keys that segmentation reads (see :func:`save_model`); ValueError names the key."""
    from .segment import IntensityNormalisation

    for key in ("task", "stage"):
        value = metadata.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"metadata {key!r} must be a string, got {value!r}")
    if metadata.get("normalisation") is not None:
        try:
            IntensityNormalisation.from_dict(metadata["normalisation"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata 'normalisation' must be IntensityNormalisation.to_dict(): {exc}") from exc
    bounds = metadata.get("intensity_range")
    if bounds is not None:
        try:
            low, high = (float(v) for v in bounds)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata 'intensity_range' must be [low, high], got {bounds!r}") from exc
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"metadata 'intensity_range' must be finite with low < high, got {bounds!r}")
    size = metadata.get("voxel_size_um")
    if size is not None and not (is_real(size) and math.isfinite(size) and size > 0):
        # a ValueError like the other metadata checks: the metadata is content of a file, not an argument
        raise ValueError(f"metadata 'voxel_size_um' must be a positive number of micrometres or None, got {size!r}")


def load_model(path: str | os.PathLike, *, device: str | torch.device | None = None) -> tuple[UNet, dict[str, Any]]:
    """Read a model written by :func:`save_model`.

    Parameters
    ----------
    path : path-like
        The ``.pt`` file.
    device : str, torch.device or None, optional
        Where to put the model (see :func:`foamlib.device.pick_device`).

    Returns
    -------
    model : UNet
        The rebuilt model with its weights, in evaluation mode.
    metadata : dict
        The metadata saved with it, plus ``"foamlib_version"`` (the version
        that wrote the file) where the metadata does not have that key.

    Raises
    ------
    ModelFileError
        (a :class:`ValueError`) if the file is missing, is not a torch file
        (damaged or foreign), or is a torch file that foamlib did not write as
        a model; the message names the file and the problem.
    """
    dev = pick_device(device)
    model, metadata = load_module_file(path, file_format=MODEL_FORMAT, config_key="model_config", build=UNet,
                                       kind="model", what="model", version=FORMAT_VERSION, device=dev)  # fmt: skip
    return model.to(dev).eval(), metadata


# --------------------------------------------------------------------------- inference


def _run_batches(model: nn.Module, images: np.ndarray, device: torch.device, batch_size: int, progress: bool, desc: str):
    """Yield ``(slice_indices, probabilities)`` for consecutive batches, model in eval mode."""
    batch_size = check_int("batch_size", batch_size, low=1)
    dataset = _BatchDataset(images)
    batches = [np.arange(i, min(i + batch_size, len(images))) for i in range(0, len(images), batch_size)]
    was_training = model.training
    model.to(device).eval()
    try:
        with torch.inference_mode():
            bar = progress_bar(_loader(dataset, batches, 0, device), total=len(batches), desc=desc, unit="batch", disable=not progress)
            for index, (x, _) in zip(batches, bar):
                yield index, _probabilities(model, model(x.to(device, non_blocking=True)))
    finally:
        model.train(was_training)


def predict(
    model: nn.Module,
    images: np.ndarray,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 16,
    progress: bool = False,
) -> np.ndarray:
    """Probability of solid for every pixel of a stack of slices.

    Parameters
    ----------
    model : torch.nn.Module
        A :class:`UNet` (or any module mapping ``(N, 1, H, W)`` to the same
        shape; one with ``output == "logits"`` gets a sigmoid applied). It is
        moved to ``device`` and run in evaluation mode; its mode is restored.
    images : numpy.ndarray
        ``(N, H, W)``, unsigned integers or floats in [0, 1].
    device : str, torch.device or None, optional
        See :func:`foamlib.device.pick_device`.
    batch_size : int, optional
        Slices per forward pass. Default 16.
    progress : bool, optional
        Show a progress bar. Default False.

    Returns
    -------
    numpy.ndarray
        float32, ``(N, H, W)``, values in [0, 1]. Threshold at 0.5 for a
        segmentation.
    """
    images = _check_images(images, "images")
    out = np.empty(images.shape, dtype=np.float32)
    for index, probs in _run_batches(model, images, pick_device(device), batch_size, progress, "predict"):
        out[index] = probs[:, 0].float().cpu().numpy()
    return out


def evaluate(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 16,
    threshold: float = 0.5,
) -> SegmentationMetrics:
    """Accuracy, Dice and IoU of the model's segmentation of a labelled stack.

    Parameters
    ----------
    model : torch.nn.Module
        As for :func:`predict`.
    images : numpy.ndarray
        ``(N, H, W)`` slices.
    labels : numpy.ndarray
        ``(N, H, W)`` bool or 0/1, 1 = solid.
    device : str, torch.device or None, optional
        See :func:`foamlib.device.pick_device`.
    batch_size : int, optional
        Slices per forward pass. Default 16.
    threshold : float, optional
        Probability at and above which a pixel counts as solid. Default 0.5.

    Returns
    -------
    SegmentationMetrics
        Metrics over all pixels of all slices pooled (the same numbers as for
        the stack treated as one volume); they do not depend on ``batch_size``.
    """
    images, labels = _check_pair((images, labels), "evaluate")
    counts = None
    for index, probs in _run_batches(model, images, pick_device(device), batch_size, False, "evaluate"):
        target = torch.from_numpy(labels[index]).unsqueeze(1).to(probs.device)
        counts = _add_counts(counts, confusion_counts(probs, target, threshold=threshold))
    return _metrics(counts, len(images))


# --------------------------------------------------------------------------- training


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _check_run(
    checkpoint: dict[str, Any],
    path: Path,
    config: TrainConfig,
    model_config: dict[str, Any],
    data_shapes: dict[str, list[int]],
    fingerprint: str,
) -> None:
    """Raise ValueError if ``checkpoint`` belongs to a different run."""
    if "best_val_mean_dice" not in checkpoint:
        raise ValueError(
            f"checkpoint {path} was written by an earlier foamlib that chose the best epoch by the solid Dice alone; "
            "delete it to train afresh"
        )
    if checkpoint.get("model_config") != model_config:
        raise ValueError(
            f"checkpoint {path} was written for model {checkpoint.get('model_config')}, not {model_config}; "
            "delete it or pass another checkpoint_path"
        )
    check_config(checkpoint.get("config", {}), dataclasses.asdict(config), path=path, name="TrainConfig",
                 resumable=_RESUMABLE_CHANGES)  # fmt: skip
    if checkpoint.get("data_shapes") != data_shapes:
        raise ValueError(
            f"checkpoint {path} was written for data of shapes {checkpoint.get('data_shapes')}, not {data_shapes}"
        )
    if checkpoint.get("data_fingerprint") != fingerprint:
        raise ValueError(
            f"checkpoint {path} was written for other training or validation data of the same shapes "
            f"{data_shapes}; cannot resume"
        )


def train_unet(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    *,
    config: TrainConfig,
    checkpoint_path: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    precision: str = "auto",
    progress: bool = True,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    on_mismatch: str = "error",
) -> TrainResult:
    """Train a U-Net with Adam, validating and checkpointing after every epoch.

    Parameters
    ----------
    model : UNet
        The model to train, in place (build it with
        :func:`foamlib.unet.build_unet` for reproducible initial weights). It is
        moved to ``device``. On return it holds the weights of the epoch with
        the best validation mean Dice of the two phases and is in evaluation
        mode.
    train, val : tuple of numpy.ndarray
        ``(images, labels)``: images ``(N, H, W)`` uint8 (divided by 255) or
        float in [0, 1]; labels ``(N, H, W)`` bool (or 0/1), 1 = solid.
    config : TrainConfig
        Epochs, batch size, learning rate, noise, early stopping, seed, loss.
    checkpoint_path : path-like, optional
        Where to write a checkpoint after every epoch (atomically). If the file
        exists when training starts, the run resumes from it: weights,
        optimiser state, history, best weights and RNG states are restored and
        training continues with the next epoch, giving the same result as a run
        that was never interrupted. Only ``epochs``, ``patience``,
        ``num_workers`` and ``eval_batch_size`` may differ from the run that
        wrote it (so a finished run can be extended); the model, the rest of
        the configuration and the training and validation data (their
        contents, not only their shapes: :func:`foamlib.torchfiles.data_fingerprint`)
        must be the same.
    device : str, torch.device or None, optional
        See :func:`foamlib.device.pick_device`.
    precision : {"auto", "fp32", "bf16", "fp16"}, optional
        Arithmetic of the training forward passes
        (:func:`foamlib.device.pick_precision`): "auto" (default) autocasts to
        bf16 on a CUDA device that supports it and is fp32 on the CPU
        (unchanged bit for bit); the loss is computed in float32, and fp16
        scales it (:func:`foamlib.device.grad_scaler`). Validation runs fp32.
    progress : bool, optional
        Show one progress bar per epoch. Default True.
    on_epoch_end : callable, optional
        Called as ``on_epoch_end(epoch, row)`` after every epoch trained in
        this call (after the checkpoint is written), with the 1-based epoch
        number and a copy of that epoch's history row (see
        :class:`TrainResult`). An exception it raises ends training and
        propagates to the caller unchanged; the model then holds the weights
        of the last epoch, not the best ones. Hyperparameter search uses it to
        report the validation mean Dice and to prune (:mod:`foamlib.hpo`).
    on_mismatch : {"error", "restart"}, optional
        What to do when the checkpoint belongs to another run (other
        configuration or data): raise a ValueError (default), or move it
        aside as ``<name>.stale-<time>.pt`` and start afresh (see
        :func:`foamlib.torchfiles.resume_checkpoint`).

    Returns
    -------
    TrainResult
        History and the best epoch.

    Raises
    ------
    ValueError
        If the data have the wrong shapes or dtypes, or the checkpoint belongs
        to another model, configuration or data set.
    ModelFileError
        If ``checkpoint_path`` exists but is not a foamlib checkpoint.

    Notes
    -----
    Each epoch visits the training slices in an order drawn from the run's own
    generator; a last batch of a single slice joins the one before it (batch
    normalisation needs more than one value per channel). Training inputs get
    Gaussian noise of ``config.noise_sigma``, clipped to [0, 1]. Validation
    uses the clean inputs, the model in evaluation mode, and Dice over all
    validation pixels pooled. The loss is the solid phase's (soft) Dice, as in
    the paper, but epochs are compared by the mean Dice of solid and pore:
    marking every pixel solid scores a high solid Dice on mostly solid labels,
    and a short run can sit there (:func:`check_learnt`). Early stopping ends
    training once the mean Dice has not improved for ``config.patience``
    epochs; the best weights are restored whether or not training stopped
    early.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    dev = pick_device(device)
    precision = pick_precision(precision, dev)
    x_train, y_train = _check_pair(train, "train")
    x_val, y_val = _check_pair(val, "val")
    data_shapes = {"train": list(x_train.shape), "val": list(x_val.shape)}
    fingerprint = data_fingerprint(x_train, y_train, x_val, y_val) if checkpoint_path is not None else None
    checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
    model_config = _model_config(model) if checkpoint_path is not None else getattr(model, "config", None)

    model.to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    scaler = grad_scaler(dev, precision)
    order_rng = streams.rng(config.seed, "unet", "order")
    noise_gen = streams.torch_generator(config.seed, "unet", "noise")
    best_val_mean_dice, best_epoch, best_state = -math.inf, 0, None
    run = TrainingRun(
        checkpoint_path, file_format=CHECKPOINT_FORMAT, kind="checkpoint", counter="epoch", version=FORMAT_VERSION,
        state={"model_state": model, "optimizer_state": optimizer,
               "rng": {"numpy_order": order_rng, "torch_noise": noise_gen}},
        identity={"config": dataclasses.asdict(config), "model_config": model_config, "data_shapes": data_shapes,
                  "data_fingerprint": fingerprint},
        device=dev,
    )  # fmt: skip
    checkpoint = run.resume(
        lambda c: _check_run(c, checkpoint_path, config, model_config, data_shapes, fingerprint), on_mismatch
    )
    if checkpoint is not None:
        best_val_mean_dice, best_epoch = checkpoint["best_val_mean_dice"], checkpoint["best_epoch"]
        best_state = {k: v.cpu() for k, v in checkpoint["best_model_state"].items()}
    history = run.history

    train_set = _BatchDataset(x_train, y_train)
    val_set = _BatchDataset(x_val, y_val)
    eval_batch_size = config.eval_batch_size or config.batch_size

    def patience_exhausted() -> bool:
        return config.patience is not None and len(history) - best_epoch >= config.patience

    stopped_early = False
    for epoch in range(len(history), config.epochs):
        if patience_exhausted():
            stopped_early = True
            break
        start = time.perf_counter()
        model.train()
        batches = _batches(len(x_train), config.batch_size, order_rng.permutation(len(x_train)))
        total_loss = 0.0
        bar = progress_bar(total=len(batches), desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not progress)
        for x, y in _loader(train_set, batches, config.num_workers, dev):
            if config.noise_sigma > 0:
                x = (x + config.noise_sigma * torch.randn(x.shape, generator=noise_gen)).clamp_(0.0, 1.0)
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast(dev, precision):
                out = model(x)
            loss = _loss(model, out.float(), y, config.loss)  # .float(): no-op in fp32
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total_loss += loss.item() * len(x)
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
            bar.update(1)
        train_seconds = time.perf_counter() - start

        val_loss, val_metrics = _validate(model, val_set, eval_batch_size, config.loss, config.num_workers, dev)
        entry = {
            "epoch": epoch + 1,
            "train_loss": total_loss / len(x_train),
            "val_loss": val_loss,
            "val_dice": val_metrics.dice,
            "val_pore_dice": val_metrics.pore_dice,
            "val_mean_dice": val_metrics.mean_dice,
            "val_iou": val_metrics.iou,
            "val_accuracy": val_metrics.accuracy,
            "learning_rate": config.learning_rate,
            "train_seconds": train_seconds,
            "seconds": time.perf_counter() - start,
        }
        history.append(entry)
        bar.set_postfix(loss=f"{entry['train_loss']:.4f}", val_mean_dice=f"{val_metrics.mean_dice:.4f}")
        bar.close()
        if val_metrics.mean_dice > best_val_mean_dice + config.min_delta or best_state is None:
            best_val_mean_dice, best_epoch, best_state = val_metrics.mean_dice, epoch + 1, _cpu_state(model)
        logger.info(
            "epoch %d/%d: train loss %.4f, val loss %.4f, val mean Dice %.4f (best %.4f at epoch %d), %.1f s",
            epoch + 1, config.epochs, entry["train_loss"], val_loss, val_metrics.mean_dice, best_val_mean_dice,
            best_epoch, entry["seconds"],
        )  # fmt: skip
        run.save(epoch + 1, best_val_mean_dice=best_val_mean_dice, best_epoch=best_epoch, best_model_state=best_state)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, dict(entry))

    if stopped_early:
        logger.info("early stopping after epoch %d; best val mean Dice %.4f at epoch %d", len(history),
                    best_val_mean_dice, best_epoch)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        history=run.rows(),
        best_epoch=best_epoch,
        best_val_mean_dice=float(best_val_mean_dice),
        epochs_run=len(history),
        seconds=run.seconds,
        stopped_early=stopped_early,
    )
