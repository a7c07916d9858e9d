"""Estimated wall time and peak memory of the study's stages, from measured costs.

Each stage's cost is driven by a few quantities of its parameters and the
scan: voxels to read or segment, images times epochs to train on, steps times
batch times pixels times channels squared for the GANs, crops to encode.
:func:`stage_work` turns a stage's parameters into two numbers, its *time work*
and its *memory work*; the model is linear in them:

* seconds = a + b * time work, with a and b fitted (least squares, both at
  least 0) to the measurements in :data:`MEASUREMENTS`: the smoke profile
  measured by the runner on the reference machine, and the demo profile's
  times recorded in the README. Where both are dominated by the kernel's
  start and imports (segmentation), b is a measured rate instead
  (:data:`SLOPES`) and a is fitted;
* peak memory = the smoke profile's measured peak + c * (memory work - the
  smoke profile's memory work), with c in bytes per unit of memory work from
  :data:`BYTES_PER_UNIT` (what the stage holds per voxel, pixel or image; an
  estimate from the arrays the stage keeps, not a fit: only the smoke profile's
  peaks are measured).

Every number below says where it comes from. Where a stage's smoke and demo
times are both mostly the kernel's start and imports (rendering, watershed
walls, porosity validation), the fit cannot see how the stage grows, and its
estimate for much larger settings (the paper profile) is too low. The estimates are for the
reference machine (2 CPU cores, no GPU); a machine with more cores or a GPU is
faster, and the paper profile, meant for a GPU, is extrapolated far beyond the
measurements (a rough upper bound). :func:`foamlib.study.plan_study` uses a
sample's own record (``.stages/<stage>.json``: seconds and peak memory of its
last run) instead where the stage last ran with the same parameters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from .samples import SAMPLE_VOXELS

__all__ = ["BYTES_PER_UNIT", "MEASUREMENTS", "SLOPES", "Cost", "Measurement", "Work", "estimate", "stage_work"]


@dataclass(frozen=True)
class Work:
    """The quantities that drive a stage's cost.

    Attributes
    ----------
    time : float
        Time work (voxels, pixel-epochs, pixel-steps times channels squared, ...).
    memory : float
        Memory work (voxels or pixels held at once).
    """

    time: float
    memory: float


@dataclass(frozen=True)
class Measurement:
    """One measured run of a stage.

    Attributes
    ----------
    stage : str
        The notebook's stem, e.g. ``"04_unet_step1"``.
    profile : str
        The shipped profile it ran with; the work is computed from it.
    samples : int
        Samples the study-wide stage gathered (1 for a per-sample stage).
    seconds : float
        Wall time.
    peak_memory_bytes : float or None
        The kernel's peak resident memory; None where it was not measured.
    """

    stage: str
    profile: str
    samples: int
    seconds: float
    peak_memory_bytes: float | None


@dataclass(frozen=True)
class Cost:
    """The estimated cost of one stage.

    Attributes
    ----------
    seconds : float
        Wall time, seconds.
    peak_memory_bytes : float
        Peak resident memory of the stage's kernel, bytes.
    basis : str
        ``"recorded"`` (this sample's last run of the stage with the same
        parameters) or ``"model"`` (:func:`estimate`).
    """

    seconds: float
    peak_memory_bytes: float
    basis: str


_MB = 1 << 20  # MiB

#: Measured stage costs. The smoke profile's come from ``foamlib study run --samples foam89 --profile smoke --jobs 1`` on the reference
#: machine (2 cores, no GPU) on 2026-12-02, from the run folder's ``.stages/<stage>.json``. Seven other jobs shared
#: the machine (load average 7-10), so the wall times (in the comments) are about four times an idle machine's; the
#: seconds used are the kernel's CPU time (``cpu_seconds``), which is about the wall time of an idle machine for these
#: small stages (mostly the kernel's start, imports and single-threaded Python). Peak memory: the kernel's peak
#: resident memory (``peak_memory_bytes``), in MiB. Demo: the README's "Time per stage" table (median of foam82,
#: foam86 and foam89, the machine shared with a test suite and a second study); its memory was not measured.
MEASUREMENTS: tuple[Measurement, ...] = (
    # smoke profile, foam89: CPU seconds, peak resident memory; the wall time under load in the comment
    Measurement("00_samples", "smoke", 1, 7.5, 339 * _MB),  # wall 32 s
    Measurement("01_otsu_baseline", "smoke", 1, 7.8, 218 * _MB),  # wall 35 s
    Measurement("02_foam_generation", "smoke", 1, 9.5, 299 * _MB),  # wall 38 s
    Measurement("03_rendering", "smoke", 1, 4.9, 368 * _MB),  # wall 20 s
    Measurement("04_unet_step1", "smoke", 1, 7.7, 453 * _MB),  # wall 32 s
    Measurement("05_segment_step1", "smoke", 1, 6.7, 384 * _MB),  # wall 23 s
    Measurement("06_gan", "smoke", 1, 28.2, 510 * _MB),  # wall 95 s
    Measurement("07_watershed_walls", "smoke", 1, 5.5, 187 * _MB),  # wall 20 s
    Measurement("08_cyclegan", "smoke", 1, 22.6, 514 * _MB),  # wall 88 s
    Measurement("09_unet_step2", "smoke", 1, 13.5, 467 * _MB),  # wall 62 s
    Measurement("10_similarity", "smoke", 1, 39.7, 853 * _MB),  # wall 176 s
    Measurement("11_porosity_validation", "smoke", 1, 6.1, 170 * _MB),  # wall 24 s
    Measurement("12_results", "smoke", 1, 27.0, 481 * _MB),  # wall 122 s
    # demo profile: README, "Time per stage" (median of the three samples; 12_results gathered all three)
    Measurement("00_samples", "demo", 1, 10.0, None),
    Measurement("01_otsu_baseline", "demo", 1, 11.0, None),
    Measurement("02_foam_generation", "demo", 1, 31.0, None),
    Measurement("03_rendering", "demo", 1, 5.0, None),
    Measurement("04_unet_step1", "demo", 1, 175.0, None),
    Measurement("05_segment_step1", "demo", 1, 5.0, None),
    Measurement("06_gan", "demo", 1, 441.0, None),
    Measurement("07_watershed_walls", "demo", 1, 5.0, None),
    Measurement("08_cyclegan", "demo", 1, 315.0, None),
    Measurement("09_unet_step2", "demo", 1, 165.0, None),
    Measurement("10_similarity", "demo", 1, 68.0, None),
    Measurement("11_porosity_validation", "demo", 1, 2.0, None),
    Measurement("12_results", "demo", 3, 50.0, None),
)

#: Bytes of peak memory per unit of memory work (:func:`stage_work`), estimated from the arrays a stage holds at
#: once; the smoke peaks are too small to fit them (the kernel, numpy, torch and matplotlib take most of them).
BYTES_PER_UNIT: Mapping[str, float] = {
    "00_samples": 16.0,  # per voxel held: the phantom's float64 field while a demo sample is made
    "01_otsu_baseline": 64.0,  # per voxel of the analysed box: the structure analysis (cli._MEMORY_NOTE: ~60)
    "02_foam_generation": 24.0,  # per foam voxel: all foams' float32 fractions and bool solids, the fit's work arrays
    "03_rendering": 14.0,  # per foam voxel: float32 images, bool labels, the rendered stack and its shuffled copy
    "04_unet_step1": 10.0,  # per training pixel: the float32 images and labels of the splits, and a batch's copies
    "05_segment_step1": 12.0,  # per voxel of a slab: the float32 slab, its float32 probabilities, the uint8 mask
    "06_gan": 12.0,  # per patch pixel: the real and the generated patches (float32) and their statistics
    "07_watershed_walls": 16.0,  # per image pixel and fraction: the binary sets and the watershed's label images
    "08_cyclegan": 16.0,  # per image pixel and fraction: binary sets and their float32 translations
    "09_unet_step2": 12.0,  # per pixel of the training sets, plus a segmentation slab
    "10_similarity": 4096.0,  # per crop: the features (2048 float32 ...) and the crops of every set
    "11_porosity_validation": 0.0,
    "12_results": 65536.0,  # per sample: its features and tables
}


#: Seconds per unit of time work where a rate measured on its own is better than the smoke-demo fit.
SLOPES: Mapping[str, float] = {
    # README, "Speed": `foamlib segment` runs the paper's U-Net over a volume at 1.3 million voxels per second
    # (slice-wise, one direction) on the reference machine; the smoke and demo scans are too small to show it.
    "05_segment_step1": 1 / 1.3e6,
}


def _get(params: Mapping[str, Any], name: str, default: Any = None) -> Any:
    value = params.get(name, default)
    return default if value is None else value


def stage_work(stage: str, params: Mapping[str, Any], *, scan_shape: Sequence[int], samples: int = 1) -> Work | None:
    """The quantities that drive a stage's cost.

    Parameters
    ----------
    stage : str
        The notebook's stem, e.g. ``"06_gan"``.
    params : mapping
        The stage's parameters (a profile's values will do: the names not used
        are ignored).
    scan_shape : sequence of int
        ``(z, y, x)`` of the sample's scan, voxels.
    samples : int
        Samples a study-wide stage gathers.

    Returns
    -------
    Work or None
        None for a stage this model does not know (a notebook of one's own).

    Notes
    -----
    Time work by stage (V = scan voxels, F = n_foams x foam_size^3 foam voxels,
    G = n_generated x gan_patch_size^2 generated pixels, S = the distinct
    sweep fractions and the wall fraction):

    ======================  ===============================================================
    00, 01                  V
    02                      fit_iterations x fit_size^3 + F (times supersample^3 / 27)
    03                      F
    04                      F x ((hyperband_trials + bayes_trials) x search_epochs + epochs)
    05                      V x (3 for axes "xyz", else 1)
    06                      gan_steps x gan_batch_size x gan_patch_size^2 x gan_channels^2
    07                      G x S
    08                      cyclegan_steps x cyclegan_batch_size x cyclegan_crop^2 x cyclegan_channels^2
    09                      step2_epochs x G x S + V x S
    10                      n_images x (S + 4)
    11                      1
    12                      samples x fid_bootstrap
    ======================  ===============================================================

    Memory work is what a stage holds at once: for 00 and 01 the voxels of the
    bounded sample the statistics use (at most
    :data:`foamlib.samples.SAMPLE_VOXELS`), for 05 and 09 the voxels of a
    segmentation slab within the profile's ``segment_memory_gb`` (the whole
    scan if it fits); the other stages hold what they make (foams, patches,
    images).
    """
    voxels = float(math.prod(int(n) for n in scan_shape))
    # What a stage holds of the scan at once: statistics use a sample of at most SAMPLE_VOXELS voxels, and
    # segmentations stream slabs within segment_memory_gb (foamlib.samples); the time work is still every voxel.
    held = min(voxels, float(SAMPLE_VOXELS))
    budget = _get(params, "segment_memory_gb")
    streamed = voxels if budget is None else min(voxels, float(budget) * 1e9 / BYTES_PER_UNIT["05_segment_step1"])
    foams = float(_get(params, "n_foams", 0)) * float(_get(params, "foam_size", 0)) ** 3
    patch = float(_get(params, "gan_patch_size", 0))
    generated = float(_get(params, "n_generated", 0)) * patch**2
    fractions = float(len(set(_get(params, "sweep_fractions", [])) | {_get(params, "wall_fraction", 0.5)}))
    if stage in ("00_samples", "01_otsu_baseline"):
        return Work(voxels, held)
    if stage == "02_foam_generation":
        fit = float(_get(params, "fit_iterations", 0)) * float(_get(params, "fit_size", 0)) ** 3
        supersample = float(_get(params, "supersample", 3)) ** 3 / 27.0
        return Work((fit + foams) * supersample, foams * supersample)
    if stage == "03_rendering":
        return Work(foams, foams)
    if stage == "04_unet_step1":
        trials = float(_get(params, "hyperband_trials", 0)) + float(_get(params, "bayes_trials", 0))
        epochs = trials * float(_get(params, "search_epochs", 0)) + float(_get(params, "epochs", 0))
        return Work(foams * epochs, foams)
    if stage == "05_segment_step1":
        return Work(voxels * (3.0 if _get(params, "axes", "z") == "xyz" else 1.0), streamed)
    if stage == "06_gan":
        steps = float(_get(params, "gan_steps", 0)) * float(_get(params, "gan_batch_size", 0))
        return Work(steps * patch**2 * float(_get(params, "gan_channels", 0)) ** 2,
                    (float(_get(params, "gan_patches", 0)) + float(_get(params, "n_generated", 0))) * patch**2)
    if stage == "07_watershed_walls":
        return Work(generated * fractions, generated * fractions)
    if stage == "08_cyclegan":
        steps = float(_get(params, "cyclegan_steps", 0)) * float(_get(params, "cyclegan_batch_size", 0))
        crop = float(_get(params, "cyclegan_crop", 0))
        return Work(steps * crop**2 * float(_get(params, "cyclegan_channels", 0)) ** 2, generated * fractions)
    if stage == "09_unet_step2":
        return Work(float(_get(params, "step2_epochs", 0)) * generated * fractions + voxels * fractions,
                    generated * fractions + streamed)
    if stage == "10_similarity":
        n = float(_get(params, "n_images", 0))
        return Work(n * (fractions + 4.0), n * (fractions + 4.0))
    if stage == "11_porosity_validation":
        return Work(1.0, 0.0)
    if stage == "12_results":
        return Work(float(samples) * float(_get(params, "fid_bootstrap", 0)), float(samples))
    return None


@cache
def _profile_values(profile: str) -> dict[str, Any]:
    from .study import load_profile

    return load_profile(profile)


def _measured_work(m: Measurement) -> Work:
    values = _profile_values(m.profile)
    size = int(values["size"])
    return stage_work(m.stage, values, scan_shape=(size, size, size), samples=m.samples)


@cache
def _fit(stage: str) -> tuple[float, float, float, float, float] | None:
    """``(a, b, peak, memory work, bytes per unit)`` of a stage's model, or None if it has no measurements."""
    points = [(m, _measured_work(m)) for m in MEASUREMENTS if m.stage == stage]
    if not points:
        return None
    x = [w.time for _, w in points]
    y = [m.seconds for m, _ in points]
    n = len(points)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((xi - mx) ** 2 for xi in x)
    b = sum((xi - mx) * (yi - my) for xi, yi in zip(x, y)) / sxx if sxx > 0 else 0.0
    a = my - b * mx
    if stage in SLOPES:
        b = SLOPES[stage]
        a = max(0.0, my - b * mx)
    elif b < 0:  # more work never takes less time: a constant
        a, b = my, 0.0
    elif a < 0:  # no negative overhead: a line through the origin
        a, b = 0.0, sum(xi * yi for xi, yi in zip(x, y)) / sum(xi * xi for xi in x)
    memory = [(m.peak_memory_bytes, w.memory) for m, w in points if m.peak_memory_bytes is not None]
    if not memory:
        return None
    peak, work = max(memory)
    return a, b, float(peak), float(work), float(BYTES_PER_UNIT.get(stage, 0.0))


def estimate(stage: str, params: Mapping[str, Any], *, scan_shape: Sequence[int], samples: int = 1) -> Cost | None:
    """The modelled wall time and peak memory of a stage (see the module's description).

    Parameters
    ----------
    stage, params, scan_shape, samples
        As for :func:`stage_work`.

    Returns
    -------
    Cost or None
        ``basis="model"``; None for a stage without a model or measurements.
    """
    work = stage_work(stage, params, scan_shape=scan_shape, samples=samples)
    fit = _fit(stage)
    if work is None or fit is None:
        return None
    a, b, peak, measured_work, per_unit = fit
    base = peak - per_unit * measured_work  # the kernel and its libraries
    return Cost(seconds=a + b * work.time, peak_memory_bytes=max(base, 0.0) + per_unit * work.memory, basis="model")
