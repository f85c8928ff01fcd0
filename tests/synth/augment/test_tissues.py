"""Per-tissue re-mapping: two-tissue mixtures rebuilt exactly, per-tissue jitter, partial volume consistent."""
from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.physics.tissues import label_lookup
from relaxomap.synth.augment.tissues import perturb_tissues, tissue_references
from relaxomap.synth.maps import Maps


def _two_tissue_maps(frac: np.ndarray, field_t: float) -> Maps:
    """Voxels mixing WM (fraction f) and GM (1 - f) by the PD-weighted rate rule; label = majority."""
    t = label_lookup(field_t).astype(np.float64)
    pd = frac * t[3, 2] + (1 - frac) * t[2, 2]
    a1 = frac * t[3, 2] / t[3, 0] + (1 - frac) * t[2, 2] / t[2, 0]
    a2 = frac * t[3, 2] / t[3, 1] + (1 - frac) * t[2, 2] / t[2, 1]
    labels = np.where(frac >= 0.5, 3, 2).astype(np.uint8)
    return Maps(pd / a1, pd / a2, pd, labels, np.ones(frac.shape, bool), field_t=field_t)


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
