"""Acquisition artefacts of clinical magnitude images: sampled apart from applied.

:func:`sample_artefacts` draws an :class:`ArtefactParams` from an :class:`ArtefactConfig`;
:func:`apply_artefacts` is deterministic given those parameters (its noise comes from the stored
``noise_seed``). Per contrast, in acquisition order:

1. **Receiver bias field** ``b(x, y) = exp(Σ c_ij x^i y^j)``, ``1 <= i + j <= bias_order``, x and y in
   [−1, 1] across the image; smooth and positive. With ``bias_shared`` (default) one field multiplies all
   three contrasts (same receive coil and head position in one exam); otherwise each contrast draws its own.
2. **Complex Gaussian noise** of standard deviation σ per real/imaginary channel, then the magnitude
   (Rician statistics; signed inversion-recovery signals become |s| as in magnitude reconstruction).
   **SNR** is defined on the final image as ``mean(|s·b| over the brain mask) / σ_final``, where σ_final is
   the per-channel noise standard deviation after any k-space truncation (step 3).
3. **Resolution loss / Gibbs ringing**: with probability ``kspace_probability`` only the central fraction
   ``f_y × f_x`` of k-space is kept (hard truncation, zero-filled back to the image size), which blurs and
   rings at edges. Noise is added before truncation (it is acquired with the data), with
   σ = σ_final / sqrt(f_y f_x) so that the SNR above holds.
4. **Arbitrary gain**: the image is multiplied by a per-contrast factor (clinical images have no absolute
   scale; the normalisation removes it).

Noise generator
---------------
The normals are counter-based: the pair ``(n_re, n_im)`` of pixel ``i`` (row-major index in the (H, W)
image) of contrast ``c`` is a pure function of ``(noise_seed, c, i)`` — SplitMix64 bits of the counter turned
into two N(0, 1) by Box-Muller (details in :mod:`synth._artefact_kernel`) — so that a fused, SIMD-vectorised
Numba kernel can draw them where it uses them. :func:`noise_normals` returns them; :func:`apply_artefacts_reference`
is the plain float64 NumPy transcription of steps 1-4 on those normals, which the tests hold the kernel to.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft

from relaxomap.physics.checks import check_bool, check_finite_range, check_int_range, check_range_pair, config_from_dict

__all__ = ["ArtefactConfig", "ArtefactParams", "sample_artefacts", "apply_artefacts", "bias_field", "noise_normals",
           "apply_artefacts_reference"]


@dataclass(frozen=True)
class ArtefactConfig:
    """Ranges of the artefact parameters (see the module docstring for their meaning).

    Parameters
    ----------
    snr : [min, max] SNR per contrast, drawn log-uniformly.
    bias_strength : maximum |c_ij| of the log bias polynomial (0 disables the bias field).
    bias_order : total polynomial degree of the log bias field.
    bias_shared : one bias field for the three contrasts (True) or one per contrast.
    gain : [min, max] multiplicative gain per contrast, drawn log-uniformly.
    kspace_probability : probability per contrast of k-space truncation.
    kspace_fraction : [min, max] fraction of k-space kept per in-plane axis when truncated.
    """

    snr: tuple[float, float] = (15.0, 80.0)
    bias_strength: float = 0.3
    bias_order: int = 3
    bias_shared: bool = True
    gain: tuple[float, float] = (0.2, 5.0)
    kspace_probability: float = 0.3
    kspace_fraction: tuple[float, float] = (0.5, 1.0)

    def __post_init__(self) -> None:
        own = "ArtefactConfig"
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        set_("snr", check_range_pair(own, "snr", self.snr, 0.0, 1e6, lo_open=True))
        set_("gain", check_range_pair(own, "gain", self.gain, 0.0, 1e12, lo_open=True))
        set_("kspace_fraction", check_range_pair(own, "kspace_fraction", self.kspace_fraction, 0.0, 1.0, lo_open=True))
        set_("bias_strength", check_finite_range(own, "bias_strength", self.bias_strength, 0.0, 2.0))
        set_("bias_order", check_int_range(own, "bias_order", self.bias_order, 1, 6))
        set_("bias_shared", check_bool(own, "bias_shared", self.bias_shared))
        set_("kspace_probability", check_finite_range(own, "kspace_probability", self.kspace_probability, 0.0, 1.0))

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArtefactConfig":
        return config_from_dict(cls, d)


@dataclass(frozen=True)
class ArtefactParams:
    """Sampled artefact parameters of one sample (``C`` contrasts).

    Attributes
    ----------
    snr : (C,) float64, SNR per contrast (definition in the module docstring).
    bias_coefs : (C, n_terms) float64, log bias polynomial coefficients (rows equal when shared).
    bias_order : polynomial degree the coefficients belong to.
    gain : (C,) float64 gain per contrast.
    kspace_fraction : (C, 2) float64 fraction of k-space kept along (y, x); 1 = no truncation.
    noise_seed : int, seed of the noise generator used by :func:`apply_artefacts`.
    """

    snr: np.ndarray
    bias_coefs: np.ndarray
    bias_order: int
    gain: np.ndarray
    kspace_fraction: np.ndarray
    noise_seed: int


def _n_terms(order: int) -> int:
    return (order + 1) * (order + 2) // 2 - 1  # monomials x^i y^j with 1 <= i + j <= order


def _log_uniform(rng: np.random.Generator, r: tuple[float, float], n: int) -> np.ndarray:
    return np.exp(rng.uniform(math.log(r[0]), math.log(r[1]), n))


def sample_artefacts(rng: np.random.Generator, config: ArtefactConfig, n_contrasts: int = 3) -> ArtefactParams:
    """Draw the artefact parameters of one sample from ``config`` (see :class:`ArtefactParams`)."""
    c = n_contrasts
    snr = _log_uniform(rng, config.snr, c)
    n_terms = _n_terms(config.bias_order)
    rows = 1 if config.bias_shared else c
    coefs = rng.uniform(-config.bias_strength, config.bias_strength, (rows, n_terms))
    coefs = np.repeat(coefs, c, axis=0) if config.bias_shared else coefs
    gain = _log_uniform(rng, config.gain, c)
    truncate = rng.random(c) < config.kspace_probability
    frac = rng.uniform(config.kspace_fraction[0], config.kspace_fraction[1], (c, 2))
    frac[~truncate] = 1.0
    noise_seed = int(rng.integers(0, 2**63 - 1))
    return ArtefactParams(snr=snr, bias_coefs=coefs, bias_order=config.bias_order, gain=gain,
                          kspace_fraction=frac, noise_seed=noise_seed)


def _log_bias_matrix(coefs: np.ndarray, order: int) -> np.ndarray:
    """``C`` (order+1, order+1) float64 with ``C[j, i] = c_ij`` (the coefficient of x^i y^j), C[0, 0] = 0."""
    c = np.zeros((order + 1, order + 1))
    t = 0
    for deg in range(1, order + 1):
        for i in range(deg, -1, -1):
            c[deg - i, i] = coefs[t]
            t += 1
    return c


def _log_bias(shape: tuple[int, int], coefs: np.ndarray, order: int) -> np.ndarray:
    """(H, W) float64 ``Σ c_ij x^i y^j`` (see :func:`bias_field`)."""
    h, w = shape
    y = np.linspace(-1.0, 1.0, h)[:, None]
    x = np.linspace(-1.0, 1.0, w)[None, :]
    # Σ c_ij x^i y^j = Y C X^T with Y (H, order+1) powers of y, X (W, order+1) powers of x and C[j, i] = c_ij:
    # two small matrix products instead of one full-image pass per term.
    powers = np.arange(order + 1)
    return (y ** powers) @ _log_bias_matrix(coefs, order) @ (x.T ** powers).T  # (H, W)


def bias_field(shape: tuple[int, int], coefs: np.ndarray, order: int) -> np.ndarray:
    """Smooth positive field ``exp(Σ c_ij x^i y^j)`` on an (H, W) grid, x, y in [−1, 1].

    :func:`apply_artefacts` evaluates the same field inside its kernel (float32, relative difference ~1e-7).

    Parameters
    ----------
    shape : (H, W).
    coefs : (n_terms,) coefficients in the order i + j = 1, 2, ..., order; within a degree i descending.
    order : total degree.

    Returns
    -------
    (H, W) float32 field.
    """
    return np.exp(_log_bias(shape, coefs, order).astype(np.float32))


def noise_normals(noise_seed: int, contrast: int, shape: tuple[int, int]) -> np.ndarray:
    """The normals :func:`apply_artefacts` adds to contrast ``contrast`` of an image of ``shape`` (H, W).

    Returns
    -------
    (2, H, W) float32, the real- and imaginary-channel N(0, 1) draws (before scaling by σ).
    """
    from relaxomap.synth._artefact_kernel import normals

    h, w = (int(n) for n in shape)
    return normals(noise_seed, contrast, h * w).reshape(2, h, w)


def _low_frequencies(n: int, keep: int) -> np.ndarray:
    """Indices of the ``keep`` lowest |frequencies| of an unshifted length-``n`` DFT (0, 1, −1, 2, −2, ...)."""
    return np.argsort(np.abs(np.fft.fftfreq(n) * n), kind="stable")[:keep]


def _truncate_kspace(z: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Keep the central ``frac[0] × frac[1]`` of the 2-D k-space of complex image ``z`` (H, W).

    The window is separable, so the 2-D DFT is done axis by axis: after the first axis' forward DFT only its
    kept lines need the other axis' forward and inverse DFT (the first axis is the one keeping the smaller
    fraction), ~20 % fewer operations than ``ifft2(window · fft2(z))``, which it equals.
    """
    keep = [max(1, int(round(frac[a] * z.shape[a]))) for a in (0, 1)]
    a = 0 if keep[0] / z.shape[0] <= keep[1] / z.shape[1] else 1  # first axis
    b = 1 - a
    kept_a = _low_frequencies(z.shape[a], keep[a])
    k = scipy.fft.fft(z, axis=a)
    lines = scipy.fft.fft(np.take(k, kept_a, axis=a), axis=b)  # 2-D k-space on the kept lines
    dropped_b = np.ones(z.shape[b], bool)
    dropped_b[_low_frequencies(z.shape[b], keep[b])] = False
    lines[(slice(None), dropped_b) if b == 1 else dropped_b] = 0
    k[...] = 0
    k[(slice(None), kept_a) if a == 1 else kept_a] = scipy.fft.ifft(lines, axis=b)
    return scipy.fft.ifft(k, axis=a)


