"""The phantom's canonical head frame: where every voxel centre lies in the head, and index boxes in that frame.

Every voxel centre of the grid is mapped into a canonical head frame [mm] (x left→right, y posterior→anterior,
z inferior→superior, origin at the brain centre ≈ MNI (0, −18, 10)) by a random pose (head size per axis, pitch
/ roll / yaw, in-plane shift, slab height) plus a smooth random displacement field (:func:`canonical_coords`).
All anatomy is then a function of these coordinates. Structures that occupy a small part of the head are
evaluated only in the *index box* of the voxels whose coordinates fall in their bounding box
(:func:`index_box`, :func:`index_boxes`), found from per-column coordinate ranges computed once per grid
(:class:`CoordGrid`). Coordinate arrays are 3-D float32 ``(X, Y, Z)``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from relaxomap.synth.fields import smooth_noise
from relaxomap.synth.orientation import rotation_zyx

if TYPE_CHECKING:
    from relaxomap.synth.phantom.config import PhantomConfig

__all__ = ["canonical_coords", "canonical_frame", "CoordGrid", "index_box", "index_boxes"]


# ----------------------------------------------------------------------------- canonical frame
def canonical_coords(
    cfg: PhantomConfig, rng: np.random.Generator, n_sub: int
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float]:
    """Canonical coordinates [mm] of every sub-slice voxel centre: 3 arrays (X, Y, Z·n_sub) float32.

    ``n_sub`` sub-slices per slice sample thick slices for partial volume along z. Draws, in this order from
    ``rng``: head size and per-axis aspect, pitch / roll / yaw, in-plane shift, slab centre height, then the
    three displacement fields. Returns the coordinates and the overall head scale.
    """
    nx, ny, nz = cfg.shape
    dx, dy, dz = cfg.voxel_mm
    nzs, dzs = nz * n_sub, dz / n_sub
    size = rng.uniform(*cfg.head_scale)
    scale = size * rng.uniform(0.95, 1.05, 3)  # per-axis: head aspect varies a little around the size
    rot = rotation_zyx(*(rng.uniform(-m, m) for m in cfg.rotate_deg))
    shift = rng.uniform(-cfg.shift_mm, cfg.shift_mm, 2)
    z_center = rng.uniform(*cfg.slab_center_mm)
    grid = (
        ((np.arange(nx) - (nx - 1) / 2) * dx - shift[0]).astype(np.float32)[:, None, None],
        ((np.arange(ny) - (ny - 1) / 2) * dy - shift[1]).astype(np.float32)[None, :, None],
        ((np.arange(nzs) + 0.5) * dzs - nz * dz / 2).astype(np.float32)[None, None, :],
    )
    shape = (nx, ny, nzs)
    steps = cfg.deform_scale_mm / np.array([dx, dy, dzs])
    if cfg.deform_mm > 0:
        disp = [smooth_noise(rng, shape, steps) for _ in range(3)]
    else:
        disp = [np.zeros((1, 1, 1), np.float32)] * 3  # broadcast: no displacement
    mat = (np.diag(1.0 / scale) @ rot.T).astype(np.float32)  # world -> canonical
    q = canonical_frame(grid, disp, np.float32(cfg.deform_mm), mat, np.array([0.0, 0.0, z_center], np.float32))
    return q, float(size)


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


class CoordGrid(tuple):
    """The canonical coordinates ``(qx, qy, qz)`` [mm] of a 3-D grid (a tuple of three arrays of one shape) with
    the per-column coordinate ranges that :func:`index_boxes` filters with, computed once per grid.

    ``columns`` is (n0, n1, 6) float32: for each (i, j) column, min / max over k of x, y and z. For a sub-box
    (:meth:`sub`) the ranges of its whole columns are kept: a superset of each sub-column's range, which keeps
    :func:`index_boxes` exact (a column whose range misses a box has no voxel in it; one whose range lies
    inside has all its voxels inside).
    """

    def __new__(cls, q: tuple[np.ndarray, ...], columns: np.ndarray | None = None) -> "CoordGrid":
        self = super().__new__(cls, tuple(q))
        if len(self) != 3 or any(np.shape(c) != np.shape(self[0]) or np.ndim(c) != 3 for c in self):
            raise ValueError(f"CoordGrid: needs three 3-D arrays of one shape; got shapes {[np.shape(c) for c in q]}")
        if columns is not None and columns.shape != (*np.shape(self[0])[:2], 6):
            raise ValueError(f"CoordGrid: columns must have shape {(*np.shape(self[0])[:2], 6)}; got {columns.shape}")
        self._columns = columns
        self._rows = None
        return self

    @property
    def columns(self) -> np.ndarray:
        if self._columns is None:
            self._columns = np.empty((*self[0].shape[:2], 6), np.float32)
            _column_ranges_kernel(self[0], self[1], self[2], self._columns)
        return self._columns

    @property
    def rows(self) -> np.ndarray:
        """(n0, 6) float32: the coordinate ranges of each i-plane (over its columns), like ``columns``."""
        if self._rows is None:
            c = self.columns
            self._rows = np.stack([c[..., 0].min(1), c[..., 1].max(1), c[..., 2].min(1), c[..., 3].max(1),
                                   c[..., 4].min(1), c[..., 5].max(1)], axis=1)
        return self._rows

    def sub(self, box: tuple[slice, ...]) -> "CoordGrid":
        """The coordinates of the index box ``box`` (views), with their columns' ranges."""
        return CoordGrid(tuple(c[box] for c in self), self.columns[box[0], box[1]])


