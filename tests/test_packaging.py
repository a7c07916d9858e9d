"""The project's metadata: environment.yml and pyproject.toml list the same packages."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$")


def _parse(requirement: str) -> tuple[str, str]:
    name, spec = _REQ.match(requirement).groups()
    return re.sub(r"[-_.]+", "-", name).lower(), spec.replace(" ", "")


def _pyproject() -> dict[str, str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = meta["dependencies"] + [r for extra in meta["optional-dependencies"].values() for r in extra]
    return dict(_parse(r) for r in reqs)


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
    py, env = _pyproject(), _environment()
    assert sorted(py) == sorted(env)


def test_environment_uses_the_same_version_ranges():
    py, env = _pyproject(), _environment()
    # torch is a range in pyproject.toml and pinned in the install step; environment.yml pins it too
    different = {n: (py[n], env[n]) for n in py if n != "torch" and py[n] != env.get(n)}
    assert different == {}
    assert env["torch"] == "==2.13.0"


def test_make_install_pins_torch():
    assert '"torch==2.13.0"' in (ROOT / "Makefile").read_text()


def test_ci_calls_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
    assert "make test" in (ROOT / "README.md").read_text()
