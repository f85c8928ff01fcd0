"""Fused per-voxel Numba kernels of the procedural phantom (:mod:`synth.phantom`).

Each kernel replaces a chain of array-wide NumPy expressions over the full 224 × 256 × 48 grid (one
temporary array per operation) by one pass that keeps every intermediate in registers. The formulas are
those documented in :mod:`synth.phantom`; distances are in mm, arrays are 3-D float32 ``(X, Y, Z)`` grids,
serial kernels (generation runs in several worker processes).
"""
from __future__ import annotations

import math

import numba
import numpy as np

from relaxomap.synth.fields import trilinear_at
from relaxomap.synth.geometry import step32

__all__ = ["canonical_frame", "cerebrum_shell", "folding_field", "sulcal_depth", "sulcal_skip_mm", "carve_fissures",
           "exp_field", "face_shell", "layers", "scalp_fields"]

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _step(u, lo, hi):  # pragma: no cover - numba
    # cubic smoothstep from 0 at u = lo to 1 at u = hi: the one formula, synth.geometry.step32, in u's precision
    return step32(u, lo, 1.0 / (hi - lo))


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _frame_kernel(gx, gy, gz, dx, dy, dz, amp, mat, offset, qx, qy, qz):  # pragma: no cover - numba
    n0, n1, n2 = qx.shape
    bx, by, bz = dx.shape[0] > 1, dx.shape[1] > 1, dx.shape[2] > 1  # displacement broadcast when (1, 1, 1)
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                ii, jj, kk = i if bx else 0, j if by else 0, k if bz else 0
                wx = gx[i] + amp * dx[ii, jj, kk]
                wy = gy[j] + amp * dy[ii, jj, kk]
                wz = gz[k] + amp * dz[ii, jj, kk]
                qx[i, j, k] = mat[0, 0] * wx + mat[0, 1] * wy + mat[0, 2] * wz + offset[0]
                qy[i, j, k] = mat[1, 0] * wx + mat[1, 1] * wy + mat[1, 2] * wz + offset[1]
                qz[i, j, k] = mat[2, 0] * wx + mat[2, 1] * wy + mat[2, 2] * wz + offset[2]


def canonical_frame(grid: tuple[np.ndarray, ...], disp: list[np.ndarray], amp_mm: float, mat: np.ndarray,
                    offset_mm: np.ndarray) -> tuple[np.ndarray, ...]:
    """Canonical coordinates ``q = mat · (grid + amp_mm · disp) + offset_mm`` [mm] of every voxel.

    Parameters
    ----------
    grid : world coordinates [mm] of the voxel centres along x, y, z (1-D, or broadcastable 3-D views).
    disp : 3 unit-variance displacement fields (X, Y, Z) float32, or 3 (1, 1, 1) zeros for none.
    amp_mm : displacement amplitude [mm]. mat : (3, 3) world -> canonical. offset_mm : (3,).

    Returns
    -------
    ``(qx, qy, qz)`` float32 (X, Y, Z).
    """
    g = [np.ascontiguousarray(np.ravel(v), np.float32) for v in grid]
    shape = (g[0].size, g[1].size, g[2].size)
    q = tuple(np.empty(shape, np.float32) for _ in range(3))
    _frame_kernel(*g, *(np.ascontiguousarray(d, np.float32) for d in disp), np.float32(amp_mm),
                  np.asarray(mat, np.float32), np.asarray(offset_mm, np.float32), *q)
    return q


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _face_kernel(qx, qy, qz, fat, weight, a_brain, b_brain, skin, w, out_skin, out_fat, deep):  # pragma: no cover
    inv = 1.0 / w
    n0, n1, n2 = qx.shape
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                x, z = qx[i, j, k], qz[i, j, k]
                neck = _step(-z, 85.0, 115.0)
                a_f = (a_brain + 14.0) * (0.95 - 0.3 * neck)
                b_f = (b_brain + 14.0) * (1.0 - 0.35 * neck)
                y = qy[i, j, k] - (5.0 - 20.0 * neck)
                r = max(math.sqrt((x / a_f) ** 2 + (y / b_f) ** 2), 1e-3)
                d = math.sqrt(x * x + y * y) * (1.0 - r) / r  # depth inside the elliptic cross-section
                f0 = min(max(0.5 + d * inv, 0.0), 1.0)
                f1 = min(max(0.5 + (d - skin) * inv, 0.0), 1.0)
                f2 = min(max(0.5 + (d - skin - fat[i, j, k]) * inv, 0.0), 1.0)
                wt = weight[i, j, k]
                out_skin[i, j, k] += wt * (f0 - f1)
                out_fat[i, j, k] += wt * (f1 - f2)
                deep[i, j, k] = wt * f2


