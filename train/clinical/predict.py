"""Prediction: clinical T1w / T2w / T2-FLAIR volumes + TR/TE/TI -> T1 [ms], T2 [ms] and PD maps.

Two levels:

- :func:`predict_volume` -- pure: arrays on one grid in, map arrays out. Runs the 2-D network over the axial
  slices (the third voxel axis) in batches: beyond the input and output volumes, memory is bounded by
  ``batch`` slices whatever the volume.
  Each contrast of each slice is normalised with :func:`synth.normalize.normalize_intensity` (``mask=None``),
  exactly as the simulator normalises its training slices.
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
from typing import Any, Mapping, Sequence

import numpy as np

from relaxomap import __version__
from relaxomap.atomic import atomic_output_dir, check_output_dir
from relaxomap.physics.protocol import CONTRASTS
from relaxomap.synth.normalize import normalize_intensity
from relaxomap.synth.orientation import axial_to_image, image_to_axial
from relaxomap.train.checkpoint import load_predictor
from relaxomap.train.clinical.brainmask import auto_brain_mask
from relaxomap.train.clinical.map_files import MAP_FILES, MASK_FILE, PROVENANCE_FILE
from relaxomap.train.clinical.nifti import Volume, load_nifti, save_nifti, voxel_sizes_mm, write_json
from relaxomap.train.clinical.resample import from_ras, resample_to_grid, same_grid, to_ras
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
    range_warnings,
    training_inplane_mm,
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


# ------------------------------------------------------------------------------------------------ pure core
def _normalised_image(axial: np.ndarray) -> np.ndarray:
    """One (X, Y) axial slice -> normalised (H, W) float32 image; a slice without signal stays 0."""
    img = axial_to_image(np.asarray(axial, np.float32))
    return normalize_intensity(img)[0] if np.any(img > 0) else np.zeros(img.shape, np.float32)


def _params_array(params: Mapping[str, Sequence[float]] | np.ndarray, present: np.ndarray) -> np.ndarray:
    """(3, 3) float32 [TR, TE, TI] ms per contrast; zeros for missing contrasts."""
    if isinstance(params, Mapping):
        arr = np.zeros((len(CONTRASTS), 3), np.float32)
        for i, c in enumerate(CONTRASTS):
            if present[i]:
                if params.get(c) is None:
                    raise ValueError(f"params has no (TR, TE, TI) [ms] for the present contrast {c!r}")
                arr[i] = np.asarray(params[c], np.float32).reshape(3)
    else:
        arr = np.asarray(params, np.float32)
        if arr.shape != (len(CONTRASTS), 3):
            raise ValueError(f"params must be a (3, 3) array [TR, TE, TI] ms per contrast (t1w, t2w, flair) or a "
                             f"dict; got shape {arr.shape}")
        arr = arr * present[:, None]
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"params must be finite and >= 0 ms; got {arr.tolist()}")
    return arr


def _check_images(images: Mapping[str, np.ndarray | None], mask: np.ndarray | None
                  ) -> tuple[np.ndarray, tuple[int, ...]]:
    """(present (3,) bool, common (X, Y, Z) shape) of :func:`predict_volume`'s inputs; ValueError if unusable."""
    unknown = set(images) - set(CONTRASTS)
    if unknown:
        raise ValueError(f"images has unknown contrast(s) {sorted(unknown)}; allowed: {list(CONTRASTS)}")
    present = np.array([images.get(c) is not None for c in CONTRASTS])
    if not present.any():
        raise ValueError(f"predict_volume needs at least one of {list(CONTRASTS)}; got none")
    given = [c for c in CONTRASTS if images.get(c) is not None]
    shape = np.shape(images[given[0]])
    for c in given:
        s = np.shape(images[c])
        if len(s) != 3:
            raise ValueError(f"images[{c!r}] must be 3-D (X, Y, Z); got shape {s}")
        if s != shape:
            raise ValueError(f"images[{c!r}] has shape {s}; all contrasts must share one grid {shape}")
    if mask is not None and np.shape(mask) != shape:
        raise ValueError(f"mask has shape {np.shape(mask)}; it must match the images {shape}")
    return present, shape


