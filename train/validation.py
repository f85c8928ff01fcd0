"""The validation loss of a training run: masked L1 between predicted and true maps in the model's normalised
space (:func:`model.unet.to_normalised`: ln(T1/1000 ms), ln(T2/100 ms), PD), averaged over brain-mask voxels
and the 3 maps. 0.01 is a 1 % relaxation-time error.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from relaxomap.model.unet import to_normalised
from relaxomap.train.data import to_device
from relaxomap.train.guard import nonfinite_loss

__all__ = ["masked_l1_normalised", "validate"]


@torch.no_grad()
def masked_l1_normalised(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(sum, count) of |to_normalised(pred) − to_normalised(target)| over mask voxels x 3 maps.

    pred, target : (B, 3, H, W) [T1 ms, T2 ms, PD]; mask : (B, 1, H, W) or (B, H, W), nonzero = brain.
    """
    m = mask.reshape(pred.shape[0], 1, *pred.shape[-2:]).to(pred.dtype)
    err = (to_normalised(pred.float()) - to_normalised(target.float())).abs() * m
    return float(err.sum()), float(m.sum()) * pred.shape[1]


@torch.no_grad()
def validate(model: nn.Module, loader: DataLoader | None, device: torch.device, *, step: int = 0,
             store: Any = "the validation store") -> float | None:
    """The validation loss (module docstring) of ``model`` over ``loader``; None without data or brain voxels.

    Raises
    ------
    relaxomap.train.guard.NonFiniteLossError : a batch's loss is NaN or infinite; the message names ``step``
        (0-based: the step just taken), the ``store`` and the samples holding non-finite values.
    """
    if loader is None:
        return None
    model.eval()
    total, count = 0.0, 0.0
    for batch in loader:
        batch = to_device(batch, device)
        pred = model(batch["inputs"], batch["params"], batch["present"])
        s, c = masked_l1_normalised(pred, batch["targets"], batch["mask"])
        if not math.isfinite(s):
            raise nonfinite_loss("validation loss", s, step, batch, store)
        total, count = total + s, count + c
    return total / count if count else None