def face_shell(q: tuple[np.ndarray, ...], fat_mm: np.ndarray, weight: np.ndarray, a_brain_mm: float,
               b_brain_mm: float, skin_mm: float, w: float, skin_frac: np.ndarray,
               fat_frac: np.ndarray) -> np.ndarray:
    """Skin and fat of the face / neck added to ``skin_frac`` and ``fat_frac`` (in place); returns the rest.

    The face / neck is the elliptic cylinder of semi-axes ``(a_brain + 14) (0.95 − 0.3 n)`` and
    ``(b_brain + 14) (1 − 0.35 n)`` [mm] centred at y = 5 − 20 n [mm], n the neck weight (smoothstep from
    z = −85 to −115 mm): skin ``skin_mm`` thick, then fat ``fat_mm`` (X, Y, Z), each weighted by ``weight``
    (the share of the voxel left to the face). Returns ``weight ×`` the fraction deeper than the fat
    (float32 (X, Y, Z)), to be shared among muscle, fat islands, eyes and air.
    """
    deep = np.empty(q[0].shape, np.float32)
    _face_kernel(*q, fat_mm, weight, np.float32(a_brain_mm), np.float32(b_brain_mm), np.float32(skin_mm),
                 np.float32(w), skin_frac, fat_frac, deep)
    return deep


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _cerebrum_shell_kernel(qx, qy, qz, bumps, geo, hull, envelope, floor, scale):  # pragma: no cover
    # flat arrays, no gathers: the loop vectorises (the folding field is sampled by _folding_kernel)
    a, b, c_up, c_lo, egg, floor0, drop = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6]
    for n in range(qx.size):
        x, y, z = qx[n], qy[n], qz[n]
        ax = a * (1.0 - egg * y / b)  # narrower frontally, wider parietally
        cz = c_up if z > 0 else c_lo
        r = math.sqrt((x / ax) ** 2 + (y / b) ** 2 + (z / cz) ** 2)
        rc = max(r, 1e-3)
        h = math.sqrt(x * x + y * y + z * z) * (1.0 - rc) / rc  # ellipsoid depth
        ox_ = abs(x)
        envelope[n] = h + (min(h, z - (floor0 - drop)) - h) * _step(ox_ / a, 0.35, 0.55)
        lateral = _step(ox_, 14.0, 34.0)
        middle = _step(y, -48.0, -30.0) * (1.0 - _step(y, 18.0, 38.0))
        tent = 8.0 * (1.0 - _step(ox_, 5.0, 50.0)) * (1.0 - _step(y, -40.0, -25.0))
        orbit = 7.0 * _step(ox_, 8.0, 30.0) * _step(y, 25.0, 45.0)
        f = floor0 - drop * lateral * middle + tent + orbit + 4.5 * bumps[n]
        floor[n] = f
        hull[n] = min(h, z - f)
        scale[n] = 0.25 + 0.75 / max(r, 0.35)  # radial compression of the folding field's coordinates


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _folding_kernel(qx, qy, qz, noise, ox, oy, oz, inv_step, hull, min_hull, g):  # pragma: no cover - numba
    # g holds the radial scale on entry and the sampled field on exit (0 where hull < min_hull: not needed)
    for n in range(qx.size):
        if hull[n] < min_hull:
            g[n] = 0.0
            continue
        s = g[n]
        g[n] = trilinear_at(noise, ox, oy, oz, inv_step, qx[n] * s, qy[n] * s, qz[n] * s, np.float32(0.0))


