"""physics.bounds: the linearised posterior against a Monte-Carlo MAP fit, its physics, its advice, its errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.optimize import least_squares

from relaxomap.physics.bounds import BoundsConfig, _Model, advise, bounds, candidate_contrasts
from relaxomap.physics.protocol import PRESETS
from relaxomap.physics.signal import signal_reference

EXAM = (PRESETS["t1w_tse_3t"], PRESETS["t2w_tse_3t"], PRESETS["flair_3t"])


def _signals(theta: np.ndarray, model: _Model) -> np.ndarray:
    """(C, K) magnitudes for a full parameter vector (closed form), written from the module docstring's model:
    s_kc = g_c b_k PD_k f_c(T1_k, T2_k; kappa_c)."""
    k = len(model.names)
    t = theta[:4 * k].reshape(k, 4)
    n_c = len(model.protocols)
    ln_g = theta[4 * k:4 * k + n_c]
    kappas = dict(zip(model.kappa_of, theta[4 * k + n_c:]))
    out = np.empty((n_c, k))
    for c, p in enumerate(model.protocols):
        if c in kappas:
            p = p.with_(inversion_efficiency=float(np.clip(kappas[c], 0.0, 1.0)))
        f = signal_reference(np.exp(t[:, 0]), np.exp(t[:, 1]), np.ones(k), p)[0]
        out[c] = np.exp(ln_g[c] + t[:, 3] + t[:, 2]) * f
    return out


def test_tissue_mean_bound_equals_monte_carlo_map_fit() -> None:
    """Bayesian Cramer-Rao: draw the truth from the prior, add noise, fit by MAP (least squares with the
    Gaussian prior terms, started at the prior mean); the spread of the errors must equal the linearised
    posterior sd. A case away from the FLAIR null (no CSF, whose null gives two T1 solutions), SNR 30, 10
    voxels per tissue so that data and prior both matter, relaxation priors narrowed to +-10 % so that the
    model is linear over the posterior (the linearisation is exact in that limit; with the default +-40 %
    the MAP spread exceeds the local bound by up to 1.26x for deep GM and lesion T1, see docs/bounds.md).
    Tolerance 12 %: three standard errors of an sd estimated from 300 trials (1 / sqrt(2 N) = 4.1 %)."""
    config = BoundsConfig(tissues=("WM", "GM", "deep GM", "MS lesion"), forward="closed", n_voxels=10,
                          snr=30.0, bias_sd=0.05, prior={"relaxation_factor": (0.9, 1.1)})
    result = bounds(EXAM, config)
    model = _Model(EXAM, config)
    sd = model.prior_sd()
    mu = np.zeros(model.n_params)
    mu[:model.n_tissue] = np.column_stack([np.log(model.t1), np.log(model.t2), np.log(model.pd),
                                           np.zeros(len(model.t1))]).ravel()
    mu[model.n_tissue + len(EXAM):] = np.mean(model.prior["inversion_efficiency"])
    weight = math.sqrt(config.n_voxels) / model.sigma[:, None]  # (C, 1): tissue means of n voxels
    rng = np.random.default_rng(20261205)
    errors = []
    for _ in range(300):
        truth = mu + sd * rng.standard_normal(model.n_params)
        truth[model.n_tissue:model.n_tissue + len(EXAM)] = rng.normal(0.0, 0.3, len(EXAM))  # gains: any
        data = _signals(truth, model) + rng.standard_normal((len(EXAM), len(model.names))) / weight

        def residuals(theta: np.ndarray) -> np.ndarray:
            return np.r_[((data - _signals(theta, model)) * weight).ravel(), (theta - mu) / sd]

        fit = least_squares(residuals, mu, method="lm", xtol=1e-10, ftol=1e-10)
        errors.append(fit.x - truth)
    err = np.array(errors)
    for k, t in enumerate(result.tissues):
        for i, m in enumerate(("t1", "t2", "pd")):
            assert_allclose(100 * err[:, 4 * k + i].std(), t.mean_pct[m], rtol=0.12, err_msg=f"{t.tissue} {m}")


def test_physics_of_the_default_exam() -> None:
    """What the inputs allow (issue 14): CSF T2 at TE ~100 ms is prior-limited, CSF T1 is pinned by the FLAIR
    null, PD is prior-limited (the bias field and gains trade with it), parenchyma T1 / T2 are data-limited."""
    res = {t.tissue: t for t in bounds(EXAM).tissues}
    assert res["CSF"].limited_by["t2"] == "prior" and res["CSF"].ratio["t2"] > 0.95
    assert res["CSF"].limited_by["t1"] != "prior"
    assert all(res[n].limited_by["pd"] == "prior" for n in res)
    assert all(res[n].limited_by[m] == "data" for n in ("WM", "GM") for m in ("t1", "t2"))
    for t in res.values():  # a posterior is never wider than its prior, nor one voxel tighter than its tissue
        for m in ("t1", "t2", "pd"):
            assert t.mean_pct[m] <= t.prior_pct[m] * (1 + 1e-9)
            assert t.voxel_pct[m] <= t.prior_pct[m] * (1 + 1e-9)


def test_a_tissue_at_the_inversion_null_is_flagged() -> None:
    """FLAIR with TI at CSF's null (closed form, perfect inversion): CSF's magnitude has two T1 solutions."""
    from scipy.optimize import minimize_scalar

    flair = PRESETS["flair_3t"]

    def csf_magnitude(ti_ms: float) -> float:  # the 3 T table's CSF: T1 4160 ms, T2 1650 ms
        return float(signal_reference(np.array([4160.0]), np.array([1650.0]), np.ones(1),
                                      flair.with_(ti_ms=ti_ms))[0, 0])

    ti = minimize_scalar(csf_magnitude, bounds=(1500.0, 4000.0), method="bounded", options={"xatol": 1e-3}).x
    assert csf_magnitude(ti) < 1e-3  # the magnitude's minimum is the null
    config = BoundsConfig(forward="closed", unknown_inversion=False)
    res = {t.tissue: t for t in bounds((EXAM[0], EXAM[1], flair.with_(ti_ms=ti)), config).tissues}
    assert any("inversion null" in f for f in res["CSF"].flags) and res["WM"].flags == ()
    res = {t.tissue: t for t in bounds((EXAM[0], EXAM[1], flair.with_(ti_ms=ti - 1200.0)), config).tissues}
    assert res["CSF"].flags == ()


def test_more_snr_tightens_one_voxel_but_not_the_gain_directions() -> None:
    lo = {t.tissue: t for t in bounds(EXAM, BoundsConfig(snr=10.0)).tissues}
    hi = {t.tissue: t for t in bounds(EXAM, BoundsConfig(snr=100.0)).tissues}
    for n in ("WM", "GM"):
        assert hi[n].voxel_pct["t1"] < lo[n].voxel_pct["t1"]
        # PD's bound is its prior whatever the SNR: the data cannot see PD x bias
        assert_allclose(hi[n].mean_pct["pd"], lo[n].mean_pct["pd"], rtol=0.1)


def test_prior_sd_is_the_uniform_width_over_sqrt12() -> None:
    res = {t.tissue: t for t in bounds(EXAM).tissues}
    assert_allclose(res["WM"].prior_pct["t1"], 100 * math.log(1.4 / 0.6) / math.sqrt(12), rtol=1e-12)
    assert_allclose(res["WM"].prior_pct["pd"], 100 * math.log(1.05 / 0.95) / math.sqrt(12), rtol=1e-12)
    assert_allclose(res["CSF"].prior_pct["t1"], 100 * math.log(4400 / 3600) / math.sqrt(12), rtol=1e-12)


def test_advice_a_second_t1w_tr_is_best_for_t1() -> None:
    advice = {a.map: a for a in advise(EXAM)}
    assert advice["t1"].contrast == "second T1w TR" and advice["t1"].after_pct < advice["t1"].before_pct
    assert "add a second T1w TR" in advice["t1"].line
    cands = candidate_contrasts(EXAM)
    assert cands["second T1w TR"].tr_ms == pytest.approx(2.5 * EXAM[0].tr_ms, rel=1e-12)
    assert cands["PD-weighted first echo"].te_ms == EXAM[1].esp_ms
    assert cands["second FLAIR TI"].ti_ms == pytest.approx(0.6 * EXAM[2].ti_ms, rel=1e-12)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="unknown tissue|tissue"):
        BoundsConfig(tissues=("white stuff",))
    with pytest.raises(ValueError, match=r"BoundsConfig\.snr"):
        BoundsConfig(snr=0.0)
    with pytest.raises(ValueError, match=r"BoundsConfig\.forward"):
        BoundsConfig(forward="bloch")
    with pytest.raises(ValueError, match="3 protocols"):
        bounds(EXAM, BoundsConfig(snr=(20.0, 30.0)))
    with pytest.raises(ValueError, match="one field_t"):
        bounds((EXAM[0], PRESETS["t2w_tse_1.5t"]))
