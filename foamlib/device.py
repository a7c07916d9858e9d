"""Choosing the device that runs a network.

Every function in foamlib that runs a model takes a ``device=`` argument and
passes it through :func:`pick_device`, so there is one place that decides what
``None``, ``"auto"``, ``"cuda:1"`` and friends mean. Nothing here changes global
torch state: on the CPU the number of threads stays whatever the caller set;
:func:`cpu_threads` says how many cores this process may use, for callers that
want to set it themselves (``torch.set_num_threads(cpu_threads())``).

Mixed precision on a GPU is one setting, ``precision`` (CLI ``--precision``),
resolved by :func:`pick_precision` and applied by :func:`autocast` around the
forward passes of inference and training (and :func:`grad_scaler` for fp16
training): ``"auto"`` is bf16 on a CUDA device that supports it and fp32
everywhere else, so the CPU path is unchanged bit for bit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from typing import TYPE_CHECKING, Any

from .checks import check_int

if TYPE_CHECKING:  # torch is imported where it is used, so cpu_threads() does not load it
    import torch

__all__ = ["pick_device", "cpu_threads", "idle_cpus", "PRECISIONS", "pick_precision", "autocast", "grad_scaler"]

#: Values of the ``precision`` setting: ``"auto"`` and the three a run can use.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

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


def pick_precision(precision: str = "auto", device: str | torch.device | None = None) -> str:
    """Turn a precision request into the arithmetic a run on ``device`` uses.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16", "fp16"}, optional
        ``"auto"`` (default): bf16 on a CUDA device that supports it
        (``torch.cuda.is_bf16_supported()``, compute capability 8.0 and up),
        else fp32. ``"fp32"``: full precision everywhere. ``"bf16"``,
        ``"fp16"``: autocast to that type, on a CUDA device only.
    device : str, torch.device or None, optional
        The device of the run, as for :func:`pick_device`.

    Returns
    -------
    str
        ``"fp32"``, ``"bf16"`` or ``"fp16"``.

    Raises
    ------
    ValueError
        If ``precision`` is not one of :data:`PRECISIONS`, or asks for bf16 or
        fp16 on the CPU (the CPU path runs fp32 only), or for bf16 on a GPU
        without it.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    import torch

    dev = device if isinstance(device, torch.device) else pick_device(device)
    if dev.type != "cuda":
        if precision in ("bf16", "fp16"):
            raise ValueError(
                f"precision {precision!r} needs a CUDA device, but the run is on {dev}; "
                "the CPU runs fp32 (use precision 'auto' or 'fp32', --precision auto)"
            )
        return "fp32"
    if precision == "auto":
        chosen = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        logger.debug("pick_precision('auto', %s) -> %s", dev, chosen)
        return chosen
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision 'bf16' requested, but {dev} does not support bfloat16; use 'fp16' or 'fp32'")
    return precision


def autocast(device: torch.device, precision: str) -> Any:
    """Context manager that runs the forward passes inside it at ``precision``.

    Parameters
    ----------
    device : torch.device
        The device the model runs on.
    precision : {"fp32", "bf16", "fp16"}
        As returned by :func:`pick_precision`.

    Returns
    -------
    context manager
        :class:`torch.autocast` to bfloat16 or float16 on CUDA; a context
        that changes nothing for ``"fp32"``.

    Raises
    ------
    ValueError
        If ``precision`` is not a resolved precision, or is bf16/fp16 on a
        device other than CUDA.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    if precision not in ("bf16", "fp16"):
        raise ValueError(f"precision must be 'fp32', 'bf16' or 'fp16' (see pick_precision), got {precision!r}")
    if device.type != "cuda":
        raise ValueError(f"precision {precision!r} runs on a CUDA device only, not on {device}")
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def grad_scaler(device: torch.device, precision: str) -> Any:
    """The :class:`torch.amp.GradScaler` a training step at ``precision`` needs (enabled for fp16 only).

    A disabled scaler passes ``scale(loss)``, ``step(optimizer)`` and
    ``update()`` straight through, so the fp32 and bf16 steps are unchanged.
    """
    import torch

    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
