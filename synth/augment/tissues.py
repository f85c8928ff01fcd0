"""Per-tissue augmentation of relaxation values: each tissue's (T1, T2, PD) re-mapped by a per-subject factor,
partial-volume voxels kept consistent mixtures; the same machinery converts maps between field strengths.

Each voxel is decomposed as ``v ≈ f·v_l + (1 − f)·v_m`` in rate space: ``v_l`` the reference value of its own
label (:func:`tissue_references`), ``v_m`` that of the best-fitting second label (or zero: bone, air), ``f`` by
least squares in relative units; pure voxels are the case f = 1. The new voxel is
``(v / fit) ⊙ (f·v'_l + (1 − f)·v'_m)``: the mixture re-built from the perturbed tissue values ``v'`` times the
voxel's own deviation from the fit (texture, or a third tissue), so a two-tissue mixture is re-mixed exactly
with its fraction unchanged.
"""
from __future__ import annotations

from typing import Sequence

import numba
import numpy as np

from relaxomap.physics.tissues import TISSUES, label_lookup
from relaxomap.synth.maps import Maps
from relaxomap.synth.rates import to_rates
from relaxomap.synth.texture import truncated_normal

__all__ = ["tissue_references", "perturb_tissues", "perturb_rates", "remap_rates"]

_N_LAB = 256


