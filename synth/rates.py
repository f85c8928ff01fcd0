"""Rate space ``(PD, PD/T1, PD/T2)``: the partial-volume convention of every map source, and conversions.

Partial volume convention (used by every map source, and by the BrainWeb subject 47 conversion): a voxel
holding volume fractions ``f_t`` of tissues ``t`` (fast exchange) has

    PD = Σ f_t PD_t,      PD / T1 = Σ f_t PD_t / T1_t,      PD / T2 = Σ f_t PD_t / T2_t,

i.e. the voxel's R1 and R2 are the PD-weighted means of its compartments'. The triple
``(pd, a1, a2) = (PD, PD/T1 [1/ms], PD/T2 [1/ms])`` is therefore *linear* in the fractions: mixing, linear
interpolation and blending of maps are done on it, never on T1 / T2 themselves, which keeps every
mixed voxel a physically possible mixture of its tissues.

Multiplying a tissue's PD by ``k_pd`` and its T1 by ``k_t1`` maps ``(pd, a1, a2)`` to
``(k_pd pd, a1 k_pd / k_t1, a2 k_pd / k_t2)``; applied to a whole mixed voxel it equals scaling every
compartment by the same factors, which is still a physical mixture.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["to_rates", "from_rates", "scale_rates", "scaled_from_rates"]


def to_rates(t1_ms: np.ndarray, t2_ms: np.ndarray, pd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pd, pd/T1 [1/ms], pd/T2 [1/ms])`` float32, 0 where T1 (T2) is 0 (background)."""
    pd = np.asarray(pd, np.float32)
    t1 = np.asarray(t1_ms, np.float32)
    t2 = np.asarray(t2_ms, np.float32)
    a1 = np.divide(pd, t1, out=np.zeros_like(pd), where=t1 > 0)
    a2 = np.divide(pd, t2, out=np.zeros_like(pd), where=t2 > 0)
    return pd.copy(), a1, a2


def from_rates(pd: np.ndarray, a1: np.ndarray, a2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`to_rates`: ``(t1_ms, t2_ms, pd)`` float32, all 0 where pd or a rate is ~0."""
    pd = np.asarray(pd, np.float32)
    ok = (pd > 1e-6) & (a1 > 0) & (a2 > 0)
    t1 = np.divide(pd, a1, out=np.zeros_like(pd), where=ok)
    t2 = np.divide(pd, a2, out=np.zeros_like(pd), where=ok)
    return t1, t2, np.where(ok, pd, np.float32(0.0)).astype(np.float32)


@numba.njit(cache=True, error_model="numpy")  # no fastmath: bit-identical to from_rates(*scale_rates(...))
def _scaled_from_rates_kernel(pd, a1, a2, k_t1, k_t2, k_pd, t1, t2, pd_out):  # pragma: no cover - numba
    small = np.float32(1e-6)
    zero = np.float32(0.0)
    for n in range(pd.size):
        kp = k_pd[n]
        p = pd[n] * kp
        b1 = a1[n] * (kp / k_t1[n])
        b2 = a2[n] * (kp / k_t2[n])
        if p > small and b1 > zero and b2 > zero:
            t1[n] = p / b1
            t2[n] = p / b2
            pd_out[n] = p
        else:
            t1[n] = zero
            t2[n] = zero
            pd_out[n] = zero


def scaled_from_rates(pd: np.ndarray, a1: np.ndarray, a2: np.ndarray, k_t1: np.ndarray, k_t2: np.ndarray,
                      k_pd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``from_rates(*scale_rates(pd, a1, a2, k_t1, k_t2, k_pd))`` in one pass (identical float32 results).

    All six arrays float32 of one shape; returns ``(t1_ms, t2_ms, pd)``.
    """
    arrs = [np.ascontiguousarray(v, np.float32) for v in (pd, a1, a2, k_t1, k_t2, k_pd)]
    if any(v.shape != arrs[0].shape for v in arrs):
        return from_rates(*scale_rates(pd, a1, a2, k_t1, k_t2, k_pd))  # broadcasting: the NumPy path
    out = [np.empty(arrs[0].shape, np.float32) for _ in range(3)]
    _scaled_from_rates_kernel(*(v.reshape(-1) for v in arrs), *(o.reshape(-1) for o in out))
    return out[0], out[1], out[2]


def scale_rates(
    pd: np.ndarray, a1: np.ndarray, a2: np.ndarray, k_t1: np.ndarray, k_t2: np.ndarray, k_pd: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale T1, T2, PD of every compartment of each voxel by ``k_t1``, ``k_t2``, ``k_pd`` (broadcast)."""
    pd2 = (pd * k_pd).astype(np.float32)
    return pd2, (a1 * (k_pd / k_t1)).astype(np.float32), (a2 * (k_pd / k_t2)).astype(np.float32)