def _predict_slices(model: Any, vols: Mapping[str, np.ndarray], todo: Sequence[int], params: np.ndarray,
                    present: np.ndarray, shape: tuple[int, ...], batch: int, device: Any, progress: bool
                    ) -> np.ndarray:
    """(3, X, Y, Z) float32 maps of the axial slices ``todo`` (others 0), ``batch`` slices per forward pass."""
    import torch
    from tqdm import tqdm

    out = np.zeros((len(MAP_FILES), *shape), np.float32)
    zeros = np.zeros(shape[:2][::-1], np.float32)  # (H=Y, W=X)
    par_t = torch.as_tensor(params, device=device)
    pres_t = torch.as_tensor(present.astype(np.float32), device=device)
    with torch.inference_mode(), tqdm(total=len(todo), unit="slice", disable=not progress, desc="predict") as bar:
        for start in range(0, len(todo), batch):
            ks = todo[start:start + batch]
            # normalised here, a batch at a time, so only `batch` slices are ever copied
            x = np.stack([np.stack([_normalised_image(vols[c][:, :, k]) if c in vols else zeros
                                    for c in CONTRASTS]) for k in ks])  # (B, 3, H=Y, W=X)
            xt = torch.from_numpy(np.ascontiguousarray(x)).to(device)
            b = xt.shape[0]
            y = model(xt, par_t.expand(b, -1, -1), pres_t.expand(b, -1))  # (B, 3, H, W)
            y = y.float().cpu().numpy()
            for i, k in enumerate(ks):
                out[:, :, :, k] = image_to_axial(y[i])
            bar.update(len(ks))
    return out


