"""Checkpoints: atomic writes, weights_only loading, refusal of other configurations, model rebuilding."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

import relaxomap.train.checkpoint as ckpt_mod
from relaxomap.model.config import ModelConfig
from relaxomap.model.unet import build_model
from relaxomap.train.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_model,
    load_predictor,
    restore_rng_state,
    save_checkpoint,
    sha256_file,
)

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = ModelConfig(arch="pe-unet", base_channels=8, channel_mults=(1, 2), mid_blocks=1, groups=4, emb_dim=16,
                   n_fourier=4)


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(2, 3, 16, 16, generator=g)
    params = torch.tensor([[[500.0, 10.0, 0.0], [4000.0, 90.0, 0.0], [9000.0, 100.0, 2500.0]]] * 2)
    return images, params, torch.ones(2, 3)


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    net = build_model(TINY)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(*_inputs()).mean().backward()
    opt.step()
    path = save_checkpoint(tmp_path / "run" / "last.pt", model=net, model_config=TINY, step=7,
                           train_config={"steps": 100, "lr": 1e-3}, store_schema=1, best_metric=0.25,
                           optimizer=opt, rng=capture_rng_state(), data_position={"epoch": 2, "batch": 3},
                           extra={"param_ranges": {"t1w": {"tr_ms": (400.0, 700.0)}}})
    return path, net


def test_round_trip_of_states_and_plain_values(saved: tuple[Path, torch.nn.Module]) -> None:
    path, net = saved
    ck = load_checkpoint(path, expected_model_config=TINY, expected_schema=1)
    assert (ck["step"], ck["best_metric"], ck["store_schema"]) == (7, 0.25, 1)
    assert ck["data_position"] == {"epoch": 2, "batch": 3}
    assert ck["model_config"] == TINY.to_dict() and ck["train_config"] == {"steps": 100, "lr": 1e-3}
    for k, v in net.state_dict().items():
        torch.testing.assert_close(ck["model"][k], v, rtol=0, atol=0)  # stored bit for bit
    assert ck["optimizer"]["state"][0]["step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left behind


def test_loads_with_weights_only(saved: tuple[Path, torch.nn.Module], monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = saved
    seen = {}
    real = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(path)
    assert seen.get("weights_only") is True


class _Payload:  # an arbitrary class: weights_only unpickling must refuse it
    def __init__(self) -> None:
        self.x = 1


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": ckpt_mod.FORMAT, "format_version": 1, "payload": _Payload()}, path)
    with pytest.raises(ValueError, match=r"evil\.pt could not be read"):
        load_checkpoint(path)


def test_other_model_config_is_refused_listing_fields(saved: tuple[Path, torch.nn.Module]) -> None:
    path, _ = saved
    other = ModelConfig(arch="unet", base_channels=16, channel_mults=(1, 2), mid_blocks=1, groups=4, emb_dim=16,
                        n_fourier=4)
    with pytest.raises(ValueError) as err:
        load_checkpoint(path, expected_model_config=other)
    msg = str(err.value)
    assert str(path) in msg
    assert "arch: checkpoint 'pe-unet' vs requested 'unet'" in msg
    assert "base_channels: checkpoint 8 vs requested 16" in msg
    assert "groups" not in msg  # equal fields are not listed


def test_other_schema_is_refused(saved: tuple[Path, torch.nn.Module]) -> None:
    path, _ = saved
    with pytest.raises(ValueError, match="store_schema: checkpoint 1 vs requested 2"):
        load_checkpoint(path, expected_schema=2)


def test_missing_and_corrupt_files_are_named(saved: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    path, _ = saved
    with pytest.raises(FileNotFoundError, match="nope.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"truncated\.pt could not be read"):
        load_checkpoint(truncated)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"junk\.pt could not be read"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(ValueError, match=r"plain\.pt is not a relaxomap checkpoint"):
        load_checkpoint(plain)


def test_failed_write_keeps_previous_file(saved: tuple[Path, torch.nn.Module], monkeypatch: pytest.MonkeyPatch) -> None:
    path, net = saved
    before = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model=net, model_config=TINY, step=8)
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_load_model_rebuilds_architecture_from_checkpoint(saved: tuple[Path, torch.nn.Module], tmp_path: Path) -> None:
    path, net = saved
    model, config, meta = load_model(path)
    assert config == TINY and not model.training
    assert meta["step"] == 7 and meta["weights"] == "model" and "model" not in meta
    assert meta["param_ranges"]["t1w"]["tr_ms"] == (400.0, 700.0)  # extra facts at the top level
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(*_inputs(1)), net(*_inputs(1)), rtol=0, atol=0)
    # EMA weights are preferred when present
    ema = {k: v + 0.01 if v.is_floating_point() else v for k, v in net.state_dict().items()}
    p2 = save_checkpoint(tmp_path / "ema.pt", model=net, model_config=TINY, step=1, ema=ema)
    model2, _, meta2 = load_model(p2)
    assert meta2["weights"] == "ema"
    torch.testing.assert_close(model2.state_dict()["head.bias"], ema["head.bias"], rtol=0, atol=0)
    model3, _, meta3 = load_model(p2, use_ema=False)
    assert meta3["weights"] == "model"


def test_rng_state_round_trip() -> None:
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    state = capture_rng_state()
    first = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])
    torch.rand(10), np.random.rand(10), random.random()  # move all generators on
    restore_rng_state(state)
    second = (torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)])
    torch.testing.assert_close(first[0], second[0], rtol=0, atol=0)
    np.testing.assert_array_equal(first[1], second[1])
    assert first[2] == second[2]


def test_export_for_inference_keeps_outputs_and_drops_training_state(saved: tuple[Path, torch.nn.Module],
                                                                     tmp_path: Path) -> None:
    from click.testing import CliRunner

    from relaxomap.train.checkpoint import export_for_inference
    from relaxomap.train.cli import main

    path, net = saved
    slim = export_for_inference(path, tmp_path / "model.pt")
    raw = load_checkpoint(slim)
    assert raw["optimizer"] is None and raw["rng"] is None and raw["ema"] is None
    assert slim.stat().st_size < path.stat().st_size
    model, config, meta = load_model(slim)
    assert config == TINY and meta["param_ranges"]["t1w"]["tr_ms"] == (400.0, 700.0)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(*_inputs(2)), net(*_inputs(2)), rtol=0, atol=0)
        # float16 storage: weights rounded to 11 significant bits, so outputs agree to ~1e-2 relative at most.
        half = tmp_path / "half.pt"
        res = CliRunner().invoke(main, ["export", "--ckpt", str(path), "--out", str(half), "--half"])
        assert res.exit_code == 0, res.output
        m16, _, _ = load_model(half)
        torch.testing.assert_close(m16(*_inputs(2)), net(*_inputs(2)), rtol=2e-2, atol=2e-2)


def test_load_predictor_describes_the_checkpoint(saved: tuple[Path, torch.nn.Module]) -> None:
    import hashlib

    path, net = saved
    model, config, meta, info = load_predictor(path)
    assert config == TINY and not model.training
    assert info["sha256"] == sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (info["path"], info["arch"], info["step"], info["weights"]) == (str(path.resolve()), "pe-unet", 7, "model")
    assert info["config"] == TINY.to_dict() and info["format_version"] == ckpt_mod.FORMAT_VERSION
    assert meta["param_ranges"] == {"t1w": {"tr_ms": (400.0, 700.0)}}  # the extra facts at the top level
    with torch.no_grad():
        assert torch.equal(model(*_inputs()), net.eval()(*_inputs()))
    with pytest.raises(FileNotFoundError, match=r"checkpoint .*none\.pt does not exist"):
        load_predictor(path.with_name("none.pt"))

