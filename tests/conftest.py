"""Shared fixtures: seeded random maps over the physiological range and paths to ../shared/data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip with a reason if it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real maps not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def random_maps() -> dict[str, np.ndarray]:
    """5000 voxels, log-uniform T1 in [50, 6000] ms, T2 in [5, 3000] ms (T2 < T1), PD in [0, 1.2], float32."""
    rng = np.random.default_rng(1234)
    n = 5000
    t1 = np.exp(rng.uniform(np.log(50.0), np.log(6000.0), n))
    t2 = np.minimum(np.exp(rng.uniform(np.log(5.0), np.log(3000.0), n)), t1)
    pd = rng.uniform(0.0, 1.2, n)
    return {"t1_ms": t1.astype(np.float32), "t2_ms": t2.astype(np.float32), "pd": pd.astype(np.float32)}
