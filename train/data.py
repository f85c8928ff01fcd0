"""The training data of a run: which store splits are read, random crops fixed by a seed per item, the facts
about the training data kept in checkpoints, and the endless, resumable stream of batches.

Data rule (:func:`open_datasets`): without ``val_store`` the store's subject-wise ``"train"`` split is trained
on and its ``"val"`` split validates; with ``val_store`` the whole ``store`` is trained on and the whole
``val_store`` validates. The ``"test"`` split is never read here.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from relaxomap.physics.protocol import CONTRASTS
from relaxomap.synth.store.dataset import brain_patch
from relaxomap.train.config import TrainConfig
from relaxomap.train.distributed import EpochBatchSampler

__all__ = ["SeededPatches", "open_datasets", "training_facts", "to_device", "BatchStream"]

_IMAGE_KEYS = ("inputs", "targets", "mask", "labels")  # per-pixel entries of a SynthDataset item


class SeededPatches(Dataset):
    """Random ``patch`` x ``patch`` crops of a slice dataset, each drawn from the seed given with its index.

    ``dataset[(index, crop_seed)]`` reads whole slice ``index`` and crops its ``inputs``, ``targets``,
    ``mask`` and ``labels`` at the same place, by the one crop rule of training patches,
    :func:`relaxomap.synth.store.dataset.brain_patch` (the rule of ``SynthDataset(patch=...)``), but with the
    draw fixed by ``crop_seed`` instead of a per-process generator, so that crops survive a resume and do not
    depend on DataLoader workers. ``patch=None`` returns whole slices.
    """

    def __init__(self, base: Dataset, patch: int | None) -> None:
        self.base, self.patch = base, patch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, crop_seed = key
        item = self.base[index]
        if self.patch is None:
            return item
        h, w = item["inputs"].shape[-2:]
        p = self.patch
        if p > h or p > w:
            raise ValueError(f"TrainConfig.patch={p} is larger than the store's slices ({h} x {w}); "
                             f"use --patch <= {min(h, w)} or --patch 0 (whole slices)")
        mask = item["mask"].reshape(h, w).numpy() if "mask" in item else np.zeros((h, w), bool)
        rows, cols = brain_patch(mask, p, np.random.default_rng(crop_seed))
        return {k: v[..., rows, cols] if k in _IMAGE_KEYS else v for k, v in item.items()}


def open_datasets(config: TrainConfig) -> tuple[Dataset, Dataset, Any]:
    """(train slices, validation slices, store schema version) following the module docstring's rule."""
    from relaxomap.synth.store.dataset import SynthDataset

    if config.val_store is None:
        train_set = SynthDataset(config.store, split="train")
        val_set = SynthDataset(config.store, split="val")
    else:
        train_set = SynthDataset(config.store, split=None)
        val_set = SynthDataset(config.val_store, split=None)
        if val_set.attrs.get("schema_version") != train_set.attrs.get("schema_version"):
            raise ValueError(
                f"validation store {config.val_store} has schema {val_set.attrs.get('schema_version')!r} but the "
                f"training store {config.store} has {train_set.attrs.get('schema_version')!r}; "
                "make both with one relaxomap version"
            )
    schema = train_set.attrs.get("schema_version")
    return train_set, val_set, (schema.item() if hasattr(schema, "item") else schema)


def training_facts(train_set: Any) -> dict[str, Any]:
    """Plain facts about the training data kept in checkpoints for inference-time checks.

    ``param_ranges``: ``{contrast: {"tr_ms": (lo, hi), "te_ms": ..., "ti_ms": ...}}`` seen in the training
    samples [ms] (absent contrasts excluded); ``protocol_ranges``: the generator's protocol ranges;
    ``store_config``: the store's whole SynthConfig dict.
    """
    facts: dict[str, Any] = {}
    config = train_set.attrs.get("config") or {}
    contrasts = train_set.attrs.get("contrasts") or list(CONTRASTS)
    if len(train_set):
        rng = train_set.params_range()
        facts["param_ranges"] = {
            contrast: {name: (float(rng["min"][c, j]), float(rng["max"][c, j]))
                       for j, name in enumerate(("tr_ms", "te_ms", "ti_ms"))}
            for c, contrast in enumerate(contrasts) if not np.isnan(rng["min"][c]).any()
        }
    if "protocols" in config:
        facts["protocol_ranges"] = config["protocols"]
    facts["store_config"] = config
    return facts


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch with every tensor moved to ``device`` (other values as they are)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class BatchStream:
    """Endless batches; ``epoch`` / ``batch`` say where the next batch comes from (saved in checkpoints)."""

    def __init__(self, loader: DataLoader, sampler: EpochBatchSampler) -> None:
        self.loader, self.sampler = loader, sampler
        self.epoch, self.batch = sampler.epoch, sampler.start_batch
        self._it = iter(loader)

    def next(self) -> dict[str, Any]:
        if self.batch >= self.sampler.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
            self.sampler.set_position(self.epoch, 0)
            self._it = iter(self.loader)
        out = next(self._it)
        self.batch += 1
        return out
