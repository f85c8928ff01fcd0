"""The package's one SSIM: equal to scikit-image's map (symmetric borders), border modes, dtypes, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from relaxomap.train.ssim import ssim_map


def _pair(seed: int = 3, shape: tuple[int, int] = (40, 37)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=shape).cumsum(axis=0) * 0.1
    return a, a + rng.normal(scale=0.2, size=shape)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x)[None, None]


def test_symmetric_borders_equal_skimage_everywhere() -> None:
    skm = pytest.importorskip("skimage.metrics")
    a, b = _pair()
    ours = ssim_map(_t(a), _t(b), (2.0,), padding="symmetric")[0, 0].numpy()
    _, ref = skm.structural_similarity(a, b, data_range=2.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, full=True)
    assert_allclose(ours, ref, rtol=0, atol=1e-12)  # the same float64 sums in another order


def test_border_modes_differ_only_within_the_window_radius() -> None:
    a, b = _pair(5)
    reflect = ssim_map(_t(a), _t(b), (2.0,))[0, 0].numpy()
    symmetric = ssim_map(_t(a), _t(b), (2.0,), padding="symmetric")[0, 0].numpy()
    assert_allclose(reflect[5:-5, 5:-5], symmetric[5:-5, 5:-5], rtol=0, atol=1e-13)
    assert np.abs(reflect - symmetric).max() > 1e-3  # the 5-pixel border does depend on the mode


def test_identical_images_give_one_per_channel_range() -> None:
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    out = ssim_map(x, x.clone(), (1.0, 2.0, 3.0))
    assert out.shape == x.shape and out.dtype == torch.float64
    assert_allclose(out.numpy(), 1.0, rtol=0, atol=1e-12)


def test_float32_map_is_differentiable() -> None:
    a = torch.rand(1, 1, 20, 20, requires_grad=True)
    b = torch.rand(1, 1, 20, 20)
    ssim_map(a, b, (1.0,)).mean().backward()
    assert a.grad is not None and a.grad.dtype == torch.float32 and bool(torch.isfinite(a.grad).all())


@pytest.mark.parametrize("kwargs, shape, match", [
    ({"padding": "edge"}, (1, 1, 20, 20), r"padding must be one of \['reflect', 'symmetric'\]; got 'edge'"),
    ({"window": 4}, (1, 1, 20, 20), r"window must be an odd size >= 3; got 4"),
    ({}, (1, 1, 5, 20), r"images must be larger than 5 pixels on each side; got \(5, 20\)"),
    ({}, (1, 20, 20), r"a must have shape \(B, C, H, W\); got \(1, 20, 20\)"),
])
def test_bad_arguments_are_named(kwargs: dict, shape: tuple[int, ...], match: str) -> None:
    x = torch.rand(*shape)
    with pytest.raises(ValueError, match=match):
        ssim_map(x, x, (1.0,), **kwargs)


def test_data_range_needs_one_value_per_channel() -> None:
    x = torch.rand(1, 2, 20, 20)
    with pytest.raises(ValueError, match=r"data_range needs one value per channel \(2\); got 1"):
        ssim_map(x, x, (1.0,))
    with pytest.raises(TypeError, match=r"a and b must be torch.Tensors; got ndarray"):
        ssim_map(x.numpy(), x, (1.0, 1.0))
