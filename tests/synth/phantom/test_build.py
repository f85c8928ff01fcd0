"""make_phantom: every tissue in a mid slab, anatomical fractions, per-subject values, partial volume, texture,
field strength and thick slices."""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import ndimage

from relaxomap.physics.tissues import BRAIN_LABELS, LESION_LABELS, label_lookup
from relaxomap.synth.phantom.build import make_phantom
from relaxomap.synth.phantom.config import PhantomConfig
from relaxomap.synth.phantom.slots import PHANTOM_LABELS
from tests.synth.phantom.anatomy import FLAT, MID, interior


def test_every_tissue_present_in_a_mid_slab(mid_flat: list) -> None:
    for maps in mid_flat:
        assert maps.shape == (224, 256, 48)
        assert maps.t1_ms.dtype == np.float32 and maps.labels.dtype == np.uint8 and maps.mask.dtype == bool
        assert set(np.unique(maps.labels).tolist()) == {0, *PHANTOM_LABELS}  # 0: air around the head
        assert not set(np.unique(maps.labels)) & set(LESION_LABELS)  # healthy by default


def test_brain_tissue_fractions_are_anatomical(mid_flat: list) -> None:
    # BrainWeb colin27 / subject 47 axial slices 15-50 mm above the AC hold GM 37-50 %, WM 37-48 %, CSF
    # 12-15 % of the brain mask (computed from ../shared/data). Allowing for anatomy and atrophy between
    # subjects: GM and WM 20-60 %, CSF 3-35 %, deep GM (a few nuclei) below 10 %.
    for maps in mid_flat:
        mid = maps.shape[2] // 2
        lab = maps.labels[:, :, mid - 8: mid + 8][maps.mask[:, :, mid - 8: mid + 8]]
        frac = {k: float(np.mean(lab == k)) for k in (1, 2, 3, 13)}
        assert 0.20 <= frac[2] <= 0.60, frac
        assert 0.20 <= frac[3] <= 0.60, frac
        assert 0.03 <= frac[1] <= 0.35, frac
        assert 0.0 < frac[13] < 0.10, frac
        # mask = brain tissue: the labels inside it are brain labels (partial-volume edges aside)
        assert np.mean(np.isin(maps.labels[maps.mask], BRAIN_LABELS)) > 0.97


def test_pure_voxels_hold_per_subject_values_within_jitter_bounds(mid_flat: list) -> None:
    cfg = PhantomConfig()
    table = label_lookup(cfg.field_t)
    sd, k = np.asarray(cfg.value_sd), cfg.value_trunc_sd
    for maps in mid_flat:
        for label in (1, 2, 3, 13, 4, 5):
            inner = interior(maps.labels, label)
            for c, arr in enumerate((maps.t1_ms, maps.t2_ms, maps.pd)):
                vals, counts = np.unique(arr[inner], return_counts=True)
                mode = vals[np.argmax(counts)]
                # float32 storage: relative 1e-6
                lo, hi = table[label, c] * (1 - k * sd[c]), table[label, c] * (1 + k * sd[c])
                if label == 1 and c == 2:
                    lo = hi = 1.0  # CSF defines the PD scale
                if c == 1:
                    hi = min(hi, 0.9 * table[label, 0] * (1 + k * sd[0]))
                assert lo * (1 - 1e-6) <= mode <= hi * (1 + 1e-6), (label, c, mode, lo, hi)
                # Interior voxels are pure (see _interior); sulcal distances are first-order estimates
                # (|g| / |grad g|), so a few per cent of eroded GM voxels still hold a mixture.
                assert np.mean(np.abs(arr[inner] / mode - 1) < 1e-5) > 0.9, (label, c)


def test_partial_volume_voxels_are_physical_mixtures(mid_flat: list) -> None:
    # A mixture's 1/T1 is a PD-weighted mean of its tissues' 1/T1, so a voxel mixing only brain tissues
    # (CSF, GM, WM, deep GM: voxels whose 26 neighbours all carry brain labels) has T1 and T2 between the
    # smallest and largest value of those tissues (flat maps: one value per tissue; float32 rounding 1e-5).
    for maps in mid_flat:
        deep = ndimage.binary_erosion(np.isin(maps.labels, (1, 2, 3, 13)), np.ones((3, 3, 3), bool))
        for arr in (maps.t1_ms, maps.t2_ms):
            pure = [np.median(arr[interior(maps.labels, k)]) for k in (1, 2, 3, 13)]
            assert arr[deep].min() >= min(pure) * (1 - 1e-5)
            assert arr[deep].max() <= max(pure) * (1 + 1e-5)
        # and partial volume exists: a clear share of those voxels is none of the pure values
        pure_t1 = [np.median(maps.t1_ms[interior(maps.labels, k)]) for k in (1, 2, 3, 13)]
        mixed = deep & np.all([np.abs(maps.t1_ms / v - 1) > 1e-4 for v in pure_t1], axis=0)
        assert mixed.sum() > 0.05 * deep.sum()


def test_texture_varies_values_within_bounds() -> None:
    cfg = PhantomConfig(**MID)
    maps = make_phantom(cfg, np.random.default_rng(5))
    table = label_lookup(cfg.field_t)
    # texture exp(sd·(cos θ F0 + sin θ F1)) with F clipped to ±3: |exponent| <= 3·sqrt(2)·sd; global
    # field <= 3·sd_global; per-subject jitter <= 2.5 sd.
    for c, arr in enumerate((maps.t1_ms, maps.t2_ms)):
        span = math.exp(3 * math.sqrt(2) * cfg.texture_sd[c] + 3 * cfg.global_sd[c])
        vals = arr[interior(maps.labels, 3)]
        lo = table[3, c] * (1 - cfg.value_trunc_sd * cfg.value_sd[c]) / span
        hi = table[3, c] * (1 + cfg.value_trunc_sd * cfg.value_sd[c]) * span
        assert lo <= vals.min() and vals.max() <= hi
        assert np.std(vals) / np.mean(vals) > 0.005  # not one value per tissue any more


def test_field_strength_and_thick_slices() -> None:
    cfg = PhantomConfig(shape=(160, 192, 10), voxel_mm=(1.2, 1.2, 4.0), field_t=1.5, **MID, **FLAT)
    maps = make_phantom(cfg, np.random.default_rng(7))
    assert maps.shape == (160, 192, 10) and maps.field_t == 1.5
    assert_allclose(maps.voxel_mm, [1.2, 1.2, 4.0])
    wm = np.median(maps.t1_ms[interior(maps.labels, 3)])
    lo, hi = 650.0 * (1 - 2.5 * 0.08), 650.0 * (1 + 2.5 * 0.08)  # 1.5 T table WM T1 ± 2.5 sd
    assert lo <= wm <= hi


def test_config_type_is_checked() -> None:
    with pytest.raises(TypeError, match="make_phantom: config must be a PhantomConfig"):
        make_phantom({"shape": (8, 8, 8)}, np.random.default_rng(0))
