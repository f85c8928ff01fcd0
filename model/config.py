"""ModelConfig: the one frozen description of a network, validated and stored in every checkpoint.

Architectures
-------------
``pe-unet``   parameter-embedded U-Net: the 9 acquisition times (TR, TE, TI of each contrast) and the
              presence flags go through Fourier features and an MLP into one vector that modulates every
              residual block by FiLM, ``h * (1 + scale) + shift``.
``unet``      the same backbone without any acquisition parameters (the "conventional" model): no FiLM.
``channels``  the same backbone with the 9 normalised parameters broadcast as constant input channels, no FiLM.

All three see the (masked) images and the per-contrast presence flags as input channels, so each can run
with a contrast missing.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from functools import partial
from typing import Any

from relaxomap.physics.checks import (
    check_finite_range,
    check_int_range,
    check_range_pair,
    check_sequence,
    config_from_dict,
)

__all__ = ["ARCHS", "ModelConfig"]

#: Supported architectures (see the module docstring).
ARCHS: tuple[str, ...] = ("pe-unet", "unet", "channels")

_OWNER = "ModelConfig"


# Strict: a float or bool where an int belongs (and a str where a number belongs) is a TypeError.
_int = partial(check_int_range, _OWNER, strict=True)
_float = partial(check_finite_range, _OWNER, strict=True)
_bounds = partial(check_range_pair, _OWNER, distinct=True)  # (low, high) of an open interval: low < high


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and input/output conventions of one network.

    The defaults give 2.56 M parameters for ``unet`` and 2.80 M for ``pe-unet``.

    Parameters
    ----------
    arch : ``"pe-unet"``, ``"unet"`` or ``"channels"`` (see module docstring).
    in_contrasts : number of input contrasts C (3: T1w, T2w, T2-FLAIR in that order).
    base_channels : feature channels at full resolution.
    channel_mults : channels of each resolution level as multiples of ``base_channels``; the number of
        levels is ``len(channel_mults)`` and the network downsamples ``len(channel_mults) - 1`` times, so
        inputs are padded internally to a multiple of ``2 ** (len(channel_mults) - 1)``.
    blocks_per_level : residual blocks per level in the encoder and in the decoder.
    mid_blocks : residual blocks at the lowest resolution.
    groups : GroupNorm groups; must divide every level's channel count.
    emb_dim : width of the parameter embedding vector (``pe-unet``).
    n_fourier : Fourier frequencies; the embedding MLP sees ``sin`` and ``cos`` of each (``pe-unet``).
    fourier_scale : standard deviation of the Gaussian random frequencies [cycles per normalised unit].
    fourier_seed : seed of the fixed frequency matrix (stored again as a buffer in the state dict).
    tr_scale_ms, te_scale_ms, ti_scale_ms : times are normalised as ``log1p(t / scale)`` [ms]. The defaults
        (1000, 100, 1000 ms) put clinical values at O(1): TR 500–12000 ms -> 0.41–2.56, TE 10–300 ms ->
        0.10–1.39, TI 0–3000 ms -> 0–1.39, and keep the map monotonic down to t = 0.
    dropout : dropout probability inside each residual block.
    t1_bounds_ms, t2_bounds_ms : open interval the output T1 / T2 can take [ms] (a smooth clamp in log
        space, see :func:`model.unet.bounded`). Wider than the physiological ranges (T1 ~ 50–6000 ms,
        T2 ~ 5–3000 ms) so that no training target sits on the bound, and narrow enough that ``exp`` can
        never overflow in float32.
    pd_bounds : open interval of the output PD (relative, CSF = 1; physiological 0–1.2).
    clamp_sharpness : sharpness beta of the smooth clamp [1 / normalised unit]; inside the bounds by more
        than ~4/beta the clamp is the identity to better than 1e-4.
    """

    arch: str = "pe-unet"
    in_contrasts: int = 3
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 4, 4)
    blocks_per_level: int = 1
    mid_blocks: int = 1
    groups: int = 8
    emb_dim: int = 128
    n_fourier: int = 32
    fourier_scale: float = 1.0
    fourier_seed: int = 0
    tr_scale_ms: float = 1000.0
    te_scale_ms: float = 100.0
    ti_scale_ms: float = 1000.0
    dropout: float = 0.0
    t1_bounds_ms: tuple[float, float] = (5.0, 20000.0)
    t2_bounds_ms: tuple[float, float] = (0.5, 10000.0)
    pd_bounds: tuple[float, float] = (0.0, 2.0)
    clamp_sharpness: float = 4.0

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        if self.arch not in ARCHS:
            raise ValueError(f"{_OWNER}.arch must be one of {list(ARCHS)}; got {self.arch!r}")
        _int("in_contrasts", self.in_contrasts, 1, 16)
        _int("base_channels", self.base_channels, 1, 1024)
        set_("channel_mults", check_sequence(_OWNER, "channel_mults", self.channel_mults, 1, 64, length=(1, 8),
                                             integer=True, strict=True))
        _int("blocks_per_level", self.blocks_per_level, 1, 8)
        _int("mid_blocks", self.mid_blocks, 0, 8)
        _int("groups", self.groups, 1, 1024)
        for ch in self.level_channels:
            if ch % self.groups:
                raise ValueError(
                    f"{_OWNER}.groups={self.groups} must divide every level's channels {list(self.level_channels)} "
                    f"(base_channels x channel_mults); {ch} is not a multiple"
                )
        _int("emb_dim", self.emb_dim, 1, 4096)
        _int("n_fourier", self.n_fourier, 0, 1024)
        set_("fourier_scale", _float("fourier_scale", self.fourier_scale, 0.0, 1e3, lo_open=True))
        _int("fourier_seed", self.fourier_seed, 0, 2**31 - 1)
        for name in ("tr_scale_ms", "te_scale_ms", "ti_scale_ms"):
            set_(name, _float(name, getattr(self, name), 0.0, 1e6, lo_open=True))
        set_("dropout", _float("dropout", self.dropout, 0.0, 0.9))
        # float32 exp overflows at ~88; bounds of 1e-3 .. 1e6 ms are far inside that and cover any tissue.
        set_("t1_bounds_ms", _bounds("t1_bounds_ms", self.t1_bounds_ms, 1e-3, 1e6))
        set_("t2_bounds_ms", _bounds("t2_bounds_ms", self.t2_bounds_ms, 1e-3, 1e6))
        set_("pd_bounds", _bounds("pd_bounds", self.pd_bounds, 0.0, 100.0))
        set_("clamp_sharpness", _float("clamp_sharpness", self.clamp_sharpness, 0.0, 1e3, lo_open=True))

    # ---------------------------------------------------------------- derived quantities
    @property
    def level_channels(self) -> tuple[int, ...]:
        """Feature channels of each resolution level, full resolution first."""
        return tuple(self.base_channels * m for m in self.channel_mults)

    @property
    def size_multiple(self) -> int:
        """Inputs are padded internally to a multiple of this many pixels: ``2 ** (levels - 1)``."""
        return 2 ** (len(self.channel_mults) - 1)

    @property
    def uses_film(self) -> bool:
        """Whether residual blocks are modulated by the parameter embedding (``pe-unet`` only)."""
        return self.arch == "pe-unet"

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them, missing keys take defaults."""
        return config_from_dict(cls, d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        return cls.from_dict(json.loads(text))
