"""Coordinate grids of the phantom tests."""
from __future__ import annotations

import numpy as np

SHAPE = (40, 48, 12)
SPACING = (1.0, 1.2, 2.0)


def coords(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Canonical coordinates [mm] spanning the whole head (±110 mm in plane, −90..90 mm in z), jittered."""
    axes = [np.linspace(-110, 110, SHAPE[0]), np.linspace(-120, 120, SHAPE[1]), np.linspace(-90, 90, SHAPE[2])]
    q = np.meshgrid(*axes, indexing="ij")
    return tuple((c + rng.uniform(-2, 2, SHAPE)).astype(np.float32) for c in q)


def cube_grid(n: int = 21, half: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A cube of n³ points spanning ±half [mm] along each axis, float32 (X, Y, Z) coordinates."""
    a = np.linspace(-half, half, n, dtype=np.float32)
    return np.meshgrid(a, a, a, indexing="ij")
