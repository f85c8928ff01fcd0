"""The full augmentation: texture and global-field bounds, and the whole pipeline on BrainWeb."""
from __future__ import annotations

import math

import numpy as np
from numpy.testing import assert_array_equal

from relaxomap.physics.tissues import LESION_LABELS
from relaxomap.synth.augment.config import AugmentConfig
from relaxomap.synth.augment.pipeline import augment_maps
from relaxomap.synth.lesions import LesionConfig, insert_lesions
from relaxomap.synth.maps import Maps
from tests.synth.augment.settings import IDENTITY


def test_texture_and_smooth_fields_bounded(crisp: Maps) -> None:
    """augment_maps with an identity warp and no tissue jitter: the maps change only by the within-tissue
    texture (bounded by exp(±3·sqrt(2)·sd), a different field mix per label) and the global field (bounded by
    exp(±3·sd))."""
    sd = (0.03, 0.04, 0.02)
    tissue = crisp.pd > 0
    flat = dict(flip_prob=(0.0, 0.0, 0.0), tissue_sd=(0.0, 0.0, 0.0), **IDENTITY)
    tex = augment_maps(crisp, np.random.default_rng(1), AugmentConfig(texture_sd=sd, texture_scale_mm=6.0,
                                                                      global_sd=(0.0, 0.0, 0.0), **flat))
    for k, s in zip(("t1_ms", "t2_ms", "pd"), sd):
        r = getattr(tex, k)[tissue] / getattr(crisp, k)[tissue]
        bound = math.exp(3 * math.sqrt(2) * s)  # |cos θ F0 + sin θ F1| <= 3·sqrt(2) with F clipped at ±3
        assert r.min() >= 1 / bound * (1 - 1e-5) and r.max() <= bound * (1 + 1e-5)  # float32 round trips
        assert r.std() > 0.1 * s  # it does vary
    assert_array_equal(tex.labels, crisp.labels)
    glob = augment_maps(crisp, np.random.default_rng(1), AugmentConfig(texture_sd=(0.0, 0.0, 0.0), global_sd=sd,
                                                                       global_scale_mm=20.0, **flat))
    for k, s in zip(("t1_ms", "t2_ms", "pd"), sd):
        r = getattr(glob, k)[tissue] / getattr(crisp, k)[tissue]
        assert r.min() >= math.exp(-3 * s) * (1 - 1e-5) and r.max() <= math.exp(3 * s) * (1 + 1e-5)
        assert r.std() > 0.05 * s


def test_full_augmentation_on_brainweb(subject47: Maps) -> None:
    cfg = AugmentConfig(shape=(192, 224, 32), voxel_mm=(1.0, 1.0, 1.5))
    lesions = LesionConfig(p_ms=1.0, ms_count=(8, 8), p_tumour=1.0, p_infarct=1.0)
    a = augment_maps(subject47, np.random.default_rng(3), cfg, lesions=lesions)
    b = augment_maps(subject47, np.random.default_rng(3), cfg, lesions=lesions)
    assert a.shape == (192, 224, 32)
    for k in ("t1_ms", "t2_ms", "pd", "labels", "mask"):
        arr = getattr(a, k)
        assert_array_equal(arr, getattr(b, k))
    for arr in (a.t1_ms, a.t2_ms, a.pd):
        assert arr.dtype == np.float32 and np.isfinite(arr).all() and (arr >= 0).all()
    assert a.labels.dtype == np.uint8
    assert set(np.unique(a.labels).tolist()) <= set(np.unique(subject47.labels).tolist()) | set(LESION_LABELS)
    assert {12, 14, 16, 17} <= set(np.unique(a.labels).tolist())
    # tissue values are no longer the table: WM median moved, and WM values spread (texture)
    wm = a.t1_ms[(a.labels == 3) & a.mask]
    assert abs(np.median(wm) / 850.0 - 1) > 1e-3 and np.std(wm) / np.mean(wm) > 0.01
    # healthy, field converted
    h = augment_maps(subject47, np.random.default_rng(4), cfg, field_t=1.5)
    assert h.field_t == 1.5 and not np.isin(h.labels, LESION_LABELS).any()
    assert 650 * 0.7 < np.median(h.t1_ms[h.labels == 3]) < 650 * 1.3
    ms_only = LesionConfig(p_ms=1.0, p_tumour=0.0, p_infarct=0.0)
    assert (insert_lesions(h, np.random.default_rng(0), ms_only).labels == 12).any()
