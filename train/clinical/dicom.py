"""Read one 2-D DICOM MR series (a directory of single-frame files) as a 3-D volume with its RAS affine.

Geometry follows DICOM PS3.3 C.7.6.2.1.1: the centre of pixel (row r, column c) of a slice is
``ImagePositionPatient + c·Δc·X + r·Δr·Y`` where ``X``, ``Y`` are the row and column direction cosines of
ImageOrientationPatient and ``(Δr, Δc) = PixelSpacing`` (row spacing first). The volume is stored with voxel
axes (column, row, slice) -- the layout dcm2niix writes -- and slices sorted along ``X × Y``. DICOM's
patient frame is LPS; the returned affine is RAS+ like NIfTI (x and y negated).

Sequence parameters come from RepetitionTime (0018,0080), EchoTime (0018,0081) and InversionTime
(0018,0082), all in **ms** in DICOM. pydicom is an optional dependency (``pip install relaxomap[dicom]``),
imported only when a DICOM series is read.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from relaxomap.train.clinical.acquisition import read_acquisition
from relaxomap.train.clinical.nifti import Volume, check_volume
from relaxomap.train.clinical.sidecar import FileParams, ParamValue, check_plausible_time, inversion_hint

__all__ = ["load_dicom_series", "dicom_params", "LPS_TO_RAS"]

#: diag(-1, -1, 1, 1): DICOM patient LPS [mm] -> RAS+ [mm].
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

_TAGS = {"tr_ms": ("RepetitionTime", "(0018,0080)"), "te_ms": ("EchoTime", "(0018,0081)"),
         "ti_ms": ("InversionTime", "(0018,0082)")}
#: Relative tolerance on slice spacing uniformity (fraction of the mean spacing).
_SPACING_RTOL = 0.01


def _import_pydicom() -> Any:
    try:
        import pydicom
    except ImportError:
        raise ImportError(
            "reading DICOM needs pydicom, which is not installed; install it with "
            "`pip install 'relaxomap[dicom]'` (or `pip install pydicom`), or convert the series to NIfTI "
            "with dcm2niix"
        ) from None
    return pydicom


def _floats(ds: Any, key: str, n: int, path: Path) -> np.ndarray:
    raw = getattr(ds, key, None)
    if raw is None:
        raise ValueError(f"DICOM file {path} has no {key}; the series geometry cannot be built")
    try:
        vals = np.array([float(v) for v in raw], np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"DICOM file {path}: {key} must be {n} numbers; got {raw!r}") from None
    if vals.shape != (n,) or not np.all(np.isfinite(vals)):
        raise ValueError(f"DICOM file {path}: {key} must be {n} finite numbers; got {raw!r}")
    return vals


def dicom_params(ds: Any, series: str | Path) -> FileParams:
    """TR, TE, TI [ms] and the acquisition facts from one DICOM dataset's header (times already in ms in DICOM).

    Missing or empty attributes are simply absent from the result; 0 for InversionTime counts as absent. Each
    time must lie in the plausible range of its role (:func:`train.clinical.sidecar.check_plausible_time`);
    ``acquisition`` holds ScanningSequence, MRAcquisitionType, EchoTrainLength, MagneticFieldStrength and
    ContrastBolusAgent / ContrastBolusIngredient (:func:`train.clinical.acquisition.read_acquisition`).

    Raises
    ------
    ValueError naming the series, the attribute and its tag, the value and what is allowed.
    """
    values: dict[str, ParamValue] = {}
    for fld, (key, tag) in _TAGS.items():
        raw = getattr(ds, key, None)
        if raw is None or raw == "":
            continue
        try:
            v = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"DICOM series {series}: {key} {tag} must be a number of ms; got {raw!r}") from None
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"DICOM series {series}: {key} {tag} must be a finite number of ms >= 0; got {v}")
        if fld == "ti_ms" and v == 0:
            continue
        check_plausible_time(fld, v, f"DICOM series {series}", "ms")
        values[fld] = ParamValue(v, f"DICOM header {key} {tag} = {v:g} ms")
    where = f"DICOM header of series {series}"
    return FileParams(values=values, origin=where,
                      inversion_hint=inversion_hint(getattr(ds, "ScanningSequence", None)),
                      acquisition=read_acquisition(lambda key: getattr(ds, key, None), where))


def _read_all(directory: Path, pydicom: Any) -> list[tuple[Path, Any]]:
    files = sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and p.name.upper() != "DICOMDIR")
    if not files:
        raise ValueError(f"DICOM series directory {directory} holds no files")
    out = []
    for p in files:
        try:
            ds = pydicom.dcmread(str(p))
        except Exception as err:  # InvalidDicomError, truncated files, OSError ...
            raise ValueError(f"DICOM file {p} could not be read ({type(err).__name__}: {err}); "
                             "remove non-DICOM files from the series directory") from None
        out.append((p, ds))
    return out


def _series_geometry(items: list[tuple[Path, Any]], label: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(ImageOrientationPatient (6,), PixelSpacing (2,) [mm], (rows, columns)) shared by every file of a series.

    Raises
    ------
    ValueError : several series, multi-frame files, or orientation / spacing / matrix that differ between files
        or are not valid (naming the file).
    """
    uids = {str(getattr(ds, "SeriesInstanceUID", "")) for _, ds in items}
    if len(uids) > 1:
        raise ValueError(f"{label} mixes {len(uids)} series (SeriesInstanceUID {sorted(uids)}); "
                         "put each series in its own directory")
    p0, ds0 = items[0]
    if int(getattr(ds0, "NumberOfFrames", 1) or 1) > 1:
        raise ValueError(f"DICOM file {p0} is multi-frame (NumberOfFrames={ds0.NumberOfFrames}); enhanced "
                         "multi-frame DICOM is not supported -- convert it to NIfTI with dcm2niix")
    iop = _floats(ds0, "ImageOrientationPatient", 6, p0)
    row_dir, col_dir = iop[:3], iop[3:]  # X: along a row (increasing column), Y: along a column
    if abs(np.linalg.norm(row_dir) - 1) > 1e-3 or abs(np.linalg.norm(col_dir) - 1) > 1e-3 or \
            abs(row_dir @ col_dir) > 1e-3:
        raise ValueError(f"DICOM file {p0}: ImageOrientationPatient {iop.tolist()} is not two orthonormal "
                         "direction cosines")
    spacing = _floats(ds0, "PixelSpacing", 2, p0)  # (row spacing Δr, column spacing Δc) [mm]
    rows, cols = int(ds0.Rows), int(ds0.Columns)
    for p, ds in items:
        if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
            raise ValueError(f"DICOM file {p} is multi-frame; convert the series to NIfTI with dcm2niix")
        if not np.allclose(_floats(ds, "ImageOrientationPatient", 6, p), iop, atol=1e-4):
            raise ValueError(f"DICOM file {p}: ImageOrientationPatient differs from {p0}; one series must "
                             "share one slice orientation")
        if not np.allclose(_floats(ds, "PixelSpacing", 2, p), spacing, rtol=1e-4):
            raise ValueError(f"DICOM file {p}: PixelSpacing differs from {p0}")
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise ValueError(f"DICOM file {p}: matrix {int(ds.Rows)}x{int(ds.Columns)} differs from "
                             f"{rows}x{cols} of {p0}")
    return iop, spacing, (rows, cols)