def predict_volume(
    images: Mapping[str, np.ndarray | None],
    params: Mapping[str, Sequence[float]] | np.ndarray,
    model: Any,
    mask: np.ndarray | None = None,
    batch: int = 8,
    *,
    device: Any = None,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Run the network over every axial slice of a volume.

    Parameters
    ----------
    images : ``{"t1w": (X, Y, Z), "t2w": ..., "flair": ...}`` magnitude images (arbitrary units) on one grid,
        voxel axes ordered like the training maps (x left->right, y posterior->anterior, z inferior->superior;
        :func:`train.clinical.resample.to_ras` does this); a missing or ``None`` contrast is passed as absent
        (present = 0). Each axial slice ``[:, :, k]`` is shown to the network as the simulator shows its
        training slices (rows = y descending, columns = x ascending).
    params : ``{"t1w": (TR, TE, TI), ...}`` [ms] per present contrast, or a (3, 3) array in contrast order.
    model : a network from ``model.build_model``, already on ``device`` (it is put in eval mode here).
    mask : (X, Y, Z) bool region to predict; maps are 0 outside it and slices without mask voxels are skipped.
        ``None``: every slice holding signal, no masking.
    batch : slices per forward pass (bounds memory).
    device : torch device of the model (default: that of its first parameter).
    progress : show a tqdm progress bar.

    Returns
    -------
    ``{"t1_ms": (X, Y, Z) float32 [ms], "t2_ms": ... [ms], "pd": ... (relative, CSF = 1)}`` (the keys of
    :data:`train.clinical.map_files.MAP_FILES`)

    Raises
    ------
    ValueError
        If no contrast is present, shapes differ, or params are missing / negative for a present contrast.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1; got {batch}")
    present, shape = _check_images(images, mask)
    par = _params_array(params, present)
    vols = {c: images[c] for c in CONTRASTS if images.get(c) is not None}
    m = None if mask is None else np.asarray(mask, bool)
    if m is not None:
        todo = [k for k in range(shape[2]) if m[:, :, k].any()]
    else:
        todo = [k for k in range(shape[2]) if any(np.any(np.asarray(v[:, :, k]) > 0) for v in vols.values())]
    dev = device if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        out = _predict_slices(model, vols, todo, par, present, shape, batch, dev, progress)
    finally:
        if was_training:
            model.train()
    if m is not None:
        out *= m[None]
    return {key: out[i] for i, key in enumerate(MAP_FILES)}


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
    """The given contrasts' volumes and their resolved TR/TE/TI; a warning per contrast not given."""
    vols = {c: load_contrast(p, c) for c, p in given.items()}
    params = {c: resolve_parameters(c, vols[c].metadata.get("params", FileParams()), flags.get(c, {}))
              for c in vols}
    for c in CONTRASTS:
        if c not in vols:
            warnings.append(f"{CONTRAST_LABELS[c]} not given: predicted without it (present = 0); expect "
                            "larger errors than with all three contrasts")
    return vols, params


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
                  device: Any, progress: bool, warnings: list[str]) -> dict[str, np.ndarray]:
    """Reorder the voxel axes to RAS (axial slices), predict, reorder back to the input layout."""
    ras = {c: to_ras(d, ref.affine) for c, d in data.items()}
    mask_ras, affine_ras, ornt = to_ras(mask, ref.affine)
    warnings.extend(voxel_warning(voxel_sizes_mm(affine_ras), training_inplane_mm(meta)))
    maps_ras = predict_volume({c: r[0] for c, r in ras.items()},
                              {c: [params[c][f].value_ms for f in PARAM_FIELDS] for c in params},
                              model, mask_ras, batch, device=device, progress=progress)
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
) -> dict[str, Any]:
    """The ``relaxomap predict`` pipeline (see the module docstring); returns the provenance dict it wrote.

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

    Raises
    ------
    FileNotFoundError, ValueError, ImportError
        With messages naming the file or parameter (see :mod:`train.clinical.sidecar`,
        :mod:`train.clinical.nifti`).
    """
    t0 = time.perf_counter()
    given = {c: inputs.get(c) for c in CONTRASTS if inputs.get(c) is not None}
    unknown = set(inputs) - set(CONTRASTS)
    if unknown:
        raise ValueError(f"unknown contrast(s) {sorted(unknown)}; allowed: {list(CONTRASTS)}")
    if not given:
        raise ValueError("no input image: pass at least --t1w (and preferably --t2w and --flair)")
    check_output_dir(Path(out_dir), overwrite)  # fail before any work
    warnings: list[str] = []
    dev = resolve_device(device)
    model, _config, meta, model_info = load_prediction_model(checkpoint, dev)  # a missing checkpoint fails fast
    vols, params = _read_inputs(given, param_flags or {}, warnings)

    ref_c = next(c for c in CONTRASTS if c in vols)
    ref = vols[ref_c]
    data, resampled = {}, {}
    for c, vol in vols.items():
        data[c], resampled[c] = _on_reference_grid(vol, ref, f"{CONTRAST_LABELS[c]} image", resample, 1, warnings)
    ranges = training_ranges(meta)
    if ranges is None:
        warnings.append("the checkpoint records no training parameter ranges: out-of-range TR/TE/TI cannot be "
                        "flagged")
    warnings.extend(range_warnings(params, ranges))
    mask, mask_info = _brain_mask(mask_path, data, ref, CONTRAST_LABELS[ref_c], resample, warnings)
    maps = _predict_maps(data, mask, ref, params, model, meta, batch, dev, progress, warnings)

    provenance = _provenance(vols, resampled, ref_c, ref, params, model_info, ranges, mask_info, dev, batch,
                             warnings)
    with atomic_output_dir(out_dir, overwrite) as tmp:
        for k, name in MAP_FILES.items():
            save_nifti(tmp / name, maps[k], ref.affine, description=f"relaxomap {k}")
        save_nifti(tmp / MASK_FILE, mask.astype(np.float32), ref.affine, description="relaxomap brain mask")
        provenance["runtime_s"] = round(time.perf_counter() - t0, 3)
        write_json(tmp / PROVENANCE_FILE, provenance)
    return provenance
