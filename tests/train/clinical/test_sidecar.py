"""Sequence parameters: BIDS seconds to ms, flags over sidecars, inversion recovery needs TI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from numpy.testing import assert_allclose

from relaxomap.train.clinical.sidecar import read_bids_sidecar, resolve_parameters, seconds_to_ms


def test_seconds_to_ms_and_sidecar_units(tmp_path: Path) -> None:
    assert seconds_to_ms(2.5) == 2500.0
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"RepetitionTime": 0.65, "EchoTime": [0.012], "InversionTime": 0.9}))
    fp = read_bids_sidecar(p)
    assert_allclose([fp.values[k].value_ms for k in ("tr_ms", "te_ms", "ti_ms")], [650.0, 12.0, 900.0],
                    rtol=1e-12)  # exact decimal conversions up to float64 rounding
    p.write_text(json.dumps({"RepetitionTime": 650, "EchoTime": 0.012}))  # TR written in ms by mistake
    with pytest.raises(ValueError, match=r"RepetitionTime = 650 s .*BIDS times are in seconds"):
        read_bids_sidecar(p)


def test_flag_overrides_sidecar(case: dict[str, Path]) -> None:
    fp = read_bids_sidecar(case["flair"].with_name("FLAIR.json"))
    got = resolve_parameters("flair", fp, {"ti_ms": 2300.0})
    assert got["ti_ms"].value_ms == 2300.0 and got["ti_ms"].source == "flag --flair-ti = 2300 ms"
    assert got["tr_ms"].value_ms == pytest.approx(9000.0, rel=1e-12) and "sidecar" in got["tr_ms"].source


def test_inversion_recovery_without_ti_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "t1.json"
    p.write_text(json.dumps({"RepetitionTime": 2.0, "EchoTime": 0.01, "ScanningSequence": "SE_IR"}))
    with pytest.raises(ValueError, match=r"T1w InversionTime missing although sidecar .*t1\.json says inversion "
                                         r"recovery \(ScanningSequence SE_IR\); pass --t1w-ti MS"):
        resolve_parameters("t1w", read_bids_sidecar(p), {})
    assert resolve_parameters("t1w", read_bids_sidecar(p), {"ti_ms": 800.0})["ti_ms"].value_ms == 800.0
    p.write_text(json.dumps({"RepetitionTime": 0.6, "EchoTime": 0.01, "ScanningSequence": "SE"}))
    assert resolve_parameters("t1w", read_bids_sidecar(p), {})["ti_ms"].value_ms == 0.0


def test_protocol_from_a_plain_bids_sidecar(tmp_path: Path) -> None:
    """A dcm2niix-style sidecar (seconds, no RelaxomapProtocol): kind from the header, ms inside, TE a whole
    number of echo spacings near 10 ms."""
    import json

    from relaxomap.train.clinical.sidecar import protocol_from_sidecar

    flair = tmp_path / "flair.json"
    flair.write_text(json.dumps({"RepetitionTime": 9.0, "EchoTime": 0.125, "InversionTime": 2.5,
                                 "EchoTrainLength": 24, "ScanningSequence": "SE_IR", "MagneticFieldStrength": 3}))
    p = protocol_from_sidecar(flair, "flair")
    assert (p.kind, p.tr_ms, p.te_ms, p.ti_ms, p.etl, p.field_t) == ("ir_tse", 9000.0, 125.0, 2500.0, 24, 3.0)
    assert p.esp_ms == pytest.approx(125.0 / 12, rel=1e-12)  # 12 echoes of 10.4 ms reach TE
    t1w = tmp_path / "t1w.json"
    t1w.write_text(json.dumps({"RepetitionTime": 0.6, "EchoTime": 0.01}))
    p = protocol_from_sidecar(t1w, "t1w", field_t=1.5)
    assert (p.kind, p.tr_ms, p.te_ms, p.etl, p.field_t) == ("se", 600.0, 10.0, 1, 1.5)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"EchoTime": 0.1}))
    with pytest.raises(ValueError, match=r"bad\.json lacks RepetitionTime"):
        protocol_from_sidecar(bad, "t2w")