def cerebrum_shell(q: tuple[np.ndarray, ...], bumps: np.ndarray, a: float, b: float, c_up: float, c_lo: float,
                   egg: float, floor0: float, drop: float) -> tuple[np.ndarray, ...]:
    """Cerebral hull depth, its convex envelope, the floor height and the folding coordinates' scale, in one pass.

    Parameters
    ----------
    q : canonical coordinates [mm], 3 float32 arrays (X, Y, Z).
    bumps : (X, Y, Z) float32 unit-variance field; the floor gets ``4.5 mm ·`` it.
    a, b, c_up, c_lo : semi-axes [mm] (x, y, z above / below the centre); ``egg`` narrows x frontally.
    floor0, drop : floor height [mm] and its drop in the middle fossae [mm].

    Returns
    -------
    ``(hull, envelope, floor, scale)`` float32 (X, Y, Z): depth [mm] below the cerebral surface cut by the
    floor, the envelope depth [mm] (cerebrum filled down to the middle fossae laterally), the floor height
    [mm] and the radial compression ``0.25 + 0.75 / max(r, 0.35)`` of the folding field's sample points
    (``r`` the ellipsoid radius), to be passed to :func:`folding_field`.
    """
    shape = q[0].shape
    hull, envelope, floor, scale = (np.empty(shape, np.float32) for _ in range(4))
    flat = [np.ascontiguousarray(c, np.float32).reshape(-1) for c in q]
    geo = np.array([a, b, c_up, c_lo, egg, floor0, drop], np.float32)
    _cerebrum_shell_kernel(*flat, np.ascontiguousarray(bumps, np.float32).reshape(-1), geo, hull.reshape(-1),
                           envelope.reshape(-1), floor.reshape(-1), scale.reshape(-1))
    return hull, envelope, floor, scale


def folding_field(q: tuple[np.ndarray, ...], scale: np.ndarray, noise: np.ndarray, noise_origin_mm: np.ndarray,
                  noise_step_mm: float, hull: np.ndarray, min_hull_mm: float = -np.inf) -> np.ndarray:
    """The folding field ``noise`` sampled (trilinear, 0 outside its grid) at ``q · scale``, in place of ``scale``.

    ``noise`` is (nx, ny, nz) float32 on a grid at ``noise_origin_mm + noise_step_mm · index`` [mm]. Voxels
    with ``hull < min_hull_mm`` are set to 0 without sampling: the caller guarantees they are not used (see
    :func:`sulcal_depth`). Returns ``scale``, overwritten.
    """
    o = np.asarray(noise_origin_mm, np.float32)
    _folding_kernel(*(np.ascontiguousarray(c, np.float32).reshape(-1) for c in q),
                    np.ascontiguousarray(noise, np.float32),
                    o[0], o[1], o[2], np.float32(1.0 / noise_step_mm), np.ascontiguousarray(hull).reshape(-1),
                    np.float32(min_hull_mm), scale.reshape(-1))
    return scale


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _sulcal_kernel(g, h, hull, half_width, depth, skip_below, out):  # pragma: no cover - numba
    n0, n1, n2 = g.shape
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                if hull[i, j, k] < skip_below:  # the sulcal distance is >= -half_width > hull: rho = hull
                    out[i, j, k] = hull[i, j, k]
                    continue
                # |grad g| [1/mm]: central differences, one-sided at the edges (as synth.geometry.grad_norm)
                acc = 0.0
                if n0 > 1:
                    lo, hi = max(i - 1, 0), min(i + 1, n0 - 1)
                    d = (g[hi, j, k] - g[lo, j, k]) / ((hi - lo) * h[0])
                    acc += d * d
                if n1 > 1:
                    lo, hi = max(j - 1, 0), min(j + 1, n1 - 1)
                    d = (g[i, hi, k] - g[i, lo, k]) / ((hi - lo) * h[1])
                    acc += d * d
                if n2 > 1:
                    lo, hi = max(k - 1, 0), min(k + 1, n2 - 1)
                    d = (g[i, j, hi] - g[i, j, lo]) / ((hi - lo) * h[2])
                    acc += d * d
                e = abs(g[i, j, k]) / max(math.sqrt(acc), 0.02)  # ≈ distance to the zero sheet [mm]
                inner = e - half_width[i, j, k]
                below = hull[i, j, k] - depth[i, j, k]
                if below < 0:
                    s = inner
                else:
                    s = math.sqrt(max(inner, 0.0) ** 2 + max(below, 0.0) ** 2)
                out[i, j, k] = min(hull[i, j, k], s)


