"""``relaxomap bench refine``: the refinement of a clinical-size exam beside the NLLS voxel fit, timed on the
same exam in the same run (these machines are noisy: the ratio means more than the seconds).

The exam: a (X, Y, Z) grid (default 256 × 256 × 30, the issue's size) with an ellipsoidal brain (about 40 % of
the voxels) of WM / GM / CSF / lesion values in 4 × 4-voxel blocks, each voxel jittered ± 5 %; the 3 T T1w
TSE, T2w TSE and FLAIR presets rendered by the EPG kernel, one gain per series, Rician noise at SNR 30. The
prior (the network's place) is the truth with T1 × U(0.8, 1.25) and T2 × U(0.9, 1.1) per voxel.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from relaxomap.physics.protocol import preset

__all__ = ["bench_exam", "bench_refine"]

_TISSUES = np.array([[830.0, 80.0, 0.70], [1330.0, 110.0, 0.80], [4000.0, 2000.0, 1.0], [1500.0, 160.0, 0.85]])


def bench_exam(shape: tuple[int, int, int] = (256, 256, 30), seed: int = 0, snr: float = 30.0) -> dict[str, Any]:
    """The benchmark exam (module docstring): ``images`` (3, X, Y, Z), ``protocols``, ``mask``, ``truth`` and
    ``prior`` maps, ``voxel_mm``."""
    from relaxomap.physics.epg import epg_signal

    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    mask = (x ** 2 + y ** 2) / 0.8 ** 2 + z ** 2 / 1.2 ** 2 < 1.0
    blocks = rng.choice(4, p=[0.4, 0.4, 0.15, 0.05], size=(-(-shape[0] // 4), -(-shape[1] // 4), shape[2]))
    lab = np.repeat(np.repeat(blocks, 4, axis=0), 4, axis=1)[:shape[0], :shape[1]]
    vals = _TISSUES[lab] * rng.uniform(0.95, 1.05, lab.shape + (3,)) * mask[..., None]
    truth = {"t1_ms": vals[..., 0], "t2_ms": vals[..., 1], "pd": vals[..., 2]}
    protocols = [preset("t1w_tse_3t"), preset("t2w_tse_3t"), preset("flair_3t")]
    images = []
    for p, gain in zip(protocols, (1000.0, 700.0, 400.0)):
        clean = gain * epg_signal(truth["t1_ms"].astype(np.float32), truth["t2_ms"].astype(np.float32),
                                  truth["pd"].astype(np.float32), p)[0]
        sigma = clean[mask].mean() / snr
        images.append(np.hypot(clean + rng.normal(0, sigma, shape), rng.normal(0, sigma, shape)))
    prior = {"t1_ms": truth["t1_ms"] * rng.uniform(0.8, 1.25, shape),
             "t2_ms": truth["t2_ms"] * rng.uniform(0.9, 1.1, shape), "pd": truth["pd"]}
    return {"images": np.stack(images), "protocols": protocols, "mask": mask, "truth": truth, "prior": prior,
            "voxel_mm": (0.9, 0.9, 5.0)}


def bench_refine(shape: tuple[int, int, int] = (256, 256, 30), seed: int = 0, nlls: bool = True) -> dict[str, Any]:
    """Time :func:`physics.refine.refine_exam` (after a warm-up on a small exam that compiles the kernels)
    and, on the same exam, the NLLS fit slice by slice (:func:`physics.voxel_fit.fit_slice`); returns seconds,
    their ratio, the refinement's stage timings and its median |T1 error| [%] against the truth."""
    from relaxomap.physics.refine import refine_exam

    small = bench_exam((32, 32, 4), seed)
    refine_exam(small["images"], small["protocols"], small["mask"], small["prior"], small["voxel_mm"])
    exam = bench_exam(shape, seed)
    t0 = time.perf_counter()
    res = refine_exam(exam["images"], exam["protocols"], exam["mask"], exam["prior"], exam["voxel_mm"])
    refine_s = time.perf_counter() - t0
    m = exam["mask"]
    out: dict[str, Any] = {"shape": list(shape), "n_brain_voxels": int(m.sum()), "refine_s": refine_s,
                           "refine_stages_s": res.exam["timings_s"],
                           "refine_median_abs_t1_error_pct": float(100 * np.median(
                               np.abs(res.t1_ms[m] / exam["truth"]["t1_ms"][m] - 1))),
                           "prior_median_abs_t1_error_pct": float(100 * np.median(
                               np.abs(exam["prior"]["t1_ms"][m] / exam["truth"]["t1_ms"][m] - 1)))}
    if nlls:
        from relaxomap.physics.voxel_fit import fit_slice

        t0 = time.perf_counter()
        for k in range(shape[2]):
            if m[:, :, k].sum() > 100:
                try:
                    fit_slice(exam["images"][:, :, :, k], exam["protocols"], m[:, :, k], field_t=3.0)
                except ValueError:
                    pass
        out["nlls_s"] = time.perf_counter() - t0
        out["refine_speed_ratio_to_nlls"] = out["nlls_s"] / refine_s
    return out
