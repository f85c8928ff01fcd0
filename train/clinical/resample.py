"""Put images on one voxel grid: grid comparison and affine resampling with scipy's map_coordinates.

A grid is a shape ``(X, Y, Z)`` and a (4, 4) voxel -> world [mm] affine. Two grids are "the same" when the
shapes agree and every corner voxel centre lies within ``tol_vox`` voxels of its twin (default 0.01 voxel:
far below any clinically meaningful shift, far above float32 round-off of DICOM/NIfTI headers).
"""
from __future__ import annotations

from itertools import product

import numpy as np

from relaxomap.train.clinical.nifti import voxel_sizes_mm

__all__ = ["grid_mismatch_mm", "same_grid", "resample_to_grid", "field_of_view", "DEFAULT_TOL_VOX", "to_ras",
           "from_ras"]

#: Default grid tolerance [voxels of the reference grid].
DEFAULT_TOL_VOX = 0.01
#: Slices of the target grid resampled per map_coordinates call (bounds the coordinate arrays' memory).
_SLAB = 16


def _corners(shape: tuple[int, ...]) -> np.ndarray:
    """(8, 4) homogeneous voxel coordinates of the corner voxel centres."""
    return np.array([[*c, 1.0] for c in product(*[(0, n - 1) for n in shape[:3]])], np.float64)


def grid_mismatch_mm(shape_a: tuple[int, ...], affine_a: np.ndarray, affine_b: np.ndarray) -> float:
    """Largest world distance [mm] between corner voxel centres of grid ``(shape_a, affine_a)`` and the same
    voxel indices mapped through ``affine_b``."""
    c = _corners(shape_a)
    wa = c @ np.asarray(affine_a, np.float64).T
    wb = c @ np.asarray(affine_b, np.float64).T
    return float(np.max(np.linalg.norm(wa[:, :3] - wb[:, :3], axis=1)))


def same_grid(
    shape_a: tuple[int, ...],
    affine_a: np.ndarray,
    shape_b: tuple[int, ...],
    affine_b: np.ndarray,
    tol_vox: float = DEFAULT_TOL_VOX,
) -> bool:
    """True when the shapes match and corners agree within ``tol_vox`` of the smallest voxel size of ``a``."""
    if tuple(shape_a[:3]) != tuple(shape_b[:3]):
        return False
    tol_mm = tol_vox * float(voxel_sizes_mm(affine_a).min())
    return grid_mismatch_mm(shape_a, affine_a, affine_b) <= tol_mm


def _source_indices(affine: np.ndarray, shape: tuple[int, int, int], target_affine: np.ndarray):
    """Yield ``(z0, z1, src_idx)``: the source voxel coordinates (3, X, Y, z1 - z0) of each target slab."""
    vox2vox = np.linalg.inv(np.asarray(affine, np.float64)) @ np.asarray(target_affine, np.float64)
    nx, ny, nz = (int(n) for n in shape)
    ii, jj = np.meshgrid(np.arange(nx, dtype=np.float64), np.arange(ny, dtype=np.float64), indexing="ij")
    for z0 in range(0, nz, _SLAB):
        z1 = min(nz, z0 + _SLAB)
        kk = np.arange(z0, z1, dtype=np.float64)
        # target voxel coordinates of this slab: (3, nx, ny, z1 - z0)
        tgt = np.stack(np.broadcast_arrays(ii[..., None], jj[..., None], kk[None, None, :]))
        yield z0, z1, np.tensordot(vox2vox[:3, :3], tgt, axes=1) + vox2vox[:3, 3, None, None, None]


def resample_to_grid(
    data: np.ndarray,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    target_affine: np.ndarray,
    *,
    order: int = 1,
    cval: float = 0.0,
) -> np.ndarray:
    """Resample ``data`` (on grid ``affine``) onto the grid ``(shape, target_affine)``.

    For every target voxel index ``i`` the source index is ``inv(affine) @ target_affine @ i`` and the value
    is interpolated there (``order`` 1: trilinear; 0: nearest, for masks). Points outside the source get
    ``cval``. Works slab by slab along the third target axis, so extra memory is ~``3·X·Y·16`` float64.

    Parameters
    ----------
    data : (Xs, Ys, Zs) source image.
    affine : (4, 4) source voxel -> world [mm].
    shape : target (X, Y, Z).
    target_affine : (4, 4) target voxel -> world [mm].
    order : spline order, 0 or 1.
    cval : value outside the source field of view.

    Returns
    -------
    (X, Y, Z) float32
    """
    from scipy.ndimage import map_coordinates

    if order not in (0, 1):
        raise ValueError(f"resample_to_grid order must be 0 (nearest) or 1 (linear); got {order}")
    src = np.asarray(data, np.float32)
    if src.ndim != 3:
        raise ValueError(f"resample_to_grid data must be 3-D; got shape {src.shape}")
    out = np.empty(tuple(int(n) for n in shape), np.float32)
    for z0, z1, src_idx in _source_indices(affine, shape, target_affine):
        out[:, :, z0:z1] = map_coordinates(src, src_idx, order=order, mode="constant", cval=cval, prefilter=False)
    return out


def field_of_view(src_shape: tuple[int, ...], affine: np.ndarray, shape: tuple[int, int, int],
                  target_affine: np.ndarray, tol_vox: float = 1e-3) -> np.ndarray:
    """(X, Y, Z) bool: the target voxels whose centre lies inside the source grid's field of view.

    Inside means between the first and last source voxel centres on every axis (``tol_vox`` slack), where
    :func:`resample_to_grid` interpolates source data only; outside, it fills in ``cval``.
    """
    hi = np.asarray(src_shape[:3], np.float64)[:, None, None, None] - 1 + tol_vox
    out = np.empty(tuple(int(n) for n in shape), bool)
    for z0, z1, src_idx in _source_indices(affine, shape, target_affine):
        out[:, :, z0:z1] = np.all((src_idx >= -tol_vox) & (src_idx <= hi), axis=0)
    return out


def to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reorder voxel axes (permute / flip, no interpolation) so they point closest to R, A, S.

    The network works on axial slices with the in-plane layout of its training phantoms (x: L->R, y: P->A);
    after this the third voxel axis is inferior -> superior whatever the acquisition orientation.

    Parameters
    ----------
    data : (X, Y, Z) array.
    affine : (4, 4) voxel -> world RAS+ [mm].

    Returns
    -------
    data_ras : the reordered array (a view where possible).
    affine_ras : (4, 4) affine of ``data_ras``.
    ornt : (3, 2) nibabel orientation used; pass it to :func:`from_ras` to undo the reordering.
    """
    from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

    ornt = io_orientation(np.asarray(affine, np.float64))
    data_ras = apply_orientation(np.asarray(data), ornt)
    affine_ras = np.asarray(affine, np.float64) @ inv_ornt_aff(ornt, np.shape(data))
    return data_ras, affine_ras, ornt


def from_ras(data_ras: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """Undo :func:`to_ras`: put an array computed on the RAS-ordered grid back on the original voxel axes."""
    from nibabel.orientations import apply_orientation

    # ornt row i = (axis of the output that input axis i becomes, flip); invert the permutation with its flips
    inverse = np.empty_like(np.asarray(ornt, np.float64))
    for src_axis, (dst_axis, flip) in enumerate(np.asarray(ornt, np.float64)):
        inverse[int(dst_axis)] = (src_axis, flip)
    return apply_orientation(np.asarray(data_ras), inverse)
