"""The segmentation-only baseline (``oracle-prior``): the tissue table at the true labels scores 0 on maps whose
tissue values equal the table, and on jittered maps its error is exactly the jitter, computed here from the
stored truth and the table (not by the evaluation code)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

from relaxomap.physics.tissues import label_lookup
from relaxomap.train.evaluation.baselines import oracle_prior_predict
from relaxomap.train.evaluation.evaluate import evaluate

_GROUPS = {"CSF": 1, "GM": 2, "WM": 3, "deep_GM": 13}


def _table_head(path: Path) -> Path:
    """A 48 × 48 × 8 head of pure tissues (no partial volume): skin, CSF, GM, WM, a ventricle and a deep-GM
    nucleus, each voxel holding the 3 T table value of its label."""
    x, y, z = np.mgrid[:48, :48, :8]
    r = np.sqrt(((x - 23.5) / 22) ** 2 + ((y - 23.5) / 20) ** 2 + ((z - 3.5) / 30) ** 2)
    lab = np.zeros((48, 48, 8), np.uint8)
    lab[r < 1.0], lab[r < 0.9], lab[r < 0.8], lab[r < 0.6] = 6, 1, 2, 3
    lab[(np.abs(x - 23.5) < 4) & (np.abs(y - 23.5) < 3)] = 1
    lab[(np.abs(x - 14) < 3) & (np.abs(y - 23.5) < 4)] = 13
    maps = label_lookup(3.0)[lab]
    np.savez(path, t1_ms=maps[..., 0], t2_ms=maps[..., 1], pd=maps[..., 2], labels=lab,
             voxel_mm=np.array([1.0, 1.0, 1.0]), field_t=np.array(3.0))
    return path


@pytest.fixture(scope="module")
def table_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two stores from the same real-map source: ``exact`` without tissue-value jitter (``augment=None``: the
    maps are the table), ``jittered`` with the augmentation reduced to its per-subject tissue-value jitter (no
    warp, flip, texture or global field, so every voxel of a label keeps one value)."""
    from relaxomap.synth.augment.config import AugmentConfig
    from relaxomap.synth.generate import SynthConfig
    from relaxomap.synth.sources import SourceConfig
    from relaxomap.synth.store.writer import write_store

    folder = tmp_path_factory.mktemp("oracle")
    src = SourceConfig(kind="real", paths=(str(_table_head(folder / "head_3T.npz")),), augment=None,
                       healthy_only=True)
    cfg = SynthConfig(source=src, image_size=(48, 48), slices_per_subject=2, seed=3)
    aug = AugmentConfig(flip_prob=(0, 0, 0), rotate_deg=(0, 0, 0), scale=(1, 1), aspect_sd=0, shift_mm=0,
                        elastic_mm=0, tissue_sd=(0.1, 0.12, 0.05), texture_sd=(0, 0, 0), global_sd=(0, 0, 0))
    out = {"exact": folder / "exact.h5", "jittered": folder / "jittered.h5"}
    write_store(cfg, out["exact"], 4)
    write_store(cfg.replace(source=dataclasses.replace(src, augment=aug)), out["jittered"], 6)
    return out


def test_oracle_scores_zero_when_the_tissues_are_the_table(table_stores: dict[str, Path]) -> None:
    ev = evaluate({"oracle-prior": "oracle-prior"}, [table_stores["exact"]], split="all")
    m = ev.results["scenarios"]["exact"]["models"]["oracle-prior"]["metrics"]
    with h5py.File(table_stores["exact"], "r") as f:
        ids = [s.decode() for s in f["subject_id"][...]]
    # one entry per store subject, each with its two slices
    assert len(set(ids)) == 2
    assert {k: v["n_slices"] for k, v in m["per_subject"].items()} == {k: ids.count(k) for k in ids}
    assert m["n_subjects"] == 2 and set(m["tissue"]) == set(_GROUPS)
    for entry in [m["brain"], m["parenchyma"], *m["tissue"].values()]:
        for mp in ("t1", "t2", "pd", "pd_csf"):
            # float32 table values on both sides: exactly zero
            assert entry[mp]["mae"] == 0.0 and entry[mp]["mpe_pct"] == 0.0 and entry[mp]["bias_pct"] == 0.0
    assert m["parenchyma"]["t1"]["psnr_db"] is None  # infinite PSNR, written as null
    assert m["pd_anchor"]["n_anchored"] == 2 and all(a["scale"] == 1.0 for a in m["pd_anchor"]["subjects"].values())


