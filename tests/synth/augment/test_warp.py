"""Geometric augmentation: exact flips, resampling through affine maps, mixtures kept physical."""
from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.synth.augment.config import AugmentConfig
from relaxomap.synth.augment.warp import flip_maps, random_warp, warp_maps
from relaxomap.synth.maps import Maps
from tests.synth.augment.settings import IDENTITY


def test_flips_are_exact(crisp: Maps) -> None:
    out = flip_maps(crisp, [0, 2])
    for k in ("t1_ms", "t2_ms", "pd", "labels", "mask"):
        assert_array_equal(getattr(out, k), np.flip(getattr(crisp, k), (0, 2)))
    assert_array_equal(flip_maps(out, [0, 2]).t1_ms, crisp.t1_ms)
    # a random warp that only flips x (probability 1, no rotation, scale, shift or deformation)
    rnd = random_warp(crisp, np.random.default_rng(0), AugmentConfig(flip_prob=(1.0, 0.0, 0.0), **IDENTITY))
    assert_array_equal(rnd.labels, np.flip(crisp.labels, 0))
    assert_allclose(rnd.t1_ms, np.flip(crisp.t1_ms, 0), rtol=1e-6)  # float32 round trip through the rates
    # the warp folds flips into its index map: at integer positions it is exact as well
    warped = warp_maps(crisp, np.eye(3), (0, 0, 0), flip=(True, False, False))
    assert_allclose(warped.t1_ms, np.flip(crisp.t1_ms, 0), rtol=1e-6)
    assert_array_equal(warped.labels, np.flip(crisp.labels, 0))


def test_warp_identity_shift_and_rotation(crisp: Maps) -> None:
    same = warp_maps(crisp, np.eye(3), (0, 0, 0))
    assert_allclose(same.t1_ms, crisp.t1_ms, rtol=1e-6)  # float32 division round trip of T1 = PD / (PD/T1)
    assert_array_equal(same.labels, crisp.labels)
    # output at p samples the source at p + (3, -2, 1) mm: an integer voxel shift, zero-filled
    shifted = warp_maps(crisp, np.eye(3), (3.0, -2.0, 1.0))
    assert_allclose(shifted.pd[:-3, 2:, :-1], crisp.pd[3:, :-2, 1:], rtol=1e-6)
    assert (shifted.pd[-3:] == 0).all()
    # 90° about z: output (x, y) samples source (-y, x) from the centre -> np.rot90 by -1 on a square grid
    sq = warp_maps(crisp, np.eye(3), (0, 0, 0), shape=(36, 36, 12))
    rot = warp_maps(sq, np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]]), (0, 0, 0))
    assert_allclose(rot.t2_ms, np.rot90(sq.t2_ms, -1, axes=(0, 1)), rtol=1e-6)


def test_resampling_keeps_mixtures_physical(crisp: Maps) -> None:
    # Half-voxel shift: every output voxel mixes its two source neighbours 50/50 in (PD, PD/T1, PD/T2).
    out = warp_maps(crisp, np.eye(3), (0.5, 0.0, 0.0))
    pd0, pd1 = crisp.pd[:-1], crisp.pd[1:]
    a10 = np.divide(pd0, crisp.t1_ms[:-1], out=np.zeros_like(pd0), where=pd0 > 0)
    a11 = np.divide(pd1, crisp.t1_ms[1:], out=np.zeros_like(pd1), where=pd1 > 0)
    pd = 0.5 * (pd0 + pd1)
    t1 = np.divide(pd, 0.5 * (a10 + a11), out=np.zeros_like(pd), where=pd > 0)
    assert_allclose(out.pd[:-1], pd, rtol=1e-5, atol=1e-7)
    assert_allclose(out.t1_ms[:-1], t1, rtol=1e-5)
