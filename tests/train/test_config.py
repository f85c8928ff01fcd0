"""TrainConfig's warm-up rule: it follows the run's length unless set, and the resolved number is recorded."""
from __future__ import annotations

import json

import pytest

from relaxomap.train.config import MAX_DEFAULT_WARMUP_STEPS, TrainConfig, default_warmup_steps


@pytest.mark.parametrize("steps, warmup", [(20000, 500), (5000, 500), (4000, 400), (20, 2), (9, 0), (1, 0)])
def test_default_warmup_is_a_tenth_of_the_run_at_most_500(steps: int, warmup: int) -> None:
    assert default_warmup_steps(steps) == warmup == min(MAX_DEFAULT_WARMUP_STEPS, steps // 10)
    assert TrainConfig(store="s.h5", steps=steps).warmup_steps == warmup


def test_a_set_warmup_is_kept_and_checked_against_the_run() -> None:
    assert TrainConfig(store="s.h5", steps=20, warmup_steps=20).warmup_steps == 20
    assert TrainConfig(store="s.h5", steps=20, warmup_steps=0).warmup_steps == 0
    with pytest.raises(ValueError, match=r"TrainConfig\.warmup_steps must be an integer in \[0, 20\]; got 21"):
        TrainConfig(store="s.h5", steps=20, warmup_steps=21)


def test_config_json_records_the_resolved_warmup() -> None:
    cfg = TrainConfig(store="s.h5", steps=300)
    saved = json.loads(cfg.to_json())
    assert saved["warmup_steps"] == 30
    assert TrainConfig.from_dict(saved) == cfg
    assert TrainConfig.from_dict({"store": "s.h5", "steps": 300, "warmup_steps": None}) == cfg


def test_loss_round_trips_through_its_dict() -> None:
    cfg = TrainConfig.from_dict({"store": "s.h5", "loss": {"ssim": 0.25, "map_weights": [1, 2, 3]}})
    assert cfg.loss.ssim == 0.25 and cfg.loss.map_weights == (1.0, 2.0, 3.0)
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(TypeError, match=r"TrainConfig\.loss must be a LossConfig or its dict; got list"):
        TrainConfig(store="s.h5", loss=[1.0])
