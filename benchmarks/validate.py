"""The independent validation suite: the study on scans that foamlib's synthesis did not make.

One command::

    python benchmarks/validate.py                                   # default cases, demo profile
    python benchmarks/validate.py --profile smoke --size 40 --cases closed_thin   # a quick check

For every case it writes the scan as a file, runs the whole study on it through the real runner
(:func:`foamlib.study.run_study`, as ``foamlib study run --scan`` does), and scores the Otsu, step-1
and step-2 segmentations against the case's reference. The study never sees a reference (no
``--reference-porosity``), and no threshold or setting depends on the case: every case runs on
the same profile. ``--generator`` runs every case of a call with another step-1 generator (the same
for all of them, never chosen per case against its truth); give each generator its own ``--out``.

Foreign simulated cases (:mod:`foamlib.independent`; built from seeds at run time, exact truth):
closed cells with walls of 0.7, 1.5 and 3 voxels, PoreSpy open cells, a sphere packing and a fibre
mat (the default runs the walls of 0.7 and 3 voxels and the open cells), scanned by scikit-image's
radon / iradon with Poisson noise at three levels, rings and cupping, and stored as uint8, uint16 and
float32 with negative values. Scores: porosity error (pp), Dice of the solid, separate pores (at
least 27 voxels) and mean pore diameter and chord against the truth's.

Real cases from ``../shared/data``: the FiberForm volume against PuMA's threshold reference
(void = grey values 0-89), the sand packing (no reference), the sandstone slices with their masks
(Dice on the pore label; the slices are 2D, so they are segmented by Otsu per slice and by the
U-Nets that the study trained on the sand packing, the real grain packing of the suite), and the
bone and cement volumes (no reference: overlays only; not in the default set).

Writes to ``--out`` (default ``runs/_validation/``, git-ignored like every run): ``table.md``,
``table.json``, one figure per case (``figures/<case>.png``: scan, Otsu, step 1, step 2,
reference), the scans (``cases/``) and the run folders (``runs/``). A second call with the same
``--out`` reuses the scans and the runner's cache.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

from foamlib.fitting import GENERATORS  # noqa: E402
from foamlib.independent import CaseSpec, dice, make_case, pore_statistics, porosity  # noqa: E402

#: The foreign cases: one home for every setting of each (the seed included).
_NOISY = {"photons": 3e3, "ring_strength": 0.05, "cupping": 0.3}
_MEDIUM = {"photons": 1e4, "ring_strength": 0.03, "cupping": 0.2}
_CLEAN = {"photons": 3e4, "ring_strength": 0.02, "cupping": 0.1}
FOREIGN = {
    "closed_thin": CaseSpec("closed_thin", "closed_cells", {"cell_size": 24, "wall_thickness": 0.7, "supersample": 3},
                            _MEDIUM, "uint16", 11),
    "closed_thick": CaseSpec("closed_thick", "closed_cells", {"cell_size": 24, "wall_thickness": 3.0, "supersample": 3},
                             _NOISY, "float32", 13),
    "open_cells": CaseSpec("open_cells", "open_cells", {"cell_size": 20, "strut_radius": 2, "supersample": 2},
                           _CLEAN, "uint8", 14),
    "closed_mid": CaseSpec("closed_mid", "closed_cells", {"cell_size": 24, "wall_thickness": 1.5, "supersample": 3},
                           _CLEAN, "uint8", 12),
    "spheres": CaseSpec("spheres", "spheres", {"radius": 6.0, "solid_fraction": 0.35}, _NOISY, "uint16", 15),
    "fibres": CaseSpec("fibres", "fibres", {"radius": 1.5, "solid_fraction": 0.2}, _MEDIUM, "float32", 16),
}


@dataclass(frozen=True)
class RealCase:
    """A real scan of ../shared/data: its file, raw layout and reference."""

    name: str
    path: str
    reference: str  # "threshold:89" (solid above 89), "none"
    shape: tuple[int, int, int] | None = None
    dtype: str | None = None


REAL = {
    "fiberform": RealCase("fiberform", "fiberform/100_fiberform.tif", "threshold:89"),
    "sand": RealCase("sand", "sand/sand_200x200x100_uint8.raw", "none", (100, 200, 200), "uint8"),
    "bone": RealCase("bone", "bone/bone_128x128x128.tif", "none"),
    "cement": RealCase("cement", "cement/cement_128x128x128.tif", "none"),
}

#: The sandstone slices are scored with the models of this case.
SANDSTONE_MODELS = "sand"

#: What runs by default (chosen to fit 90 minutes on 2 cores on the demo profile, see book/validation.md).
DEFAULT_CASES = ("closed_thin", "closed_thick", "open_cells", "fiberform", "sand", "sandstone")
ALL_CASES = (*FOREIGN, *REAL, "sandstone")

METHODS = ("otsu", "step1", "step2")


# ---------------------------------------------------------------------------------------------- cases


def prepare_foreign(spec: CaseSpec, size: int, cases_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Build a foreign case and write its scan and truth, unless the same case is already there.

    The scan is a TIFF for integer storage and a ``.npy`` for float32 (both read by the
    runner); ``truth.npz`` holds the packed truth and ``case.json`` the spec and the truth's
    statistics. An unchanged case keeps its files (and so the runner's cache).
    """
    from foamlib.io import write_tiff
    from foamlib.runs import atomic_path, read_json, write_json

    folder = cases_dir / spec.name
    record_path = folder / "case.json"
    wanted = {"spec": asdict(spec), "size": size}
    if record_path.is_file():
        record = read_json(record_path)
        if {k: record.get(k) for k in wanted} == json.loads(json.dumps(wanted)):
            return folder / record["scan_file"], record
    start = time.perf_counter()
    case = make_case(spec, (size, size, size))
    folder.mkdir(parents=True, exist_ok=True)
    if case.scan.dtype == np.float32:
        scan_path = folder / "scan.npy"
        with atomic_path(scan_path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, case.scan)
    else:
        scan_path = write_tiff(folder / "scan.tif", case.scan, overwrite=True)
    with atomic_path(folder / "truth.npz") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, solid=np.packbits(case.truth), shape=np.array(case.truth.shape))
    record = {**wanted, **case.record(), "scan_file": scan_path.name, "seconds": time.perf_counter() - start}
    write_json(record_path, record)
    return scan_path, record