def index_box(q: tuple[np.ndarray, ...], lo: tuple[float, ...], hi: tuple[float, ...]) -> tuple[slice, ...] | None:
    """Index box (slices) of the voxels whose canonical coordinates fall in ``[lo, hi]``; None if none do."""
    return index_boxes(q, [lo], [hi])[0]


def index_boxes(q: tuple[np.ndarray, ...], los: Any, his: Any) -> list[tuple[slice, ...] | None]:
    """:func:`index_box` of several coordinate boxes ``[los[b], his[b]]`` (each (3,) [mm]).

    Each box tests voxel by voxel only the (i, j) columns whose coordinate range overlaps it without lying
    inside it (exact). Pass a :class:`CoordGrid` to reuse its column ranges; for a plain tuple they are found
    here (one pass over q).
    """
    lo = np.asarray(los, np.float64).reshape(-1, 3)
    hi = np.asarray(his, np.float64).reshape(-1, 3)
    grid = q if isinstance(q, CoordGrid) else CoordGrid(q)
    shape = grid[0].shape
    hits = [np.zeros((len(lo), n), np.bool_) for n in shape]
    _box_kernel(grid[0], grid[1], grid[2], grid.columns, grid.rows, lo, hi, *hits)
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


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _column_ranges_kernel(x, y, z, out):  # pragma: no cover - numba
    # out[i, j] = (min x, max x, min y, max y, min z, max z) over k
    n0, n1, n2 = x.shape
    for i in range(n0):
        for j in range(n1):
            ax, bx_, ay, by_, az, bz_ = x[i, j, 0], x[i, j, 0], y[i, j, 0], y[i, j, 0], z[i, j, 0], z[i, j, 0]
            for k in range(1, n2):
                ax = min(ax, x[i, j, k])
                bx_ = max(bx_, x[i, j, k])
                ay = min(ay, y[i, j, k])
                by_ = max(by_, y[i, j, k])
                az = min(az, z[i, j, k])
                bz_ = max(bz_, z[i, j, k])
            out[i, j, 0], out[i, j, 1], out[i, j, 2], out[i, j, 3], out[i, j, 4], out[i, j, 5] = (
                ax, bx_, ay, by_, az, bz_)


@numba.njit(cache=True, error_model="numpy")
def _box_kernel(x, y, z, cols, rows, lo, hi, any_x, any_y, any_z):  # pragma: no cover - numba
    # for each box b, which x, y, z indices hold at least one voxel inside [lo[b], hi[b]]: i-planes (rows) and
    # columns whose range (a superset of their coordinates) misses the box are skipped, columns whose range lies
    # inside it count whole, the rest are tested voxel by voxel (branch-free: bitwise tests, OR-accumulated)
    n0, n1, n2 = x.shape
    zk = np.zeros(n2, np.uint8)
    for b in range(lo.shape[0]):
        lx, ly, lz = np.float32(lo[b, 0]), np.float32(lo[b, 1]), np.float32(lo[b, 2])
        hx, hy, hz = np.float32(hi[b, 0]), np.float32(hi[b, 1]), np.float32(hi[b, 2])
        zk[:] = 0
        whole = False  # some column lies entirely inside the box (all its k)
        for i in range(n0):
            r = rows[i]  # the i-plane's ranges miss the box: none of its columns is in it
            if r[1] < lx or r[0] > hx or r[3] < ly or r[2] > hy or r[5] < lz or r[4] > hz:
                continue
            for j in range(n1):
                c = cols[i, j]
                if c[1] < lx or c[0] > hx or c[3] < ly or c[2] > hy or c[5] < lz or c[4] > hz:
                    continue
                if lx <= c[0] and c[1] <= hx and ly <= c[2] and c[3] <= hy and lz <= c[4] and c[5] <= hz:
                    any_x[b, i] = True
                    any_y[b, j] = True
                    whole = True
                    continue
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
            any_z[b, k] = whole or zk[k] != 0
