"""Closed-form magnitude signal equations for every sequence kind of :mod:`physics.protocol`.

Backends
--------
* :func:`signal` on NumPy maps → the cached Numba float32 kernel (:func:`signal_kernel`), run on one
  thread per core; it agrees with the float64 reference to ~2e-7 of the PD scale (tests allow 1e-5).
* :func:`signal` on torch maps, :func:`signal_packed_torch` → the differentiable torch twin.
* :func:`signal_reference` → float64 NumPy reference; :func:`signal_numpy` → the same code in float32
  (the plain-NumPy benchmark baseline).
The torch twin and both NumPy functions run the *same* generic formulas (``_tse`` … below, written once
over the array namespace ``xp`` = ``numpy`` or ``torch``); the Numba kernel is the second transcription.

Model (longitudinal magnetisation Mz in units of M0; every relaxation step is ``Mz → 1 − (1 − Mz)·E``,
``E = exp(−t/T1)``; all signals are magnitudes scaled by PD)
---------------------------------------------------------------------------------------------------
``se`` / ``tse``: excitation ``a`` (Mz → cos a·Mz, so Mz = 0 after 90°) at t = 0; refocusing pulses ``b``
at (k − ½)·esp, k = 1..etl, each multiplying Mz by cos b (exact for ideal 180° CPMG: cos b = −1); train
end at T_ro = etl·esp; recovery over TR − T_ro. One echo spacing (½-relax, pulse, ½-relax) is the affine map
``Mz → a1·Mz + b1`` with ``a1 = cos b·E_esp``, ``b1 = (1 − E_½)(1 + E_½ cos b)``; etl of them give
``A = cos^etl b · exp(−T_ro/T1)`` and ``Mz_end = A·cos a·Mz_pre + b1(1 − A)/(1 − a1)`` (geometric series),
and the steady state before excitation is

    Mz_pre = [(1 − E_rec) + E_rec·b1(1 − A)/(1 − a1)] / (1 − E_rec·A·cos a),  E_rec = e^(−(TR − T_ro)/T1)

    S = PD · sin a · Mz_pre · exp(−TE/T2)

(``se`` is etl = 1, esp = TE; at a = 90°, b = 180°: PD(1 − 2e^(−(TR−TE/2)/T1) + e^(−TR/T1))e^(−TE/T2)).
The echo amplitude uses ideal refocusing (e^(−TE/T2) at the effective TE); stimulated-echo paths of
b ≠ 180° trains are not modelled here (that is EPG's job).

``ir_tse``: inversion (Mz → −κ·Mz) at 0, excitation at TI, the train above, recovery over TR − TI − T_ro:

    Mz(TI) = [(1 − E_TI) − κ E_TI ((1 − E_rec) + E_rec b1(1 − A)/(1 − a1))] / (1 + κ E_TI E_rec A cos a)
    S = PD · sin a · |Mz(TI)| · exp(−TE/T2)

(at a = 90°: Mz(TI) = 1 − (1 + κ M_pre) E_TI with M_pre = 1 − (1 − Mz_end) E_rec).

``spgr`` (ideal RF spoiling; T2* not modelled, e^(−TE/T2) is its upper bound):
``S = PD sin a (1 − E1)/(1 − cos a·E1) · exp(−TE/T2)``, E1 = exp(−TR/T1).

``mprage``: inversion (κ) at 0, etl pulses ``a`` every esp from t0 = TI − (etl//2)·esp; before pulse n
``Mz_n = Mss + (M_0 − Mss) q^n`` with ``q = cos a·E_esp``, ``Mss = (1 − E_esp)/(1 − q)``; after the last
pulse recovery over TR − t0 − (etl − 1)·esp to the next inversion. The steady state gives

    M_0 = [(1 − E_t0) − κ E_t0 ((1 − E_rec) + E_rec cos a Mss (1 − Q_l))] / (1 + κ E_t0 E_rec cos a Q_l),
    Q_l = q^(etl−1);   S = PD · sin a · |Mss + (M_0 − Mss) q^(etl//2)| · exp(−TE/T2).

``model="textbook"`` (fidelity comparisons): se/tse ``PD sin a (1 − e^(−TR/T1)) e^(−TE/T2)``; ir_tse
``PD sin a |1 − (1 + κ)e^(−TI/T1) + κ e^(−TR/T1)| e^(−TE/T2)`` (κ = 1: the classic FLAIR formula); spgr and
mprage as above. All presets have a = 90° for spin echoes, where the sin a factor is 1.

T1 and T2 are clamped to ``T_MIN_MS`` so that T → 0 (and PD = 0 background) give finite values and finite
gradients. Times [ms], angles [rad] inside (degrees in :class:`~physics.protocol.Protocol`).

References: Haacke et al., *Magnetic Resonance Imaging: Physical Principles and Sequence Design* (1999)
(spin-echo, inversion-recovery and spoiled steady-state signals); Bernstein et al., *Handbook of MRI Pulse
Sequences* (2004) (TSE, MP-RAGE timing); Deichmann et al., NeuroImage 12:112 (2000) (MP-RAGE signal).
Every closed form is checked against an event-by-event Mz simulation in tests/physics/test_signal.py.
"""
from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numba
import numpy as np
from numba import njit