def sulcal_depth(g: np.ndarray, spacing: tuple[float, float, float], hull: np.ndarray,
                 half_width: np.ndarray | float, depth: np.ndarray | float) -> np.ndarray:
    """Parenchymal depth [mm]: ``min(hull, distance to the CSF of sulci)``.

    Sulci are the zero sheets of ``g`` (distance ≈ |g| / |∇g|), ``half_width`` [mm] wide on each side,
    reaching ``depth`` [mm] below the hull (deeper they end in a rounded fundus). Arrays are (X, Y, Z)
    float32; ``half_width`` and ``depth`` may be scalars.

    The distance to a sulcus is at least ``−half_width``, so where ``hull < −max(half_width)`` the result is
    ``hull`` and ``g`` is not read there (nor beyond the neighbours of the other voxels): ``g`` only needs to
    be valid where ``hull >= sulcal_skip_mm(half_width, spacing)``.
    """
    shape = g.shape
    hw, dp = (np.broadcast_to(np.asarray(v, np.float32), shape) for v in (half_width, depth))
    out = np.empty(shape, np.float32)
    _sulcal_kernel(np.ascontiguousarray(g, np.float32), np.asarray(spacing, np.float32),
                   np.ascontiguousarray(hull, np.float32), hw, dp, np.float32(-float(np.max(hw)) - 1e-3), out)
    return out


def sulcal_skip_mm(half_width: np.ndarray | float, spacing: tuple[float, float, float]) -> float:
    """Hull depth [mm] above which :func:`sulcal_depth` may read the folding field (its voxels and neighbours).

    ``−max(half_width)`` for the voxels themselves, minus 4 voxel widths + 4 mm for their neighbours: the hull
    depth changes by at most ~3 mm per voxel (ray depth of an ellipsoid with axis ratio ≤ 1.6 plus the floor's
    slopes), so this is a wide margin.
    """
    return -float(np.max(half_width)) - 1e-3 - 4.0 * float(max(spacing)) - 4.0


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _fissure_kernel(rho, qx, qy, qz, mid, wobble, p):  # pragma: no cover - numba
    fis_half, x_insula, syl_off, syl_half = p[0], p[1], p[2], p[3]
    n0, n1, n2 = rho.shape
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                x, y, z = qx[i, j, k], qy[i, j, k], qz[i, j, k]
                z_cc = 16.0 - 8.0 * ((y - 13.0) / 35.0) ** 2  # corpus callosum top
                fissure = max(abs(x - 1.5 * mid[i, j, k]) - fis_half, min(z_cc - z, 35.0 - abs(y - 13.0)))
                z_syl = -6.0 - 0.4 * (y - 10.0) + syl_off + 3.0 * wobble[i, j, k]  # rises posteriorly
                sylvian = max(abs(z - z_syl) - syl_half, x_insula - abs(x), abs(y - 12.0) - 27.0)
                rho[i, j, k] = min(rho[i, j, k], fissure, sylvian)


def carve_fissures(rho: np.ndarray, q: tuple[np.ndarray, ...], mid: np.ndarray, wobble: np.ndarray,
                   fissure_half_mm: float, x_insula_mm: float, sylvian_offset_mm: float,
                   sylvian_half_mm: float) -> None:
    """Cut the interhemispheric and Sylvian fissures into the parenchymal depth ``rho`` (in place).

    Interhemispheric: ``|x − 1.5 · mid| < fissure_half_mm`` above the corpus callosum (z_cc = 16 − 8 ((y −
    13) / 35)² mm) and through the whole brain 35 mm in front of / behind y = 13 mm. Sylvian: a sheet at
    z = −6 − 0.4 (y − 10) + offset + 3 · wobble [mm], ``sylvian_half_mm`` thick, lateral to the insula
    (|x| > ``x_insula_mm``), |y − 12| < 27 mm. ``mid`` and ``wobble`` are unit-variance fields.
    """
    p = np.array([fissure_half_mm, x_insula_mm, sylvian_offset_mm, sylvian_half_mm], np.float32)
    _fissure_kernel(rho, *q, mid, wobble, p)


#: |x| up to which :func:`_exp_near_zero` is used (its error bound below holds there).
_EXP_NEAR_ZERO_MAX = 2.0


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _exp_near_zero(x):  # pragma: no cover - numba
    # exp(x) for |x| <= 2 in float64, as (degree-7 Taylor series of exp(x / 8))^8: the series' remainder is
    # < (1/4)^8 / 8! · e^(1/4) = 5e-10 relative, ×8 after the three squarings = 4e-9, far below float32
    # rounding (6e-8). Plain arithmetic, no libm call: the loops that use it vectorise.
    y = x * 0.125
    p = 1.0 + y * (1.0 + y * (0.5 + y * (1.0 / 6.0 + y * (1.0 / 24.0 + y * (1.0 / 120.0 + y * (1.0 / 720.0
                                                                                                + y / 5040.0))))))
    p = p * p
    p = p * p
    return p * p


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _exp_field_kernel(f, mean, rel_sd, clip):  # pragma: no cover - numba
    for i in range(f.size):
        f[i] = np.float32(mean * _exp_near_zero(rel_sd * min(max(np.float64(f[i]), -clip), clip)))


