"""Benchmark: chunked inference on a two-worker Dask LocalCluster against the single process.

Writes a synthetic uint16 foam scan (the noisy gyroid of ``bench_large.py``) of
``--size``^3 voxels and a small untrained U-Net, then segments it

1. in this process: ``read_scan`` and ``segment_volume`` (one torch thread);
2. on a LocalCluster of ``--workers`` single-threaded worker processes:
   :func:`foamlib.distributed.segment_dask` over a dask array of the lazily
   opened scan (:func:`foamlib.distributed.scan_to_dask`), blocks of whole
   slices;
3. with ``foamlib.segment.segment_file(..., scheduler=client)`` (streamed,
   thresholded on the workers, written as OME-Zarr) against ``segment_file``
   in this process (TIFF);

and prints the timings (cluster start-up apart) and whether the outputs are
the same bit for bit (exit status 1 if not).

Run::

    python benchmarks/bench_dask.py --size 256 --workers 2

and quickly, as a check of the script itself::

    python benchmarks/bench_dask.py --size 64 --tile 64
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

MODEL_CONFIG = {"levels": 2, "convs_per_level": 2, "base_channels": 4, "kernel_size": 3}


def _warm_up() -> None:
    """Import what the tasks use, so that the timings do not include the workers' first imports."""
    import torch  # noqa: F401

    import foamlib.distributed  # noqa: F401
    import foamlib.segment  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="edge of the cubic scan in voxels (default 256)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the LocalCluster (default 2)")
    parser.add_argument("--axes", choices=("z", "xyz"), default="z")
    parser.add_argument("--tile", type=int, default=256, help="tile side (default 256)")
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--memory", type=float, default=0.2, help="--memory of segment_file, GB (default 0.2: "
                        "several slabs at 256^3; 0.05 became too small for one slab when the plan's estimate "
                        "grew to count the network's activations)")
    parser.add_argument("--workdir", type=Path, help="folder for the files (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch
    from distributed import Client, LocalCluster

    from bench_large import write_scan
    from foamlib.distributed import scan_to_dask, segment_dask
    from foamlib.io import read_scan
    from foamlib.lazy import open_scan
    from foamlib.segment import DEFAULT_NORMALISATION, segment_file, segment_volume
    from foamlib.training import save_model
    from foamlib.unet import build_unet

    torch.set_num_threads(1)  # as each single-threaded worker
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_dask_"))
    work.mkdir(parents=True, exist_ok=True)
    n_voxels = args.size**3
    options = {"axes": args.axes, "tile": args.tile, "overlap": args.overlap, "batch_size": args.batch_size}
    figures: dict[str, object] = {"size": args.size, "workers": args.workers, **options, "model": MODEL_CONFIG}
    try:
        scan_path, model_path = work / "scan.tif", work / "model.pt"
        write_scan(scan_path, args.size)
        model = build_unet(MODEL_CONFIG, seed=0).eval()
        save_model(model_path, model, metadata={"task": "segmentation",
                                                "normalisation": DEFAULT_NORMALISATION.to_dict()})  # fmt: skip
        scan = open_scan(scan_path)
        low_high = DEFAULT_NORMALISATION.range_for(scan)

        start = time.perf_counter()
        volume = read_scan(scan_path).volume
        single = segment_volume(model, volume, intensity_range=low_high, device="cpu", **options)
        figures["single_s"] = time.perf_counter() - start
        del volume

        start = time.perf_counter()
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})  # fmt: skip
        client = Client(cluster)
        client.run(_warm_up)
        figures["cluster_start_s"] = time.perf_counter() - start
        try:
            start = time.perf_counter()
            probs = segment_dask(model, scan_to_dask(scan), intensity_range=low_high, device="cpu", **options).compute()
            figures["dask_s"] = time.perf_counter() - start
            figures["dask_bit_identical"] = bool(np.array_equal(probs, single))
            del probs, single

            common = {**options, "memory_gb": args.memory, "device": "cpu"}
            start = time.perf_counter()
            alone = segment_file(scan_path, model_path, work / "alone.tif", **common)
            figures["segment_file_s"] = time.perf_counter() - start
            start = time.perf_counter()
            spread = segment_file(scan_path, model_path, work / "dask.zarr", scheduler=client, **common)
            figures["segment_file_dask_s"] = time.perf_counter() - start
            a, b = open_scan(alone.out_path), open_scan(spread.out_path)
            figures["segment_file_identical"] = bool(spread.solid_voxels == alone.solid_voxels and all(
                np.array_equal(a.read(z0, z1), b.read(z0, z1)) for z0, z1 in a.slabs(32)))  # fmt: skip
        finally:
            client.close()
            cluster.close()
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"scan {args.size}^3 uint16, axes {args.axes}, tile {args.tile}, overlap {args.overlap}, batch "
          f"{args.batch_size}, model {MODEL_CONFIG}")  # fmt: skip
    print(f"single process, 1 thread (segment_volume): {figures['single_s']:.1f} s, "
          f"{n_voxels / figures['single_s'] / 1e6:.2f} M voxels/s")  # fmt: skip
    print(f"LocalCluster of {args.workers} single-threaded workers (segment_dask): {figures['dask_s']:.1f} s, "
          f"{n_voxels / figures['dask_s'] / 1e6:.2f} M voxels/s (start-up and imports {figures['cluster_start_s']:.1f} s apart); "
          f"bit-identical: {figures['dask_bit_identical']}")  # fmt: skip
    print(f"segment_file --memory {args.memory:g}: in this process {figures['segment_file_s']:.1f} s, on the cluster "
          f"{figures['segment_file_dask_s']:.1f} s (OME-Zarr); same mask: {figures['segment_file_identical']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if figures["dask_bit_identical"] and figures["segment_file_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
