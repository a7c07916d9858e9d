"""Feature extraction and FID for 1,000 images of 128x128 on this CPU, against torchmetrics' FID on the same features.

Run from the project root::

    .venv/bin/python benchmarks/bench_fid.py [--quick] [--threads 2] [--repeat 3]

What it does
------------
1. Makes two seeded sets of 1,000 uint8 images of 128x128 pixels: ``A``, white
   noise, and ``B``, the same kind of noise smoothed with a Gaussian (sigma 1.5
   pixels) and stretched back to 0..255, so the two sets differ clearly.
2. Times :func:`foamlib.features.extract_features` on each set with the
   random-weights ResNet50 (``load_encoder("random", seed=0)``, no download,
   batch 64, images at their own size), after one untimed warm-up batch. FIDs
   with random weights are not comparable to the paper's; the timing is the
   same as with MicroNet weights (same network).
3. Times :func:`foamlib.fid.fid` on the two ``(1000, 2048)`` feature sets
   against the peer on the *same* features (best and median of ``--repeat``
   runs), prints both FIDs and their absolute difference, and times the
   matrix part alone (:func:`foamlib.fid.frechet_distance` against the peer's
   ``_compute_fid``, both given the same float64 means and covariances).

The peer
--------
torchmetrics' ``FrechetInceptionDistance`` with a custom ``feature`` module
(the identity, so ``update`` receives the features themselves): its statistics
(float64 running sums) and its ``_compute_fid`` (eigenvalues of
:math:`\\Sigma_1\\Sigma_2` with :func:`torch.linalg.eigvals`). torchmetrics
works without torchvision; install it beside the project with::

    .venv/bin/pip install torchmetrics

(it needs only ``torch``, ``numpy``, ``packaging`` and ``lightning-utilities``;
torch is already there, so no other torch or CUDA build is pulled in).
Where torchmetrics is missing the script falls back to pytorch-fid's
``calculate_frechet_distance`` (``pip install pytorch-fid``), which only imports
where torchvision is installed (its ``fid_score`` module imports torchvision at
the top); with neither, it says why and prints foamlib's figures alone.
Torch runs with ``--threads`` threads (default 2) and NumPy/SciPy's BLAS with
``--blas-threads`` (default: the same number, set with threadpoolctl, which
scikit-learn brings along). The load average is printed with the figures: on a
machine whose cores other jobs also use, spinning BLAS and OpenMP pools of more
than one thread can slow the FID computations ten- to thirtyfold, and
``--threads 1`` then gives steadier numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

N_IMAGES = 1000
SIZE = 128


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Best and median wall-clock seconds of ``repeat`` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times), out


def make_images(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two seeded ``(n, size, size)`` uint8 sets: white noise, and smoothed noise stretched to 0..255."""
    from scipy.ndimage import gaussian_filter

    a = np.random.default_rng(0).integers(0, 256, size=(n, size, size), dtype=np.uint8)
    noise = np.random.default_rng(1).random((n, size, size))
    smooth = gaussian_filter(noise, sigma=(0, 1.5, 1.5))
    lo = smooth.min(axis=(1, 2), keepdims=True)
    hi = smooth.max(axis=(1, 2), keepdims=True)
    b = np.round(255.0 * (smooth - lo) / (hi - lo)).astype(np.uint8)
    return a, b