from physics._checks import check_map_array
from physics._fastexp import FASTMATH, LOG2E, exp2_pair, flush_denormals_begin, flush_denormals_end
from physics.protocol import PACK_COLUMNS, PRESETS, SEQUENCE_KINDS, Protocol, pack_protocols

__all__ = [
    "MODELS",
    "T_MIN_MS",
    "signal",
    "signal_packed_torch",
    "signal_reference",
    "signal_numpy",
    "signal_kernel",
]

#: Lower clamp of T1 and T2 [ms] (keeps 1/T finite for background voxels with T = 0).
T_MIN_MS = 1e-6
#: Accepted values of the ``model`` keyword.
MODELS = ("closed", "textbook")

_SE, _TSE, _IR, _SPGR, _MP = (SEQUENCE_KINDS[k] for k in ("se", "tse", "ir_tse", "spgr", "mprage"))
_NCOL = len(PACK_COLUMNS)


# ----------------------------------------------------------------------------- protocol constants
def _signed_pow(xp: Any, c: Any, n: Any) -> Any:
    """``c**n`` for integral ``n >= 0`` and ``c`` of either sign (``|c|**n`` with the sign of odd powers)."""
    odd_negative = (c < 0) & (xp.remainder(n, 2) == 1)
    return xp.abs(c) ** n * (1 - 2 * odd_negative)


def _derived(xp: Any, table: Any) -> dict[str, Any]:
    """Per-protocol constants of the equations from packed rows ``(..., len(PACK_COLUMNS))`` float64.

    Returns arrays of shape ``table.shape[:-1]``; times in [ms], ``om*`` is ``1 − cos`` = 2 sin²(·/2).
    """
    col = {name: table[..., j] for j, name in enumerate(PACK_COLUMNS)}
    tr, te, ti, etl, esp = col["tr_ms"], col["te_ms"], col["ti_ms"], col["etl"], col["esp_ms"]
    a, b = col["flip_rad"], col["refocus_rad"]
    cos_a, cos_b = xp.cos(a), xp.cos(b)
    jc = xp.floor(etl / 2)  # MPRAGE centre pulse index (etl // 2)
    ro = etl * esp  # spin-echo train duration T_ro [ms]
    return {
        "sin_a": xp.sin(a), "cos_a": cos_a, "omcos_a": 2 * xp.sin(a / 2) ** 2,
        "cos_b": cos_b, "omcos_b": 2 * xp.sin(b / 2) ** 2,
        "te": te, "tr": tr, "ti": ti, "kappa": col["inversion_efficiency"],
        "half_esp": esp / 2, "esp": esp, "ro": ro, "cb_pow": _signed_pow(xp, cos_b, etl),
        "rec_tse": tr - ro, "rec_ir": tr - ti - ro, "tr_minus_ti": tr - ti,
        "t_c": jc * esp, "ca_pow_c": _signed_pow(xp, cos_a, jc),
        "t_l": (etl - 1) * esp, "ca_pow_l": _signed_pow(xp, cos_a, etl - 1),
        "t0": ti - jc * esp, "rec_mp": tr - ti - (etl - 1 - jc) * esp,
    }


# Order of the constants in the Numba kernel's float32 table; times are pre-multiplied by log2(e).
_KCONST = ("sin_a", "cos_a", "omcos_a", "cos_b", "omcos_b", "te", "tr", "ti", "kappa", "half_esp", "esp",
           "ro", "cb_pow", "rec_tse", "rec_ir", "tr_minus_ti", "t_c", "ca_pow_c", "t_l", "ca_pow_l", "t0",
           "rec_mp")
_KTIME = {"te", "tr", "ti", "half_esp", "esp", "ro", "rec_tse", "rec_ir", "tr_minus_ti", "t_c", "t_l", "t0",
          "rec_mp"}
