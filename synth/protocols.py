"""Randomised clinical protocols: the ranges (configuration) and the sampler (one Protocol per contrast).

Every training sample carries three contrasts in a fixed order, the *contrasts* :data:`CONTRASTS`:

``t1w``    T1-weighted: spin echo (``se``), turbo spin echo (``tse``), T1-FLAIR (``ir_tse`` with a short TI);
           optionally ``spgr`` / ``mprage`` (probability 0 in the defaults).
``t2w``    T2-weighted turbo spin echo (``tse``; ``se`` allowed).
``flair``  T2-FLAIR (``ir_tse`` with TI near the CSF null).

The ranges are configuration, not code: :class:`ProtocolRanges` round-trips through JSON, e.g.::

    {"fields_t": [1.5, 3.0],
     "t1w": [{"kind": "se", "probability": 0.35, "tr_ms": [400, 800], "te_ms": [8, 20]}, ...],
     "t2w": [{"kind": "tse", "tr_ms": [2500, 6000], "te_ms": [80, 120], "etl": [8, 24], "esp_ms": [8, 14]}],
     "flair": [{"kind": "ir_tse", "ti_mode": "csf_null", "ti_jitter": 0.05, ...}]}

Every range is a closed interval ``[lo, hi]`` sampled uniformly (``etl`` uniformly over the integers).
:func:`sample_protocols` returns protocols that are valid by construction: for TSE kinds it draws the echo
spacing, then the echo index k so that TE = k·ESP falls in the TE range (the nearest k when none does), then
ETL >= k, shortened when needed so that the echo train fits in TR (after TI for ``ir_tse``).

With ``ti_mode="csf_null"`` the inversion time is drawn around the CSF null of the drawn TR and echo train
(:func:`csf_null_ti_ms`), times ``1 + U(-ti_jitter, ti_jitter)``; with ``ti_mode="range"`` from ``ti_ms``.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from relaxomap.physics.checks import check_finite_range, check_range_pair, config_from_dict
from relaxomap.physics.protocol import CONTRASTS, Protocol
from relaxomap.physics.tissues import tissue_values

__all__ = [
    "CONTRAST_KINDS",
    "KindRanges",
    "ProtocolRanges",
    "sample_protocols",
    "sample_protocol",
    "csf_null_ti_ms",
]

#: Contrast contrasts, in the channel order of every sample.
#: Sequence kinds allowed per contrast.
CONTRAST_KINDS: dict[str, tuple[str, ...]] = {
    "t1w": ("se", "tse", "ir_tse", "spgr", "mprage"),
    "t2w": ("se", "tse"),
    "flair": ("ir_tse",),
}
_TI_MODES = ("none", "range", "csf_null")
_MAX_TIME_MS = 60_000.0
_FIELD_TOL_T = 0.26  # the tissue table's tolerance on field strength


Range = tuple[float, float]


@dataclass(frozen=True)
class KindRanges:
    """Ranges for one sequence kind within one contrast.

    Parameters
    ----------
    kind : ``se``, ``tse``, ``ir_tse``, ``spgr`` or ``mprage``.
    probability : relative weight of this kind within its contrast (weights are normalised over the contrast).
    tr_ms, te_ms : [min, max] repetition / effective echo time [ms].
    ti_mode : ``"range"`` (draw TI from ``ti_ms``), ``"csf_null"`` (TI at the CSF null, ``ir_tse`` only) or
        ``"none"`` (kinds without inversion; the default for them).
    ti_ms : [min, max] inversion time [ms] for ``ti_mode="range"``.
    ti_jitter : relative half-width of the TI draw around the CSF null (``ti_mode="csf_null"``).
    etl : [min, max] echo train length (``tse``/``ir_tse``) or readout pulses (``mprage``).
    esp_ms : [min, max] echo spacing [ms] (TSE kinds; gradient-echo spacing for ``mprage``).
    flip_deg : [min, max] excitation flip angle [deg].
    refocus_deg : [min, max] refocusing flip angle [deg] (spin-echo kinds).
    inversion_efficiency : [min, max] κ of the inversion pulse (Mz -> -κ Mz).
    """

    kind: str
    probability: float = 1.0
    tr_ms: Range = (500.0, 500.0)
    te_ms: Range = (10.0, 10.0)
    ti_mode: str = ""
    ti_ms: Range = (0.0, 0.0)
    ti_jitter: float = 0.0
    etl: tuple[int, int] = (1, 1)
    esp_ms: Range = (10.0, 10.0)
    flip_deg: Range = (90.0, 90.0)
    refocus_deg: Range = (180.0, 180.0)
    inversion_efficiency: Range = (1.0, 1.0)

    def __post_init__(self) -> None:
        own = f"KindRanges[{self.kind}]"
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        kinds = sorted({k for ks in CONTRAST_KINDS.values() for k in ks})
        if self.kind not in kinds:
            raise ValueError(f"KindRanges.kind must be one of {kinds}; got {self.kind!r}")
        set_("probability", check_finite_range(own, "probability", self.probability, 0.0, math.inf))
        inverts = self.kind in ("ir_tse", "mprage")
        mode = self.ti_mode or ("range" if inverts else "none")
        if mode not in _TI_MODES:
            raise ValueError(f"{own}.ti_mode must be one of {list(_TI_MODES)}; got {mode!r}")
        if inverts and mode == "none":
            raise ValueError(f"{own}.ti_mode must be 'range' or 'csf_null' for an inverting kind; got 'none'")
        if not inverts and mode != "none":
            raise ValueError(f"{own}.ti_mode must be 'none' for kind {self.kind!r} (no inversion); got {mode!r}")
        if mode == "csf_null" and self.kind != "ir_tse":
            raise ValueError(f"{own}.ti_mode 'csf_null' is only defined for 'ir_tse'; got kind {self.kind!r}")
        set_("ti_mode", mode)
        tr = check_range_pair(own, "tr_ms", self.tr_ms, 0.0, _MAX_TIME_MS, lo_open=True)
        te = check_range_pair(own, "te_ms", self.te_ms, 0.0, _MAX_TIME_MS, lo_open=True)
        if te[1] >= tr[0]:
            raise ValueError(f"{own}.te_ms max ({te[1]:g}) must be < tr_ms min ({tr[0]:g})")
        ti = check_range_pair(own, "ti_ms", self.ti_ms, 0.0, _MAX_TIME_MS)
        jit = check_finite_range(own, "ti_jitter", self.ti_jitter, 0.0, 0.5, hi_open=True)
        etl = check_range_pair(own, "etl", self.etl, 1, 1024, integer=True)
        esp = check_range_pair(own, "esp_ms", self.esp_ms, 0.0, _MAX_TIME_MS)
        flip = check_range_pair(own, "flip_deg", self.flip_deg, 0.0, 180.0, lo_open=True)
        ref = check_range_pair(own, "refocus_deg", self.refocus_deg, 0.0, 180.0, lo_open=True)
        kap = check_range_pair(own, "inversion_efficiency", self.inversion_efficiency, 0.0, 1.0)
        if mode == "range":
            if ti[0] <= 0:
                raise ValueError(f"{own}.ti_ms must be > 0; got [{ti[0]:g}, {ti[1]:g}]")
            if ti[1] >= tr[0]:
                raise ValueError(f"{own}.ti_ms max ({ti[1]:g}) must be < tr_ms min ({tr[0]:g}) (TI >= TR)")
        if self.kind in ("tse", "ir_tse", "mprage") and esp[0] <= 0:
            raise ValueError(f"{own}.esp_ms must be > 0; got [{esp[0]:g}, {esp[1]:g}]")
        if self.kind in ("tse", "ir_tse"):
            ti_hi = ti[1] if mode == "range" else 0.0
            if mode == "csf_null":  # the null lies below T1_csf·ln 2 (κ <= 1); CSF T1 < 4.5 s at 1.5–3 T
                ti_hi = 4500.0 * math.log(2.0) * (1.0 + jit)
            if ti_hi + esp[1] >= tr[0]:
                raise ValueError(
                    f"{own}: one echo (esp_ms max {esp[1]:g}) must fit in tr_ms min ({tr[0]:g})"
                    + (f" after TI up to {ti_hi:g} ms" if ti_hi else "")
                )
        if self.kind == "mprage":
            n_before = etl[1] // 2
            if n_before * esp[1] >= tr[0] - (etl[1] - n_before) * esp[1] or te[1] >= esp[0]:
                raise ValueError(
                    f"{own}: readout etl·esp_ms (up to {etl[1] * esp[1]:g} ms) must fit in tr_ms min ({tr[0]:g}) "
                    f"and te_ms max ({te[1]:g}) must be < esp_ms min ({esp[0]:g})"
                )
        if self.kind == "spgr" and te[1] >= tr[0]:
            raise ValueError(f"{own}.te_ms max must be < tr_ms min; got {te[1]:g} >= {tr[0]:g}")
        for k, v in (("tr_ms", tr), ("te_ms", te), ("ti_ms", ti), ("ti_jitter", jit), ("etl", etl),
                     ("esp_ms", esp), ("flip_deg", flip), ("refocus_deg", ref), ("inversion_efficiency", kap)):
            set_(k, v)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "KindRanges":
        return config_from_dict(cls, d)


def _default_t1w() -> tuple[KindRanges, ...]:
    return (
        KindRanges("se", 0.35, tr_ms=(400.0, 800.0), te_ms=(8.0, 20.0), refocus_deg=(160.0, 180.0)),
        KindRanges("tse", 0.35, tr_ms=(400.0, 800.0), te_ms=(7.0, 20.0), etl=(2, 6), esp_ms=(6.0, 12.0),
                   refocus_deg=(120.0, 180.0)),
        KindRanges("ir_tse", 0.30, tr_ms=(1800.0, 2800.0), te_ms=(7.0, 20.0), ti_mode="range",
                   ti_ms=(700.0, 1000.0), etl=(4, 10), esp_ms=(7.0, 12.0), refocus_deg=(120.0, 180.0),
                   inversion_efficiency=(0.95, 1.0)),
        KindRanges("spgr", 0.0, tr_ms=(15.0, 30.0), te_ms=(2.0, 6.0), flip_deg=(15.0, 35.0)),
        KindRanges("mprage", 0.0, tr_ms=(1900.0, 2500.0), te_ms=(2.0, 4.0), ti_ms=(800.0, 1100.0),
                   etl=(128, 192), esp_ms=(6.0, 8.0), flip_deg=(7.0, 12.0), inversion_efficiency=(0.95, 1.0)),
    )


def _default_t2w() -> tuple[KindRanges, ...]:
    return (KindRanges("tse", 1.0, tr_ms=(2500.0, 6000.0), te_ms=(80.0, 120.0), etl=(8, 24), esp_ms=(8.0, 14.0),
                       refocus_deg=(120.0, 180.0)),)


def _default_flair() -> tuple[KindRanges, ...]:
    return (KindRanges("ir_tse", 1.0, tr_ms=(8000.0, 11000.0), te_ms=(80.0, 140.0), ti_mode="csf_null",
                       ti_jitter=0.05, etl=(12, 32), esp_ms=(8.0, 14.0), refocus_deg=(120.0, 180.0),
                       inversion_efficiency=(0.95, 1.0)),)


@dataclass(frozen=True)
class ProtocolRanges:
    """Allowed protocols per contrast (defaults: clinical 1.5 T and 3 T brain protocols).

    Parameters
    ----------
    t1w, t2w, flair : the kinds allowed for each contrast, each with its probability and ranges.
    fields_t : field strengths [T] these ranges apply to (1.5 and 3 T by default).
    """

    t1w: tuple[KindRanges, ...] = field(default_factory=_default_t1w)
    t2w: tuple[KindRanges, ...] = field(default_factory=_default_t2w)
    flair: tuple[KindRanges, ...] = field(default_factory=_default_flair)
    fields_t: tuple[float, ...] = (1.5, 3.0)

    def __post_init__(self) -> None:
        for contrast in CONTRASTS:
            entries = getattr(self, contrast)
            if isinstance(entries, (KindRanges, dict)):
                entries = (entries,)
            entries = tuple(KindRanges.from_dict(e) if isinstance(e, dict) else e for e in entries)
            if not entries:
                raise ValueError(f"ProtocolRanges.{contrast} must list at least one kind; got none")
            for e in entries:
                if not isinstance(e, KindRanges):
                    raise TypeError(f"ProtocolRanges.{contrast} entries must be KindRanges; got {type(e).__name__}")
                if e.kind not in CONTRAST_KINDS[contrast]:
                    raise ValueError(f"ProtocolRanges.{contrast} kind must be one of {list(CONTRAST_KINDS[contrast])}; "
                                     f"got {e.kind!r}")
            kinds = [e.kind for e in entries]
            if len(set(kinds)) != len(kinds):
                raise ValueError(f"ProtocolRanges.{contrast} lists a kind twice: {kinds}")
            if sum(e.probability for e in entries) <= 0:
                raise ValueError(f"ProtocolRanges.{contrast} probabilities must not all be 0; got {kinds} all 0")
            object.__setattr__(self, contrast, entries)
        try:
            fields = tuple(float(f) for f in self.fields_t)
        except (TypeError, ValueError):
            raise ValueError(f"ProtocolRanges.fields_t must be a list of field strengths [T]; "
                             f"got {self.fields_t!r}") from None
        if not fields:
            raise ValueError("ProtocolRanges.fields_t must list at least one field strength [T]; got none")
        for f in fields:
            tissue_values("CSF", f)  # raises naming the allowed fields
        object.__setattr__(self, "fields_t", fields)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {contrast: [e.to_dict() for e in getattr(self, contrast)] for contrast in CONTRASTS}
        d["fields_t"] = list(self.fields_t)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ProtocolRanges":
        return config_from_dict(cls, d)  # contrast entries stay dicts until __post_init__ builds them

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ProtocolRanges":
        return cls.from_dict(json.loads(text))


def csf_null_ti_ms(tr_ms: float, readout_ms: float, t1_csf_ms: float, kappa: float = 1.0) -> float:
    """Inversion time [ms] that nulls CSF in an inversion-recovery TSE.

    The echo train (``readout_ms`` = ETL·ESP, starting at TI) leaves Mz ≈ 0; Mz then recovers for
    ``T_rec = TR − TI − readout``, is inverted (Mz -> −κ Mz) and recovers for TI:
    ``Mz(TI) = M0 [1 − (1 + κ (1 − e^(−T_rec/T1))) e^(−TI/T1)] = 0``, i.e.
    ``TI = T1 ln(1 + κ (1 − e^(−(TR − TI − readout)/T1)))``, solved by fixed-point iteration (a contraction:
    the derivative is below e^(−T_rec/T1) < 1).

    Parameters
    ----------
    tr_ms : inversion-to-inversion time [ms].
    readout_ms : echo train duration ETL·ESP [ms].
    t1_csf_ms : CSF T1 [ms].
    kappa : inversion efficiency κ.
    """
    ti = t1_csf_ms * math.log(1.0 + kappa)
    for _ in range(60):
        t_rec = max(tr_ms - ti - readout_ms, 0.0)
        ti_new = t1_csf_ms * math.log(1.0 + kappa * (1.0 - math.exp(-t_rec / t1_csf_ms)))
        if abs(ti_new - ti) < 1e-6:
            break
        ti = ti_new
    return ti


def _uniform(rng: np.random.Generator, r: Range) -> float:
    return float(r[0]) if r[0] == r[1] else float(rng.uniform(r[0], r[1]))


def _integer(rng: np.random.Generator, lo: int, hi: int) -> int:
    return int(lo) if hi <= lo else int(rng.integers(lo, hi + 1))


def _sample_echo_train(rng: np.random.Generator, kr: KindRanges, room_ms: float) -> tuple[float, int, int]:
    """Draw (esp_ms, etl, k) with TE = k·esp in the TE range (nearest k otherwise), k <= etl, etl·esp <= room."""
    esp = _uniform(rng, kr.esp_ms)
    max_fit = max(1, int(math.floor(room_ms / esp * (1.0 - 1e-9))))
    etl_hi = min(kr.etl[1], max_fit)
    k_lo = max(1, math.ceil(kr.te_ms[0] / esp - 1e-9))
    k_hi = math.floor(kr.te_ms[1] / esp + 1e-9)
    if k_lo <= k_hi:
        k = _integer(rng, k_lo, k_hi)
    else:  # no multiple of this ESP in the TE range: the echo nearest to it
        k = max(1, int(round(0.5 * (kr.te_ms[0] + kr.te_ms[1]) / esp)))
    k = min(k, etl_hi)
    etl = _integer(rng, max(min(kr.etl[0], etl_hi), k), etl_hi)
    return esp, etl, k


def sample_protocol(rng: np.random.Generator, kr: KindRanges, field_t: float, name: str = "") -> Protocol:
    """Draw one valid :class:`Protocol` of kind ``kr.kind`` from its ranges (see the module docstring)."""
    kind = kr.kind
    tr = _uniform(rng, kr.tr_ms)
    flip = _uniform(rng, kr.flip_deg)
    ref = _uniform(rng, kr.refocus_deg)
    kappa = _uniform(rng, kr.inversion_efficiency)
    common = dict(flip_deg=flip, field_t=field_t, name=name)
    if kind == "se":
        return Protocol("se", tr_ms=tr, te_ms=_uniform(rng, kr.te_ms), refocus_deg=ref, **common)
    if kind == "spgr":
        return Protocol("spgr", tr_ms=tr, te_ms=_uniform(rng, kr.te_ms), **common)
    if kind == "tse":
        esp, etl, k = _sample_echo_train(rng, kr, tr)
        return Protocol("tse", tr_ms=tr, te_ms=k * esp, etl=etl, esp_ms=esp, refocus_deg=ref, **common)
    if kind == "ir_tse":
        if kr.ti_mode == "csf_null":
            t1_csf = tissue_values("CSF", field_t).t1_ms
            ti_max = t1_csf * math.log(1.0 + kappa) * (1.0 + kr.ti_jitter)  # the null lies below T1 ln(1+κ)
            esp, etl, k = _sample_echo_train(rng, kr, tr - ti_max)
            ti = csf_null_ti_ms(tr, etl * esp, t1_csf, kappa) * (1.0 + _uniform(rng, (-kr.ti_jitter, kr.ti_jitter)))
        else:
            ti = _uniform(rng, kr.ti_ms)
            esp, etl, k = _sample_echo_train(rng, kr, tr - ti)
        return Protocol("ir_tse", tr_ms=tr, te_ms=k * esp, ti_ms=ti, etl=etl, esp_ms=esp, refocus_deg=ref,
                        inversion_efficiency=kappa, **common)
    # mprage: TI clipped so that the readout before and after the k-space centre fits
    etl = _integer(rng, kr.etl[0], kr.etl[1])
    esp = _uniform(rng, kr.esp_ms)
    n_before = etl // 2
    ti_lo = n_before * esp * (1.0 + 1e-6) + 1e-3
    ti_hi = tr - (etl - n_before) * esp
    ti = min(max(_uniform(rng, kr.ti_ms), ti_lo), ti_hi)
    return Protocol("mprage", tr_ms=tr, te_ms=_uniform(rng, kr.te_ms), ti_ms=ti, etl=etl, esp_ms=esp,
                    inversion_efficiency=kappa, **common)


def sample_protocols(rng: np.random.Generator, ranges: ProtocolRanges, field_t: float) -> tuple[Protocol, ...]:
    """Draw the three protocols (t1w, t2w, flair) of one sample.

    Parameters
    ----------
    rng : the sample's random generator.
    ranges : allowed kinds and ranges per contrast.
    field_t : field strength [T] of the subject (must be one of ``ranges.fields_t``); sets ``Protocol.field_t``
        and the CSF T1 used for the FLAIR null.

    Returns
    -------
    (Protocol, Protocol, Protocol) in :data:`CONTRASTS` order, each named ``"<contrast>_<kind>"``.
    """
    if not any(abs(field_t - f) < _FIELD_TOL_T for f in ranges.fields_t):
        raise ValueError(f"sample_protocols: field_t must be one of ProtocolRanges.fields_t = "
                         f"{list(ranges.fields_t)} T; got {field_t}")
    out = []
    for contrast in CONTRASTS:
        entries = getattr(ranges, contrast)
        p = np.array([e.probability for e in entries], np.float64)
        choice = entries[int(rng.choice(len(entries), p=p / p.sum()))]
        out.append(sample_protocol(rng, choice, float(field_t), name=f"{contrast}_{choice.kind}"))
    return tuple(out)
