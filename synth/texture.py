"""Random variation of tissue values shared by every map source: the texture prior (one owner of its defaults),
smooth multiplicative fields, truncated-normal jitter.

The *texture prior* is the smooth within-tissue variation of (T1, T2, PD) — each tissue's values times
``exp(texture_sd · F)``, ``F`` a mix of two smooth random fields with per-label weights — plus one smooth
multiplicative field over all tissues, ``exp(global_sd · G)``. The procedural phantom
(:class:`relaxomap.synth.phantom.config.PhantomConfig`) and the augmentation of real maps
(:class:`relaxomap.synth.augment.config.AugmentConfig`) both apply it; its defaults and checks live here
(:class:`TexturePrior`, :func:`check_texture_prior`). Smooth fields are clipped to ±:data:`TEXTURE_CLIP`
standard deviations, which bounds every factor. Factors act on whole voxels in rate space
(:mod:`relaxomap.synth.rates`), so a mixed voxel stays a physical mixture.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from relaxomap.physics.checks import check_finite_range, check_sequence
from relaxomap.synth.fields import smooth_noise_mm

__all__ = ["TEXTURE_CLIP", "TexturePrior", "TEXTURE_PRIOR", "check_texture_prior", "smooth_factors",
           "truncated_normal"]

#: smooth random fields are clipped to ±TEXTURE_CLIP standard deviations, which bounds every factor.
TEXTURE_CLIP = 3.0


@dataclass(frozen=True)
class TexturePrior:
    """The defaults of the texture prior (module docstring); configs that apply it copy these as their defaults.

    Parameters
    ----------
    texture_sd : (T1, T2, PD) log-amplitude of the smooth within-tissue variation (≈ relative sd), each in
        [0, 0.3].
    texture_scale_mm : feature size of that variation [mm], in [1, 500].
    global_sd : (T1, T2, PD) log-amplitude of one smooth multiplicative field over all tissues, each in [0, 0.3].
    global_scale_mm : feature size of the global field [mm], in [1, 1000].
    """

    texture_sd: tuple[float, float, float] = (0.03, 0.04, 0.02)
    texture_scale_mm: float = 12.0
    global_sd: tuple[float, float, float] = (0.03, 0.03, 0.02)
    global_scale_mm: float = 70.0


#: the default texture prior, which PhantomConfig and AugmentConfig read their defaults from
TEXTURE_PRIOR = TexturePrior()


def check_texture_prior(owner: str, config: Any) -> None:
    """Check the texture-prior fields of a frozen config dataclass and store them normalised, in place.

    Parameters
    ----------
    owner : the config's class name, used in error messages (``"PhantomConfig.texture_sd[1] must be ..."``).
    config : an instance with the fields of :class:`TexturePrior` (``texture_sd``, ``texture_scale_mm``,
        ``global_sd``, ``global_scale_mm``).

    Raises
    ------
    ValueError
        naming the field, for a value outside the ranges of :class:`TexturePrior`.
    """
    checked = {
        "texture_sd": check_sequence(owner, "texture_sd", config.texture_sd, 0.0, 0.3, length=3),
        "texture_scale_mm": check_finite_range(owner, "texture_scale_mm", config.texture_scale_mm, 1.0, 500.0),
        "global_sd": check_sequence(owner, "global_sd", config.global_sd, 0.0, 0.3, length=3),
        "global_scale_mm": check_finite_range(owner, "global_scale_mm", config.global_scale_mm, 1.0, 1000.0),
    }
    for name, value in checked.items():
        object.__setattr__(config, name, value)  # frozen dataclass


def smooth_factors(
    rng: np.random.Generator,
    shape: Sequence[int],
    voxel_mm: Sequence[float],
    sd: Sequence[float],
    scale_mm: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three smooth multiplicative fields ``exp(sd_c · F_c)`` for (T1, T2, PD).

    Parameters
    ----------
    shape, voxel_mm : grid (3 axes) and voxel size [mm].
    sd : (3,) log-amplitude per channel (≈ relative sd); a channel with sd 0 gives ones.
    scale_mm : feature size [mm] of the fields.

    Returns
    -------
    (k_t1, k_t2, k_pd), each ``shape`` float32, in ``[exp(-3 sd), exp(3 sd)]`` (fields clipped at ±3 sd).
    """
    out = []
    for s in sd:
        if s == 0:
            out.append(np.ones(tuple(shape), np.float32))
            continue
        f = smooth_noise_mm(rng, shape, voxel_mm, scale_mm)  # float32, then exp(s · clip(f)) in place
        np.clip(f, -TEXTURE_CLIP, TEXTURE_CLIP, out=f)
        np.multiply(f, np.float32(s), out=f)
        out.append(np.exp(f, out=f))
    return out[0], out[1], out[2]


def truncated_normal(rng: np.random.Generator, size: int | tuple[int, ...], bound: float) -> np.ndarray:
    """Standard normal draws restricted to ``[-bound, bound]`` (redrawn, not clipped), float64."""
    if not bound > 0:
        raise ValueError(f"truncated_normal: bound must be > 0 standard deviations; got {bound}")
    z = rng.standard_normal(size)
    bad = np.abs(z) > bound
    while bad.any():
        z[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(z) > bound
    return z