(_SA, _CA, _OMCA, _CB, _OMCB, _TE, _TR, _TI, _KAPPA, _HESP, _ESP, _RO, _CBPOW, _RECT, _RECI, _TRTI, _TC,
 _CAPC, _TL, _CAPL, _T0, _RECM) = range(len(_KCONST))


# ----------------------------------------------------------------------------- generic formulas (numpy / torch)
def _relax(xp: Any, t_ms: Any, r1: Any) -> tuple[Any, Any]:
    """``(E, 1 − E)`` with ``E = exp(−t·r1)``; ``1 − E`` from expm1 keeps its precision for long T1."""
    em1 = xp.expm1(-t_ms * r1)
    return 1 + em1, -em1


def _train(xp: Any, r1: Any, d: dict) -> tuple[Any, Any, Any]:
    """Refocusing train: ``A = cos^etl b·e^(−T_ro/T1)``, ``b1`` and ``1 − a1`` of one echo spacing."""
    eh, omeh = _relax(xp, d["half_esp"], r1)
    cb = d["cos_b"]
    one_minus_a1 = d["omcos_b"] + cb * omeh * (1 + eh)  # 1 − cos b·E_esp, E_esp = E_½², without cancellation
    b1 = omeh * (1 + eh * cb)
    big_a = d["cb_pow"] * xp.exp(-d["ro"] * r1)
    return big_a, b1, one_minus_a1


def _tse(xp: Any, r1: Any, r2: Any, pd: Any, d: dict) -> Any:
    big_a, b1, oma1 = _train(xp, r1, d)
    erec, omerec = _relax(xp, d["rec_tse"], r1)
    mz = (omerec * oma1 + erec * b1 * (1 - big_a)) / (oma1 * (1 - erec * big_a * d["cos_a"]))
    return pd * d["sin_a"] * mz * xp.exp(-d["te"] * r2)


def _ir_tse(xp: Any, r1: Any, r2: Any, pd: Any, d: dict) -> Any:
    big_a, b1, oma1 = _train(xp, r1, d)
    eti, ometi = _relax(xp, d["ti"], r1)
    erec, omerec = _relax(xp, d["rec_ir"], r1)
    k = d["kappa"]
    num = ometi * oma1 - k * eti * (omerec * oma1 + erec * b1 * (1 - big_a))
    mz = num / (oma1 * (1 + k * eti * erec * big_a * d["cos_a"]))
    return pd * d["sin_a"] * xp.abs(mz) * xp.exp(-d["te"] * r2)


def _spgr(xp: Any, r1: Any, r2: Any, pd: Any, d: dict) -> Any:
    _, ome1 = _relax(xp, d["tr"], r1)
    return pd * d["sin_a"] * ome1 / (d["omcos_a"] + d["cos_a"] * ome1) * xp.exp(-d["te"] * r2)


def _mprage(xp: Any, r1: Any, r2: Any, pd: Any, d: dict) -> Any:
    ca, k = d["cos_a"], d["kappa"]
    _, ome = _relax(xp, d["esp"], r1)
    omq = d["omcos_a"] + ca * ome  # 1 − q; Mss = ome / omq
    qc = d["ca_pow_c"] * xp.exp(-d["t_c"] * r1)
    ql = d["ca_pow_l"] * xp.exp(-d["t_l"] * r1)
    et0, omet0 = _relax(xp, d["t0"], r1)
    erec, omerec = _relax(xp, d["rec_mp"], r1)
    num = omet0 * omq - k * et0 * (omerec * omq + erec * ca * ome * (1 - ql))  # M_0 · omq · den
    den = 1 + k * et0 * erec * ca * ql
    mc = (ome * den * (1 - qc) + num * qc) / (omq * den)  # Mss + (M_0 − Mss)·q^(etl//2)
    return pd * d["sin_a"] * xp.abs(mc) * xp.exp(-d["te"] * r2)


def _tse_textbook(xp: Any, r1: Any, r2: Any, pd: Any, d: dict) -> Any:
    _, ometr = _relax(xp, d["tr"], r1)
    return pd * d["sin_a"] * ometr * xp.exp(-d["te"] * r2)


def _ir_textbook(xp: Any, r1: Any, r2: Any, pd: Any, d: dict) -> Any:
    eti, ometi = _relax(xp, d["ti"], r1)
    _, om = _relax(xp, d["tr_minus_ti"], r1)
    return pd * d["sin_a"] * xp.abs(ometi - d["kappa"] * eti * om) * xp.exp(-d["te"] * r2)


