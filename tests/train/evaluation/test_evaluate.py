"""``train.evaluation.evaluate`` and ``relaxomap evaluate``: outputs, metrics identical to train.evaluation.metrics, CLI, errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from numpy.testing import assert_allclose

from relaxomap.model.config import ModelConfig
from relaxomap.model.unet import build_model
from relaxomap.train.checkpoint import load_model, save_checkpoint
from relaxomap.train.cli import main
from relaxomap.train.evaluation.evaluate import binned_curves, evaluate, model_names, run_evaluate
from relaxomap.train.evaluation.metrics import flatten_metrics, slice_metrics

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 phantom slices of 32 x 32 written by the real generator through the CLI."""
    out = tmp_path_factory.mktemp("eval_store") / "scenario_a.h5"
    res = CliRunner().invoke(main, ["synth", "--out", str(out), "--n", "4", "--size", "32", "--slices", "2",
                                    "--seed", "5"])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny randomly initialised networks saved with the checkpoint API (two pe-unet files, one unet)."""
    folder = tmp_path_factory.mktemp("eval_ckpt")
    torch.manual_seed(0)
    out = {}
    for name, arch in (("pe", "pe-unet"), ("pe2", "pe-unet"), ("unet", "unet")):
        cfg = ModelConfig(arch=arch, base_channels=8, channel_mults=(1, 2), groups=4, emb_dim=16, n_fourier=4)
        out[name] = save_checkpoint(folder / f"{name}.pt", model=build_model(cfg), model_config=cfg, step=3)
    return out


def _finite_items(flat: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in flat.items() if v is not None and math.isfinite(v)}


def test_outputs_written_with_expected_keys(tmp_path: Path, store: Path, checkpoints: dict[str, Path]) -> None:
    out = tmp_path / "report"
    ev = run_evaluate([checkpoints["pe"], checkpoints["unet"], "nlls"], [store], out, split="all", max_samples=2,
                      n_examples=1)
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".png")) == ["results.json", "results.md"]
    res = json.loads((out / "results.json").read_text())
    assert res == ev.results
    scen = res["scenarios"]["scenario_a"]
    assert set(scen["models"]) == {"pe-unet", "unet", "nlls"}
    for entry in scen["models"].values():
        assert entry["n_slices"] == 2 and entry["n_skipped"] == 0
        assert {"brain", "brain_no_csf", "whole_slice", "tissue"} <= set(entry["metrics"])
        assert set(entry["metrics"]["brain"]) == {"t1", "t2", "pd"}
        assert {"mean", "std", "n"} == set(entry["per_slice"]["t1"]["psnr_db"])
    samples = res["samples"]["scenario_a"]
    assert len(samples) == 2
    for rec in samples:
        assert set(rec["params"]) == {"t1w", "t2w", "flair"} and set(rec["snr"]) == {"t1w", "t2w", "flair"}
        assert set(rec["metrics"]) == {"pe-unet", "unet", "nlls"}
    montage = out / "montage_scenario_a_0.png"
    assert montage.read_bytes()[:8] == _PNG_MAGIC
    curves = res["curves"]["scenario_a"]
    assert curves, "two samples with random protocols must give at least one varying acquisition time"
    assert (out / "curves_scenario_a.png").read_bytes()[:8] == _PNG_MAGIC
    md = (out / "results.md").read_text()
    for needle in ("## Scenario `scenario_a`", "| pe-unet | T1 |", "| nlls | PD |", "### Per tissue"):
        assert needle in md


def test_metrics_equal_train_metrics_on_one_sample(store: Path, checkpoints: dict[str, Path]) -> None:
    """The evaluation of one slice must be exactly train.evaluation.metrics applied to the model's prediction of that
    slice (same float32 forward pass with batch 1, same float64 metric code): rtol 1e-12 only absorbs the
    float summation order."""
    from relaxomap.synth.dataset import SynthDataset
    from relaxomap.physics.voxel_fit import fit_slice

    ev = evaluate({"net": checkpoints["pe"], "nlls": "nlls"}, [store], split="all", max_samples=1, batch=1)
    ds = SynthDataset(store)
    item = ds[0]
    net, _, _ = load_model(checkpoints["pe"])
    with torch.inference_mode():
        pred = net(item["inputs"][None], item["params"][None], item["present"][None])[0].numpy()
    true = item["targets"].numpy()
    mask = item["mask"].numpy()[0] > 0
    labels = item["labels"].numpy()
    import h5py

    with h5py.File(store, "r") as f:
        prot, field_t = f["protocols"][0], float(f["field_t"][0])
    fit = fit_slice(item["inputs"].numpy(), prot, mask, present=item["present"].numpy(), field_t=field_t)
    ds.close()
    for name, p in (("net", pred), ("nlls", fit.maps)):
        got = _finite_items(flatten_metrics(ev.results["scenarios"]["scenario_a"]["models"][name]["metrics"]))
        want = _finite_items(flatten_metrics(slice_metrics(p.astype(np.float64), true.astype(np.float64), mask,
                                                           labels)))
        assert set(got) == set(want)
        assert_allclose([got[k] for k in sorted(got)], [want[k] for k in sorted(want)], rtol=1e-12)
        rec = ev.results["samples"]["scenario_a"][0]["metrics"][name]
        assert_allclose(rec["t1"]["psnr_db"], want["brain/t1/psnr_db"], rtol=1e-12)


def test_cli_evaluate(tmp_path: Path, store: Path, checkpoints: dict[str, Path]) -> None:
    out = tmp_path / "cli"
    res = CliRunner().invoke(main, ["evaluate", "--model", str(checkpoints["pe"]), "--model", str(checkpoints["pe2"]),
                                    "--no-nlls", "--store", str(store), "--out", str(out), "--split", "all",
                                    "--max-samples", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "| pe-unet (pe) | T1 |" in res.output and "| pe-unet (pe2) | PD |" in res.output
    assert "Summary" in res.output
    assert set(json.loads((out / "results.json").read_text())["models"]) == {"pe-unet (pe)", "pe-unet (pe2)"}


def test_cli_bad_model_path(tmp_path: Path, store: Path) -> None:
    out = tmp_path / "never"
    res = CliRunner().invoke(main, ["evaluate", "--model", str(tmp_path / "missing.pt"), "--store", str(store),
                                    "--out", str(out)])
    assert res.exit_code == 1
    assert "missing.pt not found" in res.output
    assert not out.exists()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    res = CliRunner().invoke(main, ["evaluate", "--model", str(junk), "--store", str(store), "--out", str(out)])
    assert res.exit_code == 1
    assert "junk.pt" in res.output and "could not be read" in res.output
    assert not out.exists()


def test_nothing_to_evaluate_and_non_empty_output(tmp_path: Path, store: Path) -> None:
    res = CliRunner().invoke(main, ["evaluate", "--no-nlls", "--store", str(store), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "nothing to evaluate" in res.output
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        run_evaluate(["nlls"], [store], busy, split="all", max_samples=1)
    assert (busy / "keep.txt").read_text() == "x"


def test_bad_split_and_store(tmp_path: Path, store: Path) -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        evaluate(["nlls"], [store], split="holdout")
    with pytest.raises(ValueError, match="nope.h5"):
        evaluate(["nlls"], [tmp_path / "nope.h5"], split="all")


def test_model_names_disambiguate() -> None:
    assert model_names(["pe-unet", "unet"], ["a/best.pt", "b/best.pt"]) == ["pe-unet", "unet"]
    assert model_names(["pe-unet", "pe-unet", "unet"], ["a/best.pt", "a/last.pt", "c/x.pt"]) == \
        ["pe-unet (best)", "pe-unet (last)", "unet"]
    assert model_names(["unet", "unet"], ["a/best.pt", "b/best.pt"]) == ["unet (best)", "unet (b/best)"]


def _record(tr: float, psnr_t1: float) -> dict:
    par = {"tr_ms": tr, "te_ms": 10.0, "ti_ms": 0.0}
    maps = {m: {"psnr_db": psnr_t1 if m == "t1" else 20.0} for m in ("t1", "t2", "pd")}
    return {"params": {"t1w": par, "t2w": dict(par, te_ms=100.0), "flair": None},
            "kinds": {"t1w": "se", "t2w": "tse", "flair": None},
            "snr": {"t1w": 30.0, "t2w": 30.0, "flair": None}, "metrics": {"m": maps}}


def test_binned_curves_by_quantile() -> None:
    """TR 500, 600 | 700, 800 in two quantile bins: the T1 PSNR means are (10+20)/2 and (30+40)/2 exactly;
    variables that do not vary (TE, SNR) give no curve."""
    recs = [_record(tr, p) for tr, p in ((500.0, 10.0), (600.0, 20.0), (700.0, 30.0), (800.0, 40.0))]
    curves = binned_curves(recs, ["m"], max_bins=2)
    assert set(curves) == {"t1w tr_ms", "t2w tr_ms"}
    c = curves["t1w tr_ms"]
    assert_allclose(c["edges"], [500.0, 650.0, 800.0])
    assert c["n"] == [2, 2]
    assert_allclose(c["x_mean"], [550.0, 750.0])
    assert_allclose(c["psnr_db"]["m"]["t1"], [15.0, 35.0])
    assert_allclose(c["psnr_db"]["m"]["pd"], [20.0, 20.0])


def test_missing_contrast_skips_nlls_only(tmp_path: Path, checkpoints: dict[str, Path]) -> None:
    """A store whose T1w is always absent: the network is evaluated on every slice, the NLLS baseline (which
    needs three contrasts) on none, and the report says so instead of failing."""
    cfg = tmp_path / "synth.json"
    cfg.write_text(json.dumps({"missing_probability": [1.0, 0.0, 0.0]}))
    store = tmp_path / "no_t1w.h5"
    res = CliRunner().invoke(main, ["synth", "--out", str(store), "--n", "2", "--size", "32", "--slices", "2",
                                    "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    out = tmp_path / "report"
    ev = run_evaluate([checkpoints["unet"], "nlls"], [store], out, split="all")
    models = ev.results["scenarios"]["no_t1w"]["models"]
    assert (models["unet"]["n_slices"], models["unet"]["n_skipped"]) == (2, 0)
    assert (models["nlls"]["n_slices"], models["nlls"]["n_skipped"]) == (0, 2)
    for rec in ev.results["samples"]["no_t1w"]:
        assert rec["metrics"]["nlls"] is None and rec["skipped"] == {"nlls": "needs all three contrasts"}
    assert "| nlls | T1 | 0 | – |" in (out / "results.md").read_text()
