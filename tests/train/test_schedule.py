"""Learning-rate and loss-weight schedules, exactly against their formulas written out here."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from numpy.testing import assert_allclose

from relaxomap.train.losses import LossConfig
from relaxomap.train.schedule import loss_config_at, lr_at, physics_weight_at, ramp_at

CFG = SimpleNamespace(lr=1e-3, min_lr=1e-5, warmup_steps=10, steps=110)


def test_warmup_is_linear_and_reaches_peak() -> None:
    # step k < W: lr (k + 1) / W  -> 1e-4, 2e-4, ..., 1e-3 at k = W - 1
    got = [lr_at(k, CFG) for k in range(10)]
    assert_allclose(got, [1e-3 * (k + 1) / 10 for k in range(10)], rtol=1e-15, atol=0)
    assert lr_at(9, CFG) == pytest.approx(1e-3, rel=1e-15)


def test_cosine_decay_values() -> None:
    # W <= k <= S: min + 0.5 (1 + cos(pi (k - W) / (S - W))) (peak - min); here S - W = 100
    for k in (10, 35, 60, 85, 110):
        expected = 1e-5 + 0.5 * (1 + math.cos(math.pi * (k - 10) / 100)) * (1e-3 - 1e-5)
        assert_allclose(lr_at(k, CFG), expected, rtol=1e-14, atol=0)  # same arithmetic: rounding only
    assert lr_at(10, CFG) == pytest.approx(1e-3, rel=1e-15)  # decay starts at the peak
    assert lr_at(60, CFG) == pytest.approx((1e-3 + 1e-5) / 2, rel=1e-14)  # half-way: the mean
    assert lr_at(110, CFG) == pytest.approx(1e-5, rel=1e-12)  # ends on the floor
    assert lr_at(5000, CFG) == 1e-5  # beyond the run: the floor


def test_monotone_after_warmup_and_no_warmup() -> None:
    values = [lr_at(k, CFG) for k in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    no_warm = SimpleNamespace(lr=2e-3, min_lr=0.0, warmup_steps=0, steps=4)
    assert_allclose([lr_at(k, no_warm) for k in range(5)],
                    [2e-3 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(5)], rtol=1e-14, atol=1e-20)
    with pytest.raises(ValueError, match="step must be >= 0"):
        lr_at(-1, CFG)


def test_warmup_equal_to_steps_has_no_division_by_zero() -> None:
    cfg = SimpleNamespace(lr=1.0, min_lr=0.1, warmup_steps=5, steps=5)
    assert [lr_at(k, cfg) for k in range(7)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.1], rel=1e-15)


def test_ramp() -> None:
    # 0 before start, (k - start) / n inside, 1 from start + n
    assert [ramp_at(k, 3, 4) for k in range(9)] == pytest.approx([0, 0, 0, 0, 0.25, 0.5, 0.75, 1, 1], abs=0)
    assert [ramp_at(k, 2, 0) for k in range(4)] == [0.0, 0.0, 1.0, 1.0]


def test_physics_weight_and_loss_config() -> None:
    cfg = SimpleNamespace(loss=LossConfig(l1=1.0, ssim=0.5, physics=0.2), physics_ramp_start=10, physics_ramp_steps=20)
    assert physics_weight_at(0, cfg) == 0.0
    assert physics_weight_at(20, cfg) == pytest.approx(0.2 * 10 / 20, rel=1e-15)
    assert physics_weight_at(30, cfg) == 0.2
    at = loss_config_at(15, cfg)
    assert at.physics == pytest.approx(0.2 * 5 / 20, rel=1e-15)
    assert (at.l1, at.ssim, at.map_weights) == (1.0, 0.5, (1.0, 1.0, 1.0))  # other weights untouched
    assert loss_config_at(40, cfg) is cfg.loss
