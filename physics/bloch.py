"""Isochromat Bloch simulator: the reference that EPG and the closed-form signal equations are checked against.

Model
-----
Each voxel holds ``n_iso`` isochromats whose phases ``φ_j = 2πj / n_iso`` are spread uniformly over one
cycle of intra-voxel dephasing: a *crusher* (one unit of gradient moment) rotates isochromat ``j`` by ``φ_j``
about z. The echo is the isochromat mean ``(1/N) Σ_j (M_x + i M_y)``. Because an isochromat at ``φ_j`` evolves
exactly like that member of the continuous distribution, the mean equals the sum of the extended-phase-graph
states ``F_k`` with ``k ≡ 0 (mod N)``: with ``N > 2·etl`` no dephased state aliases onto the echo of a
spin-echo train and the simulator equals EPG to rounding (Weigel, JMRI 41:266 (2015)).

Conventions (identical to :mod:`physics.epg`)
- Spin-echo kinds (``se``, ``tse``, ``ir_tse``, CPMG): excitation about x at t = 0 (``ir_tse``: at ``ti_ms``),
  refocusing pulses about y at ``(k − ½)·esp_ms``, each with one crusher cycle right before and right after;
  echo k sampled at ``k·esp_ms``. ``te_ms`` is the effective TE = ``echo_index·esp_ms``.
- End of every TR: *ideal spoiling* — transverse magnetisation set to 0 and M_z replaced by its isochromat
  mean (every configuration state but Z_0 destroyed).
- Inversion (``ir_tse``, ``mprage``) at t = 0 of the cycle (``tr_ms`` is inversion to inversion): M_z → −κ·M_z
  and the transverse part crushed; that is a hard rotation by ``acos(−κ)`` followed by an ideal spoiler. It is
  modelled as adiabatic, so ``b1`` does not scale it.
- ``spgr``: one pulse per TR, echo at ``te_ms``; ``mprage``: ``etl`` pulses spaced ``esp_ms``, ``ti_ms`` from the
  inversion to the centre pulse (index ``etl // 2``), echo ``te_ms`` after it. Between gradient-echo pulses
  ``spoiling="ideal"`` destroys all coherences; ``spoiling="rf"`` applies one crusher cycle per interval and
  quadratic RF phase cycling ``φ_n = φ_{n−1} + n·117°`` (Zur et al., MRM 21:251 (1991)); the residual
  transverse coherences of real RF spoiling are then simulated, so the signal departs from the Ernst formula by
  a T2-, flip- and TR-dependent amount (Preibisch & Deichmann, MRM 61:125 (2009)).
- Pulses: ``"hard"`` are instantaneous rotations by ``b1·flip``; ``"sinc"`` (or any :class:`physics.rf.PulseShape`)
  are time-stepped (piecewise-constant B1, exact axis–angle rotation per step about the effective field
  ``(ω1 cos φ, ω1 sin φ, Δω)``, relaxation by Strang splitting), centred on the nominal pulse time so that free
  intervals shrink by half a pulse on each side.
- Free precession for ``t`` [ms]: rotation about z by ``2π·Δf·t/1000`` (``Δf`` = ``off_resonance_hz``), then
  ``M_xy·e^{−t/T2}``, ``M_z·e^{−t/T1} + (1 − e^{−t/T1})`` (M0 = 1; PD multiplies the magnitude at the end).
  A relaxation time ≤ 0 (background voxel) is treated as instantaneous decay.

TRs are repeated until the mean M_z at the end of the TR and every sampled echo magnitude change by less than
``tol`` (with the geometric-tail estimate ``Δ·r/(1−r)`` when convergence is slow), or ``max_tr`` is reached.
Kernels run in float64, parallel over voxels (Numba ``prange``). One TR is an op table built by
:func:`_build_program` from the protocol (tests/physics/test_bloch.py checks its times against hand-computed
ones). The plain NumPy single-voxel reference :func:`physics.bloch_reference.bloch_reference` has its own
event timeline and input handling; neither module imports the other.
"""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from relaxomap.physics._bloch_kernel import (
    _CRUSH,
    _FREE,
    _INVERT,
    _PULSE,
    _SAMPLE,
    _SPOIL,
    _run_kernel,
    _shaped_affine_one,
)
from relaxomap.physics.checks import check_finite_range, check_int_range, check_map_array
from relaxomap.physics.protocol import SPIN_ECHO_KINDS, Protocol
from relaxomap.physics.rf import PulseShape, sinc_shape

