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
* :func:`load_encoder` -- a :class:`FeatureEncoder` (ResNet50 without ``fc``,
  returning the 2048-d global-average-pooled features) with MicroNet weights,
  weights from a file, or a seeded random initialisation for offline use;
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
``"random"``
    A ResNet50 with torchvision's initialisation drawn from a
    :class:`torch.Generator` seeded with ``seed`` (no download). FID values with
    this encoder are **not comparable** to the paper's numbers; they still rank
    clearly different image sets apart (see the test suite), which makes them
    useful for offline smoke runs.
a path
    A torchvision-style ResNet50 state dict saved with :func:`torch.save`.

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
from tqdm import tqdm

from foamlib.device import pick_device
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
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    with torch.device("meta"):  # build without drawing from any random generator
        model = ResNet50(num_classes=num_classes)
    model = model.to_empty(device="cpu")
    _init_like_torchvision(model, generator)
    return model


# --------------------------------------------------------------------------- #
# encoder
# --------------------------------------------------------------------------- #
class FeatureEncoder(nn.Module):
    """ResNet50 trunk returning 2048-d global-average-pooled features.

    Input ``(N, 3, H, W)`` float32, already normalised (see
    :func:`extract_features`); output ``(N, 2048)``. Always in eval mode with
    gradients disabled for its parameters.

    Attributes
    ----------
    name : str
        Which weights are loaded, e.g. ``"resnet50-micronet-v1.1 (sha256 866d748420c9)"``
        or ``"resnet50-random-seed0"``. Put it next to every FID you report.
    weights_sha256 : str or None
        Full SHA-256 of the weights file, ``None`` for random weights.
    feature_dim : int
        2048.
    """

    def __init__(self, backbone: ResNet50, name: str, weights_sha256: str | None = None) -> None:
        super().__init__()
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.name = name
        self.weights_sha256 = weights_sha256
        self.feature_dim = FEATURE_DIM
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureEncoder:
        """Keep the encoder in eval mode (BatchNorm uses its running statistics)."""
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
            bar = tqdm(
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


def _load_backbone_from_file(path: Path, expected_sha256: str | None = None) -> tuple[ResNet50, str]:
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    digest = file_sha256(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ValueError(
            f"weights file {path} has sha256 {digest}, expected {expected_sha256}; "
            "delete it to download it again"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt archive, pickle of disallowed objects, ...
        raise ValueError(
            f"cannot read weights file {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            "(expected a torch.save'd torchvision-style ResNet50 state dict of tensors)"
        ) from exc
    state = {k: v for k, v in _extract_state_dict(obj, path).items() if not k.startswith("fc.")}
    model = resnet50(generator=torch.Generator().manual_seed(0))  # overwritten below; keeps the global RNG untouched
    model.fc = nn.Identity()
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
        raise ValueError(f"{path} is not a torchvision-style ResNet50 state dict: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model, digest


def load_encoder(
    weights: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = False,
    fallback: str | None = None,
) -> FeatureEncoder:
    """Load the ResNet50 feature encoder used for FID / KID.

    Parameters
    ----------
    weights : {None, "micronet", "imagenet-micronet", "random"} or path-like
        ``None`` means ``"micronet"``, the paper's encoder. See the module
        docstring for what each choice loads. A path (``str`` naming an
        existing file, or :class:`os.PathLike`) loads a torchvision-style
        state dict: a leading ``"module."`` is stripped from keys, a dict with a
        ``"state_dict"`` entry is unwrapped, and ``fc.*`` entries (any size, or
        absent) are dropped; all other keys must match exactly.
    seed : int, optional
        Seed of the :class:`torch.Generator` for ``weights="random"``; ignored
        otherwise.
    device : str or torch.device, optional
        Where to put the model; default CUDA if available, else CPU.
    cache_dir : path-like, optional
        Folder for downloaded weights; default :func:`default_cache_dir`.
    download : bool, optional
        For named weights missing from the cache: download them (default) or
        raise :class:`FileNotFoundError` telling where to get them.
    progress : bool, optional
        Show a download progress bar.
    fallback : {None, "random"}, optional
        If named weights (``"micronet"``, ``"imagenet-micronet"``) are neither
        cached nor downloadable (offline machine, CI), load these instead of
        raising, with a logged warning. The returned encoder's ``name`` says
        which weights were used, so every FID can be labelled with its
        encoder. A checksum mismatch or a damaged file still raises.

    Returns
    -------
    FeatureEncoder
        In eval mode on ``device``; ``encoder.name`` records the weights.

    Raises
    ------
    FileNotFoundError
        Missing weights file, or named weights not cached with ``download=False``.
    ValueError
        Unknown name, unreadable or incompatible file, or checksum mismatch.
    RuntimeError
        The download failed (e.g. no network); the message says how to fetch
        the file by hand.
    """
    dev = pick_device(device)
    if weights is None:
        weights = "micronet"
    if isinstance(weights, str) and weights == "random":
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        encoder = FeatureEncoder(resnet50(generator=gen), name=f"resnet50-random-seed{int(seed)}")
        logger.info("loaded %s (FID with random weights is not comparable to the paper's)", encoder.name)
        return encoder.to(dev)

    if isinstance(weights, str) and weights in KNOWN_WEIGHTS and fallback is not None:
        try:
            return load_encoder(weights, seed=seed, device=device, cache_dir=cache_dir, download=download, progress=progress)
        except (FileNotFoundError, RuntimeError) as exc:
            logger.warning("%s; using the %r encoder instead", exc, fallback)
            return load_encoder(fallback, seed=seed, device=device)

    if isinstance(weights, str) and weights in KNOWN_WEIGHTS:
        spec = KNOWN_WEIGHTS[weights]
        target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = target / spec.filename
        if not path.is_file():
            manual = (
                f"download {spec.url} by hand"
                + (f" (sha256 {spec.sha256})" if spec.sha256 else "")
                + f" and pass its path as weights=, or save it as {path}; "
                "for offline runs, weights='random' works without any file (FIDs then not comparable to the paper)"
            )
            if not download:
                raise FileNotFoundError(f"{weights!r} weights not found at {path}; {manual}")
            try:
                download_weights(spec.url, path, sha256=spec.sha256, progress=progress)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                raise RuntimeError(f"could not download {weights!r} weights ({exc}); {manual}") from exc
        model, digest = _load_backbone_from_file(path, expected_sha256=spec.sha256)
        encoder = FeatureEncoder(model, name=f"resnet50-{spec.label} (sha256 {digest[:12]})", weights_sha256=digest)
        logger.info("loaded %s from %s", encoder.name, path)
        return encoder.to(dev)

    if isinstance(weights, str) and not Path(weights).exists() and os.sep not in weights and "." not in weights:
        known = ", ".join(repr(k) for k in [*KNOWN_WEIGHTS, "random"])
        raise ValueError(f"unknown weights {weights!r}: expected None, {known} or a path to a state-dict file")
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be None, a name or a path, got {type(weights).__name__}")

    path = Path(weights)
    model, digest = _load_backbone_from_file(path)
    label = f"file:{path.name}"
    for spec in KNOWN_WEIGHTS.values():
        if spec.sha256 == digest:
            label = spec.label
    encoder = FeatureEncoder(model, name=f"resnet50-{label} (sha256 {digest[:12]})", weights_sha256=digest)
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
    """Encode images into ``(N, 2048)`` feature vectors.

    Preprocessing, per batch:

    1. uint8 images are divided by 255; float images must already lie in
       [0, 1];
    2. grey images are repeated to 3 channels (RGB input is used as is);
    3. optionally, each image is resized to ``resize x resize`` pixels with
       :func:`torch.nn.functional.interpolate` (bilinear,
       ``align_corners=False``, antialias when shrinking); by default images
       keep their size (any ``H, W``; the ResNet pools globally);
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
        ``(N, D)`` float64 features (``D = 2048`` for :class:`FeatureEncoder`).
    """
    if not isinstance(encoder, nn.Module):
        raise TypeError(f"encoder must be a torch.nn.Module, got {type(encoder).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if resize is not None and (isinstance(resize, bool) or not isinstance(resize, int) or resize < 1):
        raise ValueError(f"resize must be None or a positive int, got {resize!r}")
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
            for start in tqdm(range(0, n, batch_size), desc="features", disable=not progress):
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
