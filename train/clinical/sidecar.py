"""Sequence parameters (TR, TE, TI) of each input contrast: BIDS sidecars, DICOM headers, flags, precedence.

Precedence, highest first: command-line flag (``--flair-ti 2500``, ms) > the file's own metadata (BIDS JSON
sidecar next to a NIfTI file, or the DICOM header of a series) > nothing. TI of the T1w and T2w images
defaults to 0 ms (no inversion pulse) when no source gives it, unless the metadata's ScanningSequence says
inversion recovery (``IR``); every other missing value stops the run with a message naming the value and how
to give it. Each resolved value keeps a ``source`` string that goes into
``provenance.json``.

Units: BIDS stores RepetitionTime / EchoTime / InversionTime in **seconds**; DICOM (0018,0080/0081/0082)
and the flags use **milliseconds**. :func:`seconds_to_ms` is the one place where seconds become ms. Every
time, whatever its source, must lie in the plausible range of its role (:data:`PLAUSIBLE_MS`): a value
outside is almost surely in the wrong unit, and the message says which ("written in ms?" for a BIDS time,
"written in seconds?" for a DICOM value or a flag).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from relaxomap.physics.protocol import CONTRASTS
from relaxomap.train.clinical.acquisition import Acquisition, read_acquisition, sequence_terms
from relaxomap.train.clinical.nifti import nifti_stem

__all__ = [
    "CONTRAST_LABELS",
    "PARAM_FIELDS",
    "BIDS_KEYS",
    "PLAUSIBLE_MS",
    "ParamValue",
    "FileParams",
    "seconds_to_ms",
    "ms_to_seconds",
    "sidecar_path",
    "inversion_hint",
    "check_plausible_time",
    "echo_spacing_ms",
    "read_bids_sidecar",
    "bids_sidecar_dict",
    "resolve_parameters",
    "flag_name",
    "protocol_from_sidecar",
]

#: Input contrasts in the model's channel order.
#: How each contrast is named in messages.
CONTRAST_LABELS: dict[str, str] = {"t1w": "T1w", "t2w": "T2w", "flair": "FLAIR"}
#: Parameter fields per contrast, in the model's parameter order [TR, TE, TI].
PARAM_FIELDS: tuple[str, ...] = ("tr_ms", "te_ms", "ti_ms")
#: BIDS / DICOM attribute name of each field.
BIDS_KEYS: dict[str, str] = {"tr_ms": "RepetitionTime", "te_ms": "EchoTime", "ti_ms": "InversionTime"}
#: Flag suffix of each field (``--t1w-tr``).
_FLAG_SUFFIX: dict[str, str] = {"tr_ms": "tr", "te_ms": "te", "ti_ms": "ti"}

#: DICOM ScanningSequence terms of each sequence kind, joined with "_" as dcm2niix writes them.
_SCANNING_SEQUENCE = {"se": "SE", "tse": "SE", "ir_tse": "SE_IR", "spgr": "GR", "mprage": "GR_IR"}
#: BIDS times are in seconds; 1 s = 1000 ms.
_MS_PER_S = 1000.0
#: Plausible range [ms] of each time for any MR sequence (TI = 0 means no inversion and is always allowed):
#: TR from ~1 ms (fast gradient echo) to 20 s, TE from 0.5 ms to 500 ms (3-D FLAIR's effective TE ~ 400 ms),
#: TI from 10 ms to 5 s. A value outside is almost surely written in the wrong unit.
PLAUSIBLE_MS: dict[str, tuple[float, float]] = {"tr_ms": (1.0, 20_000.0), "te_ms": (0.5, 500.0),
                                                "ti_ms": (10.0, 5_000.0)}
_ROLE = {"tr_ms": "a repetition time", "te_ms": "an echo time", "ti_ms": "an inversion time"}


@dataclass(frozen=True)
class ParamValue:
    """One resolved sequence parameter.

    Attributes
    ----------
    value_ms : the value [ms].
    source : where it came from, e.g. ``"sidecar /d/a.json: RepetitionTime = 0.6 s"``.
    """

    value_ms: float
    source: str


@dataclass
class FileParams:
    """Parameters found in one input's own metadata (sidecar or DICOM header).

    Attributes
    ----------
    values : ``{"tr_ms" | "te_ms" | "ti_ms": ParamValue}`` for the fields that were present.
    origin : what was looked at, used when a field is missing: ``"sidecar /d/a.json"``, ``"no sidecar
        /d/a.json"``, ``"DICOM header of series /d/t1"``.
    inversion_hint : non-empty (e.g. ``"ScanningSequence SE_IR"``) when the metadata says inversion recovery;
        a missing TI is then an error instead of defaulting to 0.
    acquisition : what else the header says (sequence, 2-D / 3-D, echo train, field, contrast agent):
        :class:`train.clinical.acquisition.Acquisition`.
    """

    values: dict[str, ParamValue] = field(default_factory=dict)
    origin: str = "no metadata"
    inversion_hint: str = ""
    acquisition: Acquisition = field(default_factory=Acquisition)


def inversion_hint(scanning_sequence: Any) -> str:
    """``"ScanningSequence ..."`` when the DICOM / BIDS ScanningSequence lists ``IR`` (inversion recovery), else ``""``.

    ScanningSequence (0018,0020) holds terms SE, IR, GR, EP, RM; dcm2niix writes them joined by ``_``
    (``"SE_IR"``) in BIDS sidecars, pydicom as a list.
    """
    if "IR" not in sequence_terms(scanning_sequence):
        return ""
    items = [scanning_sequence] if isinstance(scanning_sequence, str) else list(scanning_sequence)
    return f"ScanningSequence {'/'.join(str(i) for i in items)}"


def check_plausible_time(fld: str, value_ms: float, where: str, unit: str) -> None:
    """Refuse a TR / TE / TI outside the plausible range of its role (:data:`PLAUSIBLE_MS`).

    Parameters
    ----------
    fld : ``"tr_ms"``, ``"te_ms"`` or ``"ti_ms"``.
    value_ms : the value [ms] (a BIDS value already converted with :func:`seconds_to_ms`).
    where : its source, for the message (``"BIDS sidecar /d/a.json"``, ``"flag --t1w-te"``).
    unit : the unit it was *written* in: ``"s"`` (BIDS) or ``"ms"`` (DICOM, flags); the message quotes the
        value in that unit and suggests the likely slip ("written in ms?" / "written in seconds?").

    Raises
    ------
    ValueError naming the source, the field, the value and the allowed range.
    """
    if fld == "ti_ms" and value_ms == 0:
        return
    lo, hi = PLAUSIBLE_MS[fld]
    if lo <= value_ms <= hi:
        return
    key = BIDS_KEYS[fld]
    if unit == "s":
        v = ms_to_seconds(value_ms)
        hint = f" (was it written in ms? {v:g} ms = {v / _MS_PER_S:g} s)" if value_ms > hi else ""
        raise ValueError(f"{where}: {key} = {v:g} s is outside the plausible range of {_ROLE[fld]} "
                         f"({ms_to_seconds(lo):g}-{ms_to_seconds(hi):g} s); BIDS times are in seconds{hint}")
    hint = f" (was it written in seconds? {value_ms:g} s = {value_ms * _MS_PER_S:g} ms)" if value_ms < lo else ""
    raise ValueError(f"{where}: {key} = {value_ms:g} ms is outside the plausible range of {_ROLE[fld]} "
                     f"({lo:g}-{hi:g} ms); DICOM times and the flags are in ms{hint}")


def seconds_to_ms(value_s: float) -> float:
    """Convert a BIDS time [s] to [ms] (the one seconds -> ms conversion of the package)."""
    return float(value_s) * _MS_PER_S


def ms_to_seconds(value_ms: float) -> float:
    """Convert [ms] to a BIDS time [s] (for writing sidecars)."""
    return float(value_ms) / _MS_PER_S


def flag_name(contrast: str, field_name: str) -> str:
    """Command-line flag that gives ``field_name`` of ``contrast``: ``flag_name("flair", "ti_ms") == "--flair-ti"``."""
    return f"--{contrast}-{_FLAG_SUFFIX[field_name]}"


def sidecar_path(nifti_path: str | Path) -> Path:
    """The BIDS sidecar beside a NIfTI file: ``dir/name.nii.gz`` -> ``dir/name.json``."""
    stem = nifti_stem(nifti_path)
    return stem.with_name(stem.name + ".json")


def _time_value(raw: Any, key: str, where: str) -> float:
    if isinstance(raw, list):
        if len(raw) != 1:
            raise ValueError(
                f"{where}: {key} is a list of {len(raw)} values ({raw}); relaxomap takes one value per image "
                "(split multi-echo / multi-TI data into single volumes)"
            )
        raw = raw[0]
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError(f"{where}: {key} must be a number of seconds; got {raw!r}")
    v = float(raw)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{where}: {key} must be a finite number of seconds >= 0; got {v}")
    return v


def read_bids_sidecar(path: str | Path) -> FileParams:
    """Read RepetitionTime, EchoTime and InversionTime [s] from a BIDS JSON sidecar and return them in ms.

    A missing sidecar is not an error here (flags may give every value): the result then has no values and
    ``origin == "no sidecar <path>"``.

    Raises
    ------
    ValueError
        If the file is not valid JSON, not an object, a time is not a single number of seconds in its plausible
        range (:func:`check_plausible_time`), or an acquisition field is malformed
        (:func:`train.clinical.acquisition.read_acquisition`).
    """
    p = Path(path)
    if not p.exists():
        return FileParams(values={}, origin=f"no sidecar {p}")
    try:
        obj = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"BIDS sidecar {p} could not be read as JSON: {err}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"BIDS sidecar {p} must hold a JSON object; got {type(obj).__name__}")
    values: dict[str, ParamValue] = {}
    for fld, key in BIDS_KEYS.items():
        if key in obj and obj[key] is not None:
            v_s = _time_value(obj[key], key, f"BIDS sidecar {p}")
            check_plausible_time(fld, seconds_to_ms(v_s), f"BIDS sidecar {p}", "s")
            values[fld] = ParamValue(seconds_to_ms(v_s), f"sidecar {p}: {key} = {v_s:g} s")
    return FileParams(values=values, origin=f"sidecar {p}",
                      inversion_hint=inversion_hint(obj.get("ScanningSequence")),
                      acquisition=read_acquisition(obj.get, f"BIDS sidecar {p}"))


def bids_sidecar_dict(protocol: Any, **extra: Any) -> dict[str, Any]:
    """BIDS sidecar fields (seconds, degrees) for a :class:`physics.protocol.Protocol`.

    Returns RepetitionTime, EchoTime, InversionTime (when the kind inverts), ScanningSequence, FlipAngle,
    EchoTrainLength, RefocusingFlipAngle (spin-echo kinds), MagneticFieldStrength, plus ``RelaxomapProtocol``
    (the full protocol in ms, for exact round trips) and ``extra``.
    """
    d: dict[str, Any] = {
        "RepetitionTime": ms_to_seconds(protocol.tr_ms),
        "EchoTime": ms_to_seconds(protocol.te_ms),
    }
    if protocol.ti_ms > 0:
        d["InversionTime"] = ms_to_seconds(protocol.ti_ms)
    d["ScanningSequence"] = _SCANNING_SEQUENCE[protocol.kind]
    d["FlipAngle"] = float(protocol.flip_deg)
    if protocol.kind in ("tse", "ir_tse", "mprage"):
        d["EchoTrainLength"] = int(protocol.etl)
    if protocol.kind in ("se", "tse", "ir_tse"):
        d["RefocusingFlipAngle"] = float(protocol.refocus_deg)
    d["MagneticFieldStrength"] = float(protocol.field_t)
    d["RelaxomapProtocol"] = protocol.to_dict()
    d.update(extra)
    return d


def resolve_parameters(
    contrast: str,
    file_params: FileParams,
    flags: Mapping[str, float | None],
) -> dict[str, ParamValue]:
    """TR, TE, TI [ms] of one contrast: flags override the file's metadata; TI of T1w/T2w defaults to 0.

    Parameters
    ----------
    contrast : ``"t1w"``, ``"t2w"`` or ``"flair"``.
    file_params : what the sidecar / DICOM header held (:func:`read_bids_sidecar`,
        :func:`train.clinical.dicom.dicom_params`).
    flags : ``{"tr_ms": 600.0 | None, ...}`` from the command line [ms]; None = not given.

    Returns
    -------
    ``{"tr_ms": ParamValue, "te_ms": ParamValue, "ti_ms": ParamValue}``

    Raises
    ------
    ValueError
        Naming the missing value and the flag that gives it, e.g. "FLAIR InversionTime missing: no sidecar
        /d/c.json; pass --flair-ti MS"; or a flag value that is not a finite number >= 0 (> 0 for TR, TE) in the
        plausible range of its role (:func:`check_plausible_time`).
    """
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {CONTRASTS}; got {contrast!r}")
    label = CONTRAST_LABELS[contrast]
    out: dict[str, ParamValue] = {}
    for fld in PARAM_FIELDS:
        flag = flag_name(contrast, fld)
        given = flags.get(fld)
        if given is not None:
            v = float(given)
            if not math.isfinite(v) or v < 0 or (fld != "ti_ms" and v == 0):
                allowed = ">= 0" if fld == "ti_ms" else "> 0"
                raise ValueError(f"{flag} must be a finite number of ms {allowed}; got {given!r}")
            check_plausible_time(fld, v, f"flag {flag}", "ms")
            out[fld] = ParamValue(v, f"flag {flag} = {v:g} ms")
        elif fld in file_params.values:
            out[fld] = file_params.values[fld]
        elif fld == "ti_ms" and contrast != "flair" and file_params.inversion_hint:
            raise ValueError(f"{label} InversionTime missing although {file_params.origin} says inversion recovery "
                             f"({file_params.inversion_hint}); pass {flag} MS")
        elif fld == "ti_ms" and contrast != "flair":
            out[fld] = ParamValue(0.0, f"default 0 ms: no InversionTime in {file_params.origin} "
                                       f"(no inversion pulse assumed; pass {flag} MS for an inversion-prepared image)")
        else:
            raise ValueError(f"{label} {BIDS_KEYS[fld]} missing: {file_params.origin}; pass {flag} MS")
    for fld in ("tr_ms", "te_ms"):
        if out[fld].value_ms <= 0:
            raise ValueError(f"{label} {BIDS_KEYS[fld]} must be > 0 ms; got {out[fld].value_ms:g} ms "
                             f"({out[fld].source}); pass {flag_name(contrast, fld)} MS")
    if contrast == "flair" and out["ti_ms"].value_ms <= 0:
        raise ValueError(f"FLAIR InversionTime must be > 0 ms; got {out['ti_ms'].value_ms:g} ms "
                         f"({out['ti_ms'].source}); pass --flair-ti MS")
    return out


def echo_spacing_ms(te_ms: float, near_ms: float = 10.0) -> float:
    """The echo spacing [ms] nearest ``near_ms`` of which the effective TE is a whole multiple:
    ``te_ms / max(1, round(te_ms / near_ms))`` (the spacing is rarely in a header; ``render`` uses it when
    ``--te`` is given without ``--esp``)."""
    return te_ms / max(1, round(te_ms / near_ms))


def protocol_from_sidecar(path: str | Path, contrast: str, field_t: float | None = None) -> Any:
    """The :class:`physics.protocol.Protocol` a BIDS sidecar describes, for one input ``contrast``.

    A sidecar relaxomap wrote (``RelaxomapProtocol``) is read exactly. Otherwise the kind follows the contrast
    and the header: ``ir_tse`` with an ``InversionTime`` (or ScanningSequence IR), else ``tse`` when
    ``EchoTrainLength`` > 1, else ``se``; the echo spacing, not a BIDS field, is the one near 10 ms of which
    TE is a whole multiple; ``RefocusingFlipAngle``, ``FlipAngle`` and ``MagneticFieldStrength`` are used when
    present (``field_t`` overrides the last).

    Raises
    ------
    ValueError naming the file and the missing or bad field.
    """
    from relaxomap.physics.protocol import Protocol

    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {CONTRASTS}; got {contrast!r}")
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"BIDS sidecar {p} not found")
    params = read_bids_sidecar(p)
    obj = json.loads(p.read_text())
    if isinstance(obj.get("RelaxomapProtocol"), dict):
        prot = Protocol.from_dict(obj["RelaxomapProtocol"])
        return prot if field_t is None else prot.with_(field_t=field_t)
    missing = [BIDS_KEYS[f] for f in ("tr_ms", "te_ms") if f not in params.values]
    if missing:
        raise ValueError(f"BIDS sidecar {p} lacks {', '.join(missing)} (seconds), needed for the {contrast} protocol")
    tr, te = params.values["tr_ms"].value_ms, params.values["te_ms"].value_ms
    ti = params.values["ti_ms"].value_ms if "ti_ms" in params.values else 0.0
    etl = int(obj.get("EchoTrainLength") or 1)
    kind = "ir_tse" if ti > 0 or params.inversion_hint else ("tse" if etl > 1 else "se")
    if kind == "ir_tse" and ti <= 0:
        raise ValueError(f"BIDS sidecar {p} says inversion recovery but gives no InversionTime")
    esp = echo_spacing_ms(te) if kind != "se" else te
    extra = {k: float(obj[key]) for k, key in (("refocus_deg", "RefocusingFlipAngle"), ("flip_deg", "FlipAngle"))
             if isinstance(obj.get(key), (int, float))}
    field = field_t if field_t is not None else obj.get("MagneticFieldStrength")
    try:
        return Protocol(kind, tr_ms=tr, te_ms=te, ti_ms=ti, etl=max(etl, round(te / esp)) if kind != "se" else 1,
                        esp_ms=esp, **extra, **({"field_t": float(field)} if field is not None else {}),
                        name=f"{contrast}_{p.stem}")
    except (TypeError, ValueError) as err:
        raise ValueError(f"BIDS sidecar {p}: {err}") from None
