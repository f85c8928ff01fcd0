"""Configuration of the ablation experiment (``relaxomap experiment ablation``): the network variants, the
test scenarios, :class:`ExperimentConfig` (sizes, budget, seeds), the generator and trainer configurations
derived from it, and a wall-time estimate.

The pipeline that runs it is :mod:`train.experiment.ablation`; the statistics are in :mod:`train.experiment.stats` and
the results page in :mod:`train.experiment.page`.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relaxomap.model.config import ModelConfig
from relaxomap.physics.checks import check_finite_range, check_int_range, check_sequence, config_from_dict

__all__ = [
    "ExperimentConfig", "Variant", "Scenario", "VARIANTS", "REFERENCE", "NLLS", "ORACLE", "REPO_ROOT",
    "N_SCENARIOS", "SHIFT_DESCRIPTION", "OEDEMA_PD_FACTOR",
    "resolve_data_path",
    "training_synth_config", "scenarios", "variant_train_config", "estimate_seconds",
]

_OWNER = "ExperimentConfig"
#: Repository root (``docs/`` and the ``../shared/data`` paths are resolved against it).
REPO_ROOT = Path(__file__).resolve().parents[2]
_SYNTH_TRAIN_JSON = Path(__file__).resolve().parents[1] / "clinical" / "default_model" / "synth_train.json"
_OUT_OF_RANGE_JSON = REPO_ROOT / "docs" / "evaluation" / "scenarios" / "out_of_range.json"
#: Name of the least-squares baseline in the evaluation (train.evaluation.evaluate.NLLS_NAME).
NLLS = "nlls"
#: Name of the segmentation-only baseline (the tissue table at the true labels; train.evaluation.baselines).
ORACLE = "oracle-prior"


@dataclass(frozen=True)
class Variant:
    """One trained network of the ablation: ``name`` (run folder and table key), ``arch``
    (:class:`model.config.ModelConfig` arch), ``physics`` (physics-consistency loss on, at
    ``ExperimentConfig.physics_weight``, or off) and a ``label`` for the page."""

    name: str
    arch: str
    physics: bool
    label: str


#: The variants, all trained on one store with one budget and seed. The first is the reference of the paired
#: tests and the targets (the shipped default model's recipe).
VARIANTS: tuple[Variant, ...] = (
    Variant("pe-unet-physics", "pe-unet", True, "PE-UNet + physics"),
    Variant("pe-unet", "pe-unet", False, "PE-UNet, no physics"),
    Variant("unet", "unet", True, "U-Net + physics"),
    Variant("channels", "channels", True, "channels + physics"),
)
REFERENCE = VARIANTS[0].name


@dataclass(frozen=True)
class Scenario:
    """One test store: ``name`` (file stem and scenario key), ``description``, its generator ``synth`` (or
    ``None`` when its data are absent; ``note`` then says why)."""

    name: str
    description: str
    synth: Any
    note: str = ""


#: Number of test scenarios (:func:`scenarios`), for the run-time estimate.
N_SCENARIOS = 10
#: What the value-shift scenarios change (issue 14), for their descriptions.
SHIFT_DESCRIPTION = ("tissue values moved off the tables per subject: T1 / T2 of every brain tissue × 0.75–1.25, "
                     "CSF × 0.9–1.1, PD × 0.95–1.05 (`synth/value_shift.py` defaults)")
#: Range of the oedema-like parenchyma PD factor of scenario ``oedema_pd``.
OEDEMA_PD_FACTOR = (1.10, 1.15)


@dataclass(frozen=True)
class ExperimentConfig:
    """Sizes, budget and seeds of the ablation (defaults: the full run, about 1.3 h on a 2-core CPU).

    Parameters
    ----------
    n_train, n_val : slices of the training and validation stores (healthy, ``synth_train.json`` recipe).
    n_scenario : slices of each scenario store; ``max_eval_slices`` of them, evenly spaced, are evaluated.
    image_size : side of every store's square slices [px].
    train_slices_per_subject, scenario_slices_per_subject : slices drawn per head (one anatomy each).
    head_shape, head_voxel_mm : (X, Y, Z) grid [voxels] and voxel size [mm] of phantom and augmented real
        heads; ``None`` keeps the recipe's 1 mm, 224 x 256 x 48 grid (``quick`` shrinks it).
    steps, batch_size, patch : optimisation steps, samples per step and crop side [px] of every variant
        (``patch=None``: whole slices).
    lr : peak AdamW learning rate; ``warmup_fraction`` of the steps warm it up linearly.
    physics_weight : weight of the physics-consistency loss of the variants that use it, reached after
        ``physics_ramp_fraction`` of the steps (the shipped model: 2000 of 3817 steps).
    ema_decay : decay of the weight average that is evaluated.
    val_every, val_max_slices : validation interval [steps] (also the checkpoint interval) and slices.
    model : architecture of every variant (its ``arch`` is replaced per variant).
    seed : training seed (initialisation, data order, crops), the same for every variant.
    synth_seed : master seed of the training store; val uses ``synth_seed + 1``, scenario k ``+ 101 + k``.
    synth_workers, num_workers : store-generation processes; DataLoader workers while training.
    eval_batch, n_examples : slices per forward pass and montages per scenario in the evaluation.
    torch_threads : torch CPU threads during the run (restored after); ``None`` keeps torch's choice. One
        thread for tiny networks, whose 2-thread kernels only add synchronisation.
    colin27, subject47 : real map files (relative paths are looked up from the working directory, then from
        the repository root); colin27 is mixed into training when present, subject 47 is a test scenario.
    label : name of the size (``"default"``, ``"quick"``, ``"custom"``), shown on the page.
    """

    n_train: int = 2048
    n_val: int = 128
    n_scenario: int = 64
    max_eval_slices: int = 32
    image_size: int = 256
    train_slices_per_subject: int = 32
    scenario_slices_per_subject: int = 8
    head_shape: tuple[int, int, int] | None = None
    head_voxel_mm: tuple[float, float, float] | None = None
    steps: int = 1500
    batch_size: int = 8
    patch: int | None = 128
    lr: float = 1e-3
    warmup_fraction: float = 0.1
    physics_weight: float = 0.1
    physics_ramp_fraction: float = 0.5
    ema_decay: float = 0.998
    val_every: int = 250
    val_max_slices: int = 64
    model: ModelConfig = field(default_factory=ModelConfig)
    seed: int = 0
    synth_seed: int = 7001
    synth_workers: int = 2
    num_workers: int = 0
    eval_batch: int = 8
    n_examples: int = 3
    torch_threads: int | None = None
    colin27: str = "../shared/data/brainweb_colin27/colin27_3T.npz"
    subject47: str = "../shared/data/brainweb_subject47/subject47_3T.npz"
    label: str = "default"

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        for name, lo in (("n_train", 2), ("n_val", 1), ("n_scenario", 1), ("max_eval_slices", 1),
                         ("train_slices_per_subject", 1), ("scenario_slices_per_subject", 1), ("steps", 1),
                         ("batch_size", 1), ("val_every", 1), ("val_max_slices", 1), ("synth_workers", 1),
                         ("eval_batch", 1)):
            set_(name, check_int_range(_OWNER, name, getattr(self, name), lo, 10**9))
        set_("image_size", check_int_range(_OWNER, "image_size", self.image_size, 16, 2048))
        for name in ("seed", "synth_seed", "num_workers", "n_examples"):
            set_(name, check_int_range(_OWNER, name, getattr(self, name), 0, 2**31 - 1))
        if self.torch_threads is not None:
            set_("torch_threads", check_int_range(_OWNER, "torch_threads", self.torch_threads, 1, 4096))
        if self.patch is not None:
            set_("patch", check_int_range(_OWNER, "patch", self.patch, 8, self.image_size))
        if (self.head_shape is None) != (self.head_voxel_mm is None):
            raise ValueError(f"{_OWNER}.head_shape and head_voxel_mm must both be set or both be None; got "
                             f"{self.head_shape!r} and {self.head_voxel_mm!r}")
        if self.head_shape is not None:
            set_("head_shape", check_sequence(_OWNER, "head_shape", self.head_shape, 8, 2048, length=3, integer=True))
            set_("head_voxel_mm", check_sequence(_OWNER, "head_voxel_mm", self.head_voxel_mm, 0.0, 20.0, length=3,
                                                 lo_open=True))
        set_("lr", check_finite_range(_OWNER, "lr", self.lr, 0.0, 10.0, lo_open=True))
        for name in ("warmup_fraction", "physics_ramp_fraction"):
            set_(name, check_finite_range(_OWNER, name, getattr(self, name), 0.0, 1.0))
        set_("physics_weight", check_finite_range(_OWNER, "physics_weight", self.physics_weight, 0.0, 1e6))
        set_("ema_decay", check_finite_range(_OWNER, "ema_decay", self.ema_decay, 0.0, 1.0, lo_open=True,
                                             hi_open=True))
        if isinstance(self.model, dict):
            set_("model", ModelConfig.from_dict(self.model))
        elif not isinstance(self.model, ModelConfig):
            raise TypeError(f"{_OWNER}.model must be a ModelConfig or its dict; got {type(self.model).__name__}")
        for name in ("colin27", "subject47", "label"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise TypeError(f"{_OWNER}.{name} must be a non-empty string; got {getattr(self, name)!r}")

    @classmethod
    def quick(cls) -> "ExperimentConfig":
        """Smoke size for CI (< 60 s on 2 cores): 64 x 64 slices of shrunken heads, 16 training and 8 slices per
        store, a 2-level 8-channel network, 5 steps. Its numbers mean nothing; it checks the plumbing."""
        return cls(n_train=16, n_val=4, n_scenario=8, max_eval_slices=8, image_size=64, train_slices_per_subject=8,
                   scenario_slices_per_subject=4, head_shape=(64, 64, 16), head_voxel_mm=(3.5, 4.0, 3.0),
                   steps=5, batch_size=4, patch=32, val_every=5, val_max_slices=4,
                   model=ModelConfig(base_channels=8, channel_mults=(1, 2), groups=4, emb_dim=16, n_fourier=4),
                   synth_workers=1, n_examples=1, torch_threads=1, label="quick")

    def replace(self, **changes: Any) -> "ExperimentConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model"] = self.model.to_dict()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ExperimentConfig":
        return config_from_dict(cls, d)

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup_fraction * self.steps))

    @property
    def physics_ramp_steps(self) -> int:
        return int(round(self.physics_ramp_fraction * self.steps))


# ------------------------------------------------------------------------------------------------ configs
def resolve_data_path(path: str) -> Path | None:
    """``path`` if it exists (absolute, or relative to the working directory), else relative to the
    repository root; ``None`` if neither exists."""
    for candidate in (Path(path), REPO_ROOT / path):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except OSError as err:
        raise FileNotFoundError(f"{what} {path} could not be read ({err}); the ablation needs the repository's "
                                "copy of it (run from a source checkout)") from None


def training_synth_config(config: ExperimentConfig) -> tuple[Any, str]:
    """The training store's SynthConfig and a sentence saying which heads it draws.

    The shipped default model's recipe (``train/clinical/default_model/synth_train.json``: EPG, 1.5 and 3 T, clinical
    protocol ranges, FLAIR missing in 10 %) with ``healthy_only=True``; heads: phantoms plus augmented colin27
    (``kind="mixed"``) when ``config.colin27`` exists, else phantoms only.
    """
    from relaxomap.synth.generate import SynthConfig

    base = SynthConfig.from_dict(_read_json(_SYNTH_TRAIN_JSON, "training recipe"))
    src = base.source
    colin = resolve_data_path(config.colin27)
    changes: dict[str, Any] = {"healthy_only": True}
    if colin is not None:
        changes.update(kind="mixed", paths=(str(colin),))
        source_note = (f"procedural phantoms + augmented BrainWeb colin27 ({colin}), `kind=\"mixed\"`, "
                       f"real fraction {src.real_fraction:g}")
    else:
        changes.update(kind="phantom", paths=())
        source_note = f"procedural phantoms only (colin27 not found at {config.colin27})"
    if config.head_shape is not None:
        changes["phantom"] = dataclasses.replace(src.phantom, shape=config.head_shape, voxel_mm=config.head_voxel_mm)
        if src.augment is not None:
            changes["augment"] = dataclasses.replace(src.augment, shape=config.head_shape,
                                                     voxel_mm=config.head_voxel_mm)
    synth = base.replace(source=dataclasses.replace(src, **changes), image_size=(config.image_size,) * 2,
                         slices_per_subject=config.train_slices_per_subject, seed=config.synth_seed)
    return synth, source_note


def scenarios(config: ExperimentConfig, train_synth: Any) -> list[Scenario]:
    """The test scenarios, each derived from the training recipe with its own seed (``synth_seed + 101 + k``).

    All are healthy phantoms at the training protocols, SNR and fields (the internal test) except for the one
    factor each scenario changes. The last three (k = 7, 8, 9) move the tissue values off the training
    distribution (:func:`_value_shift_scenarios`); the accuracy targets are checked on the first two of them.
    """
    from relaxomap.synth.artefacts import ArtefactConfig
    from relaxomap.synth.protocols import ProtocolRanges

    src = dataclasses.replace(train_synth.source, kind="phantom", paths=())
    test = train_synth.replace(source=src, slices_per_subject=config.scenario_slices_per_subject,
                               missing_probability=(0.0, 0.0, 0.0))
    seed = lambda k: config.synth_seed + 101 + k  # noqa: E731
    lesions = dataclasses.replace(src.lesions, p_ms=1.0, p_tumour=0.7, p_infarct=0.5)
    oor = _read_json(_OUT_OF_RANGE_JSON, "out-of-range scenario")["protocols"]
    art = train_synth.artefacts
    out = [
        Scenario("internal_test", "new healthy phantom heads from the training distribution",
                 test.replace(seed=seed(0))),
        Scenario("lesions", "unseen lesions: phantoms with MS plaques always, tumours (p 0.7) and infarcts (p 0.5); "
                 "training was healthy-only", test.replace(seed=seed(1), source=dataclasses.replace(
                     src, healthy_only=False, lesions=lesions))),
        Scenario("out_of_range", "protocols outside every training range (docs/evaluation/scenarios/"
                 "out_of_range.json)", test.replace(seed=seed(2), protocols=ProtocolRanges.from_dict(oor))),
        Scenario("snr_5_12", "low SNR 5-12 (training 15-80)", test.replace(
            seed=seed(3), artefacts=ArtefactConfig.from_dict({**art.to_dict(), "snr": [5.0, 12.0]}))),
        Scenario("snr_80_150", "high SNR 80-150 (training 15-80)", test.replace(
            seed=seed(4), artefacts=ArtefactConfig.from_dict({**art.to_dict(), "snr": [80.0, 150.0]}))),
    ]
    s47 = resolve_data_path(config.subject47)
    desc47 = "held-out real anatomy: augmented BrainWeb subject 47 (never in training), healthy"
    if s47 is None:
        out.append(Scenario("real_subject47", desc47, None, f"skipped: {config.subject47} not found"))
    else:
        out.append(Scenario("real_subject47", desc47, test.replace(seed=seed(5), source=dataclasses.replace(
            train_synth.source, kind="real", paths=(str(s47),)))))
    out.append(Scenario("missing_flair", "the internal-test recipe with FLAIR always absent (the NLLS fit needs "
                        "all three contrasts)", test.replace(seed=seed(6), missing_probability=(0.0, 0.0, 1.0))))
    return out + _value_shift_scenarios(config, train_synth, test, seed)


def _value_shift_scenarios(config: ExperimentConfig, train_synth: Any, test: Any, seed: Any) -> list[Scenario]:
    """The scenarios whose tissue values differ from training (issue 14; seeds ``seed(7)``, ``seed(8)``,
    ``seed(9)``): held-out anatomy with every tissue's T1 / T2 moved by up to ±25 % and PD within its
    physiological spread (:class:`synth.value_shift.ValueShiftConfig` defaults), and an oedema-like PD shift."""
    from relaxomap.synth.value_shift import ValueShiftConfig

    shift = ValueShiftConfig()
    src = dataclasses.replace(test.source, value_shift=shift)
    out = [Scenario("shifted_values", SHIFT_DESCRIPTION + " on new healthy phantom heads",
                    test.replace(seed=seed(7), source=src))]
    s47 = resolve_data_path(config.subject47)
    desc47 = SHIFT_DESCRIPTION + " on BrainWeb subject 47 (augmented, never in training), healthy"
    if s47 is None:
        out.append(Scenario("shifted_subject47", desc47, None, f"skipped: {config.subject47} not found"))
    else:
        out.append(Scenario("shifted_subject47", desc47, test.replace(seed=seed(8), source=dataclasses.replace(
            train_synth.source, kind="real", paths=(str(s47),), value_shift=shift))))
    oedema = dataclasses.replace(shift, parenchyma_pd=OEDEMA_PD_FACTOR)
    out.append(Scenario("oedema_pd", SHIFT_DESCRIPTION + f", plus GM / WM / deep GM PD × {OEDEMA_PD_FACTOR[0]:g}–"
                        f"{OEDEMA_PD_FACTOR[1]:g} (oedema-like, beyond the physiological spread; judged against "
                        "its bound, no fixed threshold) on new healthy phantom heads",
                        test.replace(seed=seed(9), source=dataclasses.replace(src, value_shift=oedema))))
    return out


def variant_train_config(config: ExperimentConfig, variant: Variant, store: Path, val_store: Path, out: Path,
                         device: str = "auto", progress: bool = True) -> Any:
    """The :class:`train.config.TrainConfig` of one variant: only ``model.arch`` and the physics weight differ
    between variants."""
    from relaxomap.train.losses import LossConfig
    from relaxomap.train.config import TrainConfig

    return TrainConfig(
        store=str(store), val_store=str(val_store), model=dataclasses.replace(config.model, arch=variant.arch),
        loss=LossConfig(physics=config.physics_weight if variant.physics else 0.0), patch=config.patch,
        batch_size=config.batch_size, steps=config.steps, lr=config.lr, warmup_steps=config.warmup_steps,
        ema_decay=config.ema_decay, physics_ramp_steps=config.physics_ramp_steps,
        checkpoint_every=config.val_every, val_every=config.val_every, val_max_slices=config.val_max_slices,
        log_every=max(1, min(25, config.steps)), seed=config.seed, num_workers=config.num_workers, out=str(out),
        device=device, progress=progress)


# Rates measured on the 2-core development machine (torch 2.13 CPU, 2 threads, idle; 2026-11-26), for the
# estimate of a run: EPG store generation [s per 256^2 sample, 2 workers; training recipe with 32 and scenario
# stores with 8 slices per head], training [s per 128^2 crop sample; 11.4-12.3 samples/s for all four
# variants, batch 8], inference [s per 256^2 slice, default network size], NLLS fit [s per 256^2 slice], and
# one evaluation figure (montage or curves) [s].
_RATE_SYNTH_TRAIN_S = 0.033
_RATE_SYNTH_SCENARIO_S = 0.081
_RATE_TRAIN_S = 0.084
_RATE_INFER_S = 0.16
_RATE_NLLS_S = 0.61
_RATE_FIGURE_S = 2.0


def estimate_seconds(config: ExperimentConfig) -> dict[str, float]:
    """Rough wall time [s] of each stage on a 2-core CPU from rates measured there, scaled by pixel count for
    other image and crop sizes (a network other than the default size is not modelled)."""
    px = (config.image_size / 256.0) ** 2
    patch_px = ((config.patch or config.image_size) / 128.0) ** 2
    n_val_runs = -(-config.steps // config.val_every)
    per_variant = (config.steps * config.batch_size * _RATE_TRAIN_S * patch_px
                   + n_val_runs * min(config.val_max_slices, config.n_val) * _RATE_INFER_S * px)
    n_eval = N_SCENARIOS * min(config.n_scenario, config.max_eval_slices)
    out = {"stores": ((config.n_train + config.n_val) * _RATE_SYNTH_TRAIN_S
                      + N_SCENARIOS * config.n_scenario * _RATE_SYNTH_SCENARIO_S) * px,
           "training": len(VARIANTS) * per_variant,
           "evaluation": n_eval * (len(VARIANTS) * _RATE_INFER_S + _RATE_NLLS_S) * px
           + N_SCENARIOS * (config.n_examples + 1) * _RATE_FIGURE_S}
    out["total"] = sum(out.values())
    return out
