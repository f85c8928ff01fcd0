"""Settings of the augmentation of real maps (:class:`AugmentConfig`; the defaults live only here and, for the
texture prior, in :mod:`relaxomap.synth.texture`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from relaxomap.physics.checks import (
    check_finite_range,
    check_int_range,
    check_range_pair,
    check_sequence,
    config_from_dict,
)
from relaxomap.synth.texture import TEXTURE_PRIOR, check_texture_prior

__all__ = ["AugmentConfig"]

_OWNER = "AugmentConfig"


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings for real maps (defaults live only here).

    Parameters
    ----------
    flip_prob : (3,) probability of flipping each axis (x = left-right by default only).
    rotate_deg : (3,) maximum |rotation| about x, y, z [deg].
    scale : (min, max) isotropic scale of the anatomy; each axis then varies by ``aspect_sd``.
    aspect_sd : relative sd of the per-axis scale around the isotropic one.
    shift_mm : maximum in-plane shift [mm].
    elastic_mm : sd of the smooth displacement field [mm] (0 = none).
    elastic_scale_mm : feature size of the displacement field [mm].
    tissue_sd : relative sd of the per-subject (T1, T2, PD) factor of each tissue (truncated at 2.5 sd).
    texture_sd, texture_scale_mm, global_sd, global_scale_mm : the texture prior: (T1, T2, PD) log-amplitude and
        feature size [mm] of the smooth within-tissue variation and of one smooth multiplicative field over all
        tissues (defaults and ranges: :class:`relaxomap.synth.texture.TexturePrior`).
    shape : output grid (X, Y, Z); None keeps the source grid. A smaller z extent takes a random slab
        whose centre lies inside the brain.
    voxel_mm : output voxel size [mm]; None keeps the source voxel size.
    z_supersample : sub-slices averaged per output slice (partial volume of thick slices); 0 = auto.
    """

    flip_prob: tuple[float, float, float] = (0.5, 0.0, 0.0)
    rotate_deg: tuple[float, float, float] = (8.0, 6.0, 15.0)
    scale: tuple[float, float] = (0.88, 1.12)
    aspect_sd: float = 0.04
    shift_mm: float = 8.0
    elastic_mm: float = 2.5
    elastic_scale_mm: float = 40.0
    tissue_sd: tuple[float, float, float] = (0.10, 0.12, 0.05)
    texture_sd: tuple[float, float, float] = TEXTURE_PRIOR.texture_sd
    texture_scale_mm: float = TEXTURE_PRIOR.texture_scale_mm
    global_sd: tuple[float, float, float] = TEXTURE_PRIOR.global_sd
    global_scale_mm: float = TEXTURE_PRIOR.global_scale_mm
    shape: tuple[int, int, int] | None = None
    voxel_mm: tuple[float, float, float] | None = None
    z_supersample: int = 0

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        set_("flip_prob", check_sequence(_OWNER, "flip_prob", self.flip_prob, 0.0, 1.0, length=3))
        set_("rotate_deg", check_sequence(_OWNER, "rotate_deg", self.rotate_deg, 0.0, 180.0, length=3))
        set_("scale", check_range_pair(_OWNER, "scale", self.scale, 0.3, 3.0))
        set_("aspect_sd", check_finite_range(_OWNER, "aspect_sd", self.aspect_sd, 0.0, 0.3))
        set_("shift_mm", check_finite_range(_OWNER, "shift_mm", self.shift_mm, 0.0, 200.0))
        set_("elastic_mm", check_finite_range(_OWNER, "elastic_mm", self.elastic_mm, 0.0, 30.0))
        set_("elastic_scale_mm", check_finite_range(_OWNER, "elastic_scale_mm", self.elastic_scale_mm, 5.0, 500.0))
        set_("tissue_sd", check_sequence(_OWNER, "tissue_sd", self.tissue_sd, 0.0, 0.35, length=3))
        check_texture_prior(_OWNER, self)
        if self.shape is not None:  # (X, Y, Z)
            set_("shape", check_sequence(_OWNER, "shape", self.shape, 1, 2048, length=3, integer=True))
        if self.voxel_mm is not None:
            set_("voxel_mm", check_sequence(_OWNER, "voxel_mm", self.voxel_mm, 0.0, 20.0, length=3, lo_open=True))
        set_("z_supersample", check_int_range(_OWNER, "z_supersample", self.z_supersample, 0, 16))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AugmentConfig":
        return config_from_dict(cls, d)
