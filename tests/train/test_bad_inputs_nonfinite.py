"""Bad input class: non-finite values in the store a run trains or validates on.

``relaxomap train`` stops at the first non-finite loss (train.guard, checked before the optimiser step): exit
status 1, one ``Error:`` line naming the step, the store and the samples with their non-finite tensors, and
``last.pt`` left exactly as the last good checkpoint wrote it (never NaN weights)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from relaxomap.synth.store.dataset import SynthDataset
from relaxomap.train.checkpoint import load_checkpoint
from relaxomap.train.cli import main
from relaxomap.train.guard import NonFiniteLossError
from tests.synth.store.stores import copy_store, poke

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = {"model": {"base_channels": 8, "channel_mults": [1, 2], "mid_blocks": 1, "groups": 4, "emb_dim": 16,
                  "n_fourier": 4},
        "progress": False, "device": "cpu", "warmup_steps": 1, "log_every": 1, "checkpoint_every": 2,
        "val_every": 100, "batch_size": 4, "patch": 32, "steps": 4}


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


def _rows(store: Path, split: str) -> list[int]:
    ds = SynthDataset(store, split=split)
    rows = ds.indices.tolist()
    ds.close()
    return rows


def test_nan_targets_stop_the_run_and_keep_the_last_good_checkpoint(train_store: Path, config: Path,
                                                                   tmp_path: Path) -> None:
    store = copy_store(train_store, tmp_path / "s.h5")
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--store", str(store), "--config", str(config), "--out", str(run),
                                    "--stop-after", "2"])
    assert res.exit_code == 0, res.output
    good = (run / "last.pt").read_bytes()
    for row in _rows(store, "train"):  # every training sample: the next batch holds some
        poke(store, row, "targets", np.nan, count=3)
    res = CliRunner().invoke(main, ["train", "--resume", "--out", str(run)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    text = res.output
    assert "Error: training stopped at step 3: the loss is nan" in text
    assert f"non-finite values in store {store}: sample " in text and "(targets: 3 value(s))" in text
    assert f"{run / 'last.pt'} (step 2) is kept as it was" in text
    assert (run / "last.pt").read_bytes() == good  # not overwritten
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["step"] == 2 and all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 2  # no NaN line logged


def test_nan_inputs_on_the_first_step(train_store: Path, config: Path, tmp_path: Path) -> None:
    store = copy_store(train_store, tmp_path / "s.h5")
    for row in _rows(store, "train"):
        poke(store, row, "inputs", np.inf)
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--store", str(store), "--config", str(config), "--out", str(run)])
    assert res.exit_code == 1
    assert "training stopped at step 1: the loss is" in res.output and "(inputs: 1 value(s))" in res.output
    assert "no checkpoint was written" in res.output and not (run / "last.pt").exists()


def test_nan_in_the_validation_store(train_store: Path, tmp_path: Path) -> None:
    from relaxomap.model.config import ModelConfig
    from relaxomap.train.config import TrainConfig
    from relaxomap.train.trainer import train

    val = copy_store(train_store, tmp_path / "val.h5")
    rows = _rows(val, None)
    for row in rows:
        poke(val, row, "targets", np.nan)
    cfg = TrainConfig.from_dict({**TINY, "model": ModelConfig.from_dict(TINY["model"]).to_dict(),
                                 "store": str(train_store), "val_store": str(val), "val_every": 1,
                                 "val_max_slices": 2, "out": str(tmp_path / "run")})
    with pytest.raises(NonFiniteLossError, match=rf"step 1: the validation loss is nan; non-finite values in "
                                                 rf"store {val}: sample {rows[0]} \(targets: 1 value\(s\)\)"):
        train(cfg)
    assert not (tmp_path / "run" / "best.pt").exists() and not (tmp_path / "run" / "last.pt").exists()


def test_diverged_network_on_finite_data_says_so() -> None:
    from relaxomap.train.guard import nonfinite_loss

    batch = {"inputs": torch.ones(2, 3, 4, 4), "targets": torch.ones(2, 3, 4, 4), "index": torch.tensor([5, 9])}
    err = nonfinite_loss("loss", float("inf"), 6, batch, "s.h5", lr=0.5)
    assert isinstance(err, ValueError) and isinstance(err, FloatingPointError)
    assert str(err) == ("training stopped at step 7: the loss is inf; the batch (store s.h5, samples 5, 9) is finite, "
                        "so the network diverged; lower --lr (now 0.5)")
