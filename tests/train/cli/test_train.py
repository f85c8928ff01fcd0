"""``relaxomap train``: a short run works with the default warm-up, --warmup-steps and --arch are passed on,
the deprecated --model spelling still works; options fall through to TrainConfig."""
from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from relaxomap.model.config import ModelConfig
from relaxomap.train.cli import main
from relaxomap.train.cli.train import build_train_config
from relaxomap.train.config import TrainConfig

TINY = ModelConfig(base_channels=8, channel_mults=(1, 2), mid_blocks=1, groups=4, emb_dim=16, n_fourier=4)


@pytest.fixture()
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"model": TINY.to_dict(), "progress": False, "device": "cpu", "val_every": 100}))
    return path


@pytest.mark.usefixtures("single_thread")
def test_twenty_steps_run_with_the_default_warmup(train_store: Path, tiny_config: Path, tmp_path: Path) -> None:
    """The default warm-up follows the run (min(500, 20 // 10) = 2 steps): a 20-step run trains to the end."""
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--store", str(train_store), "--config", str(tiny_config), "--steps", "20",
                                    "--patch", "32", "--batch-size", "2", "--out", str(run)])
    assert res.exit_code == 0, res.output
    assert "to step 20" in res.output
    assert TrainConfig.from_file(run / "config.json").warmup_steps == 2


def test_warmup_arch_and_the_deprecated_model_spelling(tiny_config: Path, tmp_path: Path) -> None:
    cfg = build_train_config(config_file=str(tiny_config), store="s.h5", steps=20, warmup_steps=5, arch="unet")
    assert (cfg.warmup_steps, cfg.model.arch, cfg.model.base_channels) == (5, "unet", 8)
    with pytest.raises(click.UsageError, match=r"TrainConfig\.warmup_steps must be an integer in \[0, 20\]; got 30"):
        build_train_config(store="s.h5", steps=20, warmup_steps=30)
    res = CliRunner().invoke(main, ["train", "--store", str(tmp_path / "none.h5"), "--model", "unet", "--out",
                                    str(tmp_path / "r")])
    assert "warning: --model is deprecated for `relaxomap train`; use --arch" in res.stderr
    assert res.exit_code == 1 and "none.h5" in res.output  # the run itself then fails on the missing store


def test_options_fall_through_to_the_dataclass() -> None:
    cfg = build_train_config(store="s.h5", patch=0)
    assert cfg.patch is None and cfg.steps == TrainConfig(store="x").steps and cfg.model == ModelConfig()
    text = CliRunner().invoke(main, ["train", "--help"]).output
    assert "[default: 20000]" in text and "[default: min(500, steps // 10)]" in text and "--arch" in text
