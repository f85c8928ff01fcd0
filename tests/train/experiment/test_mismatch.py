"""train.experiment.mismatch: the per-tissue signed bias, the oracle prior, a tiny study and its command."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

from relaxomap.physics.tissues import label_lookup
from relaxomap.synth.maps import Maps
from relaxomap.train.experiment.mismatch import (
    MismatchStudyConfig,
    _oracle,
    format_mismatch_table,
    run_mismatch_study,
    tissue_bias,
)


def _maps() -> Maps:
    rng = np.random.default_rng(0)
    labels = rng.choice(np.array([1, 2, 3], np.uint8), size=(12, 12, 4))  # >= 100 CSF voxels: PD anchored
    table = label_lookup(3.0)
    t1, t2, pd = (table[labels, i].astype(np.float32) * rng.uniform(0.9, 1.1, labels.shape).astype(np.float32)
                  for i in range(3))
    pd[labels == 1] = 1.0
    return Maps(t1, t2, pd, labels, np.ones(labels.shape, bool), np.ones(3, np.float32), 3.0, "t", "t")


def test_signed_bias_closed_form_and_pd_on_the_csf_scale() -> None:
    maps = _maps()
    pred = {"t1_ms": maps.t1_ms * np.where(maps.labels == 3, 1.1, 1.0).astype(np.float32),
            "t2_ms": maps.t2_ms * 0.8, "pd": maps.pd * 2.5}  # PD: any global scale is not a bias
    bias = tissue_bias(pred, maps)
    assert_allclose(bias["WM"]["t1_ms"], 10.0, rtol=1e-5)  # float32 maps
    assert_allclose(bias["GM"]["t1_ms"], 0.0, atol=1e-4)
    assert_allclose([bias[g]["t2_ms"] for g in ("WM", "GM", "CSF")], -20.0, rtol=1e-5)
    assert_allclose([bias[g]["pd"] for g in ("WM", "GM", "CSF")], 0.0, atol=1e-4)
    assert all(math.isnan(v) for v in bias["lesion"].values())  # absent group


def test_oracle_writes_the_table_value_of_each_label() -> None:
    maps = _maps()
    got = _oracle(maps)
    table = label_lookup(3.0)
    for lab in (1, 2, 3):
        sel = maps.labels == lab
        assert_allclose([got[k][sel].mean() for k in ("t1_ms", "t2_ms", "pd")], table[lab], rtol=1e-6)


def test_tiny_study_and_command(tiny_ckpt: Path, tmp_path: Path) -> None:
    from relaxomap.train.cli import main

    cfg = MismatchStudyConfig(n_subjects=2, n_slices=4, nlls=False, refine=False)
    res = run_mismatch_study(cfg, checkpoint=tiny_ckpt, device="cpu", cases=("none", "receive"))
    assert set(res["cases"]) == {"none", "receive"}
    for case in res["cases"].values():
        assert set(case) == {"network", "oracle-prior"}
        assert case["network"]["WM"]["t1_ms"]["n"] == 2 and math.isfinite(case["network"]["WM"]["t1_ms"]["sd"])
    # the oracle ignores the images: its bias is the same in every case
    assert res["cases"]["none"]["oracle-prior"] == res["cases"]["receive"]["oracle-prior"]
    assert "| none | network |" in format_mismatch_table(res)
    out = tmp_path / "mismatch.md"
    r = CliRunner().invoke(main, ["experiment", "mismatch", "--checkpoint", str(tiny_ckpt), "--subjects", "1",
                                  "--slices", "4", "--no-nlls", "--no-refine", "--case", "none", "--device", "cpu",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "| none | oracle-prior |" in out.read_text()
    assert json.loads(out.with_suffix(".json").read_text())["config"]["n_subjects"] == 1
    r = CliRunner().invoke(main, ["experiment", "mismatch", "--case", "gradients", "--checkpoint", str(tiny_ckpt)])
    assert r.exit_code != 0 and "unknown cases ['gradients']" in r.output


def test_subject47_source_gives_a_central_slab(shared_data: Path) -> None:
    """source="subject47": the augmented BrainWeb subject 47 cut to its n_slices central axial slices, brain in
    every slice, values moved off the tables (WM T1 differs from the 3 T table by more than rounding)."""
    from relaxomap.train.experiment.mismatch import _subject

    maps = _subject(MismatchStudyConfig(source="subject47", n_slices=6), 0)
    assert maps.t1_ms.shape[2] == 6 and maps.mask.any(axis=(0, 1)).all()
    wm = (maps.labels == 3) & maps.mask
    assert abs(np.median(maps.t1_ms[wm]) / label_lookup(3.0)[3][0] - 1) > 0.01
    with pytest.raises(ValueError, match="source must be one of"):
        MismatchStudyConfig(source="colin")
