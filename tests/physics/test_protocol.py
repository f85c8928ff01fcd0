"""Protocol validation: every bad field is refused with a message naming it, its value and the allowed range."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from relaxomap.physics.protocol import PACK_COLUMNS, PRESETS, Protocol, pack_protocols, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_valid_and_round_trip(name: str) -> None:
    p = preset(name)
    assert p.name == name
    again = Protocol.from_dict(json.loads(p.to_json()))
    assert again == p


@pytest.mark.parametrize(
    "kwargs, field, fragment",
    [
        (dict(kind="se", tr_ms=-5.0, te_ms=10.0), "tr_ms", "got -5"),
        (dict(kind="se", tr_ms=float("nan"), te_ms=10.0), "tr_ms", "finite"),
        (dict(kind="se", tr_ms=500.0, te_ms=600.0), "te_ms", "got 600"),
        (dict(kind="ir_tse", tr_ms=9000.0, te_ms=120.0, ti_ms=9500.0, etl=20, esp_ms=10.0), "ti_ms", "9000"),
        (dict(kind="ir_tse", tr_ms=9000.0, te_ms=120.0, ti_ms=0.0, etl=20, esp_ms=10.0), "ti_ms", "got 0"),
        (dict(kind="se", tr_ms=500.0, te_ms=10.0, ti_ms=100.0), "ti_ms", "must be 0"),
        (dict(kind="tse", tr_ms=500.0, te_ms=100.0, etl=64, esp_ms=10.0), "etl", "fit in tr_ms=500"),
        (dict(kind="tse", tr_ms=4000.0, te_ms=105.0, etl=16, esp_ms=10.0), "te_ms", "k·esp_ms"),
        (dict(kind="tse", tr_ms=4000.0, te_ms=200.0, etl=16, esp_ms=10.0), "te_ms", "k·esp_ms"),
        (dict(kind="tse", tr_ms=4000.0, te_ms=100.0, etl=0, esp_ms=10.0), "etl", "got 0"),
        (dict(kind="spgr", tr_ms=20.0, te_ms=4.0, flip_deg=200.0), "flip_deg", "got 200"),
        (dict(kind="se", tr_ms=500.0, te_ms=10.0, inversion_efficiency=1.5), "inversion_efficiency", "got 1.5"),
        (dict(kind="mprage", tr_ms=2300.0, te_ms=3.0, ti_ms=300.0, etl=176, esp_ms=7.0), "ti_ms", "616"),
        (dict(kind="flash", tr_ms=20.0, te_ms=4.0), "kind", "'flash'"),
    ],
)
def test_bad_fields_are_named(kwargs: dict, field: str, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        Protocol(**kwargs)
    msg = str(err.value)
    assert f"Protocol.{field}" in msg and fragment in msg, msg


def test_derived_and_packed() -> None:
    p = Protocol("tse", tr_ms=4000.0, te_ms=100.0, etl=16, esp_ms=10.0, refocus_deg=150.0)
    assert p.echo_index == 10
    assert p.readout_ms == pytest.approx(160.0)
    se = Protocol("se", tr_ms=500.0, te_ms=15.0)
    assert se.esp_ms == 15.0 and se.echo_index == 1
    table = pack_protocols([p, se])
    assert table.shape == (2, len(PACK_COLUMNS))
    row = dict(zip(PACK_COLUMNS, table[0]))
    assert row["refocus_rad"] == pytest.approx(math.radians(150.0))
    assert row["echo_index"] == 10 and row["kind_code"] == 1
    np.testing.assert_array_equal(table[1][:3], [0, 500.0, 15.0])


def test_unknown_preset_lists_names() -> None:
    with pytest.raises(ValueError, match="flair_3t"):
        preset("flair_7t")
