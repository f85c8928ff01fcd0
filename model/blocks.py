"""Building blocks of the U-Net: a residual block with optional FiLM, and 2x down/up-sampling.

Every residual block of a network is made by :func:`make_block`, which gives it the embedding width when
the architecture conditions on parameters. A block built with an embedding width refuses to run without an
embedding, so no block can silently miss the conditioning.

Residual block (pre-activation, as in Ho et al. 2020 / lucidrains' ``ResnetBlock``)::

    h = conv3x3(SiLU(GN(x)))
    h = GN(h);  h = h * (1 + scale) + shift       # FiLM, (scale, shift) = Linear(SiLU(e)), zero-initialised
    h = conv3x3(dropout(SiLU(h)))
    out = h + skip(x)                              # skip = 1x1 conv when channels change

The FiLM projection starts at zero, so a freshly built ``pe-unet`` computes exactly what the plain ``unet``
would; the conditioning grows from the first optimiser step on.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResBlock", "Downsample", "Upsample", "make_block"]


class ResBlock(nn.Module):
    """Residual block ``(B, in_ch, H, W) -> (B, out_ch, H, W)`` with GroupNorm, SiLU, 3x3 convs and FiLM.

    Parameters
    ----------
    in_ch, out_ch : channel counts (both multiples of ``groups``).
    groups : GroupNorm groups.
    emb_dim : width of the conditioning vector, or None for an unconditioned block.
    dropout : dropout probability before the second convolution.
    """

    def __init__(self, in_ch: int, out_ch: int, *, groups: int, emb_dim: int | None, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.emb_dim = emb_dim
        if emb_dim is not None:
            self.film = nn.Linear(emb_dim, 2 * out_ch)
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)
        else:
            self.film = None

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, in_ch, H, W), emb (B, emb_dim) or None -> (B, out_ch, H, W)."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.norm2(h)
        if self.film is not None:
            if emb is None:
                raise ValueError("ResBlock was built with a parameter embedding (emb_dim set) but got emb=None")
            scale, shift = self.film(F.silu(emb)).chunk(2, dim=1)  # (B, out_ch) each
            h = h * (1.0 + scale[:, :, None, None]) + shift[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(h)))
        return h + self.skip(x)


class Downsample(nn.Module):
    """Strided 3x3 convolution: (B, in_ch, H, W) -> (B, out_ch, H/2, W/2); H, W even."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 convolution (no checkerboard artefacts).

    (B, in_ch, H, W) -> (B, out_ch, 2H, 2W).
    """

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def make_block(in_ch: int, out_ch: int, *, groups: int, emb_dim: int | None, dropout: float) -> ResBlock:
    """The one factory for residual blocks: ``emb_dim`` set gives a FiLM-conditioned block, None a plain one."""
    return ResBlock(in_ch, out_ch, groups=groups, emb_dim=emb_dim, dropout=dropout)
