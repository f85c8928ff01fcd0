"""EPG dictionary: steady-state echo trains precomputed on a log-spaced T1 × T2 grid, rendered by interpolation.

Building runs the direct EPG kernel of :mod:`physics.epg` once on every grid node (128 × 128 nodes by default, under
a second); rendering a volume is then one bilinear interpolation in (ln T1, ln T2) per voxel (Numba,
parallel). The signal is smooth in the logarithms of the relaxation times (it depends on them through
e^{−t/T} = e^{−t·e^{−ln T}}), which is why a log grid keeps the interpolation error small over four
decades; tests/physics/test_epg.py measures it against the direct simulation.

Voxels with PD = 0 render as 0 without look-up; voxels outside the grid (including T1 = 0 or T2 = 0
background) are simulated directly, so the dictionary never extrapolates.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from relaxomap.physics.checks import check_finite_range, check_int_range, check_map_array
from relaxomap.physics.epg import _check_protocol, _run_kernel, _schedule_rad
from relaxomap.physics.protocol import Protocol

__all__ = ["EPGDictionary"]

_OWNER = "EPGDictionary"


@njit(parallel=True, fastmath={"nsz", "arcp", "contract", "afn", "reassoc"}, cache=True)
def _interp_kernel(t1_ms, t2_ms, pd, table, log_t1_lo, inv_dlog_t1, log_t2_lo, inv_dlog_t2, out, outside):
    """Bilinear interpolation of ``table`` (n_t1, n_t2, n_echo) in (ln T1, ln T2), times pd.

    t1_ms, t2_ms, pd : (n_vox,) float32; out : (n_vox, n_echo) float32; outside : (n_vox,) bool, set where
    the voxel lies off the grid (its ``out`` row is left for the caller to fill). The table is signed;
    the magnitude is taken after interpolating.
    """
    n_t1, n_t2, n_e = table.shape
    for i in prange(t1_ms.shape[0]):
        outside[i] = False
        p = pd[i]
        if p == 0.0:
            for e in range(n_e):
                out[i, e] = 0.0
            continue
        t1, t2 = t1_ms[i], t2_ms[i]
        if t1 <= 0.0 or t2 <= 0.0:
            outside[i] = True
            continue
        x = (math.log(t1) - log_t1_lo) * inv_dlog_t1  # fractional grid index along T1
        y = (math.log(t2) - log_t2_lo) * inv_dlog_t2
        if not (0.0 <= x <= n_t1 - 1 and 0.0 <= y <= n_t2 - 1):
            outside[i] = True
            continue
        i0 = min(int(x), n_t1 - 2)
        j0 = min(int(y), n_t2 - 2)
        fx = x - i0
        fy = y - j0
        w00 = (1.0 - fx) * (1.0 - fy) * p
        w01 = (1.0 - fx) * fy * p
        w10 = fx * (1.0 - fy) * p
        w11 = fx * fy * p
        for e in range(n_e):
            out[i, e] = abs(w00 * table[i0, j0, e] + w01 * table[i0, j0 + 1, e]
                            + w10 * table[i0 + 1, j0, e] + w11 * table[i0 + 1, j0 + 1, e])


class EPGDictionary:
    """Steady-state EPG echo trains of one protocol on a log-spaced T1 × T2 grid (B1 = 1).

    Parameters
    ----------
    protocol : :class:`Protocol` of kind ``se``, ``tse`` or ``ir_tse``.
    n_t1, n_t2 : grid nodes along T1 and T2 (>= 2).
    t1_range_ms, t2_range_ms : (lowest, highest) node [ms], 0 < lowest < highest.

    Attributes
    ----------
    t1_grid_ms : (n_t1,) float64 [ms]; t2_grid_ms : (n_t2,) float64 [ms].
    table : (n_t1, n_t2, etl) float32, signed real echo amplitude for PD = 1 at each node (|table| is the
        magnitude; the sign keeps it smooth through zero crossings; rendering returns magnitudes).
    """

    def __init__(self, protocol: Protocol, *, n_t1: int = 128, n_t2: int = 128,
                 t1_range_ms: tuple[float, float] = (10.0, 10_000.0),
                 t2_range_ms: tuple[float, float] = (2.0, 5_000.0)) -> None:
        self.protocol = _check_protocol(protocol)
        n_t1 = check_int_range(_OWNER, "n_t1", n_t1, 2, 4096)
        n_t2 = check_int_range(_OWNER, "n_t2", n_t2, 2, 4096)
        grids = []
        for field, rng, n in (("t1_range_ms", t1_range_ms, n_t1), ("t2_range_ms", t2_range_ms, n_t2)):
            if len(rng) != 2:
                raise ValueError(f"{_OWNER}.{field} must be (lowest, highest) [ms]; got {rng!r}")
            lo = check_finite_range(_OWNER, f"{field}[0]", rng[0], 0.0, math.inf, lo_open=True)
            hi = check_finite_range(_OWNER, f"{field}[1]", rng[1], lo, math.inf, lo_open=True)
            grids.append(np.exp(np.linspace(math.log(lo), math.log(hi), n)))
        self.t1_grid_ms, self.t2_grid_ms = grids
        t1g, t2g = np.meshgrid(self.t1_grid_ms, self.t2_grid_ms, indexing="ij")  # (n_t1, n_t2)
        # Signed echo amplitudes: smooth through zero crossings (an inversion null, a stimulated echo changing
        # sign at short T2) where the magnitude has a kink that bilinear interpolation would round off.
        train = _run_kernel(t1g.ravel().astype(np.float32), t2g.ravel().astype(np.float32),
                            np.ones(t1g.size, np.float32), True, self.protocol,
                            _schedule_rad(self.protocol, None), self.protocol.etl, False, True)
        self.table = train.reshape(n_t1, n_t2, self.protocol.etl)  # (n_t1·n_t2, etl) -> (n_t1, n_t2, etl)
        k = self.protocol.echo_index
        self._echo_table = np.ascontiguousarray(self.table[:, :, k - 1:k])  # (n_t1, n_t2, 1): echo at te_ms
        self._lo = (math.log(self.t1_grid_ms[0]), math.log(self.t2_grid_ms[0]))
        self._inv_d = ((n_t1 - 1) / math.log(self.t1_grid_ms[-1] / self.t1_grid_ms[0]),
                       (n_t2 - 1) / math.log(self.t2_grid_ms[-1] / self.t2_grid_ms[0]))

    def __repr__(self) -> str:
        return (f"EPGDictionary({self.protocol.name or self.protocol.kind!r}, n_t1={self.t1_grid_ms.size}, "
                f"n_t2={self.t2_grid_ms.size}, t1 {self.t1_grid_ms[0]:g}..{self.t1_grid_ms[-1]:g} ms, "
                f"t2 {self.t2_grid_ms[0]:g}..{self.t2_grid_ms[-1]:g} ms)")

    def _render(self, t1_ms: np.ndarray, t2_ms: np.ndarray, pd: np.ndarray, table: np.ndarray,
                last_only: bool) -> np.ndarray:
        t1, t2, p = (np.asarray(a) for a in (t1_ms, t2_ms, pd))
        if t2.shape != t1.shape or p.shape != t1.shape:
            raise ValueError(f"t1_ms, t2_ms and pd must have the same shape; got {t1.shape}, {t2.shape}, {p.shape}")
        for name, a in (("t1_ms", t1), ("t2_ms", t2), ("pd", p)):
            check_map_array(name, a)
        t1f, t2f, pf = (np.ascontiguousarray(a.ravel(), np.float32) for a in (t1, t2, p))  # S -> (n_vox,)
        out = np.empty((t1f.size, table.shape[2]), np.float32)
        outside = np.empty(t1f.size, np.bool_)
        if t1f.size:
            _interp_kernel(t1f, t2f, pf, table, self._lo[0], self._inv_d[0], self._lo[1], self._inv_d[1],
                           out, outside)
        idx = np.flatnonzero(outside)
        if idx.size:  # off the grid: simulate directly rather than extrapolate
            n_echo = self.protocol.echo_index if last_only else self.protocol.etl
            direct = _run_kernel(t1f[idx], t2f[idx], np.ones(idx.size, np.float32), True, self.protocol,
                                 _schedule_rad(self.protocol, None), n_echo, last_only)
            out[idx] = direct * pf[idx, None]
        return out

    def signal(self, t1_ms: np.ndarray, t2_ms: np.ndarray, pd: np.ndarray) -> np.ndarray:
        """PD · |echo at te_ms| by interpolation; maps of any equal shape S → float32 S."""
        shape = np.shape(t1_ms)
        return self._render(t1_ms, t2_ms, pd, self._echo_table, True)[:, 0].reshape(shape)

    def echo_train(self, t1_ms: np.ndarray, t2_ms: np.ndarray) -> np.ndarray:
        """|echo k| for PD = 1 by interpolation; maps of any equal shape S → float32 (*S, etl)."""
        shape = np.shape(t1_ms)
        ones = np.ones(shape, np.float32)
        return self._render(t1_ms, t2_ms, ones, self.table, False).reshape(shape + (self.protocol.etl,))