# kind-group -> (kind codes, closed formula, textbook formula, preset used as a harmless stand-in row)
_GROUPS = (
    ((_SE, _TSE), _tse, _tse_textbook, "t2w_tse_3t"),
    ((_IR,), _ir_tse, _ir_textbook, "flair_3t"),
    ((_SPGR,), _spgr, _spgr, "spgr_t1w_3t"),
    ((_MP,), _mprage, _mprage, "mprage_3t"),
)
_FORMULA = {code: (g[1], g[2]) for g in _GROUPS for code in g[0]}


def _render_generic(xp: Any, r1: Any, r2: Any, pd: Any, table: np.ndarray, textbook: bool) -> list:
    """Run the generic formulas once per protocol row; constants enter as Python floats (weak dtype)."""
    d_all = _derived(np, table)
    out = []
    for p in range(table.shape[0]):
        d = {name: float(v[p]) for name, v in d_all.items()}
        closed, book = _FORMULA[int(table[p, 0])]
        out.append((book if textbook else closed)(xp, r1, r2, pd, d))
    return out


# ----------------------------------------------------------------------------- Numba float32 kernel
_F = np.float32
_ONE = _F(1.0)
_TMIN = _F(T_MIN_MS)
_CHUNK = 2048  # voxels per parallel task: r1, r2 of a chunk stay in L1/L2 across the protocols
# Loop codes of the kernel (chosen per protocol in Python, so the voxel loops are branch-free).
_L_SE1, _L_TRAIN, _L_IR, _L_SPGR, _L_MP, _L_TSE_BOOK, _L_IR_BOOK = range(7)
_FM = dict(fastmath=FASTMATH, error_model="numpy", cache=True)  # numpy error model: no zero-division branch


@njit(**_FM)
def _k_se1(r1, r2, pd, c, out):
    """One refocusing pulse (``se``, or ``tse`` with etl = 1): A = cos b·E_½², one exp fewer."""
    for i in range(r1.shape[0]):
        eh, omeh = exp2_pair(-c[_HESP] * r1[i])
        oma1 = c[_OMCB] + c[_CB] * omeh * (_ONE + eh)
        b1 = omeh * (_ONE + eh * c[_CB])
        big_a = c[_CB] * eh * eh
        erec, omerec = exp2_pair(-c[_RECT] * r1[i])
        mz = (omerec * oma1 + erec * b1 * (_ONE - big_a)) / (oma1 * (_ONE - erec * big_a * c[_CA]))
        out[i] = pd[i] * c[_SA] * mz * exp2_pair(-c[_TE] * r2[i])[0]


@njit(**_FM)
def _k_train(r1, c):
    eh, omeh = exp2_pair(-c[_HESP] * r1)
    oma1 = c[_OMCB] + c[_CB] * omeh * (_ONE + eh)
    b1 = omeh * (_ONE + eh * c[_CB])
    big_a = c[_CBPOW] * exp2_pair(-c[_RO] * r1)[0]
    return big_a, b1, oma1


@njit(**_FM)
def _k_tse(r1, r2, pd, c, out):
    for i in range(r1.shape[0]):
        big_a, b1, oma1 = _k_train(r1[i], c)
        erec, omerec = exp2_pair(-c[_RECT] * r1[i])
        mz = (omerec * oma1 + erec * b1 * (_ONE - big_a)) / (oma1 * (_ONE - erec * big_a * c[_CA]))
        out[i] = pd[i] * c[_SA] * mz * exp2_pair(-c[_TE] * r2[i])[0]


@njit(**_FM)
def _k_ir_tse(r1, r2, pd, c, out):
    k = c[_KAPPA]
    for i in range(r1.shape[0]):
        big_a, b1, oma1 = _k_train(r1[i], c)
        eti, ometi = exp2_pair(-c[_TI] * r1[i])
        erec, omerec = exp2_pair(-c[_RECI] * r1[i])
        num = ometi * oma1 - k * eti * (omerec * oma1 + erec * b1 * (_ONE - big_a))
        mz = num / (oma1 * (_ONE + k * eti * erec * big_a * c[_CA]))
        out[i] = pd[i] * c[_SA] * abs(mz) * exp2_pair(-c[_TE] * r2[i])[0]


@njit(**_FM)
def _k_spgr(r1, r2, pd, c, out):
    for i in range(r1.shape[0]):
        ome1 = exp2_pair(-c[_TR] * r1[i])[1]
        out[i] = pd[i] * c[_SA] * ome1 / (c[_OMCA] + c[_CA] * ome1) * exp2_pair(-c[_TE] * r2[i])[0]