# ----------------------------------------------------------------------------- tissue values
def tissue_references(maps: Maps, max_samples: int = 200_000) -> np.ndarray:
    """Reference (pure-tissue) ``(PD, PD/T1, PD/T2)`` of each label.

    Per label: the most frequent value when it holds at least a quarter of the label's voxels (crisp maps
    with partial-volume edges, like BrainWeb), else the median (maps with texture or measured values).

    Returns
    -------
    (256, 3) float64; rows of absent labels or labels without signal (bone, background) are 0. At most
    ``max_samples`` voxels per label are used (an even stride, so the result is deterministic).
    """
    pd, a1, a2 = to_rates(maps.t1_ms, maps.t2_ms, maps.pd)
    lab = maps.labels.ravel()
    ref = np.zeros((_N_LAB, 3))
    for label in np.flatnonzero(np.bincount(lab, minlength=_N_LAB)):
        idx = np.flatnonzero(lab == label)
        idx = idx[:: max(1, len(idx) // max_samples)]
        idx = idx[pd.ravel()[idx] > 0]
        if label == 0 or len(idx) == 0:
            continue
        rates = np.stack([c.ravel()[idx] for c in (pd, a1, a2)], axis=1)
        values, first, counts = np.unique(rates[:, 1], return_index=True, return_counts=True)
        top = int(np.argmax(counts))
        ref[label] = rates[first[top]] if counts[top] >= 0.25 * len(idx) else np.median(rates, axis=0)
    return ref


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _remap_kernel(pd, a1, a2, labels, ref, new_ref, cand, tol, o_pd, o_a1, o_a2):  # pragma: no cover - numba
    n = pd.size
    v = np.empty(3)
    for p in range(n):
        v[0], v[1], v[2] = pd[p], a1[p], a2[p]
        if v[0] <= 0.0:
            o_pd[p], o_a1[p], o_a2[p] = 0.0, 0.0, 0.0
            continue
        lab = labels[p]
        own = ref[lab, 0] > 0.0
        if own:
            pure = True
            for c in range(3):
                if abs(v[c] / ref[lab, c] - 1.0) > tol:
                    pure = False
            if pure:  # one tissue: scale by its factors, keeping the voxel's own deviation
                o_pd[p] = v[0] * new_ref[lab, 0] / ref[lab, 0]
                o_a1[p] = v[1] * new_ref[lab, 1] / ref[lab, 1]
                o_a2[p] = v[2] * new_ref[lab, 2] / ref[lab, 2]
                continue
        # Two-tissue fit v ≈ f·ref[l] + (1 − f)·ref[m] over candidates m (index -1: no signal, bone / air);
        # without a reference for its own label, the voxel is fitted with the best pair of candidates.
        best_err, best_f, best_l, best_m = 1e300, 1.0, -1, -1
        n_c = cand.size
        for li in range(-1, n_c):
            l_ = lab if own else (cand[li] if li >= 0 else -1)
            if own and li >= 0:
                break
            for mi in range(-1, n_c):
                m_ = cand[mi] if mi >= 0 else -1
                if m_ == l_:
                    continue
                num, den, err0 = 0.0, 0.0, 0.0
                for c in range(3):
                    rl = ref[l_, c] if l_ >= 0 else 0.0
                    rm = ref[m_, c] if m_ >= 0 else 0.0
                    s = max(rl, rm, 1e-12)
                    d = (rl - rm) / s
                    e = (v[c] - rm) / s
                    num += e * d
                    den += d * d
                f = min(max(num / den, 0.0), 1.0) if den > 0 else 1.0
                for c in range(3):
                    rl = ref[l_, c] if l_ >= 0 else 0.0
                    rm = ref[m_, c] if m_ >= 0 else 0.0
                    s = max(rl, rm, 1e-12)
                    r = (v[c] - rm - f * (rl - rm)) / s
                    err0 += r * r
                if err0 < best_err:
                    best_err, best_f, best_l, best_m = err0, f, l_, m_
        out = np.zeros(3)
        for c in range(3):
            fit = 0.0
            new = 0.0
            if best_l >= 0:
                fit += best_f * ref[best_l, c]
                new += best_f * new_ref[best_l, c]
            if best_m >= 0:
                fit += (1.0 - best_f) * ref[best_m, c]
                new += (1.0 - best_f) * new_ref[best_m, c]
            ratio = v[c] / fit if fit > 0.0 else 1.0
            out[c] = min(max(ratio, 0.25), 4.0) * new
        o_pd[p], o_a1[p], o_a2[p] = out[0], out[1], out[2]


def _tissue_factors(rng: np.random.Generator, labels: Sequence[int], sd: Sequence[float], src_field: float,
                    dst_field: float, trunc_sd: float = 2.5) -> np.ndarray:
    """(256, 3) factors for (T1, T2, PD) per label: field conversion × truncated-normal jitter."""
    k = np.ones((_N_LAB, 3))
    if abs(src_field - dst_field) > 1e-6:
        src, dst = label_lookup(src_field).astype(np.float64), label_lookup(dst_field).astype(np.float64)
        ok = (src > 0) & (dst > 0)
        k[: len(src)][ok] = dst[ok] / src[ok]
    for lab in labels:
        z = truncated_normal(rng, 3, trunc_sd)
        k[lab] *= 1.0 + np.asarray(sd) * z
        if lab == 1:  # PD is relative to CSF: CSF keeps PD = 1 scale
            k[lab, 2] = 1.0
    return k


def remap_rates(pd: np.ndarray, a1: np.ndarray, a2: np.ndarray, labels: np.ndarray, factors: np.ndarray,
                ref: np.ndarray, tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rate maps ``(PD, PD/T1, PD/T2)`` with every label's (T1, T2, PD) multiplied by ``factors`` (256, 3).

    ``ref``: (256, 3) pure-tissue rates per label (:func:`tissue_references`); a voxel within relative ``tol``
    of its label's reference counts as pure; mixtures are re-mixed as the module docstring says.
    """
    present = np.flatnonzero(ref[:, 0] > 0)
    k = np.asarray(factors, np.float64)
    new_ref = ref.copy()
    new_ref[:, 0] = ref[:, 0] * k[:, 2]
    new_ref[:, 1] = ref[:, 1] * k[:, 2] / k[:, 0]
    new_ref[:, 2] = ref[:, 2] * k[:, 2] / k[:, 1]
    out = [np.empty(pd.size, np.float32) for _ in range(3)]
    _remap_kernel(pd.ravel(), a1.ravel(), a2.ravel(), labels.ravel().astype(np.int64), ref, new_ref,
                  present.astype(np.int64), float(tol), *out)
    return tuple(o.reshape(pd.shape) for o in out)


def perturb_rates(pd: np.ndarray, a1: np.ndarray, a2: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                  sd: Sequence[float], src_field: float, dst_field: float, ref: np.ndarray,
                  tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`perturb_tissues` on rate maps: ``(PD, PD/T1, PD/T2)`` float32 of ``labels``' shape re-mapped.

    ``sd``: relative sd of each label's (T1, T2, PD) factor; ``src_field`` / ``dst_field``: field strengths [T]
    converted between; ``ref``: (256, 3) pure-tissue rates per label (:func:`tissue_references`); a voxel
    within relative ``tol`` of its label's reference counts as pure. Returns the three re-mapped rate maps.
    """
    k = _tissue_factors(rng, np.flatnonzero(ref[:, 0] > 0), sd, src_field, dst_field)
    return remap_rates(pd, a1, a2, labels, k, ref, tol)


def perturb_tissues(
    maps: Maps,
    rng: np.random.Generator,
    sd: Sequence[float] = (0.10, 0.12, 0.05),
    *,
    field_t: float | None = None,
    references: np.ndarray | None = None,
) -> Maps:
    """Re-map every tissue's (T1, T2, PD) by a per-subject factor, keeping partial-volume voxels consistent.

    Parameters
    ----------
    sd : relative sd of the (T1, T2, PD) factor of each label (truncated at 2.5 sd); CSF PD stays fixed.
    field_t : convert to this field strength [T] as well (per-tissue ratios of the tissue tables); None
        keeps ``maps.field_t``.
    references : (256, 3) per-label pure-tissue ``(PD, PD/T1, PD/T2)``; default :func:`tissue_references`.

    Returns
    -------
    New Maps; labels and mask unchanged, ``field_t`` set to the target field.
    """
    dst = maps.field_t if field_t is None else float(field_t)
    if not any(abs(dst - f) < 0.26 for f in TISSUES):
        raise ValueError(f"perturb_tissues: field_t must be one of {sorted(TISSUES)} T; got {field_t}")
    ref = tissue_references(maps) if references is None else np.asarray(references, np.float64)
    pd, a1, a2 = to_rates(maps.t1_ms, maps.t2_ms, maps.pd)
    out = perturb_rates(pd, a1, a2, maps.labels, rng, sd, maps.field_t, dst, ref)
    return maps.with_rates(*out, field_t=dst)