__all__ = [
    "BlochRun",
    "bloch_run",
    "bloch_signal",
    "bloch_echo_train",
    "default_n_iso",
    "shaped_pulse_affine",
    "SINC_SPIN_ECHO",
    "SINC_GRADIENT_ECHO",
]

#: ``pulse="sinc"`` for excitation and refocusing of ``se`` / ``tse`` / ``ir_tse``: Hann sinc, TBW 4, 2 ms.
SINC_SPIN_ECHO: PulseShape = sinc_shape(4.0, 2.0, 128)
#: ``pulse="sinc"`` for the readout pulses of ``spgr`` / ``mprage``: Hann sinc, TBW 4, 1 ms.
SINC_GRADIENT_ECHO: PulseShape = sinc_shape(4.0, 1.0, 64)

_ALIAS_LEVEL = 1e-9  # RF-spoiled auto n_iso: dephased states older than N intervals have decayed below this
_MAX_AUTO_ISO = 8192


class BlochRun(NamedTuple):
    """Result of :func:`bloch_run`.

    echoes : (*shape, n_samples) complex128 — isochromat-mean M_x + i·M_y (M0 = 1) at each sample of the last
        TR (every echo of a spin-echo train; one sample for ``spgr`` / ``mprage``), receiver phase = RF phase.
    n_tr : (*shape,) int64 — TRs simulated.
    converged : (*shape,) bool — whether the steady-state test passed before ``max_tr``.
    n_iso : isochromats per voxel used.
    te_slot : index into the last axis of ``echoes`` of the echo at ``te_ms``.
    """

    echoes: np.ndarray
    n_tr: np.ndarray
    converged: np.ndarray
    n_iso: int
    te_slot: int


# ---------------------------------------------------------------------------------------------- sequence programs
def _pulse_shapes(protocol: Protocol, pulse: str | PulseShape) -> list[PulseShape | None]:
    """Shape per pulse type (None = hard): [excitation, refocusing] for spin echoes, [readout] otherwise."""
    n_types = 2 if protocol.kind in SPIN_ECHO_KINDS else 1
    if isinstance(pulse, PulseShape):
        return [pulse] * n_types
    if pulse == "hard":
        return [None] * n_types
    if pulse == "sinc":
        return [SINC_SPIN_ECHO if protocol.kind in SPIN_ECHO_KINDS else SINC_GRADIENT_ECHO] * n_types
    raise ValueError(f"bloch: pulse must be 'hard', 'sinc' or a physics.rf.PulseShape; got {pulse!r}")