@njit(**_FM)
def _k_mprage(r1, r2, pd, c, out):
    ca, k = c[_CA], c[_KAPPA]
    for i in range(r1.shape[0]):
        ome = exp2_pair(-c[_ESP] * r1[i])[1]
        omq = c[_OMCA] + ca * ome
        qc = c[_CAPC] * exp2_pair(-c[_TC] * r1[i])[0]
        ql = c[_CAPL] * exp2_pair(-c[_TL] * r1[i])[0]
        et0, omet0 = exp2_pair(-c[_T0] * r1[i])
        erec, omerec = exp2_pair(-c[_RECM] * r1[i])
        num = omet0 * omq - k * et0 * (omerec * omq + erec * ca * ome * (_ONE - ql))
        den = _ONE + k * et0 * erec * ca * ql
        mc = (ome * den * (_ONE - qc) + num * qc) / (omq * den)
        out[i] = pd[i] * c[_SA] * abs(mc) * exp2_pair(-c[_TE] * r2[i])[0]


@njit(**_FM)
def _k_tse_textbook(r1, r2, pd, c, out):
    for i in range(r1.shape[0]):
        out[i] = pd[i] * c[_SA] * exp2_pair(-c[_TR] * r1[i])[1] * exp2_pair(-c[_TE] * r2[i])[0]


@njit(**_FM)
def _k_ir_textbook(r1, r2, pd, c, out):
    for i in range(r1.shape[0]):
        eti, ometi = exp2_pair(-c[_TI] * r1[i])
        om = exp2_pair(-c[_TRTI] * r1[i])[1]
        out[i] = pd[i] * c[_SA] * abs(ometi - c[_KAPPA] * eti * om) * exp2_pair(-c[_TE] * r2[i])[0]


@njit(**_FM)
def _render_chunk(t1_ms, t2_ms, pd, loops, consts, out, lo, hi, r1, r2):
    """Voxels ``lo:hi`` (at most len(r1)) for every protocol; ``r1``, ``r2`` are scratch buffers [1/ms]."""
    x1, x2, pdc = t1_ms[lo:hi], t2_ms[lo:hi], pd[lo:hi]  # slices: `a[lo + i]` would not vectorise
    m = hi - lo
    for i in range(m):  # 1/T once per voxel, shared by all protocols
        r1[i] = _ONE / max(x1[i], _TMIN)
        r2[i] = _ONE / max(x2[i], _TMIN)
    a1, a2 = r1[:m], r2[:m]
    for p in range(loops.shape[0]):  # branch on the loop code outside the voxel loop
        code, c, o = loops[p], consts[p], out[p, lo:hi]
        if code == _L_SE1:
            _k_se1(a1, a2, pdc, c, o)
        elif code == _L_TRAIN:
            _k_tse(a1, a2, pdc, c, o)
        elif code == _L_IR:
            _k_ir_tse(a1, a2, pdc, c, o)
        elif code == _L_SPGR:
            _k_spgr(a1, a2, pdc, c, o)
        elif code == _L_MP:
            _k_mprage(a1, a2, pdc, c, o)
        elif code == _L_TSE_BOOK:
            _k_tse_textbook(a1, a2, pdc, c, o)
        else:
            _k_ir_textbook(a1, a2, pdc, c, o)


@njit(nogil=True, **_FM)
def _kernel_range(t1_ms, t2_ms, pd, loops, consts, out, start, stop):
    """Voxels ``start:stop`` in chunks of ``_CHUNK``, with subnormals flushed (see physics._fastexp)."""
    saved = flush_denormals_begin()
    r1 = np.empty(_CHUNK, np.float32)
    r2 = np.empty(_CHUNK, np.float32)
    for lo in range(start, stop, _CHUNK):
        _render_chunk(t1_ms, t2_ms, pd, loops, consts, out, lo, min(stop, lo + _CHUNK), r1, r2)
    flush_denormals_end(saved)


