"""A small exam with known truth for the refinement tests: four tissues in blocks, rendered by the direct
EPG kernel (physics.epg.epg_signal) at a uniform transmit scale, refocusing angles and inversion efficiency."""
from __future__ import annotations

import numpy as np

from relaxomap.physics.protocol import PRESETS
from relaxomap.physics.refine.dictionary import kappa_effective

#: (T1 [ms], T2 [ms], PD) of WM, GM, a lesion and CSF at 3 T (textbook-like values).
TISSUES = np.array([[830.0, 80.0, 0.70], [1330.0, 110.0, 0.80], [1500.0, 160.0, 0.85], [4000.0, 2000.0, 1.0]])
PROTOCOLS = tuple(PRESETS[n] for n in ("t1w_tse_3t", "t2w_tse_3t", "flair_3t"))


def exam_truth(shape: tuple[int, int, int] = (24, 24, 6), seed: int = 0) -> dict[str, np.ndarray]:
    """Maps (X, Y, Z): tissue blocks of 4 × 4 voxels (labels 0..3 drawn at random), each voxel's values
    jittered by ±5 %; all voxels are brain."""
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 4, size=(shape[0] // 4, shape[1] // 4, shape[2]))
    lab = np.repeat(np.repeat(lab, 4, axis=0), 4, axis=1)
    vals = TISSUES[lab] * rng.uniform(0.95, 1.05, size=lab.shape + (3,))
    return {"t1_ms": vals[..., 0], "t2_ms": vals[..., 1], "pd": vals[..., 2], "labels": lab,
            "mask": np.ones(lab.shape, bool)}


def render_exam(truth: dict[str, np.ndarray], *, b1: float = 1.0, refocus_deg: tuple[float, ...] = (150.0,) * 3,
                kappa: float = 1.0, gains: tuple[float, ...] = (1000.0, 700.0, 400.0), protocols=PROTOCOLS
                ) -> np.ndarray:
    """(3, X, Y, Z) noise-free magnitudes, inversion scaled by B1 (κ_eff = κ·(−cos π b))."""
    from relaxomap.physics.epg import epg_signal

    out = []
    for p, a, g in zip(protocols, refocus_deg, gains):
        p = p.with_(refocus_deg=a)
        if p.kind == "ir_tse":
            p = p.with_(inversion_efficiency=float(kappa_effective(kappa, np.array([b1]), "scaled")[0]))
        out.append(g * epg_signal(truth["t1_ms"], truth["t2_ms"], truth["pd"], p, b1=b1)[0])
    return np.stack(out)
