"""Augmentations of labelled ground-truth maps (real BrainWeb subjects, or any Maps).

Every function takes the maps and an ``np.random.Generator`` and returns new Maps (inputs untouched).

Physical consistency
--------------------
All resampling and blending happens on ``(PD, PD/T1, PD/T2)``, which is linear in tissue fractions
(:mod:`synth.rates`): a resampled or blended voxel is a physical mixture of its neighbours' tissues.

Per-tissue relaxation perturbation (:func:`perturb_tissues`) re-maps each tissue's values with a per-subject
factor. BrainWeb maps hold one value per tissue — without this the network could learn a label lookup — and
subject 47 has 22 % partial-volume brain voxels that must stay consistent mixtures. Each voxel is therefore
decomposed as ``v ≈ f·v_l + (1 − f)·v_m``: ``v_l`` the reference (median) value of its own label, ``v_m``
that of the best-fitting second label (or zero: bone, air), ``f`` by least squares in relative units; pure
voxels are the case f = 1. The new voxel is ``(v / fit) ⊙ (f·v'_l + (1 − f)·v'_m)``: the mixture re-built from
the perturbed tissue values ``v'`` times the voxel's own deviation from the fit (texture, or a third tissue),
so a two-tissue mixture is re-mixed exactly with its fraction unchanged. The same machinery converts maps
between field strengths (per-tissue ratios of the 1.5 T and 3 T tables).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numba
import numpy as np

from relaxomap.physics.checks import check_finite_range, check_int_range, check_range_pair, check_sequence, config_from_dict
from relaxomap.physics.tissues import TISSUES, label_lookup
from relaxomap.synth.fields import smooth_noise, smooth_noise_mm
from relaxomap.synth.lesions import LesionConfig, insert_lesions
from relaxomap.synth.maps import Maps
from relaxomap.synth.orientation import rotation_zyx
from relaxomap.synth.rates import from_rates, scale_rates, to_rates
from relaxomap.synth.texture import (
    TEXTURE_CLIP,
    TEXTURE_PRIOR,
    check_texture_prior,
    smooth_factors,
    truncated_normal,
)

__all__ = [
    "AugmentConfig",
    "augment_maps",
    "flip_maps",
    "warp_maps",
    "random_warp",
    "perturb_tissues",
    "tissue_references",
]

_OWNER = "AugmentConfig"
_N_LAB = 256


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings for real maps (defaults live only here).

    Parameters
    ----------
    flip_prob : (3,) probability of flipping each axis (x = left-right by default only).
    rotate_deg : (3,) maximum |rotation| about x, y, z [deg].
    scale : (min, max) isotropic scale of the anatomy; each axis then varies by ``aspect_sd``.
    aspect_sd : relative sd of the per-axis scale around the isotropic one.
    shift_mm : maximum in-plane shift [mm].
    elastic_mm : sd of the smooth displacement field [mm] (0 = none).
    elastic_scale_mm : feature size of the displacement field [mm].
    tissue_sd : relative sd of the per-subject (T1, T2, PD) factor of each tissue (truncated at 2.5 sd).
    texture_sd, texture_scale_mm, global_sd, global_scale_mm : the texture prior: (T1, T2, PD) log-amplitude and
        feature size [mm] of the smooth within-tissue variation and of one smooth multiplicative field over all
        tissues (defaults and ranges: :class:`relaxomap.synth.texture.TexturePrior`).
    shape : output grid (X, Y, Z); None keeps the source grid. A smaller z extent takes a random slab
        whose centre lies inside the brain.
    voxel_mm : output voxel size [mm]; None keeps the source voxel size.
    z_supersample : sub-slices averaged per output slice (partial volume of thick slices); 0 = auto.
    """

    flip_prob: tuple[float, float, float] = (0.5, 0.0, 0.0)
    rotate_deg: tuple[float, float, float] = (8.0, 6.0, 15.0)
    scale: tuple[float, float] = (0.88, 1.12)
    aspect_sd: float = 0.04
    shift_mm: float = 8.0
    elastic_mm: float = 2.5
    elastic_scale_mm: float = 40.0
    tissue_sd: tuple[float, float, float] = (0.10, 0.12, 0.05)
    texture_sd: tuple[float, float, float] = TEXTURE_PRIOR.texture_sd
    texture_scale_mm: float = TEXTURE_PRIOR.texture_scale_mm
    global_sd: tuple[float, float, float] = TEXTURE_PRIOR.global_sd
    global_scale_mm: float = TEXTURE_PRIOR.global_scale_mm
    shape: tuple[int, int, int] | None = None
    voxel_mm: tuple[float, float, float] | None = None
    z_supersample: int = 0

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        set_("flip_prob", check_sequence(_OWNER, "flip_prob", self.flip_prob, 0.0, 1.0, length=3))
        set_("rotate_deg", check_sequence(_OWNER, "rotate_deg", self.rotate_deg, 0.0, 180.0, length=3))
        set_("scale", check_range_pair(_OWNER, "scale", self.scale, 0.3, 3.0))
        set_("aspect_sd", check_finite_range(_OWNER, "aspect_sd", self.aspect_sd, 0.0, 0.3))
        set_("shift_mm", check_finite_range(_OWNER, "shift_mm", self.shift_mm, 0.0, 200.0))
        set_("elastic_mm", check_finite_range(_OWNER, "elastic_mm", self.elastic_mm, 0.0, 30.0))
        set_("elastic_scale_mm", check_finite_range(_OWNER, "elastic_scale_mm", self.elastic_scale_mm, 5.0, 500.0))
        set_("tissue_sd", check_sequence(_OWNER, "tissue_sd", self.tissue_sd, 0.0, 0.35, length=3))
        check_texture_prior(_OWNER, self)
        if self.shape is not None:  # (X, Y, Z)
            set_("shape", check_sequence(_OWNER, "shape", self.shape, 1, 2048, length=3, integer=True))
        if self.voxel_mm is not None:
            set_("voxel_mm", check_sequence(_OWNER, "voxel_mm", self.voxel_mm, 0.0, 20.0, length=3, lo_open=True))
        set_("z_supersample", check_int_range(_OWNER, "z_supersample", self.z_supersample, 0, 16))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AugmentConfig":
        return config_from_dict(cls, d)


