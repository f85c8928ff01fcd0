"""Synthetic MRI from T1 / T2 / PD maps (predicted or true) at any protocol: ``relaxomap render``.

The maps directory is what ``relaxomap predict`` writes (``T1_ms.nii.gz``, ``T2_ms.nii.gz``, ``PD.nii.gz``, one
grid). The image is :func:`physics.forward.render` with ``forward="closed"`` (closed-form steady state, every
kind) or ``forward="epg"`` (extended phase graphs for the spin-echo kinds: imperfect refocusing and stimulated
echoes), written as float32 NIfTI with the maps' affine and a BIDS sidecar (times in seconds).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from relaxomap.physics.forward import check_forward, effective_forward, render
from relaxomap.physics.protocol import PRESETS, SEQUENCE_KINDS, Protocol, preset
from relaxomap.train.clinical.map_files import MAP_FILES
from relaxomap.train.clinical.nifti import load_nifti, nifti_stem, save_nifti, write_json
from relaxomap.train.clinical.resample import same_grid
from relaxomap.train.clinical.sidecar import bids_sidecar_dict

__all__ = ["SEQ_ALIASES", "build_protocol", "load_maps", "render_volume", "run_render"]

#: ``--seq`` names that stand for a clinical preset (3 T values; ``--tr`` etc. override single fields).
SEQ_ALIASES: dict[str, str] = {"t1w": "t1w_se_3t", "t2w": "t2w_tse_3t", "flair": "flair_3t"}
#: Slices per signal call (bounds the memory of the EPG state arrays).
_SLAB = 16
_FLAGS = {"tr_ms": "--tr", "te_ms": "--te", "ti_ms": "--ti", "etl": "--etl", "esp_ms": "--esp",
          "flip_deg": "--flip", "refocus_deg": "--refocus"}


def build_protocol(
    seq: str,
    *,
    tr_ms: float | None = None,
    te_ms: float | None = None,
    ti_ms: float | None = None,
    etl: int | None = None,
    esp_ms: float | None = None,
    flip_deg: float | None = None,
    refocus_deg: float | None = None,
    preset_name: str | None = None,
) -> Protocol:
    """The :class:`Protocol` described by the ``render`` options.

    ``seq`` is a sequence kind (``se``, ``tse``, ``ir_tse``, ``spgr``, ``mprage``) or an alias of
    :data:`SEQ_ALIASES`. With ``preset_name`` or an alias the preset is the starting point and each given
    option replaces one field; otherwise TR and TE are required, TI for ``ir_tse``/``mprage``, ETL and ESP for
    ``tse``/``ir_tse``/``mprage`` and the flip angle for ``spgr``/``mprage``.

    Raises
    ------
    ValueError
        Naming the missing option, an unknown sequence or preset, a preset of another kind than ``seq``,
        or (from :class:`Protocol`) an inconsistent protocol, with the options that set each field.
    """
    given = {"tr_ms": tr_ms, "te_ms": te_ms, "ti_ms": ti_ms, "etl": etl, "esp_ms": esp_ms, "flip_deg": flip_deg,
             "refocus_deg": refocus_deg}
    given = {k: v for k, v in given.items() if v is not None}
    if seq not in SEQUENCE_KINDS and seq not in SEQ_ALIASES:
        raise ValueError(f"--seq must be one of {sorted(SEQUENCE_KINDS) + sorted(SEQ_ALIASES)}; got {seq!r}")
    base_name = preset_name or SEQ_ALIASES.get(seq)
    base = preset(base_name) if base_name else None
    kind = seq if seq in SEQUENCE_KINDS else base.kind  # type: ignore[union-attr]
    if base is not None and base.kind != kind:
        raise ValueError(f"--preset {base_name} is a {base.kind!r} protocol but --seq is {seq!r}; use matching "
                         f"ones (presets of kind {kind!r}: "
                         f"{', '.join(n for n, p in sorted(PRESETS.items()) if p.kind == kind) or 'none'})")
    try:
        if base is not None:  # (for "se" the Protocol itself sets esp_ms = te_ms)
            label = base.name + ("+" + ",".join(sorted(given)) if given else "")
            return base.with_(name=label, **given)
        need = ["tr_ms", "te_ms"]
        if kind in ("ir_tse", "mprage"):
            need.append("ti_ms")
        if kind in ("tse", "ir_tse", "mprage"):
            need += ["etl", "esp_ms"]
        if kind in ("spgr", "mprage"):
            need.append("flip_deg")
        missing = [_FLAGS[k] for k in need if k not in given]
        if missing:
            raise ValueError(f"--seq {seq} needs {' '.join(f'{m} VALUE' for m in missing)} (or --preset NAME; "
                             f"presets of kind {kind!r}: "
                             f"{', '.join(n for n, p in sorted(PRESETS.items()) if p.kind == kind)})")
        return Protocol(kind, name=f"render_{kind}", **given)
    except ValueError as err:
        if str(err).startswith("Protocol"):
            raise ValueError(f"invalid protocol for --seq {seq}: {err} (options: "
                             + ", ".join(f"{v} sets {k}" for k, v in _FLAGS.items()) + ")") from None
        raise


def load_maps(maps_dir: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Read ``T1_ms.nii.gz``, ``T2_ms.nii.gz``, ``PD.nii.gz`` from a directory.

    Returns
    -------
    maps : ``{"t1_ms", "t2_ms", "pd"}`` (X, Y, Z) float32.
    affine : (4, 4) of the T1 map (the others must share its grid).
    """
    d = Path(maps_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"maps directory {d} not found (it should hold "
                                f"{', '.join(MAP_FILES.values())}, as written by relaxomap predict)")
    vols = {k: load_nifti(d / f, f"{k} map") for k, f in MAP_FILES.items()}
    ref = vols["t1_ms"]
    for k, v in vols.items():
        if not same_grid(ref.shape, ref.affine, v.shape, v.affine):
            raise ValueError(f"{v.source} is not on the grid of {ref.source} (shapes {v.shape} vs {ref.shape}); "
                             "the three maps must share one grid")
        if np.any(v.data < 0):
            raise ValueError(f"{v.source} holds {int((v.data < 0).sum())} negative value(s); maps must be >= 0")
    return {k: v.data for k, v in vols.items()}, ref.affine


