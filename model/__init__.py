"""relaxomap.model — the parameter-embedded U-Net and its baselines. Imports only ``physics`` and ``synth``."""
from __future__ import annotations

from relaxomap.model.blocks import Downsample, ResBlock, Upsample, make_block
from relaxomap.model.config import ARCHS, ModelConfig
from relaxomap.model.embedding import ParamEmbedding, masked_param_features, normalise_params
from relaxomap.model.unet import (
    MAP_FLOOR_MS,
    T1_REF_MS,
    T2_REF_MS,
    UNet,
    bounded,
    build_model,
    count_parameters,
    from_normalised,
    to_normalised,
)

__all__ = [
    "ARCHS",
    "ModelConfig",
    "build_model",
    "count_parameters",
    "UNet",
    "to_normalised",
    "from_normalised",
    "bounded",
    "T1_REF_MS",
    "T2_REF_MS",
    "MAP_FLOOR_MS",
    "ParamEmbedding",
    "normalise_params",
    "masked_param_features",
    "ResBlock",
    "Downsample",
    "Upsample",
    "make_block",
]
