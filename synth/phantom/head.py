"""The phantom's head around the brain: subarachnoid CSF, dura, skull (tables and diploë), galea, temporalis,
scalp fat and skin, the superior sagittal sinus, and below the skull base a face / neck with muscle, fat,
orbits, eyes and air sinuses.

Layers are nested surfaces offset from the cranial cavity's surface (:func:`layers`), their thicknesses smooth
random fields (:mod:`relaxomap.synth.phantom.thickness`); the skull thins and the temporalis fills the temporal
fossa, and the scalp layers give way to face and neck tissue below the skull base (:func:`scalp_fields`).
Partial volume: a tissue bounded by signed distance ``d`` [mm] fills ``clip(0.5 + d / w, 0, 1)`` of a voxel
(``w`` the voxel size), fractions nested so that they sum to ≤ 1 (the rest is air). Distances are in mm,
arrays 3-D float32 ``(X, Y, Z)``; the per-voxel Numba kernels are serial (generation runs in several worker
processes).
"""
from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from relaxomap.synth.fields import smooth_noise
from relaxomap.synth.phantom import slots
from relaxomap.synth.phantom.frame import CoordGrid, index_box
from relaxomap.synth.phantom.shapes import (
    Ellipsoid,
    capsule_part,
    ramp,
    ramp_of_union,
    smoothstep,
    step,
    step32,
)
from relaxomap.synth.phantom.thickness import positive_field

__all__ = ["cranial_layers", "face_and_neck", "sagittal_sinus", "layers", "scalp_fields", "face_shell"]


def cranial_layers(q: CoordGrid, rng: np.random.Generator, brain: dict[str, Any], atrophy: float,
                   spacing: tuple[float, float, float]) -> tuple[np.ndarray, dict[str, Any]]:
    """Tissue fractions of the brain and the layers around the cranial cavity, and the cavity's geometry.

    The intracranial cavity and spinal canal are the brain and cord (``brain``:
    :func:`relaxomap.synth.phantom.brain.brain_depths`) plus the subarachnoid space (wider with ``atrophy``);
    around it dura, skull (inner table, diploë, outer table), galea, temporalis, fat and skin.

    Returns
    -------
    frac : (S, X, Y, Z·n_sub) float32 fractions of the :mod:`~relaxomap.synth.phantom.slots` (deep grey, vessel
        and eye slots 0).
    cavity : dict with ``cavity`` (depth below the cavity surface [mm]), ``t_dura`` [mm], ``t_skull`` [mm]
        and ``lower`` (the weight of face / neck tissue against the scalp layers), for :func:`face_and_neck`
        and :func:`sagittal_sinus`.
    """
    shape = q[0].shape
    w = float(max(spacing))
    sas = positive_field(rng, shape, spacing, 40.0, 1.0 + 2.2 * atrophy, 0.35)
    cavity = brain["hull"] + sas
    t_dura = 1.0 * rng.uniform(0.8, 1.2)
    t_skull = positive_field(rng, shape, spacing, 45.0, 6.5 * rng.uniform(0.8, 1.2), 0.25)
    muscle_mm = 9.0 * rng.uniform(0.5, 1.5)
    t_fat = positive_field(rng, shape, spacing, 35.0, 4.5 * rng.uniform(0.6, 1.5), 0.35)
    t_skin = 2.0 * rng.uniform(0.8, 1.2)
    # thinner skull and the temporalis over the temporal fossa; `lower`: weight of face / neck tissue against
    # the scalp layers, below z_top (lower posteriorly: the neck under the occiput) (scalp_fields)
    t_muscle, lower = scalp_fields(q, float(brain["a"]), muscle_mm, t_skull)
    frac = np.empty((len(slots.SLOTS),) + shape, np.float32)
    frac[slots.DGM] = 0.0
    frac[slots.VES] = 0.0
    frac[slots.EYE] = 0.0
    layers(cavity, brain["envelope"], brain["rho"], brain["tgm"], t_skull, t_muscle, t_fat, lower, t_dura, t_skin, w,
           (slots.CSF, slots.GM, slots.WM, slots.DURA, slots.SKULL, slots.MARROW, slots.CON, slots.MUS, slots.FAT,
            slots.SKIN), frac)
    return frac, {"cavity": cavity, "t_dura": t_dura, "t_skull": t_skull, "lower": lower}


