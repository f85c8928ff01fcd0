"""Geometric augmentation: exact flips, and resampling of maps through an affine map plus a smooth displacement
field (random flip, rotation, scale, shift, slab choice and elastic deformation in one resampling).

``(PD, PD/T1, PD/T2)`` are interpolated trilinearly (:mod:`relaxomap.synth.rates`: a resampled voxel is a
physical mixture of its neighbours' tissues), labels and mask take the nearest source voxel. Positions are in
mm from the grid centres.
"""
from __future__ import annotations

import math
from typing import Sequence

import numba
import numpy as np

from relaxomap.synth.augment.config import AugmentConfig
from relaxomap.synth.fields import smooth_noise
from relaxomap.synth.maps import Maps
from relaxomap.synth.orientation import rotation_zyx
from relaxomap.synth.rates import to_rates
from relaxomap.synth.texture import truncated_normal

__all__ = ["flip_maps", "warp_maps", "random_warp"]


# ----------------------------------------------------------------------------- flips
def flip_maps(maps: Maps, axes: Sequence[int]) -> Maps:
    """Exact flip of all arrays along ``axes`` (voxel values are moved, never interpolated)."""
    axes = tuple(int(a) for a in axes)
    for a in axes:
        if not 0 <= a < len(maps.shape):
            raise ValueError(f"flip_maps: axes must be in [0, {len(maps.shape) - 1}]; got {a}")
    if not axes:
        return maps.replace()
    f = lambda a: np.ascontiguousarray(np.flip(a, axes))  # noqa: E731
    return maps.replace(t1_ms=f(maps.t1_ms), t2_ms=f(maps.t2_ms), pd=f(maps.pd), labels=f(maps.labels),
                 mask=f(maps.mask))


# ----------------------------------------------------------------------------- resampling
@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _trilinear_zero(vol, x, y, z):  # pragma: no cover - numba
    """Trilinear sample of ``vol`` at index coordinates, zero outside."""
    nx, ny, nz = vol.shape
    i0, j0, k0 = math.floor(x), math.floor(y), math.floor(z)
    if i0 < -1 or j0 < -1 or k0 < -1 or i0 >= nx or j0 >= ny or k0 >= nz:
        return 0.0
    tx, ty, tz = x - i0, y - j0, z - k0
    acc = 0.0
    for di in range(2):
        ii = i0 + di
        if ii < 0 or ii >= nx:
            continue
        wx = tx if di else 1.0 - tx
        for dj in range(2):
            jj = j0 + dj
            if jj < 0 or jj >= ny:
                continue
            wy = ty if dj else 1.0 - ty
            for dk in range(2):
                kk = k0 + dk
                if kk < 0 or kk >= nz:
                    continue
                wz = tz if dk else 1.0 - tz
                acc += wx * wy * wz * vol[ii, jj, kk]
    return acc


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _warp_kernel(pd, a1, a2, labels, mask, mat, off, disp, use_disp, vox, n_sub,
                 o_pd, o_a1, o_a2, o_lab, o_mask):  # pragma: no cover - numba
    nx, ny, nz = o_pd.shape
    sx, sy, sz = labels.shape
    for i in range(nx):
        px = (i - (nx - 1) / 2.0) * vox[0]
        for j in range(ny):
            py = (j - (ny - 1) / 2.0) * vox[1]
            for k in range(nz):
                pz0 = (k - (nz - 1) / 2.0) * vox[2]
                dx, dy, dz = 0.0, 0.0, 0.0
                if use_disp:
                    dx, dy, dz = disp[0, i, j, k], disp[1, i, j, k], disp[2, i, j, k]
                x, y = px + dx, py + dy
                acc0, acc1, acc2 = 0.0, 0.0, 0.0
                for sub in range(n_sub):
                    z = pz0 + ((sub + 0.5) / n_sub - 0.5) * vox[2] + dz
                    u = mat[0, 0] * x + mat[0, 1] * y + mat[0, 2] * z + off[0]
                    v = mat[1, 0] * x + mat[1, 1] * y + mat[1, 2] * z + off[1]
                    w = mat[2, 0] * x + mat[2, 1] * y + mat[2, 2] * z + off[2]
                    acc0 += _trilinear_zero(pd, u, v, w)
                    acc1 += _trilinear_zero(a1, u, v, w)
                    acc2 += _trilinear_zero(a2, u, v, w)
                o_pd[i, j, k] = acc0 / n_sub
                o_a1[i, j, k] = acc1 / n_sub
                o_a2[i, j, k] = acc2 / n_sub
                z = pz0 + dz  # labels: nearest neighbour of the voxel centre
                u = round(mat[0, 0] * x + mat[0, 1] * y + mat[0, 2] * z + off[0])
                v = round(mat[1, 0] * x + mat[1, 1] * y + mat[1, 2] * z + off[1])
                w = round(mat[2, 0] * x + mat[2, 1] * y + mat[2, 2] * z + off[2])
                if 0 <= u < sx and 0 <= v < sy and 0 <= w < sz:
                    o_lab[i, j, k] = labels[u, v, w]
                    o_mask[i, j, k] = mask[u, v, w]
                else:
                    o_lab[i, j, k] = 0
                    o_mask[i, j, k] = False


