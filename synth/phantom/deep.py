"""Deep structures of the phantom's brain: deep grey nuclei (thalamus, caudate, putamen, pallidum → label 13),
the lateral ventricles (frontal horn, body, atrium, occipital and temporal horns) and the third ventricle.

They are painted into the tissue fractions as small shapes evaluated only around themselves
(:func:`relaxomap.synth.phantom.shapes.ramp_of_union`): nuclei take their share of grey and white matter,
ventricles turn parenchyma into CSF. Ventricle size grows with atrophy. Positions [mm] are in the canonical
head frame (:mod:`relaxomap.synth.phantom.frame`).
"""
from __future__ import annotations

import numpy as np

from relaxomap.synth.phantom import slots
from relaxomap.synth.phantom.frame import CoordGrid, index_box
from relaxomap.synth.phantom.shapes import Ellipsoid, capsule_part, ramp, ramp_of_union

__all__ = ["deep_structures"]


def deep_structures(q: CoordGrid, rng: np.random.Generator, atrophy: float,
                     frac: np.ndarray, w: float) -> None:
    """Paint deep grey nuclei and ventricles into the fractions ``frac`` (S, X, Y, Z·n_sub) (in place).

    ``q``: canonical coordinates [mm] of the grid; ``atrophy`` in [0, 1] enlarges the ventricles; ``w``: ramp
    width [mm] (the voxel size).
    """
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
        caudates.append(capsule_part(caudate, np.array([5.5, 4.0, 2.5]) * size(), w))
    alpha = ramp_of_union(sub_q, nuclei + caudates, w)
    sub = frac[:, box[0], box[1], box[2]]
    sub[slots.DGM] += alpha * (sub[slots.GM] + sub[slots.WM])
    sub[slots.GM] *= 1.0 - alpha
    sub[slots.WM] *= 1.0 - alpha
    # Lateral ventricles (frontal horn, body, atrium, occipital and temporal horns) and the third ventricle.
    vscale = (0.6 + 0.9 * atrophy) * rng.uniform(0.85, 1.15)
    lateral = []
    for side in (-1.0, 1.0):
        main = np.array([[8, 36, 2], [9, 22, 5], [10, 5, 5], [18, -14, 4], [26, -28, 1], [20, -50, -5]], float)
        temporal = np.array([[26, -28, 1], [32, -14, -14], [28, 10, -32]], float)
        shift = jit() * (0.5, 1.0, 1.0)
        main = main * (side, 1, 1) + shift
        temporal = temporal * (side, 1, 1) + shift
        lateral.append(capsule_part(main, np.array([5.5, 5.5, 4.5, 5.0, 7.0, 3.0]) * vscale, w))
        lateral.append(capsule_part(temporal, np.array([5.0, 3.5, 2.0]) * vscale, w))
    # third ventricle: a capsule chain in (x, y, z / 3), i.e. three times taller than its radii
    third = capsule_part(np.array([[0, 18, -3.5], [0, 4, -1.5], [0, -8, -1.5]]), np.array([1.5, 2.0, 2.0]) * vscale,
                          w, z_stretch=3.0)
    alpha = np.maximum(ramp_of_union(sub_q, lateral, w) * ramp(np.abs(bx) - 1.2, w),
                       ramp_of_union(sub_q, [third], w))
    moved = alpha * (sub[slots.GM] + sub[slots.WM] + sub[slots.DGM])
    for s in (slots.GM, slots.WM, slots.DGM):
        sub[s] *= 1.0 - alpha
    sub[slots.CSF] += moved
