"""Randomised protocols: valid by construction, inside their ranges, at the drawn probabilities; config errors."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics.protocol import CONTRASTS, Protocol
from relaxomap.physics.tissues import tissue_values
from relaxomap.synth.protocols import (
    CONTRAST_KINDS,
    KindRanges,
    ProtocolRanges,
    csf_null_ti_ms,
    sample_protocols,
)

N_DRAWS = 3000


@pytest.fixture(scope="module")
def drawn() -> dict[float, list[tuple[Protocol, ...]]]:
    ranges = ProtocolRanges()
    rng = np.random.default_rng(7)
    return {f: [sample_protocols(rng, ranges, f) for _ in range(N_DRAWS)] for f in (1.5, 3.0)}


def test_defaults_cover_clinical_contrasts(drawn) -> None:
    ranges = ProtocolRanges()
    for field_t, draws in drawn.items():
        for contrast_index, contrast in enumerate(CONTRASTS):
            kinds = {d[contrast_index].kind for d in draws}
            assert kinds <= set(CONTRAST_KINDS[contrast])
        assert {d[0].kind for d in draws} == {"se", "tse", "ir_tse"}  # T1w SE, TSE, T1-FLAIR
        assert {d[1].kind for d in draws} == {"tse"}
        assert {d[2].kind for d in draws} == {"ir_tse"}
        assert all(p.field_t == field_t for d in draws for p in d)
    assert ranges.fields_t == (1.5, 3.0)


def test_kind_frequencies_match_probabilities(drawn) -> None:
    entries = ProtocolRanges().t1w
    total = sum(e.probability for e in entries)
    draws = drawn[3.0]
    for e in entries:
        p = e.probability / total
        count = sum(d[0].kind == e.kind for d in draws)
        # binomial: 5 standard deviations (false-alarm rate ~1e-6)
        assert abs(count - p * N_DRAWS) <= 5 * math.sqrt(N_DRAWS * p * (1 - p)) + 1e-9, (e.kind, count)


def test_values_inside_ranges_and_te_on_echo_grid(drawn) -> None:
    ranges = ProtocolRanges()
    for draws in drawn.values():
        for d in draws:
            for contrast, prot in zip(CONTRASTS, d):
                kr = next(e for e in getattr(ranges, contrast) if e.kind == prot.kind)
                assert kr.tr_ms[0] <= prot.tr_ms <= kr.tr_ms[1]
                # the default ranges always contain a multiple of every ESP, so TE stays in range
                assert kr.te_ms[0] - 1e-9 <= prot.te_ms <= kr.te_ms[1] + 1e-9, prot
                assert kr.refocus_deg[0] <= prot.refocus_deg <= kr.refocus_deg[1] or prot.kind == "spgr"
                if prot.kind in ("tse", "ir_tse"):
                    assert kr.esp_ms[0] <= prot.esp_ms <= kr.esp_ms[1]
                    assert 1 <= prot.echo_index <= prot.etl <= kr.etl[1]
                    # float rounding of k*esp only
                    assert_allclose(prot.te_ms, prot.echo_index * prot.esp_ms, rtol=1e-12)
                    assert prot.ti_ms + prot.etl * prot.esp_ms <= prot.tr_ms
                if prot.kind == "ir_tse" and kr.ti_mode == "range":
                    assert kr.ti_ms[0] <= prot.ti_ms <= kr.ti_ms[1]


def test_flair_ti_near_csf_null(drawn) -> None:
    jitter = ProtocolRanges().flair[0].ti_jitter
    for field_t, draws in drawn.items():
        t1_csf = tissue_values("CSF", field_t).t1_ms
        for d in draws[:300]:
            p = d[2]
            null = csf_null_ti_ms(p.tr_ms, p.etl * p.esp_ms, t1_csf, p.inversion_efficiency)
            assert null * (1 - jitter) - 1e-9 <= p.ti_ms <= null * (1 + jitter) + 1e-9


@pytest.mark.parametrize("tr_ms, readout_ms, t1_ms, kappa", [(9000, 240, 4160, 1.0), (8000, 448, 4000, 0.95),
                                                             (11000, 96, 4160, 1.0), (2500, 60, 900, 0.9)])
def test_csf_null_solves_its_equation(tr_ms, readout_ms, t1_ms, kappa) -> None:
    ti = csf_null_ti_ms(tr_ms, readout_ms, t1_ms, kappa)
    t_rec = tr_ms - ti - readout_ms
    mz = 1 - (1 + kappa * (1 - math.exp(-t_rec / t1_ms))) * math.exp(-ti / t1_ms)
    assert_allclose(mz, 0.0, atol=1e-9)  # fixed-point iteration stops at |ΔTI| < 1e-6 ms


def test_csf_null_limit_long_tr() -> None:
    # TR -> infinity: full recovery, TI = T1 ln(1 + κ) (T1 ln 2 for a perfect inversion)
    assert_allclose(csf_null_ti_ms(1e7, 200.0, 4000.0, 1.0), 4000.0 * math.log(2.0), rtol=1e-9)
    assert_allclose(csf_null_ti_ms(1e7, 200.0, 4000.0, 0.9), 4000.0 * math.log(1.9), rtol=1e-9)


def test_csf_null_nulls_the_closed_form_signal() -> None:
    from relaxomap.physics.signal import signal

    for tr, etl, esp, kappa, refocus in [(9000, 24, 10.0, 1.0, 180.0), (8000, 32, 14.0, 0.95, 150.0),
                                         (11000, 12, 8.0, 1.0, 120.0)]:
        ti = csf_null_ti_ms(tr, etl * esp, 4160.0, kappa)
        flair = Protocol("ir_tse", tr_ms=tr, te_ms=8 * esp, ti_ms=ti, etl=etl, esp_ms=esp,
                         inversion_efficiency=kappa, refocus_deg=refocus)
        no_ir = Protocol("tse", tr_ms=tr, te_ms=8 * esp, etl=etl, esp_ms=esp, refocus_deg=refocus)
        s = signal(np.float32([4160.0]), np.float32([1650.0]), np.float32([1.0]), [flair, no_ir])[:, 0]
        # The closed form differs from the null's model only by the Mz the echo train leaves behind
        # (≈ (1 − e^(−esp/2T1))² ≈ 1e-6 at 180°, ≲ 1e-4 at 120°); 1e-3 of the un-inverted signal bounds it.
        assert s[0] < 1e-3 * s[1], (tr, s)


def test_same_seed_same_protocols() -> None:
    ranges = ProtocolRanges()
    a = [sample_protocols(np.random.default_rng(3), ranges, 3.0) for _ in range(2)]
    assert a[0] == a[1]
    b = sample_protocols(np.random.default_rng(4), ranges, 3.0)
    assert b != a[0]


def test_json_round_trip() -> None:
    ranges = ProtocolRanges()
    text = ranges.to_json()
    assert ProtocolRanges.from_json(text) == ranges
    d = json.loads(text)
    d["t2w"][0]["te_ms"] = [90, 100]
    changed = ProtocolRanges.from_dict(d)
    assert changed.t2w[0].te_ms == (90.0, 100.0)
    assert changed.t1w == ranges.t1w


def test_optional_kinds_sampled_when_enabled() -> None:
    d = ProtocolRanges().to_dict()
    for e in d["t1w"]:
        e["probability"] = {"spgr": 0.5, "mprage": 0.5}.get(e["kind"], 0.0)
    ranges = ProtocolRanges.from_dict(d)
    rng = np.random.default_rng(0)
    kinds = {sample_protocols(rng, ranges, 1.5)[0].kind for _ in range(200)}
    assert kinds == {"spgr", "mprage"}


@pytest.mark.parametrize("changes, field", [
    ({"ti_ms": [500, 3000], "tr_ms": [2000, 2500]}, "ti_ms"),  # TI >= TR
    ({"tr_ms": [-10, 500]}, "tr_ms"),  # negative
    ({"te_ms": [30, 10]}, "te_ms"),  # min > max
    ({"etl": [2.5, 4]}, "etl"),  # not an integer
    ({"esp_ms": [0, 10]}, "esp_ms"),  # zero spacing
    ({"refocus_deg": [100, 200]}, "refocus_deg"),  # above 180°
    ({"probability": -1}, "probability"),
    ({"ti_mode": "sometimes"}, "ti_mode"),
    ({"bogus": 1}, "bogus"),
])
def test_invalid_ranges_name_the_field(changes, field) -> None:
    d = ProtocolRanges().to_dict()
    d["t1w"][2].update(changes)  # the T1-FLAIR entry
    with pytest.raises(ValueError, match=field):
        ProtocolRanges.from_dict(d)


def test_contrast_and_field_errors() -> None:
    with pytest.raises(ValueError, match="flair kind must be one of"):
        ProtocolRanges(flair=(KindRanges("tse", tr_ms=(3000, 4000), te_ms=(80, 100), etl=(8, 8),
                                         esp_ms=(10, 10)),))
    with pytest.raises(ValueError, match="probabilities must not all be 0"):
        ProtocolRanges(t2w=(KindRanges("tse", 0.0, tr_ms=(3000, 4000), te_ms=(80, 100), etl=(8, 8),
                                       esp_ms=(10, 10)),))
    with pytest.raises(ValueError, match="field_t"):
        ProtocolRanges(fields_t=(7.0,))
    with pytest.raises(ValueError, match="fields_t"):
        sample_protocols(np.random.default_rng(0), ProtocolRanges(fields_t=(3.0,)), 1.5)
    with pytest.raises(ValueError, match="esp_ms"):  # one echo cannot fit in TR
        KindRanges("tse", tr_ms=(100, 200), te_ms=(10, 20), etl=(1, 4), esp_ms=(10, 150))
