"""The study runner: every numbered notebook, in order, for every sample, with papermill.

A *stage* is one notebook run for one sample. Its executed copy lands in
``runs/<sample>/notebooks/`` and its artefacts in ``runs/<sample>/``. A stage is
skipped when its key is unchanged since its last successful run. The key is a
hash of

* the notebook's code cells,
* the parameters it receives (only those its ``parameters`` cell declares, so a
  knob that only a later stage reads does not re-run earlier ones),
* the source of :mod:`foamlib` (jupyter-cache hashes code cells only and would
  miss a library change),
* the key of the previous stage of the same sample (a stage reads only what
  earlier stages wrote, so this stands for its input files), and for the first
  stage the size and modification time of a user's scan.

Notebooks whose parameters include ``run_dir`` run once per sample; notebooks
that declare ``runs_dir`` (and ``samples``) instead run once for the whole
study, after every sample, in ``runs/_study/``; they are skipped on the same
terms, with the keys of every sample's stages standing for their inputs.

Markdown is not part of the key, so editing the prose of a notebook does not
re-run it: a skipped stage gets the edited markdown cells copied into its
executed page (matched by cell id). Adding, removing or moving a markdown cell
re-runs the stage, since the page cannot be patched then.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import multiprocessing
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .device import cpu_threads
from .runs import atomic_path, read_json, write_json

__all__ = [
    "Stage",
    "SampleSpec",
    "StageResult",
    "load_profile",
    "profile_names",
    "find_stages",
    "stage_key",
    "run_sample",
    "run_study",
    "summary_table",
    "threads_per_sample",
    "write_summary",
    "summarize",
]

log = logging.getLogger(__name__)

_NOTEBOOK_NAME = re.compile(r"^\d\d_[A-Za-z0-9_]+\.ipynb$")


# --------------------------------------------------------------------------- profiles


def profile_names() -> tuple[str, ...]:
    """Names of the profiles shipped with foamlib (``smoke``, ``demo``, ``paper``)."""
    folder = resources.files("foamlib") / "profiles"
    return tuple(sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".yml")))


def load_profile(profile: str | os.PathLike) -> dict[str, Any]:
    """Read a profile: a flat YAML mapping of notebook parameters to values.

    Parameters
    ----------
    profile : str or path-like
        A shipped profile's name (:func:`profile_names`) or the path of a YAML file
        of one's own.

    Returns
    -------
    dict
        Parameter values; the key ``profile`` holds the profile's name.

    Raises
    ------
    ValueError
        If the name is unknown, the file does not exist, or it is not a mapping.
    """
    path = Path(profile)
    if path.suffix in (".yml", ".yaml") or path.exists():
        if not path.is_file():
            raise ValueError(f"profile file {path} does not exist")
        name = path.stem
        text = path.read_text(encoding="utf-8")
    else:
        name = str(profile)
        if name not in profile_names():
            raise ValueError(f"unknown profile {name!r}: use one of {', '.join(profile_names())} or a YAML file")
        text = (resources.files("foamlib") / "profiles" / f"{name}.yml").read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"profile {profile} is not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"profile {profile} must be a mapping of parameter names to values")
    return {**data, "profile": name}


# --------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class Stage:
    """One numbered notebook.

    Attributes
    ----------
    path : pathlib.Path
        The source notebook (never modified).
    parameters : tuple of str
        Names declared in its ``parameters`` cell.
    scope : str
        ``"sample"`` (declares ``run_dir``) or ``"study"`` (declares ``runs_dir``).
    """

    path: Path
    parameters: tuple[str, ...]
    scope: str

    @property
    def name(self) -> str:
        """The notebook's file stem, e.g. ``01_otsu_baseline``."""
        return self.path.stem


def _declared_parameters(path: Path) -> tuple[str, ...]:
    import papermill

    return tuple(papermill.inspect_notebook(str(path)).keys())


def find_stages(notebooks_dir: str | os.PathLike) -> list[Stage]:
    """The numbered notebooks (``NN_name.ipynb``) of a folder, in order.

    Raises
    ------
    ValueError
        If the folder holds no numbered notebook, or a notebook declares neither
        ``run_dir`` nor ``runs_dir`` in its ``parameters`` cell.
    """
    folder = Path(notebooks_dir)
    paths = sorted(p for p in folder.glob("*.ipynb") if _NOTEBOOK_NAME.match(p.name))
    if not paths:
        raise ValueError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    stages = []
    for path in paths:
        params = _declared_parameters(path)
        if "run_dir" in params:
            scope = "sample"
        elif "runs_dir" in params:
            scope = "study"
        else:
            raise ValueError(f"{path} declares neither run_dir nor runs_dir in its parameters cell")
        stages.append(Stage(path=path, parameters=params, scope=scope))
    return stages


