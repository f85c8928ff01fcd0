"""Acquisition-parameter embedding: normalised times -> Fourier features -> MLP -> one vector per sample.

The network is told, per sample, the TR, TE and TI [ms] of each input contrast (TI = 0 where a sequence
has no inversion) and which contrasts are present. Times are first normalised with fixed, physically
chosen scales (``ModelConfig.tr_scale_ms`` etc.):

    u = log1p(t / scale)

which is 0 at t = 0, grows like t / scale for short times and logarithmically for long ones (contrast
depends on ratios such as TR / T1, so equal ratios should be equal steps). The parameters of a missing
contrast are meaningless and are zeroed, so they cannot influence the output.

The 9 normalised values u and the presence flags p (C of them) form z = [u * p, p]; the embedding is

    e = MLP([z, sin(2 pi B z), cos(2 pi B z)]),   B ~ N(0, fourier_scale^2), shape (n_fourier, 4C)

(random Fourier features, Tancik et al., NeurIPS 2020), with B fixed by ``fourier_seed`` and stored as a
buffer so a checkpoint carries it.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from relaxomap.model.config import ModelConfig

__all__ = ["normalise_params", "masked_param_features", "ParamEmbedding"]


def normalise_params(params_ms: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """Map acquisition times to O(1) features ``log1p(t / scale)``.

    Parameters
    ----------
    params_ms : (B, C, 3) float [ms], columns (TR, TE, TI) of each contrast; TI = 0 without inversion.
    config : supplies ``tr_scale_ms``, ``te_scale_ms``, ``ti_scale_ms``.

    Returns
    -------
    (B, C, 3) tensor of the same dtype, >= 0.
    """
    scales = params_ms.new_tensor([config.tr_scale_ms, config.te_scale_ms, config.ti_scale_ms])
    return torch.log1p(params_ms.clamp_min(0.0) / scales)


def masked_param_features(params_ms: torch.Tensor, present: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """The embedding input ``z = [normalised params * present, present]``.

    Parameters
    ----------
    params_ms : (B, C, 3) float [ms] (TR, TE, TI per contrast).
    present : (B, C) float, 1 where the contrast was acquired, 0 where missing.

    Returns
    -------
    (B, 4C) tensor: the C*3 normalised times (zero for a missing contrast), then the C flags.
    """
    u = normalise_params(params_ms, config) * present[:, :, None]  # (B, C, 3)
    return torch.cat([u.flatten(1), present], dim=1)  # (B, 3C + C)


class ParamEmbedding(nn.Module):
    """Fourier features + two-layer MLP from (params, presence) to a ``(B, emb_dim)`` vector.

    Parameters
    ----------
    config : uses ``in_contrasts``, ``n_fourier``, ``fourier_scale``, ``fourier_seed``, ``emb_dim`` and the
        time scales.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        n_in = 4 * config.in_contrasts
        gen = torch.Generator().manual_seed(config.fourier_seed)
        freqs = torch.randn(config.n_fourier, n_in, generator=gen) * config.fourier_scale
        self.register_buffer("freqs", freqs)  # (n_fourier, 4C) [cycles per normalised unit]
        width = n_in + 2 * config.n_fourier
        self.mlp = nn.Sequential(
            nn.Linear(width, config.emb_dim),
            nn.SiLU(),
            nn.Linear(config.emb_dim, config.emb_dim),
        )

    def forward(self, params_ms: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(B, C, 3) times [ms] and (B, C) flags -> (B, emb_dim) embedding."""
        z = masked_param_features(params_ms, present, self.config)  # (B, 4C)
        phase = 2.0 * math.pi * z @ self.freqs.T  # (B, n_fourier)
        return self.mlp(torch.cat([z, torch.sin(phase), torch.cos(phase)], dim=1))
