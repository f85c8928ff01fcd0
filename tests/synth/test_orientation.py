"""synth.orientation: the axial rule (rows = y descending, columns = x ascending) and its inverse; the head
rotation."""
from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose

from relaxomap.synth.orientation import axial_image, axial_to_image, image_to_axial, rotation_zyx


def test_axial_rule_on_an_index_volume_and_inverse() -> None:
    x, y, z = np.meshgrid(np.arange(4), np.arange(5), np.arange(3), indexing="ij")
    vol = (100 * x + 10 * y + z).astype(np.int64)  # each voxel holds its own (x, y, z)
    img = axial_image(vol, 2)
    assert img.shape == (5, 4)
    assert img[0, 0] == 100 * 0 + 10 * 4 + 2  # top-left: most anterior row (y = 4), x = 0
    assert img[4, 3] == 100 * 3 + 10 * 0 + 2  # bottom-right: y = 0, x = 3
    assert np.array_equal(image_to_axial(img), vol[:, :, 2])
    stack = np.stack([axial_to_image(vol[:, :, k]) for k in range(3)])  # (3, H, W)
    assert np.array_equal(image_to_axial(stack), np.moveaxis(vol, 2, 0))


def test_rotation_is_orthonormal_and_turns_about_each_axis() -> None:
    r = rotation_zyx(10.0, -20.0, 35.0)
    assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    assert_allclose(rotation_zyx(0.0, 0.0, 90.0) @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)  # yaw: x -> y
    assert_allclose(rotation_zyx(90.0, 0.0, 0.0) @ [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], atol=1e-12)  # pitch: y -> z
    assert_allclose(rotation_zyx(0.0, 90.0, 0.0) @ [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], atol=1e-12)  # roll: z -> x
    # the order: pitch first, then roll, then yaw
    assert_allclose(rotation_zyx(30.0, 40.0, 50.0),
                    rotation_zyx(0.0, 0.0, 50.0) @ rotation_zyx(0.0, 40.0, 0.0) @ rotation_zyx(30.0, 0.0, 0.0),
                    atol=1e-12)
