"""``train.evaluation.evaluate``: outputs, metrics identical to the accumulator of train.evaluation, subjects
closed as their last slice is scored, names, errors."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from numpy.testing import assert_allclose

from relaxomap.train.checkpoint import load_model
from relaxomap.train.cli import main
from relaxomap.train.evaluation.evaluate import evaluate, model_names, run_evaluate
from relaxomap.train.evaluation.accumulate import MetricAccumulator, flatten_metrics

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _finite_items(flat: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in flat.items() if v is not None and math.isfinite(v)}


def test_outputs_written_with_expected_keys(tmp_path: Path, scenario_store: Path,
                                            tiny_checkpoints: dict[str, Path]) -> None:
    out = tmp_path / "report"
    ev = run_evaluate([tiny_checkpoints["pe"], tiny_checkpoints["unet"], "nlls", "oracle-prior"], [scenario_store], out,
                      split="all", max_samples=2, n_examples=1)
    assert sorted(p.name for p in out.iterdir() if not p.name.endswith(".png")) == ["results.json", "results.md"]
    res = json.loads((out / "results.json").read_text())
    assert res == ev.results
    scen = res["scenarios"]["scenario_a"]
    assert set(scen["models"]) == {"pe-unet", "unet", "nlls", "oracle-prior"}
    assert res["models"]["oracle-prior"]["kind"] == "oracle-prior" and res["format_version"] == 2
    for entry in scen["models"].values():
        assert entry["n_slices"] == 2 and entry["n_skipped"] == 0
        assert {"brain", "parenchyma", "whole_slice", "tissue", "pd_anchor", "per_subject"} <= set(entry["metrics"])
        assert set(entry["metrics"]["parenchyma"]) == {"t1", "t2", "pd", "pd_csf"}
        assert {"mean", "std", "n"} == set(entry["metrics"]["parenchyma"]["t1"]["subjects"]["mpe_pct"])
    samples = res["samples"]["scenario_a"]
    assert len(samples) == 2
    for rec in samples:
        assert set(rec["params"]) == {"t1w", "t2w", "flair"} and set(rec["snr"]) == {"t1w", "t2w", "flair"}
        assert set(rec["metrics"]) == {"pe-unet", "unet", "nlls", "oracle-prior"}
    montage = out / "montage_scenario_a_0.png"
    assert montage.read_bytes()[:8] == _PNG_MAGIC
    curves = res["curves"]["scenario_a"]
    assert curves, "two samples with random protocols must give at least one varying acquisition time"
    assert (out / "curves_scenario_a.png").read_bytes()[:8] == _PNG_MAGIC
    md = (out / "results.md").read_text()
    for needle in ("## Scenario `scenario_a`", "| pe-unet | T1 |", "| nlls | PD (CSF = 1) |", "| oracle-prior | WM |",
                   "Whole brain mask (peak = CSF maximum)", "T2 per tissue, pooled over voxels"):
        assert needle in md


def test_metrics_equal_train_metrics_on_one_sample(scenario_store: Path, tiny_checkpoints: dict[str, Path]) -> None:
    """The evaluation of one slice must be exactly the accumulator of train.evaluation applied to the model's
    prediction of that slice (same float32 forward pass with batch 1, same float64 metric code): rtol 1e-12 only
    absorbs the float summation order."""
    from relaxomap.synth.store.dataset import SynthDataset
    from relaxomap.physics.voxel_fit import fit_slice

    ev = evaluate({"net": tiny_checkpoints["pe"], "nlls": "nlls"}, [scenario_store], split="all", max_samples=1,
                  batch=1)
    ds = SynthDataset(scenario_store)
    item = ds[0]
    net, _, _ = load_model(tiny_checkpoints["pe"])
    with torch.inference_mode():
        pred = net(item["inputs"][None], item["params"][None], item["present"][None])[0].numpy()
    true = item["targets"].numpy()
    mask = item["mask"].numpy()[0] > 0
    labels = item["labels"].numpy()
    import h5py

    with h5py.File(scenario_store, "r") as f:
        prot, field_t, subject = f["protocols"][0], float(f["field_t"][0]), f["subject_id"][0].decode()
    fit = fit_slice(item["inputs"].numpy(), prot, mask, present=item["present"].numpy(), field_t=field_t)
    ds.close()
    for name, p in (("net", pred), ("nlls", fit.maps)):
        acc = MetricAccumulator()
        acc.update(p.astype(np.float64), true.astype(np.float64), mask, labels, subject=subject)
        got = _finite_items(flatten_metrics(ev.results["scenarios"]["scenario_a"]["models"][name]["metrics"]))
        want = _finite_items(flatten_metrics(acc.result()))
        assert set(got) == set(want)
        assert_allclose([got[k] for k in sorted(got)], [want[k] for k in sorted(want)], rtol=1e-12)
        rec = ev.results["samples"]["scenario_a"][0]["metrics"][name]
        assert_allclose(rec["t1"]["psnr_parenchyma_db"], want["parenchyma/t1/psnr_db"], rtol=1e-12)


def test_nothing_to_evaluate_and_non_empty_output(tmp_path: Path, scenario_store: Path) -> None:
    res = CliRunner().invoke(main, ["evaluate", "--no-nlls", "--no-oracle-prior", "--store", str(scenario_store),
                                    "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "nothing to evaluate" in res.output
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        run_evaluate(["nlls"], [scenario_store], busy, split="all", max_samples=1)
    assert (busy / "keep.txt").read_text() == "x"


def test_bad_split_and_store(tmp_path: Path, scenario_store: Path) -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        evaluate(["nlls"], [scenario_store], split="holdout")
    with pytest.raises(ValueError, match="nope.h5"):
        evaluate(["nlls"], [tmp_path / "nope.h5"], split="all")


def test_model_names_disambiguate() -> None:
    assert model_names(["pe-unet", "unet"], ["a/best.pt", "b/best.pt"]) == ["pe-unet", "unet"]
    assert model_names(["pe-unet", "pe-unet", "unet"], ["a/best.pt", "a/last.pt", "c/x.pt"]) == \
        ["pe-unet (best)", "pe-unet (last)", "unet"]
    assert model_names(["unet", "unet"], ["a/best.pt", "b/best.pt"]) == ["unet (best)", "unet (b/best)"]


def test_missing_contrast_skips_nlls_only(tmp_path: Path, tiny_checkpoints: dict[str, Path]) -> None:
    """A store whose T1w is always absent: the network is evaluated on every slice, the NLLS baseline (which
    needs three contrasts) on none, and the report says so instead of failing."""
    cfg = tmp_path / "synth.json"
    cfg.write_text(json.dumps({"missing_probability": [1.0, 0.0, 0.0]}))
    store = tmp_path / "no_t1w.h5"
    res = CliRunner().invoke(main, ["synth", "--out", str(store), "--n", "2", "--size", "32", "--slices", "2",
                                    "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    out = tmp_path / "report"
    ev = run_evaluate([tiny_checkpoints["unet"], "nlls"], [store], out, split="all")
    models = ev.results["scenarios"]["no_t1w"]["models"]
    assert (models["unet"]["n_slices"], models["unet"]["n_skipped"]) == (2, 0)
    assert (models["nlls"]["n_slices"], models["nlls"]["n_skipped"]) == (0, 2)
    for rec in ev.results["samples"]["no_t1w"]:
        assert rec["metrics"]["nlls"] is None and rec["skipped"] == {"nlls": "needs all three contrasts"}
    md = (out / "results.md").read_text()
    assert "| nlls | T1 | 0 | – |" in md and "Slices not evaluated: nlls 2." in md
