"""Artefacts (SNR definition, Rician background, bias field, gain, Gibbs ringing), their noise generator and
kernel."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
from numpy.testing import assert_allclose

from relaxomap.synth import _artefact_kernel as kernel
from relaxomap.synth.artefacts import (ArtefactConfig, ArtefactParams, _truncate_kspace, apply_artefacts,
                             apply_artefacts_reference, bias_field, noise_normals, sample_artefacts)

H = W = 256


def _params(snr=(1e9,) * 3, gain=(1.0,) * 3, frac=None, coefs=None, seed=0, order=3) -> ArtefactParams:
    n_terms = (order + 1) * (order + 2) // 2 - 1
    return ArtefactParams(
        snr=np.asarray(snr, float),
        bias_coefs=np.zeros((3, n_terms)) if coefs is None else np.asarray(coefs, float),
        bias_order=order,
        gain=np.asarray(gain, float),
        kspace_fraction=np.ones((3, 2)) if frac is None else np.asarray(frac, float),
        noise_seed=seed,
    )


def test_snr_definition_on_a_uniform_image() -> None:
    clean = np.full((3, H, W), 2.0, np.float32)
    mask = np.ones((H, W), bool)
    snr = (10.0, 40.0, 100.0)
    out = apply_artefacts(clean, mask, _params(snr=snr))
    for c in range(3):
        sigma = 2.0 / snr[c]
        # at SNR >= 10 the magnitude noise is Gaussian with the channel σ to < 0.5 % (Rician → Gauss);
        # the std estimate from 65536 voxels has relative error 1/sqrt(2n) ≈ 0.3 %: 2 % tolerance
        assert_allclose(out[c].std(), sigma, rtol=0.02)
        # Rician mean bias ≈ σ²/(2s) (= 0.5 % of s at SNR 10)
        assert_allclose(out[c].mean(), 2.0 * (1 + 0.5 / snr[c] ** 2), rtol=2e-3)


def test_snr_definition_survives_kspace_truncation() -> None:
    clean = np.full((3, H, W), 1.0, np.float32)
    out = apply_artefacts(clean, np.ones((H, W), bool), _params(snr=(20.0,) * 3, frac=[[0.5, 0.5], [0.7, 1.0],
                                                                                         [1.0, 1.0]]))
    for c in range(3):
        # truncation keeps a constant image exactly (DC only) and scales the noise to σ_final: 2 % as above
        # (low-passed noise has fewer independent samples, ~n·f, so the estimate error is <= 0.6 %)
        assert_allclose(out[c].std(), 1.0 / 20.0, rtol=0.02)


def test_background_noise_is_rayleigh() -> None:
    clean = np.zeros((3, H, W), np.float32)
    clean[:, :, : W // 2] = 1.0  # signal on the left half; SNR is defined there
    mask = clean[0] > 0
    out = apply_artefacts(clean, mask, _params(snr=(25.0,) * 3))
    m = out[:, :, W // 2:].ravel() / (1.0 / 25.0)  # background magnitude / σ, σ = mean signal / SNR
    n = m.size  # 98304
    # Rayleigh(1): mean sqrt(π/2), variance (4 − π)/2, E[m²] = 2, Var[m²] = 4; 5 standard errors
    assert_allclose(m.mean(), math.sqrt(math.pi / 2), atol=5 * math.sqrt((4 - math.pi) / 2 / n))
    assert_allclose((m**2).mean(), 2.0, atol=5 * 2 / math.sqrt(n))
    # whole distribution: Kolmogorov-Smirnov distance below its 0.1 % critical value sqrt(ln(2/0.001)/2)/sqrt(n)
    assert scipy.stats.kstest(m, scipy.stats.rayleigh.cdf).statistic < 1.95 / math.sqrt(n)


def test_snr_includes_the_bias_field() -> None:
    clean = np.zeros((3, H, W), np.float32)
    clean[:, :, : W // 2] = 1.0
    mask = clean[0] > 0
    coefs = np.zeros((3, 9))
    coefs[:, 0] = 0.5  # b = exp(0.5 x): mean over the left half 2(1 − e^-0.5) = 0.79, far from 1
    snr = (10.0, 30.0, 60.0)
    out = apply_artefacts(clean, mask, _params(snr=snr, gain=(2.0, 1.0, 0.3), coefs=coefs))
    mean_sb = (clean[0] * bias_field((H, W), coefs[0], 3))[mask].mean()
    for c in range(3):
        background = out[c, :, W // 2:] / (2.0, 1.0, 0.3)[c]
        sigma = math.sqrt((background.astype(np.float64) ** 2).mean() / 2)  # Rayleigh: E[m²] = 2σ²
        # relative standard error of this σ estimate 1/(2 sqrt(32768)) = 0.28 %: 5 standard errors
        assert_allclose(mean_sb / sigma, snr[c], rtol=5 * 0.5 / math.sqrt(background.size))


def test_gain_is_linear_and_noise_deterministic() -> None:
    rng = np.random.default_rng(1)
    clean = rng.uniform(0, 1, (3, H, W)).astype(np.float32)
    mask = np.ones((H, W), bool)
    a = apply_artefacts(clean, mask, _params(snr=(20.0,) * 3, seed=5))
    b = apply_artefacts(clean, mask, _params(snr=(20.0,) * 3, gain=(3.0, 0.5, 7.0), seed=5))
    assert_allclose(b, a * np.array([3.0, 0.5, 7.0], np.float32)[:, None, None], rtol=1e-6)  # float32 rounding
    c = apply_artefacts(clean, mask, _params(snr=(20.0,) * 3, seed=6))
    assert np.array_equal(a, apply_artefacts(clean, mask, _params(snr=(20.0,) * 3, seed=5)))
    assert not np.array_equal(a, c)


def test_bias_field_values() -> None:
    assert_allclose(bias_field((H, W), np.zeros(9), 3), 1.0, rtol=0)
    # one linear term c·x: exp(c) at the right edge, exp(-c) at the left, 1 at the centre column
    coefs = np.zeros(9)
    coefs[0] = 0.3  # i + j = 1, i = 1: x
    f = bias_field((H, W + 1), coefs, 3)
    assert_allclose(f[:, -1], math.exp(0.3), rtol=1e-6)
    assert_allclose(f[:, 0], math.exp(-0.3), rtol=1e-6)
    assert_allclose(f[:, W // 2], 1.0, rtol=1e-6)


def test_bias_shared_or_per_contrast() -> None:
    clean = np.ones((3, 64, 64), np.float32)
    mask = np.ones((64, 64), bool)
    for shared in (True, False):
        cfg = ArtefactConfig(snr=(1e6, 1e6), bias_strength=0.4, bias_shared=shared, gain=(1, 1),
                             kspace_probability=0.0)
        p = sample_artefacts(np.random.default_rng(2), cfg)
        out = apply_artefacts(clean, mask, p)
        same = np.allclose(out[0], out[1], rtol=1e-5) and np.allclose(out[0], out[2], rtol=1e-5)
        assert same == shared
        assert out.min() > 0 and out.std() > 0.01  # a real, positive field


def test_kspace_truncation_equals_partial_fourier_sum() -> None:
    clean = np.zeros((3, H, W), np.float32)
    clean[:, :, W // 4: 3 * W // 4] = 1.0  # a box along x: two vertical edges
    out = apply_artefacts(clean, clean[0] > 0, _params(frac=[[1.0, 0.5]] * 3))
    # reference: the partial DFT sum written out (no FFT) over the 128 kept frequencies k = -63..64
    n = np.arange(W)
    box = clean[0, 0].astype(np.float64)
    ks = np.arange(-63, 65)
    coef = np.exp(-2j * np.pi * np.outer(ks, n) / W) @ box  # X_k
    ref = np.abs(np.exp(2j * np.pi * np.outer(n, ks) / W) @ coef) / W
    assert_allclose(out[0], np.broadcast_to(ref, (H, W)), atol=1e-5)  # float32 FFT round-off
    assert out[0].max() > 1.05  # Gibbs ringing (the continuous overshoot is 8.95 %; sampled on the grid less)
    assert_allclose(out[1], out[0], atol=1e-6)  # same truncation; only the (negligible) noise differs


def test_sampled_parameters_within_config() -> None:
    cfg = ArtefactConfig()
    rng = np.random.default_rng(0)
    ps = [sample_artefacts(rng, cfg) for _ in range(500)]
    snr = np.array([p.snr for p in ps])
    gain = np.array([p.gain for p in ps])
    frac = np.array([p.kspace_fraction for p in ps])
    assert cfg.snr[0] <= snr.min() and snr.max() <= cfg.snr[1]
    assert cfg.gain[0] <= gain.min() and gain.max() <= cfg.gain[1]
    truncated = (frac < 1).any(axis=2)
    # 1500 Bernoulli(0.3) draws: 5 standard deviations
    assert abs(truncated.mean() - cfg.kspace_probability) < 5 * math.sqrt(0.3 * 0.7 / 1500)
    assert frac[truncated].min() >= cfg.kspace_fraction[0]
    assert np.abs(np.array([p.bias_coefs for p in ps])).max() <= cfg.bias_strength
    assert len({p.noise_seed for p in ps}) == 500


# --------------------------------------------------------------------------- noise generator and kernel
def test_normals_match_float64_reference() -> None:
    for seed, c in ((0, 0), (2**62 + 12345, 2)):
        got = kernel.normals(seed, c, 1 << 18)
        ref = kernel.normals_reference(seed, c, 1 << 18)
        # float32 evaluation of r <= 6.66 and of the unit-circle factors: a few ulp (ulp(4..8) = 4.8e-7)
        assert_allclose(got, ref, rtol=0, atol=1e-6)
        # radii to ~4 float32 eps relative, small ones included (u1 next to 1 is taken from the integer)
        assert_allclose(np.hypot(*got), np.hypot(*ref), rtol=5e-7)
    # the branch and quadrant edges of steps 3-4: u1 = 2**-32 (r = 6.66), 1 (r = 0), either side of √½;
    # angles at and next to multiples of π/4
    th = math.ceil(math.sqrt(0.5) * 2**32) - 1  # first high word with u1 >= √½
    hi = np.array([0, 1, 2, 1000, th - 2, th - 1, th, th + 1, 2**31 - 1, 2**31, 2**32 - 257, 2**32 - 2, 2**32 - 1],
                  np.uint64)
    lo = np.array([0, 1, 2**29 - 1, 2**29, 2**30 - 1, 2**30, 3 * 2**29, 2**31, 5 * 2**29, 3 * 2**30, 7 * 2**29,
                   2**32 - 1], np.uint64)
    w = ((hi[:, None] << np.uint64(32)) | lo[None, :]).ravel()
    ref = kernel.normals_from_bits_reference(w)
    assert_allclose(kernel.normals_from_bits(w), ref, rtol=0, atol=1e-6)  # as above
    assert_allclose(np.hypot(*ref).max(), math.sqrt(64 * math.log(2)), rtol=1e-12)  # the radius cut-off
    assert np.array_equal(kernel.normals_from_bits(np.array([2**64 - 1], np.uint64)), np.zeros((2, 1), np.float32))


def test_normals_are_standard_gaussian() -> None:
    pairs = noise_normals(7, 1, (1024, 1024))  # (2, 1024, 1024)
    x = pairs.astype(np.float64).ravel()
    n = x.size  # 2**21
    # mean 0 and sd 1 to 5 standard errors (1/sqrt(n) and 1/sqrt(2n))
    assert_allclose(x.mean(), 0.0, atol=5 / math.sqrt(n))
    assert_allclose(x.std(), 1.0, atol=5 / math.sqrt(2 * n))
    for k in (1.0, 2.0, 3.0, 4.0):  # two-sided tail fractions: binomial, 5 standard errors
        p = math.erfc(k / math.sqrt(2))
        assert_allclose((np.abs(x) > k).mean(), p, atol=5 * math.sqrt(p * (1 - p) / n))
    # Kolmogorov-Smirnov distance below its 0.1 % critical value
    assert scipy.stats.kstest(x, scipy.stats.norm.cdf).statistic < 1.95 / math.sqrt(n)
    # independent: channels, neighbouring pixels, contrasts and seeds uncorrelated (5 / sqrt(pairs))
    re, im = pairs.reshape(2, -1).astype(np.float64)
    other_contrast = noise_normals(7, 2, (1024, 1024))[0].ravel()
    other_seed = noise_normals(8, 1, (1024, 1024))[0].ravel()
    for a, b in ((re, im), (re[:-1], re[1:]), (re, other_contrast), (re, other_seed)):
        assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(a.size)


def test_noise_is_counter_based_and_deterministic() -> None:
    long = kernel.normals(3, 0, 100_000)
    assert np.array_equal(kernel.normals(3, 0, 1000), long[:, :1000])  # a pixel's normals depend on its index only
    assert np.array_equal(noise_normals(3, 0, (200, 500)), long.reshape(2, 200, 500))  # row-major pixel index
    assert not np.array_equal(kernel.normals(3, 1, 1000), long[:, :1000])
    assert not np.array_equal(kernel.normals(4, 0, 1000), long[:, :1000])
    clean = np.random.default_rng(4).uniform(0, 1, (3, 64, 80)).astype(np.float32)
    mask = np.ones((64, 80), bool)
    for frac in (None, [[0.6, 0.8]] * 3):
        a = apply_artefacts(clean, mask, _params(snr=(20.0,) * 3, frac=frac, seed=9))
        assert np.array_equal(a, apply_artefacts(clean, mask, _params(snr=(20.0,) * 3, frac=frac, seed=9)))
        assert not np.array_equal(a, apply_artefacts(clean, mask, _params(snr=(20.0,) * 3, frac=frac, seed=10)))


def _ir_like_sample(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed signals (inversion recovery crosses 0) inside an ellipse, zero background."""
    yy, xx = np.mgrid[:h, :w]
    mask = ((yy - h / 2) / (0.4 * h)) ** 2 + ((xx - w / 2) / (0.45 * w)) ** 2 < 1
    clean = rng.uniform(-0.4, 1.0, (3, h, w)).astype(np.float32)
    clean[:, ~mask] = 0
    return clean, mask