def read_truth(folder: Path) -> np.ndarray:
    """The packed truth of a foreign case written by :func:`prepare_foreign`, (Z, Y, X) bool."""
    with np.load(folder / "truth.npz") as data:
        shape = tuple(int(n) for n in data["shape"])
        return np.unpackbits(data["solid"], count=int(np.prod(shape))).reshape(shape).astype(bool)


def real_reference(case: RealCase, scan: np.ndarray) -> np.ndarray | None:
    """The reference segmentation of a real case, or None."""
    if case.reference.startswith("threshold:"):
        return scan > float(case.reference.split(":", 1)[1])
    return None


# ---------------------------------------------------------------------------------------------- scores


def score(segmentation: np.ndarray, reference: np.ndarray | None, reference_porosity: float | None) -> dict[str, Any]:
    """Porosity, its error (pp), Dice of the solid and pore statistics of one segmentation."""
    pores = pore_statistics(segmentation)
    out: dict[str, Any] = {"porosity": porosity(segmentation), "pores": pores.count,
                           "pore_diameter": pores.mean_diameter, "pore_chord": pores.mean_chord}
    if reference_porosity is not None:
        out["error_pp"] = 100.0 * (out["porosity"] - reference_porosity)
    if reference is not None:
        out["dice_solid"] = dice(segmentation, reference)
    return out


#: The colours of the sandstone masks, darkest phase first (mean grey of Sandstone_Versa0000 in brackets):
#: blue (14, the pores), green (83), red (125), yellow (242). The data README's "0 = pore, 255 = solid"
#: describes one channel; the files hold these four classes.
SANDSTONE_CLASSES = {"pore": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0), "yellow": (255, 255, 0)}


def sandstone_pore_label(path: Path) -> np.ndarray:
    """The pore label (blue) of a sandstone mask, (H, W) bool; refuses a mask with other colours."""
    import tifffile

    mask = tifffile.imread(path)
    if mask.ndim != 3 or mask.shape[-1] != 3:
        raise ValueError(f"{path}: expected an RGB mask (H, W, 3), got shape {mask.shape}")
    known = np.zeros(mask.shape[:2], bool)
    for colour in SANDSTONE_CLASSES.values():
        known |= (mask == colour).all(-1)
    if not known.all():
        colours = list(SANDSTONE_CLASSES.values())
        raise ValueError(f"{path}: {int((~known).sum())} pixels of colours other than {colours}")
    return (mask == SANDSTONE_CLASSES["pore"]).all(-1)


def sandstone_rows(model_run: Path, work: Path) -> list[dict[str, Any]]:
    """Otsu and the two U-Nets of ``model_run`` on each sandstone slice: Dice on the pore label (blue)."""
    import tifffile

    from foamlib.runfolder import RunFolder, read_mask
    from foamlib.segment import segment_file
    from foamlib.threshold import segment

    run = RunFolder(model_run)
    rows = []
    for image_path in sorted((SHARED / "sandstone" / "images").glob("*.tif")):
        image = tifffile.imread(image_path)
        pore_ref = sandstone_pore_label(SHARED / "sandstone" / "masks" / image_path.name)
        row: dict[str, Any] = {"slice": image_path.stem, "reference_porosity": float(pore_ref.mean())}
        pores = {"otsu": ~segment(image)}
        for method in ("step1", "step2"):
            if run.model(method).is_file():
                out = work / f"{image_path.stem}_{method}.tif"
                segment_file(image_path, run.model(method), out, overwrite=True)
                pores[method] = ~read_mask(out).reshape(image.shape)
        for method, pore in pores.items():
            row[method] = {"porosity": float(pore.mean()), "dice_pore": dice(pore, pore_ref)}
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- figures


