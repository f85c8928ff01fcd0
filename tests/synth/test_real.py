"""Real map files: BrainWeb sanity values, NIfTI / HDF5 round trips, errors naming file and key."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.synth.real import brainweb_paths, load_maps, subject_name

# README sanity medians of ../shared/data (T1 ms, T2 ms, PD) per label: the 3 T table values, stored as
# float32 -> compared with rtol 1e-6.
README_MEDIANS = {3: (850.0, 75.0, 0.70), 2: (1450.0, 95.0, 0.80), 1: (4160.0, 1650.0, 1.00)}


def _small(shape: tuple[int, ...] = (6, 5, 4)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, shape).astype(np.uint8)
    table = np.array([[0, 0, 0], [4160, 1650, 1.0], [1450, 95, 0.8], [850, 75, 0.7]], np.float32)
    vals = table[labels]
    return {"t1_ms": vals[..., 0], "t2_ms": vals[..., 1], "pd": vals[..., 2], "labels": labels,
            "mask": labels > 0, "voxel_mm": np.array([1.2, 1.1, 3.0], np.float32)}


@pytest.mark.parametrize("sid", ["colin27", "subject47"])
def test_brainweb_npz_reproduces_readme_medians(shared_data: Path, sid: str) -> None:
    paths = brainweb_paths(shared_data)
    assert set(paths) == {"colin27", "subject47"}
    maps = load_maps(paths[sid])
    assert maps.subject_id == sid and maps.field_t == 3.0 and maps.source == str(paths[sid])
    assert maps.shape == ((180, 216, 180) if sid == "colin27" else (181, 217, 181))
    assert_allclose(maps.voxel_mm, [1.0, 1.0, 1.0])
    for label, expected in README_MEDIANS.items():
        sel = maps.labels == label
        got = [np.median(a[sel]) for a in (maps.t1_ms, maps.t2_ms, maps.pd)]
        assert_allclose(got, expected, rtol=1e-6)
    assert maps.t1_ms.max() == pytest.approx(4160.0) and maps.t2_ms.max() == pytest.approx(1650.0)


def test_brainweb_paths_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="colin27_3T.npz"):
        brainweb_paths(tmp_path)


def test_subject_name() -> None:
    assert subject_name("/a/colin27_3T.npz") == "colin27"
    assert subject_name("/a/sub-01_1.5T.nii.gz") == "sub-01"
    assert subject_name("/a/maps.h5") == "maps"


def test_npz_round_trip_and_2d(tmp_path: Path) -> None:
    data = _small()
    np.savez(tmp_path / "s_1.5T.npz", **data)
    maps = load_maps(tmp_path / "s_1.5T.npz")
    assert maps.field_t == 1.5 and maps.subject_id == "s"
    for k in ("t1_ms", "t2_ms", "pd", "labels", "mask"):
        assert_array_equal(getattr(maps, k), data[k])
    assert_allclose(maps.voxel_mm, data["voxel_mm"])
    flat = {k: v[:, :, 0] for k, v in data.items() if k in ("t1_ms", "t2_ms", "pd")}
    np.savez(tmp_path / "flat.npz", **flat)
    maps2 = load_maps(tmp_path / "flat.npz", field_t=1.5)
    assert maps2.shape == (6, 5, 1) and maps2.field_t == 1.5
    assert_array_equal(maps2.mask[:, :, 0], flat["pd"] > 0)  # no labels, no mask: tissue = pd > 0


def test_nifti_round_trip_directory_and_prefix(tmp_path: Path) -> None:
    nib = pytest.importorskip("nibabel")
    data = _small()
    affine = np.diag([*data["voxel_mm"].tolist(), 1.0])
    names = {"t1_ms": "T1_ms", "t2_ms": "T2_ms", "pd": "PD", "labels": "labels", "mask": "mask"}
    (tmp_path / "dir").mkdir()
    for key, name in names.items():
        arr = data[key].astype(np.uint8) if key == "mask" else data[key]
        nib.save(nib.Nifti1Image(arr, affine), tmp_path / "dir" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(arr, affine), tmp_path / f"sub7_{name}.nii.gz")
    for path, sid in ((tmp_path / "dir", "dir"), (tmp_path / "sub7_", "sub7")):
        maps = load_maps(path, field_t=3.0)
        assert maps.subject_id == sid
        for k in names:
            assert_array_equal(getattr(maps, k), data[k])
        assert_allclose(maps.voxel_mm, data["voxel_mm"], rtol=1e-6)
    (tmp_path / "dir" / "PD.nii.gz").unlink()
    with pytest.raises(ValueError, match="PD.nii.gz"):
        load_maps(tmp_path / "dir")


def test_hdf5_round_trip(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    data = _small()
    with h5py.File(tmp_path / "m.h5", "w") as f:
        for k in ("t1_ms", "t2_ms", "pd", "labels", "mask"):
            f[k] = data[k]
        f.attrs["voxel_mm"] = data["voxel_mm"]
        f.attrs["field_t"] = 1.5
    maps = load_maps(tmp_path / "m.h5")
    assert maps.field_t == 1.5
    for k in ("t1_ms", "t2_ms", "pd", "labels", "mask"):
        assert_array_equal(getattr(maps, k), data[k])
    assert_allclose(maps.voxel_mm, data["voxel_mm"])
    with pytest.raises(ValueError, match=r"m\.h5.*field_t"):
        load_maps(tmp_path / "m.h5", field_t=3.0)


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda d: d.pop("t2_ms"), r"bad\.npz: missing key 't2_ms'"),
        (lambda d: d.update(pd=d["pd"][:, :, :2]),
         r"bad\.npz: key 'pd' has shape \(6, 5, 2\) but 't1_ms' has \(6, 5, 4\)"),
        (lambda d: d["t1_ms"].__setitem__((0, 0, 0), np.nan), r"bad\.npz: t1_ms holds 1 non-finite"),
        (lambda d: d["t2_ms"].__setitem__((1, 0, 0), -5.0), r"bad\.npz: t2_ms holds 1 value\(s\) outside >= 0"),
        (lambda d: (d["pd"].__setitem__((0, 0, 0), 0.5), d["t1_ms"].__setitem__((0, 0, 0), 0.0)),
         r"bad\.npz: key 't1_ms' is 0 at 1 voxel\(s\) where pd > 0"),
        (lambda d: d.update(labels=d["labels"] + 0.5), r"bad\.npz: key 'labels' must hold integers"),
    ],
)
def test_bad_files_name_file_and_key(tmp_path: Path, edit, pattern: str) -> None:
    data = _small()
    data["t1_ms"] = data["t1_ms"].copy()
    data["t2_ms"] = data["t2_ms"].copy()
    data["pd"] = data["pd"].copy()
    data["t1_ms"][0, 0, 0] = data["t1_ms"][0, 0, 0] or 1.0  # keep voxel (0,0,0) consistent before the edit
    data["t2_ms"][0, 0, 0] = data["t2_ms"][0, 0, 0] or 1.0
    data["pd"][0, 0, 0] = data["pd"][0, 0, 0] or 0.5
    edit(data)
    np.savez(tmp_path / "bad.npz", **data)
    with pytest.raises(ValueError, match=pattern):
        load_maps(tmp_path / "bad.npz")


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        load_maps(tmp_path / "nothere" / "x.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"junk\.npz: cannot read"):
        load_maps(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="NIfTI triplet"):
        load_maps(tmp_path)
