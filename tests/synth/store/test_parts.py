"""Part files: the sample layout of subjects and parts, part names, the manifest check, finished parts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from relaxomap.synth.store.format import parts_dir
from relaxomap.synth.store.parts import (
    MANIFEST,
    Layout,
    check_manifest,
    default_part_subjects,
    manifest_of,
    part_ok,
    part_path,
    tmp_name,
)
from tests.synth.store.stores import N, PART_SUBJECTS, SLICES, small_config


def test_layout_cuts_the_last_subject_and_part_short() -> None:
    layout = Layout(n_samples=23, slices_per_subject=5, part_subjects=2)  # 5 subjects (the last of 3), 3 parts
    assert layout.n_subjects == 5 and layout.n_parts == 3
    assert [layout.subject_samples(s) for s in range(5)] == [5, 5, 5, 5, 3]
    assert [layout.part_subjects_range(p) for p in range(3)] == [range(0, 2), range(2, 4), range(4, 5)]
    assert [layout.part_samples(p) for p in range(3)] == [(0, 10), (10, 20), (20, 23)]
    assert default_part_subjects(small_config()) == 64 // SLICES
    assert default_part_subjects(small_config().replace(slices_per_subject=100)) == 1  # at least one subject


def test_part_names() -> None:
    folder = Path("/stores/train.h5.parts")
    assert part_path(folder, 12) == folder / "part-000012.h5"
    assert tmp_name(part_path(folder, 12)) == folder / "part-000012.h5.tmp"
    assert parts_dir("/stores/train.h5") == folder


def test_manifest_is_written_once_and_then_checked(tmp_path: Path) -> None:
    layout = Layout(N, SLICES, PART_SUBJECTS)
    folder = tmp_path / "x.h5.parts"
    check_manifest(folder, manifest_of(small_config(), layout))
    stored = json.loads((folder / MANIFEST).read_text())
    assert stored["n_samples"] == N and stored["config"]["seed"] == 11
    assert check_manifest(folder, manifest_of(small_config(), layout)) is None  # the same run: accepted
    (folder / "part-000000.h5").write_bytes(b"")  # a finished part: other settings are refused
    with pytest.raises(ValueError, match=r"x\.h5\.parts holds 1 finished part\(s\) of a run with other "
                                         r"settings.*seed"):
        check_manifest(folder, manifest_of(small_config().replace(seed=12), layout))
    (folder / "part-000000.h5").unlink()  # no finished part: replaced, and said so
    note = check_manifest(folder, manifest_of(small_config().replace(seed=12), layout))
    assert "no finished part" in note and "seed" in note
    assert json.loads((folder / MANIFEST).read_text())["config"]["seed"] == 12
    (folder / MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="unreadable manifest"):
        check_manifest(folder, manifest_of(small_config(), layout))


def test_part_ok_accepts_only_finished_parts_of_the_run(reference: Path, tmp_path: Path) -> None:
    layout = Layout(N, SLICES, PART_SUBJECTS)
    folder = parts_dir(reference)
    config_json = small_config().to_json()
    assert all(part_ok(part_path(folder, p), layout, p, config_json) for p in range(layout.n_parts))
    assert not part_ok(part_path(folder, 1), layout, 0, config_json)  # another part's samples
    assert not part_ok(part_path(folder, 0), layout, 0, small_config().replace(seed=12).to_json())  # another run
    assert not part_ok(tmp_path / "none.h5", layout, 0, config_json)
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF half written")
    assert not part_ok(tmp_path / "junk.h5", layout, 0, config_json)
