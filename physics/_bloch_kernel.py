"""Numba kernels of the isochromat Bloch simulator (:mod:`physics.bloch`): pulse rotations, relaxation,
shaped-pulse affine maps and the voxel-parallel TR loop that runs an op-table program.

Float64 throughout. The op table (one row ``(code, a, b, c)`` per op, one TR per program) is built by
:func:`physics.bloch._build_program`; op codes are defined here. Conventions and the model are documented in
:mod:`physics.bloch`.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# Private module: physics.bloch (and tests/physics/test_bloch.py) import the underscore names they use.
__all__: list[str] = []

# Program op codes: one row (code, a, b, c) per op, one TR per program.
_FREE, _PULSE, _CRUSH, _SPOIL, _INVERT, _SAMPLE = 0, 1, 2, 3, 4, 5


@njit(cache=True)
def _decay(t, tau):
    if t == 0.0:
        return 1.0
    if tau > 0.0:
        return math.exp(-t / tau)
    return 0.0


@njit(cache=True)
def _rot3(wx, wy, wz, angle, r):
    """Right-handed rotation about (wx, wy, wz) by ``angle`` into ``r`` (3, 3); identity for a zero axis."""
    n = math.sqrt(wx * wx + wy * wy + wz * wz)
    if n == 0.0 or angle == 0.0:
        for i in range(3):
            for j in range(3):
                r[i, j] = 1.0 if i == j else 0.0
        return
    ux, uy, uz = wx / n, wy / n, wz / n
    c, s = math.cos(angle), math.sin(angle)
    cc = 1.0 - c
    r[0, 0] = c + ux * ux * cc
    r[0, 1] = ux * uy * cc - uz * s
    r[0, 2] = ux * uz * cc + uy * s
    r[1, 0] = uy * ux * cc + uz * s
    r[1, 1] = c + uy * uy * cc
    r[1, 2] = uy * uz * cc - ux * s
    r[2, 0] = uz * ux * cc - uy * s
    r[2, 1] = uz * uy * cc + ux * s
    r[2, 2] = c + uz * uz * cc


@njit(cache=True)
def _affine_relax(a, b, e1, e2):
    """(a, b) ← relaxation ∘ (a, b): M → diag(e2, e2, e1)·M + (0, 0, 1 − e1)."""
    for j in range(3):
        a[0, j] *= e2
        a[1, j] *= e2
        a[2, j] *= e1
    b[0] *= e2
    b[1] *= e2
    b[2] = b[2] * e1 + (1.0 - e1)


@njit(cache=True)
def _affine_rotate(r, a, b, tmp_a, tmp_b):
    """(a, b) ← r ∘ (a, b)."""
    for i in range(3):
        tmp_b[i] = r[i, 0] * b[0] + r[i, 1] * b[1] + r[i, 2] * b[2]
        for j in range(3):
            tmp_a[i, j] = r[i, 0] * a[0, j] + r[i, 1] * a[1, j] + r[i, 2] * a[2, j]
    a[:, :] = tmp_a
    b[:] = tmp_b


@njit(cache=True)
def _pulse_affine(shaped, angle, w, ph, n, dt, b1, dw, t1, t2, a, b):
    """The pulse (phase 0) as an affine map M → a·M + b for one voxel.

    Hard: rotation by ``b1·angle`` about x. Shaped: ``n`` steps of ``dt`` [ms], each relax(dt/2) ∘ exact
    rotation about (b1·ω1 cos φ, b1·ω1 sin φ, Δω) by |·|·dt ∘ relax(dt/2) (Strang splitting, O(dt²)).
    """
    b[:] = 0.0
    if not shaped:
        _rot3(1.0, 0.0, 0.0, b1 * angle, a)
        return
    for i in range(3):
        for j in range(3):
            a[i, j] = 1.0 if i == j else 0.0
    e1, e2 = _decay(0.5 * dt, t1), _decay(0.5 * dt, t2)
    r = np.empty((3, 3))
    tmp_a = np.empty((3, 3))
    tmp_b = np.empty(3)
    for k in range(n):
        wx = b1 * w[k] * math.cos(ph[k])
        wy = b1 * w[k] * math.sin(ph[k])
        mag = math.sqrt(wx * wx + wy * wy + dw * dw)
        _rot3(wx, wy, dw, mag * dt, r)
        _affine_relax(a, b, e1, e2)
        _affine_rotate(r, a, b, tmp_a, tmp_b)
        _affine_relax(a, b, e1, e2)


@njit(cache=True, inline="always")
def _rz_elem(j, k, c, s):
    """Element (j, k) of R_z(φ) = [[c, −s, 0], [s, c, 0], [0, 0, 1]]."""
    if j == 2 or k == 2:
        return 1.0 if j == k else 0.0
    if j == k:
        return c
    return -s if j == 0 else s


@njit(cache=True)
def _apply_pulse(mx, my, mz, a, b, phase, ap):
    """M ← R_z(φ)·(a·R_z(−φ)·M + b) for every isochromat (the pulse played with RF phase φ)."""
    c, s = math.cos(phase), math.sin(phase)
    # ap = R_z(φ)·a·R_z(−φ), written out: R_z(φ) = [[c, −s, 0], [s, c, 0], [0, 0, 1]]
    for j in range(3):  # t = a·R_z(−φ), column j of R_z(−φ) = row j of R_z(φ)
        t0 = a[0, 0] * _rz_elem(j, 0, c, s) + a[0, 1] * _rz_elem(j, 1, c, s) + a[0, 2] * _rz_elem(j, 2, c, s)
        t1 = a[1, 0] * _rz_elem(j, 0, c, s) + a[1, 1] * _rz_elem(j, 1, c, s) + a[1, 2] * _rz_elem(j, 2, c, s)
        t2 = a[2, 0] * _rz_elem(j, 0, c, s) + a[2, 1] * _rz_elem(j, 1, c, s) + a[2, 2] * _rz_elem(j, 2, c, s)
        ap[0, j] = c * t0 - s * t1
        ap[1, j] = s * t0 + c * t1
        ap[2, j] = t2
    bx, by, bz = c * b[0] - s * b[1], s * b[0] + c * b[1], b[2]
    for j in range(mx.shape[0]):
        x, y, z = mx[j], my[j], mz[j]
        mx[j] = ap[0, 0] * x + ap[0, 1] * y + ap[0, 2] * z + bx
        my[j] = ap[1, 0] * x + ap[1, 1] * y + ap[1, 2] * z + by
        mz[j] = ap[2, 0] * x + ap[2, 1] * y + ap[2, 2] * z + bz


@njit(cache=True)
def _free(mx, my, mz, t, t1, t2, dw):
    """Free precession for ``t`` [ms]: rotation by dw·t about z, then relaxation (M0 = 1)."""
    e1, e2 = _decay(t, t1), _decay(t, t2)
    c, s = math.cos(dw * t), math.sin(dw * t)
    for j in range(mx.shape[0]):
        x, y = mx[j], my[j]
        mx[j] = e2 * (c * x - s * y)
        my[j] = e2 * (s * x + c * y)
        mz[j] = mz[j] * e1 + (1.0 - e1)


@njit(cache=True)
def _crush(mx, my, cyc, phi, cphi, sphi):
    """``cyc`` crusher cycles: isochromat j turns by cyc·φ_j about z (cphi, sphi: cos, sin of φ_j)."""
    for j in range(mx.shape[0]):
        if cyc == 1.0:
            c, s = cphi[j], sphi[j]
        else:
            c, s = math.cos(cyc * phi[j]), math.sin(cyc * phi[j])
        x, y = mx[j], my[j]
        mx[j] = c * x - s * y
        my[j] = s * x + c * y


@njit(cache=True)
def _play_tr(ops, aff_a, aff_b, mx, my, mz, ap, cur_re, cur_im, phi, cphi, sphi, t1, t2, dw, rf, rf_inc):
    """One TR of the op table on the isochromats (mx, my, mz); samples into ``cur_re``, ``cur_im``.

    rf : (3,) float64 RF-spoiling state carried across TRs: [pulses played, next RF phase, receiver phase].
    """
    n_iso = mx.shape[0]
    for o in range(ops.shape[0]):
        code = int(ops[o, 0])
        if code == _FREE:
            _free(mx, my, mz, ops[o, 1], t1, t2, dw)
        elif code == _PULSE:
            p = int(ops[o, 1])
            phase = ops[o, 2]
            if ops[o, 3] != 0.0:  # RF-spoiled pulse: quadratic phase schedule
                phase += rf[1]
                rf[2] = rf[1]
                rf[0] += 1.0
                rf[1] = (rf[1] + rf[0] * rf_inc) % (2.0 * math.pi)
            _apply_pulse(mx, my, mz, aff_a[p], aff_b[p], phase, ap)
        elif code == _CRUSH:
            _crush(mx, my, ops[o, 1], phi, cphi, sphi)
        elif code == _SPOIL:
            zbar = mz.sum() / n_iso
            for j in range(n_iso):
                mx[j] = 0.0
                my[j] = 0.0
                mz[j] = zbar
        elif code == _INVERT:
            kappa = ops[o, 1]
            for j in range(n_iso):
                mx[j] = 0.0
                my[j] = 0.0
                mz[j] = -kappa * mz[j]
        else:  # _SAMPLE
            slot = int(ops[o, 1])
            re, im = mx.sum() / n_iso, my.sum() / n_iso
            c, s = math.cos(rf[2]), math.sin(rf[2])
            cur_re[slot] = c * re + s * im
            cur_im[slot] = c * im - s * re


@njit(cache=True)
def _tr_change(mz, cur_re, cur_im, prev_abs, prev_mz, tr):
    """TR-to-TR change of the mean M_z and (from the second TR) of every echo magnitude; updates prev_abs.

    Returns (change, mean M_z of this TR).
    """
    zbar = mz.sum() / mz.shape[0]
    err = abs(zbar - prev_mz)
    for k in range(cur_re.shape[0]):
        amp = math.sqrt(cur_re[k] * cur_re[k] + cur_im[k] * cur_im[k])
        if tr > 1:
            err = max(err, abs(amp - prev_abs[k]))
        prev_abs[k] = amp
    return err, zbar


@njit(cache=True)
def _steady(err, prev_err, tol):
    """Whether the change ``err`` of this TR, with the geometric tail Δ·r/(1−r) still to come, is below tol."""
    if err == 0.0:
        return True
    r = min(err / prev_err, 0.999) if prev_err > 0.0 else 0.999
    return err * max(1.0, r / (1.0 - r)) < tol


@njit(parallel=True, cache=True)
def _run_kernel(t1, t2, b1, df_hz, ops, p_shaped, p_angle, p_w, p_ph, p_n, p_dt, n_iso, rf_inc, max_tr, tol, n_slots):
    """Every voxel to steady state: (echo real parts, imaginary parts) (n_vox, n_slots), TRs run, converged."""
    n_vox = t1.shape[0]
    n_p = p_angle.shape[0]
    sig_re = np.zeros((n_vox, n_slots))
    sig_im = np.zeros((n_vox, n_slots))
    n_tr = np.zeros(n_vox, np.int64)
    conv = np.zeros(n_vox, np.bool_)
    phi = 2.0 * math.pi * np.arange(n_iso) / n_iso  # (n_iso,) dephasing per crusher cycle
    cphi, sphi = np.cos(phi), np.sin(phi)
    for v in prange(n_vox):
        dw = 2.0 * math.pi * df_hz[v] / 1000.0  # [rad/ms]
        aff_a = np.empty((n_p, 3, 3))
        aff_b = np.empty((n_p, 3))
        for p in range(n_p):
            _pulse_affine(p_shaped[p], p_angle[p], p_w[p], p_ph[p], p_n[p], p_dt[p], b1[v], dw, t1[v], t2[v],
                          aff_a[p], aff_b[p])
        mx = np.zeros(n_iso)
        my = np.zeros(n_iso)
        mz = np.ones(n_iso)
        ap = np.empty((3, 3))
        cur_re = np.zeros(n_slots)
        cur_im = np.zeros(n_slots)
        prev_abs = np.zeros(n_slots)
        rf = np.zeros(3)
        prev_mz, prev_err = 1.0, 0.0
        tr = 0
        done = False
        while tr < max_tr and not done:
            _play_tr(ops, aff_a, aff_b, mx, my, mz, ap, cur_re, cur_im, phi, cphi, sphi, t1[v], t2[v], dw, rf, rf_inc)
            tr += 1
            err, zbar = _tr_change(mz, cur_re, cur_im, prev_abs, prev_mz, tr)
            if tr > 1:
                done = _steady(err, prev_err, tol)
            prev_mz, prev_err = zbar, err
        for k in range(n_slots):
            sig_re[v, k] = cur_re[k]
            sig_im[v, k] = cur_im[k]
        n_tr[v] = tr
        conv[v] = done
    return sig_re, sig_im, n_tr, conv


@njit(cache=True)
def _shaped_affine_one(w, ph, dt, b1, dw, t1, t2):
    a = np.empty((3, 3))
    b = np.empty(3)
    _pulse_affine(True, 0.0, w, ph, w.shape[0], dt, b1, dw, t1, t2, a, b)
    return a, b