def _copy(maps: Maps, **changes: Any) -> Maps:
    kw = dict(t1_ms=maps.t1_ms, t2_ms=maps.t2_ms, pd=maps.pd, labels=maps.labels, mask=maps.mask,
              voxel_mm=maps.voxel_mm, field_t=maps.field_t, subject_id=maps.subject_id, source=maps.source)
    kw.update(changes)
    for k in ("t1_ms", "t2_ms", "pd", "labels", "mask", "voxel_mm"):
        if k not in changes:
            kw[k] = np.array(kw[k], copy=True)
    return Maps(**kw)


def _from_rates(maps: Maps, pd: np.ndarray, a1: np.ndarray, a2: np.ndarray, **changes: Any) -> Maps:
    t1, t2, pd = from_rates(pd, a1, a2)
    return _copy(maps, t1_ms=t1, t2_ms=t2, pd=pd, **changes)


# ----------------------------------------------------------------------------- flips
def flip_maps(maps: Maps, axes: Sequence[int]) -> Maps:
    """Exact flip of all arrays along ``axes`` (voxel values are moved, never interpolated)."""
    axes = tuple(int(a) for a in axes)
    for a in axes:
        if not 0 <= a < len(maps.shape):
            raise ValueError(f"flip_maps: axes must be in [0, {len(maps.shape) - 1}]; got {a}")
    if not axes:
        return _copy(maps)
    f = lambda a: np.ascontiguousarray(np.flip(a, axes))  # noqa: E731
    return _copy(maps, t1_ms=f(maps.t1_ms), t2_ms=f(maps.t2_ms), pd=f(maps.pd), labels=f(maps.labels),
                 mask=f(maps.mask))


