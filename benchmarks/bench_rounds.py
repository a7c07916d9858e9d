"""Iterate step 2: do further rounds (GAN, walls, CycleGAN, U-Net on the last round's segmentation) converge or drift?

Issue 21 asks whether the step-2 U-Net's segmentation can seed a further round of the data-driven step
and whether the rounds converge towards the truth or drift. Round 1 is the step-1 U-Net's segmentation
of the scan, round 2 the study's step-2 U-Net's. Round ``k + 1`` runs the study's own stages 06-09 (GAN,
watershed walls, CycleGAN, step-2 U-Net, with the profile's settings and the study's seed) in a run
folder of its own, ``OUT/round_<k+1>/<sample>``, whose step-1 segmentation is round ``k``'s; the scan,
its record, the Otsu segmentation and the step-1 U-Net (its architecture and grey range) are copied from
the study's run folder, which is not changed. For every round the table gives the porosity of the labels
the round's U-Net learned from (the walled GAN images of the main wall fraction; none for round 1), the
porosity of its segmentation of the scan, its error against the truth (pp), the Dice of the solid and
the separate pores (:func:`foamlib.independent.pore_statistics`). Needs a finished study of a sample
with a truth (the demo samples)::

    python benchmarks/bench_rounds.py --runs runs --sample foam82 --rounds 3 --out runs/_rounds
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_faint_walls import samples_with_truth  # noqa: E402
from validate import score  # noqa: E402

#: The stages a round runs again; everything before them comes from the study's run folder.
ROUND_STAGES = ("06_gan", "07_watershed_walls", "08_cyclegan", "09_unet_step2")


def seed_round(study_run: Path, previous: Path, folder: Path) -> None:
    """Make ``folder`` a run folder whose stages 00-05 are the study's, with ``previous`` as the step-1 segmentation.

    Copies the scan, the record, the truth, the Otsu outputs and the step-1 U-Net (what stages 06-09
    read besides the step-1 segmentation) from ``study_run``; ``previous`` (a segmentation of the
    scan) becomes ``step1/seg.tif``. A folder seeded before is left as it is, so that an interrupted
    round resumes from its checkpoints.
    """
    from foamlib.runfolder import RunFolder

    source, target = RunFolder(study_run), RunFolder(folder)
    if target.step1_seg.is_file():
        return
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("sample.json", "scan.tif", "truth.tif"):
        if (study_run / name).is_file():
            shutil.copy2(study_run / name, folder / name)
    shutil.copytree(source.otsu_seg.parent, target.otsu_seg.parent, dirs_exist_ok=True)
    target.model("step1").parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source.model("step1"), target.model("step1"))
    target.step1_seg.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(previous, target.step1_seg)  # last: its presence marks a seeded folder


def round_row(run_dir: Path, method: str, truth, reference: float, fraction: float | None) -> dict:
    """Scores of one round's segmentation (``method`` of ``run_dir``) and its labels' porosity."""
    from foamlib.runfolder import RunFolder, read_mask

    run = RunFolder(run_dir)
    row = score(run.read_segmentation(method), truth, reference)
    row["labels_porosity"] = None if fraction is None else 1.0 - float(read_mask(run.walls(fraction)).mean())
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs", help="a finished study's runs folder (default runs)")
    parser.add_argument("--sample", default="foam82", help="a sample of it with a truth (default foam82)")
    parser.add_argument("--rounds", type=int, default=3, help="the last round (>= 3; 1 and 2 are the study's)")
    parser.add_argument("--profile", default="demo", help="the profile the study ran (default demo)")
    parser.add_argument("--threads", type=int, default=None, help="threads of each stage's kernel (default: all cores)")
    parser.add_argument("--out", type=Path, default=None, help="default: RUNS/_rounds")
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error(f"--rounds must be at least 3 (rounds 1 and 2 are the study's), got {args.rounds}")

    from foamlib.runfolder import RunFolder
    from foamlib.runs import atomic_path
    from foamlib.study import SampleSpec, find_stages, load_profile, run_sample

    found = list(samples_with_truth(None, args.runs, names=[args.sample]))
    if not found:
        raise SystemExit(f"{args.runs}: no run folder with a truth for sample {args.sample}")
    _, study_run, truth, reference, truth_pores = found[0]
    study = RunFolder(study_run)
    if not study.step2_seg.is_file():
        raise SystemExit(f"{study_run}: no step-2 segmentation; run the study through 09_unet_step2 first")
    profile = load_profile(args.profile)
    fraction = float(profile["wall_fraction"])
    stages = [s for s in find_stages(ROOT / "notebooks") if s.name in ROUND_STAGES]
    out = args.out or args.runs / "_rounds"
    rows = [{"round": 1, **round_row(study_run, "step1", truth, reference, None)},
            {"round": 2, **round_row(study_run, "step2", truth, reference, fraction)}]  # fmt: skip
    previous = study.step2_seg
    for k in range(3, args.rounds + 1):
        runs_dir = out / f"round_{k}"
        seed_round(study_run, previous, runs_dir / args.sample)
        results = run_sample(SampleSpec(args.sample), stages, profile, runs_dir=runs_dir, threads=args.threads,
                             report=lambda r: print(f"  round {k}: {r.stage} {r.status} ({r.seconds:.0f} s)", flush=True))
        if any(r.status == "failed" for r in results):
            failed = next(r for r in results if r.status == "failed")
            raise SystemExit(f"round {k}: {failed.stage} failed: {failed.message}")
        rows.append({"round": k, "seconds": sum(r.seconds for r in results),
                     **round_row(runs_dir / args.sample, "step2", truth, reference, fraction)})  # fmt: skip
        previous = RunFolder(runs_dir / args.sample).step2_seg
        print(f"round {k}: porosity error {rows[-1]['error_pp']:+.2f} pp, {rows[-1]['pores']} pores", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / f"{args.sample}.json") as tmp:
        tmp.write_text(json.dumps({"sample": args.sample, "profile": args.profile, "reference_porosity": reference,
                                   "truth_pores": truth_pores, "wall_fraction": fraction, "rounds": rows},
                                  indent=1, default=float) + "\n")  # fmt: skip
    print(f"\n{args.sample}: rounds of step 2 ({args.profile} profile; truth {100 * reference:.2f} %, "
          f"{truth_pores} pores)\n")
    print(table(rows, truth_pores))
    return 0


def table(rows: list[dict], truth_pores: int) -> str:
    """Markdown table of the rounds: labels' porosity, segmentation's porosity and error, Dice, pores."""
    lines = ["| round | the U-Net learned from | labels' porosity | porosity on the scan | error (pp) | Dice of the solid "
             "| separate pores (truth) |", "|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in rows:
        source = "rendered synthetic foams" if r["round"] == 1 else f"round {r['round'] - 1}'s segmentation"
        labels = "–" if r["labels_porosity"] is None else f"{100 * r['labels_porosity']:.2f} %"
        lines.append(f"| {r['round']} | {source} | {labels} | {100 * r['porosity']:.2f} % | {r['error_pp']:+.2f} "
                     f"| {r['dice_solid']:.3f} | {r['pores']} ({truth_pores}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
