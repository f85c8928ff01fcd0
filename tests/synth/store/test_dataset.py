"""SynthDataset: subject-disjoint splits, item layout, patches, flips, multi-worker DataLoader."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch.utils.data import DataLoader

from relaxomap.synth.generate import SynthConfig
from relaxomap.synth.phantom.config import PhantomConfig
from relaxomap.synth.sources import SourceConfig
from relaxomap.synth.store.dataset import SPLITS, SynthDataset, brain_patch, split_key, split_of
from relaxomap.synth.store.format import check_store
from relaxomap.synth.store.writer import write_store

SIZE = 48
N = 40  # 20 subjects of 2 slices


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "ds.h5"
    # coarse procedural heads (3.5 mm grid), fast to draw
    source = SourceConfig(phantom=PhantomConfig(shape=(64, 72, 8), voxel_mm=(3.5, 3.5, 3.5)), field_t=1.5)
    cfg = SynthConfig(source=source, image_size=(SIZE, SIZE), slices_per_subject=2, seed=3)
    write_store(cfg, out, N)
    return out


def test_split_key_and_hash() -> None:
    assert split_key("colin27/aug5") == "colin27"
    assert split_key("phantom-17") == "phantom-17"
    # augmented copies of one anatomy share the split
    assert split_of("colin27/aug5") == split_of("colin27/aug6") == split_of("colin27")
    # the hash spreads keys over splits at the requested fractions: 4000 keys, 5 binomial standard deviations
    splits = [split_of(f"subject-{i}") for i in range(4000)]
    for name, p in zip(SPLITS, (0.8, 0.1, 0.1)):
        assert abs(splits.count(name) - 4000 * p) < 5 * np.sqrt(4000 * p * (1 - p)), name
    # another seed reshuffles
    assert [split_of(f"subject-{i}", seed=1) for i in range(50)] != splits[:50]


def test_splits_disjoint_by_subject_and_complete(store: Path) -> None:
    parts = {s: SynthDataset(store, split=s) for s in SPLITS}
    everything = SynthDataset(store)
    assert len(everything) == N
    keys = {s: {split_key(everything.subject_ids[i]) for i in ds.indices} for s, ds in parts.items()}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
    assert sorted(np.concatenate([ds.indices for ds in parts.values()]).tolist()) == list(range(N))
    assert len(parts["train"]) > len(parts["val"])
    # the same subject falls in the same split whatever the store: recompute from the hash
    for i in parts["val"].indices:
        assert split_of(everything.subject_ids[i]) == "val"


def test_item_layout_matches_store(store: Path) -> None:
    ds = SynthDataset(store)
    item = ds[5]
    shapes = {"inputs": (3, SIZE, SIZE), "targets": (3, SIZE, SIZE), "params": (3, 3), "protocols": (3, 10),
              "present": (3,), "mask": (1, SIZE, SIZE), "labels": (SIZE, SIZE), "index": ()}
    dtypes = {"labels": torch.int64, "index": torch.int64}
    for k, shape in shapes.items():
        assert tuple(item[k].shape) == shape, k
        assert item[k].dtype == dtypes.get(k, torch.float32), k
    with check_store(store) as f:
        assert np.array_equal(item["inputs"].numpy(), f["inputs"][5])
        assert np.array_equal(item["targets"].numpy(), f["targets"][5])
        assert np.array_equal(item["mask"].numpy()[0], f["mask"][5].astype(np.float32))
        assert np.array_equal(item["labels"].numpy(), f["labels"][5])
        assert_allclose(item["protocols"].numpy(), f["protocols"][5], rtol=1e-7)  # float64 -> float32
        assert_allclose(item["params"].numpy(), f["params"][5], rtol=0)
    assert int(item["index"]) == 5
    assert ds.config["image_size"] == [SIZE, SIZE]
    assert ds.attrs["schema_version"] == 1 and ds.attrs["contrasts"] == ["t1w", "t2w", "flair"]
    r = ds.params_range()
    assert r["min"].shape == (3, 3) and np.all(r["min"] <= r["max"])
    assert r["min"][1, 0] >= 2500 and r["max"][2, 0] <= 11000  # T2w TR and FLAIR TR inside the default ranges


def test_patches_inside_brain_and_flips(store: Path) -> None:
    torch.manual_seed(0)
    ds = SynthDataset(store, patch=16)
    whole = SynthDataset(store)
    for i in range(len(ds)):
        item = ds[i]
        assert tuple(item["inputs"].shape) == (3, 16, 16) and tuple(item["mask"].shape) == (1, 16, 16)
        assert tuple(item["labels"].shape) == (16, 16)
        if whole[i]["mask"].any():
            assert item["mask"].any()  # centred on a brain voxel
    torch.manual_seed(0)
    flipped = SynthDataset(store, augment=True)
    n_flipped = 0
    for i in range(10):
        a, b = flipped[i], whole[i]
        if torch.equal(a["inputs"], b["inputs"]):
            continue
        n_flipped += 1
        for k in ("inputs", "targets", "mask", "labels"):  # flipped together
            assert torch.equal(a[k], b[k].flip(-1)), k
    assert 0 < n_flipped < 10
    with pytest.raises(ValueError, match="patch"):
        SynthDataset(store, patch=SIZE + 1)
    with pytest.raises(ValueError, match="split"):
        SynthDataset(store, split="training")
    with pytest.raises(ValueError, match="split_fractions"):
        SynthDataset(store, split_fractions=(0.5, 0.5, 0.5))


def test_brain_patch_centres_on_brain_and_stays_inside() -> None:
    mask = np.zeros((40, 50), bool)
    mask[20, 30] = True  # one brain voxel: the patch is centred on it
    ys, xs = brain_patch(mask, 8, np.random.default_rng(0))
    assert (ys, xs) == (slice(16, 24), slice(26, 34))
    mask[:] = False
    mask[1, 48] = True  # at the corner: clamped into the image
    assert brain_patch(mask, 8, np.random.default_rng(0)) == (slice(0, 8), slice(42, 50))
    mask[:] = False  # no brain: anywhere, the same two draws as rng.integers(h - p + 1), rng.integers(w - p + 1)
    ref = np.random.default_rng(5)
    want = (int(ref.integers(33)), int(ref.integers(43)))
    ys, xs = brain_patch(mask, 8, np.random.default_rng(5))
    assert (ys.start, xs.start) == want and ys.stop - ys.start == xs.stop - xs.start == 8


def test_no_open_handle_is_pickled(store: Path) -> None:
    ds = SynthDataset(store)
    ds[0]  # opens the file
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._h5 is None
    assert torch.equal(clone[0]["inputs"], ds[0]["inputs"])


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_with_two_workers(store: Path, context: str) -> None:
    ds = SynthDataset(store, split="train", patch=16)
    loader = DataLoader(ds, batch_size=4, num_workers=2, multiprocessing_context=context, shuffle=False)
    seen = []
    for batch in loader:
        assert tuple(batch["inputs"].shape[1:]) == (3, 16, 16)
        seen += batch["index"].tolist()
    assert sorted(seen) == sorted(ds.indices.tolist())


def test_missing_store_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        SynthDataset(tmp_path / "none.h5")
