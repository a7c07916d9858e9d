"""Do step 1 and step 2 agree? A warning for users who have no truth.

The two U-Nets of the study segment the same scan; where their porosities
differ by more than training noise, at least one is wrong, and the user should
be told, with whatever evidence the scan itself offers
(:func:`foamlib.densitometry.densitometric_porosity`).

Training noise is the spread of a step's porosity over seeds: with several
seeds per step, the steps disagree when their means differ by more than
``sqrt(sd1**2 + sd2**2)`` (the standard deviation of the difference of two
single runs); with one seed, by more than :data:`DEFAULT_TOLERANCE`.

Hooks: :func:`compare_steps` on numbers, :func:`check_runs` on run folders
(one per seed of one sample), :func:`disagreement_notes` for the lines under
``foamlib study summary``'s table, :meth:`StepAgreement.to_dict` for a
summary or ``--json``, and ``StepAgreement.message`` for the book.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .densitometry import DEFAULT_DEPTH, Densitometry, NoInteriorError, densitometric_porosity

__all__ = [
    "DEFAULT_TOLERANCE",
    "ONE_PHASE",
    "OnePhaseError",
    "StepAgreement",
    "check_two_phases",
    "compare_steps",
    "check_runs",
    "disagreement_notes",
]

#: Porosity difference (fraction) between single runs of step 1 and step 2 above which they are said to disagree
#: when there is one seed per step. Seeds and machines alone moved one step-2 porosity by 1.7 and 2.2 pp (issue 21),
#: so a one-seed difference below 1 pp says nothing, and one above it is worth a warning, not a verdict.
DEFAULT_TOLERANCE = 0.01

#: Porosity (fraction) below which, or above one minus which, a segmentation counts as one phase everywhere.
ONE_PHASE = 0.001


class OnePhaseError(ValueError):
    """A U-Net marked (almost) the whole scan one phase where Otsu's threshold finds both (:func:`check_two_phases`)."""


def check_two_phases(porosity: float, otsu_porosity: float, *, what: str = "the U-Net", scan: str = "the scan") -> None:
    """Refuse a segmentation of the scan that is one phase everywhere where Otsu's is not.

    A U-Net can pass its own test split (:func:`foamlib.training.check_learnt`)
    and still mark a real scan wholly solid or wholly pore, when the images it
    was trained on do not look like the scan. A porosity of 0 or 1 is never a
    result to pass on where Otsu's threshold, however rough, finds at least 1 %
    of each phase.

    Parameters
    ----------
    porosity : float
        Pore fraction of the U-Net's segmentation of the scan.
    otsu_porosity : float
        Pore fraction of Otsu's segmentation of the same scan.
    what, scan : str
        How the message names the U-Net and the scan.

    Raises
    ------
    OnePhaseError
        If ``porosity`` is below :data:`ONE_PHASE` or above ``1 - ONE_PHASE``
        while ``otsu_porosity`` lies in [0.01, 0.99].
    ValueError
        If a porosity is not a number in [0, 1].
    """
    for name, value in (("porosity", porosity), ("otsu_porosity", otsu_porosity)):
        if not isinstance(value, (int, float, np.floating)) or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be a fraction in [0, 1], got {value!r}")
    if 0.01 <= otsu_porosity <= 0.99 and not ONE_PHASE <= porosity <= 1.0 - ONE_PHASE:
        phase = "pore" if porosity > 0.5 else "solid"
        raise OnePhaseError(
            f"{what} marks {100 * (porosity if phase == 'pore' else 1 - porosity):.2f} % of {scan} {phase}, where Otsu's "
            f"threshold finds {otsu_porosity:.1%} pore: its segmentation means nothing. The images it was trained on "
            "do not look like this scan; compare their grey values with the scan's (the rendering and CycleGAN pages "
            "show both) before training again."
        )


