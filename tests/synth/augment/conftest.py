"""Fixtures of the augmentation tests: a crisp labelled volume and BrainWeb subject 47."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from relaxomap.physics.tissues import label_lookup
from relaxomap.synth.maps import Maps
from relaxomap.synth.real import brainweb_paths, load_maps


@pytest.fixture(scope="session")
def crisp() -> Maps:
    """A 40x36x12 crisp labelled volume (3 T table values, WM/GM/CSF/fat/skull blocks), 1 mm."""
    x, y, z = np.meshgrid(np.arange(40), np.arange(36), np.arange(12), indexing="ij")
    r = np.sqrt((x - 20.0) ** 2 + (y - 18.0) ** 2)
    labels = np.select([r < 5, r < 10, r < 14, r < 16, r < 17], [1, 3, 2, 7, 4], 0).astype(np.uint8)
    table = label_lookup(3.0)
    vals = table[labels]
    return Maps(vals[..., 0], vals[..., 1], vals[..., 2], labels, np.isin(labels, (1, 2, 3)), field_t=3.0,
                subject_id="crisp", source="test")


@pytest.fixture(scope="session")
def subject47(shared_data: Path) -> Maps:
    return load_maps(brainweb_paths(shared_data)["subject47"])
