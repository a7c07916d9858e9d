"""Solid density by liquid pycnometry (EN ISO 1183-1, method B) and foam porosity.

The paper validates the porosity segmented from CT against a reference value
from densities: the density of the solid polyurethane is measured with a
liquid pycnometer in ethanol (its Table 2; mean 1.411 g/cm³), and the porosity
of each foam follows from its effective (bulk) density (its Table 3),

.. math::

    \\rho_S = \\frac{m_S\\,\\rho_{IL}}{m_1 - m_2}, \\qquad
    \\phi = 1 - \\frac{\\rho_\\text{eff}}{\\rho_S}.

Symbols as we read EN ISO 1183-1, method B (the paper quotes the formula, not
the definitions):

``m_S``
    mass of the (ground, void-free) solid specimen, weighed in air, in g;
``m_1``
    mass of immersion liquid that fills the empty pycnometer, in g
    (pycnometer filled with liquid minus empty pycnometer);
``m_2``
    mass of immersion liquid that fills the pycnometer containing the
    specimen, in g (pycnometer with specimen, topped up with liquid, minus
    pycnometer with specimen).

So ``m_1 - m_2`` is the mass of liquid displaced by the specimen, and
``(m_1 - m_2) / rho_IL`` its volume. If you have gross weighings instead
(``W_1`` = pycnometer + liquid, ``W_2`` = pycnometer + specimen + liquid), then
``m_1 - m_2 = W_1 + m_S - W_2``.

Uncertainties are first-order (linear) propagations of independent standard
uncertainties (GUM): :math:`u_y^2 = \\sum_i (\\partial y/\\partial x_i)^2 u_{x_i}^2`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._optional import requires_extra
from .checks import check_real

__all__ = [
    "ETHANOL_DENSITY_G_CM3",
    "PAPER_SOLID_DENSITY_G_CM3",
    "PAPER_EFFECTIVE_DENSITIES_KG_M3",
    "PAPER_POROSITIES_PERCENT",
    "PAPER_PYCNOMETER_MASSES_G",
    "Measurement",
    "solid_density",
    "solid_density_with_uncertainty",
    "porosity_from_density",
    "porosity_with_uncertainty",
    "mean_measurement",
    "DEMO_EFFECTIVE_DENSITIES_KG_M3",
    "solid_density_table",
    "porosity_table",
]

#: The paper's three pycnometer determinations (m_S, m_1, m_2) in g; with ethanol they give its Table 2
#: (1.437, 1.391 and 1.406 g/cm³, mean 1.411 g/cm³).
PAPER_PYCNOMETER_MASSES_G = ((0.2013, 7.0893, 6.9758), (0.1964, 7.0933, 6.9789), (0.2066, 7.0924, 6.9734))
#: Density of the immersion liquid used in the paper (ethanol), g/cm³.
ETHANOL_DENSITY_G_CM3 = 0.81
#: Mean solid density of the polyurethane reported in the paper (Table 2), g/cm³.
PAPER_SOLID_DENSITY_G_CM3 = 1.411
#: Effective (bulk) densities of the three foams in the paper (Table 3), kg/m³.
PAPER_EFFECTIVE_DENSITIES_KG_M3 = (154.93, 197.72, 248.34)
#: Porosities the paper derives from them (Table 3), percent.
PAPER_POROSITIES_PERCENT = (89.02, 85.99, 82.40)

#: The paper's effective densities by the demo sample that mirrors each foam
#: (:data:`foamlib.phantom.DEMO_SAMPLES` were built to the porosities of Table 3), kg/m³.
DEMO_EFFECTIVE_DENSITIES_KG_M3 = {"foam89": 154.93, "foam86": 197.72, "foam82": 248.34}

_G_CM3_PER_KG_M3 = 1e-3


@dataclass(frozen=True)
class Measurement:
    """A value with its standard uncertainty (same unit).

    Attributes
    ----------
    value : float
        Best estimate.
    uncertainty : float
        Standard uncertainty (one standard deviation), >= 0.
    """

    value: float
    uncertainty: float

    @property
    def relative_uncertainty(self) -> float:
        """``uncertainty / |value|`` (``inf`` for a zero value)."""
        return self.uncertainty / abs(self.value) if self.value else math.inf


def _check_masses(m_s: object, m_1: object, m_2: object, rho_liquid: object) -> tuple[float, float, float, float]:
    ms = check_real("m_s", m_s, low=0.0, low_open=True)
    m1 = check_real("m_1", m_1, low=0.0, low_open=True)
    m2 = check_real("m_2", m_2, low=0.0)
    rho = check_real("rho_liquid", rho_liquid, low=0.0, low_open=True)
    if m1 <= m2:
        raise ValueError(
            f"m_1 ({m1} g) must exceed m_2 ({m2} g): m_1 - m_2 is the liquid displaced by the specimen "
            "(m_1, m_2 are liquid masses, not gross weighings; see the module docstring)"
        )
    return ms, m1, m2, rho


def solid_density(m_s: float, m_1: float, m_2: float, *, rho_liquid: float = ETHANOL_DENSITY_G_CM3) -> float:
    """Density of the solid by liquid pycnometry, ``rho_S = m_S * rho_IL / (m_1 - m_2)``.

    Parameters
    ----------
    m_s : float
        Specimen mass weighed in air, g.
    m_1 : float
        Mass of liquid filling the empty pycnometer, g.
    m_2 : float
        Mass of liquid filling the pycnometer that holds the specimen, g.
    rho_liquid : float, optional
        Density of the immersion liquid at the test temperature, g/cm³
        (default 0.81, ethanol, as in the paper).

    Returns
    -------
    float
        Solid density, g/cm³.
    """
    ms, m1, m2, rho = _check_masses(m_s, m_1, m_2, rho_liquid)
    return ms * rho / (m1 - m2)


def solid_density_with_uncertainty(
    m_s: float,
    m_1: float,
    m_2: float,
    *,
    u_m_s: float,
    u_m_1: float,
    u_m_2: float,
    rho_liquid: float = ETHANOL_DENSITY_G_CM3,
    u_rho_liquid: float = 0.0,
) -> Measurement:
    """:func:`solid_density` with first-order propagation of independent uncertainties.

    With :math:`\\Delta = m_1 - m_2`,
    :math:`u_\\rho^2 = (\\rho_{IL}/\\Delta)^2 u_{m_S}^2 + (m_S/\\Delta)^2 u_{\\rho_{IL}}^2
    + (m_S\\rho_{IL}/\\Delta^2)^2 (u_{m_1}^2 + u_{m_2}^2)`.

    Parameters
    ----------
    m_s, m_1, m_2 : float
        Masses in g, as in :func:`solid_density`.
    u_m_s, u_m_1, u_m_2 : float
        Their standard uncertainties, g.
    rho_liquid : float, optional
        Liquid density, g/cm³.
    u_rho_liquid : float, optional
        Its standard uncertainty, g/cm³ (default 0).

    Returns
    -------
    Measurement
        Solid density and its standard uncertainty, g/cm³.
    """
    ms, m1, m2, rho = _check_masses(m_s, m_1, m_2, rho_liquid)
    us = check_real("u_m_s", u_m_s, low=0.0)
    u1 = check_real("u_m_1", u_m_1, low=0.0)
    u2 = check_real("u_m_2", u_m_2, low=0.0)
    ur = check_real("u_rho_liquid", u_rho_liquid, low=0.0)
    delta = m1 - m2
    value = ms * rho / delta
    var = (rho / delta * us) ** 2 + (ms / delta * ur) ** 2 + (value / delta) ** 2 * (u1**2 + u2**2)
    return Measurement(value=value, uncertainty=math.sqrt(var))


def _check_densities(rho_effective_kg_m3: object, rho_solid_g_cm3: object) -> tuple[float, float]:
    eff = check_real("rho_effective_kg_m3", rho_effective_kg_m3, low=0.0, low_open=True) * _G_CM3_PER_KG_M3
    solid = check_real("rho_solid_g_cm3", rho_solid_g_cm3, low=0.0, low_open=True)
    if eff > solid:
        raise ValueError(
            f"rho_effective_kg_m3 ({rho_effective_kg_m3} kg/m³ = {eff:g} g/cm³) exceeds rho_solid_g_cm3 "
            f"({rho_solid_g_cm3} g/cm³): check the units (effective density in kg/m³, solid density in g/cm³)"
        )
    return eff, solid


def porosity_from_density(rho_effective_kg_m3: float, rho_solid_g_cm3: float) -> float:
    """Porosity ``1 - rho_eff / rho_solid`` of a foam.

    Parameters
    ----------
    rho_effective_kg_m3 : float
        Effective (bulk) density of the foam, kg/m³ (e.g. 154.93).
    rho_solid_g_cm3 : float
        Density of the solid, g/cm³ (e.g. 1.411 from :func:`solid_density`).

    Returns
    -------
    float
        Porosity as a fraction in [0, 1) (multiply by 100 for percent).
    """
    eff, solid = _check_densities(rho_effective_kg_m3, rho_solid_g_cm3)
    return 1.0 - eff / solid


def porosity_with_uncertainty(
    rho_effective_kg_m3: float,
    rho_solid_g_cm3: float,
    *,
    u_rho_effective_kg_m3: float,
    u_rho_solid_g_cm3: float,
) -> Measurement:
    """:func:`porosity_from_density` with first-order propagation of independent uncertainties.

    :math:`u_\\phi^2 = (u_{\\rho_\\text{eff}}/\\rho_S)^2 + (\\rho_\\text{eff}\\,u_{\\rho_S}/\\rho_S^2)^2`
    (both densities in g/cm³).

    Parameters
    ----------
    rho_effective_kg_m3 : float
        Effective density, kg/m³.
    rho_solid_g_cm3 : float
        Solid density, g/cm³.
    u_rho_effective_kg_m3 : float
        Standard uncertainty of the effective density, kg/m³.
    u_rho_solid_g_cm3 : float
        Standard uncertainty of the solid density, g/cm³.

    Returns
    -------
    Measurement
        Porosity and its standard uncertainty, as fractions.
    """
    eff, solid = _check_densities(rho_effective_kg_m3, rho_solid_g_cm3)
    u_eff = check_real("u_rho_effective_kg_m3", u_rho_effective_kg_m3, low=0.0) * _G_CM3_PER_KG_M3
    u_solid = check_real("u_rho_solid_g_cm3", u_rho_solid_g_cm3, low=0.0)
    value = 1.0 - eff / solid
    uncertainty = math.hypot(u_eff / solid, eff * u_solid / solid**2)
    return Measurement(value=value, uncertainty=uncertainty)


def mean_measurement(values: Sequence[float] | np.ndarray) -> Measurement:
    """Mean of repeated determinations with its type-A standard uncertainty.

    Parameters
    ----------
    values : sequence of float
        At least two repeated results (e.g. solid densities of several
        specimens, g/cm³).

    Returns
    -------
    Measurement
        Mean and standard error of the mean, ``s / sqrt(n)`` with the sample
        standard deviation ``s`` (``ddof=1``); same unit as ``values``.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"values must be a 1-d sequence of at least 2 numbers, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("values contain NaN or infinite numbers")
    return Measurement(value=float(arr.mean()), uncertainty=float(arr.std(ddof=1) / math.sqrt(arr.size)))


