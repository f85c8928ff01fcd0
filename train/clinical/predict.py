"""Prediction: clinical T1w / T2w / T2-FLAIR volumes + TR/TE/TI -> T1 [ms], T2 [ms] and PD maps.

Two levels:

- :func:`predict_volume` -- pure: arrays on one grid in, map arrays out (:mod:`train.clinical.inference`,
  re-exported here).
- :func:`run_predict` -- the file pipeline behind ``relaxomap predict``: read NIfTI (+ BIDS sidecar) or DICOM,
  resolve TR/TE/TI (:mod:`train.clinical.sidecar`), put every contrast on the T1w grid
  (:mod:`train.clinical.resample`), reorder to RAS so slices are axial, mask (given or
  :func:`train.clinical.brainmask.auto_brain_mask`), predict, write ``T1_ms.nii.gz``, ``T2_ms.nii.gz``,
  ``PD.nii.gz``, ``brain_mask.nii.gz`` and ``provenance.json`` with the input affine into a temporary
  directory renamed into place at the end.

Nothing here imports the trainer: a checkpoint is read with :func:`train.checkpoint.load_predictor`.
"""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from relaxomap import __version__
from relaxomap.atomic import atomic_output_dir, check_output_dir
from relaxomap.physics.protocol import CONTRASTS
from relaxomap.train.checkpoint import load_predictor
from relaxomap.train.clinical.brainmask import auto_brain_mask
from relaxomap.train.clinical.inference import predict_volume
from relaxomap.train.clinical.input_checks import (
    check_has_contrast,
    check_overlap,
    check_timing,
    slices_in_view,
    unsuitable,
)
from relaxomap.train.clinical.map_files import MAP_FILES, MASK_FILE, PROVENANCE_FILE
from relaxomap.train.clinical.nifti import Volume, load_nifti, save_nifti, voxel_sizes_mm, write_json
from relaxomap.train.clinical.resample import field_of_view, from_ras, resample_to_grid, same_grid, to_ras
from relaxomap.train.clinical.sidecar import (
    CONTRAST_LABELS,
    PARAM_FIELDS,
    FileParams,
    ParamValue,
    read_bids_sidecar,
    resolve_parameters,
    sidecar_path,
)
from relaxomap.train.clinical.training_facts import (
    TrainedFor,
    range_warnings,
    training_inplane_mm,
    trained_for,
    training_ranges,
    voxel_warning,
)
from relaxomap.train.device import resolve_device

__all__ = [
    "DEFAULT_MODEL_DIR",
    "DEFAULT_MODEL",
    "predict_volume",
    "load_contrast",
    "load_prediction_model",
    "run_predict",
]

#: The shipped model's folder (package data: checkpoint, model card, the recipe's JSON files).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
#: The checkpoint used when ``--checkpoint`` is not given.
DEFAULT_MODEL = DEFAULT_MODEL_DIR / "model.pt"


# ------------------------------------------------------------------------------------------------ inputs
def load_contrast(path: str | Path, contrast: str) -> Volume:
    """Read one contrast: a NIfTI file (parameters from its BIDS sidecar) or a DICOM series directory.

    Returns a :class:`train.clinical.nifti.Volume` whose ``metadata["params"]`` is a
    :class:`train.clinical.sidecar.FileParams` and ``metadata["format"]`` is ``"nifti"`` or ``"dicom"``.
    """
    what = f"{CONTRAST_LABELS[contrast]} image"
    p = Path(path)
    if p.is_dir():
        from relaxomap.train.clinical.dicom import load_dicom_series

        vol = load_dicom_series(p, what)
        vol.metadata["format"] = "dicom"
        return vol
    vol = load_nifti(p, what)
    vol.metadata["params"] = read_bids_sidecar(sidecar_path(p))
    vol.metadata["format"] = "nifti"
    return vol


