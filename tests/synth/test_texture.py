"""The texture prior: one owner of its defaults and checks for the phantom and augmentation configs; smooth
multiplicative fields and truncated-normal draws within their bounds."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from relaxomap.synth.augment.config import AugmentConfig
from relaxomap.synth.phantom.config import PhantomConfig
from relaxomap.synth.texture import TEXTURE_PRIOR, TexturePrior, check_texture_prior, smooth_factors, truncated_normal

FIELDS = [f.name for f in dataclasses.fields(TexturePrior)]


@pytest.mark.parametrize("config", [PhantomConfig, AugmentConfig])
def test_both_configs_take_the_prior_defaults_and_checks(config) -> None:
    cfg = config()
    assert FIELDS == ["texture_sd", "texture_scale_mm", "global_sd", "global_scale_mm"]
    for name in FIELDS:
        assert getattr(cfg, name) == getattr(TEXTURE_PRIOR, name), name
    custom = config(texture_sd=[0.1, 0.0, 0.05], global_scale_mm=30)  # lists from JSON become tuples
    assert custom.texture_sd == (0.1, 0.0, 0.05) and custom.global_scale_mm == 30.0
    with pytest.raises(ValueError, match=rf"{config.__name__}\.texture_sd\[1\]"):
        config(texture_sd=(0.03, 0.5, 0.02))
    with pytest.raises(ValueError, match=rf"{config.__name__}\.global_scale_mm"):
        config(global_scale_mm=0.5)


def test_check_texture_prior_normalises_every_prior_field() -> None:
    @dataclass(frozen=True)
    class Holder:
        texture_sd: tuple = (0.01, 0.02, 0.03)
        texture_scale_mm: float = 5
        global_sd: tuple = (0.0, 0.0, 0.1)
        global_scale_mm: float = 200

    h = Holder(texture_sd=np.array([0.01, 0.02, 0.03]))
    check_texture_prior("Holder", h)
    assert h.texture_sd == (0.01, 0.02, 0.03) and isinstance(h.texture_sd, tuple)
    assert h.texture_scale_mm == 5.0 and isinstance(h.texture_scale_mm, float)
    for name, bad in (("texture_scale_mm", 600.0), ("global_sd", (0.0, 0.4, 0.0)), ("global_scale_mm", 2000.0)):
        with pytest.raises(ValueError, match=rf"Holder\.{name}"):
            check_texture_prior("Holder", Holder(**{name: bad}))


def test_smooth_factors_are_bounded_and_one_where_sd_is_zero() -> None:
    sd = (0.05, 0.0, 0.02)
    k = smooth_factors(np.random.default_rng(3), (30, 34, 8), (1.0, 1.0, 2.0), sd, 12.0)
    for f, s in zip(k, sd):
        assert f.shape == (30, 34, 8) and f.dtype == np.float32
        assert f.min() >= math.exp(-3 * s) * (1 - 1e-6) and f.max() <= math.exp(3 * s) * (1 + 1e-6)
    assert_array_equal(k[1], 1.0)
    assert np.std(np.log(k[0])) > 0.2 * 0.05  # the field does vary


def test_truncated_normal_is_redrawn_inside_the_bound() -> None:
    z = truncated_normal(np.random.default_rng(0), 20_000, 1.0)
    assert np.abs(z).max() <= 1.0 and z.dtype == np.float64
    # a standard normal restricted to [-1, 1] has sd 0.5396 (no mass piled up at the bound as clipping gives)
    assert abs(np.std(z) - 0.5396) < 0.01 and np.mean(np.abs(z) > 0.99) < 0.01
    with pytest.raises(ValueError, match="bound must be > 0"):
        truncated_normal(np.random.default_rng(0), 3, 0.0)