def _face(q: CoordGrid, rng: np.random.Generator, brain: dict, sub: np.ndarray,
          weight: np.ndarray, w: float, spacing: tuple[float, float, float]) -> None:
    """Add face / neck tissue to the fractions ``sub`` of a box (in place).

    ``q`` are the box's canonical coordinates, ``weight`` the share of each voxel left to the face (outside
    the skull, times the lower-head weight).
    """
    bx, by, bz = q
    skin = 2.0 * rng.uniform(0.8, 1.2)
    fat = positive_field(rng, bx.shape, spacing, 30.0, 5.0 * rng.uniform(0.6, 1.4), 0.35)
    # face / neck cross-section (narrower and moving back down the neck), skin and fat layers inside it
    deep = face_shell(q, fat, weight, float(brain["a"]), float(brain["b"]), skin, w, sub[slots.SKIN], sub[slots.FAT])
    # Small shapes (sinuses, eyes, orbits) are evaluated only around themselves (shapes.ramp_of_union).
    air = []
    for centre, axes in (((24, 55, -68), (12, 16, 16)), ((-24, 55, -68), (12, 16, 16)), ((0, 60, -66), (7, 25, 13)),
                         ((0, 30, -52), (10, 10, 8))):
        c = np.array(centre, float) + rng.uniform(-2, 2, 3)
        ax = np.array(axes) * rng.uniform(0.8, 1.2)
        air.append(Ellipsoid(c, ax).part())
    air.append(capsule_part(np.array([[0, 40, -80], [0, 12, -95], [0, 10, -200]], float),  # airway
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
    sub[slots.EYE] += eye
    fat = rest * fatty
    sub[slots.FAT] += fat
    rest -= fat
    sub[slots.MUS] += rest


def face_and_neck(q: CoordGrid, rng: np.random.Generator, brain: dict[str, Any], cavity: dict[str, Any],
                  frac: np.ndarray, spacing: tuple[float, float, float]) -> None:
    """Add the face / neck below the skull base to the fractions ``frac`` (in place): the share of each voxel
    outside the skull and weighted to the lower head (``cavity``: :func:`cranial_layers`)."""
    w = float(max(spacing))
    box = index_box(q, (-200.0, -200.0, -400.0), (200.0, 200.0, -36.0))
    if box is not None:
        outside = 1.0 - ramp(cavity["cavity"][box] + cavity["t_dura"] + cavity["t_skull"][box], w)
        _face(q.sub(box), rng, brain, frac[:, box[0], box[1], box[2]], outside * cavity["lower"][box], w, spacing)


def sagittal_sinus(q: CoordGrid, rng: np.random.Generator, cavity: np.ndarray, frac: np.ndarray, w: float) -> None:
    """The superior sagittal sinus in the falx attachment at the vertex: a tube of radius ~3.5 mm along the
    midline just outside the cavity surface (``cavity``: its depth [mm]), turning the tissue it holds into vessel
    (``frac`` in place; ramp width ``w`` [mm])."""
    qx, qy, _ = q
    box = index_box(q, (-15.0, -120.0, -20.0), (15.0, 120.0, 150.0))
    if box is not None:
        r_s = 3.5 * rng.uniform(0.8, 1.2)
        d = r_s - np.sqrt(qx[box] ** 2 + (cavity[box] + 1.0) ** 2)
        alpha = ramp(d, w) * smoothstep(qy[box], -95.0, -70.0) * (1.0 - smoothstep(qy[box], 70.0, 90.0))
        sub = frac[:, box[0], box[1], box[2]]
        total = sub.sum(axis=0)
        sub *= 1.0 - alpha
        sub[slots.VES] += alpha * total


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _layers_kernel(cavity, envelope, rho, tgm, t_skull, t_muscle, t_fat, lower, t_dura, t_skin, w, slots,
                   frac):  # pragma: no cover
    # Nested surfaces offset from the cavity surface: each layer is the difference of two "inside" ramps.
    s_csf, s_gm, s_wm, s_dura, s_skull, s_marrow, s_con, s_mus, s_fat, s_skin = (
        slots[0], slots[1], slots[2], slots[3], slots[4], slots[5], slots[6], slots[7], slots[8], slots[9])
    n0, n1, n2 = cavity.shape
    inv = 1.0 / w
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                c = cavity[i, j, k]
                inside = min(max(0.5 + c * inv, 0.0), 1.0)
                paren = min(max(0.5 + rho[i, j, k] * inv, 0.0), 1.0)
                white = min(max(0.5 + (rho[i, j, k] - tgm[i, j, k]) * inv, 0.0), 1.0)
                frac[s_gm, i, j, k] = inside * (paren - white)
                frac[s_wm, i, j, k] = inside * white
                frac[s_csf, i, j, k] = inside * (1.0 - paren)
                e_dura = c + t_dura
                e_skull = e_dura + t_skull[i, j, k]
                in_dura = min(max(0.5 + e_dura * inv, 0.0), 1.0)
                in_skull = min(max(0.5 + e_skull * inv, 0.0), 1.0)
                frac[s_dura, i, j, k] = in_dura - inside
                m0 = min(max(0.5 + (e_dura + 1.6) * inv, 0.0), 1.0)  # inner table 1.6 mm
                m1 = min(max(0.5 + (e_skull - 2.0) * inv, 0.0), 1.0)  # outer table 2 mm
                marrow = max(m1 - m0, 0.0)
                frac[s_marrow, i, j, k] = marrow
                frac[s_skull, i, j, k] = in_skull - in_dura - marrow
                scalp = 1.0 - lower[i, j, k]
                e1 = e_skull + 0.8  # galea
                e2 = max(e1 + t_muscle[i, j, k], envelope[i, j, k] + 9.0)  # muscle fills the temporal fossa
                e3 = e2 + t_fat[i, j, k]
                e4 = e3 + t_skin
                i1 = min(max(0.5 + e1 * inv, 0.0), 1.0)
                i2 = min(max(0.5 + e2 * inv, 0.0), 1.0)
                i3 = min(max(0.5 + e3 * inv, 0.0), 1.0)
                i4 = min(max(0.5 + e4 * inv, 0.0), 1.0)
                frac[s_con, i, j, k] = scalp * (i1 - in_skull)
                frac[s_mus, i, j, k] = scalp * (i2 - i1)
                frac[s_fat, i, j, k] = scalp * (i3 - i2)
                frac[s_skin, i, j, k] = scalp * (i4 - i3)


def layers(cavity: np.ndarray, envelope: np.ndarray, rho: np.ndarray, tgm: np.ndarray, t_skull: np.ndarray,
           t_muscle: np.ndarray, t_fat: np.ndarray, lower: np.ndarray, t_dura: float, t_skin: float, w: float,
           slots: tuple[int, ...], frac: np.ndarray) -> None:
    """Fractions of the nested layers around the cranial cavity, written into ``frac`` (S, X, Y, Z) in place.

    Inside the cavity (depth ``cavity`` [mm]): CSF, grey matter (parenchymal depth ``rho`` within ``tgm`` mm)
    and white matter. Outwards: dura (``t_dura`` mm), skull (``t_skull``; 1.6 mm inner and 2 mm outer table
    around marrow), galea (0.8 mm), muscle (``t_muscle``, at least to ``envelope`` + 9 mm), fat (``t_fat``)
    and skin (``t_skin``), the scalp layers weighted by ``1 − lower`` (face and neck take the rest).
    ``slots`` gives the frac slot of (CSF, GM, WM, dura, skull, marrow, connective, muscle, fat, skin).
    """
    _layers_kernel(cavity, envelope, rho, tgm, t_skull, t_muscle, t_fat, lower, np.float32(t_dura),
                   np.float32(t_skin), np.float32(w), np.asarray(slots, np.int64), frac)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _scalp_kernel(qx, qy, qz, inv_a, muscle_mm, t_skull, t_muscle, lower):  # pragma: no cover - numba
    f1 = np.float32(1.0)
    i_side, i_low, i_high = np.float32(1.0 / 0.35), np.float32(1.0 / 20.0), np.float32(1.0 / 20.0)
    i_neck, i_lower = np.float32(1.0 / 35.0), np.float32(1.0 / 12.0)
    for n in range(qx.size):
        z = qz[n]
        lateral = (step32(abs(qx[n]) * inv_a, np.float32(0.6), i_side) * step32(z, np.float32(-45.0), i_low)
                   * (f1 - step32(z, np.float32(15.0), i_high)))
        t_skull[n] *= f1 - np.float32(0.4) * lateral
        t_muscle[n] = muscle_mm * lateral
        z_top = np.float32(-36.0) - np.float32(36.0) * step32(-qy[n], np.float32(15.0), i_neck)
        lower[n] = step32(z_top - z, np.float32(0.0), i_lower)


def scalp_fields(q: tuple[np.ndarray, ...], a_mm: float, muscle_mm: float,
                 t_skull: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The temporal-region and neck weights of the head's outer layers, in one pass.

    ``lateral = S(|x| / a; 0.6, 0.95) · S(z; -45, -25) · (1 - S(z; 15, 35))`` (the temporal fossa, S the cubic
    step of :func:`relaxomap.synth.phantom.shapes.smoothstep`) thins the skull in place
    (``t_skull *= 1 - 0.4 · lateral``) and gives the temporalis thickness ``muscle_mm · lateral``;
    ``lower = S(z_top - z; 0, 12)`` with ``z_top = -36 - 36 · S(-y; 15, 50)`` weights face / neck tissue against
    the scalp layers.

    Parameters
    ----------
    q : canonical coordinates (x, y, z) [mm], float32 C-contiguous arrays of one shape.
    a_mm : the brain's half-width [mm]; muscle_mm : temporalis thickness [mm] at full weight.
    t_skull : skull thickness [mm] (q's shape, float32, C-contiguous), thinned in place.

    Returns
    -------
    (t_muscle [mm], lower) float32 arrays of q's shape.
    """
    qx, qy, qz = (np.ascontiguousarray(c, np.float32) for c in q)
    if t_skull.shape != qx.shape or t_skull.dtype != np.float32 or not t_skull.flags.c_contiguous:
        raise ValueError(f"scalp_fields: t_skull must be C-contiguous float32 of shape {qx.shape}")
    t_muscle = np.empty(qx.shape, np.float32)
    lower = np.empty(qx.shape, np.float32)
    _scalp_kernel(qx.reshape(-1), qy.reshape(-1), qz.reshape(-1), np.float32(1.0 / np.float32(a_mm)),
                  np.float32(muscle_mm), t_skull.reshape(-1), t_muscle.reshape(-1), lower.reshape(-1))
    return t_muscle, lower


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _face_kernel(qx, qy, qz, fat, weight, a_brain, b_brain, skin, w, out_skin, out_fat, deep):  # pragma: no cover
    inv = 1.0 / w
    n0, n1, n2 = qx.shape
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                x, z = qx[i, j, k], qz[i, j, k]
                neck = step(-z, 85.0, 115.0)
                a_f = (a_brain + 14.0) * (0.95 - 0.3 * neck)
                b_f = (b_brain + 14.0) * (1.0 - 0.35 * neck)
                y = qy[i, j, k] - (5.0 - 20.0 * neck)
                r = max(math.sqrt((x / a_f) ** 2 + (y / b_f) ** 2), 1e-3)
                d = math.sqrt(x * x + y * y) * (1.0 - r) / r  # depth inside the elliptic cross-section
                f0 = min(max(0.5 + d * inv, 0.0), 1.0)
                f1 = min(max(0.5 + (d - skin) * inv, 0.0), 1.0)
                f2 = min(max(0.5 + (d - skin - fat[i, j, k]) * inv, 0.0), 1.0)
                wt = weight[i, j, k]
                out_skin[i, j, k] += wt * (f0 - f1)
                out_fat[i, j, k] += wt * (f1 - f2)
                deep[i, j, k] = wt * f2


def face_shell(q: tuple[np.ndarray, ...], fat_mm: np.ndarray, weight: np.ndarray, a_brain_mm: float,
               b_brain_mm: float, skin_mm: float, w: float, skin_frac: np.ndarray,
               fat_frac: np.ndarray) -> np.ndarray:
    """Skin and fat of the face / neck added to ``skin_frac`` and ``fat_frac`` (in place); returns the rest.

    The face / neck is the elliptic cylinder of semi-axes ``(a_brain + 14) (0.95 − 0.3 n)`` and
    ``(b_brain + 14) (1 − 0.35 n)`` [mm] centred at y = 5 − 20 n [mm], n the neck weight (smoothstep from
    z = −85 to −115 mm): skin ``skin_mm`` thick, then fat ``fat_mm`` (X, Y, Z), each weighted by ``weight``
    (the share of the voxel left to the face). Returns ``weight ×`` the fraction deeper than the fat
    (float32 (X, Y, Z)), to be shared among muscle, fat islands, eyes and air.
    """
    deep = np.empty(q[0].shape, np.float32)
    _face_kernel(*q, fat_mm, weight, np.float32(a_brain_mm), np.float32(b_brain_mm), np.float32(skin_mm),
                 np.float32(w), skin_frac, fat_frac, deep)
    return deep
