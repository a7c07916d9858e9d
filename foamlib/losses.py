"""Loss and metrics for binary segmentation (1 = solid, 0 = pore).

All functions take tensors of shape ``(N, 1, H, W)`` (any ``(N, ...)`` shape
works: everything after the batch axis is one image): ``pred`` holds
probabilities in [0, 1], ``target`` the labels as 0/1 (float or bool).

* :func:`dice_loss` is the soft Dice loss of Milletari et al. (2016) on the
  probabilities themselves, differentiable, for training.
* :func:`dice_coefficient`, :func:`iou` and :func:`accuracy` first binarise the
  prediction (``pred >= threshold``, so a probability of exactly 0.5 counts as
  solid) and are for evaluation. Where an image has neither predicted nor true
  solid, its Dice and IoU are 1 (a perfect, empty segmentation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["dice_loss", "dice_coefficient", "iou", "accuracy", "confusion_counts", "ConfusionCounts"]

_REDUCTIONS = ("mean", "none", "pooled")


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if pred.ndim < 2:
        raise ValueError(f"expected tensors of shape (N, 1, H, W), got {tuple(pred.shape)}")


def dice_loss(pred: torch.Tensor, target: torch.Tensor, *, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss, averaged over the batch.

    For every image ``1 - (2 sum(p t) + s) / (sum(p^2) + sum(t^2) + s)`` with
    ``p`` the predicted probabilities, ``t`` the labels and ``s = smooth``
    (Milletari et al. 2016, V-Net, eq. 1, with squared terms in the
    denominator), then the mean over the ``N`` images.

    Parameters
    ----------
    pred : torch.Tensor
        Probabilities, shape ``(N, 1, H, W)``.
    target : torch.Tensor
        Labels 0/1 of the same shape.
    smooth : float, optional
        Added to numerator and denominator; keeps the loss defined (and 0) for
        images without solid. Default 1.

    Returns
    -------
    torch.Tensor
        Scalar loss in [0, 1]; 0 for a perfect binary prediction.

    Raises
    ------
    ValueError
        If the shapes differ or ``smooth`` is negative.
    """
    _check_pair(pred, target)
    if smooth < 0:
        raise ValueError(f"smooth must be >= 0, got {smooth!r}")
    p = pred.flatten(1)
    t = target.flatten(1).to(p.dtype)
    numerator = 2 * (p * t).sum(dim=1) + smooth
    denominator = (p * p).sum(dim=1) + (t * t).sum(dim=1) + smooth
    return (1 - numerator / denominator).mean()


@dataclass(frozen=True)
class ConfusionCounts:
    """Pixel counts of a binarised prediction against labels.

    Each field is a float64 tensor of shape ``(N,)`` (one value per image).
    """

    tp: torch.Tensor
    fp: torch.Tensor
    fn: torch.Tensor
    tn: torch.Tensor


def confusion_counts(pred: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5) -> ConfusionCounts:
    """True/false positives/negatives per image, with solid as the positive class.

    Parameters
    ----------
    pred : torch.Tensor
        Probabilities, shape ``(N, 1, H, W)``; binarised as ``pred >= threshold``.
    target : torch.Tensor
        Labels 0/1 of the same shape (binarised as ``target >= 0.5``).
    threshold : float, optional
        Default 0.5.

    Returns
    -------
    ConfusionCounts
        Counts per image.
    """
    _check_pair(pred, target)
    p = (pred >= threshold).flatten(1)
    t = (target >= 0.5).flatten(1) if target.dtype != torch.bool else target.flatten(1)
    tp = (p & t).sum(dim=1, dtype=torch.float64)
    fp = (p & ~t).sum(dim=1, dtype=torch.float64)
    fn = (~p & t).sum(dim=1, dtype=torch.float64)
    tn = (~p & ~t).sum(dim=1, dtype=torch.float64)
    return ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=tn)


def _reduce(
    counts: ConfusionCounts, reduction: str, formula: Callable[[ConfusionCounts], torch.Tensor]
) -> torch.Tensor:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, _REDUCTIONS))}, got {reduction!r}")
    if reduction == "pooled":
        counts = ConfusionCounts(*(c.sum().reshape(1) for c in (counts.tp, counts.fp, counts.fn, counts.tn)))
    values = formula(counts)
    if reduction == "none":
        return values
    return values.mean() if reduction == "mean" else values[0]


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` with 1 where ``den == 0`` (nothing predicted, nothing true)."""
    return torch.where(den > 0, num / den.clamp(min=1), torch.ones_like(num))


def _dice_formula(c: ConfusionCounts) -> torch.Tensor:
    return _safe_ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn)


def _iou_formula(c: ConfusionCounts) -> torch.Tensor:
    return _safe_ratio(c.tp, c.tp + c.fp + c.fn)


def _accuracy_formula(c: ConfusionCounts) -> torch.Tensor:
    return (c.tp + c.tn) / (c.tp + c.fp + c.fn + c.tn)


#: The Parameters and Returns sections that :func:`dice_coefficient`, :func:`iou` and :func:`accuracy` share.
_METRIC_SECTIONS = """

    Parameters
    ----------
    pred : torch.Tensor
        Probabilities, shape ``(N, 1, H, W)``; binarised as ``pred >= threshold``.
    target : torch.Tensor
        Labels 0/1 (float or bool) of the same shape.
    threshold : float, optional
        Default 0.5.
    reduction : {"mean", "none", "pooled"}, optional
        ``"mean"`` (default): the metric of every image, averaged over images;
        ``"none"``: the per-image values, shape ``(N,)``; ``"pooled"``: the
        metric of all pixels of the batch counted together (as for one volume).

    Returns
    -------
    torch.Tensor
        float64, a scalar or shape ``(N,)``.
    """


def _metric_docstring(metric: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Append the shared Parameters and Returns sections to a metric's one-line docstring."""
    if metric.__doc__ is not None:  # None under python -OO
        metric.__doc__ += _METRIC_SECTIONS
    return metric


@_metric_docstring
def dice_coefficient(pred: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5, reduction: str = "mean") -> torch.Tensor:
    """Dice coefficient ``2 TP / (2 TP + FP + FN)`` of the binarised prediction."""
    return _reduce(confusion_counts(pred, target, threshold=threshold), reduction, _dice_formula)


@_metric_docstring
def iou(pred: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5, reduction: str = "mean") -> torch.Tensor:
    """Intersection over union ``TP / (TP + FP + FN)`` (Jaccard index) of the binarised prediction."""
    return _reduce(confusion_counts(pred, target, threshold=threshold), reduction, _iou_formula)


@_metric_docstring
def accuracy(pred: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5, reduction: str = "mean") -> torch.Tensor:
    """Fraction of pixels classified correctly, ``(TP + TN) / (TP + FP + FN + TN)``."""
    return _reduce(confusion_counts(pred, target, threshold=threshold), reduction, _accuracy_formula)
