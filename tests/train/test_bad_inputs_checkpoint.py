"""Bad inputs, class "checkpoint": refused at load by relaxomap.train.checkpoint, before any prediction.

- NaN / Inf weights (a diverged run, a damaged file) would give all-NaN maps: refused naming the file and the
  first bad tensor (``check_finite_weights``), by ``predict``, ``demo`` and ``export``.
- A directory given as the checkpoint: said to be a directory, with the checkpoint files it holds.
- A file that needs full unpickling (a whole pickled model): "not a relaxomap checkpoint", never PyTorch's
  advice to disable the safe loader (``weights_only=False``).

Each CLI case asserts exit status 1, one ``Error:`` line naming the file and what is wrong, and no output.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from relaxomap.model.unet import build_model
from relaxomap.train.checkpoint import load_checkpoint, load_model, save_checkpoint
from relaxomap.train.cli import main
from tests.train.clinical.helpers import TINY


def _poisoned(path: Path, value: float, *, ema: bool = False) -> tuple[Path, str]:
    """A tiny checkpoint with ``value`` (NaN / inf) in one weight tensor; returns (path, the tensor's name)."""
    torch.manual_seed(0)
    state = build_model(TINY).state_dict()
    name = [k for k, v in state.items() if v.is_floating_point()][3]
    bad = {k: v.clone() for k, v in state.items()}
    bad[name].view(-1)[1] = value
    if ema:
        save_checkpoint(path, model=state, ema=bad, model_config=TINY, step=1)
    else:
        save_checkpoint(path, model=bad, model_config=TINY, step=1)
    return path, name


def _predict(case: dict[str, Path], ckpt: Path | str, out: Path) -> object:
    return CliRunner().invoke(main, ["predict", "--t1w", str(case["t1w"]), "--t2w", str(case["t2w"]), "--out",
                                     str(out), "--checkpoint", str(ckpt), "--quiet"])


@pytest.mark.parametrize(("value", "word"), [(float("nan"), "1 NaN and 0 Inf"), (float("inf"), "0 NaN and 1 Inf")])
def test_non_finite_weights_refused_by_predict(case: dict[str, Path], tmp_path: Path, value: float,
                                               word: str) -> None:
    ckpt, name = _poisoned(tmp_path / "diverged.pt", value)
    res = _predict(case, ckpt, tmp_path / "maps")
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and "Traceback" not in res.output
    assert f"checkpoint {ckpt}" in res.output and f"first bad tensor {name!r}" in res.output and word in res.output
    assert "must be finite" in res.output
    assert not (tmp_path / "maps").exists() and not list(tmp_path.glob("maps.tmp-*"))


def test_non_finite_ema_weights_refused_but_finite_raw_weights_load(tmp_path: Path) -> None:
    ckpt, name = _poisoned(tmp_path / "ema_nan.pt", float("nan"), ema=True)
    with pytest.raises(ValueError, match=rf"ema weights hold non-finite values \(first bad tensor '{name}'"):
        load_model(ckpt)
    model, _, meta = load_model(ckpt, use_ema=False)  # the raw weights are finite: they load
    assert meta["weights"] == "model"


def test_non_finite_weights_refused_by_export_and_demo(tmp_path: Path) -> None:
    ckpt, name = _poisoned(tmp_path / "diverged.pt", float("nan"))
    res = CliRunner().invoke(main, ["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "slim.pt")])
    assert res.exit_code == 1 and f"first bad tensor {name!r}" in res.output, res.output
    assert not (tmp_path / "slim.pt").exists()
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "--checkpoint", str(ckpt)])
    assert res.exit_code == 1 and f"first bad tensor {name!r}" in res.output, res.output
    assert not (tmp_path / "demo").exists()


def test_checkpoint_directory(case: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "runs" / "pe"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"")
    (run / "last.pt").write_bytes(b"")
    res = _predict(case, run, tmp_path / "maps")
    assert res.exit_code == 1, res.output
    assert f"--checkpoint {run} is a directory; a checkpoint file (.pt) is expected" in res.output
    assert "it holds best.pt, last.pt: pass one of them" in res.output and "not found" not in res.output
    assert not (tmp_path / "maps").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _predict(case, empty, tmp_path / "maps")
    assert res.exit_code == 1 and "is a directory" in res.output and "relaxomap export" in res.output
    with pytest.raises(ValueError, match=r"checkpoint .*pe is a directory; a checkpoint file \(\.pt\) is expected"):
        load_checkpoint(run)


def test_pickled_model_is_not_a_relaxomap_checkpoint(case: dict[str, Path], tmp_path: Path) -> None:
    evil = tmp_path / "whole_model.pt"
    torch.save(torch.nn.Linear(2, 2), evil)  # needs full unpickling: refused by the safe loader
    res = _predict(case, evil, tmp_path / "maps")
    assert res.exit_code == 1, res.output
    assert f"checkpoint {evil} could not be read: it is not a relaxomap checkpoint" in res.output
    assert "relaxomap train" in res.output
    assert "weights_only=False" not in res.output and "weights_only" not in res.output
    assert not (tmp_path / "maps").exists()
    with pytest.raises(ValueError) as err:
        load_checkpoint(evil)
    assert "weights_only" not in str(err.value) and err.value.__cause__ is None  # torch's advice not chained
