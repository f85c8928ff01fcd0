"""NIfTI input and output for prediction and rendering: one checked 3-D volume in, float32 maps out (output
folders are written through :func:`relaxomap.atomic.atomic_output_dir`).

Every error names the file, what was wrong and what is accepted, e.g.
"T1w image /data/sub-01_T1w.nii.gz is 4-D (shape (256, 256, 176, 2)); pass a single 3-D volume".
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Volume",
    "load_nifti",
    "save_nifti",
    "check_volume",
    "write_json",
    "nifti_stem",
    "voxel_sizes_mm",
]


@dataclass
class Volume:
    """One 3-D image on its voxel grid.

    Attributes
    ----------
    data : (X, Y, Z) float32 image (magnitude, arbitrary units).
    affine : (4, 4) float64 voxel index -> world RAS+ [mm] (NIfTI convention, also used for DICOM inputs).
    source : where it came from (a file path or a DICOM series directory), used in messages.
    metadata : per-format extras (e.g. the DICOM sequence parameters); not interpreted here.
    """

    data: np.ndarray
    affine: np.ndarray
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def voxel_mm(self) -> np.ndarray:
        """(3,) float64 voxel size [mm] (column norms of the affine)."""
        return voxel_sizes_mm(self.affine)


def voxel_sizes_mm(affine: np.ndarray) -> np.ndarray:
    """(3,) float64 voxel sizes [mm] of a (4, 4) affine (norms of its first three columns)."""
    return np.sqrt((np.asarray(affine, np.float64)[:3, :3] ** 2).sum(axis=0))


def nifti_stem(path: str | Path) -> Path:
    """``dir/name`` for ``dir/name.nii.gz`` or ``dir/name.nii`` (the BIDS sidecar is ``dir/name.json``)."""
    p = Path(path)
    name = p.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return p.with_name(name[: -len(suffix)])
    return p.with_suffix("")


def check_volume(data: np.ndarray, affine: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Check one image: real, 3-D (trailing singleton axes dropped), finite, invertible affine.

    Parameters
    ----------
    data : image array of any dtype; (X, Y, Z) or (X, Y, Z, 1, ...).
    affine : (4, 4) voxel -> world [mm].
    what : label for messages, e.g. ``"T1w image /data/a.nii.gz"``.

    Returns
    -------
    data : (X, Y, Z) float32
    affine : (4, 4) float64

    Raises
    ------
    ValueError
        Naming ``what`` for complex data, 4-D data, fewer than 3 axes, NaN/inf voxels or a singular affine.
    """
    arr = np.asarray(data)
    if np.iscomplexobj(arr):
        raise ValueError(f"{what} holds complex values; pass a magnitude image")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{what} has non-numeric dtype {arr.dtype}; pass a numeric magnitude image")
    while arr.ndim > 3 and arr.shape[-1] == 1:  # (X, Y, Z, 1) is a 3-D volume stored as 4-D
        arr = arr[..., 0]
    if arr.ndim == 2:  # a single slice
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(
            f"{what} is {arr.ndim}-D (shape {tuple(np.shape(data))}); pass a single 3-D volume "
            "(split 4-D series first, e.g. one volume with fslroi or nibabel)"
        )
    if min(arr.shape) < 1:
        raise ValueError(f"{what} is empty (shape {arr.shape})")
    arr = arr.astype(np.float32, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{what} holds {int(bad.sum())} NaN/inf voxel(s) (first at voxel {first}); "
            "inputs must be finite (replace them, e.g. with 0, before predicting)"
        )
    aff = np.asarray(affine, np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)) or abs(np.linalg.det(aff[:3, :3])) < 1e-12:
        raise ValueError(f"{what} has an invalid voxel-to-world affine (must be finite and invertible):\n{aff}")
    return arr, aff


def load_nifti(path: str | Path, what: str = "image") -> Volume:
    """Read a NIfTI-1/2 file as a checked 3-D float32 :class:`Volume` (scaling slope/intercept applied).

    Parameters
    ----------
    path : ``.nii`` or ``.nii.gz`` file.
    what : label for messages (``"T1w image"``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it cannot be read as NIfTI or fails :func:`check_volume`.
    """
    import nibabel as nib

    p = Path(path)
    label = f"{what} {p}"
    if not p.exists():
        raise FileNotFoundError(f"{label} not found")
    if p.is_dir():
        raise ValueError(f"{label} is a directory; a NIfTI file (.nii/.nii.gz) or a DICOM series directory "
                         "is expected (DICOM directories are read when the file is a directory of .dcm files)")
    try:
        img = nib.load(str(p))
        data = np.asanyarray(img.dataobj)
        affine = img.affine
    except Exception as err:  # nibabel raises several types for corrupt files
        raise ValueError(f"{label} could not be read as NIfTI: {err}") from None
    if affine is None:
        raise ValueError(f"{label} has no voxel-to-world affine")
    data, affine = check_volume(data, affine, label)
    return Volume(data=data, affine=affine, source=str(p))


def save_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray, *, description: str = "") -> None:
    """Write ``data`` as float32 NIfTI-1 with ``affine`` as both qform and sform (code 1, scanner).

    Parameters
    ----------
    path : output file (``.nii.gz`` compresses).
    data : (X, Y, Z) array, stored as float32.
    affine : (4, 4) voxel -> world RAS+ [mm].
    description : up to 79 characters kept in the header's ``descrip`` field.
    """
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(data, np.float32), np.asarray(affine, np.float64))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    if description:
        img.header["descrip"] = description[:79].encode("ascii", "replace")
    nib.save(img, str(path))


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (NumPy scalars and arrays converted)."""

    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=False, default=default) + "\n")
