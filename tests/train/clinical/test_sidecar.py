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
