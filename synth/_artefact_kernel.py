"""Numba kernels of :mod:`synth.artefacts` (private; the public entry is :func:`synth.artefacts.apply_artefacts`).

Counter-based Gaussian noise
----------------------------
Every normal pair is a pure function of ``(noise_seed, contrast, pixel)``, so no generator state is carried
and the result does not depend on how a loop is split. With ``mix64`` the SplitMix64 output function
(Steele, Lea & Flood, OOPSLA 2014; a bijection of 64-bit words) and ``G = 0x9E3779B97F4A7C15``:

1. stream key of contrast ``c``: ``k_c = mix64(mix64(noise_seed) + c)`` (all sums mod 2**64);
2. 64 random bits of pixel ``i`` (row-major index in the (H, W) image): ``w = mix64(k_c + (i + 1)·G)``, which
   is the ``i``-th output of a SplitMix64 generator started at ``k_c``;
3. two uniforms from the halves of ``w``: ``u1 = (⌊w / 2**32⌋ + 1) / 2**32`` in (0, 1] and
   ``t = (w mod 2**32) / 2**32`` in [0, 1);
4. Box-Muller: ``r = sqrt(-2 ln u1)``, ``(n_re, n_im) = (r cos 2πt, r sin 2πt)``, two independent N(0, 1).

The 32-bit ``u1`` resolution truncates the radius at ``sqrt(64 ln 2) = 6.66`` (tail probability
``exp(-r²/2) = 2**-32`` per pixel); everything else is exact up to float32 rounding.

The kernels evaluate step 4 in float32 with operations that SIMD-vectorise (no libm calls):

* ``ln u1`` = ``e·ln 2 + 2 atanh(f / (2 + f))`` with ``u1 = 2**e (1 + f)``, ``1 + f`` in [√½, √2), the atanh
  series to ``s**9`` (truncation error ``< 3e-9`` relative, as ``|s| <= 0.172``). For ``u1 >= √½`` the kernel
  takes ``e = 0`` and ``f = u1 - 1`` straight from the integer ``⌊w / 2**32⌋``, so ``ln u1`` keeps its
  relative precision next to ``u1 = 1`` (small radii);
* ``2πt`` is reduced exactly in integers to a quadrant ``q`` and ``x`` in [−π/4, π/4); ``sin x``, ``cos x`` are
  their Taylor series to ``x**9`` / ``x**10`` (truncation ``< 2e-9``), rotated by ``q·π/2``.

:func:`normals_reference` is the plain float64 NumPy transcription of steps 1-4 (``np.log``, ``np.cos``,
``np.sin``); tests hold :func:`normals` to it (agreement ~5e-7 absolute, a few float32 ulp of r).

Kernels
-------
Serial (data generation runs in several worker processes), ``fastmath``, ``error_model="numpy"`` (no
zero-division branch, so the pixel loops vectorise). Per 256 x 256 contrast: :func:`biased_signal` (bias field,
``s·b`` and the SNR mean) ~0.03 ms, :func:`noisy_magnitude` ~0.06 ms. Results are identical from run to run
and process to process on one machine; CPUs with other vector widths or without FMA may differ in the last
float32 bits.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from relaxomap.physics._fastexp import LOG2E, exp2_pair

__all__ = ["stream_key", "normals", "normals_from_bits", "bits_reference", "normals_from_bits_reference",
           "normals_reference", "biased_signal", "noisy_magnitude", "noisy_complex"]

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB

_U64 = np.uint64
_G64, _M164, _M264 = _U64(_GOLDEN), _U64(_M1), _U64(_M2)
_S30, _S27, _S31, _S32 = _U64(30), _U64(27), _U64(31), _U64(32)
_LO32 = _U64(0xFFFFFFFF)
_TWO32 = np.int64(1 << 32)
_SQRT_HALF_2_32 = np.int64(math.ceil(math.sqrt(0.5) * 2.0**32))  # a + 1 >= this <=> u1 >= √½

_F = np.float32
_INV_2_32 = _F(2.0**-32)
_LN2 = _F(math.log(2.0))
_SQRT2 = _F(math.sqrt(2.0))
_TWO_PI_2_32 = _F(2.0 * math.pi / 2.0**32)
_HALF, _ONE, _TWO, _MINUS2 = _F(0.5), _F(1.0), _F(2.0), _F(-2.0)
# atanh series 2s(1 + s²/3 + s⁴/5 + s⁶/7 + s⁸/9); Taylor series of sin (to x⁹) and cos (to x¹⁰)
_A3, _A5, _A7, _A9 = _F(1 / 3), _F(1 / 5), _F(1 / 7), _F(1 / 9)
_S3, _S5, _S7, _S9 = (_F((-1) ** k / math.factorial(2 * k + 1)) for k in range(1, 5))
_C2, _C4, _C6, _C8, _C10 = (_F((-1) ** k / math.factorial(2 * k)) for k in range(1, 6))


# ---------------------------------------------------------------------- the generator, in Python / NumPy
def _mix64_py(z: int) -> int:
    z &= _MASK64
    z = ((z ^ (z >> 30)) * _M1) & _MASK64
    z = ((z ^ (z >> 27)) * _M2) & _MASK64
    return z ^ (z >> 31)


def stream_key(noise_seed: int, contrast: int) -> int:
    """``k_c = mix64(mix64(noise_seed) + c)``: the 64-bit key of contrast ``c``'s noise stream (step 1)."""
    return _mix64_py(_mix64_py(int(noise_seed)) + int(contrast))


