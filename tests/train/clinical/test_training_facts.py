"""What a checkpoint records about its training data, and the warnings it gives."""
from __future__ import annotations

import pytest

from relaxomap.synth.protocols import ProtocolRanges
from relaxomap.train.clinical.sidecar import ParamValue
from relaxomap.train.clinical.training_facts import (
    demo_field_t,
    forward_model,
    protocol_ranges,
    range_warnings,
    training_inplane_mm,
    training_ranges,
    voxel_warning,
)


def test_voxel_size_warning() -> None:
    assert training_inplane_mm({}) == 1.0
    cfg = {"extra": {"store_config": {"source": {"kind": "phantom", "phantom": {"voxel_mm": [0.8, 0.8, 2.0]}}}}}
    assert training_inplane_mm(cfg) == 0.8
    assert voxel_warning([1.1, 1.1, 5.0], 1.0) == []
    (msg,) = voxel_warning([0.45, 0.45, 5.0], 1.0)
    assert "0.45 x 0.45 mm" in msg and "factor 1.5" in msg


def test_training_ranges_prefer_the_ranges_seen_in_the_samples() -> None:
    seen = {"t1w": {"tr_ms": [400, 700], "te_ms": [8, 15], "ti_ms": [0, 0]}}
    meta = {"extra": {"param_ranges": seen, "protocol_ranges": ProtocolRanges().to_dict()}}
    assert training_ranges(meta) == {"t1w": {"tr_ms": (400.0, 700.0), "te_ms": (8.0, 15.0), "ti_ms": (0.0, 0.0)}}
    assert training_ranges({}) is None and training_ranges({"extra": {}}) is None


def test_generator_ranges_give_every_contrast_and_a_csf_null_ti() -> None:
    ranges = training_ranges({"protocol_ranges": ProtocolRanges().to_dict()})
    assert set(ranges) == {"t1w", "t2w", "flair"}
    lo, hi = ranges["flair"]["ti_ms"]
    assert 1000.0 < lo < 2500.0 < hi < 4000.0  # CSF nulls of the default FLAIR TRs at 1.5 and 3 T
    assert ranges["t2w"]["ti_ms"][0] == 0.0


def test_range_warnings_allow_one_percent_slack() -> None:
    ranges = {"t2w": {"te_ms": (80.0, 120.0)}}
    inside = {"t2w": {"te_ms": ParamValue(121.0, "flag")}}  # 1 % of 120 ms is 1.2 ms of slack
    outside = {"t2w": {"te_ms": ParamValue(122.0, "flag")}}
    assert range_warnings(inside, ranges) == [] and range_warnings(outside, None) == []
    (msg,) = range_warnings(outside, ranges)
    assert msg.startswith("T2w EchoTime = 122 ms is outside the range") and "(80-120 ms)" in msg


@pytest.mark.parametrize("meta, forward, field_t", [
    ({}, "closed", 3.0),
    ({"extra": {"store_config": {"forward": "epg", "source": {"field_t": 1.5}}}}, "epg", 1.5),
    ({"extra": {"store_config": {"forward": "bloch"}}}, "closed", 3.0),
])
def test_demo_recipe_follows_the_training_store(meta: dict, forward: str, field_t: float) -> None:
    ranges = protocol_ranges(meta)
    assert ranges is None  # none recorded: the demo draws from the default ranges
    assert forward_model(meta) == forward
    assert demo_field_t(meta, ranges) == field_t


def test_demo_field_from_recorded_protocol_ranges() -> None:
    only_15 = {**ProtocolRanges().to_dict(), "fields_t": [1.5]}
    meta = {"extra": {"protocol_ranges": only_15}}
    ranges = protocol_ranges(meta)
    assert isinstance(ranges, ProtocolRanges) and tuple(ranges.fields_t) == (1.5,)
    assert demo_field_t(meta, ranges) == 1.5
