"""Map metrics against closed forms and scikit-image (an independent implementation)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics.tissues import label_lookup
from relaxomap.train.evaluation.metrics import (
    MetricAccumulator,
    flatten_metrics,
    mae,
    mean_percentage_error,
    metrics_over,
    psnr,
    slice_metrics,
    ssim,
    ssim_map,
)

skm = pytest.importorskip("skimage.metrics")


def _phantom(seed: int = 0, size: int = 48) -> dict[str, np.ndarray]:
    """A disc-shaped 'brain' of WM/GM/CSF/deep GM/lesion labels with 3 T tissue values, and a noisy copy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2)
    labels = np.zeros((size, size), np.int64)
    labels[r < size * 0.42] = 1  # CSF rim
    labels[r < size * 0.38] = 2  # GM
    labels[r < size * 0.28] = 3  # WM
    labels[(r < size * 0.10)] = 13  # deep GM
    labels[(np.abs(yy - size * 0.3) < 2) & (np.abs(xx - size * 0.5) < 3)] = 12  # MS lesion
    true = np.moveaxis(label_lookup(3.0)[labels], -1, 0).astype(np.float64)  # (3, H, W)
    true *= rng.uniform(0.9, 1.1, true.shape)  # within-tissue variation
    true[:, labels == 0] = 0.0
    noise = rng.normal(0.0, 1.0, true.shape) * np.array([40.0, 8.0, 0.03])[:, None, None]
    pred = np.clip(true + noise, 0.0, None)
    return {"pred": pred, "true": true, "mask": labels > 0, "labels": labels}


def test_psnr_matches_formula_and_skimage() -> None:
    ph = _phantom()
    p, t, m = ph["pred"][0], ph["true"][0], ph["mask"]
    rng_ms = t[m].max()
    expected = 10 * np.log10(rng_ms**2 / np.mean((p[m] - t[m]) ** 2))  # the definition, written out
    # identical arithmetic in float64: agreement to 1e-10 dB is rounding only
    assert_allclose(psnr(p, t, m), expected, rtol=0, atol=1e-10)
    assert_allclose(psnr(p, t, m), skm.peak_signal_noise_ratio(t[m], p[m], data_range=rng_ms), rtol=0, atol=1e-10)
    assert_allclose(psnr(p, t), skm.peak_signal_noise_ratio(t, p, data_range=t.max()), rtol=0, atol=1e-10)
    assert psnr(t, t, m) == math.inf
    assert math.isnan(psnr(p, t, np.zeros_like(m)))


@pytest.mark.parametrize("channel", [0, 1, 2])
def test_ssim_matches_skimage(channel: int) -> None:
    ph = _phantom(seed=channel)
    p, t, m = ph["pred"][channel], ph["true"][channel], ph["mask"]
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    # Same float64 Gaussian filters (scikit-image: gaussian_weights, sigma 1.5, population covariance): agree to
    # float64 rounding of the filtered sums.
    ref = skm.structural_similarity(t, p, data_range=t.max(), **kw)
    assert_allclose(ssim(p, t), ref, rtol=0, atol=1e-12)
    # masked: skimage's full SSIM map of the zeroed-outside images, averaged over the mask
    rng_m = t[m].max()
    _, full = skm.structural_similarity(np.where(m, t, 0), np.where(m, p, 0), data_range=rng_m, full=True, **kw)
    assert_allclose(ssim(p, t, m), full[m].mean(), rtol=0, atol=1e-12)
    assert_allclose(ssim_map(p, t, rng_m), skm.structural_similarity(t, p, data_range=rng_m, full=True, **kw)[1],
                    rtol=0, atol=1e-10)
    assert ssim(p, t, m) < 1.0
    assert_allclose(ssim(t, t, m), 1.0, rtol=0, atol=1e-12)  # identical images: SSIM is exactly 1


