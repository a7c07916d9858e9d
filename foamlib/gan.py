"""A GAN that generates binary 2D slices of a foam.

Step 2 of Griem et al. trains a generative adversarial network (GAN) on 2D
binary slices of the segmented real foam (:func:`foamlib.patches.extract_patches`
of the step-1 segmentation) and uses its samples as the binary structures of
the second training set. This module holds the networks, their training and
their files; :mod:`foamlib.patches` measures whether the samples look real.

Formulation
-----------
* **SN-GAN with the hinge loss** (Miyato et al., 2018, *Spectral
  Normalization for Generative Adversarial Networks*; the hinge loss after Lim
  & Ye, 2017). Every weight of the discriminator ``D`` is divided by its
  largest singular value (one power iteration per forward pass,
  :func:`torch.nn.utils.parametrizations.spectral_norm`), which bounds ``D``'s
  Lipschitz constant: the aim of the gradient penalty of WGAN-GP (Gulrajani et
  al., 2017), at the cost of one matrix-vector product per layer instead of a
  second (double) backward pass through ``D`` at every step, which would
  roughly halve the steps that fit into the few CPU minutes budgeted here.
  Adam with lr 2e-4 and betas (0.5, 0.999) and one ``D`` step per ``G`` step
  is Miyato et al.'s setting "C". Losses: ``L_D = E[relu(1 - D(x))] +
  E[relu(1 + D(G(z)))]``, ``L_G = -E[D(G(z))]``.
* **Generator**: DCGAN layout (Radford et al., 2016): a linear layer maps the
  latent vector ``z ~ N(0, I)`` to a 4 x 4 feature map, then blocks of
  nearest-neighbour 2x upsampling + 3x3 convolution + batch normalisation +
  ReLU double the size up to ``image_size``; a last 3x3 convolution and a
  sigmoid give the probability of solid. Upsampling + convolution instead of
  transposed convolutions avoids checkerboard artefacts (Odena et al., 2016),
  which in a binary foam image would show up as periodic dots along the thin
  walls. Channels halve at every doubling, from at most ``8 * base_channels``.
* **Discriminator**: a 3x3 convolution, then 4x4 stride-2 convolutions that
  halve the size and double the channels (at most ``8 * base_channels``) down
  to 4 x 4, LeakyReLU(0.2), a minibatch standard-deviation feature (below)
  and a linear layer to one unbounded score; every layer spectrally
  normalised, no batch normalisation (Miyato et al.).

Binary data and soft outputs
----------------------------
The real patches hold only 0 and 1 while the generator's sigmoid gives values
in between, so a discriminator can tell them apart by the grey values alone,
whatever the structure; the generator then spends its updates on saturating
its sigmoid (where its gradients vanish) instead of on the foam. Here ``D``
sees the generated images **binarised, with straight-through gradients**
(Bengio et al., 2013, *Estimating or propagating gradients through stochastic
neurons*): in the forward pass every pixel is drawn from a Bernoulli
distribution with the generator's probability (``GanConfig.binarize =
"bernoulli"``); the backward pass hands the gradient with respect to that
binary image to the probabilities unchanged ("this pixel should be more
solid"). Real and fake inputs of ``D`` are then both binary and differ only in
structure. Trials on 64-pixel patches of the real step-1 segmentation
(2000 patches, 1000 steps):

* soft fakes (``"none"``) with instance noise 0.1 or 0.3: ``D`` won outright
  (hinge loss near 0) within a few hundred steps; samples were streaks or one
  repeated pattern;
* thresholded fakes (``"threshold"``, forward ``probability >= 0.5``): losses
  stayed balanced and a cell structure appeared, but with no reason to leave
  0.5 most pixels stayed near it (about 80 % between 0.1 and 0.9), so the
  binary output flipped with tiny changes of the weights or of the
  batch-norm statistics (the porosity of one generator moved from 0.84 to
  0.90 between two estimates of them);
* Bernoulli draws: an uncertain pixel becomes speckle that ``D`` rejects, so
  the generator learns confident probabilities (15-20 % of pixels between 0.1
  and 0.9), and :func:`generate`'s threshold at 0.5 gives the most likely
  image. This matched porosity and pore sizes best.

A fixed Gaussian blur of both inputs was not chosen: it lets the generator
hide soft, half-grey walls that vanish at the threshold.

Both inputs of ``D`` also get **instance noise** (Sønderby et al., 2017,
*Amortised MAP inference for image super-resolution*; Arjovsky & Bottou,
2017): i.i.d. Gaussian noise of standard deviation
``GanConfig.instance_noise`` on every pixel, for the whole run. It keeps
``D`` from winning outright: with Bernoulli fakes and noise 0.1, two of three
seeds ended with a hinge loss near 0 and samples of isolated blobs or a
porosity near 0.5; with 0.3 (the default) four seeds out of four gave
networks of wall segments with the right porosity to within a few percentage
points, though after 1000 steps the walls of some seeds are still broken
rather than closed cells.

Mode collapse and oscillation
-----------------------------
A collapsed generator makes nearly the same image from every ``z``. ``D``
gets a **minibatch standard-deviation** feature (Karras et al., 2018,
*Progressive Growing of GANs*): the mean spread of its last features across
the batch, appended before the score layer, so a batch of too-similar fakes is
easy to reject. Collapse is also watched: :func:`train_gan` logs the spread of
the porosity across each fake batch next to the real batch's, and
:func:`foamlib.patches.compare_patch_sets` reports ``std_ratio`` and the KS
statistic of per-patch porosity and pore sizes of generated against real
patches. GAN training oscillates (the porosity of the fake batches swings by
several percentage points from step to step), so the generator that
:func:`train_gan` returns, and that draws the sample grids, is an
**exponential moving average** of the trained generator's weights (Yazıcı et
al., 2019, *The Unusual Effectiveness of Averaging in GAN Training*; decay
``GanConfig.ema_decay``), whose batch-norm statistics are estimated afresh
from 32 batches of fixed latent vectors (the running statistics of training
belong to other weights, and with binary outputs even small mismatches flip
pixels).

Reproducibility and files
-------------------------
Initial weights come from :func:`build_gan` (its own seeds derived from
``GanConfig.seed``); batches, latent vectors and instance noise come from
generators owned by the run (named streams of :mod:`foamlib.streams`), so global
RNG state is neither read nor changed. On the CPU with a fixed thread count
the same data and configuration give the same weights, and a run resumed from
its checkpoint gives the same weights as one never interrupted. Checkpoints
and generator files are single atomic :func:`torch.save` files of tensors and
plain values (:mod:`foamlib.torchfiles`), read with ``weights_only=True``;
checkpoints and ``history.csv`` are kept by :class:`foamlib.trainloop.TrainingRun`.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from . import streams
from .checks import check_int, check_real
from .device import pick_device
from .io import write_image_grid
from .torchfiles import ModelFileError, data_fingerprint, load_module_file, save_module_file, save_torch_file
from .trainloop import TrainingRun, check_config, due

__all__ = [
    "GanConfig",
    "GanResult",
    "Generator",
    "Discriminator",
    "ModelFileError",
    "build_gan",
    "train_gan",
    "generate",
    "check_not_collapsed",
    "save_generator",
    "load_generator",
]

logger = logging.getLogger(__name__)

GENERATOR_FORMAT = "foamlib-gan-generator"
CHECKPOINT_FORMAT = "foamlib-gan-checkpoint"
FORMAT_VERSION = 1

#: GanConfig fields that may differ between a checkpoint and the run that resumes it.
_RESUMABLE_CHANGES = frozenset({"steps", "checkpoint_every", "sample_every"})
_BINARIZE = ("bernoulli", "threshold", "none")
#: Number of fixed latent vectors in the sample grids.
_N_SAMPLES = 32
#: Channels stop doubling at this multiple of ``base_channels``.
_MAX_MULTIPLIER = 8

# Random streams of a run: foamlib.streams.seed_for(config.seed, "gan", name).
_STREAM_GENERATOR_INIT = "generator-init"
_STREAM_DISCRIMINATOR_INIT = "discriminator-init"
_STREAM_BATCHES = "batches"
_STREAM_LATENT = "latent"
_STREAM_NOISE = "noise"
_STREAM_SAMPLES = "samples"
_STREAM_BATCH_STATS = "batch-stats"
#: Batches (of GanConfig.batch_size) that estimate the batch-norm statistics of the returned generator.
_STAT_BATCHES = 32


def _check_image_size(name: str, value: Any) -> int:
    value = check_int(name, value, low=16)
    if value & (value - 1):
        raise ValueError(f"{name} must be a power of 2 >= 16, got {value!r}")
    return value


@dataclass(frozen=True)
class GanConfig:
    """Settings of one GAN training run.

    Parameters
    ----------
    image_size : int
        Side of the square images in pixels, a power of 2 >= 16. The training
        patches must have this size.
    latent_dim : int
        Length of the latent vector ``z``, >= 1.
    base_channels : int
        Width of the networks, >= 1: channels of the generator's last block
        and the discriminator's first layer; they double (up to 8 times this)
        at every halving of the resolution. Cost grows with its square.
    steps : int
        Generator updates in total, >= 1 (a resumed run continues to this).
    batch_size : int
        Real and fake images per discriminator step, >= 2 (batch
        normalisation needs more than one).
    lr_g, lr_d : float
        Adam learning rates of generator and discriminator, > 0.
    beta1, beta2 : float
        Adam betas, in [0, 1).
    d_steps : int
        Discriminator updates per generator update, >= 1.
    binarize : {"bernoulli", "threshold", "none"}
        What the discriminator sees of a generated image (see the module
        notes): a binary image drawn pixel by pixel from the generator's
        probabilities (``"bernoulli"``, default) or the probabilities
        thresholded at 0.5 (``"threshold"``), both with straight-through
        gradients; or the probabilities themselves (``"none"``).
    instance_noise : float
        Standard deviation of the Gaussian noise added to every pixel of both
        discriminator inputs (see the module notes), >= 0; 0 switches it off.
    minibatch_std : bool
        Give the discriminator a minibatch standard-deviation feature
        (:class:`Discriminator`). Default True.
    ema_decay : float
        Decay of the exponential moving average of the generator's weights
        that :func:`train_gan` returns, in [0, 1); 0 returns the trained
        weights themselves. The default 0.99 averages over about the last 100
        steps.
    checkpoint_every : int or None
        Write ``checkpoint.pt`` and ``history.csv`` every this many steps
        (and always at the end); None: only at the end. Only used with a
        ``run_dir``.
    sample_every : int or None
        Write a grid of samples from fixed latent vectors every this many
        steps (and at the end); None: only at the end.
    seed : int
        Seed of the initial weights, the batches, the latent vectors and the
        noise, >= 0.

    Raises
    ------
    ValueError
        If a value is out of range.

    Notes
    -----
    The defaults were chosen on 2000 64-pixel patches of the real step-1
    segmentation of ``foam86`` (porosity 0.857): on one CPU core about
    0.13-0.15 s per step, so 1000 steps take 2-2.5 minutes, after which
    mean porosity, porosity spread and 2D pore sizes of the samples are close to
    the real patches' (see :func:`foamlib.patches.compare_patch_sets`).
    Longer runs (``steps``) close the cell walls better: on ``foam82``'s
    step-1 segmentation (11.6 separate pores per 64-pixel patch) samples
    after 1200 steps were networks of open, curved wall segments with 5.1
    separate pores per patch; after 2000 steps closed polygonal cells had
    formed, and after 3000 steps there were 7.3 per patch, at the real
    porosity to 0.2 percentage points. A smoke-test
    profile that runs in about 15 s: ``image_size=32, base_channels=8,
    steps=600``.
    """

    image_size: int = 64
    latent_dim: int = 64
    base_channels: int = 16
    steps: int = 1000
    batch_size: int = 16
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    d_steps: int = 1
    binarize: str = "bernoulli"
    instance_noise: float = 0.3
    minibatch_std: bool = True
    ema_decay: float = 0.99
    checkpoint_every: int | None = 250
    sample_every: int | None = 250
    seed: int = 0

    def __post_init__(self) -> None:
        def positive_int(name: str, value: Any, minimum: int) -> None:
            object.__setattr__(self, name, check_int(f"GanConfig.{name}", value, low=minimum))

        def real(name: str, value: Any, **bounds: Any) -> None:
            object.__setattr__(self, name, check_real(f"GanConfig.{name}", value, **bounds))

        positive_int("image_size", self.image_size, 16)
        if self.image_size & (self.image_size - 1):
            raise ValueError(f"GanConfig.image_size must be a power of 2 >= 16, got {self.image_size!r}")
        positive_int("latent_dim", self.latent_dim, 1)
        positive_int("base_channels", self.base_channels, 1)
        positive_int("steps", self.steps, 1)
        positive_int("batch_size", self.batch_size, 2)
        real("lr_g", self.lr_g, low=0.0, low_open=True)
        real("lr_d", self.lr_d, low=0.0, low_open=True)
        real("beta1", self.beta1, low=0.0, high=1.0, high_open=True)
        real("beta2", self.beta2, low=0.0, high=1.0, high_open=True)
        positive_int("d_steps", self.d_steps, 1)
        if self.binarize not in _BINARIZE:
            raise ValueError(f"GanConfig.binarize must be one of {', '.join(map(repr, _BINARIZE))}, got {self.binarize!r}")
        if not isinstance(self.minibatch_std, bool):
            raise ValueError(f"GanConfig.minibatch_std must be True or False, got {self.minibatch_std!r}")
        real("instance_noise", self.instance_noise, low=0.0)
        real("ema_decay", self.ema_decay, low=0.0, high=1.0, high_open=True)
        if self.checkpoint_every is not None:
            positive_int("checkpoint_every", self.checkpoint_every, 1)
        if self.sample_every is not None:
            positive_int("sample_every", self.sample_every, 1)
        positive_int("seed", self.seed, 0)


@dataclass(frozen=True)
class GanResult:
    """What :func:`train_gan` reports.

    Attributes
    ----------
    history : list of dict
        One entry per step, including steps run before a resume; keys as the
        columns of ``history.csv`` (see :func:`train_gan`).
    steps_run : int
        Generator updates in total, resumed ones included.
    seconds : float
        Training time summed over all steps (also across resumes).
    generator : Generator
        The generator to use: the moving average of the trained weights
        (``GanConfig.ema_decay``) with batch-norm statistics estimated for
        those weights, in evaluation mode.
    """

    history: list[dict[str, Any]]
    steps_run: int
    seconds: float
    generator: Generator


# --------------------------------------------------------------------------- networks


def _channels(base_channels: int, halvings: int) -> int:
    """Channels at a resolution ``2 ** halvings`` times below the image size."""
    return base_channels * min(2**halvings, _MAX_MULTIPLIER)


class Generator(nn.Module):
    """DCGAN-style generator of binary-image probabilities (see the module notes).

    Parameters
    ----------
    latent_dim : int, optional
        Length of the latent vector, >= 1. Default 64.
    image_size : int, optional
        Side of the output images, a power of 2 >= 16. Default 64.
    base_channels : int, optional
        Channels of the last (full-resolution) block, >= 1; they double at
        every halving of the resolution, up to ``8 * base_channels``.
        Default 16.

    Raises
    ------
    ValueError
        If an argument is out of range.

    Notes
    -----
    :meth:`forward` maps ``(N, latent_dim)`` float32 to ``(N, 1, image_size,
    image_size)`` probabilities of solid in [0, 1]. Build with
    :func:`build_gan` for reproducible initial weights.

    Examples
    --------
    >>> g = Generator(latent_dim=8, image_size=16, base_channels=4)
    >>> g(torch.randn(2, 8)).shape
    torch.Size([2, 1, 16, 16])
    >>> Generator(**g.config).config == g.config
    True
    """

    def __init__(self, latent_dim: int = 64, image_size: int = 64, base_channels: int = 16) -> None:
        super().__init__()
        self.latent_dim = check_int("latent_dim", latent_dim, low=1)
        self.image_size = _check_image_size("image_size", image_size)
        self.base_channels = check_int("base_channels", base_channels, low=1)
        n_up = int(math.log2(image_size)) - 2  # 4 x 4 -> image_size
        start = _channels(base_channels, n_up)
        self.project = nn.Linear(latent_dim, start * 16, bias=False)
        self.project_norm = nn.BatchNorm2d(start)
        blocks = []
        channels = start
        for level in range(n_up - 1, -1, -1):
            out = _channels(base_channels, level)
            blocks += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(channels, out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            channels = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(channels, 1, kernel_size=3, padding=1)
        self._start = start

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments; ``Generator(**g.config)`` rebuilds the architecture."""
        return {"latent_dim": self.latent_dim, "image_size": self.image_size, "base_channels": self.base_channels}

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Probabilities of solid, ``(N, 1, image_size, image_size)``, from latent vectors ``(N, latent_dim)``."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"expected latent vectors of shape (N, {self.latent_dim}), got {tuple(z.shape)}")
        x = self.project(z).view(z.shape[0], self._start, 4, 4)
        x = F.relu(self.project_norm(x))
        return torch.sigmoid(self.head(self.blocks(x)))