# ----------------------------------------------------------------------------- resampling
@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _trilinear_zero(vol, x, y, z):  # pragma: no cover - numba
    """Trilinear sample of ``vol`` at index coordinates, zero outside."""
    nx, ny, nz = vol.shape
    i0, j0, k0 = math.floor(x), math.floor(y), math.floor(z)
    if i0 < -1 or j0 < -1 or k0 < -1 or i0 >= nx or j0 >= ny or k0 >= nz:
        return 0.0
    tx, ty, tz = x - i0, y - j0, z - k0
    acc = 0.0
    for di in range(2):
        ii = i0 + di
        if ii < 0 or ii >= nx:
            continue
        wx = tx if di else 1.0 - tx
        for dj in range(2):
            jj = j0 + dj
            if jj < 0 or jj >= ny:
                continue
            wy = ty if dj else 1.0 - ty
            for dk in range(2):
                kk = k0 + dk
                if kk < 0 or kk >= nz:
                    continue
                wz = tz if dk else 1.0 - tz
                acc += wx * wy * wz * vol[ii, jj, kk]
    return acc


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _warp_kernel(pd, a1, a2, labels, mask, mat, off, disp, use_disp, vox, n_sub,
                 o_pd, o_a1, o_a2, o_lab, o_mask):  # pragma: no cover - numba
    nx, ny, nz = o_pd.shape
    sx, sy, sz = labels.shape
    for i in range(nx):
        px = (i - (nx - 1) / 2.0) * vox[0]
        for j in range(ny):
            py = (j - (ny - 1) / 2.0) * vox[1]
            for k in range(nz):
                pz0 = (k - (nz - 1) / 2.0) * vox[2]
                dx, dy, dz = 0.0, 0.0, 0.0
                if use_disp:
                    dx, dy, dz = disp[0, i, j, k], disp[1, i, j, k], disp[2, i, j, k]
                x, y = px + dx, py + dy
                acc0, acc1, acc2 = 0.0, 0.0, 0.0
                for sub in range(n_sub):
                    z = pz0 + ((sub + 0.5) / n_sub - 0.5) * vox[2] + dz
                    u = mat[0, 0] * x + mat[0, 1] * y + mat[0, 2] * z + off[0]
                    v = mat[1, 0] * x + mat[1, 1] * y + mat[1, 2] * z + off[1]
                    w = mat[2, 0] * x + mat[2, 1] * y + mat[2, 2] * z + off[2]
                    acc0 += _trilinear_zero(pd, u, v, w)
                    acc1 += _trilinear_zero(a1, u, v, w)
                    acc2 += _trilinear_zero(a2, u, v, w)
                o_pd[i, j, k] = acc0 / n_sub
                o_a1[i, j, k] = acc1 / n_sub
                o_a2[i, j, k] = acc2 / n_sub
                z = pz0 + dz  # labels: nearest neighbour of the voxel centre
                u = round(mat[0, 0] * x + mat[0, 1] * y + mat[0, 2] * z + off[0])
                v = round(mat[1, 0] * x + mat[1, 1] * y + mat[1, 2] * z + off[1])
                w = round(mat[2, 0] * x + mat[2, 1] * y + mat[2, 2] * z + off[2])
                if 0 <= u < sx and 0 <= v < sy and 0 <= w < sz:
                    o_lab[i, j, k] = labels[u, v, w]
                    o_mask[i, j, k] = mask[u, v, w]
                else:
                    o_lab[i, j, k] = 0
                    o_mask[i, j, k] = False


