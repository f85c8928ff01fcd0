"""Positive smooth fields: the series exp of exp_field against float64 exp, and positive_field's bounds."""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.synth.phantom.thickness import exp_field, positive_field


@pytest.mark.parametrize("rel_sd, clip", [(0.35, 3.0), (-0.6, 3.0), (0.9, 3.0)])
def test_exp_field_is_float32_exp_to_rounding(rel_sd, clip) -> None:
    """Series path (|rel_sd| · clip <= 2) and NumPy path (beyond) against float64 exp: the series is exact to
    float32 rounding (half an ulp, 6e-8 relative, plus one ulp for the float32 input product: rtol 2.4e-7)."""
    f = (np.random.default_rng(5).standard_normal((40, 30, 20)) * 1.5).astype(np.float32)
    ref = 2.8 * np.exp(rel_sd * np.clip(f.astype(np.float64), -clip, clip))
    got = exp_field(f.copy(), 2.8, rel_sd, clip)
    assert_allclose(got, ref, rtol=2.4e-7 if abs(rel_sd) * clip <= 2 else 1e-6, atol=0)
    strided = f.copy()[:, ::2]  # not contiguous: the NumPy path, same values to float32 exp accuracy
    assert_allclose(exp_field(strided, 2.8, rel_sd, clip), ref[:, ::2], rtol=1e-6, atol=0)


def test_exp_field_in_place() -> None:
    f = np.random.default_rng(2).standard_normal(1000).astype(np.float32) * 2
    ref = 4.5 * np.exp(0.35 * np.clip(f.astype(np.float64), -3, 3))
    out = exp_field(f, 4.5, 0.35, 3.0)
    assert out is f
    assert_allclose(out, ref, rtol=1e-6)  # float32 exp


def test_positive_field_is_bounded_and_smooth() -> None:
    """mean · exp(rel_sd · F) with F clipped to ±3: within [mean·exp(-3 sd), mean·exp(3 sd)], spread around the
    mean, float32 of the grid; the same generator state gives the same field."""
    shape, spacing = (40, 44, 12), (1.0, 1.0, 2.0)
    f = positive_field(np.random.default_rng(6), shape, spacing, 20.0, 4.5, 0.35)
    assert f.shape == shape and f.dtype == np.float32
    assert f.min() >= 4.5 * math.exp(-3 * 0.35) * (1 - 1e-6) and f.max() <= 4.5 * math.exp(3 * 0.35) * (1 + 1e-6)
    assert 0.1 < np.std(np.log(f / 4.5)) < 0.6  # log-amplitude about rel_sd
    assert np.abs(np.diff(f, axis=0)).max() < 0.3 * 4.5  # smooth: features 20 mm across
    assert np.array_equal(f, positive_field(np.random.default_rng(6), shape, spacing, 20.0, 4.5, 0.35))
    with pytest.raises(ValueError, match="f must be float32"):
        exp_field(np.zeros(4), 1.0, 0.1, 3.0)
