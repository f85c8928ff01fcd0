"""A simple automatic brain mask for when the user gives none.

Method (:func:`auto_brain_mask`):

1. mean of the normalised input contrasts (each scaled to a common range first);
2. Otsu threshold (Otsu, IEEE SMC 9:62, 1979) over the non-zero voxels -> head vs background;
3. erosion by ``erode_mm`` (a ball) to cut the thin bridges between brain and scalp where the skull is dark;
4. the largest 3-D connected component (the brain);
5. dilation by the same ball, restricted to the thresholded head (undoes step 3 at the brain surface);
6. hole filling, in 3-D and slice by slice, so dark CSF spaces and lesions inside the brain stay in.

Limits -- this is not skull stripping of research quality (use BET, SynthStrip or HD-BET and pass ``--mask``):
it needs a dark gap (skull, CSF) between brain and scalp at least ~2·erode_mm wide in most places; it keeps
scalp that touches the brain (orbits, neck, skull base, where fat and muscle border the brain directly), keeps
the whole head on images without a dark skull (e.g. some fat-suppressed scans), can lose cortex with strong
bias fields or low SNR. The volume border counts as foreground for the erosion, so a brain cut by the field
of view (a slab) is not eroded from its cut faces.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["otsu_threshold", "auto_brain_mask", "largest_component"]


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values``: maximises the between-class variance of a ``bins``-bin histogram.

    Parameters
    ----------
    values : any shape, finite.
    bins : histogram bins over [min, max].

    Returns
    -------
    float, the upper edge of the last bin of the lower class (a value with ``values > t`` = upper class).
    """
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise ValueError("otsu_threshold needs at least one value; got an empty array")
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist)  # voxels at or below each bin
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    mu0 = s0 / np.maximum(w0, 1)
    mu1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[1:][int(np.argmax(between[:-1]))])


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean array (all False if it is empty)."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3,) * mask.ndim, bool))
    if n == 0:
        return np.zeros(mask.shape, bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def _ball(radius_vox: np.ndarray) -> np.ndarray:
    """Ellipsoidal structuring element with semi-axes ``radius_vox`` (anisotropic voxels) [voxels]."""
    r = np.maximum(np.floor(radius_vox).astype(int), 0)
    grids = np.ogrid[tuple(slice(-k, k + 1) for k in r)]
    dist = sum((g / max(rv, 1e-6)) ** 2 for g, rv in zip(grids, radius_vox))
    return dist <= 1.0


def auto_brain_mask(
    images: Sequence[np.ndarray],
    voxel_mm: Sequence[float] = (1.0, 1.0, 1.0),
    *,
    erode_mm: float = 3.0,
) -> np.ndarray:
    """Automatic brain mask from co-registered images (see the module docstring for method and limits).

    Parameters
    ----------
    images : one or more (X, Y, Z) arrays on one grid, each already intensity-normalised (any common scale).
    voxel_mm : (3,) voxel size [mm], so the erosion ball is round in millimetres.
    erode_mm : erosion / dilation radius [mm].

    Returns
    -------
    (X, Y, Z) bool

    Raises
    ------
    ValueError
        If the images are empty, differ in shape, or nothing is above the threshold.
    """
    from scipy import ndimage

    if len(images) == 0:
        raise ValueError("auto_brain_mask needs at least one image; got none")
    shape = np.shape(images[0])
    for k, im in enumerate(images):
        if np.shape(im) != shape or len(shape) != 3:
            raise ValueError(f"auto_brain_mask images must share one 3-D shape; image {k} has {np.shape(im)}, "
                             f"image 0 has {shape}")
    # scale each image by its own robust maximum so no contrast dominates the mean
    scaled = []
    for im in images:
        a = np.asarray(im, np.float32)
        nz = a[a > 0]
        top = float(np.percentile(nz, 99.0)) if nz.size else 0.0
        scaled.append(np.clip(a / top, 0.0, None) if top > 0 else np.zeros(shape, np.float32))
    mean = np.mean(scaled, axis=0)
    nonzero = mean[mean > 0]
    if nonzero.size == 0:
        raise ValueError("auto_brain_mask: the images are zero everywhere; pass --mask")
    head = mean > otsu_threshold(nonzero)
    if not head.any():
        raise ValueError("auto_brain_mask: no voxel above the Otsu threshold; pass --mask")
    radius_vox = float(erode_mm) / np.asarray(voxel_mm, np.float64)
    ball = _ball(radius_vox)
    core = ndimage.binary_erosion(head, structure=ball, border_value=1)
    core = largest_component(core if core.any() else head)
    brain = ndimage.binary_dilation(core, structure=ball) & head
    brain = ndimage.binary_fill_holes(brain)
    for k in range(shape[2]):  # CSF spaces open to one slice side are closed slice by slice
        brain[:, :, k] = ndimage.binary_fill_holes(brain[:, :, k])
    return brain
