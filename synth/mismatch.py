"""Exams whose physics differs from what prediction assumes: the mismatch suite's renderer (issue 14).

``relaxomap predict`` (and the closed-form physics loss) assume what the sidecars say: refocusing angles as
given (often not given at all), a perfect inversion, a uniform transmit field, a rectangular slice, one gain
per series, series on one grid. Real exams break each of these. :func:`render_mismatched` renders an exam
from ground-truth maps with any subset of these factors switched on, each drawn from a stated range:

- ``refocus_deg``: the refocusing angle of every spin-echo series, uniform in the range (not in the headers).
- ``b1``: a smooth transmit field scaling every pulse (excitation, refocusing *and* the inversion), its
  values spanning the range over the head (a smooth random field, rescaled to the range's ends).
- ``inversion_efficiency``: κ of every inversion pulse, uniform in the range.
- ``slice_profile``: a 2-D slice is not a slab of uniform flip: the signal is the mean over the slice
  thickness of the signals at the local flip scale p(z) of a Hann-windowed sinc pulse (time-bandwidth 4,
  small-tip profile), at 9 positions across ±1 passband width, for the excitation and refocusing pulses.
  The inversion pulse is not scaled by p(z): vendors invert a slab wider than the slice (or the whole head).
- ``receive``: an independent smooth receive field per series (vendor prescan normalisation), 1 + a·n(x)
  with n a smooth unit-variance field clipped to ±2 (a: the amplitude).
- ``misregistration_mm``: each series but the first shifted rigidly by this distance in a random direction
  (trilinear resampling; the volume's edge values continue beyond it, as a scanner's images cover the head
  beyond a slab: zeros there would fake a missing contrast in the edge slices).

A pulse of nominal flip θ at transmit scale b flips by b·θ. The inversion pulse, a 180° pulse at scale b,
leaves Mz → −κ·(−cos(π b))·Mz: the effective inversion efficiency is κ·(−cos(π b)) (1 at b = 1, κ = 1).

The signals come from a dictionary over (B1 scale, T1, T2) per series, computed with the vectorised NumPy
EPG of :mod:`relaxomap.physics.epg_numpy` (spin-echo kinds: not the Numba kernel that the EPG forward model
and the refinement use; it is held to the independent float64 :mod:`relaxomap.physics.epg_reference` by the
tests) and the float64 closed form for gradient-echo kinds, then interpolated trilinearly per voxel in
(B1, ln T1, ln T2). Maps: (X, Y, Z) [ms], PD relative to CSF = 1; images are PD-scaled magnitudes, M0 = 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from relaxomap.physics.checks import check_finite_range, check_range_pair
from relaxomap.physics.protocol import SPIN_ECHO_KINDS, Protocol
from relaxomap.synth.fields import smooth_noise_mm
from relaxomap.synth.maps import Maps

__all__ = ["FACTORS", "MismatchConfig", "MismatchDraw", "slice_profile", "effective_inversion", "sample_mismatch",
           "signal_dictionary", "render_mismatched"]

#: The mismatch factors, in the order of the sensitivity tables.
FACTORS: tuple[str, ...] = ("refocus_deg", "b1", "inversion_efficiency", "slice_profile", "receive",
                            "misregistration_mm")
_OWNER = "MismatchConfig"
_T1_GRID_MS = np.exp(np.linspace(math.log(50.0), math.log(8000.0), 64))  # [ms]
_T2_GRID_MS = np.exp(np.linspace(math.log(5.0), math.log(4000.0), 64))  # [ms]
_B1_STEP = 0.025  # dictionary spacing of the transmit scale


@dataclass(frozen=True)
class MismatchConfig:
    """Which physics differs from the sidecars, and by how much (``None`` / ``False`` / 0: as assumed).

    Defaults are the issue's ranges, all factors on: refocusing 120–160°, B1 0.75–1.15, κ 0.92–0.98, a
    sinc slice profile, receive fields of amplitude 0.15, 1 mm misregistration.
    """

    refocus_deg: tuple[float, float] | None = (120.0, 160.0)
    b1: tuple[float, float] | None = (0.75, 1.15)
    inversion_efficiency: tuple[float, float] | None = (0.92, 0.98)
    slice_profile: bool = True
    receive: float = 0.15
    misregistration_mm: float = 1.0
    b1_scale_mm: float = 120.0  # feature size of the smooth transmit field [mm]
    receive_scale_mm: float = 80.0  # feature size of the receive fields [mm]

    def __post_init__(self) -> None:
        for name, lo, hi in (("refocus_deg", 60.0, 180.0), ("b1", 0.3, 1.5), ("inversion_efficiency", 0.5, 1.0)):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, check_range_pair(_OWNER, name, value, lo, hi))
        if not isinstance(self.slice_profile, bool):
            raise TypeError(f"{_OWNER}.slice_profile must be True or False; got {self.slice_profile!r}")
        check_finite_range(_OWNER, "receive", self.receive, 0.0, 0.45)
        check_finite_range(_OWNER, "misregistration_mm", self.misregistration_mm, 0.0, 10.0)
        check_finite_range(_OWNER, "b1_scale_mm", self.b1_scale_mm, 10.0, 1000.0)
        check_finite_range(_OWNER, "receive_scale_mm", self.receive_scale_mm, 10.0, 1000.0)

    @classmethod
    def none(cls) -> "MismatchConfig":
        """Every factor off: the physics prediction assumes (for the reference row of a sensitivity table)."""
        return cls(refocus_deg=None, b1=None, inversion_efficiency=None, slice_profile=False, receive=0.0,
                   misregistration_mm=0.0)

    @classmethod
    def only(cls, factor: str) -> "MismatchConfig":
        """One factor at its default range, every other off."""
        if factor not in FACTORS:
            raise ValueError(f"{_OWNER}.only: factor must be one of {list(FACTORS)}; got {factor!r}")
        return replace(cls.none(), **{factor: getattr(cls(), factor)})


@dataclass(frozen=True)
class MismatchDraw:
    """The drawn factors of one exam (what the renderer used; ``None`` where a factor was off).

    refocus_deg, inversion_efficiency : per series; b1 : (X, Y, Z) float32 transmit scale or None;
    receive : (C, X, Y, Z) float32 or None; shift_mm : (C, 3) [mm].
    """

    refocus_deg: tuple[float | None, ...]
    inversion_efficiency: tuple[float | None, ...]
    b1: np.ndarray | None
    receive: np.ndarray | None
    shift_mm: np.ndarray
    slice_profile: bool

    def summary(self) -> dict[str, Any]:
        """Plain values for provenance: angles, efficiencies, B1 / receive ranges, shifts [mm]."""
        rng = (lambda a: None if a is None else [float(a.min()), float(a.max())])  # noqa: E731
        return {"refocus_deg": list(self.refocus_deg), "inversion_efficiency": list(self.inversion_efficiency),
                "b1_range": rng(self.b1), "receive_range": rng(self.receive),
                "shift_mm": self.shift_mm.tolist(), "slice_profile": self.slice_profile}


def slice_profile(n: int = 9, tbw: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Flip scales p(z) and weights at ``n`` positions across ±1 passband width of a Hann-windowed sinc.

    Small-tip approximation: the profile is the Fourier transform of the pulse, normalised to 1 at the
    centre; positions are equally spaced, so the weights are equal (uniform spin density through the slice).

    Returns
    -------
    scales : (n,) float64 in [0, 1]; weights : (n,) float64 summing to 1.
    """
    t = (np.arange(512) + 0.5) / 512 - 0.5  # pulse time in units of its duration
    pulse = np.sinc(tbw * t) * 0.5 * (1.0 + np.cos(2.0 * np.pi * t))
    f = np.linspace(-1.0, 1.0, n) * tbw  # frequency offsets [1 / duration]: the passband is ±tbw / 2
    profile = np.abs(np.exp(-2j * np.pi * np.outer(f, t)) @ pulse)
    return profile / profile.max(), np.full(n, 1.0 / n)


