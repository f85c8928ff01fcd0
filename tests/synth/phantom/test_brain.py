"""The brain's fused kernels, each against the array-wide NumPy formula it replaces (float64 reference)."""
from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal

from relaxomap.synth.fields import sample_trilinear, smooth_noise
from relaxomap.synth.phantom.brain import (
    carve_fissures,
    cerebrum_shell,
    folding_field,
    sulcal_depth,
    sulcal_skip_mm,
)
from relaxomap.synth.phantom.shapes import ellipsoid_depth, smoothstep
from tests.synth.phantom.grids import SHAPE, SPACING, coords, cube_grid


def grad_norm(g: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """|∇g| [1/mm] by central differences (one-sided at the edges): the reference for the gradient inside the
    sulcal kernel."""
    acc = np.zeros_like(g)
    for axis, h in enumerate(spacing):
        if g.shape[axis] < 2:
            continue
        d = np.empty_like(g)
        sl = [slice(None)] * 3

        def s(a: int | slice, sl: list = sl, axis: int = axis) -> tuple:
            sl = list(sl)
            sl[axis] = a
            return tuple(sl)

        d[s(slice(1, -1))] = (g[s(slice(2, None))] - g[s(slice(None, -2))]) * np.float32(0.5 / h)
        d[s(0)] = (g[s(1)] - g[s(0)]) / np.float32(h)
        d[s(-1)] = (g[s(-1)] - g[s(-2)]) / np.float32(h)
        acc += d * d
    return np.sqrt(acc)


def test_grad_norm_reference_is_exact_on_a_linear_field() -> None:
    x, y, z = cube_grid()
    g = (3.0 * x - 4.0 * z).astype(np.float32)
    assert_allclose(grad_norm(g, (1.0, 1.0, 1.0)), 5.0, rtol=1e-5)  # grid spacing 1 mm; exact for linear g
    assert_allclose(grad_norm(g, (2.0, 1.0, 1.0)), np.hypot(1.5, 4.0), rtol=1e-5)  # x spacing declared 2 mm


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
    fissure = np.maximum(np.abs(x - 1.5 * mid) - 1.4,
                         np.minimum(16 - 8 * ((y - 13) / 35) ** 2 - z, 35 - np.abs(y - 13)))
    z_syl = -6 - 0.4 * (y - 10) + 2.5 + 3 * wobble
    sylvian = np.maximum.reduce([np.abs(z - z_syl) - 0.9, 36.0 - np.abs(x), np.abs(y - 12) - 27])
    assert_allclose(carved, np.minimum.reduce([rho, fissure, sylvian]), atol=1e-3)
    assert (carved < rho).any()
