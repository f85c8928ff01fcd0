"""Merging parts: shards merged equal one run; a view made self-contained, moved with its parts, or missing
them; merge errors."""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import pytest

from relaxomap.synth.store.format import check_store, is_view, parts_dir, store_bytes
from relaxomap.synth.store.merge import merge_parts
from relaxomap.synth.store.writer import write_store
from tests.synth.store.stores import N, PART_SUBJECTS, SIZE, assert_same_store, read_all, small_config


def test_shards_merged_give_identical_arrays(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharded.h5"
    r0 = write_store(small_config(), out, N, shard=(0, 2), part_subjects=PART_SUBJECTS)
    assert not r0.merged and not out.exists()
    with pytest.raises(ValueError, match="parts missing"):
        merge_parts(out)
    write_store(small_config(), out, N, shard=(1, 2), part_subjects=PART_SUBJECTS)
    merge_parts(out)
    assert_same_store(read_all(out), read_all(reference))
    assert parts_dir(out).is_dir()


def test_self_contained_merge_and_moved_view(reference: Path, single_file: Path, tmp_path: Path) -> None:
    """A view converted into one file reads the same and drops the parts; a view moved with its parts reads the
    same from anywhere; a view without its parts is refused with the folder named."""
    assert not is_view(single_file) and not parts_dir(single_file).exists()
    with h5py.File(single_file, "r") as f:
        assert f.attrs["layout"] == "self-contained" and f["inputs"].chunks == (1, 3, SIZE, SIZE)
    assert_same_store(read_all(single_file), read_all(reference))
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(reference, moved / reference.name)
    shutil.copytree(parts_dir(reference), parts_dir(moved / reference.name))
    assert_same_store(read_all(moved / reference.name), read_all(reference))
    assert store_bytes(moved / reference.name) > (moved / reference.name).stat().st_size  # parts counted
    parts_dir(moved / reference.name).rename(moved / "renamed.parts")
    with pytest.raises(ValueError, match=r"ref\.h5\.parts.*5 part file\(s\) are missing"):
        check_store(moved / reference.name)


def test_merge_errors_name_the_file(single_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no parts to merge"):
        merge_parts(tmp_path / "never.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(single_file.read_bytes()[:4096])
    with pytest.raises(ValueError, match="corrupt.h5.*not a readable HDF5"):
        merge_parts(corrupt)