def load_prediction_model(checkpoint: str | Path | None, device: Any
                          ) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """:func:`train.checkpoint.load_predictor` of ``checkpoint``, or of :data:`DEFAULT_MODEL` when None.

    Raises
    ------
    FileNotFoundError
        If the checkpoint does not exist, saying how to train one.
    ValueError
        If it is a directory, or not a readable relaxomap checkpoint with finite weights
        (:func:`train.checkpoint.load_checkpoint`, :func:`train.checkpoint.check_finite_weights`).
    """
    path = Path(checkpoint) if checkpoint is not None else DEFAULT_MODEL
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt") if p.is_file())[:4]
        raise ValueError(f"--checkpoint {path} is a directory; a checkpoint file (.pt) is expected"
                         + (f" (it holds {', '.join(found)}: pass one of them)" if found else
                            ", e.g. a run's best.pt or a file written by `relaxomap export`"))
    if not path.is_file():
        which = "the default model" if checkpoint is None else "--checkpoint"
        raise FileNotFoundError(
            f"model checkpoint {path} ({which}) not found. Train one with `relaxomap train` and pass it with "
            f"--checkpoint PATH, or place a trained checkpoint at {DEFAULT_MODEL}"
        )
    return load_predictor(path, device)


# ------------------------------------------------------------------------------------------------ pipeline
def _on_reference_grid(vol: Volume, ref: Volume, label: str, resample: bool, order: int,
                       warnings: list[str]) -> tuple[np.ndarray, bool]:
    if same_grid(ref.shape, ref.affine, vol.shape, vol.affine):
        return vol.data, False
    if not resample:
        raise ValueError(
            f"{label} {vol.source} (shape {vol.shape}, voxel {np.round(vol.voxel_mm, 3).tolist()} mm) is not on "
            f"the grid of {ref.source} (shape {ref.shape}, voxel {np.round(ref.voxel_mm, 3).tolist()} mm) and "
            "--no-resample was given; co-register/resample it first or drop --no-resample"
        )
    warnings.append(f"{label} {vol.source} was resampled onto the grid of {ref.source} "
                    f"({'linear' if order == 1 else 'nearest-neighbour'} interpolation, no registration: the "
                    "scanner coordinates are assumed to agree)")
    return resample_to_grid(vol.data, vol.affine, ref.shape, ref.affine, order=order), True


def _read_inputs(given: Mapping[str, str | Path], flags: Mapping[str, Mapping[str, float | None]],
                 warnings: list[str]) -> tuple[dict[str, Volume], dict[str, dict[str, ParamValue]]]:
    """The given contrasts' volumes (a constant image refused) and their resolved TR/TE/TI; a warning per
    contrast not given."""
    vols = {c: load_contrast(p, c) for c, p in given.items()}
    for c, vol in vols.items():
        check_has_contrast(vol, c)
    params = {c: resolve_parameters(c, vols[c].metadata.get("params", FileParams()), flags.get(c, {}))
              for c in vols}
    for c in CONTRASTS:
        if c not in vols:
            warnings.append(f"{CONTRAST_LABELS[c]} not given: predicted without it (present = 0); expect "
                            "larger errors than with all three contrasts")
    return vols, params


def _check_fit(vols: Mapping[str, Volume], params: Mapping[str, Mapping[str, ParamValue]], trained: TrainedFor,
               force: bool, warnings: list[str]) -> tuple[dict[str, str], list[str]]:
    """Each input's sequence kind, after refusing impossible timings (:func:`check_timing`, never overridable);
    and why the model was not made for the inputs (:func:`unsuitable`): refused unless ``force``, else kept
    as warnings and returned for the provenance record."""
    kinds: dict[str, str] = {}
    problems: list[str] = []
    for c, vol in vols.items():
        acq = vol.metadata.get("params", FileParams()).acquisition
        kinds[c], why = check_timing(c, params[c], acq, vol.source)
        problems += unsuitable(c, acq, kinds[c], why, trained, vol.source)
    if problems and not force:
        raise ValueError("the model was not made for these inputs: " + "; ".join(problems)
                         + ". Pass --force to predict anyway (provenance.json then records it); the maps would not "
                           "be reliable")
    warnings.extend(f"--force: {p}" for p in problems)
    return kinds, problems