def bits_reference(noise_seed: int, contrast: int, n: int) -> np.ndarray:
    """The 64-bit words ``w`` of pixels 0 .. n-1 (steps 1-2): (n,) uint64."""
    z = _U64(stream_key(noise_seed, contrast)) + np.arange(1, n + 1, dtype=np.uint64) * _G64  # wraps mod 2**64
    z = (z ^ (z >> _S30)) * _M164
    z = (z ^ (z >> _S27)) * _M264
    return z ^ (z >> _S31)


def normals_from_bits_reference(w: np.ndarray) -> np.ndarray:
    """Steps 3-4 in float64 NumPy: (n,) uint64 words -> (2, n) float64 normals (re, im)."""
    w = np.asarray(w, np.uint64)
    u1 = ((w >> _S32).astype(np.float64) + 1.0) * 2.0**-32  # exact: integers < 2**53
    t = (w & _LO32).astype(np.float64) * 2.0**-32
    r = np.sqrt(-2.0 * np.log(u1))
    return np.stack([r * np.cos(2 * np.pi * t), r * np.sin(2 * np.pi * t)])


def normals_reference(noise_seed: int, contrast: int, n: int) -> np.ndarray:
    """Float64 NumPy transcription of steps 1-4 (module docstring): (2, n) float64 normals of pixels 0 .. n-1."""
    return normals_from_bits_reference(bits_reference(noise_seed, contrast, n))


# ---------------------------------------------------------------------- the generator, vectorisable float32
@intrinsic
def _f32_bits(typingctx, x):
    """The IEEE-754 bits of a float32 as int32."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@intrinsic
def _bits_f32(typingctx, i):
    """The float32 whose IEEE-754 bits are the int32 ``i``."""
    if i != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@njit(inline="always", cache=True)
def _mix64(z):
    z = (z ^ (z >> _S30)) * _M164
    z = (z ^ (z >> _S27)) * _M264
    return z ^ (z >> _S31)


@njit(inline="always", fastmath=True, error_model="numpy", cache=True)
def _normals_from_bits(w):
    """Normals ``(n_re, n_im)`` (float32) from the 64 random bits ``w`` (uint64): steps 3-4."""
    a1 = np.int64(w >> _S32) + 1  # 2**32 · u1, in [1, 2**32]
    # ln u1 = e ln 2 + ln(1 + f): near u1 = 1 from the exact complement, else from the float32 bits
    near_one = a1 >= _SQRT_HALF_2_32
    f_near = -_F(_TWO32 - a1) * _INV_2_32
    bits = _f32_bits(_F(a1) * _INV_2_32)
    e_far = _F((bits >> 23) - 127)
    m = _bits_f32(np.int32((bits & 0x7FFFFF) | 0x3F800000))  # mantissa in [1, 2)
    big = m > _SQRT2
    m = m * _HALF if big else m
    e_far = e_far + _ONE if big else e_far
    f = f_near if near_one else m - _ONE
    e = _F(0.0) if near_one else e_far
    s = f / (_TWO + f)
    s2 = s * s
    log_u1 = e * _LN2 + _TWO * s * (_ONE + s2 * (_A3 + s2 * (_A5 + s2 * (_A7 + s2 * _A9))))
    r = np.sqrt(_MINUS2 * log_u1)
    # angle 2π t = q π/2 + x, |x| <= π/4, reduced exactly on the integer 2**32 t
    b = np.int64(w & _LO32)
    q = (b + np.int64(1 << 29)) >> 30  # 0 .. 4
    x = _F(np.int32(b - (q << 30))) * _TWO_PI_2_32
    x2 = x * x
    sn = x * (_ONE + x2 * (_S3 + x2 * (_S5 + x2 * (_S7 + x2 * _S9))))
    cs = _ONE + x2 * (_C2 + x2 * (_C4 + x2 * (_C6 + x2 * (_C8 + x2 * _C10))))
    odd = (q & 1) == 1
    c_rot = sn if odd else cs
    s_rot = cs if odd else sn
    cos_t = -c_rot if ((q + 1) & 2) != 0 else c_rot
    sin_t = -s_rot if (q & 2) != 0 else s_rot
    return r * cos_t, r * sin_t


@njit(inline="always", fastmath=True, error_model="numpy", cache=True)
def _normal_pair(key, i):
    """Normals ``(n_re, n_im)`` (float32) of pixel ``i`` in the stream ``key`` (uint64): steps 2-4."""
    return _normals_from_bits(_mix64(key + _U64(i + 1) * _G64))


@njit(cache=True, fastmath=True, error_model="numpy")
def _fill_normals(key, out):
    for i in range(out.shape[1]):
        out[0, i], out[1, i] = _normal_pair(key, i)


@njit(cache=True, fastmath=True, error_model="numpy")
def _fill_normals_from_bits(w, out):
    for i in range(w.shape[0]):
        out[0, i], out[1, i] = _normals_from_bits(w[i])


def normals_from_bits(w: np.ndarray) -> np.ndarray:
    """Steps 3-4 as the kernels evaluate them: (n,) uint64 words -> (2, n) float32 normals (for tests)."""
    w = np.ascontiguousarray(w, np.uint64)
    out = np.empty((2, w.shape[0]), np.float32)
    _fill_normals_from_bits(w, out)
    return out


def normals(noise_seed: int, contrast: int, n: int) -> np.ndarray:
    """The kernels' normals of pixels 0 .. n-1 of contrast ``contrast``: (2, n) float32 (re, im)."""
    out = np.empty((2, int(n)), np.float32)
    _fill_normals(_U64(stream_key(noise_seed, contrast)), out)
    return out


