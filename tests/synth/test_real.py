"""Real map files: BrainWeb sanity values, NIfTI / HDF5 round trips, errors naming file and key, real source."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.physics.tissues import LESION_LABELS
from relaxomap.synth.augment import AugmentConfig
from relaxomap.synth.lesions import LesionConfig
from relaxomap.synth.real import brainweb_paths, load_maps, subject_name
from relaxomap.synth.sources import SourceConfig, anatomy_id, draw_subject

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


# ------------------------------------------------------------------------------------------- real source
def test_real_source_ids_determinism_and_lesions(shared_data: Path) -> None:
    paths = [str(p) for p in brainweb_paths(shared_data).values()]
    cfg = SourceConfig(kind="real", paths=paths, healthy_only=True,
                       augment=AugmentConfig(shape=(176, 208, 24), voxel_mm=(1.0, 1.0, 2.0)))
    a, b, c = draw_subject(cfg, 4), draw_subject(cfg, 4), draw_subject(cfg, 5)
    assert a.subject_id == "colin27/aug4" and c.subject_id == "subject47/aug5"
    assert anatomy_id(a.subject_id) == "colin27"
    assert a.shape == (176, 208, 24) and a.t1_ms.dtype == np.float32
    assert_allclose(a.voxel_mm, [1.0, 1.0, 2.0])
    for k in ("t1_ms", "t2_ms", "pd", "labels", "mask"):
        assert_array_equal(getattr(a, k), getattr(b, k))
    assert not np.isin(a.labels, LESION_LABELS).any()
    assert a.mask.sum() > 0.1 * a.mask.size  # the slab lies in the brain
    sick = SourceConfig(kind="real", paths=paths[:1], augment=cfg.augment,
                        lesions=LesionConfig(p_ms=1.0, ms_count=(6, 6), p_tumour=1.0, p_infarct=0.0))
    m = draw_subject(sick, 9)
    assert m.subject_id == "colin27/aug9"
    assert (m.labels == 12).any() and (m.labels == 14).any()


def test_real_source_without_augmentation_converts_field(shared_data: Path) -> None:
    path = brainweb_paths(shared_data)["colin27"]
    cfg = SourceConfig(kind="real", paths=[str(path)], augment=None, healthy_only=True, field_t=1.5)
    maps = draw_subject(cfg, 0)
    # crisp colin27: every voxel is one tissue, re-mapped to the 1.5 T table (float32: rtol 1e-5)
    for label, expected in {3: (650.0, 80.0, 0.70), 2: (1050.0, 100.0, 0.80), 1: (4000.0, 1800.0, 1.0)}.items():
        sel = maps.labels == label
        for arr, e in zip((maps.t1_ms, maps.t2_ms, maps.pd), expected):
            assert_allclose(arr[sel], e, rtol=1e-5)
    same = draw_subject(SourceConfig(kind="real", paths=[str(path)], augment=None, healthy_only=True), 0)
    ref = load_maps(path)
    assert_array_equal(same.t1_ms, ref.t1_ms)


def test_mixed_source_draws_both_kinds_and_fields(shared_data) -> None:
    """kind='mixed': real heads with probability real_fraction, per-subject field from fields_t; deterministic."""
    from relaxomap.synth.sources import SourceConfig, draw_subject

    cfg = SourceConfig(kind="mixed", paths=(str(shared_data / "brainweb_colin27" / "colin27_3T.npz"),),
                       real_fraction=0.5, fields_t=(1.5, 3.0), healthy_only=True,
                       augment=AugmentConfig(shape=(224, 256, 16)))
    kinds, fields = [], []
    for seed in range(8):
        m = draw_subject(cfg, seed)
        kinds.append(m.subject_id.startswith("phantom-"))
        fields.append(m.field_t)
        if seed == 0:
            np.testing.assert_array_equal(m.t1_ms, draw_subject(cfg, seed).t1_ms)
        wm = m.t1_ms[(m.labels == 3) & m.mask]
        # WM T1 near the drawn field's table value (850 ms at 3 T, 650 ms at 1.5 T), within the ±25 % jitter.
        expected = 850.0 if m.field_t == 3.0 else 650.0
        assert abs(np.median(wm) / expected - 1) < 0.25
    assert 0 < sum(kinds) < 8, kinds  # both kinds occur for these fixed seeds (P(one kind) = 2 * 0.5**8)
    assert set(fields) == {1.5, 3.0}
    with pytest.raises(ValueError, match="real_fraction"):
        SourceConfig(kind="mixed", paths=("x.npz",), real_fraction=1.5)
