"""Tests of foamlib.export: a segmentation U-Net as an ONNX file that ONNX Runtime runs like torch."""

import json

import numpy as np
import pytest
import torch

from foamlib.cli import main
from foamlib.export import (
    ONNX_TOLERANCE,
    export_onnx,
    onnx_max_difference,
    read_onnx_metadata,
)
from foamlib.segment import DEFAULT_NORMALISATION, IntensityNormalisation, segment_volume
from foamlib.training import ModelFileError, save_model
from foamlib.unet import build_unet

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.usefixtures("torch_one_thread")

#: Three levels and an even kernel: the input is padded to a multiple of 4 with the half-pixel-shift convolutions.
SMALL = {"levels": 3, "convs_per_level": 2, "base_channels": 4, "kernel_size": 4}


def _model_file(path, config=SMALL, *, seed=0, **metadata):
    model = build_unet(config, seed=seed)
    with torch.no_grad():  # non-trivial batch-norm statistics, as a trained model has
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    meta = {"task": "segmentation", "stage": "step1", "normalisation": DEFAULT_NORMALISATION.to_dict(), **metadata}
    save_model(path, model, metadata=meta)
    return model.eval()


def _torch_probabilities(model, x):
    with torch.inference_mode():
        out = model(torch.from_numpy(x))
        return (torch.sigmoid(out) if model.output == "logits" else out).numpy()


def _run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probability"], {"image": x})[0]


@pytest.mark.parametrize("config", [SMALL, {**SMALL, "output": "logits", "normalization": "instance", "kernel_size": 3}])
def test_onnx_reproduces_torch_for_shapes_other_than_the_export_shape(tmp_path, config):
    model = _model_file(tmp_path / "m.pt", config)
    result = export_onnx(tmp_path / "m.pt", tmp_path / "m.onnx")
    assert result.max_abs_difference is not None and result.max_abs_difference <= ONNX_TOLERANCE
    rng = np.random.default_rng(1)
    # the export traced one 16 x 16 slice; these differ in batch, are non-square and not multiples of 4
    for shape in [(1, 1, 16, 16), (3, 1, 37, 90), (2, 1, 101, 18)]:
        x = rng.random(shape, dtype=np.float32)
        onnx_out = _run_onnx(result.path, x)
        reference = _torch_probabilities(model, x)
        assert onnx_out.shape == shape
        assert np.abs(onnx_out - reference).max() < 1e-4
        assert (onnx_out >= 0).all() and (onnx_out <= 1).all()  # probabilities, also for a logits model
    assert onnx_max_difference(result.path, tmp_path / "m.pt", shapes=[(2, 1, 45, 23)]) < 1e-4


def test_onnx_segments_a_volume_like_foamlib_segment(tmp_path):
    """A user's script with ONNX Runtime: normalise by the stored rule, run the slices, threshold at 0.5."""
    model = _model_file(tmp_path / "m.pt")
    export_onnx(tmp_path / "m.pt", tmp_path / "m.onnx")
    meta = read_onnx_metadata(tmp_path / "m.onnx")
    volume = (np.random.default_rng(2).normal(5000, 300, (3, 40, 28))).astype(np.float32)
    norm = IntensityNormalisation.from_dict(json.loads(meta["normalisation"]))
    low, high = norm.range_for(volume)
    x = np.clip((volume - low) / (high - low), 0, 1).astype(np.float32)[:, None]
    probs = _run_onnx(tmp_path / "m.onnx", x)[:, 0]
    reference = segment_volume(model, volume, tile=64, overlap=8, intensity_range=(low, high))  # one tile a slice
    assert np.abs(probs - reference).max() < 1e-4
    assert float(meta["threshold"]) == 0.5


def test_metadata_records_normalisation_phase_tiles_voxel_size_and_version(tmp_path):
    _model_file(tmp_path / "m.pt", voxel_size_um=7.5, intensity_range=[10, 200], sample="foam89")
    result = export_onnx(tmp_path / "m.pt", tmp_path / "m.onnx", verify=False)
    meta = read_onnx_metadata(result.path)
    assert meta == result.metadata and result.max_abs_difference is None
    assert json.loads(meta["normalisation"]) == DEFAULT_NORMALISATION.to_dict()
    assert "solid" in meta["phase_convention"] and "pore" in meta["phase_convention"]
    assert float(meta["voxel_size_um"]) == 7.5 and json.loads(meta["intensity_range"]) == [10.0, 200.0]
    assert (meta["min_tile"], meta["min_overlap"], meta["min_input_size"]) == ("16", "4", "4")  # 2**2 * 4, 2**2, 2**2
    assert meta["foamlib_version"] and meta["exported_by"].startswith("foamlib ")
    assert meta["task"] == "segmentation" and meta["stage"] == "step1" and meta["sample"] == "foam89"
    assert json.loads(meta["unet_config"])["levels"] == 3 and meta["source_model"] == "m.pt"
    # no machine path in the metadata
    assert str(tmp_path) not in "".join(meta.values())


def test_voxel_size_is_left_out_where_unknown(tmp_path):
    _model_file(tmp_path / "m.pt")
    assert "voxel_size_um" not in export_onnx(tmp_path / "m.pt", tmp_path / "m.onnx", verify=False).metadata


