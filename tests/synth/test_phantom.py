"""Procedural phantoms, lesions and the phantom source: anatomy, values, partial volume, determinism."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import ndimage

from relaxomap.physics.tissues import BRAIN_LABELS, LESION_LABELS, label_lookup
from relaxomap.synth.fields import smooth_noise
from relaxomap.synth.lesions import LesionConfig, insert_lesions
from relaxomap.synth.phantom import PHANTOM_LABELS, PhantomConfig, make_phantom
from relaxomap.synth.sources import SourceConfig, anatomy_id, draw_subject
from tests.conftest import REPO

# A slab through the lateral ventricles and basal ganglia (centre 5–15 mm above the brain centre ≈ MNI z
# 15–25): every healthy tissue class is cut there.
MID = dict(slab_center_mm=(5.0, 15.0))
# Anatomy checks use no texture: then every pure voxel holds exactly its tissue's per-subject value.
FLAT = dict(texture_sd=(0.0, 0.0, 0.0), global_sd=(0.0, 0.0, 0.0))
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def mid_flat() -> list:
    return [make_phantom(PhantomConfig(**MID, **FLAT), np.random.default_rng(s)) for s in SEEDS]


def _interior(labels: np.ndarray, label: int) -> np.ndarray:
    # Voxels whose 26 neighbours share their label. A tissue boundary within half a voxel of a voxel centre
    # leaves some neighbour entirely on the other side (its offset along the boundary normal is >= 1 voxel),
    # i.e. with another label, so interior voxels are pure for exact signed distances.
    return ndimage.binary_erosion(labels == label, np.ones((3, 3, 3), bool))


# ------------------------------------------------------------------------------------------- config
def test_config_round_trip_and_validation() -> None:
    cfg = PhantomConfig(shape=(64, 64, 8), voxel_mm=(1.0, 1.0, 3.0), field_t=1.5, lesions=LesionConfig(p_ms=1.0))
    again = PhantomConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="field_t"):
        PhantomConfig(field_t=7.0)
    with pytest.raises(ValueError, match=r"shape\[2\]"):
        PhantomConfig(shape=(64, 64, 0))
    with pytest.raises(ValueError, match="atrophy"):
        PhantomConfig(atrophy=(0.8, 0.2))
    with pytest.raises(ValueError, match="unknown field"):
        PhantomConfig.from_dict({"shap": (1, 2, 3)})
    with pytest.raises(ValueError, match="p_ms"):
        LesionConfig(p_ms=1.5)
    with pytest.raises(TypeError, match="lesions"):
        PhantomConfig(lesions={"p_ms": 1.0})


def test_smooth_noise_has_unit_variance_everywhere() -> None:
    # The B-spline normalisation makes every voxel N(0, 1) regardless of its position between control
    # points. 400 draws: the variance estimate per voxel has sd sqrt(2/400) = 0.07; averaged over 20
    # positions within one control cell, sd 0.016 -> 5 sd = 0.08.
    rng = np.random.default_rng(3)
    var = np.mean([smooth_noise(rng, (20, 3, 3), 10.0)[:, 1, 1] ** 2 for _ in range(400)], axis=0)
    assert_allclose(var.mean(), 1.0, atol=0.08)
    assert_allclose(var[:10].mean(), var[10:].mean(), atol=0.12)  # knot vs. mid-cell positions


@pytest.mark.parametrize("shape, step", [((37, 29, 11), (5.0, 3.5, 2.5)), ((64, 40, 24), (25.0, 6.0, 15.0))])
def test_smooth_noise_equals_dense_bspline_products(shape, step) -> None:
    """The 3-D path (three 4-tap passes in float32) equals ``M_x ⊗ M_y ⊗ M_z`` applied to the same control
    points in float64 (each output a sum of 64 float32 products of magnitude <= 4: rtol 1e-5 of the field's
    sd)."""
    from relaxomap.synth.fields import bspline_matrix

    field = smooth_noise(np.random.default_rng(11), shape, step)
    rng = np.random.default_rng(11)  # the same draws, in the same order: grid phases, then control points
    mats = [bspline_matrix(n, s, float(rng.uniform())) for n, s in zip(shape, step)]
    ctrl = rng.standard_normal(tuple(m.shape[1] for m in mats)).astype(np.float32).astype(np.float64)
    mats = [m / np.sqrt((m * m).sum(axis=1, keepdims=True)) for m in mats]
    ref = np.einsum("ia,jb,kc,abc->ijk", *mats, ctrl)
    assert_allclose(field, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("shape", [(30, 20, 10), (40, 25)])
def test_smooth_noise_into_out_equals_a_new_array(shape) -> None:
    ref = smooth_noise(np.random.default_rng(2), shape, 6.0)
    buf = np.full((2, *shape), np.nan, np.float32)
    got = smooth_noise(np.random.default_rng(2), shape, 6.0, out=buf[1])
    assert got is buf[1] or np.shares_memory(got, buf[1])
    assert_array_equal(buf[1], ref)
    assert np.isnan(buf[0]).all()
    with pytest.raises(ValueError, match="out must be a C-contiguous float32 array"):
        smooth_noise(np.random.default_rng(2), shape, 6.0, out=np.empty(shape, np.float64))


@pytest.mark.parametrize("rel_sd, clip", [(0.35, 3.0), (-0.6, 3.0), (0.9, 3.0)])
def test_exp_field_is_float32_exp_to_rounding(rel_sd, clip) -> None:
    """Series path (|rel_sd| · clip <= 2) and NumPy path (beyond) against float64 exp: the series is exact to
    float32 rounding (half an ulp, 6e-8 relative, plus one ulp for the float32 input product: rtol 2.4e-7)."""
    from relaxomap.synth._phantom_kernel import exp_field

    f = (np.random.default_rng(5).standard_normal((40, 30, 20)) * 1.5).astype(np.float32)
    ref = 2.8 * np.exp(rel_sd * np.clip(f.astype(np.float64), -clip, clip))
    got = exp_field(f.copy(), 2.8, rel_sd, clip)
    assert_allclose(got, ref, rtol=2.4e-7 if abs(rel_sd) * clip <= 2 else 1e-6, atol=0)
    strided = f.copy()[:, ::2]  # not contiguous: the NumPy path, same values to float32 exp accuracy
    assert_allclose(exp_field(strided, 2.8, rel_sd, clip), ref[:, ::2], rtol=1e-6, atol=0)


def test_scalp_fields_match_the_numpy_formula() -> None:
    """Fused temporal-fossa / neck weights against the smoothstep expressions they replace: weights in [0, 1]
    and thicknesses of a few mm from float32 products of steps, equal to a few float32 ulps (atol 2e-6 on
    weights, rtol 2e-6 on the skull)."""
    from relaxomap.synth._phantom_kernel import scalp_fields
    from relaxomap.synth.geometry import smoothstep

    rng = np.random.default_rng(8)
    axes = [np.linspace(-100, 100, 41), np.linspace(-120, 120, 49), np.linspace(-90, 60, 31)]
    q = tuple((c + rng.uniform(-1.5, 1.5, c.shape)).astype(np.float32) for c in np.meshgrid(*axes, indexing="ij"))
    skull = rng.uniform(4.0, 9.0, q[0].shape).astype(np.float32)
    a = np.float32(68.0)
    lateral = smoothstep(np.abs(q[0]) / a, 0.6, 0.95) * smoothstep(q[2], -45.0, -25.0) * (
        1.0 - smoothstep(q[2], 15.0, 35.0))
    z_top = -36.0 - 36.0 * smoothstep(q[1], 15.0, 50.0, sign=-1.0)
    lower = smoothstep(z_top - q[2], 0.0, 12.0)
    got_skull = skull.copy()
    t_muscle, got_lower = scalp_fields(q, float(a), 7.5, got_skull)
    assert 0.05 < lateral.mean() < 0.5 and 0.05 < lower.mean() < 0.95  # both weights vary over this grid
    assert_allclose(got_skull, skull * (1.0 - 0.4 * lateral), rtol=2e-6, atol=0)
    assert_allclose(t_muscle, 7.5 * lateral, rtol=0, atol=2e-6 * 7.5)
    assert_allclose(got_lower, lower, rtol=0, atol=2e-6)


def test_lowest_set_bit_of_every_uint64() -> None:
    """The de Bruijn lowest-bit lookup of the mixing kernel, for every bit alone and with higher bits set."""
    import numba

    from relaxomap.synth.texture import _LOW_BIT_INDEX, _lowest_bit

    @numba.njit
    def lowest(b):
        return _lowest_bit(b, _LOW_BIT_INDEX)

    for k in range(64):
        above = (~((1 << (k + 1)) - 1)) & (2**64 - 1)  # every bit above k
        for b in (1 << k, (1 << k) | above, (1 << k) | (above & 0x5555555555555555)):
            assert lowest(np.uint64(b)) == k


# ------------------------------------------------------------------------------------------- anatomy
def test_every_tissue_present_in_a_mid_slab(mid_flat: list) -> None:
    for maps in mid_flat:
        assert maps.shape == (224, 256, 48)
        assert maps.t1_ms.dtype == np.float32 and maps.labels.dtype == np.uint8 and maps.mask.dtype == bool
        assert set(np.unique(maps.labels).tolist()) == {0, *PHANTOM_LABELS}  # 0: air around the head
        assert not set(np.unique(maps.labels)) & set(LESION_LABELS)  # healthy by default


def test_brain_tissue_fractions_are_anatomical(mid_flat: list) -> None:
    # BrainWeb colin27 / subject 47 axial slices 15-50 mm above the AC hold GM 37-50 %, WM 37-48 %, CSF
    # 12-15 % of the brain mask (computed from ../shared/data). Allowing for anatomy and atrophy between
    # subjects: GM and WM 20-60 %, CSF 3-35 %, deep GM (a few nuclei) below 10 %.
    for maps in mid_flat:
        mid = maps.shape[2] // 2
        lab = maps.labels[:, :, mid - 8: mid + 8][maps.mask[:, :, mid - 8: mid + 8]]
        frac = {k: float(np.mean(lab == k)) for k in (1, 2, 3, 13)}
        assert 0.20 <= frac[2] <= 0.60, frac
        assert 0.20 <= frac[3] <= 0.60, frac
        assert 0.03 <= frac[1] <= 0.35, frac
        assert 0.0 < frac[13] < 0.10, frac
        # mask = brain tissue: the labels inside it are brain labels (partial-volume edges aside)
        assert np.mean(np.isin(maps.labels[maps.mask], BRAIN_LABELS)) > 0.97


def test_pure_voxels_hold_per_subject_values_within_jitter_bounds(mid_flat: list) -> None:
    cfg = PhantomConfig()
    table = label_lookup(cfg.field_t)
    sd, k = np.asarray(cfg.value_sd), cfg.value_trunc_sd
    for maps in mid_flat:
        for label in (1, 2, 3, 13, 4, 5):
            inner = _interior(maps.labels, label)
            for c, arr in enumerate((maps.t1_ms, maps.t2_ms, maps.pd)):
                vals, counts = np.unique(arr[inner], return_counts=True)
                mode = vals[np.argmax(counts)]
                # float32 storage: relative 1e-6
                lo, hi = table[label, c] * (1 - k * sd[c]), table[label, c] * (1 + k * sd[c])
                if label == 1 and c == 2:
                    lo = hi = 1.0  # CSF defines the PD scale
                if c == 1:
                    hi = min(hi, 0.9 * table[label, 0] * (1 + k * sd[0]))
                assert lo * (1 - 1e-6) <= mode <= hi * (1 + 1e-6), (label, c, mode, lo, hi)
                # Interior voxels are pure (see _interior); sulcal distances are first-order estimates
                # (|g| / |grad g|), so a few per cent of eroded GM voxels still hold a mixture.
                assert np.mean(np.abs(arr[inner] / mode - 1) < 1e-5) > 0.9, (label, c)


def test_partial_volume_voxels_are_physical_mixtures(mid_flat: list) -> None:
    # A mixture's 1/T1 is a PD-weighted mean of its tissues' 1/T1, so a voxel mixing only brain tissues
    # (CSF, GM, WM, deep GM: voxels whose 26 neighbours all carry brain labels) has T1 and T2 between the
    # smallest and largest value of those tissues (flat maps: one value per tissue; float32 rounding 1e-5).
    for maps in mid_flat:
        deep = ndimage.binary_erosion(np.isin(maps.labels, (1, 2, 3, 13)), np.ones((3, 3, 3), bool))
        for arr in (maps.t1_ms, maps.t2_ms):
            pure = [np.median(arr[_interior(maps.labels, k)]) for k in (1, 2, 3, 13)]
            assert arr[deep].min() >= min(pure) * (1 - 1e-5)
            assert arr[deep].max() <= max(pure) * (1 + 1e-5)
        # and partial volume exists: a clear share of those voxels is none of the pure values
        pure_t1 = [np.median(maps.t1_ms[_interior(maps.labels, k)]) for k in (1, 2, 3, 13)]
        mixed = deep & np.all([np.abs(maps.t1_ms / v - 1) > 1e-4 for v in pure_t1], axis=0)
        assert mixed.sum() > 0.05 * deep.sum()


def test_texture_varies_values_within_bounds() -> None:
    cfg = PhantomConfig(**MID)
    maps = make_phantom(cfg, np.random.default_rng(5))
    table = label_lookup(cfg.field_t)
    # texture exp(sd·(cos θ F0 + sin θ F1)) with F clipped to ±3: |exponent| <= 3·sqrt(2)·sd; global
    # field <= 3·sd_global; per-subject jitter <= 2.5 sd.
    for c, arr in enumerate((maps.t1_ms, maps.t2_ms)):
        span = math.exp(3 * math.sqrt(2) * cfg.texture_sd[c] + 3 * cfg.global_sd[c])
        vals = arr[_interior(maps.labels, 3)]
        lo = table[3, c] * (1 - cfg.value_trunc_sd * cfg.value_sd[c]) / span
        hi = table[3, c] * (1 + cfg.value_trunc_sd * cfg.value_sd[c]) * span
        assert lo <= vals.min() and vals.max() <= hi
        assert np.std(vals) / np.mean(vals) > 0.005  # not one value per tissue any more


def test_field_strength_and_thick_slices() -> None:
    cfg = PhantomConfig(shape=(160, 192, 10), voxel_mm=(1.2, 1.2, 4.0), field_t=1.5, **MID, **FLAT)
    maps = make_phantom(cfg, np.random.default_rng(7))
    assert maps.shape == (160, 192, 10) and maps.field_t == 1.5
    assert_allclose(maps.voxel_mm, [1.2, 1.2, 4.0])
    wm = np.median(maps.t1_ms[_interior(maps.labels, 3)])
    lo, hi = 650.0 * (1 - 2.5 * 0.08), 650.0 * (1 + 2.5 * 0.08)  # 1.5 T table WM T1 ± 2.5 sd
    assert lo <= wm <= hi


# ------------------------------------------------------------------------------------------- lesions
def test_lesions_have_their_labels_and_values(mid_flat: list) -> None:
    # a tumour large enough for a necrotic core with interior voxels; three infarcts, so that the interior
    # check does not hang on one wedge that may land where the cortex is thin
    cfg = LesionConfig(p_ms=1.0, ms_count=(8, 8), p_tumour=1.0, tumour_radius_mm=(14.0, 18.0), p_necrosis=1.0,
                       p_infarct=1.0, infarct_count=(3, 3))
    base = mid_flat[0]
    maps = insert_lesions(base, np.random.default_rng(11), cfg)
    assert_array_equal(base.labels, mid_flat[0].labels)  # input untouched
    table = label_lookup(base.field_t)
    for label in (12, 14, 15, 16, 17):
        sel = maps.labels == label
        assert sel.sum() > 20, label
        assert maps.mask[sel].all()
        # Interior lesion voxels are lesion tissue only: per-lesion jitter within ±2.5 sd (T1 15 %, T2 20 %)
        # times texture within exp(±3·0.05); overlapping lesions of one kind mix two such values.
        inner = _interior(maps.labels, label)
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


# ------------------------------------------------------------------------------------------- source
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
