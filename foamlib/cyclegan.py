"""CycleGAN that turns binary foam images into CT-like grey images (step 2 of Griem et al.).

Step 2 of Griem et al. needs training images whose labels are exact and whose
grey values look like the real scan: binary foam images (domain X: GAN outputs
with watershed walls, ``True`` = solid) are translated into CT-like grey images
(domain Y: slices of the real scan, grey values in [0, 1]) by a CycleGAN (Zhu
et al. 2017, *Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks*) trained on unpaired images. Applying the generator
``G: X -> Y`` to a binary image gives a grey image whose solid/pore layout is
the binary image itself.

Networks
--------
* **Generators** ``G: X -> Y`` and ``F: Y -> X`` are :class:`foamlib.unet.UNet`
  with instance normalisation, 3x3 kernels and a sigmoid output, one channel in
  and out (Griem et al. use U-Net generators; Zhu et al. a ResNet). The U-Net
  upsamples by bilinear resizing followed by a convolution, so the translated
  images have no checkerboard artefacts, and it pads internally, so
  :func:`translate` takes whole slices of any size.
* **Discriminators** ``D_X`` and ``D_Y`` are :class:`PatchDiscriminator`, the
  PatchGAN of Isola et al. 2017 (*Image-to-Image Translation with Conditional
  Adversarial Networks*; with 3 layers each output logit sees a 70x70 patch):
  4x4 convolutions with stride 2, LeakyReLU(0.2), instance normalisation after
  every convolution but the first, then two 4x4 convolutions with stride 1 that
  end in a map of logits. ``D_Y`` tells real CT slices from ``G(x)``, ``D_X``
  binary images from ``F(y)``.

Objective and optimisation (Zhu et al.'s defaults)
--------------------------------------------------
* Least-squares adversarial loss (Mao et al. 2017, LSGAN): the generators
  minimise ``mean((D(fake) - 1)^2)``, the discriminators ``0.5 * (mean((D(real)
  - 1)^2) + mean(D(fake)^2))`` (the halving slows D relative to G).
* Cycle consistency ``lambda_cycle * (|F(G(x)) - x|_1 + |G(F(y)) - y|_1)`` with
  ``lambda_cycle = 10``, and identity ``lambda_identity * lambda_cycle *
  (|G(y) - y|_1 + |F(x) - x|_1)`` with ``lambda_identity = 0.5``; for grey
  images the identity term keeps G from inverting the contrast.
* Each discriminator sees fakes drawn from an :class:`ImagePool` of the last 50
  generated images (Shrivastava et al. 2017): once the pool is full, each new
  fake is, with probability 1/2, swapped for a random stored one.
* Adam, learning rate 2e-4, betas (0.5, 0.999), constant for the first
  ``decay_start`` fraction of the steps and then falling linearly so that it
  would reach zero one step after the last (:func:`learning_rate_at`).
* Initial weights: the generators keep the U-Net's He-normal initialisation
  (suited to their ReLUs); the discriminators use Zhu et al.'s N(0, 0.02).

Training works in steps rather than epochs: every step draws a batch of random
square crops of ``crop_size`` from the X stack and, independently, from the Y
stack (a random slice, a random position, then one of the 8 flips/90-degree
rotations), runs one generator update and one discriminator update.

Reproducibility
---------------
Everything random derives from ``CycleGanConfig.seed`` through
:func:`foamlib.streams.seed_for`: the initial weights of the four networks
(each built inside :func:`torch.random.fork_rng`), the crops of X and of Y
(one :class:`numpy.random.Generator` each), the two pools (one generator each)
and the fixed sample crops. Global RNG state is neither read nor changed. On
the CPU with a fixed thread count, a run gives the same weights every time, and
a run resumed from its checkpoint gives the same weights as one that was never
interrupted (the checkpoint holds weights, optimiser states, pools, RNG
states, the configuration and the foamlib version; it is kept by
:class:`foamlib.trainloop.TrainingRun`, as the U-Net's and the GAN's are).

Files
-----
With a ``run_dir``, :func:`train_cyclegan` writes ``checkpoint.pt`` (format
``"foamlib-cyclegan-checkpoint"``, only tensors and plain values, written
atomically), ``history.csv`` (one row per step) and ``samples/step_NNNNNN.png``
grids. The trained ``G`` is a plain :class:`~foamlib.unet.UNet`: save it with
:func:`foamlib.training.save_model` and read it with
:func:`foamlib.training.load_model`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import streams
from .checks import check_int, check_real
from .device import pick_device
from .io import write_image_grid
from .progress import progress_bar
from .torchfiles import data_fingerprint
from .trainloop import TrainingRun, check_config, due
from .unet import UNet, build_unet

__all__ = [
    "CycleGanConfig",
    "CycleGan",
    "CycleGanResult",
    "PatchDiscriminator",
    "ImagePool",
    "build_cyclegan",
    "learning_rate_at",
    "train_cyclegan",
    "translate",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "foamlib-cyclegan-checkpoint"
FORMAT_VERSION = 1

#: UNet options every generator gets unless the config overrides them.
_GENERATOR_DEFAULTS: Mapping[str, Any] = {
    "levels": 4,
    "convs_per_level": 2,
    "base_channels": 16,
    "kernel_size": 3,
    "pooling": "avg",
    "in_channels": 1,
    "out_channels": 1,
    "normalization": "instance",
    "output": "sigmoid",
}
#: CycleGanConfig fields that may differ between a checkpoint and the run that resumes it.
_RESUMABLE_CHANGES = frozenset({"steps", "checkpoint_every", "sample_every"})
#: Columns of history.csv, in order.
HISTORY_COLUMNS = (
    "step",
    "loss_g_adv",
    "loss_f_adv",
    "loss_cycle",
    "loss_identity",
    "loss_d_x",
    "loss_d_y",
    "seconds",
    "learning_rate",
)
#: Fixed examples per domain in the sample grids.
_SAMPLE_COUNT = 4
#: Side of the sample crops (smaller where the images are smaller).
_SAMPLE_SIDE = 128

# Random streams of a run: foamlib.streams.seed_for(config.seed, "cyclegan", name).
_SEED_G, _SEED_F, _SEED_DX, _SEED_DY = "g-init", "f-init", "dx-init", "dy-init"
_SEED_CROP_X, _SEED_CROP_Y, _SEED_POOL_X, _SEED_POOL_Y, _SEED_SAMPLES = "crop-x", "crop-y", "pool-x", "pool-y", "samples"


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class CycleGanConfig:
    """Settings of one CycleGAN training run.

    Parameters
    ----------
    generator : mapping
        Options of the :class:`~foamlib.unet.UNet` generators. Missing keys
        take ``levels=4, convs_per_level=2, base_channels=16, kernel_size=3,
        pooling="avg", normalization="instance", output="sigmoid"`` with one
        channel in and out; after construction the attribute holds the full
        dict. ``in_channels``, ``out_channels`` and ``output`` cannot be
        changed (the generators map one grey channel to probabilities in
        [0, 1]).
    discriminator_channels : int
        Channels of the first discriminator layer (Isola et al.: 64), >= 1.
    discriminator_layers : int
        Stride-2 convolutions of the discriminator (3: 70x70 patches), >= 1.
    crop_size : int
        Side in pixels of the square training crops. At least
        ``3 * 2 ** discriminator_layers`` (so the discriminator's map is at
        least 1x1 and its normalised layers have more than one pixel) and more
        than ``2 ** (levels - 1)`` (the generator's deepest level needs more
        than one pixel).
    batch_size : int
        Crops per domain and step, >= 1 (Zhu et al.: 1).
    steps : int
        Optimisation steps (one generator and one discriminator update each), >= 1.
    lambda_cycle : float
        Weight of the cycle-consistency L1 loss, >= 0 (Zhu et al.: 10).
    lambda_identity : float
        Weight of the identity loss relative to ``lambda_cycle``, >= 0
        (Zhu et al.: 0.5); 0 switches it off.
    pool_size : int
        Earlier fakes kept per discriminator, >= 0 (Zhu et al.: 50); 0 shows
        the discriminators only the newest fakes.
    learning_rate : float
        Initial Adam learning rate of all four networks, >= 0.
    betas : tuple of float
        Adam's ``(beta1, beta2)``, each in [0, 1).
    decay_start : float
        Fraction of ``steps`` after which the learning rate starts to fall
        linearly towards zero, in [0, 1].
    checkpoint_every : int
        Write ``checkpoint.pt`` and ``history.csv`` every this many steps
        (and after the last), >= 1.
    sample_every : int or None
        Write a sample grid every this many steps (and after the last), >= 1;
        None writes none.
    seed : int
        Seed of everything random in the run, >= 0.

    Raises
    ------
    ValueError
        If a value is out of range; the message names the field.

    Notes
    -----
    The defaults are Zhu et al.'s (batch size 1 included), with networks
    and a number of steps sized for a CPU. With 2 torch threads a step of
    the default networks takes 0.08 s at batch size 1 (batch 4: 0.18 s,
    batch 8: 0.32 s) on two otherwise idle cores, and 0.2-0.5 s (batch 4:
    0.3-1.2 s, batch 8: 0.5-1.8 s) on cores shared with other jobs; larger
    batches are cheaper per crop, but for the same training time batch 1
    gave clearly better translations. The default 2000 steps (about 3
    minutes on two idle cores) translated binary foam slices into grey
    images whose solid and pore grey values (mean/std 0.60/0.10 and
    0.18/0.07) match a demo scan's under its Otsu segmentation (0.57/0.13
    and 0.18/0.075), with Otsu of ``G(x)`` matching ``x`` at Dice 0.985;
    600 steps already gave 0.60/0.12, 0.17/0.06 and Dice 0.95. A smoke
    profile that runs in about 20 s: ``crop_size=32, steps=300,
    generator={"levels": 3, "base_channels": 8}, discriminator_channels=16,
    learning_rate=5e-4``.
    """

    generator: Mapping[str, Any] = field(default_factory=dict, hash=False)
    discriminator_channels: int = 32
    discriminator_layers: int = 3
    crop_size: int = 64
    batch_size: int = 1
    steps: int = 2000
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    learning_rate: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    decay_start: float = 0.5
    checkpoint_every: int = 250
    sample_every: int | None = 250
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.generator, Mapping):
            raise ValueError(
                f"CycleGanConfig.generator must be a mapping of UNet options, got {type(self.generator).__name__}"
            )
        unknown = sorted(set(self.generator) - set(_GENERATOR_DEFAULTS))
        if unknown:
            raise ValueError(
                f"CycleGanConfig.generator has unknown UNet option(s) {unknown}; "
                f"known options are {sorted(_GENERATOR_DEFAULTS)}"
            )
        generator = {**_GENERATOR_DEFAULTS, **self.generator}
        for key in ("in_channels", "out_channels", "output"):
            if generator[key] != _GENERATOR_DEFAULTS[key]:
                raise ValueError(
                    f"CycleGanConfig.generator[{key!r}] must be {_GENERATOR_DEFAULTS[key]!r} "
                    f"(one grey channel in and out, values in [0, 1]), got {generator[key]!r}"
                )
        try:  # UNet validates every option; a 1-level, 1-channel copy does so without allocating much
            check_int("levels", generator["levels"], low=1)
            check_int("base_channels", generator["base_channels"], low=1)
            with torch.random.fork_rng(devices=[]):
                UNet(**{**generator, "levels": 1, "base_channels": 1})
        except ValueError as exc:
            raise ValueError(f"CycleGanConfig.generator: {exc}") from None
        object.__setattr__(self, "generator", generator)

        check_int("CycleGanConfig.discriminator_channels", self.discriminator_channels, low=1)
        check_int("CycleGanConfig.discriminator_layers", self.discriminator_layers, low=1)
        check_int("CycleGanConfig.crop_size", self.crop_size, low=1)
        d_min = PatchDiscriminator.min_input_size(self.discriminator_layers)
        if self.crop_size < d_min:
            raise ValueError(
                f"CycleGanConfig.crop_size must be >= {d_min} for a discriminator with "
                f"{self.discriminator_layers} layers, got {self.crop_size}"
            )
        g_min = 2 ** (generator["levels"] - 1) + 1
        if self.crop_size < g_min:
            raise ValueError(
                f"CycleGanConfig.crop_size must be >= {g_min} for a generator with {generator['levels']} levels, "
                f"got {self.crop_size}"
            )
        check_int("CycleGanConfig.batch_size", self.batch_size, low=1)
        check_int("CycleGanConfig.steps", self.steps, low=1)
        check_real("CycleGanConfig.lambda_cycle", self.lambda_cycle, low=0.0)
        check_real("CycleGanConfig.lambda_identity", self.lambda_identity, low=0.0)
        check_int("CycleGanConfig.pool_size", self.pool_size, low=0)
        check_real("CycleGanConfig.learning_rate", self.learning_rate, low=0.0)
        betas = self.betas
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"CycleGanConfig.betas must be a pair (beta1, beta2), got {betas!r}")
        for i, beta in enumerate(betas):
            check_real(f"CycleGanConfig.betas[{i}]", beta, low=0.0, high=1.0, high_open=True)
        object.__setattr__(self, "betas", (float(betas[0]), float(betas[1])))
        check_real("CycleGanConfig.decay_start", self.decay_start, low=0.0, high=1.0)
        check_int("CycleGanConfig.checkpoint_every", self.checkpoint_every, low=1)
        if self.sample_every is not None:
            check_int("CycleGanConfig.sample_every", self.sample_every, low=1)
        check_int("CycleGanConfig.seed", self.seed, low=0)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (``CycleGanConfig(**config.to_dict()) == config``)."""
        out = dataclasses.asdict(self)
        out["generator"] = dict(self.generator)
        out["betas"] = list(self.betas)
        return out


