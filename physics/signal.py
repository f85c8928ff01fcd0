"""Closed-form magnitude signal equations for every sequence kind of :mod:`physics.protocol`.

Backends
--------
* :func:`signal` on NumPy maps → the cached Numba float32 kernel (:func:`signal_kernel`), run on one
  thread per core; it agrees with the float64 reference to ~2e-7 of the PD scale (tests allow 1e-5).
* :func:`signal` on torch maps, :func:`signal_packed_torch` → the differentiable torch twin.
* :func:`signal_reference` → float64 NumPy reference; :func:`signal_numpy` → the same code in float32
  (the plain-NumPy benchmark baseline).
The torch twin and both NumPy functions run the *same* generic formulas (``_tse`` … below, written once
over the array namespace ``xp`` = ``numpy`` or ``torch``); the Numba kernel (private module
:mod:`physics._signal_kernel`, which also holds ``T_MIN_MS`` and the per-protocol constants ``_derived`` that
both read) is the second transcription. ``signal_kernel`` and ``T_MIN_MS`` are re-exported here.

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
from typing import Any, Sequence

import numpy as np

from relaxomap.physics.checks import check_map_array
from relaxomap.physics._signal_kernel import T_MIN_MS, _derived, signal_kernel
from relaxomap.physics.protocol import PACK_COLUMNS, PRESETS, SEQUENCE_KINDS, Protocol, pack_protocols

__all__ = [
    "MODELS",
    "T_MIN_MS",
    "signal",
    "signal_packed_torch",
    "signal_reference",
    "signal_numpy",
    "signal_kernel",
]

#: Accepted values of the ``model`` keyword.
MODELS = ("closed", "textbook")

_SE, _TSE, _IR, _SPGR, _MP = (SEQUENCE_KINDS[k] for k in ("se", "tse", "ir_tse", "spgr", "mprage"))
_NCOL = len(PACK_COLUMNS)


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
