"""Streaming segmentation of scans larger than the memory budget: same result as in memory."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from foamlib import lazy
from foamlib.io import read_scan, tiff_slab_writer, write_tiff
from foamlib.lazy import open_scan
from foamlib.runs import is_temporary
from foamlib.segment import (
    DEFAULT_NORMALISATION,
    StreamPlan,
    plan_stream,
    segment_file,
    segment_volume,
)
from foamlib.training import save_model
from foamlib.unet import build_unet

TINY = {"levels": 2, "convs_per_level": 2, "base_channels": 4, "kernel_size": 3}
SHAPE = (24, 64, 64)
OPTIONS = {"tile": 16, "overlap": 4, "batch_size": 2}
BUDGETS = (0.0003, 0.00035)  # GB: slabs of a few slices (see the test)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """An untrained tiny U-Net saved with the default normalisation, and a uint16 scan as TIFF, raw and .npy."""
    folder = tmp_path_factory.mktemp("stream")
    model = build_unet(TINY, seed=0).eval()
    model_path = save_model(folder / "model.pt", model, metadata={
        "task": "segmentation", "normalisation": DEFAULT_NORMALISATION.to_dict()})  # fmt: skip
    volume = (np.random.default_rng(0).random(SHAPE) * 3000 + 1000).astype(np.uint16)
    tiff = write_tiff(folder / "scan.tif", volume, voxel_size_um=3.0)
    raw = folder / "scan.raw"
    volume.tofile(raw)
    npy = folder / "scan.npy"
    np.save(npy, volume)
    zlib = folder / "zlib.tif"
    tifffile.imwrite(zlib, volume, compression="zlib")  # not memory-mappable: read page by page
    inputs = {
        "tiff": (tiff, {}),
        "zlib": (zlib, {"voxel_size_um": 3.0}),
        "raw": (raw, {"shape": SHAPE, "dtype": "uint16", "voxel_size_um": 3.0}),
        "npy": (npy, {"voxel_size_um": 3.0}),
    }
    return model, model_path, volume, inputs


@pytest.fixture(scope="module")
def in_memory(setup):
    """The in-memory path for each axes: read_scan, the scan's percentile range, segment_volume."""
    model, _, _, inputs = setup
    volume = read_scan(inputs["tiff"][0]).volume
    low_high = DEFAULT_NORMALISATION.range_for(volume)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the tests (torch_one_thread), which this module-scoped fixture precedes
    try:
        return {axes: (segment_volume(model, volume, axes=axes, intensity_range=low_high, **OPTIONS), low_high)
                for axes in ("z", "xyz")}  # fmt: skip
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("axes", ["z", "xyz"])
@pytest.mark.parametrize("fmt", ["tiff", "raw", "npy", "zlib"])
def test_streamed_segmentation_equals_the_in_memory_one(setup, in_memory, tmp_path, monkeypatch, axes, fmt):
    model, model_path, volume, inputs = setup
    monkeypatch.setattr(lazy, "MAP_CHUNK_BYTES", 4 * 64 * 64 * 2)  # memory maps of four slices at a time
    path, kwargs = inputs[fmt]
    probs, low_high = in_memory[axes]
    # The threshold is the median probability, so half the voxels lie on either side and a change
    # of one unit in the last place of any probability near it would show.
    threshold = float(np.median(probs))
    expected = probs >= threshold
    outputs, depths = [], set()
    for memory_gb in BUDGETS:
        plan = plan_stream(SHAPE, volume.dtype, axes=axes, memory_gb=memory_gb, base_channels=4, **OPTIONS)
        # the whole budget is smaller than the scan as float32 (what read_scan would hold), and no slab holds the scan
        assert plan.memory_budget_bytes < volume.size * 4
        assert plan.z_depth < SHAPE[0] and (axes == "z" or (plan.y_depth < SHAPE[1] and plan.x_depth < SHAPE[2]))
        depths.add((plan.z_depth, plan.y_depth, plan.x_depth))
        out = tmp_path / f"solid_{memory_gb}.tif"
        result = segment_file(path, model_path, out, axes=axes, threshold=threshold, memory_gb=memory_gb,
                              **OPTIONS, **kwargs)  # fmt: skip
        assert result.intensity_range == low_high
        assert result.memory_estimate_bytes == plan.peak_bytes <= plan.memory_budget_bytes
        written = tifffile.imread(out)
        np.testing.assert_array_equal(written == 255, expected)  # bit for bit
        assert result.solid_voxels == int(np.count_nonzero(expected))
        assert result.porosity == pytest.approx(1 - np.mean(expected))
        outputs.append(written)
    assert len(depths) == 2  # the two budgets really gave different slabs
    assert not [p for p in tmp_path.iterdir() if is_temporary(p.name)]  # the temporary probability file is gone


