"""The NLLS baseline's slice fit: exact recovery on noise-free closed-form data with unknown gains, bounds,
errors."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics.protocol import PRESETS, pack_protocols
from relaxomap.physics.signal import signal_reference
from relaxomap.physics.tissues import tissue_values
from relaxomap.physics.voxel_fit import calibrate_gains, fit_slice
from relaxomap.physics.voxel_solver import NLLSConfig

PROTOCOLS = [PRESETS["t1w_se_3t"], PRESETS["t2w_tse_3t"], PRESETS["flair_3t"]]
GAINS = np.array([2.3, 0.41, 7.9])  # arbitrary per-contrast receiver gains, unknown to the fit


def _crisp_slice(rng: np.random.Generator, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """(3, H, W) maps [T1 ms, T2 ms, PD] with WM / GM / CSF at the 3 T table values, an off-table lesion,
    and a block of continuous random tissue; plus the (H, W) brain mask."""
    labels = rng.choice([3, 2, 1], size=(size, size), p=[0.45, 0.4, 0.15])
    maps = np.zeros((3, size, size))
    for lab in (1, 2, 3):
        tv = tissue_values(lab, 3.0)
        maps[:, labels == lab] = np.array([tv.t1_ms, tv.t2_ms, tv.pd])[:, None]
    maps[:, 2:6, 2:6] = np.array([1300.0, 120.0, 0.8])[:, None, None]  # MS-lesion-like, not an anchor
    b = size // 4
    block = (slice(size // 2, size // 2 + b), slice(2, 2 + b))  # continuous values away from the FLAIR null
    maps[0][block] = rng.uniform(400.0, 2200.0, (b, b))
    maps[1][block] = rng.uniform(40.0, 200.0, (b, b))
    maps[2][block] = rng.uniform(0.5, 1.0, (b, b))
    mask = np.ones((size, size), bool)
    return maps, mask


def _render(maps: np.ndarray, gains: np.ndarray) -> np.ndarray:
    return signal_reference(maps[0], maps[1], maps[2], PROTOCOLS) * gains[:, None, None]


def test_recovers_maps_and_gains_with_unknown_gains() -> None:
    """Noise-free float64 data, gains unknown: when WM/GM/CSF sit exactly at the tissue-table values (the
    anchor is right), the median polish returns the true gain ratios exactly (medians over voxels that agree
    exactly) and the PD scale exactly (median of table PD / fitted PD over exact voxels), so every voxel —
    anchors, the lesion and the continuous block — is recovered to the LM stopping tolerance (1e-9 in ln T1,
    ln T2, PD). rtol 1e-6 leaves three orders of magnitude for round-off and the quadratic convergence."""
    rng = np.random.default_rng(7)
    maps, mask = _crisp_slice(rng)
    res = fit_slice(_render(maps, GAINS), PROTOCOLS, mask)
    assert_allclose(res.gains, GAINS, rtol=1e-6)
    assert_allclose(res.maps, maps, rtol=1e-6)
    assert res.assigned_fraction < 1.0  # the lesion and the block were trimmed from the calibration
    assert res.fitted.all()


def test_packed_protocols_give_the_same_fit() -> None:
    """The store's packed rows (float64) and Protocol objects are the same input (identical arithmetic)."""
    rng = np.random.default_rng(3)
    maps, mask = _crisp_slice(rng, size=24)
    images = _render(maps, GAINS)
    a = fit_slice(images, PROTOCOLS, mask)
    b = fit_slice(images, pack_protocols(PROTOCOLS), mask)
    assert_allclose(b.maps, a.maps, rtol=0, atol=0)


def test_bounds_and_background_with_noise() -> None:
    """Rician noise at SNR ~ 10: every fitted value lies inside the configured bounds; background is 0."""
    rng = np.random.default_rng(5)
    maps, mask = _crisp_slice(rng, size=32)
    maps[:, :4] = 0.0  # background rows
    mask[:4] = False
    clean = _render(maps, GAINS)
    sigma = 0.1 * clean[:, mask].mean(1)[:, None, None]
    noisy = np.abs(clean + sigma * (rng.standard_normal(clean.shape) + 1j * rng.standard_normal(clean.shape)))
    noisy[:, :4] = 0.0
    cfg = NLLSConfig()
    res = fit_slice(noisy, PROTOCOLS, mask, config=cfg)
    fitted = res.maps[:, res.fitted]
    for k, (lo, hi) in enumerate((cfg.t1_bounds_ms, cfg.t2_bounds_ms, cfg.pd_bounds)):
        assert fitted[k].min() >= lo * (1 - 1e-12) and fitted[k].max() <= hi * (1 + 1e-12)
    assert not res.fitted[:4].any()
    assert (res.maps[:, :4] == 0).all()


def test_calibration_is_independent_of_the_global_scale() -> None:
    """Scaling every image (and the floor, which is in image units) by one factor scales the gains by it and
    leaves the tissue assignment unchanged — the degeneracy that only the PD anchor removes."""
    rng = np.random.default_rng(9)
    maps, mask = _crisp_slice(rng, size=24)
    images = _render(maps, GAINS)
    cfg = NLLSConfig()
    g1, t1, _ = calibrate_gains(images[:, mask], PROTOCOLS, config=cfg)
    g2, t2, _ = calibrate_gains(images[:, mask] * 3.0, PROTOCOLS, config=NLLSConfig(floor=3.0 * cfg.floor))
    assert_allclose(g2 / g1, 3.0, rtol=1e-9)
    assert np.array_equal(t1, t2)


def test_colin27_slice_recovered(shared_data) -> None:
    """A real-anatomy axial slice of colin27 (crisp 3 T table values, so the anchor is right) rendered with
    the closed form in float64 and unknown gains: T1, T2 and PD recovered in every head voxel (rtol 1e-6 as
    in the first test); non-brain tissues (fat, muscle, skin) are not anchors and are fitted freely."""
    d = np.load(shared_data / "brainweb_colin27" / "colin27_3T.npz")
    z = 85
    maps = np.stack([d[k][:, :, z].T[::-1] for k in ("t1_ms", "t2_ms", "pd")]).astype(np.float64)
    mask = d["mask"][:, :, z].T[::-1]
    res = fit_slice(_render(maps, GAINS), PROTOCOLS, mask)
    head = maps[2] > 0
    assert_allclose(res.gains, GAINS, rtol=1e-6)
    assert_allclose(res.maps[:, head], maps[:, head], rtol=1e-6)
    assert (res.maps[:, ~head] == 0).all()


def test_needs_three_present_contrasts() -> None:
    images = np.ones((3, 16, 16))
    with pytest.raises(ValueError, match="at least 3 present contrasts"):
        fit_slice(images, PROTOCOLS, present=np.array([1, 1, 0]))