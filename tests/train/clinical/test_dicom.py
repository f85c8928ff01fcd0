"""DICOM series input: geometry from ImagePositionPatient / ImageOrientationPatient / PixelSpacing, sequence
parameters from the header (ms), and errors naming the file."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

pydicom = pytest.importorskip("pydicom")

from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid  # noqa: E402

from tests.train.clinical.helpers import head_phantom, make_tiny_checkpoint  # noqa: E402
from relaxomap.train.clinical.dicom import load_dicom_series  # noqa: E402
from relaxomap.train.clinical.map_files import PROVENANCE_FILE  # noqa: E402
from relaxomap.train.clinical.predict import run_predict  # noqa: E402


def _save(ds: Dataset, path: Path) -> None:
    try:
        ds.save_as(path, enforce_file_format=True)  # pydicom >= 3
    except TypeError:
        ds.save_as(path, write_like_original=False)  # pydicom 2.x


def write_series(directory: Path, volume: np.ndarray, *, iop=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                 spacing=(0.8, 0.9), origin=(10.0, -20.0, 30.0), slice_gap=2.5, tr=600.0, te=12.0,
                 ti: float | None = None, slope: float = 1.0, order=None) -> Path:
    """One single-frame MR file per slice; ``volume`` is (columns, rows, slices), pixel[r, c] = volume[c, r, k].

    Slice k is at ``origin + k·slice_gap·(row_dir × col_dir)`` (LPS, mm); files are written in ``order``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    row_dir, col_dir = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row_dir, col_dir)
    series = generate_uid()
    n = volume.shape[2]
    for i, k in enumerate(order if order is not None else range(n)):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID = series
        ds.Modality = "MR"
        ds.InstanceNumber = i + 1
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in np.asarray(origin) + k * slice_gap * normal]
        ds.PixelSpacing = [f"{v:g}" for v in spacing]
        ds.SliceThickness = f"{slice_gap:g}"
        ds.RepetitionTime = f"{tr:g}"
        ds.EchoTime = f"{te:g}"
        if ti is not None:
            ds.InversionTime = f"{ti:g}"
        if slope != 1.0:
            ds.RescaleSlope = f"{slope:g}"
            ds.RescaleIntercept = "0"
        pix = np.round(volume[:, :, k].T / slope).astype(np.uint16)  # (rows, columns)
        ds.Rows, ds.Columns = pix.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.PixelData = pix.tobytes()
        _save(ds, directory / f"IM{i:04d}.dcm")
    return directory


def set_header(directory: Path, **attributes: object) -> Path:
    """Set DICOM attributes (by keyword) in every file of a series written by :func:`write_series`."""
    for f in sorted(directory.glob("*.dcm")):
        ds = pydicom.dcmread(f)
        for key, value in attributes.items():
            setattr(ds, key, value)
        _save(ds, f)
    return directory


def _lps_to_ras(p: np.ndarray) -> np.ndarray:
    return p * np.array([-1.0, -1.0, 1.0])


@pytest.mark.parametrize("oblique", [False, True])
def test_geometry_and_parameters(tmp_path: Path, oblique: bool) -> None:
    vol = np.arange(8 * 6 * 4, dtype=np.float64).reshape(8, 6, 4) * 3.0  # (columns, rows, slices)
    if oblique:  # rows tilted 30 degrees about z, columns tilted 20 degrees towards z
        a, b = np.radians(30.0), np.radians(20.0)
        row = np.array([np.cos(a), np.sin(a), 0.0])
        col = np.array([-np.sin(a) * np.cos(b), np.cos(a) * np.cos(b), np.sin(b)])
        iop = (*row, *col)
    else:
        iop = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    d = write_series(tmp_path / "s", vol, iop=iop, ti=900.0, slope=0.5, order=[2, 0, 3, 1])
    v = load_dicom_series(d, "T1w image")
    assert_array_equal(v.data, vol.astype(np.float32))  # slices sorted, RescaleSlope 0.5 applied
    row_dir, col_dir = np.array(iop[:3]), np.array(iop[3:])
    normal = np.cross(row_dir, col_dir)
    for c, r, k in [(0, 0, 0), (7, 0, 0), (0, 5, 0), (3, 2, 3), (7, 5, 3)]:
        # DICOM PS3.3 C.7.6.2.1.1: P = IPP_k + c·Δc·X + r·Δr·Y, PixelSpacing = (Δr, Δc)
        lps = np.array([10.0, -20.0, 30.0]) + k * 2.5 * normal + c * 0.9 * row_dir + r * 0.8 * col_dir
        # header strings keep 6 decimals: positions agree to 1e-5 mm
        assert_allclose((v.affine @ [c, r, k, 1.0])[:3], _lps_to_ras(lps), atol=1e-5)
    params = v.metadata["params"].values
    assert params["tr_ms"].value_ms == 600.0 and params["te_ms"].value_ms == 12.0
    assert params["ti_ms"].value_ms == 900.0 and "(0018,0082)" in params["ti_ms"].source


