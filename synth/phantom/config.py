"""Settings of the procedural phantom generator (:class:`PhantomConfig`; the defaults live only here)."""
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
from relaxomap.physics.tissues import TISSUES
from relaxomap.synth.lesions import LesionConfig
from relaxomap.synth.texture import TEXTURE_PRIOR, check_texture_prior

__all__ = ["PhantomConfig"]

_OWNER = "PhantomConfig"


@dataclass(frozen=True)
class PhantomConfig:
    """Settings of the procedural phantom generator (defaults live only here).

    Parameters
    ----------
    shape : (X, Y, Z) voxels of the slab; axial slices are ``[:, :, z]``.
    voxel_mm : (3,) voxel size [mm]; slices may be thicker than the in-plane size.
    field_t : field strength [T] (1.5 or 3) whose tissue means are used.
    value_sd : relative sd of the per-subject (T1, T2, PD) of each tissue around the literature mean.
    value_trunc_sd : per-subject draws are restricted to ±value_trunc_sd sd.
    texture_sd, texture_scale_mm, global_sd, global_scale_mm : the texture prior: (T1, T2, PD) log-amplitude and
        feature size [mm] of the smooth within-tissue variation and of one smooth field applied to all tissues
        (defaults and ranges: :class:`relaxomap.synth.texture.TexturePrior`).
    head_scale : (min, max) per-axis scale of the head relative to an average adult.
    rotate_deg : (3,) maximum |pitch|, |roll|, |yaw| [deg] (rotations about x, y, z).
    shift_mm : maximum in-plane offset of the head from the grid centre [mm].
    deform_mm, deform_scale_mm : sd [mm] and feature size [mm] of the smooth random displacement field.
    slab_center_mm : (min, max) height of the slab centre above the brain centre [mm]; −60 reaches the
        skull base and cerebellum, +65 the vertex.
    atrophy : (min, max) of the atrophy score in [0, 1] (wider sulci and SAS, larger ventricles).
    z_supersample : sub-slices per slice for partial volume along z; 0 = round(voxel_mm[2] / voxel_mm[0]).
    lesions : lesion settings, or None for a healthy phantom.
    """

    shape: tuple[int, int, int] = (224, 256, 48)
    voxel_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    field_t: float = 3.0
    value_sd: tuple[float, float, float] = (0.08, 0.10, 0.05)
    value_trunc_sd: float = 2.5
    texture_sd: tuple[float, float, float] = TEXTURE_PRIOR.texture_sd
    texture_scale_mm: float = TEXTURE_PRIOR.texture_scale_mm
    global_sd: tuple[float, float, float] = TEXTURE_PRIOR.global_sd
    global_scale_mm: float = TEXTURE_PRIOR.global_scale_mm
    head_scale: tuple[float, float] = (0.88, 1.10)
    rotate_deg: tuple[float, float, float] = (10.0, 6.0, 12.0)
    shift_mm: float = 12.0
    deform_mm: float = 3.0
    deform_scale_mm: float = 45.0
    slab_center_mm: tuple[float, float] = (-60.0, 65.0)
    atrophy: tuple[float, float] = (0.0, 1.0)
    z_supersample: int = 0
    lesions: LesionConfig | None = None

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        set_("shape", check_sequence(_OWNER, "shape", self.shape, 1, 2048, length=3, integer=True))  # (X, Y, Z)
        set_("voxel_mm", check_sequence(_OWNER, "voxel_mm", self.voxel_mm, 0.0, 20.0, length=3, lo_open=True))
        f = check_finite_range(_OWNER, "field_t", self.field_t, 0.0, 21.0, lo_open=True)
        if not any(abs(f - k) < 0.26 for k in TISSUES):
            raise ValueError(f"{_OWNER}.field_t must be one of {sorted(TISSUES)} T; got {f}")
        set_("field_t", f)
        set_("value_sd", check_sequence(_OWNER, "value_sd", self.value_sd, 0.0, 0.35, length=3))
        set_("value_trunc_sd", check_finite_range(_OWNER, "value_trunc_sd", self.value_trunc_sd, 0.5, 4.0))
        check_texture_prior(_OWNER, self)
        set_("head_scale", check_range_pair(_OWNER, "head_scale", self.head_scale, 0.5, 1.5))
        set_("rotate_deg", check_sequence(_OWNER, "rotate_deg", self.rotate_deg, 0.0, 45.0, length=3))
        set_("shift_mm", check_finite_range(_OWNER, "shift_mm", self.shift_mm, 0.0, 100.0))
        set_("deform_mm", check_finite_range(_OWNER, "deform_mm", self.deform_mm, 0.0, 20.0))
        set_("deform_scale_mm", check_finite_range(_OWNER, "deform_scale_mm", self.deform_scale_mm, 5.0, 500.0))
        set_("slab_center_mm", check_range_pair(_OWNER, "slab_center_mm", self.slab_center_mm, -120.0, 120.0))
        set_("atrophy", check_range_pair(_OWNER, "atrophy", self.atrophy, 0.0, 1.0))
        set_("z_supersample", check_int_range(_OWNER, "z_supersample", self.z_supersample, 0, 16))
        if self.lesions is not None and not isinstance(self.lesions, LesionConfig):
            raise TypeError(f"{_OWNER}.lesions must be a LesionConfig or None; got {type(self.lesions).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PhantomConfig":
        return config_from_dict(cls, d, {"lesions": LesionConfig})