def _check_inputs(images: np.ndarray, brain_mask: np.ndarray, params: ArtefactParams) -> tuple[np.ndarray, np.ndarray]:
    imgs = np.ascontiguousarray(images, np.float32)
    if imgs.ndim != 3 or imgs.shape[0] != len(params.snr):
        raise ValueError(f"apply_artefacts: images must be (C={len(params.snr)}, H, W); got shape {imgs.shape}")
    mask = np.ascontiguousarray(brain_mask, bool)
    if mask.shape != imgs.shape[1:]:
        raise ValueError(f"apply_artefacts: brain_mask shape {mask.shape} must equal image shape {imgs.shape[1:]}")
    return imgs, mask


def _sigma(mean: float, snr: float, kept: float) -> float:
    """Per-channel σ before truncation: mean / SNR / sqrt(kept fraction) (0 without signal)."""
    return mean / snr / math.sqrt(kept) if mean > 0 else 0.0


def apply_artefacts(images: np.ndarray, brain_mask: np.ndarray, params: ArtefactParams) -> np.ndarray:
    """Turn noise-free signals into clinical-looking magnitude images (deterministic given ``params``).

    Without k-space truncation one fused float32 Numba pass per contrast does steps 2 and 4 (after a pass
    for the bias field and the SNR mean); truncated contrasts go through a complex64 FFT. Equals
    :func:`apply_artefacts_reference` to float32 rounding.

    Parameters
    ----------
    images : (C, H, W) float32 noise-free signal per contrast (M0 units; may be negative for IR).
    brain_mask : (H, W) bool, the region over which the SNR's mean signal is taken (the whole non-zero
        image if the mask is empty).
    params : from :func:`sample_artefacts` with ``C`` contrasts.

    Returns
    -------
    (C, H, W) float32 magnitude images, >= 0.
    """
    from relaxomap.synth._artefact_kernel import biased_signal, noisy_complex, noisy_magnitude, stream_key

    imgs, mask = _check_inputs(images, brain_mask, params)
    n_c, h, w = imgs.shape
    out = np.empty_like(imgs)
    use_mask = bool(mask.any())
    for c in range(n_c):
        mean = biased_signal(imgs[c], _log_bias_matrix(params.bias_coefs[c], params.bias_order), mask, use_mask,
                             out[c])  # out[c] = s·b
        frac = params.kspace_fraction[c]
        kept = float(frac[0] * frac[1])
        sigma = np.float32(_sigma(mean, float(params.snr[c]), kept))
        key = np.uint64(stream_key(params.noise_seed, c))
        flat = out[c].reshape(-1)  # (H·W,) view; pixel index = row-major index
        if kept < 1.0:
            z = np.empty(h * w, np.complex64)
            noisy_complex(key, sigma, flat, z)
            np.multiply(np.abs(_truncate_kspace(z.reshape(h, w), frac)), np.float32(params.gain[c]), out=out[c])
        else:
            noisy_magnitude(key, sigma, np.float32(params.gain[c]), flat)
    return out


def apply_artefacts_reference(images: np.ndarray, brain_mask: np.ndarray, params: ArtefactParams) -> np.ndarray:
    """Float64 NumPy transcription of steps 1-4 with the normals of :func:`noise_normals` (slow, plain).

    Same parameters as :func:`apply_artefacts`; returns (C, H, W) float64.
    """
    imgs, mask = _check_inputs(images, brain_mask, params)
    out = np.empty(imgs.shape)
    for c in range(imgs.shape[0]):
        s = imgs[c].astype(np.float64) * np.exp(_log_bias(imgs.shape[1:], params.bias_coefs[c], params.bias_order))
        region = np.abs(s[mask]) if mask.any() else np.abs(s[s != 0])
        frac = params.kspace_fraction[c]
        kept = float(frac[0] * frac[1])
        sigma = _sigma(float(region.mean()) if region.size else 0.0, float(params.snr[c]), kept)
        n_re, n_im = noise_normals(params.noise_seed, c, imgs.shape[1:]).astype(np.float64)
        z = (s + sigma * n_re) + 1j * (sigma * n_im)
        mag = np.abs(_truncate_kspace(z, frac)) if kept < 1.0 else np.abs(z)
        out[c] = params.gain[c] * mag
    return out
