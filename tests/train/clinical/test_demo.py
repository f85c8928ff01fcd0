"""relaxomap demo end to end with a tiny random checkpoint: files, metrics against an independent computation."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

from tests.train.clinical.helpers import make_tiny_checkpoint


def test_demo_end_to_end(tmp_path: Path) -> None:
    from relaxomap.train.cli import main

    ckpt = make_tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "demo"
    res = CliRunner().invoke(main, ["demo", "--out", str(out), "--seed", "3", "--checkpoint", str(ckpt)])
    assert res.exit_code == 0, res.output
    assert "| prediction | T1 |" in res.output and "| prediction | PD (CSF = 1) |" in res.output
    assert "Whole brain mask (peak = CSF maximum)" in res.output and "| prediction | WM |" in res.output
    for rel in ("inputs/T1w.nii.gz", "inputs/T2w.json", "inputs/FLAIR.json", "truth/T1_ms.nii.gz",
                "prediction/T2_ms.nii.gz", "prediction/provenance.json", "figure.png", "metrics.json", "metrics.md"):
        assert (out / rel).is_file(), rel
    report = json.loads((out / "metrics.json").read_text())
    prov = json.loads((out / "prediction" / "provenance.json").read_text())
    # predict read the written sidecars (seconds) and recovered the simulated protocol (ms)
    for c in ("t1w", "t2w", "flair"):
        prot = report["case"]["protocols"][c]
        for f in ("tr_ms", "te_ms", "ti_ms"):
            assert prov["parameters"][c][f]["value_ms"] == pytest.approx(prot[f], rel=1e-12), (c, f)
    # the seed is the demo's own sequence, not a training store's
    assert report["case"]["subject_id"] == f"phantom-{report['case']['subject_seed']}"
    # MAE inside the brain mask, recomputed from the files (float32 maps: pooled mean to ~1e-6 relative)
    truth = nib.load(out / "truth" / "T1_ms.nii.gz").get_fdata()
    pred = nib.load(out / "prediction" / "T1_ms.nii.gz").get_fdata()
    mask = nib.load(out / "truth" / "brain_mask.nii.gz").get_fdata() > 0
    assert_allclose(report["metrics"]["brain"]["t1"]["mae"], np.abs(pred - truth)[mask].mean(), rtol=1e-5)
    rel = np.abs(pred - truth)[mask & (truth > 0)] / truth[mask & (truth > 0)]
    assert_allclose(report["metrics"]["brain"]["t1"]["mpe_pct"], 100 * rel.mean(), rtol=1e-5)
    # The automatic brain mask's Dice, recomputed from the written inputs and truth mask. The phantom is the
    # case the masker is built for (skull, scalp, CSF around the brain): below 0.95 it is not working.
    from relaxomap.train.clinical.brainmask import auto_brain_mask

    images = [nib.load(out / "inputs" / f"{c}.nii.gz").get_fdata(dtype=np.float32) for c in ("T1w", "T2w", "FLAIR")]
    auto = auto_brain_mask(images, nib.load(out / "truth" / "brain_mask.nii.gz").header.get_zooms()[:3])
    dice = 2 * (auto & mask).sum() / (auto.sum() + mask.sum())
    assert_allclose(report["auto_mask_dice"], dice, rtol=1e-12)
    assert dice > 0.95, dice
    labels = nib.load(out / "truth" / "labels.nii.gz").get_fdata()
    assert np.isin(labels[mask], [12, 14, 15, 16, 17]).any()  # the demo phantom carries lesions
    # per-tissue signed bias and parenchyma MPE, recomputed from the files (float32 maps: ~1e-5 relative)
    m = report["metrics"]
    par, wm = mask & (labels != 1), mask & (labels == 3)
    rel = (pred - truth)[par] / truth[par]
    assert_allclose(m["parenchyma"]["t1"]["mpe_pct"], 100 * np.abs(rel).mean(), rtol=1e-5)
    assert_allclose(m["tissue"]["WM"]["t1"]["bias_pct"], 100 * ((pred - truth)[wm] / truth[wm]).mean(), rtol=1e-4,
                    atol=1e-4)
    # PD anchored on the case's core CSF (label 1, true PD >= 0.95): s = median(pred) / median(true) there
    pd_t = nib.load(out / "truth" / "PD.nii.gz").get_fdata()
    pd_p = nib.load(out / "prediction" / "PD.nii.gz").get_fdata()
    core = mask & (labels == 1) & (pd_t >= 0.95)
    scale = np.median(pd_p[core]) / np.median(pd_t[core])
    assert_allclose(m["pd_anchor"]["subjects"][report["case"]["subject_id"]]["scale"], scale, rtol=1e-6)
    want = 100 * ((pd_p[wm] / scale - pd_t[wm]) / pd_t[wm]).mean()
    assert_allclose(m["tissue"]["WM"]["pd_csf"]["bias_pct"], want, rtol=1e-4, atol=1e-4)