def render_volume(t1_ms: np.ndarray, t2_ms: np.ndarray, pd: np.ndarray, protocol: Protocol,
                  forward: str = "closed") -> np.ndarray:
    """Magnitude image of (X, Y, Z) maps under one protocol, slab by slab along the third axis.

    Parameters
    ----------
    t1_ms, t2_ms : (X, Y, Z) [ms]; pd : (X, Y, Z) relative (CSF = 1).
    protocol : the acquisition.
    forward : ``"closed"`` or ``"epg"`` (:func:`physics.forward.render`; for ``spgr``/``mprage``, which assume
        ideal spoiling, EPG equals the closed form and that is used).

    Returns
    -------
    (X, Y, Z) float32 image (PD-scaled, M0 = 1).
    """
    check_forward(forward)
    t1, t2, p = (np.asarray(a, np.float32) for a in (t1_ms, t2_ms, pd))
    if not (t1.shape == t2.shape == p.shape) or t1.ndim != 3:
        raise ValueError(f"maps must be three (X, Y, Z) arrays of one shape; got {t1.shape}, {t2.shape}, {p.shape}")
    out = np.empty(t1.shape, np.float32)
    for z0 in range(0, t1.shape[2], _SLAB):
        sl = np.s_[:, :, z0:z0 + _SLAB]
        out[sl] = render(t1[sl], t2[sl], p[sl], [protocol], forward=forward)[0]
    return out


def run_render(maps_dir: str | Path, protocol: Protocol, out_path: str | Path,
               forward: str = "closed") -> dict[str, Any]:
    """Render one image from a maps directory and write ``out_path`` (NIfTI) and its BIDS sidecar.

    Returns the sidecar dict (BIDS times in seconds; ``RelaxomapProtocol`` keeps the protocol in ms).
    """
    out = Path(out_path)
    name = out.name.lower()
    if not (name.endswith(".nii.gz") or name.endswith(".nii")):
        raise ValueError(f"--out must be a .nii or .nii.gz file; got {out}")
    maps, affine = load_maps(maps_dir)
    image = render_volume(maps["t1_ms"], maps["t2_ms"], maps["pd"], protocol, forward)
    effective = effective_forward(protocol, forward)
    sidecar = bids_sidecar_dict(
        protocol,
        RelaxomapSignalModel=effective,
        RelaxomapSignalModelRequested=forward,
        RelaxomapMaps=str(Path(maps_dir).resolve()),
        ImageComments="synthetic image rendered by relaxomap from T1/T2/PD maps (M0 = 1, PD-scaled magnitude)",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    save_nifti(out, image, affine, description=f"relaxomap render {protocol.kind}")
    write_json(Path(str(nifti_stem(out)) + ".json"), sidecar)
    return sidecar
