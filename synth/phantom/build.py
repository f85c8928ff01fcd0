"""Making one procedural head phantom (:func:`make_phantom`): geometry, partial volume, tissue values.

The three steps (the package docstring of :mod:`relaxomap.synth.phantom` describes the anatomy):

1. **Geometry.** Canonical head coordinates of every (sub-slice) voxel centre
   (:func:`relaxomap.synth.phantom.frame.canonical_coords`); the brain as depths in them
   (:mod:`~relaxomap.synth.phantom.brain`), the layers around it and the face
   (:mod:`~relaxomap.synth.phantom.head`), deep nuclei and ventricles (:mod:`~relaxomap.synth.phantom.deep`).
2. **Partial volume.** Each tissue fills ``clip(0.5 + d / w, 0, 1)`` of a voxel at signed distance ``d`` [mm]
   from its boundary (``w`` the in-plane voxel size); fractions are nested so that they sum to ≤ 1 (the rest
   is air), and thick slices are integrated over ``z_supersample`` sub-slices.
3. **Values.** Per-subject tissue values are drawn around the :mod:`relaxomap.physics.tissues` means at
   ``field_t`` (truncated-normal relative jitter), modulated inside each tissue by two smooth random fields with
   tissue-specific weights (texture), mixed in rate space (:mod:`relaxomap.synth.rates`) and multiplied by a
   smooth global field.

Labels are the tissue with the largest fraction; ``mask`` is "brain fraction (CSF, GM, WM, deep GM) ≥ 0.5".
"""
from __future__ import annotations

import numpy as np

from relaxomap.synth.fields import smooth_noise_mm
from relaxomap.synth.lesions import insert_lesions
from relaxomap.synth.maps import Maps
from relaxomap.synth.phantom import slots
from relaxomap.synth.phantom.brain import brain_depths
from relaxomap.synth.phantom.config import PhantomConfig
from relaxomap.synth.phantom.deep import deep_structures
from relaxomap.synth.phantom.frame import CoordGrid, canonical_coords
from relaxomap.synth.phantom.head import cranial_layers, face_and_neck, sagittal_sinus
from relaxomap.synth.phantom.tissue_mix import draw_tissue_values, mix_fractions
from relaxomap.synth.rates import scaled_from_rates
from relaxomap.synth.texture import TEXTURE_CLIP, smooth_factors

__all__ = ["make_phantom"]


def _fractions(q: CoordGrid, rng: np.random.Generator, cfg: PhantomConfig,
               spacing: tuple[float, float, float]) -> np.ndarray:
    """Tissue fractions (n_slots, X, Y, Z·n_sub) float32 of the :mod:`~relaxomap.synth.phantom.slots`, summing
    to ≤ 1 per voxel."""
    w = float(max(spacing))
    lo, hi = cfg.atrophy
    atrophy = lo + (hi - lo) * rng.uniform() ** 2  # skewed towards `lo`: most subjects are not atrophic
    brain = brain_depths(q, rng, spacing, atrophy)
    frac, cavity = cranial_layers(q, rng, brain, atrophy, spacing)
    deep_structures(q, rng, atrophy, frac, w)
    face_and_neck(q, rng, brain, cavity, frac, spacing)
    sagittal_sinus(q, rng, cavity["cavity"], frac, w)
    return frac


def _texture_fields(rng: np.random.Generator, config: PhantomConfig) -> tuple[np.ndarray, np.ndarray]:
    """Within-tissue texture: six smooth fields (6, X, Y, Z) float32 clipped to ±TEXTURE_CLIP (two per T1, T2,
    PD) and their per-label weights (32, 3, 2): ``texture_sd`` times a random direction per label and channel."""
    tex = np.empty((6, *config.shape), np.float32)  # filled in place: no stacking copy (5 ms per head)
    for field in tex:
        smooth_noise_mm(rng, config.shape, config.voxel_mm, config.texture_scale_mm, out=field)
        np.clip(field, -TEXTURE_CLIP, TEXTURE_CLIP, out=field)
    angle = rng.uniform(0.0, 2.0 * np.pi, (32, 3))
    tex_w = np.asarray(config.texture_sd)[None, :, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return tex, tex_w


def make_phantom(config: PhantomConfig, rng: np.random.Generator) -> Maps:
    """One random head phantom (see the module docstring).

    Parameters
    ----------
    config : generator settings; ``config.lesions`` None gives a healthy phantom.
    rng : random generator; the phantom is a deterministic function of its state.

    Returns
    -------
    Maps on ``config.shape`` (X, Y, Z) with ``voxel_mm = config.voxel_mm``, float32 T1 [ms], T2 [ms], PD,
    uint8 labels, bool brain mask, ``field_t = config.field_t``, ``source = "phantom"`` (``subject_id`` is
    left empty for the caller).
    """
    if not isinstance(config, PhantomConfig):
        raise TypeError(f"make_phantom: config must be a PhantomConfig; got {type(config).__name__}")
    dx, dy, dz = config.voxel_mm
    n_sub = config.z_supersample or max(1, min(8, round(dz / min(dx, dy))))
    spacing = (dx, dy, dz / n_sub)
    q, _ = canonical_coords(config, rng, n_sub)
    q = CoordGrid(q)  # its column ranges are found once, for all index boxes below
    frac = _fractions(q, rng, config, spacing)
    del q
    values = draw_tissue_values(rng, slots.PHANTOM_LABELS, config.field_t, config.value_sd, config.value_trunc_sd)
    tex, tex_w = _texture_fields(rng, config)
    pd, a1, a2, labels, mask = mix_fractions(frac, slots.SLOT_LABELS, slots.SLOT_BRAIN, values, tex, tex_w, n_sub)
    del frac, tex
    k_t1, k_t2, k_pd = smooth_factors(rng, config.shape, config.voxel_mm, config.global_sd, config.global_scale_mm)
    t1, t2, pd = scaled_from_rates(pd, a1, a2, k_t1, k_t2, k_pd)
    maps = Maps(t1, t2, pd, labels, mask, voxel_mm=np.asarray(config.voxel_mm, np.float32),
                field_t=config.field_t, source="phantom")
    if config.lesions is not None:
        maps = insert_lesions(maps, rng, config.lesions)
    return maps