def warp_maps(
    maps: Maps,
    matrix: np.ndarray,
    offset_mm: Sequence[float],
    *,
    shape: Sequence[int] | None = None,
    voxel_mm: Sequence[float] | None = None,
    displacement_mm: np.ndarray | None = None,
    flip: Sequence[bool] = (False, False, False),
    z_supersample: int = 0,
) -> Maps:
    """Resample maps on a new grid through an affine map plus an optional displacement field.

    The output voxel at position ``p`` [mm] from the output grid centre samples the source at
    ``matrix @ (p + displacement(p)) + offset_mm`` [mm] from the source grid centre, after flipping the source
    axes marked in ``flip``. ``(PD, PD/T1, PD/T2)`` are interpolated trilinearly (averaged over
    ``z_supersample`` sub-slices for thick output slices; 0 = round(output dz / source dz)), labels and mask
    take the nearest source voxel; outside the source is background.

    Parameters
    ----------
    matrix : (3, 3) output mm -> source mm.
    offset_mm : (3,) source position [mm, from the source centre] of the output centre.
    shape, voxel_mm : output grid (default: the source's).
    displacement_mm : (3, *shape) float32 displacement [mm] on the output grid, or None.
    """
    if maps.labels.ndim != 3:
        raise ValueError(f"warp_maps needs 3-D maps (X, Y, Z); got shape {maps.shape}")
    shape = tuple(int(s) for s in (shape or maps.shape))
    vox_out = np.asarray(voxel_mm if voxel_mm is not None else maps.voxel_mm, np.float64)
    vox_src = maps.voxel_mm.astype(np.float64)
    n_src = np.array(maps.shape, np.float64)
    mat = np.asarray(matrix, np.float64) / vox_src[:, None]  # output mm -> source index
    off = np.asarray(offset_mm, np.float64) / vox_src + (n_src - 1) / 2
    for a, f in enumerate(flip):
        if f:  # sampling the flipped source at index s reads the source at N - 1 - s
            mat[a] *= -1.0
            off[a] = n_src[a] - 1 - off[a]
    n_sub = z_supersample or max(1, min(8, round(vox_out[2] / vox_src[2])))
    use_disp = displacement_mm is not None
    disp = (np.ascontiguousarray(displacement_mm, np.float32) if use_disp else np.zeros((3, 1, 1, 1), np.float32))
    if use_disp and disp.shape != (3,) + shape:
        raise ValueError(f"warp_maps: displacement_mm must have shape {(3,) + shape}; got {disp.shape}")
    pd, a1, a2 = to_rates(maps.t1_ms, maps.t2_ms, maps.pd)
    out = [np.empty(shape, np.float32) for _ in range(3)]
    lab = np.empty(shape, np.uint8)
    msk = np.empty(shape, np.bool_)
    _warp_kernel(pd, a1, a2, np.ascontiguousarray(maps.labels), np.ascontiguousarray(maps.mask), mat, off, disp,
                 use_disp, vox_out, int(n_sub), out[0], out[1], out[2], lab, msk)
    return _from_rates(maps, *out, labels=lab, mask=msk, voxel_mm=vox_out.astype(np.float32))