def test_oracle_error_on_jittered_tissues_is_the_jitter(table_stores: dict[str, Path]) -> None:
    ev = evaluate({"oracle-prior": "oracle-prior"}, [table_stores["jittered"]], split="all")
    m = ev.results["scenarios"]["jittered"]["models"]["oracle-prior"]["metrics"]
    with h5py.File(table_stores["jittered"], "r") as f:
        true, lab, ids = f["targets"][...], f["labels"][...], [s.decode() for s in f["subject_id"][...]]
    table = label_lookup(3.0)
    factors: dict[str, dict[str, np.ndarray]] = {}
    for sid in sorted(set(ids)):
        rows = [i for i, s in enumerate(ids) if s == sid]
        factors[sid] = {}
        for group, label in _GROUPS.items():
            # the subject's jitter factor of this tissue: truth / table, one value for all its voxels
            ratio = np.concatenate([true[i][:, lab[i] == label] / table[label][:, None] for i in rows], axis=1)
            assert np.ptp(ratio, axis=1).max() < 1e-5
            factors[sid][group] = ratio.mean(axis=1).astype(np.float64)
    jit = np.array([f for per in factors.values() for f in per.values()])
    assert np.abs(jit - 1).max() > 0.05  # the jitter is there: the test can fail
    for sid, per in factors.items():
        for group, f in per.items():
            got = m["per_subject"][sid]["tissue"][group]
            for c, mp in enumerate(("t1", "t2", "pd")):
                want = (1.0 / f[c] - 1.0) * 100.0  # (table − table·f) / (table·f)
                # float32 maps re-mapped in rate space carry ~3e-6 relative round-off per voxel (~3e-4 %), against
                # jitters of several %
                assert_allclose(got[mp]["bias_pct"], want, rtol=0, atol=1e-3, err_msg=f"{sid} {group} {mp}")
                assert_allclose(got[mp]["mpe_pct"], abs(want), rtol=0, atol=1e-3)
        # CSF PD is not jittered (it defines the scale): the anchor is 1 and the anchored PD is the raw one
        assert abs(per["CSF"][2] - 1.0) < 1e-6
    for group in _GROUPS:
        want = [(1.0 / factors[s][group][0] - 1.0) * 100.0 for s in factors]
        got = m["tissue"][group]["t1"]["subjects"]["bias_pct"]
        assert_allclose([got["mean"], got["std"]], [np.mean(want), np.std(want, ddof=1)], rtol=0, atol=1e-3)


def test_oracle_prior_predict_uses_each_slices_field() -> None:
    labels = np.array([[[1, 2], [3, 0]], [[1, 2], [3, 13]]])
    maps, ok = oracle_prior_predict(labels, np.array([3.0, 1.5]))
    assert ok.all()
    assert_allclose(maps[0, :, 1, 0], label_lookup(3.0)[3], rtol=0)  # WM at 3 T
    assert_allclose(maps[1, :, 1, 1], label_lookup(1.5)[13], rtol=0)  # deep GM at 1.5 T
    errors: dict = {}
    _, ok = oracle_prior_predict(labels, np.array([3.0, 7.0]), rows=[10, 11], errors=errors)
    assert ok.tolist() == [True, False] and "field_t" in errors[(11, "oracle-prior")]


def test_cli_evaluates_the_oracle_prior_by_default(tmp_path: Path, table_stores: dict[str, Path]) -> None:
    from relaxomap.train.cli import main

    out = tmp_path / "ev"
    res = CliRunner().invoke(main, ["evaluate", "--no-nlls", "--store", str(table_stores["exact"]), "--out", str(out),
                                    "--split", "all", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "| oracle-prior | T1 | 2 | 0.0 ± 0.0 | +0.0 ± 0.0 | 0.0 ± 0.0 ms |" in res.output
    assert "Whole brain mask (peak = CSF maximum)" in res.output
    res = CliRunner().invoke(main, ["evaluate", "--no-nlls", "--no-oracle-prior", "--store",
                                    str(table_stores["exact"]), "--out", str(tmp_path / "o2")])
    assert res.exit_code == 2 and "nothing to evaluate" in res.output
