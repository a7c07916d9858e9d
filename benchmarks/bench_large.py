"""Benchmark: ``foamlib segment`` and ``foamlib analyze`` on a scan far larger than their memory budget.

Writes a synthetic uint16 foam scan (a noisy gyroid, ImageJ TIFF) of ``--size``^3
voxels (default 1024^3, 2.1 GB; 4.3 GB as float32), slab by slab, and a small
untrained U-Net; then runs, each as a subprocess whose peak resident memory is
read from the kernel (``ru_maxrss`` of the command, taken by a small launcher
process, counting every page the process had resident, memory-mapped file pages
included):

1. ``foamlib segment`` of the whole scan (streamed, lazy reading) at ``--memory``
   (default: the CLI's default budget): time, throughput (voxels per second),
   peak memory against ``--max-rss-gb`` (default 3);
2. ``foamlib analyze`` of the whole scan at its default budget (streamed Otsu
   threshold and porosity): peak memory against the same bound, and the
   porosity against an exact reference counted another way (a histogram of
   every grey value from a memory map of the TIFF, summed above the threshold
   analyze printed);
3. the scan cut to ``--cut``^3 (default 512; written from the lazy scan):
   ``foamlib segment`` (lazy) against the in-memory path (``read_scan`` float32
   copy, the scan's percentile range, ``segment_volume``, threshold,
   ``write_tiff``): the two masks must be bit-identical.

It prints every figure, and exits with status 1 if a check fails (memory bound,
porosity, bit identity, and the throughput if ``--min-voxels-per-s`` is given).

Run (the issue's figures: two threads, 1024^3; on two idle cores about 20-30
minutes, 4 GB of disk and 2-3 GB of memory)::

    python benchmarks/bench_large.py --size 1024 --cut 512 --threads 2 --min-voxels-per-s 1.3e6

and quickly, as a check of the script itself::

    python benchmarks/bench_large.py --size 96 --cut 64 --tile 64 --analyze-memory 0.01

Disk: the scan (2 bytes per voxel), the cut (2 bytes per voxel of the cut),
three segmentations (1 byte per voxel each) and, for ``--axes xyz``, a
temporary probability file (4 bytes per voxel) in ``--workdir`` (default: a
temporary folder, removed afterwards unless ``--keep``). Memory: the in-memory
reference of the cut needs about 9 bytes per voxel (1.2 GB at 512^3); skip it
with ``--no-reference``.
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
from checklist import report_checks

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


# The measured command runs under this small launcher, which reports its child's ru_maxrss. Read directly
# with os.wait4, a child of this (large) process would report at least this process's resident memory at
# the fork: Linux carries the parent's high-water mark into the child's maxrss across exec.
_LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def run_measured(command: list[str], *, env: dict[str, str]) -> tuple[float, float, str, str]:
    """Run ``command``; return its wall seconds, peak resident memory in GB, stdout and stderr."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile("w+") as out, \
            tempfile.TemporaryFile("w+") as err:  # fmt: skip
        rss_file = Path(folder) / "maxrss"
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(rss_file), *command], stdout=out, stderr=err,
                              env=env, cwd=REPO, check=False)  # fmt: skip
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:3])} ... failed ({proc.returncode}):\n{stderr[-3000:]}")
        maxrss_kib = int(rss_file.read_text())
    return seconds, maxrss_kib * 1024 / 1e9, stdout, stderr  # ru_maxrss: KiB on Linux


def cut_scan(source: Path, out: Path, size: int) -> None:
    """Write ``source[:size, :size, :size]`` to ``out`` as a uint16 TIFF, read lazily and written slab by slab."""
    from foamlib.io import tiff_slab_writer
    from foamlib.lazy import open_scan

    scan = open_scan(source)
    if size > min(scan.shape):
        raise ValueError(f"--cut {size} is larger than the scan {scan.shape}")
    with tiff_slab_writer(out, (size,) * 3, dtype=scan.dtype, voxel_size_um=scan.voxel_size_um) as writer:
        for z0 in range(0, size, 32):
            writer.write(z0, scan[z0 : min(size, z0 + 32), :size, :size])


def exact_solid_count(path: Path, threshold: float) -> int:
    """Voxels whose grey value exceeds ``threshold`` (analyze's rule, solid = grey > t), from a histogram.

    A different route from analyze's: ``tifffile.memmap`` of the file (not
    foamlib's reader), ``np.bincount`` of every uint16 value, int64 sums.
    """
    import tifffile

    data = tifffile.memmap(path, mode="r")
    if data.dtype != np.uint16:
        raise ValueError(f"{path}: expected uint16, got {data.dtype}")
    counts = np.zeros(65536, dtype=np.int64)
    for z in range(0, data.shape[0], 32):
        counts += np.bincount(np.asarray(data[z : z + 32]).ravel(), minlength=65536)
    del data
    values = np.arange(65536, dtype=np.float32)  # uint16 values are exact in float32, as analyze reads them
    return int(counts[values > np.float32(threshold)].sum())


