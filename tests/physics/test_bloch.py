"""Isochromat Bloch simulator against analytic solutions, an exact-ODE reference, an independent EPG and physics.epg."""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics import bloch as bloch_module
from relaxomap.physics._bloch_kernel import _CRUSH, _FREE, _INVERT, _PULSE, _SAMPLE, _SPOIL
from relaxomap.physics.bloch import bloch_echo_train, bloch_run, bloch_signal, default_n_iso, shaped_pulse_affine
from relaxomap.physics.bloch_reference import (
    bloch_reference,
    free_precession,
    rf_rotation,
    rotation_matrix,
    sequence_events,
)
from relaxomap.physics.protocol import PRESETS, Protocol
from relaxomap.physics.rf import PulseShape, rect_shape, rf_spoil_phases_deg, sinc_shape

# Brain-range tissues (WM, GM, CSF, fat, deep GM, lesion at 3 T) [ms]
T1 = np.array([850.0, 1450.0, 4160.0, 380.0, 1200.0, 1300.0])
T2 = np.array([75.0, 95.0, 1650.0, 110.0, 70.0, 120.0])
TIGHT = dict(tol=1e-13, max_tr=100_000)  # steady state to ~1e-13 M0, so closed forms can be met to ~1e-10


# ------------------------------------------------------------------------------------------ building blocks
def test_rotation_matrix_is_right_handed_rodrigues() -> None:
    rng = np.random.default_rng(0)
    axis = rng.normal(size=3)
    angle = 1.234
    r = rotation_matrix(axis, angle)
    # exact: orthogonal, det 1, leaves the axis fixed, and a quarter turn about z takes x to y
    assert_allclose(r @ r.T, np.eye(3), atol=1e-14)
    assert_allclose(np.linalg.det(r), 1.0, atol=1e-14)
    assert_allclose(r @ axis, axis, atol=1e-14)
    assert_allclose(rotation_matrix((0, 0, 1), math.pi / 2) @ [1.0, 0, 0], [0.0, 1.0, 0.0], atol=1e-15)
    # a 90° pulse about y tips z onto x; about x it tips z onto −y (right-handed)
    assert_allclose(rf_rotation(90.0, 90.0) @ [0, 0, 1.0], [1.0, 0, 0], atol=1e-15)
    assert_allclose(rf_rotation(90.0, 0.0) @ [0, 0, 1.0], [0, -1.0, 0], atol=1e-15)
    with pytest.raises(ValueError, match="axis"):
        rotation_matrix((0, 0, 0), 1.0)


def test_free_relaxation_matches_analytic() -> None:
    t1, t2, t = 900.0, 80.0, 37.0
    m = free_precession(np.array([[0.6, 0.0, -0.4]]), t, t1, t2, off_resonance_hz=10.0)
    # transverse: |M_xy| e^{-t/T2}, phase 2π·Δf·t; longitudinal: 1 − (1 − M_z) e^{-t/T1} (rounding only)
    phase = 2 * math.pi * 10.0 * t / 1000.0
    assert_allclose(m[0, :2], 0.6 * math.exp(-t / t2) * np.array([math.cos(phase), math.sin(phase)]), rtol=1e-14)
    assert_allclose(m[0, 2], 1.0 - 1.4 * math.exp(-t / t1), rtol=1e-14)


def test_spin_echo_steady_state_formula() -> None:
    p = Protocol("se", tr_ms=600.0, te_ms=20.0)
    tr, te = p.tr_ms, p.te_ms
    pd = np.linspace(0.5, 1.0, T1.size)
    expected = pd * (1 - 2 * np.exp(-(tr - te / 2) / T1) + np.exp(-tr / T1)) * np.exp(-te / T2)
    # exact model (hard 90/180, crushers, ideal spoiling): float64 rounding and the 1e-13 steady-state tol
    assert_allclose(bloch_signal(T1, T2, pd, p, **TIGHT), expected, rtol=1e-10)
    # hard 180° refocusing cancels any global off-resonance exactly at the echo
    assert_allclose(bloch_signal(T1, T2, pd, p, off_resonance_hz=37.0, **TIGHT), expected, rtol=1e-10)


