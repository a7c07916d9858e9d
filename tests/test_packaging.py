"""The project's metadata: the core and the extras of pyproject.toml, environment.yml, the Makefile.

``pip install foamlib`` installs the core, enough for ``import foamlib``, the
import of every module and the commands ``segment`` and ``analyze``; the study,
the book, large scans, export and validation come with extras, imported inside
the functions that use them through :class:`foamlib._optional.requires_extra`.
"""
from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from foamlib._optional import EXTRAS, requires_extra

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "foamlib"
META = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: Core dependencies that foamlib uses without importing them.
UNIMPORTED_CORE = {"imagecodecs": "tifffile's codecs, for compressed TIFF"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(extra: str | None = None) -> list[Requirement]:
    """The requirements of the core (``extra=None``) or of one extra, with ``foamlib[...]`` references expanded."""
    out = []
    for text in META["dependencies"] if extra is None else META["optional-dependencies"][extra]:
        req = Requirement(text)
        if _norm(req.name) == "foamlib":
            for inner in sorted(req.extras):
                out += _requirements(inner)
        else:
            out.append(req)
    return out


CORE = {_norm(r.name) for r in _requirements()}


def _provides(extra: str) -> set[str]:
    """Distributions that ``pip install 'foamlib[extra]'`` lists, the core included."""
    return CORE | {_norm(r.name) for r in _requirements(extra)}


@functools.cache
def _closure(names: frozenset[str]) -> frozenset[str]:
    """``names`` and every installed distribution they require, transitively (extras of a requirement included)."""
    todo = [(name, frozenset()) for name in names]
    seen: set[tuple[str, frozenset]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
                todo.append((_norm(req.name), frozenset(req.extras)))
    return frozenset(name for name, _ in seen)


@functools.cache
def _module_distributions() -> dict[str, frozenset[str]]:
    """Top-level module -> the installed distributions that provide it."""
    return {m: frozenset(_norm(d) for d in ds) for m, ds in importlib.metadata.packages_distributions().items()}


def _distributions(module: str) -> set[str]:
    """Installed distributions that provide the top-level ``module``."""
    return set(_module_distributions().get(module, ()))


def _third_party(module: str | None, level: int = 0) -> str | None:
    if level or module is None:
        return None
    root = module.split(".")[0]
    return None if root in sys.stdlib_module_names or root in ("foamlib", "__future__") else root


def _imports(tree: ast.AST):
    """``(module, line, at_module_level, extra)`` of every third-party import; ``if TYPE_CHECKING:`` skipped.

    ``extra`` is the argument of the enclosing ``with requires_extra("...")`` block, or None.
    """
    found = []

    def visit(node: ast.AST, in_function: bool, extra: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for inner in child.orelse:
                    visit(ast.Module(body=[inner], type_ignores=[]), in_function, extra)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in child.names] if isinstance(child, ast.Import) else [child.module]
                level = getattr(child, "level", 0)
                for name in names:
                    root = _third_party(name, level)
                    if root:
                        found.append((root, child.lineno, not in_function, extra))
                continue
            inner_extra = extra
            if isinstance(child, ast.With):
                for item in child.items:
                    call = item.context_expr
                    if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "requires_extra":
                        inner_extra = ast.literal_eval(call.args[0])
            is_function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, in_function or is_function, inner_extra)

    visit(tree, False, None)
    return found


def _package_imports():
    for path in sorted(PACKAGE.rglob("*.py")):
        for module, line, top, extra in _imports(ast.parse(path.read_text(), filename=str(path))):
            yield f"{path.relative_to(ROOT)}:{line}", module, top, extra


# --------------------------------------------------------------------------- the core and the extras


def test_every_module_level_import_is_a_core_dependency():
    """A module-level import of a package outside the core would break ``import foamlib.<module>`` without extras."""
    outside = {
        where: (module, sorted(_distributions(module)))
        for where, module, top, _ in _package_imports()
        if top and not _distributions(module) & CORE
    }
    assert outside == {}, "import these in the functions that need them, in a `with requires_extra(...)` block"


def test_every_import_outside_the_core_names_an_extra_that_lists_it():
    """A package outside the core is imported in ``with requires_extra(extra)``, and that extra lists it."""
    wrong = {}
    for where, module, _, extra in _package_imports():
        dists = _distributions(module)
        if dists & CORE:
            continue
        if extra is None or not dists & _provides(extra):
            wrong[where] = (module, sorted(dists), extra)
    assert wrong == {}


def test_the_core_lists_only_what_foamlib_imports():
    """A core dependency that no module imports (porespy was one) belongs in an extra, or nowhere."""
    imported = set()
    for _, module, _, _ in _package_imports():
        imported |= _distributions(module)
    assert CORE - imported == set(UNIMPORTED_CORE)


def test_the_extras_are_the_ones_requires_extra_accepts():
    assert set(META["optional-dependencies"]) == {*EXTRAS, "test"}
    with pytest.raises(ValueError, match="unknown foamlib extra 'studdy'"):
        requires_extra("studdy")


def test_the_test_extra_installs_every_other_extra():
    provided = _provides("test")
    for extra in EXTRAS:
        assert _provides(extra) <= provided, extra


def test_notebooks_import_only_the_core_and_the_study_extra():
    """What a notebook imports is listed by the core or the study extra itself (not only pulled in by a package)."""
    allowed = _provides("study")
    outside = {}
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            lines = "".join(cell["source"]).splitlines()
            source = "\n".join(line for line in lines if not line.lstrip().startswith(("%", "!")))
            for module, _, _, _ in _imports(ast.parse(source)):
                if not _distributions(module) & allowed:
                    outside[f"{path.name} {cell.get('id')}"] = module
    assert outside == {}


def test_the_tests_import_only_what_the_test_extra_installs():
    """What a test imports comes with ``pip install 'foamlib[test]'`` (threadpoolctl with scikit-learn, say)."""
    allowed = _closure(frozenset(_provides("test")))
    outside = {}
    for path in sorted((ROOT / "tests").glob("*.py")):
        for module, line, _, _ in _imports(ast.parse(path.read_text())):
            if (ROOT / "tests" / f"{module}.py").exists():
                continue  # a helper module of the tests
            if not _distributions(module) & allowed:
                outside[f"{path.name}:{line}"] = module
    assert outside == {}


def test_a_missing_optional_package_names_the_extra():
    with pytest.raises(ModuleNotFoundError) as info:
        with requires_extra("study"):
            importlib.import_module("foamlib_no_such_package")
    message = str(info.value)
    assert "'foamlib_no_such_package'" in message and "pip install 'foamlib[study]'" in message
    assert "test_packaging.test_a_missing_optional_package_names_the_extra needs" in message
    assert info.value.name == "foamlib_no_such_package"


def test_other_errors_pass_through_requires_extra():
    with pytest.raises(KeyError):
        with requires_extra("export"):
            raise KeyError("not an import")


# --------------------------------------------------------------------------- a core-only installation

_CORE_ONLY = r"""
import importlib, importlib.abc, json, pkgutil, sys
from pathlib import Path

BLOCKED = set(json.loads(sys.argv[1]))
work, notebooks = Path(sys.argv[2]), sys.argv[3]
before = {m.split(".")[0] for m in sys.modules}


class BlockNonCore(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        root = name.split(".")[0]
        if root in BLOCKED:
            raise ModuleNotFoundError(f"No module named {root!r} (blocked: not a core dependency)", name=root)
        return None


sys.meta_path.insert(0, BlockNonCore())
try:
    import pandas  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("the blocker let pandas through")

import numpy as np
import tifffile

import foamlib

modules = sorted(m.name for m in pkgutil.walk_packages(foamlib.__path__, "foamlib."))
for name in modules:
    importlib.import_module(name)

from foamlib.cli import main
from foamlib.report import porosity_table
from foamlib.training import save_model
from foamlib.unet import build_unet

try:
    porosity_table({})
except ModuleNotFoundError as exc:
    missing = str(exc)
else:
    raise SystemExit("porosity_table ran without pandas")

rng = np.random.default_rng(0)
volume = np.full((6, 24, 20), 40.0) + rng.normal(0, 4, (6, 24, 20))
volume[:, :, ::8] += 160
scan = work / "scan.tif"
tifffile.imwrite(scan, volume.clip(0, 255).astype(np.uint8))
model = build_unet({"levels": 2, "convs_per_level": 1, "base_channels": 4}, seed=0)
model_path = save_model(work / "model.pt", model, metadata={"intensity_range": [0, 255]})
segment = main(["segment", str(scan), "--model", str(model_path), "--out", str(work / "seg.tif"), "--tile", "16",
                "--overlap", "4", "--json"])
analyze = main(["analyze", str(scan), "--json"])
study = main(["study", "run", "--samples", "foam86", "--profile", "smoke", "--runs-dir", str(work / "runs"),
              "--notebooks", notebooks])
loaded = sorted(({m.split(".")[0] for m in sys.modules} - before) & BLOCKED)
print("RESULT " + json.dumps({"file": foamlib.__file__, "modules": modules, "segment": segment, "analyze": analyze,
                              "study": study, "missing": missing, "loaded": loaded}))
"""


@pytest.mark.slow
def test_foamlib_imports_and_segments_with_only_the_core_installed(tmp_path):
    """Every module imports, and ``segment`` and ``analyze`` run, with every distribution outside the core blocked."""
    core = _closure(frozenset(CORE))
    blocked = sorted(
        module
        for module, dists in _module_distributions().items()
        if module.isidentifier() and module not in sys.stdlib_module_names and module != "foamlib" and not dists & core
    )  # fmt: skip
    assert {"pandas", "matplotlib", "optuna", "papermill", "sklearn", "pytest"} <= set(blocked)
    assert not {"numpy", "torch", "tifffile", "skimage", "yaml"} & set(blocked)
    result = subprocess.run(
        [sys.executable, "-c", _CORE_ONLY, json.dumps(blocked), str(tmp_path), str(ROOT / "notebooks")],
        capture_output=True, text=True, check=False, cwd=tmp_path, timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(s for s in result.stdout.splitlines() if s.startswith("RESULT "))
    report = json.loads(line.removeprefix("RESULT "))
    assert Path(report["file"]).resolve().is_relative_to(ROOT)
    expected = {".".join(("foamlib", *p.relative_to(PACKAGE).with_suffix("").parts)) for p in PACKAGE.rglob("*.py")}
    expected = {name.removesuffix(".__init__") for name in expected} - {"foamlib"}
    assert set(report["modules"]) == expected
    assert report["segment"] == 0 and report["analyze"] == 0
    assert "foamlib.report.porosity_table" in report["missing"] and "pip install 'foamlib[study]'" in report["missing"]
    assert report["loaded"] == []
    # the study needs its extra, and says so in one line
    assert report["study"] == 1
    assert "foamlib: error: foamlib.study." in result.stderr and "pip install 'foamlib[study]'" in result.stderr
    assert (tmp_path / "seg.tif").is_file()


# --------------------------------------------------------------------------- environment.yml


def _parse(requirement: str) -> tuple[str, str]:
    req = Requirement(requirement)
    return _norm(req.name), str(req.specifier).replace(" ", "")


def _pyproject() -> dict[str, str]:
    reqs = _requirements() + [r for extra in META["optional-dependencies"] for r in _requirements(extra)]
    return {_norm(r.name): str(r.specifier).replace(" ", "") for r in reqs}


def _environment() -> dict[str, str]:
    deps = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    out = {}
    for dep in deps:
        for req in dep["pip"] if isinstance(dep, dict) else [dep]:
            name, spec = _parse(req)
            if name not in ("python", "pip"):
                out[name] = spec
    return out


def test_environment_lists_the_same_packages_as_pyproject():
    """environment.yml is the core and every extra (conda has no extras; conda-forge's dask includes distributed)."""
    py, env = _pyproject(), _environment()
    assert sorted(py) == sorted(env)


def test_environment_uses_the_same_version_ranges():
    py, env = _pyproject(), _environment()
    # torch is a range in pyproject.toml and pinned in the install step; environment.yml pins it too
    different = {n: (py[n], env[n]) for n in py if n != "torch" and py[n] != env.get(n)}
    assert different == {}
    assert env["torch"] == "==2.13.0"


# --------------------------------------------------------------------------- Makefile, CI, README


def _make_dry_run(target: str, tmp_path: Path) -> str:
    """The commands ``make -n target`` would run, with a fresh (absent) virtual environment."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, f"VENV={tmp_path / 'venv'}"], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_install_pins_torch():
    assert '"torch==2.13.0"' in (ROOT / "Makefile").read_text()


@pytest.mark.parametrize(("target", "extra"), [("test", "test"), ("book", "book"), ("lab", "study")])
def test_make_targets_install_the_extras_they_need(target, extra, tmp_path):
    commands = _make_dry_run(target, tmp_path)
    assert re.search(rf'pip install .*"torch==2\.13\.0" -e "\.\[{extra}\]"', commands), commands


def test_make_lab_prepares_the_notebooks_and_opens_jupyterlab_on_the_runs(tmp_path):
    commands = _make_dry_run("lab", tmp_path).splitlines()
    prepare = next(i for i, c in enumerate(commands) if "foamlib study prepare" in c)
    assert "--samples demo --profile demo" in commands[prepare]
    lab = next(i for i, c in enumerate(commands) if "jupyter lab" in c)
    assert prepare < lab and "runs" in commands[lab]


def test_ci_calls_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "make test" in (ROOT / "README.md").read_text()


def test_readme_names_every_extra_and_make_lab():
    readme = (ROOT / "README.md").read_text()
    missing = [extra for extra in META["optional-dependencies"] if f"foamlib[{extra}]" not in readme]
    assert missing == []
    assert "make lab" in readme
