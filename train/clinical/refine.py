"""``relaxomap predict --refine``: the network's maps refined so that they explain the images they came from
(:mod:`relaxomap.physics.refine`), with the exam's unknowns fitted, and what the refinement writes.

Protocols come from each NIfTI's BIDS sidecar (:func:`train.clinical.sidecar.protocol_from_sidecar`: kind,
echo train, refocusing and flip angles when given) or, for DICOM / flag-only parameters, from TR / TE / TI
and the sequence kind the input checks found (spin-echo kinds only; echo spacing near 10 ms,
:func:`echo_spacing_ms`; echo train length 3 for a T1w, 16 otherwise). A series
whose sidecar gives ``RefocusingFlipAngle`` keeps it; otherwise the angle is fitted under its prior. A series
whose sidecar ``ImageType`` holds ``NORM`` (vendor intensity normalisation) gets a smooth receive field; the
others get one only if their residual shows it (:class:`physics.refine.RefineConfig`).

Outputs beside the maps (on the reference grid)
- ``network/T1_ms.nii.gz`` ... : the network's maps before refinement;
- ``residual_<contrast>_pct.nii.gz``: 100·(input − re-rendered refined maps) / re-rendered, per series;
- ``B1_fitted.nii.gz`` (the transmit scale used), ``FLAIR_branch.nii.gz`` (+1 past the inversion null, −1
  before it);
- ``refine.json``: the fitted exam parameters with posterior sds and priors, noise, T1-scale sd, timings;
- ``roi.csv`` / ``roi.json``: mean ± sd of T1 / T2 / PD and voxel counts per region — from ``--labels``
  (the evaluation's tissue groups, :data:`train.evaluation.metrics.TISSUE_GROUPS`: 3 WM (normal-appearing),
  2 GM (cortex), 13 deep GM, 1 CSF, 12 and 14–17 lesions) or, without it, an automatic
  3-class split of the refined ln T1 (k-means: ``auto_WM_like``, ``auto_GM_like``, ``auto_CSF_like``: not
  anatomy), plus ``lesion`` from ``--lesion-mask`` (then removed from the other regions).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from relaxomap.physics.protocol import CONTRASTS, Protocol
from relaxomap.train.clinical.sidecar import echo_spacing_ms, protocol_from_sidecar, sidecar_path

__all__ = ["ROI_NAMES", "exam_protocols", "refine_maps", "roi_table", "roi_csv"]

#: The ROI name of each evaluation tissue group in a ``--labels`` image.
ROI_NAMES: dict[str, str] = {"WM": "NAWM", "GM": "cortex", "deep_GM": "deep_GM", "CSF": "CSF", "lesion": "lesion"}


def _protocol_from_params(contrast: str, kind: str, tr: float, te: float, ti: float, source: str) -> Protocol:
    """A spin-echo protocol from TR / TE / TI [ms] and the kind; the echo train length, not in these
    parameters, is taken as 3 for a T1w and 16 otherwise (at least the echo index, at most what fits in TR)."""
    if kind not in ("se", "tse", "ir_tse"):
        raise ValueError(f"--refine: the {contrast} series {source} is a {kind!r} sequence; without a sidecar "
                         "that gives its full protocol (RelaxomapProtocol) only spin-echo series (se, tse, ir_tse) "
                         "can be refined")
    if kind == "se":
        return Protocol("se", tr_ms=tr, te_ms=te, name=contrast)
    esp = echo_spacing_ms(te)
    k = max(1, round(te / esp))
    etl = max(k, 3 if contrast == "t1w" else 16)
    if kind == "ir_tse":
        etl = min(etl, max(k, int((tr - ti) // esp)))
        return Protocol("ir_tse", tr_ms=tr, te_ms=te, ti_ms=ti, etl=etl, esp_ms=esp, refocus_deg=150.0, name=contrast)
    etl = min(etl, max(k, int(tr // esp)))
    return Protocol("tse", tr_ms=tr, te_ms=te, etl=etl, esp_ms=esp, refocus_deg=150.0, name=contrast)


def exam_protocols(vols: Mapping[str, Any], params: Mapping[str, Mapping[str, Any]], kinds: Mapping[str, str]
                   ) -> tuple[list[Protocol], list[bool], list[bool]]:
    """The three series' protocols, whether each refocusing angle is known from a header, and whether each
    series says it was intensity-normalised (sidecar ``ImageType`` holding ``NORM``, as Siemens writes it)."""
    prots, known, normalised = [], [], []
    for c in CONTRASTS:
        vol = vols[c]
        side = sidecar_path(Path(vol.source)) if vol.metadata.get("format") == "nifti" else None
        if side is not None and Path(side).is_file():
            prots.append(protocol_from_sidecar(side, c))
            obj = json.loads(Path(side).read_text())
            known.append("RefocusingFlipAngle" in obj or isinstance(obj.get("RelaxomapProtocol"), dict))
            normalised.append("NORM" in [str(t).upper() for t in (obj.get("ImageType") or [])])
        else:
            tr, te, ti = (params[c][f].value_ms if f in params[c] else 0.0 for f in ("tr_ms", "te_ms", "ti_ms"))
            prots.append(_protocol_from_params(c, kinds[c], tr, te, ti or 0.0, str(vol.source)))
            known.append(False)
            normalised.append(False)
    return prots, known, normalised


def refine_maps(data: Mapping[str, np.ndarray], mask: np.ndarray, maps: Mapping[str, np.ndarray],
                protocols: list[Protocol], known_refocus: list[bool], voxel_mm: Any, config: Any = None,
                b1_map: np.ndarray | None = None, normalised: list[bool] | None = None) -> Any:
    """:func:`physics.refine.refine_exam` on the three inputs (reference grid) with the network's maps as the
    prior; refuses an exam without all three contrasts."""
    from relaxomap.physics.refine import refine_exam

    missing = [c for c in CONTRASTS if c not in data]
    if missing:
        raise ValueError(f"--refine needs all three contrasts (t1w, t2w, flair); missing: {', '.join(missing)}")
    images = np.stack([np.asarray(data[c], np.float64) for c in CONTRASTS])
    return refine_exam(images, protocols, mask, maps, voxel_mm, config, labels=list(CONTRASTS),
                       known_refocus=known_refocus, b1_map=b1_map, normalised=normalised)


def _auto_regions(t1_ms: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Three classes of ln T1 in the mask by k-means (initial centres at the 20/60/97th percentiles)."""
    v = np.log(np.maximum(t1_ms[mask], 1.0))
    c = np.percentile(v, [20, 60, 97])
    for _ in range(30):
        lab = np.argmin(np.abs(v[:, None] - c[None]), axis=1)
        c = np.array([v[lab == k].mean() if np.any(lab == k) else c[k] for k in range(3)])
    out = {}
    for k, name in enumerate(("auto_WM_like", "auto_GM_like", "auto_CSF_like")):
        m = np.zeros(mask.shape, bool)
        m[mask] = lab == k
        out[name] = m
    return out


