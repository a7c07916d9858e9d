"""Porosity errors and pore counts of Otsu, step 1 and step 2 over seeds: can the steps be ranked?

Runs the per-sample stages of the study (through ``09_unet_step2`` by default: all that the porosity
table needs) once per seed, each seed into its own runs folder (``RUNS_DIR/seed_<s>/<sample>``), with
the profile's ``seed`` overridden, through :mod:`foamlib.study`'s API. Then tabulates, per sample and
method, the mean and standard deviation over seeds of the porosity error against the sample's
reference (the truth for demo samples) and of the number of separate pores (connected pore regions of
at least 27 voxels, face-connected: cells whose walls a segmentation breaks merge into one pore; the
truth's count is that of the phantom's cells, every voxel a wall touches counted as solid, since the
binary truth, ``fraction >= 0.5``, drops the demo foams' sub-voxel walls and holds 1-7 pores), and
says for each sample whether step 1 and step 2 disagree (:func:`foamlib.agreement.check_runs`). The
scan, and so the truth, is the same for every seed (stage 00 takes no seed); only the method's
randomness changes. Example (the issue's measurement, 3 seeds x 3 demo samples)::

    python benchmarks/bench_seeds.py --profile demo --seeds 0 1 2 --runs-dir /tmp/seed_runs

Writes ``RUNS_DIR/seeds.csv`` (one row per sample, seed and method), ``RUNS_DIR/seeds.json`` (the
table's numbers, the agreement records and the stage times) and prints the table. A second call with
the same ``--runs-dir`` skips every finished stage (the runner's cache), so an interrupted run
resumes; ``--no-run`` only tabulates what is there.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

#: Segmentations compared, with the run folder's name for each.
METHODS = ("otsu", "step1", "step2")
#: Pore regions smaller than this many voxels are not counted (the issue's "separate pores").
MIN_PORE_VOXELS = 27
#: The last stage run by default: the step-2 U-Net writes the last porosity of the table.
DEFAULT_THROUGH = "09_unet_step2"


def seed_folder(runs_dir: str | Path, seed: int) -> Path:
    """The runs folder of one seed, ``runs_dir/seed_<seed>``."""
    return Path(runs_dir) / f"seed_{int(seed)}"


def seed_profile(profile: str | Path | Mapping[str, Any], seed: int) -> dict[str, Any]:
    """A profile's values with ``seed`` overridden (name kept, ``+seed<s>`` appended)."""
    from foamlib.study import load_profile

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"a seed is a non-negative integer, got {seed!r}")
    values = dict(profile) if isinstance(profile, Mapping) else load_profile(profile)
    return {**values, "seed": int(seed), "profile": f"{values.get('profile', 'given')}+seed{int(seed)}"}


def selected_stages(notebooks_dir: str | Path, through: str):
    """The per-sample stages up to and including ``through`` (a notebook's stem, e.g. ``09_unet_step2``)."""
    from foamlib.study import find_stages

    stages = [s for s in find_stages(notebooks_dir) if s.scope == "sample"]
    names = [s.name for s in stages]
    if through not in names:
        raise ValueError(f"--through {through!r} is not a per-sample stage in {notebooks_dir}: use one of "
                         f"{', '.join(names)}")
    return stages[: names.index(through) + 1]


def run_seeds(
    samples: Sequence[str],
    seeds: Sequence[int],
    *,
    profile: str | Path | Mapping[str, Any] = "smoke",
    runs_dir: str | Path,
    notebooks_dir: str | Path = ROOT / "notebooks",
    through: str = DEFAULT_THROUGH,
    report=None,
) -> list:
    """Run the selected stages of every sample for every seed; return every :class:`StageResult`.

    Parameters
    ----------
    samples : sequence of str
        Demo sample names (their truth gives the errors).
    seeds : sequence of int
        One run folder per seed: ``seed_folder(runs_dir, seed) / sample``.
    profile : str, path or mapping
        A profile (name, file or values); its ``seed`` is overridden.
    runs_dir, notebooks_dir : path-like
    through : str
        The last stage to run.
    report : callable, optional
        Called with each StageResult as it happens.

    Raises
    ------
    ValueError, TypeError
        From :func:`foamlib.study.check_study`, before anything runs, or for a
        bad seed or stage name.
    """
    from foamlib.study import SampleSpec, check_study, run_sample

    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {list(seeds)}")
    stages = selected_stages(notebooks_dir, through)
    declared = {p for s in stages for p in s.parameters}
    specs = [SampleSpec(name) for name in samples]
    results = []
    for seed in seeds:
        values = seed_profile(profile, seed)
        values = {k: v for k, v in values.items() if k in declared or k == "profile"}  # keys of later stages
        check_study(specs, values, stages)
        for spec in specs:
            results += run_sample(spec, stages, values, runs_dir=seed_folder(runs_dir, seed), report=report)
    return results