def _slice(p: Path, ds: Any, normal: np.ndarray, matrix: tuple[int, int]) -> tuple[float, np.ndarray, np.ndarray]:
    """(position along the slice normal [mm], ImagePositionPatient (3,), rescaled pixels (rows, columns))."""
    ipp = _floats(ds, "ImagePositionPatient", 3, p)
    try:
        pixels = np.asarray(ds.pixel_array, np.float64)
    except Exception as err:
        raise ValueError(f"DICOM file {p} has no readable pixel data ({type(err).__name__}: {err})") from None
    if pixels.shape != matrix:
        raise ValueError(f"DICOM file {p}: pixel data shape {pixels.shape} is not one {matrix[0]}x{matrix[1]} frame")
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    return float(ipp @ normal), ipp, pixels * slope + intercept


def _slice_vector(slices: list[tuple[float, np.ndarray, np.ndarray, Path]], normal: np.ndarray, ds0: Any,
                  label: str) -> np.ndarray:
    """The step [mm] from one slice to the next (sorted slices); ValueError for repeated or uneven positions."""
    if len(slices) == 1:
        thick = float(getattr(ds0, "SpacingBetweenSlices", 0) or getattr(ds0, "SliceThickness", 0) or 1.0)
        return normal * thick
    gaps = np.diff(np.array([s[0] for s in slices]))
    if np.any(gaps < 1e-3):
        dup = slices[int(np.argmin(gaps)) + 1][3]
        raise ValueError(f"{label}: two slices share one position (e.g. {dup}); several echoes or volumes "
                         "in one directory? Put each in its own directory")
    if np.ptp(gaps) > _SPACING_RTOL * gaps.mean():
        raise ValueError(f"{label}: slice spacing is not uniform (gaps {gaps.min():.3f}-{gaps.max():.3f} mm); "
                         "resample it or convert it with dcm2niix")
    return (slices[-1][1] - slices[0][1]) / (len(slices) - 1)


def load_dicom_series(directory: str | Path, what: str = "image") -> Volume:
    """Read a directory of single-frame DICOM slices of one series into a 3-D :class:`Volume`.

    Parameters
    ----------
    directory : folder holding the slice files (searched recursively; hidden files and DICOMDIR skipped).
    what : label for messages (``"T2w image"``).

    Returns
    -------
    Volume
        ``data`` (n_columns, n_rows, n_slices) float32 with RescaleSlope / RescaleIntercept applied per slice;
        ``affine`` (4, 4) RAS+ [mm]; ``metadata["params"]`` a :class:`train.clinical.sidecar.FileParams` of
        TR/TE/TI.

    Raises
    ------
    ImportError
        If pydicom is not installed (with the command that installs it).
    FileNotFoundError
        If the directory does not exist.
    ValueError
        Naming the file for unreadable files, several series, multi-frame files, missing or inconsistent
        geometry (orientation, pixel spacing, matrix size), non-uniform slice spacing or missing pixel data.
    """
    d = Path(directory)
    label = f"{what} DICOM series {d}"
    if not d.exists():
        raise FileNotFoundError(f"{label} not found")
    if not d.is_dir():
        raise ValueError(f"{label} is not a directory")
    items = _read_all(d, _import_pydicom())
    iop, spacing, matrix = _series_geometry(items, label)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    slices = sorted(((*_slice(p, ds, normal, matrix), p) for p, ds in items), key=lambda s: s[0])
    slice_vec = _slice_vector(slices, normal, items[0][1], label)
    # voxel axes (column c, row r, slice k): data[c, r, k] = pixels_k[r, c]
    data = np.stack([s[2].T for s in slices], axis=-1)
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_dir * spacing[1]  # one column step moves Δc along X
    affine_lps[:3, 1] = col_dir * spacing[0]  # one row step moves Δr along Y
    affine_lps[:3, 2] = slice_vec
    affine_lps[:3, 3] = slices[0][1]
    data, affine = check_volume(data, LPS_TO_RAS @ affine_lps, label)
    return Volume(data=data, affine=affine, source=str(d),
                  metadata={"params": dicom_params(items[0][1], d), "n_files": len(slices)})
