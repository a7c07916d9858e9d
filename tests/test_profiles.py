"""Profiles are the one home of the study's settings; the notebooks' parameters cells hold the smoke profile."""
import ast
from pathlib import Path

import papermill
import pytest

from foamlib import pycnometry
from foamlib.study import load_profile, profile_names

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: Parameters that describe a sample or a run, set by the study runner, not by a profile.
SAMPLE_PARAMETERS = {"sample", "run_dir", "scan_path", "reference_porosity", "voxel_size_um", "runs_dir", "samples",
                     "failures", "effective_density_kg_m3", "u_effective_density_kg_m3", "scan_shape", "scan_dtype",
                     "scan_byte_order"}


def _defaults() -> dict[str, dict[str, object]]:
    """Every notebook's parameters-cell defaults, evaluated: {name: {notebook: value}}."""
    out: dict[str, dict[str, object]] = {}
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        for name, info in papermill.inspect_notebook(str(path)).items():
            try:
                value = ast.literal_eval(info["default"])
            except ValueError:  # a named constant of foamlib
                value = eval(info["default"], vars(pycnometry))  # noqa: S307 - our own notebooks
            out.setdefault(name, {})[path.stem] = value
    return out


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def test_notebook_defaults_are_the_smoke_profile():
    smoke = {k: v for k, v in load_profile("smoke").items() if k != "profile"}
    defaults = _defaults()
    settings = {name: by_notebook for name, by_notebook in defaults.items() if name not in SAMPLE_PARAMETERS}
    assert set(settings) == set(smoke), "a setting is in a notebook but not in smoke.yml, or the other way round"
    for name, by_notebook in settings.items():
        for notebook, value in by_notebook.items():
            assert _plain(value) == smoke[name], f"{notebook}: {name} = {value!r}, smoke profile says {smoke[name]!r}"


def test_no_notebook_declares_the_unused_profile_parameter():
    assert "profile" not in _defaults()


@pytest.mark.parametrize("name", ["demo", "paper"])
def test_every_profile_sets_the_same_keys(name):
    assert set(load_profile(name)) == set(load_profile("smoke"))
