"""Closed-form signal equations: Numba kernel, torch twin and float64 reference held to each other, to
closed forms written out as maths here, and to an independent event-by-event Mz simulation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from relaxomap.physics._fastexp import exp2_pair_array
from relaxomap.physics.protocol import PACK_COLUMNS, PRESETS, Protocol, pack_protocols
from relaxomap.physics.signal import signal, signal_kernel, signal_numpy, signal_packed_torch, signal_reference

PRESET_LIST = list(PRESETS.values())
# Non-preset protocols that exercise every code path: flip != 90°, refocusing != 180°, κ < 1, etl = 1 TSE.
EXTRA = [
    Protocol("tse", tr_ms=3000.0, te_ms=30.0, etl=5, esp_ms=15.0, flip_deg=70.0, refocus_deg=150.0),
    Protocol("tse", tr_ms=800.0, te_ms=12.0, etl=1, esp_ms=12.0, flip_deg=120.0, refocus_deg=60.0),
    Protocol("ir_tse", tr_ms=6000.0, te_ms=80.0, ti_ms=1800.0, etl=12, esp_ms=10.0, flip_deg=80.0,
             refocus_deg=160.0, inversion_efficiency=0.9),
    Protocol("spgr", tr_ms=8.0, te_ms=3.0, flip_deg=4.0),
    Protocol("mprage", tr_ms=2500.0, te_ms=3.0, ti_ms=1100.0, etl=160, esp_ms=8.0, flip_deg=12.0,
             inversion_efficiency=0.95),
]
ALL = PRESET_LIST + EXTRA
# Float32 kernels against the float64 reference: 1e-5 of the PD scale (the brief's budget; measured ~2e-7,
# i.e. a few float32 ulp through ~30 operations).
TOL32 = 1e-5


def _tol(pd: np.ndarray) -> float:
    return TOL32 * float(np.max(pd))


# ----------------------------------------------------------------------------- independent simulation
def _simulate(p: Protocol, t1: np.ndarray, t2: np.ndarray, pd: np.ndarray) -> np.ndarray:
    """Steady-state magnitude by applying every pulse and relaxation interval in turn, cycle after cycle,
    until the Mz at the signal pulse stops changing (float64). Written from the sequence timing alone."""
    a, b = math.radians(p.flip_deg), math.radians(p.refocus_deg)

    def relax(mz: np.ndarray, t: float) -> np.ndarray:
        return 1 - (1 - mz) * np.exp(-t / t1)

    def spin_echo_train(mz: np.ndarray) -> np.ndarray:  # from excitation to the end of the train
        mz = relax(mz * math.cos(a), p.esp_ms / 2)
        for k in range(p.etl):
            mz = relax(mz * math.cos(b), p.esp_ms if k < p.etl - 1 else p.esp_ms / 2)
        return mz

    mz, seen = np.ones_like(t1), np.full_like(t1, np.inf)
    for _ in range(20000):
        if p.kind in ("se", "tse"):
            at_pulse = mz
            mz = relax(spin_echo_train(mz), p.tr_ms - p.etl * p.esp_ms)
        elif p.kind == "ir_tse":
            at_pulse = relax(-p.inversion_efficiency * mz, p.ti_ms)
            mz = relax(spin_echo_train(at_pulse), p.tr_ms - p.ti_ms - p.etl * p.esp_ms)
        elif p.kind == "spgr":
            at_pulse = mz
            mz = relax(mz * math.cos(a), p.tr_ms)
        else:  # mprage
            t0 = p.ti_ms - (p.etl // 2) * p.esp_ms
            mz = relax(-p.inversion_efficiency * mz, t0)
            for j in range(p.etl):
                if j == p.etl // 2:
                    at_pulse = mz
                last = p.tr_ms - t0 - (p.etl - 1) * p.esp_ms
                mz = relax(mz * math.cos(a), p.esp_ms if j < p.etl - 1 else last)
        if np.max(np.abs(at_pulse - seen)) < 1e-15:
            break
        seen = at_pulse
    else:
        raise RuntimeError("simulation did not converge")
    return pd * math.sin(a) * np.abs(at_pulse) * np.exp(-p.te_ms / t2)


@pytest.mark.parametrize("p", [PRESETS[k] for k in ("t1w_se_3t", "t2w_tse_1.5t", "flair_3t", "t1flair_1.5t",
                                                    "spgr_t1w_3t", "mprage_3t")] + EXTRA,
                         ids=lambda p: p.name or f"{p.kind}-{p.flip_deg:g}-{p.refocus_deg:g}")
def test_reference_matches_event_simulation(p: Protocol) -> None:
    t1 = np.geomspace(50.0, 6000.0, 25)
    t2 = np.full_like(t1, 80.0)
    pd = np.linspace(0.3, 1.1, 25)
    # Both float64: agreement to rounding (the simulation stops at 1e-15 change per cycle).
    assert_allclose(signal_reference(t1, t2, pd, p)[0], _simulate(p, t1, t2, pd), rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- backends held to the reference
@pytest.mark.parametrize("model", ["closed", "textbook"])
def test_numba_and_numpy_float32_match_reference(random_maps: dict, model: str) -> None:
    m = random_maps
    ref = signal_reference(m["t1_ms"], m["t2_ms"], m["pd"], ALL, model=model)
    fast = signal(m["t1_ms"], m["t2_ms"], m["pd"], ALL, model=model)
    plain = signal_numpy(m["t1_ms"], m["t2_ms"], m["pd"], ALL, model=model)
    assert fast.dtype == np.float32 and plain.dtype == np.float32 and fast.shape == (len(ALL), 5000)
    assert_allclose(fast, ref, rtol=0, atol=_tol(m["pd"]))
    assert_allclose(plain, ref, rtol=0, atol=_tol(m["pd"]))


def test_kernel_entry_fills_out(random_maps: dict) -> None:
    m = random_maps
    table = pack_protocols(ALL)
    out = np.full((len(ALL), 5000), np.nan, dtype=np.float32)
    signal_kernel(m["t1_ms"], m["t2_ms"], m["pd"], table, out)
    assert_allclose(out, signal_reference(m["t1_ms"], m["t2_ms"], m["pd"], ALL), rtol=0, atol=_tol(m["pd"]))
    with pytest.raises(ValueError, match="out must be"):
        signal_kernel(m["t1_ms"], m["t2_ms"], m["pd"], table, out[:, :10])
    with pytest.raises(ValueError, match="t2_ms"):
        signal_kernel(m["t1_ms"], m["t2_ms"].astype(np.float64), m["pd"], table, out)


def test_kernel_split_over_threads() -> None:
    # 150 001 voxels: above the threading threshold (2 x 16 chunks of 2048) and not chunk-aligned, so the
    # ranges of the pool threads and their ragged ends are covered.
    rng = np.random.default_rng(11)
    n = 150_001
    t1 = np.exp(rng.uniform(np.log(50.0), np.log(6000.0), n)).astype(np.float32)
    t2 = np.minimum(np.exp(rng.uniform(np.log(5.0), np.log(3000.0), n)), t1).astype(np.float32)
    pd = rng.uniform(0.0, 1.2, n).astype(np.float32)
    prots = [PRESETS[k] for k in ("t1w_se_3t", "t2w_tse_3t", "flair_3t", "mprage_1.5t")]
    assert_allclose(signal(t1, t2, pd, prots), signal_reference(t1, t2, pd, prots), rtol=0, atol=_tol(pd))


def test_kernel_restores_floating_point_mode() -> None:
    # The kernel flushes subnormals for its own duration only: afterwards this thread must still produce
    # the subnormal 1e-40 (not 0) for 1e-30 · 1e-10 in float32.
    signal(np.full(8, 900.0), np.full(8, 80.0), np.ones(8), PRESETS["flair_3t"])
    assert np.float32(1e-30) * np.float32(1e-10) > 0


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_matches_reference(random_maps: dict, dtype: torch.dtype, device: str) -> None:
    m = random_maps
    ref = signal_reference(m["t1_ms"], m["t2_ms"], m["pd"], ALL)
    maps = [torch.as_tensor(m[k], dtype=dtype, device=device) for k in ("t1_ms", "t2_ms", "pd")]
    out = signal(*maps, ALL)
    assert out.dtype == dtype and out.device.type == device and out.shape == (len(ALL), 5000)
    # float64: the same formulas, so agreement to rounding; float32: the 1e-5 PD-scale budget.
    atol = 1e-12 if dtype == torch.float64 else _tol(m["pd"])
    assert_allclose(out.cpu().double().numpy(), ref, rtol=0, atol=atol)


# ----------------------------------------------------------------------------- analytic anchors
def test_spin_echo_closed_form(random_maps: dict) -> None:
    t1, t2, pd = (random_maps[k].astype(np.float64) for k in ("t1_ms", "t2_ms", "pd"))
    for p in (PRESETS["t1w_se_3t"], PRESETS["t2w_se_1.5t"], Protocol("se", tr_ms=250.0, te_ms=80.0)):
        tr, te = p.tr_ms, p.te_ms
        # Ideal 90°–180° spin echo: S = PD (1 − 2 e^(−(TR − TE/2)/T1) + e^(−TR/T1)) e^(−TE/T2).
        expect = pd * (1 - 2 * np.exp(-(tr - te / 2) / t1) + np.exp(-tr / t1)) * np.exp(-te / t2)
        assert_allclose(signal_reference(t1, t2, pd, p)[0], expect, rtol=1e-12, atol=1e-14)
        assert_allclose(signal(t1, t2, pd, p)[0], expect, rtol=0, atol=_tol(pd))


def test_flair_closed_forms(random_maps: dict) -> None:
    t1, t2, pd = (random_maps[k].astype(np.float64) for k in ("t1_ms", "t2_ms", "pd"))
    tr, ti = 9000.0, 2500.0
    # One 180° refocusing pulse (etl = 1, esp = TE): Mz_end = 1 − 2 e^(−ESP/2T1) + e^(−ESP/T1),
    # M_pre = 1 − (1 − Mz_end) e^(−(TR − TI − ESP)/T1), Mz(TI) = 1 − (1 + κ M_pre) e^(−TI/T1).
    esp = 100.0
    p = Protocol("ir_tse", tr_ms=tr, te_ms=esp, ti_ms=ti, etl=1, esp_ms=esp)
    mz_end = 1 - 2 * np.exp(-esp / 2 / t1) + np.exp(-esp / t1)
    m_pre = 1 - (1 - mz_end) * np.exp(-(tr - ti - esp) / t1)
    expect = pd * np.abs(1 - (1 + m_pre) * np.exp(-ti / t1)) * np.exp(-esp / t2)
    assert_allclose(signal_reference(t1, t2, pd, p)[0], expect, rtol=1e-12, atol=1e-14)
    assert_allclose(signal(t1, t2, pd, p)[0], expect, rtol=0, atol=_tol(pd))
    # A vanishing readout (esp = 0.01 ms) leaves Mz_end <= (esp / 2T1)^2 <= 1e-8 for T1 >= 50 ms, so the
    # brief's Mz_end = 0 formula PD |1 − 2e^(−TI/T1) + e^(−(TR − T_ro)/T1)| e^(−TE/T2) holds to 1e-8 · PD.
    esp = 0.01
    p = Protocol("ir_tse", tr_ms=tr, te_ms=esp, ti_ms=ti, etl=1, esp_ms=esp)
    expect = pd * np.abs(1 - 2 * np.exp(-ti / t1) + np.exp(-(tr - esp) / t1)) * np.exp(-esp / t2)
    assert_allclose(signal_reference(t1, t2, pd, p)[0], expect, rtol=0, atol=2e-8)


def test_textbook_formulas(random_maps: dict) -> None:
    t1, t2, pd = (random_maps[k].astype(np.float64) for k in ("t1_ms", "t2_ms", "pd"))
    se, fl = PRESETS["t2w_tse_3t"], PRESETS["flair_3t"]
    got = signal_reference(t1, t2, pd, [se, fl], model="textbook")
    assert_allclose(got[0], pd * (1 - np.exp(-se.tr_ms / t1)) * np.exp(-se.te_ms / t2), rtol=1e-12, atol=1e-14)
    flair = pd * np.abs(1 - 2 * np.exp(-fl.ti_ms / t1) + np.exp(-fl.tr_ms / t1)) * np.exp(-fl.te_ms / t2)
    assert_allclose(got[1], flair, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("t1_ms", [300.0, 1000.0, 4000.0])
def test_spgr_ernst_angle(t1_ms: float) -> None:
    tr, te, t2 = 15.0, 4.0, 60.0
    e1 = math.exp(-tr / t1_ms)
    ernst = math.degrees(math.acos(e1))
    s = [float(signal_reference(np.array([t1_ms]), np.array([t2]), np.array([1.0]),
                                Protocol("spgr", tr_ms=tr, te_ms=te, flip_deg=ernst + d))[0, 0])
         for d in (-0.5, 0.0, 0.5)]
    # At the Ernst angle acos(E1) the SPGR signal is maximal and equals sqrt((1 − E1)/(1 + E1)) e^(−TE/T2).
    assert_allclose(s[1], math.sqrt((1 - e1) / (1 + e1)) * math.exp(-te / t2), rtol=1e-12)
    assert s[1] > s[0] and s[1] > s[2], s


# ----------------------------------------------------------------------------- physical limits
def test_limits_pd_zero_and_t1_zero() -> None:
    t2 = np.array([0.0, 20.0, 90.0, 2000.0])
    zeros = np.zeros(4)
    for fn in (signal, signal_reference):
        assert np.all(fn(zeros, zeros, zeros, ALL) == 0.0)  # PD = 0 background: exactly 0, no NaN
        got = fn(zeros, t2, np.ones(4), ALL)  # T1 -> 0: full recovery before every pulse, so PD sin(a) e^(−TE/T2)
        expect = [math.sin(math.radians(p.flip_deg)) * np.exp(-p.te_ms / np.maximum(t2, 1e-6)) for p in ALL]
        assert_allclose(got, np.array(expect), rtol=1e-6, atol=1e-7)  # float32 for the kernel


def test_limits_huge_relaxation_times() -> None:
    t1 = np.array([1e30, 1e30, 800.0])
    t2 = np.array([60.0, 1e30, 1e30])
    pd = np.ones(3)
    for fn in (signal, signal_reference):
        got = fn(t1, t2, pd, ALL)
        assert np.all(np.isfinite(got))
        # T1 -> ∞: no regrowth, every pulse only tips Mz away: the signal vanishes (first order TR/T1).
        assert_allclose(got[:, :2], 0.0, atol=1e-12)
    # T2 -> ∞ removes only the e^(−TE/T2) factor.
    ref = signal_reference(np.array([800.0]), np.array([60.0]), np.ones(1), ALL)[:, 0]
    te = np.array([p.te_ms for p in ALL])
    assert_allclose(signal_reference(t1, t2, pd, ALL)[:, 2], ref * np.exp(te / 60.0), rtol=1e-12)


def test_linear_in_pd(random_maps: dict) -> None:
    m = random_maps
    pd2 = np.random.default_rng(5).uniform(0, 1, 5000)
    t1, t2, pd = (m[k].astype(np.float64) for k in ("t1_ms", "t2_ms", "pd"))
    a = signal_reference(t1, t2, pd, ALL)
    b = signal_reference(t1, t2, pd2, ALL)
    assert_allclose(signal_reference(t1, t2, 2.5 * pd + pd2, ALL), 2.5 * a + b, rtol=1e-12, atol=1e-15)
    # Kernel: a power-of-two scale is exact in float32, so the product rounding gives at most 1 ulp.
    assert_allclose(signal(t1, t2, 2.0 * pd, ALL), 2.0 * signal(t1, t2, pd, ALL), rtol=1.2e-7, atol=0)


# ----------------------------------------------------------------------------- gradients
def _grad_maps(p: Protocol) -> list[torch.Tensor]:
    t1 = np.array([250.0, 700.0, 1300.0, 2400.0])
    t2 = np.array([40.0, 75.0, 110.0, 900.0])
    pd = np.array([0.7, 0.8, 1.0, 0.9])
    # Keep |Mz| away from the zero crossing of inversion sequences (|.| has a kink there): 1e-3 is 1e3 times
    # the change of Mz over gradcheck's step (|dMz/dT1| < 1e-3 /ms times eps = 1e-6 ms).
    mz = signal_reference(t1, t2, pd, p)[0] / (pd * math.sin(math.radians(p.flip_deg)) * np.exp(-p.te_ms / t2))
    assert np.all(np.abs(mz) > 1e-3), mz
    return [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (t1, t2, pd)]


@pytest.mark.parametrize("name", ["t1w_se_3t", "t2w_tse_3t", "flair_3t", "t1flair_3t", "spgr_t1w_3t", "mprage_3t"])
def test_gradcheck(name: str) -> None:
    p = PRESETS[name]
    maps = _grad_maps(p)
    assert torch.autograd.gradcheck(lambda a, b, c: signal(a, b, c, p), maps, eps=1e-6, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_finite_at_background_and_extremes(dtype: torch.dtype) -> None:
    t1 = torch.tensor([0.0, 0.0, 1e30, 900.0, 1e-9], dtype=dtype, requires_grad=True)
    t2 = torch.tensor([0.0, 80.0, 1e30, 0.0, 1e-9], dtype=dtype, requires_grad=True)
    pd = torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0], dtype=dtype, requires_grad=True)
    out = signal(t1, t2, pd, ALL)
    out.sum().backward()
    for x in (out, t1.grad, t2.grad, pd.grad):
        assert torch.isfinite(x).all(), x


# ----------------------------------------------------------------------------- packed (per-sample protocols)
def test_packed_mixed_kinds_matches_signal() -> None:
    rng = np.random.default_rng(7)
    per_sample = [ALL[0:4], ALL[4:8], [ALL[7], ALL[3], ALL[19], ALL[21]]]  # different kinds in every row
    b, shape = len(per_sample), (5, 6)
    t1 = np.exp(rng.uniform(np.log(50), np.log(6000), (b,) + shape))
    t2 = np.minimum(np.exp(rng.uniform(np.log(5), np.log(3000), (b,) + shape)), t1)
    pd = rng.uniform(0, 1.2, (b,) + shape)
    t1[:, 0, 0] = t2[:, 0, 0] = pd[:, 0, 0] = 0.0  # background voxel
    maps = [torch.tensor(v, requires_grad=True) for v in (t1, t2, pd)]
    packed = torch.as_tensor(np.stack([pack_protocols(ps) for ps in per_sample]))
    assert packed.shape == (b, 4, len(PACK_COLUMNS))
    out = signal_packed_torch(*maps, packed)
    assert out.shape == (b, 4) + shape
    for i, ps in enumerate(per_sample):  # float64 throughout: agreement to rounding
        assert_allclose(out[i].detach().numpy(), signal_reference(t1[i], t2[i], pd[i], ps), rtol=1e-12, atol=1e-14)
    out.sum().backward()
    assert all(torch.isfinite(m.grad).all() for m in maps)
    small = [torch.tensor(v[:, 1:3, 1], requires_grad=True) for v in (t1, t2, pd)]  # (B, 2)
    ref = np.stack([signal_reference(v1, v2, v3, ps) for v1, v2, v3, ps in
                    zip(t1[:, 1:3, 1], t2[:, 1:3, 1], pd[:, 1:3, 1], per_sample)])
    assert np.all(ref > 1e-4), ref  # the drawn voxels are away from inversion nulls (see _grad_maps)
    assert torch.autograd.gradcheck(lambda a, c, d: signal_packed_torch(a, c, d, packed), small, atol=1e-8)


# ----------------------------------------------------------------------------- shapes and errors
def test_shapes_and_dtypes() -> None:
    t1 = np.full((2, 3, 4), 900.0)  # float64 input -> float32 kernel output
    out = signal(t1, t1 / 10, np.ones((2, 3, 4)), PRESETS["t1w_se_3t"])
    assert out.shape == (1, 2, 3, 4) and out.dtype == np.float32
    assert signal_reference(t1, t1 / 10, np.ones((2, 3, 4)), ALL[:3]).shape == (3, 2, 3, 4)


@pytest.mark.parametrize("name, bad", [("t1_ms", np.nan), ("t2_ms", -1.0), ("pd", np.inf), ("pd", -0.1)])
@pytest.mark.parametrize("fn", [signal, signal_reference, signal_numpy])
def test_bad_maps_are_named(fn, name: str, bad: float) -> None:
    maps = {"t1_ms": np.full(6, 900.0), "t2_ms": np.full(6, 80.0), "pd": np.ones(6)}
    maps[name][3] = bad
    with pytest.raises(ValueError, match=name):
        fn(maps["t1_ms"], maps["t2_ms"], maps["pd"], PRESETS["flair_3t"])


def test_bad_arguments() -> None:
    a = np.ones(4)
    with pytest.raises(ValueError, match="t2_ms has shape"):
        signal(a, np.ones(5), a, PRESETS["flair_3t"])
    with pytest.raises(ValueError, match="model"):
        signal(a, a, a, PRESETS["flair_3t"], model="bloch")
    with pytest.raises(TypeError, match="protocols"):
        signal(a, a, a, "flair_3t")
    with pytest.raises(TypeError, match="pd must be a torch.Tensor"):
        signal(torch.ones(4), torch.ones(4), a, PRESETS["flair_3t"])
    packed = torch.as_tensor(pack_protocols([PRESETS["flair_3t"]]))[None]
    with pytest.raises(ValueError, match="kind_code"):
        signal_packed_torch(torch.ones(1, 4), torch.ones(1, 4), torch.ones(1, 4), packed.clone().fill_(9.0))


def test_fast_exp_accuracy() -> None:
    y = np.concatenate([-np.linspace(0.0, 126.0, 400_001), -np.geomspace(1e-10, 1.0, 20_001)]).astype(np.float32)
    e, one_minus_e = exp2_pair_array(y)
    y64 = y.astype(np.float64)
    # A few float32 ulp (ulp = 6e-8): both 2^y and 1 − 2^y, the latter also for y -> 0 (long T1).
    assert_allclose(e, 2.0 ** y64, rtol=3e-7, atol=0)
    assert_allclose(one_minus_e, -np.expm1(y64 * math.log(2.0)), rtol=3e-7, atol=0)
