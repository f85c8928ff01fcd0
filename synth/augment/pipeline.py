"""The full augmentation of one subject's maps (:func:`augment_maps`): warp, per-tissue values, texture, global
field, lesions."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from relaxomap.synth.augment.config import AugmentConfig
from relaxomap.synth.augment.tissues import perturb_rates, tissue_references
from relaxomap.synth.augment.warp import random_warp
from relaxomap.synth.fields import smooth_noise_mm
from relaxomap.synth.lesions import LesionConfig, insert_lesions
from relaxomap.synth.maps import Maps
from relaxomap.synth.rates import scale_rates, to_rates
from relaxomap.synth.texture import TEXTURE_CLIP, smooth_factors

__all__ = ["augment_maps"]

_N_LAB = 256


def _texture_factors(rng: np.random.Generator, labels: np.ndarray, voxel_mm: np.ndarray, sd: Sequence[float],
                     scale_mm: float) -> list[np.ndarray]:
    """Per-voxel texture factors (k_t1, k_t2, k_pd) on ``labels``' grid (voxel size ``voxel_mm`` [mm]):
    ``exp(w0 · F0 + w1 · F1)`` of two smooth fields per channel (features ``scale_mm`` across, clipped to
    ±TEXTURE_CLIP) mixed with per-label weights of norm ``sd[c]``; 1 for a channel with sd 0."""
    shape = labels.shape
    angle = rng.uniform(0.0, 2.0 * np.pi, (_N_LAB, 3))
    out = []
    for c in range(3):
        if sd[c] == 0:
            out.append(np.float32(1.0))
            continue
        f0, f1 = (np.clip(smooth_noise_mm(rng, shape, voxel_mm, scale_mm), -TEXTURE_CLIP, TEXTURE_CLIP)
                  for _ in range(2))
        w0 = (sd[c] * np.cos(angle[:, c])).astype(np.float32)[labels]
        w1 = (sd[c] * np.sin(angle[:, c])).astype(np.float32)[labels]
        out.append(np.exp(w0 * f0 + w1 * f1))
    return out


def augment_maps(maps: Maps, rng: np.random.Generator, config: AugmentConfig, *, field_t: float | None = None,
                 lesions: LesionConfig | None = None, references: np.ndarray | None = None) -> Maps:
    """The full augmentation: warp (flip, rotate, scale, slab, elastic), per-tissue values, texture, global
    field, then lesions (``None``: none).

    Parameters
    ----------
    field_t : target field strength [T] (None keeps the maps'); the per-tissue re-mapping converts.
    references : :func:`tissue_references` of ``maps`` if already known (they depend only on ``maps``).
    """
    ref = tissue_references(maps) if references is None else np.asarray(references, np.float64)
    warped = random_warp(maps, rng, config)
    dst = maps.field_t if field_t is None else float(field_t)
    rates = to_rates(warped.t1_ms, warped.t2_ms, warped.pd)
    rates = perturb_rates(*rates, warped.labels, rng, config.tissue_sd, maps.field_t, dst, ref)
    rates = scale_rates(*rates, *_texture_factors(rng, warped.labels, warped.voxel_mm, config.texture_sd,
                                                  config.texture_scale_mm))
    rates = scale_rates(*rates, *smooth_factors(rng, warped.shape, warped.voxel_mm, config.global_sd,
                                                config.global_scale_mm))
    out = warped.with_rates(*rates, labels=warped.labels, mask=warped.mask, field_t=dst)
    if lesions is not None:
        out = insert_lesions(out, rng, lesions)
    return out
