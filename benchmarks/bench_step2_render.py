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
training from the seed) segments the scan, scored against the case's truth: porosity error (pp),
Dice of the solid, separate pores (:func:`foamlib.independent.pore_statistics`). Seed 0 of
``cyclegan`` repeats the study's own step-2 U-Net. Prints a table of mean ± standard deviation over
seeds and writes ``OUT/translation.json``. Run after ``python benchmarks/validate.py``::

    python benchmarks/bench_step2_render.py --cases closed_thin,closed_thick --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from validate import read_truth, score  # noqa: E402

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--validation", type=Path, default=ROOT / "runs" / "_validation",
                        help="the --out of benchmarks/validate.py (default runs/_validation)")
    parser.add_argument("--cases", default="closed_thin", help="comma-separated foreign cases with a truth")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--profile", default="demo", help="the profile the validation ran (default demo)")
    parser.add_argument("--out", type=Path, default=None, help="default: VALIDATION/step2_render")
    args = parser.parse_args(argv)

    from foamlib.runfolder import RunFolder
    from foamlib.runs import atomic_path
    from foamlib.samples import load_sample

    seeds = [int(s) for s in args.seeds.split(",")]
    settings = step2_settings(args.profile)
    out = args.out or args.validation / "step2_render"
    results: dict = {"settings": settings, "seeds": seeds, "cases": {}}
    for case in args.cases.split(","):
        run = RunFolder(args.validation / "runs" / case)
        if not run.model("step2").is_file():
            raise SystemExit(f"{run.path}: no step-2 U-Net; run benchmarks/validate.py with --cases {case} first")
        scan, _ = load_sample(run.path)
        truth = read_truth(args.validation / "cases" / case)
        record = json.loads((args.validation / "cases" / case / "case.json").read_text())
        reference = record["porosity"]  # the truth's porosity at the scan's grid, as validate.py scores
        data = {"cyclegan": run.step2_data(settings["wall_fraction"]),
                "render": rendered_dataset(run, settings["wall_fraction"], out / case / "render_data")}
        rows: dict = {variant: [] for variant in VARIANTS}
        for seed in seeds:
            for variant in VARIANTS:
                got = train_and_segment(data[variant], run, scan, settings, seed, out / case / f"{variant}_{seed}.tif")
                row = {"seed": seed, **score(got.pop("segmentation"), truth, reference), **got}
                rows[variant].append(row)
                print(f"{case} {variant} seed {seed}: porosity error {row['error_pp']:+.2f} pp, Dice "
                      f"{row['dice_solid']:.3f}, {row['pores']} pores, {row['seconds']:.0f} s", flush=True)
        results["cases"][case] = {"reference_porosity": reference, "truth_pores": record["pores"]["count"],
                                  "runs": rows}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "translation.json") as tmp:
        tmp.write_text(json.dumps(results, indent=1, default=float) + "\n")
    print(f"\nstep-2 U-Nets over seeds {seeds} ({args.profile} profile), mean ± sd:\n")
    print("| case | grey images | porosity error, pp | Dice solid | separate pores (truth) |")
    print("|---|---|---:|---:|---:|")
    for case, record in results["cases"].items():
        for variant, rows in record["runs"].items():
            cells = []
            for key, fmt in (("error_pp", "+.2f"), ("dice_solid", ".3f"), ("pores", ".0f")):
                values = [r[key] for r in rows]
                sd = statistics.stdev(values) if len(values) > 1 else float("nan")
                cells.append(f"{format(statistics.mean(values), fmt)} ± {format(sd, fmt.lstrip('+'))}")
            print(f"| {case} | {variant} | {cells[0]} | {cells[1]} | {cells[2]} ({record['truth_pores']}) |")
    print(f"\nwritten: {out / 'translation.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
