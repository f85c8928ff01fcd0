"""Map metrics against closed forms and scikit-image (an independent implementation); the accumulator's
regions, fixed parenchyma range, tissue groups, signed bias, CSF anchor of PD and subject statistics against
NumPy computations written out in the tests."""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics.tissues import label_lookup
from relaxomap.train.evaluation.accumulate import MetricAccumulator, flatten_metrics, metrics_over, slice_metrics
from relaxomap.train.evaluation.metrics import (
    csf_anchor,
    mae,
    mean_percentage_error,
    psnr,
    signed_bias_pct,
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


def test_signed_bias_closed_form() -> None:
    t = np.array([[1000.0, 800.0], [0.0, 4000.0]])
    p = np.array([[1100.0, 760.0], [50.0, 4000.0]])
    m = np.array([[True, True], [True, False]])
    # (+10 % − 5 %) / 2: signed, the true = 0 voxel left out
    assert_allclose(signed_bias_pct(p, t, m), (10.0 - 5.0) / 2, rtol=1e-15)
    assert math.isnan(signed_bias_pct(p, t, np.zeros_like(m)))


def test_csf_anchor_on_core_csf_and_fallback() -> None:
    rng = np.random.default_rng(0)
    # 150 pure CSF voxels (PD 1) and 51 partial-volume ones labelled CSF (PD 0.6): the core is the 150
    true = np.concatenate([np.ones(150), np.full(51, 0.6)])
    pred = 1.3 * true * rng.uniform(0.98, 1.02, true.size)
    pred[150:] = 5.0  # whatever is predicted in partial-volume voxels does not move the anchor
    got = csf_anchor(pred, true)
    assert got["anchored"] and got["csf_voxels"] == 150
    assert_allclose(got["scale"], np.median(pred[:150]) / 1.0, rtol=1e-15)
    assert_allclose(got["scale"], 1.3, rtol=0.03)  # the prediction's 30 % excess, within the 2 % spread
    few = csf_anchor(pred[:99], true[:99])
    assert not few["anchored"] and few["scale"] == 1.0 and few["csf_voxels"] == 99
    assert csf_anchor(np.zeros(200), np.ones(200))["scale"] == 1.0  # non-positive median: the fallback
    assert csf_anchor(np.ones(200), np.full(200, 0.9))["anchored"] is False  # no core CSF at all


def _subject_slices(seed: int, n: int, pd_gain: float) -> list[dict[str, np.ndarray]]:
    """n phantom slices whose prediction has its own PD gain (a wrong CSF scale), plus noise."""
    out = []
    for k in range(n):
        ph = _phantom(seed * 10 + k)
        ph["pred"] = ph["pred"].copy()
        ph["pred"][2] *= pd_gain
        out.append(ph)
    return out


def _region(ph: dict[str, np.ndarray], name: str) -> np.ndarray:
    lab, m = ph["labels"], ph["mask"]
    groups = {"WM": [3], "GM": [2], "deep_GM": [13], "CSF": [1], "lesion": [12, 14, 15, 16, 17]}
    if name == "parenchyma":
        return m & (lab != 1)
    if name == "other":
        return m & ~np.isin(lab, sum(groups.values(), []))
    return m & np.isin(lab, groups[name])


def _rel(ph: dict[str, np.ndarray], c: int, region: str) -> np.ndarray:
    """(pred − true) / true of map c in a region (every true value there is > 0)."""
    r = _region(ph, region)
    return (ph["pred"][c][r] - ph["true"][c][r]) / ph["true"][c][r]


def test_accumulator_pools_voxels_and_summarises_subjects() -> None:
    """Two subjects of 2 and 3 slices: pooled values over every voxel, per-subject values pooled over that
    subject's voxels, and mean ± sample sd over the two subjects, all written out with NumPy."""
    subjects = {"a": _subject_slices(1, 2, 1.0), "b": _subject_slices(2, 3, 1.0)}
    acc = MetricAccumulator()
    for sid, slices in subjects.items():
        acc.update(np.stack([x["pred"] for x in slices]), np.stack([x["true"] for x in slices]),
                   np.stack([x["mask"] for x in slices]), np.stack([x["labels"] for x in slices]), subject=sid)
    res = acc.result()
    assert res["n_slices"] == 5 and res["n_subjects"] == 2
    assert set(res["tissue"]) == {"WM", "GM", "CSF", "deep_GM", "lesion"}  # "other" is empty here
    everyone = [x for sl in subjects.values() for x in sl]
    for c, name in enumerate(("t1", "t2", "pd")):
        for region in ("parenchyma", "WM", "lesion"):
            entry = res[region][name] if region == "parenchyma" else res["tissue"][region][name]
            err = np.concatenate([(x["pred"][c] - x["true"][c])[_region(x, region)] for x in everyone])
            rel = np.concatenate([_rel(x, c, region) for x in everyone])
            assert_allclose(entry["mae"], np.abs(err).mean(), rtol=1e-12)
            assert_allclose(entry["mpe_pct"], 100 * np.abs(rel).mean(), rtol=1e-12)
            assert_allclose(entry["bias_pct"], 100 * rel.mean(), rtol=1e-10, atol=1e-12)
            per = [100 * np.abs(np.concatenate([_rel(x, c, region) for x in sl])).mean() for sl in subjects.values()]
            assert_allclose([entry["subjects"]["mpe_pct"]["mean"], entry["subjects"]["mpe_pct"]["std"]],
                            [np.mean(per), np.std(per, ddof=1)], rtol=1e-12)
            assert entry["subjects"]["mpe_pct"]["n"] == entry["n_subjects"] == 2
        # parenchyma PSNR: the fixed range, not the region's maximum; subject value = mean over its slices
        rng_ = {"t1": 4000.0, "t2": 300.0, "pd": 1.2}[name]
        per_subject = []
        for sl in subjects.values():
            vals = [10 * np.log10(rng_**2 / np.mean((x["pred"][c] - x["true"][c])[_region(x, "parenchyma")] ** 2))
                    for x in sl]
            per_subject.append(np.mean(vals))
        got = res["parenchyma"][name]["subjects"]["psnr_db"]
        assert_allclose([got["mean"], got["std"]], [np.mean(per_subject), np.std(per_subject, ddof=1)], rtol=1e-12)
        # the brain mask keeps its peak = the truth's maximum in the mask
        assert_allclose(res["per_subject"]["a"]["brain"][name]["psnr_db"],
                        np.mean([psnr(y["pred"][c], y["true"][c], y["mask"]) for y in subjects["a"]]), rtol=1e-12)
        assert_allclose(res["whole_slice"][name]["ssim"], np.mean([ssim(y["pred"][c], y["true"][c]) for y in everyone]),
                        rtol=1e-12)


def test_fixed_parenchyma_range_sees_a_white_matter_bias_the_csf_peak_hides() -> None:
    """A 10 % over-estimate of WM T2 only: the parenchyma PSNR (L = 300 ms) is 20·log10(300 / RMSE) and the
    brain-mask PSNR uses the CSF maximum (1650 ms at 3 T), 14.8 dB higher for the same error."""
    ph = _phantom(7)
    true = ph["true"].copy()
    pred = true.copy()
    wm = ph["labels"] == 3
    pred[1][wm] *= 1.10
    res = slice_metrics(pred, true, ph["mask"], ph["labels"])
    par = ph["mask"] & (ph["labels"] != 1)
    rmse = np.sqrt(np.mean((pred[1] - true[1])[par] ** 2))
    assert_allclose(res["parenchyma"]["t2"]["psnr_db"], 20 * np.log10(300.0 / rmse), rtol=1e-12)
    assert_allclose(res["tissue"]["WM"]["t2"]["bias_pct"], 10.0, rtol=1e-9)
    assert_allclose(res["tissue"]["GM"]["t2"]["bias_pct"], 0.0, atol=1e-12)
    brain_rmse = np.sqrt(np.mean((pred[1] - true[1])[ph["mask"]] ** 2))
    assert_allclose(res["brain"]["t2"]["psnr_db"], 20 * np.log10(true[1][ph["mask"]].max() / brain_rmse), rtol=1e-12)
    assert res["brain"]["t2"]["psnr_db"] > res["parenchyma"]["t2"]["psnr_db"] + 10.0


def test_pd_anchored_on_each_subjects_csf() -> None:
    """Subject a's PD is predicted 20 % too high everywhere, subject b's 10 % too low: anchored on each subject's
    own CSF, both score 0 error (the common scale is not an error); a wrong WM / CSF ratio stays an error."""
    a, b = _subject_slices(3, 2, 1.2), _subject_slices(4, 2, 0.9)
    for sl, gain in ((a, 1.2), (b, 0.9)):
        for x in sl:
            x["pred"][2] = x["true"][2] * gain
    b[0]["pred"][2][b[0]["labels"] == 3] *= 1.05  # a 5 % WM ratio error in one slice of b
    acc = MetricAccumulator()
    for sid, sl in (("a", a), ("b", b)):
        for x in sl:
            acc.update(x["pred"], x["true"], x["mask"], x["labels"], subject=sid)
    res = acc.result()
    anchors = res["pd_anchor"]["subjects"]
    # rtol 1e-6: PD is kept in float32 until its subject is closed
    assert_allclose([anchors["a"]["scale"], anchors["b"]["scale"]], [1.2, 0.9], rtol=1e-6)
    assert res["pd_anchor"]["n_anchored"] == 2 and res["pd_anchor"]["fallback"] == []
    per = res["per_subject"]
    assert_allclose(per["a"]["tissue"]["WM"]["pd_csf"]["mpe_pct"], 0.0, atol=1e-5)
    assert_allclose(per["a"]["tissue"]["WM"]["pd"]["bias_pct"], 20.0, rtol=1e-6)  # raw PD: the gain error
    wm_b0 = b[0]["labels"] == 3
    n0, n1 = wm_b0.sum(), (b[1]["labels"] == 3).sum()
    assert_allclose(per["b"]["tissue"]["WM"]["pd_csf"]["bias_pct"], 5.0 * n0 / (n0 + n1), rtol=1e-5)
    assert_allclose(per["b"]["tissue"]["GM"]["pd_csf"]["mpe_pct"], 0.0, atol=1e-5)


def test_pd_fallback_without_enough_csf() -> None:
    ph = _phantom(8)
    pred = ph["pred"].copy()
    pred[2] = ph["true"][2] * 1.5
    acc = MetricAccumulator(min_csf_voxels=10**6)
    acc.update(pred, ph["true"], ph["mask"], ph["labels"], subject="s")
    res = acc.result()
    assert res["pd_anchor"]["fallback"] == ["s"] and res["pd_anchor"]["subjects"]["s"]["scale"] == 1.0
    # scored raw; rtol 1e-6: PD is kept in float32 until its subject is closed
    assert_allclose(res["parenchyma"]["pd_csf"]["bias_pct"], 50.0, rtol=1e-6)


def test_other_group_and_update_records() -> None:
    ph = _phantom(9)
    labels = ph["labels"].copy()
    vessel = np.argwhere(ph["mask"] & (labels == 2))[0]
    labels[tuple(vessel)] = 8  # a vessel voxel in the brain mask: group "other"
    acc = MetricAccumulator()
    rec = acc.update(ph["pred"], ph["true"], ph["mask"], labels)
    res = acc.result()
    assert res["tissue"]["other"]["t1"]["n_voxels"] == 1
    v = tuple(vessel)
    assert_allclose(res["tissue"]["other"]["t1"]["mae"], abs(ph["pred"][0][v] - ph["true"][0][v]), rtol=1e-12)
    par = ph["mask"] & (labels != 1)
    assert_allclose(rec[0]["t1"]["mpe_parenchyma_pct"], mean_percentage_error(ph["pred"][0], ph["true"][0], par),
                    rtol=1e-12)
    assert_allclose(rec[0]["t2"]["psnr_parenchyma_db"], psnr(ph["pred"][1], ph["true"][1], par, 300.0), rtol=1e-12)
    assert_allclose(rec[0]["pd"]["psnr_brain_db"], psnr(ph["pred"][2], ph["true"][2], ph["mask"]), rtol=1e-12)


def test_closed_subject_cannot_grow() -> None:
    ph = _phantom(10)
    acc = MetricAccumulator()
    acc.update(ph["pred"], ph["true"], ph["mask"], ph["labels"], subject="s")
    acc.close_subject("s")
    with pytest.raises(ValueError, match="was closed"):
        acc.update(ph["pred"], ph["true"], ph["mask"], ph["labels"], subject="s")


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
    assert "parenchyma" not in res and res["tissue"] == {}
    assert res["pd_anchor"]["n_fallback"] == 1  # no CSF label: raw PD


def test_shape_errors_are_named() -> None:
    with pytest.raises(ValueError, match="pred has shape"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="maps must have shape"):
        MetricAccumulator().update(np.zeros((2, 16, 16)), np.zeros((2, 16, 16)))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(np.zeros((8, 8)), np.ones((8, 8)))
    with pytest.raises(ValueError, match="one per slice"):
        MetricAccumulator().update(np.zeros((2, 3, 16, 16)), np.zeros((2, 3, 16, 16)), subject=["a"])
