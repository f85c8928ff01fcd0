"""The phantom's brain as signed depths [mm]: cerebral hull with its floor, cortical folding, fissures,
cerebellum with folia, brainstem and cord.

The cerebrum is an egg-shaped ellipsoid (narrower frontally, wider parietally) with its convex envelope down to
the middle fossae laterally (the temporal fossa is filled by temporalis muscle, so the head surface does not
dip there), cut by a floor: anterior fossa, temporal lobes in the middle fossae, tentorium rising towards the
midline, orbital roofs bulging up, random bumps. Cortical folding comes from the zero sheets of a smooth random
field sampled in radially stretched coordinates, so sulci run perpendicular to the surface, with random depth,
width and spacing (:func:`sulcal_depth`); the interhemispheric fissure runs above the corpus callosum, the
Sylvian fissures end at the insula (:func:`carve_fissures`). :func:`brain_depths` assembles them; the fused
per-voxel Numba kernels below replace chains of array-wide NumPy expressions (serial kernels: generation runs in
several worker processes). Distances are in mm, arrays 3-D float32 ``(X, Y, Z)``.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from relaxomap.synth.fields import sample_trilinear, smooth_noise, trilinear_at
from relaxomap.synth.phantom.frame import CoordGrid, index_box
from relaxomap.synth.phantom.shapes import capsule_depth, ellipsoid_depth, step, union_depth
from relaxomap.synth.phantom.thickness import positive_field

__all__ = ["brain_depths", "cerebrum_shell", "folding_field", "sulcal_depth", "sulcal_skip_mm", "carve_fissures"]


def _cerebrum(q: CoordGrid, rng: np.random.Generator, spacing: tuple[float, float, float],
              atrophy: float) -> dict[str, np.ndarray]:
    """Hull depth ``hull_c`` of the cerebrum, its ``envelope``, the ``floor`` height, the parenchymal depth ``rho``
    with sulci and fissures, the GM thickness ``tgm`` (all [mm], float32 of q's shape) and the semi-axes ``a``,
    ``b`` and floor level ``floor0`` [mm]."""
    shape = q[0].shape
    a, b = 66.0 * rng.uniform(0.93, 1.07), 84.0 * rng.uniform(0.93, 1.07)
    c_up, c_lo = 66.0 * rng.uniform(0.93, 1.07), 54.0 * rng.uniform(0.9, 1.1)
    egg = rng.uniform(0.02, 0.10)
    floor0, drop = -30.0 * rng.uniform(0.9, 1.1), 20.0 * rng.uniform(0.8, 1.2)
    bumps = smooth_noise(rng, shape, 25.0 / np.asarray(spacing))
    # Cortical folding: zero sheets of a smooth field sampled at radially compressed coordinates, so the
    # field barely changes along the radius and its zero sheets (sulci) run perpendicular to the surface.
    step_s = rng.uniform(3.5, 5.0)
    lo, grid_mm = np.array([-105.0, -120.0, -85.0]), 1.5
    noise = smooth_noise(rng, (141, 161, 131), step_s / grid_mm)
    hull_c, envelope, floor, g = cerebrum_shell(q, bumps, a, b, c_up, c_lo, egg, floor0, drop)
    del bumps
    half_width = positive_field(rng, shape, spacing, 30.0, 0.15 + 0.55 * atrophy, 0.4)
    depth = positive_field(rng, shape, spacing, 35.0, 15.0 * rng.uniform(0.8, 1.25), 0.3)
    tgm = positive_field(rng, shape, spacing, 40.0, 2.8 * rng.uniform(0.85, 1.15), 0.12)
    # sampled only where the sulci can reach (exact: sulcal_depth reads nothing else)
    g = folding_field(q, g, noise, lo, grid_mm, hull_c, sulcal_skip_mm(half_width, spacing))
    del noise
    rho = sulcal_depth(g, spacing, hull_c, half_width, depth)
    del g, half_width, depth
    # Interhemispheric fissure (down to the corpus callosum in the middle, through the whole brain in front
    # of the genu and behind the splenium) and Sylvian fissures ending at the insula.
    mid = smooth_noise(rng, shape, 40.0 / np.asarray(spacing))
    x_insula = 0.55 * a * rng.uniform(0.92, 1.08)
    wobble = smooth_noise(rng, shape, 15.0 / np.asarray(spacing))
    carve_fissures(rho, q, mid, wobble, 0.8 + 1.2 * atrophy, x_insula, rng.uniform(-4, 4), 0.5 + 1.0 * atrophy)
    return {"hull_c": hull_c, "rho": rho, "tgm": tgm, "envelope": envelope, "floor": floor, "a": a, "b": b,
            "floor0": floor0}


def _posterior_fossa(q: CoordGrid, rng: np.random.Generator, spacing: tuple[float, float, float],
                     brain: dict[str, np.ndarray]) -> None:
    """Cerebellum (folia: sheets of a field stretched along x) and brainstem / cord below the tentorium, written
    into ``brain``'s ``rho``, ``tgm`` and ``hull`` (in place)."""
    box = index_box(q, (-70.0, -100.0, -150.0), (70.0, 5.0, -15.0))
    if box is None:
        return
    hull_c, floor = brain["hull_c"], brain["floor"]
    bx, by, bz = q[0][box], q[1][box], q[2][box]
    cb = union_depth([
        ellipsoid_depth(bx - 24.0, by + 52.0, bz + 52.0, 26.0, 24.0, 25.0),
        ellipsoid_depth(bx + 24.0, by + 52.0, bz + 52.0, 26.0, 24.0, 25.0),
        ellipsoid_depth(bx, by + 55.0, bz + 48.0, 10.0, 20.0, 27.0),
    ])
    cb = np.minimum(cb, (floor[box] - 2.5) - bz)  # below the tentorium
    folia = smooth_noise(rng, (121, 86, 71), (12.0, 3.0, 3.0))[None]
    g2 = sample_trilinear(folia, (-60.0, -95.0, -90.0), 1.0, bx, by, bz)[0]
    rho_cb = sulcal_depth(g2, spacing, cb, 0.3, 9.0 * rng.uniform(0.8, 1.2))
    pts = np.array([[0, -12, -22], [0, -18, -42], [0, -22, -60], [0, -27, -78], [0, -29, -160]], float)
    # only compared with max(hull_c, cb) below (and maxed with it): exact only where it can exceed that
    bs = capsule_depth(bx, by, bz, pts, np.array([12.0, 13.0, 10.0, 8.0, 7.0]) * rng.uniform(0.9, 1.1),
                       floor=np.maximum(hull_c[box], cb))
    sub_rho, sub_tgm, sub_hull = brain["rho"][box], brain["tgm"][box], brain["hull"][box]
    use_cb = cb > np.maximum(hull_c[box], bs)
    use_bs = bs > np.maximum(hull_c[box], cb)
    sub_rho[use_cb] = rho_cb[use_cb]
    sub_tgm[use_cb] = 1.4
    sub_rho[use_bs] = bs[use_bs]
    sub_tgm[use_bs] = 0.0
    np.maximum(sub_hull, np.maximum(cb, bs), out=sub_hull)


def brain_depths(q: CoordGrid, rng: np.random.Generator, spacing: tuple[float, float, float],
                 atrophy: float) -> dict[str, np.ndarray]:
    """The brain of one subject as depths on the canonical coordinates ``q`` (module docstring).

    Parameters
    ----------
    q : canonical coordinates [mm] of the (sub-slice) grid.
    rng : random generator (anatomy draws, in a fixed order).
    spacing : (3,) grid spacing [mm]. atrophy : score in [0, 1] (wider sulci).

    Returns
    -------
    dict of float32 (X, Y, Z) arrays [mm]: ``hull_c`` (cerebral hull depth), ``hull`` (brain hull depth, with
    cerebellum and brainstem), ``rho`` (parenchymal depth: distance to CSF of sulci, fissures and the
    surface), ``tgm`` (GM thickness; 1.4 in the cerebellum, 0 in the brainstem), ``envelope`` (the cerebrum
    filled down to the middle fossae laterally), and float32 scalars ``a``, ``b`` (cerebral semi-axes) and
    ``floor0`` (floor level).
    """
    cerebrum = _cerebrum(q, rng, spacing, atrophy)
    brain = dict(cerebrum, hull=cerebrum["hull_c"].copy())
    _posterior_fossa(q, rng, spacing, brain)
    return {"hull_c": brain["hull_c"], "hull": brain["hull"], "rho": brain["rho"], "tgm": brain["tgm"],
            "envelope": brain["envelope"], "a": np.float32(brain["a"]), "b": np.float32(brain["b"]),
            "floor0": np.float32(brain["floor0"])}


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
        envelope[n] = h + (min(h, z - (floor0 - drop)) - h) * step(ox_ / a, 0.35, 0.55)
        lateral = step(ox_, 14.0, 34.0)
        middle = step(y, -48.0, -30.0) * (1.0 - step(y, 18.0, 38.0))
        tent = 8.0 * (1.0 - step(ox_, 5.0, 50.0)) * (1.0 - step(y, -40.0, -25.0))
        orbit = 7.0 * step(ox_, 8.0, 30.0) * step(y, 25.0, 45.0)
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
                # |grad g| [1/mm]: central differences, one-sided at the edges
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
