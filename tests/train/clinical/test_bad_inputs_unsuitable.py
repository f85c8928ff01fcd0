"""Bad inputs, class "an input the model was not made for": train.clinical.input_checks.unsuitable.

Refused before predicting unless ``--force`` (which then runs, warns and records each reason under
``"forced"`` in provenance.json), read from BIDS sidecars and from DICOM headers alike:

- a 3-D variable-flip-angle spin-echo train (SPACE / CUBE / VISTA: MRAcquisitionType 3D, a long echo train);
- a gradient-echo or MPRAGE T1w (ScanningSequence GR, IR\\GR) when the checkpoint was trained on spin-echo
  kinds only -- the kinds are read from the checkpoint's recorded training protocols;
- a post-contrast image (ContrastBolusAgent / ContrastBolusIngredient);
- a field strength outside the trained ones (MagneticFieldStrength).

Each refusal asserts exit status 1, a message naming the file, the header field and its value, what the model
was trained on and ``--force``, and that no output was made.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from relaxomap.synth.protocols import ProtocolRanges
from relaxomap.train.cli import main
from relaxomap.train.clinical.map_files import PROVENANCE_FILE
from tests.train.clinical.helpers import head_phantom, make_tiny_checkpoint

_VFA = ("is a 3-D spin-echo acquisition with an echo train of 180 (MRAcquisitionType 3D", "variable-flip-angle "
        "train (SPACE / CUBE / VISTA)")
_GRE = ("is a spoiled gradient-echo acquisition (ScanningSequence GR: gradient echo); the model was trained on T1w "
        "kinds se, tse, ir_tse only",)
_MPRAGE = ("is an MPRAGE (inversion-prepared gradient-echo) acquisition (ScanningSequence", "the model was trained "
           "on T1w kinds se, tse, ir_tse only")
_FIELD = ("was acquired at 7 T (MagneticFieldStrength in", "the model was trained at 1.5, 3 T only")
#: (contrast, BIDS fields, message parts, TR/TE/TI [ms] of the image)
BIDS_CASES = {
    "3d_vfa_flair": ("flair", {"MRAcquisitionType": "3D", "EchoTrainLength": 180, "ScanningSequence": "SE_IR"},
                     _VFA, (5000.0, 390.0, 1800.0)),
    "gradient_echo_t1w": ("t1w", {"ScanningSequence": "GR", "FlipAngle": 25}, _GRE, (20.0, 4.0, None)),
    "mprage_t1w": ("t1w", {"ScanningSequence": "GR_IR", "EchoTrainLength": 176}, _MPRAGE, (2300.0, 3.0, 900.0)),
    "contrast_ingredient": ("t1w", {"ContrastBolusIngredient": "GADOLINIUM"},
                            ("is post-contrast (ContrastBolusIngredient = GADOLINIUM in BIDS sidecar",
                             "native (pre-contrast) relaxation times only"), (600.0, 10.0, None)),
    "contrast_agent": ("t1w", {"ContrastBolusAgent": "Gadovist"}, ("is post-contrast (ContrastBolusAgent = Gadovist",),
                       (600.0, 10.0, None)),
    "field_7t": ("t2w", {"MagneticFieldStrength": 7}, _FIELD, (5000.0, 100.0, None)),
}


def _write(directory: Path, contrast: str, fields: dict, times: tuple) -> Path:
    """One NIfTI + BIDS sidecar (seconds) with extra header fields."""
    from relaxomap.train.clinical.nifti import save_nifti
    from tests.train.clinical.helpers import case_affine

    directory.mkdir(parents=True, exist_ok=True)
    name = {"t1w": "T1w", "t2w": "T2w", "flair": "FLAIR"}[contrast]
    save_nifti(directory / f"{name}.nii.gz", head_phantom(), case_affine())
    tr, te, ti = times
    side = {"RepetitionTime": tr / 1000, "EchoTime": te / 1000, **({"InversionTime": ti / 1000} if ti else {}),
            **fields}
    (directory / f"{name}.json").write_text(json.dumps(side))
    return directory / f"{name}.nii.gz"


def _predict(contrast: str, path: Path, ckpt: Path, out: Path, *extra: str) -> object:
    return CliRunner().invoke(main, ["predict", f"--{contrast}", str(path), "--out", str(out), "--checkpoint",
                                     str(ckpt), "--quiet", *extra])


def _assert_refused(res: object, out: Path, source: Path, parts: tuple[str, ...]) -> None:
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: the model was not made for these inputs: ") and "Traceback" not in res.output
    assert str(source) in res.output and "Pass --force to predict anyway" in res.output
    for part in parts:
        assert part in res.output, (part, res.output)
    assert not out.exists() and not list(out.parent.glob(f"{out.name}.tmp-*"))


@pytest.mark.parametrize("name", sorted(BIDS_CASES))
def test_bids_refused_unless_forced(tmp_path: Path, tiny_ckpt: Path, name: str) -> None:
    contrast, fields, parts, times = BIDS_CASES[name]
    path = _write(tmp_path / "in", contrast, fields, times)
    out = tmp_path / "maps"
    _assert_refused(_predict(contrast, path, tiny_ckpt, out), out, path, parts)
    res = _predict(contrast, path, tiny_ckpt, out, "--force")
    assert res.exit_code == 0, res.output
    prov = json.loads((out / PROVENANCE_FILE).read_text())
    assert len(prov["forced"]) == 1 and all(p in prov["forced"][0] for p in parts)
    assert any(w.startswith("--force: ") and parts[0] in w for w in prov["warnings"])
    assert "warning: --force: " in res.stderr


DICOM_CASES = {
    "3d_vfa_flair": ("flair", {"MRAcquisitionType": "3D", "EchoTrainLength": "180", "ScanningSequence": ["SE", "IR"]},
                     _VFA, (5000.0, 390.0, 1800.0)),
    "mprage_t1w": ("t1w", {"ScanningSequence": ["IR", "GR"], "MRAcquisitionType": "3D"}, _MPRAGE,
                   (2300.0, 3.0, 900.0)),
    "gradient_echo_t1w": ("t1w", {"ScanningSequence": "GR"}, _GRE, (20.0, 4.0, None)),
    "contrast_agent": ("t1w", {"ContrastBolusAgent": "Gadovist"}, ("is post-contrast (ContrastBolusAgent = Gadovist "
                                                                    "in DICOM header of series",), (600.0, 10.0, None)),
    "field_7t": ("t2w", {"MagneticFieldStrength": "7"}, _FIELD, (5000.0, 100.0, None)),
}


@pytest.mark.parametrize("name", sorted(DICOM_CASES))
def test_dicom_refused_unless_forced(tmp_path: Path, tiny_ckpt: Path, name: str) -> None:
    pytest.importorskip("pydicom")
    from tests.train.clinical.test_dicom import set_header, write_series

    contrast, attrs, parts, (tr, te, ti) = DICOM_CASES[name]
    series = set_header(write_series(tmp_path / "s", head_phantom((16, 12, 4)) * 10, tr=tr, te=te, ti=ti), **attrs)
    out = tmp_path / "maps"
    _assert_refused(_predict(contrast, series, tiny_ckpt, out), out, series, parts)
    res = _predict(contrast, series, tiny_ckpt, out, "--force")
    assert res.exit_code == 0, res.output
    assert json.loads((out / PROVENANCE_FILE).read_text())["forced"]


def test_several_reasons_are_listed_together(tmp_path: Path, tiny_ckpt: Path) -> None:
    path = _write(tmp_path / "in", "t1w", {"ScanningSequence": "GR", "ContrastBolusAgent": "Gd",
                                           "MagneticFieldStrength": 7.0}, (20.0, 4.0, None))
    out = tmp_path / "maps"
    _assert_refused(_predict("t1w", path, tiny_ckpt, out), out, path, (*_GRE, "is post-contrast", *_FIELD))


def test_kinds_come_from_the_checkpoint(tmp_path: Path) -> None:
    """A checkpoint whose recorded training protocols include MPRAGE for T1w accepts an MPRAGE T1w."""
    ranges = ProtocolRanges()
    t1w = tuple(dataclasses.replace(k, probability=0.5) if k.kind == "mprage" else k for k in ranges.t1w)
    ranges = dataclasses.replace(ranges, t1w=t1w)
    ckpt = make_tiny_checkpoint(tmp_path / "mprage.pt", extra={"protocol_ranges": ranges.to_dict()})
    path = _write(tmp_path / "in", "t1w", {"ScanningSequence": "GR_IR"}, (2300.0, 3.0, 900.0))
    res = _predict("t1w", path, ckpt, tmp_path / "maps")
    assert res.exit_code == 0, res.output
    prov = json.loads((tmp_path / "maps" / PROVENANCE_FILE).read_text())
    assert prov["inputs"]["t1w"]["sequence_kind"] == "mprage" and prov["forced"] == []


def test_shipped_model_accepts_its_own_kinds() -> None:
    """Every sequence kind and field the shipped model was trained on passes, as relaxomap's own sidecars
    describe them (the demo's inputs); the model's recorded kinds are the spin-echo ones."""
    from relaxomap.physics.protocol import PRESETS
    from relaxomap.train.checkpoint import load_checkpoint
    from relaxomap.train.clinical.acquisition import read_acquisition, sequence_kind
    from relaxomap.train.clinical.input_checks import unsuitable
    from relaxomap.train.clinical.predict import DEFAULT_MODEL
    from relaxomap.train.clinical.sidecar import bids_sidecar_dict
    from relaxomap.train.clinical.training_facts import trained_for

    trained = trained_for(load_checkpoint(DEFAULT_MODEL))
    assert trained.kinds == {"t1w": ("se", "tse", "ir_tse"), "t2w": ("tse",), "flair": ("ir_tse",)}
    assert "recorded" in trained.source and trained.fields_t == (1.5, 3.0)
    examples = {"t1w": ("t1w_se", "t1w_tse", "t1flair"), "t2w": ("t2w_tse",), "flair": ("flair",)}
    for contrast, names in examples.items():
        for name in names:
            for tag in ("1.5t", "3t"):
                prot = PRESETS[f"{name}_{tag}"]
                acq = read_acquisition(bids_sidecar_dict(prot).get, name)
                kind, why = sequence_kind(contrast, acq, prot.ti_ms)
                assert kind == prot.kind and unsuitable(contrast, acq, kind, why, trained, name) == []


@pytest.mark.parametrize(("fields", "expected"), [
    ({"MagneticFieldStrength": 15000}, "MagneticFieldStrength = 15000 is not a field strength in tesla (0-21 T); "
                                       "was it written in gauss or mT?"),
    ({"EchoTrainLength": "many"}, "EchoTrainLength must be a number; got 'many'"),
    ({"EchoTrainLength": 2.5}, "EchoTrainLength must be a whole number of echoes; got 2.5"),
    ({"MagneticFieldStrength": -3}, "MagneticFieldStrength must be a finite number >= 0; got -3"),
])
def test_malformed_header_fields_refused(tmp_path: Path, tiny_ckpt: Path, fields: dict, expected: str) -> None:
    path = _write(tmp_path / "in", "t2w", fields, (5000.0, 100.0, None))
    out = tmp_path / "maps"
    res = _predict("t2w", path, tiny_ckpt, out, "--force")
    assert res.exit_code == 1, res.output
    assert f"BIDS sidecar {path.with_name('T2w.json')}: {expected}" in res.output and not out.exists()


def test_zero_means_not_recorded(tmp_path: Path, tiny_ckpt: Path) -> None:
    """Converters write 0 for a field that does not apply: it is read as not recorded, not refused."""
    path = _write(tmp_path / "in", "t2w", {"EchoTrainLength": 0, "MagneticFieldStrength": 0, "ContrastBolusAgent": ""},
                  (5000.0, 100.0, None))
    res = _predict("t2w", path, tiny_ckpt, tmp_path / "maps")
    assert res.exit_code == 0, res.output
