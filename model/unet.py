"""The U-Net (three architectures on one backbone), its output parameterisation and ``build_model``.

Output parameterisation
-----------------------
The network predicts each map in a *normalised* space in which an L1 distance is a relative error for the
relaxation times and an absolute error for PD:

    n_T1 = ln(T1 / 1000 ms),   n_T2 = ln(T2 / 100 ms),   n_PD = PD

(:func:`to_normalised` / :func:`from_normalised`, the one pair used by the losses, the metrics and the head).
An error of 0.01 in ``n_T1`` is a 1 % T1 error; 0.01 in ``n_PD`` is 1.4 % of white-matter PD (0.7). The head
outputs raw values r, passes each through the smooth clamp :func:`bounded` into the config's bounds (in
normalised units) and maps back with :func:`from_normalised`, so T1 = 1000 ms * exp(bounded(r)) is positive,
centred on 1000 ms at r = 0, and cannot overflow. Physiological ranges: T1 ~ 50–6000 ms, T2 ~ 5–3000 ms,
PD 0–1.2; the default bounds (5–20000 ms, 0.5–10000 ms, 0–2) contain them with room to spare.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from relaxomap.model.blocks import Downsample, Upsample, make_block
from relaxomap.model.config import ModelConfig
from relaxomap.model.embedding import ParamEmbedding, normalise_params

__all__ = [
    "T1_REF_MS",
    "T2_REF_MS",
    "MAP_FLOOR_MS",
    "to_normalised",
    "from_normalised",
    "bounded",
    "UNet",
    "build_model",
    "count_parameters",
]

#: Reference times of the normalised space [ms].
T1_REF_MS = 1000.0
T2_REF_MS = 100.0
#: T1 / T2 are clamped to at least this before the logarithm, so background zeros map to a finite value [ms].
MAP_FLOOR_MS = 1e-3
#: Largest exponent ``from_normalised`` evaluates (exp(30) * 1000 ms = 1e16 ms: no tissue, no float32 overflow).
_MAX_LOG = 30.0


def _check_maps(name: str, maps: torch.Tensor) -> None:
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, 3, ...); got {type(maps).__name__}")
    if maps.ndim < 2 or maps.shape[1] != 3:
        raise ValueError(
            f"{name} must have shape (B, 3, ...) with channels [T1 ms, T2 ms, PD]; got {tuple(maps.shape)}"
        )


def to_normalised(maps: torch.Tensor) -> torch.Tensor:
    """Physical maps -> normalised maps ``[ln(T1/1000 ms), ln(T2/100 ms), PD]``.

    Parameters
    ----------
    maps : (B, 3, ...) float, channels [T1 ms, T2 ms, PD]. T1 and T2 below ``MAP_FLOOR_MS`` (e.g. background
        zeros) are clamped to it first, so the result is always finite for finite input.

    Returns
    -------
    (B, 3, ...) tensor of the same dtype.
    """
    _check_maps("to_normalised(maps)", maps)
    t1 = torch.log(maps[:, 0:1].clamp_min(MAP_FLOOR_MS) / T1_REF_MS)
    t2 = torch.log(maps[:, 1:2].clamp_min(MAP_FLOOR_MS) / T2_REF_MS)
    return torch.cat([t1, t2, maps[:, 2:3]], dim=1)


def from_normalised(norm: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`to_normalised`: ``[1000 ms * exp(n1), 100 ms * exp(n2), n3]``.

    Parameters
    ----------
    norm : (B, 3, ...) float normalised maps. Exponents are capped at 30 so the result never overflows.

    Returns
    -------
    (B, 3, ...) tensor [T1 ms, T2 ms, PD].
    """
    _check_maps("from_normalised(norm)", norm)
    t1 = T1_REF_MS * torch.exp(norm[:, 0:1].clamp_max(_MAX_LOG))
    t2 = T2_REF_MS * torch.exp(norm[:, 1:2].clamp_max(_MAX_LOG))
    return torch.cat([t1, t2, norm[:, 2:3]], dim=1)


