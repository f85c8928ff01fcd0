"""Procedural 3-D head phantoms: random anatomy, per-subject tissue values, partial volume.

A phantom is an axial slab through a head, built in three steps:

1. **Geometry.** Every voxel centre is mapped into a canonical head frame (mm; x left→right, y posterior→
   anterior, z inferior→superior, origin at the brain centre ≈ MNI (0, −18, 10)) by a random pose (head size
   per axis, pitch / roll / yaw, shift, slab height) plus a smooth random displacement field. Tissues are
   signed distances in that frame: cerebrum (egg-shaped ellipsoid with a shaped floor: frontal fossa,
   temporal lobes, tentorium), cerebellum with folia, brainstem and cord; cortical folding from the zero
   sheets of a smooth random field sampled in radially stretched coordinates (so sulci run perpendicular
   to the surface, with random depth, width and spacing); interhemispheric fissure above the corpus
   callosum, Sylvian fissures with insular cortex; lateral and third ventricles; deep grey nuclei
   (thalamus, caudate, putamen, pallidum → label 13); cranial cavity with subarachnoid CSF, dura, superior
   sagittal sinus, skull (tables and diploë), galea, temporalis, scalp fat and skin; below the skull base
   a face / neck with muscle, fat, orbits, eyes and air sinuses. Thicknesses, cortical thickness, sulcal
   depth and width and atrophy (wider sulci, larger ventricles) vary smoothly and per subject.
2. **Partial volume.** A tissue bounded by signed distance ``d`` [mm] fills ``clip(0.5 + d / w, 0, 1)`` of a
   voxel (w = in-plane voxel size); fractions are nested so they sum to ≤ 1 (the rest is air), and thick
   slices are integrated over ``z_supersample`` sub-slices.
3. **Values.** Per-subject tissue values are drawn around the :mod:`physics.tissues` means at ``field_t``
   (truncated-normal relative jitter), modulated inside each tissue by two smooth random fields with
   tissue-specific weights (texture), mixed in rate space (:mod:`synth.texture`) and multiplied by a
   smooth global field.

Labels are the tissue with the largest fraction; ``mask`` is "brain fraction (CSF, GM, WM, deep GM) ≥ 0.5".
Eyes carry label 1 (vitreous has CSF-like relaxation) but lie outside the mask.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from relaxomap.physics.checks import check_finite_range, check_int_range, check_range_pair, check_sequence, config_from_dict
from relaxomap.physics.tissues import TISSUES
from relaxomap.synth._phantom_kernel import (
    carve_fissures,
    canonical_frame,
    cerebrum_shell,
    exp_field,
    face_shell,
    folding_field,
    layers,
    scalp_fields,
    sulcal_depth,
    sulcal_skip_mm,
)
from relaxomap.synth.fields import sample_trilinear, smooth_noise, smooth_noise_mm
from relaxomap.synth.geometry import (
    CapsuleChain,
    CoordGrid,
    Ellipsoid,
    capsule_depth,
    ellipsoid_depth,
    index_box,
    ramp,
    ramp_of_union,
    rotation_zyx,
    smoothstep,
    union_depth,
)
from relaxomap.synth.lesions import LesionConfig, insert_lesions
from relaxomap.synth.maps import Maps
from relaxomap.synth.texture import TEXTURE_CLIP, draw_tissue_values, mix_fractions, scaled_from_rates, smooth_factors

__all__ = ["PhantomConfig", "make_phantom", "PHANTOM_LABELS"]

_OWNER = "PhantomConfig"
# Fraction slots: (label, counts as brain). Eyes are label 1 but not brain.
_SLOTS: tuple[tuple[int, bool], ...] = (
    (1, True), (2, True), (3, True), (13, True), (10, False), (7, False), (11, False), (9, False),
    (5, False), (4, False), (6, False), (8, False), (1, False),
)
_CSF, _GM, _WM, _DGM, _DURA, _SKULL, _MARROW, _CON, _MUS, _FAT, _SKIN, _VES, _EYE = range(len(_SLOTS))
_SLOT_LABELS = np.array([lab for lab, _ in _SLOTS], np.int64)
_SLOT_BRAIN = np.array([brain for _, brain in _SLOTS], np.bool_)
#: labels a healthy phantom contains
PHANTOM_LABELS: tuple[int, ...] = tuple(sorted({lab for lab, _ in _SLOTS}))


@dataclass(frozen=True)
class PhantomConfig:
    """Settings of the procedural phantom generator (defaults live only here).

    Parameters
    ----------
    shape : (X, Y, Z) voxels of the slab; axial slices are ``[:, :, z]``.
    voxel_mm : (3,) voxel size [mm]; slices may be thicker than the in-plane size.
    field_t : field strength [T] (1.5 or 3) whose tissue means are used.
    value_sd : relative sd of the per-subject (T1, T2, PD) of each tissue around the literature mean.
    value_trunc_sd : per-subject draws are restricted to ±value_trunc_sd sd.
    texture_sd : (T1, T2, PD) log-amplitude of the smooth within-tissue variation.
    texture_scale_mm : feature size of that variation [mm].
    global_sd, global_scale_mm : the same for one smooth field applied to all tissues.
    head_scale : (min, max) per-axis scale of the head relative to an average adult.
    rotate_deg : (3,) maximum |pitch|, |roll|, |yaw| [deg] (rotations about x, y, z).
    shift_mm : maximum in-plane offset of the head from the grid centre [mm].
    deform_mm, deform_scale_mm : sd [mm] and feature size [mm] of the smooth random displacement field.
    slab_center_mm : (min, max) height of the slab centre above the brain centre [mm]; −60 reaches the
        skull base and cerebellum, +65 the vertex.
    atrophy : (min, max) of the atrophy score in [0, 1] (wider sulci and SAS, larger ventricles).
    z_supersample : sub-slices per slice for partial volume along z; 0 = round(voxel_mm[2] / voxel_mm[0]).
    lesions : lesion settings, or None for a healthy phantom.
    """

    shape: tuple[int, int, int] = (224, 256, 48)
    voxel_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    field_t: float = 3.0
    value_sd: tuple[float, float, float] = (0.08, 0.10, 0.05)
    value_trunc_sd: float = 2.5
    texture_sd: tuple[float, float, float] = (0.03, 0.04, 0.02)
    texture_scale_mm: float = 12.0
    global_sd: tuple[float, float, float] = (0.03, 0.03, 0.02)
    global_scale_mm: float = 70.0
    head_scale: tuple[float, float] = (0.88, 1.10)
    rotate_deg: tuple[float, float, float] = (10.0, 6.0, 12.0)
    shift_mm: float = 12.0
    deform_mm: float = 3.0
    deform_scale_mm: float = 45.0
    slab_center_mm: tuple[float, float] = (-60.0, 65.0)
    atrophy: tuple[float, float] = (0.0, 1.0)
    z_supersample: int = 0
    lesions: LesionConfig | None = None

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        set_("shape", check_sequence(_OWNER, "shape", self.shape, 1, 2048, length=3, integer=True))  # (X, Y, Z)
        set_("voxel_mm", check_sequence(_OWNER, "voxel_mm", self.voxel_mm, 0.0, 20.0, length=3, lo_open=True))
        f = check_finite_range(_OWNER, "field_t", self.field_t, 0.0, 21.0, lo_open=True)
        if not any(abs(f - k) < 0.26 for k in TISSUES):
            raise ValueError(f"{_OWNER}.field_t must be one of {sorted(TISSUES)} T; got {f}")
        set_("field_t", f)
        set_("value_sd", check_sequence(_OWNER, "value_sd", self.value_sd, 0.0, 0.35, length=3))
        set_("value_trunc_sd", check_finite_range(_OWNER, "value_trunc_sd", self.value_trunc_sd, 0.5, 4.0))
        set_("texture_sd", check_sequence(_OWNER, "texture_sd", self.texture_sd, 0.0, 0.3, length=3))
        set_("texture_scale_mm", check_finite_range(_OWNER, "texture_scale_mm", self.texture_scale_mm, 1.0, 500.0))
        set_("global_sd", check_sequence(_OWNER, "global_sd", self.global_sd, 0.0, 0.3, length=3))
        set_("global_scale_mm", check_finite_range(_OWNER, "global_scale_mm", self.global_scale_mm, 1.0, 1000.0))
        set_("head_scale", check_range_pair(_OWNER, "head_scale", self.head_scale, 0.5, 1.5))
        set_("rotate_deg", check_sequence(_OWNER, "rotate_deg", self.rotate_deg, 0.0, 45.0, length=3))
        set_("shift_mm", check_finite_range(_OWNER, "shift_mm", self.shift_mm, 0.0, 100.0))
        set_("deform_mm", check_finite_range(_OWNER, "deform_mm", self.deform_mm, 0.0, 20.0))
        set_("deform_scale_mm", check_finite_range(_OWNER, "deform_scale_mm", self.deform_scale_mm, 5.0, 500.0))
        set_("slab_center_mm", check_range_pair(_OWNER, "slab_center_mm", self.slab_center_mm, -120.0, 120.0))
        set_("atrophy", check_range_pair(_OWNER, "atrophy", self.atrophy, 0.0, 1.0))
        set_("z_supersample", check_int_range(_OWNER, "z_supersample", self.z_supersample, 0, 16))
        if self.lesions is not None and not isinstance(self.lesions, LesionConfig):
            raise TypeError(f"{_OWNER}.lesions must be a LesionConfig or None; got {type(self.lesions).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PhantomConfig":
        return config_from_dict(cls, d, {"lesions": LesionConfig})


# ----------------------------------------------------------------------------- canonical frame
def _canonical_coords(
    cfg: PhantomConfig, rng: np.random.Generator, n_sub: int
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float]:
    """Canonical coordinates [mm] of every sub-slice voxel centre: 3 arrays (X, Y, Z·n_sub) float32.

    Returns the coordinates and the overall head scale.
    """
    nx, ny, nz = cfg.shape
    dx, dy, dz = cfg.voxel_mm
    nzs, dzs = nz * n_sub, dz / n_sub
    size = rng.uniform(*cfg.head_scale)
    scale = size * rng.uniform(0.95, 1.05, 3)  # per-axis: head aspect varies a little around the size
    rot = rotation_zyx(*(rng.uniform(-m, m) for m in cfg.rotate_deg))
    shift = rng.uniform(-cfg.shift_mm, cfg.shift_mm, 2)
    z_center = rng.uniform(*cfg.slab_center_mm)
    grid = (
        ((np.arange(nx) - (nx - 1) / 2) * dx - shift[0]).astype(np.float32)[:, None, None],
        ((np.arange(ny) - (ny - 1) / 2) * dy - shift[1]).astype(np.float32)[None, :, None],
        ((np.arange(nzs) + 0.5) * dzs - nz * dz / 2).astype(np.float32)[None, None, :],
    )
    shape = (nx, ny, nzs)
    steps = cfg.deform_scale_mm / np.array([dx, dy, dzs])
    if cfg.deform_mm > 0:
        disp = [smooth_noise(rng, shape, steps) for _ in range(3)]
    else:
        disp = [np.zeros((1, 1, 1), np.float32)] * 3  # broadcast: no displacement
    mat = (np.diag(1.0 / scale) @ rot.T).astype(np.float32)  # world -> canonical
    q = canonical_frame(grid, disp, np.float32(cfg.deform_mm), mat, np.array([0.0, 0.0, z_center], np.float32))
    return q, float(size)


def _field(rng: np.random.Generator, shape: tuple[int, ...], spacing: tuple[float, ...], scale_mm: float,
           mean: float, rel_sd: float) -> np.ndarray:
    """A positive smooth field ``mean · exp(rel_sd · N(0,1) field)`` (thicknesses, widths) on the grid."""
    return exp_field(smooth_noise(rng, shape, scale_mm / np.asarray(spacing)), mean, rel_sd, TEXTURE_CLIP)


# ----------------------------------------------------------------------------- anatomy
def _brain(q: CoordGrid, rng: np.random.Generator, spacing: tuple[float, float, float],
           atrophy: float) -> dict[str, np.ndarray]:
    """Hull depth of the brain (``hull``), parenchymal depth (``rho``), GM thickness (``tgm``), floor level."""
    qx, qy, qz = q
    shape = qx.shape
    a, b = 66.0 * rng.uniform(0.93, 1.07), 84.0 * rng.uniform(0.93, 1.07)
    c_up, c_lo = 66.0 * rng.uniform(0.93, 1.07), 54.0 * rng.uniform(0.9, 1.1)
    egg = rng.uniform(0.02, 0.10)
    floor0, drop = -30.0 * rng.uniform(0.9, 1.1), 20.0 * rng.uniform(0.8, 1.2)
    # Cerebrum: egg-shaped ellipsoid (narrower frontally, wider parietally), its convex envelope down to the
    # middle fossae laterally (the temporal fossa between frontal and temporal lobes is filled by temporalis
    # muscle, so the head surface does not dip there), cut by a floor: anterior fossa, temporal lobes in the
    # middle fossae, tentorium rising towards the midline, orbital roofs bulging up, random bumps.
    bumps = smooth_noise(rng, shape, 25.0 / np.asarray(spacing))
    # Cortical folding: zero sheets of a smooth field sampled at radially compressed coordinates, so the
    # field barely changes along the radius and its zero sheets (sulci) run perpendicular to the surface.
    step_s = rng.uniform(3.5, 5.0)
    lo, grid_mm = np.array([-105.0, -120.0, -85.0]), 1.5
    noise = smooth_noise(rng, (141, 161, 131), step_s / grid_mm)
    hull_c, envelope, floor, g = cerebrum_shell(q, bumps, a, b, c_up, c_lo, egg, floor0, drop)
    del bumps
    half_width = _field(rng, shape, spacing, 30.0, 0.15 + 0.55 * atrophy, 0.4)
    depth = _field(rng, shape, spacing, 35.0, 15.0 * rng.uniform(0.8, 1.25), 0.3)
    tgm = _field(rng, shape, spacing, 40.0, 2.8 * rng.uniform(0.85, 1.15), 0.12)
    # sampled only where the sulci can reach (exact: sulcal_depth reads nothing else)
    g = folding_field(q, g, noise, lo, grid_mm, hull_c, sulcal_skip_mm(half_width, spacing))
    del noise
    rho = sulcal_depth(g, spacing, hull_c, half_width, depth)
    del g, half_width, depth
    # Interhemispheric fissure (down to the corpus callosum in the middle, through the whole brain in front
    # of the genu and behind the splenium) and Sylvian fissures ending at the insula.
    mid = smooth_noise(rng, shape, 40.0 / np.asarray(spacing))
    x_insula = 0.55 * a * rng.uniform(0.92, 1.08)
    wobble = smooth_noise(rng, shape, 15.0 / np.asarray(spacing))
    carve_fissures(rho, q, mid, wobble, 0.8 + 1.2 * atrophy, x_insula, rng.uniform(-4, 4), 0.5 + 1.0 * atrophy)
    del mid, wobble
    hull = hull_c.copy()
    # Cerebellum (folia: sheets of a field stretched along x) and brainstem / cord, in the posterior fossa.
    box = index_box(q, (-70.0, -100.0, -150.0), (70.0, 5.0, -15.0))
    if box is not None:
        bx, by, bz = qx[box], qy[box], qz[box]
        cb = union_depth([
            ellipsoid_depth(bx - 24.0, by + 52.0, bz + 52.0, 26.0, 24.0, 25.0),
            ellipsoid_depth(bx + 24.0, by + 52.0, bz + 52.0, 26.0, 24.0, 25.0),
            ellipsoid_depth(bx, by + 55.0, bz + 48.0, 10.0, 20.0, 27.0),
        ])
        cb = np.minimum(cb, (floor[box] - 2.5) - bz)  # below the tentorium
        folia = smooth_noise(rng, (121, 86, 71), (12.0, 3.0, 3.0))[None]
        g2 = sample_trilinear(folia, (-60.0, -95.0, -90.0), 1.0, bx, by, bz)[0]
        rho_cb = sulcal_depth(g2, spacing, cb, 0.3, 9.0 * rng.uniform(0.8, 1.2))
        pts = np.array([[0, -12, -22], [0, -18, -42], [0, -22, -60], [0, -27, -78], [0, -29, -160]], float)
        # only compared with max(hull_c, cb) below (and maxed with it): exact only where it can exceed that
        bs = capsule_depth(bx, by, bz, pts, np.array([12.0, 13.0, 10.0, 8.0, 7.0]) * rng.uniform(0.9, 1.1),
                           floor=np.maximum(hull_c[box], cb))
        sub_rho, sub_tgm, sub_hull = rho[box], tgm[box], hull[box]
        use_cb = cb > np.maximum(hull_c[box], bs)
        use_bs = bs > np.maximum(hull_c[box], cb)
        sub_rho[use_cb] = rho_cb[use_cb]
        sub_tgm[use_cb] = 1.4
        sub_rho[use_bs] = bs[use_bs]
        sub_tgm[use_bs] = 0.0
        np.maximum(sub_hull, np.maximum(cb, bs), out=sub_hull)
    return {"hull_c": hull_c, "hull": hull, "rho": rho, "tgm": tgm, "envelope": envelope, "a": np.float32(a),
            "b": np.float32(b),
            "floor0": np.float32(floor0)}


def _capsule_part(pts: np.ndarray, radii: np.ndarray, w: float, z_stretch: float = 1.0) -> tuple[Any, Any, Any]:
    """A capsule chain (in ``(x, y, z / z_stretch)``) as a :func:`synth.geometry.ramp_of_union` part with ramp
    width ``w`` [mm]."""
    return CapsuleChain(pts, radii, z_stretch, cut_mm=w).part(w)


def _deep_structures(q: CoordGrid, rng: np.random.Generator, atrophy: float,
                     frac: np.ndarray, w: float) -> None:
    """Paint deep grey nuclei and ventricles into ``frac`` (in place)."""
    box = index_box(q, (-48.0, -70.0, -50.0), (48.0, 55.0, 25.0))
    if box is None:
        return
    sub_q = q.sub(box)
    bx, by, bz = sub_q
    jit = lambda: rng.uniform(-2.0, 2.0, 3)  # noqa: E731  (position jitter of one structure [mm])
    size = lambda: rng.uniform(0.85, 1.15)  # noqa: E731
    nuclei, caudates = [], []  # thalamus, putamen, pallidum (ellipsoids, evaluated around themselves); caudate
    for side in (-1.0, 1.0):
        for centre, axes in (((11, 0, -3), (8, 15, 9)), ((25, 21, -10), (6, 15, 10)), ((19, 15, -12), (4, 9, 6))):
            c = np.array(centre, float) * (side, 1, 1) + jit()
            s = np.array(axes, float) * size()
            nuclei.append(Ellipsoid(c, s).part())
        caudate = np.array([[15, 33, 0], [17, 20, 7], [18, 5, 11]], float) * (side, 1, 1) + jit()
        caudates.append(_capsule_part(caudate, np.array([5.5, 4.0, 2.5]) * size(), w))
    alpha = ramp_of_union(sub_q, nuclei + caudates, w)
    sub = frac[:, box[0], box[1], box[2]]
    sub[_DGM] += alpha * (sub[_GM] + sub[_WM])
    sub[_GM] *= 1.0 - alpha
    sub[_WM] *= 1.0 - alpha
    # Lateral ventricles (frontal horn, body, atrium, occipital and temporal horns) and the third ventricle.
    vscale = (0.6 + 0.9 * atrophy) * rng.uniform(0.85, 1.15)
    lateral = []
    for side in (-1.0, 1.0):
        main = np.array([[8, 36, 2], [9, 22, 5], [10, 5, 5], [18, -14, 4], [26, -28, 1], [20, -50, -5]], float)
        temporal = np.array([[26, -28, 1], [32, -14, -14], [28, 10, -32]], float)
        shift = jit() * (0.5, 1.0, 1.0)
        main = main * (side, 1, 1) + shift
        temporal = temporal * (side, 1, 1) + shift
        lateral.append(_capsule_part(main, np.array([5.5, 5.5, 4.5, 5.0, 7.0, 3.0]) * vscale, w))
        lateral.append(_capsule_part(temporal, np.array([5.0, 3.5, 2.0]) * vscale, w))
    # third ventricle: a capsule chain in (x, y, z / 3), i.e. three times taller than its radii
    third = _capsule_part(np.array([[0, 18, -3.5], [0, 4, -1.5], [0, -8, -1.5]]), np.array([1.5, 2.0, 2.0]) * vscale,
                          w, z_stretch=3.0)
    alpha = np.maximum(ramp_of_union(sub_q, lateral, w) * ramp(np.abs(bx) - 1.2, w),
                       ramp_of_union(sub_q, [third], w))
    moved = alpha * (sub[_GM] + sub[_WM] + sub[_DGM])
    for s in (_GM, _WM, _DGM):
        sub[s] *= 1.0 - alpha
    sub[_CSF] += moved


def _face(q: CoordGrid, rng: np.random.Generator, brain: dict, sub: np.ndarray,
          weight: np.ndarray, w: float, spacing: tuple[float, float, float]) -> None:
    """Add face / neck tissue to the fractions ``sub`` of a box (in place).

    ``q`` are the box's canonical coordinates, ``weight`` the share of each voxel left to the face (outside
    the skull, times the lower-head weight).
    """
    bx, by, bz = q
    skin = 2.0 * rng.uniform(0.8, 1.2)
    fat = _field(rng, bx.shape, spacing, 30.0, 5.0 * rng.uniform(0.6, 1.4), 0.35)
    # face / neck cross-section (narrower and moving back down the neck), skin and fat layers inside it
    deep = face_shell(q, fat, weight, float(brain["a"]), float(brain["b"]), skin, w, sub[_SKIN], sub[_FAT])
    # Small shapes (sinuses, eyes, orbits) are evaluated only around themselves (synth.geometry.ramp_of_union).
    air = []
    for centre, axes in (((24, 55, -68), (12, 16, 16)), ((-24, 55, -68), (12, 16, 16)), ((0, 60, -66), (7, 25, 13)),
                         ((0, 30, -52), (10, 10, 8))):
        c = np.array(centre, float) + rng.uniform(-2, 2, 3)
        ax = np.array(axes) * rng.uniform(0.8, 1.2)
        air.append(Ellipsoid(c, ax).part())
    air.append(_capsule_part(np.array([[0, 40, -80], [0, 12, -95], [0, 10, -200]], float),  # airway
                             np.array([7.0, 8.0, 7.0]) * rng.uniform(0.7, 1.2), w))
    kept = ramp_of_union(q, air, w)
    np.subtract(1.0, kept, out=kept)
    deep *= kept
    eyes, orbits = [], []
    for side in (-1.0, 1.0):
        c = np.array([31.0 * side, 70.0, -47.0]) + rng.uniform(-2, 2, 3)
        eyes.append(Ellipsoid(c, (12.0, 12.0, 12.0)).part())
        orbits.append(Ellipsoid(c - (0.0, 8.0, 0.0), (17.0, 22.0, 15.0)).part())  # around and behind the eye
    eye = deep * ramp_of_union(q, eyes, w)
    rest = deep
    rest -= eye
    fatty = smooth_noise(rng, bx.shape, 12.0 / np.asarray(spacing))  # fat islands: ramp(islands - 0.4) over 0.2
    fatty -= np.float32(0.4)
    fatty *= np.float32(5.0)
    fatty += np.float32(0.5)
    np.clip(fatty, 0.0, 1.0, out=fatty)
    np.maximum(fatty, ramp_of_union(q, orbits, w), out=fatty)  # orbits are fat around the eyes
    sub[_EYE] += eye
    fat = rest * fatty
    sub[_FAT] += fat
    rest -= fat
    sub[_MUS] += rest


def _fractions(q: CoordGrid, rng: np.random.Generator, cfg: PhantomConfig,
               spacing: tuple[float, float, float]) -> np.ndarray:
    """Tissue fractions (n_slots, X, Y, Z·n_sub) float32, summing to ≤ 1 per voxel."""
    qx, qy, qz = q
    shape = qx.shape
    w = float(max(spacing))
    lo, hi = cfg.atrophy
    atrophy = lo + (hi - lo) * rng.uniform() ** 2  # skewed towards `lo`: most subjects are not atrophic
    brain = _brain(q, rng, spacing, atrophy)
    # Intracranial cavity and spinal canal: the brain and cord plus the subarachnoid space; around it dura,
    # skull (inner table, diploë, outer table), galea, temporalis, fat and skin; the face / neck below.
    sas = _field(rng, shape, spacing, 40.0, 1.0 + 2.2 * atrophy, 0.35)
    cavity = brain["hull"] + sas
    t_dura = 1.0 * rng.uniform(0.8, 1.2)
    t_skull = _field(rng, shape, spacing, 45.0, 6.5 * rng.uniform(0.8, 1.2), 0.25)
    muscle_mm = 9.0 * rng.uniform(0.5, 1.5)
    t_fat = _field(rng, shape, spacing, 35.0, 4.5 * rng.uniform(0.6, 1.5), 0.35)
    t_skin = 2.0 * rng.uniform(0.8, 1.2)
    # thinner skull and the temporalis over the temporal fossa; `lower`: weight of face / neck tissue against
    # the scalp layers, below z_top (lower posteriorly: the neck under the occiput) (scalp_fields)
    t_muscle, lower = scalp_fields(q, float(brain["a"]), muscle_mm, t_skull)
    frac = np.empty((len(_SLOTS),) + shape, np.float32)
    frac[_DGM] = 0.0
    frac[_VES] = 0.0
    frac[_EYE] = 0.0
    layers(cavity, brain["envelope"], brain["rho"], brain["tgm"], t_skull, t_muscle, t_fat, lower, t_dura, t_skin, w,
           (_CSF, _GM, _WM, _DURA, _SKULL, _MARROW, _CON, _MUS, _FAT, _SKIN), frac)
    _deep_structures(q, rng, atrophy, frac, w)
    box = index_box(q, (-200.0, -200.0, -400.0), (200.0, 200.0, -36.0))
    if box is not None:
        outside = 1.0 - ramp(cavity[box] + t_dura + t_skull[box], w)
        _face(q.sub(box), rng, brain, frac[:, box[0], box[1], box[2]], outside * lower[box], w, spacing)
    # Superior sagittal sinus in the falx attachment at the vertex.
    box = index_box(q, (-15.0, -120.0, -20.0), (15.0, 120.0, 150.0))
    if box is not None:
        r_s = 3.5 * rng.uniform(0.8, 1.2)
        d = r_s - np.sqrt(qx[box] ** 2 + (cavity[box] + 1.0) ** 2)
        alpha = ramp(d, w) * smoothstep(qy[box], -95.0, -70.0) * (1.0 - smoothstep(qy[box], 70.0, 90.0))
        sub = frac[:, box[0], box[1], box[2]]
        total = sub.sum(axis=0)
        sub *= 1.0 - alpha
        sub[_VES] += alpha * total
    return frac


# ----------------------------------------------------------------------------- phantom
def make_phantom(config: PhantomConfig, rng: np.random.Generator) -> Maps:
    """One random head phantom (see the module docstring).

    Parameters
    ----------
    config : generator settings; ``config.lesions`` None gives a healthy phantom.
    rng : random generator; the phantom is a deterministic function of its state.

    Returns
    -------
    Maps on ``config.shape`` (X, Y, Z) with ``voxel_mm = config.voxel_mm``, float32 T1 [ms], T2 [ms], PD,
    uint8 labels, bool brain mask, ``field_t = config.field_t``, ``source = "phantom"`` (``subject_id`` is
    left empty for the caller).
    """
    if not isinstance(config, PhantomConfig):
        raise TypeError(f"make_phantom: config must be a PhantomConfig; got {type(config).__name__}")
    dx, dy, dz = config.voxel_mm
    n_sub = config.z_supersample or max(1, min(8, round(dz / min(dx, dy))))
    spacing = (dx, dy, dz / n_sub)
    q, _ = _canonical_coords(config, rng, n_sub)
    q = CoordGrid(q)  # its column ranges are found once, for all index boxes below
    frac = _fractions(q, rng, config, spacing)
    del q
    values = draw_tissue_values(rng, PHANTOM_LABELS, config.field_t, config.value_sd, config.value_trunc_sd)
    tex = np.empty((6, *config.shape), np.float32)  # filled in place: no stacking copy (5 ms per head)
    for field in tex:
        smooth_noise_mm(rng, config.shape, config.voxel_mm, config.texture_scale_mm, out=field)
        np.clip(field, -TEXTURE_CLIP, TEXTURE_CLIP, out=field)
    angle = rng.uniform(0.0, 2.0 * np.pi, (32, 3))
    tex_w = np.asarray(config.texture_sd)[None, :, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    pd, a1, a2, labels, mask = mix_fractions(frac, _SLOT_LABELS, _SLOT_BRAIN, values, tex, tex_w, n_sub)
    del frac, tex
    k_t1, k_t2, k_pd = smooth_factors(rng, config.shape, config.voxel_mm, config.global_sd, config.global_scale_mm)
    t1, t2, pd = scaled_from_rates(pd, a1, a2, k_t1, k_t2, k_pd)
    maps = Maps(t1, t2, pd, labels, mask, voxel_mm=np.asarray(config.voxel_mm, np.float32),
                field_t=config.field_t, source="phantom")
    if config.lesions is not None:
        maps = insert_lesions(maps, rng, config.lesions)
    return maps
