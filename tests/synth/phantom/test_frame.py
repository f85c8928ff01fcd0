"""The canonical head frame: the fused coordinate kernel against its formula, the pose a config draws, and index
boxes against brute force."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.synth.fields import smooth_noise
from relaxomap.synth.orientation import rotation_zyx
from relaxomap.synth.phantom.config import PhantomConfig
from relaxomap.synth.phantom.frame import CoordGrid, canonical_coords, canonical_frame, index_box, index_boxes
from tests.synth.phantom.grids import SHAPE, cube_grid


def test_canonical_frame_matches_numpy() -> None:
    rng = np.random.default_rng(4)
    # canonical frame: q = mat (grid + amp disp) + offset
    grid = (np.arange(SHAPE[0]) - 20.0, np.arange(SHAPE[1]) * 1.5, np.arange(SHAPE[2]) * 2.0 - 7.0)
    disp = [smooth_noise(rng, SHAPE, 5.0) for _ in range(3)]
    mat = rng.standard_normal((3, 3))
    off = np.array([1.0, -2.0, 30.0])
    qq = canonical_frame(grid, disp, 3.0, mat, off)
    world = np.stack(np.meshgrid(*grid, indexing="ij")) + 3.0 * np.stack(disp).astype(np.float64)
    ref = np.einsum("ij,j...->i...", mat, world) + off[:, None, None, None]
    assert_allclose(np.stack(qq), ref, atol=1e-4)  # float32 coordinates of ~100 mm
    still = canonical_frame(grid, [np.zeros((1, 1, 1), np.float32)] * 3, 3.0, np.eye(3), np.zeros(3))
    assert_allclose(np.stack(still), np.stack(np.meshgrid(*grid, indexing="ij")), atol=1e-5)


def test_canonical_coords_of_an_unposed_head_are_the_grid() -> None:
    """No rotation, shift, scale spread or deformation: the coordinates are the voxel centres [mm] from the grid
    centre, divided by the head size, with the slab centre's height added to z (float32: atol 1e-4 mm)."""
    cfg = PhantomConfig(shape=(20, 24, 6), voxel_mm=(2.0, 2.0, 4.0), head_scale=(1.0, 1.0), rotate_deg=(0.0, 0.0, 0.0),
                        shift_mm=0.0, deform_mm=0.0, slab_center_mm=(10.0, 10.0))
    rng = np.random.default_rng(0)
    q, size = canonical_coords(cfg, rng, n_sub=2)
    assert size == 1.0 and q[0].shape == (20, 24, 12)
    aspect = np.random.default_rng(0)
    aspect.uniform(1.0, 1.0)
    scale = aspect.uniform(0.95, 1.05, 3)  # the per-axis aspect drawn after the size
    x = (np.arange(20) - 9.5) * 2.0
    z = (np.arange(12) + 0.5) * 2.0 - 12.0  # 2 sub-slices of 2 mm per 4 mm slice
    assert_allclose(q[0][:, 0, 0], x / scale[0], atol=1e-4)
    assert_allclose(q[2][0, 0, :], z / scale[2] + 10.0, atol=1e-4)


def test_index_box_brackets_the_voxels_inside() -> None:
    x, y, z = cube_grid()
    box = index_box((x, y, z), (-1.0, 2.0, -10.0), (1.0, 4.0, -9.0))
    inside = np.argwhere((np.abs(x) <= 1) & (y >= 2) & (y <= 4) & (z <= -9))
    for axis, sl in enumerate(box):
        assert sl.start <= inside[:, axis].min() and inside[:, axis].max() < sl.stop
        assert sl.start >= inside[:, axis].min() - 2 and sl.stop <= inside[:, axis].max() + 3  # 2-voxel margin
    assert index_box((x, y, z), (50.0, 50.0, 50.0), (60.0, 60.0, 60.0)) is None
    # several boxes in one pass: each equal to its own index_box
    los, his = [(-1.0, 2.0, -10.0), (50.0, 50.0, 50.0), (0.0, -3.0, -5.0)], [(1.0, 4.0, -9.0), (60.0, 60.0, 60.0),
                                                                             (2.5, 0.0, 5.0)]
    assert index_boxes((x, y, z), los, his) == [index_box((x, y, z), lo, hi) for lo, hi in zip(los, his)]


def test_index_boxes_on_a_deformed_grid_match_brute_force() -> None:
    """The column pre-filter of index_boxes is exact: on a rotated, warped grid, every box equals the one found
    by testing every voxel (2-voxel margin, clipped at 0)."""
    x, y, z = cube_grid(33, 16.0)
    r = rotation_zyx(20.0, -11.0, 47.0).astype(np.float32)
    q = tuple((r[i, 0] * x + r[i, 1] * y + r[i, 2] * z + 0.8 * np.sin((x + 2 * i) / 3.0)).astype(np.float32)
              for i in range(3))
    rng = np.random.default_rng(4)
    los = rng.uniform(-20.0, 12.0, (40, 3))
    his = los + rng.uniform(0.5, 12.0, (40, 3))
    los[::8] += 40.0  # five boxes beyond the grid on one axis: None
    his[::8] += 40.0
    n_none = 0
    for (lo, hi), got in zip(zip(los, his), index_boxes(q, los, his)):
        inside = np.ones(q[0].shape, bool)
        for c, a, b in zip(q, lo.astype(np.float32), hi.astype(np.float32)):
            inside &= (c >= a) & (c <= b)
        if not inside.any():
            assert got is None
            n_none += 1
            continue
        idx = np.argwhere(inside)
        assert got == tuple(slice(max(int(idx[:, a].min()) - 2, 0), int(idx[:, a].max()) + 3) for a in range(3))
    assert n_none == 5
    # a sub-box keeps its whole columns' ranges (supersets of the sub-columns'): still exact
    grid = CoordGrid(q)
    sub = grid.sub((slice(3, 29), slice(5, 30), slice(7, 20)))
    fresh = tuple(np.ascontiguousarray(c) for c in sub)
    assert index_boxes(sub, los, his) == index_boxes(fresh, los, his)
    assert np.array_equal(grid.rows[:, 0], grid.columns[..., 0].min(axis=1))
    with pytest.raises(ValueError, match="three 3-D arrays of one shape"):
        CoordGrid((q[0], q[1][:-1], q[2]))