def _to_reference(vols: Mapping[str, Volume], ref: Volume, resample: bool, warnings: list[str]
                  ) -> tuple[dict[str, np.ndarray], dict[str, bool], dict[str, np.ndarray]]:
    """Every contrast on the reference grid: (data, resampled flags, field of view (X, Y, Z) bool of each
    resampled contrast); a contrast outside the reference field of view is refused."""
    data, resampled, fovs = {}, {}, {}
    for c, vol in vols.items():
        data[c], resampled[c] = _on_reference_grid(vol, ref, f"{CONTRAST_LABELS[c]} image", resample, 1, warnings)
        if resampled[c]:
            fovs[c] = field_of_view(vol.shape, vol.affine, ref.shape, ref.affine)
            check_overlap(fovs[c], vol, ref, c)
    return data, resampled, fovs


def _slice_presence(mask: np.ndarray, ref: Volume, ref_label: str, vols: Mapping[str, Volume],
                    fovs: Mapping[str, np.ndarray], warnings: list[str]
                    ) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per resampled contrast, the RAS axial slices it fully covers (:func:`slices_in_view`), and how many brain
    slices it misses."""
    mask_ras = to_ras(mask, ref.affine)[0]
    brain = mask_ras.any(axis=(0, 1))
    present, outside = {}, {}
    for c, fov in fovs.items():
        present[c] = slices_in_view(mask_ras, to_ras(fov, ref.affine)[0], vols[c], c, ref_label, warnings)
        outside[c] = int((brain & ~present[c]).sum())
    return present, outside


def _training_ranges(meta: Mapping[str, Any], params: Mapping[str, Mapping[str, ParamValue]],
                     warnings: list[str]) -> Any:
    """The checkpoint's TR/TE/TI training ranges [ms] (None when unrecorded) and a warning per value outside."""
    ranges = training_ranges(meta)
    if ranges is None:
        warnings.append("the checkpoint records no training parameter ranges: out-of-range TR/TE/TI cannot be "
                        "flagged")
    warnings.extend(range_warnings(params, ranges))
    return ranges


