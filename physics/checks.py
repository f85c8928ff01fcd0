"""Input checks and configuration helpers shared by every layer (public: ``relaxomap.physics.checks``).

Every error names ``owner.field``, the bad value and what is allowed, so a user who typed ``--ti 12000``
for a ``--tr 9000`` protocol knows what to change. The configuration dataclasses of all layers
(``Protocol``, ``PhantomConfig``, ``SynthConfig``, ``ModelConfig``, ``TrainConfig``, ...) validate their
fields with these helpers in ``__post_init__`` and are built from JSON with :func:`config_from_dict`.
This module imports nothing from relaxomap, so any module of any layer may use it.

Number checks (each returns the checked value, converted)
--------------------------------------------------------
- :func:`check_finite_range` : one finite number in an interval (open or closed at either end) -> float.
- :func:`check_int_range` : one integer in a closed interval -> int.
- :func:`check_range_pair` : a ``[min, max]`` range inside an interval -> (min, max).
- :func:`check_sequence` : a fixed (or bounded) number of numbers, each in an interval -> tuple.
- :func:`check_bool` : a flag (``True`` / ``False``, NumPy's included; integers refused) -> bool.

``strict=True`` (the number checks) refuses anything that is not already a Python ``int`` / ``float``
(``bool``, strings and NumPy scalars included) with a TypeError, instead of converting it.

Array checks
------------
- :func:`check_map_array` : a relaxation / PD / B1 map of any shape is finite and >= 0 (or > 0); returns None
  and raises ValueError naming the map, the count and the first bad flat index.

Configuration helpers
---------------------
- :func:`config_from_dict` : a frozen config dataclass from a JSON dict, refusing unknown fields (lists become
  tuples; nested configs built with their own ``from_dict``).
- :func:`config_differences` : the fields two configuration dicts disagree on, one ``"field: saved X vs
  requested Y"`` line each (refusing a resume, a store rerun or a checkpoint with other settings).
- :data:`ABSENT` : stands for a field present on one side only in :func:`config_differences` (``<absent>``).

Private: ``_interval`` (the ``"(0, 9000]"`` text of an interval in messages), ``_as_plain`` (tuples and lists
compared alike in :func:`config_differences`).
"""
from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any, Mapping

import numpy as np

__all__ = [
    "check_finite_range",
    "check_int_range",
    "check_range_pair",
    "check_sequence",
    "check_bool",
    "check_map_array",
    "config_from_dict",
    "config_differences",
    "ABSENT",
]


