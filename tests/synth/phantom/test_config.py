"""PhantomConfig: JSON round trip and validation that names the field."""
from __future__ import annotations

import json

import pytest

from relaxomap.synth.lesions import LesionConfig
from relaxomap.synth.phantom.config import PhantomConfig


def test_config_round_trip_and_validation() -> None:
    cfg = PhantomConfig(shape=(64, 64, 8), voxel_mm=(1.0, 1.0, 3.0), field_t=1.5, lesions=LesionConfig(p_ms=1.0))
    again = PhantomConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="field_t"):
        PhantomConfig(field_t=7.0)
    with pytest.raises(ValueError, match=r"shape\[2\]"):
        PhantomConfig(shape=(64, 64, 0))
    with pytest.raises(ValueError, match="atrophy"):
        PhantomConfig(atrophy=(0.8, 0.2))
    with pytest.raises(ValueError, match="unknown field"):
        PhantomConfig.from_dict({"shap": (1, 2, 3)})
    with pytest.raises(TypeError, match="lesions"):
        PhantomConfig(lesions={"p_ms": 1.0})
