"""Rate space and texture: the fused scale-and-convert kernel against its two-step formula."""
from __future__ import annotations

import numpy as np
from numpy.testing import assert_array_equal

from relaxomap.synth.texture import from_rates, scale_rates, scaled_from_rates

SHAPE = (40, 48, 12)


def test_scaled_from_rates_is_the_two_step_formula_exactly() -> None:
    rng = np.random.default_rng(5)
    pd = rng.uniform(0, 1, SHAPE).astype(np.float32)
    pd[rng.uniform(size=SHAPE) < 0.3] = 0.0  # background
    a1 = (pd / rng.uniform(300, 4000, SHAPE)).astype(np.float32)
    a2 = (pd / rng.uniform(30, 2000, SHAPE)).astype(np.float32)
    k = [np.exp(0.05 * rng.standard_normal(SHAPE)).astype(np.float32) for _ in range(3)]
    fused = scaled_from_rates(pd, a1, a2, *k)
    for got, ref in zip(fused, from_rates(*scale_rates(pd, a1, a2, *k))):
        assert_array_equal(got, ref)  # same float32 operations in the same order
