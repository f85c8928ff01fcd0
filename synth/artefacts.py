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
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.fft

from physics._checks import check_bool, check_finite_range, check_int_range, check_range_pair, config_from_dict

__all__ = ["ArtefactConfig", "ArtefactParams", "sample_artefacts", "apply_artefacts", "bias_field"]


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


def bias_field(shape: tuple[int, int], coefs: np.ndarray, order: int) -> np.ndarray:
    """Smooth positive field ``exp(Σ c_ij x^i y^j)`` on an (H, W) grid, x, y in [−1, 1].

    Parameters
    ----------
    shape : (H, W).
    coefs : (n_terms,) coefficients in the order i + j = 1, 2, ..., order; within a degree i descending.
    order : total degree.

    Returns
    -------
    (H, W) float32 field.
    """
    h, w = shape
    y = np.linspace(-1.0, 1.0, h)[:, None]
    x = np.linspace(-1.0, 1.0, w)[None, :]
    # Σ c_ij x^i y^j = Y C X^T with Y (H, order+1) powers of y, X (W, order+1) powers of x and C[j, i] = c_ij:
    # two small matrix products instead of one full-image pass per term.
    c = np.zeros((order + 1, order + 1))
    t = 0
    for deg in range(1, order + 1):
        for i in range(deg, -1, -1):
            c[deg - i, i] = coefs[t]
            t += 1
    powers = np.arange(order + 1)
    log_b = (y ** powers) @ c @ (x.T ** powers).T  # (H, W)
    return np.exp(log_b.astype(np.float32))


def _truncate_kspace(z: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Keep the central ``frac[0] × frac[1]`` of the 2-D k-space of complex image ``z`` (H, W)."""
    h, w = z.shape
    k = scipy.fft.fft2(z)
    keep_y = max(1, int(round(frac[0] * h)))
    keep_x = max(1, int(round(frac[1] * w)))
    # unshifted layout: low frequencies at both ends of each axis
    fy = np.abs(np.fft.fftfreq(h) * h)
    fx = np.abs(np.fft.fftfreq(w) * w)
    my = np.argsort(fy, kind="stable")[:keep_y]
    mx = np.argsort(fx, kind="stable")[:keep_x]
    window = np.zeros((h, w), bool)
    window[np.ix_(my, mx)] = True
    return scipy.fft.ifft2(np.where(window, k, 0))


def apply_artefacts(images: np.ndarray, brain_mask: np.ndarray, params: ArtefactParams) -> np.ndarray:
    """Turn noise-free signals into clinical-looking magnitude images (deterministic given ``params``).

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
    imgs = np.asarray(images, np.float32)
    if imgs.ndim != 3 or imgs.shape[0] != len(params.snr):
        raise ValueError(f"apply_artefacts: images must be (C={len(params.snr)}, H, W); got shape {imgs.shape}")
    mask = np.asarray(brain_mask, bool)
    if mask.shape != imgs.shape[1:]:
        raise ValueError(f"apply_artefacts: brain_mask shape {mask.shape} must equal image shape {imgs.shape[1:]}")
    rng = np.random.default_rng(params.noise_seed)
    out = np.empty_like(imgs)
    shape = imgs.shape[1:]
    fields: dict[bytes, np.ndarray] = {}
    for c in range(imgs.shape[0]):
        key = params.bias_coefs[c].tobytes()
        if key not in fields:
            fields[key] = bias_field(shape, params.bias_coefs[c], params.bias_order)
        s = imgs[c] * fields[key]
        region = np.abs(s[mask]) if mask.any() else np.abs(s[s != 0])
        mean = float(region.mean()) if region.size else 0.0
        frac = params.kspace_fraction[c]
        kept = float(frac[0] * frac[1])
        sigma = np.float32(mean / params.snr[c] / math.sqrt(kept)) if mean > 0 else np.float32(0.0)
        noise = rng.standard_normal((2, *shape), dtype=np.float32)
        noise *= sigma
        noise[0] += s
        if kept < 1.0:
            z = np.empty(shape, np.complex64)
            z.real, z.imag = noise[0], noise[1]
            mag = np.abs(_truncate_kspace(z, frac)).astype(np.float32)
        else:
            mag = np.hypot(noise[0], noise[1])
        mag *= np.float32(params.gain[c])
        out[c] = mag
    return out
