"""Session-scoped fixtures of the training tests: one small store made by the real synthetic generator."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def train_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 samples (12 procedural phantom subjects x 4 axial slices, 48 x 48 px, seed 0) from
    :func:`synth.store.writer.write_store`: a subject-wise split of 40 train / 4 val / 4 test samples.

    The phantom grid is shrunk to 64 x 64 x 16 voxels (a few seconds instead of ~20 s for the full head); the
    slices still hold brain, CSF, skull and lesion labels rendered with the real protocols and artefacts.
    """
    from relaxomap.synth.generate import SynthConfig
    from relaxomap.synth.phantom.config import PhantomConfig
    from relaxomap.synth.sources import SourceConfig
    from relaxomap.synth.store.writer import write_store

    path = tmp_path_factory.mktemp("train-store") / "store.h5"
    config = SynthConfig(image_size=(48, 48), slices_per_subject=4, seed=0,
                         source=SourceConfig(phantom=PhantomConfig(shape=(64, 64, 16))))
    write_store(config, path, 48)
    return path


@pytest.fixture()
def single_thread():
    """Run a test with one torch thread: the tiny test models gain nothing from more, and on a loaded machine
    spinning OpenMP threads make each step many times slower. The previous setting is restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
