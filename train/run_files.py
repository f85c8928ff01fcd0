"""The files of a run directory that rank 0 writes besides the checkpoints: ``config.json`` (the
TrainConfig), ``metrics.jsonl`` (one JSON object per logged step and per validation) and, when the optional
``tensorboard`` package is installed, TensorBoard event files.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from relaxomap.train.config import TrainConfig

__all__ = ["RunFiles"]


class RunFiles:
    """Rank 0's outputs: config.json, metrics.jsonl and optional TensorBoard; a no-op on other ranks."""

    def __init__(self, out: Path, active: bool, resume_step: int | None) -> None:
        self.out, self.active, self.tb = out, active, None
        if not active:
            return
        out.mkdir(parents=True, exist_ok=True)
        self.log_path = out / "metrics.jsonl"
        if resume_step is None:
            self.log_path.write_text("")
        elif self.log_path.exists():  # drop lines logged after the checkpoint: they are about to be redone
            kept = [ln for ln in self.log_path.read_text().splitlines()
                    if ln and json.loads(ln).get("step", 0) <= resume_step]
            self.log_path.write_text("".join(ln + "\n" for ln in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self.tb = SummaryWriter(log_dir=str(out / "tensorboard"))

    def write_config(self, config: TrainConfig) -> None:
        if self.active:
            (self.out / "config.json").write_text(config.to_json(indent=2) + "\n")

    def log(self, record: dict[str, Any]) -> None:
        if not self.active:
            return
        with self.log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k not in ("step", "kind") and isinstance(v, (int, float)) and v is not None:
                    self.tb.add_scalar(f"{record['kind']}/{k}", v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
