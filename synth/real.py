"""Ground-truth maps from files: NumPy ``.npz``, NIfTI triplets and HDF5.

Every reader returns :class:`synth.maps.Maps` with 3-D float32 maps (a 2-D file gets a singleton z axis)
and checks what it reads: a missing key, mismatched shapes, NaN / inf / negative values or a PD > 0 voxel
without T1 / T2 raise ValueError naming the file and the key.

Layouts
-------
``.npz``      keys ``t1_ms``, ``t2_ms``, ``pd``; optional ``labels``, ``mask``, ``voxel_mm``, ``field_t``
              (the layout of ``../shared/data/*/*.npz``).
NIfTI         a directory holding ``T1_ms.nii.gz``, ``T2_ms.nii.gz``, ``PD.nii.gz`` (``.nii`` also accepted) and
              optionally ``labels`` / ``mask`` files, or a path prefix such that ``<prefix>T1_ms.nii.gz`` etc.
              exist; the voxel size comes from the header (``T1_ms`` in milliseconds, as the name says).
HDF5          (``.h5``, ``.hdf5``) datasets ``t1_ms``, ``t2_ms``, ``pd``; optional datasets ``labels``, ``mask``,
              ``voxel_mm``; ``voxel_mm`` / ``field_t`` may also be file attributes.

Missing labels are 0 (unknown); a missing mask is ``labels ∈ BRAIN_LABELS`` when labels exist, else
``pd > 0``. The field strength is, in order: the ``field_t`` argument, the file's ``field_t``, a ``_3T`` /
``_1.5T`` suffix of the file name, else 3 T; a file value that contradicts the argument is an error.
"""
from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from relaxomap.physics.checks import check_map_array
from relaxomap.physics.tissues import BRAIN_LABELS
from relaxomap.synth.maps import Maps

__all__ = ["load_maps", "brainweb_paths", "subject_name", "BRAINWEB_SUBJECTS"]

_MAP_KEYS = ("t1_ms", "t2_ms", "pd")
_NIFTI_NAMES = {"t1_ms": "T1_ms", "t2_ms": "T2_ms", "pd": "PD", "labels": "labels", "mask": "mask"}
_FIELD_IN_NAME = re.compile(r"_(\d+(?:\.\d+)?)T$", re.IGNORECASE)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: brain medians [ms] below which a map is taken to be written in seconds: brain T1 is 500-4500 ms and T2
#: 40-2000 ms at clinical fields (in seconds: ~1 and ~0.08)
_MS_FLOORS = {"t1_ms": 50.0, "t2_ms": 5.0}
#: BrainWeb subjects in ``../shared/data``: id -> (folder, file)
BRAINWEB_SUBJECTS: dict[str, tuple[str, str]] = {
    "colin27": ("brainweb_colin27", "colin27_3T.npz"),
    "subject47": ("brainweb_subject47", "subject47_3T.npz"),
}