def effective_inversion(kappa: float, b1: float) -> float:
    """κ of an inversion pulse of nominal 180° at transmit scale ``b1``: κ · (−cos(π b1)), kept in [0, 1]
    (b1 in about 0.5–1.5, where a scaled inversion still at least saturates)."""
    return float(np.clip(kappa * -math.cos(math.pi * b1), 0.0, 1.0))


def _series_signal(t1_ms: np.ndarray, t2_ms: np.ndarray, protocol: Protocol, b1: float, b1_inversion: float
                   ) -> np.ndarray:
    """(n,) float64 PD = 1 signal at TE: excitation / refocusing at transmit scale ``b1``, the inversion at
    ``b1_inversion``; signed for spin-echo kinds (the magnitude is taken after interpolation)."""
    from relaxomap.physics.signal import signal_reference

    if protocol.kind in ("ir_tse", "mprage"):
        protocol = protocol.with_(inversion_efficiency=effective_inversion(protocol.inversion_efficiency,
                                                                           b1_inversion))
    if protocol.kind in SPIN_ECHO_KINDS:
        from relaxomap.physics.epg_numpy import epg_numpy

        train = epg_numpy(t1_ms, t2_ms, protocol, b1=b1, signed=True)  # (n, etl), smooth through a null
        k = int(round(protocol.te_ms / protocol.esp_ms)) if protocol.kind != "se" else 1
        return train[:, k - 1].astype(np.float64)
    scaled = protocol.with_(flip_deg=min(180.0, protocol.flip_deg * b1))
    return signal_reference(t1_ms, t2_ms, np.ones_like(t1_ms), scaled)[0]


