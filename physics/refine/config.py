"""Settings of the test-time physics refinement: one frozen dataclass, every prior stated with its reason.

The priors are fixed from physics and physiology, not tuned on any test scenario (tracker issue 15):

- **Voxel priors** (around the network's maps, which have no uncertainty output yet): ln T1 with sd
  ``t1_log_sd`` 0.3 (the network's grey / white-matter T1 is 15–25 % off on unseen tissue values: the prior
  must not hold it), ln T2 with sd ``t2_log_sd`` 0.15 (T2 is within a few per cent), PD with a relative sd
  ``pd_rel_sd`` 0.05 — the physiological spread of water content (±5 %), the width ``relaxomap bounds``
  also uses; PD is what pins the T1 scale along the unknown-gain family, so its width is physiology's.
- **Exam priors**: per-series gains free (flat); transmit field B1 = b₀ + a polynomial of degree
  ``b1_degree`` in the voxel position (per 100 mm from the brain's centre), b₀ ~ N(1, ``b1_sd``) and each
  other coefficient ~ N(0, ``b1_slope_sd``) (3 T heads: B1 0.7–1.2); the refocusing angle of every
  spin-echo series whose headers do not give it ~ N(its nominal value, ``refocus_sd_deg``); the inversion
  efficiency κ ~ N(``kappa_mean``, ``kappa_sd``) (a well set-up inversion: 0.92–1.0); per-series receive
  fields exp(polynomial of degree ``receive_degree``, no constant: that is the gain) with coefficients
  ~ N(0, ``receive_sd``), for the series named by ``receive``: ``"off"``; ``"all"``; ``"auto"`` (default) —
  those whose headers say the series was intensity-normalised, and from the second round on those whose
  residual shows it: the smooth (same-degree polynomial) part of ln(input / re-rendered) varies over the
  brain with an sd above ``receive_detect`` (3 %: beyond the 2 % model error, a smooth pattern no voxel's
  maps can absorb).
- **Noise**: each series' σ is measured on the images (robust local differences in the brain), and a
  relative model error ``model_error`` (slice profile, partial volume, motion: effects the model omits) is
  added in quadrature, so that no series is believed beyond what the model can explain.
- ``inversion_b1``: ``"scaled"`` — the inversion is a conventional 180° pulse whose angle B1 scales
  (κ_eff = κ·(−cos π b)); ``"adiabatic"`` — B1-insensitive.

Times [ms], angles [deg].
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from relaxomap.physics.checks import check_finite_range, check_int_range, config_from_dict

__all__ = ["RefineConfig", "INVERSION_B1_MODES", "RECEIVE_MODES"]

_OWNER = "RefineConfig"
#: How B1 acts on the inversion pulse (module docstring).
INVERSION_B1_MODES: tuple[str, ...] = ("scaled", "adiabatic")
#: Which series get a receive field (module docstring).
RECEIVE_MODES: tuple[str, ...] = ("off", "auto", "all")


@dataclass(frozen=True)
class RefineConfig:
    """Priors, dictionary grid and solver settings of :func:`physics.refine.refine_exam` (module docstring).

    Grid: ``n_t1`` log-spaced T1 nodes over ``t1_range_ms``, ``n_t2`` over ``t2_range_ms``, B1 nodes every
    ``b1_step`` over ``b1_range``. Search: each voxel looks within ``window_sd`` prior sds of the network's
    ln T1 / ln T2. Exam fit: ``n_exam_voxels`` brain voxels (a fixed-seed subsample, ``seed``) jointly with
    the exam parameters, ``exam_iterations`` Levenberg–Marquardt steps; ``outer`` exam / voxel rounds.
    """

    t1_log_sd: float = 0.3
    t2_log_sd: float = 0.15
    pd_rel_sd: float = 0.05
    b1_degree: int = 1
    b1_sd: float = 0.15
    b1_slope_sd: float = 0.1
    refocus_sd_deg: float = 15.0
    kappa_mean: float = 0.96
    kappa_sd: float = 0.03
    receive: str = "auto"
    receive_degree: int = 1
    receive_sd: float = 0.1
    receive_detect: float = 0.03
    model_error: float = 0.02
    inversion_b1: str = "scaled"
    t1_range_ms: tuple[float, float] = (50.0, 8000.0)
    t2_range_ms: tuple[float, float] = (5.0, 4000.0)
    n_t1: int = 160
    n_t2: int = 140
    b1_range: tuple[float, float] = (0.5, 1.5)
    b1_step: float = 0.025
    window_sd: float = 3.0
    n_exam_voxels: int = 3000
    exam_iterations: int = 15
    outer: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name, lo, hi in (("t1_log_sd", 0.01, 3.0), ("t2_log_sd", 0.01, 3.0), ("pd_rel_sd", 0.001, 1.0),
                             ("b1_sd", 0.0, 1.0), ("b1_slope_sd", 0.0, 1.0), ("refocus_sd_deg", 0.0, 90.0),
                             ("kappa_mean", 0.5, 1.0), ("kappa_sd", 0.0, 0.5), ("receive_sd", 0.0, 1.0),
                             ("model_error", 0.0, 0.5), ("b1_step", 0.005, 0.2), ("window_sd", 1.0, 10.0),
                             ("receive_detect", 0.001, 1.0)):
            object.__setattr__(self, name, check_finite_range(_OWNER, name, getattr(self, name), lo, hi))
        if self.receive not in RECEIVE_MODES:
            raise ValueError(f"{_OWNER}.receive must be one of {list(RECEIVE_MODES)}; got {self.receive!r}")
        for name, lo, hi in (("b1_degree", 0, 2), ("receive_degree", 1, 2), ("n_t1", 16, 2048),
                             ("n_t2", 16, 2048), ("n_exam_voxels", 50, 10**6), ("exam_iterations", 0, 500),
                             ("outer", 1, 10), ("seed", 0, 2**31)):
            object.__setattr__(self, name, check_int_range(_OWNER, name, getattr(self, name), lo, hi))
        if self.inversion_b1 not in INVERSION_B1_MODES:
            raise ValueError(f"{_OWNER}.inversion_b1 must be one of {list(INVERSION_B1_MODES)}; "
                             f"got {self.inversion_b1!r}")
        for name, lo, hi in (("t1_range_ms", 1.0, 1e5), ("t2_range_ms", 0.5, 1e5), ("b1_range", 0.05, 3.0)):
            a, b = (float(v) for v in getattr(self, name))
            if not lo <= a < b <= hi:
                raise ValueError(f"{_OWNER}.{name} must be [min, max] with {lo} <= min < max <= {hi}; "
                                 f"got {[a, b]}")
            object.__setattr__(self, name, (a, b))

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RefineConfig":
        return config_from_dict(cls, d)
