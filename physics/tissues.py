"""The one tissue table: T1 [ms], T2 [ms] and PD (relative, CSF = 1) per tissue and field strength.

Labels follow the unified scheme of ``../shared/data`` (BrainWeb conversions) and extend it with deep grey
matter and lesion classes used by the procedural phantoms:

0 background · 1 CSF · 2 GM · 3 WM · 4 fat · 5 muscle · 6 skin · 7 skull · 8 vessels · 9 connective ·
10 dura · 11 bone marrow · 12 MS lesion · 13 deep GM · 14 tumour (enhancing rim) · 15 necrosis ·
16 oedema · 17 infarct

Sources (means; brain tissue values vary ±10–20 % between studies, which is why ``synth`` jitters them):
- 3 T WM/GM/CSF/deep GM: Wansapura et al., JMRI 9:531 (1999); Stanisz et al., MRM 54:507 (2005);
  Lu et al., JMRI 22:13 (2005); the 3 T values used for ``../shared/data`` (colin27 / subject 47).
- 1.5 T WM/GM/CSF: Stanisz 2005; Gelman et al., Radiology 210:759 (1999) (T1 WM ≈ 600–650 ms,
  GM ≈ 950–1100 ms at 1.5 T); CSF T1 ≈ 4 s at both fields (Lu 2005), T2 ≈ 1.5–2 s.
- Fat, muscle, marrow: de Bazelaire et al., Radiology 230:652 (2004) (1.5 / 3 T), Stanisz 2005.
- MS lesions: Vrenken et al., Radiology 240:811 (2006) (T1 of NAWM + 40–80 % in plaques);
  tumour/oedema/necrosis: Blystad et al., PLOS ONE 12:e0177135 (2017); infarct: chronic lesions ≈ CSF-like.
- PD: Neeb et al., NeuroImage 31:1156 (2006) (WM 0.69, GM 0.80 relative to CSF).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Tissue", "TISSUE_LABELS", "TISSUES", "tissue_values", "label_lookup", "LESION_LABELS", "BRAIN_LABELS"]


@dataclass(frozen=True)
class Tissue:
    """Relaxation values of one tissue at one field strength."""

    name: str
    t1_ms: float  # [ms]
    t2_ms: float  # [ms]
    pd: float  # relative to CSF = 1


#: label -> tissue name
TISSUE_LABELS: dict[int, str] = {
    0: "background", 1: "CSF", 2: "GM", 3: "WM", 4: "fat", 5: "muscle", 6: "skin", 7: "skull",
    8: "vessels", 9: "connective", 10: "dura", 11: "marrow", 12: "MS lesion", 13: "deep GM",
    14: "tumour", 15: "necrosis", 16: "oedema", 17: "infarct",
}
#: labels counted as brain (the evaluation mask)
BRAIN_LABELS: tuple[int, ...] = (1, 2, 3, 12, 13, 14, 15, 16, 17)
#: labels that are lesions
LESION_LABELS: tuple[int, ...] = (12, 14, 15, 16, 17)

# (T1 ms, T2 ms, PD) per label and field [T].
_TABLE: dict[float, dict[int, tuple[float, float, float]]] = {
    3.0: {
        0: (0.0, 0.0, 0.0),
        1: (4160.0, 1650.0, 1.00),
        2: (1450.0, 95.0, 0.80),
        3: (850.0, 75.0, 0.70),
        4: (380.0, 110.0, 1.00),
        5: (1420.0, 40.0, 0.80),
        6: (1100.0, 45.0, 0.80),
        7: (0.0, 0.0, 0.0),
        8: (1930.0, 150.0, 0.90),
        9: (900.0, 70.0, 0.77),
        10: (1100.0, 60.0, 0.60),
        11: (550.0, 60.0, 0.80),
        12: (1300.0, 120.0, 0.80),
        13: (1200.0, 70.0, 0.78),
        14: (1550.0, 110.0, 0.85),
        15: (2600.0, 400.0, 0.95),
        16: (1800.0, 180.0, 0.88),
        17: (2800.0, 600.0, 0.95),
    },
    1.5: {
        0: (0.0, 0.0, 0.0),
        1: (4000.0, 1800.0, 1.00),
        2: (1050.0, 100.0, 0.80),
        3: (650.0, 80.0, 0.70),
        4: (290.0, 120.0, 1.00),
        5: (1030.0, 45.0, 0.80),
        6: (850.0, 50.0, 0.80),
        7: (0.0, 0.0, 0.0),
        8: (1440.0, 180.0, 0.90),
        9: (700.0, 75.0, 0.77),
        10: (850.0, 65.0, 0.60),
        11: (450.0, 65.0, 0.80),
        12: (1000.0, 130.0, 0.80),
        13: (900.0, 75.0, 0.78),
        14: (1200.0, 120.0, 0.85),
        15: (2300.0, 450.0, 0.95),
        16: (1400.0, 200.0, 0.88),
        17: (2500.0, 700.0, 0.95),
    },
}
_FIELDS = tuple(sorted(_TABLE))


def _field_key(field_t: float) -> float:
    for f in _FIELDS:
        if abs(field_t - f) < 0.26:
            return f
    raise ValueError(f"tissue table: field_t must be one of {list(_FIELDS)} T (±0.25); got {field_t}")


def tissue_values(name_or_label: str | int, field_t: float = 3.0) -> Tissue:
    """Values of one tissue, by name (case-insensitive) or label, at 1.5 T or 3 T."""
    f = _field_key(field_t)
    if isinstance(name_or_label, str):
        by_name = {v.lower(): k for k, v in TISSUE_LABELS.items()}
        key = name_or_label.lower().replace("_", " ")
        if key not in by_name:
            raise ValueError(f"unknown tissue {name_or_label!r}; known: {', '.join(TISSUE_LABELS.values())}")
        label = by_name[key]
    else:
        label = int(name_or_label)
        if label not in TISSUE_LABELS:
            raise ValueError(f"unknown tissue label {label}; known: {sorted(TISSUE_LABELS)}")
    t1, t2, pd = _TABLE[f][label]
    return Tissue(TISSUE_LABELS[label], t1, t2, pd)


#: TISSUES[field_t][label] -> Tissue
TISSUES: dict[float, dict[int, Tissue]] = {
    f: {lab: tissue_values(lab, f) for lab in TISSUE_LABELS} for f in _FIELDS
}


def label_lookup(field_t: float = 3.0) -> np.ndarray:
    """A ``(n_labels, 3)`` float32 table [T1 ms, T2 ms, PD] indexed by label, for ``table[labels]``."""
    f = _field_key(field_t)
    n = max(TISSUE_LABELS) + 1
    out = np.zeros((n, 3), np.float32)
    for lab, (t1, t2, pd) in _TABLE[f].items():
        out[lab] = (t1, t2, pd)
    return out
