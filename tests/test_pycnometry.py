"""Tests for foamlib.pycnometry: ISO 1183-1 solid density, porosity, uncertainty propagation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from foamlib import pycnometry as P


def test_paper_table3_porosities():
    """Griem et al., Table 3: rho_S = 1.411 g/cm³ and rho_eff in kg/m³ -> porosity in %, 2 decimals."""
    for rho_eff, expected in zip(P.PAPER_EFFECTIVE_DENSITIES_KG_M3, P.PAPER_POROSITIES_PERCENT, strict=True):
        porosity = P.porosity_from_density(rho_eff, P.PAPER_SOLID_DENSITY_G_CM3)
        assert round(100 * porosity, 2) == pytest.approx(expected, abs=1e-9)
    assert P.porosity_from_density(154.93, 1.411) == pytest.approx(0.890199, abs=1e-6)


def test_solid_density_formula():
    # 2.0 g of specimen displaces 1.2 g of ethanol: V = 1.2 / 0.81 cm³
    assert P.solid_density(2.0, 30.0, 28.8) == pytest.approx(2.0 * 0.81 / 1.2)
    assert P.solid_density(2.0, 30.0, 28.8, rho_liquid=1.0) == pytest.approx(2.0 / 1.2)
    assert P.ETHANOL_DENSITY_G_CM3 == 0.81
    # a polyurethane-like solid comes out near the paper's 1.411 g/cm³
    assert P.solid_density(1.411, 25.0, 25.0 - 0.81) == pytest.approx(1.411)


def test_solid_density_rejects_bad_values():
    with pytest.raises(ValueError, match="m_1 .* must exceed m_2"):
        P.solid_density(2.0, 28.0, 30.0)
    with pytest.raises(ValueError, match="m_s must be a finite number > 0"):
        P.solid_density(0.0, 30.0, 28.0)
    with pytest.raises(ValueError, match="rho_liquid"):
        P.solid_density(2.0, 30.0, 28.0, rho_liquid=-0.8)
    with pytest.raises(ValueError, match="finite"):
        P.solid_density(math.nan, 30.0, 28.0)
    with pytest.raises(TypeError, match="m_1"):
        P.solid_density(2.0, "30", 28.0)  # type: ignore[arg-type]


def test_porosity_rejects_bad_values():
    with pytest.raises(ValueError, match="check the units"):
        P.porosity_from_density(1500.0, 1.411)  # kg/m³ vs g/cm³ mix-up caught
    with pytest.raises(ValueError, match="rho_solid_g_cm3"):
        P.porosity_from_density(150.0, 0.0)
    with pytest.raises(TypeError, match="rho_effective_kg_m3"):
        P.porosity_from_density(None, 1.411)  # type: ignore[arg-type]


def _numerical_uncertainty(func, values, uncertainties, h=1e-6):
    """First-order propagation with central finite differences."""
    var = 0.0
    for i, u in enumerate(uncertainties):
        up = list(values)
        down = list(values)
        step = h * max(abs(values[i]), 1.0)
        up[i] += step
        down[i] -= step
        var += ((func(*up) - func(*down)) / (2 * step) * u) ** 2
    return math.sqrt(var)


def test_solid_density_uncertainty_matches_finite_differences():
    values = (1.95, 31.42, 30.28, 0.81)
    uncs = (0.001, 0.002, 0.002, 0.005)
    m = P.solid_density_with_uncertainty(
        *values[:3], u_m_s=uncs[0], u_m_1=uncs[1], u_m_2=uncs[2], rho_liquid=values[3], u_rho_liquid=uncs[3]
    )
    assert isinstance(m, P.Measurement)
    assert m.value == pytest.approx(P.solid_density(*values[:3], rho_liquid=values[3]))

    def f(ms, m1, m2, rho):
        return P.solid_density(ms, m1, m2, rho_liquid=rho)

    assert m.uncertainty == pytest.approx(_numerical_uncertainty(f, values, uncs), rel=1e-6)
    exact = P.solid_density_with_uncertainty(1.95, 31.42, 30.28, u_m_s=0, u_m_1=0, u_m_2=0)
    assert exact.uncertainty == 0.0
    with pytest.raises(ValueError, match="u_m_1"):
        P.solid_density_with_uncertainty(1.95, 31.42, 30.28, u_m_s=0, u_m_1=-1, u_m_2=0)


def test_porosity_uncertainty_matches_finite_differences():
    values = (197.72, 1.411)
    uncs = (2.0, 0.01)
    m = P.porosity_with_uncertainty(*values, u_rho_effective_kg_m3=uncs[0], u_rho_solid_g_cm3=uncs[1])
    assert m.value == pytest.approx(P.porosity_from_density(*values))
    assert m.uncertainty == pytest.approx(_numerical_uncertainty(P.porosity_from_density, values, uncs), rel=1e-6)
    # hand-computed: sqrt((0.002/1.411)^2 + (0.19772*0.01/1.411^2)^2)
    assert m.uncertainty == pytest.approx(math.hypot(0.002 / 1.411, 0.19772 * 0.01 / 1.411**2), rel=1e-12)
    assert m.relative_uncertainty == pytest.approx(m.uncertainty / m.value)


def test_mean_measurement_and_measurement_is_frozen():
    m = P.mean_measurement([1.40, 1.41, 1.42])
    assert m.value == pytest.approx(1.41)
    assert m.uncertainty == pytest.approx(0.01 / math.sqrt(3))
    with pytest.raises(ValueError, match="at least 2"):
        P.mean_measurement([1.4])
    with pytest.raises(ValueError, match="NaN"):
        P.mean_measurement(np.array([1.4, np.nan]))
    with pytest.raises(AttributeError):
        m.value = 2.0  # type: ignore[misc]
    assert P.Measurement(0.0, 0.1).relative_uncertainty == math.inf


def test_table3_from_the_paper_densities_to_its_printed_precision():
    table = P.porosity_table(P.DEMO_EFFECTIVE_DENSITIES_KG_M3, P.Measurement(P.PAPER_SOLID_DENSITY_G_CM3, 0.0))
    assert [round(100 * v, 2) for v in table["porosity"]] == list(P.PAPER_POROSITIES_PERCENT)
    assert (table["u_porosity"] == 0).all()
    with_u = P.porosity_table({"a": 154.93}, P.Measurement(1.411, 0.01), u_effective_kg_m3=1.0)
    assert with_u.loc["a", "u_porosity"] == pytest.approx(math.hypot(0.001 / 1.411, 0.15493 * 0.01 / 1.411**2))


def test_solid_density_table_rows_and_mean():
    # three determinations built to give 1.40, 1.41 and 1.42 g/cm3 in ethanol (0.81 g/cm3)
    masses = [(m_s, 30.0, 30.0 - m_s * 0.81 / rho) for m_s, rho in ((1.2, 1.40), (1.5, 1.41), (1.8, 1.42))]
    table, mean = P.solid_density_table(masses, u_mass=0.0001)
    assert table["rho_s_g_cm3"].round(10).tolist() == [1.40, 1.41, 1.42]
    assert (table["u_rho_s_g_cm3"] > 0).all() and list(table.index) == [1, 2, 3]
    assert mean.value == pytest.approx(1.41) and mean.uncertainty == pytest.approx(0.01 / math.sqrt(3))
    with pytest.raises(ValueError, match="m_s, m_1, m_2"):
        P.solid_density_table([(1.0, 2.0)])


def test_table2_from_the_paper_raw_masses_to_its_printed_precision():
    table, mean = P.solid_density_table(P.PAPER_PYCNOMETER_MASSES_G, rho_liquid=P.ETHANOL_DENSITY_G_CM3)
    assert [round(v, 3) for v in table["rho_s_g_cm3"]] == [1.437, 1.391, 1.406]
    assert round(mean.value, 3) == P.PAPER_SOLID_DENSITY_G_CM3


def test_porosity_table_without_a_sample_keeps_its_columns():
    from foamlib.pycnometry import Measurement, porosity_table

    table = porosity_table({}, Measurement(1.411, 0.02))
    assert len(table) == 0 and list(table.columns) == ["rho_eff_kg_m3", "porosity", "u_porosity"]
