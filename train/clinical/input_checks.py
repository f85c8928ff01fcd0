"""What ``relaxomap predict`` refuses, checked before the network runs.

Each check names the file, the field or value that is wrong and what is allowed:

- :func:`check_has_contrast` : an image that is constant (all zero included) carries no information; it is
  refused rather than shown to the network as data (leaving it out gives the missing-contrast path).
- :func:`check_timing` : TR / TE / TI must describe a possible acquisition of the input's sequence kind,
  checked by :class:`physics.protocol.Protocol` (TE < TR; 0 < TI < TR and room for one echo after TI for
  inversion kinds; TI = 0 for kinds without inversion). Never overridable.
- :func:`unsuitable` : inputs the model was not made for (a sequence kind it was not trained on, such as
  gradient echo / MPRAGE or echo-planar; a 3-D variable-flip-angle spin-echo train; a post-contrast image; a
  field strength it was not trained at). ``predict`` refuses them unless ``--force``.
- :func:`check_overlap` and :func:`slices_in_view` : a resampled contrast must overlap the reference grid;
  the brain slices it does not fully cover are predicted without it (present = 0 there, as if not given),
  with a warning naming the file; one that covers no brain slice at all is refused.

All checks are vectorised reductions over whole arrays (no per-voxel Python loops).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from relaxomap.physics.protocol import SPIN_ECHO_KINDS, Protocol
from relaxomap.train.clinical.acquisition import KIND_NAMES, VFA_MIN_ECHO_TRAIN, Acquisition, sequence_kind
from relaxomap.train.clinical.nifti import Volume
from relaxomap.train.clinical.sidecar import BIDS_KEYS, CONTRAST_LABELS, ParamValue
from relaxomap.train.clinical.training_facts import TrainedFor

__all__ = ["check_has_contrast", "check_timing", "unsuitable", "check_overlap", "slices_in_view",
           "FIELD_TOLERANCE_T"]

#: A field strength within this many tesla of a training field counts as that field (the tissue table's
#: tolerance: 2.9 T and 3.0 T scanners are one population).
FIELD_TOLERANCE_T = 0.26
_INVERTING = ("ir_tse", "mprage")


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" or noun.startswith("MPRAGE") else "a ") + noun


def check_has_contrast(vol: Volume, contrast: str) -> None:
    """Refuse an image whose voxels all hold one value (e.g. all zero): it carries no contrast information.

    Raises
    ------
    ValueError naming the file and the value, with what to do (check the file, or leave the contrast out).
    """
    lo, hi = float(np.min(vol.data)), float(np.max(vol.data))
    if hi <= lo:
        label = CONTRAST_LABELS[contrast]
        raise ValueError(
            f"{label} image {vol.source} is constant (all {vol.data.size} voxels = {lo:g}): it carries no "
            f"contrast information, and predicting with it would treat it as data. Check the file (a failed "
            f"conversion or export?), or leave out --{contrast} to predict without it (the model's "
            "missing-contrast path)"
        )


def check_timing(contrast: str, params: Mapping[str, ParamValue], acq: Acquisition, source: str
                 ) -> tuple[str, str]:
    """The input's sequence kind and why (:func:`train.clinical.acquisition.sequence_kind`), after checking
    that its TR / TE / TI are possible for that kind.

    The check is :class:`physics.protocol.Protocol` itself, on the one-echo skeleton every kind must satisfy:
    kind ``ir_tse`` (etl 1, esp = TE) for inversion kinds, ``se`` otherwise. So TE < TR; 0 < TI < TR with one
    echo after TI inside TR for inversion kinds; TI = 0 for kinds without inversion.

    Raises
    ------
    ValueError naming the image, its kind, Protocol's message (field, value, allowed range) and where each
    value came from.
    """
    tr, te, ti = (params[f].value_ms for f in ("tr_ms", "te_ms", "ti_ms"))
    kind, why = sequence_kind(contrast, acq, ti)
    inverts = kind in _INVERTING
    try:
        if inverts:
            Protocol("ir_tse", tr_ms=tr, te_ms=te, ti_ms=ti, etl=1, esp_ms=te, name=f"{contrast}_check")
        else:
            Protocol("se", tr_ms=tr, te_ms=te, ti_ms=ti, name=f"{contrast}_check")
    except ValueError as err:
        values = "; ".join(f"{BIDS_KEYS[f]} {pv.value_ms:g} ms from {pv.source}" for f, pv in params.items())
        raise ValueError(
            f"{CONTRAST_LABELS[contrast]} image {source}: impossible protocol for {_a(KIND_NAMES[kind])} "
            f"acquisition ({why}; checked as one echo of kind {'ir_tse' if inverts else 'se'}): {err} "
            f"[{values}]"
        ) from None
    return kind, why


def unsuitable(contrast: str, acq: Acquisition, kind: str, why: str, trained: TrainedFor, source: str
               ) -> list[str]:
    """Why the model was not made for this input, one sentence per reason; empty when it was.

    Reasons: a sequence kind outside ``trained.kinds[contrast]`` (``se`` and ``tse`` count as one: an echo
    train length is often not recorded); a 3-D spin-echo train longer than
    :data:`~train.clinical.acquisition.VFA_MIN_ECHO_TRAIN` or of unrecorded length (variable flip angles:
    SPACE / CUBE / VISTA); a recorded contrast agent; a field strength farther than
    :data:`FIELD_TOLERANCE_T` from every training field.
    """
    label = f"{CONTRAST_LABELS[contrast]} image {source}"
    out = []
    known = set(trained.kinds.get(contrast, ()))
    if known & {"se", "tse"}:
        known |= {"se", "tse"}
    if kind not in known:
        names = ", ".join(trained.kinds.get(contrast, ())) or "none"
        out.append(f"{label} is {_a(KIND_NAMES[kind])} acquisition ({why}); the model was trained on "
                   f"{CONTRAST_LABELS[contrast]} kinds {names} only ({trained.source})")
    etl = acq.echo_train_length
    if acq.mr_acquisition_type == "3D" and kind in SPIN_ECHO_KINDS and (etl is None or etl > VFA_MIN_ECHO_TRAIN):
        train = f"an echo train of {etl}" if etl is not None else "an unrecorded echo train length"
        out.append(f"{label} is a 3-D spin-echo acquisition with {train} (MRAcquisitionType 3D, {acq.origin}): a "
                   "variable-flip-angle train (SPACE / CUBE / VISTA), whose contrast the 2-D turbo spin echo "
                   "the model was trained on does not describe")
    if acq.contrast_agent:
        out.append(f"{label} is post-contrast ({acq.contrast_agent} in {acq.origin}); the model knows native "
                   "(pre-contrast) relaxation times only")
    if acq.field_t is not None and not any(abs(acq.field_t - f) <= FIELD_TOLERANCE_T for f in trained.fields_t):
        fields = ", ".join(f"{f:g}" for f in trained.fields_t)
        out.append(f"{label} was acquired at {acq.field_t:g} T (MagneticFieldStrength in {acq.origin}); the "
                   f"model was trained at {fields} T only ({trained.source})")
    return out


def check_overlap(fov: np.ndarray, vol: Volume, ref: Volume, contrast: str) -> None:
    """Refuse a contrast whose field of view misses the reference grid entirely (it would resample to zeros).

    Parameters
    ----------
    fov : (X, Y, Z) bool on the reference grid (:func:`train.clinical.resample.field_of_view`).
    """
    if not fov.any():
        raise ValueError(
            f"{CONTRAST_LABELS[contrast]} image {vol.source} does not overlap the grid of {ref.source}: none of its "
            f"voxels lies in the reference field of view (world centres {_centre(vol)} mm vs {_centre(ref)} mm), "
            "so resampling would give an image of zeros. Check that both come from one exam and that their "
            "headers' scanner coordinates are right"
        )


def _centre(vol: Volume) -> list[float]:
    centre = (np.asarray(vol.shape, np.float64) - 1) / 2
    return np.round(vol.affine[:3, :3] @ centre + vol.affine[:3, 3], 1).tolist()


def slices_in_view(mask_ras: np.ndarray, fov_ras: np.ndarray, vol: Volume, contrast: str, ref_label: str,
                   warnings: list[str]) -> np.ndarray:
    """(Z,) bool: the axial slices whose brain voxels all lie in the contrast's field of view.

    The other brain slices are predicted without the contrast (present = 0 there, as if it were not given) and
    a warning naming the file says how many.

    Parameters
    ----------
    mask_ras, fov_ras : (X, Y, Z) bool brain mask and field of view, on the RAS-ordered reference grid.

    Raises
    ------
    ValueError if the contrast fully covers no brain slice.
    """
    covered = ~(mask_ras & ~fov_ras).any(axis=(0, 1))
    brain = mask_ras.any(axis=(0, 1))
    n_brain, n_out = int(brain.sum()), int((brain & ~covered).sum())
    label = CONTRAST_LABELS[contrast]
    if n_brain and n_out == n_brain:
        raise ValueError(f"{label} image {vol.source} covers none of the {n_brain} brain slices of the "
                         f"{ref_label} grid completely (its field of view misses the brain); leave out --{contrast} "
                         "or check the file's geometry")
    if n_out:
        warnings.append(f"{label} image {vol.source} does not cover {n_out} of the {n_brain} brain slices of the "
                        f"{ref_label} grid (field of view): those slices are predicted without {label} "
                        "(present = 0), as if it had not been given")
    return covered
