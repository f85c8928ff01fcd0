"""The shared input checks of physics/checks.py: accepted values, returned types, messages, edge cases."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from relaxomap.physics.checks import (
    config_differences,
    check_bool,
    check_finite_range,
    check_int_range,
    check_range_pair,
    check_sequence,
    config_from_dict,
)


# ------------------------------------------------------------------------------------------ check_finite_range
def test_finite_range_returns_float_and_honours_bounds() -> None:
    assert check_finite_range("P", "x", 3, 0.0, 5.0) == 3.0
    assert type(check_finite_range("P", "x", np.float32(2.5), 0.0, 5.0)) is float
    assert check_finite_range("P", "x", 0.0, 0.0, 5.0) == 0.0  # closed bounds include the ends
    assert check_finite_range("P", "x", 5.0, 0.0, 5.0) == 5.0
    with pytest.raises(ValueError, match=r"^P\.x must be in \(0, 5\]; got 0\.0$"):
        check_finite_range("P", "x", 0.0, 0.0, 5.0, lo_open=True)
    with pytest.raises(ValueError, match=r"^P\.x must be in \[0, 5\); got 5\.0$"):
        check_finite_range("P", "x", 5.0, 0.0, 5.0, hi_open=True)
    with pytest.raises(ValueError, match=r"P\.x must be in \[0, 5\]; got -1e-09"):
        check_finite_range("P", "x", -1e-9, 0.0, 5.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_finite_range_refuses_non_finite(bad: float) -> None:
    with pytest.raises(ValueError, match=r"P\.x must be a finite number in \[0, inf\]; got"):
        check_finite_range("P", "x", bad, 0.0, math.inf)


def test_finite_range_strict_refuses_non_numbers() -> None:
    assert check_finite_range("P", "x", True, 0.0, 5.0) == 1.0  # lenient: float(True)
    for bad in (True, "1.5", np.float32(1.0), None):
        with pytest.raises(TypeError, match=r"P\.x must be a number in \(0, 10\]; got"):
            check_finite_range("P", "x", bad, 0.0, 10.0, lo_open=True, strict=True)
    with pytest.raises(TypeError, match=r"P\.x must be a number in \[0, 1\]; got 'abc'"):
        check_finite_range("P", "x", "abc", 0.0, 1.0)
    # strict range message also names the expected type
    with pytest.raises(ValueError, match=r"^P\.x must be a finite number in \(0, 10\]; got -1\.0$"):
        check_finite_range("P", "x", -1, 0.0, 10.0, lo_open=True, strict=True)


def test_finite_range_min_above_max_accepts_nothing() -> None:
    for v in (0.0, 0.5, 1.0):
        with pytest.raises(ValueError, match=r"P\.x must be in \[1, 0\]"):
            check_finite_range("P", "x", v, 1.0, 0.0)


# ------------------------------------------------------------------------------------------ check_int_range
def test_int_range_lenient_accepts_integral_numbers() -> None:
    assert check_int_range("P", "n", 3, 1, 5) == 3
    assert check_int_range("P", "n", 3.0, 1, 5) == 3 and type(check_int_range("P", "n", 3.0, 1, 5)) is int
    assert check_int_range("P", "n", np.int64(4), 1, 5) == 4
    big = 2**63 - 1  # exact, not rounded through float
    assert check_int_range("P", "n", big, 0, big) == big


@pytest.mark.parametrize("bad", [True, False, 2.5, math.nan, math.inf])
def test_int_range_lenient_refuses_bool_and_fractions(bad) -> None:
    with pytest.raises(ValueError, match=r"P\.n must be an integer in \[0, 5\]; got"):
        check_int_range("P", "n", bad, 0, 5)


def test_int_range_messages_and_strict() -> None:
    with pytest.raises(ValueError, match=r"^P\.n must be an integer in \[1, 5\]; got 6$"):
        check_int_range("P", "n", 6, 1, 5)
    with pytest.raises(TypeError, match=r"P\.n must be an integer in \[1, 5\]; got None"):
        check_int_range("P", "n", None, 1, 5)
    with pytest.raises(ValueError, match=r"P\.n must be an integer in \[1, 5\]; got 'x'"):
        check_int_range("P", "n", "x", 1, 5)
    for bad in (True, 3.0, np.int64(3), "3"):
        with pytest.raises(TypeError, match=r"P\.n must be an integer in \[1, 5\]; got"):
            check_int_range("P", "n", bad, 1, 5, strict=True)
    with pytest.raises(ValueError, match=r"P\.n must be an integer in \[5, 1\]; got 3"):
        check_int_range("P", "n", 3, 5, 1)  # min > max: nothing is allowed


# ------------------------------------------------------------------------------------------ check_range_pair
def test_range_pair_returns_tuples() -> None:
    assert check_range_pair("P", "r", [1, 2], 0.0, 5.0) == (1.0, 2.0)
    assert check_range_pair("P", "r", np.array([2.0, 2.0]), 0.0, 5.0) == (2.0, 2.0)  # min == max allowed
    got = check_range_pair("P", "r", [2.0, 4], 1, 8, integer=True)
    assert got == (2, 4) and all(type(v) is int for v in got)


@pytest.mark.parametrize("value, kw, reason", [
    ([3.0, 1.0], {}, "min > max"),
    ([1.0, 1.0], {"distinct": True}, "min >= max"),
    ([math.nan, 1.0], {}, "not finite"),
    ([1.0, math.inf], {}, "not finite"),
    ([0.0, 1.0], {"lo_open": True}, "outside the range"),
    ([1.0, 5.0], {"hi_open": True}, "outside the range"),
    ([-1.0, 1.0], {}, "outside the range"),
    ([1.5, 2.0], {"integer": True}, "not integers"),
    ([True, 2], {"integer": True}, "not integers"),
])
def test_range_pair_refusals_name_field_value_range_and_reason(value, kw, reason: str) -> None:
    with pytest.raises(ValueError) as err:
        check_range_pair("Owner", "span_ms", value, 0.0, 5.0, **kw)
    msg = str(err.value)
    assert msg.startswith("Owner.span_ms must be a pair [min, max] of"), msg
    assert msg.endswith(f"({reason})"), msg
    assert "0" in msg and "5" in msg and "got [" in msg, msg


def test_range_pair_message_spells_the_bounds() -> None:
    with pytest.raises(ValueError, match=r"^P\.r must be a pair \[min, max\] of finite numbers with "
                                         r"0 < min < max <= 10; got \[3\.0, 3\.0\] \(min >= max\)$"):
        check_range_pair("P", "r", (3, 3), 0.0, 10.0, lo_open=True, distinct=True)
    with pytest.raises(ValueError, match=r"of integers with 1 <= min <= max < 8; got \[2\.0, 8\.0\]"):
        check_range_pair("P", "r", (2, 8), 1, 8, integer=True, hi_open=True)


@pytest.mark.parametrize("bad", [5, None, [1.0], [1.0, 2.0, 3.0], ["a", 1.0]])
def test_range_pair_refuses_non_pairs(bad) -> None:
    with pytest.raises(TypeError, match=r"P\.r must be a pair \[min, max\] of finite numbers with 0 <= min <= max "
                                        r"<= 1; got"):
        check_range_pair("P", "r", bad, 0.0, 1.0)


# ------------------------------------------------------------------------------------------ check_sequence
def test_sequence_checks_each_entry_by_index() -> None:
    assert check_sequence("P", "v", [0.1, 0.2, 0.3], 0.0, 1.0, length=3) == (0.1, 0.2, 0.3)
    assert check_sequence("P", "s", (4, 5.0), 1, 8, length=(1, 3), integer=True) == (4, 5)
    with pytest.raises(ValueError, match=r"^P\.v\[1\] must be in \[0, 1\]; got 1\.5$"):
        check_sequence("P", "v", (0.0, 1.5, 0.0), 0.0, 1.0, length=3)
    with pytest.raises(ValueError, match=r"P\.v\[2\] must be a finite number in \(0, 1\]; got nan"):
        check_sequence("P", "v", (0.5, 0.5, math.nan), 0.0, 1.0, length=3, lo_open=True)
    with pytest.raises(ValueError, match=r"P\.v\[0\] must be in \(0, 1\]; got 0\.0"):
        check_sequence("P", "v", (0.0, 0.5, 0.5), 0.0, 1.0, length=3, lo_open=True)
    with pytest.raises(ValueError, match=r"P\.s\[0\] must be an integer in \[1, 8\]; got True"):
        check_sequence("P", "s", (True, 2), 1, 8, length=2, integer=True)
    with pytest.raises(TypeError, match=r"P\.s\[1\] must be an integer in \[1, 8\]; got 2\.0"):
        check_sequence("P", "s", (1, 2.0), 1, 8, length=2, integer=True, strict=True)


def test_sequence_length_and_type_errors() -> None:
    with pytest.raises(ValueError, match=r"^P\.v must have 3 entries \(numbers in \[0, 1\]\); got 2: \(0\.1, 0\.2\)$"):
        check_sequence("P", "v", (0.1, 0.2), 0.0, 1.0, length=3)
    with pytest.raises(ValueError, match=r"P\.m must have 1 to 8 entries \(integers in \[1, 64\]\); got 0: \(\)"):
        check_sequence("P", "m", (), 1, 64, length=(1, 8), integer=True)
    with pytest.raises(TypeError, match=r"P\.v must be 3 numbers in \[0, 1\]; got 0\.5"):
        check_sequence("P", "v", 0.5, 0.0, 1.0, length=3)


# ------------------------------------------------------------------------------------------ check_bool
def test_bool() -> None:
    assert check_bool("P", "flag", True) is True
    assert check_bool("P", "flag", np.bool_(False)) is False
    for bad in (1, 0, "yes", None):
        with pytest.raises(TypeError, match=r"P\.flag must be True or False; got"):
            check_bool("P", "flag", bad)


# ------------------------------------------------------------------------------------------ config_from_dict
@dataclass(frozen=True)
class _Inner:
    k: int = 1

    def __post_init__(self) -> None:
        check_int_range("_Inner", "k", self.k, 0, 9)

    @classmethod
    def from_dict(cls, d: dict) -> "_Inner":
        return config_from_dict(cls, d)


@dataclass(frozen=True)
class _Outer:
    name: str
    span: tuple = (1, 2)
    grid: tuple = ((0, 1), (2, 3))
    inner: _Inner = field(default_factory=_Inner)


def test_config_from_dict_builds_tuples_and_nested_configs() -> None:
    got = config_from_dict(_Outer, {"name": "a", "span": [3, 4], "grid": [[1, 2], [3, 4]], "inner": {"k": 5}},
                           {"inner": _Inner})
    assert got == _Outer("a", (3, 4), ((1, 2), (3, 4)), _Inner(5))
    assert config_from_dict(_Outer, {"name": "b"}) == _Outer("b")  # missing fields take the defaults
    again = config_from_dict(_Outer, {"name": "c", "inner": _Inner(2)}, {"inner": _Inner})  # instances pass
    assert again.inner == _Inner(2)
    assert dataclasses.asdict(again)["inner"] == {"k": 2}


def test_config_from_dict_errors() -> None:
    with pytest.raises(ValueError, match=r"^_Outer: unknown field\(s\) \['spam', 'x'\]; allowed: "
                                         r"\['grid', 'inner', 'name', 'span'\]$"):
        config_from_dict(_Outer, {"name": "a", "x": 1, "spam": 2})
    with pytest.raises(TypeError, match=r"_Outer\.from_dict needs a dict \(a JSON object\); got list"):
        config_from_dict(_Outer, [("name", "a")])
    with pytest.raises(ValueError, match=r"_Inner\.k must be an integer in \[0, 9\]; got 12"):  # nested validation
        config_from_dict(_Outer, {"name": "a", "inner": {"k": 12}}, {"inner": _Inner})


def test_config_differences_names_nested_fields_absent_sides_and_ignores_tuple_vs_list() -> None:
    old = {"seed": 1, "texture": {"scale_mm": [8.0, 2.0], "sd": 0.1}, "gone": True}
    new = {"seed": 2, "texture": {"scale_mm": (8.0, 2.0), "sd": 0.2}, "added": "x"}
    assert config_differences(old, new) == [
        "seed: saved 1 vs requested 2",
        "texture.sd: saved 0.1 vs requested 0.2",
        "gone: saved True vs requested <absent>",
        "added: saved <absent> vs requested 'x'",
    ]
    assert config_differences(old, old, ("checkpoint", "requested")) == []
    assert config_differences({"a": 1}, {"a": 3}, ("stored", "now")) == ["a: stored 1 vs now 3"]