@pytest.mark.parametrize("kappa", [1.0, 0.9])
def test_inversion_recovery_matches_analytic(kappa: float) -> None:
    p = Protocol("ir_tse", tr_ms=3000.0, te_ms=20.0, ti_ms=700.0, etl=1, esp_ms=20.0, inversion_efficiency=kappa)
    tr, ti, te = p.tr_ms, p.ti_ms, p.te_ms
    # cycle: inversion (Mz -> -κ Mz) · TI · 90° · TE/2 · 180° · TR − TI − TE/2; Mz before inversion:
    m_pre = 1 - (2 - np.exp(-te / (2 * T1))) * np.exp(-(tr - ti - te / 2) / T1)
    expected = np.abs(1 - (1 + kappa * m_pre) * np.exp(-ti / T1)) * np.exp(-te / T2)
    assert_allclose(bloch_signal(T1, T2, 1.0, p, **TIGHT), expected, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("flip_deg", [5.0, 25.0, 70.0])
def test_spgr_ideal_spoiling_is_ernst(flip_deg: float) -> None:
    p = Protocol("spgr", tr_ms=20.0, te_ms=4.0, flip_deg=flip_deg)
    a, e1 = math.radians(flip_deg), np.exp(-p.tr_ms / T1)
    expected = 0.8 * math.sin(a) * (1 - e1) / (1 - math.cos(a) * e1) * np.exp(-p.te_ms / T2)
    assert_allclose(bloch_signal(T1, T2, 0.8, p, **TIGHT), expected, rtol=1e-9)
    # b1 scales the flip: b1 = 0.8 at flip_deg is the ideal signal at 0.8·flip_deg
    a8 = 0.8 * a
    expected8 = math.sin(a8) * (1 - e1) / (1 - math.cos(a8) * e1) * np.exp(-p.te_ms / T2)
    assert_allclose(bloch_signal(T1, T2, 1.0, p, b1=0.8, **TIGHT), expected8, rtol=1e-9)


def _epg_rf_spoiled_spgr(t1: float, t2: float, flip_deg: float, tr: float, te: float, n_tr: int) -> float:
    """Independent complex EPG (Weigel JMRI 2015, F+/F-/Z rows) of 117° RF-spoiled SPGR, one gradient cycle per TR."""
    a = math.radians(flip_deg)
    p = np.zeros((3, n_tr + 2), complex)
    p[2, 0] = 1.0
    e1, e2 = math.exp(-tr / t1), math.exp(-tr / t2)
    c2, s2, s, c = math.cos(a / 2) ** 2, math.sin(a / 2) ** 2, math.sin(a), math.cos(a)
    out = 0.0
    for n, ph in enumerate(np.radians(rf_spoil_phases_deg(n_tr))):
        e = np.exp(1j * ph)
        t = np.array([[c2, e**2 * s2, -1j * e * s], [np.conj(e) ** 2 * s2, c2, 1j * np.conj(e) * s],
                      [-0.5j * np.conj(e) * s, 0.5j * e * s, c]])
        p = t @ p
        out = abs(p[0, 0]) * math.exp(-te / t2)
        p[:2] *= e2
        p[2] *= e1
        p[2, 0] += 1 - e1
        p[0, 1:] = p[0, :-1].copy()
        p[1, :-1] = p[1, 1:].copy()
        p[1, -1] = 0.0
        p[0, 0] = np.conj(p[1, 0])
    return out


@pytest.mark.parametrize("flip_deg", [8.0, 25.0])
def test_spgr_rf_spoiling_matches_independent_epg_and_is_near_ernst(flip_deg: float) -> None:
    p = Protocol("spgr", tr_ms=20.0, te_ms=4.0, flip_deg=flip_deg)
    t1, t2 = T1[[0, 1, 3, 4, 5]], T2[[0, 1, 3, 4, 5]]  # brain tissue and fat, T2 <= 120 ms
    run = bloch_run(t1, t2, p, spoiling="rf", tol=1e-10, max_tr=50_000)
    got = np.abs(run.echoes[:, 0])
    assert run.converged.all()
    n = int(run.n_tr.max()) + 200  # EPG run past the Bloch steady state
    epg = np.array([_epg_rf_spoiled_spgr(a, b, flip_deg, p.tr_ms, p.te_ms, n) for a, b in zip(t1, t2)])
    # same physics, different method: agree to the aliasing level of default_n_iso (1e-9) and the steady-state
    # tolerance (1e-10 with the geometric tail), relative to signals >= 0.03
    assert_allclose(got, epg, rtol=1e-7)
    a, e1 = math.radians(flip_deg), np.exp(-p.tr_ms / t1)
    ernst = math.sin(a) * (1 - e1) / (1 - math.cos(a) * e1) * np.exp(-p.te_ms / t2)
    # Zur et al. (MRM 1991) chose Φ = 117° because it keeps the RF-spoiled steady state within a few percent of
    # the ideal (Ernst) signal for flips up to ~30° and T2 << T1 (Preibisch & Deichmann MRM 2009, Fig. 2: ≤ 3 %
    # for TR 20 ms, brain T1/T2). It is not exact: the residual coherences are real physics.
    assert_allclose(got, ernst, rtol=0.03)
    assert np.abs(got / ernst - 1).max() > 1e-4  # RF spoiling is not ideal spoiling: the simulator must see it


def test_mprage_matches_longitudinal_recursion() -> None:
    p = PRESETS["mprage_3t"].with_(inversion_efficiency=0.95)
    got = bloch_signal(T1, T2, 1.0, p, **TIGHT)
    a, esp, n, c = math.radians(p.flip_deg), p.esp_ms, p.etl, p.etl // 2
    t0 = p.ti_ms - c * esp
    # ideal spoiling leaves only M_z; iterate the TR map (inversion, recovery, n pulses) to its fixed point
    expected = []
    for t1, t2 in zip(T1, T2):
        m = 1.0
        for _ in range(200):  # contraction factor <= e^{-TR/T1} ≈ 0.6 per TR: 200 TRs reach 1e-40
            mz = 1 - (1 + 0.95 * m) * math.exp(-t0 / t1)
            for i in range(n):
                if i == c:
                    sig = mz * math.sin(a) * math.exp(-p.te_ms / t2)
                mz = 1 - (1 - mz * math.cos(a)) * math.exp(-esp / t1)
            m = 1 - (1 - mz) * math.exp(-(p.tr_ms - t0 - n * esp) / t1)
        expected.append(abs(sig))
    assert_allclose(got, expected, rtol=1e-9)


# ------------------------------------------------------------------------------------------ spin-echo trains
def test_cpmg_180_train_is_pure_t2_decay() -> None:
    p = Protocol("tse", tr_ms=59_000.0, te_ms=10.0, etl=32, esp_ms=10.0)
    t1, t2 = T1[[0, 1, 3, 4]], T2[[0, 1, 3, 4]]  # T1 <= 1450 ms: e^{-(TR - 320)/T1} < 1e-17, full recovery
    train = bloch_echo_train(t1, t2, p, off_resonance_hz=23.0, **TIGHT)
    k = np.arange(1, p.etl + 1)
    expected = np.exp(-k * p.esp_ms / t2[:, None])  # CPMG with ideal 180°: exp(-n·esp/T2), off-resonance refocused
    assert_allclose(train, expected, rtol=1e-10)


@pytest.mark.parametrize("name", ["t2w_tse_3t", "flair_3t", "t1flair_1.5t"])
@pytest.mark.parametrize("b1", [1.0, 0.85])
def test_tse_150_refocusing_equals_epg(name: str, b1: float) -> None:
    from relaxomap.physics.epg import epg_echo_train
    from relaxomap.physics.epg_reference import epg_reference

    p = PRESETS[name]
    assert p.refocus_deg == 150.0
    got = bloch_echo_train(T1, T2, p, b1=b1, **TIGHT)
    # float64 EPG reference: N = 2·etl + 2 isochromats hold every dephasing order of the train without aliasing,
    # so the two methods are the same maths in a different basis: agree to float64 rounding
    ref = np.array([epg_reference(a, b, p, b1=b1) for a, b in zip(T1, T2)])
    assert_allclose(got, ref, rtol=1e-9, atol=1e-13)
    # the float32 kernel: float32 rounding accumulated over the train
    assert_allclose(got, epg_echo_train(T1, T2, p, b1=b1), rtol=2e-5, atol=1e-6)
    # and the 150° train is not the 180° one (stimulated echoes): the comparison can fail
    assert np.abs(got[:, -1] / bloch_echo_train(T1, T2, p.with_(refocus_deg=180.0))[:, -1] - 1).max() > 0.01


def test_default_n_iso_is_alias_free_and_fewer_alias() -> None:
    p = PRESETS["t2w_tse_3t"]
    n = default_n_iso(p)
    assert n == 2 * p.etl + 2
    exact = bloch_echo_train(T1, T2, p, n_iso=n, **TIGHT)
    assert_allclose(bloch_echo_train(T1, T2, p, n_iso=4 * n + 3, **TIGHT), exact, rtol=1e-10, atol=1e-14)
    # too few isochromats alias dephased states onto the echo: visibly different
    assert np.abs(bloch_echo_train(T1, T2, p, n_iso=p.etl // 2, **TIGHT) - exact).max() > 1e-3


# ------------------------------------------------------------------------------------------ shaped pulses
def test_shaped_pulse_same_area_same_onresonance_flip() -> None:
    for shape in (sinc_shape(4.0, 2.0, 200), rect_shape(1.0, 16), sinc_shape(6.0, 3.0, 300, window="none")):
        a, b = shaped_pulse_affine(shape, 10.0)  # no relaxation, on resonance
        # constant-phase waveform: product of rotations about x = one rotation by the area (rounding only)
        assert_allclose(a, rf_rotation(10.0, 0.0), atol=1e-13)
        assert_allclose(b, 0.0, atol=1e-15)
    # any amplitude/phase waveform: a constant RF phase of 0.3 rad turns the rotation axis to (cos 0.3, sin 0.3, 0)
    phased = PulseShape(np.hanning(40) + 0.1, np.full(40, 0.3), 1.5, name="phased hann")
    assert_allclose(shaped_pulse_affine(phased, 10.0)[0], rf_rotation(10.0, math.degrees(0.3)), atol=1e-13)
    # with relaxation during a 1 ms pulse the small-tip signal differs from the hard pulse only by the decay
    # during the pulse: O(duration/T2) = 1 ms / 75 ms
    p = Protocol("spgr", tr_ms=20.0, te_ms=4.0, flip_deg=10.0)
    hard = bloch_signal(T1, T2, 1.0, p, **TIGHT)
    sinc = bloch_signal(T1, T2, 1.0, p, pulse="sinc", **TIGHT)
    assert_allclose(sinc, hard, rtol=1.0 / 75.0)


def test_sinc_small_tip_profile_is_fourier_transform() -> None:
    shape = sinc_shape(4.0, 2.0, 256)
    t_ms = (np.arange(shape.n_steps) + 0.5) * shape.dt_ms - 0.5 * shape.duration_ms
    flip = 5.0
    freqs = np.array([0.0, 300.0, 800.0, 1000.0, 1500.0, 3000.0])  # [Hz]; passband |f| < tbw/T/2 = 1 kHz
    got = np.array([np.hypot(*(shaped_pulse_affine(shape, flip, off_resonance_hz=f)[0] @ [0, 0, 1.0])[:2])
                    for f in freqs])
    ft = np.abs([np.sum(shape.amplitude * np.exp(2j * np.pi * f * t_ms / 1000.0)) for f in freqs])
    expected = math.sin(math.radians(flip)) * ft / ft[0]
    # small-tip approximation error is O(flip²) relative: (5° = 0.087 rad)² / 2 ≈ 0.4 % of sin(flip)
    assert_allclose(got, expected, atol=0.004 * math.sin(math.radians(flip)))
    assert got[-1] < 0.01 * got[0] < got[2]  # 3 kHz is in the stop band, 800 Hz in the pass band


@pytest.mark.parametrize("name, spoiling", [("t1w_se_3t", "ideal"), ("t2w_tse_3t", "ideal"), ("spgr_t1w_3t", "rf")])
def test_stepped_kernel_converges_to_exact_ode_reference(name: str, spoiling: str) -> None:
    p = PRESETS[name]
    if p.kind == "tse":
        p = p.with_(tr_ms=1500.0)
    kw = dict(off_resonance_hz=120.0, b1=0.9, spoiling=spoiling, n_iso=96 if spoiling == "rf" else None)
    errors = []
    for n_steps in (128, 256):
        shape = sinc_shape(4.0, 2.0 if p.kind != "spgr" else 1.0, n_steps)
        run = bloch_run(850.0, 75.0, p, pulse=shape, max_tr=12, **kw)
        # reference: exact matrix exponential of the Bloch equation per piecewise-constant step
        ref = bloch_reference(850.0, 75.0, p, n_tr=int(run.n_tr), pulse=shape, **kw)
        errors.append(np.abs(run.echoes - ref).max())
    # kernel: Strang splitting of relaxation around an exact rotation per step, second order in Δt: halving Δt
    # quarters the error (ratio 4 ± 10 %, higher-order terms), and at 256 steps it is below 1e-6 M0
    assert errors[1] < 1e-6
    assert_allclose(errors[0] / errors[1], 4.0, rtol=0.1)


# ------------------------------------------------------------------------------------------ sequence timing
_OP_NAMES = {_FREE: "free", _PULSE: "pulse", _CRUSH: "crush", _SPOIL: "spoil", _INVERT: "invert", _SAMPLE: "sample"}


def _program_times(protocol: Protocol, pulse: str | PulseShape = "hard") -> tuple[list[tuple], float]:
    """The kernel's op table for one TR as (op, start_ms, end_ms, index) from the TR start, and the TR length."""
    shapes = bloch_module._pulse_shapes(protocol, pulse)
    ops, _, _ = bloch_module._build_program(protocol, shapes, "ideal")
    t, out = 0.0, []
    for code, a, _, _ in ops:
        if code == _FREE:
            t += a
            continue
        dur = shapes[int(a)].duration_ms if code == _PULSE and shapes[int(a)] is not None else 0.0
        index = int(a) if code in (_PULSE, _SAMPLE) else 0
        out.append((_OP_NAMES[int(code)], round(t, 9), round(t + dur, 9), index))
        t += dur
    return out, t


def _reference_times(protocol: Protocol, duration_ms: float, shift_ms: float) -> list[tuple]:
    """The reference's timeline for one TR in the same form, shifted so that the TR starts at 0."""
    events, start, end = sequence_events(protocol, (duration_ms, duration_ms))
    assert end - start == protocol.tr_ms and start == -shift_ms
    return [(e.action, round(e.start_ms - start, 9), round(e.start_ms - start + e.duration_ms, 9), e.index)
            for e in events]


def test_program_timing_of_a_small_tse_by_hand() -> None:
    # Hard pulses, esp 10 ms, etl 3, TR 100 ms: excitation at 0; refocusing at 5, 15, 25 ms, each between two
    # crushers; echoes at 10, 20, 30 ms; spoiler at the end of the TR (100 ms).
    p = Protocol("tse", tr_ms=100.0, te_ms=20.0, etl=3, esp_ms=10.0, refocus_deg=150.0)
    expected = [("pulse", 0.0, 0.0, 0)]
    for k, centre in enumerate((5.0, 15.0, 25.0)):
        expected += [("crush", centre, centre, 0), ("pulse", centre, centre, 1), ("crush", centre, centre, 0),
                     ("sample", centre + 5.0, centre + 5.0, k)]
    expected.append(("spoil", 100.0, 100.0, 0))
    times, tr = _program_times(p)
    assert times == expected and tr == 100.0
    assert _reference_times(p, 0.0, 0.0) == expected


def test_program_timing_of_a_small_ir_tse_with_shaped_pulses_by_hand() -> None:
    # 2 ms pulses centred on the nominal times; TR runs inversion to inversion. Inversion at 0; excitation
    # 499-501 ms (TI = 500); refocusing 504-506 and 514-516 ms, crushers at their edges; echoes at 510, 520 ms.
    p = Protocol("ir_tse", tr_ms=2000.0, te_ms=20.0, ti_ms=500.0, etl=2, esp_ms=10.0, inversion_efficiency=0.9)
    expected = [("invert", 0.0, 0.0, 0), ("pulse", 499.0, 501.0, 0),
                ("crush", 504.0, 504.0, 0), ("pulse", 504.0, 506.0, 1), ("crush", 506.0, 506.0, 0),
                ("sample", 510.0, 510.0, 0),
                ("crush", 514.0, 514.0, 0), ("pulse", 514.0, 516.0, 1), ("crush", 516.0, 516.0, 0),
                ("sample", 520.0, 520.0, 1), ("spoil", 2000.0, 2000.0, 0)]
    times, tr = _program_times(p, rect_shape(2.0, 8))
    assert times == expected and tr == 2000.0
    assert _reference_times(p, 2.0, 500.0) == expected  # the reference counts from the excitation: inversion at −TI


def test_program_timing_of_a_small_mprage_by_hand() -> None:
    # etl 3, esp 10, TI 100 (inversion → centre pulse): pulses at 90, 100, 110 ms, each followed by a spoiler
    # right before the next pulse slot (100, 110, 120 ms); the sample TE = 4 ms after the centre pulse.
    p = Protocol("mprage", tr_ms=500.0, te_ms=4.0, ti_ms=100.0, etl=3, esp_ms=10.0, flip_deg=8.0)
    expected = [("invert", 0.0, 0.0, 0), ("pulse", 90.0, 90.0, 0), ("spoil", 100.0, 100.0, 0),
                ("pulse", 100.0, 100.0, 0), ("sample", 104.0, 104.0, 0), ("spoil", 110.0, 110.0, 0),
                ("pulse", 110.0, 110.0, 0), ("spoil", 120.0, 120.0, 0), ("spoil", 500.0, 500.0, 0)]
    times, tr = _program_times(p)
    assert times == expected and tr == 500.0
    assert _reference_times(p, 0.0, 0.0) == expected


_HARD_CASES = {
    "tse150": Protocol("tse", tr_ms=900.0, te_ms=24.0, etl=4, esp_ms=12.0, refocus_deg=150.0),
    "ir_tse": Protocol("ir_tse", tr_ms=3000.0, te_ms=24.0, ti_ms=800.0, etl=4, esp_ms=12.0, refocus_deg=140.0,
                       flip_deg=80.0, inversion_efficiency=0.9),
    "se": Protocol("se", tr_ms=500.0, te_ms=15.0, refocus_deg=160.0),
    "spgr_rf": Protocol("spgr", tr_ms=15.0, te_ms=5.0, flip_deg=20.0),
    "mprage_rf": Protocol("mprage", tr_ms=600.0, te_ms=3.0, ti_ms=200.0, etl=5, esp_ms=8.0, flip_deg=10.0),
}


def _kernel_vs_reference(p: Protocol, n_tr: int) -> tuple[np.ndarray, np.ndarray]:
    spoiling = "rf" if p.kind in ("spgr", "mprage") else "ideal"
    kw = dict(b1=0.9, off_resonance_hz=37.0, spoiling=spoiling, n_iso=48 if spoiling == "rf" else None)
    run = bloch_run(850.0, 75.0, p, max_tr=n_tr, tol=1e-300, **kw)  # tol: run exactly n_tr TRs
    assert int(run.n_tr) == n_tr
    return run.echoes, bloch_reference(850.0, 75.0, p, n_tr=n_tr, **kw)


@pytest.mark.parametrize("name", sorted(_HARD_CASES))
def test_kernel_equals_reference_on_its_own_timeline(name: str) -> None:
    # Hard pulses: the kernel (op table from _build_program, Numba) and the reference (its own timeline, 3×3
    # matrices) are the same maths; off-resonance (37 Hz) makes every free interval's length visible as a
    # phase. Both float64: a few hundred operations per TR round at 1e-16 each, so 1e-12 of M0.
    got, ref = _kernel_vs_reference(_HARD_CASES[name], 7)
    assert_allclose(got, ref, rtol=0, atol=1e-12)
    assert np.abs(ref).min() > 1e-3  # every sample carries signal


def test_kernel_versus_reference_sees_a_builder_timing_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Move each echo of the op table 0.1 ms late (TR kept): the comparison above must then fail by far.
    build = bloch_module._build_program

    def late_echoes(protocol, shapes, spoiling):
        ops, n_slots, te_slot = build(protocol, shapes, spoiling)
        ops = ops.copy()
        for i in np.flatnonzero(ops[:, 0] == _SAMPLE):
            ops[i - 1, 1] += 0.1  # the free interval before the sample
            ops[i + 1, 1] -= 0.1  # and the one after it
        return ops, n_slots, te_slot

    monkeypatch.setattr(bloch_module, "_build_program", late_echoes)
    got, ref = _kernel_vs_reference(_HARD_CASES["tse150"], 7)
    assert np.abs(got - ref).max() > 1e-4


# ------------------------------------------------------------------------------------------ errors, warnings
def test_errors_name_the_argument() -> None:
    p = PRESETS["t2w_tse_3t"]
    with pytest.raises(ValueError, match="pulse must be"):
        bloch_signal(T1, T2, 1.0, p, pulse="gauss")
    with pytest.raises(ValueError, match="spoiling must be"):
        bloch_signal(T1, T2, 1.0, p, spoiling="perfect")
    with pytest.raises(ValueError, match="t2_ms"):
        bloch_signal(T1, -T2, 1.0, p)
    with pytest.raises(ValueError, match="overlap"):
        bloch_signal(T1, T2, 1.0, Protocol("tse", tr_ms=1000.0, te_ms=3.0, etl=4, esp_ms=3.0), pulse="sinc")
    with pytest.raises(ValueError, match="kind"):
        bloch_echo_train(T1, T2, PRESETS["spgr_t1w_3t"])
    with pytest.raises(ValueError, match="zero small-tip area"):
        PulseShape(np.array([1.0, -1.0]), None, 1.0)
    with pytest.warns(RuntimeWarning, match="max_tr=3"):
        bloch_signal(T1, T2, 1.0, PRESETS["spgr_t1w_3t"], max_tr=3)


def test_background_and_shapes() -> None:
    p = PRESETS["flair_3t"]
    t1 = np.array([[0.0, 850.0], [4160.0, 0.0]])
    t2 = np.array([[0.0, 75.0], [1650.0, 0.0]])
    out = bloch_signal(t1, t2, np.ones((2, 2)), p)
    assert out.shape == (2, 2) and out.dtype == np.float64
    assert_allclose(out[[0, 1], [0, 1]], 0.0, atol=0.0)  # T1 = T2 = 0: instant decay, no signal
    assert_allclose(out[0, 1], bloch_signal(850.0, 75.0, 1.0, p), rtol=1e-12)
