"""Command line: ``foamlib analyze``, ``segment``, ``export``, ``phantom`` and ``study run|plan|prepare|summary``.

Errors are printed to stderr as one line, ``foamlib: error: ...``, with exit
status 1 (2 for wrong usage); no traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__
from .tiling import DEFAULT_BATCH_SIZE, DEFAULT_OVERLAP, DEFAULT_TILE

log = logging.getLogger("foamlib")

#: Peak bytes per voxel of the in-memory analysis: the float32 scan plus about 60 for the structure statistics.
_ANALYZE_BYTES_PER_VOXEL = 64

_MEMORY_NOTE = (
    "Memory: in memory the scan is held as float32 (4 bytes per voxel) plus about 60 bytes per voxel at peak for "
    "the structure analysis, so a 512^3 scan needs about 8.5 GB. A scan that needs more than --memory GB "
    "(default 2) is analysed slab by slab instead: the Otsu threshold comes from a histogram of every voxel "
    "(exact for integer grey values) and the porosity from int64 counts, both equal to the in-memory results; "
    "pore size and wall thickness then need --crop, a sub-volume that fits the budget, segmented with the "
    "whole scan's threshold."
)


def _add_scan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scan", type=Path, help="multi-page TIFF, folder of TIFF/PNG slices, raw file or .npy")
    parser.add_argument("--voxel-size", type=float, metavar="UM", help="voxel size in micrometres (overrides the file)")
    raw = parser.add_argument_group("raw files")
    raw.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), help="shape of a raw file")
    raw.add_argument("--dtype", help="dtype of a raw file, e.g. uint8, uint16, float32")
    raw.add_argument("--byte-order", choices=("little", "big"), default="little", help="byte order of a raw file")


def _scan_options(args) -> dict:
    """The reader options of a scan argument (raw layout and voxel size), as read_scan and open_scan take them."""
    return {"shape": tuple(args.shape) if args.shape else None, "dtype": args.dtype,
            "byte_order": args.byte_order, "voxel_size_um": args.voxel_size}


def _read(args):
    from .io import read_scan

    return read_scan(args.scan, **_scan_options(args))


def _open(args):
    from .lazy import open_scan

    return open_scan(args.scan, **_scan_options(args))


def _cmd_analyze(args) -> int:
    from .structure import analyze
    from .threshold import segment, threshold_value

    if args.memory is not None and not args.memory > 0:
        raise ValueError(f"--memory must be a positive number of GB, got {args.memory}")
    lazy = _open(args)
    need = lazy.size * _ANALYZE_BYTES_PER_VOXEL
    if args.crop is not None or (need > args.memory * 1e9 and args.slice is None and lazy.shape[0] > 1):
        return _analyze_streamed(args, lazy, need)
    scan = _read(args)
    volume = scan.volume
    if volume.shape[0] == 1:  # a single image: analyse it as a 2D slice
        volume = volume[0]
    elif args.slice is not None:
        if not 0 <= args.slice < volume.shape[0]:
            raise ValueError(f"--slice {args.slice} is outside the scan's {volume.shape[0]} slices")
        volume = volume[args.slice]
    level = threshold_value(volume, method=args.method)
    solid = segment(volume, method=args.method)
    report = analyze(solid, voxel_size_um=scan.voxel_size_um)
    result = {
        "scan": str(args.scan),
        "shape": list(volume.shape),
        "threshold_method": args.method,
        "threshold": float(level),
        **report.to_dict(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.scan}: {' x '.join(map(str, volume.shape))} voxels, threshold ({args.method}) {level:.4g}")
        print(f"porosity             {report.porosity:.4f} ({100 * report.porosity:.2f} %)")
        _print_sizes(report, scan.voxel_size_um, "scan")
    return 0


def _print_sizes(report, voxel_size_um: float | None, where: str) -> None:
    """Print a structure report's pore diameter, pore chord and wall thickness, in um where the voxel size is known."""
    known = voxel_size_um is not None
    unit = "um" if known else "voxels"
    pore = report.mean_pore_diameter_um if known else report.mean_pore_diameter_voxels
    chord = report.mean_pore_chord_um if known else report.mean_pore_chord_voxels
    wall = report.mean_wall_thickness_um if known else report.mean_wall_thickness_voxels
    if pore is None:
        print(f"mean pore diameter   undefined: no pore lies wholly inside the {where}")
    else:
        print(f"mean pore diameter   {pore:.3g} {unit} ({report.n_pores} pores)")
    print(f"mean pore chord      {chord:.3g} {unit} (from every pore, cut ones too)")
    print(f"mean wall thickness  {wall:.3g} {unit}")


