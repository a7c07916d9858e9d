"""Tests of foamlib.segment: tiled, slice-wise segmentation of whole volumes."""

import numpy as np
import pytest
import tifffile
import torch

from foamlib.io import read_scan, write_tiff
from foamlib.segment import infer_intensity_range, segment_file, segment_volume, tile_layout
from foamlib.training import ModelFileError, save_model
from foamlib.unet import build_unet

TINY = {"levels": 2, "convs_per_level": 2, "base_channels": 4, "kernel_size": 3}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def model():
    return build_unet(TINY, seed=0).eval()


def _whole(model, stack: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[:, None])[:, 0].numpy()


class _Mean(torch.nn.Module):
    """Output = input: makes the blending and the grey-value mapping visible."""

    def forward(self, x):
        return x


def test_tiling_matches_whole_slice_inference(model):
    volume = np.random.default_rng(0).random((3, 70, 53), dtype=np.float32)  # random grey values: the worst case
    whole = _whole(model, volume)
    tiled = segment_volume(model, volume, tile=32, overlap=8, batch_size=5)
    assert tiled.dtype == np.float32 and tiled.shape == volume.shape
    # Zero padding at tile borders, mostly weighted away. The largest difference depends on the random
    # weights (0.02-0.46 over six initial seeds, at the odd last column among others), the mean does not:
    # 0.0028 here (0.001-0.013 over those seeds), 0.0049 without overlap.
    error = np.abs(tiled - whole)
    assert error.mean() < 0.01
    assert np.abs(segment_volume(model, volume, tile=32, overlap=0) - whole).mean() > error.mean()


@pytest.mark.parametrize("tile,overlap", [(512, 32), (256, 32), (64, 16), (20, 19), (7, 3), (16, 0)])
def test_tile_layout_covers_with_the_fewest_even_tiles(tile, overlap):
    for size in range(1, 1100, 7):
        starts, length = tile_layout(size, tile, overlap)
        if size <= tile:
            assert (starts, length) == ([0], size)
            continue
        n = len(starts)
        assert starts[0] == 0 and starts[-1] + length == size and length <= tile
        gaps = np.diff(starts)
        assert (gaps > 0).all() and (length - gaps >= overlap).all()  # every neighbour overlaps by >= overlap
        assert gaps.max() - gaps.min() <= 1  # spread evenly
        assert (n - 1) * (tile - overlap) + overlap < size  # n - 1 tiles of side tile could not cover
        assert length * n < size + (n - 1) * overlap + n  # no tile longer than covering needs
        longer = tile_layout(size, tile, overlap, min_length=tile)  # a floor on the length: same count
        assert len(longer[0]) == n and longer[1] == tile and longer[0][-1] + tile == size


def test_a_1024_slice_takes_three_tiles_of_363_not_two_of_512_and_a_third():
    assert tile_layout(1024, 512, 32) == ([0, 330, 661], 363)
    assert tile_layout(1024, 256, 32)[1] == 231 and len(tile_layout(1024, 256, 32)[0]) == 5


def test_blending_is_exact_for_a_pointwise_model():
    volume = np.random.default_rng(1).random((2, 70, 53), dtype=np.float32)
    for tile, overlap in ((32, 8), (16, 0), (20, 19), (7, 3)):
        np.testing.assert_allclose(segment_volume(_Mean(), volume, tile=tile, overlap=overlap), volume, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 5, 7), (1, 31, 64), (2, 1, 40), (1, 100, 3)])
def test_any_slice_size_works(model, shape):
    volume = np.random.default_rng(2).random(shape, dtype=np.float32)
    out = segment_volume(model, volume, tile=32, overlap=8)
    assert out.shape == shape and np.isfinite(out).all() and (0 <= out).all() and (out <= 1).all()
    if max(shape[1:]) <= 32:  # one tile per slice: exactly the whole-slice output
        np.testing.assert_allclose(out, _whole(model, volume), atol=1e-6)


def test_xyz_averages_the_three_directions(model):
    volume = np.random.default_rng(3).random((6, 10, 12), dtype=np.float32)
    z = _whole(model, volume)
    y = np.moveaxis(_whole(model, np.moveaxis(volume, 1, 0)), 0, 1)
    x = np.moveaxis(_whole(model, np.moveaxis(volume, 2, 0)), 0, 2)
    out = segment_volume(model, volume, axes="xyz", tile=64)
    assert out.shape == volume.shape
    np.testing.assert_allclose(out, (z + y + x) / 3, atol=1e-5)
    np.testing.assert_allclose(segment_volume(model, volume, axes="z", tile=64), z, atol=1e-6)