@pytest.mark.parametrize("truncate", [False, True])
def test_kernel_equals_float64_reference(truncate: bool) -> None:
    rng = np.random.default_rng(11)
    clean, mask = _ir_like_sample(rng, 200, 232)
    cfg = ArtefactConfig(snr=(3.0, 100.0), bias_strength=0.5, bias_order=4, bias_shared=False,
                         kspace_probability=0.7 if truncate else 0.0)
    for _ in range(4):
        p = sample_artefacts(rng, cfg)
        got = apply_artefacts(clean, mask, p)
        ref = apply_artefacts_reference(clean, mask, p)
        assert got.dtype == np.float32 and got.shape == clean.shape and got.min() >= 0
        for c in range(3):
            # float32 arithmetic on values <= the image maximum: a few roundings of 6e-8 each, plus float32 FFT
            # round-off (~1e-7 log2 n relative) when truncated: 2e-6 of the image maximum
            assert_allclose(got[c], ref[c], rtol=0, atol=2e-6 * ref[c].max())
    # an empty mask: the SNR mean is taken over the non-zero signal
    p = sample_artefacts(rng, cfg)
    empty = np.zeros_like(mask)
    got, ref = apply_artefacts(clean, empty, p), apply_artefacts_reference(clean, empty, p)
    assert_allclose(got, ref, rtol=0, atol=2e-6 * ref.max())  # as above
    # ... which here is the ellipse: the same as passing it as the mask (not the whole image)
    assert np.array_equal(got, apply_artefacts(clean, clean[0] != 0, p))
    assert not np.allclose(got, apply_artefacts(clean, np.ones_like(mask), p), rtol=1e-3)