def _kernel_constants(table: np.ndarray, textbook: bool) -> tuple[np.ndarray, np.ndarray]:
    """(loop codes (P,) int64, constants (P, len(_KCONST)) float32 with times in base-2 units [ms·log2 e])."""
    d = _derived(np, table)
    consts = np.stack([d[name] * (LOG2E if name in _KTIME else 1.0) for name in _KCONST], axis=-1)
    kind, etl = table[:, 0], table[:, PACK_COLUMNS.index("etl")]
    spin_echo = (kind == _SE) | (kind == _TSE)
    loops = np.select(
        [spin_echo & textbook, (kind == _IR) & textbook, spin_echo & (etl == 1), spin_echo, kind == _IR,
         kind == _SPGR],
        [_L_TSE_BOOK, _L_IR_BOOK, _L_SE1, _L_TRAIN, _L_IR, _L_SPGR], default=_L_MP)
    return loops.astype(np.int64), np.ascontiguousarray(consts, dtype=np.float32)


# Threads: the kernel releases the GIL and each thread renders one contiguous range of voxels. (Numba's
# prange over the OpenMP layer was as fast on an idle machine but, with the 2 cores shared by other jobs,
# its spin-waiting cost 9-19 ms per call; blocking pool threads cost ~0.06 ms.)
_POOL: ThreadPoolExecutor | None = None
_POOL_WORKERS = 0
_POOL_LOCK = threading.Lock()
_MIN_VOXELS_PER_THREAD = 16 * _CHUNK  # below this, waking a thread costs more than it saves


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL, _POOL_WORKERS
    with _POOL_LOCK:
        if _POOL is None or _POOL_WORKERS < workers:
            if _POOL is not None:
                _POOL.shutdown(wait=False)
            _POOL, _POOL_WORKERS = ThreadPoolExecutor(workers, thread_name_prefix="relaxomap-signal"), workers
        return _POOL


