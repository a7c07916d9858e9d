"""Does step 2's translation carry the labels' geometry? The CycleGAN against the step-1 renderer, over seeds.

Issue 21 asks why step 2 adds solid on foreign scans (the step-2 U-Net's porosity falls below step 1's by
a few points, its sweep over wall fractions flat). Two readings: the GAN's binary images and their walls
are wrong, or the CycleGAN's translation of them is (its images are cleaner than the scan, so the U-Net
trained on them reads the scan's noise and faint walls as solid). This benchmark separates the two. On a
finished validation run (``benchmarks/validate.py``), for each case and seed, it trains the step-2 U-Net
twice on the *same* labels (stage 07's walled GAN images of the main wall fraction):

- ``cyclegan``: on the CycleGAN's grey images of them, the study's step-2 data set (what notebook 09 does);
- ``render``: on the same labels rendered by the step-1 physical model (blur, contrast, noise;
  :func:`foamlib.render.render_slices` with the grey model and ranges fitted in notebook 03),
  split with the same seed, so only the grey images differ.

Each U-Net (the step-1 architecture, the profile's step-2 training settings, initial weights and
training from the seed) segments the scan, scored against the truth: porosity error (pp), Dice of the
solid, separate pores (:func:`foamlib.independent.pore_statistics`). Seed 0 of ``cyclegan`` repeats the
study's own step-2 U-Net (exactly when the thread count is the study's kernel's; else to a few tenths of
a pp: closed_thick -0.04 pp here against -0.06 pp in the suite). Each variant's grey images are also
compared with the scan by FID (notebook 10's crops and encoder: EfficientNet-Lite0 with ImageNet
weights, a seeded random ResNet50 where those cannot be had; the FID between two draws of the scan's
crops is the floor). Prints a table of mean ± standard deviation over seeds and writes
``OUT/translation.json``. The samples are a validation run's cases (``--validation``, after ``python
benchmarks/validate.py``) or the demo samples of a finished study (``--runs``, their truth is the
phantom's)::

    python benchmarks/bench_step2_render.py --validation runs/_validation --cases closed_thin,closed_thick
    python benchmarks/bench_step2_render.py --runs runs --cases foam82 --out runs/_step2_render
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_faint_walls import samples_with_truth  # noqa: E402
from validate import score  # noqa: E402

VARIANTS = ("cyclegan", "render")


def step2_settings(profile: str) -> dict:
    """The step-2 settings of notebook 09 for a profile (its defaults overridden by the profile)."""
    from foamlib.study import find_stages, load_profile, resolved_parameters

    stages = [s for s in find_stages(ROOT / "notebooks") if s.name.startswith("09_")]
    resolved = {k: v for k, (v, _) in resolved_parameters(stages, load_profile(profile)).items()}
    keys = ("wall_fraction", "step2_epochs", "step2_patience", "batch_size", "axes", "tile", "segment_memory_gb")
    return {k: resolved[k] for k in keys}


def rendered_dataset(run, fraction: float, folder: Path) -> Path:
    """The walled GAN images of ``fraction`` rendered by the step-1 grey model, split as notebook 08 splits."""
    from foamlib import streams
    from foamlib.datasets import read_manifest, write_dataset
    from foamlib.render import GreyModel, RenderRanges, render_slices
    from foamlib.runfolder import read_mask

    if (folder / "manifest.json").is_file():
        return folder
    step1 = read_manifest(run.step1_data)["parameters"]
    labels = read_mask(run.walls(fraction))
    images = render_slices(labels, GreyModel.from_dict(step1["grey_model"]),
                           ranges=RenderRanges.from_dict(step1["ranges"]), rng=streams.rng(0, "bench-render"),
                           grey_range=tuple(step1["intensity_range"]))  # fmt: skip
    return write_dataset(folder, images, labels, rng=streams.seed_for(0, "step2-split"), overwrite=True,
                         manifest={"source": "render", "wall_fraction": fraction})


def train_and_segment(data: Path, run, scan, settings: dict, seed: int, out: Path) -> dict:
    """Notebook 09's step-2 U-Net on one data set and seed; its segmentation of the scan, its test metrics."""
    from foamlib.datasets import load_split
    from foamlib.runfolder import read_mask
    from foamlib.segment import segment_scan
    from foamlib.training import TrainConfig, evaluate, load_model, train_unet
    from foamlib.unet import build_unet

    step1_model, meta = load_model(run.model("step1"))
    config = TrainConfig(epochs=settings["step2_epochs"], batch_size=settings["batch_size"],
                         patience=settings["step2_patience"], seed=seed,
                         learning_rate=meta["train_config"]["learning_rate"])  # fmt: skip
    model = build_unet(step1_model.config, seed=seed)
    start = time.perf_counter()
    train_unet(model, load_split(data, "train"), load_split(data, "val"), config=config,
               checkpoint_path=out.with_suffix(".ckpt"), progress=False, on_mismatch="restart")
    test = evaluate(model, *load_split(data, "test"))
    segment_scan(model, scan, out, axes=settings["axes"], tile=settings["tile"],
                 intensity_range=tuple(meta["intensity_range"]), memory_gb=settings["segment_memory_gb"],
                 overwrite=True)  # fmt: skip
    return {"seconds": time.perf_counter() - start, "test_mean_dice": test.mean_dice,
            "segmentation": read_mask(out).reshape(scan.shape)}