def solid_density_table(
    masses: Sequence[Sequence[float]],
    *,
    rho_liquid: float = ETHANOL_DENSITY_G_CM3,
    u_mass: float = 0.0,
    u_rho_liquid: float = 0.0,
):
    """The paper's Table 2: solid density of each pycnometer determination and their mean.

    Parameters
    ----------
    masses : sequence of (m_s, m_1, m_2)
        One triple per determination, in g (see the module docstring for
        what each mass is).
    rho_liquid : float, optional
        Density of the immersion liquid, g/cm³ (ethanol: 0.81).
    u_mass : float, optional
        Standard uncertainty of each weighing, g (e.g. a balance's 0.0001 g).
    u_rho_liquid : float, optional
        Standard uncertainty of ``rho_liquid``, g/cm³.

    Returns
    -------
    table : pandas.DataFrame
        One row per determination: ``m_s_g``, ``m_1_g``, ``m_2_g``,
        ``rho_s_g_cm3`` and its propagated ``u_rho_s_g_cm3``.
    mean : Measurement
        Mean solid density with its type-A uncertainty (:func:`mean_measurement`),
        or, for a single determination, its propagated uncertainty.
    """
    with requires_extra("study"):
        import pandas as pd

    rows = []
    for i, triple in enumerate(masses):
        if len(triple) != 3:
            raise ValueError(f"masses[{i}] must be (m_s, m_1, m_2) in g, got {triple!r}")
        m_s, m_1, m_2 = triple
        rho = solid_density_with_uncertainty(m_s, m_1, m_2, u_m_s=u_mass, u_m_1=u_mass, u_m_2=u_mass,
                                             rho_liquid=rho_liquid, u_rho_liquid=u_rho_liquid)  # fmt: skip
        rows.append({"m_s_g": m_s, "m_1_g": m_1, "m_2_g": m_2, "rho_s_g_cm3": rho.value, "u_rho_s_g_cm3": rho.uncertainty})
    if not rows:
        raise ValueError("masses must hold at least one (m_s, m_1, m_2) triple")
    table = pd.DataFrame(rows, index=pd.RangeIndex(1, len(rows) + 1, name="determination"))
    if len(rows) == 1:
        mean = Measurement(rows[0]["rho_s_g_cm3"], rows[0]["u_rho_s_g_cm3"])
    else:
        mean = mean_measurement(table["rho_s_g_cm3"].to_numpy())
    return table, mean


