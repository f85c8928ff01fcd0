"""Signed-distance shapes of the procedural phantom: partial-volume ramps, smooth steps, depths below ellipsoid
and capsule-chain surfaces, and the union of small shapes evaluated only around themselves.

Coordinates and distances are in mm; arrays are 3-D float32 grids ``(X, Y, Z)``. Depths are positive inside a
surface. The per-voxel loops are fused Numba kernels because these run on full 224 × 256 × 48 grids many
times per head; :func:`step32` and :func:`step` are the one smoothstep formula, inlined into the other
kernels of :mod:`relaxomap.synth.phantom`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numba
import numpy as np

from relaxomap.synth.phantom.frame import CoordGrid, index_boxes

__all__ = ["ramp", "smoothstep", "step32", "step", "ellipsoid_depth", "capsule_depth", "union_depth", "Ellipsoid",
           "CapsuleChain", "capsule_part", "ramp_of_union"]


def ramp(d: np.ndarray, w: float) -> np.ndarray:
    """Fraction of a voxel of width ``w`` [mm] inside a boundary at signed distance ``d`` [mm] (> 0 inside)."""
    r = np.multiply(d, np.float32(1.0 / w), dtype=np.float32)
    r += np.float32(0.5)
    return np.clip(r, 0.0, 1.0, out=r)


def smoothstep(x: np.ndarray | float, lo: float, hi: float, sign: float = 1.0, absolute: bool = False) -> np.ndarray:
    """Cubic step from 0 at ``u = lo`` to 1 at ``u = hi``, ``u = sign · x`` (``sign · |x|`` if ``absolute``).

    float32, one fused pass for arrays (these steps run on full 224 × 256 × 48 grids many times per head).
    """
    x = np.asarray(x, np.float32)
    if x.ndim == 0:
        u = np.float32(sign) * (np.abs(x) if absolute else x)
        t = np.clip((u - lo) / (hi - lo), 0.0, 1.0)
        return t * t * (3.0 - 2.0 * t)
    x = np.ascontiguousarray(x)
    out = np.empty(x.shape, np.float32)
    _smoothstep_kernel(x.reshape(-1), float(lo), float(hi), float(sign), bool(absolute), out.reshape(-1))
    return out


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def step32(u, lo, inv):  # pragma: no cover - numba
    """float32 cubic step of ``u`` from 0 at ``lo`` to 1 at ``lo + 1 / inv`` (the formula of :func:`smoothstep`,
    inlined in fused kernels; ``u``, ``lo``, ``inv`` float32)."""
    t = min(max((u - lo) * inv, np.float32(0.0)), np.float32(1.0))
    return t * t * (np.float32(3.0) - np.float32(2.0) * t)


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def step(u, lo, hi):  # pragma: no cover - numba
    """Cubic step of ``u`` from 0 at ``lo`` to 1 at ``hi``: :func:`step32` in the precision of ``u`` (inlined in
    fused kernels)."""
    return step32(u, lo, 1.0 / (hi - lo))


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _smoothstep_kernel(x, lo, hi, sign, absolute, out):  # pragma: no cover - numba
    inv = np.float32(1.0 / (hi - lo))
    lo32, s32 = np.float32(lo), np.float32(sign)
    for i in range(x.size):
        u = abs(x[i]) if absolute else x[i]
        out[i] = step32(s32 * u, lo32, inv)


def ellipsoid_depth(x: np.ndarray, y: np.ndarray, z: np.ndarray, a: Any, b: Any, c: Any) -> np.ndarray:
    """Depth [mm] below the surface of the ellipsoid (x/a)²+(y/b)²+(z/c)² = 1 along the ray from its centre.

    ``x, y, z`` are 3-D coordinates [mm] relative to the centre; ``a, b, c`` scalars or broadcastable arrays.
    """
    if all(np.ndim(v) == 0 for v in (a, b, c)) and np.ndim(x) == 3:
        out = np.empty(np.shape(x), np.float32)
        _ellipsoid_kernel(x, y, z, float(a), float(b), float(c), out)
        return out
    if np.ndim(x) == 3 and all(np.ndim(v) <= 3 for v in (y, z, a, b, c)):
        # per-voxel semi-axes: one fused pass over broadcast (zero-stride, not copied) float32 views
        shape = np.broadcast_shapes(*(np.shape(v) for v in (x, y, z, a, b, c)))
        if len(shape) == 3:
            args = [np.broadcast_to(np.asarray(v, np.float32), shape) for v in (x, y, z, a, b, c)]
            out = np.empty(shape, np.float32)
            _ellipsoid_kernel_arr(*args, out)
            return out
    r = np.sqrt((x / a) ** 2 + (y / b) ** 2 + (z / c) ** 2, dtype=np.float32)
    dist = np.sqrt(x * x + y * y + z * z, dtype=np.float32)
    r = np.maximum(r, np.float32(1e-3))
    return (dist * (1.0 - r) / r).astype(np.float32)


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _ellipsoid_depth_at(px, py, pz, ia, ib, ic):  # pragma: no cover - numba
    # depth [mm] of the point (px, py, pz) [mm from the centre] below the surface with semi-axes 1 / (ia, ib, ic)
    r = math.sqrt((px * ia) ** 2 + (py * ib) ** 2 + (pz * ic) ** 2)
    r = max(r, 1e-3)
    return math.sqrt(px * px + py * py + pz * pz) * (1.0 - r) / r


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _ellipsoid_kernel(x, y, z, a, b, c, out):  # pragma: no cover - numba
    ia, ib, ic = 1.0 / a, 1.0 / b, 1.0 / c
    n0, n1, n2 = out.shape
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                out[i, j, k] = _ellipsoid_depth_at(x[i, j, k], y[i, j, k], z[i, j, k], ia, ib, ic)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _ellipsoid_kernel_arr(x, y, z, a, b, c, out):  # pragma: no cover - numba
    n0, n1, n2 = out.shape
    one = np.float32(1.0)
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                out[i, j, k] = _ellipsoid_depth_at(x[i, j, k], y[i, j, k], z[i, j, k], one / a[i, j, k],
                                                   one / b[i, j, k], one / c[i, j, k])


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _box_gap2(px, py, pz, lo, hi):  # pragma: no cover - numba
    # squared distance [mm²] from the point to the box [lo, hi] ((3,) each)
    ex = max(lo[0] - px, 0.0, px - hi[0])
    ey = max(lo[1] - py, 0.0, py - hi[1])
    ez = max(lo[2] - pz, 0.0, pz - hi[2])
    return ex * ex + ey * ey + ez * ez


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _axis_bounds(pts):  # pragma: no cover - numba
    # (lo, hi) (3,) each: the bounding box of a chain's axis points; depth <= max radius - distance to it
    lo = np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 2].min()])
    hi = np.array([pts[:, 0].max(), pts[:, 1].max(), pts[:, 2].max()])
    return lo, hi


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _capsule_depth_at(px, py, pz, pts, radii):  # pragma: no cover - numba
    # exact depth [mm] of the point below the surface of the capsule chain (radii interpolated along segments)
    best = -1e30
    for s in range(pts.shape[0] - 1):
        sx = pts[s + 1, 0] - pts[s, 0]
        sy = pts[s + 1, 1] - pts[s, 1]
        sz = pts[s + 1, 2] - pts[s, 2]
        dx, dy, dz = px - pts[s, 0], py - pts[s, 1], pz - pts[s, 2]
        t = (dx * sx + dy * sy + dz * sz) / (sx * sx + sy * sy + sz * sz)
        t = min(max(t, 0.0), 1.0)
        d = math.sqrt((dx - t * sx) ** 2 + (dy - t * sy) ** 2 + (dz - t * sz) ** 2)
        best = max(best, radii[s] + t * (radii[s + 1] - radii[s]) - d)
    return best


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _capsule_kernel(x, y, z, pts, radii, cut, floor, use_floor, out):  # pragma: no cover - numba
    n0, n1, n2 = out.shape
    # depth <= r_max - (distance to the bounding box of the axis points): a cheap bound
    r_max = radii.max()
    far2 = (r_max + cut) ** 2 if cut < 1e29 else 1e300
    lo, hi = _axis_bounds(pts)
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                px, py, pz = x[i, j, k], y[i, j, k], z[i, j, k]
                e2 = _box_gap2(px, py, pz, lo, hi)
                if e2 > far2 or (use_floor and r_max - math.sqrt(e2) < floor[i, j, k]):
                    out[i, j, k] = r_max - math.sqrt(e2)  # the bound instead of the exact depth
                    continue
                out[i, j, k] = _capsule_depth_at(px, py, pz, pts, radii)


def capsule_depth(x: np.ndarray, y: np.ndarray, z: np.ndarray, pts: np.ndarray, radii: np.ndarray,
                   cut: float = math.inf, floor: np.ndarray | None = None) -> np.ndarray:
    """Depth [mm] inside a chain of capsules through ``pts`` (n, 3) with radii (n,) interpolated along it.

    Exact where the depth is > ``-cut``; farther outside only an upper bound below ``-cut`` is returned
    (callers that only ramp the depth over one voxel pass ``cut = w``: the ramp is 0 there either way).
    With ``floor`` (x's shape [mm]), voxels where a cheap upper bound of the depth (the largest radius minus the
    distance to the chain's bounding box) is already below ``floor`` get that bound instead of the exact depth:
    for callers that only compare the depth with ``floor`` or take ``max(depth, floor)``.
    """
    out = np.empty(np.shape(x), np.float32)
    use_floor = floor is not None
    fl = np.asarray(floor, np.float32) if use_floor else np.zeros((1, 1, 1), np.float32)
    if use_floor and fl.shape != out.shape:
        raise ValueError(f"capsule_depth: floor must have the points' shape {out.shape}; got {fl.shape}")
    _capsule_kernel(x, y, z, np.asarray(pts, np.float64), np.asarray(radii, np.float64),
                    min(float(cut), 1e30), fl, use_floor, out)
    return out


def union_depth(depths: list[np.ndarray]) -> np.ndarray:
    """Element-wise maximum of signed depths (the union of the shapes): equal to ``np.maximum.reduce(depths)``
    but accumulated in place, without first stacking the arrays into one (n, ...) copy."""
    out = np.array(depths[0], dtype=np.result_type(*depths), copy=True)
    for d in depths[1:]:
        np.maximum(out, d, out=out)
    return out


@dataclass(frozen=True, eq=False)
class Ellipsoid:
    """An axis-aligned ellipsoid as a shape of :func:`ramp_of_union` (which evaluates it in one fused pass).

    Parameters
    ----------
    centre_mm : (3,) centre [mm].
    axes_mm : (3,) semi-axes [mm].
    """

    centre_mm: np.ndarray
    axes_mm: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "centre_mm", np.asarray(self.centre_mm, np.float64).reshape(3))
        object.__setattr__(self, "axes_mm", np.asarray(self.axes_mm, np.float64).reshape(3))

    def part(self) -> tuple[np.ndarray, np.ndarray, "Ellipsoid"]:
        """``(lo, hi, self)``: its bounding box [mm] and itself, for :func:`ramp_of_union`."""
        return self.centre_mm - self.axes_mm, self.centre_mm + self.axes_mm, self

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Depth [mm] at the points ``(x, y, z)`` [mm] (:func:`ellipsoid_depth`)."""
        c = self.centre_mm
        return ellipsoid_depth(x - c[0], y - c[1], z - c[2], *self.axes_mm)


@dataclass(frozen=True, eq=False)
class CapsuleChain:
    """A chain of capsules (:func:`capsule_depth`) living in ``(x, y, z / z_stretch)``, as a shape of
    :func:`ramp_of_union`.

    Parameters
    ----------
    pts_mm : (n, 3) axis points [mm] (in the stretched frame).
    radii_mm : (n,) radii [mm] at the points, interpolated along each segment.
    z_stretch : the chain is ``z_stretch`` times taller than in its own frame.
    cut_mm : depths below ``-cut_mm`` may be returned as an upper bound (see :func:`capsule_depth`).
    """

    pts_mm: np.ndarray
    radii_mm: np.ndarray
    z_stretch: float = 1.0
    cut_mm: float = math.inf

    def __post_init__(self) -> None:
        object.__setattr__(self, "pts_mm", np.asarray(self.pts_mm, np.float64).reshape(-1, 3))
        object.__setattr__(self, "radii_mm", np.asarray(self.radii_mm, np.float64).reshape(-1))
        if len(self.pts_mm) < 2 or len(self.radii_mm) != len(self.pts_mm):
            raise ValueError(f"CapsuleChain: needs >= 2 points and one radius per point; got {len(self.pts_mm)} "
                             f"points and {len(self.radii_mm)} radii")
        if not self.z_stretch > 0:
            raise ValueError(f"CapsuleChain: z_stretch must be > 0; got {self.z_stretch}")

    def part(self, margin_mm: float) -> tuple[np.ndarray, np.ndarray, "CapsuleChain"]:
        """``(lo, hi, self)`` for :func:`ramp_of_union` with ramp width ``margin_mm``: the chain's bounding box
        [mm], stretched along z and grown there by ``(z_stretch - 1) · margin_mm``, so that ramp_of_union's
        margin (in the stretched frame) still holds."""
        r = float(self.radii_mm.max())
        grow = np.array([0.0, 0.0, (self.z_stretch - 1.0) * margin_mm])
        scale = np.array([1.0, 1.0, self.z_stretch])
        return (self.pts_mm.min(axis=0) - r) * scale - grow, (self.pts_mm.max(axis=0) + r) * scale + grow, self

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Depth [mm] at the points ``(x, y, z)`` [mm]."""
        zz = z / np.float32(self.z_stretch) if self.z_stretch != 1.0 else z
        return capsule_depth(x, y, zz, self.pts_mm, self.radii_mm, cut=self.cut_mm)


def capsule_part(pts: np.ndarray, radii: np.ndarray, w: float, z_stretch: float = 1.0) -> tuple[Any, Any, Any]:
    """A capsule chain through ``pts`` (n, 3) [mm] with ``radii`` (n,) [mm], in ``(x, y, z / z_stretch)``, as a
    :func:`ramp_of_union` part with ramp width ``w`` [mm]."""
    return CapsuleChain(pts, radii, z_stretch, cut_mm=w).part(w)


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _ramp_at(d, inv_w):  # pragma: no cover - numba
    # float32 ramp(d, w) of one depth (as :func:`ramp`)
    r = np.float32(d) * inv_w + np.float32(0.5)
    return min(max(r, np.float32(0.0)), np.float32(1.0))


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _ramp_max_ellipsoid(x, y, z, lo, hi, centre, inv_axes, inv_w, out):  # pragma: no cover - numba
    # out[box] = max(out[box], ramp(ellipsoid depth, w)); box = index ranges [lo, hi) per axis
    cx, cy, cz = centre[0], centre[1], centre[2]
    for i in range(lo[0], hi[0]):
        for j in range(lo[1], hi[1]):
            for k in range(lo[2], hi[2]):
                d = _ellipsoid_depth_at(x[i, j, k] - cx, y[i, j, k] - cy, z[i, j, k] - cz,
                                        inv_axes[0], inv_axes[1], inv_axes[2])
                out[i, j, k] = max(out[i, j, k], _ramp_at(d, inv_w))


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _ramp_max_capsule(x, y, z, lo, hi, pts, radii, stretch, cut, inv_w, out):  # pragma: no cover - numba
    # as _ramp_max_ellipsoid for a capsule chain in (x, y, z / stretch); points deeper than `cut` outside
    # the chain's bounding box ramp to 0 and are skipped (out >= 0 already)
    r_max = radii.max()
    far2 = (r_max + cut) ** 2
    plo, phi = _axis_bounds(pts)
    for i in range(lo[0], hi[0]):
        for j in range(lo[1], hi[1]):
            for k in range(lo[2], hi[2]):
                px, py, pz = x[i, j, k], y[i, j, k], z[i, j, k] / stretch
                if _box_gap2(px, py, pz, plo, phi) > far2:
                    continue
                out[i, j, k] = max(out[i, j, k], _ramp_at(_capsule_depth_at(px, py, pz, pts, radii), inv_w))


def ramp_of_union(q: tuple[np.ndarray, ...], parts: list[tuple[Any, Any, Callable[..., np.ndarray]]],
                  w: float) -> np.ndarray:
    """``ramp(max_i depth_i, w)`` of small shapes, each evaluated only in the index box around it.

    Parameters
    ----------
    q : canonical coordinates [mm] of the grid, 3 arrays of one 3-D shape (a :class:`CoordGrid` reuses its
        column ranges).
    parts : per shape ``(lo, hi, depth_fn)``: its axis-aligned bounding box ``[lo, hi]`` (3,) [mm] in the
        canonical frame and a function of the sub-box coordinates ``(x, y, z)`` returning its depth [mm]
        (positive inside). :class:`Ellipsoid` and :class:`CapsuleChain` shapes (``shape.part(...)``) are
        evaluated, ramped and merged in one fused pass over their box; other callables through NumPy.
    w : ramp width [mm] (voxel size).

    Returns
    -------
    float32 array of ``q[0].shape``, equal to ``ramp(union_depth([fn(*q) for ...]), w)`` (to float32 rounding
    for the fused shapes): a voxel farther than ``w`` outside a box is at least ``w`` from the shape, so its
    depth (measured along the ray from the centre, which is at least the distance to the shape) is <= -w and
    its ramp 0; and the ramp is monotone, so the maximum of the ramps is the ramp of the maximum.
    """
    out = np.zeros(q[0].shape, np.float32)
    q = q if isinstance(q, CoordGrid) else CoordGrid(q)
    boxes = index_boxes(q, [np.asarray(lo, np.float64) - w for lo, _, _ in parts],
                        [np.asarray(hi, np.float64) + w for _, hi, _ in parts])
    inv_w = np.float32(1.0 / w)
    for (_, _, depth_fn), box in zip(parts, boxes):
        if box is None:
            continue
        lo = np.array([b.start for b in box], np.int64)
        hi = np.array([min(b.stop, n) for b, n in zip(box, out.shape)], np.int64)
        if isinstance(depth_fn, Ellipsoid):
            _ramp_max_ellipsoid(*q, lo, hi, depth_fn.centre_mm, 1.0 / depth_fn.axes_mm, inv_w, out)
        elif isinstance(depth_fn, CapsuleChain):
            _ramp_max_capsule(*q, lo, hi, depth_fn.pts_mm, depth_fn.radii_mm, np.float32(depth_fn.z_stretch),
                              min(float(depth_fn.cut_mm), 1e30), inv_w, out)
        else:
            view = out[box]
            np.maximum(view, ramp(depth_fn(*(c[box] for c in q)), w), out=view)
    return out