def fid_to_scan(scan, run, data: dict[str, Path], n_images: int, seed: int = 0) -> dict:
    """FID (with its interval) of each data set's grey images against the scan, as notebook 10 measures it.

    ``n_images`` crops per set, of the largest size every set allows, from the scan in all three
    directions and from each set's images (all splits); the FID between two draws of the scan's crops
    is the floor at that number.
    """
    from foamlib import streams
    from foamlib.datasets import SPLITS, load_split, read_manifest
    from foamlib.features import extract_features, load_encoder
    from foamlib.fid import compare_sets
    from foamlib.patches import extract_patches
    from foamlib.segment import scale_intensity

    stacks = {key: np.concatenate([load_split(folder, s)[0] for s in SPLITS]) for key, folder in data.items()}
    crop = min(min(stack.shape[1:]) for stack in stacks.values())
    grey_range = read_manifest(run.step1_data)["parameters"]["intensity_range"]
    images = {key: scale_intensity(extract_patches(scan, crop, n_images, axes="zyx",
                                                   rng=streams.rng(seed, "bench-render-fid", key)), grey_range)
              for key in ("real", "real_second_draw")}  # fmt: skip
    images |= {key: extract_patches(stack, crop, n_images, rng=streams.rng(seed, "bench-render-fid", key)) / 255.0
               for key, stack in stacks.items()}  # fmt: skip
    encoder = load_encoder("efficientnet-lite0", seed=streams.seed_for(seed, "bench-render-fid", "encoder"),
                           fallback="random")  # fmt: skip
    features = {key: extract_features(encoder, x) for key, x in images.items()}
    table = compare_sets(features.pop("real"), features, n_boot=20, rng=streams.rng(seed, "bench-render-fid", "boot"))
    return {"encoder": encoder.name, "n_images": n_images, "crop": crop,
            **{key: {"fid": float(row.fid), "low": float(row.fid_low), "high": float(row.fid_high)}
               for key, row in table.iterrows()}}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--validation", type=Path, default=None,
                        help="the --out of benchmarks/validate.py (default runs/_validation unless --runs is given)")
    parser.add_argument("--runs", type=Path, default=None, help="a finished study's runs folder with demo samples")
    parser.add_argument("--cases", default="closed_thin", help="comma-separated cases or samples with a truth")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--profile", default="demo", help="the profile the runs were made with (default demo)")
    parser.add_argument("--fractions", default=None,
                        help="comma-separated wall fractions, each a step-2 data set (default: the profile's)")
    parser.add_argument("--n-images", type=int, default=256, help="crops per set for the FID (default 256)")
    parser.add_argument("--out", type=Path, default=None, help="default: VALIDATION/step2_render")
    args = parser.parse_args(argv)
    if args.validation is None and args.runs is None:
        args.validation = ROOT / "runs" / "_validation"

    from foamlib.runfolder import RunFolder, read_mask
    from foamlib.runs import atomic_path
    from foamlib.samples import load_sample

    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.cases.split(",")
    settings = step2_settings(args.profile)
    main_fraction = settings["wall_fraction"]
    fractions = sorted({main_fraction} | ({float(f) for f in args.fractions.split(",")} if args.fractions else set()))
    out = args.out or (args.validation or args.runs) / "step2_render"
    results: dict = {"settings": settings, "seeds": seeds, "fractions": fractions, "cases": {}}
    found = {name: rest for name, *rest in samples_with_truth(args.validation, args.runs, names=names)}
    if missing := [n for n in names if n not in found]:
        raise SystemExit(f"no truth and run folder for {', '.join(missing)} in {args.validation or ''} {args.runs or ''}")
    for case in names:
        path, truth, reference, truth_pores = found[case]
        run = RunFolder(path)
        if not run.model("step2").is_file():
            raise SystemExit(f"{run.path}: no step-2 U-Net; run the study (or benchmarks/validate.py) through it first")
        scan, _ = load_sample(run.path)
        data = {(f, "cyclegan"): run.step2_data(f) for f in fractions}
        data |= {(f, "render"): rendered_dataset(run, f, out / case / ("render_data" if f == main_fraction
                                                                      else f"render_data_{f:.2f}"))
                 for f in fractions}  # fmt: skip
        fid = fid_to_scan(scan, run, {v: data[main_fraction, v] for v in VARIANTS}, args.n_images)
        print(f"{case}: FID to the scan ({fid['encoder']}, {args.n_images} crops of {fid['crop']}): "
              + ", ".join(f"{k} {v['fid']:.0f}" for k, v in fid.items() if isinstance(v, dict)), flush=True)
        rows: dict = {variant: [] for variant in VARIANTS}
        for fraction in fractions:
            for seed in seeds:
                for variant in VARIANTS:
                    name = f"{variant}_{seed}" if fraction == main_fraction else f"{variant}_{fraction:.2f}_{seed}"
                    got = train_and_segment(data[fraction, variant], run, scan, settings, seed,
                                            out / case / f"{name}.tif")  # fmt: skip
                    row = {"seed": seed, "fraction": fraction, **score(got.pop("segmentation"), truth, reference), **got}
                    rows[variant].append(row)
                    print(f"{case} {variant} fraction {fraction:.2f} seed {seed}: porosity error {row['error_pp']:+.2f}"
                          f" pp, Dice {row['dice_solid']:.3f}, {row['pores']} pores, {row['seconds']:.0f} s", flush=True)
        labels = {f"{f:.2f}": 1.0 - float(read_mask(run.walls(f)).mean()) for f in fractions}
        results["cases"][case] = {"reference_porosity": reference, "truth_pores": truth_pores, "fid": fid,
                                  "labels_porosity": labels, "runs": rows}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "translation.json") as tmp:
        tmp.write_text(json.dumps(results, indent=1, default=float) + "\n")
    print(f"\nstep-2 U-Nets over seeds {seeds} ({args.profile} profile, wall fraction {main_fraction}), mean ± sd:\n")
    print(translation_table(results))
    if len(fractions) > 1:
        print("\nporosity error (pp) by wall fraction, mean ± sd over the seeds; the labels' own error in brackets:\n")
        print(sweep_table(results))
    print(f"\nwritten: {out / 'translation.json'}")
    return 0


