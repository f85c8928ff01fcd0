"""Fixtures of the phantom tests."""
from __future__ import annotations

import numpy as np
import pytest

from relaxomap.synth.phantom.build import make_phantom
from relaxomap.synth.phantom.config import PhantomConfig
from tests.synth.phantom.anatomy import FLAT, MID, SEEDS


@pytest.fixture(scope="session")
def mid_flat() -> list:
    """Three default-size phantoms (seeds 0-2) of a mid slab without texture."""
    return [make_phantom(PhantomConfig(**MID, **FLAT), np.random.default_rng(s)) for s in SEEDS]
