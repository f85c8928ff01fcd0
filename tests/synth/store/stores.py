"""Helpers of the store tests: a tiny generator configuration and whole-store comparison."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from relaxomap.synth.generate import SynthConfig
from relaxomap.synth.phantom.config import PhantomConfig
from relaxomap.synth.sources import SourceConfig
from relaxomap.synth.store.format import check_store

SIZE = 64
SLICES = 3
N = 14  # 5 subjects, the last one cut short (2 samples)
PART_SUBJECTS = 1  # one part per subject: many parts to share among workers and shards


def tiny_source(**changes) -> SourceConfig:
    """Procedural phantoms on a coarse 3.5 mm grid (~0.07 s per head instead of ~0.6 s at 1 mm)."""
    return SourceConfig(phantom=PhantomConfig(shape=(64, 72, 8), voxel_mm=(3.5, 3.5, 3.5)), **changes)


def small_config(**changes) -> SynthConfig:
    return SynthConfig(source=tiny_source(), image_size=(SIZE, SIZE), slices_per_subject=SLICES, seed=11,
                       **changes)


def read_all(path: Path) -> dict[str, np.ndarray]:
    with check_store(path) as f:
        return {name: f[name][...] for name in f}


def assert_same_store(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name  # bit-identical: same seeds, same code path


def copy_store(src: Path, dst: Path) -> Path:
    """A copy of a store (a view with its parts folder) at ``dst``."""
    import shutil

    from relaxomap.synth.store.format import parts_dir

    shutil.copy(src, dst)
    if parts_dir(src).is_dir():
        shutil.copytree(parts_dir(src), parts_dir(dst))
    return dst


def poke(path: Path, row: int, dataset: str, value: float, count: int = 1) -> Path:
    """Overwrite ``count`` brain-mask voxels of channel 0 of sample ``row``'s image ``dataset`` with ``value``,
    in the file that holds them (a view's part file); returns that file."""
    import h5py

    from relaxomap.synth.store.format import ImageReader

    reader = ImageReader(path)
    found, j = reader.locate(row)
    file = reader.source(row)
    mask = found["mask"][j]
    reader.close()
    ys, xs = np.nonzero(mask)
    with h5py.File(file, "r+") as f:
        a = f[dataset][j]
        a[0, ys[:count], xs[:count]] = value
        f[dataset][j] = a
    return file
