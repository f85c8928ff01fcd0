"""synth.value_shift: tissue values moved off the tables (the evaluation's value-shift scenarios)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics.tissues import BRAIN_LABELS
from relaxomap.synth.sources import SourceConfig, draw_subject
from relaxomap.synth.value_shift import ValueShiftConfig, shift_values, value_factors


def test_factors_stay_in_their_ranges_csf_keeps_the_pd_scale() -> None:
    cfg = ValueShiftConfig(parenchyma_pd=(1.10, 1.15))
    for seed in range(20):
        k = value_factors(np.random.default_rng(seed), cfg)
        brain = [lab for lab in BRAIN_LABELS if lab != 1]
        assert np.all((k[brain, :2] >= 0.75) & (k[brain, :2] <= 1.25))
        assert np.all((k[1, :2] >= 0.9) & (k[1, :2] <= 1.1)) and k[1, 2] == 1.0
        assert np.all((k[[2, 3, 13], 2] >= 0.95 * 1.10) & (k[[2, 3, 13], 2] <= 1.05 * 1.15))  # oedema-like
        assert np.all((k[[12, 14, 15, 16, 17], 2] >= 0.95) & (k[[12, 14, 15, 16, 17], 2] <= 1.05))
        others = [lab for lab in range(256) if lab not in BRAIN_LABELS]
        assert np.all(k[others] == 1.0)  # scalp, fat, bone: as drawn


def test_pure_tissue_voxels_move_by_exactly_their_factors(shared_data: Path) -> None:
    """On crisp BrainWeb maps (pure voxels hold their label's value exactly) each pure voxel's T1, T2, PD is
    its value times the factors (float32 rates: 1e-5 relative); mixtures stay between their tissues."""
    from relaxomap.synth.real import brainweb_paths, load_maps

    maps = load_maps(brainweb_paths(shared_data)["colin27"])
    shifted, k = shift_values(maps, np.random.default_rng(4), ValueShiftConfig())
    for lab in (1, 2, 3):
        sel = maps.labels == lab
        values = maps.t1_ms[sel]
        mode = np.bincount(np.unique(values, return_inverse=True)[1]).argmax()
        pure = sel & (maps.t1_ms == np.unique(values)[mode])
        for i, (a, b) in enumerate(((maps.t1_ms, shifted.t1_ms), (maps.t2_ms, shifted.t2_ms), (maps.pd, shifted.pd))):
            assert_allclose(b[pure] / a[pure], k[lab, i], rtol=1e-5)
    assert np.array_equal(shifted.labels, maps.labels) and np.array_equal(shifted.mask, maps.mask)


def test_source_with_value_shift_keeps_anatomy_and_round_trips() -> None:
    cfg = SourceConfig(healthy_only=True, value_shift=ValueShiftConfig(t1=(0.8, 0.8), t2=(1.2, 1.2)))
    assert SourceConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    plain = draw_subject(SourceConfig(healthy_only=True), 11)
    moved = draw_subject(cfg, 11)
    assert moved.subject_id == plain.subject_id and np.array_equal(moved.labels, plain.labels)
    wm = plain.labels == 3
    # A fixed factor (a range of zero width) on every brain tissue's T1 and T2. The phantom's texture is not
    # crisp: the re-mixing reads part of a textured voxel's deviation as a second, unshifted tissue (scalp,
    # vessels), so the median moves by the factor to within 2 % (measured 1.0 %); pure voxels move exactly
    # (previous test).
    assert_allclose(np.median(moved.t1_ms[wm]) / np.median(plain.t1_ms[wm]), 0.8, rtol=0.02)
    assert_allclose(np.median(moved.t2_ms[wm]) / np.median(plain.t2_ms[wm]), 1.2, rtol=0.02)
    again = draw_subject(cfg, 11)
    assert np.array_equal(again.t1_ms, moved.t1_ms)  # deterministic in (config, seed)


def test_bad_ranges_are_named() -> None:
    with pytest.raises(ValueError, match=r"ValueShiftConfig\.t1"):
        ValueShiftConfig(t1=(1.3, 0.7))
    with pytest.raises(ValueError, match=r"ValueShiftConfig\.parenchyma_pd"):
        ValueShiftConfig(parenchyma_pd=(0.1, 3.0))
    with pytest.raises(TypeError, match=r"SourceConfig\.value_shift"):
        SourceConfig(value_shift={"t1": (0.8, 1.2)})