def _build_program(protocol: Protocol, shapes: list[PulseShape | None], spoiling: str) -> tuple[np.ndarray, int, int]:
    """One TR of ``protocol`` as an op table (n_ops, 4) float64; returns (ops, n_slots, te_slot)."""
    half = [0.0 if s is None else 0.5 * s.duration_ms for s in shapes]
    rf = 1.0 if spoiling == "rf" else 0.0
    kind, esp, etl = protocol.kind, protocol.esp_ms, protocol.etl
    events: list[tuple[float, float, tuple[float, float, float, float]]] = []  # (start_ms, end_ms, op row)
    if kind in SPIN_ECHO_KINDS:
        t0 = protocol.ti_ms if kind == "ir_tse" else 0.0
        if kind == "ir_tse":
            events.append((0.0, 0.0, (_INVERT, protocol.inversion_efficiency, 0.0, 0.0)))
        events.append((t0 - half[0], t0 + half[0], (_PULSE, 0, 0.0, 0.0)))  # excitation about x
        for e in range(etl):
            tc = t0 + (e + 0.5) * esp
            events.append((tc - half[1], tc - half[1], (_CRUSH, 1.0, 0.0, 0.0)))
            events.append((tc - half[1], tc + half[1], (_PULSE, 1, 0.5 * math.pi, 0.0)))  # CPMG: about y
            events.append((tc + half[1], tc + half[1], (_CRUSH, 1.0, 0.0, 0.0)))
            events.append((t0 + (e + 1) * esp, t0 + (e + 1) * esp, (_SAMPLE, e, 0.0, 0.0)))
        end_op, n_slots, te_slot = (_SPOIL, 0.0, 0.0, 0.0), etl, protocol.echo_index - 1
    elif kind == "spgr":
        events.append((-half[0], half[0], (_PULSE, 0, 0.0, rf)))
        events.append((protocol.te_ms, protocol.te_ms, (_SAMPLE, 0, 0.0, 0.0)))
        end_op = (_CRUSH, 1.0, 0.0, 0.0) if rf else (_SPOIL, 0.0, 0.0, 0.0)
        n_slots, te_slot = 1, 0
    else:  # mprage
        events.append((0.0, 0.0, (_INVERT, protocol.inversion_efficiency, 0.0, 0.0)))
        centre = etl // 2
        for i in range(etl):
            tp = protocol.ti_ms + (i - centre) * esp
            events.append((tp - half[0], tp + half[0], (_PULSE, 0, 0.0, rf)))
            if i == centre:
                events.append((tp + protocol.te_ms, tp + protocol.te_ms, (_SAMPLE, 0, 0.0, 0.0)))
            t_sp = tp + esp - half[0]  # spoil right before the next pulse begins
            events.append((t_sp, t_sp, (_CRUSH, 1.0, 0.0, 0.0) if rf else (_SPOIL, 0.0, 0.0, 0.0)))
        end_op, n_slots, te_slot = (_SPOIL, 0.0, 0.0, 0.0), 1, 0
    rows: list[tuple[float, float, float, float]] = []
    t_end = events[0][0]
    for start, end, row in events:
        gap = start - t_end
        if gap < -1e-9:
            durations = ", ".join(f"{2 * h:g} ms" for h in half)
            raise ValueError(
                f"bloch: shaped pulses ({durations}) do not fit the timing of protocol "
                f"{protocol.name or protocol.kind!r} (tr_ms={protocol.tr_ms:g}, te_ms={protocol.te_ms:g}, "
                f"esp_ms={protocol.esp_ms:g}): they overlap by {-gap:.3g} ms; use pulse='hard' or a shorter PulseShape"
            )
        if gap > 0:
            rows.append((_FREE, gap, 0.0, 0.0))
        rows.append(row)
        t_end = end
    gap = protocol.tr_ms + events[0][0] - t_end
    if gap < -1e-9:
        raise ValueError(f"bloch: protocol {protocol.name or protocol.kind!r} overruns tr_ms={protocol.tr_ms:g} by "
                         f"{-gap:.3g} ms with these pulse durations")
    if gap > 0:
        rows.append((_FREE, gap, 0.0, 0.0))
    rows.append(end_op)
    return np.array(rows, dtype=np.float64), n_slots, te_slot


def _pulse_table(protocol: Protocol, shapes: list[PulseShape | None]) -> tuple[np.ndarray, ...]:
    """Kernel arrays per pulse type: shaped (bool), hard angle [rad], ω1 [rad/ms], phase [rad], n, dt [ms]."""
    flips = [protocol.flip_deg, protocol.refocus_deg][: len(shapes)]
    n_max = max([1] + [s.n_steps for s in shapes if s is not None])
    n_p = len(shapes)
    shaped = np.zeros(n_p, np.bool_)
    angle = np.radians(np.array(flips, dtype=np.float64))
    w = np.zeros((n_p, n_max))
    ph = np.zeros((n_p, n_max))
    n = np.zeros(n_p, np.int64)
    dt = np.zeros(n_p)
    for p, (shape, flip) in enumerate(zip(shapes, flips)):
        if shape is not None:
            shaped[p] = True
            n[p] = shape.n_steps
            w[p, : shape.n_steps] = shape.omega1_rad_per_ms(flip)
            ph[p, : shape.n_steps] = shape.phase_rad
            dt[p] = shape.dt_ms
    return shaped, angle, w, ph, n, dt


def default_n_iso(protocol: Protocol, spoiling: str = "ideal", t2_max_ms: float = 2000.0) -> int:
    """Isochromats needed for an alias-free echo.

    Spin-echo trains populate dephasing orders |k| ≤ 2·etl, so ``2·etl + 2`` isochromats make the echo exact.
    Ideal spoiling between gradient echoes leaves no dephased state: 1. RF spoiling keeps every order alive, each
    decaying by e^{−interval/T2}; N is chosen so the first alias (order N) has decayed to 1e-9, below the default
    steady-state ``tol`` (aliased states make the RF-spoiled steady state wobble at about that level):
    ``N = ceil(ln(1e9)·T2_max / interval)`` in [64, 8192] (interval = tr_ms for spgr, esp_ms for mprage).
    """
    if protocol.kind in SPIN_ECHO_KINDS:
        return 2 * protocol.etl + 2
    if spoiling == "ideal":
        return 1
    interval = protocol.tr_ms if protocol.kind == "spgr" else protocol.esp_ms
    n = math.ceil(math.log(1.0 / _ALIAS_LEVEL) * max(t2_max_ms, 0.0) / interval)
    return int(min(max(n, 64), _MAX_AUTO_ISO))


