"""The pipeline side of scans of any shape: segmentation, samples, plots and the results page (issue 20).

tests/test_shapes.py covers the structure side (structure, threshold, patches, walls, foam, fitting,
render, phantom); this file covers what takes a volume after that.
"""
import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from foamlib.io import write_tiff
from foamlib.segment import segment_volume
from foamlib.unet import build_unet

matplotlib.use("Agg")

SHAPES = [(40, 64, 56), (12, 64, 48)]
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def model():
    return build_unet({"levels": 2, "convs_per_level": 1, "kernel_size": 3, "base_channels": 4}, seed=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_segment_volume_of_any_shape_matches_slice_by_slice(model, shape, torch_one_thread):
    rng = np.random.default_rng(0)
    volume = rng.integers(0, 256, size=shape).astype(np.uint8)
    whole = segment_volume(model, volume, axes="z", tile=32, overlap=16, intensity_range=(0, 255))
    assert whole.shape == shape and whole.dtype == np.float32
    # one slice alone gives the same probabilities: nothing depends on the other axes' lengths
    alone = segment_volume(model, volume[shape[0] // 2 : shape[0] // 2 + 1], axes="z", tile=32, overlap=16,
                           intensity_range=(0, 255))
    np.testing.assert_allclose(whole[shape[0] // 2], alone[0], atol=1e-6)
    xyz = segment_volume(model, volume, axes="xyz", tile=32, overlap=16, intensity_range=(0, 255))
    assert xyz.shape == shape and np.all((xyz >= 0) & (xyz <= 1))


@pytest.mark.parametrize("shape", SHAPES)
def test_prepare_sample_and_plots_take_any_shape(tmp_path, shape):
    from foamlib import plot
    from foamlib.samples import load_sample, prepare_sample

    volume = np.random.default_rng(1).integers(0, 4000, size=shape).astype(np.uint16)
    write_tiff(tmp_path / "scan.tif", volume, voxel_size_um=5.0)
    record = prepare_sample(tmp_path / "run", sample="s", scan_path=tmp_path / "scan.tif")
    scan, again = load_sample(tmp_path / "run")
    assert record.shape == shape == scan.shape and again.voxel_size_um == 5.0
    np.testing.assert_array_equal(scan[:], volume)
    fig = plot.orthogonal_slices(scan, title="s")
    assert len(fig.axes) >= 3
    matplotlib.pyplot.close("all")


@pytest.mark.slow
def test_results_page_shows_the_numbers_of_a_sample_that_stopped_and_lists_the_failure(tmp_path):
    """Notebook 12 on a study where one sample stopped after stage 05 and another failed in stage 01."""
    import papermill
    import pandas as pd

    from foamlib.runfolder import RunFolder
    from foamlib.runs import write_json

    runs = tmp_path / "runs"
    a = RunFolder(runs / "a")
    write_json(a.path / "sample.json", {"sample": "a", "reference_porosity": 0.9, "reference_kind": "measured"})
    a.update_metrics("otsu", {"porosity": 0.87})
    a.update_metrics("step1", {"porosity": 0.91})
    failures = {"a": "06_gan: 06_gan.ipynb: cell [9] raised ValueError: the GAN collapsed",
                "b": "01_otsu_baseline: 01_otsu_baseline.ipynb: cell [5] raised ValueError: bad scan"}
    out = tmp_path / "12.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / "12_results.ipynb"), str(out), cwd=str(NOTEBOOKS), progress_bar=False,
                               parameters={"runs_dir": str(runs), "samples": ["a"], "failures": failures})
    table = pd.read_csv(runs / "_study" / "porosity.csv", index_col=0)
    assert table.loc["a", "Otsu"] == pytest.approx(0.87) and table.loc["a", "step-1 U-Net"] == pytest.approx(0.91)
    assert table.loc["a", "step-1 U-Net error (pp)"] == pytest.approx(1.0) and np.isnan(table.loc["a", "step-2 U-Net"])
    page = json.dumps(json.loads(out.read_text())["cells"])
    assert "06_gan" in page and "01_otsu_baseline" in page and "bad scan" in page
