"""Walls restored where the scan shows them: what they do to each segmentation of a finished run.

For every sample of a finished study whose truth is known, and for each of its segmentations (Otsu,
step 1, step 2), this applies :func:`foamlib.faint_walls.restore_faint_walls` with its defaults (the
same for every sample; nothing is chosen against the truth) and prints the porosity error, the Dice
of the solid and the separate pores (face-connected pore regions of at least 27 voxels) before and
after, beside the truth's pores, with the candidate walls found and kept and the time taken. Two
kinds of run are read:

* a validation suite's output (``benchmarks/validate.py --out DIR``): its foreign cases, whose
  truth and pore count the suite wrote to ``DIR/cases/<case>/``;
* a study's runs folder of demo samples (``runs/``): the truth is the phantom's (``truth.tif``),
  its pores those of the phantom's cells (:func:`bench_seeds.truth_pores`).

Example::

    python benchmarks/bench_faint_walls.py --validation runs/_validation --runs runs --out runs/_faint_walls

Writes ``OUT/faint_walls.md`` and ``OUT/faint_walls.json`` when ``--out`` is given.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

#: The segmentations of a run folder that are weighed.
METHODS = ("otsu", "step1", "step2")


def samples_with_truth(validation: Path | None, runs: Path | None, names: list[str] | None = None):
    """(name, run folder, truth, truth porosity, truth pores) of every sample with a truth (of ``names`` only if given).

    The porosity is the one the study's own tables compare with: the suite's (of the binary truth)
    for its cases, the sample's reference porosity (of the phantom's solid fraction) for demo samples.
    """
    from bench_seeds import truth_pores
    from validate import FOREIGN, read_truth

    from foamlib.independent import porosity
    from foamlib.runs import read_json
    from foamlib.samples import load_sample, load_truth

    if validation is not None:
        for name in FOREIGN:
            case = validation / "cases" / name
            run = validation / "runs" / name
            if (case / "truth.npz").is_file() and run.is_dir() and (names is None or name in names):
                record = read_json(case / "case.json")
                yield name, run, read_truth(case), float(record["porosity"]), int(record["pores"]["count"])
    if runs is not None:
        for run in sorted(p for p in runs.iterdir() if p.is_dir() and not p.name.startswith("_")):
            if names is not None and run.name not in names:
                continue
            truth = load_truth(run)
            if truth is not None:
                reference = load_sample(run)[1].reference_porosity
                yield run.name, run, truth, porosity(truth) if reference is None else reference, truth_pores(run)


def measure(validation: Path | None, runs: Path | None) -> list[dict[str, Any]]:
    """One row per sample and segmentation: the numbers before and after the walls."""
    from bench_seeds import count_pores

    from foamlib.faint_walls import wall_evidence
    from foamlib.independent import dice, porosity
    from foamlib.runfolder import RunFolder
    from foamlib.samples import load_sample

    rows = []
    for name, path, truth, truth_p, truth_n in samples_with_truth(validation, runs):
        run = RunFolder(path)
        lazy = load_sample(path)[0]
        scan = lazy.read(0, lazy.shape[0]).astype(np.float32)
        for method in METHODS:
            if not run.segmentation(method).is_file():
                continue
            seg = run.read_segmentation(method)
            start = time.perf_counter()
            evidence = wall_evidence(scan, seg)
            closed = evidence.apply(seg)
            seconds = time.perf_counter() - start
            row = {"sample": name, "method": method, "truth_porosity": truth_p, "truth_pores": truth_n,
                   "candidates": evidence.n_walls, "kept": int(evidence.kept().sum()),
                   "voxels_added": int(np.count_nonzero(closed & ~seg)), "seconds": seconds}
            for when, solid in (("before", seg), ("after", closed)):
                row[f"error_pp_{when}"] = 100.0 * (porosity(solid) - truth_p)
                row[f"dice_{when}"] = dice(solid, truth)
                row[f"pores_{when}"] = count_pores(solid)
            rows.append(row)
            print(f"{name} {method}: {row['kept']} of {row['candidates']} walls, "
                  f"pores {row['pores_before']} -> {row['pores_after']} (truth {truth_n}), {seconds:.1f} s", flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| sample | segmentation | porosity error (pp) | Dice of the solid | separate pores (truth) | walls kept |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['sample']} | {r['method']} | {r['error_pp_before']:+.2f} → {r['error_pp_after']:+.2f} | "
            f"{r['dice_before']:.3f} → {r['dice_after']:.3f} | {r['pores_before']} → {r['pores_after']} "
            f"({r['truth_pores'] if r['truth_pores'] is not None else '–'}) | {r['kept']} of {r['candidates']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--validation", type=Path, help="a validation suite's --out folder")
    parser.add_argument("--runs", type=Path, help="a study's runs folder with demo samples")
    parser.add_argument("--out", type=Path, help="folder for faint_walls.md and faint_walls.json")
    args = parser.parse_args(argv)
    if args.validation is None and args.runs is None:
        parser.error("give --validation, --runs or both")
    for given in (args.validation, args.runs):
        if given is not None and not given.is_dir():
            parser.error(f"{given} is not a folder")
    rows = measure(args.validation, args.runs)
    if not rows:
        print("no sample with a truth and a segmentation found", file=sys.stderr)
        return 1
    text = table(rows)
    print(text)
    if args.out is not None:
        from foamlib.runs import atomic_path, write_json

        args.out.mkdir(parents=True, exist_ok=True)
        with atomic_path(args.out / "faint_walls.md") as tmp:
            Path(tmp).write_text(text + "\n", encoding="utf-8")
        write_json(args.out / "faint_walls.json", {"rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