def test_intensity_mapping():
    ramp = np.arange(0, 256, dtype=np.float32).reshape(1, 16, 16)
    np.testing.assert_allclose(segment_volume(_Mean(), ramp), ramp / 255, atol=1e-6)  # whole numbers -> (0, 255)
    np.testing.assert_allclose(segment_volume(_Mean(), ramp.astype(np.uint8)), ramp / 255, atol=1e-6)
    mapped = segment_volume(_Mean(), ramp, intensity_range=(100, 200))
    np.testing.assert_allclose(mapped, np.clip((ramp - 100) / 100, 0, 1), atol=1e-6)
    assert infer_intensity_range(np.zeros(3, np.uint16)) == (0.0, 65535.0)
    assert infer_intensity_range(np.array([0.2, 0.9])) == (0.0, 1.0)
    with pytest.raises(ValueError, match="intensity_range"):
        infer_intensity_range(np.array([0.5, 1000.5]))
    with pytest.raises(ValueError, match="intensity_range"):
        segment_volume(_Mean(), ramp, intensity_range=(5, 5))


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"axes": "zy"}, "axes"), ({"tile": 0}, "tile"), ({"overlap": 64}, "overlap"), ({"batch_size": 0}, "batch_size")],
)
def test_bad_options_raise(model, kwargs, word):
    with pytest.raises(ValueError, match=word):
        segment_volume(model, np.zeros((1, 8, 8), np.uint8), **{"tile": 64, **kwargs})
    with pytest.raises(ValueError, match="shape"):
        segment_volume(model, np.zeros((8, 8), np.uint8))


@pytest.fixture
def files(tmp_path):
    """A tiny saved model that maps grey values to their own probability, and a uint8 scan."""
    model = _threshold_model()
    model_path = save_model(tmp_path / "model.pt", model, metadata={"intensity_range": [0, 255]})
    rng = np.random.default_rng(4)
    scan = (rng.random((4, 40, 36)) * 255).astype(np.uint8)
    scan_path = write_tiff(tmp_path / "scan.tif", scan, voxel_size_um=2.5)
    return scan, scan_path, model_path


def _threshold_model():
    """A real UNet whose output is sigmoid(40 * (x - 0.5)) everywhere: solid = grey above 127.5."""
    model = build_unet({"levels": 1, "convs_per_level": 1, "base_channels": 1, "kernel_size": 1,
                        "normalization": "none", "output": "logits"}, seed=0)  # fmt: skip
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.zero_()
            if name.endswith("weight"):
                p.fill_(1.0)
        last_bias = [p for name, p in model.named_parameters() if name.endswith("bias")][-1]
        weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
        weights[-1].fill_(40.0)
        last_bias.fill_(-20.0)
    return model.eval()


def test_segment_file_round_trip(files, tmp_path):
    scan, scan_path, model_path = files
    out = tmp_path / "seg" / "solid.tif"
    result = segment_file(scan_path, model_path, out, tile=16, overlap=4)
    written = tifffile.imread(out)
    assert written.dtype == np.uint8 and set(np.unique(written)) <= {0, 255}
    assert result.shape == scan.shape and result.out_path == out and result.seconds > 0
    assert result.total_voxels == scan.size
    assert result.porosity == pytest.approx(np.mean(written == 0))
    assert result.porosity == pytest.approx(np.mean(scan <= 127), abs=0.01)  # the model thresholds at 127.5
    assert read_scan(out).voxel_size_um == pytest.approx(2.5)
    # a legacy model (only "intensity_range"): each scan's own (min, max), as it was trained
    assert result.intensity_range == (float(scan.min()), float(scan.max()))
    with pytest.raises(FileExistsError, match="solid.tif"):
        segment_file(scan_path, model_path, out)
    again = segment_file(scan_path, model_path, out, axes="xyz", overwrite=True)
    assert again.axes == "xyz" and 0 < again.porosity < 1


def test_segment_file_refuses_to_overwrite_the_scan_and_names_bad_models(files, tmp_path):
    scan, scan_path, model_path = files
    with pytest.raises(ValueError, match="input scan"):
        segment_file(scan_path, model_path, tmp_path / "." / "scan.tif", overwrite=True)
    assert np.array_equal(tifffile.imread(scan_path), scan)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="bad.pt"):
        segment_file(scan_path, bad, tmp_path / "out.tif")
    with pytest.raises(ValueError, match="threshold"):
        segment_file(scan_path, model_path, tmp_path / "out.tif", threshold=1.5)


