"""Benchmark: ``foamlib segment`` on a scan far larger than its memory budget.

Writes a synthetic uint16 foam scan (a noisy gyroid, ImageJ TIFF) of ``--size``^3
voxels, slab by slab, and a small untrained U-Net; then runs, each as a
subprocess whose peak resident memory is read from the kernel (``os.wait4``,
``ru_maxrss``, which counts every page the process had resident, memory-mapped
file pages included):

1. ``foamlib segment`` (streamed, lazy reading) with ``--memory``;
2. the in-memory path: ``read_scan`` (float32 copy), the scan's percentile range,
   ``segment_volume``, threshold, ``write_tiff``.

It prints time, throughput (voxels per second), peak memory of both, the plan's
estimate, and whether the two segmentations are bit-identical.

Run::

    python benchmarks/bench_large.py --size 512 --memory 0.5

Disk: the scan (2 bytes per voxel), two segmentations (1 byte each) and, for
``--axes xyz``, a temporary probability file (4 bytes per voxel) in ``--workdir``
(default: a temporary folder, removed afterwards unless ``--keep``). Memory: the
in-memory reference needs about 9 bytes per voxel (1.2 GB at 512^3); skip it
with ``--no-reference`` on larger scans.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: A small U-Net: fast on a CPU, its output depends on the grey values and the tiling as a trained one's does.
MODEL_CONFIG = {"levels": 2, "convs_per_level": 2, "base_channels": 4, "kernel_size": 3}

_REFERENCE = """
import sys, json, time, numpy as np, torch
torch.set_num_threads({threads})
from foamlib.io import read_scan, write_tiff
from foamlib.segment import segment_volume, normalisation_from_metadata
from foamlib.training import load_model
start = time.perf_counter()
model, metadata = load_model({model!r}, device="cpu")
scan = read_scan({scan!r})
low_high = normalisation_from_metadata(metadata).range_for(scan.volume)
probs = segment_volume(model, scan.volume, axes={axes!r}, tile={tile}, overlap={overlap}, batch_size={batch},
                       intensity_range=low_high, device="cpu")
