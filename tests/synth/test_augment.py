"""Augmentations of real maps: exact flips / resampling, per-tissue re-mapping with consistent partial
volume, texture bounds, lesions, and the full pipeline on BrainWeb."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.physics.tissues import LESION_LABELS, label_lookup
from relaxomap.synth.augment import (
    AugmentConfig,
    augment_maps,
    flip_maps,
    perturb_tissues,
    random_warp,
    tissue_references,
    warp_maps,
)
from relaxomap.synth.lesions import LesionConfig, insert_lesions
from relaxomap.synth.maps import Maps
from relaxomap.synth.real import brainweb_paths, load_maps


#: AugmentConfig settings of a warp that moves nothing: no rotation, scale, shift or deformation
IDENTITY = dict(rotate_deg=(0.0, 0.0, 0.0), scale=(1.0, 1.0), aspect_sd=0.0, shift_mm=0.0, elastic_mm=0.0)


@pytest.fixture(scope="module")
def crisp() -> Maps:
    """A 40x36x12 crisp labelled volume (3 T table values, WM/GM/CSF/fat/skull blocks), 1 mm."""
    x, y, z = np.meshgrid(np.arange(40), np.arange(36), np.arange(12), indexing="ij")
    r = np.sqrt((x - 20.0) ** 2 + (y - 18.0) ** 2)
    labels = np.select([r < 5, r < 10, r < 14, r < 16, r < 17], [1, 3, 2, 7, 4], 0).astype(np.uint8)
    table = label_lookup(3.0)
    vals = table[labels]
    return Maps(vals[..., 0], vals[..., 1], vals[..., 2], labels, np.isin(labels, (1, 2, 3)), field_t=3.0,
                subject_id="crisp", source="test")


@pytest.fixture(scope="module")
def subject47(shared_data: Path) -> Maps:
    return load_maps(brainweb_paths(shared_data)["subject47"])


def _two_tissue_maps(frac: np.ndarray, field_t: float) -> Maps:
    """Voxels mixing WM (fraction f) and GM (1 - f) by the PD-weighted rate rule; label = majority."""
    t = label_lookup(field_t).astype(np.float64)
    pd = frac * t[3, 2] + (1 - frac) * t[2, 2]
    a1 = frac * t[3, 2] / t[3, 0] + (1 - frac) * t[2, 2] / t[2, 0]
    a2 = frac * t[3, 2] / t[3, 1] + (1 - frac) * t[2, 2] / t[2, 1]
    labels = np.where(frac >= 0.5, 3, 2).astype(np.uint8)
    return Maps(pd / a1, pd / a2, pd, labels, np.ones(frac.shape, bool), field_t=field_t)


def test_config_round_trip_and_validation() -> None:
    cfg = AugmentConfig(shape=(64, 64, 8), voxel_mm=(1.0, 1.0, 3.0))
    assert AugmentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match=r"flip_prob\[0\]"):
        AugmentConfig(flip_prob=(1.5, 0, 0))
    with pytest.raises(ValueError, match="scale"):
        AugmentConfig(scale=(1.2, 0.9))


def test_flips_are_exact(crisp: Maps) -> None:
    out = flip_maps(crisp, [0, 2])
    for k in ("t1_ms", "t2_ms", "pd", "labels", "mask"):
        assert_array_equal(getattr(out, k), np.flip(getattr(crisp, k), (0, 2)))
    assert_array_equal(flip_maps(out, [0, 2]).t1_ms, crisp.t1_ms)
    # a random warp that only flips x (probability 1, no rotation, scale, shift or deformation)
    rnd = random_warp(crisp, np.random.default_rng(0), AugmentConfig(flip_prob=(1.0, 0.0, 0.0), **IDENTITY))
    assert_array_equal(rnd.labels, np.flip(crisp.labels, 0))
    assert_allclose(rnd.t1_ms, np.flip(crisp.t1_ms, 0), rtol=1e-6)  # float32 round trip through the rates
    # the warp folds flips into its index map: at integer positions it is exact as well
    warped = warp_maps(crisp, np.eye(3), (0, 0, 0), flip=(True, False, False))
    assert_allclose(warped.t1_ms, np.flip(crisp.t1_ms, 0), rtol=1e-6)
    assert_array_equal(warped.labels, np.flip(crisp.labels, 0))


def test_warp_identity_shift_and_rotation(crisp: Maps) -> None:
    same = warp_maps(crisp, np.eye(3), (0, 0, 0))
    assert_allclose(same.t1_ms, crisp.t1_ms, rtol=1e-6)  # float32 division round trip of T1 = PD / (PD/T1)
    assert_array_equal(same.labels, crisp.labels)
    # output at p samples the source at p + (3, -2, 1) mm: an integer voxel shift, zero-filled
    shifted = warp_maps(crisp, np.eye(3), (3.0, -2.0, 1.0))
    assert_allclose(shifted.pd[:-3, 2:, :-1], crisp.pd[3:, :-2, 1:], rtol=1e-6)
    assert (shifted.pd[-3:] == 0).all()
    # 90° about z: output (x, y) samples source (-y, x) from the centre -> np.rot90 by -1 on a square grid
    sq = warp_maps(crisp, np.eye(3), (0, 0, 0), shape=(36, 36, 12))
    rot = warp_maps(sq, np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]), (0, 0, 0))
    assert_allclose(rot.t2_ms, np.rot90(sq.t2_ms, -1, axes=(0, 1)), rtol=1e-6)


def test_resampling_keeps_mixtures_physical(crisp: Maps) -> None:
    # Half-voxel shift: every output voxel mixes its two source neighbours 50/50 in (PD, PD/T1, PD/T2).
    out = warp_maps(crisp, np.eye(3), (0.5, 0.0, 0.0))
    pd0, pd1 = crisp.pd[:-1], crisp.pd[1:]
    a10 = np.divide(pd0, crisp.t1_ms[:-1], out=np.zeros_like(pd0), where=pd0 > 0)
    a11 = np.divide(pd1, crisp.t1_ms[1:], out=np.zeros_like(pd1), where=pd1 > 0)
    pd = 0.5 * (pd0 + pd1)
    t1 = np.divide(pd, 0.5 * (a10 + a11), out=np.zeros_like(pd), where=pd > 0)
    assert_allclose(out.pd[:-1], pd, rtol=1e-5, atol=1e-7)
    assert_allclose(out.t1_ms[:-1], t1, rtol=1e-5)


def test_perturbation_rebuilds_two_tissue_mixtures_exactly() -> None:
    # Closed form: WM/GM mixtures at fractions f, re-mapped 3 T -> 1.5 T with no jitter, must equal the
    # same mixtures of the 1.5 T table values (float32 -> rtol 1e-5).
    frac = np.linspace(0.0, 1.0, 41).reshape(41, 1, 1) * np.ones((1, 2, 2))
    t = label_lookup(3.0).astype(np.float64)
    ref = np.zeros((256, 3))
    ref[2:4] = np.stack([t[2:4, 2], t[2:4, 2] / t[2:4, 0], t[2:4, 2] / t[2:4, 1]], axis=1)  # pure WM, GM
    maps = _two_tissue_maps(frac, 3.0)
    out = perturb_tissues(maps, np.random.default_rng(0), (0.0, 0.0, 0.0), field_t=1.5, references=ref)
    want = _two_tissue_maps(frac, 1.5)
    for k in ("t1_ms", "t2_ms", "pd"):
        assert_allclose(getattr(out, k), getattr(want, k), rtol=1e-5)
    assert out.field_t == 1.5


def test_perturbation_jitters_each_tissue(subject47: Maps) -> None:
    ref = tissue_references(subject47)
    assert_allclose(ref[3], [0.70, 0.70 / 850.0, 0.70 / 75.0], rtol=1e-6)  # pure WM is the median
    changes = []
    for seed in range(3):
        out = perturb_tissues(subject47, np.random.default_rng(seed), (0.10, 0.12, 0.05), references=ref)
        ratios = {}
        for label in (1, 2, 3):
            pure = (subject47.labels == label) & (np.abs(subject47.t1_ms / [0, 4160, 1450, 850][label] - 1) < 1e-6)
            r = out.t1_ms[pure] / subject47.t1_ms[pure]
            # a pure tissue is scaled by one factor (float32: rtol 1e-5) within the truncation 1 ± 2.5·0.10
            assert_allclose(r, r[0], rtol=1e-5)
            assert 0.75 - 1e-6 <= r[0] <= 1.25 + 1e-6
            ratios[label] = r[0]
        changes.append(ratios)
        assert len({round(v, 6) for v in ratios.values()}) == 3  # tissues get different factors
        # labels and mask untouched; maps finite and non-negative
        assert_array_equal(out.labels, subject47.labels)
        assert np.isfinite(out.t1_ms).all() and (out.t1_ms >= 0).all()
    # the factor of a tissue changes between subjects (measured: WM T1 factor spread over 3 seeds)
    wm = [c[3] for c in changes]
    assert max(wm) - min(wm) > 0.01


def test_perturbation_keeps_partial_volume_consistent(subject47: Maps) -> None:
    # With no jitter and no field change the decomposition must rebuild every voxel (incl. the 22 %
    # partial-volume brain voxels) unchanged: v/fit · fit (float32 rounding: rtol 1e-5).
    out = perturb_tissues(subject47, np.random.default_rng(0), (0.0, 0.0, 0.0))
    brain = subject47.mask
    for k in ("t1_ms", "t2_ms", "pd"):
        assert_allclose(getattr(out, k)[brain], getattr(subject47, k)[brain], rtol=1e-5)
    # 3 T -> 1.5 T: a mixed voxel of WM and GM keeps its fraction, so its T1 lies between the 1.5 T WM
    # and GM values exactly as the 3 T one lay between the 3 T values (the PD-weighted R1 interpolant).
    conv = perturb_tissues(subject47, np.random.default_rng(0), (0.0, 0.0, 0.0), field_t=1.5)
    mixed = brain & np.isin(subject47.labels, (2, 3)) & (subject47.t1_ms > 851) & (subject47.t1_ms < 1449)
    assert mixed.sum() > 10_000
    r3 = subject47.pd[mixed] / subject47.t1_ms[mixed]
    f3 = (r3 - 0.80 / 1450) / (0.70 / 850 - 0.80 / 1450)  # WM share of PD/T1 at 3 T (PD-weighted fraction)
    r15 = conv.pd[mixed] / conv.t1_ms[mixed]
    f15 = (r15 - 0.80 / 1050) / (0.70 / 650 - 0.80 / 1050)
    pdw = conv.pd[mixed]
    fwm = (pdw - 0.80) / (0.70 - 0.80)  # WM volume fraction from PD (2-tissue voxels)
    two = np.abs((subject47.pd[mixed] - 0.80) / (0.70 - 0.80) - f3) < 1e-3  # voxels that are WM+GM only
    assert two.mean() > 0.5
    assert_allclose(f15[two], f3[two], atol=1e-3)
    assert_allclose(fwm[two], f3[two], atol=1e-3)


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
