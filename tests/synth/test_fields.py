"""Smooth random fields: unit variance everywhere, the 4-tap passes against dense B-spline products, writing into
a given array."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.synth.fields import bspline_matrix, smooth_noise


def test_smooth_noise_has_unit_variance_everywhere() -> None:
    # The B-spline normalisation makes every voxel N(0, 1) regardless of its position between control
    # points. 400 draws: the variance estimate per voxel has sd sqrt(2/400) = 0.07; averaged over 20
    # positions within one control cell, sd 0.016 -> 5 sd = 0.08.
    rng = np.random.default_rng(3)
    var = np.mean([smooth_noise(rng, (20, 3, 3), 10.0)[:, 1, 1] ** 2 for _ in range(400)], axis=0)
    assert_allclose(var.mean(), 1.0, atol=0.08)
    assert_allclose(var[:10].mean(), var[10:].mean(), atol=0.12)  # knot vs. mid-cell positions


@pytest.mark.parametrize("shape, step", [((37, 29, 11), (5.0, 3.5, 2.5)), ((64, 40, 24), (25.0, 6.0, 15.0))])
def test_smooth_noise_equals_dense_bspline_products(shape, step) -> None:
    """The 3-D path (three 4-tap passes in float32) equals ``M_x ⊗ M_y ⊗ M_z`` applied to the same control
    points in float64 (each output a sum of 64 float32 products of magnitude <= 4: rtol 1e-5 of the field's
    sd)."""
    field = smooth_noise(np.random.default_rng(11), shape, step)
    rng = np.random.default_rng(11)  # the same draws, in the same order: grid phases, then control points
    mats = [bspline_matrix(n, s, float(rng.uniform())) for n, s in zip(shape, step)]
    ctrl = rng.standard_normal(tuple(m.shape[1] for m in mats)).astype(np.float32).astype(np.float64)
    mats = [m / np.sqrt((m * m).sum(axis=1, keepdims=True)) for m in mats]
    ref = np.einsum("ia,jb,kc,abc->ijk", *mats, ctrl)
    assert_allclose(field, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("shape", [(30, 20, 10), (40, 25)])
def test_smooth_noise_into_out_equals_a_new_array(shape) -> None:
    ref = smooth_noise(np.random.default_rng(2), shape, 6.0)
    buf = np.full((2, *shape), np.nan, np.float32)
    got = smooth_noise(np.random.default_rng(2), shape, 6.0, out=buf[1])
    assert got is buf[1] or np.shares_memory(got, buf[1])
    assert_array_equal(buf[1], ref)
    assert np.isnan(buf[0]).all()
    with pytest.raises(ValueError, match="out must be a C-contiguous float32 array"):
        smooth_noise(np.random.default_rng(2), shape, 6.0, out=np.empty(shape, np.float64))