@pytest.mark.parametrize("shape", [(64, 48), (33, 70)])
def test_separable_truncation_equals_2d_window(shape) -> None:
    rng = np.random.default_rng(5)
    z = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    h, w = shape
    for frac in ([0.7, 0.7], [0.5, 0.9], [0.95, 0.6], [1.0, 0.5], [1.0, 1.0], [0.01, 0.3]):
        keep_y, keep_x = max(1, round(frac[0] * h)), max(1, round(frac[1] * w))
        window = np.zeros(shape, bool)  # kept: the keep lowest |k| per axis, k = 0, 1, −1, 2, −2, ...
        ky = np.concatenate([np.arange(keep_y // 2 + 1), h - np.arange(1, (keep_y + 1) // 2)]) % h
        kx = np.concatenate([np.arange(keep_x // 2 + 1), w - np.arange(1, (keep_x + 1) // 2)]) % w
        window[np.ix_(ky, kx)] = True
        ref = np.fft.ifft2(np.fft.fft2(z) * window)
        got = _truncate_kspace(z.astype(np.complex64), np.array(frac))
        assert got.dtype == np.complex64
        assert_allclose(got, ref, rtol=0, atol=1e-6 * np.abs(z).max())  # complex64 FFT round-off, ~1e-7 log2 n


@pytest.mark.parametrize("kw, field", [({"snr": (0, 10)}, "snr"), ({"snr": (50, 10)}, "snr"),
                                       ({"gain": (-1, 2)}, "gain"), ({"bias_order": 0}, "bias_order"),
                                       ({"kspace_probability": 1.5}, "kspace_probability"),
                                       ({"kspace_fraction": (0.0, 1.0)}, "kspace_fraction"),
                                       ({"bias_strength": -0.1}, "bias_strength")])
def test_config_errors_name_the_field(kw, field) -> None:
    with pytest.raises(ValueError, match=field):
        ArtefactConfig(**kw)


def test_config_json_round_trip() -> None:
    cfg = ArtefactConfig(snr=(10, 20), bias_shared=False)
    assert ArtefactConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown field"):
        ArtefactConfig.from_dict({"noise": 1})


def test_apply_checks_shapes() -> None:
    with pytest.raises(ValueError, match="brain_mask shape"):
        apply_artefacts(np.ones((3, 8, 8), np.float32), np.ones((8, 9), bool), _params())
    with pytest.raises(ValueError, match="images must be"):
        apply_artefacts(np.ones((2, 8, 8), np.float32), np.ones((8, 8), bool), _params())
