"""Intensity normalisation: gain and padding removed, masks and errors, the fast percentile against NumPy's."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.synth.normalize import normalize_intensity, percentile


def _head(gain: float, pad: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.zeros((128, 128), np.float32)
    yy, xx = np.mgrid[:128, :128]
    inside = (yy - 64) ** 2 + (xx - 64) ** 2 < 50**2
    img[inside] = rng.uniform(0.5, 1.0, inside.sum())
    img[~inside] = np.abs(rng.normal(0, 0.01, (~inside).sum()))  # background noise
    return np.pad(img * gain, pad)


def test_normalize_removes_gain_and_padding() -> None:
    a, scale_a = normalize_intensity(_head(1.0, 0))
    b, scale_b = normalize_intensity(_head(37.0, 0))
    c, _ = normalize_intensity(_head(1.0, 64))  # 4x more background voxels
    assert_allclose(scale_b, 37.0 * scale_a, rtol=1e-6)  # float32 rounding
    assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert_allclose(c[64:-64, 64:-64], a, rtol=1e-6)  # the foreground threshold ignores background voxels
    # the 99th percentile of uniform(0.5, 1) is 0.995 (sampling error of the quantile < 0.2 %)
    assert_allclose(scale_a, 0.995, rtol=5e-3)


def test_normalize_with_mask_and_errors() -> None:
    img = _head(2.0, 0)
    mask = np.zeros(img.shape, bool)
    mask[60:68, 60:68] = True
    out, scale = normalize_intensity(img, mask)
    assert_allclose(scale, np.percentile(img[mask], 99), rtol=1e-6)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="foreground is empty"):
        normalize_intensity(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        normalize_intensity(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="mask shape"):
        normalize_intensity(img, mask[:10])


@pytest.mark.parametrize("n", [1, 2, 7, 100, 65536])
def test_percentile_equals_numpy(n: int) -> None:
    x = np.random.default_rng(n).random(n).astype(np.float32)
    for q in (0.0, 1.0, 50.0, 99.0, 99.9, 100.0):
        # same order statistics and interpolation; float64 interpolation vs numpy's: a few ulp
        assert_allclose(percentile(x, q), np.percentile(x, q), rtol=1e-6)