def _analyze_streamed(args, lazy, need: int) -> int:
    """analyze for a scan above the memory budget (or with --crop): streamed threshold and porosity."""
    from .structure import analyze
    from .threshold import count_above, threshold_scan

    if args.slice is not None:
        raise ValueError("--slice and --crop exclude each other; give one")
    level = threshold_scan(lazy, method=args.method, progress=True)
    solid_voxels = count_above(lazy, level, progress=True)
    total = lazy.size
    porosity = float(np.int64(total - solid_voxels) / np.int64(total))
    report = None
    note = None
    if args.crop is not None:
        box = _crop_box(args.crop, lazy.shape)
        crop_need = math.prod(b.stop - b.start for b in box) * _ANALYZE_BYTES_PER_VOXEL
        if crop_need > args.memory * 1e9:
            raise ValueError(f"--crop of {' x '.join(str(b.stop - b.start) for b in box)} voxels needs about "
                             f"{crop_need / 1e9:.2f} GB, above --memory {args.memory:g}; crop less or raise --memory")  # fmt: skip
        report = analyze(lazy[box].astype(np.float32) > level, voxel_size_um=lazy.voxel_size_um)
    else:
        note = (f"pore size and wall thickness not computed: they need the segmented scan in memory, about "
                f"{need / 1e9:.1f} GB for {total} voxels, above --memory {args.memory:g}; give --crop Z0 Z1 Y0 Y1 X0 X1 "
                "to measure them on a sub-volume (with the whole scan's threshold), or raise --memory")  # fmt: skip
    result = {
        "scan": str(args.scan),
        "shape": list(lazy.shape),
        "threshold_method": args.method,
        "threshold": float(level),
        "porosity": porosity,
        "solid_voxels": solid_voxels,
        "total_voxels": total,
        "streamed": True,
        "crop": args.crop,
        "crop_structure": report.to_dict() if report is not None else None,
        "note": note,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{args.scan}: {' x '.join(map(str, lazy.shape))} voxels, threshold ({args.method}, whole scan, streamed) "
          f"{level:.4g}")  # fmt: skip
    print(f"porosity             {porosity:.4f} ({100 * porosity:.2f} %) of the whole scan")
    if report is None:
        print(note)
        return 0
    print(f"in the crop {args.crop} (z0 z1 y0 y1 x0 x1):")
    print(f"porosity             {report.porosity:.4f} ({100 * report.porosity:.2f} %) of the crop")
    _print_sizes(report, lazy.voxel_size_um, "crop")
    return 0


def _crop_box(crop: list[int], shape: tuple[int, int, int]) -> tuple[slice, slice, slice]:
    """The --crop Z0 Z1 Y0 Y1 X0 X1 box as slices; ValueError unless inside the scan and at least 2 voxels a side."""
    box = []
    for axis, (start, stop), n in zip("zyx", zip(crop[::2], crop[1::2]), shape):
        if not 0 <= start < stop <= n or stop - start < 2:
            raise ValueError(f"--crop {axis}: [{start}, {stop}) must lie within the scan's {n} voxels along {axis} "
                             "and span at least 2")  # fmt: skip
        box.append(slice(start, stop))
    return tuple(box)