def test_the_output_is_an_imagej_tiff_with_the_voxel_size(setup, tmp_path):
    model, model_path, volume, inputs = setup
    out = tmp_path / "solid.tif"
    segment_file(inputs["tiff"][0], model_path, out, memory_gb=0.01, **OPTIONS)
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej and tif.series[0].shape == SHAPE and tif.series[0].dtype == np.uint8
        assert tif.imagej_metadata["unit"] == "um" and tif.imagej_metadata["spacing"] == pytest.approx(3.0)
    assert set(np.unique(tifffile.imread(out))) <= {0, 255}
    assert read_scan(out).voxel_size_um == pytest.approx(3.0)
    assert open_scan(out).source == "memmap"


def test_a_budget_too_small_names_the_budget_that_would_do(setup, tmp_path):
    model, model_path, volume, inputs = setup
    with pytest.raises(ValueError, match=r"too small .* give at least memory_gb=0\.00") as info:
        segment_file(inputs["tiff"][0], model_path, tmp_path / "solid.tif", memory_gb=0.0001, **OPTIONS)
    assert "--memory" in str(info.value)
    assert not (tmp_path / "solid.tif").exists()
    with pytest.raises(TypeError, match="memory_gb"):
        plan_stream(SHAPE, np.uint16, memory_gb="2")
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="memory_gb"):
            plan_stream(SHAPE, np.uint16, memory_gb=bad)


def test_plan_depths_fill_whole_batches_and_shrink_with_the_budget():
    small = plan_stream((100, 512, 512), np.uint16, axes="xyz", memory_gb=0.5)
    large = plan_stream((100, 512, 512), np.uint16, axes="xyz", memory_gb=2.0)
    assert isinstance(small, StreamPlan) and small.peak_bytes <= 0.5e9 and large.peak_bytes <= 2e9
    assert small.z_depth < large.z_depth
    # 512^2 slices with tile 256, overlap 32: 3 x 3 tiles, so 8 slices fill whole batches of 8
    assert small.z_depth % 8 == 0
    assert small.temp_disk_bytes == 4 * 100 * 512 * 512
    assert plan_stream((100, 512, 512), np.uint16, axes="z").temp_disk_bytes == 0
    assert "peak memory" in small.describe() and "temporary disk" in small.describe()
    # fewer slices than fill a batch: one slab of all of them, where it fits
    assert plan_stream((3, 512, 512), np.uint16, memory_gb=0.295, batch_size=8).z_depth == 3  # 3 fit, 8 would not


def test_memory_maps_are_read_in_chunks(setup, monkeypatch):
    model, model_path, volume, inputs = setup
    monkeypatch.setattr(lazy, "MAP_CHUNK_BYTES", 3 * 64 * 64 * 2)  # three slices per mapped chunk
    scan = open_scan(inputs["npy"][0])
    for key in (np.s_[:, 5:9], np.s_[:, :, 30:], np.s_[::7, ::2], np.s_[3:17:4, 1]):
        np.testing.assert_array_equal(scan[key], volume[key])


def test_slab_writer_refuses_missing_slices_and_leaves_nothing(tmp_path):
    out = tmp_path / "solid.tif"
    with pytest.raises(RuntimeError, match="1 of 3 slices were never written"):
        with tiff_slab_writer(out, (3, 4, 5), voxel_size_um=2.0) as writer:
            writer.write(0, np.ones((2, 4, 5), dtype=bool))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="outside 3 slices"):
        with tiff_slab_writer(out, (3, 4, 5)) as writer:
            writer.write(2, np.ones((2, 4, 5), dtype=bool))
    with tiff_slab_writer(out, (3, 4, 5), voxel_size_um=2.0) as writer:
        writer.write(1, np.ones((2, 4, 5), dtype=bool))
        writer.write(0, np.zeros((1, 4, 5), dtype=np.uint8))
    np.testing.assert_array_equal(tifffile.imread(out), np.repeat([0, 255, 255], 20).reshape(3, 4, 5))
    with pytest.raises(FileExistsError):
        with tiff_slab_writer(out, (3, 4, 5)):
            pass


