"""Settings shared by the augmentation tests."""
from __future__ import annotations

#: AugmentConfig settings of a warp that moves nothing: no rotation, scale, shift or deformation
IDENTITY = dict(rotate_deg=(0.0, 0.0, 0.0), scale=(1.0, 1.0), aspect_sd=0.0, shift_mm=0.0, elastic_mm=0.0)
