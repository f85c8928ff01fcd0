"""Fidelity of the closed-form signal equations against EPG and Bloch: the known agreements and the known gaps."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics.epg import epg_signal
from relaxomap.physics.fidelity import DEFAULT_TISSUES, FidelityReport, fidelity, t1_t2_grid
from relaxomap.physics.protocol import PRESETS, Protocol
from relaxomap.physics.signal import signal
from relaxomap.physics.tissues import tissue_values

SPIN_ECHO_PRESETS = ("t1w_se", "t2w_tse", "pdw_tse", "flair", "t1flair")


@pytest.mark.parametrize("tag", ["3t", "1.5t"])
def test_closed_form_is_exact_for_ideal_180_pulses(tag: str) -> None:
    prots = [PRESETS[f"{n}_{tag}"].with_(refocus_deg=180.0) for n in SPIN_ECHO_PRESETS]
    prots.append(PRESETS[f"flair_{tag}"].with_(refocus_deg=180.0, inversion_efficiency=0.9, name="flair_k09"))
    rep = fidelity(prots)
    # with 90°/180° CPMG pulses the closed form (readout, κ included) is the exact steady state: against the
    # float64 EPG only float64 rounding remains (~10 operations per pulse, ≤ 32 pulses, 2.2e-16 each: < 1e-13;
    # measured 1e-14), against Bloch also its steady-state tolerance (1e-8 M0 on signals >= 0.01)
    assert np.nanmax(rep.rel_error("closed", "epg")) < 1e-12
    assert np.nanmax(rep.abs_error("closed", "epg")) < 1e-12
    assert np.nanmax(rep.rel_error("closed", "bloch")) < 1e-5
    # EPG and Bloch are the same physics: float64 rounding apart (the reference tolerance of test_bloch)
    assert_allclose(rep.signals["bloch"], rep.signals["epg"], rtol=1e-6)


def test_tse_gap_at_150_degrees_refocusing() -> None:
    prots = [PRESETS["t2w_tse_3t"], PRESETS["t2w_tse_1.5t"], PRESETS["flair_3t"]]
    assert {p.refocus_deg for p in prots} == {150.0}
    rep = fidelity(prots)
    # stimulated echoes: the 150° train's echo at TE_eff is not exp(-TE/T2); > 1 % for some brain tissue
    assert np.nanmax(rep.rel_error("closed", "epg")) > 0.01
    assert np.nanmax(rep.rel_error("closed", "bloch")) > 0.01
    # Two-sided: the reported gap is the gap computed independently, with the float32 Numba kernels of both
    # models (a second transcription of the closed form, the two-family real EPG) on the same tissues. Each
    # kernel is within 1e-5 of PD of its float64 twin (tests/physics/test_signal.py, test_epg.py): 2e-5.
    for i, p in enumerate(prots):
        vals = [tissue_values(n, p.field_t) for n in DEFAULT_TISSUES]
        t1, t2, pd = (np.array([getattr(v, k) for v in vals], np.float32) for k in ("t1_ms", "t2_ms", "pd"))
        gap = signal(t1, t2, pd, [p])[0].astype(np.float64) - epg_signal(t1, t2, pd, [p])[0]
        assert_allclose(rep.signals["closed"][i] - rep.signals["epg"][i], gap, rtol=0, atol=2e-5)
        assert_allclose(rep.abs_error("closed", "epg")[i], np.abs(gap), rtol=0, atol=2e-5)
        # EPG and Bloch are the same physics (float64 rounding and the Bloch steady-state tolerance apart)
        assert_allclose(rep.signals["closed"][i] - rep.signals["bloch"][i], gap, rtol=0, atol=2e-5)
    assert np.abs(rep.signals["closed"] - rep.signals["epg"]).max() > 100 * 2e-5  # the gap dwarfs the tolerance


def test_single_echo_gap_is_the_spin_echo_fraction() -> None:
    # one 150° refocusing pulse: M_z is exact in the closed form (Z_0 → cos b·Z_0), but only the fraction
    # sin²(b/2) of the excited magnetisation forms the spin echo (Hennig 1988), so closed / Bloch = 1 / sin²(75°)
    p = PRESETS["t1w_se_3t"].with_(refocus_deg=150.0)
    rep = fidelity([p])
    ratio = rep.signals["closed"] / rep.signals["bloch"]
    assert_allclose(ratio, 1.0 / math.sin(math.radians(75.0)) ** 2, rtol=1e-7)  # Bloch steady state 1e-8 M0


@pytest.mark.parametrize("refocus_deg", [180.0, 150.0])
@pytest.mark.parametrize("tag", ["3t", "1.5t"])
def test_textbook_flair_misses_the_readout_for_csf(refocus_deg: float, tag: str) -> None:
    rep = fidelity([PRESETS[f"flair_{tag}"].with_(refocus_deg=refocus_deg)], tissues=["CSF", "infarct", "necrosis"])
    text, closed = rep.rel_error("textbook", "bloch")[0], rep.rel_error("closed", "bloch")[0]
    # CSF (T1 ≈ 4 s): the textbook formula assumes full recovery from M_z = 0 after the excitation and ignores
    # the 300 ms train; measured 28–45 % against our closed form's 0 % (180°) and ~5 % (150°)
    assert text[0] > 0.1
    assert text[0] > 3 * closed[0]
    if refocus_deg == 180.0:  # readout/κ effect isolated: the closed form is exact, the textbook is not
        assert (closed < 1e-5).all()
        assert (text[1:] > 1e-3).all()


def test_report_shapes_nan_epg_and_json() -> None:
    prots = [PRESETS["t1w_se_3t"], PRESETS["spgr_t1w_1.5t"]]
    rep = fidelity(prots, grid=5)
    n_pts = len(rep.points)
    g1, g2 = t1_t2_grid(5)
    # T1 = 200, 447, 1000, 2236, 5000; T2 = 20, 63, 200, 632, 2000 [ms]: 2 + 3 + 4 + 5 + 5 points with T2 < T1
    assert n_pts == g1.size == 19
    assert (g2 < g1).all()
    for key in ("closed", "textbook", "epg", "bloch"):
        assert rep.signals[key].shape == (2, n_pts)
    assert np.isnan(rep.signals["epg"][1]).all() and np.isfinite(rep.signals["epg"][0]).all()
    summary = rep.summary()
    assert {(r["protocol"], r["reference"]) for r in summary} == {
        ("t1w_se_3t", "epg"), ("t1w_se_3t", "bloch"), ("spgr_t1w_1.5t", "bloch")}
    text = json.dumps(rep.to_dict(), allow_nan=False)  # NaN stored as null
    back = json.loads(text)
    assert back["rel_error"]["closed_vs_epg"][1] == [None] * n_pts
    assert_allclose(back["signals"]["bloch"], rep.signals["bloch"], rtol=0)
    # spgr with ideal spoiling: the closed form is Ernst's formula, exact
    assert np.nanmax(rep.rel_error("closed", "bloch")[1]) < 1e-5


def test_relative_error_floor() -> None:
    sig = {"closed": np.array([[0.002, 0.5, 0.0]]), "textbook": np.array([[0.0, 0.4, 0.0]]),
           "bloch": np.array([[0.001, 0.55, 0.0]]), "epg": np.full((1, 3), np.nan)}
    ones = np.ones((1, 3))
    rep = FidelityReport((PRESETS["t1w_se_3t"],), ("a", "b", "c"), ones, ones, np.array([[1.0, 1.0, 0.0]]), sig,
                         0.01, False)
    # |0.002 − 0.001| / max(0.001, 0.01·1) = 0.1; |0.5 − 0.55| / 0.55; background (PD = 0, ref 0): 0
    assert_allclose(rep.rel_error("closed", "bloch"), [[0.1, 0.05 / 0.55, 0.0]], rtol=1e-12)
    assert np.isnan(rep.rel_error("closed", "epg")).all()
    with pytest.raises(ValueError, match="reference must be one of"):
        rep.rel_error("closed", "koma")


def test_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="unobtainium"):
        fidelity([PRESETS["t1w_se_3t"]], tissues=["unobtainium"])
    with pytest.raises(ValueError, match="protocols"):
        fidelity([])
    with pytest.raises(ValueError, match="fidelity.b1"):
        fidelity([PRESETS["t1w_se_3t"]], b1=-1.0)
    with pytest.raises(ValueError, match="field_t"):
        fidelity([Protocol("se", tr_ms=500.0, te_ms=10.0, field_t=7.0)])
    assert DEFAULT_TISSUES == ("WM", "GM", "CSF", "deep GM", "fat", "MS lesion")