def test_slab_writer_writes_uint16_and_float32_stacks(tmp_path):
    volume = (np.arange(60).reshape(3, 4, 5) * 1000).astype(np.uint16)
    with tiff_slab_writer(tmp_path / "grey.tif", volume.shape, dtype=np.uint16, voxel_size_um=1.5) as writer:
        writer.write(0, volume[:2])
        writer.write(2, volume[2:].astype(">u2"))
        with pytest.raises(ValueError, match="uint16"):
            writer.write(0, volume[:1].astype(np.uint8))
    scan = open_scan(tmp_path / "grey.tif")
    np.testing.assert_array_equal(scan.read(0, 3), volume)
    assert scan.voxel_size_um == pytest.approx(1.5)
    with pytest.raises(TypeError, match="uint8, uint16 or float32"):
        with tiff_slab_writer(tmp_path / "f.tif", (3, 4, 5), dtype=np.float64):
            pass


def test_xyz_checks_the_disk_space_for_its_temporary_file(setup, tmp_path, monkeypatch):
    import shutil

    model, model_path, volume, inputs = setup
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    out = tmp_path / "new" / "solid.tif"
    with pytest.raises(ValueError, match=f"{tmp_path} has 0.00 MB free, but segmenting with axes='xyz' needs"):
        segment_file(inputs["tiff"][0], model_path, out, axes="xyz", **OPTIONS)
    segment_file(inputs["tiff"][0], model_path, out, axes="z", **OPTIONS)  # z needs no temporary file


@pytest.mark.parametrize("axes", ["z", "xyz"])
def test_probabilities_and_a_pore_label_are_written_on_every_path(setup, in_memory, tmp_path, monkeypatch, axes):
    """The probability stack equals segment_volume's bit for bit, one slab or many; --label pore inverts the mask."""
    from foamlib.io import mask_label, read_mask

    model, model_path, volume, inputs = setup
    monkeypatch.setattr(lazy, "MAP_CHUNK_BYTES", 4 * 64 * 64 * 2)  # as in the test above, so the small budget fits
    probs, _ = in_memory[axes]
    for memory_gb, label in ((BUDGETS[0], "pore"), (1.0, "solid")):  # slabs of a few slices; the whole scan at once
        plan = plan_stream(SHAPE, volume.dtype, axes=axes, memory_gb=memory_gb, base_channels=4, **OPTIONS)
        assert (plan.z_depth < SHAPE[0]) == (memory_gb == BUDGETS[0])
        out, prob_out = tmp_path / f"seg_{label}.tif", tmp_path / f"prob_{label}.tif"
        result = segment_file(inputs["tiff"][0], model_path, out, axes=axes, memory_gb=memory_gb, label=label,
                              probabilities=prob_out, **OPTIONS)  # fmt: skip
        assert result.probabilities_path == prob_out and result.label == label
        written = tifffile.imread(prob_out)
        assert written.dtype == np.float32
        np.testing.assert_array_equal(written, probs)  # bit for bit
        assert read_scan(prob_out).voxel_size_um == pytest.approx(3.0) and mask_label(prob_out) == "solid"
        mask = tifffile.imread(out)
        np.testing.assert_array_equal(mask == 255, (probs >= 0.5) if label == "solid" else (probs < 0.5))
        np.testing.assert_array_equal(read_mask(out), probs >= 0.5)  # read back as True = solid either way
        assert mask_label(out) == label and result.porosity == pytest.approx(np.mean(probs < 0.5))
    assert not [p for p in tmp_path.iterdir() if is_temporary(p.name)]


def test_probabilities_are_checked_before_any_work_and_nothing_is_left_on_a_refusal(setup, tmp_path):
    model, model_path, volume, inputs = setup
    scan = inputs["tiff"][0]
    taken = tmp_path / "prob.tif"
    taken.write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="prob.tif"):
        segment_file(scan, model_path, tmp_path / "seg.tif", probabilities=taken, **OPTIONS)
    with pytest.raises(ValueError, match="same file"):
        segment_file(scan, model_path, tmp_path / "seg.tif", probabilities=tmp_path / "seg.tif", **OPTIONS)
    with pytest.raises(ValueError, match="input scan"):
        segment_file(scan, model_path, tmp_path / "seg.tif", probabilities=scan, overwrite=True, **OPTIONS)
    with pytest.raises(ValueError, match="label must be one of"):
        segment_file(scan, model_path, tmp_path / "seg.tif", label="True", **OPTIONS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prob.tif"] and taken.read_bytes() == b"keep"
    # a failure in the run leaves neither stack behind
    with pytest.raises(ValueError, match="too small"):
        segment_file(scan, model_path, tmp_path / "seg.tif", probabilities=tmp_path / "p2.tif", memory_gb=0.0001,
                      **OPTIONS)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prob.tif"]
