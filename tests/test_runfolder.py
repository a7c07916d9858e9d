import numpy as np
import pytest

from foamlib.io import write_tiff
from foamlib.metrics import OtsuMetrics
from foamlib.runfolder import RunFolder, read_mask, study_folder


def test_every_artefact_has_one_path_in_the_run_folder(tmp_path):
    run = RunFolder(tmp_path / "foam89")
    rel = {name: p.relative_to(run.path).as_posix() for name, p in {
        "otsu_seg": run.otsu_seg, "otsu_structure": run.otsu_structure, "step1_data": run.step1_data,
        "step1_seg": run.step1_seg, "gan_generated": run.gan_generated, "walls": run.walls(0.5),
        "step2_data": run.step2_data(0.25), "sweep": run.sweep_checkpoint(1), "step2_seg": run.step2_seg,
        "step1_model": run.model("step1"), "fid": run.evaluation("fid.csv")}.items()}
    assert rel == {"otsu_seg": "otsu/seg.tif", "otsu_structure": "otsu/structure.json", "step1_data": "step1/data",
                   "step1_seg": "step1/seg.tif", "gan_generated": "step2/gan/generated.tif",
                   "walls": "step2/walls/fraction_0.50.tif", "step2_data": "step2/data/fraction_0.25",
                   "sweep": "step2/sweep/checkpoint_1.00.pt", "step2_seg": "step2/seg.tif",
                   "step1_model": "models/step1.pt", "fid": "evaluation/fid.csv"}
    assert run.segmentation("step1") == run.step1_seg
    assert study_folder(tmp_path) == tmp_path / "_study"


@pytest.mark.parametrize("call", [lambda r: r.model("unet"), lambda r: r.walls(1.5), lambda r: r.evaluation("../x"),
                                  lambda r: r.segmentation("li")])
def test_unknown_artefacts_are_refused(tmp_path, call):
    with pytest.raises(ValueError):
        call(RunFolder(tmp_path))


def test_metrics_round_trip_and_a_missing_file_names_the_stage_to_run(tmp_path):
    run = RunFolder(tmp_path)
    run.update_metrics("otsu", {"porosity": np.float64(0.8)})
    assert run.metrics("otsu") == OtsuMetrics(porosity=0.8)
    assert run.metrics_file("otsu") == tmp_path / "otsu" / "metrics.json"
    with pytest.raises(FileNotFoundError, match="step2"):
        run.metrics("step2")


def test_read_mask_reads_an_all_solid_stack_that_read_scan_would_refuse(tmp_path):
    run = RunFolder(tmp_path)
    write_tiff(run.gan_generated, np.ones((3, 8, 6), bool))
    mask = read_mask(run.gan_generated)
    assert mask.dtype == bool and mask.shape == (3, 8, 6) and mask.all()
    write_tiff(tmp_path / "grey.tif", np.arange(3 * 8 * 6, dtype=np.uint8).reshape(3, 8, 6))
    with pytest.raises(ValueError, match="not a mask"):
        read_mask(tmp_path / "grey.tif")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_mask(tmp_path / "missing.tif")


def test_segmentations_open_lazily_and_the_sweep_has_one_per_fraction(tmp_path):
    run = RunFolder(tmp_path)
    solid = np.random.default_rng(0).random((4, 6, 5)) > 0.6
    write_tiff(run.step1_seg, solid)
    mask = run.open_segmentation("step1")
    np.testing.assert_array_equal(mask[:], run.read_segmentation("step1"))
    np.testing.assert_array_equal(mask[2], solid[2])
    assert mask.porosity() == 1.0 - np.count_nonzero(solid) / solid.size
    assert run.sweep_seg(0.25).relative_to(tmp_path).as_posix() == "step2/sweep/seg_0.25.tif"
    with pytest.raises(FileNotFoundError, match="seg.tif does not exist; run the stage"):
        run.open_segmentation("step2")