def _run_threads(t1_ms, t2_ms, pd, loops, consts, out) -> None:
    """Split the voxels into chunk-aligned ranges, one per thread (``NUMBA_NUM_THREADS``, default: all cores)."""
    n = t1_ms.shape[0]
    threads = max(1, min(numba.config.NUMBA_NUM_THREADS, n // _MIN_VOXELS_PER_THREAD))
    edges = [min(n, -(-n * k // threads // _CHUNK) * _CHUNK) for k in range(threads + 1)]
    args = (t1_ms, t2_ms, pd, loops, consts, out)
    futures = []
    if threads > 1:
        pool = _pool(threads - 1)
        futures = [pool.submit(_kernel_range, *args, lo, hi) for lo, hi in zip(edges[1:-1], edges[2:])]
    _kernel_range(*args, edges[0], edges[1])  # the calling thread takes the first range
    for f in futures:
        f.result()


def signal_kernel(t1_ms: np.ndarray, t2_ms: np.ndarray, pd: np.ndarray, table: np.ndarray, out: np.ndarray,
                  *, textbook: bool = False) -> np.ndarray:
    """Kernel-level entry: no map validation, no copies (for benchmarks and trusted callers).

    Parameters
    ----------
    t1_ms, t2_ms : (n,) float32 C-contiguous [ms]; pd : (n,) float32.
    table : (P, len(PACK_COLUMNS)) float64 from :func:`~physics.protocol.pack_protocols`.
    out : (P, n) float32 C-contiguous, overwritten with the magnitudes.
    textbook : use the textbook se/tse/ir_tse equations (module docstring).

    Returns
    -------
    out : the same array.
    """
    n = t1_ms.shape[0] if getattr(t1_ms, "ndim", 0) == 1 else -1
    for name, arr in (("t1_ms", t1_ms), ("t2_ms", t2_ms), ("pd", pd)):
        if not (isinstance(arr, np.ndarray) and arr.dtype == np.float32 and arr.shape == (n,)
                and arr.flags.c_contiguous):
            raise ValueError(f"signal_kernel: {name} must be a C-contiguous (n,) float32 array with the same n as "
                             f"t1_ms; got {getattr(arr, 'dtype', type(arr))} {getattr(arr, 'shape', '')}")
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != _NCOL:
        raise ValueError(f"signal_kernel: table must have shape (P, {_NCOL}) (pack_protocols); got {table.shape}")
    if not (isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (table.shape[0], n)
            and out.flags.c_contiguous):
        raise ValueError(f"signal_kernel: out must be a C-contiguous float32 array of shape {(table.shape[0], n)}; "
                         f"got {getattr(out, 'dtype', type(out))} {getattr(out, 'shape', '')}")
    loops, consts = _kernel_constants(table, bool(textbook))
    _run_threads(t1_ms, t2_ms, pd, loops, consts, out)
    return out


# ----------------------------------------------------------------------------- public entries
def _torch_module() -> Any:
    import torch  # heavy: only when a torch path is used

    return torch


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _as_table(protocols: Protocol | Sequence[Protocol]) -> np.ndarray:
    if isinstance(protocols, Protocol):
        protocols = (protocols,)
    if isinstance(protocols, (str, bytes)) or not isinstance(protocols, Sequence):
        raise TypeError(f"protocols must be a Protocol or a sequence of Protocols; got {type(protocols).__name__}")
    bad = [type(p).__name__ for p in protocols if not isinstance(p, Protocol)]
    if bad:
        raise TypeError(f"protocols must hold only Protocol objects; got {bad[0]}")
    return pack_protocols(protocols)


def _check_model(model: str) -> bool:
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}; got {model!r}")
    return model == "textbook"


def _numpy_maps(t1_ms: Any, t2_ms: Any, pd: Any) -> tuple[np.ndarray, ...]:
    """Validated float arrays of one shape (ValueError naming the map on NaN/inf/negative or shape mismatch)."""
    maps = {"t1_ms": np.asarray(t1_ms), "t2_ms": np.asarray(t2_ms), "pd": np.asarray(pd)}
    shape = maps["t1_ms"].shape
    for name, arr in maps.items():
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(f"{name} has shape {arr.shape} but t1_ms has {shape}; the maps must share one shape")
        # Fast path: min/max propagate NaN and expose inf and negatives in two SIMD reductions; only a bad
        # map pays for check_map_array's element-wise scan, which builds the message.
        if arr.size and not (np.isfinite(arr.max()) and arr.min() >= 0):
            check_map_array(name, arr)
    return maps["t1_ms"], maps["t2_ms"], maps["pd"]


def _torch_maps(t1_ms: Any, t2_ms: Any, pd: Any) -> tuple[Any, ...]:
    maps = {"t1_ms": t1_ms, "t2_ms": t2_ms, "pd": pd}
    ref = t1_ms
    for name, x in maps.items():
        if not _is_tensor(x):
            raise TypeError(f"{name} must be a torch.Tensor like t1_ms; got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor; got {x.dtype}")
        if x.shape != ref.shape or x.dtype != ref.dtype or x.device != ref.device:
            raise ValueError(f"{name} is {tuple(x.shape)} {x.dtype} on {x.device} but t1_ms is {tuple(ref.shape)} "
                             f"{ref.dtype} on {ref.device}; the maps must match")
    return t1_ms, t2_ms, pd


def signal(t1_ms: Any, t2_ms: Any, pd: Any, protocols: Protocol | Sequence[Protocol], *,
           model: str = "closed") -> Any:
    """Magnitude images of the maps under each protocol (equations in the module docstring).

    Parameters
    ----------
    t1_ms, t2_ms : (*S) [ms], NumPy arrays or torch tensors (any shape, all three alike); 0 = background.
    pd : (*S) proton density (relative); the signal is linear in it.
    protocols : a :class:`~physics.protocol.Protocol` or a sequence of them.
    model : ``"closed"`` (steady-state closed forms) or ``"textbook"``.

    Returns
    -------
    NumPy input: (n_protocols, *S) float32 from the parallel Numba kernel.
    torch input: (n_protocols, *S) tensor of the maps' dtype and device, differentiable w.r.t. the maps.

    Raises
    ------
    ValueError
        A NumPy map holding NaN/inf/negative values (named), maps of different shapes, unknown ``model``.
    TypeError
        ``protocols`` not Protocol(s); mixing NumPy and torch maps.
    """
    textbook = _check_model(model)
    table = _as_table(protocols)
    if any(_is_tensor(x) for x in (t1_ms, t2_ms, pd)):
        torch = _torch_module()
        t1, t2, pdv = _torch_maps(t1_ms, t2_ms, pd)
        r1, r2 = 1 / torch.clamp(t1, min=T_MIN_MS), 1 / torch.clamp(t2, min=T_MIN_MS)
        return torch.stack(_render_generic(torch, r1, r2, pdv, table, textbook))
    t1, t2, pdv = _numpy_maps(t1_ms, t2_ms, pd)
    flat = [np.ascontiguousarray(a, dtype=np.float32).reshape(-1) for a in (t1, t2, pdv)]
    out = np.empty((table.shape[0], flat[0].size), dtype=np.float32)
    signal_kernel(*flat, table, out, textbook=textbook)
    return out.reshape((table.shape[0],) + t1.shape)  # (P, n) -> (P, *S)


def _signal_generic_numpy(t1_ms: Any, t2_ms: Any, pd: Any, protocols: Any, model: str, dtype: type) -> np.ndarray:
    textbook = _check_model(model)
    table = _as_table(protocols)
    t1, t2, pdv = (np.asarray(a, dtype=dtype) for a in _numpy_maps(t1_ms, t2_ms, pd))
    r1, r2 = 1 / np.maximum(t1, T_MIN_MS), 1 / np.maximum(t2, T_MIN_MS)
    out = np.empty((table.shape[0],) + t1.shape, dtype=dtype)
    for p, s in enumerate(_render_generic(np, r1, r2, pdv, table, textbook)):
        out[p] = s
    return out


def signal_reference(t1_ms: Any, t2_ms: Any, pd: Any, protocols: Protocol | Sequence[Protocol], *,
                     model: str = "closed") -> np.ndarray:
    """Float64 NumPy reference of :func:`signal` (same generic formulas as the torch twin).

    Parameters and errors as :func:`signal` (NumPy maps only). Returns (n_protocols, *S) float64.
    """
    return _signal_generic_numpy(t1_ms, t2_ms, pd, protocols, model, np.float64)


def signal_numpy(t1_ms: Any, t2_ms: Any, pd: Any, protocols: Protocol | Sequence[Protocol], *,
                 model: str = "closed") -> np.ndarray:
    """Plain vectorised NumPy float32 evaluation of the same formulas (the benchmark baseline).

    Parameters and errors as :func:`signal` (NumPy maps only). Returns (n_protocols, *S) float32.
    """
    return _signal_generic_numpy(t1_ms, t2_ms, pd, protocols, model, np.float32)


def signal_packed_torch(t1_ms: Any, t2_ms: Any, pd: Any, packed: Any, *, model: str = "closed") -> Any:
    """Differentiable signals with each batch sample's own protocols (kinds may differ per row).

    Parameters
    ----------
    t1_ms, t2_ms : (B, *S) tensors [ms]; pd : (B, *S) tensor (same dtype and device).
    packed : (B, P, len(PACK_COLUMNS)) tensor of :func:`~physics.protocol.pack_protocols` rows (any float
        dtype or device; not differentiated).
    model : ``"closed"`` or ``"textbook"``.

    Returns
    -------
    (B, P, *S) tensor of the maps' dtype. Each kind present is evaluated on all rows, with the rows of other
    kinds replaced by a valid stand-in protocol so that unused branches stay finite, and selected with
    ``torch.where`` (no NaN gradients from unselected branches).
    """
    torch = _torch_module()
    textbook = _check_model(model)
    t1, t2, pdv = _torch_maps(t1_ms, t2_ms, pd)
    if not _is_tensor(packed) or packed.dim() != 3 or packed.shape[-1] != _NCOL or t1.dim() < 1 \
            or packed.shape[0] != t1.shape[0]:
        raise ValueError(f"packed must be a (B={t1.shape[0] if t1.dim() else '?'}, P, {_NCOL}) tensor of "
                         f"pack_protocols rows; got {getattr(packed, 'shape', type(packed).__name__)}")
    b, p = packed.shape[:2]
    tail = (1,) * (t1.dim() - 1)
    rows = packed.detach().to(device=t1.device, dtype=torch.float64)
    kind = rows[..., 0]  # (B, P)
    present = set(torch.unique(kind).tolist())
    unknown = present - set(_FORMULA)
    if unknown:
        raise ValueError(f"packed kind_code column holds {sorted(unknown)}; allowed: {sorted(_FORMULA)}")
    r1 = (1 / torch.clamp(t1, min=T_MIN_MS)).unsqueeze(1)  # (B, 1, *S)
    r2 = (1 / torch.clamp(t2, min=T_MIN_MS)).unsqueeze(1)
    pdb = pdv.unsqueeze(1)
    out = torch.zeros((b, p) + tuple(t1.shape[1:]), dtype=t1.dtype, device=t1.device)
    for codes, closed, book, stand_in in _GROUPS:
        if not present.intersection(codes):
            continue
        mask = torch.isin(kind, torch.tensor(codes, dtype=kind.dtype, device=kind.device))  # (B, P)
        safe = torch.as_tensor(PRESETS[stand_in].pack(), device=rows.device)
        d = {k: v.to(t1.dtype).reshape((b, p) + tail)
             for k, v in _derived(torch, torch.where(mask.unsqueeze(-1), rows, safe)).items()}
        s = (book if textbook else closed)(torch, r1, r2, pdb, d)  # (B, P, *S)
        out = torch.where(mask.reshape((b, p) + tail), s, out)
    return out
