"""One behaviour of the scalar checks (foamlib.checks) and of the functions that use them."""

import ast
from pathlib import Path

import numpy as np
import pytest

from foamlib.checks import check_choice, check_int, check_real, is_int, is_real

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value", [3, np.int8(3), np.int64(3), np.uint16(3)])
def test_int_accepts_numpy_integers(value):
    out = check_int("n", value, low=1)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value", [True, np.bool_(True), 3.0, "3", None, np.array(3), [3]])
def test_int_type_error_names_parameter(value):
    with pytest.raises(TypeError, match=r"^tile must be an integer >= 1, got "):
        check_int("tile", value, low=1)


def test_int_value_error():
    with pytest.raises(ValueError, match=r"^tile must be an integer >= 1, got 0$"):
        check_int("tile", 0, low=1)
    with pytest.raises(ValueError, match=r"in \[1, 16\], got 17"):
        check_int("supersample", 17, low=1, high=16)
    assert check_int("axis", -3) == -3


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.5), np.float64(0.5), np.int64(1)])
def test_real_accepts(value):
    out = check_real("sigma", value, low=0)
    assert out == float(value) and type(out) is float


@pytest.mark.parametrize("value", [True, np.bool_(False), "1", None, 1j, np.array([1.0])])
def test_real_type_error(value):
    with pytest.raises(TypeError, match=r"^sigma must be a real number, got "):
        check_real("sigma", value)


@pytest.mark.parametrize(
    "value, kwargs, text",
    [
        (float("nan"), {}, "a finite number, got nan"),
        (float("inf"), {}, "a finite number, got inf"),
        (0.0, {"low": 0, "low_open": True}, "a finite number > 0, got 0.0"),
        (1.0, {"low": 0, "high": 1, "high_open": True}, r"a finite number in \[0, 1\), got 1.0"),
        (-0.1, {"low": 0}, "a finite number >= 0, got -0.1"),
        (2.0, {"high": 1}, "a finite number <= 1, got 2.0"),
        (float("nan"), {"allow_inf": True}, "a number, got nan"),
    ],
)
def test_real_value_error(value, kwargs, text):
    with pytest.raises(ValueError, match=rf"^lr must be {text}"):
        check_real("lr", value, **kwargs)


def test_real_allow_inf():
    assert check_real("x", float("inf"), low=0, allow_inf=True) == float("inf")


def test_choice():
    assert check_choice("pooling", "max", ("avg", "max")) == "max"
    with pytest.raises(ValueError, match=r"^pooling must be one of 'avg', 'max', got 'min'$"):
        check_choice("pooling", "min", ("avg", "max"))
    with pytest.raises(ValueError, match="pooling"):
        check_choice("pooling", ["max"], {"avg", "max"})


def test_predicates():
    assert is_int(np.int64(1)) and not is_int(True) and not is_int(1.0)
    assert is_real(np.float16(1)) and is_real(1) and not is_real(np.bool_(True)) and not is_real("1")


# A few public functions that moved to the shared checks: numpy integers in, same error types out.
def test_public_functions_share_the_behaviour():
    from foamlib.patches import extract_patches
    from foamlib.unet import build_unet
    from foamlib.walls import add_walls

    vol = np.zeros((8, 8, 8), dtype=bool)
    assert extract_patches(vol, np.int64(4), np.int32(2), seed=np.int64(1)).shape == (2, 4, 4)
    with pytest.raises(TypeError, match="^n must be an integer"):
        extract_patches(vol, 4, 2.0)
    with pytest.raises(ValueError, match="^size must be an integer >= 1"):
        extract_patches(vol, 0, 2)
    with pytest.raises(TypeError, match="^seed must be an integer"):
        build_unet({"levels": 2, "base_channels": 2}, seed="0")
    with pytest.raises(TypeError, match="^fraction must be a real number"):
        add_walls(vol[:2], "half", seed=0)


def _private_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level >= 1 or (
            isinstance(node, ast.ImportFrom) and (node.module or "").startswith("foamlib")
        ):
            found += [f"{path.name}: from {node.module} import {a.name}" for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_module_imports_private_names_of_another():
    offenders = [hit for path in sorted((ROOT / "foamlib").glob("*.py")) for hit in _private_imports(path)]
    assert not offenders, offenders


def test_no_local_copies_of_the_scalar_checks():
    names = {"_check_int", "_check_float", "_check_real", "_check_count", "_check_positive_int", "_positive_int",
             "_finite_float", "_positive", "_non_negative", "_finite", "_check_seed", "_check_sigma", "_real"}
    offenders = []
    for path in sorted((ROOT / "foamlib").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders += [f"{path.name}: {n.name}" for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in names]
    assert not offenders, offenders
