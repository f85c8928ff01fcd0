"""Training losses: masked L1 and SSIM on normalised maps, and the physics-consistency term.

All map losses work in the model's normalised space (:func:`model.unet.to_normalised`:
``[ln(T1/1000 ms), ln(T2/100 ms), PD]``), where L1 is a relative error for T1 and T2 and an absolute one for
PD, and only brain-mask voxels count.

Physics consistency
-------------------
The predicted maps are rendered through the differentiable closed-form signal model
(:func:`physics.signal.signal_packed_torch`) at each sample's own protocols, ``s_c`` for contrast c. The
inputs are normalised magnitudes ``x_c`` of unknown scale (receiver gain, the P99 normalisation), so each
contrast's gain is fitted in closed form by least squares inside the mask M,

    g_c = <s_c, x_c>_M / <s_c, s_c>_M,

and the loss is the L1 residual relative to the input's masked mean,

    L_c = mean_M |g_c s_c − x_c| / mean_M |x_c|,

averaged over the present contrasts of every sample (absent contrasts are skipped). The gradient flows
through g_c on purpose: g_c s_c is then invariant to any rescaling of s_c, so the loss depends only on the
*shape* of each rendered image and gives exactly zero gradient along the unidentifiable direction (a global
PD scale, which the unknown gain absorbs). With g_c detached, the L1 residual, whose minimiser is not the
least-squares gain, would push the PD scale around. (For an L2 residual the two coincide at the
least-squares gain by the envelope theorem; for L1 they do not.) The model assumes inputs are the rendered
images times one positive factor per contrast: an intensity offset or a bias field is not absorbed.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from relaxomap.model.unet import to_normalised
from relaxomap.physics.checks import check_finite_range, check_sequence, config_from_dict
from relaxomap.physics.protocol import PACK_COLUMNS, PRESETS
from relaxomap.physics.signal import signal_packed_torch
from relaxomap.train.ssim import ssim_map

__all__ = [
    "SSIM_DATA_RANGE",
    "LossConfig",
    "masked_l1",
    "masked_ssim_loss",
    "physics_consistency_loss",
    "total_loss",
]

#: Dynamic range L of each normalised map for the SSIM constants C1 = (0.01 L)^2, C2 = (0.03 L)^2:
#: ln(6000/50) for T1, ln(3000/5) for T2 (the physiological ranges in normalised units) and 1.2 for PD.
SSIM_DATA_RANGE: tuple[float, float, float] = (math.log(6000.0 / 50.0), math.log(3000.0 / 5.0), 1.2)
_EPS = 1e-12
# A valid protocol row put in place of an absent contrast's row, so its (discarded) rendering stays finite.
_STAND_IN_ROW = PRESETS["t2w_se_3t"].pack()


def _check_4d(name: str, x: Any, channels: int | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(x).__name__}")
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(B, {channels}, H, W)" if channels is not None else "(B, C, H, W)"
        raise ValueError(f"{name} must have shape {want}; got {tuple(x.shape)}")


def _mask_bool(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) bool/0-1 mask -> bool (B, 1, H, W), checked against ``like`` (B, C, H, W)."""
    _check_4d("mask", mask, 1)
    if mask.shape[0] != like.shape[0] or mask.shape[2:] != like.shape[2:]:
        raise ValueError(f"mask shape {tuple(mask.shape)} must be (B, 1, H, W) for maps {tuple(like.shape)}")
    return mask > 0 if mask.dtype != torch.bool else mask