def _strip_suffixes(name: str) -> str:
    for suffix in (".nii.gz", ".nii", ".npz", ".hdf5", ".h5"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def subject_name(path: str | Path) -> str:
    """Anatomy id of a map file: its name without extension and field suffix (``colin27_3T.npz`` → ``colin27``)."""
    p = Path(path)
    stem = p.name if p.is_dir() else _strip_suffixes(p.name)
    stem = stem.rstrip("_-.") or p.parent.name
    return _FIELD_IN_NAME.sub("", stem) or stem


def _field_from_name(path: Path) -> float | None:
    m = _FIELD_IN_NAME.search(_strip_suffixes(path.name).rstrip("_-."))
    return float(m.group(1)) if m else None


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:  # np.load leaks its own handle on errors
            return {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:  # a truncated or damaged archive
        raise ValueError(f"{path}: cannot read as .npz: the file is truncated or corrupt ({type(err).__name__}: "
                         f"{err}); copy or export it again") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read as .npz ({err})") from None


def _read_hdf5(path: Path) -> dict[str, Any]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            out: dict[str, Any] = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
            for k in ("voxel_mm", "field_t"):
                if k not in out and k in f.attrs:
                    out[k] = np.asarray(f.attrs[k])
            return out
    except OSError as err:
        raise ValueError(f"{path}: cannot read as HDF5 ({err})") from None


def _nifti_files(path: Path) -> dict[str, Path]:
    found = {}
    for key, name in _NIFTI_NAMES.items():
        for ext in (".nii.gz", ".nii"):
            cand = path / f"{name}{ext}" if path.is_dir() else path.parent / f"{path.name}{name}{ext}"
            if cand.exists():
                found[key] = cand
                break
    return found


def _read_nifti(path: Path, files: dict[str, Path]) -> dict[str, Any]:
    import nibabel as nib

    out: dict[str, Any] = {}
    for key, file in files.items():
        try:
            img = nib.load(str(file))
            out[key] = np.asarray(img.dataobj)
        except Exception as err:  # nibabel raises several types for corrupt files
            raise ValueError(f"{file}: cannot read as NIfTI ({err})") from None
        if key == "t1_ms":
            out["voxel_mm"] = np.asarray(img.header.get_zooms()[:3], np.float32)
    return out


def _field(path: Path, data: dict[str, Any], field_t: float | None) -> float:
    stored = None
    if "field_t" in data:
        try:
            stored = float(np.asarray(data["field_t"]).reshape(-1)[0])
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"{path}: key 'field_t' must be a number [T]; got {data['field_t']!r}") from None
    if field_t is not None:
        if stored is not None and abs(stored - field_t) > 1e-6:
            raise ValueError(f"{path}: key 'field_t' says {stored:g} T but field_t={field_t:g} was requested")
        return float(field_t)
    if stored is not None:
        return stored
    return _field_from_name(path) or 3.0


def load_maps(path: str | Path, *, field_t: float | None = None, subject_id: str | None = None) -> Maps:
    """Read ground-truth T1 / T2 / PD maps (module docstring lists the layouts).

    Parameters
    ----------
    path : ``.npz`` / ``.h5`` / ``.hdf5`` file, NIfTI directory, or NIfTI prefix.
    field_t : field strength [T] the values belong to (see the module docstring for the default).
    subject_id : id stored in the Maps; default :func:`subject_name` of the path.

    Returns
    -------
    Maps, 3-D (X, Y, Z) float32 maps, uint8 labels, bool mask, ``source = str(path)``.

    Raises
    ------
    ValueError
        Unreadable file, missing key, shape mismatch, non-finite or negative values, PD > 0 with T1 or T2 = 0.
    """
    p = Path(path)
    name = p.name.lower()
    if name.endswith(".npz") and p.is_file():
        data = _read_npz(p)
    elif (name.endswith(".h5") or name.endswith(".hdf5")) and p.is_file():
        data = _read_hdf5(p)
    else:
        files = _nifti_files(p)
        if not files:
            if not p.exists() and not p.parent.is_dir():
                raise ValueError(f"{p}: no such file or directory")
            raise ValueError(
                f"{p}: not a .npz / .h5 / .hdf5 file and no NIfTI triplet (T1_ms, T2_ms, PD .nii[.gz]) "
                f"{'in it' if p.is_dir() else 'with this prefix'}"
            )
        missing = [_NIFTI_NAMES[k] for k in _MAP_KEYS if k not in files]
        if missing:
            where = p if p.is_dir() else f"{p}*"
            raise ValueError(f"{where}: missing NIfTI file(s) {', '.join(m + '.nii.gz' for m in missing)}")
        data = _read_nifti(p, files)
    return _to_maps(p, data, field_t, subject_id)


def _as_float32(path: Path, key: str, a: np.ndarray) -> np.ndarray:
    """A map as float32 after checking it: real numbers, finite and >= 0, within the float32 range (checked in
    the file's own type, so 1e300 is reported as too large rather than as infinity after the cast)."""
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ValueError(f"{path}: key {key!r} must hold real numbers; got dtype {a.dtype}")
    check_map_array(f"{path}: {key}", a)
    if a.size and np.issubdtype(a.dtype, np.floating) and a.dtype.itemsize > 4:
        big = a > _FLOAT32_MAX
        if big.any():
            idx = int(np.flatnonzero(big.ravel())[0])
            raise ValueError(f"{path}: key {key!r} holds {int(big.sum())} value(s) above the float32 range "
                             f"(largest {a.max():g}, first at flat index {idx}; float32 holds up to "
                             f"{_FLOAT32_MAX:.4g}); relaxomap stores maps as float32")
    return a.astype(np.float32, copy=False)


def _check_ms(path: Path, arrays: dict[str, np.ndarray], brain: np.ndarray, where: str) -> None:
    """Refuse T1 / T2 maps whose median over ``brain`` voxels (described by ``where``) is that of times in
    seconds."""
    if not brain.any():
        return
    for key, floor in _MS_FLOORS.items():
        median = float(np.median(arrays[key][brain]))
        if 0 < median < floor:
            raise ValueError(f"{path}: key {key!r}: {key[:2].upper()} median {median:.3g} {where} looks like "
                             f"seconds; relaxomap wants ms (a median below {floor:g} ms is not plausible for "
                             f"brain tissue; multiply the map by 1000)")


def _to_maps(path: Path, data: dict[str, Any], field_t: float | None, subject_id: str | None) -> Maps:
    for key in _MAP_KEYS:
        if key not in data:
            raise ValueError(f"{path}: missing key {key!r} (found: {', '.join(sorted(data)) or 'nothing'})")
    arrays = {}
    shape = None
    for key in _MAP_KEYS + ("labels", "mask"):
        if key not in data:
            continue
        a = np.asarray(data[key])
        if a.ndim == 2:
            a = a[:, :, None]
        if a.ndim != 3:
            raise ValueError(f"{path}: key {key!r} must be a 2-D or 3-D array; got shape {a.shape}")
        if shape is None:
            shape = a.shape
        elif a.shape != shape:
            raise ValueError(f"{path}: key {key!r} has shape {a.shape} but 't1_ms' has {shape}")
        arrays[key] = a
    for key in _MAP_KEYS:
        arrays[key] = _as_float32(path, key, arrays[key])
    tissue = arrays["pd"] > 0
    for key in ("t1_ms", "t2_ms"):
        bad = tissue & (arrays[key] <= 0)
        if bad.any():
            raise ValueError(f"{path}: key {key!r} is 0 at {int(bad.sum())} voxel(s) where pd > 0 (first at index "
                             f"{tuple(int(i) for i in np.argwhere(bad)[0])}); tissue needs T1, T2 > 0")
    labels = np.zeros(shape, np.uint8)
    if "mask" in arrays:
        _check_ms(path, arrays, arrays["mask"].astype(bool), "in the brain mask")
    else:
        _check_ms(path, arrays, tissue, "where pd > 0")
    if "labels" in arrays:
        lab = arrays["labels"]
        if np.issubdtype(lab.dtype, np.floating) and not np.all(lab == np.round(lab)):
            raise ValueError(f"{path}: key 'labels' must hold integers; got non-integer values")
        if lab.min() < 0 or lab.max() > 255:
            raise ValueError(f"{path}: key 'labels' must be in [0, 255]; got [{lab.min()}, {lab.max()}]")
        labels = lab.astype(np.uint8)
    if "mask" in arrays:
        mask = arrays["mask"].astype(bool)
    elif "labels" in arrays:
        mask = np.isin(labels, BRAIN_LABELS)
    else:
        mask = tissue
    voxel = np.ones(3, np.float32)
    if "voxel_mm" in data:
        v = np.asarray(data["voxel_mm"], np.float64).reshape(-1)
        if v.size < 2 or not np.all(np.isfinite(v)) or np.any(v <= 0):
            raise ValueError(f"{path}: key 'voxel_mm' must hold 2 or 3 positive sizes [mm]; got {v.tolist()}")
        voxel[: min(3, v.size)] = v[:3]
    return Maps(arrays["t1_ms"], arrays["t2_ms"], arrays["pd"], labels, mask, voxel_mm=voxel,
                field_t=_field(path, data, field_t), subject_id=subject_id or subject_name(path), source=str(path))


def brainweb_paths(shared_data_dir: str | Path) -> dict[str, Path]:
    """The BrainWeb map files in ``shared_data_dir``: ``{"colin27": .../colin27_3T.npz, "subject47": ...}``.

    Raises
    ------
    ValueError
        If a file is missing (the message lists what is expected).
    """
    root = Path(shared_data_dir)
    out = {}
    for sid, (folder, file) in BRAINWEB_SUBJECTS.items():
        p = root / folder / file
        if not p.is_file():
            raise ValueError(f"brainweb_paths: {p} not found (expected {folder}/{file} under {root})")
        out[sid] = p
    return out
