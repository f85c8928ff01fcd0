"""Deep structures: nuclei take the grey / white matter of their volume, ventricles turn parenchyma into CSF, and
no fraction is created or lost."""
from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.synth.phantom import slots
from relaxomap.synth.phantom.deep import deep_structures
from relaxomap.synth.phantom.frame import CoordGrid

AXES = (np.arange(-50.0, 51.0, 2.0), np.arange(-72.0, 57.0, 2.0), np.arange(-52.0, 29.0, 2.0))  # [mm], 2 mm grid


def _painted(atrophy: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fractions after deep_structures on a canonical grid of half grey, half white matter."""
    q = CoordGrid(tuple(c.astype(np.float32) for c in np.meshgrid(*AXES, indexing="ij")))
    frac = np.zeros((len(slots.SLOTS),) + q[0].shape, np.float32)
    frac[slots.GM] = 0.5
    frac[slots.WM] = 0.5
    before = frac.copy()
    deep_structures(q, np.random.default_rng(seed), atrophy, frac, 2.0)
    return before, frac


def _at(frac: np.ndarray, slot: int, x: float, y: float, z: float) -> float:
    i, j, k = (int(np.argmin(np.abs(a - v))) for a, v in zip(AXES, (x, y, z)))
    return float(frac[slot, i, j, k])


def test_nuclei_and_ventricles_move_fractions_between_slots() -> None:
    for seed in range(3):
        before, healthy = _painted(0.0, seed)
        _, atrophic = _painted(1.0, seed)
        for frac in (healthy, atrophic):
            assert_allclose(frac.sum(axis=0), 1.0, rtol=0, atol=1e-6)  # moved between slots, never lost
            assert (frac >= -1e-7).all()
            # the slab's lateral edge (|x| = 50 mm) lies outside every deep structure: unchanged
            assert_array_equal(frac[:, [0, -1]], before[:, [0, -1]])
        for side in (-1.0, 1.0):
            # thalamus centre (±11, 0, -3) mm (± 2 mm jitter, axes >= 6.8 mm): all deep grey when ventricles are small
            assert _at(healthy, slots.DGM, 11.0 * side, 0.0, -3.0) > 0.99
            # lateral ventricle body (±9, 22, 5) mm, radius >= 7 mm at full atrophy: all CSF
            assert _at(atrophic, slots.CSF, 9.0 * side, 22.0, 5.0) > 0.99
        assert atrophic[slots.CSF].sum() > 1.5 * healthy[slots.CSF].sum() > 0  # atrophy enlarges the ventricles