def bounded(x: torch.Tensor, lo: float, hi: float, sharpness: float) -> torch.Tensor:
    """Smooth clamp into [lo, hi], the identity well inside it.

        y = lo + softplus(beta (x - lo)) / beta - softplus(beta (x - hi)) / beta

    In exact arithmetic y is strictly increasing with lo < y < hi; its slope
    dy/dx = sigmoid(beta (x - lo)) - sigmoid(beta (x - hi)) decays like exp(-beta d) at distance d beyond a
    bound (no dead zone near the bounds, unlike a hard clamp), and |y - x| < exp(-beta d) / beta at distance
    d inside both bounds. In floating point y reaches a bound exactly only far beyond it (beta d >~ 36 in
    float64, ~ 17 in float32).
    """
    b = float(sharpness)
    # Two algebraically equal forms (softplus(z) = z + softplus(-z)), each evaluated on the half where its
    # bracket is a difference of small positive terms: no cancellation of large x, and lo <= y <= hi holds
    # in floating point too because softplus is monotone.
    from_lo = lo + (F.softplus(b * (x - lo)) - F.softplus(b * (x - hi))) / b
    from_hi = hi - (F.softplus(-b * (x - hi)) - F.softplus(-b * (x - lo))) / b
    return torch.where(x < 0.5 * (lo + hi), from_lo, from_hi)


