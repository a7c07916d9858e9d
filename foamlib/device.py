"""Choosing the device that runs a network.

Every function in foamlib that runs a model takes a ``device=`` argument and
passes it through :func:`pick_device`, so there is one place that decides what
``None``, ``"auto"``, ``"cuda:1"`` and friends mean. Nothing here changes global
torch state: on the CPU the number of threads stays whatever the caller set;
:func:`cpu_threads` says how many cores this process may use, for callers that
want to set it themselves (``torch.set_num_threads(cpu_threads())``).
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING

from .checks import check_int

if TYPE_CHECKING:  # torch is imported where it is used, so cpu_threads() does not load it
    import torch

__all__ = ["pick_device", "cpu_threads", "idle_cpus"]

logger = logging.getLogger(__name__)

_CUDA_PATTERN = re.compile(r"^cuda(?::(\d+))?$")


def cpu_threads() -> int:
    """Number of CPU cores this process may run on.

    Returns
    -------
    int
        ``len(os.sched_getaffinity(0))`` where the platform has it (it honours
        CPU pinning by ``taskset``, cgroups and batch schedulers), else
        :func:`os.cpu_count`, else 1.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    return max(1, n)


def idle_cpus(*, cpus: int | None = None, load: float | None = None) -> int:
    """Cores of this process's share that other work leaves idle now.

    On a machine shared with other jobs, starting as many busy threads as
    there are cores makes every thread wait for a core; a study then runs many
    times slower than with fewer threads. Call this before starting one's own
    work, so that the load is other processes'.

    Parameters
    ----------
    cpus : int, optional
        Cores this process may use; default :func:`cpu_threads`.
    load : float, optional
        Runnable processes on the machine; default the one-minute load average
        (:func:`os.getloadavg`; 0 where the platform has none).

    Returns
    -------
    int
        ``cpus - round(load)``, at least 1 and at most ``cpus``.

    Raises
    ------
    ValueError
        If ``cpus`` is below 1 or ``load`` is negative or not finite.
    """
    cpus = cpu_threads() if cpus is None else cpus
    cpus = check_int("cpus", cpus, low=1)
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # not on Unix
            load = 0.0
    if not (load >= 0 and load != float("inf")):
        raise ValueError(f"load must be a finite number >= 0, got {load!r}")
    return max(1, min(cpus, cpus - round(load)))


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """Turn a device request into a :class:`torch.device` that exists here.

    Parameters
    ----------
    device : str, torch.device or None, optional
        ``None`` or ``"auto"``: the first CUDA GPU if one is available, else the
        CPU. ``"cpu"``, ``"cuda"`` (the current CUDA device), ``"cuda:N"`` or a
        :class:`torch.device` of type ``cpu`` or ``cuda``: that device, which
        must be available.

    Returns
    -------
    torch.device
        The chosen device. ``"cuda"`` is returned with its index filled in
        (``cuda:0`` unless the caller changed the current device).

    Raises
    ------
    ValueError
        If the request is not one of the forms above, or names a CUDA device
        that this machine does not have.

    Examples
    --------
    >>> pick_device("cpu")
    device(type='cpu')
    """
    import torch

    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        chosen = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
        logger.debug("pick_device(%r) -> %s", device, chosen)
        return chosen

    if isinstance(device, torch.device):
        kind, index = device.type, device.index
    elif isinstance(device, str):
        text = device.strip().lower()
        if text == "cpu":
            kind, index = "cpu", None
        else:
            match = _CUDA_PATTERN.match(text)
            if match is None:
                raise ValueError(
                    f"unknown device {device!r}: use None, 'auto', 'cpu', 'cuda' or 'cuda:N'"
                )
            kind = "cuda"
            index = int(match.group(1)) if match.group(1) is not None else None
    else:
        raise ValueError(
            f"unknown device {device!r} (type {type(device).__name__}): "
            "use None, 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device"
        )

    if kind == "cpu":
        return torch.device("cpu")
    if kind != "cuda":
        raise ValueError(f"unsupported device {device!r}: foamlib runs on 'cpu' or 'cuda' devices")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested, but CUDA is not available on this machine")
    count = torch.cuda.device_count()
    if index is None:
        index = torch.cuda.current_device()
    if index >= count:
        raise ValueError(
            f"device {device!r} requested, but this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
        )
    return torch.device("cuda", index)
