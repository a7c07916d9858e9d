"""The whole study on a real, non-cubic scan that foamlib did not make, on a chosen profile.

Runs ``foamlib study run`` as a user would, on the sand packing of ``../shared/data`` (a raw
uint8 file of 100 x 200 x 200 voxels) by default, then prints the seconds of every stage and the
porosities (Otsu, step 1, step 2; there is no reference porosity for this scan). Figures for the
README::

    python benchmarks/bench_study_scan.py --profile demo --runs-dir /tmp/bench_runs

A second call with the same ``--runs-dir`` skips every stage (the runner's cache); delete the
folder to measure again.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAND = ROOT.parent / "shared" / "data" / "sand" / "sand_200x200x100_uint8.raw"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", type=Path, default=SAND, help="scan (default: the sand raw file)")
    parser.add_argument("--shape", type=int, nargs=3, default=(100, 200, 200), help="shape of a raw scan")
    parser.add_argument("--dtype", default="uint8", help="dtype of a raw scan")
    parser.add_argument("--name", default="sand", help="run-folder name")
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--runs-dir", type=Path, default=Path("/tmp/foamlib_bench_runs"))
    args = parser.parse_args(argv)
    if not args.scan.is_file():
        print(f"scan {args.scan} not found (the real scans live in ../shared/data)", file=sys.stderr)
        return 1
    command = [sys.executable, "-m", "foamlib.cli", "study", "run", "--scan", str(args.scan), "--name", args.name,
               "--profile", args.profile, "--runs-dir", str(args.runs_dir), "--notebooks", str(ROOT / "notebooks")]
    if args.scan.suffix == ".raw":
        command += ["--shape", *map(str, args.shape), "--dtype", args.dtype]
    start = time.perf_counter()
    status = subprocess.call(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    wall = time.perf_counter() - start
    summary = json.loads((args.runs_dir / args.name / "summary.json").read_text())
    print(f"\nprofile {args.profile}, scan {args.scan.name}: exit status {status}, {wall / 60:.1f} min in all")
    print("| stage | seconds |\n|---|---:|")
    for stage, seconds in summary.get("seconds", {}).items():
        print(f"| {stage} | {seconds:.0f} |")
    print("\n| method | porosity |\n|---|---:|")
    for method, value in summary.get("porosity", {}).items():
        print(f"| {method} | {100 * value:.2f} % |")
    return status


if __name__ == "__main__":
    sys.exit(main())
