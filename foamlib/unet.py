"""The 2D U-Net that segments CT slices into solid and pore.

The architecture follows Ronneberger et al. (2015) with the options that Griem
et al. varied in their architecture search: the number of levels, the number of
convolutions per level, the kernel size and the pooling type. Their best network
(:data:`PAPER_BEST_CONFIG`) has 5 levels, 2 convolutions per level, kernel size
4 and average pooling.

Design choices
--------------
* **Every convolution keeps the spatial size** ("same" padding with zeros). For
  an even kernel size ``k`` the padding cannot be symmetric: ``k // 2 - 1``
  pixels go before and ``k // 2`` after, which moves the output by half a pixel.
  The convolutions of a block alternate between that padding and its mirror
  image, so in a block with an even number of convolutions (the paper's 2) the
  half-pixel shifts cancel instead of adding up level by level.
* **Decoder upsampling is bilinear x2 followed by a convolution** that halves
  the channels ("resize-convolution"), not a transposed convolution: transposed
  convolutions whose kernel overlaps unevenly produce checkerboard artefacts
  (Odena et al., 2016, *Deconvolution and Checkerboard Artifacts*), which would
  show up as a periodic pattern in the solid/pore boundary.
* **Any slice size works**: the input is padded (reflect, or replicate where
  the slice is too small to reflect) to a multiple of ``2 ** (levels - 1)``,
  split evenly between the two sides, and the output is cropped back.
* Convolution weights start from He-normal initialisation (suited to ReLU);
  use :func:`build_unet` to construct a model reproducibly from a seed.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import streams
from .checks import check_int, check_choice

__all__ = ["UNet", "PAPER_BEST_CONFIG", "build_unet", "count_parameters"]

logger = logging.getLogger(__name__)

#: Options of the best network in Griem et al. (read-only); ``UNet(**PAPER_BEST_CONFIG)``.
PAPER_BEST_CONFIG: Mapping[str, Any] = types.MappingProxyType(
    {"levels": 5, "convs_per_level": 2, "base_channels": 16, "kernel_size": 4, "pooling": "avg"}
)

_POOLINGS = ("avg", "max")
_NORMALIZATIONS = ("batch", "instance", "none")
_OUTPUTS = ("sigmoid", "logits")
_CONFIG_KEYS = (
    "levels",
    "convs_per_level",
    "base_channels",
    "kernel_size",
    "pooling",
    "in_channels",
    "out_channels",
    "normalization",
    "output",
)


class _SameConv2d(nn.Module):
    """Convolution with zero padding that keeps H and W, for odd and even kernels.

    For an even ``kernel_size`` the padding is ``k // 2 - 1`` before and
    ``k // 2`` after (as TensorFlow's ``padding="same"``); ``mirror=True`` swaps
    the two, which shifts the output by half a pixel the other way.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool, mirror: bool = False):
        super().__init__()
        total = kernel_size - 1
        before, after = total // 2, total - total // 2
        if mirror:
            before, after = after, before
        if before == after:
            self.pad = nn.Identity()
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=before, bias=bias)
        else:
            self.pad = nn.ZeroPad2d((before, after, before, after))
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=0, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` of shape (N, C_in, H, W) into (N, C_out, H, W)."""
        return self.conv(self.pad(x))


def _conv_unit(in_channels: int, out_channels: int, kernel_size: int, normalization: str, *, mirror: bool) -> list[nn.Module]:
    """Convolution, optional batch or instance normalisation, ReLU."""
    normalized = normalization != "none"
    layers: list[nn.Module] = [_SameConv2d(in_channels, out_channels, kernel_size, bias=not normalized, mirror=mirror)]
    if normalization == "batch":
        layers.append(nn.BatchNorm2d(out_channels))
    elif normalization == "instance":
        layers.append(nn.InstanceNorm2d(out_channels, affine=True))
    layers.append(nn.ReLU(inplace=True))
    return layers


def _conv_block(in_channels: int, out_channels: int, n_convs: int, kernel_size: int, normalization: str) -> nn.Sequential:
    """``n_convs`` conv units; even kernels alternate their padding side."""
    layers: list[nn.Module] = []
    for j in range(n_convs):
        layers += _conv_unit(in_channels if j == 0 else out_channels, out_channels, kernel_size, normalization, mirror=j % 2 == 1)
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net for binary (or multi-label) segmentation of 2D slices.

    Parameters
    ----------
    levels : int, optional
        Number of resolution levels, >= 1 (1 means no pooling at all). The
        image is pooled ``levels - 1`` times. Default 5.
    convs_per_level : int, optional
        Convolutions in each encoder and decoder block, >= 1. Default 2.
    base_channels : int, optional
        Feature channels at the first level, >= 1; they double at every level
        down. Default 16.
    kernel_size : int, optional
        Side of the square convolution kernels, >= 1; odd and even sizes keep
        the spatial size (see the module notes). Default 3; the paper's best
        network uses 4 (:data:`PAPER_BEST_CONFIG`).
    pooling : {"avg", "max"}, optional
        2x2 pooling between levels. Default ``"avg"``.
    in_channels : int, optional
        Channels of the input, >= 1. Default 1 (a grey-value slice).
    out_channels : int, optional
        Channels of the output, >= 1. Default 1 (probability of solid).
    normalization : {"batch", "instance", "none"}, optional
        Batch normalisation after every convolution, instance normalisation
        (with learned scale and shift; what image-to-image generators such as
        CycleGAN's use, see :mod:`foamlib.cyclegan`), or none. Default ``"batch"``.
    output : {"sigmoid", "logits"}, optional
        Whether :meth:`forward` returns probabilities in [0, 1] or raw logits.
        Default ``"sigmoid"``.

    Raises
    ------
    ValueError
        If an argument is out of range or not one of the allowed strings; the
        message names the argument and the bad value.

    Notes
    -----
    :meth:`forward` takes a float tensor of shape ``(N, C, H, W)`` with
    ``C == in_channels`` (grey values scaled to [0, 1]) and returns
    ``(N, out_channels, H, W)``. ``H`` and ``W`` are arbitrary.

    Examples
    --------
    >>> import torch
    >>> model = UNet(levels=3, base_channels=4)
    >>> model(torch.rand(2, 1, 37, 45)).shape
    torch.Size([2, 1, 37, 45])
    >>> UNet(**model.config).config == model.config
    True
    """

    def __init__(
        self,
        *,
        levels: int = 5,
        convs_per_level: int = 2,
        base_channels: int = 16,
        kernel_size: int = 3,
        pooling: str = "avg",
        in_channels: int = 1,
        out_channels: int = 1,
        normalization: str = "batch",
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        self.levels = check_int("levels", levels, low=1)
        self.convs_per_level = check_int("convs_per_level", convs_per_level, low=1)
        self.base_channels = check_int("base_channels", base_channels, low=1)
        self.kernel_size = check_int("kernel_size", kernel_size, low=1)
        self.pooling = check_choice("pooling", pooling, _POOLINGS)
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.out_channels = check_int("out_channels", out_channels, low=1)
        self.normalization = check_choice("normalization", normalization, _NORMALIZATIONS)
        self.output = check_choice("output", output, _OUTPUTS)

        channels = [base_channels * 2**i for i in range(levels)]
        self.encoders = nn.ModuleList(
            _conv_block(in_channels if i == 0 else channels[i - 1], channels[i], convs_per_level, kernel_size, normalization)
            for i in range(levels)
        )
        self.pool = nn.AvgPool2d(2) if pooling == "avg" else nn.MaxPool2d(2)
        # upsamplers[i] / decoders[i] bring level i + 1 back to level i.
        self.upsamplers = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                *_conv_unit(channels[i + 1], channels[i], kernel_size, normalization, mirror=False),
            )
            for i in range(levels - 1)
        )
        self.decoders = nn.ModuleList(
            _conv_block(2 * channels[i], channels[i], convs_per_level, kernel_size, normalization) for i in range(levels - 1)
        )
        self.head = nn.Conv2d(channels[0], out_channels, kernel_size=1)
        self._init_weights()

    def _init_weights(self) -> None:
        """He-normal convolution weights, zero biases (uses torch's global RNG)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments as a plain dict; ``UNet(**model.config)`` rebuilds the architecture."""
        return {
            "levels": self.levels,
            "convs_per_level": self.convs_per_level,
            "base_channels": self.base_channels,
            "kernel_size": self.kernel_size,
            "pooling": self.pooling,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "normalization": self.normalization,
            "output": self.output,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Segment a batch of slices.

        Parameters
        ----------
        x : torch.Tensor
            Float tensor of shape ``(N, in_channels, H, W)``, any ``H`` and ``W``.

        Returns
        -------
        torch.Tensor
            ``(N, out_channels, H, W)``: probabilities in [0, 1] if
            ``output == "sigmoid"``, logits otherwise.

        Raises
        ------
        ValueError
            If ``x`` is not 4-dimensional with ``in_channels`` channels.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        height, width = x.shape[-2:]
        multiple = 2 ** (self.levels - 1)
        pad_h, pad_w = -height % multiple, -width % multiple
        top, left = pad_h // 2, pad_w // 2
        if pad_h or pad_w:
            pad = (left, pad_w - left, top, pad_h - top)
            mode = "reflect" if max(pad[:2]) < width and max(pad[2:]) < height else "replicate"
            x = F.pad(x, pad, mode=mode)

        skips = []
        for i, encoder in enumerate(self.encoders):
            if i > 0:
                x = self.pool(x)
            x = encoder(x)
            skips.append(x)
        x = skips.pop()
        for i in reversed(range(self.levels - 1)):
            x = self.upsamplers[i](x)
            x = self.decoders[i](torch.cat([skips[i], x], dim=1))
        x = self.head(x)

        if pad_h or pad_w:
            x = x[..., top : top + height, left : left + width]
        return torch.sigmoid(x) if self.output == "sigmoid" else x


def build_unet(config: Mapping[str, Any], seed: int) -> UNet:
    """Construct a :class:`UNet` whose initial weights depend only on ``seed``.

    Parameters
    ----------
    config : mapping
        Keyword arguments of :class:`UNet` (for instance ``model.config`` or
        :data:`PAPER_BEST_CONFIG`); missing keys take the defaults.
    seed : int
        Seed (>= 0) of the weight initialisation: the weights draw from the
        named stream ``foamlib.streams.seed_for(seed, "unet", "init")``.

    Returns
    -------
    UNet
        A new model on the CPU, in training mode.

    Raises
    ------
    ValueError
        If ``config`` has keys that :class:`UNet` does not know, or bad values.

    Notes
    -----
    Parameter initialisation in torch draws from the global RNG; this function
    seeds it inside :func:`torch.random.fork_rng`, so the caller's global RNG
    state is the same afterwards as before.
    """
    known = set(_CONFIG_KEYS)
    unknown = sorted(set(config) - known)
    if unknown:
        raise ValueError(f"unknown UNet option(s) {unknown}; known options are {sorted(known)}")
    seed = check_int("seed", seed, low=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(streams.seed_for(seed, "unet", "init"))
        return UNet(**config)


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of parameters of ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        Any module.
    trainable_only : bool, optional
        Count only parameters with ``requires_grad`` (default) or all of them.

    Returns
    -------
    int
        The number of scalar parameters (buffers such as batch-norm running
        statistics are not counted).
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