def warp_maps(
    maps: Maps,
    matrix: np.ndarray,
    offset_mm: Sequence[float],
    *,
    shape: Sequence[int] | None = None,
    voxel_mm: Sequence[float] | None = None,
    displacement_mm: np.ndarray | None = None,
    flip: Sequence[bool] = (False, False, False),
    z_supersample: int = 0,
) -> Maps:
    """Resample maps on a new grid through an affine map plus an optional displacement field.

    The output voxel at position ``p`` [mm] from the output grid centre samples the source at
    ``matrix @ (p + displacement(p)) + offset_mm`` [mm] from the source grid centre, after flipping the source
    axes marked in ``flip``. ``(PD, PD/T1, PD/T2)`` are interpolated trilinearly (averaged over
    ``z_supersample`` sub-slices for thick output slices; 0 = round(output dz / source dz)), labels and mask
    take the nearest source voxel; outside the source is background.

    Parameters
    ----------
    matrix : (3, 3) output mm -> source mm.
    offset_mm : (3,) source position [mm, from the source centre] of the output centre.
    shape, voxel_mm : output grid (default: the source's).
    displacement_mm : (3, *shape) float32 displacement [mm] on the output grid, or None.
    """
    if maps.labels.ndim != 3:
        raise ValueError(f"warp_maps needs 3-D maps (X, Y, Z); got shape {maps.shape}")
    shape = tuple(int(s) for s in (shape or maps.shape))
    vox_out = np.asarray(voxel_mm if voxel_mm is not None else maps.voxel_mm, np.float64)
    vox_src = maps.voxel_mm.astype(np.float64)
    n_src = np.array(maps.shape, np.float64)
    mat = np.asarray(matrix, np.float64) / vox_src[:, None]  # output mm -> source index
    off = np.asarray(offset_mm, np.float64) / vox_src + (n_src - 1) / 2
    for a, f in enumerate(flip):
        if f:  # sampling the flipped source at index s reads the source at N - 1 - s
            mat[a] *= -1.0
            off[a] = n_src[a] - 1 - off[a]
    n_sub = z_supersample or max(1, min(8, round(vox_out[2] / vox_src[2])))
    use_disp = displacement_mm is not None
    disp = (np.ascontiguousarray(displacement_mm, np.float32) if use_disp else np.zeros((3, 1, 1, 1), np.float32))
    if use_disp and disp.shape != (3,) + shape:
        raise ValueError(f"warp_maps: displacement_mm must have shape {(3,) + shape}; got {disp.shape}")
    pd, a1, a2 = to_rates(maps.t1_ms, maps.t2_ms, maps.pd)
    out = [np.empty(shape, np.float32) for _ in range(3)]
    lab = np.empty(shape, np.uint8)
    msk = np.empty(shape, np.bool_)
    _warp_kernel(pd, a1, a2, np.ascontiguousarray(maps.labels), np.ascontiguousarray(maps.mask), mat, off, disp,
                 use_disp, vox_out, int(n_sub), out[0], out[1], out[2], lab, msk)
    return maps.with_rates(*out, labels=lab, mask=msk, voxel_mm=vox_out.astype(np.float32))


def random_warp(maps: Maps, rng: np.random.Generator, config: AugmentConfig) -> Maps:
    """Random flip, rotation, scale, shift, slab choice and elastic deformation (one resampling).

    The output grid is ``config.shape`` / ``config.voxel_mm`` (default: the source grid). When the output
    covers less z than the source, the slab centre is drawn inside the brain mask's z extent.
    """
    flips = rng.uniform(size=3) < np.asarray(config.flip_prob)
    rot = rotation_zyx(*(rng.uniform(-m, m) for m in config.rotate_deg))
    scale = rng.uniform(*config.scale) * (1.0 + config.aspect_sd * truncated_normal(rng, 3, 2.5))
    shape = tuple(config.shape or maps.shape)
    vox_out = np.asarray(config.voxel_mm or maps.voxel_mm, np.float64)
    vox_src = maps.voxel_mm.astype(np.float64)
    offset = np.zeros(3)
    offset[:2] = rng.uniform(-config.shift_mm, config.shift_mm, 2)
    extent_out, extent_src = shape[2] * vox_out[2], maps.shape[2] * vox_src[2]
    z_draw = rng.uniform()
    if extent_out < extent_src - 1e-6:
        zs = np.flatnonzero(maps.mask.any(axis=(0, 1)))
        if len(zs) == 0:
            zs = np.array([maps.shape[2] // 2])
        lo, hi = ((zs[[0, -1]] - (maps.shape[2] - 1) / 2) * vox_src[2])
        margin = min(10.0, (hi - lo) / 2)
        offset[2] = (lo + margin) + z_draw * ((hi - margin) - (lo + margin))
    disp = None
    if config.elastic_mm > 0:
        steps = config.elastic_scale_mm / vox_out
        disp = np.stack([np.float32(config.elastic_mm) * smooth_noise(rng, shape, steps) for _ in range(3)])
    return warp_maps(maps, rot @ np.diag(scale), offset, shape=shape, voxel_mm=vox_out, displacement_mm=disp,
                     flip=flips, z_supersample=config.z_supersample)
