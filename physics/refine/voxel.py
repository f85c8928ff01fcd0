"""Per-voxel MAP by dictionary look-up: the maps that explain each voxel's signals under the exam's fitted
parameters, with the network's maps as the prior.

For every voxel and every (T1, T2) node within ``window`` prior sds of the prior, the cost

    Σ_c ((y_c − PD·a_c) / σ_c)² + ((ln T1 − μ₁)/s₁)² + ((ln T2 − μ₂)/s₂)² + ((PD − PD₀)/s_PD)²,
    a_c = gain_c(v) · |s_c(b(v), T1, T2)|

is minimised in PD in closed form (PD = (Σ a y/σ² + PD₀/s_PD²) / (Σ a²/σ² + 1/s_PD²), ≥ 0), so the search runs
over (T1, T2) only: every second node first, then every node within ±2 of the best, then a quarter-node grid
over ±1 node, then Levenberg–Marquardt in (T1, T2, PD) on the interpolated model (three contrasts and three
unknowns make a narrow diagonal valley that no grid resolves).

Both branches of a magnitude inversion-recovery series are searched explicitly: the nodes are split by the
sign of that series' signed signal (Mz before the excitation), the best of each branch is kept, and the
lower wins. ``branch`` (+1: Mz > 0, recovered past the null, short T1; −1: long T1, before the null; 0: no
inversion series) and ``cost_other`` (the losing branch's cost; inf if it has no node in the window) say how
clear the choice was. Numba, parallel over voxels.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from relaxomap.physics.refine.dictionary import Grid, interp_value

__all__ = ["search_voxels"]

_FM = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(inline="always", fastmath=_FM)
def _cost(tables, y, sig, gain, bq, iq, jq, pr, gr, inv_c):
    """(cost, PD, sign of the inversion series) at fractional node (iq, jq); ``pr`` = (μ₁, μ₂, PD₀, s₁, s₂,
    s_PD), ``gr`` = (ln T1 at node 0, ln-step, ln T2 at node 0, ln-step)."""
    saa = 0.0
    say = 0.0
    syy = 0.0
    sgn = 1.0
    for c in range(tables.shape[0]):
        s = interp_value(tables[c], bq, iq, jq)
        if c == inv_c and s < 0.0:
            sgn = -1.0
        a = gain[c] * abs(s)
        w = 1.0 / (sig[c] * sig[c])
        saa += a * a * w
        say += a * y[c] * w
        syy += y[c] * y[c] * w
    wp = 1.0 / (pr[5] * pr[5])
    pd = max((say + pr[2] * wp) / (saa + wp), 0.0)
    e1 = (gr[0] + iq * gr[1] - pr[0]) / pr[3]
    e2 = (gr[2] + jq * gr[3] - pr[1]) / pr[4]
    cost = syy - 2.0 * pd * say + pd * pd * saa + (pd - pr[2]) * (pd - pr[2]) * wp + e1 * e1 + e2 * e2
    return cost, pd, sgn


@njit(fastmath=_FM)
def _explicit(tables, yv, sv, gv, bv, fi, fj, pd, pr, gr, jtj, jtr, h):
    """Cost at (fi, fj, PD) and, into ``jtj`` (3, 3) / ``jtr`` (3,), the Gauss–Newton normal equations of
    the residuals ((PD·a_c − y_c)/σ_c, the three prior terms) in (node i, node j, PD)."""
    jtj[:] = 0.0
    jtr[:] = 0.0
    cost = 0.0
    for c in range(tables.shape[0]):
        s0 = interp_value(tables[c], bv, fi, fj)
        si = (interp_value(tables[c], bv, fi + h, fj) - interp_value(tables[c], bv, fi - h, fj)) / (2 * h)
        sj = (interp_value(tables[c], bv, fi, fj + h) - interp_value(tables[c], bv, fi, fj - h)) / (2 * h)
        sg = -1.0 if s0 < 0.0 else 1.0
        w = 1.0 / sv[c]
        r = (pd * gv[c] * abs(s0) - yv[c]) * w
        jac = (pd * gv[c] * sg * si * w, pd * gv[c] * sg * sj * w, gv[c] * abs(s0) * w)
        cost += r * r
        for p in range(3):
            jtr[p] += jac[p] * r
            for q in range(3):
                jtj[p, q] += jac[p] * jac[q]
    prior = ((gr[0] + fi * gr[1] - pr[0]) / pr[3], (gr[2] + fj * gr[3] - pr[1]) / pr[4], (pd - pr[2]) / pr[5])
    dprior = (gr[1] / pr[3], gr[3] / pr[4], 1.0 / pr[5])
    for p in range(3):
        cost += prior[p] * prior[p]
        jtr[p] += dprior[p] * prior[p]
        jtj[p, p] += dprior[p] * dprior[p]
    return cost


@njit(fastmath=_FM)
def _refine(tables, yv, sv, gv, bv, fi, fj, pd, pr, gr, inv_c, want_neg, n1, n2):
    """Levenberg–Marquardt in (node i, node j, PD) from the search's best point: follows the narrow diagonal
    valley that three contrasts and three unknowns make, which no grid resolves. Steps that leave the
    branch or the grid are refused."""
    jtj = np.empty((3, 3))
    jtr = np.empty(3)
    h = 1e-3
    lam = 1e-3
    c0 = _explicit(tables, yv, sv, gv, bv, fi, fj, pd, pr, gr, jtj, jtr, h)
    a = np.empty((3, 3))
    for _ in range(30):
        a[:] = jtj
        for p in range(3):
            a[p, p] += lam * jtj[p, p] + 1e-12
        d = np.linalg.solve(a, -jtr)
        ni, nj, npd = fi + d[0], fj + d[1], max(pd + d[2], 0.0)
        ok = 0.0 <= ni <= n1 - 1.0 and 0.0 <= nj <= n2 - 1.0
        if ok and inv_c >= 0:
            ok = (interp_value(tables[inv_c], bv, ni, nj) < 0.0) == want_neg
        if ok:
            jtj2 = np.empty((3, 3))
            jtr2 = np.empty(3)
            c1 = _explicit(tables, yv, sv, gv, bv, ni, nj, npd, pr, gr, jtj2, jtr2, h)
            if c1 < c0:
                small = abs(d[0]) + abs(d[1]) < 1e-4
                fi, fj, pd, c0 = ni, nj, npd, c1
                jtj[:] = jtj2
                jtr[:] = jtr2
                lam = max(lam * 0.3, 1e-9)
                if small:
                    break
                continue
        lam *= 10.0
        if lam > 1e6:
            break
    return fi, fj, pd, c0


@njit(inline="always")
def _window(mu, s, window, lo, step, n):
    a = max(0, int(math.floor((mu - window * s - lo) / step)))
    b = min(n - 1, int(math.ceil((mu + window * s - lo) / step)))
    return a, max(a, b)


@njit(parallel=True, fastmath=_FM, cache=True)
def _search_kernel(tables, y, sig, gain, bq, prior, gr, inv_c, window, out, branch):
    n1, n2 = tables.shape[2], tables.shape[3]
    for v in prange(y.shape[0]):
        yv, sv, gv, bv, pr = y[v], sig[v], gain[v], bq[v], prior[v]
        i_lo, i_hi = _window(pr[0], pr[3], window, gr[0], gr[1], n1)
        j_lo, j_hi = _window(pr[1], pr[4], window, gr[2], gr[3], n2)
        best = np.full(2, np.inf)
        bi = np.zeros(2, np.int64)
        bj = np.zeros(2, np.int64)
        for stage in range(2):
            for br in range(2 if stage else 1):
                if stage and not np.isfinite(best[br]):
                    continue
                a0 = i_lo if not stage else max(i_lo, bi[br] - 2)
                a1 = i_hi if not stage else min(i_hi, bi[br] + 2)
                b0 = j_lo if not stage else max(j_lo, bj[br] - 2)
                b1 = j_hi if not stage else min(j_hi, bj[br] + 2)
                step = 2 if not stage else 1
                for i in range(a0, a1 + 1, step):
                    for j in range(b0, b1 + 1, step):
                        c, _, sg = _cost(tables, yv, sv, gv, bv, float(i), float(j), pr, gr, inv_c)
                        k = 1 if sg < 0 else 0
                        if c < best[k]:
                            best[k], bi[k], bj[k] = c, i, j
        k = 0 if best[0] <= best[1] else 1
        i, j = bi[k], bj[k]
        fi, fj, cb = float(i), float(j), best[k]
        for a in range(-4, 5):  # quarter-node grid over ±1 node: finds the floor of a narrow valley
            for b in range(-4, 5):
                qi, qj = float(i) + 0.25 * a, float(j) + 0.25 * b
                if 0.0 <= qi <= n1 - 1.0 and 0.0 <= qj <= n2 - 1.0:
                    c, _, sg = _cost(tables, yv, sv, gv, bv, qi, qj, pr, gr, inv_c)
                    if c < cb and (inv_c < 0 or (sg < 0) == (k == 1)):
                        fi, fj, cb = qi, qj, c
        _, pd0, _ = _cost(tables, yv, sv, gv, bv, fi, fj, pr, gr, inv_c)
        fi, fj, pd1, c1 = _refine(tables, yv, sv, gv, bv, fi, fj, pd0, pr, gr, inv_c, k == 1, n1, n2)
        out[v, 0] = gr[0] + fi * gr[1]
        out[v, 1] = gr[2] + fj * gr[3]
        out[v, 2] = pd1
        out[v, 3] = c1
        out[v, 4] = best[1 - k]
        branch[v] = 0 if inv_c < 0 else (1 if k == 0 else -1)


def search_voxels(tables: np.ndarray, grid: Grid, y: np.ndarray, sigma: np.ndarray, gain: np.ndarray,
                  b1: np.ndarray, prior: np.ndarray, prior_sd: np.ndarray, inversion_series: int, window: float
                  ) -> dict[str, np.ndarray]:
    """MAP (T1, T2, PD) of N voxels (module docstring).

    Parameters
    ----------
    tables : (C, n_b1, n_t1, n_t2) signed dictionary; grid : its nodes.
    y, sigma, gain : (N, C) signals, their noise sd, gain × receive field of each series at each voxel.
    b1 : (N,) transmit scale; prior : (N, 3) (ln T1 [ln ms], ln T2 [ln ms], PD); prior_sd : (N, 3) their sds.
    inversion_series : index of the magnitude inversion-recovery series (both branches searched), −1 if none.
    window : the search half-width in prior sds.

    Returns
    -------
    ``{"t1_ms", "t2_ms", "pd", "cost", "cost_other", "branch"}``, each (N,).
    """
    n = len(y)
    out = np.empty((n, 5), np.float64)
    branch = np.zeros(n, np.int8)
    f64 = lambda a: np.ascontiguousarray(a, np.float64)  # noqa: E731
    bq = (f64(b1) - grid.b1[0]) / grid.db1
    gr = np.array([grid.log_t1[0], grid.dlog_t1, grid.log_t2[0], grid.dlog_t2], np.float64)
    _search_kernel(np.ascontiguousarray(tables, np.float32), f64(y), f64(sigma), f64(gain), bq,
                   f64(np.concatenate([prior, prior_sd], axis=1)), gr, int(inversion_series), float(window), out,
                   branch)
    return {"t1_ms": np.exp(out[:, 0]), "t2_ms": np.exp(out[:, 1]), "pd": out[:, 2], "cost": out[:, 3],
            "cost_other": out[:, 4], "branch": branch}