def _interval(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    """``"(0, 9000]"``-style text of an interval."""
    return f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def check_finite_range(owner: str, field: str, value: float, lo: float, hi: float, *,
                       lo_open: bool = False, hi_open: bool = False, strict: bool = False) -> float:
    """Return ``float(value)`` if it is finite and inside the interval, else raise.

    Parameters
    ----------
    owner, field : names used in the message, e.g. ``"Protocol"``, ``"ti_ms"``.
    value : the value to check; converted with ``float()`` unless ``strict``.
    lo, hi : interval bounds (``math.inf`` allowed for ``hi``).
    lo_open, hi_open : whether the bound itself is excluded.
    strict : only a Python ``int`` or ``float`` (not ``bool``) is accepted; the range message then also
        names the expected type ("must be a finite number in ...").

    Raises
    ------
    TypeError
        ``value`` is not a number: "TrainConfig.lr must be a number in (0, 10]; got 'fast'".
    ValueError
        NaN, infinity or outside the interval: "Protocol.ti_ms must be in (0, 9000); got 12000.0".
    """
    allowed = _interval(lo, hi, lo_open, hi_open)
    if strict and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise TypeError(f"{owner}.{field} must be a number in {allowed}; got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}.{field} must be a number in {allowed}; got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{owner}.{field} must be a finite number in {allowed}; got {v}")
    too_low = v <= lo if lo_open else v < lo
    too_high = v >= hi if hi_open else v > hi
    if too_low or too_high:
        what = "a finite number in" if strict else "in"
        raise ValueError(f"{owner}.{field} must be {what} {allowed}; got {v}")
    return v


def check_int_range(owner: str, field: str, value: int, lo: int, hi: int, *, strict: bool = False) -> int:
    """Return ``value`` as an ``int`` if it is an integer in ``[lo, hi]``, else raise.

    Parameters
    ----------
    owner, field : names used in the message.
    value : the value to check. Unless ``strict``, any integral number is accepted (``3``, ``3.0``,
        ``numpy.int64(3)``) and a ``bool`` or a fractional / non-finite number raises ValueError.
    lo, hi : inclusive bounds.
    strict : only a Python ``int`` (not ``bool``) is accepted; anything else raises TypeError.

    Raises
    ------
    TypeError
        With ``strict``, a value that is not an ``int``; otherwise a value ``float()`` cannot read.
    ValueError
        Out of range, or (not strict) a bool or a number that is not integral:
        "EPGDictionary.n_t2 must be an integer in [2, 4096]; got 1".
    """
    message = f"{owner}.{field} must be an integer in [{lo}, {hi}]; got {value!r}"
    if strict:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(message)
        v = value
    else:
        if isinstance(value, bool):
            raise ValueError(message)
        try:
            v = operator.index(value)  # exact for int and NumPy integers, however large
        except TypeError:
            try:
                f = float(value)
            except (TypeError, ValueError) as err:
                raise type(err)(message) from None
            if not f.is_integer():  # also NaN and inf
                raise ValueError(message)
            v = int(f)
    if v < lo or v > hi:
        raise ValueError(f"{owner}.{field} must be an integer in [{lo}, {hi}]; got {v}")
    return v


def check_range_pair(owner: str, field: str, value: Any, lo: float, hi: float, *, integer: bool = False,
                     lo_open: bool = False, hi_open: bool = False, distinct: bool = False) -> tuple:
    """Return a ``[min, max]`` range with ``lo <= min <= max <= hi`` as a tuple, else raise.

    Parameters
    ----------
    owner, field : names used in the message.
    value : two numbers (a list from JSON, a tuple, a (2,) array).
    lo, hi : bounds of the interval both ends must lie in.
    integer : both ends must be integral (``bool`` is refused); they are returned as ``int``.
    lo_open, hi_open : the bound itself is excluded (``lo < min`` / ``max < hi``).
    distinct : require ``min < max`` (e.g. the bounds of an open interval), not just ``min <= max``.

    Returns
    -------
    (min, max) as two floats, or two ints with ``integer``.

    Raises
    ------
    TypeError
        Not a pair of numbers.
    ValueError
        An end not finite, not integral (``integer``), min above max, or outside the interval:
        "ArtefactConfig.snr must be a pair [min, max] of finite numbers with 0 < min <= max <= 1e+06;
        got [50.0, 10.0] (min > max)".
    """
    kind = "integers" if integer else "finite numbers"
    need = (f"a pair [min, max] of {kind} with {lo:g} {'<' if lo_open else '<='} min {'<' if distinct else '<='} "
            f"max {'<' if hi_open else '<='} {hi:g}")
    try:
        a, b = value
        fa, fb = float(a), float(b)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}.{field} must be {need}; got {value!r}") from None
    got = f"[{fa}, {fb}]"
    if not (math.isfinite(fa) and math.isfinite(fb)):
        reason = "not finite"
    elif integer and (isinstance(a, bool) or isinstance(b, bool) or not (fa.is_integer() and fb.is_integer())):
        reason = "not integers"
    elif fa > fb or (distinct and fa == fb):
        reason = "min >= max" if distinct else "min > max"
    elif (fa <= lo if lo_open else fa < lo) or (fb >= hi if hi_open else fb > hi):
        reason = "outside the range"
    else:
        return (int(fa), int(fb)) if integer else (fa, fb)
    raise ValueError(f"{owner}.{field} must be {need}; got {got} ({reason})")