def _voxels(t1_ms, t2_ms, b1, off_resonance_hz) -> tuple[tuple[int, ...], list[np.ndarray]]:
    arrs = [np.asarray(a, dtype=np.float64) for a in (t1_ms, t2_ms, b1, off_resonance_hz)]
    try:
        arrs = np.broadcast_arrays(*arrs)
    except ValueError:
        raise ValueError("bloch: t1_ms, t2_ms, b1 and off_resonance_hz must broadcast to one shape; got shapes "
                         + ", ".join(str(a.shape) for a in arrs)) from None
    check_map_array("t1_ms", arrs[0])
    check_map_array("t2_ms", arrs[1])
    check_map_array("b1", arrs[2])
    if not np.isfinite(arrs[3]).all():
        raise ValueError("bloch: off_resonance_hz must be finite")
    return arrs[0].shape, [np.ascontiguousarray(a.ravel()) for a in arrs]  # each (n_vox,) float64


def _check_common(protocol: Protocol, spoiling: str, n_iso: int | None, max_tr: int, tol: float) -> None:
    if not isinstance(protocol, Protocol):
        raise TypeError(f"bloch: protocol must be a physics.protocol.Protocol; got {type(protocol).__name__}")
    if spoiling not in ("ideal", "rf"):
        raise ValueError(f"bloch: spoiling must be 'ideal' or 'rf'; got {spoiling!r}")
    if n_iso is not None:
        check_int_range("bloch", "n_iso", n_iso, 1, 1_000_000)
    check_int_range("bloch", "max_tr", max_tr, 1, 10_000_000)
    check_finite_range("bloch", "tol", tol, 0.0, 1.0, lo_open=True)


def bloch_run(
    t1_ms: np.ndarray,
    t2_ms: np.ndarray,
    protocol: Protocol,
    *,
    n_iso: int | None = None,
    b1: float | np.ndarray = 1.0,
    off_resonance_hz: float | np.ndarray = 0.0,
    pulse: str | PulseShape = "hard",
    spoiling: str = "ideal",
    rf_increment_deg: float = 117.0,
    max_tr: int = 10_000,
    tol: float = 1e-8,
) -> BlochRun:
    """Simulate ``protocol`` to steady state for every voxel (M0 = 1).

    Parameters
    ----------
    t1_ms, t2_ms : array-like [ms], broadcast with ``b1`` and ``off_resonance_hz`` to one shape ``shape``.
    protocol : the sequence (see the module docstring for the timing conventions).
    n_iso : isochromats per voxel; None = :func:`default_n_iso` (alias-free).
    b1 : relative transmit field (scales every excitation/refocusing/readout flip, not the inversion).
    off_resonance_hz : global off-resonance [Hz].
    pulse : ``"hard"``, ``"sinc"`` (:data:`SINC_SPIN_ECHO` / :data:`SINC_GRADIENT_ECHO`) or a PulseShape.
    spoiling : ``"ideal"`` or ``"rf"`` (gradient-echo kinds; spin-echo kinds are always ideally spoiled at TR end).
    rf_increment_deg : quadratic RF-spoiling increment Φ [deg].
    max_tr, tol : steady-state test: stop when the TR-to-TR change of the mean M_z and of every echo magnitude,
        with the geometric tail estimate, is below ``tol`` (M0 units), or after ``max_tr`` TRs.

    Returns
    -------
    BlochRun (echoes complex128 (*shape, n_samples), n_tr, converged, n_iso, te_slot).
    """
    _check_common(protocol, spoiling, n_iso, max_tr, tol)
    shape, (t1, t2, b1v, dfv) = _voxels(t1_ms, t2_ms, b1, off_resonance_hz)
    if n_iso is None:
        n_iso = default_n_iso(protocol, spoiling, float(t2.max(initial=0.0)))
    shapes = _pulse_shapes(protocol, pulse)
    ops, n_slots, te_slot = _build_program(protocol, shapes, spoiling)
    table = _pulse_table(protocol, shapes)
    inc = math.radians(check_finite_range("bloch", "rf_increment_deg", rf_increment_deg, -360.0, 360.0))
    re, im, n_tr, conv = _run_kernel(t1, t2, b1v, dfv, ops, *table, int(n_iso), inc, int(max_tr), float(tol), n_slots)
    return BlochRun((re + 1j * im).reshape(shape + (n_slots,)), n_tr.reshape(shape), conv.reshape(shape),
                    int(n_iso), te_slot)


