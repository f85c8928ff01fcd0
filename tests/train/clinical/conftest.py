"""Fixtures of the clinical tests: a tiny checkpoint per module and a fresh NIfTI case per test."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.clinical.helpers import make_tiny_checkpoint, write_case


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture()
def case(tmp_path: Path) -> dict[str, Path]:
    return write_case(tmp_path / "in")