# ----------------------------------------------------------------------------- map losses
def masked_l1(pred_maps: torch.Tensor, target_maps: torch.Tensor, mask: torch.Tensor,
              weights: Sequence[float] | torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error of the normalised maps over the mask, weighted across the three maps.

    Parameters
    ----------
    pred_maps, target_maps : (B, 3, H, W) float [T1 ms, T2 ms, PD] (physical units; normalised here).
    mask : (B, 1, H, W) bool or 0/1 float; voxels outside contribute nothing, not even NaN.
    weights : (3,) non-negative weights of the T1, T2, PD terms, or None for equal weights.

    Returns
    -------
    0-dim tensor: ``sum_c w_c mean_M |n_c(pred) − n_c(target)| / sum_c w_c``; 0 for an empty mask.
    """
    _check_4d("pred_maps", pred_maps, 3)
    if target_maps.shape != pred_maps.shape:
        raise ValueError(f"target_maps shape {tuple(target_maps.shape)} must equal pred_maps {tuple(pred_maps.shape)}")
    m = _mask_bool(mask, pred_maps).expand_as(pred_maps)
    diff = (to_normalised(pred_maps) - to_normalised(target_maps)).abs()
    per_map = torch.where(m, diff, 0.0).sum(dim=(0, 2, 3)) / m.sum(dim=(0, 2, 3)).clamp_min(1)  # (3,)
    w = _map_weights(weights, pred_maps)
    return (w * per_map).sum() / w.sum()


def _map_weights(weights: Sequence[float] | torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    if weights is None:
        return like.new_ones(3)
    w = torch.as_tensor(weights, dtype=like.dtype, device=like.device).reshape(-1)
    if w.numel() != 3 or not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError(f"weights must be 3 finite non-negative numbers (T1, T2, PD), not all 0; got {w.tolist()}")
    return w


def masked_ssim_loss(pred_maps: torch.Tensor, target_maps: torch.Tensor, mask: torch.Tensor,
                     weights: Sequence[float] | torch.Tensor | None = None) -> torch.Tensor:
    """``1 − SSIM`` of the normalised maps, averaged over mask voxels and (weighted) over the three maps.

    Outside the mask both maps are set to 0 (T1 1000 ms, T2 100 ms, PD 0) before filtering, so predictions
    there have no influence and windows at the brain edge compare like with like.

    Parameters
    ----------
    pred_maps, target_maps : (B, 3, H, W) float [T1 ms, T2 ms, PD]; H, W >= 6.
    mask : (B, 1, H, W) bool or 0/1 float.
    weights : (3,) weights of the T1, T2, PD terms or None.

    Returns
    -------
    0-dim tensor in [0, 2]; 0 when the maps agree inside the mask (and for an empty mask).
    """
    _check_4d("pred_maps", pred_maps, 3)
    if target_maps.shape != pred_maps.shape:
        raise ValueError(f"target_maps shape {tuple(target_maps.shape)} must equal pred_maps {tuple(pred_maps.shape)}")
    m = _mask_bool(mask, pred_maps).expand_as(pred_maps)
    a = torch.where(m, to_normalised(pred_maps), 0.0)
    b = torch.where(m, to_normalised(target_maps), 0.0)
    dissim = torch.where(m, 1.0 - ssim_map(a, b, SSIM_DATA_RANGE), 0.0)
    per_map = dissim.sum(dim=(0, 2, 3)) / m.sum(dim=(0, 2, 3)).clamp_min(1)  # (3,)
    w = _map_weights(weights, pred_maps)
    return (w * per_map).sum() / w.sum()


# ----------------------------------------------------------------------------- physics consistency
def physics_consistency_loss(pred_maps: torch.Tensor, inputs: torch.Tensor, protocols_packed: torch.Tensor,
                             mask: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
    """Scale-free L1 mismatch between the re-rendered prediction and the inputs (module docstring).

    Parameters
    ----------
    pred_maps : (B, 3, H, W) float [T1 ms, T2 ms, PD], e.g. the model output.
    inputs : (B, C, H, W) float normalised magnitude images (any positive scale per contrast).
    protocols_packed : (B, C, len(PACK_COLUMNS)) rows of :func:`physics.protocol.pack_protocols`, one per
        contrast of each sample; rows of absent contrasts are ignored (they may hold anything).
    mask : (B, 1, H, W) bool or 0/1 float; the gain fit and the residual use only these voxels.
    present : (B, C) 0/1 flags, None = all present.

    Returns
    -------
    0-dim tensor: mean of ``L_c`` over present contrasts with a non-empty mask and non-zero input there;
    0 if there are none.
    """
    _check_4d("pred_maps", pred_maps, 3)
    _check_4d("inputs", inputs)
    b, c = inputs.shape[:2]
    if inputs.shape[0] != pred_maps.shape[0] or inputs.shape[2:] != pred_maps.shape[2:]:
        raise ValueError(f"inputs shape {tuple(inputs.shape)} must match pred_maps {tuple(pred_maps.shape)} in B, H, W")
    ncol = len(PACK_COLUMNS)
    if not isinstance(protocols_packed, torch.Tensor) or tuple(protocols_packed.shape) != (b, c, ncol):
        got = tuple(protocols_packed.shape) if isinstance(protocols_packed, torch.Tensor) else type(protocols_packed)
        raise ValueError(f"protocols_packed must be a (B={b}, C={c}, {ncol}) tensor of pack_protocols rows; got {got}")
    m = _mask_bool(mask, inputs)  # (B, 1, H, W)
    if present is None:
        present = inputs.new_ones(b, c)
    elif tuple(present.shape) != (b, c):
        raise ValueError(f"present must have shape (B={b}, C={c}); got {tuple(present.shape)}")
    used = present > 0  # (B, C)

    rows = protocols_packed.detach().to(torch.float64)
    stand_in = torch.as_tensor(_STAND_IN_ROW, dtype=rows.dtype, device=rows.device)
    rows = torch.where(used[:, :, None].to(rows.device), rows, stand_in)
    s = signal_packed_torch(pred_maps[:, 0], pred_maps[:, 1], pred_maps[:, 2], rows)  # (B, C, H, W)
    x = inputs.to(s.dtype)
    mf = m.to(s.dtype)  # (B, 1, H, W)
    n = mf.sum(dim=(2, 3))  # (B, 1) voxels in the mask
    ss = (mf * s * s).sum(dim=(2, 3))  # (B, C)
    sx = (mf * s * x).sum(dim=(2, 3))
    gain = sx / ss.clamp_min(_EPS)  # least-squares gain, kept in the graph (module docstring)
    resid = torch.where(m, (gain[:, :, None, None] * s - x).abs(), 0.0).sum(dim=(2, 3)) / n.clamp_min(1)
    level = torch.where(m, x.abs(), 0.0).sum(dim=(2, 3)) / n.clamp_min(1)  # (B, C) masked mean |x|
    valid = used & (n > 0) & (level > _EPS) & (ss > _EPS)
    per = torch.where(valid, resid / level.clamp_min(_EPS), 0.0)
    return per.sum() / valid.sum().clamp_min(1)


# ----------------------------------------------------------------------------- combined loss
@dataclass(frozen=True)
class LossConfig:
    """Weights of the training loss ``l1·L1 + ssim·(1 − SSIM) + physics·L_phys``.

    Parameters
    ----------
    l1 : weight of :func:`masked_l1` (the supervised term).
    ssim : weight of :func:`masked_ssim_loss` (0 disables it and skips its cost).
    physics : weight of :func:`physics_consistency_loss` (0 disables it); :mod:`train.schedule` ramps it in.
    map_weights : (T1, T2, PD) weights inside the L1 and SSIM terms.
    """

    l1: float = 1.0
    ssim: float = 0.0
    physics: float = 0.1
    map_weights: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __post_init__(self) -> None:
        for name in ("l1", "ssim", "physics"):
            object.__setattr__(self, name, check_finite_range("LossConfig", name, getattr(self, name), 0.0, math.inf,
                                                              strict=True))
        mw = check_sequence("LossConfig", "map_weights", self.map_weights, 0.0, math.inf, length=3)
        if sum(mw) <= 0:
            raise ValueError(f"LossConfig.map_weights must be 3 finite weights >= 0, not all 0; got {mw}")
        object.__setattr__(self, "map_weights", mw)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "LossConfig":
        return config_from_dict(cls, dict(d) if isinstance(d, Mapping) else d)


_BATCH_KEYS = ("inputs", "targets", "params", "protocols", "present", "mask")


def total_loss(pred: torch.Tensor, batch: Mapping[str, torch.Tensor],
               config: LossConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The training loss of one batch and its parts.

    Parameters
    ----------
    pred : (B, 3, H, W) predicted maps [T1 ms, T2 ms, PD].
    batch : the dataset's dict: ``inputs`` (B, 3, H, W), ``targets`` (B, 3, H, W), ``params`` (B, 3, 3) [ms],
        ``protocols`` (B, 3, 10), ``present`` (B, 3), ``mask`` (B, 1, H, W).
    config : the weights (for step-dependent weights see :func:`train.schedule.loss_config_at`).

    Returns
    -------
    loss : 0-dim tensor to back-propagate.
    parts : detached 0-dim tensors ``l1``, ``ssim`` and ``physics`` (unweighted; a term with weight 0 is
        not computed and not listed) and ``total`` (the weighted sum).
    """
    if not isinstance(config, LossConfig):
        raise TypeError(f"total_loss needs a LossConfig; got {type(config).__name__}")
    missing = [k for k in ("targets", "mask") + (("inputs", "protocols", "present") if config.physics else ())
               if k not in batch]
    if missing:
        raise ValueError(f"batch is missing key(s) {missing}; a batch holds {list(_BATCH_KEYS)}")
    mask, target = batch["mask"], batch["targets"]
    parts: dict[str, torch.Tensor] = {}
    total = pred.new_zeros(())
    if config.l1 > 0:
        parts["l1"] = masked_l1(pred, target, mask, config.map_weights)
        total = total + config.l1 * parts["l1"]
    if config.ssim > 0:
        parts["ssim"] = masked_ssim_loss(pred, target, mask, config.map_weights)
        total = total + config.ssim * parts["ssim"]
    if config.physics > 0:
        parts["physics"] = physics_consistency_loss(pred, batch["inputs"], batch["protocols"], mask,
                                                    batch["present"])
        total = total + config.physics * parts["physics"]
    parts = {k: v.detach() for k, v in parts.items()}
    parts["total"] = total.detach()
    return total, parts
