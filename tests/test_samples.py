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
    assert scan.volume.shape == (32, 32, 32) and scan.volume.dtype == np.float32
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
    np.testing.assert_array_equal(scan.volume, data)
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
