"""The floor beside every target: what the inputs allow for that tissue and map (:mod:`relaxomap.physics.bounds`).

The targets (:func:`train.experiment.stats.check_targets`) are means over subjects of per-subject quantities
pooled over thousands of voxels. Voxel noise averages out of such a number; what does not are the unknowns the
whole exam shares (the per-contrast gain ratios, the refocusing angle, the inversion efficiency, the receive
field against PD). So the floor shown is the **tissue-mean bound** (:attr:`~relaxomap.physics.bounds.TissueBound
.mean_pct`, the posterior sd of a tissue's mean value over the exam): the sd of the signed bias an ideal
estimator would still have per subject. The one-voxel bound would be the floor of a single voxel's error, which
no target measures.

The scenario protocols are drawn at random per slice (clinical ranges at 1.5 and 3 T), so the floor is computed
for one documented representative exam (:class:`FloorConfig`): the 3 T default presets ``t1w_tse_3t``,
``t2w_tse_3t``, ``flair_3t`` at SNR 30 (one parenchyma voxel), near the median (√(15·80) ≈ 35) of the
scenarios' log-uniform SNR 15–80; the 1.5 T presets give floors within 0.6 percentage points of these
(docs/bounds.md). Mapping of the evaluation's tissue groups to the tables of ``bounds``: WM, GM, ``deep_GM``
→ deep GM, CSF, ``lesion`` → MS lesion (the lesion scenario also holds tumours and infarcts; the MS-lesion
bound stands for them). The parenchyma (WM + GM + deep GM) floor is the unweighted mean of the three tissue
floors — the rule ``physics.bounds.advise`` uses for its parenchyma line. PD targets are scored on the CSF = 1
scale, the bound of ``pd`` is the water-content prior (CSF PD is the scale, ±1 %).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Mapping

from relaxomap.physics.checks import check_finite_range

__all__ = ["FloorConfig", "TISSUE_OF_GROUP", "PARENCHYMA_GROUPS", "compute_floors", "row_floor", "floor_note"]

#: Evaluation tissue group -> tissue name of :mod:`relaxomap.physics.tissues` used by ``bounds``.
TISSUE_OF_GROUP: dict[str, str] = {"WM": "WM", "GM": "GM", "deep_GM": "deep GM", "CSF": "CSF", "lesion": "MS lesion"}
#: Groups whose floors are averaged (unweighted) into the parenchyma floor.
PARENCHYMA_GROUPS = ("WM", "GM", "deep_GM")
_MAP_OF = {"t1": "t1", "t2": "t2", "pd_csf": "pd", "pd": "pd"}


@dataclass(frozen=True)
class FloorConfig:
    """The representative exam of the floors: ``presets`` (names in ``physics.protocol.PRESETS``, one field
    strength), ``snr`` of one parenchyma voxel per contrast, ``n_voxels`` per tissue of the tissue-mean fit."""

    presets: tuple[str, ...] = ("t1w_tse_3t", "t2w_tse_3t", "flair_3t")
    snr: float = 30.0
    n_voxels: int = 1000

    def __post_init__(self) -> None:
        from relaxomap.physics.protocol import preset

        if not self.presets:
            raise ValueError("FloorConfig.presets must name at least one preset; got none")
        for name in self.presets:
            preset(name)  # raises naming the preset and the known ones
        object.__setattr__(self, "presets", tuple(self.presets))
        check_finite_range("FloorConfig", "snr", self.snr, 0.0, 1e6, lo_open=True)
        if isinstance(self.n_voxels, bool) or not isinstance(self.n_voxels, int) or self.n_voxels < 1:
            raise ValueError(f"FloorConfig.n_voxels must be an integer >= 1; got {self.n_voxels!r}")


def compute_floors(config: FloorConfig | None = None) -> dict[str, Any]:
    """The floors of ``config`` (default :class:`FloorConfig`); :func:`_floors` documents the result. Computed
    once per process and configuration (a few seconds), never stored on disk; each call gets its own copy."""
    return copy.deepcopy(_floors(FloorConfig() if config is None else config))


@functools.lru_cache(maxsize=4)
def _floors(config: FloorConfig) -> dict[str, Any]:
    """The tissue-mean bounds [%] of the representative exam, JSON-able.

    Returns
    -------
    ``{"config": {...}, "level": "tissue mean", "tissues": {group: {"t1", "t2", "pd": floor [%]}},
    "limited_by": {group: {map: "prior" | "data" | "both"}}, "parenchyma": {map: floor [%]}, "note": str}`` with
    the groups of :data:`TISSUE_OF_GROUP`; the parenchyma floor is the mean over :data:`PARENCHYMA_GROUPS`.
    """
    from relaxomap.physics.bounds import BoundsConfig, bounds
    from relaxomap.physics.protocol import preset

    res = bounds([preset(n) for n in config.presets],
                 BoundsConfig(tissues=tuple(TISSUE_OF_GROUP.values()), snr=config.snr, n_voxels=config.n_voxels))
    by_name = {t.tissue: t for t in res.tissues}
    tissues = {g: dict(by_name[n].mean_pct) for g, n in TISSUE_OF_GROUP.items()}
    limited = {g: dict(by_name[n].limited_by) for g, n in TISSUE_OF_GROUP.items()}
    parenchyma = {m: sum(tissues[g][m] for g in PARENCHYMA_GROUPS) / len(PARENCHYMA_GROUPS)
                  for m in ("t1", "t2", "pd")}
    out = {"config": dataclasses.asdict(config) | {"presets": list(config.presets)}, "level": "tissue mean",
           "tissues": tissues, "limited_by": limited, "parenchyma": parenchyma}
    out["note"] = floor_note(out)
    return out


def row_floor(floors: Mapping[str, Any], row: Mapping[str, Any]) -> float | None:
    """The floor [%] of one target row (its ``region`` and ``map``), None for a region without a bound."""
    mp = _MAP_OF.get(row["map"])
    if mp is None:
        return None
    if row["region"] == "parenchyma":
        return float(floors["parenchyma"][mp])
    per = floors["tissues"].get(row["region"])
    return None if per is None else float(per[mp])


def floor_note(floors: Mapping[str, Any]) -> str:
    """One paragraph saying what the floor column is (for the pages)."""
    cfg = floors["config"]
    csf_t2 = floors["tissues"]["CSF"]["t2"]
    return (f"'floor' is the best precision the inputs allow (`relaxomap bounds`, docs/bounds.md): the "
            f"**tissue-mean** bound [%] for the representative exam {', '.join(f'`{p}`' for p in cfg['presets'])} "
            f"(the 3 T default presets; the scenarios draw their protocols at random, at 1.5 and 3 T — the 1.5 T "
            f"presets give floors within 0.6 points) at SNR {cfg['snr']:g} per parenchyma voxel (near the median "
            f"of the scenarios' SNR 15–80), {cfg['n_voxels']} voxels per tissue, gains, receive field, refocusing "
            "angle and inversion efficiency unknown. The tissue-mean bound, not the one-voxel bound, because every "
            "target is a per-subject value pooled over thousands of voxels: their noise averages out, the exam's "
            "shared unknowns do not, so this is the sd of the signed bias an ideal estimator would still have per "
            "subject. Parenchyma: the unweighted mean of the WM, GM and deep-GM floors (the rule of "
            "`bounds.advise`); lesion: the MS-lesion bound; PD: the water-content prior (the data cannot separate "
            f"PD from the receive field). CSF T2: {csf_t2:.1f} % is its ±40 % prior — not identifiable.")
