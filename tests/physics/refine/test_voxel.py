"""Per-voxel MAP look-up: recovery of T1 / T2 from perturbed starts, PD against its prior, both FLAIR
branches near the null."""
from __future__ import annotations

import numpy as np

from relaxomap.physics.refine.config import RefineConfig
from relaxomap.physics.refine.dictionary import ExamDictionary
from relaxomap.physics.refine.voxel import search_voxels
from relaxomap.physics.refine.dictionary import interp_tables
from tests.physics.refine.helpers import PROTOCOLS, TISSUES, render_exam

CFG = RefineConfig()


def _data(dic: ExamDictionary, t1, t2, pd) -> np.ndarray:
    """(N, 3) noise-free signals of the search's own forward model (the dictionary look-up, B1 = 1)."""
    t1, t2, pd = (np.asarray(a, np.float64) for a in (t1, t2, pd))
    look = interp_tables(dic.tables, *dic.grid.positions(np.ones_like(t1), np.log(t1), np.log(t2)))
    return np.abs(look[..., 0]) * pd[:, None]


def test_lookup_matches_direct_epg_between_nodes() -> None:
    """The model the search uses (trilinear look-up) against the direct EPG at random off-node points:
    within 0.5 % of each signal over parenchyma-to-CSF values (FLAIR away from its null: > 5 % of the
    series' maximum)."""
    dic = ExamDictionary(PROTOCOLS, CFG, [None] * 3, 1.0)
    rng = np.random.default_rng(3)
    t1, t2 = np.exp(rng.uniform(np.log(600), np.log(5000), 400)), np.exp(rng.uniform(np.log(50), np.log(2500), 400))
    t2 = np.minimum(t2, 0.5 * t1)
    look = np.abs(interp_tables(dic.tables, *dic.grid.positions(np.ones(400), np.log(t1), np.log(t2)))[..., 0])
    direct = render_exam({"t1_ms": t1.astype(np.float32), "t2_ms": t2.astype(np.float32),
                          "pd": np.ones(400, np.float32)}, gains=(1.0, 1.0, 1.0)).T
    ok = direct > 0.05 * direct.max(axis=0)
    assert np.all(np.abs(look - direct)[ok] <= 0.005 * direct[ok])


def _search(dic, y, prior, sd, sigma=1e-4):
    n = len(y)
    return search_voxels(dic.tables, dic.grid, y, np.full((n, 3), sigma), np.ones((n, 3)), np.ones(n), prior, sd,
                         2, CFG.window_sd)


def test_recovers_t1_t2_from_perturbed_start() -> None:
    """Noise-free data of the same forward model, prior T1 × 0.8–1.25 and T2 × 0.85–1.15 off, PD at truth:
    T1 and T2 within 1 % (grid steps 3.2 % / 4.8 %, then sub-node search and Newton), PD within 0.5 %."""
    dic = ExamDictionary(PROTOCOLS, CFG, [None] * 3, 1.0)
    rng = np.random.default_rng(1)
    tv = np.repeat(TISSUES[:3], 20, axis=0) * rng.uniform(0.9, 1.1, (60, 3))
    y = _data(dic, tv[:, 0], tv[:, 1], tv[:, 2])
    prior = np.stack([np.log(tv[:, 0] * rng.uniform(0.8, 1.25, 60)), np.log(tv[:, 1] * rng.uniform(0.85, 1.15, 60)),
                      tv[:, 2]], axis=1)
    sd = np.tile([CFG.t1_log_sd, CFG.t2_log_sd, 0.05], (60, 1))
    out = _search(dic, y, prior, sd)
    np.testing.assert_allclose(out["t1_ms"], tv[:, 0], rtol=0.01)
    np.testing.assert_allclose(out["t2_ms"], tv[:, 1], rtol=0.01)
    np.testing.assert_allclose(out["pd"], tv[:, 2], rtol=0.005)


def test_pd_prior_direction_is_unidentifiable_alone() -> None:
    """A PD prior 10 % off with T1 / T2 free: one voxel with unit gains is still pinned by its data (three
    contrasts, gains known), so PD stays within 1 % of truth while the prior, not the data, would move it
    only with a noise level where the data cannot decide: at σ = 20 % of the signal the MAP moves toward the
    prior (more than half way at this width)."""
    dic = ExamDictionary(PROTOCOLS, CFG, [None] * 3, 1.0)
    t1, t2, pd = TISSUES[0]
    y = _data(dic, [t1], [t2], [pd])
    prior = np.array([[np.log(t1), np.log(t2), pd * 1.1]])
    sd = np.array([[CFG.t1_log_sd, CFG.t2_log_sd, 0.01 * pd]])
    exact = _search(dic, y, prior, sd, sigma=1e-4)
    assert abs(exact["pd"][0] / pd - 1) < 0.01
    vague = _search(dic, y, prior, sd, sigma=0.2 * float(y.mean()))
    assert vague["pd"][0] / pd - 1 > 0.05


def test_flair_branch_near_the_null() -> None:
    """CSF-like (T1 5000 ms; the null of this FLAIR is near 4.3 s) seen from a start 18 % short (past the null) and a white-matter-like voxel seen from a start 40 % long:
    each lands on its own branch (−1 before the null, +1 past it) with T1 within 2 %."""
    dic = ExamDictionary(PROTOCOLS, CFG, [None] * 3, 1.0)
    t1 = np.array([5000.0, 900.0])
    t2 = np.array([2000.0, 85.0])
    pd = np.array([1.0, 0.7])
    y = _data(dic, t1, t2, pd)
    prior = np.stack([np.log(t1 * np.array([0.82, 1.4])), np.log(t2), pd], axis=1)
    sd = np.tile([CFG.t1_log_sd, CFG.t2_log_sd, 0.05], (2, 1))
    out = _search(dic, y, prior, sd)
    np.testing.assert_allclose(out["t1_ms"], t1, rtol=0.02)
    assert out["branch"].tolist() == [-1, 1]
    assert np.all(out["cost_other"] > out["cost"])