def _brain_mask(mask_path: str | Path | None, data: Mapping[str, np.ndarray], ref: Volume, ref_label: str,
                resample: bool, warnings: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """The brain mask on the reference grid (given, or automatic) and its provenance entry."""
    if mask_path is not None:
        mvol = load_nifti(mask_path, "brain mask")
        mdata, _ = _on_reference_grid(mvol, ref, "brain mask", resample, 0, warnings)
        mask = mdata > 0  # nearest-neighbour resampling keeps the mask's own values
        info: dict[str, Any] = {"source": str(mask_path)}
        if not mask.any():
            raise ValueError(f"brain mask {mask_path} is empty on the {ref_label} grid")
    else:
        mask = auto_brain_mask([data[c] for c in data], ref.voxel_mm)
        info = {"source": "auto (train.clinical.brainmask.auto_brain_mask: Otsu + largest component + hole "
                          "filling; pass --mask for a research-grade mask)"}
    info["n_voxels"] = int(mask.sum())
    return mask, info


def _predict_maps(data: Mapping[str, np.ndarray], mask: np.ndarray, ref: Volume,
                  params: Mapping[str, Mapping[str, ParamValue]], model: Any, meta: Mapping[str, Any], batch: int,
                  device: Any, progress: bool, warnings: list[str], slice_present: Mapping[str, np.ndarray]
                  ) -> dict[str, np.ndarray]:
    """Reorder the voxel axes to RAS (axial slices), predict, reorder back to the input layout."""
    ras = {c: to_ras(d, ref.affine) for c, d in data.items()}
    mask_ras, affine_ras, ornt = to_ras(mask, ref.affine)
    warnings.extend(voxel_warning(voxel_sizes_mm(affine_ras), training_inplane_mm(meta)))
    maps_ras = predict_volume({c: r[0] for c, r in ras.items()},
                              {c: [params[c][f].value_ms for f in PARAM_FIELDS] for c in params},
                              model, mask_ras, batch, device=device, progress=progress, slice_present=slice_present)
    return {k: np.ascontiguousarray(from_ras(v, ornt)) for k, v in maps_ras.items()}


def _provenance(vols: Mapping[str, Volume], resampled: Mapping[str, bool], ref_label: str, ref: Volume,
                params: Mapping[str, Mapping[str, ParamValue]], model_info: Mapping[str, Any],
                ranges: Any, mask_info: Mapping[str, Any], device: Any, batch: int,
                warnings: list[str]) -> dict[str, Any]:
    """The ``provenance.json`` record of one prediction (``runtime_s`` is added when the files are written)."""
    return {
        "relaxomap_version": __version__,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv) if sys.argv else "",
        "model": dict(model_info),
        "inputs": {c: {"path": str(Path(v.source).resolve()), "format": v.metadata.get("format"),
                       "shape": list(v.shape), "voxel_mm": np.round(v.voxel_mm, 4).tolist(),
                       "resampled_to_reference": resampled[c]} for c, v in vols.items()},
        "reference_grid": {"contrast": ref_label, "shape": list(ref.shape), "affine": ref.affine.tolist()},
        "parameters": {c: {f: {"value_ms": pv.value_ms, "source": pv.source} for f, pv in fp.items()}
                       for c, fp in params.items()},
        "present": {c: c in vols for c in CONTRASTS},
        "training_ranges_ms": ranges,
        "mask": dict(mask_info),
        "device": str(device),
        "batch": batch,
        "outputs": {**MAP_FILES, "mask": MASK_FILE},
        "units": {"t1_ms": "ms", "t2_ms": "ms", "pd": "relative to CSF = 1"},
        "warnings": warnings,
    }


def _aux_on_grid(path: str | Path, ref: Volume, what: str, resample: bool, order: int, warnings: list[str]
                 ) -> np.ndarray:
    """An auxiliary NIfTI (B1 map, labels, lesion mask) on the reference grid; a B1 map in percent (median
    > 10) is divided by 100."""
    vol = load_nifti(path, what)
    data, _ = _on_reference_grid(vol, ref, what, resample, order, warnings)
    if what == "B1 map":
        med = float(np.median(data[data > 0])) if np.any(data > 0) else 0.0
        if not 0.1 < med < 300.0:
            raise ValueError(f"B1 map {path}: median {med:g} is neither a relative scale (~1) nor percent (~100)")
        if med > 10.0:
            warnings.append(f"B1 map {path} read as percent of nominal (median {med:.3g}): divided by 100")
            data = data / 100.0
        data = np.where(data > 0, data, 1.0)
    return data


def _refine(data: Mapping[str, np.ndarray], mask: np.ndarray, maps: Mapping[str, np.ndarray], exam: Any,
            ref: Volume, extra: Mapping[str, np.ndarray], warnings: list[str], config: Any = None
            ) -> tuple[Any, dict[str, np.ndarray]]:
    from relaxomap.train.clinical.refine import refine_maps

    prots, known, normalised = exam
    res = refine_maps(data, mask, maps, prots, known, ref.voxel_mm, config, b1_map=extra.get("b1"),
                      normalised=normalised)
    res.exam["protocols"] = {c: p.to_dict() for c, p in zip(CONTRASTS, prots)}
    res.exam["refocus_known_from_headers"] = dict(zip(CONTRASTS, known))
    if res.exam["t1_scale_sd_pct"] > 5.0:
        warnings.append(f"refine: the data pin the exam's T1 scale only to ±{res.exam['t1_scale_sd_pct']:.1f} % "
                        "(unknown gains); the scale follows the network's prior")
    return res, dict(extra)


