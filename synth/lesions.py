"""Synthetic lesions inserted into any labelled map set (procedural phantoms or augmented real maps).

Kinds (labels of :mod:`physics.tissues`):

- **MS plaques** (12): ovoids 3–15 mm long in white matter; most periventricular with the long axis along
  the ventricle's outward normal (Dawson's fingers), the rest anywhere in WM with random orientation.
- **Tumour** (14 enhancing rim, 15 necrotic core, 16 oedema): an irregular sphere in WM / deep GM with a
  rim of random, uneven thickness around an optional necrotic core, surrounded by vasogenic oedema that
  spreads only through white matter and deep GM.
- **Infarct** (17): a wedge (cone) with its base on the cortex and its apex in the white matter, replacing
  GM and WM (a territorial infarct).

Every lesion gets its own values: the :mod:`physics.tissues` mean at the maps' field times a per-lesion
truncated-normal jitter, with smooth texture inside. Boundaries are soft (fraction ramps over one voxel plus
a smooth random perturbation of the shape) and blending is done in rate space ``(PD, PD/T1, PD/T2)``
(:mod:`synth.rates`), so the lesion edge is a physical mixture of lesion and host tissue. A voxel takes
the lesion label where the lesion fraction is ≥ 0.5. Lesions are placed inside the given volume, so a slab
always shows the lesions it was given.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from relaxomap.physics.checks import check_finite_range, check_range_pair, check_sequence, config_from_dict
from relaxomap.physics.tissues import label_lookup
from relaxomap.synth.fields import smooth_noise
from relaxomap.synth.maps import Maps
from relaxomap.synth.rates import from_rates, to_rates
from relaxomap.synth.texture import TEXTURE_CLIP, truncated_normal

__all__ = ["LesionConfig", "insert_lesions"]

_OWNER = "LesionConfig"
_WM, _GM, _CSF, _DGM = 3, 2, 1, 13
_MS, _RIM, _NECROSIS, _OEDEMA, _INFARCT = 12, 14, 15, 16, 17


@dataclass(frozen=True)
class LesionConfig:
    """How many lesions of each kind, how large, and how much their values vary.

    Parameters
    ----------
    p_ms : probability that a subject carries MS plaques.
    ms_count : (min, max) number of plaques (uniform integer).
    ms_length_mm : (min, max) long-axis length of a plaque [mm]; the short axes are 0.4–0.8 of it.
    ms_periventricular : fraction of plaques placed at the ventricle wall, oriented along its normal.
    p_tumour : probability of one tumour.
    tumour_radius_mm : (min, max) radius of the enhancing tumour [mm].
    p_necrosis : probability that a tumour has a necrotic core.
    oedema_extent : (min, max) oedema radius as a multiple of the tumour radius.
    p_infarct : probability that a subject carries infarcts.
    infarct_count : (min, max) number of infarcts.
    infarct_depth_mm : (min, max) wedge depth from the cortical surface [mm].
    infarct_angle_deg : (min, max) wedge half-angle [deg].
    value_sd : (3,) relative sd of (T1, T2, PD) per lesion around the tissue-table mean (truncated at 2.5 sd).
    texture_sd : relative amplitude of the smooth texture inside lesions.
    """

    p_ms: float = 0.35
    ms_count: tuple[int, int] = (2, 16)
    ms_length_mm: tuple[float, float] = (3.0, 15.0)
    ms_periventricular: float = 0.6
    p_tumour: float = 0.15
    tumour_radius_mm: tuple[float, float] = (5.0, 22.0)
    p_necrosis: float = 0.6
    oedema_extent: tuple[float, float] = (1.2, 2.2)
    p_infarct: float = 0.15
    infarct_count: tuple[int, int] = (1, 2)
    infarct_depth_mm: tuple[float, float] = (12.0, 35.0)
    infarct_angle_deg: tuple[float, float] = (10.0, 28.0)
    value_sd: tuple[float, float, float] = (0.15, 0.20, 0.06)
    texture_sd: float = 0.05

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        for name in ("p_ms", "ms_periventricular", "p_tumour", "p_necrosis", "p_infarct"):
            set_(name, check_finite_range(_OWNER, name, getattr(self, name), 0.0, 1.0))
        set_("ms_count", check_range_pair(_OWNER, "ms_count", self.ms_count, 0, 200, integer=True))
        set_("ms_length_mm", check_range_pair(_OWNER, "ms_length_mm", self.ms_length_mm, 1.0, 60.0))
        set_("tumour_radius_mm", check_range_pair(_OWNER, "tumour_radius_mm", self.tumour_radius_mm, 2.0, 60.0))
        set_("oedema_extent", check_range_pair(_OWNER, "oedema_extent", self.oedema_extent, 1.0, 5.0))
        set_("infarct_count", check_range_pair(_OWNER, "infarct_count", self.infarct_count, 0, 20, integer=True))
        set_("infarct_depth_mm", check_range_pair(_OWNER, "infarct_depth_mm", self.infarct_depth_mm, 3.0, 80.0))
        set_("infarct_angle_deg", check_range_pair(_OWNER, "infarct_angle_deg", self.infarct_angle_deg, 2.0, 60.0))
        set_("value_sd", check_sequence(_OWNER, "value_sd", self.value_sd, 0.0, 0.4, length=3))
        set_("texture_sd", check_finite_range(_OWNER, "texture_sd", self.texture_sd, 0.0, 0.3))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LesionConfig":
        return config_from_dict(cls, d)


class _Canvas:
    """Maps being edited: blending (in rate space, box by box) and labelling helpers over local boxes.

    The maps are held as (T1, T2, PD) copies; :meth:`paint` converts only its box to rates and back, so voxels
    no lesion touches keep their exact input values (a whole-volume round trip cost ~15 ms per 1 mm head).
    """

    def __init__(self, maps: Maps, rng: np.random.Generator, config: LesionConfig) -> None:
        self.rng = rng
        self.config = config
        self.voxel = np.asarray(maps.voxel_mm, np.float64)
        self.width = float(self.voxel.max())  # fraction ramp width [mm]
        self.t1 = np.array(maps.t1_ms, np.float32)
        self.t2 = np.array(maps.t2_ms, np.float32)
        self.pd = np.array(maps.pd, np.float32)
        self.labels = maps.labels.copy()
        self.mask = maps.mask.copy()
        self.table = label_lookup(maps.field_t).astype(np.float64)
        # Depth below the brain surface [mm] on a ~2 mm grid: placement and inward directions.
        self.stride = np.maximum(1, np.round(2.0 / self.voxel)).astype(int)
        coarse = maps.mask[:: self.stride[0], :: self.stride[1], :: self.stride[2]]
        self.depth = np.zeros(coarse.shape, np.float32)
        box = _bounding_box(coarse, margin=1)
        if box is not None:  # exact: every voxel outside the brain's box (+1 background layer) is background
            self.depth[box] = ndimage.distance_transform_edt(coarse[box], sampling=self.voxel * self.stride)

    # -------------------------------------------------------------- placement
    def depth_at(self, idx: np.ndarray) -> np.ndarray:
        c = np.minimum(idx // self.stride, np.array(self.depth.shape) - 1)
        return self.depth[c[..., 0], c[..., 1], c[..., 2]]

    def pick(self, candidates: np.ndarray, min_depth_mm: float = 0.0,
             max_depth_mm: float = np.inf) -> np.ndarray | None:
        """A random voxel index (3,) among ``candidates`` at a depth [mm] below the brain surface, or None.

        ``candidates`` is a bool volume or an (n, 3) array of voxel indices.
        """
        if candidates.dtype == bool:
            return self.pick_flat(np.flatnonzero(candidates), min_depth_mm, max_depth_mm)
        idx = candidates
        if len(idx) == 0:
            return None
        d = self.depth_at(idx)
        idx = idx[(d >= min_depth_mm) & (d <= max_depth_mm)]
        if len(idx) == 0:
            return None
        return idx[self.rng.integers(len(idx))]

    def pick_flat(self, flat: np.ndarray, min_depth_mm: float = 0.0, max_depth_mm: float = np.inf) -> np.ndarray | None:
        """:meth:`pick` among the voxels with flat (C-order) indices ``flat`` of the maps' grid."""
        if flat.size == 0:
            return None
        shape = self.labels.shape
        if min_depth_mm <= 0 and max_depth_mm == np.inf:
            return np.array(np.unravel_index(flat[self.rng.integers(flat.size)], shape))
        # Rejection sampling: a uniform draw among the candidates, kept if its depth is in range, is a uniform
        # draw among the eligible ones, without looking up the depth of every candidate.
        for f in flat[self.rng.integers(flat.size, size=64)]:
            i = np.array(np.unravel_index(f, shape))
            if min_depth_mm <= self.depth_at(i) <= max_depth_mm:
                return i
        return self.pick(np.stack(np.unravel_index(flat, shape), axis=1), min_depth_mm, max_depth_mm)  # rare ones

    def inward(self, idx: np.ndarray) -> np.ndarray:
        """Unit vector (3,) pointing into the brain at voxel ``idx`` (gradient of the depth map)."""
        c = np.minimum(idx // self.stride, np.array(self.depth.shape) - 1)
        g = np.zeros(3)
        for ax in range(3):
            lo, hi = c.copy(), c.copy()
            lo[ax] = max(c[ax] - 1, 0)
            hi[ax] = min(c[ax] + 1, self.depth.shape[ax] - 1)
            if hi[ax] > lo[ax]:
                step_mm = (hi[ax] - lo[ax]) * self.stride[ax] * self.voxel[ax]
                g[ax] = (self.depth[tuple(hi)] - self.depth[tuple(lo)]) / step_mm
        n = np.linalg.norm(g)
        return g / n if n > 0 else _random_unit(self.rng)

    # -------------------------------------------------------------- drawing
    def box(self, centre_mm: np.ndarray, radius_mm: float) -> tuple[tuple[slice, ...], np.ndarray] | None:
        """Index box around a centre [mm] and the (3, bx, by, bz) offsets [mm] of its voxels from it."""
        lo = np.floor((centre_mm - radius_mm) / self.voxel).astype(int)
        hi = np.ceil((centre_mm + radius_mm) / self.voxel).astype(int) + 1
        lo = np.maximum(lo, 0)
        hi = np.minimum(hi, self.labels.shape)
        if np.any(hi <= lo):
            return None
        sl = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        axes = [np.arange(a, b) * v - c for a, b, v, c in zip(lo, hi, self.voxel, centre_mm)]
        off = np.stack(np.meshgrid(*axes, indexing="ij")).astype(np.float32)
        return sl, off

    def noise(self, shape: tuple[int, ...], scale_mm: float) -> np.ndarray:
        step = np.maximum(scale_mm / self.voxel, 1.0)
        return np.clip(smooth_noise(self.rng, shape, step), -TEXTURE_CLIP, TEXTURE_CLIP)

    def values(self, label: int) -> np.ndarray:
        """Per-lesion (T1 ms, T2 ms, PD): table mean at the maps' field times a truncated-normal jitter."""
        jit = 1.0 + np.asarray(self.config.value_sd) * truncated_normal(self.rng, 3, 2.5)
        t1, t2, pd = self.table[label] * jit
        return np.array([t1, min(t2, 0.9 * t1), min(pd, 1.0)])  # T2 < T1; PD at most that of CSF

    def paint(self, sl: tuple[slice, ...], alpha: np.ndarray, label: int, eligible: tuple[int, ...],
              texture_scale_mm: float = 4.0) -> np.ndarray:
        """Blend lesion tissue with fraction ``alpha`` (× eligibility of the host voxel) into the box.

        Returns the effective fraction (after eligibility) painted.
        """
        lab = self.labels[sl]
        alpha = (alpha * np.isin(lab, eligible)).astype(np.float32)
        if not alpha.any():
            return alpha
        t1, t2, pd = self.values(label)
        sd = self.config.texture_sd
        tex = [np.exp(sd * self.noise(alpha.shape, texture_scale_mm)) for _ in range(3)] if sd > 0 else [1.0] * 3
        l_pd = pd * tex[2]
        keep = 1.0 - alpha
        r_pd, r_a1, r_a2 = to_rates(self.t1[sl], self.t2[sl], self.pd[sl])
        self.t1[sl], self.t2[sl], self.pd[sl] = from_rates(keep * r_pd + alpha * l_pd,
                                                           keep * r_a1 + alpha * l_pd / (t1 * tex[0]),
                                                           keep * r_a2 + alpha * l_pd / (t2 * tex[1]))
        lab[alpha >= 0.5] = label
        self.mask[sl] |= alpha >= 0.5
        return alpha

    def ramp(self, d: np.ndarray) -> np.ndarray:
        return np.clip(0.5 + d / self.width, 0.0, 1.0).astype(np.float32)

    def to_maps(self, maps: Maps) -> Maps:
        return Maps(self.t1, self.t2, self.pd, self.labels, self.mask, voxel_mm=maps.voxel_mm, field_t=maps.field_t,
                    subject_id=maps.subject_id, source=maps.source)


def _bounding_box(a: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Index box of the non-zero voxels of ``a`` grown by ``margin`` voxels (clipped); None if all zero."""
    box = []
    for axis in range(a.ndim):
        hit = np.flatnonzero(a.any(axis=tuple(i for i in range(a.ndim) if i != axis)))
        if hit.size == 0:
            return None
        box.append(slice(max(int(hit[0]) - margin, 0), min(int(hit[-1]) + 1 + margin, a.shape[axis])))
    return tuple(box)


def _random_unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def _frame(axis: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation matrix (3, 3) whose first column is ``axis`` and the others random perpendiculars."""
    a = axis / np.linalg.norm(axis)
    t = _random_unit(rng)
    t -= a * (t @ a)
    if np.linalg.norm(t) < 1e-6:
        t = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        t -= a * (t @ a)
    t /= np.linalg.norm(t)
    return np.stack([a, t, np.cross(a, t)], axis=1)


def _ms_plaques(cv: _Canvas) -> None:
    cfg, rng = cv.config, cv.rng
    wm = cv.labels == _WM
    wm_flat = np.flatnonzero(wm)
    csf_idx = np.argwhere((cv.labels == _CSF) & cv.mask)
    vent = np.zeros_like(wm)
    wall_idx = csf_idx[:0]
    if len(csf_idx):
        vent_idx = csf_idx[cv.depth_at(csf_idx) > 12.0]  # ventricles, not the subarachnoid space
        vent[tuple(vent_idx.T)] = True
        box = _bounding_box(vent, margin=1)
        if box is not None:  # the ventricles' wall: white matter next to them (dilation in their box only)
            wall = wm[box] & ndimage.binary_dilation(vent[box], iterations=1)
            wall_idx = np.argwhere(wall) + np.array([b.start for b in box])
    for _ in range(int(rng.integers(cfg.ms_count[0], cfg.ms_count[1] + 1))):
        length = rng.uniform(*cfg.ms_length_mm)
        radii = np.array([length / 2, length / 2 * rng.uniform(0.4, 0.8), length / 2 * rng.uniform(0.4, 0.8)])
        at_wall = len(wall_idx) > 0 and rng.uniform() < cfg.ms_periventricular
        idx = cv.pick(wall_idx) if at_wall else cv.pick_flat(wm_flat, min_depth_mm=3.0)
        if idx is None:
            continue
        pos = idx * cv.voxel
        if at_wall:  # long axis along the ventricle's outward normal (Dawson's fingers)
            lo = np.maximum(idx - 4, 0)
            patch = vent[tuple(slice(a, b) for a, b in zip(lo, idx + 5))].astype(np.float32)
            local = ndimage.gaussian_filter(patch, 1.5)
            c = idx - lo
            grad = np.array([np.gradient(local, axis=a)[tuple(c)] if local.shape[a] > 1 else 0.0 for a in range(3)])
            axis = -grad / cv.voxel if np.linalg.norm(grad) > 0 else _random_unit(rng)
            axis /= np.linalg.norm(axis)
            pos = pos + axis * radii[0] * 0.7
        else:
            axis = _random_unit(rng)
        got = cv.box(pos, radii[0] * 1.4 + 2 * cv.width)
        if got is None:
            continue
        sl, off = got
        u = np.einsum("ji,j...->i...", _frame(axis, rng), off)  # coordinates in the lesion frame [mm]
        r = np.sqrt(sum((u[i] / radii[i]) ** 2 for i in range(3)))
        r *= 1.0 + 0.12 * cv.noise(r.shape, max(radii[1], 2.0))
        cv.paint(sl, cv.ramp((1.0 - r) * radii[1]), _MS, (_WM, _MS))


def _tumour(cv: _Canvas) -> None:
    cfg, rng = cv.config, cv.rng
    radius = rng.uniform(*cfg.tumour_radius_mm)
    idx = cv.pick(np.isin(cv.labels, (_WM, _DGM)), min_depth_mm=min(radius * 0.6, 15.0))
    if idx is None:
        return
    extent = rng.uniform(*cfg.oedema_extent)
    got = cv.box(idx * cv.voxel, radius * extent * 1.35 + 2 * cv.width)
    if got is None:
        return
    sl, off = got
    dist = np.sqrt((off ** 2).sum(axis=0))
    bumpy = dist / (1.0 + 0.15 * cv.noise(dist.shape, radius * 0.6))
    oedema = cv.ramp(radius * extent - dist / (1.0 + 0.3 * cv.noise(dist.shape, radius * 0.5)))
    solid = cv.ramp(radius - bumpy)
    cv.paint(sl, oedema * (1.0 - solid), _OEDEMA, (_WM, _DGM, _MS))
    cv.paint(sl, solid, _RIM, (_GM, _WM, _DGM, _MS, _OEDEMA))
    if rng.uniform() < cfg.p_necrosis:
        core = radius * rng.uniform(0.3, 0.7)
        rim = bumpy * (1.0 + 0.2 * cv.noise(dist.shape, radius * 0.4))  # uneven rim thickness
        cv.paint(sl, cv.ramp(core - rim), _NECROSIS, (_RIM,))


def _infarcts(cv: _Canvas) -> None:
    for _ in range(int(cv.rng.integers(cv.config.infarct_count[0], cv.config.infarct_count[1] + 1))):
        _infarct(cv)


def _infarct(cv: _Canvas) -> None:
    cfg, rng = cv.config, cv.rng
    idx = cv.pick(cv.labels == _GM, max_depth_mm=6.0)
    if idx is None:
        return
    depth = rng.uniform(*cfg.infarct_depth_mm)
    tan = math.tan(math.radians(rng.uniform(*cfg.infarct_angle_deg)))
    axis = cv.inward(idx)
    start = idx * cv.voxel - axis * 3.0  # the wedge base sits just outside the cortex
    got = cv.box(start + axis * depth / 2, depth / 2 + depth * tan + 3 * cv.width)
    if got is None:
        return
    sl, off = got
    off = off + (axis * depth / 2)[:, None, None, None].astype(np.float32)  # offsets from `start`
    t = np.einsum("i,i...->...", axis.astype(np.float32), off)
    radial = np.sqrt(np.maximum((off ** 2).sum(axis=0) - t * t, 0.0))
    radial *= 1.0 + 0.15 * cv.noise(radial.shape, 6.0)
    inside = np.minimum.reduce([(depth - t) * tan - radial, t, depth - t])
    cv.paint(sl, cv.ramp(inside), _INFARCT, (_GM, _WM, _DGM, _MS))


def insert_lesions(maps: Maps, rng: np.random.Generator, config: LesionConfig) -> Maps:
    """Insert random lesions (module docstring) into a copy of ``maps``.

    Parameters
    ----------
    maps : 3-D labelled maps (labels of :mod:`physics.tissues`; WM = 3, GM = 2, CSF = 1, deep GM = 13).
    rng : random generator.
    config : kinds, counts, sizes and value spread.

    Returns
    -------
    New Maps (inputs untouched) with lesion labels 12, 14, 15, 16, 17 where lesions were placed; kinds
    whose host tissue is absent (e.g. no white matter in the slab) are skipped.
    """
    if not isinstance(config, LesionConfig):
        raise TypeError(f"insert_lesions: config must be a LesionConfig; got {type(config).__name__}")
    if maps.labels.ndim != 3:
        raise ValueError(f"insert_lesions needs 3-D maps (X, Y, Z); got shape {maps.shape}")
    draws = rng.uniform(size=3)  # one draw per kind, always consumed: later draws do not depend on earlier kinds
    kinds = [(draws[0] < config.p_ms, _ms_plaques), (draws[1] < config.p_tumour, _tumour),
             (draws[2] < config.p_infarct, _infarcts)]
    if not any(on for on, _ in kinds) or not maps.mask.any():
        return Maps(maps.t1_ms.copy(), maps.t2_ms.copy(), maps.pd.copy(), maps.labels.copy(), maps.mask.copy(),
                    voxel_mm=maps.voxel_mm.copy(), field_t=maps.field_t, subject_id=maps.subject_id,
                    source=maps.source)
    canvas = _Canvas(maps, rng, config)
    for on, draw in kinds:
        if on:
            draw(canvas)
    return canvas.to_maps(maps)