def _cmd_segment(args) -> int:
    from .segment import segment_file

    # the plan (slab depths, estimated peak memory and time) is logged at INFO before the run starts
    logging.getLogger("foamlib.segment").setLevel(logging.DEBUG if args.debug else logging.INFO)
    result = segment_file(
        args.scan,
        args.model,
        args.out,
        axes=args.axes,
        threshold=args.threshold,
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        intensity_range=tuple(args.intensity_range) if args.intensity_range else None,
        overwrite=args.overwrite,
        memory_gb=args.memory,
        device=args.device,
        precision=args.precision,
        scheduler=args.scheduler,
        progress=True,  # tqdm writes to stderr; stdout keeps only the result
        label=args.label,
        probabilities=args.probabilities,
        **_scan_options(args),
    )
    if args.json:
        print(json.dumps({"scan": str(args.scan), "model": str(args.model), **result.to_dict()}, indent=2))
    else:
        other = "pore" if result.label == "solid" else "solid"
        print(
            f"{result.out_path}: {' x '.join(map(str, result.shape))} voxels segmented ({args.axes}) in "
            f"{result.seconds:.1f} s, porosity {result.porosity:.4f} ({100 * result.porosity:.2f} %); "
            f"255 = {result.label}, 0 = {other}"
        )
        if result.probabilities_path is not None:
            print(f"{result.probabilities_path}: probability of solid, float32 0 to 1")
    return 0


def _cmd_export(args) -> int:
    from .export import export_bioimageio, export_onnx, onnxruntime_available

    if args.out.suffix.lower() == ".zip":
        package = export_bioimageio(args.model, args.out, overwrite=args.overwrite, opset=args.opset)
        checked = ("" if package.test_max_abs_difference is None else
                   f"; its ONNX weights reproduce the torch test output to {package.test_max_abs_difference:.2g}")  # fmt: skip
        print(f"{package.path}: bioimage.io model package of {args.model} (ONNX weights, opset {args.opset}), "
              f"bioimageio.spec validation: {package.validation_status}{checked}")  # fmt: skip
        return 0
    verify = onnxruntime_available()
    result = export_onnx(args.model, args.out, overwrite=args.overwrite, opset=args.opset, verify=verify)
    meta = result.metadata
    norm = json.loads(meta["normalisation"])
    print(f"{result.path}: ONNX opset {result.opset} of {args.model}. Input 'image' (N, 1, H, W) float32: grey values "
          f"mapped to [0, 1] by percentiles {norm['low_percentile']:g} and {norm['high_percentile']:g} of each scan; "
          f"output 'probability' (N, 1, H, W) of solid (1 - it = pore); tiles of at least {meta['min_tile']} px")  # fmt: skip
    if result.max_abs_difference is None:
        print("not checked: onnxruntime is not installed (pip install onnxruntime to compare with torch)")
    else:
        shapes = ", ".join("x".join(map(str, s)) for s in result.check_shapes)
        print(f"onnxruntime reproduces the torch probabilities to {result.max_abs_difference:.2g} "
              f"(max abs difference on inputs {shapes})")  # fmt: skip
    return 0


def _cmd_phantom(args) -> int:
    from .io import check_tiff_output, same_path, write_tiff
    from .phantom import demo_sample

    # every output is checked before any is written, so a refused run leaves nothing behind
    if args.truth is not None and same_path(args.out, args.truth):
        raise ValueError(f"--out {args.out} and --truth {args.truth} are the same file; give the truth another name")
    for path in [args.out] + ([args.truth] if args.truth is not None else []):
        check_tiff_output(path, overwrite=args.overwrite)
    demo = demo_sample(args.name, size=args.size)
    out = write_tiff(args.out, demo.scan, voxel_size_um=demo.voxel_size_um, overwrite=args.overwrite)
    print(f"{out}: demo sample {args.name}, {args.size}^3 voxels of {demo.voxel_size_um} um, porosity {demo.porosity:.4f}")
    if args.truth is not None:
        truth = write_tiff(args.truth, demo.truth, voxel_size_um=demo.voxel_size_um, overwrite=args.overwrite)
        print(f"{truth}: its ground-truth solid (0/255)")
    return 0


