"""The files of a maps directory: what ``relaxomap predict`` writes and ``relaxomap render`` reads.

``T1_ms.nii.gz`` and ``T2_ms.nii.gz`` [ms], ``PD.nii.gz`` (relative, CSF = 1), ``brain_mask.nii.gz`` (1 =
brain) and ``provenance.json`` (inputs, parameters and their sources, checkpoint, warnings), all on the grid
of the reference input.
"""
from __future__ import annotations

__all__ = ["MAP_FILES", "MASK_FILE", "PROVENANCE_FILE"]

#: Output file of each map, in the network's output channel order; the keys name the maps in the dicts of
#: :func:`train.clinical.predict.predict_volume` (physical units: T1 and T2 in ms, PD relative to CSF = 1).
MAP_FILES: dict[str, str] = {"t1_ms": "T1_ms.nii.gz", "t2_ms": "T2_ms.nii.gz", "pd": "PD.nii.gz"}
MASK_FILE = "brain_mask.nii.gz"
PROVENANCE_FILE = "provenance.json"
