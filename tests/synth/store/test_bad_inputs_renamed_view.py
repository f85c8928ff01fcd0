"""Bad input class: a view store renamed (or moved) together with its ``.parts/`` folder, as the error message
of a view without its parts tells the user to do. It reads like the original (format.part_source): schema
check, Dataset samples, summary, verification and a self-contained merge; a view whose parts are really gone
is still refused naming the folder; an older view that holds absolute part paths still reads."""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from relaxomap.synth.store.dataset import SynthDataset
from relaxomap.synth.store.format import ImageReader, check_store, parts_dir, store_bytes
from relaxomap.synth.store.summary import summarize
from relaxomap.synth.store.verify import verify_store
from relaxomap.train.cli import main
from tests.synth.store.stores import N


def _images(path: Path) -> dict[str, np.ndarray]:
    reader = ImageReader(path)
    try:
        out = {}
        for i in range(N):
            found, j = reader.locate(i)
            for name in ("inputs", "targets", "mask", "labels"):
                out.setdefault(name, []).append(found[name][j])
        return {k: np.stack(v) for k, v in out.items()}
    finally:
        reader.close()


@pytest.fixture()
def renamed(reference: Path, tmp_path: Path) -> Path:
    """A copy of the reference view, then renamed with its parts folder: ref.h5 -> other.h5 (+ .parts)."""
    shutil.copy(reference, tmp_path / reference.name)
    shutil.copytree(parts_dir(reference), parts_dir(tmp_path / reference.name))
    new = tmp_path / "other.h5"
    (tmp_path / reference.name).rename(new)
    parts_dir(tmp_path / reference.name).rename(parts_dir(new))
    return new


def test_renamed_view_reads_like_the_original(reference: Path, renamed: Path) -> None:
    with check_store(renamed) as f:  # refused before: "4 part file(s) are missing"
        assert f["inputs"].is_virtual
    want, got = _images(reference), _images(renamed)
    for name in want:
        assert np.array_equal(got[name], want[name]), name
    ds = SynthDataset(renamed)
    assert np.array_equal(ds[3]["targets"].numpy(), want["targets"][3])
    ds.close()
    assert summarize(renamed)["targets_in_mask"] == summarize(reference)["targets_in_mask"]
    assert verify_store(renamed).ok
    assert store_bytes(renamed) == store_bytes(reference)


def test_renamed_view_through_the_cli(renamed: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["synth", "inspect", str(renamed)])
    assert res.exit_code == 0, res.output
    assert "checksums match" in res.output and "NON-FINITE" not in res.output
    res = CliRunner().invoke(main, ["synth", "merge", str(renamed), "--self-contained"])
    assert res.exit_code == 0, res.output
    assert not parts_dir(renamed).exists() and verify_store(renamed).ok


def test_parts_folder_not_renamed_is_still_refused(reference: Path, tmp_path: Path) -> None:
    view = tmp_path / "alone.h5"
    shutil.copy(reference, view)  # the view without its parts folder
    res = CliRunner().invoke(main, ["synth", "inspect", str(view)])
    assert res.exit_code == 1
    assert f"keep {view.name}.parts/ beside {view.name}" in res.output and "part file(s) are missing" in res.output


def test_older_view_holding_absolute_part_paths(reference: Path, tmp_path: Path) -> None:
    """A view whose virtual datasets name the parts by absolute path (as older relaxomap wrote them) reads
    from there, and from its own parts folder once those are gone."""
    view = tmp_path / "abs.h5"
    parts = tmp_path / "elsewhere"
    shutil.copytree(parts_dir(reference), parts)
    with h5py.File(reference, "r") as src, h5py.File(view, "w", libver=("v110", "latest")) as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for name in src:
            d = src[name]
            if not d.is_virtual:
                dst.create_dataset(name, data=d[...])
                continue
            lay = h5py.VirtualLayout(d.shape, dtype=d.dtype)
            for v in d.virtual_sources():
                (a, *_), (b, *_) = v.vspace.get_select_bounds()
                lay[a:b + 1] = h5py.VirtualSource(str(parts / Path(v.file_name).name), name,
                                                  shape=(b + 1 - a, *d.shape[1:]), dtype=d.dtype)
            dst.create_virtual_dataset(name, lay)
    want = _images(reference)
    assert np.array_equal(_images(view)["targets"], want["targets"])
    shutil.move(parts, parts_dir(view))  # the absolute paths are gone; the view's own parts folder is used
    assert np.array_equal(_images(view)["inputs"], want["inputs"])
    with check_store(view):
        pass