def load_peer() -> tuple[str, Callable[[np.ndarray, np.ndarray], float] | None, Callable | None, str]:
    """The peer FID on features, its stats-to-FID function, and its name; ``None`` with the reason if missing."""
    try:
        import torch
        from torchmetrics import __version__ as tm_version
        from torchmetrics.image.fid import FrechetInceptionDistance, _compute_fid
    except ImportError as exc:
        tm_error = f"torchmetrics not importable ({exc}); install it with `.venv/bin/pip install torchmetrics`"
    else:

        class Identity(torch.nn.Module):
            """The 'feature extractor' for features that are already extracted."""

            num_features = 2048

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x

        def peer_fid(a: np.ndarray, b: np.ndarray) -> float:
            metric = FrechetInceptionDistance(feature=Identity(), normalize=False)
            metric.update(torch.from_numpy(a), real=True)
            metric.update(torch.from_numpy(b), real=False)
            return float(metric.compute())

        def peer_stats(mu1, sigma1, mu2, sigma2) -> float:
            return float(_compute_fid(*(torch.from_numpy(v) for v in (mu1, sigma1, mu2, sigma2))))

        return f"torchmetrics {tm_version} FrechetInceptionDistance", peer_fid, peer_stats, ""
    try:
        from pytorch_fid.fid_score import calculate_frechet_distance
    except ImportError as exc:
        reason = (
            f"{tm_error}; pytorch-fid not importable either ({exc}): its fid_score module imports torchvision "
            "at the top, so it needs `pip install pytorch-fid` and torchvision"
        )
        return "", None, None, reason

    def pf_fid(a: np.ndarray, b: np.ndarray) -> float:
        mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
        return float(calculate_frechet_distance(mu1, np.cov(a, rowvar=False), mu2, np.cov(b, rowvar=False)))

    def pf_stats(mu1, sigma1, mu2, sigma2) -> float:
        return float(calculate_frechet_distance(mu1, sigma1, mu2, sigma2))

    return "pytorch-fid calculate_frechet_distance (+ np.cov)", pf_fid, pf_stats, ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 images, one repeat (a smoke run)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of each FID timing")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--blas-threads", type=int, default=None, help="NumPy/SciPy BLAS threads (default: --threads)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    import scipy.linalg  # noqa: F401 -- load SciPy's BLAS before limiting it (threadpoolctl sees loaded libraries only)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=args.blas_threads or args.threads, user_api="blas"):
        run(args)


def run(args: argparse.Namespace) -> None:
    """Make the images, time everything, print the table."""
    n = 200 if args.quick else N_IMAGES
    repeat = 1 if args.quick else max(1, args.repeat)

    import torch

    from foamlib.features import extract_features, load_encoder
    from foamlib.fid import feature_statistics, fid, frechet_distance

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    total = time.perf_counter()
    images_a, images_b = make_images(n, SIZE)
    encoder = load_encoder("random", seed=0, device="cpu")
    extract_features(encoder, images_a[: args.batch_size], batch_size=args.batch_size)  # warm-up, not timed
    rows = []
    feats = []
    for label, images in (("A (noise)", images_a), ("B (smoothed noise)", images_b)):
        seconds, _, out = timed(lambda im=images: extract_features(encoder, im, batch_size=args.batch_size), 1)
        feats.append(out)
        task = f"extract_features, set {label}, {n} x {SIZE}x{SIZE} uint8"
        rows.append((task, seconds, seconds, f"{n / seconds:.1f} images/s"))
    fa, fb = feats

    best, median, ours = timed(lambda: fid(fa, fb), repeat)
    rows.append((f"foamlib.fid.fid, ({n}, 2048) x 2", best, median, f"FID {ours:.6f}"))
    mu_a, sig_a = feature_statistics(fa)
    mu_b, sig_b = feature_statistics(fb)
    best, median, ours_stats = timed(lambda: frechet_distance(mu_a, sig_a, mu_b, sig_b), repeat)
    rows.append(("foamlib.fid.frechet_distance (eigh), from statistics", best, median, f"FID {ours_stats:.6f}"))

    peer_name, peer_fid, peer_stats, reason = load_peer()
    peer = None
    if peer_fid is not None:
        best, median, peer = timed(lambda: peer_fid(fa, fb), repeat)
        rows.append((f"{peer_name}, same features", best, median, f"FID {peer:.6f}"))
        best, median, peer_s = timed(lambda: peer_stats(mu_a, sig_a, mu_b, sig_b), repeat)
        rows.append(("peer, from the same statistics", best, median, f"FID {peer_s:.6f}"))
    total = time.perf_counter() - total
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"# {platform.processor() or platform.machine()}, {cores} cores, Python {platform.python_version()}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), BLAS threads {args.blas_threads or args.threads}, "
          f"encoder {encoder.name}, load average {load_before:.1f} -> {load_after:.1f}")
    print("| task | best (s) | median (s) | result |")
    print("|---|---:|---:|---|")
    for task, b, m, result in rows:
        print(f"| {task} | {b:.3f} | {m:.3f} | {result} |")
    print(f"\nfoamlib FID: {ours:.6f}")
    if peer is None:
        print(f"peer: not run -- {reason}")
    else:
        print(f"peer FID ({peer_name}): {peer:.6f}")
        print(f"absolute difference: {abs(ours - peer):.3g} (relative {abs(ours - peer) / abs(ours):.2g})")
    print(f"total {total:.1f} s (FID timings: {repeat} repeats each)")


if __name__ == "__main__":
    main()
