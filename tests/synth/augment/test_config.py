"""AugmentConfig: JSON round trip and validation that names the field."""
from __future__ import annotations

import json

import pytest

from relaxomap.synth.augment.config import AugmentConfig


def test_config_round_trip_and_validation() -> None:
    cfg = AugmentConfig(shape=(64, 64, 8), voxel_mm=(1.0, 1.0, 3.0))
    assert AugmentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match=r"flip_prob\[0\]"):
        AugmentConfig(flip_prob=(1.5, 0, 0))
    with pytest.raises(ValueError, match="scale"):
        AugmentConfig(scale=(1.2, 0.9))