def test_ssim_map_on_a_stack_equals_per_slice() -> None:
    ph = _phantom(3)
    stack = ssim_map(ph["pred"], ph["true"], 2.0)
    for c in range(3):
        assert_allclose(stack[c], ssim_map(ph["pred"][c], ph["true"][c], 2.0), rtol=0, atol=1e-13)


def test_mae_and_percentage_error_closed_form() -> None:
    t = np.array([[1000.0, 800.0], [0.0, 4000.0]])
    p = np.array([[1100.0, 760.0], [50.0, 4000.0]])
    m = np.array([[True, True], [True, False]])
    assert_allclose(mae(p, t, m), (100 + 40 + 50) / 3, rtol=1e-15)
    # the true = 0 voxel is excluded from the percentage error
    assert_allclose(mean_percentage_error(p, t, m), (10.0 + 5.0) / 2, rtol=1e-15)


def test_accumulator_pools_voxels_and_averages_slices() -> None:
    a, b = _phantom(1), _phantom(2)
    acc = MetricAccumulator()
    acc.update(np.stack([a["pred"], b["pred"]]), np.stack([a["true"], b["true"]]),
               np.stack([a["mask"], b["mask"]]), np.stack([a["labels"], b["labels"]]))
    res = acc.result()
    assert res["n_slices"] == 2
    for c, name in enumerate(("t1", "t2", "pd")):
        # MAE pooled over all brain voxels of both slices
        both_err = np.concatenate([np.abs(x["pred"][c] - x["true"][c])[x["mask"]] for x in (a, b)])
        assert_allclose(res["brain"][name]["mae"], both_err.mean(), rtol=1e-12)
        # PSNR / SSIM: mean of the per-slice values
        assert_allclose(res["brain"][name]["psnr_db"],
                        np.mean([psnr(x["pred"][c], x["true"][c], x["mask"]) for x in (a, b)]), rtol=1e-12)
        assert_allclose(res["whole_slice"][name]["ssim"],
                        np.mean([ssim(x["pred"][c], x["true"][c]) for x in (a, b)]), rtol=1e-12)
        no_csf = [x["mask"] & (x["labels"] != 1) for x in (a, b)]
        err_nc = np.concatenate([np.abs(x["pred"][c] - x["true"][c])[r] for x, r in zip((a, b), no_csf)])
        assert_allclose(res["brain_no_csf"][name]["mae"], err_nc.mean(), rtol=1e-12)
        wm = np.concatenate([(x["pred"][c] - x["true"][c])[x["labels"] == 3] for x in (a, b)])
        assert_allclose(res["tissue"]["WM"][name]["bias"], wm.mean(), rtol=1e-10)
    assert set(res["tissue"]) == {"WM", "GM", "CSF", "deep_GM", "lesion"}
    assert res["brain_no_csf"]["t2"]["n_voxels"] < res["brain"]["t2"]["n_voxels"]


def test_slice_metrics_equals_accumulator_and_flatten() -> None:
    ph = _phantom(4)
    one = slice_metrics(ph["pred"], ph["true"], ph["mask"], ph["labels"])
    via = metrics_over([(ph["pred"], ph["true"], ph["mask"][None], ph["labels"])])
    flat_one, flat_via = flatten_metrics(one), flatten_metrics(via)
    assert flat_one.keys() == flat_via.keys()
    assert_allclose([flat_one[k] for k in flat_one], [flat_via[k] for k in flat_one], rtol=0, atol=0)
    assert_allclose(flat_one["brain/t1/mae"], mae(ph["pred"][0], ph["true"][0], ph["mask"]), rtol=1e-12)


def test_without_labels_no_tissue_rows() -> None:
    ph = _phantom(5)
    res = slice_metrics(ph["pred"], ph["true"], ph["mask"])
    assert "brain_no_csf" not in res and res["tissue"] == {}


def test_shape_errors_are_named() -> None:
    with pytest.raises(ValueError, match="pred has shape"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="maps must have shape"):
        MetricAccumulator().update(np.zeros((2, 16, 16)), np.zeros((2, 16, 16)))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(np.zeros((8, 8)), np.ones((8, 8)))
