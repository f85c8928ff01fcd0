"""A run's training data: which splits are read, seeded patches (the one crop rule), the facts kept in checkpoints,
the endless batch stream."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from relaxomap.train.config import TrainConfig
from relaxomap.train.data import BatchStream, SeededPatches, open_datasets, to_device, training_facts
from relaxomap.train.distributed import EpochBatchSampler


def test_without_val_store_the_subject_splits_are_used(train_store: Path) -> None:
    train_set, val_set, schema = open_datasets(TrainConfig(store=str(train_store)))
    assert (len(train_set), len(val_set)) == (40, 4)  # the fixture's subject-wise split (test: 4, never read)
    assert isinstance(schema, int)


def test_with_val_store_both_stores_are_read_whole(train_store: Path) -> None:
    train_set, val_set, _ = open_datasets(TrainConfig(store=str(train_store), val_store=str(train_store)))
    assert (len(train_set), len(val_set)) == (48, 48)


def test_training_facts_hold_the_parameter_ranges_and_the_recipe(train_store: Path) -> None:
    train_set, _, _ = open_datasets(TrainConfig(store=str(train_store)))
    facts = training_facts(train_set)
    assert set(facts) == {"param_ranges", "protocol_ranges", "store_config"}
    assert set(facts["param_ranges"]) <= {"t1w", "t2w", "flair"} and "t1w" in facts["param_ranges"]
    lo, hi = facts["param_ranges"]["t1w"]["tr_ms"]
    assert 0 < lo <= hi
    assert facts["protocol_ranges"] == facts["store_config"]["protocols"]


class _Indices(torch.utils.data.Dataset):
    """Item ``(index, crop_seed)`` -> ``index``."""

    def __len__(self) -> int:
        return 5

    def __getitem__(self, key: tuple[int, int]) -> int:
        return key[0]


def test_batch_stream_continues_into_the_next_epoch() -> None:
    sampler = EpochBatchSampler(n_items=5, batch_size=2, seed=3)  # 2 batches per epoch (drop-last)
    loader = DataLoader(_Indices(), batch_sampler=sampler, collate_fn=list)
    stream = BatchStream(loader, sampler)
    got = []
    for _ in range(5):
        items = stream.next()
        got.append((stream.epoch, stream.batch, items))  # the position after the batch (saved in checkpoints)
    assert [(e, b) for e, b, _ in got] == [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1)]
    order = {e: [i for i, _ in sampler.epoch_items(e)] for e in (0, 1, 2)}
    assert [items for _, _, items in got] == [order[0][:2], order[0][2:4], order[1][:2], order[1][2:4], order[2][:2]]


def test_to_device_moves_tensors_only() -> None:
    batch = to_device({"x": torch.ones(2), "name": "a"}, torch.device("cpu"))
    assert batch["name"] == "a" and batch["x"].device.type == "cpu"
    with pytest.raises(RuntimeError, match="meta"):
        to_device({"x": torch.ones(1)}, torch.device("meta"))["x"].item()

def test_seeded_patches_are_reproducible_and_aligned() -> None:
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(1, 40, 50)
    mask[0, 10:30, 20:45] = 1
    item = {"inputs": torch.rand(3, 40, 50, generator=g), "targets": torch.rand(3, 40, 50, generator=g),
            "mask": mask, "labels": torch.arange(2000).reshape(40, 50), "params": torch.rand(3, 3, generator=g)}
    ds = SeededPatches([item], patch=16)
    a, b, c = ds[(0, 123)], ds[(0, 123)], ds[(0, 124)]
    torch.testing.assert_close(a["inputs"], b["inputs"], rtol=0, atol=0)
    assert a["inputs"].shape == (3, 16, 16) and a["labels"].shape == (16, 16)
    # labels hold the flat pixel index, so they locate the crop; every image key is cut at the same place
    top, left = divmod(int(a["labels"][0, 0]), 50)
    torch.testing.assert_close(a["targets"], item["targets"][:, top:top + 16, left:left + 16], rtol=0, atol=0)
    torch.testing.assert_close(a["mask"], mask[:, top:top + 16, left:left + 16], rtol=0, atol=0)
    # the rule: centre on a uniformly drawn brain voxel (row-major order), shift the window inside the slice
    inside = np.argwhere(mask[0].numpy() > 0)
    cy, cx = inside[int(np.random.default_rng(123).integers(len(inside)))]
    assert (top, left) == (min(max(cy - 8, 0), 40 - 16), min(max(cx - 8, 0), 50 - 16))
    torch.testing.assert_close(a["params"], item["params"], rtol=0, atol=0)  # non-image entries untouched
    crops = {int(ds[(0, s)]["labels"][0, 0]) for s in range(20)}
    assert len(crops) > 1 and c["inputs"].shape == (3, 16, 16)