def _code_cells(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return "\n\0".join("".join(c.get("source", "")) for c in nb.get("cells", []) if c.get("cell_type") == "code")


def _foamlib_source_hash() -> str:
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".yml") and "__pycache__" not in path.parts:
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def stage_key(stage: Stage, parameters: Mapping[str, Any], *, previous: str, library: str) -> str:
    """Hash that decides whether a stage must run again.

    Parameters
    ----------
    stage : Stage
    parameters : mapping
        The parameters the stage receives (already filtered to those it declares).
    previous : str
        The previous stage's key (or a fingerprint of the sample's external input
        for the first stage).
    library : str
        Hash of foamlib's source.
    """
    digest = hashlib.sha256()
    digest.update(_code_cells(stage.path).encode())
    digest.update(json.dumps(dict(parameters), sort_keys=True, default=str).encode())
    digest.update(previous.encode())
    digest.update(library.encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- samples


@dataclass(frozen=True)
class SampleSpec:
    """A sample to run: a demo name, or a user's scan with optional reference porosity.

    Attributes
    ----------
    name : str
        Name of the sample and of its run folder.
    scan_path : str or None
        A user's scan; None for a demo sample.
    reference_porosity : float or None
        A measured porosity (fraction) for a user's scan.
    voxel_size_um : float or None
        Overrides the scan's metadata.
    """

    name: str
    scan_path: str | None = None
    reference_porosity: float | None = None
    voxel_size_um: float | None = None

    def parameters(self) -> dict[str, Any]:
        """The notebook parameters that describe this sample."""
        return {
            "sample": self.name,
            "scan_path": self.scan_path,
            "reference_porosity": self.reference_porosity,
            "voxel_size_um": self.voxel_size_um,
        }

    def fingerprint(self) -> str:
        """Identity of the external input: the scan's path, size and modification time."""
        if self.scan_path is None:
            return f"demo:{self.name}"
        stat = Path(self.scan_path).stat()
        return f"scan:{Path(self.scan_path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


@dataclass(frozen=True)
class StageResult:
    """Outcome of one stage for one sample.

    Attributes
    ----------
    sample, stage : str
    status : str
        ``"ran"``, ``"skipped"`` (key unchanged) or ``"failed"``.
    seconds : float
        Wall-clock time of this invocation (0 for a skipped stage).
    message : str
        For a failed stage, one line naming the notebook cell that failed;
        for a skipped one, ``"prose refreshed"`` where edited markdown cells
        were copied into its page.
    """

    sample: str
    stage: str
    status: str
    seconds: float
    message: str = ""


def _label_cells(nb, sample: str) -> None:
    """Make a notebook's book labels unique in place: the sample joins its title and figure names.

    Every sample's copy of a notebook lands in the same book, so ``fig-00-scan``
    becomes ``fig-00-scan-foam89`` and the title ``# The samples`` becomes
    ``# The samples: foam89``.
    """
    titled = False
    for cell in nb.cells:
        if not titled and cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            first, _, rest = cell.source.lstrip().partition("\n")
            cell.source = f"{first}: {sample}\n{rest}"
            titled = True
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        if "name" in figure:
            figure["name"] = f"{figure['name']}-{re.sub(r'[^A-Za-z0-9_-]+', '-', sample)}"


def _label_for_sample(path: Path, sample: str) -> None:
    """:func:`_label_cells` on a notebook file."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    _label_cells(nb, sample)
    nbformat.write(nb, path)


def _refresh_prose(source: Path, output: Path, sample: str) -> bool | None:
    """Copy edited markdown cells of a stage's notebook into its executed page, matched by cell id.

    The stage key covers code cells only, so a prose edit does not re-run a
    stage; this puts the new prose on the book page instead.

    Returns
    -------
    bool or None
        True if the page was rewritten (atomically), False if its prose was
        already current, None if the markdown cells differ in ids or order
        (one was added, removed or moved): the stage must run again.
    """
    import nbformat

    labelled = nbformat.read(source, as_version=4)
    _label_cells(labelled, sample)
    try:
        page = nbformat.read(output, as_version=4)
    except (OSError, ValueError):  # an unreadable page is made again
        return None
    new = [c for c in labelled.cells if c.cell_type == "markdown"]
    old = [c for c in page.cells if c.cell_type == "markdown"]
    if [c.get("id") for c in new] != [c.get("id") for c in old] or any(c.get("id") is None for c in new):
        return None
    if all(a.source == b.source for a, b in zip(new, old)):
        return False
    for a, b in zip(new, old):
        b.source = a.source
    with atomic_path(output) as tmp:
        nbformat.write(page, tmp)
    return True


def _run_stage(
    stage: Stage,
    run_dir: Path,
    key: str,
    params: Mapping[str, Any],
    *,
    sample: str,
    label: str,
    force: bool,
    on_stage_start: Callable[[Stage], None] | None = None,
) -> StageResult:
    """Skip a stage whose key is unchanged and whose page exists (edited prose copied in), else execute it.

    ``sample`` names the result (a sample, or ``"_study"``); ``label`` is what
    the page's title and figure names get (:func:`_label_cells`). A successful
    run writes ``run_dir/.stages/<stage>.json`` with the key.
    """
    output = run_dir / "notebooks" / stage.path.name
    record = run_dir / ".stages" / f"{stage.name}.json"
    if not force and record.is_file() and read_json(record).get("key") == key and output.is_file():
        refreshed = _refresh_prose(stage.path, output, label)
        if refreshed is not None:
            return StageResult(sample, stage.name, "skipped", 0.0, "prose refreshed" if refreshed else "")
    record.unlink(missing_ok=True)
    if on_stage_start is not None:
        on_stage_start(stage)
    start = time.perf_counter()
    try:
        _execute(stage, output, params, sample=label)
    except Exception as exc:  # noqa: BLE001 - a failed stage is reported, the other samples go on
        return StageResult(sample, stage.name, "failed", time.perf_counter() - start, _failure_line(exc, stage.path))
    seconds = time.perf_counter() - start
    write_json(record, {"key": key, "seconds": seconds, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return StageResult(sample, stage.name, "ran", seconds)


def _failure_line(exc: BaseException, notebook: Path) -> str:
    cell = getattr(exc, "exec_count", None)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    where = f"cell [{cell}]" if cell is not None else "a cell"
    evalue = " ".join(str(evalue).split())
    return f"{notebook.name}: {where} raised {ename}: {evalue}"


def _execute(stage: Stage, output: Path, parameters: Mapping[str, Any], *, sample: str) -> None:
    import papermill

    with atomic_path(output) as tmp:
        papermill.execute_notebook(
            str(stage.path),
            str(tmp),
            parameters=dict(parameters),
            cwd=str(stage.path.parent),
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
        )
        _label_for_sample(tmp, sample)


def run_sample(
    spec: SampleSpec,
    stages: Sequence[Stage],
    profile: Mapping[str, Any],
    *,
    runs_dir: str | os.PathLike = "runs",
    force: bool = False,
    report: Callable[[StageResult], None] | None = None,
    on_stage_start: Callable[[Stage], None] | None = None,
) -> list[StageResult]:
    """Run the per-sample stages for one sample; stop at the first failure.

    Parameters
    ----------
    spec : SampleSpec
    stages : sequence of Stage
        Stages with scope ``"sample"`` are run, in order; others are ignored.
    profile : mapping
        Parameter values (see :func:`load_profile`).
    runs_dir : path-like
        Parent of the run folders; the sample's folder is ``runs_dir/<name>``.
    force : bool
        Run every stage even if its key is unchanged.
    report : callable, optional
        Called with each :class:`StageResult` as it happens (progress lines).
    on_stage_start : callable, optional
        Called with the :class:`Stage` just before its notebook is executed
        (not for skipped stages); the kernel starts after it returns, so it
        can set environment variables the kernel inherits.

    Returns
    -------
    list of StageResult
    """
    run_dir = (Path(runs_dir) / spec.name).resolve()
    library = _foamlib_source_hash()
    previous = spec.fingerprint()
    results: list[StageResult] = []
    values = {**profile, **spec.parameters(), "run_dir": str(run_dir)}
    for stage in (s for s in stages if s.scope == "sample"):
        params = {k: values[k] for k in stage.parameters if k in values}
        key = stage_key(stage, params, previous=previous, library=library)
        previous = key
        result = _run_stage(stage, run_dir, key, params, sample=spec.name, label=spec.name, force=force,
                            on_stage_start=on_stage_start)
        results.append(result)
        if report is not None:
            report(result)
        if result.status == "failed":
            break
    write_summary(run_dir)
    return results


def write_summary(run_dir: str | os.PathLike) -> Path:
    """Write :func:`summarize` of a run folder to its ``summary.json`` (atomically)."""
    return write_json(Path(run_dir) / "summary.json", summarize(run_dir))


def summarize(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Merge the sample record and every stage's ``metrics.json`` into one dict.

    Keys (porosities as fractions):

    ``sample``, ``reference_porosity``, ``reference_kind``
        From ``sample.json``.
    ``porosity``
        ``{method: porosity}`` from every stage whose metrics hold a number
        under ``porosity`` (``otsu``, ``step1``, ``step2``).
    ``fid``, ``kid``
        ``{"step1", "step2", "encoder"}`` and ``{"step1", "step2"}``, from a
        stage whose metrics hold ``fid`` / ``kid`` (the similarity stage).
    ``unet_test``
        ``{"step1": {...}, "step2": {...}}``: test metrics of each U-Net, from
        the ``<name>_unet`` stages' ``test`` entries.
    ``stages``
        Every stage's metrics as written.
    ``seconds``
        Wall-clock time of each stage's last successful run.
    """
    run_dir = Path(run_dir)
    summary: dict[str, Any] = {"sample": run_dir.name, "reference_porosity": None, "porosity": {}}
    if (run_dir / "sample.json").is_file():
        sample = read_json(run_dir / "sample.json")
        summary["reference_porosity"] = sample.get("reference_porosity")
        summary["reference_kind"] = sample.get("reference_kind")
    stages = {}
    unet_test: dict[str, Any] = {}
    for metrics in sorted(run_dir.glob("*/metrics.json")):
        data = read_json(metrics)
        name = metrics.parent.name
        stages[name] = data
        if isinstance(data.get("porosity"), (int, float)):
            summary["porosity"][name] = data["porosity"]
        for key in ("fid", "kid"):
            if isinstance(data.get(key), Mapping):
                summary[key] = data[key]
        if isinstance(data.get("test"), Mapping):
            unet_test[name.removesuffix("_unet")] = data["test"]
    summary["unet_test"] = unet_test
    summary["stages"] = stages
    summary["seconds"] = {
        p.stem: read_json(p).get("seconds") for p in sorted((run_dir / ".stages").glob("*.json"))
    }
    return summary


def summary_table(runs_dir: str | os.PathLike = "runs") -> str:
    """A markdown table of every sample's ``summary.json``: reference porosity and porosity by method.

    Parameters
    ----------
    runs_dir : path-like
        Parent of the run folders.

    Returns
    -------
    str
        One row per sample; porosities in percent, errors in percentage points
        against the reference where there is one.

    Raises
    ------
    ValueError
        If no run folder under ``runs_dir`` has a ``summary.json``.
    """
    paths = sorted(p for p in Path(runs_dir).glob("*/summary.json") if not p.parent.name.startswith("_"))
    if not paths:
        raise ValueError(f"no run folder with a summary.json under {runs_dir}; run `foamlib study run` first")
    summaries = [read_json(p) for p in paths]
    methods = sorted({m for s in summaries for m in s.get("porosity", {})})
    header = ["sample", "reference porosity"] + [f"{m} porosity (error)" for m in methods]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in summaries:
        ref = s.get("reference_porosity")
        cells = [s["sample"], "–" if ref is None else f"{100 * ref:.2f} % ({s.get('reference_kind') or 'given'})"]
        for m in methods:
            value = s.get("porosity", {}).get(m)
            if value is None:
                cells.append("–")
            elif ref is None:
                cells.append(f"{100 * value:.2f} %")
            else:
                cells.append(f"{100 * value:.2f} % ({100 * (value - ref):+.2f} pp)")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def threads_per_sample(cpus: int, jobs: int, unfinished: int) -> int:
    """Threads for the next stage of one of the samples that run in parallel.

    Parameters
    ----------
    cpus : int
        Cores available (:func:`foamlib.device.cpu_threads`).
    jobs : int
        Samples run at once at most.
    unfinished : int
        Samples whose stages have not all finished, this one included (a
        sample waiting for a free worker counts: it starts as soon as one
        frees).

    Returns
    -------
    int
        ``cpus // min(jobs, unfinished)``, at least 1: the cores divided
        between the samples that run now, so the last samples of a study get
        the cores the finished ones leave free instead of one thread each.
    """
    return max(1, cpus // max(1, min(jobs, unfinished)))


def _worker(spec, stages, profile, runs_dir, force, cpus, jobs, unfinished, lock):  # pragma: no cover - child process
    def divide_cores(stage: Stage) -> None:
        # Kernels inherit the environment: divide the cores between the samples running now, do not multiply.
        threads = str(threads_per_sample(cpus, jobs, unfinished.value))
        for var in _THREAD_VARIABLES:
            os.environ[var] = threads

    try:
        return run_sample(spec, stages, profile, runs_dir=runs_dir, force=force, report=print_result,
                          on_stage_start=divide_cores)
    finally:
        with lock:
            unfinished.value -= 1


def print_result(result: StageResult) -> None:
    """Print one progress line for a stage result."""
    if result.status == "failed":
        line = f"{result.sample}: {result.stage} FAILED: {result.message}"
    elif result.status == "skipped":
        line = f"{result.sample}: {result.stage} skipped (unchanged{'; ' + result.message if result.message else ''})"
    else:
        line = f"{result.sample}: {result.stage} done in {result.seconds:.1f} s"
    print(line, flush=True)


def run_study(
    samples: Sequence[SampleSpec],
    *,
    profile: str | os.PathLike | Mapping[str, Any] = "demo",
    notebooks_dir: str | os.PathLike = "notebooks",
    runs_dir: str | os.PathLike = "runs",
    jobs: int | None = None,
    force: bool = False,
) -> list[StageResult]:
    """Run the study: each sample's stages (samples in parallel processes), then study-wide stages.

    Parameters
    ----------
    samples : sequence of SampleSpec
    profile : str, path-like or mapping
        A profile name or file (see :func:`load_profile`), or parameter values.
    notebooks_dir, runs_dir : path-like
    jobs : int, optional
        Samples run at once; default: as many as samples, at most the number of
        cores. Each stage of a sample gets the cores divided by the samples
        running when it starts (:func:`threads_per_sample`): with three samples
        on two cores, one thread each while two run, two threads for the last
        sample's remaining stages once the others are done. Training results
        on the CPU depend slightly on the thread count (floating-point
        summation order), so they can differ in the last digits between runs
        that finished in another order.
    force : bool
        Ignore the cache and run every stage.

    Returns
    -------
    list of StageResult
        Every stage's outcome; a failed stage stops only its own sample.
    """
    if not samples:
        raise ValueError("no samples to run")
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        raise ValueError(f"sample names must be unique, got {names}")
    values = dict(profile) if isinstance(profile, Mapping) else load_profile(profile)
    stages = find_stages(notebooks_dir)
    runs_dir = Path(runs_dir)
    cpus = cpu_threads()
    jobs = max(1, min(len(samples), cpus if jobs is None else jobs))
    results: list[StageResult] = []
    if jobs == 1:
        for spec in samples:
            results += run_sample(spec, stages, values, runs_dir=runs_dir, force=force, report=print_result)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Manager() as manager, concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            unfinished, lock = manager.Value("i", len(samples)), manager.Lock()
            futures = [
                pool.submit(_worker, s, stages, values, runs_dir, force, cpus, jobs, unfinished, lock) for s in samples
            ]
            for future in futures:
                results += future.result()
    failed = {r.sample for r in results if r.status == "failed"}
    study_stages = [s for s in stages if s.scope == "study"]
    if study_stages:
        results += _run_study_stages(
            study_stages, values, runs_dir, [s.name for s in samples if s.name not in failed], force=force
        )
    return results


def _run_study_stages(stages, values, runs_dir, names, force=False) -> list[StageResult]:
    """Run the study-wide stages; skip one whose notebook, parameters, library and samples' keys are unchanged."""
    out = []
    run_dir = (Path(runs_dir) / "_study").resolve()
    library = _foamlib_source_hash()
    # the study reads what every sample's stages wrote: their keys stand for those files
    previous = json.dumps(
        {name: sorted(read_json(p).get("key", "") for p in (Path(runs_dir) / name / ".stages").glob("*.json")) for name in names},
        sort_keys=True,
    )
    for stage in stages:
        params = {**values, "runs_dir": str(Path(runs_dir).resolve()), "samples": list(names)}
        params = {k: params[k] for k in stage.parameters if k in params}
        key = stage_key(stage, params, previous=previous, library=library)
        previous = key
        result = _run_stage(stage, run_dir, key, params, sample="_study", label="all samples", force=force)
        print_result(result)
        out.append(result)
        if result.status == "failed":
            break
    return out