def _study_specs(args) -> list:
    """The samples of ``study run``, ``study plan`` and ``study prepare``: demo names and ``--scan`` files."""
    from .samples import demo_names
    from .study import SampleSpec

    specs: list[SampleSpec] = []
    for name in args.samples.split(",") if args.samples else []:
        name = name.strip()
        if name == "demo":
            specs += [SampleSpec(n) for n in demo_names()]
        elif name:
            if name not in demo_names():
                raise ValueError(
                    f"--samples: unknown demo sample {name!r}; use {', '.join(demo_names())} or 'demo', "
                    "and --scan PATH for a scan of your own"
                )
            specs.append(SampleSpec(name))
    scan_only = {"--name": args.name, "--reference-porosity": args.reference_porosity,
                 "--voxel-size": args.voxel_size, "--shape": args.shape, "--dtype": args.dtype}
    if not args.scan:
        given = [option for option, value in scan_only.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} describe{'s' if len(given) == 1 else ''} --scan; give --scan PATH")
    if args.scan and len(args.scan) > 1 and args.name is not None:
        raise ValueError("--name names the run folder of one --scan; leave it out for several (each gets its file name)")
    if getattr(args, "jobs", None) is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
    for scan in args.scan or []:
        if not scan.exists():
            raise FileNotFoundError(f"scan {scan} does not exist")
        specs.append(
            SampleSpec(
                name=args.name or scan.stem.split(".")[0],
                scan_path=str(scan.resolve()),
                reference_porosity=args.reference_porosity,
                **_scan_options(args),
            )
        )
    if not specs:
        raise ValueError("nothing to run: give --samples demo (or sample names) and/or --scan PATH")
    return specs


def _profile(args):
    """The profile of a study command: its name, or its values with the --set changes applied."""
    if not args.settings:
        return args.profile
    import yaml

    from .study import load_profile

    values = load_profile(args.profile)
    for item in args.settings:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set needs KEY=VALUE (e.g. --set generator=spheres), got {item!r}")
        try:
            values[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item}: the value is not valid YAML: {exc}") from exc
    return values


def _cmd_study_plan(args) -> int:
    from .device import idle_cpus
    from .study import format_plan, plan_study

    specs = _study_specs(args)
    plans = plan_study(specs, profile=_profile(args), notebooks_dir=args.notebooks, runs_dir=args.runs_dir,
                       jobs=args.jobs, force=args.force, until=args.until)
    jobs = max(1, min(len(specs), idle_cpus() if args.jobs is None else args.jobs))
    print(f"plan of `foamlib study run` on the {args.profile} profile (nothing runs now):")
    print(format_plan(plans, jobs=jobs))
    return 0


def _cmd_study_prepare(args) -> int:
    from .study import prepare_notebooks

    paths = prepare_notebooks(_study_specs(args), profile=_profile(args), notebooks_dir=args.notebooks,
                              runs_dir=args.runs_dir, overwrite=args.overwrite, until=args.until)
    for path in paths:
        print(path)
    print(f"{len(paths)} notebooks for the {args.profile} profile: `jupyter lab {args.runs_dir}` and run each "
          "sample's lab/ notebooks in order (each kernel starts in the notebook's folder; run_dir is '..')")
    return 0


