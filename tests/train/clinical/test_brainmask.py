"""The automatic brain mask's Otsu threshold against scikit-image."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose


def test_otsu_matches_skimage() -> None:
    skimage_filters = pytest.importorskip("skimage.filters")
    from relaxomap.train.clinical.brainmask import otsu_threshold

    rng = np.random.default_rng(5)
    values = np.concatenate([rng.normal(10.0, 3.0, 4000), rng.normal(60.0, 8.0, 2500)])
    # both use 256 bins over [min, max] and pick the same bin; skimage returns its centre, ours its upper edge.
    # Tolerance: float64 rounding of the bin edges (values ~ 100).
    width = (values.max() - values.min()) / 256
    assert_allclose(otsu_threshold(values), skimage_filters.threshold_otsu(values, nbins=256) + width / 2,
                    rtol=0, atol=1e-9)
