"""The mismatch suite (issue 14, item 5): how each estimator's per-tissue bias moves when the exam's physics
differs from what prediction assumes.

Held-out subjects — procedural phantom slabs through the ventricles with MS plaques and a tumour, drawn from a
seed stream no store uses (``source="phantom"``), or slabs of the augmented BrainWeb subject 47, never in
training (``source="subject47"``: its ``n_slices`` central axial slices), their tissue values moved off the
tables (:mod:`relaxomap.synth.value_shift`, on by default) — are rendered with the clinical presets by :func:`relaxomap.synth.mismatch.render_mismatched`
(an EPG implementation independent of the forward model prediction uses) under each case: every factor off
(``none``), each factor of :data:`relaxomap.synth.mismatch.FACTORS` alone, and all together (``all``). Rician
noise at ``snr`` (the synth SNR definition: mean brain signal / σ) and an arbitrary gain per series follow.
Each estimator then predicts the maps from the noisy images and the sidecars' (nominal) protocols:

- ``network``: the checkpoint (default: the shipped model) through :func:`train.clinical.predict.predict_volume`;
- ``nlls``: the voxel-wise least-squares fit, slice by slice (:func:`physics.voxel_fit.fit_slice`);
- ``oracle-prior``: each voxel's tissue-table value given its true label (what recognising tissues scores);
- ``refined``: the network's maps refined with the exam's physics (:func:`physics.refine.refine_exam`, default
  :class:`~physics.refine.RefineConfig`; refocusing angles not in the sidecars, so fitted) — what
  ``relaxomap predict --refine`` does.

Scored per tissue group (WM, GM, deep GM, CSF, lesion) and map with the evaluation's definitions
(:mod:`train.evaluation.metrics`): the signed bias ``100 · mean((pred − true) / true)`` [%] over the group's
voxels of one subject, then mean ± sd over subjects; PD on the CSF = 1 scale (anchored on the subject's core
CSF), as PD is only defined relative to CSF. The group ``parenchyma_mpe`` holds instead the mean percentage
error ``100 · mean(|pred − true| / true)`` over WM, GM and deep GM (the issue's parenchyma target).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from relaxomap.physics.checks import check_finite_range, check_int_range
from relaxomap.physics.protocol import CONTRASTS, PRESETS

__all__ = ["CASES", "ESTIMATORS", "SOURCES", "TISSUE_GROUPS", "MismatchStudyConfig", "tissue_bias", "run_mismatch_study",
           "format_mismatch_table"]

#: Study cases: nothing mismatched, each factor alone, everything together.
CASES: tuple[str, ...] = ("none", "refocus_deg", "b1", "inversion_efficiency", "slice_profile", "receive",
                          "misregistration_mm", "all")
ESTIMATORS: tuple[str, ...] = ("network", "nlls", "oracle-prior", "refined")
#: Tissue groups scored (the evaluation's groups, :data:`train.evaluation.metrics.TISSUE_GROUPS`, but "other").
TISSUE_GROUPS: tuple[str, ...] = ("WM", "GM", "deep_GM", "CSF", "lesion", "parenchyma_mpe")
_MAPS = ("t1_ms", "t2_ms", "pd")
#: Subject sources (module docstring).
SOURCES: tuple[str, ...] = ("phantom", "subject47")
_ENTROPY = 0x313A_7C4E  # the study's own seed stream: no store or demo uses it


@dataclass(frozen=True)
class MismatchStudyConfig:
    """Size and settings of the study (defaults: 3 subjects of 16 slices, SNR 30, 3 T presets)."""

    n_subjects: int = 3
    n_slices: int = 16
    snr: float = 30.0
    field_t: float = 3.0
    value_shift: bool = True
    nlls: bool = True
    refine: bool = True
    source: str = "phantom"
    seed: int = 0

    def __post_init__(self) -> None:
        check_int_range("MismatchStudyConfig", "n_subjects", self.n_subjects, 1, 1000)
        check_int_range("MismatchStudyConfig", "n_slices", self.n_slices, 4, 256)
        check_finite_range("MismatchStudyConfig", "snr", self.snr, 1.0, 1e4)
        check_int_range("MismatchStudyConfig", "seed", self.seed, 0, 2**31)
        if self.source not in SOURCES:
            raise ValueError(f"MismatchStudyConfig.source must be one of {list(SOURCES)}; got {self.source!r}")

    def protocols(self) -> tuple[Any, ...]:
        suffix = "3t" if self.field_t > 2 else "1.5t"
        return tuple(PRESETS[f"{c}_{suffix}"] for c in ("t1w_tse", "t2w_tse", "flair"))


def _subject(config: MismatchStudyConfig, index: int) -> Any:
    from relaxomap.synth.generate import derive_seed
    from relaxomap.synth.sources import draw_subject
    from relaxomap.synth.value_shift import ValueShiftConfig
    from relaxomap.train.clinical.demo import demo_source

    if config.source == "subject47":
        from relaxomap.synth.sources import SourceConfig
        from relaxomap.train.experiment.config import ExperimentConfig, resolve_data_path

        path = resolve_data_path(ExperimentConfig().subject47)
        if path is None:
            raise FileNotFoundError(f"mismatch study: {ExperimentConfig().subject47} (BrainWeb subject 47) not found")
        source = SourceConfig(kind="real", paths=(str(path),), field_t=config.field_t)
    else:
        source = demo_source(config.n_slices, config.field_t)
    if config.value_shift:
        source = dataclasses.replace(source, value_shift=ValueShiftConfig())
    maps = draw_subject(source, derive_seed(_ENTROPY, config.seed, index))
    if config.source == "subject47":  # the central axial slab of n_slices
        z = np.flatnonzero(maps.mask.any(axis=(0, 1)))
        lo = int(z[len(z) // 2]) - config.n_slices // 2
        maps = dataclasses.replace(maps, **{k: getattr(maps, k)[:, :, lo:lo + config.n_slices]
                                            for k in ("t1_ms", "t2_ms", "pd", "labels", "mask")})
    return maps


def _noisy(clean: np.ndarray, mask: np.ndarray, snr: float, rng: np.random.Generator) -> np.ndarray:
    """(C, X, Y, Z) Rician magnitudes (:func:`train.clinical.demo.rician`: σ_c = mean of series c over the
    brain / snr), times an arbitrary gain per series."""
    from relaxomap.train.clinical.demo import rician

    out = np.empty_like(clean)
    for c in range(len(clean)):
        out[c] = rician(clean[c], mask, snr, rng) * np.float32(math.exp(rng.uniform(-1.0, 1.0)) * 1000.0)
    return out


def _nlls(images: np.ndarray, protocols: tuple[Any, ...], mask: np.ndarray, field_t: float) -> dict[str, np.ndarray]:
    from relaxomap.physics.voxel_fit import fit_slice
    from relaxomap.synth.normalize import normalize_intensity
    from relaxomap.synth.orientation import axial_to_image, image_to_axial

    out = np.zeros((3, *images.shape[1:]), np.float32)
    for k in range(images.shape[3]):
        if not mask[:, :, k].any():
            continue
        x = np.stack([normalize_intensity(axial_to_image(images[c, :, :, k]))[0] for c in range(len(images))])
        try:
            res = fit_slice(x, protocols, axial_to_image(mask[:, :, k]), field_t=field_t)
        except ValueError:  # a slice it cannot calibrate stays 0 and is not scored
            continue
        out[:, :, :, k] = image_to_axial(res.maps)
    return dict(zip(_MAPS, out))


def _oracle(maps: Any) -> dict[str, np.ndarray]:
    """The evaluation's oracle prior (:func:`train.evaluation.baselines.oracle_prior_predict`) on the volume,
    inside the brain mask."""
    from relaxomap.train.evaluation.baselines import oracle_prior_predict

    maps3, _ = oracle_prior_predict(maps.labels[None], np.array([maps.field_t]))  # (1, 3, X, Y, Z)
    return {k: maps3[0, i] * maps.mask for i, k in enumerate(_MAPS)}


def tissue_bias(pred: Mapping[str, np.ndarray], maps: Any) -> dict[str, dict[str, float]]:
    """Signed bias [%] per tissue group and map of one subject, by the evaluation's definitions
    (:func:`train.evaluation.metrics.signed_bias_pct` over :func:`~train.evaluation.metrics.tissue_regions`;
    PD on the CSF = 1 scale of :func:`~train.evaluation.metrics.csf_anchor`); NaN where a group is absent or
    the estimate is 0 there (not fitted)."""
    from relaxomap.train.evaluation.metrics import csf_anchor, signed_bias_pct, tissue_regions

    regions = tissue_regions(maps.mask, maps.labels)
    csf = regions["CSF"] & (pred["pd"] > 0)
    scale = csf_anchor(pred["pd"][csf], maps.pd[csf])["scale"]
    fitted = pred["t1_ms"] > 0
    out: dict[str, dict[str, float]] = {}
    truths = (("t1_ms", maps.t1_ms), ("t2_ms", maps.t2_ms), ("pd", maps.pd))
    for group in TISSUE_GROUPS[:-1]:
        sel = regions[group] & fitted
        out[group] = {key: signed_bias_pct(pred[key] / (scale if key == "pd" else 1.0), truth, sel)
                      for key, truth in truths}
    par = (regions["WM"] | regions["GM"] | regions["deep_GM"]) & fitted
    out["parenchyma_mpe"] = {key: float(100.0 * np.mean(np.abs(pred[key][par] / (scale if key == "pd" else 1.0)
                                                               / truth[par] - 1.0))) if par.any() else math.nan
                             for key, truth in truths}
    return out


def _estimates(images: np.ndarray, config: MismatchStudyConfig, maps: Any, model: Any, device: Any
               ) -> dict[str, dict[str, np.ndarray]]:
    from relaxomap.train.clinical.predict import predict_volume

    protocols = config.protocols()
    params = {c: (p.tr_ms, p.te_ms, p.ti_ms) for c, p in zip(CONTRASTS, protocols)}
    out = {"network": predict_volume(dict(zip(CONTRASTS, images)), params, model, maps.mask, device=device),
           "oracle-prior": _oracle(maps)}
    if config.nlls:
        out["nlls"] = _nlls(images, protocols, maps.mask, maps.field_t)
    if config.refine:
        from relaxomap.physics.refine import refine_exam

        res = refine_exam(images, protocols, maps.mask, out["network"], maps.voxel_mm, labels=list(CONTRASTS))
        out["refined"] = {"t1_ms": res.t1_ms, "t2_ms": res.t2_ms, "pd": res.pd}
    return out


def _case_config(case: str) -> Any:
    from relaxomap.synth.mismatch import MismatchConfig

    return MismatchConfig.none() if case == "none" else MismatchConfig() if case == "all" else \
        MismatchConfig.only(case)


def run_mismatch_study(config: MismatchStudyConfig, *, checkpoint: Any = None, device: str = "auto",
                       cases: tuple[str, ...] = CASES, echo: Callable[[str], None] = lambda s: None
                       ) -> dict[str, Any]:
    """Run every case on every subject; returns ``{"config", "cases": {case: {estimator: {tissue: {map:
    {"mean", "sd", "n"}}}}}, "per_subject": ...}`` (signed bias in %)."""
    from relaxomap.synth.generate import derive_seed
    from relaxomap.synth.mismatch import render_mismatched
    from relaxomap.train.clinical.predict import load_prediction_model
    from relaxomap.train.device import resolve_device

    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise ValueError(f"mismatch study: unknown cases {unknown}; known: {list(CASES)}")
    dev = resolve_device(device)
    model, _, _, _ = load_prediction_model(checkpoint, dev)
    per_subject: dict[str, dict[str, list[dict[str, dict[str, float]]]]] = {c: {} for c in cases}
    for i in range(config.n_subjects):
        maps = _subject(config, i)
        for case in cases:
            rng = np.random.default_rng(derive_seed(_ENTROPY, config.seed, i, CASES.index(case) + 1))
            clean, _ = render_mismatched(maps, config.protocols(), _case_config(case), rng)
            images = _noisy(clean, maps.mask, config.snr, rng)
            for name, pred in _estimates(images, config, maps, model, dev).items():
                per_subject[case].setdefault(name, []).append(tissue_bias(pred, maps))
            echo(f"subject {i + 1}/{config.n_subjects}, case {case}: done")
    return {"config": dataclasses.asdict(config), "cases": {c: _summarise(v) for c, v in per_subject.items()},
            "per_subject": per_subject}


def _summarise(by_estimator: Mapping[str, list[dict[str, dict[str, float]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, subjects in by_estimator.items():
        out[name] = {}
        for group in TISSUE_GROUPS:
            out[name][group] = {}
            for key in _MAPS:
                v = np.array([s[group][key] for s in subjects], np.float64)
                v = v[np.isfinite(v)]
                out[name][group][key] = {"mean": float(v.mean()) if v.size else float("nan"),
                                         "sd": float(v.std(ddof=1)) if v.size > 1 else float("nan"),
                                         "n": int(v.size)}
    return out


def format_mismatch_table(results: Mapping[str, Any], tissues: tuple[str, ...] = ("WM", "GM", "CSF", "lesion", "parenchyma_mpe")
                          ) -> str:
    """Markdown: one row per case and estimator, signed bias mean ± sd over subjects [%] per tissue and map."""
    heads = [f"{t} {m}" for t in tissues for m in ("T1", "T2", "PD")]
    lines = ["| case | estimator | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
    for case, by_est in results["cases"].items():
        for name, groups in by_est.items():
            cells = []
            for t in tissues:
                for key in _MAPS:
                    s = groups[t][key]
                    cells.append("–" if not s["n"] else f"{s['mean']:+.1f}" + (
                        f" ± {s['sd']:.1f}" if math.isfinite(s["sd"]) else ""))
            lines.append(f"| {case} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