def _cmd_study_run(args) -> int:
    from .study import run_study

    if args.dry_run:
        return _cmd_study_plan(args)
    specs = _study_specs(args)
    results = run_study(
        specs,
        profile=_profile(args),
        notebooks_dir=args.notebooks,
        runs_dir=args.runs_dir,
        jobs=args.jobs,
        force=args.force,
        progress_every=args.progress_every,
        scheduler=args.scheduler,
        until=args.until,
    )
    failed = [r for r in results if r.status == "failed"]
    ran = sum(r.status == "ran" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    print(f"study: {ran} stages ran, {skipped} skipped, {len(failed)} failed; run folders in {args.runs_dir}/")
    for r in failed:
        where = f"; executed notebook: {r.notebook}" if r.notebook else ""
        print(f"foamlib: {r.sample}: {r.stage} failed: {r.message}{where}", file=sys.stderr)
    if failed:
        print("foamlib: fix the cause and run the same command again: it resumes at the failed stages "
              "(--force runs every stage again)", file=sys.stderr)
    return 1 if failed else 0


def _cmd_study_summary(args) -> int:
    from .study import summary_table

    print(summary_table(args.runs_dir))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``foamlib`` command."""
    parser = argparse.ArgumentParser(
        prog="foamlib",
        description="Segment CT scans of foams; synthetic training data after Griem et al.",
    )
    parser.add_argument("--version", action="version", version=f"foamlib {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "analyze",
        help="porosity, pore size and wall thickness of a scan's Otsu segmentation",
        description="Threshold a scan (global Otsu by default; solid = bright) and print its porosity, "
        "mean pore diameter and mean wall thickness. " + _MEMORY_NOTE,
    )
    _add_scan_options(p)
    p.add_argument("--method", choices=("otsu", "li", "triangle"), default="otsu", help="global threshold")
    p.add_argument("--slice", type=int, metavar="Z", help="analyse only this z slice (2D)")
    p.add_argument(
        "--memory",
        type=float,
        default=2.0,
        metavar="GB",
        help="memory budget in GB (default 2); a scan needing more (64 bytes per voxel) is analysed slab by slab",
    )
    p.add_argument(
        "--crop",
        type=int,
        nargs=6,
        metavar=("Z0", "Z1", "Y0", "Y1", "X0", "X1"),
        help="measure pore size and wall thickness on this sub-volume (half-open voxel ranges), segmented with the "
        "whole scan's streamed threshold",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser(
        "segment",
        help="segment a scan with a trained U-Net and write the solid as a TIFF stack or OME-Zarr image",
        description="Run a segmentation model saved by foamlib on every slice of a scan (tiled, blended), threshold "
        "the solid probability and write a uint8 TIFF stack (255 = solid, 0 = pore; --label pore for the reverse, "
        "PoreSpy's True = pore) with the scan's voxel size and the phase convention in its ImageJ metadata; "
        "--probabilities also writes the float32 solid probability. Prints the porosity. Grey values are scaled per scan with the model's normalisation (robust percentiles of the scan) "
        "unless --intensity-range is given; warnings name a range that clips many voxels, a voxel size far from the "
        "model's, and thin tile overlaps. Memory: the scan is read and segmented slab by slab, never whole, so a "
        "scan of any size runs within --memory GB (default 2) plus about 0.4 GB for Python and torch; the slab "
        "depths, the estimated peak memory and the estimated time are printed before the run starts. "
        "--axes xyz also needs 4 bytes per voxel of temporary disk space beside the output (a 1024^3 scan: 4.3 GB); "
        "--probabilities writes 4 bytes per voxel. An --out ending in .zarr is written as an OME-Zarr 0.5 image "
        "(chunked, same values, the phase convention in its attributes); --scheduler runs the slabs as Dask tasks "
        "on a LocalCluster or a running cluster; --precision sets the GPU's arithmetic.",
    )
    _add_scan_options(p)
    p.add_argument("--model", type=Path, required=True, help="model file (.pt) written by foamlib")
    p.add_argument("--out", type=Path, required=True, help="output TIFF stack (.tif), or OME-Zarr image (.zarr)")
    p.add_argument("--axes", choices=("z", "xyz"), default="z", help="slice along z, or average z, y and x (default z)")
    p.add_argument(
        "--intensity-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="grey values of this scan mapped to 0 and 1 (default: derived from the scan with the model's normalisation)",
    )
    p.add_argument("--tile", type=int, default=DEFAULT_TILE,
                   help=f"tile side in pixels (default {DEFAULT_TILE}; at least the model's minimum)")
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                   help=f"overlap of neighbouring tiles in pixels (default {DEFAULT_OVERLAP})")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                   help=f"tiles per forward pass (default {DEFAULT_BATCH_SIZE})")
    p.add_argument(
        "--memory",
        type=float,
        default=2.0,
        metavar="GB",
        help="memory budget in GB for slabs, probabilities and the network's activations (default 2); "
        "the slab depths follow from it",
    )
    p.add_argument("--threshold", type=float, default=0.5, help="solid probability threshold (default 0.5)")
    p.add_argument("--label", choices=("solid", "pore"), default="solid",
                   help="phase written as 255 (default solid; pore gives PoreSpy's True = pore); recorded in the TIFF")
    p.add_argument("--probabilities", type=Path, metavar="PATH",
                   help="also write the probability of solid here (float32 TIFF stack, 0 to 1, with the voxel size)")
    p.add_argument("--device", help="auto (default: the first CUDA GPU, else the CPU), cpu, cuda or cuda:N")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="arithmetic of the network on a GPU: auto (default: bf16 on a CUDA GPU that supports it, else fp32), "
        "fp32, bf16 or fp16 (autocast); the CPU runs fp32",
    )
    p.add_argument(
        "--scheduler",
        metavar="local|ADDRESS",
        help="segment the slabs as Dask tasks: 'local' (a LocalCluster of the idle cores) or a Dask scheduler's "
        "address (tcp://HOST:PORT); same result as without",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_segment)

    from .export import DEFAULT_OPSET, ONNX_TOLERANCE

    p = sub.add_parser(
        "export",
        help="export a trained segmentation U-Net to ONNX (ONNX Runtime, deepImageJ, ilastik)",
        description="Write a segmentation model saved by foamlib as an ONNX file with dynamic batch, height and "
        "width: input 'image' (N, 1, H, W) float32 grey values in [0, 1], output 'probability' (N, 1, H, W), the "
        "probability of solid. The ONNX metadata records the grey-value normalisation (percentiles of each scan), "
        "the phase convention, the smallest useful tile, the voxel size where known and the foamlib version. Where "
        "onnxruntime is installed the file is run on two inputs (one non-square) and compared with torch; a "
        f"difference above {ONNX_TOLERANCE:g} is an error and nothing is written. The file is written atomically. An --out "
        "ending in .zip writes a bioimage.io model package instead (for deepImageJ in Fiji, ilastik and "
        "bioimageio.core; needs the bioimageio.spec package), validated before it is moved into place.",
    )
    p.add_argument("--model", type=Path, required=True, help="segmentation model file (.pt) written by foamlib")
    p.add_argument("--out", type=Path, required=True, help="ONNX file (.onnx) or bioimage.io model package (.zip)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("phantom", help="write a built-in demo sample (simulated CT of a PU foam) as a TIFF stack")
    p.add_argument("name", help="demo sample: foam89, foam86 or foam82")
    p.add_argument("--size", type=int, default=128, help="edge of the cube in voxels (default 128)")
    p.add_argument("--out", type=Path, required=True, help="output TIFF stack")
    p.add_argument("--truth", type=Path, help="also write the ground-truth solid (0/255) here (not the --out file)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=_cmd_phantom)

    study = sub.add_parser("study", help="run the study's notebooks with papermill")
    study_sub = study.add_subparsers(dest="study_command", required=True)

    def add_sample_options(p, *, runs: bool = True) -> None:
        p.add_argument("--samples", default=None, help="comma-separated demo sample names, or 'demo' for all three")
        p.add_argument("--scan", type=Path, action="append", help="a scan of your own (repeatable)")
        p.add_argument("--name", help="run-folder name for --scan (default: the file name)")
        p.add_argument("--reference-porosity", type=float, metavar="X", help="measured porosity of --scan, a fraction")
        p.add_argument("--voxel-size", type=float, metavar="UM", help="voxel size of --scan in micrometres")
        p.add_argument("--shape", type=int, nargs=3, metavar=("Z", "Y", "X"), help="shape of a raw --scan file")
        p.add_argument("--dtype", help="dtype of a raw --scan file, e.g. uint8, uint16, float32")
        p.add_argument("--byte-order", choices=("little", "big"), default="little",
                       help="byte order of a raw --scan file")
        p.add_argument("--profile", default="demo", help="smoke, demo (default), paper, or a YAML file of parameters")
        p.add_argument("--set", action="append", dest="settings", metavar="KEY=VALUE",
                       help="change one setting of the profile (repeatable; VALUE read as YAML), e.g. "
                       "--set generator=spheres")
        p.add_argument("--notebooks", type=Path, default=Path("notebooks"), help="folder of numbered notebooks")
        p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="parent of the run folders")
        p.add_argument("--until", metavar="NN",
                       help="only the stages up to this one (its number, e.g. 05, or its notebook's name); the "
                       "profile is still checked against every stage")
        if runs:
            p.add_argument("--jobs", type=int, help="samples run in parallel (default: one per idle core)")
            p.add_argument("--force", action="store_true", help="run every stage even if unchanged")

    p = study_sub.add_parser(
        "run",
        help="run every numbered notebook for each sample",
        description="Run notebooks/NN_*.ipynb in order for each sample with papermill; executed notebooks and "
        "artefacts go to RUNS_DIR/<sample>/. Stages whose notebook, parameters, inputs and foamlib source are "
        "unchanged, and whose output files verify (size and SHA-256), are skipped. Names, scans, the profile and "
        "the scan's shape against the profile's patch and crop sizes are checked before any notebook starts. "
        "A failed sample does not stop the others; its executed notebook is kept in RUNS_DIR/<sample>/failed/ and "
        "the next run resumes at the failed stage. One run at a time per run folder (a lock file, .lock).",
    )
    add_sample_options(p)
    p.add_argument("--dry-run", action="store_true",
                   help="print what would run or be skipped, with estimated time and peak memory, and run nothing "
                   "(the same as `foamlib study plan`)")
    p.add_argument("--progress-every", type=float, default=10.0, metavar="S",
                   help="seconds between two progress lines of a running stage (default 10; 0: only a line per stage)")
    p.add_argument("--scheduler", metavar="local|ADDRESS",
                   help="run each sample's stages as a Dask task: 'local' (a LocalCluster of --jobs workers) or a Dask "
                   "scheduler's address (tcp://HOST:PORT), whose workers need foamlib[study,scale] and the same paths "
                   "to the notebooks and run folders; the study-wide stages run here afterwards")
    p.set_defaults(func=_cmd_study_run)
    p = study_sub.add_parser(
        "plan",
        help="what `study run` would run or skip, with estimated time and peak memory; runs nothing",
        description="For each sample, the stages `foamlib study run` would run or skip (the runner's own checks: "
        "stage keys and recorded outputs; no kernel starts, nothing is written) and an estimate of each stage's wall "
        "time and peak memory on the reference machine (2 CPU cores, no GPU): the sample's own record where the "
        "stage last ran with the same parameters, else the cost model of foamlib.costs (measured smoke and demo "
        "runs, scaled by voxels, images x epochs, steps x pixels).",
    )
    add_sample_options(p)
    p.set_defaults(func=_cmd_study_plan)
    p = study_sub.add_parser(
        "prepare",
        help="write the notebooks, parameterised for a profile and sample, to run in JupyterLab",
        description="Write unexecuted copies of the numbered notebooks to RUNS_DIR/<sample>/lab/ (and the study-wide "
        "ones to RUNS_DIR/_study/lab/), each with a cell below its parameters cell that sets the profile's and the "
        "sample's values (papermill's parameter injection) and run_dir relative to the notebook's folder, where "
        "JupyterLab starts its kernel. Run them in order in JupyterLab; they read and write the same run folder as "
        "`foamlib study run`. A notebook in lab/ that differs from the one to write is left alone unless "
        "--overwrite is given.",
    )
    add_sample_options(p, runs=False)
    p.add_argument("--overwrite", action="store_true", help="replace notebooks in lab/ that differ (edited or run)")
    p.set_defaults(func=_cmd_study_prepare)
    p = study_sub.add_parser("summary", help="print every sample's porosities as a markdown table")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="parent of the run folders")
    p.set_defaults(func=_cmd_study_summary)
    return parser


def _quiet_dask(record: logging.LogRecord) -> bool:
    """Logging filter: drop distributed's records below ERROR (its loggers are set to INFO when it is imported)."""
    return not record.name.startswith("distributed") or record.levelno >= logging.ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``foamlib`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # foamlib's own warnings are shown; other libraries' (tifffile's notes on a corrupt file, say)
    # (logged even at ERROR level) only with --debug, so that an error stays one line.
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.CRITICAL, format="foamlib: %(message)s")
    logging.getLogger("foamlib").setLevel(logging.DEBUG if args.debug else logging.WARNING)
    if not args.debug:  # Dask's distributed logs its clusters' start-up and shutdown at INFO: errors only
        for handler in logging.getLogger().handlers:
            handler.addFilter(_quiet_dask)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("foamlib: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, no traceback, for every error
        if args.debug:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"foamlib: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
