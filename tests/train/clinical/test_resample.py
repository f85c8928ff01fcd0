"""Resampling onto another grid: linear interpolation is exact for a linear ramp."""
from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.train.clinical.resample import resample_to_grid
from tests.train.clinical.helpers import case_affine


def test_resample_linear_ramp_exact() -> None:
    """Linear interpolation reproduces a linear function exactly: resampling the source's own voxel index
    must give inv(A_src) @ A_tgt @ i at every target voxel inside the source."""
    src_shape = (20, 18, 10)
    ramp = np.broadcast_to(np.arange(src_shape[0], dtype=np.float32)[:, None, None], src_shape)
    a_src = case_affine(voxel=(1.5, 1.0, 2.0), shift=(3.25, 0.0, 0.0))
    a_tgt = case_affine(voxel=(1.0, 1.0, 2.0))
    out = resample_to_grid(ramp, a_src, (16, 18, 10), a_tgt)
    i = np.arange(16)
    expected = (np.linalg.inv(a_src) @ a_tgt @ np.stack([i, 0 * i, 0 * i, 0 * i + 1]))[0]
    inside = (expected >= 0) & (expected <= src_shape[0] - 1)
    assert inside.sum() >= 10
    # float32 image and interpolation weights: |error| < 1e-4 voxel for indices < 20
    assert_allclose(out[inside, 5, 5], expected[inside], atol=1e-4)
    assert_array_equal(out[~inside, 5, 5], 0.0)