def _warn_unconverged(run: BlochRun, max_tr: int) -> None:
    bad = int((~run.converged).sum())
    if bad:
        warnings.warn(f"bloch: {bad} of {run.converged.size} voxel(s) not at steady state after max_tr={max_tr} TRs; "
                      "raise max_tr or tol", RuntimeWarning, stacklevel=3)


def bloch_signal(
    t1_ms: np.ndarray,
    t2_ms: np.ndarray,
    pd: np.ndarray,
    protocol: Protocol,
    *,
    n_iso: int | None = None,
    b1: float | np.ndarray = 1.0,
    off_resonance_hz: float | np.ndarray = 0.0,
    pulse: str | PulseShape = "hard",
    spoiling: str = "ideal",
    rf_increment_deg: float = 117.0,
    max_tr: int = 10_000,
    tol: float = 1e-8,
) -> np.ndarray:
    """Steady-state magnitude at ``te_ms``: ``PD·|⟨M_x + iM_y⟩|`` (the echo at ``echo_index`` for spin echoes).

    Parameters as :func:`bloch_run`; ``pd`` (relative proton density) broadcasts with the maps.

    Returns
    -------
    (*shape,) float64 — for (n_vox,) maps, (n_vox,). Warns (RuntimeWarning) for voxels not converged.
    """
    pd = np.asarray(pd, dtype=np.float64)
    check_map_array("pd", pd)
    run = bloch_run(t1_ms, t2_ms, protocol, n_iso=n_iso, b1=b1, off_resonance_hz=off_resonance_hz, pulse=pulse,
                    spoiling=spoiling, rf_increment_deg=rf_increment_deg, max_tr=max_tr, tol=tol)
    _warn_unconverged(run, max_tr)
    mag = np.abs(run.echoes[..., run.te_slot])
    try:
        return np.asarray(mag * pd, dtype=np.float64)
    except ValueError:
        raise ValueError(f"bloch_signal: pd shape {pd.shape} does not broadcast with the maps {mag.shape}") from None


def bloch_echo_train(
    t1_ms: np.ndarray,
    t2_ms: np.ndarray,
    protocol: Protocol,
    *,
    n_iso: int | None = None,
    b1: float | np.ndarray = 1.0,
    off_resonance_hz: float | np.ndarray = 0.0,
    pulse: str | PulseShape = "hard",
    max_tr: int = 10_000,
    tol: float = 1e-8,
) -> np.ndarray:
    """Steady-state magnitudes of every echo of a spin-echo train (PD = 1).

    Returns
    -------
    (*shape, etl) float64 — for (n_vox,) maps, (n_vox, etl); echo k (1-based) at k·esp_ms after excitation.

    Raises
    ------
    ValueError for gradient-echo kinds (``spgr``, ``mprage``).
    """
    if isinstance(protocol, Protocol) and protocol.kind not in SPIN_ECHO_KINDS:
        raise ValueError(f"bloch_echo_train: protocol.kind must be one of {list(SPIN_ECHO_KINDS)}; "
                         f"got {protocol.kind!r}")
    run = bloch_run(t1_ms, t2_ms, protocol, n_iso=n_iso, b1=b1, off_resonance_hz=off_resonance_hz, pulse=pulse,
                    max_tr=max_tr, tol=tol)
    _warn_unconverged(run, max_tr)
    return np.abs(run.echoes)


def shaped_pulse_affine(
    shape: PulseShape,
    flip_deg: float,
    *,
    t1_ms: float = 0.0,
    t2_ms: float = 0.0,
    b1: float = 1.0,
    off_resonance_hz: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The time-stepped pulse (phase 0, about x) as ``M → A·M + b``; A (3, 3), b (3,) float64.

    ``t1_ms`` / ``t2_ms`` ≤ 0 means *no* relaxation during the pulse here (unlike the voxel maps, where 0 is
    background), so the pure rotation can be inspected.
    """
    w = shape.omega1_rad_per_ms(flip_deg)
    t1 = float(t1_ms) if t1_ms > 0 else math.inf
    t2 = float(t2_ms) if t2_ms > 0 else math.inf
    dw = 2 * math.pi * off_resonance_hz / 1000.0  # [rad/ms]
    return _shaped_affine_one(w, shape.phase_rad, shape.dt_ms, float(b1), dw, t1, t2)