def _mean_sd(values: list[float], fmt: str) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{format(statistics.mean(values), fmt)} ± {format(sd, fmt.lstrip('+'))}"


def translation_table(results: dict) -> str:
    """Markdown: per case and grey images, the main fraction's scores (mean ± sd over seeds) and FID to the scan."""
    main_fraction = results["settings"]["wall_fraction"]
    lines = ["| case | grey images | porosity error, pp | Dice solid | separate pores (truth) | FID to the scan |",
             "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for case, record in results["cases"].items():
        for variant, rows in record["runs"].items():
            main = [r for r in rows if r.get("fraction", main_fraction) == main_fraction]
            cells = [_mean_sd([r[key] for r in main], fmt)
                     for key, fmt in (("error_pp", "+.2f"), ("dice_solid", ".3f"), ("pores", ".0f"))]  # fmt: skip
            lines.append(f"| {case} | {variant} | {cells[0]} | {cells[1]} | {cells[2]} ({record['truth_pores']}) "
                         f"| {record['fid'][variant]['fid']:.0f} |")
        lines.append(f"| {case} | *scan, second draw (floor)* | | | | {record['fid']['real_second_draw']['fid']:.0f} |")
    return "\n".join(lines)


def sweep_table(results: dict) -> str:
    """Markdown: porosity error by wall fraction for each case and grey images, with the labels' own error."""
    fractions = results["fractions"]
    lines = ["| case | grey images | " + " | ".join(f"fraction {f:.2f}" for f in fractions) + " |",
             "|---|---|" + "---:|" * len(fractions)]  # fmt: skip
    for case, record in results["cases"].items():
        for variant, rows in record["runs"].items():
            cells = [_mean_sd([r["error_pp"] for r in rows if r["fraction"] == f], "+.2f") for f in fractions]
            lines.append(f"| {case} | {variant} | " + " | ".join(cells) + " |")
        labels = [100 * (record["labels_porosity"][f"{f:.2f}"] - record["reference_porosity"]) for f in fractions]
        lines.append(f"| {case} | *the labels themselves* | " + " | ".join(f"({e:+.2f})" for e in labels) + " |")
    return "\n".join(lines)

if __name__ == "__main__":
    sys.exit(main())
