"""The exam dictionary against the direct EPG kernel, and its trilinear look-up against finite differences."""
from __future__ import annotations

import numpy as np
import pytest

from relaxomap.physics.epg import epg_signal
from relaxomap.physics.refine.config import RefineConfig
from relaxomap.physics.refine.dictionary import Grid, interp_tables, kappa_effective, series_table
from tests.physics.refine.helpers import PROTOCOLS

CFG = RefineConfig(n_t1=40, n_t2=30, b1_range=(0.7, 1.3), b1_step=0.1)


@pytest.mark.parametrize("series", [0, 1, 2])
def test_table_nodes_equal_direct_epg(series: int) -> None:
    """Every node of the table is the direct EPG signal at that B1 (κ_eff scaled), to float32 rounding."""
    grid, p = Grid(CFG), PROTOCOLS[series]
    tab = series_table(p, grid, refocus_deg=140.0, kappa=0.95, inversion_b1="scaled")
    t1, t2 = np.meshgrid(np.exp(grid.log_t1), np.exp(grid.log_t2), indexing="ij")
    for k in (0, 3, len(grid.b1) - 1):
        b = float(grid.b1[k])
        q = p.with_(refocus_deg=140.0)
        if p.kind == "ir_tse":
            q = q.with_(inversion_efficiency=float(kappa_effective(0.95, np.array([b]), "scaled")[0]))
        ref = epg_signal(t1.astype(np.float32), t2.astype(np.float32), np.ones_like(t1, np.float32), q, b1=b)[0]
        np.testing.assert_allclose(np.abs(tab[k]), ref, rtol=0, atol=2e-6)


def test_inversion_table_is_signed_on_both_branches() -> None:
    """The FLAIR table is positive for short T1 at every B1 and negative for long T1 (before the null) where the
    inversion is near-complete (B1 0.9–1.1; at B1 0.7, κ_eff = −cos 0.7π ≈ 0.59 and T1 5 s is past the null)."""
    grid = Grid(CFG)
    tab = series_table(PROTOCOLS[2], grid, refocus_deg=None, kappa=1.0, inversion_b1="scaled")
    i_short, i_long = np.searchsorted(np.exp(grid.log_t1), [800.0, 5000.0])
    j = np.searchsorted(np.exp(grid.log_t2), 100.0)
    near = np.abs(grid.b1 - 1.0) < 0.11
    assert np.all(tab[:, i_short, j] > 0) and np.all(tab[near, i_long, j] < 0) and tab[0, i_long, j] > 0


def test_kappa_effective() -> None:
    b = np.array([0.5, 1.0, 1.2])
    np.testing.assert_allclose(kappa_effective(0.95, b, "scaled"), [0.0, 0.95, 0.95 * -np.cos(1.2 * np.pi)], atol=1e-12)
    np.testing.assert_allclose(kappa_effective(0.95, b, "adiabatic"), [0.95] * 3)


def test_interp_values_and_derivatives() -> None:
    """At nodes the look-up returns the table; inside a cell its derivatives equal central differences of
    the interpolant (exact for a trilinear function away from cell faces)."""
    grid = Grid(CFG)
    tabs = np.stack([series_table(p, grid, refocus_deg=None, kappa=1.0, inversion_b1="scaled") for p in PROTOCOLS])
    rng = np.random.default_rng(0)
    nb, n1, n2 = grid.shape
    idx = (rng.integers(0, nb, 50), rng.integers(0, n1, 50), rng.integers(0, n2, 50))
    out = interp_tables(tabs, *(a.astype(np.float64) for a in idx))
    np.testing.assert_allclose(out[:, :, 0], tabs[:, idx[0], idx[1], idx[2]].T, rtol=1e-6, atol=1e-7)
    pos = [rng.integers(0, s - 1, 50) + rng.uniform(0.2, 0.8, 50) for s in (nb, n1, n2)]
    h = 1e-4
    base = interp_tables(tabs, *pos)
    for axis in range(3):
        hi = [p + (h if a == axis else 0) for a, p in enumerate(pos)]
        lo = [p - (h if a == axis else 0) for a, p in enumerate(pos)]
        fd = (interp_tables(tabs, *hi)[..., 0] - interp_tables(tabs, *lo)[..., 0]) / (2 * h)
        np.testing.assert_allclose(base[..., 1 + axis], fd, rtol=1e-3, atol=1e-5)
