"""Plain float64 NumPy reference of the isochromat Bloch simulator :func:`physics.bloch.bloch_run`.

One voxel at a time, written to be read rather than to be fast: isochromats are an (n_iso, 3) array moved
by 3×3 rotation matrices (Rodrigues), free precession is the analytic solution, and a shaped pulse is
integrated *exactly* per piecewise-constant step with the matrix exponential of the 4×4 homogeneous Bloch
generator (rotation and relaxation together), where the Numba kernel uses Strang splitting. The sequence
program (op table, timing conventions, ``n_iso``) is the kernel's, so the two differ only in numerics;
tests/physics/test_bloch.py holds the kernel to this reference.

The building blocks :func:`rotation_matrix`, :func:`rf_rotation` and :func:`free_precession` are also
re-exported by :mod:`physics.bloch`, as is :func:`bloch_reference`.
"""
from __future__ import annotations

import math

import numpy as np

from relaxomap.physics.protocol import Protocol
from relaxomap.physics.rf import PulseShape

__all__ = ["bloch_reference", "rotation_matrix", "rf_rotation", "free_precession"]


# ---------------------------------------------------------------------------------------------- building blocks
def rotation_matrix(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Right-handed rotation by ``angle_rad`` [rad] about ``axis`` (Rodrigues): ``R = cI + s[u]× + (1−c)uuᵀ``.

    Returns (3, 3) float64. Raises ValueError for a zero axis.
    """
    u = np.asarray(axis, dtype=np.float64).reshape(3)
    norm = float(np.linalg.norm(u))
    if not norm > 0.0:
        raise ValueError(f"rotation_matrix: axis must be a non-zero 3-vector; got {axis!r}")
    ux, uy, uz = u / norm
    k = np.array([[0.0, -uz, uy], [uz, 0.0, -ux], [-uy, ux, 0.0]])  # [u]×, k @ v = u × v
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return c * np.eye(3) + s * k + (1.0 - c) * np.outer(u / norm, u / norm)


def rf_rotation(flip_deg: float, phase_deg: float = 0.0) -> np.ndarray:
    """Hard RF pulse: rotation by ``flip_deg`` [deg] about ``(cos φ, sin φ, 0)``, ``φ = phase_deg`` [deg]; (3, 3)."""
    ph = math.radians(phase_deg)
    return rotation_matrix((math.cos(ph), math.sin(ph), 0.0), math.radians(flip_deg))


def _decay_np(t_ms: float, tau_ms: float) -> float:
    return math.exp(-t_ms / tau_ms) if tau_ms > 0 else (1.0 if t_ms == 0 else 0.0)


def free_precession(m: np.ndarray, t_ms: float, t1_ms: float, t2_ms: float,
                    off_resonance_hz: float = 0.0) -> np.ndarray:
    """Free precession and relaxation of magnetisation ``m`` (..., 3) [M0 = 1] for ``t_ms`` [ms].

    ``M_xy → e^{−t/T2}·R_z(2π·Δf·t)·M_xy``, ``M_z → M_z·e^{−t/T1} + 1 − e^{−t/T1}``.
    Returns a new (..., 3) float64.
    """
    m = np.array(m, dtype=np.float64)
    e1, e2 = _decay_np(t_ms, t1_ms), _decay_np(t_ms, t2_ms)
    ang = 2.0 * math.pi * off_resonance_hz * t_ms / 1000.0
    c, s = math.cos(ang), math.sin(ang)
    x, y = m[..., 0].copy(), m[..., 1].copy()
    m[..., 0] = e2 * (c * x - s * y)
    m[..., 1] = e2 * (s * x + c * y)
    m[..., 2] = m[..., 2] * e1 + (1.0 - e1)
    return m


def _bloch_generator(wx: float, wy: float, dw: float, t1_ms: float, t2_ms: float) -> np.ndarray:
    """4×4 homogeneous generator of dM/dt = Ω × M − relaxation, Ω = (wx, wy, dw) [rad/ms]."""
    r1, r2 = 1.0 / t1_ms, 1.0 / t2_ms
    return np.array([[-r2, -dw, wy, 0.0], [dw, -r2, -wx, 0.0], [-wy, wx, -r1, r1], [0.0, 0.0, 0.0, 0.0]])


# ---------------------------------------------------------------------------------------------- reference
def bloch_reference(
    t1_ms: float,
    t2_ms: float,
    protocol: Protocol,
    *,
    n_tr: int,
    n_iso: int | None = None,
    b1: float = 1.0,
    off_resonance_hz: float = 0.0,
    pulse: str | PulseShape = "hard",
    spoiling: str = "ideal",
    rf_increment_deg: float = 117.0,
) -> np.ndarray:
    """Plain float64 NumPy reference of :func:`physics.bloch.bloch_run` for one voxel (T1, T2 > 0), run for
    exactly ``n_tr`` TRs.

    Independent of the kernel in its numerics: shaped pulses integrate the Bloch equation *exactly* per
    piecewise-constant step with a matrix exponential of the 4×4 generator (rotation and relaxation together),
    isochromats are (n_iso, 3) arrays moved by 3×3 matrices. Slow; for tests.

    Returns
    -------
    (n_samples,) complex128 — the echoes of TR number ``n_tr`` (M0 = 1).
    """
    from scipy.linalg import expm  # test-only dependency path; keeps `import physics.bloch` light

    # Imported here, not at the top: physics.bloch imports this module to re-export its names.
    from relaxomap.physics._bloch_kernel import _CRUSH, _FREE, _INVERT, _PULSE, _SPOIL
    from relaxomap.physics.bloch import (
        _build_program,
        _check_common,
        _pulse_shapes,
        default_n_iso,
    )

    _check_common(protocol, spoiling, n_iso, n_tr, 0.5)
    if not (t1_ms > 0 and t2_ms > 0):
        raise ValueError(f"bloch_reference: t1_ms and t2_ms must be > 0; got {t1_ms}, {t2_ms}")
    if n_iso is None:
        n_iso = default_n_iso(protocol, spoiling, t2_ms)
    shapes = _pulse_shapes(protocol, pulse)
    ops, n_slots, _ = _build_program(protocol, shapes, spoiling)
    dw = 2.0 * math.pi * off_resonance_hz / 1000.0
    props = []  # per pulse type, 4×4 homogeneous propagator at RF phase 0
    for shape, flip in zip(shapes, [protocol.flip_deg, protocol.refocus_deg]):
        prop = np.eye(4)
        if shape is None:
            prop[:3, :3] = rf_rotation(b1 * flip, 0.0)
        else:
            for w_k, ph_k in zip(b1 * shape.omega1_rad_per_ms(flip), shape.phase_rad):
                g = _bloch_generator(w_k * math.cos(ph_k), w_k * math.sin(ph_k), dw, t1_ms, t2_ms)
                prop = expm(g * shape.dt_ms) @ prop
        props.append(prop)
    phi = 2.0 * math.pi * np.arange(n_iso) / n_iso
    m = np.zeros((n_iso, 3))
    m[:, 2] = 1.0
    echoes = np.zeros(n_slots, dtype=np.complex128)
    count, rf_phase, rx_phase = 0, 0.0, 0.0
    inc = math.radians(rf_increment_deg)
    for _ in range(n_tr):
        for code, a, b, c in ops:
            if code == _FREE:
                m = free_precession(m, a, t1_ms, t2_ms, off_resonance_hz)
            elif code == _PULSE:
                phase = b
                if c:
                    phase += rf_phase
                    rx_phase = rf_phase
                    count += 1
                    rf_phase = rf_phase + count * inc
                rz = np.eye(4)
                rz[:3, :3] = rotation_matrix((0.0, 0.0, 1.0), phase)
                full = rz @ props[int(a)] @ rz.T
                m = m @ full[:3, :3].T + full[:3, 3]
            elif code == _CRUSH:
                for j in range(n_iso):
                    m[j] = rotation_matrix((0.0, 0.0, 1.0), a * phi[j]) @ m[j]
            elif code == _SPOIL:
                m = np.column_stack([np.zeros(n_iso), np.zeros(n_iso), np.full(n_iso, m[:, 2].mean())])
            elif code == _INVERT:
                m = np.column_stack([np.zeros(n_iso), np.zeros(n_iso), -a * m[:, 2]])
            else:
                echoes[int(a)] = (m[:, 0].mean() + 1j * m[:, 1].mean()) * np.exp(-1j * rx_phase)
    return echoes
