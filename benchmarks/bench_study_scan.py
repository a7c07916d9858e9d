"""The whole study on a scan that foamlib did not make, on a chosen profile; or on a large generated one.

Runs ``foamlib study run`` as a user would, on the sand packing of ``../shared/data`` (a raw
uint8 file of 100 x 200 x 200 voxels) by default, then prints the seconds and the peak resident
memory of every stage (from the stage records, ``runs/<name>/.stages/*.json``) and the porosities
(Otsu, step 1, step 2; there is no reference porosity for this scan). Figures for the README::

    python benchmarks/bench_study_scan.py --profile demo --runs-dir /tmp/bench_runs

``--generate N`` writes a synthetic N^3 uint16 foam scan instead (the noisy gyroid of
``bench_large.py``, an ImageJ TIFF written slab by slab) and runs the study on it; the table then
gives each stage's peak memory against the size of the scan's float32 volume (4 N^3 bytes), which
a stage that read the scan whole would need on top of everything else. The issue's figures
(512^3: 268 MB on disk, 537 MB as float32; about an hour on two cores)::

    nice python benchmarks/bench_study_scan.py --generate 512 --profile smoke --runs-dir /tmp/bench_large

It also prints the peak resident memory of the whole command (runner and kernels: the largest
process). A second call with the same ``--runs-dir`` skips every stage (the runner's cache); delete
the folder to measure again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAND = ROOT.parent / "shared" / "data" / "sand" / "sand_200x200x100_uint8.raw"


def stage_table(run_dir: Path, *, volume_bytes: int | None = None) -> str:
    """Markdown table of every stage's seconds and peak memory (and its ratio to ``volume_bytes``)."""
    head = "| stage | seconds | peak memory (GB) |" + (" peak / float32 scan |" if volume_bytes else "")
    lines = [head, "|---|---:|---:|" + ("---:|" if volume_bytes else "")]
    for record in sorted((run_dir / ".stages").glob("*.json")):
        data = json.loads(record.read_text())
        peak = data.get("peak_memory_bytes") or 0
        row = f"| {record.stem} | {data.get('seconds', 0):.0f} | {peak / 1e9:.2f} |"
        lines.append(row + (f" {peak / volume_bytes:.2f} |" if volume_bytes else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", type=Path, default=SAND, help="scan (default: the sand raw file)")
    parser.add_argument("--shape", type=int, nargs=3, default=(100, 200, 200), help="shape of a raw scan")
    parser.add_argument("--dtype", default="uint8", help="dtype of a raw scan")
    parser.add_argument("--name", default=None, help="run-folder name (default: sand, or gyroidN)")
    parser.add_argument("--generate", type=int, metavar="N", help="run on a generated N^3 uint16 scan instead")
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--runs-dir", type=Path, default=Path("/tmp/foamlib_bench_runs"))
    args = parser.parse_args(argv)
    volume_bytes = None
    if args.generate:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_large import write_scan

        args.scan = args.runs_dir.parent / f"{args.runs_dir.name}_gyroid_{args.generate}.tif"
        if not args.scan.is_file():
            args.scan.parent.mkdir(parents=True, exist_ok=True)
            seconds = write_scan(args.scan, args.generate)
            print(f"wrote {args.scan} ({args.scan.stat().st_size / 1e9:.2f} GB) in {seconds:.0f} s")
        volume_bytes = 4 * args.generate**3
        name = args.name or f"gyroid{args.generate}"
    else:
        name = args.name or "sand"
    if not args.scan.is_file():
        print(f"scan {args.scan} not found (the real scans live in ../shared/data)", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "foamlib.cli", "study", "run", "--scan", str(args.scan), "--name", name,
               "--profile", args.profile, "--runs-dir", str(args.runs_dir), "--notebooks", str(ROOT / "notebooks")]
    if args.scan.suffix == ".raw":
        command += ["--shape", *map(str, args.shape), "--dtype", args.dtype]
    start = time.perf_counter()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_large import run_measured

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        _, peak_gb, stdout, _ = run_measured(command, env=env)
        status = 0
    except RuntimeError as exc:  # a failed stage: the table shows how far the study got
        print(exc, file=sys.stderr)
        peak_gb, stdout, status = float("nan"), "", 1
    print(stdout)
    wall = time.perf_counter() - start
    run_dir = args.runs_dir / name
    summary = json.loads((run_dir / "summary.json").read_text())
    size = f", float32 volume {volume_bytes / 1e9:.3f} GB" if volume_bytes else ""
    print(f"\nprofile {args.profile}, scan {args.scan.name}{size}: exit status {status}, {wall / 60:.1f} min in all, "
          f"peak resident memory of the largest process {peak_gb:.2f} GB")
    print(stage_table(run_dir, volume_bytes=volume_bytes))
    print("\n| method | porosity |\n|---|---:|")
    for method, value in summary.get("porosity", {}).items():
        print(f"| {method} | {100 * value:.2f} % |")
    return status


if __name__ == "__main__":
    sys.exit(main())
