"""Tables of the study-wide results page, built from every sample's ``summary.json``.

The results page (notebook 12) must show every number that exists, also when
some samples failed part-way: a sample that stopped at the CycleGAN still has
its Otsu and step-1 porosities. The functions here take the summaries as
:func:`foamlib.study.summarize` writes them and never assume that a stage ran.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ._optional import requires_extra

if TYPE_CHECKING:
    import pandas as pd

from .metrics import MetricsError, StageMetrics, metrics_class, parse_metrics

__all__ = [
    "METHODS", "agreement_table", "porosity_error_pp", "porosity_table", "failure_table", "samples_with_stage",
    "stage_metrics",
]

#: The segmentations compared on the results page: summary key -> label.
METHODS = {"otsu": "Otsu", "step1": "step-1 U-Net", "step2": "step-2 U-Net"}


def porosity_error_pp(porosity: Any, reference: float | None) -> Any:
    """Porosity error against a reference, in percentage points.

    Parameters
    ----------
    porosity : float, array-like or pandas object
        Porosity as a fraction.
    reference : float or None
        Reference porosity as a fraction; None gives NaN.

    Returns
    -------
    float, ndarray or pandas object
        ``100 * (porosity - reference)``, of the input's kind; NaN where the
        porosity or the reference is missing.
    """
    with requires_extra("study"):
        import pandas as pd

    if reference is None:
        reference = np.nan
    if isinstance(porosity, (pd.Series, pd.DataFrame)):
        return 100.0 * (porosity.astype(float) - float(reference))
    out = 100.0 * (np.asarray(porosity, dtype=float) - float(reference))
    return float(out) if out.ndim == 0 else out


def porosity_table(summaries: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The main result: porosity of every segmentation of every sample, with errors.

    Parameters
    ----------
    summaries : mapping of str to mapping
        Sample name -> its summary (``summary.json``): keys ``reference_porosity``
        and ``porosity`` (``{"otsu": ..., "step1": ..., "step2": ...}``, any of
        them may be missing).

    Returns
    -------
    pandas.DataFrame
        One row per sample (index ``sample``, in the given order); columns
        ``reference``, the labels of :data:`METHODS` (porosity as a fraction)
        and ``<label> error (pp)``; NaN where a stage did not run or no
        reference is known.
    """
    with requires_extra("study"):
        import pandas as pd

    rows = {}
    for sample, summary in summaries.items():
        reference = summary.get("reference_porosity")
        porosities = summary.get("porosity") or {}
        row: dict[str, float] = {"reference": np.nan if reference is None else float(reference)}
        for key, label in METHODS.items():
            value = porosities.get(key)
            row[label] = np.nan if value is None else float(value)
        for key, label in METHODS.items():
            row[f"{label} error (pp)"] = porosity_error_pp(row[label], reference)
        rows[sample] = row
    columns = ["reference", *METHODS.values(), *(f"{label} error (pp)" for label in METHODS.values())]
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("sample")


def failure_table(failures: Mapping[str, str]) -> pd.DataFrame:
    """What failed in a study, one row per sample.

    Parameters
    ----------
    failures : mapping of str to str
        Sample name -> ``"NN_stage: message"`` as the study runner reports it
        (a message without a stage prefix is kept whole).

    Returns
    -------
    pandas.DataFrame
        Index ``sample``; columns ``stage`` and ``message``. Empty (with those
        columns) when nothing failed.
    """
    with requires_extra("study"):
        import pandas as pd

    rows = {}
    for sample, text in failures.items():
        stage, sep, message = str(text).partition(": ")
        if not sep or not stage[:2].isdigit():
            stage, message = "", str(text)
        rows[sample] = {"stage": stage, "message": message}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["stage", "message"]).rename_axis("sample")


