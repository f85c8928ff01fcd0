"""The Maps container: shape and value checks, copies with changes, values from rate maps."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.synth.maps import Maps
from relaxomap.synth.rates import to_rates


def _maps() -> Maps:
    rng = np.random.default_rng(0)
    shape = (4, 5, 3)
    pd = rng.uniform(0.6, 1.0, shape).astype(np.float32)
    return Maps(rng.uniform(600, 4000, shape), rng.uniform(50, 500, shape), pd, rng.integers(0, 4, shape),
                pd > 0.8, voxel_mm=(1.0, 1.0, 2.0), field_t=1.5, subject_id="s", source="test")


def test_maps_are_converted_and_checked() -> None:
    m = _maps()
    assert m.t1_ms.dtype == np.float32 and m.labels.dtype == np.uint8 and m.mask.dtype == bool
    assert m.shape == (4, 5, 3) and m.stack().shape == (3, 4, 5, 3)
    with pytest.raises(ValueError, match=r"Maps\.pd has shape \(4, 5\); must match t1_ms \(4, 5, 3\)"):
        Maps(m.t1_ms, m.t2_ms, m.pd[..., 0], m.labels, m.mask)
    with pytest.raises(ValueError, match=r"Maps\.t1_ms.*in test"):
        Maps(-m.t1_ms, m.t2_ms, m.pd, m.labels, m.mask, source="test")


def test_replace_copies_what_it_does_not_change() -> None:
    m = _maps()
    labels = np.zeros(m.shape, np.uint8)
    r = m.replace(labels=labels, field_t=3.0)
    assert r.labels is labels and r.field_t == 3.0 and r.subject_id == "s" and r.source == "test"
    for name in ("t1_ms", "t2_ms", "pd", "mask", "voxel_mm"):
        assert_array_equal(getattr(r, name), getattr(m, name))
        assert not np.shares_memory(getattr(r, name), getattr(m, name)), name
    r.t1_ms[0, 0, 0] = 1.0
    assert m.t1_ms[0, 0, 0] != 1.0  # the original is untouched


def test_with_rates_converts_back_to_times() -> None:
    m = _maps()
    r = m.with_rates(*to_rates(m.t1_ms, m.t2_ms, m.pd), mask=~m.mask)
    for name in ("t1_ms", "t2_ms", "pd"):
        assert_allclose(getattr(r, name), getattr(m, name), rtol=1e-6)  # float32 division round trip
    assert_array_equal(r.mask, ~m.mask)
    assert_array_equal(r.labels, m.labels) and not np.shares_memory(r.labels, m.labels)