def signal_dictionary(protocol: Protocol, b1_grid: np.ndarray, profile: bool) -> np.ndarray:
    """(n_b1, n_T1, n_T2) float64 signals (PD = 1) on the module's T1 × T2 grid, per transmit scale; signed
    for spin-echo kinds, so that interpolation is smooth through an inversion null (take the magnitude after).

    With ``profile`` each entry is the mean over :func:`slice_profile` of the signals with excitation and
    refocusing at b1 · p(z) (the inversion at b1).
    """
    t1, t2 = np.meshgrid(_T1_GRID_MS, _T2_GRID_MS, indexing="ij")
    t1, t2 = t1.ravel(), t2.ravel()
    scales, weights = slice_profile() if profile else (np.ones(1), np.ones(1))
    out = np.zeros((len(b1_grid), t1.size))
    for i, b in enumerate(b1_grid):
        for s, w in zip(scales, weights):
            out[i] += w * _series_signal(t1, t2, protocol, max(float(b * s), 1e-3), float(b))
    return out.reshape(len(b1_grid), len(_T1_GRID_MS), len(_T2_GRID_MS))


def _interpolate(table: np.ndarray, b1_grid: np.ndarray, b1: np.ndarray, t1_ms: np.ndarray, t2_ms: np.ndarray
                 ) -> np.ndarray:
    """Trilinear interpolation of ``table`` at (b1, ln T1, ln T2) per voxel (clamped to the grid)."""
    from scipy.interpolate import RegularGridInterpolator

    grid = (b1_grid, np.log(_T1_GRID_MS), np.log(_T2_GRID_MS))
    pts = np.column_stack([np.clip(b1, b1_grid[0], b1_grid[-1]),
                           np.log(np.clip(t1_ms, _T1_GRID_MS[0], _T1_GRID_MS[-1])),
                           np.log(np.clip(t2_ms, _T2_GRID_MS[0], _T2_GRID_MS[-1]))])
    if len(b1_grid) == 1:  # one transmit scale: bilinear in (ln T1, ln T2)
        return RegularGridInterpolator(grid[1:], table[0])(pts[:, 1:])
    return RegularGridInterpolator(grid, table)(pts)