def random_warp(maps: Maps, rng: np.random.Generator, config: AugmentConfig) -> Maps:
    """Random flip, rotation, scale, shift, slab choice and elastic deformation (one resampling).

    The output grid is ``config.shape`` / ``config.voxel_mm`` (default: the source grid). When the output
    covers less z than the source, the slab centre is drawn inside the brain mask's z extent.
    """
    flips = rng.uniform(size=3) < np.asarray(config.flip_prob)
    rot = rotation_zyx(*(rng.uniform(-m, m) for m in config.rotate_deg))
    scale = rng.uniform(*config.scale) * (1.0 + config.aspect_sd * truncated_normal(rng, 3, 2.5))
    shape = tuple(config.shape or maps.shape)
    vox_out = np.asarray(config.voxel_mm or maps.voxel_mm, np.float64)
    vox_src = maps.voxel_mm.astype(np.float64)
    offset = np.zeros(3)
    offset[:2] = rng.uniform(-config.shift_mm, config.shift_mm, 2)
    extent_out, extent_src = shape[2] * vox_out[2], maps.shape[2] * vox_src[2]
    z_draw = rng.uniform()
    if extent_out < extent_src - 1e-6:
        zs = np.flatnonzero(maps.mask.any(axis=(0, 1)))
        if len(zs) == 0:
            zs = np.array([maps.shape[2] // 2])
        lo, hi = ((zs[[0, -1]] - (maps.shape[2] - 1) / 2) * vox_src[2])
        margin = min(10.0, (hi - lo) / 2)
        offset[2] = (lo + margin) + z_draw * ((hi - margin) - (lo + margin))
    disp = None
    if config.elastic_mm > 0:
        steps = config.elastic_scale_mm / vox_out
        disp = np.stack([np.float32(config.elastic_mm) * smooth_noise(rng, shape, steps) for _ in range(3)])
    return warp_maps(maps, rot @ np.diag(scale), offset, shape=shape, voxel_mm=vox_out, displacement_mm=disp,
                     flip=flips, z_supersample=config.z_supersample)


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


def _perturb_rates(pd, a1, a2, labels, rng, sd, src_field, dst_field, ref, tol=1e-4):
    present = np.flatnonzero(ref[:, 0] > 0)
    k = _tissue_factors(rng, present, sd, src_field, dst_field)
    new_ref = ref.copy()
    new_ref[:, 0] = ref[:, 0] * k[:, 2]
    new_ref[:, 1] = ref[:, 1] * k[:, 2] / k[:, 0]
    new_ref[:, 2] = ref[:, 2] * k[:, 2] / k[:, 1]
    out = [np.empty(pd.size, np.float32) for _ in range(3)]
    _remap_kernel(pd.ravel(), a1.ravel(), a2.ravel(), labels.ravel().astype(np.int64), ref, new_ref,
                  present.astype(np.int64), float(tol), *out)
    return tuple(o.reshape(pd.shape) for o in out)


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
    out = _perturb_rates(pd, a1, a2, maps.labels, rng, sd, maps.field_t, dst, ref)
    return _from_rates(maps, *out, field_t=dst)


def _texture_factors(rng, labels, voxel_mm, sd, scale_mm):
    """Per-voxel (k_t1, k_t2, k_pd): two smooth fields per channel mixed with per-label weights."""
    shape = labels.shape
    angle = rng.uniform(0.0, 2.0 * np.pi, (_N_LAB, 3))
    out = []
    for c in range(3):
        if sd[c] == 0:
            out.append(np.float32(1.0))
            continue
        f0, f1 = (np.clip(smooth_noise_mm(rng, shape, voxel_mm, scale_mm), -TEXTURE_CLIP, TEXTURE_CLIP)
                  for _ in range(2))
        w0 = (sd[c] * np.cos(angle[:, c])).astype(np.float32)[labels]
        w1 = (sd[c] * np.sin(angle[:, c])).astype(np.float32)[labels]
        out.append(np.exp(w0 * f0 + w1 * f1))
    return out


def augment_maps(maps: Maps, rng: np.random.Generator, config: AugmentConfig, *, field_t: float | None = None,
                 lesions: LesionConfig | None = None, references: np.ndarray | None = None) -> Maps:
    """The full augmentation: warp (flip, rotate, scale, slab, elastic), per-tissue values, texture, global
    field, then lesions (``None``: none).

    Parameters
    ----------
    field_t : target field strength [T] (None keeps the maps'); the per-tissue re-mapping converts.
    references : :func:`tissue_references` of ``maps`` if already known (they depend only on ``maps``).
    """
    ref = tissue_references(maps) if references is None else np.asarray(references, np.float64)
    warped = random_warp(maps, rng, config)
    dst = maps.field_t if field_t is None else float(field_t)
    rates = to_rates(warped.t1_ms, warped.t2_ms, warped.pd)
    rates = _perturb_rates(*rates, warped.labels, rng, config.tissue_sd, maps.field_t, dst, ref)
    rates = scale_rates(*rates, *_texture_factors(rng, warped.labels, warped.voxel_mm, config.texture_sd,
                                                  config.texture_scale_mm))
    rates = scale_rates(*rates, *smooth_factors(rng, warped.shape, warped.voxel_mm, config.global_sd,
                                                config.global_scale_mm))
    out = _from_rates(warped, *rates, labels=warped.labels, mask=warped.mask, field_t=dst)
    if lesions is not None:
        out = insert_lesions(out, rng, lesions)
    return out