@dataclass(frozen=True)
class StepAgreement:
    """The comparison of step 1 and step 2 on one sample.

    Attributes
    ----------
    step1, step2 : tuple of float
        Porosity (fraction) of each seed's run of each step.
    step1_mean, step2_mean : float
        Their means.
    step1_sd, step2_sd : float
        Their sample standard deviations (``ddof=1``); NaN for one seed.
    difference : float
        ``step2_mean - step1_mean`` (fraction).
    tolerance : float
        The difference (fraction) above which the steps disagree.
    tolerance_kind : str
        ``"seeds"`` (from the spread over seeds) or ``"default"``
        (:data:`DEFAULT_TOLERANCE`, fewer than two seeds of a step).
    disagree : bool
        ``abs(difference) > tolerance``.
    densitometry : Densitometry or None
        The scan's own estimate, where one was computed and its interiors sufficed.
    densitometry_note : str
        Which segmentation gave the interiors, or why there is no estimate.
    message : str
        One paragraph for a user: agree or disagree, by how much, against what
        spread, and what the scan's grey levels say.
    """

    step1: tuple[float, ...]
    step2: tuple[float, ...]
    step1_mean: float
    step2_mean: float
    step1_sd: float
    step2_sd: float
    difference: float
    tolerance: float
    tolerance_kind: str
    disagree: bool
    densitometry: Densitometry | None
    densitometry_note: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN standard deviations become None)."""
        def clean(x: float) -> float | None:
            return None if isinstance(x, float) and math.isnan(x) else x

        return {
            "step1": list(self.step1), "step2": list(self.step2),
            "step1_mean": self.step1_mean, "step2_mean": self.step2_mean,
            "step1_sd": clean(self.step1_sd), "step2_sd": clean(self.step2_sd),
            "difference": self.difference, "tolerance": self.tolerance, "tolerance_kind": self.tolerance_kind,
            "disagree": self.disagree,
            "densitometry": None if self.densitometry is None else self.densitometry.to_dict(),
            "densitometry_note": self.densitometry_note, "message": self.message,
        }


def _porosities(values: float | Sequence[float], what: str) -> tuple[float, ...]:
    seq = [values] if isinstance(values, (int, float, np.floating)) else list(values)
    if not seq:
        raise ValueError(f"{what}: no porosity given")
    out = []
    for v in seq:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not (0.0 <= float(v) <= 1.0):
            raise ValueError(f"{what}: porosities are fractions in [0, 1], got {v!r}")
        out.append(float(v))
    return tuple(out)


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def compare_steps(
    step1: float | Sequence[float],
    step2: float | Sequence[float],
    *,
    densitometry: Densitometry | None = None,
    densitometry_note: str = "",
    default_tolerance: float = DEFAULT_TOLERANCE,
) -> StepAgreement:
    """Compare the porosities of step 1 and step 2 (one value per seed) and say whether they disagree.

    Parameters
    ----------
    step1, step2 : float or sequence of float
        Porosity (fraction) of each seed's run of the step on the same sample.
    densitometry : Densitometry, optional
        The scan's densitometric estimate, quoted in the message.
    densitometry_note : str, optional
        Where the estimate's interiors came from, or why there is none (quoted).
    default_tolerance : float, default :data:`DEFAULT_TOLERANCE`
        The tolerance (fraction) when a step has fewer than two seeds.

    Returns
    -------
    StepAgreement

    Raises
    ------
    ValueError
        If a porosity is not a fraction in [0, 1] or a step has none, or the
        tolerance is not a positive fraction.
    """
    if isinstance(default_tolerance, bool) or not isinstance(default_tolerance, (int, float)) or not (
        0.0 < default_tolerance < 1.0
    ):
        raise ValueError(f"default_tolerance must be a fraction in (0, 1), got {default_tolerance!r}")
    p1, p2 = _porosities(step1, "step 1"), _porosities(step2, "step 2")
    m1, m2 = float(np.mean(p1)), float(np.mean(p2))
    s1 = float(np.std(p1, ddof=1)) if len(p1) > 1 else math.nan
    s2 = float(np.std(p2, ddof=1)) if len(p2) > 1 else math.nan
    if len(p1) > 1 and len(p2) > 1:
        tolerance, kind = math.hypot(s1, s2), "seeds"
        spread = f"their spread over seeds ({100 * tolerance:.2f} pp from {len(p1)} and {len(p2)} seeds)"
    else:
        tolerance, kind = float(default_tolerance), "default"
        spread = (f"the default tolerance of {100 * tolerance:.2f} pp (one seed per step: single runs of step 2 "
                  "have moved by up to 2 pp with the seed or the machine, so run several seeds to rank the steps)")
    difference = m2 - m1
    disagree = abs(difference) > tolerance
    n = f" (means of {len(p1)} and {len(p2)} seeds)" if max(len(p1), len(p2)) > 1 else ""
    head = (f"Step 1 ({_pct(m1)}) and step 2 ({_pct(m2)}){n} "
            + (f"disagree: they differ by {100 * difference:+.2f} pp, more than {spread}; at least one of them "
               "is wrong on this scan." if disagree else
               f"agree: they differ by {100 * difference:+.2f} pp, within {spread}."))
    if densitometry is not None:
        d, u = densitometry.porosity, densitometry.uncertainty
        closer = "step 1" if abs(m1 - d) < abs(m2 - d) else "step 2"
        inside = [name for name, m in (("step 1", m1), ("step 2", m2)) if abs(m - d) <= 2 * u]
        evidence = (f" The scan's grey levels give a densitometric porosity of {_pct(d)} ± {100 * u:.2f} pp"
                    + (f" ({densitometry_note})" if densitometry_note else "")
                    + f"; {closer} is closer to it, and "
                    + (f"{' and '.join(inside)} lie{'s' if len(inside) == 1 else ''} within twice its uncertainty."
                       if inside else "neither step lies within twice its uncertainty.")
                    + " It tends to come out a few tenths of a pp low (foamlib.densitometry).")
    else:
        evidence = (" The scan offers no densitometric check" + (f": {densitometry_note}" if densitometry_note else "")
                    + ".")
    return StepAgreement(
        step1=p1, step2=p2, step1_mean=m1, step2_mean=m2, step1_sd=s1, step2_sd=s2, difference=difference,
        tolerance=tolerance, tolerance_kind=kind, disagree=disagree, densitometry=densitometry,
        densitometry_note=densitometry_note, message=head + evidence,
    )


def check_runs(
    run_dirs: Sequence[str | os.PathLike] | str | os.PathLike,
    *,
    interiors: str = "step1",
    depth: float = DEFAULT_DEPTH,
    default_tolerance: float = DEFAULT_TOLERANCE,
) -> StepAgreement:
    """:func:`compare_steps` for one sample's run folders (one per seed), with the scan's densitometric estimate.

    Parameters
    ----------
    run_dirs : path-like or sequence of path-like
        Run folders of the same sample and scan (``runs/<sample>``, or one per
        seed), each with the step-1 and step-2 segmentation stages done.
    interiors : {"step1", "step2", "otsu"}, default "step1"
        Whose segmentation (of the first run folder) gives the phase interiors
        of the densitometric estimate. The estimate is made on the scan's
        :func:`foamlib.samples.analysis_region` (the whole scan up to
        :data:`foamlib.samples.SAMPLE_VOXELS` voxels, else its centred box),
        read lazily, so a scan larger than memory is never read whole.
    depth : float
        Passed to :func:`foamlib.densitometry.densitometric_porosity`.
    default_tolerance : float
        Passed to :func:`compare_steps`.

    Returns
    -------
    StepAgreement

    Raises
    ------
    FileNotFoundError
        If a run folder lacks ``step1/metrics.json`` or ``step2/metrics.json``
        (names the file and the stage that writes it).
    ValueError
        If the run folders hold different samples or a metrics file has no porosity.
    """
    from .runfolder import RunFolder
    from .samples import analysis_region, load_sample

    dirs = [Path(run_dirs)] if isinstance(run_dirs, (str, os.PathLike)) else [Path(p) for p in run_dirs]
    if not dirs:
        raise ValueError("check_runs needs at least one run folder")
    porosities: dict[str, list[float]] = {"step1": [], "step2": []}
    stages = {"step1": "05_segment_step1", "step2": "09_unet_step2"}
    for run_dir in dirs:
        run = RunFolder(run_dir)
        for step, stage in stages.items():
            path = run.metrics_file(step)
            if not path.is_file():
                raise FileNotFoundError(f"{path} does not exist: run the stage {stage} for {run_dir} first")
            porosities[step].append(float(run.metrics(step).porosity))  # typed: a number, checked on reading
    scan, record = load_sample(dirs[0])
    for other in dirs[1:]:
        _, rec = load_sample(other)
        if rec.sample != record.sample or tuple(rec.shape) != tuple(record.shape):
            raise ValueError(f"{other} holds sample {rec.sample} {tuple(rec.shape)}, {dirs[0]} holds "
                             f"{record.sample} {tuple(record.shape)}: compare runs of one sample")
    run = RunFolder(dirs[0])
    box = analysis_region(scan.shape)
    segmentation = run.open_segmentation(interiors)[box]
    try:
        dens: Densitometry | None = densitometric_porosity(scan[box].astype(np.float32), segmentation, depth=depth)
        note = f"phase interiors from the {interiors} segmentation, {depth:g} voxels deep"
    except NoInteriorError as exc:
        dens, note = None, f"with the {interiors} segmentation's interiors, {exc}"
    return compare_steps(porosities["step1"], porosities["step2"], densitometry=dens, densitometry_note=note,
                         default_tolerance=default_tolerance)


def disagreement_notes(runs_dir: str | os.PathLike = "runs", **kwargs: Any) -> list[str]:
    """One line per sample under ``runs_dir`` whose step 1 and step 2 disagree (:func:`check_runs`).

    Run folders without both steps' porosities are left out (a failed or
    unfinished run); the study folder ``_study`` too. Keyword arguments go to
    :func:`check_runs`.

    Returns
    -------
    list of str
        ``"<sample>: <message>"`` for each sample that disagrees, in name order.
    """
    from .runfolder import RunFolder

    notes = []
    for run_dir in sorted(p for p in Path(runs_dir).iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        run = RunFolder(run_dir)
        if not all(run.metrics_file(step).is_file() for step in ("step1", "step2")):
            continue
        if not run.step1_seg.is_file() or not (run_dir / "sample.json").is_file():
            continue
        result = check_runs(run_dir, **kwargs)
        if result.disagree:
            notes.append(f"{run_dir.name}: {result.message}")
    return notes
