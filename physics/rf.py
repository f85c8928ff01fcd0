"""RF pulse shapes for the Bloch simulator: a pulse is a sampled complex B1 waveform of a given duration.

A :class:`PulseShape` holds a *relative* waveform (signed amplitude and phase per time step); the simulator
scales it to a flip angle with :meth:`PulseShape.omega1_rad_per_ms`, so that its small-tip flip — the area
``|Σ a_n e^{iφ_n}| Δt`` of the complex waveform — equals the requested angle. A waveform of constant phase
is then, on resonance and without relaxation, *exactly* a rotation by that angle (rotations about one axis
commute), whatever its shape.

``sinc_shape`` is the usual slice-selective pulse: ``sinc(tbw · t / T)`` over ``t ∈ [−T/2, T/2]`` (``tbw``
zero crossings in all, i.e. a time-bandwidth product ``tbw`` and a passband of ``tbw / T`` kHz for ``T`` in
ms), multiplied by a Hann window ``½(1 + cos(2πt/T))`` to tame the truncation ripple (Pauly et al., IEEE TMI
10:53 (1991); Bernstein, King & Zhou, *Handbook of MRI Pulse Sequences* (2004) §2.3).

RF spoiling: the quadratic phase schedule ``φ_n = φ_{n−1} + n·Φ`` (Φ = 117° by default, Zur, Wood &
Neuringer, MRM 21:251 (1991)) is in :func:`rf_spoil_phases_deg`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from relaxomap.physics.checks import check_finite_range, check_int_range

__all__ = ["PulseShape", "sinc_shape", "rect_shape", "rf_spoil_phases_deg"]

_OWNER = "PulseShape"


@dataclass(frozen=True, eq=False)
class PulseShape:
    """A sampled RF waveform, piecewise constant over ``n`` equal steps.

    Parameters
    ----------
    amplitude : (n,) float64 — relative B1 amplitude per step (signed: a sinc's negative lobes are negative);
        the overall scale is irrelevant, the simulator rescales to the requested flip.
    phase_rad : (n,) float64 [rad] — B1 phase per step, added to the pulse's own phase (CPMG: refocusing
        pulses about y). ``None`` means zeros.
    duration_ms : total duration [ms]; step ``Δt = duration_ms / n``.
    name : label for messages.

    Raises
    ------
    ValueError
        if the arrays are not 1-D of one length, hold non-finite values, or have zero small-tip area.
    """

    amplitude: np.ndarray
    phase_rad: np.ndarray | None
    duration_ms: float
    name: str = "shaped"

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        amp = np.asarray(self.amplitude, dtype=np.float64)
        if amp.ndim != 1 or amp.size < 1:
            raise ValueError(f"{_OWNER}.amplitude must be a non-empty 1-D array; got shape {amp.shape}")
        phase = np.zeros_like(amp) if self.phase_rad is None else np.asarray(self.phase_rad, dtype=np.float64)
        if phase.shape != amp.shape:
            raise ValueError(f"{_OWNER}.phase_rad must have the shape of amplitude {amp.shape}; got {phase.shape}")
        if not (np.isfinite(amp).all() and np.isfinite(phase).all()):
            raise ValueError(f"{_OWNER}.amplitude and phase_rad must be finite")
        set_("duration_ms", check_finite_range(_OWNER, "duration_ms", self.duration_ms, 0.0, 1000.0, lo_open=True))
        set_("amplitude", amp)
        set_("phase_rad", phase)
        if abs(self.complex_area()) <= 1e-12 * float(np.abs(amp).sum()) * self.dt_ms:
            raise ValueError(f"{_OWNER} {self.name!r} has zero small-tip area |Σ a·e^(iφ)|·Δt; "
                             "cannot scale it to a flip angle")

    @property
    def n_steps(self) -> int:
        return int(self.amplitude.size)

    @property
    def dt_ms(self) -> float:
        """Step length [ms]."""
        return self.duration_ms / self.n_steps

    def complex_area(self) -> complex:
        """``Σ a_n e^{iφ_n} Δt`` [ms · amplitude units]."""
        return complex(np.sum(self.amplitude * np.exp(1j * self.phase_rad)) * self.dt_ms)

    def omega1_rad_per_ms(self, flip_deg: float) -> np.ndarray:
        """Signed nutation rate ω1 = γB1 per step [rad/ms], (n,) float64, giving a small-tip flip ``flip_deg``.

        The small-tip (linear) flip of a waveform is ``|Σ ω1_n e^{iφ_n}| Δt``; the amplitude is scaled so it
        equals ``flip_deg`` (in rad).
        """
        flip = math.radians(check_finite_range(_OWNER, "flip_deg", flip_deg, 0.0, 360.0))
        return self.amplitude * (flip / abs(self.complex_area()))


def sinc_shape(tbw: float = 4.0, duration_ms: float = 2.0, n_steps: int = 128, *, window: str = "hann") -> PulseShape:
    """Windowed sinc pulse ``sinc(tbw·t/T) · w(t)``, ``t`` at the step centres in ``[−T/2, T/2]``.

    Parameters
    ----------
    tbw : time-bandwidth product (number of zero crossings over the pulse, ≥ 2).
    duration_ms : pulse length T [ms]. Its passband is ``tbw / T`` kHz wide.
    n_steps : number of piecewise-constant steps.
    window : ``"hann"`` (½(1 + cos 2πt/T)) or ``"none"``.
    """
    tbw = check_finite_range("sinc_shape", "tbw", tbw, 2.0, 64.0)
    duration_ms = check_finite_range("sinc_shape", "duration_ms", duration_ms, 0.0, 1000.0, lo_open=True)
    n = check_int_range("sinc_shape", "n_steps", n_steps, 8, 100_000)
    t = (np.arange(n) + 0.5) / n - 0.5  # (n,) step centres in units of T, in (-1/2, 1/2)
    amp = np.sinc(tbw * t)  # numpy sinc is sin(pi x)/(pi x): zero crossings at t = k/tbw
    if window == "hann":
        amp = amp * 0.5 * (1.0 + np.cos(2.0 * np.pi * t))
    elif window != "none":
        raise ValueError(f"sinc_shape: window must be 'hann' or 'none'; got {window!r}")
    return PulseShape(amp, None, duration_ms, name=f"sinc(tbw={tbw:g}, {duration_ms:g} ms, {window})")


def rect_shape(duration_ms: float = 1.0, n_steps: int = 32) -> PulseShape:
    """Constant-amplitude (rectangular) pulse of ``duration_ms`` [ms] in ``n_steps`` steps."""
    n = check_int_range("rect_shape", "n_steps", n_steps, 1, 100_000)
    return PulseShape(np.ones(n), None, duration_ms, name=f"rect({duration_ms:g} ms)")


def rf_spoil_phases_deg(n_pulses: int, increment_deg: float = 117.0) -> np.ndarray:
    """Quadratic RF-spoiling phases ``φ_n = φ_{n−1} + n·Φ`` (φ_0 = 0), i.e. ``φ_n = Φ·n(n+1)/2``, mod 360.

    Returns
    -------
    (n_pulses,) float64 [deg] in [0, 360).
    """
    n = np.arange(check_int_range("rf_spoil_phases_deg", "n_pulses", n_pulses, 0, 10**9), dtype=np.float64)
    return np.mod(increment_deg * n * (n + 1.0) / 2.0, 360.0)
