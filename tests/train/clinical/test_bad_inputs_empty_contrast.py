"""Bad inputs, class "a contrast that carries no information": train.clinical.input_checks.

- A constant image (all zero, or any single value), NIfTI or DICOM: refused, naming the file and the value and
  saying how to predict without it -- it is never shown to the network as data.
- A contrast whose field of view misses the reference grid entirely (it would resample to zeros): refused.
- A contrast that misses some brain slices of the reference grid: those slices are predicted without it
  (present = 0, exactly as if it had not been given), with a warning naming the file and the count; one that
  fully covers no brain slice is refused.
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.train.clinical.map_files import PROVENANCE_FILE
from relaxomap.train.clinical.predict import run_predict
from tests.train.clinical.helpers import SHAPE, case_affine, head_phantom, predict_cli, write_case



def _brain_mask(path: Path) -> Path:
    """The phantom's brain ellipsoid (r < 0.6, no brain in the first and last slice) as a mask NIfTI."""
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    nib.save(nib.Nifti1Image((np.sqrt(x**2 + y**2 + (0.6 * z) ** 2) < 0.6).astype(np.float32), case_affine()), path)
    return path


@pytest.mark.parametrize(("contrast", "value"), [("t1w", 0.0), ("t2w", 0.0), ("flair", 0.0), ("t2w", 7.5)])
def test_constant_nifti_refused(tmp_path: Path, tiny_ckpt: Path, contrast: str, value: float) -> None:
    paths = write_case(tmp_path / "in")
    name = {"t1w": "T1w", "t2w": "T2w", "flair": "FLAIR"}[contrast]
    nib.save(nib.Nifti1Image(np.full(SHAPE, value, np.float32), case_affine()), paths[contrast])
    out = tmp_path / "maps"
    res = predict_cli(paths, tiny_ckpt, out)
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and "Traceback" not in res.output
    assert f"{name} image {paths[contrast]} is constant (all {np.prod(SHAPE)} voxels = {value:g})" in res.output
    assert "carries no contrast information" in res.output and f"leave out --{contrast}" in res.output
    assert not out.exists() and not list(tmp_path.glob("maps.tmp-*"))


def test_constant_dicom_refused(tmp_path: Path, tiny_ckpt: Path) -> None:
    pytest.importorskip("pydicom")
    from tests.train.clinical.test_dicom import write_series

    series = write_series(tmp_path / "t1", np.full((16, 12, 4), 100.0))
    out = tmp_path / "maps"
    res = predict_cli({"t1w": series}, tiny_ckpt, out)
    assert res.exit_code == 1, res.output
    assert f"T1w image {series} is constant (all 768 voxels = 100)" in res.output
    assert not out.exists()


def test_contrast_outside_the_reference_grid_refused(tmp_path: Path, tiny_ckpt: Path) -> None:
    paths = write_case(tmp_path / "in")
    far = write_case(tmp_path / "far", params={"FLAIR": (9000.0, 120.0, 2500.0)},
                     affine=case_affine(shift=(0.0, 0.0, 400.0)))  # 40 cm above the T1w slab
    out = tmp_path / "maps"
    res = predict_cli({**paths, "flair": far["flair"]}, tiny_ckpt, out)
    assert res.exit_code == 1, res.output
    assert f"FLAIR image {far['flair']} does not overlap the grid of {paths['t1w']}" in res.output
    assert "world centres [-0.5, -0.5, 398.5] mm vs [-0.5, -0.5, -1.5] mm" in res.output
    assert "resampling would give an image of zeros" in res.output
    assert not out.exists()


def test_slices_outside_the_field_of_view_are_predicted_without_the_contrast(tmp_path: Path,
                                                                            tiny_ckpt: Path) -> None:
    full = write_case(tmp_path / "in")
    mask = _brain_mask(tmp_path / "mask.nii.gz")
    # a FLAIR slab of the first 3 of the 6 T1w slices (same voxels): brain slices 3 and 4 lie outside it
    short = write_case(tmp_path / "short", params={"FLAIR": (9000.0, 120.0, 2500.0)},
                       data=np.ascontiguousarray(head_phantom()[:, :, :3]))
    prov = run_predict({**full, "flair": short["flair"]}, tmp_path / "partial", checkpoint=tiny_ckpt,
                       mask_path=mask, progress=False)
    assert prov["inputs"]["flair"]["brain_slices_outside_field_of_view"] == 2
    assert any(f"FLAIR image {short['flair']} does not cover 2 of the 4 brain slices of the T1w grid" in w
               and "predicted without FLAIR (present = 0)" in w for w in prov["warnings"])
    run_predict(full, tmp_path / "with", checkpoint=tiny_ckpt, mask_path=mask, progress=False)
    run_predict({"t1w": full["t1w"], "t2w": full["t2w"]}, tmp_path / "without", checkpoint=tiny_ckpt,
                mask_path=mask, progress=False)
    got, with_flair, without = (nib.load(tmp_path / d / "T1_ms.nii.gz").get_fdata()
                                for d in ("partial", "with", "without"))
    assert_allclose(got[:, :, :3], with_flair[:, :, :3], rtol=1e-5, atol=1e-4)  # inside: the FLAIR is used
    assert_allclose(got[:, :, 3:], without[:, :, 3:], rtol=1e-5, atol=1e-4)  # outside: as if not given
    assert np.abs(with_flair[:, :, 3:5] - without[:, :, 3:5]).max() > 1e-3  # (the two differ there)


def test_contrast_covering_no_brain_slice_refused(tmp_path: Path, tiny_ckpt: Path) -> None:
    paths = write_case(tmp_path / "in")
    edge = write_case(tmp_path / "edge", params={"FLAIR": (9000.0, 120.0, 2500.0)},
                      data=np.ascontiguousarray(head_phantom()[:, :, :1]))  # only the first slice: no brain
    out = tmp_path / "maps"
    res = predict_cli({**paths, "flair": edge["flair"]}, tiny_ckpt, out, "--mask",
                   str(_brain_mask(tmp_path / "mask.nii.gz")))
    assert res.exit_code == 1, res.output
    assert f"FLAIR image {edge['flair']} covers none of the 4 brain slices of the T1w grid completely" in res.output
    assert "leave out --flair" in res.output and not out.exists()
    # with the FLAIR left out, as the message says, the same exam runs
    res = predict_cli({"t1w": paths["t1w"], "t2w": paths["t2w"]}, tiny_ckpt, out)
    assert res.exit_code == 0, res.output
    assert json.loads((out / PROVENANCE_FILE).read_text())["present"]["flair"] is False
