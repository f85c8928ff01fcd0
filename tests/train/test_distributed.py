"""DistributedDataParallel on CPU: two gloo processes train together and end with identical weights."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from relaxomap.model.config import ModelConfig
from relaxomap.model.unet import build_model
from relaxomap.train.checkpoint import load_checkpoint
from relaxomap.train.config import TrainConfig
from relaxomap.train.trainer import train, weights_digest

TINY = ModelConfig(base_channels=8, channel_mults=(1, 2), mid_blocks=1, groups=4, emb_dim=16, n_fourier=4)
STEPS = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, config_json: str, result_dir: str) -> None:
    # what torchrun would set for each process
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world)})
    torch.set_num_threads(1)
    summary = train(TrainConfig.from_json(config_json))
    Path(result_dir, f"rank{rank}.json").write_text(json.dumps(summary))


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch built without gloo")
def test_two_gloo_processes_end_with_identical_weights(train_store: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp-run"
    cfg = TrainConfig(store=str(train_store), model=TINY, patch=32, batch_size=2, steps=STEPS, lr=3e-3,
                      warmup_steps=1, ema_decay=None, checkpoint_every=STEPS, val_every=STEPS, val_max_slices=4,
                      log_every=1,
                      out=str(run), device="cpu", progress=False)
    mp.spawn(_worker, args=(2, _free_port(), cfg.to_json(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    assert (r0["rank"], r1["rank"], r0["world_size"], r1["world_size"]) == (0, 1, 2, 2)
    assert r0["step"] == r1["step"] == STEPS
    # gradients are all-reduced, so both replicas apply identical updates: bitwise-equal weights
    assert r0["weights_sha256"] == r1["weights_sha256"]
    # rank 0 wrote the checkpoint, and it holds exactly those weights
    ck = load_checkpoint(run / "last.pt")
    net = build_model(TINY)
    net.load_state_dict(ck["model"])
    assert weights_digest(net) == r0["weights_sha256"]
    assert ck["step"] == STEPS and ck["train_config"]["batch_size"] == 2
    # training ran: the weights moved away from the seeded initialisation
    torch.manual_seed(cfg.seed)
    assert weights_digest(build_model(TINY)) != r0["weights_sha256"]
    # rank 0 alone wrote the log (two writers would duplicate lines): one train line per step
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["kind"] == "train"] == list(range(1, STEPS + 1))