def case_figure(path: Path, title: str, scan: np.ndarray, segs: dict[str, np.ndarray], reference: np.ndarray | None,
                truth_label: str) -> Path:
    """A middle z slice: the scan, each segmentation overlaid on it, and the reference (or a blank panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from foamlib.runs import atomic_path

    z = scan.shape[0] // 2
    grey = scan[z].astype(np.float64)
    lo, hi = np.percentile(grey, [0.5, 99.5])
    panels = [("scan", None)] + [(m, segs.get(m)) for m in METHODS] + [(truth_label, reference)]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), constrained_layout=True)
    for ax, (label, seg) in zip(axes, panels):
        ax.imshow(grey, cmap="gray", vmin=lo, vmax=hi)
        if seg is not None:
            ax.imshow(np.ma.masked_where(~seg[z], seg[z]), cmap=ListedColormap(["#ff2020"]), alpha=0.5)
        elif label != "scan":
            label += " (none)"
        ax.set_title({"otsu": "Otsu", "step1": "step-1 U-Net", "step2": "step-2 U-Net"}.get(label, label), fontsize=9)
        ax.set_axis_off()
    fig.suptitle(f"{title}: z = {z}, solid in red", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- table


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f} %"


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return format(value, fmt)


def markdown_table(rows: list[dict[str, Any]], sandstone: list[dict[str, Any]], note: str,
                   failures: dict[str, str] | None = None) -> str:
    """The suite's table (volumes, then the sandstone slices, then every failed stage) as markdown."""
    head = ("| case | storage | reference porosity | porosity Otsu / step 1 / step 2 (error, pp) "
            "| Dice solid Otsu / step 1 / step 2 | pores ref. / Otsu / step 1 / step 2 "
            "| mean pore diameter, vx | mean pore chord, vx |")
    lines = [note, "", head, "|---|---|---:|---|---|---|---|---|"]
    for row in rows:
        m = row.get("methods", {})
        ref = row.get("reference") or {}
        if row.get("status") != "scored":
            lines.append(f"| {row['case']} | {row.get('storage', '–')} | – | {row.get('status')} | | | | |")
            continue
        def porosity_cell(k: str) -> str:
            if k not in m:
                return "–"
            error = m[k].get("error_pp")
            return _pct(m[k]["porosity"]) + ("" if error is None else f" ({error:+.2f})")

        def with_reference(key: str, fmt: str) -> str:
            return " / ".join([_num(ref.get(key), fmt)] + [_num(m.get(k, {}).get(key), fmt) for k in METHODS])

        por = " / ".join(porosity_cell(k) for k in METHODS)
        dices = " / ".join(_num(m.get(k, {}).get("dice_solid"), ".3f") for k in METHODS)
        pores, diam, chord = (with_reference(key, fmt) for key, fmt in
                              (("pores", "d"), ("pore_diameter", ".1f"), ("pore_chord", ".1f")))
        lines.append(f"| {row['case']} | {row['storage']} | {_pct(ref.get('porosity'))} ({ref.get('kind', '')}) "
                     f"| {por} | {dices} | {pores} | {diam} | {chord} |")
    if sandstone:
        lines += ["", f"Sandstone slices (Dice on the pore label; U-Nets of the `{SANDSTONE_MODELS}` study):", "",
                  "| slice | reference porosity | Dice pore Otsu | Dice pore step 1 | Dice pore step 2 |",
                  "|---|---:|---:|---:|---:|"]
        for row in sandstone:
            cells = [_num(row.get(k, {}).get("dice_pore"), ".3f") for k in METHODS]
            lines.append(f"| {row['slice']} | {_pct(row['reference_porosity'])} | " + " | ".join(cells) + " |")
    if failures:
        lines += ["", "Failed stages:", ""] + [f"- {name}: {message}" for name, message in sorted(failures.items())]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="demo", help="study profile (default demo; smoke for a quick run)")
    parser.add_argument("--size", type=int, default=96, help="edge of the foreign cubes, voxels (default 96)")
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES),
                        help=f"comma-separated cases, or 'all' (default: {','.join(DEFAULT_CASES)}; "
                             f"all: {','.join(ALL_CASES)})")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "_validation",
                        help="output folder (default runs/_validation, beside the study's run folders)")
    parser.add_argument("--jobs", type=int, default=None, help="samples run at once (default: the runner's)")
    parser.add_argument("--generator", choices=GENERATORS, default=None,
                        help="step-1 generator of every case of this call (default: the profile's, closed-cell)")
    args = parser.parse_args(argv)
    args.cases = list(ALL_CASES) if args.cases == "all" else [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.cases if c not in ALL_CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(ALL_CASES)}")
    if args.size < 1:
        parser.error(f"--size must be positive, got {args.size}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    from foamlib.device import idle_cpus
    from foamlib.io import read_scan
    from foamlib.runfolder import RunFolder
    from foamlib.runs import read_json, write_json
    from foamlib.study import SampleSpec, load_profile, run_study

    out = args.out.resolve()
    cases = list(args.cases)
    if "sandstone" in cases and SANDSTONE_MODELS not in cases:
        cases.insert(cases.index("sandstone"), SANDSTONE_MODELS)
    missing = [c for c in cases if c in REAL and not (SHARED / REAL[c].path).is_file()]
    if "sandstone" in cases and not (SHARED / "sandstone").is_dir():
        missing.append("sandstone")
    if missing:
        print(f"validate: the real scans of {', '.join(missing)} are not in {SHARED}; run without them "
              f"(--cases) or put ../shared/data beside the checkout", file=sys.stderr)
        return 2

    # the cores to use, read before this process's own work (the scans below) raises the load average
    cpus = idle_cpus()
    start = time.perf_counter()
    samples, records = [], {}
    for name in cases:
        if name in FOREIGN:
            scan_path, record = prepare_foreign(FOREIGN[name], args.size, out / "cases")
            records[name] = record
            print(f"case {name}: {record['dtype']} scan {scan_path}, truth porosity {record['porosity']:.4f}, "
                  f"{record['pores']['count']} pores", flush=True)
            samples.append(SampleSpec(name, str(scan_path)))
        elif name in REAL:
            case = REAL[name]
            samples.append(SampleSpec(name, str(SHARED / case.path), shape=case.shape, dtype=case.dtype))
    prepared = time.perf_counter() - start
    profile = load_profile(args.profile)
    if args.generator is not None:
        profile["generator"] = args.generator
    results = run_study(samples, profile=profile, notebooks_dir=ROOT / "notebooks", runs_dir=out / "runs",
                        jobs=args.jobs, cpus=cpus)
    failed = {r.sample: f"{r.stage}: {r.message}" for r in results if r.status == "failed"}

    rows = []
    for spec in samples:
        name = spec.name
        run = RunFolder(out / "runs" / name)
        scan_record = read_scan(spec.scan_path, shape=spec.shape, dtype=spec.dtype)
        scan = scan_record.volume
        if name in FOREIGN:
            record = records[name]
            reference = read_truth(out / "cases" / name)
            ref = {"kind": "truth", "porosity": record["porosity"], "exact_porosity": record["exact_porosity"],
                   "pores": record["pores"]["count"], "pore_diameter": record["pores"]["mean_diameter"],
                   "pore_chord": record["pores"]["mean_chord"]}
            storage = record["dtype"]
        else:
            reference = real_reference(REAL[name], scan)
            ref = {"kind": "none"} if reference is None else {"kind": REAL[name].reference, **{
                k: v for k, v in score(reference, None, None).items()}}
            ref["porosity"] = ref.get("porosity")
            storage = scan_record.original_dtype
        segs = {m: run.read_segmentation(m) for m in METHODS if run.segmentation(m).is_file()}
        row = {"case": name, "storage": storage, "reference": ref,
               "status": "failed: " + failed[name] if name in failed else "scored",
               "methods": {m: score(s, reference, ref.get("porosity")) for m, s in segs.items()},
               "seconds": read_json(run.path / "summary.json").get("seconds")
               if (run.path / "summary.json").is_file() else None}
        if name in failed and segs:
            row["status"] = "scored"
            row["failure"] = failed[name]
        rows.append(row)
        case_figure(out / "figures" / f"{name}.png", name, scan, segs, reference,
                    "truth" if name in FOREIGN else "reference")

    sandstone = []
    if "sandstone" in cases:
        sandstone = sandstone_rows(out / "runs" / SANDSTONE_MODELS, out / "sandstone")
    wall = time.perf_counter() - start
    note = (f"Profile `{args.profile}`, step-1 generator `{profile['generator']}`, foreign cubes of {args.size}^3 voxels; {wall / 60:.1f} min in all "
            f"({prepared:.0f} s to build the cases).")
    text = markdown_table(rows, sandstone, note, failed)
    from foamlib.runs import atomic_path

    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "table.md") as tmp:
        tmp.write_text(text, encoding="utf-8")
    write_json(out / "table.json", {"profile": args.profile, "generator": profile["generator"], "size": args.size, "seconds": wall,
                                    "seconds_building_cases": prepared, "cases": rows, "sandstone": sandstone,
                                    "failures": failed})
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
