"""The validation loss: the masked L1 of the normalised maps pooled over every brain voxel of every batch."""
from __future__ import annotations

import math

import torch
from numpy.testing import assert_allclose

from relaxomap.train.validation import validate


class _Constant(torch.nn.Module):
    """Predicts T1 = 1000 ms, T2 = 100 ms, PD = 0.5 everywhere (0, 0, 0.5 in normalised units)."""

    def forward(self, inputs: torch.Tensor, params: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        b, _, h, w = inputs.shape
        return torch.tensor([1000.0, 100.0, 0.5]).reshape(1, 3, 1, 1).expand(b, 3, h, w)


def _batch(t1: float, n_mask: int) -> dict[str, torch.Tensor]:
    targets = torch.tensor([t1, 100.0, 0.5]).reshape(1, 3, 1, 1).expand(1, 3, 4, 4).clone()
    mask = torch.zeros(1, 1, 4, 4)
    mask.view(-1)[:n_mask] = 1.0
    return {"inputs": torch.zeros(1, 3, 4, 4), "params": torch.zeros(1, 3, 3), "present": torch.ones(1, 3),
            "targets": targets, "mask": mask}


def test_validation_pools_voxels_over_batches() -> None:
    """Batch 1: 4 brain voxels with T1 error ln(2000/1000); batch 2: 12 voxels without error. Pooled over
    16 voxels x 3 maps: 4 ln 2 / 48 (float32 maps: 1e-6 relative)."""
    loss = validate(_Constant(), [_batch(2000.0, 4), _batch(1000.0, 12)], torch.device("cpu"))
    assert_allclose(loss, 4 * math.log(2.0) / 48, rtol=1e-6)


def test_no_loader_or_no_brain_voxel_gives_none() -> None:
    assert validate(_Constant(), None, torch.device("cpu")) is None
    assert validate(_Constant(), [_batch(2000.0, 0)], torch.device("cpu")) is None