del scan
solid = probs >= 0.5
del probs
write_tiff({out!r}, solid, voxel_size_um=5.0)
print(json.dumps({{"seconds": time.perf_counter() - start, "intensity_range": list(low_high)}}))
"""


def write_scan(path: Path, size: int, *, seed: int = 0) -> float:
    """A noisy gyroid foam (solid about 30 % of the voxels), uint16 ImageJ TIFF, written slab by slab; seconds."""
    from foamlib.io import tiff_slab_writer

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    period = 40.0  # voxels per gyroid cell
    k = 2 * np.pi / period
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) * np.float32(k)
    with tiff_slab_writer(path, (size, size, size), dtype=np.uint16, voxel_size_um=5.0) as writer:
        for z0 in range(0, size, 16):
            z = (np.arange(z0, min(size, z0 + 16), dtype=np.float32) * np.float32(k))[:, None, None]
            g = np.sin(xx) * np.cos(yy) + np.sin(yy) * np.cos(z) + np.sin(z) * np.cos(xx)
            solid = np.abs(g) < 0.5
            grey = 20000 + 15000 * solid + rng.normal(0, 3000, solid.shape)
            writer.write(z0, np.clip(grey, 0, 65535).astype(np.uint16))
    return time.perf_counter() - start


def run_measured(command: list[str], *, env: dict[str, str]) -> tuple[float, float, str, str]:
    """Run ``command``; return its wall seconds, peak resident memory in GB, stdout and stderr."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... failed ({proc.returncode}):\n{stderr[-3000:]}")
    return seconds, usage.ru_maxrss * 1024 / 1e9, stdout, stderr  # ru_maxrss: KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="edge of the cubic scan in voxels (default 512)")
    parser.add_argument("--memory", type=float, default=0.5, help="--memory budget of foamlib segment, GB (default 0.5)")
    parser.add_argument("--axes", choices=("z", "xyz"), default="z")
    parser.add_argument("--tile", type=int, default=512, help="tile side (default 512: one tile per 512^2 slice)")
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in both runs (default 1)")
    parser.add_argument("--workdir", type=Path, help="folder for the files (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument("--no-reference", action="store_true", help="skip the in-memory run and the comparison")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    import tifffile

    from foamlib.segment import DEFAULT_NORMALISATION, plan_stream
    from foamlib.training import save_model
    from foamlib.unet import build_unet

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_large_"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(args.threads)}
    figures: dict[str, object] = {"size": args.size, "axes": args.axes, "memory_gb": args.memory, "tile": args.tile,
                                  "overlap": args.overlap, "batch_size": args.batch_size, "threads": args.threads,
                                  "model": MODEL_CONFIG}  # fmt: skip
    try:
        scan, model, streamed, reference = (work / n for n in ("scan.tif", "model.pt", "streamed.tif", "reference.tif"))
        n_voxels = args.size**3
        figures["scan_gb"] = 2 * n_voxels / 1e9
        figures["float32_gb"] = 4 * n_voxels / 1e9
        figures["write_scan_s"] = write_scan(scan, args.size)
        save_model(model, build_unet(MODEL_CONFIG, seed=0), metadata={
            "task": "segmentation", "normalisation": DEFAULT_NORMALISATION.to_dict()})  # fmt: skip
        plan = plan_stream((args.size,) * 3, np.uint16, axes=args.axes, tile=args.tile, overlap=args.overlap,
                           batch_size=args.batch_size, memory_gb=args.memory,
                           base_channels=MODEL_CONFIG["base_channels"])  # fmt: skip
        figures["plan"] = plan.describe()
        figures["plan_peak_gb"] = plan.peak_bytes / 1e9

        # torch threads in the CLI follow OMP_NUM_THREADS
        command = [sys.executable, "-m", "foamlib.cli", "segment", str(scan), "--model", str(model), "--out",
                   str(streamed), "--axes", args.axes, "--tile", str(args.tile), "--overlap", str(args.overlap),
                   "--batch-size", str(args.batch_size), "--memory", str(args.memory), "--device", "cpu", "--json"]  # fmt: skip
        seconds, peak, stdout, stderr = run_measured(command, env=env)
        result = json.loads(stdout)
        figures["streamed_s"] = seconds
        figures["streamed_peak_rss_gb"] = peak
        figures["streamed_voxels_per_s"] = n_voxels / seconds
        figures["porosity"] = result["porosity"]
        figures["plan_line"] = next((line for line in stderr.splitlines() if "peak memory" in line), "")

        # the same interpreter and imports, nothing else: what the budget does not cover
        baseline = "import torch, foamlib.segment, foamlib.cli"
        _, figures["python_torch_rss_gb"], _, _ = run_measured([sys.executable, "-c", baseline], env=env)

        if not args.no_reference:
            code = _REFERENCE.format(threads=args.threads, model=str(model), scan=str(scan), axes=args.axes,
                                     tile=args.tile, overlap=args.overlap, batch=args.batch_size, out=str(reference))  # fmt: skip
            seconds, peak, stdout, _ = run_measured([sys.executable, "-c", code], env=env)
            figures["in_memory_s"] = seconds
            figures["in_memory_peak_rss_gb"] = peak
            figures["intensity_range_equal"] = json.loads(stdout)["intensity_range"] == result["intensity_range"]
            a, b = tifffile.memmap(streamed, mode="r"), tifffile.memmap(reference, mode="r")
            figures["bit_identical"] = bool(a.shape == b.shape and all(
                np.array_equal(a[z : z + 64], b[z : z + 64]) for z in range(0, a.shape[0], 64)))  # fmt: skip
            del a, b
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    print(f"scan {args.size}^3 uint16 ({figures['scan_gb']:.2f} GB; {figures['float32_gb']:.2f} GB as float32), "
          f"axes {args.axes}, tile {args.tile}, overlap {args.overlap}, batch {args.batch_size}, "
          f"{args.threads} torch thread(s), model {MODEL_CONFIG}")  # fmt: skip
    print(f"plan: {figures['plan']}")
    print(f"streamed  (foamlib segment --memory {args.memory}): {figures['streamed_s']:.1f} s, "
          f"{figures['streamed_voxels_per_s'] / 1e6:.2f} M voxels/s, peak RSS {figures['streamed_peak_rss_gb']:.2f} GB "
          f"(Python + torch alone: {figures['python_torch_rss_gb']:.2f} GB)")  # fmt: skip
    if "in_memory_s" in figures:
        print(f"in memory (read_scan + segment_volume):        {figures['in_memory_s']:.1f} s, "
              f"{n_voxels / figures['in_memory_s'] / 1e6:.2f} M voxels/s, peak RSS {figures['in_memory_peak_rss_gb']:.2f} GB")
        print(f"bit-identical: {figures['bit_identical']}; same intensity range: {figures['intensity_range_equal']}; "
              f"porosity {figures['porosity']:.4f}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if figures.get("bit_identical", True) else 1


if __name__ == "__main__":
    sys.exit(main())
