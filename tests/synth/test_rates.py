"""Rate space: conversions to and from (PD, PD/T1, PD/T2), and the fused scale-and-convert kernel against its
two-step formula."""
from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.synth.rates import from_rates, scale_rates, scaled_from_rates, to_rates

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


def test_rates_round_trip_and_mix_linearly() -> None:
    """to_rates / from_rates invert each other (float32 division round trip: rtol 1e-6), background stays 0, and
    a 50/50 mixture of two tissues in rate space has the PD-weighted harmonic T1 of the module docstring."""
    t1 = np.array([850.0, 1450.0, 0.0], np.float32)
    t2 = np.array([75.0, 95.0, 0.0], np.float32)
    pd = np.array([0.70, 0.80, 0.0], np.float32)
    rates = to_rates(t1, t2, pd)
    assert_array_equal(rates[1][2], 0.0)
    back = from_rates(*rates)
    for got, want in zip(back, (t1, t2, pd)):
        assert_allclose(got, want, rtol=1e-6)
    mixed = from_rates(*(0.5 * (r[0] + r[1]) for r in rates))
    want_t1 = 0.75 / (0.5 * (0.70 / 850.0 + 0.80 / 1450.0))
    assert_allclose(mixed[0], want_t1, rtol=1e-6)
    assert_allclose(mixed[2], 0.75, rtol=1e-6)
    k = np.float32(1.1)
    scaled = from_rates(*scale_rates(*rates, k, np.float32(1.0), np.float32(1.0)))  # T1 x 1.1
    assert_allclose(scaled[0], t1 * k, rtol=1e-6)
    assert_allclose(scaled[1], t2, rtol=1e-6)