def test_scale_intensity_matches_what_segment_volume_feeds_the_network():
    from foamlib.segment import scale_intensity

    volume = np.array([[0, 5, 10, 20]], dtype=np.uint16)
    out = scale_intensity(volume, (5, 15))
    assert out.dtype == np.float32 and out.tolist() == [[0.0, 0.0, 0.5, 1.0]]
    with pytest.raises(ValueError, match="intensity_range"):
        scale_intensity(volume, (15, 5))


# --------------------------------------------------------------------------- issue 15: models, tiles, outputs


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ({"stage": "cyclegan", "intensity_range": [0, 255]}, "stage 'cyclegan'.*CycleGAN generator"),
        ({"task": "translation", "stage": "cyclegan"}, "task 'translation'"),
        ({"task": "segmentation", "stage": "cyclegan"}, None),  # "task" decides
        ({"stage": "step2", "intensity_range": [0, 255]}, None),  # old step 1 / step 2 files keep working
        ({}, None),
        ({"kind": "cyclegan-g"}, "kind 'cyclegan-g'"),  # as test_cyclegan saves its generator
    ],
)
def test_only_segmentation_models_are_accepted(files, tmp_path, metadata, words):
    scan, scan_path, _ = files
    model_path = save_model(tmp_path / "g.pt", _threshold_model(), metadata=metadata)
    out = tmp_path / "out.tif"
    if words is None:
        assert 0 < segment_file(scan_path, model_path, out, tile=16, overlap=4).porosity < 1
    else:
        with pytest.raises(ModelFileError, match="g.pt is not a segmentation model.*" + words):
            segment_file(scan_path, model_path, out, tile=16, overlap=4)
        assert not out.exists()


def test_a_voxel_size_far_from_the_models_is_reported(files, tmp_path, caplog):
    import logging

    _, scan_path, _ = files  # 2.5 um voxels
    out = tmp_path / "out.tif"
    for model_um, warned in ((2.5, False), (3.7, False), (4.0, True), (1.6, True)):
        model_path = save_model(tmp_path / "m.pt", _threshold_model(), metadata={"voxel_size_um": model_um,
                                "task": "segmentation", "intensity_range": [0, 255]})  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="foamlib.segment"):
            segment_file(scan_path, model_path, out, tile=16, overlap=4, overwrite=True)
        assert ("trained for" in caplog.text) == warned, model_um
    unknown = write_tiff(tmp_path / "unknown.tif", np.arange(64, dtype=np.uint8).reshape(1, 8, 8))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="foamlib.segment"):
        segment_file(unknown, model_path, out, tile=16, overlap=4, overwrite=True)
    assert "trained for" not in caplog.text


def test_tiling_limits_of_the_papers_network_and_the_defaults():
    from foamlib.segment import tiling_limits
    from foamlib.unet import PAPER_BEST_CONFIG, UNet

    paper = tiling_limits(PAPER_BEST_CONFIG)
    assert (paper.min_tile, paper.min_overlap) == (64, 16)
    assert 360 <= paper.receptive_field <= 370  # measured from the input gradient: 367 +- 2
    default = tiling_limits(UNet().config)
    assert (default.min_tile, default.min_overlap) == (48, 16)
    assert tiling_limits(TINY).receptive_field == 22  # measured exactly: 22 px
    for limits in (paper, default):  # segment_volume's and the CLI's defaults pass
        assert limits.min_tile <= 256 and limits.min_overlap <= 32


def test_a_tile_below_the_receptive_field_is_refused_and_a_thin_overlap_reported(caplog):
    import logging

    from foamlib.unet import PAPER_BEST_CONFIG

    paper = build_unet(dict(PAPER_BEST_CONFIG, base_channels=2), seed=0).eval()
    volume = np.random.default_rng(5).random((1, 80, 80), dtype=np.float32)
    with pytest.raises(ValueError, match="tile 3 is too small.*tile >= 64"):
        segment_volume(paper, volume, tile=3, overlap=0)
    with caplog.at_level(logging.WARNING, logger="foamlib.segment"):
        segment_volume(paper, volume, tile=64, overlap=8)
        assert "overlap 8 is below the 16 px" in caplog.text
        caplog.clear()
        segment_volume(paper, volume, tile=64, overlap=16)
        segment_volume(paper, volume, tile=96, overlap=0)  # one tile per slice: nothing to blend
        assert not caplog.text