# ---------------------------------------------------------------------- artefact passes over one contrast
@njit(cache=True, fastmath=True, error_model="numpy")
def biased_signal(image, log_bias, mask, use_mask, out):
    """``out = image · exp(P(x, y))`` and the mean of ``|out|`` over the SNR region.

    Parameters
    ----------
    image : (H, W) float32 noise-free signal.
    log_bias : (K, K) float64, ``P(x, y) = Σ log_bias[j, i] x^i y^j`` with x (columns) and y (rows) spaced
        evenly over [−1, 1] as in :func:`synth.artefacts.bias_field`.
    mask : (H, W) bool SNR region (used when ``use_mask``; else the region is ``out != 0``).
    out : (H, W) float32, written.

    Returns
    -------
    float64 mean of ``|out|`` over the region (0 for an empty region).
    """
    h, w = image.shape
    k = log_bias.shape[0]
    dy = 2.0 / (h - 1) if h > 1 else 0.0
    dx = 2.0 / (w - 1) if w > 1 else 0.0
    xs = np.empty(w, np.float32)
    for col in range(w):
        xs[col] = -1.0 + col * dx
    row = np.empty(k, np.float32)  # this row's polynomial in x, Σ_i row[i] x^i, in base 2
    p = np.empty(w, np.float32)
    total = 0.0
    count = 0
    for r in range(h):
        y = -1.0 + r * dy
        for i in range(k):
            acc = 0.0
            for j in range(k - 1, -1, -1):  # Horner in y (float64: k² operations per row)
                acc = acc * y + log_bias[j, i]
            row[i] = acc * LOG2E
        p[:] = row[k - 1]
        for i in range(k - 2, -1, -1):  # Horner in x, one vectorised pass per power
            c = row[i]
            for col in range(w):
                p[col] = p[col] * xs[col] + c
        for col in range(w):
            v = image[r, col] * exp2_pair(p[col])[0]
            out[r, col] = v
            inside = mask[r, col] if use_mask else v != 0
            total += abs(v) if inside else 0.0
            count += 1 if inside else 0
    return total / count if count else 0.0


@njit(cache=True, fastmath=True, error_model="numpy")
def noisy_magnitude(key, sigma, gain, signal):
    """In place: ``signal = gain · |signal + σ (n_re + i n_im)|`` with the stream ``key``'s normals.

    signal : (n,) float32 (a flattened (H, W) image, pixel index = row-major index); sigma, gain : float32.
    """
    for i in range(signal.shape[0]):
        n_re, n_im = _normal_pair(key, i)
        re = signal[i] + sigma * n_re
        im = sigma * n_im
        signal[i] = gain * np.sqrt(re * re + im * im)


@njit(cache=True, fastmath=True, error_model="numpy")
def noisy_complex(key, sigma, signal, out):
    """``out = signal + σ (n_re + i n_im)``: (n,) float32 in, (n,) complex64 out (before k-space truncation)."""
    for i in range(signal.shape[0]):
        n_re, n_im = _normal_pair(key, i)
        out[i] = complex(signal[i] + sigma * n_re, sigma * n_im)
