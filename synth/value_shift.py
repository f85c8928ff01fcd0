"""Tissue values that differ from the tables: the evaluation's value-shift scenarios (issue 14).

A network trained on tissue values near the tables can score well by recognising tissues and writing their
table values. To test whether it *measures*, the evaluation renders held-out anatomies whose tissue values
were moved away from the tables, per subject and per tissue, by factors drawn from stated ranges:

- T1 and T2 of every brain tissue (GM, WM, deep GM and the lesion classes): uniform factors in ``t1`` /
  ``t2`` (default 0.75–1.25, i.e. up to ±25 %);
- CSF, which is water: T1 and T2 within ``csf`` (default 0.9–1.1; water at body temperature is T1 ≈ 3.6–4.4 s);
- PD of every brain tissue but CSF within its physiological spread ``pd`` (default 0.95–1.05: water content);
  CSF PD stays 1 (it defines the PD scale);
- optionally an oedema-like shift: the PD of GM, WM and deep GM multiplied by ``parenchyma_pd`` (e.g.
  1.10–1.15, beyond the physiological spread), to be judged against what ``relaxomap bounds`` allows.

The factors act in rate space with partial-volume voxels re-mixed consistently
(:func:`relaxomap.synth.augment.tissues.remap_rates`); labels, mask and anatomy are unchanged. Every draw
uses the generator it is given, so a scenario is a deterministic function of its seed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from relaxomap.physics.checks import check_range_pair, config_from_dict
from relaxomap.physics.tissues import BRAIN_LABELS
from relaxomap.synth.augment.tissues import remap_rates, tissue_references
from relaxomap.synth.maps import Maps
from relaxomap.synth.rates import to_rates

__all__ = ["ValueShiftConfig", "value_factors", "shift_values"]

_OWNER = "ValueShiftConfig"
_CSF = 1
_PARENCHYMA = (2, 3, 13)  # GM, WM, deep GM


@dataclass(frozen=True)
class ValueShiftConfig:
    """Ranges of the per-tissue factors (module docstring); ``parenchyma_pd=None``: no oedema-like shift."""

    t1: tuple[float, float] = (0.75, 1.25)
    t2: tuple[float, float] = (0.75, 1.25)
    csf: tuple[float, float] = (0.9, 1.1)
    pd: tuple[float, float] = (0.95, 1.05)
    parenchyma_pd: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("t1", "t2", "csf", "pd"):
            object.__setattr__(self, name, check_range_pair(_OWNER, name, getattr(self, name), 0.2, 5.0))
        if self.parenchyma_pd is not None:
            object.__setattr__(self, "parenchyma_pd",
                               check_range_pair(_OWNER, "parenchyma_pd", self.parenchyma_pd, 0.5, 2.0))

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if v is not None else None) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ValueShiftConfig":
        return config_from_dict(cls, d)


def value_factors(rng: np.random.Generator, config: ValueShiftConfig) -> np.ndarray:
    """(256, 3) factors of (T1, T2, PD) per label: ones except the brain labels (module docstring).

    Labels are drawn in increasing order, three uniforms each (T1, T2, PD), then the parenchyma PD factor.
    """
    k = np.ones((256, 3))
    for lab in sorted(BRAIN_LABELS):
        u = rng.random(3)
        lo_hi = [config.csf, config.csf] if lab == _CSF else [config.t1, config.t2]
        k[lab, 0] = lo_hi[0][0] + u[0] * (lo_hi[0][1] - lo_hi[0][0])
        k[lab, 1] = lo_hi[1][0] + u[1] * (lo_hi[1][1] - lo_hi[1][0])
        k[lab, 2] = 1.0 if lab == _CSF else config.pd[0] + u[2] * (config.pd[1] - config.pd[0])
    if config.parenchyma_pd is not None:
        lo, hi = config.parenchyma_pd
        k[list(_PARENCHYMA), 2] *= lo + rng.random() * (hi - lo)
    return k


def shift_values(maps: Maps, rng: np.random.Generator, config: ValueShiftConfig) -> tuple[Maps, np.ndarray]:
    """``maps`` with every brain tissue's values moved by :func:`value_factors`; returns (maps, factors)."""
    k = value_factors(rng, config)
    ref = tissue_references(maps)
    pd, a1, a2 = to_rates(maps.t1_ms, maps.t2_ms, maps.pd)
    out = remap_rates(pd, a1, a2, maps.labels, k, ref)
    return maps.with_rates(*out), k