def segment_command(scan: Path, model: Path, out: Path, args: argparse.Namespace) -> list[str]:
    """``foamlib segment`` on the CPU (torch threads follow OMP_NUM_THREADS)."""
    command = [sys.executable, "-m", "foamlib.cli", "segment", str(scan), "--model", str(model), "--out", str(out),
               "--axes", args.axes, "--tile", str(args.tile), "--overlap", str(args.overlap), "--batch-size",
               str(args.batch_size), "--device", "cpu", "--json"]  # fmt: skip
    if args.memory is not None:
        command += ["--memory", str(args.memory)]
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="edge of the cubic scan in voxels (default 1024)")
    parser.add_argument("--cut", type=int, default=512,
                        help="edge of the cut compared lazily and in memory (default 512; 0: no cut)")
    parser.add_argument("--memory", type=float,
                        help="--memory budget of foamlib segment, GB (default: the CLI's, 2 GB)")
    parser.add_argument("--analyze-memory", type=float,
                        help="--memory of foamlib analyze, GB (default: the CLI's, 2 GB; a small scan needs less "
                        "to be streamed)")
    parser.add_argument("--max-rss-gb", type=float, default=3.0,
                        help="bound on the peak resident memory of segment and analyze (default 3)")
    parser.add_argument("--min-voxels-per-s", type=float, default=0.0,
                        help="fail below this throughput of the whole-scan segmentation (default 0: report only)")
    parser.add_argument("--axes", choices=("z", "xyz"), default="z")
    parser.add_argument("--tile", type=int, default=512, help="tile side (default 512)")
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in every run (default 1)")
    parser.add_argument("--workdir", type=Path, help="folder for the files (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the files")
    parser.add_argument("--no-reference", action="store_true", help="skip the in-memory run of the cut")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    import tifffile

    from foamlib.segment import DEFAULT_MEMORY_GB, DEFAULT_NORMALISATION, plan_stream
    from foamlib.training import save_model
    from foamlib.unet import build_unet

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_large_"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(args.threads)}
    memory = DEFAULT_MEMORY_GB if args.memory is None else args.memory
    figures: dict[str, object] = {"size": args.size, "cut": args.cut, "axes": args.axes, "memory_gb": memory,
                                  "tile": args.tile, "overlap": args.overlap, "batch_size": args.batch_size,
                                  "threads": args.threads, "model": MODEL_CONFIG}  # fmt: skip
    checks: dict[str, bool] = {}
    try:
        scan, model, streamed = (work / n for n in ("scan.tif", "model.pt", "streamed.tif"))
        n_voxels = args.size**3
        figures["scan_gb"] = 2 * n_voxels / 1e9
        figures["float32_gb"] = 4 * n_voxels / 1e9
        figures["write_scan_s"] = write_scan(scan, args.size)
        save_model(model, build_unet(MODEL_CONFIG, seed=0), metadata={
            "task": "segmentation", "normalisation": DEFAULT_NORMALISATION.to_dict()})  # fmt: skip
        plan = plan_stream((args.size,) * 3, np.uint16, axes=args.axes, tile=args.tile, overlap=args.overlap,
                           batch_size=args.batch_size, memory_gb=memory,
                           base_channels=MODEL_CONFIG["base_channels"])  # fmt: skip
        figures["plan"] = plan.describe()
        figures["plan_peak_gb"] = plan.peak_bytes / 1e9

        # 1. the whole scan, streamed
        seconds, peak, stdout, stderr = run_measured(segment_command(scan, model, streamed, args), env=env)
        result = json.loads(stdout)
        figures["streamed_s"] = seconds
        figures["streamed_peak_rss_gb"] = peak
        figures["streamed_voxels_per_s"] = n_voxels / seconds
        figures["porosity"] = result["porosity"]
        figures["plan_line"] = next((line for line in stderr.splitlines() if "peak memory" in line), "")
        checks["segment peak RSS below bound"] = peak < args.max_rss_gb
        if args.min_voxels_per_s:
            checks["segment throughput"] = n_voxels / seconds >= args.min_voxels_per_s

        # 2. analyze, streamed at its default budget; the porosity against an exact count
        command = [sys.executable, "-m", "foamlib.cli", "analyze", str(scan), "--json"]
        if args.analyze_memory is not None:
            command += ["--memory", str(args.analyze_memory)]
        seconds, peak, stdout, _ = run_measured(command, env=env)
        analysis = json.loads(stdout)
        figures["analyze_s"] = seconds
        figures["analyze_peak_rss_gb"] = peak
        figures["analyze_streamed"] = bool(analysis.get("streamed"))
        figures["analyze_threshold"] = analysis["threshold"]
        figures["analyze_porosity"] = analysis["porosity"]
        start = time.perf_counter()
        solid = exact_solid_count(scan, analysis["threshold"])
        figures["exact_porosity"] = float(np.int64(n_voxels - solid) / np.int64(n_voxels))
        figures["exact_count_s"] = time.perf_counter() - start
        checks["analyze peak RSS below bound"] = peak < args.max_rss_gb
        checks["analyze streamed"] = figures["analyze_streamed"]
        checks["analyze porosity exact"] = (analysis.get("solid_voxels") == solid
                                            and figures["analyze_porosity"] == figures["exact_porosity"])  # fmt: skip

        # the same interpreter and imports, nothing else: what the budget does not cover
        baseline = "import torch, foamlib.segment, foamlib.cli"
        _, figures["python_torch_rss_gb"], _, _ = run_measured([sys.executable, "-c", baseline], env=env)

        # 3. the cut, lazily and in memory
        if args.cut and not args.no_reference:
            cut, cut_streamed, reference = (work / n for n in ("cut.tif", "cut_streamed.tif", "cut_reference.tif"))
            cut_scan(scan, cut, args.cut)
            seconds, peak, stdout, _ = run_measured(segment_command(cut, model, cut_streamed, args), env=env)
            cut_result = json.loads(stdout)
            figures["cut_streamed_s"] = seconds
            figures["cut_streamed_peak_rss_gb"] = peak
            code = _REFERENCE.format(threads=args.threads, model=str(model), scan=str(cut), axes=args.axes,
                                     tile=args.tile, overlap=args.overlap, batch=args.batch_size, out=str(reference))  # fmt: skip
            seconds, peak, stdout, _ = run_measured([sys.executable, "-c", code], env=env)
            figures["in_memory_s"] = seconds
            figures["in_memory_peak_rss_gb"] = peak
            figures["intensity_range_equal"] = json.loads(stdout)["intensity_range"] == cut_result["intensity_range"]
            a, b = tifffile.memmap(cut_streamed, mode="r"), tifffile.memmap(reference, mode="r")
            figures["bit_identical"] = bool(a.shape == b.shape and all(
                np.array_equal(a[z : z + 64], b[z : z + 64]) for z in range(0, a.shape[0], 64)))  # fmt: skip
            del a, b
            checks["cut bit-identical lazily and in memory"] = figures["bit_identical"]
            checks["cut intensity range equal"] = figures["intensity_range_equal"]
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    figures["checks"] = checks

    print(f"scan {args.size}^3 uint16 ({figures['scan_gb']:.2f} GB; {figures['float32_gb']:.2f} GB as float32), "
          f"axes {args.axes}, tile {args.tile}, overlap {args.overlap}, batch {args.batch_size}, "
          f"{args.threads} torch thread(s), model {MODEL_CONFIG}")  # fmt: skip
    print(f"plan: {figures['plan']}")
    print(f"segment (streamed, --memory {memory:g}): {figures['streamed_s']:.1f} s, "
          f"{figures['streamed_voxels_per_s'] / 1e6:.2f} M voxels/s, peak RSS {figures['streamed_peak_rss_gb']:.2f} GB "
          f"(Python + torch alone: {figures['python_torch_rss_gb']:.2f} GB), porosity {figures['porosity']:.4f}")  # fmt: skip
    print(f"analyze (streamed: {figures['analyze_streamed']}): {figures['analyze_s']:.1f} s, peak RSS "
          f"{figures['analyze_peak_rss_gb']:.2f} GB, Otsu threshold {figures['analyze_threshold']:.6g}, porosity "
          f"{figures['analyze_porosity']!r} (exact count from a histogram: {figures['exact_porosity']!r})")  # fmt: skip
    if "in_memory_s" in figures:
        print(f"cut {args.cut}^3: segment (lazy) {figures['cut_streamed_s']:.1f} s, peak RSS "
              f"{figures['cut_streamed_peak_rss_gb']:.2f} GB; in memory (read_scan + segment_volume) "
              f"{figures['in_memory_s']:.1f} s, peak RSS {figures['in_memory_peak_rss_gb']:.2f} GB; bit-identical: "
              f"{figures['bit_identical']}; same intensity range: {figures['intensity_range_equal']}")  # fmt: skip
    return report_checks(checks, figures, args.json)


if __name__ == "__main__":
    sys.exit(main())
