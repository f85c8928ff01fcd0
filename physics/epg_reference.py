"""Float64 reference of the EPG simulator :mod:`physics.epg`, written independently of its fast kernel.

:func:`epg_reference` is a plain complex EPG of one voxel: Weigel's F₊/F₋/Z states and general-phase rotations
(eq. 15), no family split and no pruning; the steady state is solved exactly from two TRs (the TR is affine in
Mz), or TRs are repeated from equilibrium. Slow; the reference the tests hold the Numba kernel to.

It shares nothing with :mod:`physics.epg` but the :class:`~physics.protocol.Protocol` it reads: its own input
checks, its own refocusing schedule and its own sequence timing (the same conventions, documented in
:mod:`physics.epg`: excitation about x at 0, refocusing about y at (k − ½)·esp, echo k at k·esp, inversion
``ti_ms`` before the excitation for ``ir_tse``, ideal spoiling at the end of the TR). Neither module imports
the other (tests/physics/test_independence.py).
"""
from __future__ import annotations

import math

import numpy as np

from relaxomap.physics.protocol import SPIN_ECHO_KINDS, Protocol

__all__ = ["epg_reference"]


# --------------------------------------------------------------------------- input checks
def _check_inputs(t1_ms: float, t2_ms: float, protocol: Protocol, b1: float) -> None:
    """TypeError / ValueError naming the argument, the bad value and what is allowed."""
    if not isinstance(protocol, Protocol):
        raise TypeError(f"epg_reference: protocol must be a physics.protocol.Protocol; got {type(protocol).__name__}")
    if protocol.kind not in SPIN_ECHO_KINDS:
        raise ValueError(
            f"epg_reference: Protocol.kind must be one of {list(SPIN_ECHO_KINDS)}; got {protocol.kind!r} "
            f"(with ideal spoiling EPG reduces to the closed form: use physics.signal for 'spgr'/'mprage')"
        )
    for name, val in (("t1_ms", t1_ms), ("t2_ms", t2_ms), ("b1", b1)):
        if not (math.isfinite(val) and val > 0):
            raise ValueError(f"epg_reference: {name} must be finite and > 0; got {val}")


def _refocusing_rad(protocol: Protocol, refocus_deg: np.ndarray | None) -> np.ndarray:
    """Refocusing angle of each of the etl pulses [rad], (etl,) float64."""
    if refocus_deg is None:
        return np.full(protocol.etl, math.radians(protocol.refocus_deg))
    angles = np.asarray(refocus_deg, dtype=np.float64)
    if angles.shape != (protocol.etl,):
        raise ValueError(f"epg_reference: refocus_deg must have shape (etl,) = ({protocol.etl},); got {angles.shape}")
    if not (np.isfinite(angles).all() and (angles > 0).all() and (angles <= 180).all()):
        raise ValueError(f"epg_reference: refocus_deg must hold finite angles in (0, 180] deg; got {angles}")
    return np.radians(angles)


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
    _check_inputs(t1_ms, t2_ms, protocol, b1)
    angles = _refocusing_rad(protocol, refocus_deg)
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
