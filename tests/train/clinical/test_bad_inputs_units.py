"""Bad inputs, class "time in the wrong unit": refused by train.clinical.sidecar.check_plausible_time.

Every TR / TE / TI -- from a BIDS sidecar (seconds), a DICOM header or a flag (ms) -- must lie in the plausible
range of its role (TR 1 ms-20 s, TE 0.5-500 ms, TI 10 ms-5 s or 0). A BIDS time written in ms ("EchoTime":
9.91) is refused with "was it written in ms?", a DICOM value or flag written in seconds with "was it written
in seconds?". Each case runs ``relaxomap predict`` and asserts exit status 1, a message naming the source file
or flag, the field, the value and the allowed range, and that no output folder was made.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.train.clinical.helpers import assert_refused, head_phantom, predict_cli, write_case




@pytest.mark.parametrize(("name", "key", "value", "expected"), [
    ("T2w", "EchoTime", 9.91, "EchoTime = 9.91 s is outside the plausible range of an echo time (0.0005-0.5 s); "
                              "BIDS times are in seconds (was it written in ms? 9.91 ms = 0.00991 s)"),
    ("T1w", "RepetitionTime", 600, "RepetitionTime = 600 s is outside the plausible range of a repetition time "
                                   "(0.001-20 s); BIDS times are in seconds (was it written in ms? 600 ms = 0.6 s)"),
    ("FLAIR", "InversionTime", 2500, "InversionTime = 2500 s is outside the plausible range of an inversion time "
                                     "(0.01-5 s); BIDS times are in seconds (was it written in ms?"),
    ("T1w", "EchoTime", 0.0001, "EchoTime = 0.0001 s is outside the plausible range of an echo time (0.0005-0.5 s)"),
])
def test_bids_time_in_wrong_unit(case: dict[str, Path], tiny_ckpt: Path, tmp_path: Path, name: str, key: str,
                                 value: float, expected: str) -> None:
    sidecar = case[name.lower()].with_name(f"{name}.json")
    obj = json.loads(sidecar.read_text())
    obj[key] = value
    sidecar.write_text(json.dumps(obj))
    out = tmp_path / "maps"
    assert_refused(predict_cli(case, tiny_ckpt, out), out, f"BIDS sidecar {sidecar}: {expected}")


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--t1w-tr", "0.6", "flag --t1w-tr: RepetitionTime = 0.6 ms is outside the plausible range of a repetition time "
                        "(1-20000 ms); DICOM times and the flags are in ms (was it written in seconds? 0.6 s = 600 ms)"),
    ("--t2w-te", "0.1", "flag --t2w-te: EchoTime = 0.1 ms is outside the plausible range of an echo time "
                        "(0.5-500 ms)"),
    ("--flair-ti", "2.5", "flag --flair-ti: InversionTime = 2.5 ms is outside the plausible range of an inversion "
                          "time (10-5000 ms); DICOM times and the flags are in ms (was it written in seconds? 2.5 s = "
                          "2500 ms)"),
    ("--t2w-te", "900", "flag --t2w-te: EchoTime = 900 ms is outside the plausible range of an echo time "
                        "(0.5-500 ms)"),
])
def test_flag_in_wrong_unit(case: dict[str, Path], tiny_ckpt: Path, tmp_path: Path, flag: str, value: str,
                            expected: str) -> None:
    out = tmp_path / "maps"
    assert_refused(predict_cli(case, tiny_ckpt, out, flag, value), out, expected)


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("te", 0.012, "EchoTime = 0.012 ms is outside the plausible range of an echo time (0.5-500 ms); DICOM times "
                  "and the flags are in ms (was it written in seconds? 0.012 s = 12 ms)"),
    ("tr", 0.6, "RepetitionTime = 0.6 ms is outside the plausible range of a repetition time (1-20000 ms)"),
    ("ti", 6000.0, "InversionTime = 6000 ms is outside the plausible range of an inversion time (10-5000 ms)"),
])
def test_dicom_time_in_wrong_unit(tiny_ckpt: Path, tmp_path: Path, field: str, value: float, expected: str) -> None:
    pytest.importorskip("pydicom")
    from tests.train.clinical.test_dicom import write_series

    times = {"tr": 600.0, "te": 12.0, "ti": None, field: value}
    series = write_series(tmp_path / "t1", head_phantom((16, 12, 4)) * 10, **times)
    out = tmp_path / "maps"
    assert_refused(predict_cli({"t1w": series}, tiny_ckpt, out), out, f"DICOM series {series}: {expected}")


def test_plausible_times_pass(tmp_path: Path, tiny_ckpt: Path) -> None:
    """The ranges' ends are accepted (a 3-D FLAIR's TE of 0.39 s, a TR of 12 s, TI 0 = no inversion)."""
    paths = write_case(tmp_path / "in", params={"T1w": (600.0, 10.0, 0.0), "FLAIR": (12000.0, 390.0, 2800.0)},
                       data=head_phantom() + np.float32(1))
    res = predict_cli(paths, tiny_ckpt, tmp_path / "maps")
    assert res.exit_code == 0, res.output
