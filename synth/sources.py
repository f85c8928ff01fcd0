"""The map sources the training store draws subjects from: procedural phantoms or augmented real maps.

``draw_subject(config, seed)`` is a pure function of ``(config, seed)``: the same pair gives identical arrays
in any process (one ``np.random.default_rng(seed)`` drives everything; no global state, no threads).

Subject ids and splits
----------------------
- phantoms: ``"phantom-<seed>"`` — every seed is a new anatomy;
- real maps: ``"<anatomy>/aug<seed>"``, e.g. ``"colin27/aug17"``, where ``<anatomy>`` is the file's
  :func:`synth.real.subject_name`. Augmentations of one real head are the *same* anatomy, so train / val /
  test splits must be made on :func:`anatomy_id` (the part before ``/``), never on the full id.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from relaxomap.physics.checks import check_bool, check_finite_range, config_from_dict
from relaxomap.physics.tissues import TISSUES
from relaxomap.synth.augment.config import AugmentConfig
from relaxomap.synth.augment.pipeline import augment_maps
from relaxomap.synth.augment.tissues import perturb_tissues, tissue_references
from relaxomap.synth.lesions import LesionConfig, insert_lesions
from relaxomap.synth.maps import Maps
from relaxomap.synth.phantom.build import make_phantom
from relaxomap.synth.phantom.config import PhantomConfig
from relaxomap.synth.real import load_maps, subject_name
from relaxomap.synth.value_shift import ValueShiftConfig, shift_values

__all__ = ["SOURCE_KINDS", "SourceConfig", "draw_subject", "anatomy_id", "check_source"]

SOURCE_KINDS: tuple[str, ...] = ("phantom", "real", "mixed")
_OWNER = "SourceConfig"


@dataclass(frozen=True)
class SourceConfig:
    """Where ground-truth maps come from (defaults live only here).

    Parameters
    ----------
    kind : ``"phantom"`` (procedural heads), ``"real"`` (augmented map files) or ``"mixed"`` (each subject is
        an augmented real head with probability ``real_fraction``, else a phantom).
    paths : map files for ``kind="real"`` (``.npz``, ``.h5``, NIfTI directory / prefix); seed ``s`` uses
        ``paths[s % len(paths)]``.
    healthy_only : no lesions at all.
    lesions : lesion settings when not ``healthy_only``.
    augment : augmentation of real maps; None returns the file's maps unchanged (plus lesions).
    field_t : field strength [T] (1.5 or 3) of the returned values; real maps are converted per tissue.
    real_fraction : for ``kind="mixed"``, the probability in [0, 1] that a subject is drawn from ``paths``.
    fields_t : if not empty, each subject's field strength [T] is drawn uniformly from these (1.5 and/or 3),
        overriding ``field_t``, so one store covers both fields' tissue values.
    value_shift : if set, every brain tissue's values are moved off the tables per subject
        (:mod:`relaxomap.synth.value_shift`: the evaluation's value-shift scenarios), from a random stream of
        its own, so anatomy, lesions and everything else equal the unshifted draw of the same seed.
    phantom : phantom generator settings. Its ``field_t`` and ``lesions`` are overridden by this config's
        ``field_t`` and ``lesions`` / ``healthy_only`` (normalised on construction, so ``to_dict`` shows
        what is used).
    """

    kind: str = "phantom"
    paths: tuple[str, ...] = ()
    healthy_only: bool = False
    lesions: LesionConfig = field(default_factory=LesionConfig)
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    field_t: float = 3.0
    phantom: PhantomConfig = field(default_factory=PhantomConfig)
    real_fraction: float = 0.25
    fields_t: tuple[float, ...] = ()
    value_shift: ValueShiftConfig | None = None

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"{_OWNER}.kind must be one of {list(SOURCE_KINDS)}; got {self.kind!r}")
        if isinstance(self.paths, (str, Path)):
            raise TypeError(f"{_OWNER}.paths must be a list of file paths, not one string; got {self.paths!r}")
        paths = tuple(str(p) for p in self.paths)
        if self.kind in ("real", "mixed") and not paths:
            raise ValueError(f"{_OWNER}.paths must name at least one map file for kind {self.kind!r}; got none")
        set_("real_fraction", check_finite_range(_OWNER, "real_fraction", self.real_fraction, 0.0, 1.0))
        fields = tuple(float(x) for x in self.fields_t)
        for x in fields:
            if not any(abs(x - k) < 0.26 for k in TISSUES):
                raise ValueError(f"{_OWNER}.fields_t entries must be among {sorted(TISSUES)} T; got {x}")
        set_("fields_t", fields)
        set_("paths", paths)
        set_("healthy_only", check_bool(_OWNER, "healthy_only", self.healthy_only))
        for name, cls in (("lesions", LesionConfig), ("phantom", PhantomConfig)):
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"{_OWNER}.{name} must be a {cls.__name__}; got {type(getattr(self, name)).__name__}")
        if self.value_shift is not None and not isinstance(self.value_shift, ValueShiftConfig):
            raise TypeError(f"{_OWNER}.value_shift must be a ValueShiftConfig or None; "
                            f"got {type(self.value_shift).__name__}")
        if self.augment is not None and not isinstance(self.augment, AugmentConfig):
            raise TypeError(f"{_OWNER}.augment must be an AugmentConfig or None; got {type(self.augment).__name__}")
        f = check_finite_range(_OWNER, "field_t", self.field_t, 0.0, 21.0, lo_open=True)
        if not any(abs(f - k) < 0.26 for k in TISSUES):
            raise ValueError(f"{_OWNER}.field_t must be one of {sorted(TISSUES)} T; got {f}")
        set_("field_t", f)
        set_("phantom", dataclasses.replace(self.phantom, field_t=f,
                                            lesions=None if self.healthy_only else self.lesions))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["paths"] = list(self.paths)
        d["fields_t"] = list(self.fields_t)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SourceConfig":
        nested = {"lesions": LesionConfig, "augment": AugmentConfig, "phantom": PhantomConfig,
                  "value_shift": ValueShiftConfig}
        return config_from_dict(cls, d, nested)


def anatomy_id(subject_id: str) -> str:
    """The split key of a subject id: the part before ``/`` (``"colin27/aug17"`` → ``"colin27"``)."""
    return subject_id.split("/", 1)[0]


@functools.lru_cache(maxsize=8)
def _load_readonly(path: str) -> tuple[Maps, np.ndarray]:
    maps = load_maps(path)
    for name in ("t1_ms", "t2_ms", "pd", "labels", "mask", "voxel_mm"):
        getattr(maps, name).flags.writeable = False  # shared by every draw in this process
    ref = tissue_references(maps)
    ref.flags.writeable = False
    return maps, ref


def check_source(config: SourceConfig) -> None:
    """Read every map file a source draws from, once, so that a missing, unreadable or implausible file (T1 in
    seconds, say) is refused before a store is started rather than in a worker process mid-run. The maps stay
    cached for :func:`draw_subject` (forked worker processes inherit them).

    Raises
    ------
    ValueError
        naming the file and what is wrong with it (:func:`relaxomap.synth.real.load_maps`).
    """
    if not isinstance(config, SourceConfig):
        raise TypeError(f"check_source: config must be a SourceConfig; got {type(config).__name__}")
    if config.kind in ("real", "mixed"):
        for path in config.paths:
            _load_readonly(str(Path(path).resolve()))


def draw_subject(config: SourceConfig, seed: int) -> Maps:
    """One subject's ground-truth maps, a deterministic function of ``(config, seed)``.

    Parameters
    ----------
    config : the source.
    seed : non-negative integer; seeds the one random generator used.

    Returns
    -------
    3-D Maps (X, Y, Z), float32 T1 [ms] / T2 [ms] / PD, uint8 labels, bool mask; axial slices are
    ``[:, :, z]``. ``subject_id`` follows the module docstring; ``source`` is ``"phantom"`` or the file path.
    """
    if not isinstance(config, SourceConfig):
        raise TypeError(f"draw_subject: config must be a SourceConfig; got {type(config).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"draw_subject: seed must be a non-negative integer; got {seed!r}")
    seed = int(seed)
    # Per-subject choices (field strength, phantom or real) use their own stream, so the anatomy stream below
    # is the same as for a plain "phantom" / "real" source with the same seed.
    choice = np.random.default_rng([seed, 0x5EED])
    if config.fields_t:
        config = dataclasses.replace(config, field_t=config.fields_t[int(choice.integers(len(config.fields_t)))],
                                     fields_t=())
    if config.kind == "mixed":
        kind = "real" if choice.random() < config.real_fraction else "phantom"
        config = dataclasses.replace(config, kind=kind)
    maps = _draw_maps(config, seed)
    if config.value_shift is not None:
        maps = shift_values(maps, np.random.default_rng([seed, 0x5817]), config.value_shift)[0]
    return maps


def _draw_maps(config: SourceConfig, seed: int) -> Maps:
    """The anatomy stream of :func:`draw_subject` (per-subject choices already made)."""
    rng = np.random.default_rng(seed)
    if config.kind == "phantom":
        maps = make_phantom(config.phantom, rng)
        maps.subject_id = f"phantom-{seed}"
        return maps
    path = config.paths[seed % len(config.paths)]
    base, ref = _load_readonly(str(Path(path).resolve()))
    lesions = None if config.healthy_only else config.lesions
    if config.augment is not None:
        maps = augment_maps(base, rng, config.augment, field_t=config.field_t, lesions=lesions, references=ref)
    elif abs(config.field_t - base.field_t) > 1e-6:  # field conversion only, no jitter
        maps = perturb_tissues(base, rng, (0.0, 0.0, 0.0), field_t=config.field_t, references=ref)
    else:
        maps = Maps(base.t1_ms.copy(), base.t2_ms.copy(), base.pd.copy(), base.labels.copy(), base.mask.copy(),
                    voxel_mm=base.voxel_mm.copy(), field_t=base.field_t)
    if config.augment is None and lesions is not None:
        maps = insert_lesions(maps, rng, lesions)
    maps.subject_id = f"{subject_name(path)}/aug{seed}"
    maps.source = str(path)
    return maps
