"""Synthetic MRI from T1 / T2 / PD maps (predicted or true) at any protocol: ``relaxomap render``.

The maps directory is what ``relaxomap predict`` writes (``T1_ms.nii.gz``, ``T2_ms.nii.gz``, ``PD.nii.gz``, one
grid). The image is :func:`physics.forward.render` with ``forward="closed"`` (closed-form steady state, every
kind) or ``forward="epg"`` (extended phase graphs for the spin-echo kinds: imperfect refocusing and stimulated
echoes), written as float32 NIfTI with the maps' affine and a BIDS sidecar (times in seconds), both
atomically. The destination is checked first (:func:`relaxomap.atomic.check_output_file`): an existing file
is replaced only with ``overwrite``, and a destination that cannot be written stops the command before the
maps are read.

When ``--te`` is given without ``--esp`` for a turbo spin-echo kind, the echo spacing is derived from TE (the
spacing nearest the preset's, or 10 ms, of which TE is a whole multiple: :func:`train.clinical.sidecar.
echo_spacing_ms`), and the echo train is lengthened to reach TE or shortened to fit in TR when the preset's
does not; every value chosen this way is reported (``RelaxomapDerived`` in the sidecar, and the summary).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from relaxomap.atomic import atomic_path, check_output_file
from relaxomap.physics.forward import check_forward, effective_forward, render
from relaxomap.physics.protocol import PRESETS, SEQUENCE_KINDS, Protocol, preset
from relaxomap.train.clinical.map_files import MAP_FILES
from relaxomap.train.clinical.nifti import load_nifti, nifti_stem, save_nifti, write_json
from relaxomap.train.clinical.resample import same_grid
from relaxomap.train.clinical.sidecar import bids_sidecar_dict, echo_spacing_ms

__all__ = ["SEQ_ALIASES", "build_protocol", "load_maps", "render_volume", "run_render", "sidecar_of"]

#: ``--seq`` names that stand for a clinical preset (3 T values; ``--tr`` etc. override single fields).
SEQ_ALIASES: dict[str, str] = {"t1w": "t1w_se_3t", "t2w": "t2w_tse_3t", "flair": "flair_3t"}
#: Slices per signal call (bounds the memory of the EPG state arrays).
_SLAB = 16
_FLAGS = {"tr_ms": "--tr", "te_ms": "--te", "ti_ms": "--ti", "etl": "--etl", "esp_ms": "--esp",
          "flip_deg": "--flip", "refocus_deg": "--refocus"}
#: Echo spacing [ms] that a derived spacing stays near when no preset gives one.
_DEFAULT_ESP_MS = 10.0


def _derive_train(kind: str, given: dict[str, Any], base: Protocol | None, derived: dict[str, str]) -> None:
    """Fill ``esp_ms`` (and ``etl``) of a turbo spin-echo kind from ``--te`` when ``--esp`` is not given.

    The spacing kept is the preset's when TE is a whole multiple of it; otherwise the one nearest it (or
    :data:`_DEFAULT_ESP_MS`) of which TE is a whole multiple. With a preset's echo train, the train is
    lengthened to reach TE, or shortened (not below TE's echo) to fit in TR after TI. Each choice is noted in
    ``derived`` (field -> sentence).
    """
    if kind not in ("tse", "ir_tse") or "te_ms" not in given:
        return
    te = float(given["te_ms"])
    if "esp_ms" in given:
        esp = float(given["esp_ms"])
    else:
        near = base.esp_ms if base is not None else _DEFAULT_ESP_MS
        k = te / near
        if base is not None and abs(k - round(k)) <= 1e-3 * max(1.0, k):
            esp = near  # TE is an echo of the preset's spacing
        else:
            esp = given["esp_ms"] = echo_spacing_ms(te, near)
            derived["esp_ms"] = (f"{esp:g} ms: TE {te:g} ms = {round(te / esp)} x ESP (--esp not given; the "
                                 f"spacing nearest {near:g} ms of which TE is a whole multiple)")
    k = max(1, round(te / esp))
    if base is None or "etl" in given:
        return
    tr = float(given.get("tr_ms", base.tr_ms))
    ti = float(given.get("ti_ms", base.ti_ms)) if kind == "ir_tse" else 0.0
    etl = max(base.etl, k)
    fits = int((tr - ti) // esp) if tr > ti else 0
    if etl > fits >= k:
        etl = fits
    if etl != base.etl:
        given["etl"] = etl
        derived["etl"] = (f"{etl}: the preset's {base.etl} echoes of {esp:g} ms "
                          + ("do not reach TE" if etl > base.etl else f"do not fit in TR {tr:g} ms after TI {ti:g} ms")
                          + " (--etl not given)")


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
    derived: dict[str, str] | None = None,
) -> Protocol:
    """The :class:`Protocol` described by the ``render`` options.

    ``seq`` is a sequence kind (``se``, ``tse``, ``ir_tse``, ``spgr``, ``mprage``) or an alias of
    :data:`SEQ_ALIASES`. With ``preset_name`` or an alias the preset is the starting point and each given
    option replaces one field; otherwise TR and TE are required, TI for ``ir_tse``/``mprage``, ETL for
    ``tse``/``ir_tse``/``mprage``, ESP for ``mprage`` and the flip angle for ``spgr``/``mprage``. For
    ``tse``/``ir_tse`` a TE without ESP derives the echo spacing (module docstring); pass a dict as ``derived``
    to receive what was chosen (field -> sentence).

    Raises
    ------
    ValueError
        Naming the missing option, an unknown sequence or preset, a preset of another kind than ``seq``,
        or (from :class:`Protocol`) an inconsistent protocol, with the options that set each field.
    """
    given = {"tr_ms": tr_ms, "te_ms": te_ms, "ti_ms": ti_ms, "etl": etl, "esp_ms": esp_ms, "flip_deg": flip_deg,
             "refocus_deg": refocus_deg}
    given = {k: v for k, v in given.items() if v is not None}
    derived = {} if derived is None else derived
    if seq not in SEQUENCE_KINDS and seq not in SEQ_ALIASES:
        raise ValueError(f"--seq must be one of {sorted(SEQUENCE_KINDS) + sorted(SEQ_ALIASES)}; got {seq!r}")
    base_name = preset_name or SEQ_ALIASES.get(seq)
    base = preset(base_name) if base_name else None
    kind = seq if seq in SEQUENCE_KINDS else base.kind  # type: ignore[union-attr]
    if base is not None and base.kind != kind:
        raise ValueError(f"--preset {base_name} is a {base.kind!r} protocol but --seq is {seq!r}; use matching "
                         f"ones (presets of kind {kind!r}: "
                         f"{', '.join(n for n, p in sorted(PRESETS.items()) if p.kind == kind) or 'none'})")
    _derive_train(kind, given, base, derived)
    try:
        if base is not None:  # (for "se" the Protocol itself sets esp_ms = te_ms)
            label = base.name + ("+" + ",".join(sorted(given)) if given else "")
            return base.with_(name=label, **given)
        need = ["tr_ms", "te_ms"]
        if kind in ("ir_tse", "mprage"):
            need.append("ti_ms")
        if kind in ("tse", "ir_tse", "mprage"):
            need += ["etl", "esp_ms"]  # (esp_ms is derived from TE for tse / ir_tse)
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


def sidecar_of(out_path: str | Path) -> Path:
    """The BIDS sidecar written beside a rendered image: ``dir/name.nii.gz`` -> ``dir/name.json``."""
    return Path(str(nifti_stem(out_path)) + ".json")


def run_render(maps_dir: str | Path, protocol: Protocol, out_path: str | Path,
               forward: str = "closed", *, overwrite: bool = False,
               derived: dict[str, str] | None = None) -> dict[str, Any]:
    """Render one image from a maps directory and write ``out_path`` (NIfTI) and its BIDS sidecar, atomically.

    Parameters
    ----------
    maps_dir : folder with ``T1_ms.nii.gz``, ``T2_ms.nii.gz``, ``PD.nii.gz``.
    protocol : the acquisition to render.
    out_path : ``.nii`` / ``.nii.gz`` file; the sidecar is written beside it (:func:`sidecar_of`).
    forward : ``"closed"`` or ``"epg"``.
    overwrite : replace an existing image / sidecar (otherwise refused).
    derived : what :func:`build_protocol` chose for options not given; kept as ``RelaxomapDerived``.

    Returns the sidecar dict (BIDS times in seconds; ``RelaxomapProtocol`` keeps the protocol in ms).

    Raises
    ------
    ValueError : ``out_path`` is not a NIfTI name, exists without ``overwrite`` or cannot be written (checked
        before the maps are read); the maps are missing, off one grid or negative.
    """
    out = Path(out_path)
    name = out.name.lower()
    if not (name.endswith(".nii.gz") or name.endswith(".nii")):
        raise ValueError(f"--out must be a .nii or .nii.gz file; got {out}")
    check_output_file(out, overwrite=overwrite)
    check_output_file(sidecar_of(out), overwrite=overwrite)
    maps, affine = load_maps(maps_dir)
    image = render_volume(maps["t1_ms"], maps["t2_ms"], maps["pd"], protocol, forward)
    effective = effective_forward(protocol, forward)
    sidecar = bids_sidecar_dict(
        protocol,
        RelaxomapSignalModel=effective,
        RelaxomapSignalModelRequested=forward,
        RelaxomapMaps=str(Path(maps_dir).resolve()),
        ImageComments="synthetic image rendered by relaxomap from T1/T2/PD maps (M0 = 1, PD-scaled magnitude)",
        **({"RelaxomapDerived": dict(derived)} if derived else {}),
    )
    with atomic_path(out) as tmp_image, atomic_path(sidecar_of(out)) as tmp_sidecar:
        save_nifti(tmp_image, image, affine, description=f"relaxomap render {protocol.kind}")
        write_json(tmp_sidecar, sidecar)
    return sidecar
