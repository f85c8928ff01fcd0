"""The head's fused kernels against the NumPy formulas they replace."""
from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose

from relaxomap.synth.fields import smooth_noise
from relaxomap.synth.phantom.head import face_shell, scalp_fields
from relaxomap.synth.phantom.shapes import ellipsoid_depth, smoothstep
from tests.synth.phantom.grids import SHAPE, coords


def test_face_shell_matches_numpy() -> None:
    rng = np.random.default_rng(4)
    q = coords(rng)
    x, y, z = (c.astype(np.float64) for c in q)
    fat = (5.0 * np.exp(0.35 * np.clip(smooth_noise(rng, SHAPE, 6.0), -3, 3))).astype(np.float32)
    weight = rng.uniform(0, 1, SHAPE).astype(np.float32)
    skin_frac, fat_frac = np.full(SHAPE, 0.1, np.float32), np.zeros(SHAPE, np.float32)
    deep = face_shell(q, fat, weight, 68.0, 86.0, 2.1, 1.0, skin_frac, fat_frac)
    neck = smoothstep(-z, 85.0, 115.0)
    yf = y - (5 - 20 * neck)
    d = ellipsoid_depth(x, yf, np.zeros_like(x), (68 + 14) * (0.95 - 0.3 * neck), (86 + 14) * (1 - 0.35 * neck), 1.0)
    d = d.astype(np.float64)
    f0, f1, f2 = (np.clip(0.5 + (d - t), 0, 1) for t in (0.0, 2.1, 2.1 + fat))
    assert_allclose(skin_frac, 0.1 + weight * (f0 - f1), atol=2e-5)  # float32 depths of up to ~200 mm
    assert_allclose(fat_frac, weight * (f1 - f2), atol=2e-5)
    assert_allclose(deep, weight * f2, atol=2e-5)
    assert 0 < (f2 > 0).mean() < 1  # inside and outside the face both present


def test_scalp_fields_match_the_numpy_formula() -> None:
    """Fused temporal-fossa / neck weights against the smoothstep expressions they replace: weights in [0, 1]
    and thicknesses of a few mm from float32 products of steps, equal to a few float32 ulps (atol 2e-6 on
    weights, rtol 2e-6 on the skull)."""
    rng = np.random.default_rng(8)
    axes = [np.linspace(-100, 100, 41), np.linspace(-120, 120, 49), np.linspace(-90, 60, 31)]
    q = tuple((c + rng.uniform(-1.5, 1.5, c.shape)).astype(np.float32) for c in np.meshgrid(*axes, indexing="ij"))
    skull = rng.uniform(4.0, 9.0, q[0].shape).astype(np.float32)
    a = np.float32(68.0)
    lateral = smoothstep(np.abs(q[0]) / a, 0.6, 0.95) * smoothstep(q[2], -45.0, -25.0) * (
        1.0 - smoothstep(q[2], 15.0, 35.0))
    z_top = -36.0 - 36.0 * smoothstep(q[1], 15.0, 50.0, sign=-1.0)
    lower = smoothstep(z_top - q[2], 0.0, 12.0)
    got_skull = skull.copy()
    t_muscle, got_lower = scalp_fields(q, float(a), 7.5, got_skull)
    assert 0.05 < lateral.mean() < 0.5 and 0.05 < lower.mean() < 0.95  # both weights vary over this grid
    assert_allclose(got_skull, skull * (1.0 - 0.4 * lateral), rtol=2e-6, atol=0)
    assert_allclose(t_muscle, 7.5 * lateral, rtol=0, atol=2e-6 * 7.5)
    assert_allclose(got_lower, lower, rtol=0, atol=2e-6)
