"""SSIM (Wang et al., IEEE TIP 13:600, 2004): the one implementation of the package, in torch.

Used by the training loss (:func:`train.losses.masked_ssim_loss`, any float dtype, differentiable) and by the
evaluation metrics (:func:`train.evaluation.metrics.ssim_map`, float64 NumPy in and out).

Definition: local means, variances and covariance from a separable Gaussian window (``window`` taps,
standard deviation ``sigma`` pixels, weights normalised to 1; the default 11 taps at 1.5 px is the window
of Wang et al. and of ``skimage.metrics.structural_similarity(gaussian_weights=True)``, which truncates at
3.5 σ), population (not sample) covariances, and

    SSIM = (2 μa μb + C1)(2 σab + C2) / ((μa² + μb² + C1)(σa² + σb² + C2)),  C1 = (K1 L)², C2 = (K2 L)²

with K1 = 0.01, K2 = 0.03 and the dynamic range ``L`` of each channel. Borders are padded so the map keeps
the image size: ``"reflect"`` mirrors about the edge pixel (``d c b | a b c d``, torch's reflect; the
training loss) and ``"symmetric"`` repeats it (``c b a | a b c d``, SciPy's ``mode="reflect"``, so the map
equals scikit-image's everywhere; the metrics).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["SSIM_K1", "SSIM_K2", "SSIM_WINDOW", "SSIM_SIGMA_PX", "PADDING_MODES", "gaussian_window", "ssim_map"]

SSIM_K1, SSIM_K2 = 0.01, 0.03
#: Default window: 11 taps [pixels] with a Gaussian of standard deviation 1.5 px.
SSIM_WINDOW = 11
SSIM_SIGMA_PX = 1.5
#: Border modes of :func:`ssim_map` (module docstring).
PADDING_MODES = ("reflect", "symmetric")


def gaussian_window(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """(size,) Gaussian weights of standard deviation ``sigma`` [pixels], summing to 1, dtype/device of ``like``."""
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _pad(x: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    if mode == "reflect":
        return F.pad(x, (pad, pad, pad, pad), mode="reflect")
    x = torch.cat([x[..., :pad].flip(-1), x, x[..., -pad:].flip(-1)], dim=-1)
    return torch.cat([x[..., :pad, :].flip(-2), x, x[..., -pad:, :].flip(-2)], dim=-2)


def _check(a: torch.Tensor, b: torch.Tensor, window: int, padding: str) -> int:
    """The padding width; ValueError / TypeError naming what is wrong with the arguments."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise TypeError(f"ssim_map: a and b must be torch.Tensors; got {type(a).__name__}, {type(b).__name__}")
    if a.ndim != 4:
        raise ValueError(f"ssim_map: a must have shape (B, C, H, W); got {tuple(a.shape)}")
    if b.shape != a.shape:
        raise ValueError(f"ssim_map: b shape {tuple(b.shape)} must equal a {tuple(a.shape)}")
    if window % 2 != 1 or window < 3:
        raise ValueError(f"ssim_map: window must be an odd size >= 3; got {window}")
    if padding not in PADDING_MODES:
        raise ValueError(f"ssim_map: padding must be one of {list(PADDING_MODES)}; got {padding!r}")
    pad = window // 2
    if min(a.shape[2:]) <= pad:
        raise ValueError(f"ssim_map: images must be larger than {pad} pixels on each side; got {tuple(a.shape[2:])}")
    return pad


def ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: Sequence[float], *, window: int = SSIM_WINDOW,
             sigma: float = SSIM_SIGMA_PX, padding: str = "reflect") -> torch.Tensor:
    """Per-pixel SSIM of two multi-channel images (module docstring).

    Parameters
    ----------
    a, b : (B, C, H, W) float tensors of one shape; H, W > window // 2.
    data_range : (C,) dynamic range L per channel; C1 = (K1 L)², C2 = (K2 L)².
    window, sigma : odd window size [pixels] and Gaussian standard deviation [pixels].
    padding : ``"reflect"`` or ``"symmetric"`` border (module docstring).

    Returns
    -------
    (B, C, H, W) SSIM map in the dtype of ``a``; 1 where a and b agree.
    """
    pad = _check(a, b, window, padding)
    c = a.shape[1]
    rng = torch.as_tensor(data_range, dtype=a.dtype, device=a.device).reshape(1, -1, 1, 1)
    if rng.shape[1] != c:
        raise ValueError(f"ssim_map: data_range needs one value per channel ({c}); got {rng.shape[1]}")
    g = gaussian_window(window, sigma, a)
    kx = g.reshape(1, 1, 1, window).repeat(5 * c, 1, 1, 1)  # contiguous kernels: faster grouped convolution
    ky = g.reshape(1, 1, window, 1).repeat(5 * c, 1, 1, 1)
    stack = _pad(torch.cat([a, b, a * a, b * b, a * b], dim=1), pad, padding)  # (B, 5C, H + 2p, W + 2p)
    mu = F.conv2d(F.conv2d(stack, kx, groups=5 * c), ky, groups=5 * c)  # separable Gaussian, (B, 5C, H, W)
    mu_a, mu_b, e_aa, e_bb, e_ab = mu.split(c, dim=1)
    var_a, var_b, cov = e_aa - mu_a ** 2, e_bb - mu_b ** 2, e_ab - mu_a * mu_b
    c1, c2 = (SSIM_K1 * rng) ** 2, (SSIM_K2 * rng) ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
