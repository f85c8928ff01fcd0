"""NumPy implementations of the EPG that the Numba kernel of :mod:`physics.epg` is held to.

* :func:`epg_reference` — plain float64 complex EPG of one voxel: Weigel's F₊/F₋/Z states and general-phase
  rotations (eq. 15), no family split and no pruning; the steady state is solved exactly from two TRs (the TR
  is affine in Mz), or TRs are repeated from equilibrium. Slow; the reference the tests compare against.
* :func:`epg_numpy` — vectorised NumPy float32 version of :func:`physics.epg.epg_echo_train` (same two-family
  real EPG and state pruning, states of all voxels as ``(n_states, n_vox)`` arrays): the benchmark baseline.

Sequence, conventions and validation are those of :mod:`physics.epg`, which re-exports both functions.
"""
from __future__ import annotations

import math

import numpy as np

from relaxomap.physics.protocol import Protocol

__all__ = ["epg_reference", "epg_numpy"]

# The validation and timing helpers come from physics.epg, imported inside each function: physics.epg imports
# this module to re-export its names, so a top-level import would be circular.


# --------------------------------------------------------------------------- vectorised NumPy baseline
def epg_numpy(t1_ms: np.ndarray, t2_ms: np.ndarray, protocol: Protocol, *,
              b1: float | np.ndarray | None = None, refocus_deg: np.ndarray | None = None) -> np.ndarray:
    """Vectorised NumPy (float32) version of :func:`physics.epg.epg_echo_train`: the benchmark baseline.

    Same two-family real EPG and the same state pruning, with the states of all voxels as
    ``(n_states, n_vox)`` arrays and one set of array operations per pulse; same contract and return.
    """
    from relaxomap.physics.epg import _b1_array, _check_protocol, _flat_maps, _schedule_rad, _timing

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
    return np.abs(h * mz.astype(f32)).T.astype(f32)  # (etl, n_vox) -> (n_vox, etl)


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


# --------------------------------------------------------------------------- float64 reference
def _rf_matrix(alpha_rad: float, phase_rad: float) -> np.ndarray:
    """Weigel's (2015, eq. 15) 3×3 complex rotation of (F₊_k, F₋_k, Z_k) by ``alpha`` about phase ``phase``."""
    c2, s2 = math.cos(alpha_rad / 2) ** 2, math.sin(alpha_rad / 2) ** 2
    sa, ca = math.sin(alpha_rad), math.cos(alpha_rad)
    e = np.exp(1j * phase_rad)
    return np.array([
        [c2, e * e * s2, -1j * e * sa],
        [np.conj(e * e) * s2, c2, 1j * np.conj(e) * sa],
        [-0.5j * np.conj(e) * sa, 0.5j * e * sa, ca],
    ])


def _reference_tr(mz_start: float, t1_ms: float, t2_ms: float, protocol: Protocol, angles_rad: np.ndarray,
                  b1: float) -> tuple[np.ndarray, float]:
    """One TR of the full complex EPG from Z_0 = mz_start: (echoes (etl,) complex, Z_0 at the end)."""
    etl, esp = protocol.etl, protocol.esp_ms
    n_states = 2 * etl + 2  # F shifts 2·etl times: no state is ever lost
    fp = np.zeros(n_states, complex)  # F₊_k, k >= 0
    fm = np.zeros(n_states, complex)  # F₋_k, k >= 0 (F₋_0 = conj F₊_0)
    z = np.zeros(n_states, complex)
    z[0] = mz_start

    def relax(t: float) -> None:
        e1, e2 = math.exp(-t / t1_ms), math.exp(-t / t2_ms)
        fp[:], fm[:], z[:] = fp * e2, fm * e2, z * e1
        z[0] += 1.0 - e1

    def shift() -> None:
        fp[1:], fm[:-1] = fp[:-1].copy(), fm[1:].copy()
        fm[-1] = 0.0
        fp[0] = np.conj(fm[0])

    def rf(alpha: float, phase: float) -> None:
        fp[:], fm[:], z[:] = _rf_matrix(alpha, phase) @ np.stack([fp, fm, z])

    if protocol.kind == "ir_tse":
        z[0] *= -protocol.inversion_efficiency
        relax(protocol.ti_ms)
    rf(math.radians(protocol.flip_deg) * b1, 0.0)  # excitation about x
    echoes = np.zeros(etl, complex)
    for j in range(etl):
        relax(esp / 2)
        shift()
        rf(angles_rad[j] * b1, math.pi / 2)  # refocusing about y (CPMG)
        relax(esp / 2)
        shift()
        echoes[j] = fp[0]
    relax(max(protocol.tr_ms - (protocol.ti_ms if protocol.kind == "ir_tse" else 0.0) - etl * esp, 0.0))
    return echoes, float(z[0].real)  # crushers: only Z_0 survives into the next TR


def epg_reference(t1_ms: float, t2_ms: float, protocol: Protocol, *, b1: float = 1.0,
                  refocus_deg: np.ndarray | None = None, n_tr: int | None = None) -> np.ndarray:
    """Plain float64 complex EPG of one voxel (Weigel's F₊/F₋/Z states, general-phase rotations).

    Parameters
    ----------
    t1_ms, t2_ms : > 0 [ms].
    protocol : kind ``se``, ``tse`` or ``ir_tse``.
    b1 : > 0, flip-angle scale. refocus_deg : optional (etl,) schedule [deg].
    n_tr : None for the steady state, solved exactly from two TRs starting at Mz = 0 and Mz = 1 (the TR is
        affine in Mz); an integer to instead repeat ``n_tr`` TRs from equilibrium (Mz = 1) and return the
        echoes of the last one (n_tr = 1: a single-shot train).

    Returns
    -------
    (etl,) float64 : |echo k| for PD = 1.
    """
    from relaxomap.physics.epg import _check_protocol, _schedule_rad

    protocol = _check_protocol(protocol)
    for name, val in (("t1_ms", t1_ms), ("t2_ms", t2_ms), ("b1", b1)):
        if not (math.isfinite(val) and val > 0):
            raise ValueError(f"epg_reference: {name} must be finite and > 0; got {val}")
    angles = _schedule_rad(protocol, refocus_deg)
    if n_tr is None:
        ech0, m0 = _reference_tr(0.0, t1_ms, t2_ms, protocol, angles, b1)
        ech1, m1 = _reference_tr(1.0, t1_ms, t2_ms, protocol, angles, b1)
        mss = m0 / (1.0 - (m1 - m0))  # fixed point of M -> m0 + (m1 - m0)·M
        return np.abs(ech0 + (ech1 - ech0) * mss)
    if int(n_tr) < 1:
        raise ValueError(f"epg_reference: n_tr must be None or an integer >= 1; got {n_tr}")
    mz = 1.0
    for _ in range(int(n_tr)):
        echoes, mz = _reference_tr(mz, t1_ms, t2_ms, protocol, angles, b1)
    return np.abs(echoes)
