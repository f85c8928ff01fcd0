"""A run's config.json and metrics.jsonl: written by rank 0 only, lines after a resumed step dropped."""
from __future__ import annotations

import json
from pathlib import Path

from relaxomap.train.config import TrainConfig
from relaxomap.train.run_files import RunFiles


def _lines(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines()]


def test_rank_zero_writes_config_and_log_lines(tmp_path: Path) -> None:
    files = RunFiles(tmp_path / "run", active=True, resume_step=None)
    cfg = TrainConfig(store="s.h5", steps=30)
    files.write_config(cfg)
    files.log({"kind": "train", "step": 1, "loss": 0.5})
    files.close()
    assert TrainConfig.from_file(tmp_path / "run" / "config.json") == cfg
    assert _lines(tmp_path / "run" / "metrics.jsonl") == [{"kind": "train", "step": 1, "loss": 0.5}]


def test_resume_drops_lines_logged_after_the_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    files = RunFiles(run, active=True, resume_step=None)
    for step in (1, 2, 3, 4):
        files.log({"kind": "train", "step": step})
    files.close()
    RunFiles(run, active=True, resume_step=2).close()
    assert [r["step"] for r in _lines(run / "metrics.jsonl")] == [1, 2]


def test_other_ranks_write_nothing(tmp_path: Path) -> None:
    files = RunFiles(tmp_path / "run", active=False, resume_step=None)
    files.write_config(TrainConfig(store="s.h5"))
    files.log({"kind": "train", "step": 1})
    assert not (tmp_path / "run").exists()
