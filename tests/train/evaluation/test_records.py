"""Per-slice evaluation records: the metrics are those of train.evaluation.metrics, summaries skip non-finite
values, a store row's acquisition facts name each contrast and leave absent ones empty."""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics.protocol import PRESETS, SEQUENCE_KIND_NAMES, pack_protocols
from relaxomap.train.evaluation.metrics import mean_percentage_error, psnr, ssim
from relaxomap.train.evaluation.records import RECORD_METRICS, per_slice_summary, record_metrics, sample_meta


def test_record_metrics_are_the_metric_functions() -> None:
    rng = np.random.default_rng(0)
    true = rng.uniform(100.0, 2000.0, (3, 24, 24))
    pred = true * rng.uniform(0.9, 1.1, true.shape)
    mask = np.zeros((24, 24), bool)
    mask[4:20, 4:20] = True
    labels = np.where(mask, 2, 0)
    labels[8:12, 8:12] = 1  # CSF, left out of the no-CSF region
    rec = record_metrics(pred, true, mask, labels)
    assert set(rec) == {"t1", "t2", "pd"} and all(set(v) == set(RECORD_METRICS) for v in rec.values())
    no_csf = mask & (labels != 1)
    for c, name in enumerate(("t1", "t2", "pd")):
        assert_allclose(rec[name]["psnr_db"], psnr(pred[c], true[c], mask), rtol=0, atol=0)
        assert_allclose(rec[name]["ssim"], ssim(pred[c], true[c], mask), rtol=0, atol=0)
        assert_allclose(rec[name]["psnr_no_csf_db"], psnr(pred[c], true[c], no_csf), rtol=0, atol=0)
        assert_allclose(rec[name]["mpe_no_csf_pct"], mean_percentage_error(pred[c], true[c], no_csf), rtol=0, atol=0)
        assert_allclose(rec[name]["psnr_whole_db"], psnr(pred[c], true[c]), rtol=0, atol=0)
    assert rec["t1"]["psnr_no_csf_db"] != rec["t1"]["psnr_db"]


def test_per_slice_summary_skips_missing_and_non_finite() -> None:
    def rec(v: float) -> dict:
        return {m: {k: v for k in RECORD_METRICS} for m in ("t1", "t2", "pd")}

    out = per_slice_summary([rec(10.0), None, rec(math.inf), rec(20.0), rec(math.nan)])
    s = out["t2"]["psnr_db"]
    assert s["n"] == 2
    assert_allclose([s["mean"], s["std"]], [15.0, 5.0], rtol=1e-15)  # population std of (10, 20)
    empty = per_slice_summary([None])["pd"]["ssim"]
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["std"])


def test_sample_meta_names_contrasts_and_leaves_absent_ones_empty() -> None:
    prots = [PRESETS["t1w_se_3t"], PRESETS["t2w_tse_3t"], PRESETS["flair_3t"]]
    row = {
        "present": np.array([[1, 1, 0]], np.uint8),
        "params": np.array([[[p.tr_ms, p.te_ms, p.ti_ms] for p in prots]], np.float32),
        "protocols": pack_protocols(prots)[None],
        "snr": np.array([[30.0, 25.0, 0.0]]),
        "subject_id": np.array([b"phantom-7"]),
        "slice_index": np.array([3]),
        "field_t": np.array([3.0]),
    }
    meta = sample_meta(row, 0)
    assert meta["subject_id"] == "phantom-7" and meta["slice_index"] == 3 and meta["field_t"] == 3.0
    assert meta["present"] == [1, 1, 0]
    kinds = {c: SEQUENCE_KIND_NAMES[int(pack_protocols([p])[0, 0])] for c, p in zip(("t1w", "t2w"), prots)}
    assert meta["kinds"] == {**kinds, "flair": None}
    assert meta["params"]["t2w"] == pytest.approx({"tr_ms": prots[1].tr_ms, "te_ms": prots[1].te_ms, "ti_ms": 0.0})
    assert meta["params"]["flair"] is None and meta["snr"] == {"t1w": 30.0, "t2w": 25.0, "flair": None}
