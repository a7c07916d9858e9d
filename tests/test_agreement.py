"""A segmentation of the scan that is one phase everywhere is refused (foamlib.agreement.check_two_phases)."""

import numpy as np
import pytest

from foamlib.agreement import ONE_PHASE, OnePhaseError, check_two_phases


@pytest.mark.parametrize("porosity, phase", [(0.0, "solid"), (ONE_PHASE / 2, "solid"), (1.0, "pore"), (0.9999, "pore")])
def test_one_phase_where_otsu_finds_both_is_refused_with_the_numbers(porosity, phase):
    with pytest.raises(OnePhaseError, match=rf"the step-2 U-Net marks .* of sand {phase}, where Otsu's threshold finds 42\.0% pore"):
        check_two_phases(porosity, 0.42, what="the step-2 U-Net", scan="sand")


@pytest.mark.parametrize("porosity, otsu", [(0.35, 0.42), (ONE_PHASE, 0.42), (1 - ONE_PHASE, 0.5), (0.0, 0.005), (1.0, 0.995),
                                            (np.float64(0.2), np.float32(0.3))])
def test_two_phases_or_a_scan_that_otsu_finds_one_phase_pass(porosity, otsu):
    check_two_phases(porosity, otsu)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.4", None])
def test_a_porosity_that_is_no_fraction_is_an_error(bad):
    with pytest.raises(ValueError, match="must be a fraction"):
        check_two_phases(bad, 0.4)
    with pytest.raises(ValueError, match="must be a fraction"):
        check_two_phases(0.4, bad)
