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
* the key of the previous stage of the same sample and a hash of the files
  that stage wrote (a stage reads only what earlier stages wrote, so this
  stands for its input files: a producer that re-runs and writes other files
  re-runs its consumers), and for the first stage the size and modification
  time of a user's scan.

A stage's *outputs* are the files of the run folder that it created or changed
(found by comparing the folder before and after it ran); their size and SHA-256
are recorded in ``.stages/<stage>.json``. A stage is skipped only while they
verify: a missing or damaged output runs its stage again, with a line that
says which file. A file that a later stage rewrites becomes that stage's output.

Notebooks whose parameters include ``run_dir`` run once per sample; notebooks
that declare ``runs_dir`` (and ``samples``) instead run once for the whole
study, after every sample, in ``runs/_study/``; they are skipped on the same
terms, with the records of every sample's stages (keys and outputs) and the
list of failed samples standing for their inputs.

Before any kernel starts, :func:`run_study` checks what it can
(:func:`check_study`: sample names, scans, the profile's keys and types, scan
shapes against the crop and patch sizes) and takes each sample's run folder's
lock (:func:`foamlib.runs.run_lock`; the study-wide stages wait for the lock of
``_study``), so that two studies never write one folder at once; it then
removes the temporary files that killed runs left. A failed stage
stops its sample only; its executed notebook is kept in ``failed/``, and
``summary.json`` says ``"status": "failed"``. Kernels get their share of the
idle cores and ``OMP_WAIT_POLICY=PASSIVE`` (:func:`kernel_environment`) and
write their own log (not the notebook's output) to ``.stages/<stage>.kernel.log``.

While a stage runs, the runner prints a line every few seconds with the
progress bars its kernel has open (:func:`foamlib.progress.progress_bar`
appends them to ``.stages/<stage>.progress.jsonl``, which the runner follows
and removes), and it records the stage's wall time and its kernel's CPU time
and peak memory in ``.stages/<stage>.json``. :func:`plan_study` says what a run
would do and cost without starting a kernel (the same key and output checks;
estimates from those records or :mod:`foamlib.costs`), and
:func:`prepare_notebooks` writes the notebooks, parameterised for a profile
and sample, to ``runs/<sample>/lab/`` to be run in JupyterLab.

Markdown is not part of the key, so editing the prose of a notebook does not
re-run it: a skipped stage gets the edited markdown cells copied into its
executed page (matched by cell id). Adding, removing or moving a markdown cell
re-runs the stage, since the page cannot be patched then.
"""

from __future__ import annotations

import ast
import concurrent.futures
import contextlib
import difflib
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ._optional import requires_extra
from .checks import check_int
from .device import cpu_threads, idle_cpus
from .progress import PROGRESS_FILE_VARIABLE, PROGRESS_STAGE_VARIABLE
from .runs import LOCK_FILE, atomic_path, file_sha256, is_temporary, read_json, remove_temporaries, run_lock, write_json

__all__ = [
    "RUNNER_PARAMETERS",
    "Stage",
    "SampleSpec",
    "StageResult",
    "check_parameters",
    "check_profile",
    "check_sample",
    "check_sample_name",
    "check_study",
    "kernel_environment",
    "resolved_parameters",
    "load_profile",
    "profile_names",
    "find_stages",
    "select_stages",
    "stage_key",
    "run_sample",
    "run_study",
    "StagePlan",
    "format_plan",
    "plan_study",
    "prepare_notebooks",
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
    defaults : dict
        ``{name: source text}`` of each parameter's default, as written in the
        ``parameters`` cell (e.g. ``"64"``, ``'"z"'``).
    """

    path: Path
    parameters: tuple[str, ...]
    scope: str
    defaults: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        """The notebook's file stem, e.g. ``01_otsu_baseline``."""
        return self.path.stem

    def default_values(self) -> dict[str, Any]:
        """The defaults that are Python literals, evaluated (``"64"`` -> 64); others are left out."""
        values = {}
        for name, text in self.defaults.items():
            try:
                values[name] = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue  # a name or an expression (ETHANOL_DENSITY_G_CM3): its type is unknown
        return values


def _declared_parameters(path: Path) -> dict[str, str]:
    with requires_extra("study"):
        import papermill

    return {name: str(info.get("default")) for name, info in papermill.inspect_notebook(str(path)).items()}


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
        defaults = _declared_parameters(path)
        if "run_dir" in defaults:
            scope = "sample"
        elif "runs_dir" in defaults:
            scope = "study"
        else:
            raise ValueError(f"{path} declares neither run_dir nor runs_dir in its parameters cell")
        stages.append(Stage(path=path, parameters=tuple(defaults), scope=scope, defaults=defaults))
    return stages


def select_stages(stages: Sequence[Stage], until: str | int | None = None) -> list[Stage]:
    """The stages up to and including the one numbered ``until``.

    Parameters
    ----------
    stages : sequence of Stage
        As :func:`find_stages` gives them, in order.
    until : str or int, optional
        A stage's number (``5``, ``"05"``) or name (``"05_step1_segment"``);
        None for every stage.

    Returns
    -------
    list of Stage
        The stages whose number is at most ``until``'s, in order.

    Raises
    ------
    ValueError
        If no stage has that number or name; the message lists the stages.
    """
    stages = list(stages)
    if until is None:
        return stages
    text = str(until).strip()
    by_name = {stage.name: stage.name[:2] for stage in stages}
    number = by_name.get(text, f"{int(text):02d}" if text.isdigit() else None)
    if number not in by_name.values():
        raise ValueError(
            f"until: no stage {until!r}; give a stage's number or name, one of: " + ", ".join(by_name)
        )
    return [stage for stage in stages if stage.name[:2] <= number]


#: Parameters the runner sets itself, per sample or for the study; a profile must not set them.
RUNNER_PARAMETERS = (
    "sample",
    "run_dir",
    "runs_dir",
    "samples",
    "failures",
    "scan_path",
    "reference_porosity",
    "voxel_size_um",
    "scan_shape",
    "scan_dtype",
    "scan_byte_order",
)


def _type_matches(value: Any, default: Any) -> bool:
    if default is None:
        return True  # None says nothing about the type
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def check_profile(values: Mapping[str, Any], stages: Sequence[Stage]) -> None:
    """Check a profile's keys and value types against the notebooks' ``parameters`` cells.

    The known keys are the union of the parameters the notebooks declare; a
    value's type must match the type of the default in a notebook that
    declares it (an int is accepted where the default is a float; a default of
    None or one that is not a literal accepts anything).

    Parameters
    ----------
    values : mapping
        The profile (see :func:`load_profile`); its ``profile`` key is its name.
    stages : sequence of Stage

    Raises
    ------
    ValueError
        For a key no notebook declares (the message names the nearest known
        key) or one the runner sets itself (:data:`RUNNER_PARAMETERS`).
    TypeError
        For a value whose type differs from the notebooks' default.
    """
    name = values.get("profile", "given")
    known: dict[str, list[tuple[Stage, Any]]] = {}
    for stage in stages:
        literal = stage.default_values()
        for param in stage.parameters:
            known.setdefault(param, []).append((stage, literal.get(param)))
    for key, value in values.items():
        if key == "profile":
            continue
        if key in RUNNER_PARAMETERS:
            raise ValueError(f"profile {name} sets {key!r}, which the runner sets for each sample; remove it")
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; no notebook declares it"
            raise ValueError(f"unknown key {key!r} in profile {name}{hint}")
        if not any(_type_matches(value, default) for _, default in known[key]):
            stage, default = known[key][0]
            raise TypeError(
                f"profile {name}: {key} must be of type {type(default).__name__} (its default in {stage.path.name} "
                f"is {default!r}), got {type(value).__name__} {value!r}"
            )


def resolved_parameters(stages: Sequence[Stage], values: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """Every parameter's value as the stages will see it: the notebook's default, overridden by the profile.

    Returns
    -------
    dict
        ``{name: (value, stage name)}`` with the first stage that declares the
        name; defaults that are not Python literals are left out.
    """
    out: dict[str, tuple[Any, str]] = {}
    for stage in stages:
        literal = stage.default_values()
        for param in stage.parameters:
            if param in out:
                continue
            if param in values:
                out[param] = (values[param], stage.name)
            elif param in literal:
                out[param] = (literal[param], stage.name)
    return out


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


def check_sample_name(name: Any) -> str:
    """Check that a sample name can name a run folder inside the runs folder.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If it is empty, contains a path separator or a control character, is
        ``.`` or ``..``, or starts with ``_`` (reserved for ``_study``) or
        ``.`` (hidden and temporary files).
    """
    if not isinstance(name, str):
        raise TypeError(f"a sample name must be a string, got {type(name).__name__} {name!r}")
    if not name or name in (".", "..") or name[0] in "._" or any(c in name for c in "/\\") or not name.isprintable():
        raise ValueError(
            f"sample name {name!r} cannot name a run folder: use letters, digits, '-' and '_', no path separators, "
            "not starting with '_' (reserved for _study) or '.'"
        )
    return name


@dataclass(frozen=True)
class SampleSpec:
    """A sample to run: a demo name, or a user's scan with optional reference porosity.

    Attributes
    ----------
    name : str
        Name of the sample and of its run folder (see :func:`check_sample_name`).
    scan_path : str or None
        A user's scan; None for a demo sample.
    reference_porosity : float or None
        A measured porosity (fraction, strictly between 0 and 1) for a user's scan.
    voxel_size_um : float or None
        Overrides the scan's metadata; micrometres, finite and positive.
    shape : tuple of int or None
        ``(z, y, x)`` of a raw scan file.
    dtype : str or None
        dtype of a raw scan file, e.g. ``"uint16"``.
    byte_order : str
        ``"little"`` or ``"big"``, for a raw scan file.

    Raises
    ------
    ValueError, TypeError
        On construction, for a value outside the ranges above.
    """

    name: str
    scan_path: str | None = None
    reference_porosity: float | None = None
    voxel_size_um: float | None = None
    shape: tuple[int, int, int] | None = None
    dtype: str | None = None
    byte_order: str = "little"

    def __post_init__(self) -> None:
        check_sample_name(self.name)
        if self.reference_porosity is not None:
            value = self.reference_porosity
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"reference porosity of {self.name} must be a number, got {value!r}")
            if not 0.0 < value < 1.0:
                raise ValueError(
                    f"reference porosity of {self.name} must be a fraction between 0 and 1 (e.g. 0.89), got {value}"
                )
        if self.voxel_size_um is not None:
            value = self.voxel_size_um
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"voxel size of {self.name} must be a number, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"voxel size of {self.name} must be a positive number of micrometres, got {value}")
        if self.byte_order not in ("little", "big"):
            raise ValueError(f"byte order of {self.name} must be 'little' or 'big', got {self.byte_order!r}")
        if self.scan_path is None and (self.shape is not None or self.dtype is not None):
            raise ValueError(f"shape and dtype describe a raw scan file; sample {self.name} has no scan_path")
        if self.shape is not None:
            shape = tuple(self.shape)
            if len(shape) != 3 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
                raise ValueError(f"shape of {self.name} must be three positive integers (z, y, x), got {self.shape!r}")
            object.__setattr__(self, "shape", shape)

    def parameters(self) -> dict[str, Any]:
        """The notebook parameters that describe this sample (a notebook gets those it declares)."""
        return {
            "sample": self.name,
            "scan_path": self.scan_path,
            "reference_porosity": self.reference_porosity,
            "voxel_size_um": self.voxel_size_um,
            "scan_shape": None if self.shape is None else list(self.shape),
            "scan_dtype": self.dtype,
            "scan_byte_order": self.byte_order,
        }

    def fingerprint(self) -> str:
        """Identity of the external input: the scan's path, size and modification time (and raw layout)."""
        if self.scan_path is None:
            return f"demo:{self.name}"
        stat = Path(self.scan_path).stat()
        raw = "" if self.shape is None else f":{self.shape}:{self.dtype}:{self.byte_order}"
        return f"scan:{Path(self.scan_path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}{raw}"


#: A scan up to this size is read in full by the checks before a study starts (every problem
#: :func:`foamlib.io.read_scan` finds is then found in seconds; streamed slab by slab, so never
#: held whole); a larger one only by its header.
FULL_CHECK_BYTES = 1 << 30


def _scan_shape(spec: SampleSpec) -> tuple[tuple[int, ...], str]:
    """Shape and dtype of a sample's scan, checked without starting a kernel (ScanError names the file)."""
    from .io import ScanError
    from .lazy import open_scan

    path = Path(spec.scan_path)
    if not path.exists():
        raise ScanError(f"scan {path} of sample {spec.name} does not exist")
    size = 0 if path.is_dir() else path.stat().st_size
    if path.is_dir() or size <= FULL_CHECK_BYTES:
        scan = open_scan(path, shape=spec.shape, dtype=spec.dtype, byte_order=spec.byte_order,
                         voxel_size_um=spec.voxel_size_um)
        scan.value_range()  # every check read_scan makes, one streamed pass
        return scan.shape, scan.dtype.name
    if spec.shape is not None:  # a raw file: its size must match the layout
        import numpy as np

        need = math.prod(spec.shape) * np.dtype(spec.dtype).itemsize
        if size != need:
            raise ScanError(f"{path} holds {size} bytes, but shape {spec.shape} of {spec.dtype} needs {need}")
        return spec.shape, str(np.dtype(spec.dtype))
    if path.suffix.lower() == ".npy":
        import numpy as np

        array = np.load(path, mmap_mode="r")
        return tuple(int(n) for n in array.shape), str(array.dtype)
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, dtype = tuple(int(n) for n in series.shape), str(series.dtype)
            end = max(o + c for page in tif.pages for o, c in zip(page.dataoffsets, page.databytecounts))
    except Exception as exc:  # noqa: BLE001 - tifffile raises many kinds; one message
        raise ScanError(f"{path} could not be read as a TIFF file ({type(exc).__name__}: {exc})") from exc
    if end > size:
        raise ScanError(f"{path} is truncated: its images need {end} bytes, the file has {size}")
    if len(shape) != 3:
        raise ScanError(f"{path} has shape {shape}; expected a greyscale (z, y, x) stack")
    return shape, dtype


def _limits(resolved: Mapping[str, tuple[Any, str]]) -> list[tuple[str, int, str]]:
    """``(parameter, smallest side, why)`` that a scan must meet for these parameters."""
    limits = []
    for param, why in (("gan_patch_size", "the GAN's patches are cut in all three directions"),
                       ("cyclegan_crop", "the CycleGAN crops real slices in all three directions")):
        if param in resolved and isinstance(resolved[param][0], int):
            limits.append((param, resolved[param][0], why))
    space = resolved.get("search_space", (None, ""))[0]
    if isinstance(space, Mapping) and space.get("levels"):
        levels = max(space["levels"]) if isinstance(space["levels"], (list, tuple)) else space["levels"]
        if isinstance(levels, int) and levels > 1:
            limits.append(("search_space", 2 ** (levels - 1), f"a {levels}-level U-Net pools {levels - 1} times"))
    return limits


def check_parameters(resolved: Mapping[str, tuple[Any, str]], profile: str = "given") -> None:
    """Check that the resolved parameters fit each other (crop sizes, network depths).

    Raises
    ------
    ValueError
        Naming both parameters and their stages, e.g. a CycleGAN crop larger
        than the GAN's patches it is cut from, a ``wall_fraction`` that is not
        one of ``sweep_fractions``, or a ``generator`` that is not one of
        :data:`foamlib.fitting.GENERATORS`.
    """
    generator = resolved.get("generator", (None, ""))
    if generator[0] is not None:
        from .checks import check_choice
        from .fitting import GENERATORS

        try:
            check_choice("generator", generator[0], GENERATORS)
        except ValueError as exc:
            raise ValueError(f"profile {profile}: {exc} ({generator[1]})") from None
    crop = resolved.get("cyclegan_crop", (None, ""))
    patch = resolved.get("gan_patch_size", (None, ""))
    if isinstance(crop[0], int) and isinstance(patch[0], int) and crop[0] > patch[0]:
        raise ValueError(
            f"profile {profile}: cyclegan_crop = {crop[0]} ({crop[1]}) is larger than gan_patch_size = {patch[0]} "
            f"({patch[1]}), the binary patches it crops"
        )
    main, sweep = resolved.get("wall_fraction", (None, "")), resolved.get("sweep_fractions", (None, ""))
    if isinstance(main[0], (int, float)) and isinstance(sweep[0], (list, tuple)) and main[0] not in sweep[0]:
        raise ValueError(
            f"profile {profile}: wall_fraction = {main[0]} ({main[1]}) must be one of sweep_fractions = {sweep[0]} "
            f"({sweep[1]}): the step-2 U-Net is the sweep's U-Net of that fraction"
        )
    levels = resolved.get("cyclegan_levels", (None, ""))
    if isinstance(crop[0], int) and isinstance(levels[0], int) and crop[0] <= 2 ** (levels[0] - 1):
        raise ValueError(
            f"profile {profile}: cyclegan_crop = {crop[0]} ({crop[1]}) must be more than {2 ** (levels[0] - 1)} "
            f"for a generator with cyclegan_levels = {levels[0]}"
        )


def check_sample(spec: SampleSpec, resolved: Mapping[str, tuple[Any, str]], profile: str = "given") -> None:
    """Check a sample before any kernel starts: its scan reads, and its shape fits the parameters.

    A user's scan is read (in full up to :data:`FULL_CHECK_BYTES`, else its
    header) and its shape checked against the parameters that cut it:
    ``gan_patch_size`` and ``cyclegan_crop`` (every side at least that) and the
    deepest U-Net of ``search_space`` (every side at least ``2 ** (levels - 1)``).
    A demo sample's shape is the cube of the resolved ``size``.

    Parameters
    ----------
    spec : SampleSpec
    resolved : mapping
        :func:`resolved_parameters` of the stages and the profile.
    profile : str
        The profile's name, for messages.

    Raises
    ------
    foamlib.io.ScanError
        If the scan cannot be read or is unusable (the message names the file).
    ValueError
        If the scan is smaller than a limit (the message names the file, the
        parameter, its stage and the limit).
    """
    if spec.scan_path is not None:
        shape, _ = _scan_shape(spec)
        source = f"scan {spec.scan_path}"
    elif isinstance(resolved.get("size", (None,))[0], int):
        shape = (resolved["size"][0],) * 3
        source = f"demo sample {spec.name} (size = {shape[0]})"
    else:
        return
    for param, need, why in _limits(resolved):
        if min(shape) < need:
            raise ValueError(
                f"{source} is {' x '.join(map(str, shape))} voxels, but {param} = {resolved[param][0]} "
                f"({resolved[param][1]}, profile {profile}) needs every side to be at least {need}: {why}; "
                f"use a larger scan or a profile with a smaller {param}"
            )


@dataclass(frozen=True)
class StageResult:
    """Outcome of one stage for one sample.

    Attributes
    ----------
    sample, stage : str
    status : str
        ``"ran"``, ``"skipped"`` (key unchanged, outputs verified), ``"failed"``
        or ``"not run"`` (a study-wide stage with no sample to read).
    seconds : float
        Wall-clock time of this invocation (0 for a skipped stage).
    message : str
        For a failed stage, one line naming the notebook cell that failed; for
        a skipped one, ``"prose refreshed"`` where edited markdown cells were
        copied into its page; for a stage that ran although its key was
        unchanged, why (``"models/step1.pt changed since the stage wrote it"``).
    notebook : str
        The executed notebook: the page of a stage that ran or was skipped, the
        executed copy up to the failing cell of a failed one (``""`` where
        there is none).
    """

    sample: str
    stage: str
    status: str
    seconds: float
    message: str = ""
    notebook: str = ""


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
    with requires_extra("study"):
        import nbformat

    nb = nbformat.read(path, as_version=4)
    _label_cells(nb, sample)
    nbformat.write(nb, path)


def _refresh_prose(source: Path, output: Path, sample: str, *, write: bool = True) -> bool | None:
    """Copy edited markdown cells of a stage's notebook into its executed page, matched by cell id.

    The stage key covers code cells only, so a prose edit does not re-run a
    stage; this puts the new prose on the book page instead.

    Returns
    -------
    bool or None
        True if the page was rewritten (atomically; with ``write=False``: would
        be), False if its prose was already current, None if the markdown
        cells differ in ids or order (one was added, removed or moved): the
        stage must run again.
    """
    with requires_extra("study"):
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
    if not write:
        return True
    for a, b in zip(new, old):
        b.source = a.source
    with atomic_path(output) as tmp:
        nbformat.write(page, tmp)
    return True


#: Folders and files of a run folder that are the runner's, not a stage's outputs.
_RUNNER_ENTRIES = frozenset({"notebooks", ".stages", "failed", "lab", "summary.json", LOCK_FILE})


def _snapshot(run_dir: Path) -> dict[str, tuple[int, int, int]]:
    """``{relative path: (size, mtime_ns, inode)}`` of the stage outputs in a run folder."""
    out: dict[str, tuple[int, int, int]] = {}
    for root, dirs, files in os.walk(run_dir):
        top = Path(root) == run_dir
        if top:
            dirs[:] = [d for d in dirs if d not in _RUNNER_ENTRIES]
        for name in files:
            if (top and name in _RUNNER_ENTRIES) or is_temporary(name):
                continue
            path = Path(root, name)
            try:
                st = path.stat()
            except FileNotFoundError:  # removed while we looked
                continue
            out[path.relative_to(run_dir).as_posix()] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def _digest(outputs: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(outputs, sort_keys=True).encode()).hexdigest()


def _verify_outputs(run_dir: Path, outputs: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why a stage's recorded outputs do not verify (size first, then SHA-256), or None if they all do."""
    for rel, expected in sorted(outputs.items()):
        path = run_dir / rel
        if not path.is_file():
            return f"{rel} is missing"
        if path.stat().st_size != expected.get("size") or file_sha256(path) != expected.get("sha256"):
            return f"{rel} changed since the stage wrote it"
    return None


def _disown(run_dir: Path, stage_name: str, paths: set[str]) -> None:
    """Remove ``paths`` (rewritten or removed by ``stage_name``) from the other stages' records.

    A file that a later stage rewrites is that stage's output from then on, so
    the earlier stage is not re-run for a change it did not make.
    """
    if not paths:
        return
    for record in (run_dir / ".stages").glob("*.json"):
        if record.stem == stage_name:
            continue
        try:
            data = read_json(record)
        except ValueError:
            continue
        outputs = data.get("outputs")
        if isinstance(outputs, dict) and paths & outputs.keys():
            data["outputs"] = {k: v for k, v in outputs.items() if k not in paths}
            write_json(record, data)


def _cache_check(stage: Stage, run_dir: Path, key: str, *, label: str, force: bool,
                 write: bool) -> tuple[bool, str, str]:
    """Whether a stage is skipped: its key is unchanged, its page exists and its outputs verify.

    Returns
    -------
    skip : bool
    reason : str
        For a skipped stage ``"prose refreshed"`` where edited markdown was (with
        ``write=False``: would be) copied into its page, else ``""``; for a stage
        that runs although its key is unchanged, why (``"models/step1.pt is
        missing"``); ``""`` where the key changed or there is no record.
    digest : str
        The recorded outputs' digest of a skipped stage, else ``""``.
    """
    output = run_dir / "notebooks" / stage.path.name
    record = run_dir / ".stages" / f"{stage.name}.json"
    if force or not record.is_file() or not output.is_file():
        return False, "", ""
    try:
        data = read_json(record)
    except ValueError:
        return False, "", ""
    if data.get("key") != key:
        return False, "", ""
    outputs = data.get("outputs")
    if not isinstance(outputs, dict):
        return False, "its record predates output checks", ""
    problem = _verify_outputs(run_dir, outputs)
    if problem is not None:
        return False, problem, ""
    refreshed = _refresh_prose(stage.path, output, label, write=write)
    if refreshed is None:
        return False, "its markdown cells were added, removed or moved", ""
    return True, "prose refreshed" if refreshed else "", str(data.get("outputs_digest", ""))


def _run_stage(
    stage: Stage,
    run_dir: Path,
    key: str,
    params: Mapping[str, Any],
    *,
    sample: str,
    label: str,
    force: bool,
    env: Mapping[str, str] | None = None,
    on_stage_start: Callable[[Stage], None] | None = None,
    notify: Callable[[str], None] | None = None,
    progress_every: float = 0.0,
) -> tuple[StageResult, str]:
    """Skip a stage whose key is unchanged, whose page exists and whose outputs verify; else execute it.

    ``sample`` names the result (a sample, or ``"_study"``); ``label`` is what
    the page's title and figure names get (:func:`_label_cells`). A successful
    run writes ``run_dir/.stages/<stage>.json`` with the key and the size and
    SHA-256 of every file the stage wrote or changed (its outputs), its wall
    time (``seconds``), the kernel's peak resident memory (``peak_memory_bytes``)
    and CPU time (``cpu_seconds``; both :class:`_StageMonitor`) and the
    parameters it got. A failed run keeps the
    executed notebook as ``run_dir/failed/<notebook>``. While the notebook
    runs, ``notify`` gets a progress line every ``progress_every`` seconds
    (0: none) from the bars of :func:`foamlib.progress.progress_bar`.

    Returns
    -------
    result : StageResult
    outputs_digest : str
        Hash of the outputs' record (chained into the next stage's key), or
        ``""`` for a failed stage.
    """
    output = run_dir / "notebooks" / stage.path.name
    record = run_dir / ".stages" / f"{stage.name}.json"
    failed_copy = run_dir / "failed" / stage.path.name
    skip, reason, digest = _cache_check(stage, run_dir, key, label=label, force=force, write=True)
    if skip:
        return StageResult(sample, stage.name, "skipped", 0.0, reason, str(output)), digest
    if reason and notify is not None:
        notify(f"{sample}: {stage.name} re-runs: {reason}")
    record.unlink(missing_ok=True)
    if on_stage_start is not None:
        on_stage_start(stage)
    before = _snapshot(run_dir)
    start = time.perf_counter()
    log_path = run_dir / ".stages" / f"{stage.name}.kernel.log"
    progress_path = run_dir / ".stages" / f"{stage.name}.progress.jsonl"
    env = {**(env or {}), PROGRESS_FILE_VARIABLE: str(progress_path), PROGRESS_STAGE_VARIABLE: stage.name}
    monitor = _StageMonitor(progress_path, sample=sample, stage=stage.name, every=progress_every, say=notify)
    try:
        with monitor:
            _execute(stage, output, params, sample=label, failed_copy=failed_copy, env=env, log_path=log_path,
                     monitor=monitor)
    except Exception as exc:  # noqa: BLE001 - a failed stage is reported, the other samples go on
        notebook = str(failed_copy) if failed_copy.is_file() else ""
        return StageResult(sample, stage.name, "failed", time.perf_counter() - start, _failure_line(exc, stage.path),
                           notebook), ""
    seconds = time.perf_counter() - start
    failed_copy.unlink(missing_ok=True)
    after = _snapshot(run_dir)
    changed = {rel for rel, stat in after.items() if before.get(rel) != stat}
    _disown(run_dir, stage.name, changed | (before.keys() - after.keys()))
    outputs = {rel: {"size": after[rel][0], "sha256": file_sha256(run_dir / rel)} for rel in sorted(changed)}
    digest = _digest(outputs)
    write_json(record, {"key": key, "seconds": seconds, "peak_memory_bytes": monitor.peak_bytes or None,
                        "cpu_seconds": monitor.cpu_seconds or None,
                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "parameters": _jsonable(params),
                        "outputs": outputs, "outputs_digest": digest})
    return StageResult(sample, stage.name, "ran", seconds, reason, str(output)), digest


def _failure_line(exc: BaseException, notebook: Path) -> str:
    cell = getattr(exc, "exec_count", None)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", str(exc))
    where = f"cell [{cell}]" if cell is not None else "a cell"
    evalue = " ".join(str(evalue).split())
    return f"{notebook.name}: {where} raised {ename}: {evalue}"


def _kernel_manager(env: Mapping[str, str], log_path: Path, monitor: _StageMonitor | None = None):
    """A kernel manager class whose kernels get ``env`` and write their own stderr to ``log_path``.

    A kernel's process stderr carries only the kernel's own log (cell output
    goes through Jupyter's messages): its "running over TCP without
    encryption" warning, and the socket errors of a kernel shut down mid-cell,
    belong in a log file, not on the terminal. A ``monitor`` learns the
    kernel's process id when it starts and takes a last memory reading before
    it shuts down.
    """
    with requires_extra("study"):
        from jupyter_client.manager import AsyncKernelManager

    class StageKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw["env"] = {**kw.get("env", os.environ), **env}
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "wb") as log:  # the kernel gets its own copy of the descriptor
                kw["stderr"] = log
                await super()._async_launch_kernel(kernel_cmd, **kw)
            if monitor is not None:
                monitor.watch(getattr(self.provisioner, "pid", None))

        async def shutdown_kernel(self, now: bool = False, restart: bool = False):
            if monitor is not None:
                monitor.sample_memory()
            await super().shutdown_kernel(now=now, restart=restart)

    return StageKernelManager


#: Seconds between two progress lines of a running stage (default of ``progress_every``).
PROGRESS_EVERY_S = 10.0
#: A stage that reports no progress for this many progress intervals gets a line that it still runs.
_QUIET_INTERVALS = 6


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _bar_text(record) -> str:
    count = f"{record.n:g}" if record.total is None else f"{record.n:g}/{record.total:g}"
    return f"{record.desc} {count} {record.unit} [{_clock(record.elapsed)}]".replace("  ", " ").strip()


class _StageMonitor:
    """Follow a running stage's kernel: its progress file (printed every ``every`` s) and its memory.

    A thread reads the JSON lines that :func:`foamlib.progress.progress_bar`
    appends to ``progress_path`` and, every ``every`` seconds, prints one line
    with the stage's elapsed time and the bars still open (``foam89:
    04_unet_step1 1:05: search 3/9 trial [0:58], epoch 2/3 40/120 batch
    [0:04]``); ``every`` = 0 prints nothing. It also samples the resident
    memory of the kernel and its child processes (psutil) once a second, and
    the kernel's own high-water mark (``VmHWM`` in ``/proc``, Linux), whose
    maximum is :attr:`peak_bytes`, and the CPU time of the kernel and its
    children, :attr:`cpu_seconds` (at the last reading, just before the kernel
    shuts down).
    """

    def __init__(self, progress_path: Path, *, sample: str, stage: str, every: float,
                 say: Callable[[str], None] | None) -> None:
        self.progress_path = progress_path
        self.sample, self.stage, self.every, self.say = sample, stage, every, say
        self.peak_bytes = 0
        self.cpu_seconds = 0.0
        self._pid: int | None = None
        self._offset = 0
        self._bars: dict[str, Any] = {}
        self._changed = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name=f"progress {sample} {stage}", daemon=True)

    def __enter__(self) -> _StageMonitor:
        self.progress_path.parent.mkdir(parents=True, exist_ok=True)
        self.progress_path.unlink(missing_ok=True)
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample_memory()
        self.progress_path.unlink(missing_ok=True)

    def watch(self, pid: int | None) -> None:
        """Start sampling the memory of the kernel process ``pid``."""
        self._pid = pid
        self.sample_memory()

    def sample_memory(self) -> None:
        """Take one reading of the kernel's memory (resident set of it and its children, and its peak)."""
        if self._pid is None:
            return
        try:
            with requires_extra("study"):  # without it: no resident-set readings, the peak from /proc below
                import psutil

            process = psutil.Process(self._pid)
            children = process.children(recursive=True)
            total = process.memory_info().rss + sum(child.memory_info().rss for child in children)
            times = process.cpu_times()
            cpu = times.user + times.system + times.children_user + times.children_system + sum(
                child.cpu_times().user + child.cpu_times().system for child in children
            )
        except Exception:  # noqa: BLE001 - the kernel may be gone; psutil raises several kinds
            total, cpu = 0, 0.0
        peak = 0
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{self._pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
        with self._lock:
            self.peak_bytes = max(self.peak_bytes, total, peak)
            self.cpu_seconds = max(self.cpu_seconds, cpu)

    def _read(self) -> None:
        from .progress import read_records

        records, self._offset = read_records(self.progress_path, self._offset)
        for record in records:
            self._changed = True
            if record.closed:
                self._bars.pop(record.bar, None)
            else:
                self._bars[record.bar] = record

    def line(self) -> str:
        """The stage's progress line now."""
        elapsed = _clock(time.monotonic() - self._start)
        bars = ", ".join(_bar_text(r) for r in self._bars.values())
        return f"{self.sample}: {self.stage} {elapsed}: {bars or 'running'}"

    def _loop(self) -> None:
        last_line = time.monotonic()
        quiet = 0
        while not self._stop.wait(1.0):
            self.sample_memory()
            self._read()
            if self.every <= 0 or self.say is None or time.monotonic() - last_line < self.every:
                continue
            last_line = time.monotonic()
            quiet = 0 if self._changed else quiet + 1
            if self._changed or quiet % _QUIET_INTERVALS == 0:
                self.say(self.line())
            self._changed = False


def _execute(
    stage: Stage,
    output: Path,
    parameters: Mapping[str, Any],
    *,
    sample: str,
    failed_copy: Path,
    env: Mapping[str, str] | None,
    log_path: Path,
    monitor: _StageMonitor | None = None,
) -> None:
    with requires_extra("study"):
        import papermill

    with atomic_path(output) as tmp:
        try:
            papermill.execute_notebook(
                str(stage.path),
                str(tmp),
                parameters=dict(parameters),
                cwd=str(stage.path.parent),
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
                kernel_manager_class=_kernel_manager(dict(env or {}), log_path, monitor),
            )
        except Exception:
            if tmp.is_file():  # papermill wrote the notebook up to the failing cell: keep it to look at
                failed_copy.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, failed_copy)
            raise
        _label_for_sample(tmp, sample)


