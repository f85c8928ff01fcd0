"""Vectorised NumPy (float32) EPG: the baseline that ``relaxomap bench physics`` times the Numba kernel against.

:func:`epg_numpy` runs the same two-family real EPG with the same state pruning as
:func:`physics.epg.epg_echo_train` (see :mod:`physics.epg` for the sequence and the model), with the states
of all voxels as ``(n_states, n_vox)`` arrays and one set of array operations per pulse. It shares the fast
module's input checks and timing table (it is a second implementation of that kernel, not a reference: the
independent float64 reference is :mod:`physics.epg_reference`).
"""
from __future__ import annotations

import numpy as np

from relaxomap.physics.epg import _b1_array, _check_protocol, _flat_maps, _schedule_rad, _timing
from relaxomap.physics.protocol import Protocol

__all__ = ["epg_numpy"]


# --------------------------------------------------------------------------- vectorised NumPy baseline
def epg_numpy(t1_ms: np.ndarray, t2_ms: np.ndarray, protocol: Protocol, *,
              b1: float | np.ndarray | None = None, refocus_deg: np.ndarray | None = None,
              signed: bool = False) -> np.ndarray:
    """Vectorised NumPy (float32) version of :func:`physics.epg.epg_echo_train`: the benchmark baseline.

    Same two-family real EPG and the same state pruning, with the states of all voxels as
    ``(n_states, n_vox)`` arrays and one set of array operations per pulse; same contract and return.
    ``signed=True`` returns the real echo amplitude instead of its magnitude (its sign is that of Mz before
    the excitation: smooth through an inversion null, where the magnitude has a kink).
    """
    protocol = _check_protocol(protocol)
    t1, t2 = _flat_maps(t1_ms, t2_ms)
    b1_arr, _ = _b1_array(b1, t1.shape)
    angles = _schedule_rad(protocol, refocus_deg)
    esp, etl = protocol.esp_ms, protocol.etl
    timing = _timing(protocol)
    f32 = np.float32
    t1d = np.where(t1 > 0, t1, 1.0).astype(np.float64)  # background (0) handled by the where() below
    t2d = np.where(t2 > 0, t2, 1.0).astype(np.float64)
    d2 = np.where(t2 > 0, np.exp(-0.5 * esp / t2d), 0.0)
    d1 = np.where(t1 > 0, np.exp(-0.5 * esp / t1d), 0.0)
    e2h, e2, e1h, e1 = (x.astype(f32) for x in (d2, d2 * d2, d1, d1 * d1))
    q1h = np.where(t1 > 0, -np.expm1(-0.5 * esp / t1d), 1.0).astype(f32)  # 1 − E1, precise for T1 ≫ esp
    q1 = np.where(t1 > 0, -np.expm1(-esp / t1d), 1.0).astype(f32)
    b1v = b1_arr.astype(np.float64)
    flip = timing[4] * b1v
    # F over k = −K..K (row K + k), Z over k = 0..K; K = 2·etl covers every reachable state.
    K = 2 * etl
    # echo family (real g, w)
    g = np.zeros((2 * K + 1, t1.size), f32)
    wz = np.zeros((K + 1, t1.size), f32)
    g[K + 1] = np.sin(flip)
    h = np.zeros((etl, t1.size), f32)
    # longitudinal family: homogeneous / inhomogeneous stacked on a leading axis
    f = np.zeros((2, 2 * K + 1, t1.size), f32)
    z = np.zeros((2, K + 1, t1.size), f32)
    z[0, 0] = np.cos(flip)
    for j in range(1, etl + 1):
        r2, r1, rec = (e2h, e1h, q1h) if j == 1 else (e2, e1, q1)
        alpha = angles[j - 1] * b1v
        ca, sa = np.cos(alpha).astype(f32), np.sin(alpha).astype(f32)
        c2, s2 = (0.5 * (1 + ca)).astype(f32), (0.5 * (1 - ca)).astype(f32)
        if j > 1:  # shift by one esp: F_k -> F_{k+2}
            g[2:] = g[:-2].copy()
            g[:2] = 0.0
            f[:, 2:] = f[:, :-2].copy()
            f[:, :2] = 0.0
        ko = np.arange(1, min(2 * j - 1, 2 * (etl - j) + 1) + 1, 2)  # echo-family pairs, k odd
        x, y, zz = g[K + ko] * r2, g[K - ko] * r2, wz[ko] * r1
        g[K + ko] = c2 * x + s2 * y + sa * zz
        g[K - ko] = s2 * x + c2 * y - sa * zz
        wz[ko] = 0.5 * sa * (y - x) + ca * zz
        h[j - 1] = g[K - 1] * e2h
        x0, z0 = f[:, K] * r2, z[:, 0] * r1  # longitudinal k = 0: F_0 and Z_0 (with recovery)
        z0[1] += rec
        f[:, K], z[:, 0] = ca * x0 + sa * z0, ca * z0 - sa * x0
        ke = np.arange(2, min(2 * (j - 1), 2 * (etl - j)) + 1, 2)  # longitudinal pairs, k even >= 2
        x, y, zz = f[:, K + ke] * r2, f[:, K - ke] * r2, z[:, ke] * r1
        f[:, K + ke] = c2 * x - s2 * y + sa * zz
        f[:, K - ke] = c2 * y - s2 * x + sa * zz
        z[:, ke] = ca * zz - 0.5 * sa * (x + y)
    mz = _steady_mz_exc_vec(z[0, 0].astype(np.float64), z[1, 0].astype(np.float64), t1, timing)
    echoes = h * mz.astype(f32)
    return (echoes if signed else np.abs(echoes)).T.astype(f32)  # (etl, n_vox) -> (n_vox, etl)


def _steady_mz_exc_vec(z_h: np.ndarray, z_i: np.ndarray, t1_ms: np.ndarray, timing: np.ndarray) -> np.ndarray:
    """NumPy twin of ``physics.epg._steady_mz_exc`` over voxels (float64)."""
    t1 = t1_ms.astype(np.float64)
    pos = t1 > 0
    safe = np.where(pos, t1, 1.0)

    def dec(t: float) -> np.ndarray:
        return np.ones_like(t1) if t <= 0 else np.where(pos, np.exp(-t / safe), 0.0)

    def rec(t: float) -> np.ndarray:
        return np.zeros_like(t1) if t <= 0 else np.where(pos, -np.expm1(-t / safe), 1.0)

    half = 0.5 * timing[0]
    a = z_h * dec(half)
    b = z_i * dec(half) + rec(half)
    e_t = dec(timing[1])
    if timing[5] > 0.5:
        p, q = -timing[3] * dec(timing[2]), rec(timing[2])
    else:
        p, q = np.ones_like(t1), np.zeros_like(t1)
    m = ((a * q + b) * e_t + rec(timing[1])) / (1.0 - a * p * e_t)
    return p * m + q
