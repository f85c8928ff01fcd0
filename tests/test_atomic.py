"""relaxomap.atomic: a destination is either absent / its previous version, or complete — never half-written."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from relaxomap.atomic import atomic_output_dir, atomic_path, atomic_write_bytes, atomic_write_text


def test_atomic_path_renames_on_success_keeps_suffixes_and_previous_version_on_error(tmp_path: Path) -> None:
    dst = tmp_path / "sub" / "maps.nii.gz"
    with atomic_path(dst) as tmp:
        assert tmp.parent == dst.parent and tmp.name.endswith(".nii.gz") and tmp != dst
        tmp.write_bytes(b"first")
    assert dst.read_bytes() == b"first"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(dst, fsync=True) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert dst.read_bytes() == b"first" and sorted(p.name for p in dst.parent.iterdir()) == ["maps.nii.gz"]


def test_atomic_write_text_and_bytes(tmp_path: Path) -> None:
    assert atomic_write_text(tmp_path / "a.json", "{}\n").read_text() == "{}\n"
    assert atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.bin"]
def test_atomic_output_dir(tmp_path: Path) -> None:
    out = tmp_path / "res"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output_dir(out) as tmp:
            (tmp / "half.nii.gz").write_bytes(b"x")
            raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with atomic_output_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (out / "a.txt").read_text() == "1"
    with pytest.raises(ValueError, match="not empty"):
        with atomic_output_dir(out):
            pass
    with atomic_output_dir(out, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]
