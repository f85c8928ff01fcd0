"""Binned metric-versus-acquisition curves: quantile bins, exact bin means, constant variables left out."""
from __future__ import annotations

from numpy.testing import assert_allclose

from relaxomap.train.evaluation.curves import binned_curves


def _record(tr: float, mpe_t1: float) -> dict:
    par = {"tr_ms": tr, "te_ms": 10.0, "ti_ms": 0.0}
    maps = {m: {"mpe_parenchyma_pct": mpe_t1 if m == "t1" else 20.0, "psnr_brain_db": 1.0}
            for m in ("t1", "t2", "pd")}
    return {"params": {"t1w": par, "t2w": dict(par, te_ms=100.0), "flair": None},
            "kinds": {"t1w": "se", "t2w": "tse", "flair": None},
            "snr": {"t1w": 30.0, "t2w": 30.0, "flair": None}, "metrics": {"m": maps}}


def test_binned_curves_by_quantile() -> None:
    """TR 500, 600 | 700, 800 in two quantile bins: the T1 parenchyma MPE means are (10+20)/2 and (30+40)/2
    exactly; variables that do not vary (TE, SNR) give no curve."""
    recs = [_record(tr, p) for tr, p in ((500.0, 10.0), (600.0, 20.0), (700.0, 30.0), (800.0, 40.0))]
    curves = binned_curves(recs, ["m"], max_bins=2)
    assert set(curves) == {"t1w tr_ms", "t2w tr_ms"}
    c = curves["t1w tr_ms"]
    assert_allclose(c["edges"], [500.0, 650.0, 800.0])
    assert c["n"] == [2, 2]
    assert_allclose(c["x_mean"], [550.0, 750.0])
    assert c["metric"] == "mpe_parenchyma_pct"
    assert_allclose(c["values"]["m"]["t1"], [15.0, 35.0])
    assert_allclose(c["values"]["m"]["pd"], [20.0, 20.0])
    other = binned_curves(recs, ["m"], max_bins=2, metric="psnr_brain_db")["t1w tr_ms"]
    assert other["metric"] == "psnr_brain_db"
    assert_allclose(other["values"]["m"]["t1"], [1.0, 1.0])
