"""The training loop on a small real store: learning, exact resume, refusals, files, CLI."""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from relaxomap.model.config import ModelConfig
from relaxomap.train.checkpoint import load_checkpoint, load_model
from relaxomap.train.distributed import EpochBatchSampler
from relaxomap.train.losses import LossConfig
from relaxomap.train.config import TrainConfig
from relaxomap.train.trainer import train
from relaxomap.train.validation import masked_l1_normalised

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = ModelConfig(base_channels=8, channel_mults=(1, 2), mid_blocks=1, groups=4, emb_dim=16, n_fourier=4)


def _config(store: Path, out: Path, **kw) -> TrainConfig:
    base = dict(store=str(store), model=TINY, patch=32, batch_size=4, steps=40, lr=3e-3, min_lr=1e-4,
                warmup_steps=4, physics_ramp_steps=0, ema_decay=0.9, checkpoint_every=10, val_every=10,
                val_max_slices=8, log_every=1, out=str(out), device="cpu", progress=False)
    base.update(kw)
    return TrainConfig(**base)


def _train_losses(run: Path) -> list[float]:
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in lines if r["kind"] == "train"]


# ------------------------------------------------------------------------------------------------ config
def test_config_json_round_trip_and_defaults_in_one_place(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "s.h5", tmp_path / "run", loss=LossConfig(ssim=0.5), patch=None, grad_clip=None)
    again = TrainConfig.from_json(cfg.to_json())
    assert again == cfg and isinstance(again.model, ModelConfig) and isinstance(again.loss, LossConfig)
    (tmp_path / "c.json").write_text(json.dumps({"store": "x.h5", "model": {"arch": "unet"}}))
    partial = TrainConfig.from_file(tmp_path / "c.json")
    assert partial.model == ModelConfig(arch="unet") and partial.steps == TrainConfig(store="y").steps


@pytest.mark.parametrize("field, value, message", [
    ("lr", -1.0, r"TrainConfig\.lr must be a finite number in \(0, 10\]; got -1"),
    ("min_lr", 0.5, r"TrainConfig\.min_lr must be a finite number in \[0, 0\.001\]; got 0\.5"),
    ("warmup_steps", 50, r"TrainConfig\.warmup_steps must be an integer in \[0, 40\]; got 50"),
    ("device", "gpu", r"TrainConfig\.device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got 'gpu'"),
    ("batch_size", 2.5, r"TrainConfig\.batch_size must be an integer"),
    ("ema_decay", 1.0, r"TrainConfig\.ema_decay must be < 1"),
])
def test_config_validation_names_field_and_value(tmp_path: Path, field: str, value, message: str) -> None:
    kw = {"lr": 1e-3, field: value}
    with pytest.raises((ValueError, TypeError), match=message):
        _config(tmp_path / "s.h5", tmp_path / "run", **kw)


def test_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['stepz'\]"):
        TrainConfig.from_dict({"store": "a.h5", "stepz": 3})


