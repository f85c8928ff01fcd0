"""Bad inputs, class "physically impossible protocol": train.clinical.input_checks.check_timing.

``predict`` checks each input's resolved TR / TE / TI with the shared :class:`physics.protocol.Protocol`
checks (the ones ``synth`` and ``render`` use), for the sequence kind its header names: TE >= TR, TI >= TR,
no room for an echo after TI, and a TI on a sequence without inversion are refused -- from sidecars, DICOM
headers and flags alike, and ``--force`` does not override them. Each case asserts exit status 1, a message
naming the image, the field, the value and the allowed range (Protocol's own words) with where each value came
from, and that no output was made.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.train.clinical.helpers import assert_refused, head_phantom, predict_cli




@pytest.mark.parametrize("force", [False, True])
def test_te_not_below_tr(case: dict[str, Path], tiny_ckpt: Path, tmp_path: Path, force: bool) -> None:
    out = tmp_path / "maps"
    res = predict_cli(case, tiny_ckpt, out, "--t1w-tr", "400", "--t1w-te", "450", *(["--force"] if force else []))
    assert_refused(res, out, f"T1w image {case['t1w']}: impossible protocol for a spin-echo acquisition",
                    "Protocol.te_ms must be in (0, 400); got 450.0",
                    "RepetitionTime 400 ms from flag --t1w-tr = 400 ms", "EchoTime 450 ms from flag --t1w-te = 450 ms")


def test_ti_not_below_tr(case: dict[str, Path], tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "maps"
    res = predict_cli(case, tiny_ckpt, out, "--flair-tr", "3000", "--flair-ti", "4000")
    assert_refused(res, out, f"FLAIR image {case['flair']}: impossible protocol for an inversion-recovery turbo "
                              "spin-echo acquisition", "Protocol.ti_ms must be in (0, 3000); got 4000.0",
                    "InversionTime 4000 ms from flag --flair-ti = 4000 ms")


def test_no_echo_fits_after_ti(case: dict[str, Path], tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "maps"
    res = predict_cli(case, tiny_ckpt, out, "--flair-tr", "3000", "--flair-ti", "2950")  # TE 120 ms from the sidecar
    assert_refused(res, out, "must fit in tr_ms=3000 after ti_ms=2950",
                    f"EchoTime 120 ms from sidecar {case['flair'].with_name('FLAIR.json')}")


def test_ti_on_a_sequence_without_inversion_bids(case: dict[str, Path], tiny_ckpt: Path, tmp_path: Path) -> None:
    sidecar = case["t1w"].with_name("T1w.json")
    obj = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**obj, "ScanningSequence": "SE", "InversionTime": 0.8}))
    out = tmp_path / "maps"
    res = predict_cli(case, tiny_ckpt, out, "--force")
    assert_refused(res, out, f"T1w image {case['t1w']}: impossible protocol for a spin-echo acquisition "
                              "(ScanningSequence SE names no inversion recovery",
                    "Protocol.ti_ms must be 0 for kind 'se' (no inversion); got 800.0",
                    f"InversionTime 800 ms from sidecar {sidecar}: InversionTime = 0.8 s")


def test_ti_flag_on_a_sequence_without_inversion_dicom(tiny_ckpt: Path, tmp_path: Path) -> None:
    pytest.importorskip("pydicom")
    from tests.train.clinical.test_dicom import set_header, write_series

    series = set_header(write_series(tmp_path / "t1", head_phantom((16, 12, 4)) * 10, tr=600.0, te=12.0),
                        ScanningSequence="SE", EchoTrainLength="3")
    out = tmp_path / "maps"
    res = predict_cli({"t1w": series}, tiny_ckpt, out, "--t1w-ti", "900")
    assert_refused(res, out, f"T1w image {series}: impossible protocol for a turbo spin-echo acquisition "
                              "(ScanningSequence SE names no inversion recovery",
                    "Protocol.ti_ms must be 0 for kind 'se' (no inversion); got 900.0",
                    "InversionTime 900 ms from flag --t1w-ti = 900 ms")


def test_te_not_below_tr_dicom(tiny_ckpt: Path, tmp_path: Path) -> None:
    pytest.importorskip("pydicom")
    from tests.train.clinical.test_dicom import write_series

    series = write_series(tmp_path / "t2", head_phantom((16, 12, 4)) * 10, tr=90.0, te=100.0)
    out = tmp_path / "maps"
    res = predict_cli({"t2w": series}, tiny_ckpt, out)
    assert_refused(res, out, f"T2w image {series}: impossible protocol",
                    "Protocol.te_ms must be in (0, 90); got 100.0",
                    "RepetitionTime 90 ms from DICOM header RepetitionTime (0018,0080) = 90 ms")


def test_possible_protocols_pass(tmp_path: Path, tiny_ckpt: Path) -> None:
    """An inversion-prepared T1w (T1-FLAIR: ScanningSequence SE_IR with its TI) is a possible protocol."""
    from tests.train.clinical.helpers import write_case

    paths = write_case(tmp_path / "in", params={"T1w": (2000.0, 10.0, 800.0), "T2w": (5000.0, 100.0, None)},
                       data=head_phantom() + np.float32(1))
    sidecar = paths["t1w"].with_name("T1w.json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "ScanningSequence": "SE_IR"}))
    res = predict_cli(paths, tiny_ckpt, tmp_path / "maps")
    assert res.exit_code == 0, res.output
    prov = json.loads((tmp_path / "maps" / "provenance.json").read_text())
    assert prov["inputs"]["t1w"]["sequence_kind"] == "ir_tse" and prov["forced"] == []
