"""What a checkpoint records about its training data, and warnings when an input falls outside it.

The trainer keeps plain facts in every checkpoint's ``extra`` dict (:func:`train.trainer.train`):
``param_ranges`` (TR/TE/TI seen in the training samples [ms]), ``protocol_ranges`` (the generator's
:class:`synth.protocols.ProtocolRanges`) and ``store_config`` (the training store's whole SynthConfig).
:func:`training_ranges` reads the TR/TE/TI ranges and :func:`range_warnings` flags resolved values outside
them; :func:`training_inplane_mm` and :func:`voxel_warning` do the same for the in-plane voxel size; the
demo draws its case from :func:`protocol_ranges`, :func:`forward_model` and :func:`demo_field_t`;
:func:`trained_for` gives the sequence kinds and field strengths ``predict`` accepts without ``--force``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from relaxomap.physics.protocol import CONTRASTS
from relaxomap.train.clinical.sidecar import BIDS_KEYS, CONTRAST_LABELS, ParamValue

__all__ = [
    "training_ranges",
    "range_warnings",
    "training_inplane_mm",
    "voxel_warning",
    "store_config",
    "protocol_ranges",
    "forward_model",
    "demo_field_t",
    "TrainedFor",
    "trained_for",
]


def _span(values: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return (min(v[0] for v in vals), max(v[1] for v in vals))


def training_ranges(meta: Mapping[str, Any]) -> dict[str, dict[str, tuple[float, float]]] | None:
    """TR/TE/TI ranges [ms] the model was trained on, ``{contrast: {"tr_ms": (lo, hi), ...}}``, from the
    checkpoint's meta; ``None`` when the checkpoint does not record them.

    Accepted forms, in ``meta`` or ``meta["extra"]`` (where the trainer writes them): ``param_ranges``
    already in that form (the ranges seen in the training samples), or ``protocol_ranges`` (a
    :class:`synth.protocols.ProtocolRanges` dict), from which each contrast's range is the union over its
    kinds with non-zero probability. For ``ti_mode = "csf_null"`` the TI range is the CSF null of the TR and
    echo-train ranges at the configured fields, widened by the jitter.
    """
    if not meta:
        return None
    places = [meta, meta.get("extra") or {}]
    for place in places:
        direct = place.get("param_ranges")
        if isinstance(direct, Mapping):
            return {c: {f: (float(v[0]), float(v[1])) for f, v in direct[c].items()} for c in direct}
    pr = next((p["protocol_ranges"] for p in places if p.get("protocol_ranges") is not None), None)
    if pr is None:
        return None
    from relaxomap.synth.protocols import ProtocolRanges, csf_null_ti_ms
    from relaxomap.physics.tissues import tissue_values

    ranges = pr if isinstance(pr, ProtocolRanges) else ProtocolRanges.from_dict(dict(pr))
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for c in CONTRASTS:
        kinds = [k for k in getattr(ranges, c) if k.probability > 0]
        tis: list[tuple[float, float]] = []
        for k in kinds:
            if k.ti_mode == "none":
                tis.append((0.0, 0.0))
            elif k.ti_mode == "range":
                tis.append(tuple(k.ti_ms))
            else:  # csf_null: extremes over TR, readout and field; the readout shortens the null
                lo, hi = math.inf, -math.inf
                for f in ranges.fields_t:
                    t1 = tissue_values("CSF", f).t1_ms
                    for tr in k.tr_ms:
                        for ro in (k.etl[0] * k.esp_ms[0], k.etl[1] * k.esp_ms[1], 0.0):
                            for kap in k.inversion_efficiency:
                                ti = csf_null_ti_ms(tr, ro, t1, kap)
                                lo, hi = min(lo, ti), max(hi, ti)
                tis.append((lo * (1 - k.ti_jitter), hi * (1 + k.ti_jitter)))
        out[c] = {"tr_ms": _span([k.tr_ms for k in kinds]), "te_ms": _span([k.te_ms for k in kinds]),
                  "ti_ms": _span(tis)}
    return out


def range_warnings(params: Mapping[str, Mapping[str, ParamValue]],
                   ranges: Mapping[str, Mapping[str, tuple[float, float]]] | None) -> list[str]:
    """One warning per parameter outside the training range (1 % slack for rounding in headers)."""
    if not ranges:
        return []
    out = []
    for c, fields in params.items():
        for f, pv in fields.items():
            r = ranges.get(c, {}).get(f)
            if r is None:
                continue
            lo, hi = r
            slack = 0.01 * max(abs(hi), 1.0)
            if pv.value_ms < lo - slack or pv.value_ms > hi + slack:
                out.append(f"{CONTRAST_LABELS[c]} {BIDS_KEYS[f]} = {pv.value_ms:g} ms is outside the range the "
                           f"model was trained on ({lo:g}-{hi:g} ms); the maps may be unreliable")
    return out


def training_inplane_mm(meta: Mapping[str, Any]) -> float:
    """In-plane voxel size [mm] of the training slices, from the store's source config (1 mm when unknown:
    the procedural phantom's default and the BrainWeb maps)."""
    source = ((meta.get("extra") or {}).get("store_config") or {}).get("source") or {}
    if source.get("kind") == "phantom":
        vox = (source.get("phantom") or {}).get("voxel_mm")
    else:
        vox = (source.get("augment") or {}).get("voxel_mm")
    return float(min(vox[0], vox[1])) if vox else 1.0