def test_predict_from_dicom_series(tmp_path: Path) -> None:
    ckpt = make_tiny_checkpoint(tmp_path / "tiny.pt")
    head = head_phantom((36, 40, 6)).astype(np.float64) * 10
    dirs = {
        "t1w": write_series(tmp_path / "t1", head, tr=600.0, te=10.0),
        "t2w": write_series(tmp_path / "t2", head, tr=5000.0, te=100.0),
        "flair": write_series(tmp_path / "fl", head, tr=9000.0, te=120.0, ti=2500.0),
    }
    prov = run_predict(dirs, tmp_path / "out", checkpoint=ckpt, progress=False)
    saved = json.loads((tmp_path / "out" / PROVENANCE_FILE).read_text())
    assert saved["inputs"]["t1w"]["format"] == "dicom"
    assert saved["parameters"]["flair"]["ti_ms"]["value_ms"] == 2500.0
    assert saved["parameters"]["flair"]["ti_ms"]["source"].startswith("DICOM header InversionTime (0018,0082)")
    assert saved["parameters"]["t2w"]["te_ms"]["value_ms"] == 100.0
    img = nib.load(tmp_path / "out" / "T1_ms.nii.gz")
    assert img.shape == (36, 40, 6)
    expected = load_dicom_series(dirs["t1w"]).affine
    assert_allclose(img.affine, expected, atol=1e-5)  # float32 NIfTI header
    assert prov["mask"]["n_voxels"] > 0


def test_missing_dicom_parameter_names_flag(tmp_path: Path) -> None:
    ckpt = make_tiny_checkpoint(tmp_path / "tiny.pt")
    head = head_phantom((36, 40, 4)).astype(np.float64)
    t1 = write_series(tmp_path / "t1", head)
    fl = write_series(tmp_path / "fl", head, tr=9000.0, te=120.0)  # no InversionTime
    with pytest.raises(ValueError, match=r"FLAIR InversionTime missing: DICOM header of series .*fl; "
                                         r"pass --flair-ti MS"):
        run_predict({"t1w": t1, "flair": fl}, tmp_path / "o", checkpoint=ckpt, progress=False)


def test_dicom_inversion_recovery_needs_ti(tmp_path: Path) -> None:
    from relaxomap.train.clinical.dicom import dicom_params
    from relaxomap.train.clinical.sidecar import resolve_parameters

    d = write_series(tmp_path / "s", np.ones((8, 6, 2)) * 100)
    ds = pydicom.dcmread(sorted(d.glob("*.dcm"))[0])
    ds.ScanningSequence = ["SE", "IR"]
    with pytest.raises(ValueError, match=r"T1w InversionTime missing although DICOM header .* \(ScanningSequence "
                                         r"SE/IR\); pass --t1w-ti MS"):
        resolve_parameters("t1w", dicom_params(ds, d), {})


def test_unreadable_and_mixed_series(tmp_path: Path) -> None:
    vol = np.ones((8, 6, 3)) * 100
    d = write_series(tmp_path / "s", vol)
    (d / "junk.dcm").write_bytes(b"this is not a DICOM file")
    with pytest.raises(ValueError, match=r"DICOM file .*junk\.dcm could not be read"):
        load_dicom_series(d)
    (d / "junk.dcm").unlink()
    write_series(d / "other", vol)  # a second series below the first
    with pytest.raises(ValueError, match=r"mixes 2 series"):
        load_dicom_series(d)
    with pytest.raises(FileNotFoundError, match=r"T2w image DICOM series .*missing not found"):
        load_dicom_series(tmp_path / "missing", "T2w image")


def test_nonuniform_slice_spacing_refused(tmp_path: Path) -> None:
    vol = np.ones((8, 6, 3)) * 100
    d = write_series(tmp_path / "s", vol)
    last = sorted(d.glob("*.dcm"))[-1]
    ds = pydicom.dcmread(last)
    ds.ImagePositionPatient = [10.0, -20.0, 30.0 + 2 * 2.5 + 1.0]  # 1 mm extra gap
    _save(ds, last)
    with pytest.raises(ValueError, match=r"slice spacing is not uniform"):
        load_dicom_series(d)


def test_pydicom_missing_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def fake_import(name: str, *args, **kwargs):
        if name == "pydicom" or name.startswith("pydicom."):
            raise ImportError("No module named 'pydicom'")
        return real_import(name, *args, **kwargs)

    d = tmp_path / "s"
    d.mkdir()
    (d / "a.dcm").write_bytes(b"x")
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"relaxomap\[dicom\]"):
        load_dicom_series(d)
