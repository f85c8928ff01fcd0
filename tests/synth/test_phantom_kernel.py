"""synth._phantom_kernel: each fused kernel equals the array-wide NumPy formula it replaces (float64 reference)."""
from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.synth._phantom_kernel import (
    canonical_frame,
    carve_fissures,
    cerebrum_shell,
    exp_field,
    face_shell,
    folding_field,
    sulcal_depth,
    sulcal_skip_mm,
)
from relaxomap.synth.fields import sample_trilinear, smooth_noise
from relaxomap.synth.geometry import ellipsoid_depth, grad_norm, smoothstep

SHAPE = (40, 48, 12)
SPACING = (1.0, 1.2, 2.0)


def coords(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Canonical coordinates [mm] spanning the whole head (±110 mm in plane, −90..90 mm in z), jittered."""
    axes = [np.linspace(-110, 110, SHAPE[0]), np.linspace(-120, 120, SHAPE[1]), np.linspace(-90, 90, SHAPE[2])]
    q = np.meshgrid(*axes, indexing="ij")
    return tuple((c + rng.uniform(-2, 2, SHAPE)).astype(np.float32) for c in q)


def test_cerebrum_shell_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    qx, qy, qz = coords(rng)
    bumps = smooth_noise(rng, SHAPE, 6.0)
    noise = smooth_noise(rng, (141, 161, 131), 3.0)
    lo, step = np.array([-105.0, -120.0, -85.0]), 1.5
    a, b, c_up, c_lo, egg, floor0, drop = 68.0, 86.0, 64.0, 55.0, 0.06, -31.0, 21.0
    hull, env, floor, scale = cerebrum_shell((qx, qy, qz), bumps, a, b, c_up, c_lo, egg, floor0, drop)
    g = folding_field((qx, qy, qz), scale.copy(), noise, lo, step, hull)
    x, y, z = (v.astype(np.float64) for v in (qx, qy, qz))
    ax = a * (1 - egg * y / b)
    cz = np.where(z > 0, c_up, c_lo)
    h = ellipsoid_depth(x, y, z, ax, b, cz).astype(np.float64)
    env_ref = h + (np.minimum(h, z - (floor0 - drop)) - h) * smoothstep(np.abs(x) / a, 0.35, 0.55)
    floor_ref = (floor0 - drop * smoothstep(x, 14, 34, absolute=True) * smoothstep(y, -48, -30)
                 * (1 - smoothstep(y, 18, 38))
                 + 8 * (1 - smoothstep(x, 5, 50, absolute=True)) * (1 - smoothstep(y, -40, -25))
                 + 7 * smoothstep(x, 8, 30, absolute=True) * smoothstep(y, 25, 45) + 4.5 * bumps)
    r = np.sqrt((x / ax) ** 2 + (y / b) ** 2 + (z / cz) ** 2)
    k = 0.25 + 0.75 / np.maximum(r, 0.35)
    g_ref = sample_trilinear(noise[None], lo, step, x * k, y * k, z * k)[0]
    # float32 kernels against float64 formulas: depths up to ~150 mm carry ~1e-5 relative rounding
    assert_allclose(floor, floor_ref, atol=2e-4)
    assert_allclose(hull, np.minimum(h, z - floor_ref), atol=2e-3)
    assert_allclose(env, env_ref, atol=2e-3)
    assert_allclose(g, g_ref, atol=1e-4)  # the folding field is unit variance: 1e-4 is far below its features
    assert (g != 0).mean() > 0.5  # the sample points fall inside the field's grid


def test_folding_field_skip_is_exact() -> None:
    """Skipping the field where the sulci cannot reach changes nothing downstream, on a 1.5 x 1.5 x 2 mm grid
    through the lateral cortex, skull base and outside the head (the phantom's geometry)."""
    rng = np.random.default_rng(3)
    spacing = (1.5, 1.5, 2.0)
    axes = [np.arange(0, 110, spacing[0]), np.arange(-50, 40, spacing[1]), np.arange(-50, 40, spacing[2])]
    q = tuple(c.astype(np.float32) for c in np.meshgrid(*axes, indexing="ij"))
    shape = q[0].shape
    hull, _, _, scale = cerebrum_shell(q, smooth_noise(rng, shape, 12.0), 68.0, 86.0, 64.0, 55.0, 0.06, -31.0, 21.0)
    noise = smooth_noise(rng, (141, 161, 131), 3.0)
    lo = np.array([-105.0, -120.0, -85.0])
    half_width = (0.7 * np.exp(0.4 * np.clip(smooth_noise(rng, shape, 15.0), -3, 3))).astype(np.float32)
    g = folding_field(q, scale.copy(), noise, lo, 1.5, hull)
    g_skip = folding_field(q, scale.copy(), noise, lo, 1.5, hull, sulcal_skip_mm(half_width, spacing))
    assert 0.2 < (g_skip == 0).mean() < 0.9  # both skipped and sampled voxels
    assert_array_equal(sulcal_depth(g_skip, spacing, hull, half_width, 12.0),
                       sulcal_depth(g, spacing, hull, half_width, 12.0))


def test_sulcal_depth_and_fissures_match_numpy() -> None:
    rng = np.random.default_rng(1)
    q = coords(rng)
    g = smooth_noise(rng, SHAPE, 4.0)
    hull = (60.0 - np.sqrt(sum(c.astype(np.float64) ** 2 for c in q))).astype(np.float32)
    half_width = 0.2 + 0.5 * rng.uniform(size=SHAPE).astype(np.float32)
    depth = (15.0 * np.exp(0.3 * smooth_noise(rng, SHAPE, 5.0))).astype(np.float32)
    rho = sulcal_depth(g, SPACING, hull, half_width, depth)
    e = np.abs(g) / np.maximum(grad_norm(g.astype(np.float64), SPACING), 0.02)
    inner, below = e - half_width, hull - depth
    ref = np.minimum(hull, np.where(below < 0, inner, np.hypot(np.maximum(inner, 0), np.maximum(below, 0))))
    assert_allclose(rho, ref, rtol=1e-4, atol=1e-3)  # float32 |g| / |grad g| near the sheets
    assert (below < 0).any() and (below >= 0).any()  # both branches exercised
    assert_allclose(sulcal_depth(g, SPACING, hull, 0.3, 9.0),  # scalar width and depth broadcast
                    sulcal_depth(g, SPACING, hull, np.full(SHAPE, 0.3, np.float32), np.full(SHAPE, 9.0, np.float32)))
    mid, wobble = smooth_noise(rng, SHAPE, 8.0), smooth_noise(rng, SHAPE, 3.0)
    carved = rho.copy()
    carve_fissures(carved, q, mid, wobble, 1.4, 36.0, 2.5, 0.9)
    x, y, z = (c.astype(np.float64) for c in q)
    fissure = np.maximum(np.abs(x - 1.5 * mid) - 1.4, np.minimum(16 - 8 * ((y - 13) / 35) ** 2 - z, 35 - np.abs(y - 13)))
    z_syl = -6 - 0.4 * (y - 10) + 2.5 + 3 * wobble
    sylvian = np.maximum.reduce([np.abs(z - z_syl) - 0.9, 36.0 - np.abs(x), np.abs(y - 12) - 27])
    assert_allclose(carved, np.minimum.reduce([rho, fissure, sylvian]), atol=1e-3)
    assert (carved < rho).any()


def test_exp_field_in_place() -> None:
    f = np.random.default_rng(2).standard_normal(1000).astype(np.float32) * 2
    ref = 4.5 * np.exp(0.35 * np.clip(f.astype(np.float64), -3, 3))
    out = exp_field(f, 4.5, 0.35, 3.0)
    assert out is f
    assert_allclose(out, ref, rtol=1e-6)  # float32 exp


def test_face_shell_and_canonical_frame_match_numpy() -> None:
    rng = np.random.default_rng(4)
    q = coords(rng)
    x, y, z = (c.astype(np.float64) for c in q)
    fat = (5.0 * np.exp(0.35 * np.clip(smooth_noise(rng, SHAPE, 6.0), -3, 3))).astype(np.float32)
    weight = rng.uniform(0, 1, SHAPE).astype(np.float32)
    skin_frac, fat_frac = np.full(SHAPE, 0.1, np.float32), np.zeros(SHAPE, np.float32)
    deep = face_shell(q, fat, weight, 68.0, 86.0, 2.1, 1.0, skin_frac, fat_frac)
    neck = smoothstep(-z, 85.0, 115.0)
    yf = y - (5 - 20 * neck)
    d = ellipsoid_depth(x, yf, np.zeros_like(x), (68 + 14) * (0.95 - 0.3 * neck), (86 + 14) * (1 - 0.35 * neck), 1.0)
    d = d.astype(np.float64)
    f0, f1, f2 = (np.clip(0.5 + (d - t), 0, 1) for t in (0.0, 2.1, 2.1 + fat))
    assert_allclose(skin_frac, 0.1 + weight * (f0 - f1), atol=2e-5)  # float32 depths of up to ~200 mm
    assert_allclose(fat_frac, weight * (f1 - f2), atol=2e-5)
    assert_allclose(deep, weight * f2, atol=2e-5)
    assert 0 < (f2 > 0).mean() < 1  # inside and outside the face both present
    # canonical frame: q = mat (grid + amp disp) + offset
    grid = (np.arange(SHAPE[0]) - 20.0, np.arange(SHAPE[1]) * 1.5, np.arange(SHAPE[2]) * 2.0 - 7.0)
    disp = [smooth_noise(rng, SHAPE, 5.0) for _ in range(3)]
    mat = rng.standard_normal((3, 3))
    off = np.array([1.0, -2.0, 30.0])
    qq = canonical_frame(grid, disp, 3.0, mat, off)
    world = np.stack(np.meshgrid(*grid, indexing="ij")) + 3.0 * np.stack(disp).astype(np.float64)
    ref = np.einsum("ij,j...->i...", mat, world) + off[:, None, None, None]
    assert_allclose(np.stack(qq), ref, atol=1e-4)  # float32 coordinates of ~100 mm
    still = canonical_frame(grid, [np.zeros((1, 1, 1), np.float32)] * 3, 3.0, np.eye(3), np.zeros(3))
    assert_allclose(np.stack(still), np.stack(np.meshgrid(*grid, indexing="ij")), atol=1e-5)


def test_scaled_from_rates_is_the_two_step_formula_exactly() -> None:
    from relaxomap.synth.texture import from_rates, scale_rates, scaled_from_rates

    rng = np.random.default_rng(5)
    pd = rng.uniform(0, 1, SHAPE).astype(np.float32)
    pd[rng.uniform(size=SHAPE) < 0.3] = 0.0  # background
    a1 = (pd / rng.uniform(300, 4000, SHAPE)).astype(np.float32)
    a2 = (pd / rng.uniform(30, 2000, SHAPE)).astype(np.float32)
    k = [np.exp(0.05 * rng.standard_normal(SHAPE)).astype(np.float32) for _ in range(3)]
    fused = scaled_from_rates(pd, a1, a2, *k)
    for got, ref in zip(fused, from_rates(*scale_rates(pd, a1, a2, *k))):
        assert_array_equal(got, ref)  # same float32 operations in the same order


# ------------------------------------------------------------------------------------------- tissue mixing
MIX_LABELS = np.array([1, 2, 3, 13, 10, 7, 11, 9, 5, 4, 6, 8, 1], np.int64)  # the phantom's slots: 0 and 12 share 1
MIX_BRAIN = np.arange(13) < 4


def mix_inputs(rng: np.random.Generator, shape: tuple[int, int, int], n_sub: int) -> tuple:
    """Sparse fractions like a head's (air, pure voxels, 2-3 tissue boundaries), per-label values, texture."""
    from relaxomap.synth.texture import draw_tissue_values

    nx, ny, nz = shape
    frac = np.zeros((13, nx, ny, nz * n_sub), np.float32)
    for idx in np.ndindex(nx, ny, nz * n_sub):
        k = rng.choice([0, 1, 1, 2, 3])  # number of tissues in this sub-voxel (0: air)
        if k:
            w = rng.dirichlet(np.ones(k + 1))[:k] if rng.uniform() < 0.5 else rng.dirichlet(np.ones(k))
            frac[(rng.choice(13, k, replace=False),) + idx] = w
    values = draw_tissue_values(rng, MIX_LABELS, 3.0, (0.08, 0.1, 0.05))
    tex = np.clip(rng.standard_normal((6,) + shape), -3, 3).astype(np.float32)
    angle = rng.uniform(0.0, 2.0 * np.pi, (256, 3))
    tex_w = np.array([0.1, 0.12, 0.06])[None, :, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return frac, MIX_LABELS, MIX_BRAIN, values, tex, tex_w, n_sub


def mix_reference(frac, slot_labels, slot_brain, values_ms, tex, tex_w, n_sub) -> tuple[np.ndarray, ...]:
    """The mix_fractions docstring formula, array-wide in float64."""
    s_n = frac.shape[0]
    f = frac.astype(np.float64).reshape(s_n, *tex.shape[1:], n_sub).sum(-1)  # (S, X, Y, Z) slot fractions
    total = f.sum(0)
    fp = np.where(f > 0, f, 0.0)
    pd, a1, a2 = (np.zeros(tex.shape[1:]) for _ in range(3))
    for s, lab in enumerate(slot_labels):
        t1, t2, p_t = values_ms[lab]
        if p_t <= 0:
            continue
        e = [tex_w[lab, c, 0] * tex[2 * c].astype(np.float64) + tex_w[lab, c, 1] * tex[2 * c + 1] for c in range(3)]
        p = fp[s] * p_t * np.exp(e[2])
        pd += p
        a1 += p * np.exp(-e[0]) / t1
        a2 += p * np.exp(-e[1]) / t2
    first = [int(np.flatnonzero(slot_labels == lab)[0]) for lab in slot_labels]
    groups = sorted(set(first))
    lab_frac = np.stack([fp[[s for s in range(s_n) if first[s] == g]].sum(0) for g in groups])
    win = lab_frac.argmax(0)  # first maximum: ties go to the smallest first slot
    tissue = lab_frac.max(0) > np.maximum(n_sub - total, 0.0)  # a tissue must beat the air fraction
    labels = np.where(tissue & (total > 0), slot_labels[np.array(groups)][win], 0)
    mask = (fp[slot_brain].sum(0) >= 0.5 * n_sub) & (total > 0)
    return pd / n_sub, a1 / n_sub, a2 / n_sub, labels, mask


def test_mix_fractions_matches_the_formula_with_sub_slices() -> None:
    from relaxomap.synth.texture import mix_fractions

    rng = np.random.default_rng(11)
    for n_sub in (1, 2):
        args = mix_inputs(rng, (20, 24, 9), n_sub)  # 4320 voxels: several scan chunks and a partial one
        got = mix_fractions(*args)
        ref = mix_reference(*args)
        assert got[0].dtype == np.float32 and got[3].dtype == np.uint8 and got[4].dtype == np.bool_
        for g, r in zip(got[:3], ref[:3]):
            # float32 texture exponents and expf (a few float32 ulp per factor) and the float32 output
            assert_allclose(g, r, rtol=2e-6, atol=1e-12)
        assert_array_equal(got[3], ref[3])
        assert_array_equal(got[4], ref[4])
        assert (got[3] == 0).mean() > 0.05 and (got[3] == 1).any() and got[4].any()  # air, CSF and brain occur


def test_mix_fractions_label_ties_air_and_shared_labels() -> None:
    from relaxomap.synth.texture import mix_fractions

    rng = np.random.default_rng(12)
    frac, labels, brain, values, tex, tex_w, _ = mix_inputs(rng, (1, 1, 6), 1)
    frac[:] = 0.0
    frac[[2, 5], 0, 0, 0] = 0.5  # tie between two tissues: the smaller slot (WM, label 3) wins
    frac[3, 0, 0, 1] = 0.5  # tissue equal to the air fraction: air
    frac[[5, 12], 0, 0, 2] = 0.5  # slot 12 shares slot 0's label (1): the tie goes to group 0 although slot 0 is 0
    frac[[0, 12, 4], 0, 0, 3] = [0.3, 0.3, 0.4]  # label 1 summed over its two slots (0.6) beats 0.4
    frac[[1, 4], 0, 0, 4] = [0.5, 0.5]  # brain exactly 0.5: in the mask
    got = mix_fractions(frac, labels, brain, values, tex, tex_w, 1)
    assert_array_equal(got[3].ravel(), [3, 0, 1, 1, 2, 0])
    assert_array_equal(got[4].ravel(), [True, True, False, False, True, False])  # voxel 3: brain 0.3
    assert_array_equal(got[0].ravel()[5], 0.0)


def test_mix_fractions_rejects_too_many_slots() -> None:
    import pytest

    from relaxomap.synth.texture import mix_fractions

    frac = np.zeros((65, 2, 2, 2), np.float32)
    tex = np.zeros((6, 2, 2, 2), np.float32)
    with pytest.raises(ValueError, match="65"):
        mix_fractions(frac, np.ones(65, np.int64), np.ones(65, bool), np.ones((256, 3)), tex, np.zeros((256, 3, 2)))