def exp_field(f: np.ndarray, mean: float, rel_sd: float, clip: float) -> np.ndarray:
    """``mean · exp(rel_sd · clip(f, ±clip))`` computed in place on the float32 array ``f``; returns it.

    One Numba pass with a series exp (float64 inside, so the result is float32 exp to rounding) while
    ``|rel_sd| · clip <= 2`` (every phantom field: 0.7 ms at 224 x 256 x 48, against 1.5 ms for four in-place
    NumPy passes, whose exp is SIMD where Numba's libm exp is a scalar call); those NumPy passes otherwise.
    """
    if f.dtype != np.float32:
        raise ValueError(f"exp_field: f must be float32; got {f.dtype}")
    if abs(rel_sd) * clip <= _EXP_NEAR_ZERO_MAX and f.flags.c_contiguous:
        _exp_field_kernel(f.reshape(-1), float(mean), float(rel_sd), float(clip))
        return f
    np.clip(f, -clip, clip, out=f)
    f *= np.float32(rel_sd)
    np.exp(f, out=f)
    f *= np.float32(mean)
    return f


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _layers_kernel(cavity, envelope, rho, tgm, t_skull, t_muscle, t_fat, lower, t_dura, t_skin, w, slots,
                   frac):  # pragma: no cover
    # Nested surfaces offset from the cavity surface: each layer is the difference of two "inside" ramps.
    s_csf, s_gm, s_wm, s_dura, s_skull, s_marrow, s_con, s_mus, s_fat, s_skin = (
        slots[0], slots[1], slots[2], slots[3], slots[4], slots[5], slots[6], slots[7], slots[8], slots[9])
    n0, n1, n2 = cavity.shape
    inv = 1.0 / w
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                c = cavity[i, j, k]
                inside = min(max(0.5 + c * inv, 0.0), 1.0)
                paren = min(max(0.5 + rho[i, j, k] * inv, 0.0), 1.0)
                white = min(max(0.5 + (rho[i, j, k] - tgm[i, j, k]) * inv, 0.0), 1.0)
                frac[s_gm, i, j, k] = inside * (paren - white)
                frac[s_wm, i, j, k] = inside * white
                frac[s_csf, i, j, k] = inside * (1.0 - paren)
                e_dura = c + t_dura
                e_skull = e_dura + t_skull[i, j, k]
                in_dura = min(max(0.5 + e_dura * inv, 0.0), 1.0)
                in_skull = min(max(0.5 + e_skull * inv, 0.0), 1.0)
                frac[s_dura, i, j, k] = in_dura - inside
                m0 = min(max(0.5 + (e_dura + 1.6) * inv, 0.0), 1.0)  # inner table 1.6 mm
                m1 = min(max(0.5 + (e_skull - 2.0) * inv, 0.0), 1.0)  # outer table 2 mm
                marrow = max(m1 - m0, 0.0)
                frac[s_marrow, i, j, k] = marrow
                frac[s_skull, i, j, k] = in_skull - in_dura - marrow
                scalp = 1.0 - lower[i, j, k]
                e1 = e_skull + 0.8  # galea
                e2 = max(e1 + t_muscle[i, j, k], envelope[i, j, k] + 9.0)  # muscle fills the temporal fossa
                e3 = e2 + t_fat[i, j, k]
                e4 = e3 + t_skin
                i1 = min(max(0.5 + e1 * inv, 0.0), 1.0)
                i2 = min(max(0.5 + e2 * inv, 0.0), 1.0)
                i3 = min(max(0.5 + e3 * inv, 0.0), 1.0)
                i4 = min(max(0.5 + e4 * inv, 0.0), 1.0)
                frac[s_con, i, j, k] = scalp * (i1 - in_skull)
                frac[s_mus, i, j, k] = scalp * (i2 - i1)
                frac[s_fat, i, j, k] = scalp * (i3 - i2)
                frac[s_skin, i, j, k] = scalp * (i4 - i3)