def learning_rate_at(config: CycleGanConfig, step: int) -> float:
    """Learning rate of optimisation step ``step`` (0-based).

    Constant ``config.learning_rate`` for the first ``d = round(decay_start *
    steps)`` steps, then ``learning_rate * (steps - step) / (steps - d)``: it
    falls linearly and would reach zero at ``step == steps``, one step after
    the last (Zhu et al.'s schedule, counted in steps instead of epochs).

    Parameters
    ----------
    config : CycleGanConfig
        ``learning_rate``, ``steps`` and ``decay_start``.
    step : int
        0-based step, >= 0; steps past the end give 0.

    Returns
    -------
    float
        The learning rate.
    """
    step = check_int("step", step, low=0)
    decay = round(config.decay_start * config.steps)
    if step < decay:
        return config.learning_rate
    return config.learning_rate * max(0, config.steps - step) / (config.steps - decay)


# --------------------------------------------------------------------------- networks


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al. 2017): one logit per overlapping patch.

    Parameters
    ----------
    in_channels : int, optional
        Channels of the input images, >= 1. Default 1.
    base_channels : int, optional
        Channels of the first convolution, >= 1; they double with every
        further layer, up to 8 times this. Default 64 (Isola et al.).
    n_layers : int, optional
        Number of stride-2 convolutions, >= 1. Default 3, whose output logits
        each see a 70x70 patch.

    Notes
    -----
    Layers: ``Conv4x4/2 -> LeakyReLU(0.2)``, then ``n_layers - 1`` times
    ``Conv4x4/2 -> InstanceNorm -> LeakyReLU(0.2)``, then ``Conv4x4/1 ->
    InstanceNorm -> LeakyReLU(0.2)`` and ``Conv4x4/1`` to one channel, all
    with one pixel of zero padding. An input of ``(N, C, H, W)`` gives logits
    of shape ``(N, 1, H // 2**n_layers - 2, W // 2**n_layers - 2)``
    (:meth:`output_size`); H and W must be at least :meth:`min_input_size`.
    Convolutions followed by instance normalisation have no bias (the
    normalisation would remove it); instance normalisation has no learned
    scale and shift, as in Zhu et al. Weights start from N(0, 0.02); use
    :func:`build_cyclegan` for reproducible ones.

    Examples
    --------
    >>> import torch
    >>> PatchDiscriminator(base_channels=8)(torch.rand(2, 1, 70, 64)).shape
    torch.Size([2, 1, 6, 6])
    """

    def __init__(self, *, in_channels: int = 1, base_channels: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.base_channels = check_int("base_channels", base_channels, low=1)
        self.n_layers = check_int("n_layers", n_layers, low=1)

        def width(i: int) -> int:
            return base_channels * min(2**i, 8)

        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            layers += [
                nn.Conv2d(width(i - 1), width(i), 4, stride=stride, padding=1, bias=False),
                nn.InstanceNorm2d(width(i)),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        layers.append(nn.Conv2d(width(n_layers), 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @staticmethod
    def min_input_size(n_layers: int) -> int:
        """Smallest height and width a discriminator with ``n_layers`` accepts: ``3 * 2 ** n_layers``."""
        return 3 * 2 ** check_int("n_layers", n_layers, low=1)

    @staticmethod
    def output_size(size: int, n_layers: int) -> int:
        """Side of the logit map for an input side ``size``: ``size // 2 ** n_layers - 2``."""
        return check_int("size", size, low=0) // 2 ** check_int("n_layers", n_layers, low=1) - 2

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments as a plain dict."""
        return {"in_channels": self.in_channels, "base_channels": self.base_channels, "n_layers": self.n_layers}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, 1, h, w)`` (real > 0 > fake) for images ``x`` of shape ``(N, in_channels, H, W)``.

        Raises
        ------
        ValueError
            If ``x`` has the wrong number of dimensions or channels, or is
            smaller than :meth:`min_input_size`.
        """
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        smallest = self.min_input_size(self.n_layers)
        if min(x.shape[-2:]) < smallest:
            raise ValueError(
                f"a PatchDiscriminator with {self.n_layers} layers needs inputs of at least {smallest}x{smallest} "
                f"pixels, got {tuple(x.shape[-2:])}"
            )
        return self.model(x)


class CycleGan(nn.Module):
    """The four networks of a CycleGAN.

    Attributes
    ----------
    g : UNet
        Generator ``G: X -> Y`` (binary to grey), the one step 2 uses.
    f : UNet
        Generator ``F: Y -> X`` (grey to binary).
    d_x : PatchDiscriminator
        Tells binary images (X) from ``F(y)``.
    d_y : PatchDiscriminator
        Tells real grey images (Y) from ``G(x)``.
    config : CycleGanConfig
        The settings the networks were built with.
    """

    def __init__(
        self, g: UNet, f: UNet, d_x: PatchDiscriminator, d_y: PatchDiscriminator, config: CycleGanConfig
    ) -> None:
        super().__init__()
        self.g, self.f, self.d_x, self.d_y = g, f, d_x, d_y
        self.config = config

    def generators(self) -> list[nn.Module]:
        """``[g, f]``."""
        return [self.g, self.f]

    def discriminators(self) -> list[nn.Module]:
        """``[d_x, d_y]``."""
        return [self.d_x, self.d_y]


def _build_discriminator(config: CycleGanConfig, seed: int) -> PatchDiscriminator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PatchDiscriminator(base_channels=config.discriminator_channels, n_layers=config.discriminator_layers)


def build_cyclegan(config: CycleGanConfig) -> CycleGan:
    """Construct the four networks with initial weights that depend only on ``config.seed``.

    Parameters
    ----------
    config : CycleGanConfig
        Network sizes and seed.

    Returns
    -------
    CycleGan
        On the CPU, in training mode. The generators come from
        :func:`foamlib.unet.build_unet`; each network has its own seed derived
        from ``config.seed``, and the global RNG state is left unchanged.
    """
    if not isinstance(config, CycleGanConfig):
        raise ValueError(f"config must be a CycleGanConfig, got {type(config).__name__}")
    return CycleGan(
        g=build_unet(config.generator, streams.seed_for(config.seed, "cyclegan", _SEED_G)),
        f=build_unet(config.generator, streams.seed_for(config.seed, "cyclegan", _SEED_F)),
        d_x=_build_discriminator(config, streams.seed_for(config.seed, "cyclegan", _SEED_DX)),
        d_y=_build_discriminator(config, streams.seed_for(config.seed, "cyclegan", _SEED_DY)),
        config=config,
    )


class ImagePool:
    """Buffer of earlier generated images shown to a discriminator (Shrivastava et al. 2017).

    Parameters
    ----------
    size : int
        Images kept, >= 0; 0 makes :meth:`query` return its input unchanged.
    rng : numpy.random.Generator or int
        The pool's own random generator (or a seed for one); the pool draws
        only from it.

    Notes
    -----
    :meth:`query` handles the images of a batch one by one, as Zhu et al.'s
    ``ImagePool``: while the pool is not full, an image is stored and returned;
    afterwards, with probability 1/2 it is returned as it is, otherwise it
    replaces a randomly chosen stored image, which is returned instead.
    """

    def __init__(self, size: int, rng: np.random.Generator | int) -> None:
        self.size = check_int("size", size, low=0)
        if isinstance(rng, np.random.Generator):
            self.rng = rng
        else:
            self.rng = np.random.default_rng(check_int("rng", rng, low=0))
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Images for the discriminator, from ``images`` ``(N, C, H, W)`` and the pool.

        Returns
        -------
        torch.Tensor
            ``(N, C, H, W)``, detached from the graph.
        """
        if images.ndim != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() < 0.5:
                index = int(self.rng.integers(self.size))
                out.append(self.images[index])
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        """Stored images (on the CPU) and RNG state, as tensors and plain values."""
        return {"size": self.size, "images": [im.cpu() for im in self.images], "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any], device: str | torch.device | None = None) -> None:
        """Restore what :meth:`state_dict` returned; images go to ``device`` (default: the CPU)."""
        if state["size"] != self.size:
            raise ValueError(f"pool state has size {state['size']}, this pool has size {self.size}")
        self.images = [im.to(device or "cpu") for im in state["images"]]
        self.rng.bit_generator.state = state["rng"]


# --------------------------------------------------------------------------- data


def _check_binary(binary: Any, crop_size: int | None) -> np.ndarray:
    binary = np.asarray(binary)
    if binary.ndim != 3 or binary.shape[0] == 0:
        raise ValueError(f"binary must have shape (N, H, W) with N >= 1, got {binary.shape}")
    if binary.dtype != np.bool_:
        if not (np.issubdtype(binary.dtype, np.number) and np.isin(binary, (0, 1)).all()):
            raise ValueError(f"binary must be bool or 0/1 numbers (True = solid), got dtype {binary.dtype}")
        binary = binary.astype(bool)
    if crop_size is not None and min(binary.shape[1:]) < crop_size:
        raise ValueError(f"binary images {binary.shape[1:]} are smaller than crop_size {crop_size}")
    return binary


def _grey_scale(images: np.ndarray, name: str) -> float:
    """Factor mapping ``images`` to [0, 1]; checks the dtype and, for floats, the range."""
    if images.dtype == np.bool_:
        return 1.0
    if np.issubdtype(images.dtype, np.unsignedinteger):
        return 1.0 / float(np.iinfo(images.dtype).max)
    if np.issubdtype(images.dtype, np.floating):
        if images.size and not (np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0):
            raise ValueError(
                f"{name} as floats must lie in [0, 1], "
                f"got values from {np.nanmin(images):.6g} to {np.nanmax(images):.6g}"
            )
        return 1.0
    raise ValueError(
        f"{name} must be bool, unsigned integers (uint8: divided by 255) or floats in [0, 1], got dtype {images.dtype}"
    )


def _check_grey(images: Any, name: str, crop_size: int | None) -> tuple[np.ndarray, float]:
    from .patches import ScanSlices

    if isinstance(images, ScanSlices):  # a scan read tile by tile, scaled to [0, 1] by construction
        if crop_size is not None and min(images.shape[1:]) < crop_size:
            raise ValueError(f"{name} images {images.shape[1:]} are smaller than crop_size {crop_size}")
        return images, 1.0
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, H, W) with N >= 1, got {images.shape}")
    scale = _grey_scale(images, name)
    if crop_size is not None and min(images.shape[1:]) < crop_size:
        raise ValueError(f"{name} images {images.shape[1:]} are smaller than crop_size {crop_size}")
    return images, scale


def _to_tensor(array: np.ndarray, scale: float) -> torch.Tensor:
    """``(n, h, w)`` array -> float32 ``(n, 1, h, w)`` in [0, 1]."""
    out = array.astype(np.float32)
    if scale != 1.0:
        out *= np.float32(scale)
    return torch.from_numpy(out).unsqueeze(1)


def _random_crops(images: np.ndarray, scale: float, n: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """``n`` random ``size``-square crops, each randomly flipped/rotated (8 symmetries), as ``(n, 1, size, size)``."""
    index = rng.integers(images.shape[0], size=n)
    tops = rng.integers(images.shape[1] - size + 1, size=n)
    lefts = rng.integers(images.shape[2] - size + 1, size=n)
    turns = rng.integers(4, size=n)
    flips = rng.integers(2, size=n)
    crops = []
    for i, t, l, k, flip in zip(index, tops, lefts, turns, flips):
        crop = np.rot90(images[i, t : t + size, l : l + size], k)
        crops.append(crop[:, ::-1] if flip else crop)
    return _to_tensor(np.stack(crops), scale)


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class CycleGanResult:
    """What :func:`train_cyclegan` returns.

    Attributes
    ----------
    history : list of dict
        One row per step, resumed steps included, with the columns of
        ``history.csv``: ``step`` (1-based), ``loss_g_adv`` (LSGAN loss of G
        against ``D_Y``), ``loss_f_adv`` (of F against ``D_X``), ``loss_cycle``
        and ``loss_identity`` (weighted as in the objective, both directions
        summed), ``loss_d_x`` and ``loss_d_y`` (halved LSGAN losses),
        ``seconds`` (time of the step) and ``learning_rate``.
    model : CycleGan
        The trained networks, in evaluation mode, on the training device.
    steps_run : int
        Steps trained in total, resumed ones included.
    seconds : float
        Training time summed over all steps (also across resumes).
    """

    history: list[dict[str, Any]]
    model: CycleGan
    steps_run: int
    seconds: float

    @property
    def g(self) -> UNet:
        """The generator ``G: X -> Y`` (binary to grey)."""
        return self.model.g

    @property
    def f(self) -> UNet:
        """The generator ``F: Y -> X`` (grey to binary)."""
        return self.model.f


def _lsgan(logits: torch.Tensor, real: bool) -> torch.Tensor:
    return F.mse_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))


def _set_requires_grad(modules: list[nn.Module], flag: bool) -> None:
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(flag)


def _train_step(
    model: CycleGan,
    x: torch.Tensor,
    y: torch.Tensor,
    pools: tuple[ImagePool, ImagePool],
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    config: CycleGanConfig,
) -> dict[str, float]:
    """One generator and one discriminator update (Zhu et al.'s ``optimize_parameters``)."""
    g, f, d_x, d_y = model.g, model.f, model.d_x, model.d_y
    opt_g, opt_d = optimizers
    pool_x, pool_y = pools

    # Generators: D fixed.
    _set_requires_grad([d_x, d_y], False)
    opt_g.zero_grad(set_to_none=True)
    fake_y = g(x)
    fake_x = f(y)
    loss_g_adv = _lsgan(d_y(fake_y), True)
    loss_f_adv = _lsgan(d_x(fake_x), True)
    loss_cycle = config.lambda_cycle * (F.l1_loss(f(fake_y), x) + F.l1_loss(g(fake_x), y))
    if config.lambda_identity > 0:
        loss_identity = config.lambda_identity * config.lambda_cycle * (F.l1_loss(g(y), y) + F.l1_loss(f(x), x))
    else:
        loss_identity = x.new_zeros(())
    (loss_g_adv + loss_f_adv + loss_cycle + loss_identity).backward()
    opt_g.step()

    # Discriminators, on the fakes of this step (made before the generator update) or pooled older ones.
    _set_requires_grad([d_x, d_y], True)
    opt_d.zero_grad(set_to_none=True)
    loss_d_y = 0.5 * (_lsgan(d_y(y), True) + _lsgan(d_y(pool_y.query(fake_y)), False))
    loss_d_x = 0.5 * (_lsgan(d_x(x), True) + _lsgan(d_x(pool_x.query(fake_x)), False))
    (loss_d_x + loss_d_y).backward()
    opt_d.step()
    return {
        "loss_g_adv": loss_g_adv.item(),
        "loss_f_adv": loss_f_adv.item(),
        "loss_cycle": loss_cycle.item(),
        "loss_identity": loss_identity.item(),
        "loss_d_x": loss_d_x.item(),
        "loss_d_y": loss_d_y.item(),
    }


def _sample_crops(
    binary: np.ndarray, real: np.ndarray, real_scale: float, crop_size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed example crops of X and Y for the sample grids (``rng``: a stream of their own)."""
    side = min(max(crop_size, _SAMPLE_SIDE), *binary.shape[1:], *real.shape[1:])

    def pick(images: np.ndarray, scale: float) -> torch.Tensor:
        index = rng.choice(images.shape[0], size=_SAMPLE_COUNT, replace=images.shape[0] < _SAMPLE_COUNT)
        tops = rng.integers(images.shape[1] - side + 1, size=_SAMPLE_COUNT)
        lefts = rng.integers(images.shape[2] - side + 1, size=_SAMPLE_COUNT)
        crops = [images[i, t : t + side, l : l + side] for i, t, l in zip(index, tops, lefts)]
        return _to_tensor(np.stack(crops), scale)

    return pick(binary, 1.0), pick(real, real_scale)


def _write_samples(path: Path, model: CycleGan, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> None:
    """Grid with rows x, G(x), F(G(x)), y, F(y), G(F(y))."""
    modes = [m.training for m in model.generators()]
    model.g.eval(), model.f.eval()
    try:
        with torch.inference_mode():
            x, y = x.to(device), y.to(device)
            gx, fy = model.g(x), model.f(y)
            rows = [x, gx, model.f(gx), y, fy, model.g(fy)]
    finally:
        for m, mode in zip(model.generators(), modes):
            m.train(mode)
    write_image_grid(path, torch.cat(rows)[:, 0].float().cpu().numpy(), columns=_SAMPLE_COUNT)


def _check_resume(checkpoint: Mapping[str, Any], path: Path, config: CycleGanConfig, data: dict[str, Any]) -> None:
    """Raise ValueError if ``checkpoint`` belongs to another configuration or data set, or ran beyond ``config.steps``."""
    check_config(
        checkpoint.get("config", {}), config.to_dict(), path=path, name="CycleGanConfig", resumable=_RESUMABLE_CHANGES,
        advice=". Only steps, checkpoint_every and sample_every may change; use another run_dir or delete the checkpoint",
    )  # fmt: skip
    saved_data = checkpoint.get("data", {})
    if saved_data != data:
        what = [k for k in ("binary_shape", "real_shape") if saved_data.get(k) != data[k]]
        details = ", ".join(f"{k} {saved_data.get(k)} -> {data[k]}" for k in what) or "same shapes, other values"
        raise ValueError(
            f"checkpoint {path} was written for other training images ({details}); cannot resume. "
            "Use another run_dir or delete the checkpoint"
        )
    if checkpoint["step"] > config.steps:
        raise ValueError(
            f"checkpoint {path} is at step {checkpoint['step']}, beyond config.steps = {config.steps}; "
            "pass at least that many steps"
        )


def train_cyclegan(
    binary: np.ndarray,
    real: np.ndarray,
    *,
    config: CycleGanConfig,
    run_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict[str, Any]], None] | None = None,
    on_mismatch: str = "error",
) -> CycleGanResult:
    """Train a CycleGAN between binary foam images (X) and real grey slices (Y).

    Parameters
    ----------
    binary : numpy.ndarray
        Domain X: ``(N, H, W)`` bool (or 0/1), True = solid; H and W at least
        ``config.crop_size``.
    real : numpy.ndarray or foamlib.patches.ScanSlices
        Domain Y: ``(M, H2, W2)`` grey values, uint8 (divided by 255), other
        unsigned integers (divided by their maximum) or floats in [0, 1]; H2
        and W2 at least ``config.crop_size``. Scale a scan with
        :func:`foamlib.segment.infer_intensity_range` first. A
        :class:`~foamlib.patches.ScanSlices` (the slices of a scan larger than
        memory) is read one crop at a time.
    config : CycleGanConfig
        Networks, losses, optimiser, steps, seed.
    run_dir : path-like, optional
        Folder for ``checkpoint.pt``, ``history.csv`` and ``samples/`` (created
        if missing). If ``checkpoint.pt`` exists, the run resumes from it and
        continues with the next step, giving the same weights as a run never
        interrupted; a checkpoint from another configuration or other images
        is refused (only ``steps``, ``checkpoint_every`` and ``sample_every``
        may change, so a finished run can be extended).
    device : str, torch.device or None, optional
        See :func:`foamlib.device.pick_device`.
    progress : bool, optional
        Show a progress bar. Default True.
    on_step : callable, optional
        Called as ``on_step(step, row)`` after every step trained in this call
        (after any checkpoint of that step is written), with the 1-based step
        and a copy of its history row. An exception it raises ends training
        and propagates unchanged.
    on_mismatch : {"error", "restart"}, optional
        What to do when the checkpoint belongs to another run (other
        configuration or data): raise a ValueError (default), or move it
        aside as ``<name>.stale-<time>.pt`` and start afresh (see
        :func:`foamlib.torchfiles.resume_checkpoint`).

    Returns
    -------
    CycleGanResult
        History and the trained networks (evaluation mode).

    Raises
    ------
    ValueError
        If the images have the wrong shape, dtype or range, are smaller than
        the crops, or the checkpoint belongs to another run.
    ModelFileError
        If ``run_dir/checkpoint.pt`` exists but is not a CycleGAN checkpoint.

    Notes
    -----
    ``checkpoint.pt`` and ``history.csv`` are written every
    ``config.checkpoint_every`` steps and after the last; the sample grid
    ``samples/step_NNNNNN.png`` every ``config.sample_every`` steps and after
    the last. Its rows are x, G(x), F(G(x)), y, F(y), G(F(y)) for 4 fixed
    crops of each domain (up to 128 pixels wide), made with the generators in
    evaluation mode; it draws nothing from the training RNGs, so samples do
    not change the training result.
    """
    if not isinstance(config, CycleGanConfig):
        raise ValueError(f"config must be a CycleGanConfig, got {type(config).__name__}")
    binary = _check_binary(binary, config.crop_size)
    real, real_scale = _check_grey(real, "real", config.crop_size)
    dev = pick_device(device)
    run_dir = Path(run_dir) if run_dir is not None else None
    data = {
        "binary_shape": list(binary.shape),
        "real_shape": list(real.shape),
        "binary_hash": data_fingerprint(binary),
        "real_hash": real.fingerprint() if hasattr(real, "fingerprint") else data_fingerprint(real),
    } if run_dir is not None else {}  # fmt: skip

    model = build_cyclegan(config).to(dev)
    adam = {"lr": config.learning_rate, "betas": config.betas}
    opt_g = torch.optim.Adam([*model.g.parameters(), *model.f.parameters()], **adam)
    opt_d = torch.optim.Adam([*model.d_x.parameters(), *model.d_y.parameters()], **adam)
    rng_x = streams.rng(config.seed, "cyclegan", _SEED_CROP_X)
    rng_y = streams.rng(config.seed, "cyclegan", _SEED_CROP_Y)
    pool_x = ImagePool(config.pool_size, streams.rng(config.seed, "cyclegan", _SEED_POOL_X))
    pool_y = ImagePool(config.pool_size, streams.rng(config.seed, "cyclegan", _SEED_POOL_Y))

    run = TrainingRun.in_folder(
        run_dir, file_format=CHECKPOINT_FORMAT, kind="CycleGAN checkpoint", counter="step", version=FORMAT_VERSION,
        state={"model_state": {name: getattr(model, name) for name in ("g", "f", "d_x", "d_y")},
               "optimizer_state": {"g": opt_g, "d": opt_d}, "rng": {"crop_x": rng_x, "crop_y": rng_y}},
        identity={"config": config.to_dict(), "data": data},
        device=dev,
    )  # fmt: skip
    checkpoint = run.resume(lambda c: _check_resume(c, run.path, config, data), on_mismatch)
    if checkpoint is not None:
        pool_x.load_state_dict(checkpoint["pools"]["x"], dev)
        pool_y.load_state_dict(checkpoint["pools"]["y"], dev)
    history = run.history

    samples = None
    if run_dir is not None and config.sample_every is not None:
        samples = _sample_crops(binary, real, real_scale, config.crop_size, streams.rng(config.seed, "cyclegan", _SEED_SAMPLES))

    model.train()
    bar = run.progress_bar(config.steps, desc="CycleGAN", unit="step", enabled=progress)
    try:
        for step in range(len(history), config.steps):
            start = time.perf_counter()
            lr = learning_rate_at(config, step)
            for optimizer in (opt_g, opt_d):
                for group in optimizer.param_groups:
                    group["lr"] = lr
            x = _random_crops(binary, 1.0, config.batch_size, config.crop_size, rng_x).to(dev, non_blocking=True)
            y = _random_crops(real, real_scale, config.batch_size, config.crop_size, rng_y).to(dev, non_blocking=True)
            losses = _train_step(model, x, y, (pool_x, pool_y), (opt_g, opt_d), config)
            row = {"step": step + 1, **losses, "seconds": time.perf_counter() - start, "learning_rate": lr}
            history.append(row)
            shown = {"g": "loss_g_adv", "cycle": "loss_cycle", "d_y": "loss_d_y"}
            bar.set_postfix({k: f"{losses[v]:.3f}" for k, v in shown.items()}, refresh=False)
            bar.update(1)
            if samples is not None and due(step + 1, config.sample_every, config.steps):
                _write_samples(run_dir / "samples" / f"step_{step + 1:06d}.png", model, *samples, dev)
            if due(step + 1, config.checkpoint_every, config.steps):
                run.save(step + 1, pools={"x": pool_x.state_dict(), "y": pool_y.state_dict()})
            if due(step + 1, max(1, config.steps // 10), config.steps):
                logger.info(
                    "step %d/%d: G adv %.4f, F adv %.4f, cycle %.4f, identity %.4f, D_X %.4f, D_Y %.4f, lr %.3g",
                    step + 1, config.steps, losses["loss_g_adv"], losses["loss_f_adv"], losses["loss_cycle"],
                    losses["loss_identity"], losses["loss_d_x"], losses["loss_d_y"], lr,
                )  # fmt: skip
            if on_step is not None:
                on_step(step + 1, dict(row))
    finally:
        bar.close()

    model.eval()
    return CycleGanResult(
        history=run.rows(),
        model=model,
        steps_run=len(history),
        seconds=run.seconds,
    )


# --------------------------------------------------------------------------- inference


def translate(
    generator: nn.Module,
    images: np.ndarray,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Apply a generator (``G`` or ``F``) to whole images.

    Parameters
    ----------
    generator : torch.nn.Module
        A trained generator, e.g. ``result.g`` or a model read with
        :func:`foamlib.training.load_model`. It is moved to ``device`` and run
        in evaluation mode; its mode is restored afterwards. One with
        ``output == "logits"`` gets a sigmoid applied.
    images : numpy.ndarray
        ``(N, H, W)``: bool (True = solid, for ``G``), uint8 (divided by 255),
        other unsigned integers (divided by their maximum) or floats in
        [0, 1]. Any H and W the generator accepts (a U-Net with instance
        normalisation and ``L`` levels needs more than ``2 ** (L - 1)``
        pixels per side).
    batch_size : int, optional
        Images per forward pass, >= 1. Default 32.
    device : str, torch.device or None, optional
        See :func:`foamlib.device.pick_device`.
    progress : bool, optional
        Show a progress bar. Default False.

    Returns
    -------
    numpy.ndarray
        float32, ``(N, H, W)``, values in [0, 1].

    Notes
    -----
    Instance normalisation uses the statistics of each whole image, not of
    training-sized crops; for images much larger than the crops the grey
    values can differ slightly from what crops would give.
    """
    images, scale = _check_grey(images, "images", None)
    batch_size = check_int("batch_size", batch_size, low=1)
    levels = getattr(generator, "levels", None)
    instance = getattr(generator, "normalization", None) == "instance"
    if instance and levels is not None and min(images.shape[1:]) <= 2 ** (levels - 1):
        raise ValueError(
            f"images of {images.shape[1:]} pixels are too small for a generator with {levels} levels and instance "
            f"normalisation; each side must be more than {2 ** (levels - 1)}"
        )
    dev = pick_device(device)
    logits = getattr(generator, "output", "sigmoid") == "logits"
    out = np.empty(images.shape, dtype=np.float32)
    was_training = generator.training
    generator.to(dev).eval()
    try:
        with torch.inference_mode():
            starts = range(0, len(images), batch_size)
            for start in progress_bar(starts, desc="translate", unit="batch", disable=not progress):
                x = _to_tensor(images[start : start + batch_size], scale).to(dev)
                y = generator(x)
                y = torch.sigmoid(y) if logits else y
                out[start : start + batch_size] = y[:, 0].float().cpu().numpy()
    finally:
        generator.train(was_training)
    return out
