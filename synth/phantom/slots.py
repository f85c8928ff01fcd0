"""The tissue slots of the phantom's fraction stack: which label each slot carries and whether it counts as brain.

Anatomy is painted as volume fractions ``frac[slot]`` (a (n_slots, X, Y, Z·n_sub) float32 stack) and mixed into
maps by :func:`relaxomap.synth.phantom.tissue_mix.mix_fractions`. Slots are named here (``slots.GM`` is the
grey-matter slot, not the grey-matter label); two slots may share a label: the eyes carry label 1 (vitreous
has CSF-like relaxation) but are not brain, so they lie outside the mask.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SLOTS", "SLOT_LABELS", "SLOT_BRAIN", "PHANTOM_LABELS", "CSF", "GM", "WM", "DGM", "DURA", "SKULL",
           "MARROW", "CON", "MUS", "FAT", "SKIN", "VES", "EYE"]

#: Fraction slots: (label, counts as brain). Eyes are label 1 but not brain.
SLOTS: tuple[tuple[int, bool], ...] = (
    (1, True), (2, True), (3, True), (13, True), (10, False), (7, False), (11, False), (9, False),
    (5, False), (4, False), (6, False), (8, False), (1, False),
)
#: slot indices: CSF, grey / white matter, deep grey nuclei, dura, skull, marrow (diploë), connective tissue
#: (galea), muscle, fat, skin, vessels (sagittal sinus), eyes
CSF, GM, WM, DGM, DURA, SKULL, MARROW, CON, MUS, FAT, SKIN, VES, EYE = range(len(SLOTS))
#: (n_slots,) int64 label of each slot
SLOT_LABELS = np.array([lab for lab, _ in SLOTS], np.int64)
#: (n_slots,) bool: the slot counts as brain for the mask
SLOT_BRAIN = np.array([brain for _, brain in SLOTS], np.bool_)
#: labels a healthy phantom contains
PHANTOM_LABELS: tuple[int, ...] = tuple(sorted({lab for lab, _ in SLOTS}))