# ------------------------------------------------------------------------------------------------ data pieces
def test_sampler_splits_epochs_across_ranks_and_resumes() -> None:
    n, b = 23, 3
    ranks = [EpochBatchSampler(n, b, seed=5, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].batches_per_epoch == 23 // 6
    epoch0 = [idx for s in ranks for batch in s for idx, _ in batch]
    assert len(epoch0) == len(set(epoch0)) == 2 * 3 * b  # drop-last, no item twice in an epoch
    first = list(ranks[0])
    ranks[0].set_position(0, 2)
    assert list(ranks[0]) == first[2:]  # resuming at batch 2 yields the rest of the same epoch
    ranks[0].set_position(1, 0)
    assert list(ranks[0]) != first  # a new epoch is a new permutation (and new crop seeds)
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochBatchSampler(5, 3, seed=0, world_size=2)




def test_masked_l1_normalised_closed_form() -> None:
    pred = torch.tensor([[1100.0, 50.0, 0.8]]).reshape(1, 3, 1, 1).expand(1, 3, 2, 2).clone()
    target = torch.tensor([[1000.0, 100.0, 0.7]]).reshape(1, 3, 1, 1).expand(1, 3, 2, 2).clone()
    mask = torch.tensor([[[[1.0, 1.0], [0.0, 1.0]]]])
    s, c = masked_l1_normalised(pred, target, mask)
    per_voxel = math.log(1.1) + math.log(2.0) + 0.1  # |ln ratio| for T1 and T2, |difference| for PD
    assert c == 9
    np.testing.assert_allclose(s / c, per_voxel / 3, rtol=1e-6)  # float32 arithmetic


# ------------------------------------------------------------------------------------------------ training
def test_trains_end_to_end_and_loss_decreases(train_store: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = _config(train_store, run, steps=60, val_every=15, checkpoint_every=15)
    summary = train(config)
    assert summary["step"] == 60 and summary["start_step"] == 0 and summary["world_size"] == 1
    assert {p.name for p in run.iterdir()} >= {"config.json", "last.pt", "best.pt", "metrics.jsonl"}
    losses = _train_losses(run)
    assert len(losses) == 60
    first, last = np.array(losses[:10]), np.array(losses[-10:])
    # Learning, not noise: the drop of the mean loss over the first vs the last 10 steps must exceed 3
    # standard errors of the difference of the two means (estimated from the batch-to-batch scatter in each
    # window; p < 0.002 for a one-sided test) and be at least 10 % of the start. (Seeds 0-3 gave 4.6-5.4
    # standard errors and drops of 37-45 %.)
    se = math.sqrt(first.var(ddof=1) / len(first) + last.var(ddof=1) / len(last))
    assert first.mean() - last.mean() > 3 * se, (first, last)
    assert last.mean() < 0.9 * first.mean(), (first, last)
    # validation lines, best.pt = the best of them, and the checkpoint rebuilds the tiny model
    vals = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    vals = [r["val_masked_l1"] for r in vals if r["kind"] == "val"]
    assert len(vals) == 4
    best = load_checkpoint(run / "best.pt")
    assert best["best_metric"] == pytest.approx(min(vals), rel=1e-12)
    assert best["step"] == 15 * (1 + int(np.argmin(vals)))
    model, model_config, meta = load_model(run / "last.pt")
    assert model_config == TINY and meta["step"] == 60 and meta["weights"] == "ema"
    assert set(meta["param_ranges"]) <= {"t1w", "t2w", "flair"} and meta["store_schema"] == 1
    assert TrainConfig.from_file(run / "config.json") == config


def test_resume_equals_uninterrupted(train_store: Path, tmp_path: Path) -> None:
    whole = _config(train_store, tmp_path / "whole", steps=24, val_every=5, checkpoint_every=7, log_every=4)
    parts = dataclasses.replace(whole, out=str(tmp_path / "parts"))
    a = train(whole)
    assert a["step"] == 24 and a["start_step"] == 0
    first = train(parts, stop_after=9)  # stops mid-epoch, between checkpoints
    assert first["step"] == 9
    b = train(parts, resume=True)
    assert b["start_step"] == 9 and b["step"] == 24
    ca, cb = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(tmp_path / "parts" / "last.pt")
    # Same operations on the same data in the same order on one CPU: expected bit-identical; the tolerance
    # is float32 rounding (a few ulp) in case a kernel chose another summation order.
    for key in ("model", "ema"):
        for name, value in ca[key].items():
            torch.testing.assert_close(cb[key][name], value, rtol=1e-6, atol=1e-7)
    for sa, sb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
        torch.testing.assert_close(sb["exp_avg_sq"], sa["exp_avg_sq"], rtol=1e-6, atol=1e-12)
    assert ca["data_position"] == cb["data_position"] and ca["best_metric"] == pytest.approx(cb["best_metric"])
    # the log of the resumed run holds each step once
    steps = [json.loads(ln)["step"] for ln in (tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()
             if json.loads(ln)["kind"] == "train"]
    assert steps == sorted(set(steps)) and steps[-1] == 24


def test_resume_refusals(train_store: Path, tmp_path: Path) -> None:
    cfg = _config(train_store, tmp_path / "run", steps=3, warmup_steps=1, val_every=100)
    with pytest.raises(ValueError, match="nothing to resume"):
        train(cfg, resume=True)
    train(cfg)
    with pytest.raises(ValueError, match="already holds a run"):
        train(cfg)
    with pytest.raises(ValueError, match=r"lr: checkpoint 0\.003 vs requested 0\.001"):
        train(dataclasses.replace(cfg, lr=1e-3, min_lr=1e-5), resume=True)
    bigger = dataclasses.replace(cfg, model=dataclasses.replace(TINY, base_channels=16))
    with pytest.raises(ValueError, match="base_channels: checkpoint 8 vs requested 16"):
        train(bigger, resume=True)
    # operational fields may change
    done = train(dataclasses.replace(cfg, log_every=2, checkpoint_every=5), resume=True)
    assert done["start_step"] == done["step"] == 3


def test_cli_train_and_resume(train_store: Path, tmp_path: Path) -> None:
    from relaxomap.train.cli import main

    file_cfg = tmp_path / "tiny.json"
    file_cfg.write_text(json.dumps({"model": TINY.to_dict(), "progress": False, "val_every": 4, "warmup_steps": 1,
                                    "device": "cpu", "loss": {"physics": 0.05}}))
    run = tmp_path / "cli-run"
    args = ["train", "--store", str(train_store), "--config", str(file_cfg), "--arch", "unet", "--patch", "32",
            "--steps", "6", "--batch-size", "2", "--physics-weight", "0.2", "--out", str(run)]
    res = CliRunner().invoke(main, args + ["--stop-after", "3"])
    assert res.exit_code == 0, res.output
    assert "to step 3" in res.output
    cfg = TrainConfig.from_file(run / "config.json")
    assert (cfg.model.arch, cfg.model.base_channels, cfg.loss.physics, cfg.batch_size) == ("unet", 8, 0.2, 2)
    assert cfg.val_every == 4 and cfg.lr == TrainConfig(store="x").lr  # from the file / the dataclass
    res = CliRunner().invoke(main, ["train", "--resume", "--out", str(run)])  # everything else from config.json
    assert res.exit_code == 0, res.output
    assert "to step 6" in res.output and load_checkpoint(run / "last.pt")["step"] == 6
    res = CliRunner().invoke(main, ["train", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "--store is required" in res.output
    res = CliRunner().invoke(main, ["train", "--store", str(train_store), "--steps", "0", "--out", str(tmp_path / "y")])
    assert res.exit_code != 0 and "TrainConfig.steps" in res.output


def test_bench_train_cli_writes_json(tmp_path: Path) -> None:
    from relaxomap.train.cli import main

    out = tmp_path / "bench.json"
    res = CliRunner().invoke(main, ["bench", "train", "--patch", "16", "--slice-size", "32", "--batch-size", "1",
                                    "--repeats", "1", "--warmup", "0", "--threads", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    # The networks benchmarked are the shipped architectures: parameter counts from an independent build.
    from relaxomap.model import ModelConfig, build_model, count_parameters

    assert data["parameters"] == {a: count_parameters(build_model(ModelConfig(arch=a))) for a in ("pe-unet", "unet")}
    for key in ("train_patch_samples_per_s", "train_slice_samples_per_s", "infer_ms_per_slice"):
        row = data["results"][key]
        assert set(row) == {"pe-unet", "unet", "ratio_vs_unet"}
        assert all(math.isfinite(v) and v > 0 for v in row.values()), row  # timings, not a speed claim
        # the printed table shows the ratio the JSON holds
        assert f"{row['ratio_vs_unet']:.2f}" in res.output, res.output
