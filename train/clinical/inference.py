"""The pure core of prediction: arrays on one grid in, T1 [ms], T2 [ms] and PD map arrays out.

:func:`predict_volume` runs the 2-D network over the axial slices (the third voxel axis) in batches: beyond the
input and output volumes, memory is bounded by ``batch`` slices whatever the volume. Each contrast of each
slice is normalised with :func:`synth.normalize.normalize_intensity` (``mask=None``), exactly as the simulator
normalises its training slices. A contrast can be absent from the whole volume (not given) or from some slices
only (outside its field of view): it is then shown to the network as absent (present = 0, zero image and
times), the way the model was trained for a missing contrast. The file pipeline around it is
:func:`train.clinical.predict.run_predict`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from relaxomap.physics.protocol import CONTRASTS
from relaxomap.synth.normalize import normalize_intensity
from relaxomap.synth.orientation import axial_to_image, image_to_axial
from relaxomap.train.clinical.map_files import MAP_FILES

__all__ = ["predict_volume"]


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
                    present_z: np.ndarray, shape: tuple[int, ...], batch: int, device: Any, progress: bool
                    ) -> np.ndarray:
    """(3, X, Y, Z) float32 maps of the axial slices ``todo`` (others 0), ``batch`` slices per forward pass.

    ``present_z`` (Z, 3) bool: which contrasts each slice has; an absent one is shown as zeros with zero times.
    """
    import torch
    from tqdm import tqdm

    out = np.zeros((len(MAP_FILES), *shape), np.float32)
    zeros = np.zeros(shape[:2][::-1], np.float32)  # (H=Y, W=X)
    par_t = torch.as_tensor(params, device=device)
    with torch.inference_mode(), tqdm(total=len(todo), unit="slice", disable=not progress, desc="predict") as bar:
        for start in range(0, len(todo), batch):
            ks = todo[start:start + batch]
            pres = present_z[ks]  # (B, 3)
            # normalised here, a batch at a time, so only `batch` slices are ever copied
            x = np.stack([np.stack([_normalised_image(vols[c][:, :, k]) if pres[j, i] else zeros
                                    for i, c in enumerate(CONTRASTS)]) for j, k in enumerate(ks)])  # (B, 3, H, W)
            xt = torch.from_numpy(np.ascontiguousarray(x)).to(device)
            pres_t = torch.as_tensor(pres.astype(np.float32), device=device)
            y = model(xt, par_t[None] * pres_t[:, :, None], pres_t)  # (B, 3, H, W)
            y = y.float().cpu().numpy()
            for i, k in enumerate(ks):
                out[:, :, :, k] = image_to_axial(y[i])
            bar.update(len(ks))
    return out


def _present_by_slice(present: np.ndarray, n_slices: int, slice_present: Mapping[str, np.ndarray] | None
                      ) -> np.ndarray:
    """(Z, 3) bool: ``present`` in every slice, and-ed with each contrast's ``slice_present`` (Z,) flags."""
    present_z = np.repeat(present[None], n_slices, axis=0)
    for c, flags in (slice_present or {}).items():
        if c not in CONTRASTS:
            raise ValueError(f"slice_present has unknown contrast {c!r}; allowed: {list(CONTRASTS)}")
        f = np.asarray(flags, bool)
        if f.shape != (n_slices,):
            raise ValueError(f"slice_present[{c!r}] must be ({n_slices},) flags, one per axial slice; got {f.shape}")
        present_z[:, CONTRASTS.index(c)] &= f
    return present_z


def predict_volume(
    images: Mapping[str, np.ndarray | None],
    params: Mapping[str, Sequence[float]] | np.ndarray,
    model: Any,
    mask: np.ndarray | None = None,
    batch: int = 8,
    *,
    device: Any = None,
    progress: bool = False,
    slice_present: Mapping[str, np.ndarray] | None = None,
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
    slice_present : optional ``{contrast: (Z,) bool}``: False marks the slices where that contrast is absent
        (outside its field of view); they are predicted with it absent (present = 0), as if it were not given.

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
        out = _predict_slices(model, vols, todo, par, _present_by_slice(present, shape[2], slice_present), shape,
                              batch, dev, progress)
    finally:
        if was_training:
            model.train()
    if m is not None:
        out *= m[None]
    return {key: out[i] for i, key in enumerate(MAP_FILES)}
