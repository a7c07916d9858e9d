"""Threads for a shared machine: the cores other work leaves idle."""
from __future__ import annotations

import pytest

from foamlib.device import cpu_threads, idle_cpus


def test_idle_cpus_subtracts_the_load_of_other_work():
    assert idle_cpus(cpus=8, load=0.0) == 8
    assert idle_cpus(cpus=8, load=2.6) == 5
    assert idle_cpus(cpus=2, load=7.0) == 1  # never below one
    assert idle_cpus(cpus=4, load=0.4) == 4
    assert 1 <= idle_cpus() <= cpu_threads()


@pytest.mark.parametrize(("kwargs", "match"), [({"cpus": 0}, "cpus"), ({"cpus": 2, "load": -1.0}, "load"),
                                               ({"cpus": 2, "load": float("nan")}, "load")])
def test_idle_cpus_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        idle_cpus(**kwargs)
