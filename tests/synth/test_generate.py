"""Training samples from ground-truth maps: axial slicing, fields and units, determinism, rendering, missing
contrasts, configuration errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from relaxomap.physics.protocol import PACK_COLUMNS
from relaxomap.synth.generate import SynthConfig, generate_subject, render_signal
from relaxomap.synth.normalize import normalize_intensity
from relaxomap.synth.phantom.config import PhantomConfig
from relaxomap.synth.sources import SourceConfig
from relaxomap.synth.store.format import store_fields

SIZE = 64
SLICES = 3


def small_config(**changes) -> SynthConfig:
    """Procedural phantoms on a coarse 3.5 mm grid (~0.07 s per head instead of ~0.6 s at 1 mm)."""
    source = SourceConfig(phantom=PhantomConfig(shape=(64, 72, 8), voxel_mm=(3.5, 3.5, 3.5)))
    return SynthConfig(source=source, image_size=(SIZE, SIZE), slices_per_subject=SLICES, seed=11, **changes)


@pytest.mark.parametrize("size", [(64, 64), (40, 90)])  # pad both axes; crop one and pad the other
def test_axial_stack_equals_slice_by_slice(size) -> None:
    from relaxomap.synth.generate import _axial_stack, fit_to_size
    from relaxomap.synth.maps import Maps
    from relaxomap.synth.orientation import axial_image

    rng = np.random.default_rng(0)
    shape = (50, 70, 9)
    t1, t2, pd = (rng.uniform(1, 5000, shape).astype(np.float32) for _ in range(3))
    maps = Maps(t1, t2, pd, rng.integers(0, 14, shape).astype(np.uint8), rng.uniform(size=shape) > 0.5,
                voxel_mm=np.ones(3, np.float32), field_t=3.0, source="phantom")
    zs = np.array([4, 0, 8, 4])  # any order, repeats allowed
    targets, labels, mask = _axial_stack(maps, zs, size)
    for n, z in enumerate(zs):
        for c, vol in enumerate((t1, t2, pd)):
            assert np.array_equal(targets[n, c], fit_to_size(axial_image(vol, z), size))
        assert np.array_equal(labels[n], fit_to_size(axial_image(maps.labels, z), size))
        assert np.array_equal(mask[n], fit_to_size(axial_image(maps.mask, z), size))


def test_generate_subject_fields_and_units() -> None:
    cfg = small_config()
    samples = generate_subject(cfg, 0)
    assert len(samples) == SLICES
    fields = store_fields(SIZE, SIZE)
    for s in samples:
        for name, (dtype, shape) in fields.items():
            if dtype is str:
                assert isinstance(s[name], str) and s[name]
            elif shape:
                assert s[name].shape == shape and s[name].dtype == np.dtype(dtype), name
        # every present contrast is normalised: its own normalisation scale is now 1 (float32 rounding)
        for c in np.flatnonzero(s["present"]):
            assert_allclose(normalize_intensity(s["inputs"][c])[1], 1.0, rtol=1e-5)
        assert_allclose(s["params"], s["protocols"][:, 1:4], rtol=1e-6)  # TR, TE, TI columns (float32 copy)
        assert PACK_COLUMNS[1:4] == ("tr_ms", "te_ms", "ti_ms")
        t1, t2, pd = s["targets"]
        assert np.all((t1 >= 0) & (t2 >= 0) & (pd >= 0))
        brain = s["mask"]
        assert brain.any()
        # physical units: brain T1 at 1.5-3 T lies between ~500 ms (WM, 1.5 T) and ~5000 ms (CSF)
        assert 300 < np.median(t1[brain]) < 5000 and 30 < np.median(t2[brain]) < 2500
        assert s["field_t"] == 3.0 and s["subject_id"].startswith("phantom-")
        assert np.all(t1[pd == 0] == 0)


def test_generate_is_deterministic_and_prefix_stable() -> None:
    cfg = small_config()
    a = generate_subject(cfg, 2)
    b = generate_subject(cfg, 2, n_samples=2)
    c = generate_subject(cfg.replace(seed=12), 2)
    for x, y in zip(a, b):
        for k in x:
            assert np.array_equal(x[k], y[k]), k
    assert not np.array_equal(a[0]["inputs"], c[0]["inputs"])
    assert len({s["seed"] for s in a}) == SLICES


def test_render_signal_matches_physics() -> None:
    from relaxomap.physics.epg import epg_signal
    from relaxomap.physics.protocol import PRESETS
    from relaxomap.physics.signal import signal

    rng = np.random.default_rng(0)
    pd = np.where(rng.random((16, 16)) < 0.3, 0.0, rng.uniform(0.5, 1.0, (16, 16))).astype(np.float32)
    t1 = np.where(pd > 0, rng.uniform(600, 4000, pd.shape), 0).astype(np.float32)
    t2 = np.where(pd > 0, rng.uniform(50, 2000, pd.shape), 0).astype(np.float32)
    prots = (PRESETS["t1w_tse_3t"], PRESETS["t2w_tse_3t"], PRESETS["flair_3t"])
    # The background is skipped; elsewhere the same kernel on the same values. A voxel's SIMD lane depends on
    # its position in the array, so results may differ by a few float32 ulp (signals <= 1: atol 1e-6).
    tol = dict(rtol=1e-6, atol=1e-6)
    closed = render_signal(t1, t2, pd, prots, "closed")
    assert_allclose(closed, np.where(pd > 0, signal(t1, t2, pd, list(prots)), 0), **tol)
    assert np.all(closed[:, pd == 0] == 0)
    epg = render_signal(t1, t2, pd, prots, "epg")
    assert_allclose(epg, np.where(pd > 0, epg_signal(t1, t2, pd, list(prots)), 0), **tol)
    assert np.abs(epg - closed).max() > 1e-3  # 150° refocusing: EPG's stimulated echoes change the images
    spgr = (PRESETS["spgr_t1w_3t"],)
    assert_allclose(render_signal(t1, t2, pd, spgr, "epg"), np.where(pd > 0, signal(t1, t2, pd, list(spgr)), 0),
                    **tol)


def test_missing_contrasts() -> None:
    cfg = small_config(missing_probability=(0.5, 0.5, 0.5))
    samples = [s for i in range(3) for s in generate_subject(cfg, i)]
    present = np.array([s["present"] for s in samples])
    assert present.sum(1).min() >= 1  # at least one contrast is always kept
    assert (present == 0).any()
    for s in samples:
        for c in np.flatnonzero(s["present"] == 0):
            assert not s["inputs"][c].any() and s["scale"][c] == 0


@pytest.mark.parametrize("kw, field", [({"image_size": (8, 8)}, "image_size"), ({"forward": "bloch"}, "forward"),
                                       ({"slices_per_subject": 0}, "slices_per_subject"),
                                       ({"missing_probability": (0.5, 2.0, 0.0)}, "missing_probability"),
                                       ({"seed": -1}, "seed"), ({"min_brain_fraction": 1.5}, "min_brain_fraction")])
def test_config_errors_name_the_field(kw, field) -> None:
    with pytest.raises(ValueError, match=field):
        SynthConfig(**kw)


def test_config_json_round_trip() -> None:
    cfg = small_config(forward="epg")
    assert SynthConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="unknown field"):
        SynthConfig.from_dict({"n_samples": 3})


def test_map_errors_name_file_and_field(tmp_path: Path, shared_data: Path) -> None:
    d = dict(np.load(shared_data / "brainweb_colin27" / "colin27_3T.npz"))
    d["t1_ms"][90, 100, 90] = np.nan
    bad = tmp_path / "bad_maps.npz"
    np.savez(bad, **d)
    cfg = small_config().replace(source=SourceConfig(kind="real", paths=(str(bad),)))
    with pytest.raises(ValueError, match="bad_maps.npz.*t1_ms|t1_ms.*bad_maps.npz"):
        generate_subject(cfg, 0)
