"""torch Dataset over a synth store: subject-disjoint splits, lazy per-worker file handles, brain patches.

Splits
------
The split key of a sample is its ``subject_id`` up to the first ``/`` (``"colin27/aug5"`` -> ``"colin27"``), so
augmented copies of one anatomy stay together. Each key is hashed (SHA-256 of ``"{seed}:{key}"``) to a number
u in [0, 1) and falls in ``train`` if u < f_train, ``val`` if u < f_train + f_val, else ``test``. The same
subject therefore lands in the same split in every store and every run, and never in two splits; with few
subjects the split sizes only approximate the fractions.

Worker safety
-------------
The HDF5 file is opened on first access in each process (and re-opened after a fork); no open handle is
pickled, so ``DataLoader(num_workers=k)`` works with any start method. Small per-sample fields (params,
protocols, ...) are read once at construction.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from relaxomap.synth.store.format import check_store

__all__ = ["SynthDataset", "split_of", "split_key", "brain_patch", "SPLITS"]

SPLITS = ("train", "val", "test")


def split_key(subject_id: str) -> str:
    """The part of ``subject_id`` before the first ``/``."""
    return str(subject_id).split("/", 1)[0]


def split_of(subject_id: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for a subject (deterministic hash of its split key)."""
    digest = hashlib.sha256(f"{int(seed)}:{split_key(subject_id)}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "val"
    return "test"


def brain_patch(mask: np.ndarray, p: int, rng: np.random.Generator) -> tuple[slice, slice]:
    """The (rows, columns) slices of a random ``p`` x ``p`` training patch of an (H, W) image.

    The patch is centred on a brain voxel drawn uniformly from ``mask`` (one ``rng.integers`` draw), its top-left
    corner ``(cy - p // 2, cx - p // 2)`` clamped so that the patch lies inside the image; a slice without brain
    gets a uniformly placed patch (two draws: row, then column). ``1 <= p <= min(H, W)``.
    """
    h, w = mask.shape
    brain = np.flatnonzero(mask.ravel())
    if brain.size:
        cy, cx = divmod(int(brain[rng.integers(brain.size)]), w)
        y0 = min(max(cy - p // 2, 0), h - p)
        x0 = min(max(cx - p // 2, 0), w - p)
    else:
        y0, x0 = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
    return slice(y0, y0 + p), slice(x0, x0 + p)


class SynthDataset(Dataset):
    """Samples of a store as dicts of tensors.

    Parameters
    ----------
    path : the store (``relaxomap synth --out``).
    split : ``None`` (all samples) or ``"train"``, ``"val"``, ``"test"`` (by subject, see module docstring).
    patch : ``None`` (whole H × W images) or a side length p: random p × p patches, centred on a random
        brain voxel (clamped to the image), or anywhere if the slice has no brain.
    split_fractions : (train, val, test) fractions, summing to 1.
    seed : seed of the split hash.
    augment : random left-right flips (p = 0.5).

    ``__getitem__`` returns ``inputs`` (3, h, w) float32, ``targets`` (3, h, w) float32 [T1 ms, T2 ms, PD],
    ``params`` (3, 3) float32 [TR, TE, TI ms], ``protocols`` (3, 10) float32 (pack_protocols rows),
    ``present`` (3,) float32, ``mask`` (1, h, w) float32, ``labels`` (h, w) int64, ``index`` () int64 (row
    in the store). Random patches and flips draw from a generator seeded by ``torch.initial_seed()`` of the
    process, so they follow ``torch.manual_seed`` and differ between DataLoader workers.
    """

    def __init__(self, path: str | os.PathLike, split: str | None = None, patch: int | None = None,
                 split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0,
                 augment: bool = False) -> None:
        self.path = Path(path)
        if split is not None and split not in SPLITS:
            raise ValueError(f"SynthDataset.split must be None or one of {list(SPLITS)}; got {split!r}")
        fr = tuple(float(x) for x in split_fractions)
        if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1.0) > 1e-6:
            raise ValueError(f"SynthDataset.split_fractions must be 3 non-negative numbers summing to 1; "
                             f"got {split_fractions!r}")
        with check_store(self.path) as f:
            self._attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            self.image_size = tuple(f["inputs"].shape[2:])
            subject_ids = np.array([s.decode() if isinstance(s, bytes) else s for s in f["subject_id"][...]],
                                   dtype=object)
            self._small = {name: f[name][...] for name in ("params", "protocols", "present")}
        if patch is not None:
            if isinstance(patch, bool) or not float(patch).is_integer() or not 1 <= int(patch) <= min(self.image_size):
                raise ValueError(f"SynthDataset.patch must be None or an integer in [1, {min(self.image_size)}] "
                                 f"(the image size {self.image_size}); got {patch!r}")
            patch = int(patch)
        self.patch = patch
        self.split = split
        self.augment = bool(augment)
        self.split_fractions = fr
        self.seed = int(seed)
        keys = {split_key(s) for s in subject_ids}
        split_by_key = {k: split_of(k, fr, self.seed) for k in keys}
        self.sample_splits = np.array([split_by_key[split_key(s)] for s in subject_ids], dtype=object)
        if split is None:
            self.indices = np.arange(len(subject_ids), dtype=np.int64)
        else:
            self.indices = np.flatnonzero(self.sample_splits == split).astype(np.int64)
        self.subject_ids = subject_ids
        self._h5: Any = None  # synth.store.format.ImageReader of this process
        self._pid = -1
        self._rng: np.random.Generator | None = None

    # ---------------------------------------------------------------- store metadata
    @property
    def attrs(self) -> dict[str, Any]:
        """The store's file attributes; ``config``, ``units`` etc. parsed from JSON."""
        out = dict(self._attrs)
        for k in ("config", "units", "contrasts", "protocol_columns"):
            if isinstance(out.get(k), str):
                out[k] = json.loads(out[k])
        return out

    @property
    def config(self) -> dict[str, Any]:
        """The generator configuration (SynthConfig as a dict) the store was written with."""
        return self.attrs["config"]

    def params_range(self) -> dict[str, np.ndarray]:
        """Min and max of TR, TE, TI [ms] per contrast over this split's samples (absent contrasts excluded):
        ``{"min": (3, 3), "max": (3, 3)}`` float32."""
        p = self._small["params"][self.indices]
        present = self._small["present"][self.indices].astype(bool)
        lo = np.full((3, 3), np.nan, np.float32)
        hi = np.full((3, 3), np.nan, np.float32)
        for c in range(3):
            if present[:, c].any():
                lo[c] = p[present[:, c], c].min(0)
                hi[c] = p[present[:, c], c].max(0)
        return {"min": lo, "max": hi}

    # ---------------------------------------------------------------- torch Dataset protocol
    def __len__(self) -> int:
        return int(self.indices.size)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"] = None  # never pickle an open file
        state["_pid"] = -1
        state["_rng"] = None
        return state

    def _file(self) -> Any:  # the ImageReader, opened once per process
        if self._h5 is None or self._pid != os.getpid():
            from relaxomap.synth.store.format import ImageReader

            self._h5 = ImageReader(self.path)  # a view's samples straight from its part files
            self._pid = os.getpid()
            self._rng = np.random.default_rng(torch.initial_seed())
        return self._h5

    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: h5py may be gone already
            pass

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= item < len(self):
            raise IndexError(f"SynthDataset index {item} out of range for {len(self)} samples")
        i = int(self.indices[item])
        f, j = self._file().locate(i)  # the image datasets holding sample i, and its index j in them
        rng = self._rng
        h, w = self.image_size
        if self.patch is None:
            ys, xs = slice(0, h), slice(0, w)
            mask = f["mask"][j]
        else:
            mask_full = f["mask"][j]
            ys, xs = brain_patch(mask_full, self.patch, rng)
            mask = mask_full[ys, xs]
        inputs = f["inputs"][j, :, ys, xs]
        targets = f["targets"][j, :, ys, xs]
        labels = f["labels"][j, ys, xs]
        if self.augment and rng.random() < 0.5:  # left-right flip
            inputs, targets, mask, labels = (a[..., ::-1] for a in (inputs, targets, mask, labels))
        return {
            "inputs": torch.from_numpy(np.ascontiguousarray(inputs, np.float32)),
            "targets": torch.from_numpy(np.ascontiguousarray(targets, np.float32)),
            "params": torch.from_numpy(self._small["params"][i].astype(np.float32)),
            "protocols": torch.from_numpy(self._small["protocols"][i].astype(np.float32)),
            "present": torch.from_numpy(self._small["present"][i].astype(np.float32)),
            "mask": torch.from_numpy(np.ascontiguousarray(mask, np.float32)[None]),
            "labels": torch.from_numpy(np.ascontiguousarray(labels).astype(np.int64)),
            "index": torch.tensor(i, dtype=torch.int64),
        }
