"""How an input image was acquired, as far as its header says, and the sequence kind that follows.

Read from a BIDS sidecar (dcm2niix writes DICOM's keywords) or a DICOM header, with the same keywords:

===========================  ===========  ==============================================================
keyword                      DICOM tag    used for
===========================  ===========  ==============================================================
``ScanningSequence``         (0018,0020)  terms SE, IR, GR, EP, RM: spin echo, inversion, gradient echo ...
``MRAcquisitionType``        (0018,0023)  ``2D`` / ``3D``
``EchoTrainLength``          (0018,0091)  echoes per excitation (a long 3-D train: SPACE / CUBE / VISTA)
``MagneticFieldStrength``    (0018,0087)  field strength [T]
``ContrastBolusAgent``       (0018,0010)  a contrast agent was given (post-contrast image)
``ContrastBolusIngredient``  (0018,1048)  the same, as BIDS names it
===========================  ===========  ==============================================================

Every field is optional: an absent one is None (or empty) and assumed typical -- 2-D, no contrast agent, the
kind the contrast usually has. :func:`sequence_kind` names the :class:`physics.protocol.Protocol` kind of an
input from its ScanningSequence (or, without one, from the contrast and its TI); ``epi`` stands for echo-planar
readouts, which no Protocol kind describes. This module imports nothing from the clinical package, so
:mod:`train.clinical.sidecar` and :mod:`train.clinical.dicom` build an :class:`Acquisition` while reading.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Acquisition", "sequence_terms", "read_acquisition", "sequence_kind", "KIND_NAMES",
           "VFA_MIN_ECHO_TRAIN"]

#: Words for each kind in messages.
KIND_NAMES: dict[str, str] = {
    "se": "spin-echo",
    "tse": "turbo spin-echo",
    "ir_tse": "inversion-recovery turbo spin-echo",
    "spgr": "spoiled gradient-echo",
    "mprage": "MPRAGE (inversion-prepared gradient-echo)",
    "epi": "echo-planar",
}
#: A 3-D spin-echo train longer than this (or of unrecorded length) is taken for a variable-flip-angle sequence
#: (SPACE / CUBE / VISTA: 100-300 echoes); 2-D turbo spin echo trains are at most ~32 echoes long.
VFA_MIN_ECHO_TRAIN = 64
#: Values of ContrastBolusAgent / ContrastBolusIngredient that mean "none".
_NO_AGENT = {"", "none", "no", "n/a", "na", "0", "false", "nil"}
_AGENT_KEYS = ("ContrastBolusAgent", "ContrastBolusIngredient")


@dataclass(frozen=True)
class Acquisition:
    """What one input's header says about its acquisition (None / empty = not recorded).

    Attributes
    ----------
    scanning_sequence : upper-case ScanningSequence terms, e.g. ``("SE", "IR")``.
    mr_acquisition_type : ``"2D"`` or ``"3D"`` (upper case as written).
    echo_train_length : echoes per excitation.
    field_t : MagneticFieldStrength [T].
    contrast_agent : ``"ContrastBolusAgent = Gadovist"`` when a contrast agent is recorded, else ``""``.
    origin : where it was read (``"BIDS sidecar /d/a.json"``), for messages.
    """

    scanning_sequence: tuple[str, ...] = ()
    mr_acquisition_type: str | None = None
    echo_train_length: int | None = None
    field_t: float | None = None
    contrast_agent: str = ""
    origin: str = "no metadata"


def sequence_terms(value: Any) -> tuple[str, ...]:
    """ScanningSequence as upper-case terms: ``"SE_IR"`` (dcm2niix), ``"SE\\\\IR"``, ``["SE", "IR"]`` (pydicom)
    -> ``("SE", "IR")``; None -> ``()``."""
    if value is None:
        return ()
    try:
        items = [value] if isinstance(value, str) else list(value)
    except TypeError:  # a single non-string value
        items = [value]
    return tuple(t.upper() for item in items for t in re.split(r"[^A-Za-z]+", str(item)) if t)


def _number(raw: Any, key: str, where: str) -> float | None:
    """A header number; None when absent, empty or 0 (some converters write 0 for "not applicable")."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, (list, tuple)) and len(raw) == 1:
        raw = raw[0]
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {key} must be a number; got {raw!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{where}: {key} must be a finite number >= 0; got {raw!r}")
    return v if v > 0 else None


def read_acquisition(get: Callable[[str], Any], where: str) -> Acquisition:
    """The :class:`Acquisition` of one header.

    Parameters
    ----------
    get : ``key -> value or None`` (``sidecar_dict.get``, or ``lambda k: getattr(dataset, k, None)``).
    where : the header, for messages (``"BIDS sidecar /d/a.json"``).

    Raises
    ------
    ValueError naming ``where`` and the field: EchoTrainLength not a whole number, MagneticFieldStrength not a
    number of tesla in [0, 21] (0 or empty counts as not recorded), a negative or non-numeric value.
    """
    etl = _number(get("EchoTrainLength"), "EchoTrainLength", where)
    if etl is not None and etl != round(etl):
        raise ValueError(f"{where}: EchoTrainLength must be a whole number of echoes; got {etl:g}")
    field = _number(get("MagneticFieldStrength"), "MagneticFieldStrength", where)
    if field is not None and field > 21.0:
        raise ValueError(f"{where}: MagneticFieldStrength = {field:g} is not a field strength in tesla (0-21 T); "
                         "was it written in gauss or mT?")
    agent = ""
    for key in _AGENT_KEYS:
        raw = get(key)
        text = " ".join(str(v) for v in raw) if isinstance(raw, (list, tuple)) else ("" if raw is None else str(raw))
        if text.strip().lower() not in _NO_AGENT:
            agent = f"{key} = {text.strip()}"
            break
    acq_type = get("MRAcquisitionType")
    return Acquisition(scanning_sequence=sequence_terms(get("ScanningSequence")),
                       mr_acquisition_type=str(acq_type).strip().upper() if acq_type not in (None, "") else None,
                       echo_train_length=None if etl is None else int(etl), field_t=field, contrast_agent=agent,
                       origin=where)


def sequence_kind(contrast: str, acq: Acquisition, ti_ms: float) -> tuple[str, str]:
    """The sequence kind of an input and why: ``(kind, reason)``.

    From ScanningSequence when recorded: GR -> ``spgr`` (``mprage`` with IR), EP -> ``epi``, SE / IR ->
    ``ir_tse`` with IR, else ``tse`` (echo train > 1) or ``se``. Without it: a FLAIR is ``ir_tse``; a T1w / T2w
    is ``ir_tse`` when TI > 0 ms, else ``tse`` / ``se`` by the echo train length.

    Parameters
    ----------
    contrast : ``"t1w"``, ``"t2w"`` or ``"flair"``.
    acq : the input's header facts.
    ti_ms : the resolved inversion time [ms] (0 = none).
    """
    terms = set(acq.scanning_sequence)
    seq = f"ScanningSequence {'_'.join(acq.scanning_sequence)}"
    etl = acq.echo_train_length
    if "GR" in terms:
        return ("mprage" if "IR" in terms else "spgr"), f"{seq}: gradient echo"
    if "EP" in terms:
        return "epi", f"{seq}: echo-planar readout"
    if terms & {"SE", "IR"}:
        inverts, why = "IR" in terms, seq + (" names inversion recovery" if "IR" in terms
                                              else " names no inversion recovery")
    elif contrast == "flair":
        inverts, why = True, "a FLAIR is inversion-prepared (no ScanningSequence recorded)"
    else:
        inverts = ti_ms > 0
        why = f"InversionTime {ti_ms:g} ms (no ScanningSequence recorded)" if inverts else \
            "no inversion time, no ScanningSequence recorded"
    if inverts:
        return "ir_tse", why
    return ("tse" if etl is not None and etl > 1 else "se"), why
