"""Orientation conventions of (X, Y, Z) RAS-ordered volumes: the one axial rule by which an axial plane becomes a
2-D image, and the one pitch / roll / yaw rotation of a head.

Every layer that slices a volume for the network or its figures uses the axial functions: the simulator writing
training samples (:mod:`relaxomap.synth.generate`), prediction on clinical volumes and the demo. An image
has rows = y descending (anterior at the top) and columns = x ascending (the subject's left on the right,
radiological display is not used), i.e. ``image = axial.T[::-1]``. :func:`rotation_zyx` poses the procedural
phantom's head (:mod:`relaxomap.synth.phantom.frame`) and rotates real maps in the augmentation warp
(:mod:`relaxomap.synth.augment.warp`).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["axial_to_image", "image_to_axial", "axial_image", "rotation_zyx"]


def axial_to_image(axial: np.ndarray) -> np.ndarray:
    """(X, Y) axial plane of a RAS-ordered volume -> (H=Y, W=X) image, rows = y descending (a view, no copy)."""
    return axial.T[::-1]


def image_to_axial(image: np.ndarray) -> np.ndarray:
    """Inverse of :func:`axial_to_image` on the last two axes: (..., H, W) -> (..., X, Y) (a view)."""
    return np.swapaxes(image[..., ::-1, :], -1, -2)


def axial_image(volume: np.ndarray, z: int) -> np.ndarray:
    """Axial plane ``z`` of an (X, Y, Z) volume as an (H=Y, W=X) image: ``axial_to_image(volume[:, :, z])``."""
    return axial_to_image(volume[:, :, z])


def rotation_zyx(pitch: float, roll: float, yaw: float) -> np.ndarray:
    """(3, 3) rotation ``Rz(yaw) · Ry(roll) · Rx(pitch)``, angles in degrees (about x, y, z)."""
    cx, sx, cy, sy, cz, sz = (f(math.radians(a)) for a in (pitch, roll, yaw) for f in (math.cos, math.sin))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx
