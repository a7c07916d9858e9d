"""Benchmark and check: mixed precision on a CUDA GPU against fp32 (``--precision``).

With the paper's U-Net (5 levels, 2 convolutions per level, kernel 4, average
pooling, 16 base channels; untrained, or trained here for ``--train-steps``
steps on a synthetic gyroid so that its probabilities are not all near 0.5):

1. inference: ``segment_volume`` of a ``--size``^3 uint16 gyroid scan at each
   precision the device supports (fp32, bf16, fp16): seconds, voxels per
   second, the largest probability difference to fp32 and the fraction of
   voxels whose thresholded phase differs from fp32;
2. training: ``train_unet`` for ``--epochs`` epochs of 256 x 256 slices at each
   precision: seconds per epoch and the final validation Dice.

On a machine without a GPU it runs fp32 only and says so (the half precisions
are refused on the CPU by design). Exit status 1 if a half precision changes
more than ``--max-flip`` of the voxels' phase or its training fails to learn.

Run (about two minutes on one H200)::

    python benchmarks/bench_gpu.py --size 256 --epochs 3

and quickly, as a check of the script itself (CPU)::

    python benchmarks/bench_gpu.py --size 64 --epochs 1 --slices 8 --tile 64
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from checklist import report_checks

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PAPER_UNET = {"levels": 5, "convs_per_level": 2, "kernel_size": 4, "pooling": "avg", "base_channels": 16}


def gyroid(size: int, n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy uint16 gyroid slices of ``size`` x ``size`` and their solid masks."""
    rng = np.random.default_rng(seed)
    k = 2 * np.pi / 40.0
    z, y, x = np.mgrid[0:n, 0:size, 0:size].astype(np.float32) * np.float32(k)
    solid = np.abs(np.sin(x) * np.cos(y) + np.sin(y) * np.cos(z) + np.sin(z) * np.cos(x)) < 0.5
    grey = 20000 + 15000 * solid + rng.normal(0, 3000, solid.shape)
    return np.clip(grey, 0, 65535).astype(np.uint16), solid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="edge of the scan and of the training slices (256)")
    parser.add_argument("--slices", type=int, default=64, help="training slices (default 64)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per precision (default 3)")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-flip", type=float, default=0.01,
                        help="largest fraction of voxels whose phase a half precision may change (default 0.01)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from foamlib.device import pick_device
    from foamlib.segment import segment_volume
    from foamlib.training import TrainConfig, train_unet
    from foamlib.unet import build_unet

    device = pick_device("auto")
    precisions = ["fp32"]
    if device.type == "cuda":
        precisions += (["bf16"] if torch.cuda.is_bf16_supported() else []) + ["fp16"]
        name = torch.cuda.get_device_name(device)
    else:
        name = "CPU (no CUDA device: fp32 only)"
    figures: dict[str, object] = {"device": name, "size": args.size, "precisions": precisions, "unet": PAPER_UNET}
    checks: dict[str, bool] = {}

    # training first: a trained network gives probabilities that a phase flip means something for
    images, labels = gyroid(args.size, args.slices, seed=0)
    scaled = ((images.astype(np.float32) - 5000) / 50000).clip(0, 1)
    n_val = max(1, args.slices // 8)
    train, val = (scaled[n_val:], labels[n_val:]), (scaled[:n_val], labels[:n_val])
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=1e-3, patience=None, seed=0)
    trained = {}
    for precision in precisions:
        model = build_unet(PAPER_UNET, seed=0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = train_unet(model, train, val, config=config, device=device, precision=precision, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        figures[f"train_{precision}_s_per_epoch"] = seconds / args.epochs
        figures[f"train_{precision}_val_mean_dice"] = result.best_val_mean_dice
        trained[precision] = model
    for precision in precisions[1:]:
        checks[f"training learns in {precision}"] = figures[f"train_{precision}_val_dice"] >= 0.9 * figures["train_fp32_val_dice"]

    volume, _ = gyroid(args.size, args.size, seed=1)
    options = {"tile": args.tile, "overlap": 32, "batch_size": args.batch_size, "intensity_range": (5000.0, 55000.0)}
    model = trained["fp32"]
    reference = None
    for precision in precisions:
        segment_volume(model, volume[:2], device=device, precision=precision, **options)  # warm-up
        start = time.perf_counter()
        probs = segment_volume(model, volume, device=device, precision=precision, **options)
        seconds = time.perf_counter() - start
        figures[f"segment_{precision}_s"] = seconds
        figures[f"segment_{precision}_voxels_per_s"] = volume.size / seconds
        if reference is None:
            reference = probs
        else:
            flips = float(np.count_nonzero((probs >= 0.5) != (reference >= 0.5)) / probs.size)
            figures[f"segment_{precision}_max_abs_diff"] = float(np.max(np.abs(probs - reference)))
            figures[f"segment_{precision}_phase_flips"] = flips
            checks[f"{precision} segmentation within {args.max_flip:g} of fp32"] = flips <= args.max_flip
    figures["checks"] = checks

    print(f"device: {name}; U-Net {PAPER_UNET}; scan {args.size}^3, tile {args.tile}, batch {args.batch_size}")
    for precision in precisions:
        line = (f"{precision}: segment {figures[f'segment_{precision}_s']:.2f} s "
                f"({figures[f'segment_{precision}_voxels_per_s'] / 1e6:.1f} M voxels/s), train "
                f"{figures[f'train_{precision}_s_per_epoch']:.2f} s/epoch ({args.slices - n_val} slices), val Dice "
                f"{figures[f'train_{precision}_val_dice']:.4f}")  # fmt: skip
        if precision != "fp32":
            line += (f"; vs fp32: max |dp| {figures[f'segment_{precision}_max_abs_diff']:.3g}, phase flips "
                     f"{100 * figures[f'segment_{precision}_phase_flips']:.4f} %")  # fmt: skip
        print(line)
    return report_checks(checks, figures, args.json)


if __name__ == "__main__":
    sys.exit(main())
