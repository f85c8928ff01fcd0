"""synth.mismatch: exams whose physics differs from the sidecars, against independent references."""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics.epg_reference import epg_reference
from relaxomap.physics.forward import render
from relaxomap.physics.protocol import PRESETS
from relaxomap.synth.maps import Maps
from relaxomap.synth.mismatch import (
    FACTORS,
    MismatchConfig,
    render_mismatched,
    sample_mismatch,
    signal_dictionary,
    slice_profile,
)

EXAM = (PRESETS["t1w_tse_3t"], PRESETS["t2w_tse_3t"], PRESETS["flair_3t"])


@pytest.fixture(scope="module")
def maps() -> Maps:
    """A 20 x 18 x 6 block of random brain-like values (1 mm voxels) inside a zero border."""
    rng = np.random.default_rng(7)
    shape = (20, 18, 6)
    t1 = np.exp(rng.uniform(math.log(500), math.log(4500), shape)).astype(np.float32)
    t2 = np.minimum(np.exp(rng.uniform(math.log(40), math.log(2000), shape)), 0.9 * t1).astype(np.float32)
    pd = rng.uniform(0.6, 1.0, shape).astype(np.float32)
    inside = np.zeros(shape, bool)
    inside[3:-3, 3:-3, :] = True
    t1, t2, pd = (np.where(inside, a, 0).astype(np.float32) for a in (t1, t2, pd))
    return Maps(t1, t2, pd, inside.astype(np.uint8) * 3, inside, np.ones(3, np.float32), 3.0, "block", "test")


def _echo(t1: float, t2: float, protocol, b1: float, b1_inversion: float | None = None) -> float:
    """The independent float64 EPG at the protocol's TE; a 180° inversion at scale b flips Mz to
    cos(pi b) Mz, i.e. efficiency -cos(pi b) times the protocol's (written here from the rotation)."""
    b_inv = b1 if b1_inversion is None else b1_inversion
    if protocol.kind == "ir_tse":
        protocol = protocol.with_(inversion_efficiency=protocol.inversion_efficiency * -math.cos(math.pi * b_inv))
    k = round(protocol.te_ms / protocol.esp_ms) if protocol.kind != "se" else 1
    return float(epg_reference(t1, t2, protocol, b1=b1)[k - 1])


def test_dictionary_nodes_equal_the_float64_reference() -> None:
    """At grid nodes no interpolation happens: float32 NumPy EPG vs float64 reference, 3e-5 of M0."""
    from relaxomap.synth import mismatch

    for p in (EXAM[1].with_(refocus_deg=130.0), EXAM[2].with_(inversion_efficiency=0.95, refocus_deg=140.0)):
        table = signal_dictionary(p, np.array([0.85]), profile=False)[0]
        for i, j in ((10, 20), (30, 35), (45, 50), (55, 40)):
            t1, t2 = mismatch._T1_GRID_MS[i], mismatch._T2_GRID_MS[j]
            if t2 < t1:
                assert_allclose(abs(table[i, j]), _echo(t1, t2, p, 0.85), rtol=0, atol=3e-5)


def test_slice_profile_is_the_mean_over_the_flip_scales() -> None:
    from relaxomap.synth import mismatch

    scales, weights = slice_profile()
    assert_allclose(scales, scales[::-1], rtol=0, atol=1e-12) and scales.max() == 1.0
    assert_allclose(weights.sum(), 1.0, rtol=1e-12)
    p = EXAM[2]
    table = signal_dictionary(p, np.array([1.0]), profile=True)[0]
    t1, t2 = mismatch._T1_GRID_MS[40], mismatch._T2_GRID_MS[30]
    want = sum(w * _echo(t1, t2, p, max(s, 1e-3), 1.0) for s, w in zip(scales, weights))  # inversion: slab
    # the mean of signed echoes: this grid point (T1 1.26 s) is well before the FLAIR null: all of one sign
    assert_allclose(abs(table[40, 30]), want, rtol=0, atol=3e-5)
    assert abs(table[40, 30]) < _echo(t1, t2, p, 1.0)  # the slice edges flip less: less signal