def roi_table(maps: Mapping[str, np.ndarray], mask: np.ndarray, labels: np.ndarray | None = None,
              lesion: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per region: ``{"region", "n_voxels", "t1_ms_mean", "t1_ms_sd", "t2_ms_mean", ..., "pd_sd"}``
    (module docstring for the regions); regions without voxels are left out."""
    mask = np.asarray(mask, bool)
    if labels is not None:
        from relaxomap.train.evaluation.metrics import TISSUE_GROUPS

        regions = {ROI_NAMES[g]: mask & np.isin(np.rint(labels), v) for g, v in TISSUE_GROUPS.items()
                   if g in ROI_NAMES}
    else:
        regions = _auto_regions(maps["t1_ms"], mask)
    if lesion is not None:
        les = mask & (np.asarray(lesion) > 0)
        regions = {k: r & ~les for k, r in regions.items() if k != "lesion"}
        regions["lesion"] = les
    rows = []
    for name, r in regions.items():
        if not r.any():
            continue
        row: dict[str, Any] = {"region": name, "n_voxels": int(r.sum())}
        for k in ("t1_ms", "t2_ms", "pd"):
            v = np.asarray(maps[k])[r].astype(np.float64)
            row[f"{k}_mean"], row[f"{k}_sd"] = float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
        rows.append(row)
    return rows


def roi_csv(rows: list[dict[str, Any]]) -> str:
    """The ROI table as CSV text (one row per region)."""
    buf = io.StringIO()
    fields = ["region", "n_voxels"] + [f"{k}_{s}" for k in ("t1_ms", "t2_ms", "pd") for s in ("mean", "sd")]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()