def porosity_table(
    effective_densities_kg_m3,
    solid_density: Measurement,
    *,
    u_effective_kg_m3: float = 0.0,
):
    """The paper's Table 3: porosity of each foam from its effective density.

    Parameters
    ----------
    effective_densities_kg_m3 : mapping of str to float
        Sample name and effective (bulk) density, kg/m³.
    solid_density : Measurement
        Solid density and its uncertainty, g/cm³ (from :func:`solid_density_table`
        or the paper's 1.411 g/cm³).
    u_effective_kg_m3 : float, optional
        Standard uncertainty of each effective density, kg/m³.

    Returns
    -------
    pandas.DataFrame
        Index: sample. Columns ``rho_eff_kg_m3``, ``porosity`` and
        ``u_porosity`` (fractions); no rows, with these columns, for no sample.
    """
    with requires_extra("study"):
        import pandas as pd

    rows = {}
    for name, rho_eff in effective_densities_kg_m3.items():
        phi = porosity_with_uncertainty(rho_eff, solid_density.value, u_rho_effective_kg_m3=u_effective_kg_m3,
                                        u_rho_solid_g_cm3=solid_density.uncertainty)  # fmt: skip
        rows[name] = {"rho_eff_kg_m3": rho_eff, "porosity": phi.value, "u_porosity": phi.uncertainty}
    columns = ["rho_eff_kg_m3", "porosity", "u_porosity"]  # also when there is no sample (no rows)
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("sample")
