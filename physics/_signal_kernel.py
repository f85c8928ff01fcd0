"""Numba float32 kernel of the closed-form signal equations (private; the public entry is :mod:`physics.signal`).

This is the second transcription of the equations that :mod:`physics.signal` writes once over NumPy / torch
(see that module's docstring for the model and the references); both read the per-protocol constants of
:func:`_derived`, which lives here so that :mod:`physics.signal` can import it without a cycle. The kernel:

* turns each protocol row into a float32 constants table (``_KCONST`` order, times pre-multiplied by log2 e)
  and a loop code chosen in Python, so that every voxel loop is branch-free and SIMD-vectorised with the
  polynomial ``exp2`` of :mod:`physics._fastexp`;
* renders voxels in chunks of ``_CHUNK`` (1/T computed once per voxel for all protocols) with subnormals
  flushed for its own duration;
* splits the voxels over a small pool of threads that call the GIL-free kernel (``NUMBA_NUM_THREADS``).

:func:`signal_kernel` is re-exported by :mod:`physics.signal`; it agrees with the float64 reference to
~2e-7 of the PD scale.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
from numba import njit

from relaxomap.physics._fastexp import FASTMATH, LOG2E, exp2_pair, flush_denormals_begin, flush_denormals_end
from relaxomap.physics.protocol import PACK_COLUMNS, SEQUENCE_KINDS

__all__ = ["T_MIN_MS", "signal_kernel"]

#: Lower clamp of T1 and T2 [ms] (keeps 1/T finite for background voxels with T = 0); re-exported by
#: :mod:`physics.signal`, whose generic formulas clamp with it too.
T_MIN_MS = 1e-6

_SE, _TSE, _IR, _SPGR, _MP = (SEQUENCE_KINDS[k] for k in ("se", "tse", "ir_tse", "spgr", "mprage"))
_NCOL = len(PACK_COLUMNS)


# ---------------------------------------------------------------------- protocol constants (read by physics.signal too)
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


# ----------------------------------------------------------------------------- Numba float32 kernel
_F = np.float32
_ONE = _F(1.0)
_TMIN = _F(T_MIN_MS)
_CHUNK = 2048  # voxels per parallel task: r1, r2 of a chunk stay in L1/L2 across the protocols
# Loop codes of the kernel (chosen per protocol in Python, so the voxel loops are branch-free).
_L_SE1, _L_TRAIN, _L_IR, _L_SPGR, _L_MP, _L_TSE_BOOK, _L_IR_BOOK = range(7)
_FM = dict(fastmath=FASTMATH, error_model="numpy", cache=True)  # numpy error model: no zero-division branch


@njit(**_FM)
def _k_spacing(r1, c):
    """One echo spacing as ``Mz → a1·Mz + b1``: returns (E_½, b1, 1 − a1) for one voxel."""
    eh, omeh = exp2_pair(-c[_HESP] * r1)
    oma1 = c[_OMCB] + c[_CB] * omeh * (_ONE + eh)
    b1 = omeh * (_ONE + eh * c[_CB])
    return eh, b1, oma1


@njit(**_FM)
def _k_train(r1, c):
    """The refocusing train: (A, b1, 1 − a1) with A = cos^etl b·e^(−T_ro/T1)."""
    _, b1, oma1 = _k_spacing(r1, c)
    big_a = c[_CBPOW] * exp2_pair(-c[_RO] * r1)[0]
    return big_a, b1, oma1


@njit(**_FM)
def _k_tse_value(r1, r2, pd, c, big_a, b1, oma1):
    """``se`` / ``tse`` signal of one voxel from its train (A, b1, 1 − a1): PD·sin a·Mz_pre·e^(−TE/T2)."""
    erec, omerec = exp2_pair(-c[_RECT] * r1)
    mz = (omerec * oma1 + erec * b1 * (_ONE - big_a)) / (oma1 * (_ONE - erec * big_a * c[_CA]))
    return pd * c[_SA] * mz * exp2_pair(-c[_TE] * r2)[0]


@njit(**_FM)
def _k_se1(r1, r2, pd, c, out):
    """One refocusing pulse (``se``, or ``tse`` with etl = 1): A = cos b·E_½², one exp fewer."""
    for i in range(r1.shape[0]):
        eh, b1, oma1 = _k_spacing(r1[i], c)
        out[i] = _k_tse_value(r1[i], r2[i], pd[i], c, c[_CB] * eh * eh, b1, oma1)


@njit(**_FM)
def _k_tse(r1, r2, pd, c, out):
    for i in range(r1.shape[0]):
        big_a, b1, oma1 = _k_train(r1[i], c)
        out[i] = _k_tse_value(r1[i], r2[i], pd[i], c, big_a, b1, oma1)


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
