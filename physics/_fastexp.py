"""A float32 ``exp`` that LLVM can vectorise inside Numba loops (private helper of :mod:`physics._signal_kernel`).

Numba lowers ``np.exp`` on float32 to a scalar libm call (no SVML here), which stops the voxel loops
of the signal kernel from being SIMD-vectorised. :func:`exp2_pair` is written only with operations
that have vector instructions: a multiply-add polynomial, ``floor``, float→int conversion, an integer
add/shift and a bit cast.

Method (base 2, so the range reduction is exact)
------------------------------------------------
For ``y <= 0`` (here ``y = -t·log2(e)/T1``): ``n = floor(y + 1/2)``, ``f = y - n`` with ``|f| <= 1/2``
(the subtraction is exact in float32), ``2**f - 1 = f·g(f)`` with ``g`` the degree-5 polynomial
interpolating ``(2**f - 1)/f`` at the six Chebyshev nodes of ``[-1/2, 1/2]`` (computed below at import;
relative error of ``g`` 1.2e-8, below float32 rounding), ``2**n`` built from exponent bits
``(n + 127) << 23``. Returned are ``e = 2**y`` and ``1 - 2**y``, the latter computed as
``-(s·p + (s - 1))`` so that it keeps full relative accuracy when ``y`` is near 0 (long T1), where
``1 - e`` would cancel. ``y`` is clamped below at -126: further down ``2**y`` would be subnormal, and the
clamped value 1.2e-38 is zero at every precision that matters here. Valid for ``y <= 127`` (the kernels
only pass ``y <= 0``).

Accuracy (float32, measured against float64 ``2**y`` in tests/physics/test_signal.py): relative error of
``e`` and of ``1 - e`` below 3e-7 (a few float32 ulp) over ``y`` in ``[-126, 0]``.

Subnormals
----------
Products of several small exponentials (short T1, long TR) fall below 1.2e-38, where x86 cores take a
slow path (measured: the FLAIR loop ran 1.9x slower on random brain-range T1). :func:`flush_denormals_begin`
sets the FTZ and DAZ bits of this thread's MXCSR and returns the old value, which
:func:`flush_denormals_end` restores, so a kernel can flush them for its own duration only (values below
1.2e-38 read as 0, far under any tolerance here). Both are no-ops off x86-64.
"""
from __future__ import annotations

import math
import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["FASTMATH", "LOG2E", "exp2_pair", "exp2_pair_array", "flush_denormals_begin", "flush_denormals_end"]

#: LLVM fast-math flags for the kernels: everything except ``reassoc``, which could reorder the
#: exact range reduction and the ``s·p + (s - 1)`` evaluation of ``1 - e``.
FASTMATH = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}

#: log2(e): multiply a time [ms] by it once per protocol so the voxel loop works in base 2.
LOG2E = 1.0 / math.log(2.0)

_F = np.float32
_Y_MIN = _F(-126.0)
_HALF = _F(0.5)
_ONE = _F(1.0)


def _chebyshev_coefficients(degree: int = 5) -> list[np.float32]:
    """Coefficients (low → high) of the polynomial through (2**f - 1)/f at the Chebyshev nodes of [-1/2, 1/2]."""
    k = np.arange(degree + 1)
    f = 0.5 * np.cos(np.pi * (k + 0.5) / (degree + 1))
    g = np.expm1(f * math.log(2.0)) / f
    return [_F(c) for c in np.polynomial.polynomial.polyfit(f, g, degree)]


_G0, _G1, _G2, _G3, _G4, _G5 = _chebyshev_coefficients()


@intrinsic
def _pow2_int(typingctx, n):
    """``2.0f ** n`` for an integral float32 ``n`` in [-126, 127] via the IEEE-754 exponent bits."""
    if n != types.float32:
        return None
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        k = builder.fptosi(args[0], i32)
        bits = builder.shl(builder.add(k, ir.Constant(i32, 127)), ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())

    return sig, codegen


_X86 = platform.machine().lower() in ("x86_64", "amd64")
_FTZ_DAZ = 0x8040  # MXCSR bit 15 flush-to-zero, bit 6 denormals-are-zero


def _mxcsr_call(builder, name: str, slot) -> None:
    fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t])
    builder.call(cgutils.get_or_insert_function(builder.module, fnty, name), [builder.bitcast(slot, cgutils.voidptr_t)])


@intrinsic
def flush_denormals_begin(typingctx):
    """Set FTZ|DAZ in this thread's MXCSR; return the previous MXCSR (uint32; 0 and no effect off x86-64)."""
    sig = types.uint32()

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        if not _X86:
            return ir.Constant(i32, 0)
        slot = cgutils.alloca_once(builder, i32)
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        old = builder.load(slot)
        builder.store(builder.or_(old, ir.Constant(i32, _FTZ_DAZ)), slot)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return old

    return sig, codegen


@intrinsic
def flush_denormals_end(typingctx, saved):
    """Restore the MXCSR value returned by :func:`flush_denormals_begin`."""
    if saved != types.uint32:
        return None
    sig = types.void(types.uint32)

    def codegen(context, builder, signature, args):
        if _X86:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(args[0], slot)
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always", fastmath=FASTMATH, cache=True)
def exp2_pair(y):
    """Return ``(2**y, 1 - 2**y)`` for a float32 ``y <= 0`` (branch-free, vectorisable).

    Parameters
    ----------
    y : float32, the base-2 exponent (``-t_ms·log2(e)/T1_ms``), at most 127.

    Returns
    -------
    e, one_minus_e : float32.
    """
    y = max(y, _Y_MIN)
    n = np.floor(y + _HALF)
    f = y - n  # exact: |f| <= 1/2 and y, n share the exponent range
    p = f * (_G0 + f * (_G1 + f * (_G2 + f * (_G3 + f * (_G4 + f * _G5)))))  # 2**f - 1
    s = _pow2_int(n)
    return s * p + s, -(s * p + (s - _ONE))


@njit(fastmath=FASTMATH, cache=True)
def exp2_pair_array(y):
    """Vectorised :func:`exp2_pair` over a float32 array (for tests and benchmarks).

    Parameters
    ----------
    y : (n,) float32, exponents in base 2 (at most 127).

    Returns
    -------
    e, one_minus_e : (n,) float32.
    """
    e = np.empty_like(y)
    ome = np.empty_like(y)
    for i in range(y.shape[0]):
        a, b = exp2_pair(y[i])
        e[i] = a
        ome[i] = b
    return e, ome
