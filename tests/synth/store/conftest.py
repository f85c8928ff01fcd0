"""Fixtures of the store tests: one reference store written in a single process, and its self-contained copy."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from relaxomap.synth.store.format import parts_dir
from relaxomap.synth.store.merge import merge_parts
from relaxomap.synth.store.writer import write_store
from tests.synth.store.stores import N, PART_SUBJECTS, small_config


@pytest.fixture(scope="session")
def reference(tmp_path_factory) -> Path:
    """One uninterrupted single-process run (a view over its parts)."""
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    write_store(small_config(), out, N, workers=1, part_subjects=PART_SUBJECTS)
    return out


@pytest.fixture(scope="session")
def single_file(reference: Path, tmp_path_factory) -> Path:
    """The reference view converted into one self-contained file (a copy: the reference stays a view)."""
    out = tmp_path_factory.mktemp("single") / reference.name
    shutil.copy(reference, out)
    shutil.copytree(parts_dir(reference), parts_dir(out))
    merge_parts(out, self_contained=True)
    return out
