"""relaxomap predict: NIfTI + BIDS sidecar IO, parameter resolution, geometry, errors and atomic outputs.

A tiny randomly initialised checkpoint is enough here: these tests check the plumbing around the network
(files, units, affines, slicing), not the quality of its maps.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from relaxomap.synth.normalize import normalize_intensity
from relaxomap.synth.protocols import ProtocolRanges
from relaxomap.train.clinical.nifti import load_nifti
from relaxomap.train.clinical.map_files import MAP_FILES, PROVENANCE_FILE
from relaxomap.train.clinical.predict import predict_volume, run_predict
from relaxomap.train.clinical.resample import resample_to_grid, same_grid
from relaxomap.train.clinical.training_facts import training_ranges
from tests.train.clinical.helpers import SHAPE, case_affine, head_phantom, make_tiny_checkpoint, write_case


# ------------------------------------------------------------------------------------------------ round trip
def test_nifti_round_trip(case: dict[str, Path], tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    prov = run_predict(case, out, checkpoint=tiny_ckpt, progress=False)
    ref = nib.load(case["t1w"])
    for name in MAP_FILES.values():
        img = nib.load(out / name)
        assert img.shape == SHAPE
        assert_allclose(img.affine, ref.affine, atol=1e-6)  # float32 header storage of the affine
    saved = json.loads((out / PROVENANCE_FILE).read_text())
    assert saved["model"]["sha256"] == hashlib.sha256(tiny_ckpt.read_bytes()).hexdigest()
    assert saved["parameters"] == json.loads(json.dumps(prov["parameters"]))
    t1w = saved["parameters"]["t1w"]
    assert t1w["tr_ms"]["value_ms"] == pytest.approx(600.0, rel=1e-12)  # 0.6 s in the sidecar
    assert "T1w.json: RepetitionTime = 0.6 s" in t1w["tr_ms"]["source"]
    assert t1w["ti_ms"]["value_ms"] == 0.0 and t1w["ti_ms"]["source"].startswith("default 0 ms")
    assert saved["parameters"]["flair"]["ti_ms"]["value_ms"] == pytest.approx(2500.0, rel=1e-12)
    mask = nib.load(out / "brain_mask.nii.gz").get_fdata() > 0
    t1 = nib.load(out / "T1_ms.nii.gz").get_fdata()
    assert mask.any() and np.all(t1[mask] > 0) and np.all(t1[~mask] == 0)
    # the automatic mask finds the brain ellipsoid, not the scalp shell (r < 0.6 in the phantom's units)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    brain = np.sqrt(x**2 + y**2 + (0.6 * z) ** 2) < 0.6
    dice = 2 * (mask & brain).sum() / (mask.sum() + brain.sum())
    assert dice > 0.95, dice
    assert not list(tmp_path.glob("out.tmp-*"))


def test_missing_flair_runs_with_present_zero(case: dict[str, Path], tiny_ckpt: Path, tmp_path: Path) -> None:
    prov = run_predict({"t1w": case["t1w"], "t2w": case["t2w"]}, tmp_path / "o", checkpoint=tiny_ckpt,
                       progress=False)
    assert prov["present"] == {"t1w": True, "t2w": True, "flair": False}
    assert any("FLAIR not given" in w for w in prov["warnings"])


# ------------------------------------------------------------------------------------------------ parameters


def test_missing_parameter_messages(tmp_path: Path, tiny_ckpt: Path) -> None:
    paths = write_case(tmp_path / "in", params={"T1w": (600.0, 10.0, None), "FLAIR": (9000.0, 120.0, None)})
    with pytest.raises(ValueError, match=r"FLAIR InversionTime missing: sidecar .*FLAIR\.json; pass --flair-ti MS"):
        run_predict(paths, tmp_path / "o", checkpoint=tiny_ckpt, progress=False)
    paths["flair"].with_name("FLAIR.json").unlink()
    with pytest.raises(ValueError, match=r"FLAIR RepetitionTime missing: no sidecar .*FLAIR\.json; pass --flair-tr"):
        run_predict(paths, tmp_path / "o", checkpoint=tiny_ckpt, progress=False)
    assert not (tmp_path / "o").exists()


def test_out_of_range_parameter_warns(case: dict[str, Path], tmp_path: Path) -> None:
    ckpt = make_tiny_checkpoint(tmp_path / "ranged.pt", extra={"protocol_ranges": ProtocolRanges().to_dict()})
    ranges = training_ranges({"extra": {"protocol_ranges": ProtocolRanges().to_dict()}})
    lo, hi = ranges["flair"]["ti_ms"]
    assert lo < 2500.0 < hi  # the case's FLAIR TI is a CSF-null TI of the default ranges
    prov = run_predict(case, tmp_path / "o", checkpoint=ckpt, progress=False,
                       param_flags={"flair": {"ti_ms": 1000.0}})
    msg = [w for w in prov["warnings"] if "FLAIR InversionTime = 1000 ms" in w]
    assert len(msg) == 1 and f"({lo:g}-{hi:g} ms)" in msg[0]
    assert not any("T2w" in w and "outside" in w for w in prov["warnings"])
    assert not any("voxel size" in w for w in prov["warnings"])  # 1 x 1 mm in-plane, as in training


# ------------------------------------------------------------------------------------------------ geometry


def test_shifted_t2w_resampled_onto_t1w_grid(tmp_path: Path, tiny_ckpt: Path) -> None:
    t1w_aff = case_affine()
    pattern = np.zeros(SHAPE, np.float32)
    pattern[10:14, 20:24, 2:4] = 100.0  # a cube at T1w voxels x 10..13
    paths = write_case(tmp_path / "a", params={"T1w": (600.0, 10.0, None)})
    # the same cube on a T2w grid shifted by +2 voxels (2 mm) along x: it lies at T2w voxels x 8..11
    shifted = np.zeros(SHAPE, np.float32)
    shifted[8:12, 20:24, 2:4] = 100.0
    t2 = write_case(tmp_path / "b", params={"T2w": (5000.0, 100.0, None)}, data=shifted,
                    affine=case_affine(shift=(2.0, 0.0, 0.0)))
    vol = load_nifti(t2["t2w"])
    assert not same_grid(SHAPE, t1w_aff, vol.shape, vol.affine)
    back = resample_to_grid(vol.data, vol.affine, SHAPE, t1w_aff)
    assert_allclose(back, pattern, atol=1e-4)  # integer shift: linear interpolation is exact up to float32
    prov = run_predict({"t1w": paths["t1w"], "t2w": t2["t2w"]}, tmp_path / "o", checkpoint=tiny_ckpt,
                       progress=False)
    assert prov["inputs"]["t2w"]["resampled_to_reference"] is True
    assert any("resampled onto the grid" in w for w in prov["warnings"])
    with pytest.raises(ValueError, match=r"T2w image .*T2w\.nii\.gz .*not on the grid.*--no-resample"):
        run_predict({"t1w": paths["t1w"], "t2w": t2["t2w"]}, tmp_path / "o2", checkpoint=tiny_ckpt,
                    resample=False, progress=False)


def test_orientation_does_not_change_world_maps(tmp_path: Path, tiny_ckpt: Path) -> None:
    """The same image stored with a flipped x axis (LAS instead of RAS) gives the same maps at each point."""
    data = head_phantom()
    data[:, :, :] *= np.linspace(0.8, 1.2, SHAPE[0])[:, None, None]  # break the left-right symmetry
    ras = write_case(tmp_path / "ras", data=data)
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = SHAPE[0] - 1  # voxel i -> SHAPE[0] - 1 - i
    las = write_case(tmp_path / "las", data=np.ascontiguousarray(data[::-1]), affine=case_affine() @ flip)
    run_predict(ras, tmp_path / "o1", checkpoint=tiny_ckpt, progress=False)
    run_predict(las, tmp_path / "o2", checkpoint=tiny_ckpt, progress=False)
    a = nib.load(tmp_path / "o1" / "T1_ms.nii.gz").get_fdata()
    b = nib.load(tmp_path / "o2" / "T1_ms.nii.gz").get_fdata()
    assert_allclose(b[::-1], a, rtol=1e-5, atol=1e-3)  # same float32 computation on the same slices


def test_predict_volume_matches_direct_forward(tiny_ckpt: Path) -> None:
    from relaxomap.train.checkpoint import load_model

    model, _, _ = load_model(tiny_ckpt)
    rng = np.random.default_rng(3)
    vols = {c: head_phantom(seed=i) * rng.uniform(0.5, 2.0) for i, c in enumerate(("t1w", "t2w", "flair"))}
    params = {"t1w": (600.0, 10.0, 0.0), "t2w": (5000.0, 100.0, 0.0), "flair": (9000.0, 120.0, 2500.0)}
    got1 = predict_volume(vols, params, model, batch=1)
    got4 = predict_volume(vols, params, model, batch=4)
    k = 3
    x = np.stack([normalize_intensity(vols[c][:, :, k].T[::-1])[0] for c in ("t1w", "t2w", "flair")])
    with torch.no_grad():
        y = model(torch.from_numpy(x[None].copy()), torch.tensor([list(params.values())], dtype=torch.float32),
                  torch.ones(1, 3))[0].numpy()
    for i, key in enumerate(("t1_ms", "t2_ms", "pd")):
        assert_allclose(got1[key][:, :, k].T[::-1], y[i], rtol=1e-5)  # float32, same ops, other batch size
        assert_allclose(got4[key], got1[key], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------ errors
def test_bad_inputs_name_the_file(tmp_path: Path, tiny_ckpt: Path) -> None:
    paths = write_case(tmp_path / "in")
    bad4d = tmp_path / "in" / "T1w4d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((*SHAPE, 2), np.float32), case_affine()), bad4d)
    with pytest.raises(ValueError, match=r"T1w image .*T1w4d\.nii\.gz is 4-D \(shape \(36, 40, 6, 2\)\)"):
        run_predict({**paths, "t1w": bad4d}, tmp_path / "o", checkpoint=tiny_ckpt, progress=False)
    nan = head_phantom()
    nan[3, 4, 5] = np.nan
    nan_path = tmp_path / "in" / "nan.nii.gz"
    nib.save(nib.Nifti1Image(nan, case_affine()), nan_path)
    with pytest.raises(ValueError, match=r"T2w image .*nan\.nii\.gz holds 1 NaN/inf voxel\(s\) \(first at voxel "
                                         r"\(3, 4, 5\)\)"):
        run_predict({**paths, "t2w": nan_path}, tmp_path / "o", checkpoint=tiny_ckpt, progress=False)
    with pytest.raises(FileNotFoundError, match=r"FLAIR image .*nope\.nii\.gz not found"):
        run_predict({**paths, "flair": tmp_path / "nope.nii.gz"}, tmp_path / "o", checkpoint=tiny_ckpt,
                    progress=False)
    assert not (tmp_path / "o").exists()


def test_missing_default_model_says_how_to_train(case: dict[str, Path], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import relaxomap.train.clinical.predict as tp

    monkeypatch.setattr(tp, "DEFAULT_MODEL", tmp_path / "default_model" / "model.pt")
    with pytest.raises(FileNotFoundError, match=r"default model.*relaxomap train.*--checkpoint"):
        run_predict(case, tmp_path / "o", progress=False)


def test_prediction_does_not_load_the_trainer(case: dict[str, Path], tiny_ckpt: Path, tmp_path: Path) -> None:
    """Importing and running the prediction pipeline in a fresh interpreter loads no training module."""
    import subprocess
    import sys

    from tests.conftest import REPO

    code = ("import json, sys\n"
            "from relaxomap.train.clinical.predict import run_predict\n"
            f"run_predict({ {k: str(v) for k, v in case.items()} !r}, {str(tmp_path / 'o')!r}, "
            f"checkpoint={str(tiny_ckpt)!r}, progress=False)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('relaxomap.train'))))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert "relaxomap.train.clinical.predict" in loaded and (tmp_path / "o" / PROVENANCE_FILE).is_file()
    training = {f"relaxomap.train.{m}" for m in ("trainer", "losses", "distributed", "schedule", "config")}
    assert loaded & training == set(), sorted(loaded & training)