def truth_pores(run_dir: str | Path) -> int | None:
    """Separate pores of a demo sample's phantom: :func:`count_pores` of ``fraction > 0`` (None for a user's scan).

    The demo foams' walls are thinner than half a voxel, so the binary truth (``fraction >= 0.5``)
    has almost no walls (1-7 pores at 64^3 and 128^3); counting every voxel a wall touches as solid
    separates the cells.
    """
    from foamlib.phantom import demo_sample
    from foamlib.runs import read_json

    record = read_json(Path(run_dir) / "sample.json")
    if record.get("source") != "demo":
        return None
    sample = demo_sample(record["sample"], size=tuple(int(n) for n in record["shape"]))
    return count_pores(sample.fraction > 0)


def count_pores(solid: np.ndarray, *, min_voxels: int = MIN_PORE_VOXELS) -> int:
    """Separate pores: face-connected regions of the pore space (``~solid``) of at least ``min_voxels`` voxels."""
    from scipy import ndimage as ndi

    labels, n = ndi.label(~np.asarray(solid, dtype=bool))
    if n == 0:
        return 0
    sizes = np.bincount(labels.ravel())[1:]
    return int(np.count_nonzero(sizes >= min_voxels))


@dataclass(frozen=True)
class SeedRow:
    """One method's result on one sample for one seed (porosities as fractions)."""

    sample: str
    seed: int
    method: str
    porosity: float
    reference_porosity: float | None
    error: float | None
    n_pores: int
    truth_pores: int | None


def collect(runs_dir: str | Path, samples: Sequence[str], seeds: Sequence[int]) -> tuple[list[SeedRow], list[str]]:
    """Read every seed's run folders: rows of porosity, error and pore count, and lines for what is missing."""
    from foamlib.runfolder import RunFolder
    from foamlib.runs import read_json

    rows, missing = [], []
    cells: dict[str, int | None] = {}
    for seed in seeds:
        for sample in samples:
            run = RunFolder(seed_folder(runs_dir, seed) / sample)
            if not (run.path / "sample.json").is_file():
                missing.append(f"{run.path}: not run")
                continue
            record = read_json(run.path / "sample.json")
            reference = record.get("reference_porosity")
            if sample not in cells:
                cells[sample] = truth_pores(run.path)
            for method in METHODS:
                path = run.path / method / "metrics.json"
                if not path.is_file() or not run.segmentation(method).is_file():
                    missing.append(f"{run.path}: no {method} result")
                    continue
                porosity = float(read_json(path)["porosity"])
                rows.append(SeedRow(
                    sample=sample, seed=int(seed), method=method, porosity=porosity, reference_porosity=reference,
                    error=None if reference is None else porosity - reference,
                    n_pores=count_pores(run.read_segmentation(method)), truth_pores=cells[sample],
                ))
    return rows, missing


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else math.nan


