"""Helpers of the phantom anatomy tests: a slab through the ventricles without texture, and interior voxels."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

# A slab through the lateral ventricles and basal ganglia (centre 5–15 mm above the brain centre ≈ MNI z
# 15–25): every healthy tissue class is cut there.
MID = dict(slab_center_mm=(5.0, 15.0))
# Anatomy checks use no texture: then every pure voxel holds exactly its tissue's per-subject value.
FLAT = dict(texture_sd=(0.0, 0.0, 0.0), global_sd=(0.0, 0.0, 0.0))
SEEDS = (0, 1, 2)


def interior(labels: np.ndarray, label: int) -> np.ndarray:
    """Voxels of ``label`` whose 26 neighbours share their label (bool, labels' shape)."""
    # Voxels whose 26 neighbours share their label. A tissue boundary within half a voxel of a voxel centre
    # leaves some neighbour entirely on the other side (its offset along the boundary normal is >= 1 voxel),
    # i.e. with another label, so interior voxels are pure for exact signed distances.
    return ndimage.binary_erosion(labels == label, np.ones((3, 3, 3), bool))