def check_sequence(owner: str, field: str, value: Any, lo: float, hi: float, *, length: int | tuple[int, int],
                   integer: bool = False, strict: bool = False, lo_open: bool = False, hi_open: bool = False) -> tuple:
    """Return ``value`` as a tuple of ``length`` numbers, each checked like a scalar field, else raise.

    Each entry goes through :func:`check_finite_range` (or :func:`check_int_range` with ``integer``, whose
    bounds are closed) under the name ``field[i]``, so the message points at the bad entry.

    Parameters
    ----------
    owner, field : names used in the message.
    value : any iterable (a list from JSON, a tuple, an array).
    lo, hi, lo_open, hi_open, strict : the interval and type rule of every entry (see the scalar checks).
    length : the exact number of entries, or its inclusive ``(min, max)``.
    integer : the entries are integers (returned as ``int``; ``lo_open`` / ``hi_open`` do not apply).

    Raises
    ------
    TypeError
        Not iterable, or an entry of the wrong type.
    ValueError
        The wrong number of entries, or an entry out of range: "AugmentConfig.flip_prob[0] must be in
        [0, 1]; got 1.5".
    """
    n_lo, n_hi = (length, length) if isinstance(length, int) else length
    count = f"{n_lo}" if n_lo == n_hi else f"{n_lo} to {n_hi}"
    allowed = f"[{lo}, {hi}]" if integer else _interval(lo, hi, lo_open, hi_open)
    what = "integers" if integer else "numbers"
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(f"{owner}.{field} must be {count} {what} in {allowed}; got {value!r}") from None
    if not n_lo <= len(items) <= n_hi:
        raise ValueError(f"{owner}.{field} must have {count} entries ({what} in {allowed}); "
                         f"got {len(items)}: {value!r}")
    if integer:
        return tuple(check_int_range(owner, f"{field}[{i}]", v, lo, hi, strict=strict) for i, v in enumerate(items))
    return tuple(check_finite_range(owner, f"{field}[{i}]", v, lo, hi, lo_open=lo_open, hi_open=hi_open,
                                    strict=strict) for i, v in enumerate(items))


def check_bool(owner: str, field: str, value: Any) -> bool:
    """Return ``value`` as a ``bool`` if it is ``True`` / ``False`` (NumPy's included), else raise TypeError.

    Integers are refused: ``1`` for a flag is more often a misplaced value than a deliberate ``True``.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{owner}.{field} must be True or False; got {value!r}")
    return bool(value)


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
    lo, hi = a.min(), a.max()  # two reductions, no temporaries: NaN propagates into both, +-inf shows in one
    if np.isfinite(lo) and np.isfinite(hi) and (lo >= 0 if allow_zero else lo > 0):
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


def config_from_dict(cls: type, d: Any, nested: Mapping[str, type] | None = None) -> Any:
    """Build a frozen config dataclass from a plain dict (JSON), refusing unknown fields.

    Missing fields take the dataclass defaults; values are validated by the class's ``__post_init__``.

    Parameters
    ----------
    cls : the dataclass; its name is the owner in messages.
    d : field values. Lists become tuples (and lists inside them tuples too), as JSON has no tuples.
    nested : field name -> config class for fields holding another config: a dict there is built with
        that class's ``from_dict`` (anything else is left for ``__post_init__`` to accept or refuse).

    Raises
    ------
    TypeError
        ``d`` is not a dict: "SynthConfig.from_dict needs a dict (a JSON object); got list".
    ValueError
        Unknown fields, listing them and the allowed ones.
    """
    owner = cls.__name__
    if not isinstance(d, dict):
        raise TypeError(f"{owner}.from_dict needs a dict (a JSON object); got {type(d).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - fields
    if unknown:
        raise ValueError(f"{owner}: unknown field(s) {sorted(unknown)}; allowed: {sorted(fields)}")
    kw: dict[str, Any] = {}
    for k, v in d.items():
        if nested and k in nested and isinstance(v, dict):
            v = nested[k].from_dict(v)
        elif isinstance(v, list):
            v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        kw[k] = v
    return cls(**kw)


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


#: Stands for a field present on one side of :func:`config_differences` only (shown as ``<absent>``).
ABSENT: Any = _Absent()


def _as_plain(value: Any) -> Any:
    # Tuples and lists compare equal (a JSON round trip turns one into the other).
    if isinstance(value, (list, tuple)):
        return [_as_plain(v) for v in value]
    return value


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any],
                       labels: tuple[str, str] = ("saved", "requested")) -> list[str]:
    """Lines ``"field: <labels[0]> <old> vs <labels[1]> <new>"`` for every field whose values differ.

    Nested mappings are compared field by field with dotted names (``texture.scale_mm``); a field present on
    one side only shows ``<absent>`` on the other; tuples and lists with equal items are equal. Fields are
    listed in ``old``'s order, then those only ``new`` has.
    """
    lines: list[str] = []

    def walk(prefix: str, a: Any, b: Any) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in list(a) + [k for k in b if k not in a]:
                walk(f"{prefix}.{key}" if prefix else str(key), a.get(key, ABSENT), b.get(key, ABSENT))
        elif _as_plain(a) != _as_plain(b):
            lines.append(f"{prefix}: {labels[0]} {_as_plain(a)!r} vs {labels[1]} {_as_plain(b)!r}")

    walk("", old, new)
    return lines
