"""Plain float64 NumPy reference of the isochromat Bloch simulator :func:`physics.bloch.bloch_run`.

One voxel at a time, written to be read rather than to be fast, and independent of :mod:`physics.bloch`
(neither module imports the other; tests/physics/test_independence.py):

* its own **event timeline**, written out per sequence kind from the protocol (:func:`sequence_events`), in ms
  relative to the excitation for spin echoes: inversion at −TI (``ir_tse``), excitation about x at 0,
  refocusing about y centred at esp/2 + k·esp with one crusher cycle right before and right after it, echo k+1
  sampled at (k + 1)·esp, ideal spoiling at the end of the TR (which starts at the inversion, or at the start
  of the excitation pulse); ``spgr``: pulse at 0, sample at TE, spoiler at the end of the TR; ``mprage``:
  inversion at 0, pulse i centred at TI + (i − etl//2)·esp, sample TE after the centre pulse, a spoiler right
  before each next pulse slot, ideal spoiling at the end of the TR. Shaped pulses are centred on these times.
  The kernel runs an op table built by ``physics.bloch._build_program`` instead: a timing error there shows
  as a difference from this reference.
* its own numerics: isochromats are an (n_iso, 3) array moved by 3×3 rotation matrices (Rodrigues), free
  precession is the analytic solution, and a shaped pulse is integrated *exactly* per piecewise-constant step
  with the matrix exponential of the 4×4 homogeneous Bloch generator (rotation and relaxation together),
  where the Numba kernel uses Strang splitting.
* its own input checks and isochromat count (``n_iso``).

The conventions (documented in :mod:`physics.bloch`) are the kernel's: the two must agree to rounding for hard
pulses and to O(Δt²) for shaped ones.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from relaxomap.physics.checks import check_finite_range, check_int_range
from relaxomap.physics.protocol import SPIN_ECHO_KINDS, Protocol
from relaxomap.physics.rf import PulseShape

__all__ = ["bloch_reference", "sequence_events", "Event", "rotation_matrix", "rf_rotation", "free_precession"]

_OWNER = "bloch_reference"


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


# ---------------------------------------------------------------------------------------------- event timeline
class Event(NamedTuple):
    """One event of a TR. ``action``: ``"invert"``, ``"pulse"``, ``"crush"``, ``"spoil"`` or ``"sample"``.

    start_ms : start [ms] on the timeline of :func:`sequence_events`; duration_ms : > 0 only for shaped pulses.
    index : pulse type (0 excitation / readout, 1 refocusing) or echo slot; phase_rad : RF phase of a pulse.
    rf_spoiled : the pulse takes the next phase of the quadratic RF-spoiling schedule.
    kappa : inversion efficiency of an inversion (M_z → −κ·M_z).
    """

    start_ms: float
    duration_ms: float
    action: str
    index: int = 0
    phase_rad: float = 0.0
    rf_spoiled: bool = False
    kappa: float = 1.0


def _spin_echo_events(p: Protocol, d_exc: float, d_ref: float) -> tuple[list[Event], float]:
    """Events of one TR of se / tse / ir_tse, t = 0 at the excitation centre; returns (events, TR start)."""
    events = []
    if p.kind == "ir_tse":
        events.append(Event(-p.ti_ms, 0.0, "invert", kappa=p.inversion_efficiency))
    events.append(Event(-d_exc / 2, d_exc, "pulse", 0, 0.0))  # excitation about x
    for k in range(p.etl):
        centre = p.esp_ms / 2 + k * p.esp_ms
        events.append(Event(centre - d_ref / 2, 0.0, "crush"))
        events.append(Event(centre - d_ref / 2, d_ref, "pulse", 1, math.pi / 2))  # refocusing about y (CPMG)
        events.append(Event(centre + d_ref / 2, 0.0, "crush"))
        events.append(Event((k + 1) * p.esp_ms, 0.0, "sample", k))
    return events, events[0].start_ms


def _gradient_echo_events(p: Protocol, d: float, rf: bool) -> tuple[list[Event], float]:
    """Events of one TR of spgr (t = 0 at the pulse centre) or mprage (t = 0 at the inversion)."""
    spoiler = "crush" if rf else "spoil"
    if p.kind == "spgr":
        events = [Event(-d / 2, d, "pulse", 0, 0.0, rf), Event(p.te_ms, 0.0, "sample", 0)]
        return events, -d / 2
    events = [Event(0.0, 0.0, "invert", kappa=p.inversion_efficiency)]
    centre = p.etl // 2
    for i in range(p.etl):
        t_pulse = p.ti_ms + (i - centre) * p.esp_ms
        events.append(Event(t_pulse - d / 2, d, "pulse", 0, 0.0, rf))
        if i == centre:
            events.append(Event(t_pulse + p.te_ms, 0.0, "sample", 0))
        events.append(Event(t_pulse + p.esp_ms - d / 2, 0.0, spoiler))  # right before the next pulse slot
    return events, 0.0


def sequence_events(protocol: Protocol, durations_ms: tuple[float, float] = (0.0, 0.0),
                    spoiling: str = "ideal") -> tuple[list[Event], float, float]:
    """One TR of ``protocol`` as a chronological list of events (module docstring for the timeline).

    Parameters
    ----------
    protocol : any kind.
    durations_ms : (excitation / readout, refocusing) pulse durations [ms]; 0 for hard pulses.
    spoiling : ``"ideal"`` or ``"rf"`` (gradient-echo kinds: crushers and RF phase cycling instead of spoilers).

    Returns
    -------
    (events, tr_start_ms, tr_end_ms): the TR runs tr_start_ms .. tr_start_ms + tr_ms; the last event at its end
    (an ideal spoiler, or a crusher for RF-spoiled spgr) is included in ``events``.
    """
    rf = spoiling == "rf"
    if protocol.kind in SPIN_ECHO_KINDS:
        events, start = _spin_echo_events(protocol, *durations_ms)
        end_action = "spoil"
    else:
        events, start = _gradient_echo_events(protocol, durations_ms[0], rf)
        end_action = "crush" if rf and protocol.kind == "spgr" else "spoil"
    end = start + protocol.tr_ms
    return events + [Event(end, 0.0, end_action)], start, end


# ---------------------------------------------------------------------------------------------- reference
def _check_inputs(t1_ms: float, t2_ms: float, protocol: Protocol, n_tr: int, n_iso: int | None, b1: float,
                  pulse: str | PulseShape, spoiling: str) -> int:
    """Validate the arguments of :func:`bloch_reference`; returns n_iso (its default when None)."""
    if not isinstance(protocol, Protocol):
        raise TypeError(f"{_OWNER}: protocol must be a physics.protocol.Protocol; got {type(protocol).__name__}")
    for name, value in (("t1_ms", t1_ms), ("t2_ms", t2_ms)):
        check_finite_range(_OWNER, name, value, 0.0, math.inf, lo_open=True)
    check_finite_range(_OWNER, "b1", b1, 0.0, 10.0, lo_open=True)
    check_int_range(_OWNER, "n_tr", n_tr, 1, 10_000_000)
    if spoiling not in ("ideal", "rf"):
        raise ValueError(f"{_OWNER}: spoiling must be 'ideal' or 'rf'; got {spoiling!r}")
    if not (pulse == "hard" or isinstance(pulse, PulseShape)):
        raise ValueError(f"{_OWNER}: pulse must be 'hard' or a physics.rf.PulseShape; got {pulse!r}")
    if n_iso is not None:
        return check_int_range(_OWNER, "n_iso", n_iso, 1, 1_000_000)
    if protocol.kind in SPIN_ECHO_KINDS:
        return 2 * protocol.etl + 2  # dephasing orders |k| <= 2·etl: alias-free
    if spoiling == "ideal":
        return 1  # no dephased state survives a spoiler
    raise ValueError(f"{_OWNER}: n_iso is required with spoiling='rf' (every dephasing order stays alive)")


def _pulse_propagators(protocol: Protocol, pulse: str | PulseShape, b1: float, dw: float, t1_ms: float,
                       t2_ms: float) -> list[np.ndarray]:
    """4×4 homogeneous propagator at RF phase 0 of the excitation / readout pulse and the refocusing pulse."""
    from scipy.linalg import expm  # test-only dependency path; keeps the import of this module light

    props = []
    for flip in (protocol.flip_deg, protocol.refocus_deg):
        prop = np.eye(4)
        if pulse == "hard":
            prop[:3, :3] = rf_rotation(b1 * flip, 0.0)
        else:
            for w_k, ph_k in zip(b1 * pulse.omega1_rad_per_ms(flip), pulse.phase_rad):
                g = _bloch_generator(w_k * math.cos(ph_k), w_k * math.sin(ph_k), dw, t1_ms, t2_ms)
                prop = expm(g * pulse.dt_ms) @ prop
        props.append(prop)
    return props


class _RFSpoiling:
    """Quadratic RF phase cycling: pulse n (from 0) is played at phase Φ·n(n+1)/2; the receiver follows it."""

    def __init__(self, increment_rad: float) -> None:
        self.increment_rad, self.count, self.next_rad, self.receiver_rad = increment_rad, 0, 0.0, 0.0

    def phase(self) -> float:
        self.receiver_rad = self.next_rad
        self.count += 1
        self.next_rad = (self.next_rad + self.count * self.increment_rad) % (2.0 * math.pi)
        return self.receiver_rad


def _apply(event: Event, m: np.ndarray, props: list[np.ndarray], phi: np.ndarray, rf: _RFSpoiling,
           echoes: np.ndarray) -> np.ndarray:
    """Magnetisation (n_iso, 3) after one instantaneous event or pulse; a sample is written into ``echoes``."""
    n_iso = m.shape[0]
    if event.action == "pulse":
        phase = event.phase_rad + (rf.phase() if event.rf_spoiled else 0.0)
        rz = np.eye(4)
        rz[:3, :3] = rotation_matrix((0.0, 0.0, 1.0), phase)
        full = rz @ props[event.index] @ rz.T  # the pulse played about the axis at RF phase `phase`
        return m @ full[:3, :3].T + full[:3, 3]
    if event.action == "crush":  # one cycle of dephasing: isochromat j turns by φ_j about z
        return np.stack([rotation_matrix((0.0, 0.0, 1.0), phi[j]) @ m[j] for j in range(n_iso)])
    if event.action == "spoil":
        return np.column_stack([np.zeros(n_iso), np.zeros(n_iso), np.full(n_iso, m[:, 2].mean())])
    if event.action == "invert":
        return np.column_stack([np.zeros(n_iso), np.zeros(n_iso), -event.kappa * m[:, 2]])
    echoes[event.index] = (m[:, 0].mean() + 1j * m[:, 1].mean()) * np.exp(-1j * rf.receiver_rad)
    return m


def _play_tr(m: np.ndarray, events: list[Event], tr_start_ms: float, t1_ms: float, t2_ms: float,
             off_resonance_hz: float, props: list[np.ndarray], phi: np.ndarray, rf: _RFSpoiling,
             echoes: np.ndarray) -> np.ndarray:
    """One TR: free precession between events (ValueError where two overlap), each event applied in turn."""
    t = tr_start_ms
    for event in events:
        gap = event.start_ms - t
        if gap < -1e-9:
            raise ValueError(f"{_OWNER}: a {event.action} at {event.start_ms:g} ms starts {-gap:.3g} ms before the "
                             "previous event ends; use pulse='hard' or a shorter PulseShape")
        if gap > 0:
            m = free_precession(m, gap, t1_ms, t2_ms, off_resonance_hz)
        m = _apply(event, m, props, phi, rf, echoes)
        t = event.start_ms + event.duration_ms
    return m


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
    """Plain float64 NumPy simulation of one voxel (T1, T2 > 0 [ms]) for exactly ``n_tr`` TRs from M = (0, 0, 1).

    Parameters
    ----------
    protocol : any kind; the timeline is :func:`sequence_events`.
    n_iso : isochromats; None: 2·etl + 2 for spin echoes (alias-free), 1 for ideally spoiled gradient echoes;
        required with ``spoiling="rf"``.
    b1 : flip-angle scale (not the inversion); off_resonance_hz : [Hz].
    pulse : ``"hard"`` or a :class:`physics.rf.PulseShape` used for every pulse (the kernel's ``"sinc"`` is
        ``physics.bloch.SINC_SPIN_ECHO`` / ``SINC_GRADIENT_ECHO``: pass that shape).
    spoiling, rf_increment_deg : as :func:`physics.bloch.bloch_run`.

    Returns
    -------
    (n_samples,) complex128 — M_x + i·M_y (isochromat mean, M0 = 1, receiver phase = RF phase) at each sample
    of TR number ``n_tr``: every echo of a spin-echo train, one sample for ``spgr`` / ``mprage``.

    Raises
    ------
    TypeError / ValueError naming the bad argument; ValueError where pulses overlap on the timeline.
    """
    n_iso = _check_inputs(t1_ms, t2_ms, protocol, n_tr, n_iso, b1, pulse, spoiling)
    increment = math.radians(check_finite_range(_OWNER, "rf_increment_deg", rf_increment_deg, -360.0, 360.0))
    duration = 0.0 if pulse == "hard" else pulse.duration_ms
    events, start, _ = sequence_events(protocol, (duration, duration), spoiling)
    dw = 2.0 * math.pi * off_resonance_hz / 1000.0  # [rad/ms]
    props = _pulse_propagators(protocol, pulse, b1, dw, t1_ms, t2_ms)
    phi = 2.0 * math.pi * np.arange(n_iso) / n_iso  # dephasing of each isochromat per crusher cycle
    m = np.zeros((n_iso, 3))
    m[:, 2] = 1.0
    echoes = np.zeros(sum(e.action == "sample" for e in events), dtype=np.complex128)
    rf = _RFSpoiling(increment)
    for _ in range(int(n_tr)):
        m = _play_tr(m, events, start, t1_ms, t2_ms, off_resonance_hz, props, phi, rf, echoes)
    return echoes
