"""Map sources: phantom, real and mixed subjects as deterministic functions of (config, seed), their ids, field
strengths and lesions; SourceConfig normalisation and validation."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.physics.tissues import LESION_LABELS
from relaxomap.synth.augment.config import AugmentConfig
from relaxomap.synth.lesions import LesionConfig
from relaxomap.synth.phantom.config import PhantomConfig
from relaxomap.synth.real import brainweb_paths, load_maps
from relaxomap.synth.sources import SourceConfig, anatomy_id, draw_subject
from tests.conftest import REPO
from tests.synth.phantom.anatomy import MID

SMALL = PhantomConfig(shape=(160, 192, 12), voxel_mm=(1.2, 1.2, 2.0))


def test_draw_subject_is_deterministic_and_ids_are_unique() -> None:
    cfg = SourceConfig(kind="phantom", phantom=SMALL, healthy_only=True)
    a, b, c = draw_subject(cfg, 21), draw_subject(cfg, 21), draw_subject(cfg, 22)
    for name in ("t1_ms", "t2_ms", "pd", "labels", "mask"):
        assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.t1_ms, c.t1_ms)
    assert a.subject_id == "phantom-21" and c.subject_id == "phantom-22"
    assert anatomy_id(a.subject_id) == "phantom-21"
    assert not np.isin(a.labels, LESION_LABELS).any()
    # another process gives the same arrays
    code = (
        "import json, hashlib, numpy as np\n"
        "from relaxomap.synth.sources import SourceConfig, draw_subject\n"
        f"cfg = SourceConfig.from_dict(json.loads({json.dumps(json.dumps(cfg.to_dict()))}))\n"
        "m = draw_subject(cfg, 21)\n"
        "print(hashlib.sha256(m.stack().tobytes() + m.labels.tobytes()).hexdigest())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == hashlib.sha256(a.stack().tobytes() + a.labels.tobytes()).hexdigest()


def test_source_config_normalises_phantom_and_round_trips() -> None:
    cfg = SourceConfig(kind="phantom", field_t=1.5, healthy_only=False,
                       lesions=LesionConfig(p_ms=1.0, p_tumour=0.0, p_infarct=0.0), phantom=SMALL)
    assert cfg.phantom.field_t == 1.5 and cfg.phantom.lesions == cfg.lesions
    assert SourceConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert SourceConfig(healthy_only=True).phantom.lesions is None
    with pytest.raises(ValueError, match="kind"):
        SourceConfig(kind="brainweb")
    with pytest.raises(ValueError, match="paths"):
        SourceConfig(kind="real")
    with pytest.raises(ValueError, match="seed"):
        draw_subject(cfg, -1)
    ms_only = LesionConfig(p_ms=1.0, ms_count=(6, 6), p_tumour=0.0, p_infarct=0.0)
    maps = draw_subject(SourceConfig(phantom=dataclasses.replace(SMALL, **MID), lesions=ms_only), 3)
    assert (maps.labels == 12).any() and not np.isin(maps.labels, (14, 15, 16, 17)).any()


def test_real_source_ids_determinism_and_lesions(shared_data: Path) -> None:
    paths = [str(p) for p in brainweb_paths(shared_data).values()]
    cfg = SourceConfig(kind="real", paths=paths, healthy_only=True,
                       augment=AugmentConfig(shape=(176, 208, 24), voxel_mm=(1.0, 1.0, 2.0)))
    a, b, c = draw_subject(cfg, 4), draw_subject(cfg, 4), draw_subject(cfg, 5)
    assert a.subject_id == "colin27/aug4" and c.subject_id == "subject47/aug5"
    assert anatomy_id(a.subject_id) == "colin27"
    assert a.shape == (176, 208, 24) and a.t1_ms.dtype == np.float32
    assert_allclose(a.voxel_mm, [1.0, 1.0, 2.0])
    for k in ("t1_ms", "t2_ms", "pd", "labels", "mask"):
        assert_array_equal(getattr(a, k), getattr(b, k))
    assert not np.isin(a.labels, LESION_LABELS).any()
    assert a.mask.sum() > 0.1 * a.mask.size  # the slab lies in the brain
    sick = SourceConfig(kind="real", paths=paths[:1], augment=cfg.augment,
                        lesions=LesionConfig(p_ms=1.0, ms_count=(6, 6), p_tumour=1.0, p_infarct=0.0))
    m = draw_subject(sick, 9)
    assert m.subject_id == "colin27/aug9"
    assert (m.labels == 12).any() and (m.labels == 14).any()


def test_real_source_without_augmentation_converts_field(shared_data: Path) -> None:
    path = brainweb_paths(shared_data)["colin27"]
    cfg = SourceConfig(kind="real", paths=[str(path)], augment=None, healthy_only=True, field_t=1.5)
    maps = draw_subject(cfg, 0)
    # crisp colin27: every voxel is one tissue, re-mapped to the 1.5 T table (float32: rtol 1e-5)
    for label, expected in {3: (650.0, 80.0, 0.70), 2: (1050.0, 100.0, 0.80), 1: (4000.0, 1800.0, 1.0)}.items():
        sel = maps.labels == label
        for arr, e in zip((maps.t1_ms, maps.t2_ms, maps.pd), expected):
            assert_allclose(arr[sel], e, rtol=1e-5)
    same = draw_subject(SourceConfig(kind="real", paths=[str(path)], augment=None, healthy_only=True), 0)
    ref = load_maps(path)
    assert_array_equal(same.t1_ms, ref.t1_ms)


def test_mixed_source_draws_both_kinds_and_fields(shared_data) -> None:
    """kind='mixed': real heads with probability real_fraction, per-subject field from fields_t; deterministic."""
    cfg = SourceConfig(kind="mixed", paths=(str(shared_data / "brainweb_colin27" / "colin27_3T.npz"),),
                       real_fraction=0.5, fields_t=(1.5, 3.0), healthy_only=True,
                       augment=AugmentConfig(shape=(224, 256, 16)))
    kinds, fields = [], []
    for seed in range(8):
        m = draw_subject(cfg, seed)
        kinds.append(m.subject_id.startswith("phantom-"))
        fields.append(m.field_t)
        if seed == 0:
            np.testing.assert_array_equal(m.t1_ms, draw_subject(cfg, seed).t1_ms)
        wm = m.t1_ms[(m.labels == 3) & m.mask]
        # WM T1 near the drawn field's table value (850 ms at 3 T, 650 ms at 1.5 T), within the ±25 % jitter.
        expected = 850.0 if m.field_t == 3.0 else 650.0
        assert abs(np.median(wm) / expected - 1) < 0.25
    assert 0 < sum(kinds) < 8, kinds  # both kinds occur for these fixed seeds (P(one kind) = 2 * 0.5**8)
    assert set(fields) == {1.5, 3.0}
    with pytest.raises(ValueError, match="real_fraction"):
        SourceConfig(kind="mixed", paths=("x.npz",), real_fraction=1.5)