def voxel_warning(voxel_mm: Sequence[float], train_mm: float, ratio: float = 1.5) -> list[str]:
    """A warning when the in-plane voxel size of the RAS-ordered grid is more than ``ratio`` times larger or
    smaller than the training one: the 2-D network then sees anatomy at a scale it was not trained on."""
    inplane = float(min(voxel_mm[0], voxel_mm[1]))
    if inplane > ratio * train_mm or inplane < train_mm / ratio:
        return [f"in-plane voxel size {voxel_mm[0]:.3g} x {voxel_mm[1]:.3g} mm differs from the training slices' "
                f"{train_mm:.3g} mm by more than a factor {ratio:g}; consider resampling the inputs to "
                f"~{train_mm:.3g} mm in-plane"]
    return []


def store_config(meta: Mapping[str, Any]) -> Mapping[str, Any]:
    """The training store's SynthConfig dict that the trainer keeps in ``meta["extra"]["store_config"]``."""
    cfg = (meta.get("extra") or {}).get("store_config")
    return cfg if isinstance(cfg, Mapping) else {}


def protocol_ranges(meta: Mapping[str, Any]) -> Any:
    """The checkpoint's training ProtocolRanges when recorded, else None (the defaults)."""
    from relaxomap.synth.protocols import ProtocolRanges

    pr = (meta.get("extra") or {}).get("protocol_ranges") or store_config(meta).get("protocols")
    return ProtocolRanges.from_dict(dict(pr)) if pr else None


def forward_model(meta: Mapping[str, Any]) -> str:
    """The training forward model (``closed`` / ``epg``) when the checkpoint records it, else ``closed``."""
    f = store_config(meta).get("forward")
    return str(f) if f in ("closed", "epg") else "closed"


def demo_field_t(meta: Mapping[str, Any], ranges: Any) -> float:
    """Field strength [T] of the demo: the training source's when recorded, else 3 T if the protocol ranges
    allow it, else their last field."""
    f = (store_config(meta).get("source") or {}).get("field_t")
    if f is not None:
        return float(f)
    fields = tuple(ranges.fields_t) if ranges is not None else (3.0,)
    return 3.0 if any(abs(x - 3.0) < 0.26 for x in fields) else float(fields[-1])


@dataclass(frozen=True)
class TrainedFor:
    """What a model was trained on, as far as ``predict`` checks its inputs against it.

    Attributes
    ----------
    kinds : ``{contrast: (kind, ...)}``: the sequence kinds drawn with probability > 0 for each contrast.
    fields_t : field strengths [T] of the training protocols.
    source : where this comes from, for messages.
    """

    kinds: Mapping[str, tuple[str, ...]]
    fields_t: tuple[float, ...]
    source: str


def trained_for(meta: Mapping[str, Any]) -> TrainedFor:
    """The sequence kinds and field strengths of the checkpoint's training protocols
    (:func:`protocol_ranges`), or of relaxomap's default ranges when the checkpoint records none."""
    from relaxomap.synth.protocols import ProtocolRanges

    ranges = protocol_ranges(meta)
    source = "the checkpoint's recorded training protocols"
    if ranges is None:
        ranges, source = ProtocolRanges(), "relaxomap's default training protocols (the checkpoint records none)"
    kinds = {c: tuple(k.kind for k in getattr(ranges, c) if k.probability > 0) for c in CONTRASTS}
    return TrainedFor(kinds=kinds, fields_t=tuple(float(f) for f in ranges.fields_t), source=source)
