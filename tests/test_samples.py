"""Stage 00's logic: a demo sample or a user's scan into a run folder."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from foamlib.io import ScanError, read_scan
from foamlib.samples import SampleRecord, demo_names, load_sample, load_truth, prepare_sample


def test_demo_sample_writes_scan_truth_and_record(tmp_path):
    record = prepare_sample(tmp_path, sample="foam86", size=32)
    assert demo_names() == ("foam89", "foam86", "foam82")
    assert record.reference_kind == "truth" and record.source == "demo"
    assert record.reference_porosity == pytest.approx(0.8599, abs=0.005)
    scan, again = load_sample(tmp_path)
    assert again == record
    assert scan.shape == (32, 32, 32) and scan[:].shape == (32, 32, 32)
    assert scan.voxel_size_um == pytest.approx(record.voxel_size_um)
    truth = load_truth(tmp_path)
    assert truth.dtype == bool and truth.shape == (32, 32, 32)


def test_user_scan_is_copied_not_touched(tmp_path):
    source = tmp_path / "mine.tif"
    data = np.random.default_rng(1).integers(0, 255, (8, 16, 16), dtype=np.uint8)
    tifffile.imwrite(source, data)
    before = source.read_bytes()
    record = prepare_sample(tmp_path / "run", sample="mine", scan_path=source, voxel_size_um=4.0, reference_porosity=0.9)
    assert source.read_bytes() == before
    assert record.reference_kind == "measured" and record.original_dtype == "uint8"
    scan, _ = load_sample(tmp_path / "run")
    assert scan.dtype == np.uint8
    np.testing.assert_array_equal(scan[:], data)
    assert tifffile.imread(tmp_path / "run" / "scan.tif").dtype == np.uint8
    assert read_scan(tmp_path / "run" / "scan.tif").voxel_size_um == pytest.approx(4.0)
    assert load_truth(tmp_path / "run") is None


def test_record_round_trip():
    record = SampleRecord("a", "demo", (1, 2, 3), None, 0.5, "truth", "float32", (0.0, 1.0), {"x": 1})
    assert SampleRecord.from_dict(record.to_dict()) == record


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample": "nope"}, "unknown sample 'nope'.*foam89"),
        ({"sample": "foam89", "reference_porosity": 0.9}, "exact reference porosity"),
        ({"sample": "x", "scan_path": "x.tif", "reference_porosity": 89.0}, "fraction"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        prepare_sample(tmp_path, **kwargs)


def test_a_scan_inside_its_own_run_folder_is_refused(tmp_path):
    prepare_sample(tmp_path, sample="foam89", size=16)
    with pytest.raises(ValueError, match="run folder's own copy"):
        prepare_sample(tmp_path, sample="foam89", scan_path=tmp_path / "scan.tif")


def test_missing_scan_and_missing_stage(tmp_path):
    with pytest.raises(ScanError, match="missing.tif"):
        prepare_sample(tmp_path, sample="x", scan_path=tmp_path / "missing.tif")
    with pytest.raises(FileNotFoundError, match="00_samples"):
        load_sample(tmp_path / "empty")


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float64", ">u2"])
def test_a_users_scan_is_copied_slab_by_slab_with_read_scans_values(tmp_path, monkeypatch, dtype):
    from foamlib import lazy

    monkeypatch.setattr(lazy, "STATS_SLAB_BYTES", 64)  # slabs of a few slices
    data = (np.random.default_rng(2).random((9, 6, 5)) * 200 - (50 if dtype in ("int16", "float64") else 0)).astype(dtype)
    source = tmp_path / "scan.raw"
    data.tofile(source)
    kwargs = {"shape": data.shape, "dtype": np.dtype(dtype).newbyteorder("="),
              "byte_order": "big" if dtype.startswith(">") else "little"}
    record = prepare_sample(tmp_path / "run", sample="raw", scan_path=source, voxel_size_um=2.0, **kwargs)
    expected = read_scan(source, **kwargs)
    assert record.original_dtype == expected.original_dtype and record.original_range == expected.original_range
    assert record.shape == data.shape
    scan, _ = load_sample(tmp_path / "run")
    np.testing.assert_array_equal(scan[:].astype(np.float32), expected.volume)
    assert scan.dtype == (np.dtype(dtype).newbyteorder("=") if dtype in ("uint8", "uint16", ">u2") else np.float32)


def test_a_users_scan_with_nan_is_refused_before_anything_is_written(tmp_path):
    data = np.ones((3, 4, 4), dtype=np.float32)
    data[1, 2, 2] = np.nan
    np.save(tmp_path / "nan.npy", data)
    with pytest.raises(ScanError, match="1 NaN"):
        prepare_sample(tmp_path / "run", sample="nan", scan_path=tmp_path / "nan.npy")
    assert not (tmp_path / "run" / "scan.tif").exists()


def test_grey_sample_and_analysis_region_are_the_whole_scan_when_it_fits(tmp_path, monkeypatch):
    from foamlib import samples
    from foamlib.samples import SAMPLE_VOXELS, analysis_region, grey_sample

    data = np.random.default_rng(4).integers(0, 4000, (10, 12, 14), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "mine.tif", data)
    prepare_sample(tmp_path / "run", sample="mine", scan_path=tmp_path / "mine.tif")
    scan, _ = load_sample(tmp_path / "run")
    truth = data > 2000
    grey, sampled, none = grey_sample(scan, truth, None)
    assert grey.dtype == np.float32 and none is None
    np.testing.assert_array_equal(grey, data)
    np.testing.assert_array_equal(sampled, truth)
    assert analysis_region(scan.shape) == (slice(0, 10), slice(0, 12), slice(0, 14)) and SAMPLE_VOXELS == 2**24
    monkeypatch.setattr(samples, "SAMPLE_VOXELS", 100)  # a scan larger than the sample
    grey, sampled = grey_sample(scan, truth)
    np.testing.assert_array_equal(grey, data[::3, ::3, ::3])  # 4 * 4 * 5 = 80 <= 100
    np.testing.assert_array_equal(sampled, truth[::3, ::3, ::3])
    box = analysis_region(scan.shape)
    assert np.prod([s.stop - s.start for s in box]) <= 100
    with pytest.raises(ValueError, match="does not fit the scan"):
        grey_sample(scan, truth[1:])
