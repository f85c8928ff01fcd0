"""EPG simulator: closed forms written as maths, an isochromat sum, the float64 reference and the fast kernels.

Float32 tolerances: the Numba and NumPy kernels hold the states in float32; each pulse rounds each state
about three times (2^-24 ≈ 6e-8 each), so over ≤ 24 pulses the error is ≤ 24·3·6e-8 ≈ 4e-6 of the PD scale;
1e-5 leaves room for the steady-state solve (float64, but fed with float32 Z_0).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics.epg import epg_echo_train, epg_signal
from relaxomap.physics.epg_dictionary import EPGDictionary
from relaxomap.physics.epg_numpy import epg_numpy
from relaxomap.physics.epg_reference import epg_reference
from relaxomap.physics.protocol import PRESETS, SPIN_ECHO_KINDS, Protocol, preset

ATOL32 = 1e-5  # float32 kernels vs float64 (module docstring)
EPS32 = 2.0**-24


def _e(t_ms: float, tau_ms: np.ndarray | float) -> np.ndarray:
    return np.exp(-t_ms / np.asarray(tau_ms, dtype=np.float64))


def _tse_ideal_closed_form(t1, t2, p: Protocol, flip_deg: float = 90.0, kappa: float | None = None):
    """Ideal 180° refocusing, excitation β, optional inversion κ: the steady-state echo train (n_vox, etl).

    τ = esp, h = e^{−τ/2T1}, e = e^{−τ/T1}, c = cos β. Mz at the excitation X; Z_0 just before pulse 1 is
    c·X·h + 1 − h; each 180° negates Z_0, which then recovers over τ: z_k = −(e·z_{k−1} + 1 − e), whose
    solution is z_n = z* + (−e)^{n−1}(z_1 − z*), z* = −(1 − e)/(1 + e). At the last echo Z = h·z_n + 1 − h
    = A·X + B with
        A = −c·h²·(−e)^{n−1},  B = h·[z* + (−e)^{n−1}(−(1 − h) − z*)] + 1 − h,
    then free recovery t = TR − TI − n·τ: M = Z·E_t + 1 − E_t. Without inversion X = M; with inversion
    X = −κ·E_TI·M + 1 − E_TI. Solving the affine fixed point:
        X = ((B·E_t + 1 − E_t)) / (1 − A·E_t)                                  (se / tse)
        X = (1 − E_TI − κ·E_TI·(B·E_t + 1 − E_t)) / (1 + κ·E_TI·A·E_t)        (ir_tse)
    Echo k = |sin β · X| · e^{−k·τ/T2}.
    """
    t1, t2 = np.asarray(t1, np.float64), np.asarray(t2, np.float64)
    tau, n = p.esp_ms, p.etl
    h, e, c = _e(tau / 2, t1), _e(tau, t1), math.cos(math.radians(flip_deg))
    zs = -(1 - e) / (1 + e)
    a_ = -c * h**2 * (-e) ** (n - 1)
    b_ = h * (zs + (-e) ** (n - 1) * (-(1 - h) - zs)) + 1 - h
    if kappa is None:
        et = _e(p.tr_ms - n * tau, t1)
        x = (b_ * et + 1 - et) / (1 - a_ * et)
    else:
        et, ei = _e(p.tr_ms - p.ti_ms - n * tau, t1), _e(p.ti_ms, t1)
        x = (1 - ei - kappa * ei * (b_ * et + 1 - et)) / (1 + kappa * ei * a_ * et)
    k = np.arange(1, n + 1)
    return np.abs(math.sin(math.radians(flip_deg)) * x)[:, None] * np.exp(-k * tau / t2[:, None])


T1S = np.array([250.0, 800.0, 1400.0, 4000.0])
T2S = np.array([20.0, 70.0, 110.0, 2000.0])


# --------------------------------------------------------------------------- closed forms
def test_cpmg_ideal_single_shot_is_pure_t2_decay() -> None:
    # One train from equilibrium (Mz = 1), ideal 90/180: echo n = e^{−n·esp/T2}, no T1 term at all.
    p = Protocol("tse", tr_ms=60_000.0, te_ms=80.0, etl=16, esp_ms=10.0, refocus_deg=180.0)
    expect = np.exp(-np.arange(1, 17) * 10.0 / T2S[:, None])
    ref = np.array([epg_reference(t1, t2, p, n_tr=1) for t1, t2 in zip(T1S, T2S)])
    assert_allclose(ref, expect, rtol=1e-12, atol=1e-12)  # float64, 32 products
    # Numba kernel (steady state only): T1 = 100 ms recovers fully over the 59.8 s after the train
    # (e^{−598} underflows), so the steady state is this single shot. Float32: echo n has ~3n roundings.
    got = epg_echo_train(np.full(4, 100.0), T2S, p)
    assert_allclose(got, expect, rtol=3 * 16 * EPS32, atol=1e-7)


def test_se_closed_form() -> None:
    # S = PD·(1 − 2e^{−(TR−TE/2)/T1} + e^{−TR/T1})·e^{−TE/T2}
    p = Protocol("se", tr_ms=600.0, te_ms=15.0)
    pd = np.array([1.0, 0.7, 0.85, 0.5])
    tr, te = p.tr_ms, p.te_ms
    expect = pd * (1 - 2 * _e(tr - te / 2, T1S) + _e(tr, T1S)) * _e(te, T2S)
    ref = np.array([epg_reference(t1, t2, p)[0] for t1, t2 in zip(T1S, T2S)]) * pd
    assert_allclose(ref, expect, rtol=1e-12)
    got = epg_signal(T1S, T2S, pd, [p])[0]
    assert_allclose(got, expect, rtol=1e-6)  # one pulse, a few float32 roundings (1 − E1 kept exact)


@pytest.mark.parametrize("flip_deg", [90.0, 70.0])
def test_tse_ideal_closed_form(flip_deg: float) -> None:
    p = Protocol("tse", tr_ms=2500.0, te_ms=80.0, etl=12, esp_ms=10.0, refocus_deg=180.0, flip_deg=flip_deg)
    expect = _tse_ideal_closed_form(T1S, T2S, p, flip_deg)
    ref = np.array([epg_reference(t1, t2, p) for t1, t2 in zip(T1S, T2S)])
    assert_allclose(ref, expect, rtol=1e-10)
    got = epg_echo_train(T1S, T2S, p)
    assert_allclose(got, expect, rtol=3 * p.etl * EPS32 * 4, atol=1e-7)  # 3n roundings, ×4 for the Z_0 path


@pytest.mark.parametrize("kappa, flip_deg", [(1.0, 90.0), (0.92, 90.0), (0.92, 65.0)])
def test_ir_tse_inversion_recovery_closed_form(kappa: float, flip_deg: float) -> None:
    p = Protocol("ir_tse", tr_ms=5000.0, te_ms=60.0, ti_ms=1200.0, etl=8, esp_ms=12.0, refocus_deg=180.0,
                 flip_deg=flip_deg, inversion_efficiency=kappa)
    expect = _tse_ideal_closed_form(T1S, T2S, p, flip_deg, kappa=kappa)
    ref = np.array([epg_reference(t1, t2, p) for t1, t2 in zip(T1S, T2S)])
    assert_allclose(ref, expect, rtol=1e-10, atol=1e-14)
    got = epg_echo_train(T1S, T2S, p)
    assert_allclose(got, expect, rtol=3 * p.etl * EPS32 * 4, atol=ATOL32 / 10)  # atol: near the null


def test_stimulated_echo_makes_second_echo_exceed_first() -> None:
    # CPMG with α = 120°, one train from Mz = 1. The first echo is the plain spin echo sin²(α/2)·E2(τ); the
    # second adds the stimulated echo stored as Z_1 for one τ:
    #   echo1 = s²·E2(τ),  echo2 = E2(τ)·(s⁴·E2(τ) + ½·sin²α·E1(τ)),  s² = sin²(α/2) = 3/4.
    # (In a CP train the stimulated term would enter with a minus sign and echo2 < echo1.)
    p = Protocol("tse", tr_ms=60_000.0, te_ms=20.0, etl=4, esp_ms=10.0, refocus_deg=120.0)
    s2, sin2 = math.sin(math.radians(60.0)) ** 2, math.sin(math.radians(120.0)) ** 2
    for t1, t2 in ((1000.0, 100.0), (100.0, 50.0)):
        e1, e2 = math.exp(-10.0 / t1), math.exp(-10.0 / t2)
        expect = np.array([s2 * e2, e2 * (s2 * s2 * e2 + 0.5 * sin2 * e1)])
        ref = epg_reference(t1, t2, p, n_tr=1)[:2]
        assert_allclose(ref, expect, rtol=1e-12)
        assert ref[1] > ref[0]
    got = epg_echo_train(np.array([100.0]), np.array([50.0]), p)[0, :2]  # T1 = 100 ms: full recovery per TR
    assert_allclose(got, expect, rtol=1e-6)
    assert got[1] > got[0]


# --------------------------------------------------------------------------- the reference itself
def _isochromat_train(t1, t2, p: Protocol, angles_deg, b1: float, n_tr: int) -> np.ndarray:
    """Sum over N isochromats evenly spread over one 2π crusher twist: exact EPG for N > 2·max|k|
    (the discrete average of e^{ikθ} vanishes for 0 < |k| < N), with plain 3×3 rotations."""
    n_iso = 4 * p.etl + 8
    th = 2 * np.pi * np.arange(n_iso) / n_iso
    m = np.zeros((3, n_iso))
    m[2] = 1.0

    def rot(axis: str, a: float) -> np.ndarray:
        c, s = math.cos(a), math.sin(a)
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) if axis == "x" else \
            np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])

    def relax(t: float) -> None:
        e1, e2 = math.exp(-t / t1), math.exp(-t / t2)
        m[:2] *= e2
        m[2] = m[2] * e1 + 1 - e1

    def precess() -> None:
        x, y = m[0].copy(), m[1].copy()
        m[0], m[1] = np.cos(th) * x - np.sin(th) * y, np.sin(th) * x + np.cos(th) * y

    ti = p.ti_ms if p.kind == "ir_tse" else 0.0
    for _ in range(n_tr):
        m[:2], m[2] = 0.0, m[2].mean()  # crushers at the end of the previous TR
        if p.kind == "ir_tse":
            m[2] *= -p.inversion_efficiency
            relax(ti)
        m[:] = rot("x", math.radians(p.flip_deg) * b1) @ m
        echoes = []
        for a in angles_deg:
            relax(p.esp_ms / 2)
            precess()
            m[:] = rot("y", math.radians(a) * b1) @ m
            relax(p.esp_ms / 2)
            precess()
            echoes.append(abs(m[0].mean() + 1j * m[1].mean()))
        relax(p.tr_ms - ti - p.etl * p.esp_ms)
    return np.array(echoes)


@pytest.mark.parametrize("case", ["tse120", "flair_schedule_b1", "tse_flip70_b1"])
def test_reference_equals_isochromat_sum(case: str) -> None:
    p, sched, b1 = {
        "tse120": (Protocol("tse", tr_ms=1500.0, te_ms=20.0, etl=8, esp_ms=10.0, refocus_deg=120.0), None, 1.0),
        "flair_schedule_b1": (preset("flair_3t"), np.linspace(60.0, 180.0, 24), 0.85),
        "tse_flip70_b1": (preset("t2w_tse_3t").with_(flip_deg=70.0), None, 1.1),
    }[case]
    angles = sched if sched is not None else np.full(p.etl, p.refocus_deg)
    for n_tr in (1, 3):
        iso = _isochromat_train(800.0, 90.0, p, angles, b1, n_tr)
        ref = epg_reference(800.0, 90.0, p, b1=b1, refocus_deg=sched, n_tr=n_tr)
        assert_allclose(ref, iso, atol=1e-13)  # both exact in float64


def test_steady_state_fixed_point_equals_repeated_trs() -> None:
    # Low flip: Z_0 carries over between TRs (a ≠ 0), the case where the affine fixed point matters.
    for p in (preset("t2w_tse_3t").with_(flip_deg=50.0, tr_ms=1200.0),
              preset("flair_3t").with_(flip_deg=60.0, inversion_efficiency=0.9, tr_ms=4500.0, ti_ms=1500.0)):
        ref = epg_reference(1800.0, 120.0, p)
        brute = epg_reference(1800.0, 120.0, p, n_tr=300)  # contraction per TR ≤ ~0.6: converged to 1e-15
        assert_allclose(ref, brute, rtol=1e-10, atol=1e-13)
        assert_allclose(epg_echo_train(np.array([1800.0]), np.array([120.0]), p)[0], ref, atol=ATOL32)


# --------------------------------------------------------------------------- fast kernels vs reference
@pytest.mark.parametrize("case", ["t2w_150_b1map", "flair_schedule_b1", "t1flair_b1map", "pdw_b1scalar"])
def test_numba_equals_reference(case: str, random_maps: dict) -> None:
    rng = np.random.default_rng(7)
    n = 10
    t1, t2 = random_maps["t1_ms"][:n], random_maps["t2_ms"][:n]
    p, sched, b1 = {
        "t2w_150_b1map": (preset("t2w_tse_3t"), None, rng.uniform(0.7, 1.25, n)),
        "flair_schedule_b1": (preset("flair_3t"), np.r_[150.0, np.linspace(90.0, 160.0, 23)], 0.9),
        "t1flair_b1map": (preset("t1flair_3t"), None, rng.uniform(0.7, 1.25, n)),
        "pdw_b1scalar": (preset("pdw_tse_1.5t"), None, 1.15),
    }[case]
    got = epg_echo_train(t1, t2, p, b1=b1, refocus_deg=sched)
    b1v = np.broadcast_to(b1, (n,))
    ref = np.array([epg_reference(float(a), float(b), p, b1=float(c), refocus_deg=sched)
                    for a, b, c in zip(t1, t2, b1v)])
    assert got.dtype == np.float32 and got.shape == (n, p.etl)
    assert_allclose(got, ref, atol=ATOL32)


def test_numpy_baseline_equals_numba(random_maps: dict) -> None:
    t1, t2 = random_maps["t1_ms"], random_maps["t2_ms"]
    b1 = np.random.default_rng(3).uniform(0.7, 1.3, t1.size)
    for p, sched in ((preset("t2w_tse_3t"), None), (preset("flair_1.5t"), np.linspace(180.0, 70.0, 24))):
        fast = epg_echo_train(t1, t2, p, b1=b1, refocus_deg=sched)
        base = epg_numpy(t1, t2, p, b1=b1, refocus_deg=sched)
        assert_allclose(base, fast, atol=ATOL32)  # same float32 algorithm, different operation order


def test_epg_signal_contract(random_maps: dict) -> None:
    shape = (10, 10, 5)
    t1, t2, pd = (random_maps[k][:500].reshape(shape) for k in ("t1_ms", "t2_ms", "pd"))
    prots = [preset("t2w_tse_3t"), preset("flair_3t"), preset("t1w_se_3t")]
    b1 = np.random.default_rng(5).uniform(0.8, 1.2, shape)
    out = epg_signal(t1, t2, pd, prots, b1=b1)
    assert out.dtype == np.float32 and out.shape == (3,) + shape
    for i, p in enumerate(prots):
        train = epg_echo_train(t1.ravel(), t2.ravel(), p, b1=b1.ravel())
        # Signal mode prunes to the states that reach echo te/esp; the states kept see the same operations.
        assert_allclose(out[i], (train[:, p.echo_index - 1] * pd.ravel()).reshape(shape), rtol=1e-6, atol=1e-9)
    # linear in PD; background (T1 = T2 = PD = 0) is exactly 0; T2 = 0 gives no echo
    assert_allclose(epg_signal(t1, t2, 2 * pd, prots, b1=b1), 2 * out, rtol=1e-6)
    zero = epg_signal(np.array([0.0, 900.0]), np.array([0.0, 0.0]), np.array([0.0, 1.0]), prots)
    assert_allclose(zero, 0.0, atol=0.0)


# --------------------------------------------------------------------------- dictionary mode
@pytest.mark.parametrize("name", sorted(n for n, p in PRESETS.items() if p.kind in SPIN_ECHO_KINDS))
def test_dictionary_matches_direct(name: str, random_maps: dict) -> None:
    # Bilinear interpolation in (ln T1, ln T2) errs by ≤ h²/8·|∂²S/∂(ln T)²| per axis. Each relaxation
    # factor e^{−t/T} has |∂²/∂(ln T)²| = |x² − x|·e^{−x} ≤ 0.31 (x = t/T); the inversion factor
    # 1 − 2κe^{−t/T1} doubles it along T1. With the default grid h = ln(1000)/127 = 0.054 (T1) and
    # ln(2500)/127 = 0.062 (T2):
    #   (0.054²·0.62 + 0.062²·0.31)/8 = 3.8e-4 of the PD scale (measured maximum over all presets: 2.4e-4),
    # so 5e-4·PD (0.05 % of PD scale, ten times under the 0.5 % requirement). The table is signed, so
    # zero crossings (inversion null, stimulated echoes changing sign) do not add kinks.
    p = PRESETS[name]
    t1, t2, pd = random_maps["t1_ms"], random_maps["t2_ms"], random_maps["pd"]
    d = EPGDictionary(p)
    unit = np.ones_like(pd)  # PD = 1: the error in units of the PD scale
    assert_allclose(d.signal(t1, t2, unit), epg_signal(t1, t2, unit, p)[0], atol=5e-4)
    assert_allclose(d.signal(t1, t2, pd), epg_signal(t1, t2, pd, p)[0], atol=5e-4 * float(pd.max()))
    assert_allclose(d.echo_train(t1[:500], t2[:500]), epg_echo_train(t1[:500], t2[:500], p), atol=5e-4)


def test_dictionary_error_is_second_order_in_grid_step(random_maps: dict) -> None:
    # Bilinear interpolation: error ∝ h². Going from 64 to 128 nodes per axis shrinks h by 127/63, so the
    # worst-case error must shrink by (127/63)² = 4.06; 10 % slack for where on the grid the worst voxel falls.
    p = preset("flair_3t")
    t1, t2 = random_maps["t1_ms"], random_maps["t2_ms"]
    unit = np.ones_like(t1)
    direct = epg_signal(t1, t2, unit, p)[0]
    err = [np.abs(EPGDictionary(p, n_t1=n, n_t2=n).signal(t1, t2, unit) - direct).max() for n in (64, 128)]
    assert_allclose(err[0] / err[1], (127 / 63) ** 2, rtol=0.1)


def test_dictionary_off_grid_voxels_are_simulated_directly() -> None:
    p = preset("flair_3t")
    d = EPGDictionary(p, n_t1=32, n_t2=24, t1_range_ms=(100.0, 5000.0), t2_range_ms=(10.0, 2000.0))
    assert d.table.shape == (32, 24, p.etl)
    t1 = np.array([[20_000.0, 50.0, 0.0], [900.0, 900.0, 900.0]])  # off grid in T1, background, PD = 0
    t2 = np.array([[100.0, 40.0, 0.0], [1.0, 9000.0, 80.0]])  # off grid in T2 on the second row
    pd = np.array([[1.0, 0.8, 0.0], [0.9, 1.0, 0.0]])
    expect = epg_signal(t1, t2, pd, p)[0]
    got = d.signal(t1, t2, pd)
    assert got.shape == t1.shape and got.dtype == np.float32
    assert_allclose(got, expect, rtol=1e-6, atol=0.0)  # same kernel on these voxels, no interpolation


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kind_preset", ["spgr_t1w_3t", "mprage_3t"])
def test_gradient_echo_kinds_are_refused(kind_preset: str) -> None:
    p = preset(kind_preset)
    one = np.array([1000.0])
    for call in (lambda: epg_echo_train(one, one / 10, p), lambda: epg_signal(one, one / 10, one / 1000, [p]),
                 lambda: EPGDictionary(p), lambda: epg_reference(1000.0, 100.0, p),
                 lambda: epg_numpy(one, one / 10, p)):
        with pytest.raises(ValueError, match=rf"kind.*{p.kind!r}.*closed form"):
            call()


def test_bad_inputs_raise_clear_errors() -> None:
    p = preset("t2w_tse_3t")
    ok = np.array([1000.0, 800.0])
    with pytest.raises(ValueError, match=r"t1_ms holds 1 non-finite"):
        epg_echo_train(np.array([1000.0, np.nan]), ok / 10, p)
    with pytest.raises(ValueError, match=r"t2_ms holds 1 value\(s\) outside >= 0"):
        epg_echo_train(ok, np.array([100.0, -1.0]), p)
    with pytest.raises(ValueError, match=r"pd holds 1 non-finite"):
        epg_signal(ok, ok / 10, np.array([1.0, np.inf]), [p])
    with pytest.raises(ValueError, match=r"b1 holds 1 value\(s\) outside > 0"):
        epg_echo_train(ok, ok / 10, p, b1=np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match=r"b1 must be a scalar or an array of the maps' shape \(2,\)"):
        epg_echo_train(ok, ok / 10, p, b1=np.ones(3))
    with pytest.raises(ValueError, match=r"flat arrays of equal shape"):
        epg_echo_train(ok, ok[:1], p)
    with pytest.raises(ValueError, match=r"same shape"):
        epg_signal(ok, ok / 10, np.ones(3), [p])
    with pytest.raises(ValueError, match=r"refocus_deg must have shape \(etl,\) = \(16,\); got \(3,\)"):
        epg_echo_train(ok, ok / 10, p, refocus_deg=np.full(3, 150.0))
    with pytest.raises(ValueError, match=r"refocus_deg\[2\] must be finite in \(0, 180\] deg; got 200"):
        epg_echo_train(ok, ok / 10, p, refocus_deg=np.r_[150.0, 150.0, 200.0, np.full(13, 150.0)])
    with pytest.raises(TypeError, match=r"protocol must be a physics.protocol.Protocol; got dict"):
        epg_echo_train(ok, ok / 10, p.to_dict())
    with pytest.raises(ValueError, match=r"epg_reference: t2_ms must be finite and > 0; got 0"):
        epg_reference(1000.0, 0.0, p)
    with pytest.raises(ValueError, match=r"EPGDictionary.t1_range_ms\[1\] must be in \(500"):
        EPGDictionary(p, t1_range_ms=(500.0, 100.0))
    with pytest.raises(ValueError, match=r"EPGDictionary.n_t2 must be an integer in \[2, 4096\]; got 1"):
        EPGDictionary(p, n_t2=1)
    with pytest.raises(ValueError, match=r"t1_ms holds 1 non-finite"):
        EPGDictionary(p, n_t1=8, n_t2=8).signal(np.array([np.nan]), np.array([50.0]), np.array([1.0]))
