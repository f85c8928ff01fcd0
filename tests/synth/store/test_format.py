"""The store format: schema checks that name the file, and sample-by-sample reading of views and single files."""
from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from relaxomap.synth.store.format import SCHEMA_VERSION, ImageReader, check_store, store_fields
from tests.synth.store.stores import N, SLICES


def test_store_fields_follow_the_schema() -> None:
    fields = store_fields(40, 56)
    assert fields["inputs"] == (np.float32, (3, 40, 56)) and fields["targets"] == (np.float32, (3, 40, 56))
    assert fields["mask"] == (bool, (40, 56)) and fields["labels"] == (np.uint8, (40, 56))
    assert fields["protocols"] == (np.float64, (3, 10)) and fields["subject_id"] == (str, ())


def test_store_errors_name_the_file(single_file: Path, tmp_path: Path) -> None:
    reference = single_file
    with pytest.raises(ValueError, match="not found"):
        check_store(tmp_path / "nothing.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(reference.read_bytes()[:4096])
    with pytest.raises(ValueError, match="corrupt.h5.*not a readable HDF5"):
        check_store(corrupt)
    for attr, value, message in (("schema_version", SCHEMA_VERSION + 1, "schema_version 2"),
                                 ("complete", False, "incomplete")):
        bad = tmp_path / f"bad_{attr}.h5"
        shutil.copy(reference, bad)
        with h5py.File(bad, "a") as f:
            f.attrs[attr] = value
        with pytest.raises(ValueError, match=message):
            check_store(bad)
    missing = tmp_path / "missing.h5"
    shutil.copy(reference, missing)
    with h5py.File(missing, "a") as f:
        del f["labels"]
    with pytest.raises(ValueError, match="lacks dataset 'labels'"):
        check_store(missing)


def test_image_reader_reads_views_from_their_parts(reference: Path, single_file: Path) -> None:
    """Sample i read through the view's part files (at most 2 open at a time) equals the self-contained file."""
    view, single = ImageReader(reference, max_open=2), ImageReader(single_file)
    try:
        for i in [0, 13, 3, 7, 1, 12, 5]:  # jumps between parts: files are opened and closed again
            got, j = view.locate(i)
            want, k = single.locate(i)
            assert k == i and j < SLICES  # a view's local index lies inside one subject's part
            for name in ("inputs", "targets", "mask", "labels"):
                assert np.array_equal(got[name][j], want[name][k]), (i, name)
            assert len(view._open) <= 2
        with pytest.raises(IndexError, match="none of its 5 parts"):
            view.locate(N)
    finally:
        view.close()
        single.close()
