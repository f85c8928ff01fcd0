"""Per-subject tissue values and the partial-volume mixing of the phantom's tissue fractions into maps.

Each voxel's fractions of the tissue slots (:mod:`relaxomap.synth.phantom.slots`), the per-subject values of
each label (:func:`draw_tissue_values`) and the within-tissue texture are mixed in rate space
``(PD, PD/T1, PD/T2)`` (:mod:`relaxomap.synth.rates`), which keeps every mixed voxel a physical mixture of its
tissues; the label is the tissue with the largest fraction and the mask "brain fraction ≥ 0.5"
(:func:`mix_fractions`, one fused Numba pass).
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numba
import numpy as np

from relaxomap.physics.tissues import label_lookup
from relaxomap.synth.texture import truncated_normal

__all__ = ["draw_tissue_values", "mix_fractions"]

_N_LABELS = 256


def draw_tissue_values(
    rng: np.random.Generator,
    labels: Iterable[int],
    field_t: float,
    sd: Sequence[float],
    trunc_sd: float = 2.5,
    base: np.ndarray | None = None,
) -> np.ndarray:
    """Per-subject tissue values: the literature mean times a truncated-normal relative jitter.

    Parameters
    ----------
    rng : random generator.
    labels : labels to jitter; other rows keep their base value.
    field_t : field strength [T] (1.5 or 3) whose :mod:`physics.tissues` means are used.
    sd : (3,) relative standard deviations of (T1, T2, PD), e.g. (0.08, 0.10, 0.05).
    trunc_sd : draws are restricted to ±trunc_sd standard deviations.
    base : optional (n, 3) [T1 ms, T2 ms, PD] table to jitter instead of the literature one.

    Returns
    -------
    (256, 3) float64 table [T1 ms, T2 ms, PD] indexed by label. CSF (label 1) keeps PD = 1 exactly:
    PD is relative to CSF, so CSF defines its scale. T2 is kept <= 0.9 T1 (T2 <= T1 always holds).
    """
    table = np.zeros((_N_LABELS, 3))
    src = label_lookup(field_t) if base is None else np.asarray(base, np.float64)
    table[: len(src)] = src
    sd_arr = np.asarray(sd, np.float64)
    for lab in sorted({int(v) for v in labels}):
        if table[lab, 2] <= 0:  # background / bone: nothing to jitter
            continue
        z = truncated_normal(rng, 3, trunc_sd)
        table[lab] *= 1.0 + sd_arr * z
        if lab == 1:
            table[lab, 2] = src[1, 2]
        table[lab, 1] = min(table[lab, 1], 0.9 * table[lab, 0])
    return table


_MIX_CHUNK = 512  # voxels per chunk of the slot scan: 13 slots x 2 KiB of fractions stay in L1 / L2 cache
_MAX_SLOTS = 64  # one bit per slot in a uint64 word
# Index of the lowest set bit of a uint64 (de Bruijn multiplication: integer arithmetic only, no intrinsic):
# ((b & -b) * _DE_BRUIJN) >> 58 is distinct for each of the 64 single-bit words; the table inverts it.
_DE_BRUIJN = np.uint64(0x03F79D71B4CB0A89)


def _low_bit_table() -> np.ndarray:
    """(64,) int64: bit index k at position ((1 << k) · _DE_BRUIJN mod 2^64) >> 58."""
    keys = [((1 << k) * int(_DE_BRUIJN) & (2**64 - 1)) >> 58 for k in range(64)]
    if len(set(keys)) != 64:  # pragma: no cover - a wrong constant fails here, at import
        raise RuntimeError("synth.phantom.tissue_mix: _DE_BRUIJN is not a de Bruijn sequence")
    table = np.zeros(64, np.int64)
    table[keys] = np.arange(64)
    return table


_LOW_BIT_INDEX = _low_bit_table()


@numba.njit(cache=True, error_model="numpy", inline="always")
def _lowest_bit(b, table):  # pragma: no cover - numba
    # index (0-63) of the lowest set bit of the non-zero uint64 b
    return table[((b & (~b + np.uint64(1))) * _DE_BRUIJN) >> np.uint64(58)]


@numba.njit(cache=True, error_model="numpy")
def _slot_tables(slot_label, values, tex_w):  # pragma: no cover - numba
    # per-slot copies of the per-label tables (values (S, 3) float64, texture weights (S, 3, 2) float32), and the
    # first slot of each slot's label (labels may repeat)
    n_slot = slot_label.shape[0]
    sv = np.empty((n_slot, 3))
    sw = np.empty((n_slot, 3, 2), np.float32)
    first = np.empty(n_slot, np.int64)
    for s in range(n_slot):
        lab = slot_label[s]
        for c in range(3):
            sv[s, c] = values[lab, c]
            sw[s, c, 0] = tex_w[lab, c, 0]
            sw[s, c, 1] = tex_w[lab, c, 1]
        first[s] = s
        for r in range(s):
            if slot_label[r] == lab:
                first[s] = r
                break
    return sv, sw, first


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _mark_slots(frac, n0, m, n_sub, bits):  # pragma: no cover - numba
    # bits[i] for i < m: bit s set where slot s has a non-zero fraction in any sub-slice of voxel n0 + i
    # (a vectorised slot-major pass)
    one = np.uint64(1)
    nil = np.uint64(0)
    for i in range(m):
        bits[i] = nil
    for s in range(frac.shape[0]):
        bit = one << np.uint64(s)
        if n_sub == 1:
            row = frac[s, n0:n0 + m]
            for i in range(m):
                bits[i] |= bit if row[i] != 0 else nil
        else:
            for i in range(m):
                for sub in range(n_sub):
                    bits[i] |= bit if frac[s, (n0 + i) * n_sub + sub] != 0 else nil


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _mix_voxel(n, bb, frac, n_sub, slot_brain, sv, sw, tex, first, low_bit, lab_frac):  # pragma: no cover - numba
    # Sums over the set slots bb of voxel n, in ascending slot order: total fraction, PD, PD/T1, PD/T2 (textured
    # tissue values mixed in rate space) and brain fraction; each slot's fraction is added to its label's entry
    # of lab_frac (at the label's first slot).
    one = np.uint64(1)
    nil = np.uint64(0)
    total = 0.0
    s_pd = 0.0
    s_a1 = 0.0
    s_a2 = 0.0
    brain = 0.0
    while bb != nil:
        s = _lowest_bit(bb, low_bit)
        bb &= bb - one
        if n_sub == 1:
            f = np.float64(frac[s, n])
        else:
            f = 0.0
            for sub in range(n_sub):
                f += frac[s, n * n_sub + sub]
        total += f
        if f <= 0.0:
            continue
        lab_frac[first[s]] += f
        if slot_brain[s]:
            brain += f
        pd_t = sv[s, 0]
        if pd_t <= 0.0:
            continue
        # float32 exponents (|e| <= 2 · 0.3 · TEXTURE_CLIP): expf is ~2x cheaper than exp here
        e1 = sw[s, 0, 0] * tex[0, n] + sw[s, 0, 1] * tex[1, n]
        e2 = sw[s, 1, 0] * tex[2, n] + sw[s, 1, 1] * tex[3, n]
        e3 = sw[s, 2, 0] * tex[4, n] + sw[s, 2, 1] * tex[5, n]
        p = f * pd_t * math.exp(e3)
        s_pd += p
        s_a1 += p * sv[s, 1] * math.exp(-e1)  # R1 = 1 / (T1 · factor)
        s_a2 += p * sv[s, 2] * math.exp(-e2)
    return total, s_pd, s_a1, s_a2, brain


@numba.njit(cache=True, fastmath=True, error_model="numpy", inline="always")
def _best_label(bb, first, low_bit, lab_frac, air):  # pragma: no cover - numba
    # The first slot of the label with the largest fraction among the set slots bb, ties to the smallest first
    # slot; -1 (air) unless a label holds more than the air fraction `air`. Each label is read once, then reset
    # (lab_frac is all 0 again on return; 0 never wins).
    one = np.uint64(1)
    nil = np.uint64(0)
    best = -1
    best_frac = air
    while bb != nil:
        g = first[_lowest_bit(bb, low_bit)]
        bb &= bb - one
        v = lab_frac[g]
        lab_frac[g] = 0.0
        if v > best_frac or (v == best_frac and best >= 0 and g < best):
            best_frac = v
            best = g
    return best


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _mix_kernel(frac, slot_label, slot_brain, values, tex, tex_w, n_sub, low_bit, pd, a1, a2, labels,
                mask):  # pragma: no cover
    # Flat layout: frac (S <= 64, N·n_sub) with the sub-slices of output voxel n at n·n_sub + sub; tex (6, N);
    # outputs (N,). Voxels are taken in chunks: a slot-major pass marks the slots with a non-zero fraction in
    # each voxel (_mark_slots), then each voxel visits only its set slots (~1.3 of 13 in a head) in ascending
    # order. Skipped slots hold exact zeros, so every sum equals the loop over all slots bit for bit.
    sv, sw, first = _slot_tables(slot_label, values, tex_w)
    bits = np.empty(_MIX_CHUNK, np.uint64)
    lab_frac = np.zeros(frac.shape[0])  # fraction of each slot's label, kept at its first slot; 0 between voxels
    n_vox = pd.size
    for n0 in range(0, n_vox, _MIX_CHUNK):
        m = min(_MIX_CHUNK, n_vox - n0)
        _mark_slots(frac, n0, m, n_sub, bits)
        for i in range(m):
            n = n0 + i
            total, s_pd, s_a1, s_a2, brain = _mix_voxel(n, bits[i], frac, n_sub, slot_brain, sv, sw, tex, first,
                                                        low_bit, lab_frac)
            best = _best_label(bits[i], first, low_bit, lab_frac, max(n_sub - total, 0.0))
            if total <= 0.0:  # air: no slot set, or (negative fractions) nothing left
                labels[n] = 0
                mask[n] = False
                pd[n] = 0.0
                a1[n] = 0.0
                a2[n] = 0.0
                continue
            labels[n] = slot_label[best] if best >= 0 else 0
            mask[n] = brain >= 0.5 * n_sub
            pd[n] = s_pd / n_sub
            a1[n] = s_a1 / n_sub
            a2[n] = s_a2 / n_sub


def mix_fractions(
    frac: np.ndarray,
    slot_labels: np.ndarray,
    slot_brain: np.ndarray,
    values_ms: np.ndarray,
    tex: np.ndarray,
    tex_w: np.ndarray,
    n_sub: int = 1,
) -> tuple[np.ndarray, ...]:
    """Tissue fractions + per-label values + texture -> rate maps, labels and brain mask.

    Parameters
    ----------
    frac : (S, X, Y, Z·n_sub) float32 volume fraction of each tissue slot (sum <= 1; the rest is air), S <= 64.
    slot_labels : (S,) int64 label of each slot (several slots may share a label).
    slot_brain : (S,) bool, whether a slot counts as brain for the mask.
    values_ms : (256, 3) [T1 ms, T2 ms, PD] per label (:func:`draw_tissue_values`).
    tex : (6, X, Y, Z) float32 texture fields (two per T1, T2, PD), clipped to ±TEXTURE_CLIP.
    tex_w : (256, 3, 2) weights: a tissue's (T1, T2, PD) factor is ``exp(w0·tex[2c] + w1·tex[2c+1])``.
    n_sub : sub-slices per output slice (averaged: partial volume along z).

    Returns
    -------
    ``(pd, a1, a2, labels, mask)`` on (X, Y, Z): float32 PD, PD/T1 [1/ms], PD/T2 [1/ms] (the rate-space
    mixture of the module docstring), uint8 label with the largest fraction (0 = air), bool mask
    "brain fraction >= 0.5".
    """
    n_slot, nx, ny, nzs = frac.shape
    if not 1 <= n_slot <= _MAX_SLOTS:
        raise ValueError(f"mix_fractions: frac must hold 1 to {_MAX_SLOTS} tissue slots (axis 0); got {n_slot}")
    if nzs % n_sub:
        raise ValueError(f"mix_fractions: frac z size {nzs} is not a multiple of n_sub={n_sub}")
    shape = (nx, ny, nzs // n_sub)
    if tex.shape != (6,) + shape:
        raise ValueError(f"mix_fractions: tex must have shape {(6,) + shape}; got {tex.shape}")
    vals = np.zeros((_N_LABELS, 3), np.float64)  # [PD, 1/T1, 1/T2] per label
    t = np.asarray(values_ms, np.float64)[:_N_LABELS]
    ok = t[:, 2] > 0
    vals[: len(t)][ok, 0] = t[ok, 2]
    vals[: len(t)][ok, 1] = 1.0 / t[ok, 0]
    vals[: len(t)][ok, 2] = 1.0 / t[ok, 1]
    w = np.zeros((_N_LABELS, 3, 2), np.float32)
    w[: len(tex_w)] = tex_w
    pd, a1, a2 = (np.empty(shape, np.float32) for _ in range(3))
    labels = np.empty(shape, np.uint8)
    mask = np.empty(shape, np.bool_)
    flat = np.ascontiguousarray(frac, np.float32).reshape(n_slot, -1)
    _mix_kernel(flat, np.asarray(slot_labels, np.int64),
                np.asarray(slot_brain, np.bool_), vals, np.ascontiguousarray(tex, np.float32).reshape(6, -1), w,
                int(n_sub), _LOW_BIT_INDEX, pd.reshape(-1), a1.reshape(-1), a2.reshape(-1), labels.reshape(-1),
                mask.reshape(-1))
    return pd, a1, a2, labels, mask
