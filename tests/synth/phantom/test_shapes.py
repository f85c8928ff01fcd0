"""Signed-distance shapes of the phantom against closed forms; ramp_of_union against evaluating everywhere."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.synth.orientation import rotation_zyx
from relaxomap.synth.phantom.shapes import (
    CapsuleChain,
    Ellipsoid,
    capsule_depth,
    capsule_part,
    ellipsoid_depth,
    ramp,
    ramp_of_union,
    smoothstep,
    union_depth,
)
from tests.synth.phantom.grids import cube_grid


def test_ellipsoid_depth_of_a_sphere_is_radius_minus_distance() -> None:
    x, y, z = cube_grid()
    d = ellipsoid_depth(x, y, z, 6.0, 6.0, 6.0)
    r = np.sqrt(x * x + y * y + z * z)
    far = r > 0.5  # at the centre the kernel clamps the normalised radius at 1e-3
    assert_allclose(d[far], (6.0 - r)[far], rtol=0, atol=1e-4)  # float32 arithmetic on values <= 17 mm


def test_ellipsoid_depth_scalar_and_per_voxel_axes_agree() -> None:
    x, y, z = cube_grid()
    a = np.full(x.shape, 7.0, np.float32)
    assert_allclose(ellipsoid_depth(x, y, z, a, 5.0, 4.0), ellipsoid_depth(x, y, z, 7.0, 5.0, 4.0), atol=1e-5)
    # on each axis the depth is the semi-axis minus the distance
    i = 10
    assert_allclose(ellipsoid_depth(x, y, z, 7.0, 5.0, 4.0)[i + 2, i, i], 7.0 - 2.0, atol=1e-5)
    assert_allclose(ellipsoid_depth(x, y, z, 7.0, 5.0, 4.0)[i, i, i + 3], 4.0 - 3.0, atol=1e-5)


def test_capsule_depth_of_one_segment_is_radius_minus_distance_to_it() -> None:
    x, y, z = cube_grid()
    pts = np.array([[-5.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    d = capsule_depth(x, y, z, pts, np.array([3.0, 3.0]))
    t = np.clip(x, -5.0, 5.0)
    dist = np.sqrt((x - t) ** 2 + y ** 2 + z ** 2)
    assert_allclose(d, 3.0 - dist, atol=1e-5)
    # with a cut, exact where depth > -cut and an upper bound below -cut elsewhere
    dc = capsule_depth(x, y, z, pts, np.array([3.0, 3.0]), cut=1.0)
    near = (3.0 - dist) > -1.0
    assert_allclose(dc[near], (3.0 - dist)[near], atol=1e-5)
    assert np.all(dc[~near] < -1.0 + 1e-5) and np.all(dc[~near] >= (3.0 - dist)[~near] - 1e-5)


def test_capsule_depth_with_floor_is_exact_where_it_can_exceed_the_floor() -> None:
    x, y, z = cube_grid()
    pts = np.array([[-5.0, 0.0, 0.0], [0.0, 2.0, 1.0], [5.0, 0.0, 0.0]])
    radii = np.array([3.0, 4.0, 2.0])
    exact = capsule_depth(x, y, z, pts, radii)
    floor = (2.0 * np.sin(x) - 4.0).astype(np.float32)  # varies per voxel, above and below the depth
    got = capsule_depth(x, y, z, pts, radii, floor=floor)
    # every comparison and max with the floor is unchanged, and values are upper bounds of the depth
    assert np.array_equal(np.maximum(got, floor), np.maximum(exact, floor))
    assert np.array_equal(got > floor, exact > floor)
    assert np.all(got >= exact - 1e-5)
    assert 0 < np.mean(got != exact) < 1  # some voxels took the bound: the floor was used
    with pytest.raises(ValueError, match="floor must have"):
        capsule_depth(x, y, z, pts, radii, floor=floor[:-1])


def test_ramp_and_smoothstep_closed_forms() -> None:
    d = np.array([-2.0, -0.5, 0.0, 0.25, 0.5, 3.0], np.float32)
    assert_allclose(ramp(d, 1.0), [0.0, 0.0, 0.5, 0.75, 1.0, 1.0], atol=1e-7)
    x = np.linspace(-3, 3, 13, dtype=np.float32).reshape(1, 1, 13)
    t = np.clip((x - (-1.0)) / 2.0, 0, 1)
    assert_allclose(smoothstep(x, -1.0, 1.0), t * t * (3 - 2 * t), atol=1e-6)
    assert_allclose(smoothstep(x, 1.0, 2.0, absolute=True), smoothstep(np.abs(x), 1.0, 2.0), atol=1e-7)
    assert_allclose(smoothstep(x, -1.0, 1.0, sign=-1.0), smoothstep(-x, -1.0, 1.0), atol=1e-7)


def test_union_equals_numpy_reduce() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.standard_normal((4, 5, 6)).astype(np.float32) for _ in range(4)]
    assert np.array_equal(union_depth(parts), np.maximum.reduce(parts))
    assert union_depth(parts).dtype == np.float32 and parts[0] is not union_depth(parts)


def test_ramp_of_union_equals_evaluating_everywhere() -> None:
    # a rotated, deformed grid (as in the phantom): boxes are found from the coordinates, not the indices
    x, y, z = cube_grid(41, 20.0)
    r = rotation_zyx(12.0, -7.0, 25.0).astype(np.float32)
    q = tuple((r[i, 0] * x + r[i, 1] * y + r[i, 2] * z + 0.3 * np.sin(x / 5.0)).astype(np.float32) for i in range(3))
    shapes = [(np.array([5.0, -3.0, 2.0]), np.array([4.0, 6.0, 3.0])),
              (np.array([-8.0, 9.0, -4.0]), np.array([2.5, 2.5, 5.0])),
              (np.array([30.0, 30.0, 30.0]), np.array([2.0, 2.0, 2.0]))]  # outside the grid: no box
    parts = [(c - a, c + a, lambda xx, yy, zz, c=c, a=a: ellipsoid_depth(xx - c[0], yy - c[1], zz - c[2], *a))
             for c, a in shapes]
    everywhere = ramp(union_depth([fn(*q) for _, _, fn in parts]), 1.0)
    local = ramp_of_union(q, parts, 1.0)
    assert everywhere.max() == 1.0 and (everywhere > 0).sum() > 100  # the shapes are on the grid
    assert np.array_equal(local, everywhere)


def test_fused_shapes_in_ramp_of_union_equal_the_numpy_path() -> None:
    """Ellipsoid / CapsuleChain parts are depth-evaluated, ramped and merged in one Numba pass per box; the
    same shapes as plain callables go through NumPy. Ramps in [0, 1] computed in float32 from float64 depths:
    agreement to a few float32 ulps (atol 1e-6), and exactly where a ramp saturates at 0 or 1."""
    x, y, z = cube_grid(41, 20.0)
    r = rotation_zyx(-9.0, 14.0, 33.0).astype(np.float32)
    q = tuple((r[i, 0] * x + r[i, 1] * y + r[i, 2] * z + 0.4 * np.cos(y / 4.0)).astype(np.float32) for i in range(3))
    shapes = [Ellipsoid((5.0, -3.0, 2.0), (4.0, 6.0, 3.0)),
              Ellipsoid((-8.0, 9.0, -4.0), (2.5, 2.5, 5.0)),
              CapsuleChain([[-12, -10, 0], [-2, -4, 3], [6, 8, 1]], [3.0, 4.5, 2.0], cut_mm=1.0),
              CapsuleChain([[0, 10, -2], [0, 2, -1], [0, -6, -1]], [1.5, 2.0, 2.0], z_stretch=3.0, cut_mm=1.0)]
    fused = ramp_of_union(q, [s.part() if isinstance(s, Ellipsoid) else s.part(1.0) for s in shapes], 1.0)
    plain = ramp_of_union(q, [(lo, hi, lambda *c, s=s: s(*c)) for lo, hi, s in
                              (s.part() if isinstance(s, Ellipsoid) else s.part(1.0) for s in shapes)], 1.0)
    everywhere = ramp(union_depth([s(*q) for s in shapes]), 1.0)
    assert (everywhere > 0).sum() > 500 and (everywhere == 1).sum() > 100  # every shape is on the grid
    assert np.array_equal(plain, everywhere)
    assert_allclose(fused, everywhere, rtol=0, atol=1e-6)
    assert np.array_equal(fused == 0, everywhere == 0) and np.array_equal(fused == 1, everywhere == 1)
    # the stretched chain is 3x taller than wide: its depth at (0, 2, 3 * -1) equals the unstretched radius
    assert_allclose(shapes[3](*(np.array([[[v]]], np.float32) for v in (0.0, 2.0, -3.0))), 2.0, atol=1e-5)
    with pytest.raises(ValueError, match="one radius per point"):
        CapsuleChain([[0, 0, 0], [1, 0, 0]], [1.0])


def test_capsule_part_is_the_chain_ramped_at_the_voxel_width() -> None:
    x, y, z = cube_grid(41, 20.0)
    pts, radii = np.array([[-12.0, -10.0, 0.0], [-2.0, -4.0, 3.0], [6.0, 8.0, 1.0]]), np.array([3.0, 4.5, 2.0])
    part = capsule_part(pts, radii, 1.0, z_stretch=2.0)
    assert isinstance(part[2], CapsuleChain) and part[2].cut_mm == 1.0 and part[2].z_stretch == 2.0
    exact = ramp(capsule_depth(x, y, z / np.float32(2.0), pts, radii), 1.0)
    assert_allclose(ramp_of_union((x, y, z), [part], 1.0), exact, rtol=0, atol=1e-6)  # float32 ramps in [0, 1]