def statistics(rows: Sequence[SeedRow]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds, per sample and method (errors in fractions)."""
    out = []
    keys = sorted({(r.sample, r.method) for r in rows}, key=lambda k: (k[0], METHODS.index(k[1])))
    for sample, method in keys:
        group = [r for r in rows if r.sample == sample and r.method == method]
        porosity, porosity_sd = _mean_sd([r.porosity for r in group])
        errors = [r.error for r in group if r.error is not None]
        error, error_sd = _mean_sd(errors) if errors else (math.nan, math.nan)
        abs_error = float(np.mean(np.abs(errors))) if errors else math.nan
        pores, pores_sd = _mean_sd([r.n_pores for r in group])
        out.append({
            "sample": sample, "method": method, "seeds": [r.seed for r in group], "porosity": porosity,
            "porosity_sd": porosity_sd, "error": error, "error_sd": error_sd, "mean_abs_error": abs_error,
            "n_pores": pores, "n_pores_sd": pores_sd, "truth_pores": group[0].truth_pores,
        })
    return out


def _pm(mean: float, sd: float, scale: float = 1.0, digits: int = 2, sign: str = "+") -> str:
    if math.isnan(mean):
        return "–"
    text = f"{scale * mean:{sign}.{digits}f}"
    return text if math.isnan(sd) else f"{text} ± {scale * sd:.{digits}f}"


def table(stats: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of :func:`statistics`: errors in pp, mean ± standard deviation over seeds."""
    lines = ["| sample | method | seeds | porosity error (pp) | mean abs. error (pp) | separate pores | truth pores |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for s in stats:
        lines.append(
            f"| {s['sample']} | {s['method']} | {len(s['seeds'])} | {_pm(s['error'], s['error_sd'], 100)} | "
            f"{_pm(s['mean_abs_error'], math.nan, 100, sign='')} | {_pm(s['n_pores'], s['n_pores_sd'], 1, 1, '')} | "
            f"{'–' if s['truth_pores'] is None else s['truth_pores']} |"
        )
    return "\n".join(lines)


def stage_seconds(runs_dir: str | Path, samples: Sequence[str], seeds: Sequence[int]) -> dict[str, dict[str, float]]:
    """Mean seconds of each stage's last run over seeds, per sample (skipped stages keep their earlier time)."""
    from foamlib.runs import read_json

    out: dict[str, dict[str, float]] = {}
    for sample in samples:
        times: dict[str, list[float]] = {}
        for seed in seeds:
            for record in sorted((seed_folder(runs_dir, seed) / sample / ".stages").glob("*.json")):
                seconds = read_json(record).get("seconds")
                if isinstance(seconds, (int, float)):
                    times.setdefault(record.stem, []).append(float(seconds))
        out[sample] = {stage: float(np.mean(v)) for stage, v in times.items()}
    return out


def agreements(runs_dir: str | Path, samples: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    """:func:`foamlib.agreement.check_runs` of every sample over the seeds that finished step 2 (dicts)."""
    from foamlib.agreement import check_runs

    out = {}
    for sample in samples:
        dirs = [seed_folder(runs_dir, s) / sample for s in seeds
                if (seed_folder(runs_dir, s) / sample / "step2" / "metrics.json").is_file()]
        if dirs:
            out[sample] = check_runs(dirs).to_dict()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke", help="profile name or YAML file (default: smoke)")
    parser.add_argument("--samples", nargs="+", default=["foam82", "foam86", "foam89"], help="demo samples")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--runs-dir", type=Path, default=Path("/tmp/foamlib_seed_runs"))
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--through", default=DEFAULT_THROUGH, help=f"last stage to run (default {DEFAULT_THROUGH})")
    parser.add_argument("--no-run", action="store_true", help="only tabulate the run folders that exist")
    args = parser.parse_args(argv)
    from foamlib.runs import write_csv, write_json
    from foamlib.study import print_result

    start = time.perf_counter()
    failed = False
    if not args.no_run:
        try:
            results = run_seeds(args.samples, args.seeds, profile=args.profile, runs_dir=args.runs_dir,
                                notebooks_dir=args.notebooks, through=args.through, report=print_result)
        except (ValueError, TypeError) as exc:
            print(f"bench_seeds: {exc}", file=sys.stderr)
            return 2
        failed = any(r.status == "failed" for r in results)
    rows, missing = collect(args.runs_dir, args.samples, args.seeds)
    stats = statistics(rows)
    agree = agreements(args.runs_dir, args.samples, args.seeds)
    seconds = stage_seconds(args.runs_dir, args.samples, args.seeds)
    write_csv(args.runs_dir / "seeds.csv", [vars(r) for r in rows])
    write_json(args.runs_dir / "seeds.json", {"profile": str(args.profile), "seeds": args.seeds, "samples": args.samples,
                                              "statistics": stats, "agreement": agree, "stage_seconds": seconds,
                                              "missing": missing})
    print(f"\nprofile {args.profile}, seeds {args.seeds}: {(time.perf_counter() - start) / 60:.1f} min\n")
    print(table(stats))
    for sample, record in agree.items():
        print(f"\n{sample}: {record['message']}")
    print("\nmean seconds per stage over seeds:")
    for sample, times in seconds.items():
        print(f"  {sample}: " + ", ".join(f"{k[:2]} {v:.0f}" for k, v in times.items()) + f"; sum {sum(times.values()):.0f}")
    for line in missing:
        print(f"missing: {line}", file=sys.stderr)
    return 1 if failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