def _write_refined(tmp: Path, refined: tuple[Any, Mapping[str, np.ndarray]], maps: Mapping[str, np.ndarray],
                   ref: Volume) -> None:
    from relaxomap.train.clinical.refine import roi_csv, roi_table

    res, extra = refined
    (tmp / "network").mkdir()
    for k, name in MAP_FILES.items():
        save_nifti(tmp / "network" / name, maps[k], ref.affine, description=f"relaxomap network {k}")
    for i, c in enumerate(CONTRASTS):
        save_nifti(tmp / f"residual_{c}_pct.nii.gz", res.residual_pct[i], ref.affine, description=f"residual {c} %")
    save_nifti(tmp / "B1_fitted.nii.gz", res.b1, ref.affine, description="relaxomap fitted B1 scale")
    save_nifti(tmp / "FLAIR_branch.nii.gz", res.branch.astype(np.float32), ref.affine, description="FLAIR branch")
    write_json(tmp / "refine.json", res.exam)
    rows = roi_table({"t1_ms": res.t1_ms, "t2_ms": res.t2_ms, "pd": res.pd}, res.t1_ms > 0,
                     extra.get("labels"), extra.get("lesion"))
    write_json(tmp / "roi.json", {"regions": rows, "source": "labels" if "labels" in extra else "auto"})
    (tmp / "roi.csv").write_text(roi_csv(rows))


