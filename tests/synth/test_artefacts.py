"""Artefacts (SNR definition, Rician background, bias field, gain, Gibbs ringing) and the intensity normalisation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from synth.artefacts import ArtefactConfig, ArtefactParams, apply_artefacts, bias_field, sample_artefacts
from synth.normalize import normalize_intensity, percentile

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
    background = out[:, :, W // 2:]
    sigma = 1.0 / 25.0
    # Rayleigh mean σ·sqrt(π/2); 32768 samples per contrast: standard error 0.3 %, 2 % tolerance
    assert_allclose(background.reshape(3, -1).mean(1), sigma * math.sqrt(math.pi / 2), rtol=0.02)


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


# --------------------------------------------------------------------------- normalisation
def _head(gain: float, pad: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.zeros((128, 128), np.float32)
    yy, xx = np.mgrid[:128, :128]
    inside = (yy - 64) ** 2 + (xx - 64) ** 2 < 50**2
    img[inside] = rng.uniform(0.5, 1.0, inside.sum())
    img[~inside] = np.abs(rng.normal(0, 0.01, (~inside).sum()))  # background noise
    return np.pad(img * gain, pad)


def test_normalize_removes_gain_and_padding() -> None:
    a, scale_a = normalize_intensity(_head(1.0, 0))
    b, scale_b = normalize_intensity(_head(37.0, 0))
    c, _ = normalize_intensity(_head(1.0, 64))  # 4x more background voxels
    assert_allclose(scale_b, 37.0 * scale_a, rtol=1e-6)  # float32 rounding
    assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert_allclose(c[64:-64, 64:-64], a, rtol=1e-6)  # the foreground threshold ignores background voxels
    # the 99th percentile of uniform(0.5, 1) is 0.995 (sampling error of the quantile < 0.2 %)
    assert_allclose(scale_a, 0.995, rtol=5e-3)


def test_normalize_with_mask_and_errors() -> None:
    img = _head(2.0, 0)
    mask = np.zeros(img.shape, bool)
    mask[60:68, 60:68] = True
    out, scale = normalize_intensity(img, mask)
    assert_allclose(scale, np.percentile(img[mask], 99), rtol=1e-6)
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="foreground is empty"):
        normalize_intensity(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        normalize_intensity(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="mask shape"):
        normalize_intensity(img, mask[:10])


@pytest.mark.parametrize("n", [1, 2, 7, 100, 65536])
def test_percentile_equals_numpy(n: int) -> None:
    x = np.random.default_rng(n).random(n).astype(np.float32)
    for q in (0.0, 1.0, 50.0, 99.0, 99.9, 100.0):
        # same order statistics and interpolation; float64 interpolation vs numpy's: a few ulp
        assert_allclose(percentile(x, q), np.percentile(x, q), rtol=1e-6)
