"""Extended Phase Graph (EPG) simulation of spin-echo trains (``se``, ``tse``, ``ir_tse``) in steady state.

Sequence (times from the excitation; ``ir_tse`` adds an inversion ``ti_ms`` before it)
-------------------------------------------------------------------------------------
inversion (``ir_tse`` only, Mz → −κ·Mz, κ = ``inversion_efficiency``, independent of B1 as for an adiabatic
pulse) · free recovery ``ti_ms`` · excitation ``flip_deg·b1`` about x · refocusing pulses
``refocus_deg[k]·b1`` about y at (k − ½)·esp_ms · echo k at k·esp_ms, k = 1..etl · free recovery to the end
of the TR · crushers: every transverse state F_k and every Z_k with k > 0 is spoiled, only Z_0 survives.
``tr_ms`` runs excitation to excitation (``se``/``tse``) or inversion to inversion (``ir_tse``); the free
recovery after the last echo lasts tr_ms − ti_ms − etl·esp_ms.

Model (Hennig 1988; Weigel 2015)
--------------------------------
M₊(θ) = Σ_k F_k e^{ikθ}, M_z(θ) = Σ_k Z_k e^{ikθ} over the dephasing θ that one crusher lobe (area per esp/2)
winds across a voxel. Between pulses F_k → F_{k+1} per esp/2, F decays with E2 = e^{−t/T2}, Z_k with
E1 = e^{−t/T1}, and Z_0 recovers by 1 − E1 (M0 = 1). A pulse of angle α with phase φ mixes (F_k, F_{−k}*, Z_k)
by Weigel's T(α, φ); here φ = 0 (x) for the excitation and φ = 90° (y) for the refocusing pulses (CPMG).

Real two-family form (what the fast kernels use)
------------------------------------------------
States with odd k at pulse times are fed by the excitation only ("echo family": F = i·g, Z = i·w with
g, w real); states with even k at pulse times (including Z_0 and its recovery) form the "longitudinal
family" (F, Z real). Shifts move both families by 2 per esp, pulses never mix k, so the families never
meet: only the echo family is at k = 0 at echo times, only the longitudinal family reaches Z_0 before
the end-of-TR spoiling. Written out, a refocusing pulse (c² = cos²(α/2), s² = sin²(α/2)) acts as

    echo family (k odd > 0):          g_k' = c² g_k + s² g_−k + sin α w_k
                                       g_−k' = s² g_k + c² g_−k − sin α w_k
                                       w_k' = ½ sin α (g_−k − g_k) + cos α w_k
    longitudinal family (k even ≥ 0): F_k' = c² F_k − s² F_−k + sin α Z_k
                                       F_−k' = −s² F_k + c² F_−k + sin α Z_k
                                       Z_k' = −½ sin α (F_k + F_−k) + cos α Z_k

all real (the CPMG condition), so the kernels work in float32 real arithmetic. States are pruned to those
that are populated after j pulses (|k| ≤ 2j − 1) *and* can still reach the wanted output (the last needed
echo for the echo family, Z_0 after the last pulse for the longitudinal family): about half of all states.

Steady state without iterating over TRs
---------------------------------------
Because only Z_0 survives the end-of-TR spoiling, one TR is an affine map of the scalar Mz before the
excitation (``se``/``tse``) or inversion (``ir_tse``). With Mz_exc = p·M + q the magnetisation at the
excitation (p = 1, q = 0; for ``ir_tse`` p = −κ·E1(TI), q = 1 − E1(TI)), the echo family gives the echoes
h_k·Mz_exc (h_k: echo k for unit Mz_exc; it is linear, no recovery term) and the longitudinal family, run
homogeneous (start cos(flip)·1, no recovery) and inhomogeneous (start 0, with recovery) in one pass,
gives Z_0 at the last echo as a·Mz_exc + b. With E_t = E1 over the recovery after the last echo:

    M = ((a·q + b)·E_t + 1 − E_t) / (1 − a·p·E_t),     echo_k = |h_k · (p·M + q)|,

exact, in float64 per voxel; the float64 reference :func:`physics.epg_reference.epg_reference` (its own
complex EPG and input handling; this module does not import it) checks it against brute-force repetition
of TRs. The vectorised NumPy benchmark baseline is :func:`physics.epg_numpy.epg_numpy`.

References
----------
J. Hennig, "Multiecho imaging sequences with low refocusing flip angles", J Magn Reson 78:397 (1988).
M. Weigel, "Extended phase graphs: dephasing, RF pulses, and echoes - pure and simple", JMRI 41:266 (2015).
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numba
import numpy as np
from numba import njit, prange

from relaxomap.physics.checks import check_map_array
from relaxomap.physics.protocol import SPIN_ECHO_KINDS, Protocol

__all__ = ["epg_echo_train", "epg_signal", "BLOCK"]

#: Voxels per SIMD block of the Numba kernel (states are stored [n_states, BLOCK], voxel innermost).
BLOCK = 64

# No nnan/ninf: background voxels (T1 = 0 or T2 = 0) rely on exact zeros and comparisons.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


# --------------------------------------------------------------------------- validation helpers
def _check_protocol(protocol: Protocol) -> Protocol:
    if not isinstance(protocol, Protocol):
        raise TypeError(f"protocol must be a physics.protocol.Protocol; got {type(protocol).__name__}")
    if protocol.kind not in SPIN_ECHO_KINDS:
        raise ValueError(
            f"Protocol.kind must be one of {list(SPIN_ECHO_KINDS)} for the EPG simulator; got {protocol.kind!r} "
            f"(with ideal spoiling EPG reduces to the closed form: use physics.signal for 'spgr'/'mprage')"
        )
    return protocol


def _schedule_rad(protocol: Protocol, refocus_deg: np.ndarray | None) -> np.ndarray:
    """Refocusing angles [rad], (etl,) float64: the protocol's ``refocus_deg`` or the given schedule."""
    etl = protocol.etl
    if refocus_deg is None:
        return np.full(etl, math.radians(protocol.refocus_deg))
    sched = np.asarray(refocus_deg, dtype=np.float64)
    if sched.shape != (etl,):
        raise ValueError(f"refocus_deg must have shape (etl,) = ({etl},); got {sched.shape}")
    bad = ~np.isfinite(sched) | (sched <= 0.0) | (sched > 180.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"refocus_deg[{i}] must be finite in (0, 180] deg; got {sched[i]}")
    return np.radians(sched)


