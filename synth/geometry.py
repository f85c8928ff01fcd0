"""Signed-distance geometry of the procedural phantom (:mod:`synth.phantom`): partial-volume ramps, smooth
steps, depths below ellipsoid and capsule-chain surfaces, index boxes, gradient norms and rotations.

Coordinates and distances are in mm; arrays are 3-D float32 grids ``(X, Y, Z)``. Depths are positive inside a
surface. The per-voxel loops are fused Numba kernels because these run on full 224 × 256 × 48 grids many
times per head.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numba
import numpy as np

__all__ = ["ramp", "smoothstep", "ellipsoid_depth", "capsule_depth", "index_box", "index_boxes", "grad_norm",
           "rotation_zyx", "union_depth", "intersection_depth", "ramp_of_union"]


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


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _smoothstep_kernel(x, lo, hi, sign, absolute, out):  # pragma: no cover - numba
    inv = np.float32(1.0 / (hi - lo))
    lo32, s32 = np.float32(lo), np.float32(sign)
    for i in range(x.size):
        u = abs(x[i]) if absolute else x[i]
        t = min(max((s32 * u - lo32) * inv, np.float32(0.0)), np.float32(1.0))
        out[i] = t * t * (np.float32(3.0) - np.float32(2.0) * t)


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


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _ellipsoid_kernel(x, y, z, a, b, c, out):  # pragma: no cover - numba
    ia, ib, ic = 1.0 / a, 1.0 / b, 1.0 / c
    n0, n1, n2 = out.shape
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                px, py, pz = x[i, j, k], y[i, j, k], z[i, j, k]
                r = math.sqrt((px * ia) ** 2 + (py * ib) ** 2 + (pz * ic) ** 2)
                r = max(r, 1e-3)
                out[i, j, k] = math.sqrt(px * px + py * py + pz * pz) * (1.0 - r) / r


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _ellipsoid_kernel_arr(x, y, z, a, b, c, out):  # pragma: no cover - numba
    n0, n1, n2 = out.shape
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                px, py, pz = x[i, j, k], y[i, j, k], z[i, j, k]
                r = math.sqrt((px / a[i, j, k]) ** 2 + (py / b[i, j, k]) ** 2 + (pz / c[i, j, k]) ** 2)
                r = max(r, np.float32(1e-3))
                out[i, j, k] = math.sqrt(px * px + py * py + pz * pz) * (np.float32(1.0) - r) / r


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _capsule_kernel(x, y, z, pts, radii, cut, floor, use_floor, out):  # pragma: no cover - numba
    n_seg = pts.shape[0] - 1
    n0, n1, n2 = out.shape
    # Bounding box of the chain's axis and the largest radius: depth <= r_max - (distance to the box).
    bx0, by0, bz0 = pts[:, 0].min(), pts[:, 1].min(), pts[:, 2].min()
    bx1, by1, bz1 = pts[:, 0].max(), pts[:, 1].max(), pts[:, 2].max()
    r_max = radii.max()
    far2 = (r_max + cut) ** 2 if cut < 1e29 else 1e300
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                px, py, pz = x[i, j, k], y[i, j, k], z[i, j, k]
                ex = max(bx0 - px, 0.0, px - bx1)
                ey = max(by0 - py, 0.0, py - by1)
                ez = max(bz0 - pz, 0.0, pz - bz1)
                e2 = ex * ex + ey * ey + ez * ez
                if e2 > far2 or (use_floor and r_max - math.sqrt(e2) < floor[i, j, k]):
                    out[i, j, k] = r_max - math.sqrt(e2)  # the bound instead of the exact depth
                    continue
                best = -1e30
                for s in range(n_seg):
                    sx = pts[s + 1, 0] - pts[s, 0]
                    sy = pts[s + 1, 1] - pts[s, 1]
                    sz = pts[s + 1, 2] - pts[s, 2]
                    dx, dy, dz = px - pts[s, 0], py - pts[s, 1], pz - pts[s, 2]
                    t = (dx * sx + dy * sy + dz * sz) / (sx * sx + sy * sy + sz * sz)
                    t = min(max(t, 0.0), 1.0)
                    d = math.sqrt((dx - t * sx) ** 2 + (dy - t * sy) ** 2 + (dz - t * sz) ** 2)
                    best = max(best, radii[s] + t * (radii[s + 1] - radii[s]) - d)
                out[i, j, k] = best


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


def index_box(q: tuple[np.ndarray, ...], lo: tuple[float, ...], hi: tuple[float, ...]) -> tuple[slice, ...] | None:
    """Index box (slices) of the voxels whose canonical coordinates fall in ``[lo, hi]``; None if none do."""
    return index_boxes(q, [lo], [hi])[0]


def index_boxes(q: tuple[np.ndarray, ...], los: Any, his: Any) -> list[tuple[slice, ...] | None]:
    """:func:`index_box` of several coordinate boxes ``[los[b], his[b]]`` (each (3,) [mm]) in one pass over q."""
    lo = np.asarray(los, np.float64).reshape(-1, 3)
    hi = np.asarray(his, np.float64).reshape(-1, 3)
    shape = q[0].shape
    hits = [np.zeros((len(lo), n), np.bool_) for n in shape]
    _box_kernel(q[0], q[1], q[2], lo, hi, *hits)
    out: list[tuple[slice, ...] | None] = []
    for b in range(len(lo)):
        if not hits[0][b].any():
            out.append(None)
            continue
        box = []
        for hit in hits:
            idx = np.flatnonzero(hit[b])
            box.append(slice(max(int(idx[0]) - 2, 0), int(idx[-1]) + 3))
        out.append(tuple(box))
    return out


@numba.njit(cache=True, error_model="numpy")
def _box_kernel(x, y, z, lo, hi, any_x, any_y, any_z):  # pragma: no cover - numba
    # for each box b, which x, y, z indices hold at least one voxel inside [lo[b], hi[b]]; the inner loop is
    # branch-free (bitwise tests, OR-accumulated) so that it vectorises
    n0, n1, n2 = x.shape
    zk = np.zeros(n2, np.uint8)
    for b in range(lo.shape[0]):
        lx, ly, lz = np.float32(lo[b, 0]), np.float32(lo[b, 1]), np.float32(lo[b, 2])
        hx, hy, hz = np.float32(hi[b, 0]), np.float32(hi[b, 1]), np.float32(hi[b, 2])
        zk[:] = 0
        for i in range(n0):
            for j in range(n1):
                row = np.uint8(0)
                for k in range(n2):
                    ins = (np.uint8(lx <= x[i, j, k]) & np.uint8(x[i, j, k] <= hx) & np.uint8(ly <= y[i, j, k])
                           & np.uint8(y[i, j, k] <= hy) & np.uint8(lz <= z[i, j, k]) & np.uint8(z[i, j, k] <= hz))
                    zk[k] |= ins
                    row |= ins
                if row:
                    any_x[b, i] = True
                    any_y[b, j] = True
        for k in range(n2):
            any_z[b, k] = zk[k] != 0


def grad_norm(g: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """|∇g| [1/mm] by central differences (one-sided at the edges), float32."""
    acc = np.zeros_like(g)
    for axis, h in enumerate(spacing):
        if g.shape[axis] < 2:
            continue
        d = np.empty_like(g)
        sl = [slice(None)] * 3

        def s(a: int | slice, sl: list = sl, axis: int = axis) -> tuple:
            sl = list(sl)
            sl[axis] = a
            return tuple(sl)

        d[s(slice(1, -1))] = (g[s(slice(2, None))] - g[s(slice(None, -2))]) * np.float32(0.5 / h)
        d[s(0)] = (g[s(1)] - g[s(0)]) / np.float32(h)
        d[s(-1)] = (g[s(-1)] - g[s(-2)]) / np.float32(h)
        acc += d * d
    return np.sqrt(acc)


def rotation_zyx(pitch: float, roll: float, yaw: float) -> np.ndarray:
    """(3, 3) rotation ``Rz(yaw) · Ry(roll) · Rx(pitch)``, angles in degrees."""
    cx, sx, cy, sy, cz, sz = (f(math.radians(a)) for a in (pitch, roll, yaw) for f in (math.cos, math.sin))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def union_depth(depths: list[np.ndarray]) -> np.ndarray:
    """Element-wise maximum of signed depths (the union of the shapes): equal to ``np.maximum.reduce(depths)``
    but accumulated in place, without first stacking the arrays into one (n, ...) copy."""
    out = np.array(depths[0], dtype=np.result_type(*depths), copy=True)
    for d in depths[1:]:
        np.maximum(out, d, out=out)
    return out


def intersection_depth(depths: list[np.ndarray]) -> np.ndarray:
    """Element-wise minimum of signed depths (the intersection of the shapes), like :func:`union_depth`."""
    out = np.array(depths[0], dtype=np.result_type(*depths), copy=True)
    for d in depths[1:]:
        np.minimum(out, d, out=out)
    return out


def ramp_of_union(q: tuple[np.ndarray, ...], parts: list[tuple[Any, Any, Callable[..., np.ndarray]]],
                  w: float) -> np.ndarray:
    """``ramp(max_i depth_i, w)`` of small shapes, each evaluated only in the index box around it.

    Parameters
    ----------
    q : canonical coordinates [mm] of the grid, 3 arrays of one 3-D shape.
    parts : per shape ``(lo, hi, depth_fn)``: its axis-aligned bounding box ``[lo, hi]`` (3,) [mm] in the
        canonical frame and a function of the sub-box coordinates ``(x, y, z)`` returning its depth [mm]
        (positive inside).
    w : ramp width [mm] (voxel size).

    Returns
    -------
    float32 array of ``q[0].shape``, identical to ``ramp(union_depth([fn(*q) for ...]), w)``: a voxel farther
    than ``w`` outside a box is at least ``w`` from the shape, so its depth (measured along the ray from the
    centre, which is at least the distance to the shape) is <= -w and its ramp 0; and the ramp is monotone, so
    the maximum of the ramps is the ramp of the maximum.
    """
    out = np.zeros(q[0].shape, np.float32)
    boxes = index_boxes(q, [np.asarray(lo, np.float64) - w for lo, _, _ in parts],
                        [np.asarray(hi, np.float64) + w for _, hi, _ in parts])
    for (_, _, depth_fn), box in zip(parts, boxes):
        if box is None:
            continue
        view = out[box]
        np.maximum(view, ramp(depth_fn(*(c[box] for c in q)), w), out=view)
    return out