def kernel_environment(threads: int) -> dict[str, str]:
    """Environment variables for a stage's kernel that runs ``threads`` threads.

    The thread counts of OpenMP, MKL, OpenBLAS and numba (torch reads
    ``OMP_NUM_THREADS``), and ``OMP_WAIT_POLICY=PASSIVE`` so that idle OpenMP
    threads sleep instead of spinning: on a machine shared with other work,
    spinning threads take the cores the working ones need and slow a study by
    an order of magnitude. A wait policy already set in the environment is kept.
    """
    env = {var: str(threads) for var in _THREAD_VARIABLES}
    env["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    return env


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` as JSON values (what the stage record keeps; a value JSON cannot hold becomes its text)."""
    return json.loads(json.dumps(dict(params), default=str))


def _chain(key: str, digest: str) -> str:
    return hashlib.sha256(f"{key}:{digest}".encode()).hexdigest()


def run_sample(
    spec: SampleSpec,
    stages: Sequence[Stage],
    profile: Mapping[str, Any],
    *,
    runs_dir: str | os.PathLike = "runs",
    force: bool = False,
    report: Callable[[StageResult], None] | None = None,
    on_stage_start: Callable[[Stage], None] | None = None,
    threads: int | Callable[[], int] | None = None,
    notify: Callable[[str], None] | None = None,
    lock: bool = True,
    progress_every: float = 0.0,
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
        (not for skipped stages).
    threads : int or callable, optional
        Threads for each executed stage's kernel (:func:`kernel_environment`),
        or a function that says how many when the stage starts; default: the
        cores of this machine.
    notify : callable, optional
        Called with a line of text where a stage re-runs although its key is
        unchanged (an output is missing or damaged), and with the progress
        lines of a running stage.
    lock : bool
        Hold the run folder's lock (:func:`foamlib.runs.run_lock`) and remove
        the temporary files interrupted runs left; False where the caller
        holds it already.
    progress_every : float
        Seconds between two progress lines of a running stage (passed to
        ``notify``); 0 for none.

    Returns
    -------
    list of StageResult

    Raises
    ------
    foamlib.runs.RunFolderBusy
        If another process holds the run folder's lock.
    """
    run_dir = (Path(runs_dir) / spec.name).resolve()
    if not lock:
        return _run_sample_stages(spec, stages, profile, run_dir, force, report, on_stage_start, threads, notify,
                                  progress_every)
    with run_lock(run_dir, what=f"foamlib study run of {spec.name}"):
        remove_temporaries(run_dir)
        return _run_sample_stages(spec, stages, profile, run_dir, force, report, on_stage_start, threads, notify,
                                  progress_every)


def _run_sample_stages(spec, stages, profile, run_dir, force, report, on_stage_start, threads, notify,
                       progress_every=0.0):
    library = _foamlib_source_hash()
    previous = spec.fingerprint()
    results: list[StageResult] = []
    values = {**profile, **spec.parameters(), "run_dir": str(run_dir)}
    for stage in (s for s in stages if s.scope == "sample"):
        params = {k: values[k] for k in stage.parameters if k in values}
        key = stage_key(stage, params, previous=previous, library=library)
        count = threads() if callable(threads) else (cpu_threads() if threads is None else threads)
        result, digest = _run_stage(stage, run_dir, key, params, sample=spec.name, label=spec.name, force=force,
                                    env=kernel_environment(count), on_stage_start=on_stage_start, notify=notify,
                                    progress_every=progress_every)
        previous = _chain(key, digest)  # a consumer re-runs when its producer's outputs change
        results.append(result)
        if report is not None:
            report(result)
        if result.status == "failed":
            break
    failure = next((r for r in results if r.status == "failed"), None)
    write_summary(run_dir, failure=failure)
    return results


def write_summary(run_dir: str | os.PathLike, *, failure: StageResult | None = None) -> Path:
    """Write :func:`summarize` of a run folder to its ``summary.json`` (atomically)."""
    return write_json(Path(run_dir) / "summary.json", summarize(run_dir, failure=failure))


def summarize(run_dir: str | os.PathLike, *, failure: StageResult | None = None) -> dict[str, Any]:
    """Merge the sample record and every stage's ``metrics.json`` into one dict.

    Parameters
    ----------
    run_dir : path-like
    failure : StageResult, optional
        The stage that failed in the run that writes the summary.

    Keys (porosities as fractions):

    ``status``
        ``"complete"`` (every stage ran or was skipped) or ``"failed"``.
    ``failure``
        None, or ``{"stage", "message", "notebook"}``: the failed stage, its
        one-line error and the executed copy of its notebook.
    ``sample``, ``reference_porosity``, ``reference_kind``
        From ``sample.json``.
    ``porosity``
        ``{method: porosity}`` from every stage whose metrics hold a porosity
        (:class:`~foamlib.metrics.OtsuMetrics` and
        :class:`~foamlib.metrics.SegmentationMetrics`: ``otsu``, ``step1``,
        ``step2``).
    ``fid``, ``kid``
        ``{"step1", "step2", "encoder"}`` and ``{"step1", "step2"}``, from the
        similarity stage (:class:`~foamlib.metrics.SimilarityMetrics`).
    ``unet_test``
        ``{"step1": {...}, "step2": {...}}``: test metrics of each step's U-Net
        (:class:`~foamlib.metrics.UNetMetrics`, ``test``).
    ``stages``
        Every stage's metrics (:data:`foamlib.metrics.STAGE_METRICS`, in the
        study's order), each as its class writes it.
    ``damaged``
        ``{stage: message}`` for a ``metrics.json`` that could not be read or
        whose layout does not match its class; such a stage is left out of the
        other keys (the summary of a damaged folder is still written).
    ``seconds``
        Wall-clock time of each stage's last successful run.
    ``agreement``
        None until both steps have segmented the scan; then
        :meth:`foamlib.agreement.StepAgreement.to_dict` of
        :func:`foamlib.agreement.check_runs` (``disagree`` and a ``message``
        that quotes the scan's densitometric estimate where it has one), or
        ``{"error": ...}`` if that check could not be made.
    """
    from .metrics import STAGE_METRICS, OtsuMetrics, SegmentationMetrics, SimilarityMetrics, UNetMetrics
    from .runfolder import RunFolder

    run = RunFolder(run_dir)
    summary: dict[str, Any] = {
        "sample": run.path.name,
        "status": "complete" if failure is None else "failed",
        "failure": None if failure is None else {
            "stage": failure.stage, "message": failure.message, "notebook": failure.notebook or None,
        },
        "reference_porosity": None,
        "porosity": {},
    }
    if (run.path / "sample.json").is_file():
        sample = read_json(run.path / "sample.json")
        summary["reference_porosity"] = sample.get("reference_porosity")
        summary["reference_kind"] = sample.get("reference_kind")
    stages: dict[str, Any] = {}
    unet_test: dict[str, Any] = {}
    damaged: dict[str, str] = {}
    for name in STAGE_METRICS:
        if not run.metrics_file(name).is_file():
            continue
        try:
            metrics = run.metrics(name)
        except (OSError, ValueError) as exc:  # MetricsError, or JSON that does not parse
            damaged[name] = f"{type(exc).__name__}: {exc}"
            continue
        stages[name] = metrics.to_json()
        if isinstance(metrics, (OtsuMetrics, SegmentationMetrics)):
            summary["porosity"][name] = metrics.porosity
        elif isinstance(metrics, SimilarityMetrics):
            summary["fid"], summary["kid"] = metrics.fid.to_json(), metrics.kid.to_json()
        elif isinstance(metrics, UNetMetrics):
            unet_test[UNetMetrics.steps[name]] = metrics.test
    summary["unet_test"] = unet_test
    summary["stages"] = stages
    summary["damaged"] = damaged
    summary["seconds"] = {
        p.stem: read_json(p).get("seconds") for p in sorted((run.path / ".stages").glob("*.json"))
    }
    summary["agreement"] = _agreement(run.path, summary["porosity"])
    return summary


def _agreement(run_dir: Path, porosity: Mapping[str, Any]) -> dict[str, Any] | None:
    """:func:`foamlib.agreement.check_runs` of a run folder as a dict, None before both steps segmented the scan."""
    from .agreement import check_runs
    from .runfolder import RunFolder

    run = RunFolder(run_dir)
    if not {"step1", "step2"} <= set(porosity) or not run.step1_seg.is_file():
        return None
    try:
        return check_runs(run_dir).to_dict()
    except (OSError, ValueError) as exc:  # a damaged folder: say so in the summary rather than stop it
        return {"error": f"{type(exc).__name__}: {exc}"}


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
        against the reference where there is one. A sample whose last run
        failed is marked in its row (``foam99 (failed at 04_unet_step1)``) and
        listed below the table with the error and the executed notebook; a
        sample whose step 1 and step 2 disagree by more than their spread
        (``summary.json``'s ``agreement``) is listed with a warning.

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
        failure = s.get("failure") if s.get("status") == "failed" else None
        name = s["sample"] if not failure else f"{s['sample']} (failed at {failure.get('stage')})"
        cells = [name, "–" if ref is None else f"{100 * ref:.2f} % ({s.get('reference_kind') or 'given'})"]
        for m in methods:
            value = s.get("porosity", {}).get(m)
            if value is None:
                cells.append("–")
            elif ref is None:
                cells.append(f"{100 * value:.2f} %")
            else:
                cells.append(f"{100 * value:.2f} % ({100 * (value - ref):+.2f} pp)")
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        f"{s['sample']} failed at {s['failure'].get('stage')}: {s['failure'].get('message')}"
        + (f" (executed notebook: {s['failure']['notebook']})" if s["failure"].get("notebook") else "")
        for s in summaries
        if s.get("status") == "failed" and isinstance(s.get("failure"), Mapping)
    ]
    for s in summaries:
        agreement = s.get("agreement")
        if isinstance(agreement, Mapping) and agreement.get("disagree"):
            notes.append(f"The steps disagree on {s['sample']}: {agreement.get('message')}")
        elif isinstance(agreement, Mapping) and agreement.get("error"):
            notes.append(f"{s['sample']}: the steps could not be compared ({agreement['error']})")
    if notes:
        lines += [""] + notes
    return "\n".join(lines)


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class StagePlan:
    """What :func:`run_study` would do with one stage, and what it would cost.

    Attributes
    ----------
    sample : str
        The sample, or ``"_study"`` for a study-wide stage.
    stage : str
    action : str
        ``"run"`` or ``"skip"``, decided by the runner's own checks (the
        stage's key and its recorded outputs).
    reason : str
        Why a stage runs (``"not run before"``, ``"it failed in the last
        run"``, ``"its parameters changed (epochs: 2 -> 12)"``, ``"its notebook,
        its inputs or foamlib changed"``, ``"an earlier stage runs"``,
        ``"models/step1.pt is missing"``, ``"--force"``); ``""`` or ``"prose
        refreshed"`` for a skip.
    cost : foamlib.costs.Cost or None
        Estimated wall time and peak memory of a stage that runs: this
        sample's own record where the stage last ran with the same parameters,
        else :func:`foamlib.costs.estimate`; None for a skipped stage and for a
        stage the cost model does not know.
    """

    sample: str
    stage: str
    action: str
    reason: str
    cost: Any = None


def _recorded_cost(run_dir: Path, stage: Stage, params: Mapping[str, Any]):
    from .costs import Cost

    path = run_dir / ".stages" / f"{stage.name}.json"
    try:
        data = read_json(path) if path.is_file() else {}
    except ValueError:
        return None
    if data.get("parameters") != _jsonable(params) or not data.get("seconds") or not data.get("peak_memory_bytes"):
        return None
    return Cost(seconds=float(data["seconds"]), peak_memory_bytes=float(data["peak_memory_bytes"]), basis="recorded")


def _what_changed(record: Path, params: Mapping[str, Any]) -> str:
    """Why a recorded stage's key changed: the parameters that differ, else its notebook, inputs or foamlib."""
    try:
        old = read_json(record).get("parameters")
    except ValueError:
        old = None
    if not isinstance(old, dict):
        return "its notebook, parameters, inputs or foamlib changed"
    new = _jsonable(params)

    def text(values: Mapping[str, Any], key: str) -> str:
        return repr(values[key]) if key in values else "the notebook's default"

    changed = [f"{k}: {text(old, k)} -> {text(new, k)}" for k in sorted(old.keys() | new.keys())
               if k not in old or k not in new or old[k] != new[k]]
    if changed:
        return "its parameters changed (" + ", ".join(changed) + ")"
    return "its notebook, its inputs or foamlib changed"


def _plan_stage(stage, run_dir, key, params, *, sample, label, force, running, estimate):
    """``(StagePlan, outputs digest or None)`` of one stage; the digest is None where the stage runs."""
    if running:
        skip, reason, digest = False, "an earlier stage runs", ""
    elif force:
        skip, reason, digest = False, "--force", ""
    else:
        skip, reason, digest = _cache_check(stage, run_dir, key, label=label, force=False, write=False)
        if not skip and not reason:
            if (run_dir / ".stages" / f"{stage.name}.json").is_file():
                reason = _what_changed(run_dir / ".stages" / f"{stage.name}.json", params)
            elif (run_dir / "failed" / stage.path.name).is_file():
                reason = "it failed in the last run"
            else:
                reason = "not run before"
    if skip:
        return StagePlan(sample, stage.name, "skip", reason), digest
    cost = _recorded_cost(run_dir, stage, params) or estimate(stage.name, params)
    return StagePlan(sample, stage.name, "run", reason, cost), None


def plan_study(
    samples: Sequence[SampleSpec],
    *,
    profile: str | os.PathLike | Mapping[str, Any] = "demo",
    notebooks_dir: str | os.PathLike = "notebooks",
    runs_dir: str | os.PathLike = "runs",
    jobs: int | None = None,
    force: bool = False,
    until: str | int | None = None,
) -> list[StagePlan]:
    """What :func:`run_study` would run or skip, with estimated time and peak memory; no kernel starts.

    The same checks as :func:`run_study` come first (:func:`check_study`);
    then each stage's key is computed as the runner does and its record and
    outputs verified (nothing is written, no lock is taken). Once a stage of a
    sample runs, every later one runs too (its inputs change). The study-wide
    stages run when any sample's stage runs.

    Parameters
    ----------
    samples, profile, notebooks_dir, runs_dir, jobs, force, until
        As for :func:`run_study`.

    Returns
    -------
    list of StagePlan
        Every stage of every sample in order, then the study-wide stages.

    Raises
    ------
    ValueError, TypeError
        From :func:`check_study`.
    """
    from .costs import estimate

    values = dict(profile) if isinstance(profile, Mapping) else load_profile(profile)
    stages = find_stages(notebooks_dir)
    check_study(samples, values, stages, jobs=jobs)
    stages = select_stages(stages, until)
    runs_dir = Path(runs_dir)
    library = _foamlib_source_hash()
    resolved = {k: v for k, (v, _) in resolved_parameters(stages, values).items()}
    plans: list[StagePlan] = []
    for spec in samples:
        run_dir = (runs_dir / spec.name).resolve()
        if spec.scan_path is not None:
            shape = _scan_shape(spec)[0]
        else:
            shape = (int(resolved.get("size", 0) or 0),) * 3
        every = {**values, **spec.parameters(), "run_dir": str(run_dir)}  # what the runner passes
        previous, running = spec.fingerprint(), False
        for stage in (s for s in stages if s.scope == "sample"):
            params = {k: every[k] for k in stage.parameters if k in every}
            key = stage_key(stage, params, previous=previous, library=library)
            plan, digest = _plan_stage(
                stage, run_dir, key, params, sample=spec.name, label=spec.name, force=force, running=running,
                estimate=lambda name, p: estimate(name, {**resolved, **p}, scan_shape=shape))
            running = running or digest is None
            previous = _chain(key, digest or "")
            plans.append(plan)
    study_stages = [s for s in stages if s.scope == "study"]
    if study_stages:
        names = [s.name for s in samples]
        run_dir = (runs_dir / "_study").resolve()
        running = any(p.action == "run" for p in plans)
        records = {
            name: sorted(
                (p.stem, read_json(p).get("key", ""), read_json(p).get("outputs_digest", ""))
                for p in (runs_dir / name / ".stages").glob("*.json")
            )
            for name in names
        }
        previous = json.dumps({"records": records, "failures": {}}, sort_keys=True)
        for stage in study_stages:
            params = {**values, "runs_dir": str(runs_dir.resolve()), "samples": names, "failures": {}}
            params = {k: params[k] for k in stage.parameters if k in params}
            key = stage_key(stage, params, previous=previous, library=library)
            plan, digest = _plan_stage(
                stage, run_dir, key, params, sample="_study", label="all samples", force=force, running=running,
                estimate=lambda name, p: estimate(name, {**resolved, **values, **p}, scan_shape=(0, 0, 0),
                                                  samples=len(names)))
            running = running or digest is None
            previous = _chain(key, digest or "")
            plans.append(plan)
    return plans


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _gigabytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def format_plan(plans: Sequence[StagePlan], *, jobs: int = 1) -> str:
    """The plan of :func:`plan_study` as text: a table per sample, its totals, and the study's.

    Parameters
    ----------
    plans : sequence of StagePlan
    jobs : int
        Samples run at once (for the study's peak memory).

    Returns
    -------
    str
        One line per stage (``run`` or ``skip``, why, estimated time and peak
        memory, and whether the estimate is this sample's own record or the
        cost model), a total per sample (the time of its stages one after
        another, the largest peak of one stage), and the study's total.
    """
    lines = []
    width = max((len(p.stage) for p in plans), default=10)
    seconds_by_sample: dict[str, float] = {}
    peak_by_sample: dict[str, float] = {}
    unknown = 0
    for sample in dict.fromkeys(p.sample for p in plans):
        mine = [p for p in plans if p.sample == sample]
        lines.append("all samples (study-wide stages)" if sample == "_study" else sample)
        for p in mine:
            if p.action == "skip":
                lines.append(f"  {p.stage:<{width}}  skip  {'unchanged' + ('; ' + p.reason if p.reason else '')}")
                continue
            if p.cost is None:
                unknown += 1
                estimate_text = "no estimate (no cost model for this stage)"
            else:
                estimate_text = (f"{_duration(p.cost.seconds):>10}  {_gigabytes(p.cost.peak_memory_bytes):>8}  "
                                 f"({p.cost.basis})")
            lines.append(f"  {p.stage:<{width}}  run   {estimate_text}  {p.reason}")
        costs = [p.cost for p in mine if p.action == "run" and p.cost is not None]
        seconds_by_sample[sample] = sum(c.seconds for c in costs)
        peak_by_sample[sample] = max((c.peak_memory_bytes for c in costs), default=0.0)
        ran = sum(p.action == "run" for p in mine)
        lines.append(f"  {ran} to run, {len(mine) - ran} to skip: about {_duration(seconds_by_sample[sample])}, "
                     f"peak memory {_gigabytes(peak_by_sample[sample])}")
    total = sum(seconds_by_sample.values())
    per_sample = sorted((v for k, v in peak_by_sample.items() if k != "_study"), reverse=True)
    peak = max(sum(per_sample[:max(1, jobs)]), peak_by_sample.get("_study", 0.0))
    missing = f"; {unknown} stage(s) without an estimate" if unknown else ""
    lines.append(f"study: about {_duration(total)} with the samples one after another, peak memory "
                 f"{_gigabytes(peak)} with {jobs} sample(s) at once (recorded: the sample's last run of the "
                 f"stage; model: foamlib.costs, for the reference machine, 2 CPU cores, no GPU){missing}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- notebooks for JupyterLab


def _prepared_notebook(stage: Stage, params: Mapping[str, Any]):
    """The stage's notebook with ``params`` injected after its ``parameters`` cell (papermill's injection)."""
    with requires_extra("study"):
        from papermill.iorw import load_notebook_node
        from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(stage.path))
    nb = parameterize_notebook(nb, dict(params), kernel_name="python3")
    nb.metadata.pop("papermill", None)  # no run record: the notebook has not been run
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"  # papermill draws a random id: the same notebook twice would differ
        if not cell.metadata.get("papermill", True):  # papermill's empty bookkeeping, not the notebook's
            del cell.metadata["papermill"]
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
    return nb


def prepare_notebooks(
    samples: Sequence[SampleSpec],
    *,
    profile: str | os.PathLike | Mapping[str, Any] = "demo",
    notebooks_dir: str | os.PathLike = "notebooks",
    runs_dir: str | os.PathLike = "runs",
    overwrite: bool = False,
    until: str | int | None = None,
) -> list[Path]:
    """Write unexecuted notebooks, parameterised for a profile and sample, to open and run in JupyterLab.

    Each sample gets ``runs_dir/<sample>/lab/NN_name.ipynb`` for every
    per-sample stage, and the study-wide stages go to ``runs_dir/_study/lab/``.
    Below each notebook's ``parameters`` cell, a cell tagged
    ``injected-parameters`` (papermill's parameter injection) sets the
    profile's values and the sample's, so the notebook, run top to bottom,
    does what the stage of ``foamlib study run`` would. Paths are relative to
    the notebook's folder, where JupyterLab starts its kernel: ``run_dir =
    ".."`` (``runs_dir = "../.."`` for a study-wide stage), so the run folder
    can be moved; a user's scan keeps its absolute path. The same checks as
    :func:`run_study` come first (:func:`check_study`).

    Parameters
    ----------
    samples, profile, notebooks_dir, runs_dir, until
        As for :func:`run_study`.
    overwrite : bool
        Replace a notebook in ``lab/`` that differs from the one to write (one
        edited or run in JupyterLab, or prepared for another profile); without
        it such a notebook is left alone and a ``FileExistsError`` names it.

    Returns
    -------
    list of pathlib.Path
        The notebooks, in the order they run (an identical existing one is
        listed too, not rewritten).

    Raises
    ------
    ValueError, TypeError
        From :func:`check_study`, before anything is written.
    FileExistsError
        For notebooks in ``lab/`` that differ from the ones to write, before
        anything is written, unless ``overwrite`` is given.
    """
    with requires_extra("study"):
        import nbformat

    values = dict(profile) if isinstance(profile, Mapping) else load_profile(profile)
    stages = find_stages(notebooks_dir)
    check_study(samples, values, stages)
    stages = select_stages(stages, until)
    runs_dir = Path(runs_dir)
    todo: list[tuple[Path, str]] = []
    for spec in samples:
        every = {**values, **spec.parameters(), "run_dir": ".."}
        for stage in (s for s in stages if s.scope == "sample"):
            params = {k: every[k] for k in stage.parameters if k in every}
            text = nbformat.writes(_prepared_notebook(stage, params)) + "\n"
            todo.append((runs_dir / spec.name / "lab" / stage.path.name, text))
    study = {**values, "runs_dir": "../..", "samples": [s.name for s in samples], "failures": {}}
    for stage in (s for s in stages if s.scope == "study"):
        params = {k: study[k] for k in stage.parameters if k in study}
        todo.append((runs_dir / "_study" / "lab" / stage.path.name,
                     nbformat.writes(_prepared_notebook(stage, params)) + "\n"))
    changed = [path for path, text in todo if path.is_file() and path.read_text(encoding="utf-8") != text]
    if changed and not overwrite:
        raise FileExistsError(
            f"{len(changed)} notebook(s) in lab/ differ from the ones to write (edited or run in JupyterLab, or "
            f"prepared with other settings), first {changed[0]}; move them away or pass --overwrite"
        )
    for path, text in todo:
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return [path for path, _ in todo]


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def threads_per_sample(cpus: int, jobs: int, unfinished: int) -> int:
    """Threads for the next stage of one of the samples that run in parallel.

    Parameters
    ----------
    cpus : int
        Cores available (:func:`foamlib.device.idle_cpus` when the study starts).
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


def _raise_interrupt(signum, frame):  # pragma: no cover - runs on a signal
    raise KeyboardInterrupt


def _init_worker() -> None:  # pragma: no cover - child process
    # Ctrl-C reaches every process of the terminal's group: the parent alone decides and
    # stops the workers with SIGTERM, which unwinds a worker like Ctrl-C (temporary files removed).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_interrupt)


def _worker(spec, stages, profile, runs_dir, force, cpus, jobs, unfinished, lock, every):  # pragma: no cover - child
    def threads() -> int:
        # divide the cores between the samples running now, do not multiply
        return threads_per_sample(cpus, jobs, unfinished.value)

    try:
        return run_sample(spec, stages, profile, runs_dir=runs_dir, force=force, report=print_result,
                          threads=threads, notify=_say, lock=False, progress_every=every)
    except KeyboardInterrupt:
        return []
    finally:
        with lock:
            unfinished.value -= 1


def _say(line: str) -> None:
    print(line, flush=True)


def print_result(result: StageResult) -> None:
    """Print one progress line for a stage result."""
    if result.status == "failed":
        line = f"{result.sample}: {result.stage} FAILED: {result.message}"
    elif result.status == "skipped":
        line = f"{result.sample}: {result.stage} skipped (unchanged{'; ' + result.message if result.message else ''})"
    elif result.status == "not run":
        line = f"{result.sample}: {result.stage} not run: {result.message}"
    else:
        line = f"{result.sample}: {result.stage} done in {result.seconds:.1f} s"
    print(line, flush=True)


def check_study(
    samples: Sequence[SampleSpec], values: Mapping[str, Any], stages: Sequence[Stage], *, jobs: int | None = None
) -> None:
    """Everything :func:`run_study` checks before it starts a kernel.

    Sample names (unique, :func:`check_sample_name`), ``jobs``, the profile's
    keys and types (:func:`check_profile`), the parameters against each other
    (:func:`check_parameters`), that some notebook declares each parameter a
    sample sets (``scan_shape`` for a raw scan, say), and every sample's scan
    against the parameters (:func:`check_sample`).

    Raises
    ------
    ValueError, TypeError
        The first problem found, in one line that names the value, file or key.
    """
    if not samples:
        raise ValueError("no samples to run")
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        raise ValueError(f"sample names must be unique, got {names}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int)):
        raise TypeError(f"jobs must be an integer, got {jobs!r}")
    if jobs is not None and jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    check_profile(values, stages)
    resolved = resolved_parameters([s for s in stages if s.scope == "sample"], values)
    name = str(values.get("profile", "given"))
    check_parameters(resolved, name)
    declared = {p for s in stages if s.scope == "sample" for p in s.parameters}
    for spec in samples:
        given = spec.parameters()
        needed = [p for p in ("scan_path", "reference_porosity", "voxel_size_um", "scan_shape", "scan_dtype")
                  if given[p] is not None and p not in declared]
        if needed:
            raise ValueError(
                f"sample {spec.name} needs the parameter(s) {', '.join(needed)}, which no notebook in "
                f"{stages[0].path.parent} declares; update the notebooks (stage 00 reads the scan)"
            )
        check_sample(spec, resolved, name)


def run_study(
    samples: Sequence[SampleSpec],
    *,
    profile: str | os.PathLike | Mapping[str, Any] = "demo",
    notebooks_dir: str | os.PathLike = "notebooks",
    runs_dir: str | os.PathLike = "runs",
    jobs: int | None = None,
    force: bool = False,
    progress_every: float = PROGRESS_EVERY_S,
    scheduler: Any = None,
    until: str | int | None = None,
    cpus: int | None = None,
) -> list[StageResult]:
    """Run the study: each sample's stages (samples in parallel processes), then study-wide stages.

    Before any kernel starts, everything that can be checked is
    (:func:`check_study`), and every sample's run folder's lock is taken
    (:func:`foamlib.runs.run_lock`; the temporary files of interrupted runs are
    then removed); the study-wide stages wait for the lock of ``_study``, which
    studies of other samples share. A failed stage stops only its own sample; the study-wide
    stages run on every sample that got past its first stage (``samples``),
    and learn which failed and why (``failures``, ``{sample: "stage: message"}``);
    they are not run when no sample got past its first stage. SIGTERM, like
    Ctrl-C, stops the study with :class:`KeyboardInterrupt` after removing
    its temporary files.

    Parameters
    ----------
    samples : sequence of SampleSpec
    profile : str, path-like or mapping
        A profile name or file (see :func:`load_profile`), or parameter values.
    notebooks_dir, runs_dir : path-like
    jobs : int, optional
        Samples run at once; default: as many as samples, at most the number of
        idle cores (:func:`foamlib.device.idle_cpus`). Each stage of a sample
        gets the idle cores divided by the samples running when it starts
        (:func:`threads_per_sample`): with three samples on two cores, one
        thread each while two run, two threads for the last sample's remaining
        stages once the others are done. Training results on the CPU depend
        slightly on the thread count (floating-point summation order), so they
        can differ in the last digits between runs that finished in another
        order.
    force : bool
        Ignore the cache and run every stage.
    progress_every : float
        Seconds between two progress lines of a running stage (its elapsed
        time and the bars of :func:`foamlib.progress.progress_bar` it has
        open: epochs, steps, trials, slabs); 0 for none. A stage that reports
        no progress gets a line every six intervals that it still runs.
    scheduler : str or distributed.Client, optional
        None (default): the samples run in processes of this machine. Otherwise
        each sample's stages run as one Dask task (:func:`foamlib.distributed.run_samples`):
        ``"local"`` for a LocalCluster of ``jobs`` workers on this machine, or a
        Dask scheduler's address (``tcp://HOST:PORT``), whose workers need foamlib
        (``foamlib[study,scale]``) and the same paths to the notebooks and run
        folders (a shared file system). The study-wide stages run here afterwards.
    until : str or int, optional
        Run the stages up to this one (its number, ``5`` or ``"05"``, or its
        name; :func:`select_stages`) and stop: the study-wide stages after it
        do not run. The profile is still checked against every stage, so the
        same profile serves the whole study later, which then skips the stages
        that ran.
    cpus : int, optional
        Cores of this machine the study may use (divided between the samples
        running at once, and given to the study-wide stages); default the idle
        cores when it starts (:func:`foamlib.device.idle_cpus`). A caller that
        has just worked itself (preparing scans, say) raised the load average
        that this reads, and should measure the idle cores before its work
        and pass them here.

    Returns
    -------
    list of StageResult
        Every stage's outcome.

    Raises
    ------
    ValueError, TypeError
        From :func:`check_study`, before anything runs.
    foamlib.runs.RunFolderBusy
        If another run holds one of the run folders.
    """
    values = dict(profile) if isinstance(profile, Mapping) else load_profile(profile)
    stages = find_stages(notebooks_dir)
    check_study(samples, values, stages, jobs=jobs)
    cpus = idle_cpus() if cpus is None else check_int("cpus", cpus, low=1)
    stages = select_stages(stages, until)
    runs_dir = Path(runs_dir)
    study_stages = [s for s in stages if s.scope == "study"]
    folders = [runs_dir / s.name for s in samples]
    in_main = threading.current_thread() is threading.main_thread()
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main else None
    try:
        with contextlib.ExitStack() as locks:
            for folder in folders:
                locks.enter_context(run_lock(folder, what="foamlib study run"))
            for folder in folders:
                remove_temporaries(folder)
            if scheduler is None:
                results = _run_samples(samples, stages, values, runs_dir, jobs, force, progress_every, cpus)
            else:
                results = _run_samples_on_dask(samples, stages, values, runs_dir, jobs, force, progress_every,
                                               scheduler, cpus)  # fmt: skip
            if study_stages:
                # studies of other samples share _study: wait for its lock rather than refuse
                with run_lock(runs_dir / "_study", what="foamlib study run", wait=True, on_wait=_say):
                    remove_temporaries(runs_dir / "_study")
                    results += _run_study_stages(study_stages, values, runs_dir, samples, results, force=force,
                                                 every=progress_every, cpus=cpus)
            return results
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous_handler)


def _run_samples(samples, stages, values, runs_dir, jobs, force, every, cpus) -> list[StageResult]:
    jobs = max(1, min(len(samples), cpus if jobs is None else jobs))
    results: list[StageResult] = []
    if jobs == 1:
        for spec in samples:
            results += run_sample(spec, stages, values, runs_dir=runs_dir, force=force, report=print_result,
                                  threads=cpus, notify=_say, lock=False, progress_every=every)
        return results
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker)
        try:
            unfinished, lock = manager.Value("i", len(samples)), manager.Lock()
            futures = [
                pool.submit(_worker, s, stages, values, runs_dir, force, cpus, jobs, unfinished, lock, every)
                for s in samples
            ]
            for spec, future in zip(samples, futures):
                try:
                    results += future.result()
                except Exception as exc:  # noqa: BLE001 - a worker that died fails its sample, not the study
                    first = next(s.name for s in stages if s.scope == "sample")
                    result = StageResult(spec.name, first, "failed", 0.0, f"worker process failed: {exc}")
                    print_result(result)
                    results.append(result)
        except BaseException:
            # Ctrl-C or SIGTERM: stop the workers (they unwind and remove their temporary files)
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    return results


def _dask_sample(spec, *, stages, profile, runs_dir, force, threads, every):  # pragma: no cover - a Dask worker
    """One sample's stages as a Dask task (:func:`foamlib.distributed.run_samples`)."""
    return run_sample(spec, stages, profile, runs_dir=runs_dir, force=force, report=print_result,
                      threads=threads or idle_cpus(), notify=_say, lock=False, progress_every=every)  # fmt: skip


def _run_samples_on_dask(samples, stages, values, runs_dir, jobs, force, every, scheduler,
                         cpus) -> list[StageResult]:
    from .distributed import LOCAL, run_samples

    local = isinstance(scheduler, str) and scheduler == LOCAL
    jobs = max(1, min(len(samples), cpus if jobs is None else jobs))
    # on this machine the cores are divided between the workers; a remote worker takes its own machine's idle cores
    threads = max(1, cpus // jobs) if local else None
    task = functools.partial(_dask_sample, stages=stages, profile=dict(values), runs_dir=Path(runs_dir).absolute(),
                             force=force, threads=threads, every=every)  # fmt: skip
    first = next(s.name for s in stages if s.scope == "sample")
    results: list[StageResult] = []
    for outcome in run_samples(task, samples, scheduler=scheduler, n_workers=jobs if local else None):
        if outcome.ok:
            results += outcome.value
        else:
            result = StageResult(outcome.sample.name, first, "failed", outcome.seconds,
                                 f"Dask task failed: {type(outcome.error).__name__}: {outcome.error}")  # fmt: skip
            print_result(result)
            results.append(result)
    return results


def _run_study_stages(stages, values, runs_dir, samples, results, *, cpus, force=False,
                      every=0.0) -> list[StageResult]:
    """Run the study-wide stages on the samples that got past their first stage.

    A stage is skipped when its notebook, parameters, library, the samples'
    stage records (keys and outputs) and the failures are unchanged.
    """
    failures = {r.sample: f"{r.stage}: {r.message}" for r in results if r.status == "failed"}
    first: dict[str, str] = {}
    for r in results:
        first.setdefault(r.sample, r.status)
    names = [s.name for s in samples if first.get(s.name) in ("ran", "skipped")]
    if not names:
        out = [StageResult("_study", stage.name, "not run", 0.0, "no sample got past its first stage") for stage in stages]
        for result in out:
            print_result(result)
        return out
    run_dir = (Path(runs_dir) / "_study").resolve()
    library = _foamlib_source_hash()
    # the study reads what every sample's stages wrote: their records (keys and outputs) stand for those files
    records = {
        name: sorted(
            (p.stem, read_json(p).get("key", ""), read_json(p).get("outputs_digest", ""))
            for p in (Path(runs_dir) / name / ".stages").glob("*.json")
        )
        for name in names
    }
    previous = json.dumps({"records": records, "failures": failures}, sort_keys=True)
    out = []
    for stage in stages:
        params = {**values, "runs_dir": str(Path(runs_dir).resolve()), "samples": list(names), "failures": failures}
        params = {k: params[k] for k in stage.parameters if k in params}
        key = stage_key(stage, params, previous=previous, library=library)
        result, digest = _run_stage(stage, run_dir, key, params, sample="_study", label="all samples", force=force,
                                    env=kernel_environment(cpus), notify=_say, progress_every=every)
        previous = _chain(key, digest)
        print_result(result)
        out.append(result)
        if result.status == "failed":
            break
    return out
