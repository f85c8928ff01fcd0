"""NIfTI volumes: file stems, checks naming the file, float32 round trip with the affine, JSON of NumPy values."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.train.clinical.nifti import check_volume, load_nifti, nifti_stem, save_nifti, voxel_sizes_mm, write_json


def test_stems_and_voxel_sizes() -> None:
    assert nifti_stem("/d/a.nii.gz") == Path("/d/a") and nifti_stem("/d/b.NII") == Path("/d/b")
    aff = np.array([[0.0, -1.2, 0.0, 4.0], [1.1, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], [0, 0, 0, 1]])
    assert_allclose(voxel_sizes_mm(aff), [1.1, 1.2, 2.0], rtol=1e-15)


def test_round_trip_keeps_data_and_affine(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    aff = np.diag([0.9, 1.0, 3.0, 1.0])
    save_nifti(tmp_path / "v.nii.gz", data, aff, description="test")
    vol = load_nifti(tmp_path / "v.nii.gz", "T1w image")
    assert_array_equal(vol.data, data)
    assert_allclose(vol.affine, aff, atol=1e-6)  # float32 header storage
    assert vol.shape == (2, 3, 4) and vol.source == str(tmp_path / "v.nii.gz")


@pytest.mark.parametrize("data, match", [
    (np.zeros((2, 2, 2, 2)), r"T2w image x is 4-D \(shape \(2, 2, 2, 2\)\)"),
    (np.zeros((2, 2, 2), complex), r"T2w image x holds complex values"),
    (np.full((2, 2, 2), np.nan), r"T2w image x holds 8 NaN/inf voxel\(s\) \(first at voxel \(0, 0, 0\)\)"),
])
def test_checks_name_the_image(data: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        check_volume(data, np.eye(4), "T2w image x")
    with pytest.raises(ValueError, match=r"T2w image x has an invalid voxel-to-world affine"):
        check_volume(np.zeros((2, 2, 2)), np.zeros((4, 4)), "T2w image x")


def test_missing_file_and_json_of_numpy_values(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"FLAIR image .*none\.nii\.gz not found"):
        load_nifti(tmp_path / "none.nii.gz", "FLAIR image")
    write_json(tmp_path / "a.json", {"x": np.float32(0.5), "v": np.arange(2), "p": tmp_path})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 0.5, "v": [0, 1], "p": str(tmp_path)}