class Discriminator(nn.Module):
    """Spectrally normalised convolutional discriminator (see the module notes).

    Parameters
    ----------
    image_size : int, optional
        Side of the input images, a power of 2 >= 16. Default 64.
    base_channels : int, optional
        Channels of the first layer, >= 1; they double at every halving of
        the resolution, up to ``8 * base_channels``. Default 16.
    minibatch_std : bool, optional
        Append the mean standard deviation of the last features across the
        batch as one more feature map before the score layer (Karras et al.,
        2018), so that the discriminator can see a batch whose images are too
        alike, a direct signal against mode collapse. Default True.

    Raises
    ------
    ValueError
        If an argument is out of range.


    Notes
    -----
    :meth:`forward` maps ``(N, 1, image_size, image_size)`` float32 to
    ``(N,)`` unbounded scores (high = real).
    """

    def __init__(self, image_size: int = 64, base_channels: int = 16, minibatch_std: bool = True) -> None:
        super().__init__()
        self.image_size = _check_image_size("image_size", image_size)
        self.base_channels = check_int("base_channels", base_channels, low=1)
        if not isinstance(minibatch_std, bool):
            raise ValueError(f"minibatch_std must be True or False, got {minibatch_std!r}")
        self.minibatch_std = minibatch_std
        n_down = int(math.log2(image_size)) - 2  # image_size -> 4 x 4
        layers: list[nn.Module] = [
            spectral_norm(nn.Conv2d(1, base_channels, kernel_size=3, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        channels = base_channels
        for level in range(1, n_down + 1):
            out = _channels(base_channels, level)
            layers += [
                spectral_norm(nn.Conv2d(channels, out, kernel_size=4, stride=2, padding=1)),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.score = spectral_norm(nn.Linear((channels + int(minibatch_std)) * 16, 1))

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments; ``Discriminator(**d.config)`` rebuilds the architecture."""
        return {"image_size": self.image_size, "base_channels": self.base_channels, "minibatch_std": self.minibatch_std}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores ``(N,)`` of images ``(N, 1, image_size, image_size)``.

        With ``minibatch_std`` the score of an image depends on the others in
        the batch (through the mean feature spread); a batch of one gets spread 0.
        """
        if x.ndim != 4 or x.shape[1:] != (1, self.image_size, self.image_size):
            raise ValueError(f"expected images of shape (N, 1, {self.image_size}, {self.image_size}), got {tuple(x.shape)}")
        features = self.features(x)
        if self.minibatch_std:
            if len(features) > 1:
                spread = features.std(dim=0, unbiased=False).mean()
            else:
                spread = features.new_zeros(())
            features = torch.cat([features, spread.expand(len(features), 1, 4, 4)], dim=1)
        return self.score(features.flatten(1))[:, 0]


def build_gan(config: GanConfig) -> tuple[Generator, Discriminator]:
    """Construct generator and discriminator whose initial weights depend only on ``config``.

    Parameters
    ----------
    config : GanConfig
        Uses ``latent_dim``, ``image_size``, ``base_channels`` and ``seed``
        (each network gets its own seed derived from it).

    Returns
    -------
    (Generator, Discriminator)
        New models on the CPU, in training mode.

    Notes
    -----
    Parameter initialisation (and the spectral-norm vectors) draw from torch's
    global RNG; it is seeded inside :func:`torch.random.fork_rng`, so the
    caller's global RNG state is the same afterwards as before.
    """
    if not isinstance(config, GanConfig):
        raise ValueError(f"config must be a GanConfig, got {type(config).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(streams.seed_for(config.seed, "gan", _STREAM_GENERATOR_INIT))
        generator = Generator(config.latent_dim, config.image_size, config.base_channels)
        torch.manual_seed(streams.seed_for(config.seed, "gan", _STREAM_DISCRIMINATOR_INIT))
        discriminator = Discriminator(config.image_size, config.base_channels, config.minibatch_std)
    return generator, discriminator


# --------------------------------------------------------------------------- files


def save_generator(path: str | os.PathLike, generator: Generator, *, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a generator to one ``.pt`` file, atomically.

    Parameters
    ----------
    path : path-like
        Destination; missing parent folders are created, an existing file is
        replaced.
    generator : Generator
        Its ``config`` and weights (batch-norm statistics included) are stored.
    metadata : mapping, optional
        Plain values to keep with it (training data, config, statistics);
        NumPy values and paths are converted (:func:`foamlib.torchfiles.plain`).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If ``generator`` is not a :class:`Generator`.
    TypeError
        If ``metadata`` holds something other than plain values.

    Notes
    -----
    The file holds ``{"format": "foamlib-gan-generator", "format_version": 1,
    "generator_config": ..., "state_dict": ..., "metadata": ...,
    "foamlib_version": ...}``, weights on the CPU.
    """
    if not isinstance(generator, Generator):
        raise ValueError(f"generator must be a foamlib.gan.Generator, got {type(generator).__name__}")
    path = save_module_file(path, generator, file_format=GENERATOR_FORMAT, config_key="generator_config",
                            config=generator.config, metadata=metadata, version=FORMAT_VERSION)  # fmt: skip
    logger.info("saved generator to %s", path)
    return path


def load_generator(path: str | os.PathLike, *, device: str | torch.device | None = None) -> tuple[Generator, dict[str, Any]]:
    """Read a generator written by :func:`save_generator`.

    Parameters
    ----------
    path : path-like
        The ``.pt`` file.
    device : str, torch.device or None, optional
        Where to put the generator (see :func:`foamlib.device.pick_device`).

    Returns
    -------
    (Generator, dict)
        The generator in evaluation mode, and the metadata (with
        ``foamlib_version`` of the writer added).

    Raises
    ------
    ModelFileError
        (a :class:`ValueError`) if the file is missing, is not a torch file,
        is not a foamlib GAN generator file, or its generator cannot be
        rebuilt; the message names the file and the problem.
    """
    dev = pick_device(device)
    generator, metadata = load_module_file(
        path, file_format=GENERATOR_FORMAT, config_key="generator_config", build=Generator,
        kind="GAN generator", what="generator", version=FORMAT_VERSION, device=dev,
    )
    return generator.to(dev).eval(), metadata


# --------------------------------------------------------------------------- sampling


def _latent(n: int, latent_dim: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(n, latent_dim, generator=generator)


def _run_generator(generator: Generator, z: torch.Tensor, device: torch.device, batch_size: int) -> np.ndarray:
    """Probabilities ``(n, S, S)`` float32 of ``generator`` in eval mode; its mode is restored."""
    was_training = generator.training
    generator.to(device).eval()
    out = np.empty((len(z), generator.image_size, generator.image_size), dtype=np.float32)
    try:
        with torch.inference_mode():
            for start in range(0, len(z), batch_size):
                chunk = z[start : start + batch_size].to(device)
                out[start : start + len(chunk)] = generator(chunk)[:, 0].float().cpu().numpy()
    finally:
        generator.train(was_training)
    return out


def check_not_collapsed(images: np.ndarray) -> None:
    """Refuse generated binary images that hold one phase only (the GAN collapsed).

    Parameters
    ----------
    images : (N, H, W) ndarray of bool
        Generated images, True = solid (:func:`generate` with a threshold).

    Raises
    ------
    ValueError
        If every pixel of every image is solid, or every pixel is pore: such a
        set has no structure for the rest of step 2 to learn from. The message
        says what to change.
    """
    images = np.asarray(images)
    if images.size == 0:
        raise ValueError("no generated images to check")
    solid = bool(images.any())
    if solid and images.all() or not solid:
        phase = "solid" if solid else "pore"
        raise ValueError(
            f"the GAN collapsed: all {images.shape[0]} generated images are {phase} everywhere, so step 2 has no "
            "structure to learn from; train it for more steps (gan_steps) or check the step-1 segmentation "
            "that it learns from"
        )


def generate(
    generator: Generator,
    n: int,
    *,
    seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    threshold: float | None = 0.5,
) -> np.ndarray:
    """Sample binary images (or probabilities) from a generator.

    Parameters
    ----------
    generator : Generator
        Moved to ``device`` and run in evaluation mode (batch normalisation
        with its running statistics); its mode is restored.
    n : int
        Number of images, >= 1.
    seed : int, optional
        Seed of the latent vectors, >= 0. Default 0. The result does not
        depend on ``batch_size``; the global RNG is not used.
    batch_size : int, optional
        Images per forward pass, >= 1. Default 64.
    device : str, torch.device or None, optional
        See :func:`foamlib.device.pick_device`.
    threshold : float or None, optional
        Probability at and above which a pixel is solid, in [0, 1]. Default
        0.5. None returns the probabilities.

    Returns
    -------
    numpy.ndarray
        ``(n, S, S)`` with ``S = generator.image_size``: bool (True = solid),
        or float32 probabilities in [0, 1] if ``threshold`` is None.

    Raises
    ------
    ValueError
        If an argument is out of range.
    """
    if not isinstance(generator, Generator):
        raise ValueError(f"generator must be a foamlib.gan.Generator, got {type(generator).__name__}")
    n = check_int("n", n, low=1)
    seed = check_int("seed", seed, low=0)
    batch_size = check_int("batch_size", batch_size, low=1)
    if threshold is not None:
        threshold = check_real("threshold", threshold, low=0.0, high=1.0)
    probs = _run_generator(generator, _latent(n, generator.latent_dim, streams.torch_generator(seed, "gan", "generate")), pick_device(device), batch_size)
    return probs if threshold is None else probs >= threshold


# --------------------------------------------------------------------------- training


def _check_patches(patches: Any, image_size: int) -> np.ndarray:
    arr = np.asarray(patches)
    if arr.ndim != 3 or arr.shape[0] == 0:
        raise ValueError(f"patches must be a non-empty (N, S, S) stack, got shape {arr.shape}")
    if arr.shape[1:] != (image_size, image_size):
        raise ValueError(
            f"patches must be {image_size} x {image_size} (GanConfig.image_size), got {arr.shape[1]} x {arr.shape[2]}"
        )
    if arr.dtype != np.bool_:
        if not (np.issubdtype(arr.dtype, np.integer) and np.isin(arr, (0, 1)).all()):
            raise ValueError(f"patches must be bool (True = solid) or 0/1 integers, got dtype {arr.dtype}")
        arr = arr == 1
    return arr


def _check_checkpoint(checkpoint: dict[str, Any], path: Path, config: GanConfig, data: dict[str, Any]) -> None:
    """Raise ValueError if ``checkpoint`` belongs to a different run."""
    saved, current = checkpoint.get("config", {}), dataclasses.asdict(config)
    check_config(
        saved, current, path=path, name="GanConfig", resumable=_RESUMABLE_CHANGES, keys=set(current) | set(saved),
        advice=f". Only {', '.join(sorted(_RESUMABLE_CHANGES))} may change; use another run_dir or delete the checkpoint",
    )  # fmt: skip
    saved_data = checkpoint.get("data", {})
    if saved_data.get("shape") != data["shape"]:
        raise ValueError(
            f"checkpoint {path} was written for patches of shape {saved_data.get('shape')}, not {data['shape']}; "
            "cannot resume (use another run_dir or delete the checkpoint)"
        )
    if saved_data.get("fingerprint") != data["fingerprint"]:
        raise ValueError(
            f"checkpoint {path} was written for other patches of the same shape {data['shape']}; "
            "cannot resume (use another run_dir or delete the checkpoint)"
        )
    if checkpoint["step"] > config.steps:
        raise ValueError(
            f"checkpoint {path} has already run {checkpoint['step']} steps, more than GanConfig.steps = {config.steps}"
        )


def _update_average(average: Generator, generator: Generator, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * generator``, parameters only."""
    with torch.no_grad():
        for avg, current in zip(average.parameters(), generator.parameters()):
            avg.lerp_(current, 1.0 - decay)


def _batch_statistics(generator: Generator, config: GanConfig, device: torch.device) -> Generator:
    """Set the batch-norm running statistics of ``generator`` to those of its current weights.

    Runs ``_STAT_BATCHES`` batches of fixed latent vectors in training mode with
    a cumulative average (``momentum=None``); returns the generator in
    evaluation mode. Deterministic, and it does not touch the run's RNGs.
    """
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    z = _latent(_STAT_BATCHES * config.batch_size, config.latent_dim, streams.torch_generator(config.seed, "gan", _STREAM_BATCH_STATS))
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        generator.train()
        with torch.no_grad():
            for chunk in z.split(config.batch_size):
                generator(chunk.to(device))
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return generator.eval()


def _write_samples(run_dir: Path, step: int, generator: Generator, z_fixed: torch.Tensor, device: torch.device) -> None:
    images = _run_generator(generator, z_fixed, device, len(z_fixed)) >= 0.5
    write_image_grid(run_dir / "samples" / f"step_{step:06d}.png", images)


def _start_at_the_solid_fraction(generator: Generator, patches: np.ndarray) -> None:
    """Set the generator's output bias to the logit of the patches' solid fraction (in place).

    Notes
    -----
    The classic initialisation of a sigmoid output to its class prior. Measured
    on the smoke profile (300 steps, 32-px patches, 256 generated images):
    sand-packing patches (porosity 0.099) gave generated porosity 0.000 (all
    256 images solid) from the default bias and 0.031 (25 all solid) from the
    prior; bone patches (0.202) gave 0.077 (120 all solid) and 0.108 (6).
    The solid fraction is clipped to [0.01, 0.99] so that a patch set of one
    phase does not give an infinite bias.
    """
    solid = float(np.clip(np.mean(patches), 0.01, 0.99))
    with torch.no_grad():
        generator.head.bias.fill_(math.log(solid / (1.0 - solid)))


def train_gan(
    patches: np.ndarray,
    *,
    config: GanConfig,
    run_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    on_mismatch: str = "error",
) -> GanResult:
    """Train a generator of binary foam images on real binary patches.

    Parameters
    ----------
    patches : numpy.ndarray
        ``(N, S, S)`` bool (True = solid; 0/1 integers are accepted) with
        ``S == config.image_size``: the real patches, e.g. from
        :func:`foamlib.patches.extract_patches`. Each discriminator step draws
        ``config.batch_size`` of them (without replacement within a batch
        where ``N`` allows) with the run's own generator.
    config : GanConfig
        Network sizes, steps, optimisers, binarisation, instance noise,
        averaging, file intervals, seed.
    run_dir : path-like, optional
        Folder for the run's files (created if missing):

        * ``checkpoint.pt``: every ``config.checkpoint_every`` steps and at the
          end; both networks, the weight average, optimisers, step, history,
          all RNG states, the configuration and the foamlib version. If it exists when training starts the run
          resumes from it and gives the same weights as a run never
          interrupted (on the CPU with the same thread count); only ``steps``,
          ``checkpoint_every`` and ``sample_every`` may differ from the run
          that wrote it (so a finished run can be extended), and the patches
          must be the same.
        * ``history.csv``: written with every checkpoint; one row per step (see
          Returns).
        * ``samples/step_000500.png``: every ``config.sample_every`` steps and
          at the end, the thresholded images of 32 fixed latent vectors from
          the averaged generator (as returned), in evaluation mode.
    device : str, torch.device or None, optional
        See :func:`foamlib.device.pick_device`.
    progress : bool, optional
        Show a progress bar. Default True.
    on_mismatch : {"error", "restart"}, optional
        What to do when the checkpoint belongs to another run (other
        configuration or data): raise a ValueError (default), or move it
        aside as ``<name>.stale-<time>.pt`` and start afresh (see
        :func:`foamlib.torchfiles.resume_checkpoint`).

    Returns
    -------
    GanResult
        ``history``: one dict per step with ``step`` (1-based), ``loss_d``,
        ``loss_g`` (hinge losses), ``d_real``, ``d_fake`` (mean discriminator
        scores of the real and fake batch of the last discriminator step),
        ``porosity`` and ``porosity_std`` (mean and spread over the fake batch
        of the per-image porosity at threshold 0.5), ``real_porosity`` and
        ``real_porosity_std`` (the same for the real batch) and ``seconds``
        (wall time of the step). ``generator`` is the weight average (see
        :class:`GanResult`).

    Raises
    ------
    ValueError
        If the patches have the wrong shape or dtype, or ``run_dir`` holds a
        checkpoint of another configuration or other patches, or one that has
        run more than ``config.steps`` steps.
    ModelFileError
        If ``run_dir/checkpoint.pt`` exists but is not a GAN checkpoint.

    Notes
    -----
    The generator's output bias starts at the logit of the real patches'
    solid fraction, so its first images have the real porosity rather than
    0.5 and the discriminator is not first won over by the porosity alone: on
    patches that are 90 % solid, a generator started at 0.5 collapsed to
    all-solid images within 300 steps, one started at the solid fraction did
    not (notes of ``_start_at_the_solid_fraction``).

    One step: draw a real batch and a fake batch, update ``D`` with the hinge
    loss on both (``config.d_steps`` times, fresh batches each time), then
    update ``G`` to raise ``D``'s score of the last fake batch, then update the
    weight average. Fake images reach ``D`` binarised as ``config.binarize``
    says, and both inputs get the instance noise (see the module notes).
    """
    if not isinstance(config, GanConfig):
        raise ValueError(f"config must be a GanConfig, got {type(config).__name__}")
    real_patches = _check_patches(patches, config.image_size)
    data = {"shape": list(real_patches.shape), "fingerprint": data_fingerprint(real_patches)}
    dev = pick_device(device)
    run_dir = Path(run_dir) if run_dir is not None else None

    generator, discriminator = build_gan(config)
    _start_at_the_solid_fraction(generator, real_patches)
    generator.to(dev).train()
    discriminator.to(dev).train()
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))
    batch_rng = streams.rng(config.seed, "gan", _STREAM_BATCHES)
    latent_gen = streams.torch_generator(config.seed, "gan", _STREAM_LATENT)
    noise_gen = streams.torch_generator(config.seed, "gan", _STREAM_NOISE)
    z_fixed = _latent(_N_SAMPLES, config.latent_dim, streams.torch_generator(config.seed, "gan", _STREAM_SAMPLES))
    average = copy.deepcopy(generator).requires_grad_(False)
    run = TrainingRun.in_folder(
        run_dir, file_format=CHECKPOINT_FORMAT, kind="GAN checkpoint", counter="step", version=FORMAT_VERSION,
        state={
            "generator_state": generator, "average_state": average, "discriminator_state": discriminator,
            "optimizer_g_state": opt_g, "optimizer_d_state": opt_d,
            "rng": {"numpy_batches": batch_rng, "torch_latent": latent_gen, "torch_noise": noise_gen},
        },
        identity={"config": dataclasses.asdict(config), "generator_config": generator.config,
                  "discriminator_config": discriminator.config, "data": data},
        device=dev,
        write=save_torch_file,  # this module's name, so that tests can intercept checkpoint writes
    )  # fmt: skip
    run.resume(lambda c: _check_checkpoint(c, run.path, config, data), on_mismatch)
    history = run.history

    def d_input(images: torch.Tensor, *, fake: bool) -> torch.Tensor:
        if fake and config.binarize != "none":
            if config.binarize == "bernoulli":
                binary = torch.rand(images.shape, generator=noise_gen).to(dev) < images
            else:
                binary = images >= 0.5
            # forward: the binary image; backward: the gradient goes to the probabilities unchanged
            images = images + (binary.to(images.dtype) - images).detach()
        if config.instance_noise > 0:
            noise = torch.randn(images.shape, generator=noise_gen).to(dev)
            images = images + config.instance_noise * noise
        return images

    n_real, batch = len(real_patches), config.batch_size
    bar = run.progress_bar(config.steps, desc="GAN", unit="step", enabled=progress)
    for step in range(len(history) + 1, config.steps + 1):
        start = time.perf_counter()
        # discriminator: real -> score >= 1, fake -> score <= -1
        discriminator.requires_grad_(True)
        for _ in range(config.d_steps):
            index = batch_rng.choice(n_real, size=batch, replace=n_real < batch)
            real = torch.from_numpy(real_patches[index].astype(np.float32)).unsqueeze(1).to(dev)
            z = torch.randn(batch, config.latent_dim, generator=latent_gen).to(dev)
            fake = generator(z)
            d_real = discriminator(d_input(real, fake=False))
            d_fake = discriminator(d_input(fake.detach(), fake=True))
            loss_d = F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        # generator: the last fake batch, scored by the updated discriminator
        discriminator.requires_grad_(False)
        loss_g = -discriminator(d_input(fake, fake=True)).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        _update_average(average, generator, config.ema_decay)

        with torch.no_grad():
            fake_por = 1.0 - (fake.detach() >= 0.5).float().mean(dim=(1, 2, 3))
            real_por = 1.0 - real.mean(dim=(1, 2, 3))
        entry = {
            "step": step,
            "loss_d": float(loss_d.detach()),
            "loss_g": float(loss_g.detach()),
            "d_real": float(d_real.detach().mean()),
            "d_fake": float(d_fake.detach().mean()),
            "porosity": float(fake_por.mean()),
            "porosity_std": float(fake_por.std()),
            "real_porosity": float(real_por.mean()),
            "real_porosity_std": float(real_por.std()),
            "seconds": time.perf_counter() - start,
        }
        history.append(entry)
        bar.set_postfix(loss_d=f"{entry['loss_d']:.3f}", loss_g=f"{entry['loss_g']:.3f}", porosity=f"{entry['porosity']:.3f}", refresh=False)
        bar.update(1)

        if run_dir is not None:
            if due(step, config.sample_every, config.steps):
                _write_samples(run_dir, step, _batch_statistics(average, config, dev), z_fixed, dev)
            if due(step, config.checkpoint_every, config.steps):
                run.save(step)
                logger.info(
                    "GAN step %d/%d: loss D %.3f, loss G %.3f, fake porosity %.3f +- %.3f (real %.3f +- %.3f)",
                    step, config.steps, entry["loss_d"], entry["loss_g"], entry["porosity"], entry["porosity_std"],
                    entry["real_porosity"], entry["real_porosity_std"],
                )  # fmt: skip
    bar.close()
    discriminator.requires_grad_(True)

    return GanResult(
        history=run.rows(),
        steps_run=len(history),
        seconds=run.seconds,
        generator=_batch_statistics(average, config, dev).requires_grad_(True),
    )