def test_no_mismatch_equals_the_epg_forward_model(maps: Maps) -> None:
    """All factors off: the dictionary renderer reproduces the EPG forward model (Numba kernel) to the
    interpolation error of its 64 x 64 log grid: 0.5 % of M0 (measured: < 0.2 %)."""
    images, draw = render_mismatched(maps, EXAM, MismatchConfig.none(), np.random.default_rng(0))
    want = render(maps.t1_ms, maps.t2_ms, maps.pd, list(EXAM), forward="epg")
    assert_allclose(images, want, rtol=0, atol=5e-3)
    assert draw.b1 is None and draw.receive is None and not np.any(draw.shift_mm)


def test_b1_field_scales_every_pulse_including_the_inversion(maps: Maps) -> None:
    images, draw = render_mismatched(maps, EXAM, MismatchConfig.only("b1"), np.random.default_rng(1))
    assert_allclose([draw.b1.min(), draw.b1.max()], [0.75, 1.15], rtol=1e-6)
    idx = np.argwhere(maps.mask)[::37]
    for c, p in enumerate(EXAM):
        got = np.array([images[c][tuple(v)] for v in idx])
        want = np.array([maps.pd[tuple(v)] * _echo(float(maps.t1_ms[tuple(v)]), float(maps.t2_ms[tuple(v)]), p,
                                                    float(draw.b1[tuple(v)])) for v in idx])
        assert_allclose(got, want, rtol=0, atol=6e-3)  # grid interpolation in (B1, ln T1, ln T2)


def test_receive_fields_and_misregistration(maps: Maps) -> None:
    ideal, _ = render_mismatched(maps, EXAM, MismatchConfig.none(), np.random.default_rng(2))
    recv, draw = render_mismatched(maps, EXAM, MismatchConfig.only("receive"), np.random.default_rng(2))
    inside = maps.mask
    for c in range(3):
        assert_allclose(recv[c][inside], ideal[c][inside] * draw.receive[c][inside], rtol=1e-5)
        assert np.all(np.abs(draw.receive[c] - 1) <= 2 * 0.15 + 1e-6)
    assert not np.allclose(draw.receive[0], draw.receive[1])  # independent per series
    big = Maps(*(np.pad(a, 6) for a in (maps.t1_ms, maps.t2_ms, maps.pd, maps.labels, maps.mask)),
               maps.voxel_mm, 3.0, "block", "test")
    base, _ = render_mismatched(big, EXAM, MismatchConfig.none(), np.random.default_rng(3))
    moved, draw = render_mismatched(big, EXAM, MismatchConfig.only("misregistration_mm"), np.random.default_rng(3))
    grid = np.indices(base.shape[1:]).reshape(3, -1).astype(np.float64)
    com = lambda im: grid @ im.ravel() / im.sum()  # noqa: E731  centre of mass [voxels]
    assert_allclose(com(moved[0]), com(base[0]), atol=1e-9)  # the first series is the reference
    for c in (1, 2):
        assert_allclose(np.linalg.norm(draw.shift_mm[c]), 1.0, rtol=1e-12)
        assert_allclose(com(moved[c]) - com(base[c]), draw.shift_mm[c], atol=0.05)  # 1 mm voxels


def test_draws_stay_in_their_ranges_and_only_turns_on_one_factor(maps: Maps) -> None:
    for seed in range(3):
        draw = sample_mismatch(np.random.default_rng(seed), MismatchConfig(), EXAM, maps)
        assert all(120.0 <= a <= 160.0 for a in draw.refocus_deg)
        assert draw.inversion_efficiency[:2] == (None, None) and 0.92 <= draw.inversion_efficiency[2] <= 0.98
    for factor in FACTORS:
        cfg = MismatchConfig.only(factor)
        on = [f for f in FACTORS if getattr(cfg, f) not in (None, False, 0.0)]
        assert on == [factor]
    with pytest.raises(ValueError, match=r"MismatchConfig\.b1"):
        MismatchConfig(b1=(1.2, 0.8))
    with pytest.raises(ValueError, match="factor must be one of"):
        MismatchConfig.only("gradient nonlinearity")