class UNet(nn.Module):
    """2-D residual U-Net mapping contrasts + acquisition times to T1, T2, PD maps (see module docstring).

    Fully convolutional: any H, W; inputs are zero-padded (background is zero) to a multiple of
    ``config.size_multiple`` and the output is cropped back.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"UNet needs a ModelConfig; got {type(config).__name__}")
        self.config = config
        c = config
        chans = c.level_channels
        emb_dim = c.emb_dim if c.uses_film else None
        block = lambda i, o: make_block(i, o, groups=c.groups, emb_dim=emb_dim, dropout=c.dropout)  # noqa: E731

        self.embedding = ParamEmbedding(c) if c.uses_film else None
        # images (C) + presence flags (C) [+ 3C normalised times for "channels"]
        n_in = 2 * c.in_contrasts + (3 * c.in_contrasts if c.arch == "channels" else 0)
        self.stem = nn.Conv2d(n_in, chans[0], 3, padding=1)

        self.down_blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        ch = chans[0]
        for level, level_ch in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(c.blocks_per_level):
                blocks.append(block(ch, level_ch))
                ch = level_ch
            self.down_blocks.append(blocks)
            if level < len(chans) - 1:
                self.downs.append(Downsample(ch, chans[level + 1]))
                ch = chans[level + 1]
        self.mid_blocks = nn.ModuleList([block(ch, ch) for _ in range(c.mid_blocks)])

        self.ups = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for level in reversed(range(len(chans))):
            level_ch = chans[level]
            if level < len(chans) - 1:
                self.ups.append(Upsample(ch, level_ch))
                ch = level_ch
            blocks = nn.ModuleList([block(ch + level_ch, level_ch)])  # first block takes the skip concat
            blocks.extend(block(level_ch, level_ch) for _ in range(c.blocks_per_level - 1))
            self.up_blocks.append(blocks)
            ch = level_ch

        self.head_norm = nn.GroupNorm(c.groups, ch)
        self.head = nn.Conv2d(ch, 3, 1)
        with torch.no_grad():  # start at typical brain values: T1 1000 ms, T2 100 ms, PD 0.8
            self.head.bias.copy_(torch.tensor([0.0, 0.0, 0.8]))
        t1_lo, t1_hi = (math.log(v / T1_REF_MS) for v in c.t1_bounds_ms)
        t2_lo, t2_hi = (math.log(v / T2_REF_MS) for v in c.t2_bounds_ms)
        self._bounds = ((t1_lo, t1_hi), (t2_lo, t2_hi), tuple(c.pd_bounds))

    # ---------------------------------------------------------------- input handling
    def _check_inputs(
        self, images: torch.Tensor, params: torch.Tensor | None, present: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config.in_contrasts
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != c:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a (B, {c}, H, W) tensor; got {got}")
        if not images.is_floating_point():
            raise TypeError(f"images must be floating point (float32); got {images.dtype}")
        b = images.shape[0]
        if present is None:
            present = images.new_ones(b, c)
        elif not isinstance(present, torch.Tensor) or tuple(present.shape) != (b, c):
            got = tuple(present.shape) if isinstance(present, torch.Tensor) else type(present).__name__
            raise ValueError(f"present must be a (B={b}, {c}) tensor of 0/1 flags or None; got {got}")
        present = present.to(images.dtype)
        if bool(((present < 0) | (present > 1)).any()):
            raise ValueError(f"present must hold flags in [0, 1]; got values {present.unique().tolist()}")
        if params is None:
            if self.config.arch != "unet":
                raise ValueError(f"params (B, {c}, 3) [ms] are required for arch {self.config.arch!r}; got None")
            params = images.new_zeros(b, c, 3)
        elif not isinstance(params, torch.Tensor) or tuple(params.shape) != (b, c, 3):
            got = tuple(params.shape) if isinstance(params, torch.Tensor) else type(params).__name__
            raise ValueError(f"params must be a (B={b}, {c}, 3) tensor of (TR, TE, TI) [ms]; got {got}")
        params = params.to(images.dtype)
        used = present[:, :, None] > 0
        bad = (~torch.isfinite(params) | (params < 0)) & used
        if bool(bad.any()):
            raise ValueError(f"params must be finite and >= 0 ms for present contrasts; got {params[bad].tolist()[:5]}")
        return params, present

    # ---------------------------------------------------------------- forward
    def forward(
        self, images: torch.Tensor, params: torch.Tensor | None = None, present: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predict maps.

        Parameters
        ----------
        images : (B, C, H, W) float32 normalised intensities, contrasts in the order T1w, T2w, FLAIR.
        params : (B, C, 3) float32 (TR, TE, TI) [ms] of each contrast, TI = 0 without inversion. May be None
            for ``arch="unet"`` only.
        present : (B, C) float32 flags, 1 = acquired, 0 = missing (its image and times are ignored);
            None means all present.

        Returns
        -------
        (B, 3, H, W) float32 maps [T1 ms, T2 ms, PD], each inside the configured bounds (see :func:`bounded`),
            so T1, T2 > 0 and finite.
        """
        params, present = self._check_inputs(images, params, present)
        b, c, h, w = images.shape
        m = self.config.size_multiple
        ph, pw = (-h) % m, (-w) % m
        top, left = ph // 2, pw // 2
        x = images * present[:, :, None, None]  # a missing contrast's content cannot reach the network
        x = F.pad(x, (left, pw - left, top, ph - top))  # (B, C, H', W'), zeros = background
        hp, wp = x.shape[-2:]
        channels = [x, present[:, :, None, None].expand(b, c, hp, wp)]
        if self.config.arch == "channels":
            u = normalise_params(params, self.config) * present[:, :, None]  # (B, C, 3)
            channels.append(u.reshape(b, 3 * c, 1, 1).expand(b, 3 * c, hp, wp))
        x = torch.cat(channels, dim=1)
        emb = self.embedding(params, present) if self.embedding is not None else None

        h_ = self.stem(x)
        skips = []
        for level, blocks in enumerate(self.down_blocks):
            for blk in blocks:
                h_ = blk(h_, emb)
            skips.append(h_)
            if level < len(self.downs):
                h_ = self.downs[level](h_)
        for blk in self.mid_blocks:
            h_ = blk(h_, emb)
        for i, blocks in enumerate(self.up_blocks):
            if i > 0:
                h_ = self.ups[i - 1](h_)
            h_ = torch.cat([h_, skips.pop()], dim=1)
            for blk in blocks:
                h_ = blk(h_, emb)
        raw = self.head(F.silu(self.head_norm(h_)))  # (B, 3, H', W')
        raw = raw[:, :, top:top + h, left:left + w]  # crop back to (B, 3, H, W)
        beta = self.config.clamp_sharpness
        norm = torch.cat([bounded(raw[:, k:k + 1], lo, hi, beta) for k, (lo, hi) in enumerate(self._bounds)], dim=1)
        return from_normalised(norm)


def build_model(config: ModelConfig) -> UNet:
    """The network described by ``config`` (freshly initialised, training mode)."""
    if not isinstance(config, ModelConfig):
        raise TypeError(
            f"build_model needs a ModelConfig (use ModelConfig.from_dict for a dict); got {type(config).__name__}"
        )
    return UNet(config)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
