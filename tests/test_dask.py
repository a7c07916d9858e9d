"""Dask: chunked inference bit-identical to segment_volume, segment_file on a cluster, per-sample tasks."""

from __future__ import annotations

import functools
import os

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster

from foamlib import distributed as fd
from foamlib.cli import main
from foamlib.io import read_scan, write_tiff
from foamlib.lazy import open_scan
from foamlib.segment import DEFAULT_NORMALISATION, segment_file, segment_volume
from foamlib.training import save_model
from foamlib.unet import build_unet

TINY = {"levels": 2, "convs_per_level": 2, "base_channels": 4, "kernel_size": 3}
OPTIONS = {"tile": 16, "overlap": 4, "batch_size": 3}

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def client():
    """A two-worker LocalCluster (threads: starts in a second; the process cluster is tested once, marked slow)."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster:
        with Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def model():
    return build_unet(TINY, seed=0).eval()


@pytest.fixture(scope="module")
def volume():
    return (np.random.default_rng(0).random((20, 40, 36)) * 3000 + 1000).astype(np.uint16)


@pytest.mark.parametrize("axes", ["z", "xyz"])
def test_segment_dask_equals_segment_volume_bit_for_bit(client, model, volume, axes):
    reference = segment_volume(model, volume, axes=axes, intensity_range=(1000.0, 4000.0), device="cpu", **OPTIONS)
    array = da.from_array(volume, chunks=(7, 17, 19))  # chunks that cut slices: rechunked to whole slices
    for depth in (None, (5, 7, 2)):
        probs = fd.segment_dask(model, array, axes=axes, intensity_range=(1000.0, 4000.0), depth=depth, **OPTIONS)
        assert probs.dtype == np.float32 and probs.shape == volume.shape
        np.testing.assert_array_equal(probs.compute(), reference)  # on the cluster
    assert probs.numblocks[0 if axes == "z" else 2] > 1
    with dask.config.set({"array.rechunk.method": "tasks"}):  # with a Client about, rechunks would be p2p shuffles
        probs = fd.segment_dask(model, array, axes=axes, intensity_range=(1000.0, 4000.0), depth=4, **OPTIONS)
    np.testing.assert_array_equal(probs.compute(scheduler="threads"), reference)  # without the cluster
    assert model.training is False and next(model.parameters()).device.type == "cpu"  # the caller's model untouched


def test_segment_dask_applies_the_dtype_rules(model):
    grey = (np.random.default_rng(1).random((6, 20, 20)) * 255).round().astype(np.float32)
    probs = fd.segment_dask(model, da.from_array(grey, chunks=(2, 10, 10)), **OPTIONS)
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(probs.compute(), segment_volume(model, grey, **OPTIONS))
    with pytest.raises(ValueError, match=r"cannot tell how to scale grey values from -1 to"):
        fd.segment_dask(model, da.from_array(grey - 1, chunks=(3, 20, 20)), **OPTIONS)
    with pytest.raises(TypeError, match="must be a dask.array.Array"):
        fd.segment_dask(model, grey, **OPTIONS)
    with pytest.raises(ValueError, match=r"non-empty \(Z, Y, X\)"):
        fd.segment_dask(model, da.zeros((4, 4)), **OPTIONS)
    with pytest.raises(ValueError, match="depth must be a positive integer or three"):
        fd.segment_dask(model, da.from_array(grey), depth=(1, 0, 1), axes="xyz", **OPTIONS)
    with pytest.raises(ValueError, match="precision 'fp16' needs a CUDA device"):
        fd.segment_dask(model, da.from_array(grey), precision="fp16", device="cpu", **OPTIONS)


@pytest.fixture(scope="module")
def saved(tmp_path_factory, model, volume):
    folder = tmp_path_factory.mktemp("dask")
    model_path = save_model(folder / "model.pt", model, metadata={
        "task": "segmentation", "normalisation": DEFAULT_NORMALISATION.to_dict()})  # fmt: skip
    return folder, model_path, write_tiff(folder / "scan.tif", volume, voxel_size_um=3.0)


@pytest.mark.parametrize(("axes", "suffix"), [("z", ".tif"), ("xyz", ".zarr")])
def test_segment_file_on_a_cluster_equals_the_single_process(client, saved, axes, suffix):
    folder, model_path, scan = saved
    options = {**OPTIONS, "axes": axes, "memory_gb": 0.0006, "device": "cpu"}  # slabs of a few slices
    alone = segment_file(scan, model_path, folder / f"alone-{axes}.tif", **options)
    out = folder / f"dask-{axes}{suffix}"
    spread = segment_file(scan, model_path, out, scheduler=client, **options)
    assert spread.solid_voxels == alone.solid_voxels and spread.porosity == alone.porosity
    np.testing.assert_array_equal(open_scan(out)[:], read_scan(alone.out_path).volume.astype(np.uint8))
    assert spread.memory_estimate_bytes == alone.memory_estimate_bytes
    if suffix == ".zarr":
        assert zarr.open_group(str(out), mode="r").attrs["foamlib"]["voxel_size_um"] == 3.0


def test_cli_segment_with_a_scheduler_address(client, saved, capsys):
    folder, model_path, scan = saved
    out = folder / "cli.tif"
    address = client.scheduler.address  # an in-process scheduler still listens on its address
    code = main(["segment", str(scan), "--model", str(model_path), "--out", str(out), "--tile", "16", "--overlap",
                 "4", "--batch-size", "3", "--device", "cpu", "--scheduler", address, "--precision", "fp32", "--json"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    reference = segment_file(scan, model_path, folder / "cli-ref.tif", **OPTIONS, device="cpu")
    np.testing.assert_array_equal(read_scan(out).volume, read_scan(reference.out_path).volume)


def test_dask_client_refuses_bad_schedulers(monkeypatch):
    with pytest.raises(ValueError, match="scheduler must be 'local' or a Dask scheduler address"):
        with fd.dask_client(""):
            pass
    with pytest.raises(ValueError, match="n_workers must be a positive integer"):
        with fd.dask_client("local", n_workers=0):
            pass
    monkeypatch.setattr(fd, "CONNECT_TIMEOUT", "0.5s")
    with pytest.raises(ValueError, match=r"cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        with fd.dask_client("tcp://127.0.0.1:9"):
            pass


def _square(sample: int) -> int:
    if sample == 3:
        raise RuntimeError(f"sample {sample} is broken")
    return sample * sample


def _pid(sample: str, *, prefix: str) -> tuple[str, int]:
    return f"{prefix}{sample}", os.getpid()


def test_run_samples_keeps_order_and_fails_only_the_failing_sample(client):
    seen = []
    results = fd.run_samples(_square, [1, 2, 3, 4], scheduler=client, on_result=seen.append)
    assert [r.sample for r in results] == [1, 2, 3, 4]
    assert [r.value for r in results] == [1, 4, None, 16]
    assert [r.ok for r in results] == [True, True, False, True]
    assert isinstance(results[2].error, RuntimeError) and "sample 3 is broken" in str(results[2].error)
    assert sorted(r.sample for r in seen) == [1, 2, 3, 4] and all(r.seconds >= 0 for r in results)
    with pytest.raises(ValueError, match="samples is empty"):
        fd.run_samples(_square, [], scheduler=client)
    with pytest.raises(TypeError, match="function must be callable"):
        fd.run_samples(42, [1], scheduler=client)


@pytest.mark.slow
def test_run_samples_on_a_local_process_cluster():
    results = fd.run_samples(functools.partial(_pid, prefix="s-"), ["a", "b", "c"], scheduler="local", n_workers=2)
    assert [r.value[0] for r in results] == ["s-a", "s-b", "s-c"]
    pids = {r.value[1] for r in results}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # worker processes, two at most


@pytest.mark.slow
def test_study_runs_each_sample_as_a_dask_task(tmp_path):
    """`foamlib study run --scheduler local`: each sample's stages as one task in a worker process of a
    LocalCluster (papermill's kernels are started from the workers' main threads, as for a user), with
    the same run folders and cache as without."""
    from fake_notebooks import write_notebook

    from foamlib.study import SampleSpec, run_study

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "00_first.ipynb", "run_dir = 'x'\na = 1",
                   "import pathlib\npathlib.Path(run_dir, 'a.txt').write_text(str(a))")
    write_notebook(notebooks / "01_second.ipynb", "run_dir = 'x'\nsample = 's'",
                   "assert sample != 'bad', 'this sample fails'\nimport pathlib\n"
                   "pathlib.Path(run_dir, 'b.txt').write_text(sample)")
    runs = tmp_path / "runs"
    results = run_study([SampleSpec("s1"), SampleSpec("bad")], profile={"a": 3}, notebooks_dir=notebooks,
                        runs_dir=runs, jobs=2, scheduler="local")
    status = {(r.sample, r.stage): r.status for r in results}
    assert status == {("s1", "00_first"): "ran", ("s1", "01_second"): "ran",
                      ("bad", "00_first"): "ran", ("bad", "01_second"): "failed"}
    assert (runs / "s1" / "a.txt").read_text() == "3" and (runs / "s1" / "b.txt").read_text() == "s1"
    assert (runs / "bad" / "failed" / "01_second.ipynb").is_file()
    again = run_study([SampleSpec("s1")], profile={"a": 3}, notebooks_dir=notebooks, runs_dir=runs, jobs=1,
                      scheduler="local")
    assert [r.status for r in again] == ["skipped", "skipped"]  # the cache is the runner's, wherever it ran