def agreement_table(summaries: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Whether step 1 and step 2 agree on each sample, with the scan's own densitometric evidence.

    Parameters
    ----------
    summaries : mapping of str to mapping
        Sample name -> its summary (:func:`foamlib.study.summarize`), whose
        ``agreement`` entry is :func:`foamlib.agreement.check_runs` as a dict.

    Returns
    -------
    pandas.DataFrame
        Index ``sample``; one row per sample with both steps: ``step 1 (%)``,
        ``step 2 (%)`` (means over seeds), ``difference (pp)``, ``tolerance
        (pp)`` (the seeds' spread, or the one-seed default), ``densitometric
        (%)`` and ``± (pp)`` (NaN where the scan gives no estimate: walls or
        struts without an interior), ``disagree`` and ``message``. Empty, with
        those columns, when no sample has both steps.
    """
    with requires_extra("study"):
        import pandas as pd

    columns = ["step 1 (%)", "step 2 (%)", "difference (pp)", "tolerance (pp)", "densitometric (%)", "± (pp)",
               "disagree", "message"]  # fmt: skip
    rows = {}
    for sample, summary in summaries.items():
        record = summary.get("agreement")
        if not isinstance(record, Mapping):
            continue
        if "error" in record:
            rows[sample] = dict.fromkeys(columns[:6], float("nan")) | {
                "disagree": None, "message": f"not compared: {record['error']}"}
            continue
        dens = record.get("densitometry") or {}
        rows[sample] = {
            "step 1 (%)": 100 * record["step1_mean"], "step 2 (%)": 100 * record["step2_mean"],
            "difference (pp)": 100 * record["difference"], "tolerance (pp)": 100 * record["tolerance"],
            "densitometric (%)": 100 * dens["porosity"] if dens else float("nan"),
            "± (pp)": 100 * dens["uncertainty"] if dens else float("nan"),
            "disagree": bool(record["disagree"]), "message": record["message"],
        }
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("sample")


def stage_metrics(summary: Mapping[str, Any], stage: str) -> StageMetrics | None:
    """A stage's typed metrics from a sample's summary, or None if the stage did not record them.

    Parameters
    ----------
    summary : mapping
        A sample's summary (``summary.json``, :func:`foamlib.study.summarize`).
    stage : str
        A key of :data:`foamlib.metrics.STAGE_METRICS`, e.g. ``"similarity"``.

    Returns
    -------
    StageMetrics or None
        E.g. :class:`~foamlib.metrics.SimilarityMetrics`; None where
        ``summary["stages"]`` holds nothing for the stage.

    Raises
    ------
    foamlib.metrics.MetricsError
        For an unknown stage, or stored metrics whose layout does not match
        the stage's class (names the sample and the key).
    """
    metrics_class(stage)
    data = (summary.get("stages") or {}).get(stage)
    if data is None:
        return None
    return parse_metrics(stage, data, source=f"summary of {summary.get('sample', '?')}: stages[{stage!r}]")


def samples_with_stage(summaries: Mapping[str, Mapping[str, Any]], stage: str, *fields: str) -> list[str]:
    """Samples whose summary holds a stage's metrics (and, optionally, values of given fields).

    Parameters
    ----------
    summaries : mapping of str to mapping
        Sample name -> summary, as for :func:`porosity_table`.
    stage : str
        A key of :data:`foamlib.metrics.STAGE_METRICS`, e.g. ``"similarity"``.
    *fields : str
        Fields of the stage's metrics class that must not be None (e.g.
        ``"fid_by_fraction"``).

    Returns
    -------
    list of str
        The sample names, in the given order.

    Raises
    ------
    foamlib.metrics.MetricsError
        As :func:`stage_metrics`, or for a field the stage's class does not have.
    """
    known = {f.name for f in dataclasses.fields(metrics_class(stage))}
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise MetricsError(f"{metrics_class(stage).__name__} has no field {unknown[0]!r}; fields: {', '.join(sorted(known))}")
    out = []
    for sample, summary in summaries.items():
        metrics = stage_metrics(summary, stage)
        if metrics is not None and all(getattr(metrics, f) is not None for f in fields):
            out.append(sample)
    return out
