"""Lesions inserted into labelled maps: labels, values, locality; LesionConfig validation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from scipy import ndimage

from relaxomap.physics.tissues import LESION_LABELS, label_lookup
from relaxomap.synth.lesions import LesionConfig, insert_lesions
from relaxomap.synth.phantom.build import make_phantom
from relaxomap.synth.phantom.config import PhantomConfig
from tests.synth.phantom.anatomy import FLAT, MID, interior


def test_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match="p_ms"):
        LesionConfig(p_ms=1.5)
    with pytest.raises(ValueError, match="ms_count"):
        LesionConfig(ms_count=(5, 2))
    with pytest.raises(TypeError, match="insert_lesions: config must be a LesionConfig"):
        insert_lesions(None, np.random.default_rng(0), {"p_ms": 1.0})


def test_lesions_have_their_labels_and_values() -> None:
    # a tumour large enough for a necrotic core with interior voxels; three infarcts, so that the interior
    # check does not hang on one wedge that may land where the cortex is thin
    cfg = LesionConfig(p_ms=1.0, ms_count=(8, 8), p_tumour=1.0, tumour_radius_mm=(14.0, 18.0), p_necrosis=1.0,
                       p_infarct=1.0, infarct_count=(3, 3))
    base = make_phantom(PhantomConfig(**MID, **FLAT), np.random.default_rng(0))
    before = base.labels.copy()
    maps = insert_lesions(base, np.random.default_rng(11), cfg)
    assert_array_equal(base.labels, before)  # input untouched
    table = label_lookup(base.field_t)
    for label in (12, 14, 15, 16, 17):
        sel = maps.labels == label
        assert sel.sum() > 20, label
        assert maps.mask[sel].all()
        # Interior lesion voxels are lesion tissue only: per-lesion jitter within ±2.5 sd (T1 15 %, T2 20 %)
        # times texture within exp(±3·0.05); overlapping lesions of one kind mix two such values.
        inner = interior(maps.labels, label)
        assert inner.sum() >= 10, label
        for c, sd in ((0, 0.15), (1, 0.20)):
            med = np.median((maps.t1_ms, maps.t2_ms)[c][inner])
            lo = table[label, c] * (1 - 2.5 * sd) * math.exp(-0.15)
            hi = table[label, c] * (1 + 2.5 * sd) * math.exp(0.15)
            if c == 1:
                hi = min(hi, 0.9 * table[label, 0] * (1 + 2.5 * 0.15) * math.exp(0.15))
            assert lo <= med <= hi, (label, c, med, lo, hi)
    untouched = ~np.isin(maps.labels, LESION_LABELS) & (np.abs(maps.t1_ms - base.t1_ms) > 0)
    changed_far = ndimage.binary_erosion(untouched, np.ones((5, 5, 5)))
    assert not changed_far.any()  # lesions only change voxels at or next to lesion labels
    # healthy config -> no lesion label
    none = insert_lesions(base, np.random.default_rng(11), LesionConfig(p_ms=0.0, p_tumour=0.0, p_infarct=0.0))
    assert not np.isin(none.labels, LESION_LABELS).any()
