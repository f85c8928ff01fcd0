"""Input checks shared by the physics layer: one helper per kind of check.

Every error names the field, the bad value and what is allowed, so a user who
typed ``--ti 12000`` for a ``--tr 9000`` protocol knows what to change.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["check_finite_range", "check_map_array", "check_int_range"]


def check_finite_range(
    owner: str,
    field: str,
    value: float,
    lo: float,
    hi: float,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Return ``float(value)`` if it is finite and inside the interval, else raise.

    Parameters
    ----------
    owner, field : names used in the message, e.g. ``"Protocol"``, ``"ti_ms"``.
    value : the value to check.
    lo, hi : interval bounds (``math.inf`` allowed for ``hi``).
    lo_open, hi_open : whether the bound itself is excluded.

    Raises
    ------
    ValueError
        "Protocol.ti_ms must be in (0, 9000.0); got 12000.0".
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}.{field} must be a number; got {value!r}") from None
    left = "(" if lo_open else "["
    right = ")" if hi_open else "]"
    allowed = f"{left}{lo:g}, {hi:g}{right}"
    if not math.isfinite(v):
        raise ValueError(f"{owner}.{field} must be a finite number in {allowed}; got {v}")
    too_low = v <= lo if lo_open else v < lo
    too_high = v >= hi if hi_open else v > hi
    if too_low or too_high:
        raise ValueError(f"{owner}.{field} must be in {allowed}; got {v:g}")
    return v


def check_int_range(owner: str, field: str, value: int, lo: int, hi: int) -> int:
    """Return ``int(value)`` if it is an integer in ``[lo, hi]``, else raise ValueError."""
    if isinstance(value, bool) or not float(value).is_integer():
        raise ValueError(f"{owner}.{field} must be an integer in [{lo}, {hi}]; got {value!r}")
    v = int(value)
    if v < lo or v > hi:
        raise ValueError(f"{owner}.{field} must be an integer in [{lo}, {hi}]; got {v}")
    return v


def check_map_array(name: str, arr: np.ndarray, *, allow_zero: bool = True) -> None:
    """Raise ValueError if a relaxation/PD map holds NaN, inf or negative values.

    Parameters
    ----------
    name : field name used in the message (``"t1_ms"``).
    arr : array of any shape.
    allow_zero : zeros are background and allowed by default.
    """
    a = np.asarray(arr)
    if a.size == 0:
        return
    bad_nan = ~np.isfinite(a)
    if bad_nan.any():
        idx = int(np.flatnonzero(bad_nan.ravel())[0])
        raise ValueError(
            f"{name} holds {int(bad_nan.sum())} non-finite value(s) (first at flat index {idx}: "
            f"{a.ravel()[idx]}); maps must be finite and >= 0"
        )
    bad_neg = a < 0 if allow_zero else a <= 0
    if bad_neg.any():
        idx = int(np.flatnonzero(bad_neg.ravel())[0])
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(
            f"{name} holds {int(bad_neg.sum())} value(s) outside {allowed} (first at flat index {idx}: "
            f"{a.ravel()[idx]:g})"
        )
