"""The tissue slots: labels, brain flags and the labels a healthy phantom holds, consistent with the tissue table."""
from __future__ import annotations

from relaxomap.physics.tissues import BRAIN_LABELS, LESION_LABELS
from relaxomap.synth.phantom import slots


def test_slot_tables_agree() -> None:
    n = len(slots.SLOTS)
    assert slots.SLOT_LABELS.shape == (n,) and slots.SLOT_BRAIN.shape == (n,)
    assert list(range(n)) == [slots.CSF, slots.GM, slots.WM, slots.DGM, slots.DURA, slots.SKULL, slots.MARROW,
                              slots.CON, slots.MUS, slots.FAT, slots.SKIN, slots.VES, slots.EYE]
    # brain slots carry brain labels; the eyes share CSF's label but are not brain
    assert set(slots.SLOT_LABELS[slots.SLOT_BRAIN].tolist()) <= set(BRAIN_LABELS)
    assert slots.SLOT_LABELS[slots.EYE] == slots.SLOT_LABELS[slots.CSF] == 1 and not slots.SLOT_BRAIN[slots.EYE]
    assert slots.PHANTOM_LABELS == tuple(sorted(set(slots.SLOT_LABELS.tolist())))
    assert not set(slots.PHANTOM_LABELS) & set(LESION_LABELS)