def layers(cavity: np.ndarray, envelope: np.ndarray, rho: np.ndarray, tgm: np.ndarray, t_skull: np.ndarray,
           t_muscle: np.ndarray, t_fat: np.ndarray, lower: np.ndarray, t_dura: float, t_skin: float, w: float,
           slots: tuple[int, ...], frac: np.ndarray) -> None:
    """Fractions of the nested layers around the cranial cavity, written into ``frac`` (S, X, Y, Z) in place.

    Inside the cavity (depth ``cavity`` [mm]): CSF, grey matter (parenchymal depth ``rho`` within ``tgm`` mm)
    and white matter. Outwards: dura (``t_dura`` mm), skull (``t_skull``; 1.6 mm inner and 2 mm outer table
    around marrow), galea (0.8 mm), muscle (``t_muscle``, at least to ``envelope`` + 9 mm), fat (``t_fat``)
    and skin (``t_skin``), the scalp layers weighted by ``1 − lower`` (face and neck take the rest).
    ``slots`` gives the frac slot of (CSF, GM, WM, dura, skull, marrow, connective, muscle, fat, skin).
    """
    _layers_kernel(cavity, envelope, rho, tgm, t_skull, t_muscle, t_fat, lower, np.float32(t_dura),
                   np.float32(t_skin), np.float32(w), np.asarray(slots, np.int64), frac)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _scalp_kernel(qx, qy, qz, inv_a, muscle_mm, t_skull, t_muscle, lower):  # pragma: no cover - numba
    f1 = np.float32(1.0)
    i_side, i_low, i_high = np.float32(1.0 / 0.35), np.float32(1.0 / 20.0), np.float32(1.0 / 20.0)
    i_neck, i_lower = np.float32(1.0 / 35.0), np.float32(1.0 / 12.0)
    for n in range(qx.size):
        z = qz[n]
        lateral = (step32(abs(qx[n]) * inv_a, np.float32(0.6), i_side) * step32(z, np.float32(-45.0), i_low)
                   * (f1 - step32(z, np.float32(15.0), i_high)))
        t_skull[n] *= f1 - np.float32(0.4) * lateral
        t_muscle[n] = muscle_mm * lateral
        z_top = np.float32(-36.0) - np.float32(36.0) * step32(-qy[n], np.float32(15.0), i_neck)
        lower[n] = step32(z_top - z, np.float32(0.0), i_lower)


def scalp_fields(q: tuple[np.ndarray, ...], a_mm: float, muscle_mm: float,
                 t_skull: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The temporal-region and neck weights of the head's outer layers, in one pass (:mod:`synth.phantom`).

    ``lateral = S(|x| / a; 0.6, 0.95) · S(z; -45, -25) · (1 - S(z; 15, 35))`` (the temporal fossa, S the cubic
    step of :func:`synth.geometry.smoothstep`) thins the skull in place (``t_skull *= 1 - 0.4 · lateral``) and
    gives the temporalis thickness ``muscle_mm · lateral``; ``lower = S(z_top - z; 0, 12)`` with
    ``z_top = -36 - 36 · S(-y; 15, 50)`` weights face / neck tissue against the scalp layers.

    Parameters
    ----------
    q : canonical coordinates (x, y, z) [mm], float32 C-contiguous arrays of one shape.
    a_mm : the brain's half-width [mm]; muscle_mm : temporalis thickness [mm] at full weight.
    t_skull : skull thickness [mm] (q's shape, float32, C-contiguous), thinned in place.

    Returns
    -------
    (t_muscle [mm], lower) float32 arrays of q's shape.
    """
    qx, qy, qz = (np.ascontiguousarray(c, np.float32) for c in q)
    if t_skull.shape != qx.shape or t_skull.dtype != np.float32 or not t_skull.flags.c_contiguous:
        raise ValueError(f"scalp_fields: t_skull must be C-contiguous float32 of shape {qx.shape}")
    t_muscle = np.empty(qx.shape, np.float32)
    lower = np.empty(qx.shape, np.float32)
    _scalp_kernel(qx.reshape(-1), qy.reshape(-1), qz.reshape(-1), np.float32(1.0 / np.float32(a_mm)),
                  np.float32(muscle_mm), t_skull.reshape(-1), t_muscle.reshape(-1), lower.reshape(-1))
    return t_muscle, lower
