"""The one axial orientation rule: how an axial plane of an (X, Y, Z) RAS-ordered volume becomes a 2-D image.

Every layer that slices a volume for the network or its figures uses these functions: the simulator writing
training samples (:mod:`relaxomap.synth.generate`), prediction on clinical volumes and the demo. An image
has rows = y descending (anterior at the top) and columns = x ascending (the subject's left on the right,
radiological display is not used), i.e. ``image = axial.T[::-1]``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["axial_to_image", "image_to_axial", "axial_image"]


def axial_to_image(axial: np.ndarray) -> np.ndarray:
    """(X, Y) axial plane of a RAS-ordered volume -> (H=Y, W=X) image, rows = y descending (a view, no copy)."""
    return axial.T[::-1]


def image_to_axial(image: np.ndarray) -> np.ndarray:
    """Inverse of :func:`axial_to_image` on the last two axes: (..., H, W) -> (..., X, Y) (a view)."""
    return np.swapaxes(image[..., ::-1, :], -1, -2)


def axial_image(volume: np.ndarray, z: int) -> np.ndarray:
    """Axial plane ``z`` of an (X, Y, Z) volume as an (H=Y, W=X) image: ``axial_to_image(volume[:, :, z])``."""
    return axial_to_image(volume[:, :, z])
