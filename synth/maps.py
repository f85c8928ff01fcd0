"""Ground-truth map sets: the one container every map source returns and every consumer reads."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from relaxomap.physics.checks import check_map_array
from relaxomap.synth.rates import from_rates

__all__ = ["Maps"]

_ARRAYS = ("t1_ms", "t2_ms", "pd", "labels", "mask", "voxel_mm")


@dataclass
class Maps:
    """T1 / T2 / PD maps of one subject on one voxel grid.

    Attributes
    ----------
    t1_ms, t2_ms : (X, Y, Z) or (H, W) float32 [ms]; 0 where ``pd`` is 0 (background).
    pd : same shape, float32, proton density relative to CSF = 1.
    labels : same shape, uint8, tissue labels of :data:`physics.tissues.TISSUE_LABELS` (0 where unknown).
    mask : same shape, bool, brain mask (the evaluation region).
    voxel_mm : (ndim,) float32 voxel size [mm].
    field_t : field strength [T] whose tissue values the maps carry.
    subject_id : unique id of the anatomy (splits are made by subject).
    source : where the maps came from ("phantom", "brainweb_colin27", a file path, ...).
    """

    t1_ms: np.ndarray
    t2_ms: np.ndarray
    pd: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    voxel_mm: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))
    field_t: float = 3.0
    subject_id: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        shape = np.shape(self.t1_ms)
        for name in ("t2_ms", "pd", "labels", "mask"):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(
                    f"Maps.{name} has shape {np.shape(getattr(self, name))}; must match t1_ms {shape}"
                    + (f" (source {self.source})" if self.source else "")
                )
        self.t1_ms = np.asarray(self.t1_ms, np.float32)
        self.t2_ms = np.asarray(self.t2_ms, np.float32)
        self.pd = np.asarray(self.pd, np.float32)
        self.labels = np.asarray(self.labels, np.uint8)
        self.mask = np.asarray(self.mask, bool)
        self.voxel_mm = np.asarray(self.voxel_mm, np.float32)
        where = f" in {self.source}" if self.source else ""
        for name in ("t1_ms", "t2_ms", "pd"):
            try:
                check_map_array(f"Maps.{name}", getattr(self, name))
            except ValueError as err:
                raise ValueError(f"{err}{where}") from None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.t1_ms.shape)

    def stack(self) -> np.ndarray:
        """``(3, *shape)`` float32 array [T1 ms, T2 ms, PD] (the target layout of the store)."""
        return np.stack([self.t1_ms, self.t2_ms, self.pd])

    def replace(self, **changes: Any) -> "Maps":
        """New Maps with ``changes`` (any attributes); the arrays not changed are copied, so the result shares no
        memory with these maps unless a change passes an array in."""
        kw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        kw.update(changes)
        for name in _ARRAYS:
            if name not in changes:
                kw[name] = np.array(kw[name], copy=True)
        return Maps(**kw)

    def with_rates(self, pd: np.ndarray, a1: np.ndarray, a2: np.ndarray, **changes: Any) -> "Maps":
        """:meth:`replace` with T1 [ms], T2 [ms] and PD from rate maps ``(PD, PD/T1, PD/T2)``
        (:func:`relaxomap.synth.rates.from_rates`) and any other ``changes``."""
        t1, t2, pd = from_rates(pd, a1, a2)
        return self.replace(t1_ms=t1, t2_ms=t2, pd=pd, **changes)