def test_the_tile_is_checked_before_the_scan_is_read(files, tmp_path):
    from foamlib.unet import PAPER_BEST_CONFIG

    model_path = save_model(tmp_path / "paper.pt", build_unet(dict(PAPER_BEST_CONFIG, base_channels=2), seed=0),
                            metadata={"stage": "step1"})  # fmt: skip
    with pytest.raises(ValueError, match="tile >= 64"):
        segment_file(tmp_path / "no_such_scan.tif", model_path, tmp_path / "out.tif", tile=3, overlap=0)


def test_outputs_inside_the_input_folder_or_on_the_model_are_refused(files, tmp_path):
    scan, _, model_path = files
    folder = tmp_path / "slices"
    folder.mkdir()
    for z in range(scan.shape[0]):
        tifffile.imwrite(folder / f"s{z:02d}.tif", scan[z])
    for out in (folder / "seg.tif", folder / "sub" / "seg.tif", tmp_path / "x" / ".." / "slices" / "seg.tif"):
        with pytest.raises(ValueError, match="inside the input folder"):
            segment_file(folder, model_path, out, tile=16, overlap=4)
    assert sorted(p.name for p in folder.iterdir()) == [f"s{z:02d}.tif" for z in range(scan.shape[0])]
    link = tmp_path / "link"
    link.symlink_to(folder)
    with pytest.raises(ValueError, match="inside the input folder"):
        segment_file(folder, model_path, link / "seg.tif", tile=16, overlap=4)
    odd = tmp_path / "model.tif"
    odd.write_bytes(model_path.read_bytes())
    with pytest.raises(ValueError, match="model file"):
        segment_file(folder, odd, tmp_path / "." / "model.tif", tile=16, overlap=4, overwrite=True)
    assert segment_file(folder, model_path, tmp_path / "seg.tif", tile=16, overlap=4).shape == scan.shape


@pytest.mark.parametrize("axes", ["z", "xyz"])
def test_segment_scan_of_a_lazy_scan_equals_segment_volume_and_streams(model, tmp_path, axes, monkeypatch):
    from foamlib.io import read_mask
    from foamlib.lazy import open_scan
    from foamlib.segment import segment_scan
    from foamlib.structure import porosity

    monkeypatch.setattr("foamlib.lazy.STATS_SLAB_BYTES", 4096)  # the clipping count in slabs of a slice too
    volume = (np.random.default_rng(5).random((20, 37, 41)) * 4000).astype(np.uint16)
    scan = open_scan(write_tiff(tmp_path / "scan.tif", volume, voxel_size_um=2.0))
    reads = []
    original = type(scan).read

    def counting(self, z0, z1):
        reads.append(z1 - z0)
        return original(self, z0, z1)

    type(scan).read = counting
    try:  # a budget of a few slabs: each slab read is thinner than the scan
        result = segment_scan(model, scan, tmp_path / "seg.tif", axes=axes, tile=32, overlap=8, batch_size=4,
                              intensity_range=(200.0, 3800.0), memory_gb=0.0009)
    finally:
        type(scan).read = original
    expected = segment_volume(model, volume.astype(np.float32), axes=axes, tile=32, overlap=8, batch_size=4,
                              intensity_range=(200.0, 3800.0)) >= 0.5
    written = read_mask(tmp_path / "seg.tif")
    np.testing.assert_array_equal(written, expected)  # bit for bit, as segment_file
    assert reads and max(reads) < volume.shape[0]
    assert result.solid_voxels == int(expected.sum()) and result.porosity == pytest.approx(porosity(expected))
    assert result.out_path == tmp_path / "seg.tif" and result.intensity_range == (200.0, 3800.0)
    assert result.clipped_fraction == pytest.approx(np.mean((volume < 200) | (volume > 3800)))
    assert read_scan(tmp_path / "seg.tif").voxel_size_um == pytest.approx(2.0)
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary probability file of "xyz" is gone
    with pytest.raises(FileExistsError):
        segment_scan(model, scan, tmp_path / "seg.tif", tile=32, overlap=8, intensity_range=(0, 1))
    with pytest.raises(ValueError, match="is the input scan"):
        segment_scan(model, scan, tmp_path / "scan.tif", tile=32, overlap=8, intensity_range=(0, 1), overwrite=True)