def _flat_maps(t1_ms: np.ndarray, t2_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t1, t2 = np.asarray(t1_ms), np.asarray(t2_ms)
    if t1.ndim != 1 or t2.shape != t1.shape:
        raise ValueError(f"t1_ms and t2_ms must be flat arrays of equal shape (n_vox,); got {t1.shape}, {t2.shape}")
    check_map_array("t1_ms", t1)
    check_map_array("t2_ms", t2)
    return np.ascontiguousarray(t1, np.float32), np.ascontiguousarray(t2, np.float32)


def _b1_array(b1: float | np.ndarray | None, shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
    """B1 scale per voxel as a flat float32 array and whether it is uniform (one value for all voxels)."""
    if b1 is None:
        return np.ones(int(np.prod(shape)), np.float32), True
    arr = np.asarray(b1, dtype=np.float64)
    if arr.ndim == 0:
        check_map_array("b1", arr, allow_zero=False)
        return np.full(int(np.prod(shape)), float(arr), np.float32), True
    if arr.shape != tuple(shape):
        raise ValueError(f"b1 must be a scalar or an array of the maps' shape {tuple(shape)}; got {arr.shape}")
    check_map_array("b1", arr, allow_zero=False)
    return np.ascontiguousarray(arr.ravel(), np.float32), False


def _timing(protocol: Protocol) -> np.ndarray:
    """(esp_ms, tail_ms, ti_ms, kappa, flip_rad, inverts) as float64 for the kernels."""
    inverts = protocol.kind == "ir_tse"
    ti = protocol.ti_ms if inverts else 0.0
    tail = max(protocol.tr_ms - ti - protocol.etl * protocol.esp_ms, 0.0)
    return np.array([protocol.esp_ms, tail, ti, protocol.inversion_efficiency,
                     math.radians(protocol.flip_deg), float(inverts)])


# --------------------------------------------------------------------------- Numba kernel
@njit(cache=True, inline="always")
def _decay(t_ms, tau_ms):
    """e^{−t/τ} with the limits τ → 0 (0) and t = 0 (1), no division by zero."""
    if t_ms <= 0.0:
        return 1.0
    if tau_ms <= 0.0:
        return 0.0
    return math.exp(-t_ms / tau_ms)


@njit(cache=True, inline="always")
def _recover(t_ms, tau_ms):
    """1 − e^{−t/τ} computed with expm1, so that it keeps its relative precision when t ≪ τ."""
    if t_ms <= 0.0:
        return 0.0
    if tau_ms <= 0.0:
        return 1.0
    return -math.expm1(-t_ms / tau_ms)


@njit(cache=True)
def _steady_mz_exc(z_h, z_i, t1_ms, timing):
    """Steady-state Mz at the excitation (float64) from the longitudinal family's Z_0 after the last pulse.

    z_h, z_i : Z_0 after the last pulse for Mz_exc = 1 without recovery, and for Mz_exc = 0 with recovery;
    so Z_0 at the last echo is a·Mz_exc + b (module docstring) and one TR is affine in M.
    """
    half = 0.5 * timing[0]
    a = z_h * _decay(half, t1_ms)
    b = z_i * _decay(half, t1_ms) + _recover(half, t1_ms)
    e_t = _decay(timing[1], t1_ms)
    if timing[5] > 0.5:  # ir_tse: Mz_exc = −κ·E1(TI)·M + 1 − E1(TI)
        p, q = -timing[3] * _decay(timing[2], t1_ms), _recover(timing[2], t1_ms)
    else:
        p, q = 1.0, 0.0
    m = ((a * q + b) * e_t + _recover(timing[1], t1_ms)) / (1.0 - a * p * e_t)
    return p * m + q


@njit(cache=True)
def _pulse_coefficients(angles_rad, b1, c2, s2, sa, ca, col):
    """cos²(α/2), sin²(α/2), sin α, cos α of each angle·b1 into column ``col`` of (n_angles, BLOCK) arrays."""
    for u in range(angles_rad.shape[0]):
        a = angles_rad[u] * b1
        cos_a = math.cos(a)
        ca[u, col] = cos_a
        sa[u, col] = math.sin(a)
        c2[u, col] = 0.5 * (1.0 + cos_a)
        s2[u, col] = 0.5 * (1.0 - cos_a)


@njit(fastmath=_FASTMATH, cache=True, inline="always")
def _block_factors(t1_ms, t2_ms, b1, b1_uniform, angles_rad, flip_rad, esp, v0, nv, rel, c2, s2, sa, ca, exc):
    """Relaxation and pulse factors of the voxels ``v0 .. v0 + nv`` (the last block padded with voxel v0).

    rel : (6, BLOCK) rows E2(esp), E2(esp/2), E1(esp), E1(esp/2), 1 − E1(esp), 1 − E1(esp/2) (the last two
    exact to float32 even when T1 ≫ esp); exc : (2, BLOCK) rows sin, cos of the excitation; c2, s2, sa, ca:
    see ``_pulse_coefficients`` (filled once per chunk when b1 is uniform).
    """
    for v in range(BLOCK):
        i = v0 + v if v < nv else v0  # pad the last block with a valid voxel
        d2 = _decay(0.5 * esp, t2_ms[i])
        d1 = _decay(0.5 * esp, t1_ms[i])
        rel[1, v], rel[0, v], rel[3, v], rel[2, v] = d2, d2 * d2, d1, d1 * d1
        rel[5, v] = _recover(0.5 * esp, t1_ms[i])
        rel[4, v] = _recover(esp, t1_ms[i])
        if not b1_uniform:
            _pulse_coefficients(angles_rad, b1[i], c2, s2, sa, ca, v)
            exc[0, v] = math.sin(flip_rad * b1[i])
            exc[1, v] = math.cos(flip_rad * b1[i])


@njit(fastmath=_FASTMATH, cache=True, inline="always")
def _echo_family(g, w, h, pulse_angle, n, rel, c2, s2, sa, ca, sin_exc):
    """Run the echo family (real g, w; module docstring) through ``n`` pulses; echo j into ``h[j − 1]``.

    g : (2n, BLOCK) F rows, k = 2r + 2j − 4n + 1 at pulse j; w : (n, BLOCK) Z_k, k = 2r + 1; both zeroed here.
    h : (n, BLOCK) echo j for Mz_exc = 1.
    """
    g[:] = 0.0
    w[:] = 0.0
    g[2 * n - 1, :] = sin_exc  # F_1 = sin(flip) right after the first esp/2 of dephasing (relaxed in pulse 1)
    e2h = rel[1]
    for j in range(1, n + 1):
        er2 = e2h if j == 1 else rel[0]
        er1 = rel[3] if j == 1 else rel[2]
        u = pulse_angle[j - 1]
        uc2, us2, usa, uca = c2[u], s2[u], sa[u], ca[u]
        kmax = min(2 * j - 1, 2 * (n - j) + 1)
        for k in range(1, kmax + 1, 2):
            gp = g[(k - 2 * j + 4 * n - 1) // 2]
            gm = g[(-k - 2 * j + 4 * n - 1) // 2]
            wz = w[(k - 1) // 2]
            for v in range(BLOCK):
                x = gp[v] * er2[v]
                y = gm[v] * er2[v]
                z = wz[v] * er1[v]
                gp[v] = uc2[v] * x + us2[v] * y + usa[v] * z
                gm[v] = us2[v] * x + uc2[v] * y - usa[v] * z
                wz[v] = 0.5 * usa[v] * (y - x) + uca[v] * z
        ge = g[2 * n - j - 1]  # F_−1 right after pulse j: the echo esp/2 later
        for v in range(BLOCK):
            h[j - 1, v] = ge[v] * e2h[v]


@njit(fastmath=_FASTMATH, cache=True, inline="always")
def _longitudinal_zero(fh, zh, fi, zi, m, j, rel, usa, uca):
    """Pulse ``j`` (sin α, cos α per voxel: usa, uca) on the k = 0 states (F_0, Z_0 with its recovery) of both
    longitudinal parts."""
    er2 = rel[1] if j == 1 else rel[0]
    er1 = rel[3] if j == 1 else rel[2]
    rec = rel[5] if j == 1 else rel[4]
    f0h = fh[2 * m - j - 1]
    f0i = fi[2 * m - j - 1]
    z0h = zh[0]
    z0i = zi[0]
    for v in range(BLOCK):
        xh = f0h[v] * er2[v]
        xi = f0i[v] * er2[v]
        zhv = z0h[v] * er1[v]
        ziv = z0i[v] * er1[v] + rec[v]
        f0h[v] = uca[v] * xh + usa[v] * zhv
        z0h[v] = uca[v] * zhv - usa[v] * xh
        f0i[v] = uca[v] * xi + usa[v] * ziv
        z0i[v] = uca[v] * ziv - usa[v] * xi


@njit(fastmath=_FASTMATH, cache=True, inline="always")
def _longitudinal_family(fh, zh, fi, zi, pulse_angle, m, rel, c2, s2, sa, ca, cos_exc):
    """Run the longitudinal family through ``m`` pulses, homogeneous (h) and inhomogeneous (i) parts together.

    fh, fi : (2m − 1, BLOCK) F rows, k = 2r + 2j − 4m + 2; zh, zi : (m, BLOCK) Z_k, k = 2r; all zeroed here.
    h starts at Z_0 = cos(flip) (Mz_exc = 1, no recovery), i at 0 with recovery (module docstring).
    """
    fh[:] = 0.0
    zh[:] = 0.0
    fi[:] = 0.0
    zi[:] = 0.0
    zh[0, :] = cos_exc
    for j in range(1, m + 1):
        er2 = rel[1] if j == 1 else rel[0]
        er1 = rel[3] if j == 1 else rel[2]
        u = pulse_angle[j - 1]
        uc2, us2, usa, uca = c2[u], s2[u], sa[u], ca[u]
        _longitudinal_zero(fh, zh, fi, zi, m, j, rel, usa, uca)
        kmax = min(2 * (j - 1), 2 * (m - j))
        for k in range(2, kmax + 1, 2):
            rp = (k - 2 * j + 4 * m - 2) // 2
            rm = (-k - 2 * j + 4 * m - 2) // 2
            for fam in range(2):
                fp = fh[rp] if fam == 0 else fi[rp]
                fm = fh[rm] if fam == 0 else fi[rm]
                zz = zh[k // 2] if fam == 0 else zi[k // 2]
                for v in range(BLOCK):
                    x = fp[v] * er2[v]
                    y = fm[v] * er2[v]
                    z = zz[v] * er1[v]
                    fp[v] = uc2[v] * x - us2[v] * y + usa[v] * z
                    fm[v] = uc2[v] * y - us2[v] * x + usa[v] * z
                    zz[v] = uca[v] * z - 0.5 * usa[v] * (x + y)


@njit(fastmath=_FASTMATH, cache=True, inline="always")
def _store_block(out, h, zh0, zi0, t1_ms, timing, v0, nv, n, last_only, signed):
    """Steady state per voxel (float64) and the echoes of voxels ``v0 .. v0 + nv`` into ``out``."""
    for v in range(nv):
        mz = _steady_mz_exc(float(zh0[v]), float(zi0[v]), float(t1_ms[v0 + v]), timing)
        j0 = n - 1 if last_only else 0
        for j in range(j0, n):
            val = h[j, v] * mz
            out[v0 + v, j - j0] = val if signed else abs(val)


@njit(parallel=True, fastmath=_FASTMATH, cache=True)
def _epg_kernel(t1_ms, t2_ms, b1, b1_uniform, angles_rad, pulse_angle, timing, n_echo, last_only, signed, n_threads,
                out):
    """Steady-state echo magnitudes for PD = 1.

    t1_ms, t2_ms, b1 : (n_vox,) float32; angles_rad : (n_angles,) float64 distinct refocusing angles;
    pulse_angle : (etl,) int64 index into angles_rad per pulse; timing : see ``_timing``; n_echo : echoes
    simulated (1..etl); n_threads : scratch sets (get_num_threads() is read by the caller, which keeps this
    kernel cacheable); out : (n_vox, n_echo) float32, or (n_vox, 1) holding echo n_echo if last_only;
    |echo|, or if ``signed`` the real echo amplitude g (F = i·g, −g for a 90° excitation at Mz = 1), which
    stays smooth where the magnitude has a kink (an inversion null, a sign change of a stimulated echo).
    """
    n_vox = t1_ms.shape[0]
    m = pulse_angle.shape[0]  # etl: pulses of the longitudinal family
    n = n_echo  # pulses of the echo family
    n_ang = angles_rad.shape[0]
    n_blocks = (n_vox + BLOCK - 1) // BLOCK
    n_chunks = max(1, min(n_threads, n_blocks))  # one scratch set per thread, blocks strided over them
    for chunk in prange(n_chunks):
        g = np.zeros((2 * n, BLOCK), np.float32)  # echo family
        w = np.zeros((n, BLOCK), np.float32)
        h = np.zeros((n, BLOCK), np.float32)  # echo k for Mz_exc = 1
        fh = np.zeros((2 * m - 1, BLOCK), np.float32)  # longitudinal family, homogeneous part
        zh = np.zeros((m, BLOCK), np.float32)
        fi = np.zeros((2 * m - 1, BLOCK), np.float32)  # inhomogeneous (recovery) part
        zi = np.zeros((m, BLOCK), np.float32)
        rel = np.empty((6, BLOCK), np.float32)  # relaxation factors (see _block_factors)
        exc = np.empty((2, BLOCK), np.float32)  # sin, cos of the excitation
        c2 = np.empty((n_ang, BLOCK), np.float32)  # cos²(α/2) per distinct angle and voxel
        s2 = np.empty((n_ang, BLOCK), np.float32)  # sin²(α/2)
        sa = np.empty((n_ang, BLOCK), np.float32)  # sin α
        ca = np.empty((n_ang, BLOCK), np.float32)  # cos α
        if b1_uniform:
            for v in range(BLOCK):
                _pulse_coefficients(angles_rad, b1[0], c2, s2, sa, ca, v)
                exc[0, v] = math.sin(timing[4] * b1[0])
                exc[1, v] = math.cos(timing[4] * b1[0])
        for blk in range(chunk, n_blocks, n_chunks):
            v0 = blk * BLOCK
            nv = min(BLOCK, n_vox - v0)
            _block_factors(t1_ms, t2_ms, b1, b1_uniform, angles_rad, timing[4], timing[0], v0, nv, rel, c2, s2, sa,
                           ca, exc)
            _echo_family(g, w, h, pulse_angle, n, rel, c2, s2, sa, ca, exc[0])
            _longitudinal_family(fh, zh, fi, zi, pulse_angle, m, rel, c2, s2, sa, ca, exc[1])
            _store_block(out, h, zh[0], zi[0], t1_ms, timing, v0, nv, n, last_only, signed)


def _run_kernel(t1: np.ndarray, t2: np.ndarray, b1: np.ndarray, b1_uniform: bool, protocol: Protocol,
                angles: np.ndarray, n_echo: int, last_only: bool, signed: bool = False) -> np.ndarray:
    uniq, pulse_angle = np.unique(angles, return_inverse=True)
    out = np.empty((t1.shape[0], 1 if last_only else n_echo), np.float32)
    if t1.shape[0]:
        _epg_kernel(t1, t2, b1, b1_uniform, uniq.astype(np.float64), pulse_angle.astype(np.int64).ravel(),
                    _timing(protocol), n_echo, last_only, signed, numba.get_num_threads(), out)
    return out


# --------------------------------------------------------------------------- public API
def epg_echo_train(t1_ms: np.ndarray, t2_ms: np.ndarray, protocol: Protocol, *,
                   b1: float | np.ndarray | None = None, refocus_deg: np.ndarray | None = None) -> np.ndarray:
    """Steady-state echo-train magnitudes of a spin-echo protocol for PD = 1 (Numba, float32, parallel).

    Parameters
    ----------
    t1_ms, t2_ms : (n_vox,) [ms], finite and >= 0 (0 = background: instant recovery / no signal).
    protocol : a :class:`Protocol` of kind ``se``, ``tse`` or ``ir_tse``.
    b1 : scalar or (n_vox,), > 0; multiplies every nominal flip angle (not the inversion, see module doc).
    refocus_deg : optional (etl,) refocusing angles [deg] in (0, 180], replacing ``protocol.refocus_deg``.

    Returns
    -------
    (n_vox, etl) float32 : |echo k| at k·esp_ms in steady state, M0 = PD = 1.

    Raises
    ------
    ValueError
        For another kind, NaN/inf/negative maps, bad shapes or a bad schedule.
    """
    protocol = _check_protocol(protocol)
    t1, t2 = _flat_maps(t1_ms, t2_ms)
    b1_arr, uniform = _b1_array(b1, t1.shape)
    angles = _schedule_rad(protocol, refocus_deg)
    return _run_kernel(t1, t2, b1_arr, uniform, protocol, angles, protocol.etl, False)


def epg_signal(t1_ms: np.ndarray, t2_ms: np.ndarray, pd: np.ndarray, protocols: Protocol | Iterable[Protocol],
               *, b1: float | np.ndarray | None = None) -> np.ndarray:
    """Steady-state magnitude at each protocol's ``te_ms`` (echo ``echo_index``) times PD.

    Parameters
    ----------
    t1_ms, t2_ms : any shape S [ms], finite, >= 0.
    pd : shape S, finite, >= 0 (relative proton density, scales M0).
    protocols : one :class:`Protocol` or a sequence of them, each of kind ``se``, ``tse`` or ``ir_tse``.
    b1 : scalar or shape S, > 0; flip-angle scale.

    Returns
    -------
    (n_protocols, *S) float32 : PD · |echo at te_ms|.
    """
    prots = [protocols] if isinstance(protocols, Protocol) else list(protocols)
    if not prots:
        raise ValueError("protocols must hold at least one Protocol; got none")
    prots = [_check_protocol(p) for p in prots]
    t1, t2, pdv = np.asarray(t1_ms), np.asarray(t2_ms), np.asarray(pd)
    if t2.shape != t1.shape or pdv.shape != t1.shape:
        raise ValueError(f"t1_ms, t2_ms and pd must have the same shape; got {t1.shape}, {t2.shape}, {pdv.shape}")
    check_map_array("pd", pdv)
    t1f, t2f = _flat_maps(t1.ravel(), t2.ravel())
    b1_arr, uniform = _b1_array(b1, t1.shape)
    pdf = pdv.ravel().astype(np.float32)
    out = np.empty((len(prots),) + t1.shape, np.float32)
    for i, p in enumerate(prots):
        sig = _run_kernel(t1f, t2f, b1_arr, uniform, p, _schedule_rad(p, None), p.echo_index, True)
        out[i] = (sig[:, 0] * pdf).reshape(t1.shape)  # (n_vox,) -> S
    return out