def run_predict(
    inputs: Mapping[str, str | Path | None],
    out_dir: str | Path,
    *,
    checkpoint: str | Path | None = None,
    mask_path: str | Path | None = None,
    param_flags: Mapping[str, Mapping[str, float | None]] | None = None,
    resample: bool = True,
    device: str = "auto",
    batch: int = 8,
    overwrite: bool = False,
    progress: bool = True,
    force: bool = False,
    refine: bool = False,
    b1map: str | Path | None = None,
    labels_path: str | Path | None = None,
    lesion_mask: str | Path | None = None,
    refine_config: Any = None,
) -> dict[str, Any]:
    """The ``relaxomap predict`` pipeline (see the module docstring); returns the provenance dict it wrote.

    Every refusal comes before the network runs (:mod:`train.clinical.input_checks`): an output folder that
    cannot be written, a checkpoint that is a directory, unreadable or non-finite, a constant image, a time in
    an implausible unit, an impossible protocol, an input the model was not made for (unless ``force``), a
    contrast outside the reference field of view.

    Parameters
    ----------
    inputs : ``{"t1w": path, "t2w": path, "flair": path or None}``: NIfTI files or DICOM series directories.
    out_dir : output directory (created atomically).
    checkpoint : checkpoint file; ``None`` = :data:`DEFAULT_MODEL`.
    mask_path : brain mask NIfTI (non-zero = brain); ``None`` = automatic mask.
    param_flags : ``{"flair": {"ti_ms": 2500.0, ...}}`` [ms] overriding the files' metadata.
    resample : put contrasts on the reference (T1w) grid when needed; ``False`` = error instead.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ... (:func:`train.device.resolve_device`).
    batch : slices per forward pass.
    overwrite : replace a non-empty ``out_dir``.
    progress : tqdm progress bar.
    force : predict even for inputs the model was not made for (:func:`train.clinical.input_checks.unsuitable`);
        each reason is then a warning and listed under ``"forced"`` in the provenance.
    refine : refine the network's maps with the exam's physics (:mod:`train.clinical.refine`; needs all three
        contrasts): the refined maps are written as the maps, the network's under ``network/``, with residuals,
        the fitted exam (``refine.json``) and ROI tables.
    b1map : measured transmit field (NIfTI, relative scale or percent, e.g. BIDS ``TB1map``) for ``refine``.
    labels_path, lesion_mask : NIfTI label image (1 CSF, 2 GM, 3 WM, 13 deep GM) and lesion mask for the ROI
        tables of ``refine``.
    refine_config : a :class:`physics.refine.RefineConfig` (priors, grid, solver) for ``refine``; None = defaults.

    Raises
    ------
    FileNotFoundError, ValueError, ImportError
        With messages naming the file or parameter (see :mod:`train.clinical.sidecar`,
        :mod:`train.clinical.nifti`, :mod:`train.clinical.input_checks`, :mod:`relaxomap.atomic`).
    """
    t0 = time.perf_counter()
    given = {c: inputs.get(c) for c in CONTRASTS if inputs.get(c) is not None}
    unknown = set(inputs) - set(CONTRASTS)
    if unknown:
        raise ValueError(f"unknown contrast(s) {sorted(unknown)}; allowed: {list(CONTRASTS)}")
    if not given:
        raise ValueError("no input image: pass at least --t1w (and preferably --t2w and --flair)")
    if refine and len(given) < len(CONTRASTS):
        raise ValueError("--refine needs all three contrasts (t1w, t2w, flair); missing: "
                         + ", ".join(c for c in CONTRASTS if c not in given))
    check_output_dir(Path(out_dir), overwrite)  # fail before any work
    warnings: list[str] = []
    dev = resolve_device(device)
    model, _config, meta, model_info = load_prediction_model(checkpoint, dev)  # a missing checkpoint fails fast
    vols, params = _read_inputs(given, param_flags or {}, warnings)
    kinds, forced = _check_fit(vols, params, trained_for(meta), force, warnings)
    exam = None
    if refine:  # the refinement's protocols, refused before the network runs
        from relaxomap.train.clinical.refine import exam_protocols

        exam = exam_protocols(vols, params, kinds)

    ref_c = next(c for c in CONTRASTS if c in vols)
    ref = vols[ref_c]
    data, resampled, fovs = _to_reference(vols, ref, resample, warnings)
    ranges = _training_ranges(meta, params, warnings)
    mask, mask_info = _brain_mask(mask_path, data, ref, CONTRAST_LABELS[ref_c], resample, warnings)
    in_view, outside = _slice_presence(mask, ref, CONTRAST_LABELS[ref_c], vols, fovs, warnings)
    extra = {k: _aux_on_grid(v, ref, what, resample, order, warnings) for k, v, what, order in (
        ("b1", b1map, "B1 map", 1), ("labels", labels_path, "label image", 0),
        ("lesion", lesion_mask, "lesion mask", 0)) if v is not None and refine}
    maps = _predict_maps(data, mask, ref, params, model, meta, batch, dev, progress, warnings, in_view)
    refined = _refine(data, mask, maps, exam, ref, extra, warnings, refine_config) if refine else None

    provenance = _provenance(vols, resampled, ref_c, ref, params, model_info, ranges, mask_info, dev, batch,
                             warnings)
    for c, entry in provenance["inputs"].items():
        entry["sequence_kind"] = kinds[c]
        entry["brain_slices_outside_field_of_view"] = outside.get(c, 0)
    provenance["forced"] = forced
    if refined is not None:
        provenance["refine"] = refined[0].exam
    with atomic_output_dir(out_dir, overwrite) as tmp:
        if refined is not None:
            _write_refined(tmp, refined, maps, ref)
            maps = {"t1_ms": refined[0].t1_ms, "t2_ms": refined[0].t2_ms, "pd": refined[0].pd}
        for k, name in MAP_FILES.items():
            save_nifti(tmp / name, maps[k], ref.affine, description=f"relaxomap {k}")
        save_nifti(tmp / MASK_FILE, mask.astype(np.float32), ref.affine, description="relaxomap brain mask")
        provenance["runtime_s"] = round(time.perf_counter() - t0, 3)
        write_json(tmp / PROVENANCE_FILE, provenance)
    return provenance
