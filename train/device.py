"""Which torch device a ``--device`` value means: the one rule used by training, prediction, evaluation and the
benchmark.

Rule (:func:`resolve_device`):

- ``"auto"`` (also ``None`` or ``""``): ``cuda:<local_rank mod device count>`` when CUDA is available, else
  ``mps`` when Apple's Metal backend is available, else ``cpu``;
- ``"cpu"``, ``"mps"``, ``"cuda"`` and ``"cuda:N"``: that device; a plain ``"cuda"`` gets the index
  ``local_rank mod device count`` (each ``torchrun`` process its own GPU, ``cuda:0`` for a single process);
- a requested device that this machine lacks, or any other value, is a ValueError naming it.

``local_rank`` is the process's rank on its node (0 outside ``torchrun``).
"""
from __future__ import annotations

from typing import Any

__all__ = ["DEVICE_CHOICES", "resolve_device"]

#: The values ``--device`` accepts (``N`` is a CUDA device index).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def _mps_available(torch: Any) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def resolve_device(spec: str | None = "auto", local_rank: int = 0) -> Any:
    """The ``torch.device`` of a ``--device`` value (rule in the module docstring).

    Parameters
    ----------
    spec : ``"auto"`` (or None / ``""``), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    local_rank : this process's rank on its node; picks the GPU of ``"auto"`` and of a plain ``"cuda"``.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError : ``spec`` is not one of :data:`DEVICE_CHOICES`, or names a device this machine does not have.
    """
    import torch

    if spec in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("mps") if _mps_available(torch) else torch.device("cpu")
    allowed = ", ".join(repr(c) for c in DEVICE_CHOICES)
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be one of {allowed}; got {spec!r}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be one of {allowed}; got {spec!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {spec!r} requested but CUDA is not available on this machine; use 'cpu'")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    if device.type == "mps" and not _mps_available(torch):
        raise ValueError(f"device {spec!r} requested but MPS is not available on this machine; use 'cpu'")
    return device
