"""Speed of foamlib's building blocks against the peer a user would otherwise pick, on the same input.

Run from the project root (``make benchmark``)::

    .venv/bin/python benchmarks/bench_foundation.py [--quick] [--threads N]

Prints one table: each task, foamlib's time, the peer's time on the same input
and what the peer is. Timings are the best of ``--repeat`` runs (wall clock).
Record the figures in README.md when they change.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Best wall-clock time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def foam_generation(size: int, repeat: int) -> tuple[str, float, float, str]:
    """foamlib's closed-cell Laguerre foam against PoreSpy's voronoi_edges, same box and cell count."""
    import porespy

    from foamlib.foam import closed_cell_foam

    cell = 24.0
    ncells = int(round(size**3 / (np.pi / 6 * cell**3)))
    ours = best_of(
        lambda: closed_cell_foam((size,) * 3, cell_diameter=cell, wall_thickness=1.5, strut_diameter=4.0, rng=0),
        repeat,
    )
    peer = best_of(lambda: porespy.generators.voronoi_edges([size] * 3, ncells=ncells, r=2, seed=0), repeat)
    return f"foam generation {size}^3 ({ncells} cells)", ours, peer, "porespy.generators.voronoi_edges"


def local_thickness(size: int, repeat: int) -> tuple[str, float, float, str]:
    """foamlib's local thickness against PoreSpy's default ('bf') on the same foam."""
    import porespy

    from foamlib.foam import closed_cell_foam
    from foamlib.structure import local_thickness as ours_lt

    solid = closed_cell_foam((size,) * 3, cell_diameter=24.0, wall_thickness=2.0, strut_diameter=5.0, rng=1).solid
    porespy.filters.local_thickness(solid[:16, :16, :16])  # numba compilation, not timed
    ours = best_of(lambda: ours_lt(solid), repeat)
    peer = best_of(lambda: porespy.filters.local_thickness(solid), repeat)
    return f"local thickness {size}^3 foam", ours, peer, "porespy.filters.local_thickness (bf)"


def projection(size: int, slices: int, repeat: int) -> tuple[str, float, float, str]:
    """Radon transform and FBP of a stack of slices against scikit-image slice by slice."""
    from skimage.transform import iradon, radon

    from foamlib import phantom

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    disk = (xx**2 + yy**2) < (0.45 * size) ** 2
    stack = (rng.random((slices, size, size)) * disk).astype(np.float32)
    angles = np.linspace(0.0, 180.0, size, endpoint=False)

    def ours():
        phantom.fbp(phantom.radon(stack, angles), angles, output_size=size)

    def peer():
        for image in stack:
            iradon(radon(image, angles), angles, output_size=size)

    ours()  # builds and caches the system matrix, as a scan of many slices would
    return (
        f"radon + FBP, {slices} slices {size}^2, {size} angles",
        best_of(ours, repeat),
        best_of(peer, repeat),
        "skimage.transform.radon + iradon",
    )


def unet_throughput(repeat: int) -> tuple[float, float]:
    """Training and inference throughput of the paper's U-Net (5 levels, kernel 4) at 128x128, batch 16."""
    import torch

    from foamlib.losses import dice_loss
    from foamlib.unet import PAPER_BEST_CONFIG, build_unet

    model = build_unet(PAPER_BEST_CONFIG, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(16, 1, 128, 128)
    y = (torch.rand(16, 1, 128, 128) > 0.8).float()

    def step():
        opt.zero_grad()
        loss = dice_loss(model(x), y)
        loss.backward()
        opt.step()

    model.train()
    step()
    train = best_of(step, repeat)
    model.eval()
    with torch.no_grad():
        model(x)
        infer = best_of(lambda: model(x), repeat)
    return 16 / train, 16 / infer


def segmentation_throughput(size: int, repeat: int) -> float:
    """Voxels per second of slice-wise volume segmentation with the paper's U-Net (untrained weights)."""
    from foamlib.segment import segment_volume
    from foamlib.unet import PAPER_BEST_CONFIG, build_unet

    model = build_unet(PAPER_BEST_CONFIG, seed=0).eval()
    volume = np.random.default_rng(0).integers(0, 256, (size // 4, size, size)).astype(np.float32)
    seconds = best_of(lambda: segment_volume(model, volume, tile=size, intensity_range=(0, 255)), repeat)
    return volume.size / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs, one repeat")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch/BLAS threads (default: all cores)")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    sizes = (64,) if args.quick else (128, 256)
    rows = [foam_generation(n, repeat) for n in sizes]
    rows.append(local_thickness(64 if args.quick else 128, repeat))
    rows.append(projection(64 if args.quick else 128, 8 if args.quick else 32, repeat))
    train, infer = unet_throughput(repeat)
    seg_size = 64 if args.quick else 128
    voxels = segmentation_throughput(seg_size, repeat)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"# {platform.processor() or platform.machine()}, {cores} cores, Python {platform.python_version()}")
    print("| task | foamlib (s) | peer (s) | peer |")
    print("|---|---:|---:|---|")
    for task, ours, peer, name in rows:
        print(f"| {task} | {ours:.3f} | {peer:.3f} | {name} |")
    print(f"\nU-Net of the paper (5 levels, 2 convs, kernel 4, avg pooling, base 16), 128x128, batch 16:")
    print(f"training {train:.1f} images/s, inference {infer:.1f} images/s")
    print(f"volume segmentation ({seg_size // 4}x{seg_size}x{seg_size}, slice-wise): {voxels / 1e6:.2f} million voxels/s")


if __name__ == "__main__":
    main()