def test_export_refuses_to_overwrite_and_writes_nothing_on_a_refusal(tmp_path):
    _model_file(tmp_path / "m.pt")
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="already exists"):
        export_onnx(tmp_path / "m.pt", out)
    assert out.read_bytes() == b"keep"
    with pytest.raises(ValueError, match=r"\.onnx"):
        export_onnx(tmp_path / "m.pt", tmp_path / "m.tif")
    with pytest.raises(ValueError, match="model file"):
        export_onnx(tmp_path / "m.pt", tmp_path / "m.pt", overwrite=True)
    export_onnx(tmp_path / "m.pt", out, overwrite=True, verify=False)
    assert read_onnx_metadata(out)["task"] == "segmentation"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.pt"]  # no temporary file left


def test_a_difference_above_the_tolerance_writes_nothing(tmp_path):
    _model_file(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="differ from torch"):
        export_onnx(tmp_path / "m.pt", tmp_path / "m.onnx", tolerance=1e-30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_export_refuses_a_cyclegan_generator(tmp_path):
    model = build_unet(SMALL, seed=0)
    save_model(tmp_path / "g.pt", model, metadata={"task": "translation", "stage": "cyclegan"})
    with pytest.raises(ModelFileError, match="not a segmentation model"):
        export_onnx(tmp_path / "g.pt", tmp_path / "g.onnx")
    assert not (tmp_path / "g.onnx").exists()


def test_cli_export_prints_the_difference_and_refuses_to_overwrite(tmp_path, capsys):
    _model_file(tmp_path / "m.pt")
    out = tmp_path / "m.onnx"
    assert main(["export", "--model", str(tmp_path / "m.pt"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "onnxruntime reproduces the torch probabilities to" in printed and "of solid" in printed
    difference = float(printed.split("probabilities to ")[1].split()[0])
    assert 0 <= difference < 1e-4
    assert main(["export", "--model", str(tmp_path / "m.pt"), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]
    assert main(["export", "--model", str(tmp_path / "m.pt"), "--out", str(out), "--overwrite"]) == 0


def test_cli_export_of_a_missing_model_is_one_line(tmp_path, capsys):
    assert main(["export", "--model", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pt" in err[0]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_bioimageio_package_validates_and_its_test_tensors_match_the_onnx_weights(tmp_path, capsys):
    """bioimageio.spec leaves files open while it packages (ResourceWarning), hence the filter."""
    pytest.importorskip("bioimageio.spec")
    import zipfile

    from foamlib.export import export_bioimageio

    model = _model_file(tmp_path / "m.pt", voxel_size_um=7.5)
    result = export_bioimageio(tmp_path / "m.pt", tmp_path / "m.zip")
    assert result.validation_status in ("valid-format", "passed")
    assert result.test_max_abs_difference is not None and result.test_max_abs_difference < 1e-4
    with zipfile.ZipFile(result.path) as package:
        names = set(package.namelist())
        assert {"rdf.yaml", "weights.onnx", "test_input.npy", "test_output.npy", "README.md"} <= names
        package.extractall(tmp_path / "unpacked")
    rdf = (tmp_path / "unpacked" / "rdf.yaml").read_text()
    assert "scale_range" in rdf and "min_percentile: 0.5" in rdf and "scale: 7.5" in rdf and "halo: 4" in rdf
    # the test output is what the model gives for the test input after the package's own preprocessing
    grey = np.load(tmp_path / "unpacked" / "test_input.npy")
    low, high = np.percentile(grey, [0.5, 99.5])
    x = np.clip((grey - low) / (high - low + 1e-6), 0, 1).astype(np.float32)
    expected = np.load(tmp_path / "unpacked" / "test_output.npy")
    assert np.abs(_torch_probabilities(model, x) - expected).max() < 1e-6
    assert np.abs(_run_onnx(tmp_path / "unpacked" / "weights.onnx", x) - expected).max() < 1e-4
    assert x.min() == 0 and x.max() == 1 and 0.2 < np.mean(x > 0.5) < 0.7  # a two-phase slice, walls bright
    with pytest.raises(FileExistsError):
        export_bioimageio(tmp_path / "m.pt", tmp_path / "m.zip")
    assert main(["export", "--model", str(tmp_path / "m.pt"), "--out", str(tmp_path / "m.zip"), "--overwrite"]) == 0
    assert "bioimage.io model package" in capsys.readouterr().out


def test_cli_export_without_onnxruntime_says_it_did_not_check(tmp_path, capsys, monkeypatch):
    import foamlib.export

    _model_file(tmp_path / "m.pt")
    monkeypatch.setattr(foamlib.export, "onnxruntime_available", lambda: False)
    assert main(["export", "--model", str(tmp_path / "m.pt"), "--out", str(tmp_path / "m.onnx")]) == 0
    assert "not checked: onnxruntime is not installed" in capsys.readouterr().out
    with pytest.raises(ModuleNotFoundError, match="pip install onnxruntime"):
        export_onnx(tmp_path / "m.pt", tmp_path / "again.onnx")
    assert not (tmp_path / "again.onnx").exists()
