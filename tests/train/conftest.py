"""Session-scoped fixtures of the training tests: small stores made by the real synthetic generator and tiny
randomly initialised checkpoints."""
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


@pytest.fixture(scope="session")
def scenario_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 phantom slices of 32 x 32 written by the real generator through the CLI."""
    from click.testing import CliRunner

    from relaxomap.train.cli import main

    out = tmp_path_factory.mktemp("eval_store") / "scenario_a.h5"
    res = CliRunner().invoke(main, ["synth", "--out", str(out), "--n", "4", "--size", "32", "--slices", "2",
                                    "--seed", "5"])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny randomly initialised networks saved with the checkpoint API (two pe-unet files, one unet)."""
    import torch

    from relaxomap.model.config import ModelConfig
    from relaxomap.model.unet import build_model
    from relaxomap.train.checkpoint import save_checkpoint

    folder = tmp_path_factory.mktemp("eval_ckpt")
    torch.manual_seed(0)
    out = {}
    for name, arch in (("pe", "pe-unet"), ("pe2", "pe-unet"), ("unet", "unet")):
        cfg = ModelConfig(arch=arch, base_channels=8, channel_mults=(1, 2), groups=4, emb_dim=16, n_fourier=4)
        out[name] = save_checkpoint(folder / f"{name}.pt", model=build_model(cfg), model_config=cfg, step=3)
    return out


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialised checkpoint (:func:`tests.train.clinical.helpers.make_tiny_checkpoint`)."""
    from tests.train.clinical.helpers import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture()
def case(tmp_path: Path) -> dict[str, Path]:
    """T1w / T2w / FLAIR NIfTI files with BIDS sidecars (:func:`tests.train.clinical.helpers.write_case`)."""
    from tests.train.clinical.helpers import write_case

    return write_case(tmp_path / "in")
