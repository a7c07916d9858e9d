"""Try CycleGAN loss weights for step 2 on finished seed runs: porosity error, pores, and how hard the images are.

For each seed's run folder that :mod:`bench_seeds` left (stages through ``07_watershed_walls``
at least, and the step-1 U-Net), and for each variant of the CycleGAN's loss weights
(``name:lambda_cycle:lambda_identity``), this trains the CycleGAN on the wall-fraction set with the
profile's CycleGAN settings and the seed, translates the set, trains a step-2 U-Net on it as
notebook 09 does, segments the scan, and reports the porosity error against the truth, the
separate pores, the Dice of the solid where the sample has a truth, the translated images' FID to
the scan (:func:`bench_step2_render.fid_to_scan`) and their phase statistics beside the scan's
(pore grey-value spread, Otsu Dice against the labels: the issue's reading is that the translated
images are too easy). Nothing in the run folders is changed; the data sets go to a temporary folder;
``--out`` writes the rows as JSON. Example::

    python benchmarks/bench_translation.py --runs-dir /tmp/seed_runs --sample foam89 --seeds 0 1 \\
        --variant paper:10:0.5 --variant strong-identity:10:5
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def parse_variant(text: str) -> tuple[str, float, float]:
    """``name:lambda_cycle:lambda_identity`` -> (name, cycle, identity)."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"a variant is name:lambda_cycle:lambda_identity, got {text!r}")
    return parts[0], float(parts[1]), float(parts[2])


def run_variant(run_dir: Path, profile: dict, seed: int, cycle: float, identity: float, work: Path,
                n_images: int = 256) -> dict:
    """Train the CycleGAN and a step-2 U-Net with one pair of loss weights on one seed's run folder."""
    from bench_seeds import count_pores
    from bench_step2_render import fid_to_scan

    from foamlib.cyclegan import CycleGanConfig, train_cyclegan, translate
    from foamlib.datasets import SPLITS, load_split, write_dataset
    from foamlib.independent import dice
    from foamlib.patches import orthogonal_slices
    from foamlib.render import phase_statistics
    from foamlib.runfolder import RunFolder, read_mask
    from foamlib.samples import load_sample, load_truth
    from foamlib.segment import scale_intensity, segment_volume
    from foamlib.structure import porosity
    from foamlib.training import TrainConfig, load_model, train_unet
    from foamlib.unet import build_unet

    run = RunFolder(run_dir)
    scan, record = load_sample(run_dir)
    volume = scan[:].astype(np.float32)  # the small scans of bench_seeds' runs, read whole as before
    step1_model, step1_meta = load_model(run.model("step1"))
    intensity_range = tuple(step1_meta["intensity_range"])
    grey = scale_intensity(volume, intensity_range)
    real = orthogonal_slices(grey)
    fraction = profile["wall_fraction"]
    binary = read_mask(run.walls(fraction))
    config = CycleGanConfig(
        generator={"levels": profile["cyclegan_levels"], "base_channels": profile["cyclegan_channels"]},
        discriminator_channels=profile["cyclegan_disc_channels"], discriminator_layers=profile["cyclegan_disc_layers"],
        crop_size=profile["cyclegan_crop"], batch_size=profile["cyclegan_batch_size"], steps=profile["cyclegan_steps"],
        lambda_cycle=cycle, lambda_identity=identity, seed=seed)
    start = time.perf_counter()
    result = train_cyclegan(binary, real, config=config, progress=False)
    synthetic = translate(result.model.g, binary)
    data = work / "data"
    write_dataset(data, synthetic, binary, rng=seed, overwrite=True)
    fid = fid_to_scan(scan, run, {"translated": data}, n_images, seed)
    train, val, _ = (load_split(data, s) for s in SPLITS)
    model = build_unet(step1_model.config, seed=seed)
    train_unet(model, train, val, progress=False, config=TrainConfig(
        epochs=profile["step2_epochs"], batch_size=profile["batch_size"], patience=profile["step2_patience"],
        seed=seed, learning_rate=step1_meta["train_config"]["learning_rate"]))
    seg = segment_volume(model, volume, axes=profile["axes"], tile=profile["tile"],
                         intensity_range=intensity_range) >= 0.5
    synth_stats = phase_statistics(synthetic, binary)
    real_stats = phase_statistics(grey, run.read_segmentation("step1"))
    ref = record.reference_porosity
    truth = load_truth(run_dir)
    return {
        "porosity": porosity(seg), "error": None if ref is None else porosity(seg) - ref, "n_pores": count_pores(seg),
        "dice_solid": float("nan") if truth is None else dice(seg, truth), "fid": fid["translated"]["fid"],
        "fid_floor": fid["real_second_draw"]["fid"], "fid_encoder": fid["encoder"],
        "synthetic_pore_std": synth_stats["pore_std"], "synthetic_otsu_dice": synth_stats["otsu_dice"],
        "scan_pore_std": real_stats["pore_std"], "scan_otsu_dice": real_stats["otsu_dice"],
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, required=True, help="the --runs-dir of bench_seeds.py")
    parser.add_argument("--sample", default="foam89")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--variant", action="append", default=None,
                        help="name:lambda_cycle:lambda_identity (repeatable; default paper:10:0.5)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-images", type=int, default=256, help="crops per set for the FID (default 256)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows to this JSON file")
    args = parser.parse_args(argv)
    import torch
    from bench_seeds import seed_folder, seed_profile

    torch.set_num_threads(args.threads)
    variants = [parse_variant(v) for v in (args.variant or ["paper:10:0.5"])]
    rows = []
    for name, cycle, identity in variants:
        for seed in args.seeds:
            run_dir = seed_folder(args.runs_dir, seed) / args.sample
            with tempfile.TemporaryDirectory() as work:
                row = run_variant(run_dir, seed_profile(args.profile, seed), seed, cycle, identity, Path(work),
                                  args.n_images)
            rows.append({"variant": name, "seed": seed, **row})
            print(f"{name} seed {seed}: error {100 * row['error']:+.2f} pp, Dice {row['dice_solid']:.3f}, "
                  f"{row['n_pores']} pores, FID {row['fid']:.0f} (floor {row['fid_floor']:.0f}), synthetic pore std "
                  f"{row['synthetic_pore_std']:.3f} (scan {row['scan_pore_std']:.3f}), Otsu Dice "
                  f"{row['synthetic_otsu_dice']:.3f} (scan {row['scan_otsu_dice']:.3f}), {row['seconds']:.0f} s",
                  flush=True)
    if args.out is not None:
        from foamlib.runs import atomic_path

        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps({"sample": args.sample, "profile": args.profile, "rows": rows}, indent=1) + "\n")
    print("\n| variant | seeds | porosity error (pp) | Dice of the solid | separate pores | FID to the scan "
          "| synthetic pore std | synthetic Otsu Dice |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, _, _ in variants:
        group = [r for r in rows if r["variant"] == name]

        def pm(key, scale=1.0, digits=2, group=group):
            v = np.array([scale * r[key] for r in group], dtype=float)
            sd = f" ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else ""
            return f"{v.mean():.{digits}f}{sd}" if not math.isnan(v.mean()) else "–"

        print(f"| {name} | {len(group)} | {pm('error', 100)} | {pm('dice_solid', 1, 3)} | {pm('n_pores', 1, 1)} "
              f"| {pm('fid', 1, 0)} | {pm('synthetic_pore_std', 1, 3)} "
              f"| {pm('synthetic_otsu_dice', 1, 3)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