def _smooth_field(rng: np.random.Generator, maps: Maps, scale_mm: float) -> np.ndarray:
    return smooth_noise_mm(rng, maps.t1_ms.shape, maps.voxel_mm, scale_mm)


def sample_mismatch(rng: np.random.Generator, config: MismatchConfig, protocols: Sequence[Protocol], maps: Maps
                    ) -> MismatchDraw:
    """Draw every enabled factor for one exam (series in ``protocols`` order) on the grid of ``maps``."""
    n = len(protocols)
    refocus = tuple(float(rng.uniform(*config.refocus_deg)) if config.refocus_deg and p.kind in SPIN_ECHO_KINDS
                    else None for p in protocols)
    kappa = tuple(float(rng.uniform(*config.inversion_efficiency))
                  if config.inversion_efficiency and p.kind in ("ir_tse", "mprage") else None for p in protocols)
    b1 = None
    if config.b1 is not None:
        f = _smooth_field(rng, maps, config.b1_scale_mm)
        lo, hi = config.b1
        b1 = (lo + (f - f.min()) / max(float(f.max() - f.min()), 1e-6) * (hi - lo)).astype(np.float32)
    receive = None
    if config.receive > 0:
        receive = np.stack([1.0 + config.receive * np.clip(_smooth_field(rng, maps, config.receive_scale_mm), -2, 2)
                            for _ in range(n)]).astype(np.float32)
    shift = np.zeros((n, 3))
    if config.misregistration_mm > 0:
        d = rng.standard_normal((n - 1, 3))
        shift[1:] = config.misregistration_mm * d / np.linalg.norm(d, axis=1, keepdims=True)
    return MismatchDraw(refocus, kappa, b1, receive, shift, bool(config.slice_profile))


def _shifted(image: np.ndarray, shift_mm: np.ndarray, voxel_mm: np.ndarray) -> np.ndarray:
    from scipy.ndimage import shift as nd_shift

    if not np.any(shift_mm):
        return image
    return nd_shift(image, shift_mm / voxel_mm, order=1, mode="nearest").astype(np.float32)


def render_mismatched(maps: Maps, protocols: Sequence[Protocol], config: MismatchConfig,
                      rng: np.random.Generator) -> tuple[np.ndarray, MismatchDraw]:
    """Render one exam of ``maps`` (3-D) under ``protocols`` with the factors of ``config`` (module docstring).

    Returns
    -------
    images : (C, X, Y, Z) float32 noise-free magnitudes (PD-scaled, M0 = 1).
    draw : the factors used.
    """
    if maps.t1_ms.ndim != 3:
        raise ValueError(f"render_mismatched: maps must be 3-D (X, Y, Z); got shape {maps.t1_ms.shape}")
    draw = sample_mismatch(rng, config, protocols, maps)
    brain = maps.pd > 0
    t1, t2, pd = maps.t1_ms[brain], maps.t2_ms[brain], maps.pd[brain]
    if draw.b1 is None:
        b1_grid, b1 = np.ones(1), np.ones(t1.size)
    else:
        lo, hi = float(draw.b1.min()), float(draw.b1.max())
        b1_grid = np.arange(math.floor(lo / _B1_STEP) * _B1_STEP, hi + 1.5 * _B1_STEP, _B1_STEP)
        b1 = draw.b1[brain]
    images = np.zeros((len(protocols),) + maps.t1_ms.shape, np.float32)
    for c, p in enumerate(protocols):
        actual = p
        if draw.refocus_deg[c] is not None:
            actual = actual.with_(refocus_deg=draw.refocus_deg[c])
        if draw.inversion_efficiency[c] is not None:
            actual = actual.with_(inversion_efficiency=draw.inversion_efficiency[c])
        table = signal_dictionary(actual, b1_grid, draw.slice_profile)
        images[c][brain] = pd * np.abs(_interpolate(table, b1_grid, b1, t1, t2))
        if draw.receive is not None:
            images[c] *= draw.receive[c]
        images[c] = _shifted(images[c], draw.shift_mm[c], np.asarray(maps.voxel_mm, np.float64))
    return images, draw
