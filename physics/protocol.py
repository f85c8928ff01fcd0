"""Acquisition protocols: one frozen dataclass per acquired contrast, plus clinical presets.

Sequence kinds and the meaning of each timing field
---------------------------------------------------
``se``      90°–180° spin echo, one echo per TR. ``te_ms`` echo time; ``esp_ms`` is set to ``te_ms``.
``tse``     turbo/fast spin echo (CPMG): excitation ``flip_deg`` then ``etl`` refocusing pulses
            ``refocus_deg`` spaced ``esp_ms``; echo k at k·esp_ms. ``te_ms`` is the *effective* TE, the
            echo that fills the k-space centre, so it must be a multiple k·esp_ms with 1 ≤ k ≤ etl.
``ir_tse``  inversion-recovery TSE (T2-FLAIR, T1-FLAIR, STIR): an inversion pulse with efficiency
            ``inversion_efficiency`` (κ: Mz → −κ·Mz), ``ti_ms`` later the TSE train above. ``tr_ms`` is
            the inversion-to-inversion time.
``spgr``    RF-spoiled gradient echo (FLASH/SPGR) in steady state: ``flip_deg``, ``tr_ms``, ``te_ms``
            (T2* is not modelled; the T2 decay e^(−TE/T2) is its upper bound).
``mprage``  magnetisation-prepared rapid gradient echo: inversion, then ``etl`` gradient-echo pulses of
            ``flip_deg`` spaced ``esp_ms``; ``ti_ms`` is inversion → centre pulse (index etl // 2);
            ``tr_ms`` the inversion-to-inversion cycle time.

All times are in milliseconds, angles in degrees, field strength in tesla.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from relaxomap.physics.checks import check_finite_range, check_int_range, config_from_dict

__all__ = [
    "SEQUENCE_KINDS",
    "Protocol",
    "CONTRASTS",
    "SEQUENCE_KIND_NAMES",
    "SPIN_ECHO_KINDS",
    "PRESETS",
    "preset",
    "pack_protocols",
    "PACK_COLUMNS",
]

#: The exam's contrasts, in the one order used everywhere: network input channels, store columns, protocol
#: tables, CLI flags and reports.
CONTRASTS: tuple[str, ...] = ("t1w", "t2w", "flair")

#: Sequence kinds and their integer codes in packed protocol tables.
SEQUENCE_KINDS: dict[str, int] = {"se": 0, "tse": 1, "ir_tse": 2, "spgr": 3, "mprage": 4}

#: Sequence kind of each integer code (the inverse of :data:`SEQUENCE_KINDS`).
SEQUENCE_KIND_NAMES: dict[int, str] = {code: kind for kind, code in SEQUENCE_KINDS.items()}

#: Spin-echo kinds (CPMG trains): the kinds the EPG simulator runs and the Bloch simulator refocuses.
#: ``spgr`` / ``mprage`` assume ideal spoiling, where EPG is the closed form.
SPIN_ECHO_KINDS: tuple[str, ...] = ("se", "tse", "ir_tse")

#: Column order of :func:`pack_protocols` rows (float64), as used by the Numba kernels.
PACK_COLUMNS: tuple[str, ...] = (
    "kind_code",  # SEQUENCE_KINDS value
    "tr_ms",  # [ms]
    "te_ms",  # [ms]
    "ti_ms",  # [ms], 0 where the kind has no inversion
    "etl",  # echo train length / readout pulses [count]
    "esp_ms",  # echo spacing [ms]
    "flip_rad",  # excitation flip [rad]
    "refocus_rad",  # refocusing flip [rad]
    "inversion_efficiency",  # κ, Mz -> -κ Mz
    "echo_index",  # k with te = k·esp (1-based), 1 for se / spgr
)

_OWNER = "Protocol"
_MAX_TIME_MS = 60_000.0  # one minute: far above any clinical TR


@dataclass(frozen=True)
class Protocol:
    """One acquired contrast.

    Parameters
    ----------
    kind : one of ``se``, ``tse``, ``ir_tse``, ``spgr``, ``mprage`` (see module docstring).
    tr_ms : repetition time [ms] (inversion-to-inversion for ``ir_tse`` and ``mprage``).
    te_ms : (effective) echo time [ms].
    ti_ms : inversion time [ms]; 0 for kinds without inversion, > 0 for ``ir_tse`` / ``mprage``.
    etl : echo train length (``tse``/``ir_tse``) or readout pulses per train (``mprage``); 1 for ``se``.
    esp_ms : echo spacing [ms] (``tse``/``ir_tse``), gradient-echo spacing (``mprage``); for ``se`` it is
        set to ``te_ms``; for ``spgr`` unused (0).
    flip_deg : excitation flip angle [deg].
    refocus_deg : refocusing flip angle [deg] (spin-echo kinds).
    inversion_efficiency : κ in [0, 1]; after inversion Mz = −κ·Mz (1 = perfect adiabatic inversion).
    field_t : main field strength [T], used to pick tissue values; does not enter the equations.
    name : free label (e.g. the preset name).
    """

    kind: str
    tr_ms: float
    te_ms: float
    ti_ms: float = 0.0
    etl: int = 1
    esp_ms: float = 0.0
    flip_deg: float = 90.0
    refocus_deg: float = 180.0
    inversion_efficiency: float = 1.0
    field_t: float = 3.0
    name: str = ""

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        if self.kind not in SEQUENCE_KINDS:
            raise ValueError(f"{_OWNER}.kind must be one of {sorted(SEQUENCE_KINDS)}; got {self.kind!r}")
        tr = check_finite_range(_OWNER, "tr_ms", self.tr_ms, 0.0, _MAX_TIME_MS, lo_open=True)
        te = check_finite_range(_OWNER, "te_ms", self.te_ms, 0.0, tr, lo_open=True, hi_open=True)
        set_("tr_ms", tr)
        set_("te_ms", te)
        set_("flip_deg", check_finite_range(_OWNER, "flip_deg", self.flip_deg, 0.0, 180.0, lo_open=True))
        set_("refocus_deg", check_finite_range(_OWNER, "refocus_deg", self.refocus_deg, 0.0, 180.0, lo_open=True))
        set_("inversion_efficiency",
             check_finite_range(_OWNER, "inversion_efficiency", self.inversion_efficiency, 0.0, 1.0))
        set_("field_t", check_finite_range(_OWNER, "field_t", self.field_t, 0.0, 21.0, lo_open=True))
        kind = self.kind
        inverts = kind in ("ir_tse", "mprage")
        if inverts:
            set_("ti_ms", check_finite_range(_OWNER, "ti_ms", self.ti_ms, 0.0, tr, lo_open=True, hi_open=True))
        else:
            if self.ti_ms != 0:
                raise ValueError(f"{_OWNER}.ti_ms must be 0 for kind {kind!r} (no inversion); got {self.ti_ms}")
            set_("ti_ms", 0.0)
        if kind == "se":
            if self.etl != 1:
                raise ValueError(f"{_OWNER}.etl must be 1 for kind 'se'; got {self.etl}")
            set_("etl", 1)
            set_("esp_ms", te)
        elif kind == "spgr":
            set_("etl", 1)
            set_("esp_ms", 0.0)
        else:
            etl = check_int_range(_OWNER, "etl", self.etl, 1, 1024)
            set_("etl", etl)
            esp = check_finite_range(_OWNER, "esp_ms", self.esp_ms, 0.0, tr, lo_open=True, hi_open=True)
            set_("esp_ms", esp)
            if kind in ("tse", "ir_tse"):
                k = te / esp
                if abs(k - round(k)) > 1e-3 * max(1.0, k) or not 1 <= round(k) <= etl:
                    raise ValueError(
                        f"{_OWNER}.te_ms must be k·esp_ms with k in [1, etl={etl}] (esp_ms={esp:g}); got {te:g} "
                        f"(= {k:.3f}·esp_ms)"
                    )
                start = self.ti_ms
                if start + etl * esp > tr:
                    raise ValueError(
                        f"{_OWNER}.etl·esp_ms (= {etl * esp:g} ms readout) must fit in tr_ms={tr:g}"
                        + (f" after ti_ms={start:g}" if inverts else "")
                        + f"; got etl={etl}, esp_ms={esp:g}"
                    )
            else:  # mprage
                n_before = etl // 2
                if self.ti_ms - n_before * esp <= 0:
                    raise ValueError(
                        f"{_OWNER}.ti_ms must exceed (etl // 2)·esp_ms = {n_before * esp:g} ms for 'mprage' "
                        f"(the readout before the k-space centre); got {self.ti_ms:g}"
                    )
                if self.ti_ms + (etl - n_before) * esp > tr:
                    raise ValueError(
                        f"{_OWNER}.tr_ms must be >= ti_ms + (etl - etl // 2)·esp_ms = "
                        f"{self.ti_ms + (etl - n_before) * esp:g} for 'mprage'; got {tr:g}"
                    )
                if te >= esp:
                    raise ValueError(f"{_OWNER}.te_ms must be < esp_ms={esp:g} for 'mprage'; got {te:g}")

    # ---------------------------------------------------------------- derived quantities
    @property
    def echo_index(self) -> int:
        """1-based index k of the echo at ``te_ms`` (``te = k·esp``); 1 for ``se``/``spgr``/``mprage``."""
        if self.kind in ("tse", "ir_tse"):
            return int(round(self.te_ms / self.esp_ms))
        return 1

    @property
    def readout_ms(self) -> float:
        """Duration of the echo train after excitation, etl·esp [ms] (0 for ``spgr``)."""
        return self.etl * self.esp_ms

    def with_(self, **changes: Any) -> "Protocol":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Protocol":
        return config_from_dict(cls, d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def pack(self) -> np.ndarray:
        """This protocol as one float64 row in :data:`PACK_COLUMNS` order."""
        return np.array(
            [
                SEQUENCE_KINDS[self.kind],
                self.tr_ms,
                self.te_ms,
                self.ti_ms,
                self.etl,
                self.esp_ms,
                math.radians(self.flip_deg),
                math.radians(self.refocus_deg),
                self.inversion_efficiency,
                self.echo_index,
            ],
            dtype=np.float64,
        )


def pack_protocols(protocols: Iterable[Protocol]) -> np.ndarray:
    """Stack protocols into a ``(n_protocols, len(PACK_COLUMNS))`` float64 table for the kernels."""
    rows = [p.pack() for p in protocols]
    if not rows:
        raise ValueError("pack_protocols needs at least one Protocol; got none")
    return np.stack(rows)


def _presets() -> dict[str, Protocol]:
    # Typical clinical brain protocols (vendor-neutral values from routine exams and the MR literature).
    p = {}
    for f, tag in ((1.5, "1.5t"), (3.0, "3t")):
        p[f"t1w_se_{tag}"] = Protocol("se", tr_ms=500.0 if f == 1.5 else 600.0, te_ms=15.0 if f == 1.5 else 10.0,
                                      field_t=f)
        p[f"t1w_tse_{tag}"] = Protocol("tse", tr_ms=550.0 if f == 1.5 else 650.0, te_ms=10.0, etl=3, esp_ms=10.0,
                                       refocus_deg=150.0, field_t=f)
        p[f"t2w_tse_{tag}"] = Protocol("tse", tr_ms=4000.0 if f == 1.5 else 5000.0, te_ms=100.0, etl=16,
                                       esp_ms=10.0, refocus_deg=150.0, field_t=f)
        p[f"pdw_tse_{tag}"] = Protocol("tse", tr_ms=3000.0, te_ms=10.0, etl=8, esp_ms=10.0, refocus_deg=150.0,
                                       field_t=f)
        p[f"flair_{tag}"] = Protocol("ir_tse", tr_ms=9000.0, te_ms=120.0 if f == 1.5 else 125.0,
                                     ti_ms=2400.0 if f == 1.5 else 2500.0, etl=24,
                                     esp_ms=10.0 if f == 1.5 else 12.5, refocus_deg=150.0, field_t=f)
        p[f"t1flair_{tag}"] = Protocol("ir_tse", tr_ms=2000.0 if f == 1.5 else 2500.0, te_ms=10.0,
                                       ti_ms=750.0 if f == 1.5 else 900.0, etl=6, esp_ms=10.0, refocus_deg=150.0,
                                       field_t=f)
        p[f"spgr_t1w_{tag}"] = Protocol("spgr", tr_ms=20.0, te_ms=4.0, flip_deg=25.0, field_t=f)
        p[f"mprage_{tag}"] = Protocol("mprage", tr_ms=2000.0 if f == 1.5 else 2300.0, te_ms=3.0,
                                      ti_ms=900.0, etl=176, esp_ms=7.0, flip_deg=9.0, field_t=f)
        # The textbook case: ideal pulses, one echo (used by tests and as the closed-form anchor).
        p[f"t2w_se_{tag}"] = Protocol("se", tr_ms=4000.0, te_ms=100.0, field_t=f)
    return p


#: Named clinical presets, e.g. ``PRESETS["flair_3t"]``.
PRESETS: dict[str, Protocol] = {name: prot.with_(name=name) for name, prot in _presets().items()}


def preset(name: str) -> Protocol:
    """Return a named preset protocol; raises ValueError listing the names if unknown."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown protocol preset {name!r}; available: {', '.join(sorted(PRESETS))}") from None
