"""The ablation experiment (``relaxomap experiment ablation``): from nothing to a results page.

One call synthesises the stores, trains every network variant on the same data with the same budget and
seed, evaluates them and the voxel-wise least-squares fit on every test scenario, and writes a markdown page
plus a JSON file. It only orchestrates library functions: :func:`synth.store.write_store`,
:func:`train.trainer.train` and :func:`train.evaluate.run_evaluate`.

Stages and the files that mark them done (under ``out/``; a stage whose output exists is skipped on resume)
-------------------------------------------------------------------------------------------------------------
1. stores: ``stores/<name>.h5`` (train, val and one per scenario); :func:`~synth.store.write_store` resumes
   its own parts after an interruption and returns at once for a finished store with the same settings.
2. training: ``runs/<variant>/summary.json`` (written after :func:`~train.trainer.train` returns); an
   interrupted run continues from its ``last.pt`` with ``train(config, resume=True)``.
3. evaluation: ``eval/<scenario>/results.json`` (written atomically with montages and curves by
   :func:`~train.evaluate.run_evaluate`), when it evaluated the present checkpoints (same SHA-256).
4. report: the results page, its JSON twin and the figures folder beside it, always rebuilt (seconds).

``experiment.json`` holds the :class:`ExperimentConfig` of the folder; resuming with a different one is
refused, listing the fields that differ.

Statistics of the page (:func:`subject_summary`, :func:`paired_values`, :func:`paired_test`,
:func:`check_targets`) and its rendering (:func:`build_report`, :func:`render_page`, :func:`write_report`)
follow the pipeline below.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from model.config import ModelConfig
from physics._checks import check_finite_range, check_int_range, check_sequence, config_from_dict
from train.metrics import MAP_NAMES
from train.report import json_safe

__all__ = [
    "ExperimentConfig", "Variant", "Scenario", "VARIANTS", "REFERENCE", "NLLS", "REPO_ROOT", "RECORD_METRICS",
    "PAIRED_METRICS", "resolve_data_path", "training_synth_config", "scenarios", "variant_train_config",
    "estimate_seconds", "run_experiment", "copy_figures", "subject_summary", "paired_values", "paired_test",
    "check_targets", "build_report", "render_page", "write_report",
]

_OWNER = "ExperimentConfig"
#: Repository root (``docs/`` and the ``../shared/data`` paths are resolved against it).
REPO_ROOT = Path(__file__).resolve().parents[1]
_SYNTH_TRAIN_JSON = Path(__file__).resolve().parent / "default_model" / "synth_train.json"
_OUT_OF_RANGE_JSON = REPO_ROOT / "docs" / "evaluation" / "scenarios" / "out_of_range.json"
#: Name of the least-squares baseline in the evaluation (train.evaluate.NLLS_NAME).
NLLS = "nlls"


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

    The shipped default model's recipe (``train/default_model/synth_train.json``: EPG, 1.5 and 3 T, clinical
    protocol ranges, FLAIR missing in 10 %) with ``healthy_only=True``; heads: phantoms plus augmented colin27
    (``kind="mixed"``) when ``config.colin27`` exists, else phantoms only.
    """
    from synth.generate import SynthConfig

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
    factor each scenario changes.
    """
    from synth.artefacts import ArtefactConfig
    from synth.protocols import ProtocolRanges

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
    return out


def variant_train_config(config: ExperimentConfig, variant: Variant, store: Path, val_store: Path, out: Path,
                         device: str = "auto", progress: bool = True) -> Any:
    """The :class:`train.trainer.TrainConfig` of one variant: only ``model.arch`` and the physics weight differ
    between variants."""
    from train.losses import LossConfig
    from train.trainer import TrainConfig

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
    n_eval = 7 * min(config.n_scenario, config.max_eval_slices)
    out = {"stores": ((config.n_train + config.n_val) * _RATE_SYNTH_TRAIN_S
                      + 7 * config.n_scenario * _RATE_SYNTH_SCENARIO_S) * px,
           "training": len(VARIANTS) * per_variant,
           "evaluation": n_eval * (len(VARIANTS) * _RATE_INFER_S + _RATE_NLLS_S) * px
           + 7 * (config.n_examples + 1) * _RATE_FIGURE_S}
    out["total"] = sum(out.values())
    return out


# ------------------------------------------------------------------------------------------------ pipeline
def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _check_folder(out: Path, config: ExperimentConfig, resume: bool) -> None:
    """Refuse a non-empty ``out`` without ``resume``, and a resume with another configuration."""
    from train.checkpoint import config_differences

    marker = out / "experiment.json"
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise ValueError(f"--out {out} is not empty (an earlier experiment?); pass --resume to continue it or "
                         "choose another --out")
    if resume and marker.is_file():
        saved = json.loads(marker.read_text())
        diff = config_differences(saved, config.to_dict())
        if diff:
            raise ValueError(f"cannot resume {out} with a different experiment configuration; fields that differ:"
                             "\n  " + "\n  ".join(d.replace("checkpoint", "saved") for d in diff))


def run_experiment(config: ExperimentConfig, out: str | os.PathLike, results: str | os.PathLike, *,
                   device: str = "auto", resume: bool = False, progress: bool = True,
                   echo: Callable[[str], None] = print, command: str = "") -> dict[str, Any]:
    """Run (or, with ``resume``, continue) the ablation in ``out`` and write the results page ``results``.

    Parameters
    ----------
    config : sizes, budget and seeds.
    out : working folder (stores, runs, evaluations; layout in the module docstring).
    results : the markdown page; ``<stem>.json`` and the folder ``<stem>_figures/`` are written beside it.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ... for training and evaluation.
    resume : continue an interrupted experiment in ``out`` (finished stages are skipped).
    progress : tqdm bars (stages, store generation, training, evaluation).
    echo : where one-line stage messages go.
    command : the command line, shown on the page.

    Returns
    -------
    The JSON-able report (also written to ``<stem>.json``); ``report["stages"]`` says what each stage did.

    Raises
    ------
    ValueError : ``out`` not empty without ``resume``; a resume with another configuration; invalid data.
    FileNotFoundError : the training recipe or the out-of-range scenario file is missing.
    """
    import torch

    out, results = Path(out), Path(results)
    if results.suffix == ".json":
        raise ValueError(f"--results {results} must be the markdown page (e.g. results.md); its JSON twin is "
                         "written beside it")
    _check_folder(out, config, resume)
    threads = torch.get_num_threads()
    if config.torch_threads is not None:
        torch.set_num_threads(config.torch_threads)
    try:
        return _run_stages(config, out, results, device, progress, echo, command)
    finally:
        torch.set_num_threads(threads)


def _run_stages(config: ExperimentConfig, out: Path, results: Path, device: str, progress: bool,
                echo: Callable[[str], None], command: str) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from synth.store import default_part_subjects, write_store
    from train.evaluate import run_evaluate
    from train.trainer import train

    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(out / "experiment.json", json.dumps(config.to_dict(), indent=1, sort_keys=True) + "\n")
    train_synth, source_note = training_synth_config(config)
    val_synth = train_synth.replace(seed=config.synth_seed + 1)
    scens = scenarios(config, train_synth)
    stores = {"train": (train_synth, config.n_train), "val": (val_synth, config.n_val)}
    stores.update({s.name: (s.synth, config.n_scenario) for s in scens if s.synth is not None})
    ready = [s for s in scens if s.synth is not None]
    stages: dict[str, dict[str, Any]] = {}
    bar = tqdm(total=len(stores) + len(VARIANTS) + len(ready) + 1, desc="ablation", unit="stage",
               disable=not progress)

    def stage(name: str, done: bool, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        value = None if done else fn()
        stages[name] = {"status": "skipped (output exists)" if done else "done",
                        "seconds": time.perf_counter() - t0}
        echo(f"{name}: {stages[name]['status']} ({stages[name]['seconds']:.1f} s)")
        bar.update(1)
        return value

    paths = {name: out / "stores" / f"{name}.h5" for name in stores}
    for name, (synth, n) in stores.items():
        def make(name: str = name, synth: Any = synth, n: int = n) -> Any:
            paths[name].parent.mkdir(parents=True, exist_ok=True)
            # small stores in at least one part per worker, so that every worker has one to generate
            n_subjects = -(-n // synth.slices_per_subject)
            part = min(default_part_subjects(synth), max(1, -(-n_subjects // config.synth_workers)))
            with tqdm(total=n, desc=f"synth {name}", unit="slice", leave=False, disable=not progress) as sb:
                return write_store(synth, paths[name], n, workers=config.synth_workers, part_subjects=part,
                                   progress=sb.update)
        stage(f"store {name}", paths[name].is_file(), make)

    summaries: dict[str, dict[str, Any]] = {}
    for v in VARIANTS:
        run = out / "runs" / v.name
        marker = run / "summary.json"

        def fit(v: Variant = v, run: Path = run, marker: Path = marker) -> None:
            tc = variant_train_config(config, v, paths["train"], paths["val"], run, device, progress)
            try:
                summary = train(tc, resume=(run / "last.pt").is_file())
            except FloatingPointError as err:  # a diverged variant is a result, not a reason to stop the others
                summary = {"error": str(err)}
            _atomic_write_text(marker, json.dumps(summary, indent=1) + "\n")
        stage(f"train {v.name}", marker.is_file(), fit)
        summaries[v.name] = json.loads(marker.read_text())

    checkpoints = {}
    for v in VARIANTS:
        run = out / "runs" / v.name
        ckpt = next((p for p in (run / "best.pt", run / "last.pt") if p.is_file()), None)
        if ckpt is not None:
            checkpoints[v.name] = str(ckpt)
    models = {**checkpoints, NLLS: NLLS}
    evaluations: dict[str, dict[str, Any]] = {}
    for s in ready:
        ev_dir = out / "eval" / s.name

        def evaluate_one(s: Scenario = s, ev_dir: Path = ev_dir) -> None:
            run_evaluate(models, [paths[s.name]], ev_dir, overwrite=True, split="all",
                         max_samples=config.max_eval_slices, batch=config.eval_batch, device=device,
                         n_examples=config.n_examples, progress=progress)
        stage(f"evaluate {s.name}", _evaluation_current(ev_dir / "results.json", models), evaluate_one)
        evaluations[s.name] = json.loads((ev_dir / "results.json").read_text())

    t0 = time.perf_counter()
    report = build_report(config, scens, summaries, evaluations, out=out, source_note=source_note,
                          stages=stages, device=device, estimate=estimate_seconds(config),
                          seconds=time.perf_counter() - t_start, command=command)
    write_report(report, results, {s: out / "eval" / s for s in evaluations})
    stages["report"] = {"status": "done", "seconds": time.perf_counter() - t0}
    bar.update(1)
    bar.close()
    return report


def _evaluation_current(path: Path, models: Mapping[str, str]) -> bool:
    """True if ``path`` (an evaluation's results.json) exists and evaluated exactly ``models``, each checkpoint
    with its present content (SHA-256), so a retrained variant is never reported with stale numbers."""
    from train.predict import sha256_file

    if not path.is_file():
        return False
    done = json.loads(path.read_text()).get("models", {})
    if set(done) != set(models):
        return False
    return all(spec == NLLS or done[name].get("sha256") == sha256_file(spec) for name, spec in models.items())


def copy_figures(folders: dict[str, Path], dest: Path) -> dict[str, list[str]]:
    """Copy each evaluation folder's PNGs (montages, curves) into ``dest``; returns ``{scenario: [file names]}``."""
    names: dict[str, list[str]] = {}
    dest.mkdir(parents=True, exist_ok=True)
    for scen, folder in folders.items():
        names[scen] = []
        for png in sorted(Path(folder).glob("*.png")):
            shutil.copy2(png, dest / png.name)
            names[scen].append(png.name)
    return names


# ------------------------------------------------------------------------------------------------ statistics
#: Per-slice record metrics of train.evaluate summarised per scenario (brain mask unless named).
RECORD_METRICS = ("psnr_db", "ssim", "mae", "mpe_pct", "psnr_no_csf_db", "mpe_no_csf_pct", "psnr_whole_db")
#: Per-slice metrics compared between variants with the paired test.
PAIRED_METRICS = ("psnr_db", "mpe_pct")


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def subject_summary(records: Sequence[Mapping[str, Any]], model: str, map_name: str, metric: str) -> dict[str, Any]:
    """Mean ± std over subjects of one per-slice metric.

    Each slice's value comes from ``record["metrics"][model][map_name][metric]`` (the ``samples`` records of
    :func:`train.evaluate.evaluate`); slices are grouped by ``record["subject_id"]``, each subject contributes
    the mean of its finite values, and the summary is over those subject means.

    Returns
    -------
    ``{"mean", "std", "n_subjects", "n_slices"}``; ``std`` is the sample standard deviation (ddof 1), NaN with
    fewer than two subjects; ``mean`` is NaN without any finite value.
    """
    groups: dict[str, list[float]] = {}
    for rec in records:
        m = (rec.get("metrics") or {}).get(model)
        v = None if m is None else m[map_name][metric]
        if _finite(v):
            groups.setdefault(str(rec["subject_id"]), []).append(float(v))
    means = np.array([np.mean(v) for v in groups.values()], np.float64)
    return {"mean": float(means.mean()) if means.size else math.nan,
            "std": float(means.std(ddof=1)) if means.size > 1 else math.nan,
            "n_subjects": int(means.size), "n_slices": int(sum(len(v) for v in groups.values()))}


def paired_values(records: Sequence[Mapping[str, Any]], model_a: str, model_b: str, map_name: str,
                  metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice values of two models on the slices where both have a finite value: ``(a, b)``, (n,) float64
    each, in record order (pairing by slice)."""
    a, b = [], []
    for rec in records:
        ma, mb = (rec.get("metrics") or {}).get(model_a), (rec.get("metrics") or {}).get(model_b)
        if ma is None or mb is None:
            continue
        va, vb = ma[map_name][metric], mb[map_name][metric]
        if _finite(va) and _finite(vb):
            a.append(float(va))
            b.append(float(vb))
    return np.array(a, np.float64), np.array(b, np.float64)


def paired_test(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test of paired samples (``scipy.stats.wilcoxon(a, b)`` with its defaults:
    zero differences dropped, exact null distribution for small samples without ties).

    Returns
    -------
    ``{"n", "median_diff", "statistic", "p_value"}``: ``median_diff`` is the median of ``a - b`` over all pairs;
    ``statistic`` and ``p_value`` are NaN when there is no pair or every difference is zero (test undefined).
    """
    import warnings

    from scipy.stats import wilcoxon

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_test needs two 1-D arrays of one length; got shapes {a.shape} and {b.shape}")
    d = a - b
    out = {"n": int(d.size), "median_diff": float(np.median(d)) if d.size else math.nan,
           "statistic": math.nan, "p_value": math.nan}
    if d.size and np.any(d != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # small-sample notes; the page states the test and n
            res = wilcoxon(a, b)
        out["statistic"], out["p_value"] = float(res.statistic), float(res.pvalue)
    return out


def _get(d: Any, *keys: Any) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


#: Thresholds of tracker issue 7 (checked on the reference variant; never tuned on test stores).
TARGET_PSNR_DB = 38.0
TARGET_SSIM = 0.97
TARGET_LESION_MPE_PCT = 10.0
TARGET_OOR_GAIN_DB = 3.0
_MAP_LABEL = {"t1": "T1", "t2": "T2", "pd": "PD"}


def check_targets(scen: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The targets against the report's ``scenarios`` entries: one row per target and map, ``met`` True /
    False, or None when its scenario or model is missing.

    Internal test: the reference's masked PSNR >= 38 dB and SSIM >= 0.97 (subject means) on each map;
    lesions: its MPE in the lesion voxels (pooled) < 10 % for T1 and T2; out-of-range protocols: its masked
    PSNR minus the plain U-Net's >= 3 dB on each map.
    """
    rows = []

    def add(scenario: str, text: str, value: Any, threshold: float, op: str, kind: str, map_name: str) -> None:
        ok = None if not _finite(value) else (value >= threshold if op == ">=" else value < threshold)
        rows.append({"scenario": scenario, "target": text, "kind": kind, "map": map_name,
                     "value": value if _finite(value) else None, "threshold": threshold, "op": op, "met": ok})

    for mp in MAP_NAMES:
        v = _get(scen, "internal_test", "summary", REFERENCE, mp, "psnr_db", "mean")
        add("internal_test", f"masked PSNR {_MAP_LABEL[mp]} [dB]", v, TARGET_PSNR_DB, ">=", "psnr", mp)
    for mp in MAP_NAMES:
        v = _get(scen, "internal_test", "summary", REFERENCE, mp, "ssim", "mean")
        add("internal_test", f"masked SSIM {_MAP_LABEL[mp]}", v, TARGET_SSIM, ">=", "ssim", mp)
    for mp in ("t1", "t2"):
        v = _get(scen, "lesions", "tissue", REFERENCE, "lesion", mp, "mpe_pct")
        add("lesions", f"MPE in lesions {_MAP_LABEL[mp]} [%]", v, TARGET_LESION_MPE_PCT, "<", "lesion", mp)
    for mp in MAP_NAMES:
        a = _get(scen, "out_of_range", "summary", REFERENCE, mp, "psnr_db", "mean")
        b = _get(scen, "out_of_range", "summary", "unet", mp, "psnr_db", "mean")
        gain = a - b if _finite(a) and _finite(b) else None
        add("out_of_range", f"masked PSNR {_MAP_LABEL[mp]} gain over plain U-Net [dB]", gain, TARGET_OOR_GAIN_DB,
            ">=", "oor", mp)
    return rows


# ------------------------------------------------------------------------------------------------ report
#: The shipped default model (train/default_model/MODEL_CARD.md): crops seen in training and its masked
#: internal-test PSNR [dB] (T1, T2, PD), quoted on the page to put a short budget in perspective.
_SHIPPED_SAMPLES = 3817 * 24
_SHIPPED_PSNR_DB = (30.3, 23.7, 29.6)


def _training_log(run: Path) -> dict[str, Any]:
    """Median seconds per step and the validation curve of a run (from its ``metrics.jsonl``)."""
    rates, vals = [], []
    log = run / "metrics.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            rec = json.loads(line) if line.strip() else {}
            if rec.get("kind") == "train" and _finite(rec.get("samples_per_s")):
                rates.append(float(rec["samples_per_s"]))
            elif rec.get("kind") == "val" and _finite(rec.get("val_masked_l1")):
                vals.append((int(rec["step"]), float(rec["val_masked_l1"])))
    return {"samples_per_s": float(np.median(rates)) if rates else None, "val_curve": vals}


def _val_trend(curve: Sequence[tuple[int, float]]) -> float | None:
    """Relative change of the validation loss over the second half of the run (negative: still falling)."""
    if len(curve) < 2:
        return None
    last_step = curve[-1][0]
    mid = min(curve, key=lambda sv: abs(sv[0] - last_step / 2))
    return None if mid[0] == last_step or mid[1] == 0 else (curve[-1][1] - mid[1]) / mid[1]


def build_report(config: ExperimentConfig, scens: Sequence[Scenario], summaries: Mapping[str, Mapping[str, Any]],
                 evaluations: Mapping[str, Mapping[str, Any]], *, out: Path, source_note: str,
                 stages: Mapping[str, Any], device: str, estimate: Mapping[str, float], seconds: float,
                 command: str = "") -> dict[str, Any]:
    """The JSON-able report: configuration, variants, per-scenario summaries, paired tests, targets, timing."""
    from train.checkpoint import package_version

    variants = {}
    for v in VARIANTS:
        s = dict(summaries.get(v.name) or {})
        log = _training_log(out / "runs" / v.name)
        rate = log["samples_per_s"]
        variants[v.name] = {
            "label": v.label, "arch": v.arch, "physics_weight": config.physics_weight if v.physics else 0.0,
            "parameters": s.get("parameters"), "step": s.get("step"), "best_val": s.get("best_val"),
            "last_val": s.get("last_val"), "seconds_last_call": s.get("seconds"), "error": s.get("error"),
            "seconds_per_step": config.batch_size / rate if rate else None, "val_curve": log["val_curve"],
            "val_trend_second_half": _val_trend(log["val_curve"]), "device": s.get("device")}
    models = [v.name for v in VARIANTS] + [NLLS]
    scen_out: dict[str, Any] = {}
    tests: dict[str, Any] = {}
    for sc in scens:
        entry: dict[str, Any] = {"description": sc.description, "note": sc.note,
                                 "seed": None if sc.synth is None else sc.synth.seed,
                                 "n_store": config.n_scenario if sc.synth is not None else 0}
        ev = evaluations.get(sc.name)
        scen_out[sc.name] = entry
        if ev is None:
            continue
        res = ev["scenarios"][sc.name]
        records = ev["samples"][sc.name]
        entry.update(store=res["store"], n_evaluated=res["n_samples"], summary={}, whole_ssim={}, tissue={},
                     skipped={})
        for m in models:
            if m not in res["models"]:
                continue
            r = res["models"][m]
            entry["summary"][m] = {mp: {k: subject_summary(records, m, mp, k) for k in RECORD_METRICS}
                                   for mp in MAP_NAMES}
            entry["whole_ssim"][m] = {mp: _get(r, "metrics", "whole_slice", mp, "ssim") for mp in MAP_NAMES}
            entry["tissue"][m] = _get(r, "metrics", "tissue") or {}
            if r["n_skipped"]:
                reasons = sorted({rec.get("skipped", {}).get(m, "") for rec in records} - {""})
                entry["skipped"][m] = {"n": r["n_skipped"], "of": res["n_samples"], "reasons": reasons}
        tests[sc.name] = {}
        for m in models[1:]:
            if m not in res["models"] or REFERENCE not in res["models"]:
                continue
            tests[sc.name][m] = {mp: {k: paired_test(*paired_values(records, REFERENCE, m, mp, k))
                                      for k in PAIRED_METRICS} for mp in MAP_NAMES}
    report = {
        "format": "relaxomap-ablation", "format_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "package_version": package_version(),
        "command": command, "device": device, "config": config.to_dict(), "training_source": source_note,
        "seeds": {"train": config.synth_seed, "val": config.synth_seed + 1, "training": config.seed},
        "reference": REFERENCE, "variants": variants, "scenarios": scen_out, "paired_tests": tests,
        "stages": dict(stages), "estimate_seconds": dict(estimate), "seconds": seconds, "work_folder": str(out),
    }
    report["targets"] = check_targets(scen_out)
    for row in report["targets"]:
        row["why"] = None if row["met"] is not False else _specific_reason(row, report)
    missed = any(row["met"] is False for row in report["targets"])
    report["why_missed"] = _common_reasons(report, config) if missed else []
    return json_safe(report)


def _common_reasons(report: Mapping[str, Any], config: ExperimentConfig) -> list[str]:
    """Facts of this run that bear on every missed target: size, training budget, validation trend."""
    seen = config.steps * config.batch_size
    parts = []
    if config.label.startswith("quick"):
        parts.append("smoke size (--quick): a tiny network trained for a few steps; no target is expected")
    parts.append(f"training budget: {config.steps} steps × {config.batch_size} crops"
                 + (f" of {config.patch}² px" if config.patch else "") + f" = {seen:,} samples per variant, "
                 f"{100 * seen / _SHIPPED_SAMPLES:.0f} % of the shipped default model's 3817 × 24 — and that model "
                 f"reaches {' / '.join(f'{v:g}' for v in _SHIPPED_PSNR_DB)} dB masked T1 / T2 / PD PSNR on its own "
                 "internal test (MODEL_CARD.md)")
    trend = report["variants"][REFERENCE].get("val_trend_second_half")
    if trend is not None:
        parts.append(f"the reference's validation loss changed by {100 * trend:+.1f} % over the second half of "
                     "training" + (" — still falling, so more steps should help" if trend < -0.02 else
                                   " — nearly flat, so more steps alone are unlikely to close the gap"))
    return parts


def _specific_reason(row: Mapping[str, Any], report: Mapping[str, Any]) -> str | None:
    """What this run measured about one missed target beyond the common reasons."""
    scen = report["scenarios"]
    if row["kind"] == "psnr":
        no_csf = _get(scen, row["scenario"], "summary", REFERENCE, row["map"], "psnr_no_csf_db", "mean")
        if _finite(no_csf):
            return (f"the PSNR peak is the brain's maximum (in CSF) and CSF errors weigh most; without CSF the "
                    f"masked PSNR is {no_csf:.1f} dB")
    elif row["kind"] == "lesion":
        bias = _get(scen, "lesions", "tissue", REFERENCE, "lesion", row["map"], "bias")
        return ("lesions are absent from the healthy-only training data (the point of this scenario)"
                + (f"; mean signed error in lesions {bias:+.1f} ms" if _finite(bias) else ""))
    elif row["kind"] == "oor":
        return "every protocol of this scenario lies outside the training ranges"
    return None


# ------------------------------------------------------------------------------------------------ page
def _f(v: Any, digits: int = 2) -> str:
    return f"{v:.{digits}f}" if _finite(v) else "–"


def _pm(s: Mapping[str, Any] | None, digits: int = 2) -> str:
    if not s or not _finite(s.get("mean")):
        return "–"
    return _f(s["mean"], digits) + (f" ± {_f(s['std'], digits)}" if _finite(s.get("std")) else "")


def _p(v: Any) -> str:
    return "–" if not _finite(v) else (f"{v:.2g}" if v >= 1e-3 else f"{v:.1e}")


def _hours(seconds: Any) -> str:
    return "–" if not _finite(seconds) else (f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds:.0f} s")


def _names(report: Mapping[str, Any]) -> dict[str, str]:
    return {**{k: v["label"] for k, v in report["variants"].items()}, NLLS: "NLLS fit"}


def _scenario_section(name: str, s: Mapping[str, Any], names: Mapping[str, str], figures: Sequence[str],
                      fig_dir: str) -> list[str]:
    from train.report import format_tissue_table

    out = [f"### `{name}`", "", s["description"] + ".", ""]
    if "summary" not in s:
        return out + [f"**Not evaluated** — {s.get('note') or 'no store'}.", ""]
    n_sub = max((e["t1"]["psnr_db"]["n_subjects"] for e in s["summary"].values()), default=0)
    out += [f"{s['n_evaluated']} of {s['n_store']} slices evaluated, {n_sub} subjects; mean ± std over subjects.",
            "", "| model | map | PSNR [dB] | SSIM | MAE | MPE [%] | PSNR no CSF [dB] | MPE no CSF [%] | "
            "PSNR whole [dB] | SSIM whole |", "|" + "---|" * 10]
    for m, maps in s["summary"].items():
        for mp in MAP_NAMES:
            e = maps[mp]
            unit = " ms" if mp != "pd" else ""
            mae = _pm(e["mae"], 1 if unit else 3) + (unit if _finite(e["mae"]["mean"]) else "")
            out.append(f"| {names.get(m, m)} | {_MAP_LABEL[mp]} | {_pm(e['psnr_db'])} | {_pm(e['ssim'], 3)} | {mae} "
                       f"| {_pm(e['mpe_pct'], 1)} | {_pm(e['psnr_no_csf_db'])} | {_pm(e['mpe_no_csf_pct'], 1)} | "
                       f"{_pm(e['psnr_whole_db'])} | {_f(s['whole_ssim'][m][mp], 3)} |")
    for m, sk in s.get("skipped", {}).items():
        why = "; ".join(sk["reasons"]) or "no reason recorded"
        out += ["", f"{names.get(m, m)}: {sk['n']} of {sk['of']} slices not evaluated ({why})."]
    by_label = {names.get(m, m): {"metrics": {"tissue": t}} for m, t in s["tissue"].items()}
    fake = {"scenarios": {name: {"models": by_label}}}  # the layout format_tissue_table reads
    out += ["", "Per tissue (pooled over the voxels of all evaluated slices):", "",
            format_tissue_table(fake, name), ""]
    out += [f"![{png}]({fig_dir}/{png})" for png in figures] + [""]
    return out


def render_page(report: Mapping[str, Any], figures: Mapping[str, Sequence[str]], fig_dir: str) -> str:
    """The markdown results page of a report (figures linked from ``fig_dir``, relative to the page)."""
    cfg, names = report["config"], _names(report)
    quick = cfg["label"].startswith("quick")
    lines = ["# relaxomap ablation: physics loss, parameter embedding and baselines", ""]
    if quick:
        lines += ["> **Smoke-size run (`--quick`)**: tiny stores, a tiny network and a few steps. It checks that the "
                  "pipeline runs; its numbers mean nothing.", ""]
    est = report["estimate_seconds"].get("total")
    used = sorted({v["device"] for v in report["variants"].values() if v.get("device")})
    device = report["device"] + (f" ({', '.join(used)})" if used and used != [report["device"]] else "")
    lines += [f"Created {report['created']} by relaxomap {report['package_version']} with `{report['command']}` "
              f"on device `{device}`; this call took {_hours(report['seconds'])}"
              + ("" if quick else f" (estimate for the whole experiment on a 2-core CPU from rates measured there: "
                                  f"{_hours(est)})") + f". Work folder: `{report['work_folder']}`.",
              "", "## Set-up", ""]
    patch = f"crops of {cfg['patch']}² px" if cfg["patch"] else "whole slices"
    lines += [
        f"- **Training data** (one store for every variant): {cfg['n_train']} axial slices of "
        f"{cfg['image_size']}² px, "
        f"{cfg['train_slices_per_subject']} per head, seed {report['seeds']['train']}; the shipped model's recipe "
        "(`train/default_model/synth_train.json`: EPG forward model, fields 1.5 and 3 T, clinical protocol "
        "ranges, FLAIR missing in 10 %) with **healthy heads only**; heads: " + report["training_source"] + ".",
        f"- **Validation** (checkpoint selection only): a second store of {cfg['n_val']} slices from the same "
        f"recipe, seed {report['seeds']['val']}. Test stores are never used for selection or tuning.",
        f"- **Budget** (same for every variant): {cfg['steps']} steps × {cfg['batch_size']} {patch}, AdamW peak lr "
        f"{cfg['lr']:g} (linear warm-up over {100 * cfg['warmup_fraction']:g} % of the steps, cosine decay), EMA "
        f"{cfg['ema_decay']:g}, training seed {report['seeds']['training']}; physics-consistency weight "
        f"{cfg['physics_weight']:g} reached after {100 * cfg['physics_ramp_fraction']:g} % of the steps. "
        "Evaluated: the EMA weights of `best.pt` (lowest validation loss).",
        f"- **Evaluation**: {cfg['max_eval_slices']} evenly spaced whole slices of each {cfg['n_scenario']}-slice "
        "scenario store (`train.evaluate`). Masked = brain mask; PSNR peak = maximum of the truth in the region; "
        "MPE = mean |error| / truth; 'whole' = the unmasked slice (MAE / MPE are masked only: the background truth "
        "is 0). Table values are the mean ± sample std over test subjects of each subject's mean over its slices "
        "(SSIM whole: mean over slices).", "",
        "| variant | architecture | physics weight | parameters | steps | s / step | best validation L1 | status |",
        "|---|---|---|---|---|---|---|---|"]
    for k, v in report["variants"].items():
        status = f"failed: {v['error']}" if v.get("error") else "trained"
        params = f"{v['parameters']:,}" if v.get("parameters") else "–"
        lines.append(f"| {v['label']} (`{k}`) | `{v['arch']}` | {v['physics_weight']:g} | {params} | "
                     f"{v.get('step') or '–'} | {_f(v.get('seconds_per_step'))} | {_f(v.get('best_val'), 4)} | "
                     f"{status} |")
    lines += ["| NLLS fit (`nlls`): voxel-wise least squares, `train/nlls.py` | – | – | – | – | – | – | "
              "needs all three contrasts |",
              "", "| scenario | what it tests | seed | slices | evaluated |", "|---|---|---|---|---|"]
    for k, s in report["scenarios"].items():
        lines.append(f"| `{k}` | {s['description']}{' — ' + s['note'] if s.get('note') else ''} | "
                     f"{s['seed'] if s['seed'] is not None else '–'} | {s['n_store'] or '–'} | "
                     f"{s.get('n_evaluated', '–')} |")
    lines += ["", "## Targets", "",
              f"Checked on the reference (`{report['reference']}`); thresholds fixed in advance, nothing tuned on "
              "test stores.", "", "| scenario | target | value | threshold | met |", "|---|---|---|---|---|"]
    for t in report["targets"]:
        met = "–" if t["met"] is None else ("**yes**" if t["met"] else "**no**")
        lines.append(f"| `{t['scenario']}` | {t['target']} | {_f(t['value'])} | {t['op']} {t['threshold']:g} | {met} |")
    if report["why_missed"]:
        lines += ["", "Why targets were missed — this run's facts:", ""]
        lines += [f"- {text}." for text in report["why_missed"]]
        lines += [f"- `{t['scenario']}` {t['target']}: {t['why']}." for t in report["targets"] if t.get("why")]
    lines += ["", "## Results per scenario", ""]
    fig_names = dict(figures)
    for k, s in report["scenarios"].items():
        lines += _scenario_section(k, s, names, fig_names.get(k, []), fig_dir)
    lines += _paired_section(report, names)
    lines += ["## Timing", "", "| stage | status | seconds |", "|---|---|---|"]
    lines += [f"| {k} | {v['status']} | {v['seconds']:.1f} |" for k, v in report["stages"].items()]
    est = report["estimate_seconds"]
    spent = {k: sum(v["seconds"] for name, v in report["stages"].items() if name.startswith(prefix)
                    and v["status"] == "done") for k, prefix in (("stores", "store "), ("training", "train "),
                                                                 ("evaluation", "evaluate "))}
    lines += ["", "Skipped stages were finished by an earlier call (`--resume`); their times are not included. "
              "This call / estimate for a whole run on a 2-core CPU: " + ", ".join(
                  f"{k} {_hours(spent[k])} / {_hours(est.get(k))}" for k in spent) + ".",
              "", "## Reproduce", "", "```bash", report["command"], "```", ""]
    return "\n".join(lines)


def _paired_section(report: Mapping[str, Any], names: Mapping[str, str]) -> list[str]:
    tests = report["paired_tests"]
    k = sum(1 for per in tests.values() for maps in per.values() for mets in maps.values() for t in mets.values()
            if _finite(t["p_value"]))
    ref = names.get(report["reference"], report["reference"])
    out = ["## Paired comparisons", "",
           f"Each variant against the reference ({ref}), paired by slice: two-sided **Wilcoxon signed-rank test** "
           "(`scipy.stats.wilcoxon` defaults: zero differences dropped; exact null distribution for small samples "
           "without ties, else the normal approximation) on the per-slice masked PSNR and MPE. Δ = reference − "
           "other, median over the paired slices (positive ΔPSNR and negative ΔMPE favour the reference). "
           f"p-values are not corrected for the {k} tests on this page (Bonferroni level: 0.05 / {max(k, 1)} = "
           f"{0.05 / max(k, 1):.2g}); with n slices no two-sided exact p-value falls below 2 / 2ⁿ.", "",
           "| scenario | other | map | n | median ΔPSNR [dB] | p | median ΔMPE [%] | p |",
           "|---|---|---|---|---|---|---|---|"]
    for scen, per in tests.items():
        for other, maps in per.items():
            for mp, mets in maps.items():
                a, b = mets["psnr_db"], mets["mpe_pct"]
                out.append(f"| `{scen}` | {names.get(other, other)} | {_MAP_LABEL[mp]} | {a['n']} | "
                           f"{_f(a['median_diff'])} | {_p(a['p_value'])} | {_f(b['median_diff'])} | "
                           f"{_p(b['p_value'])} |")
    return out + [""]


def write_report(report: Mapping[str, Any], results: str | os.PathLike,
                 eval_folders: Mapping[str, Path]) -> Path:
    """Write the page ``results``, its JSON twin ``<stem>.json`` and the figures folder ``<stem>_figures/``.

    Each is replaced atomically (the figures folder by renaming a complete temporary one), figures first so
    the page never links to a missing file.
    """
    from train.io_nifti import atomic_output_dir

    results = Path(results)
    fig_dir = results.with_name(f"{results.stem}_figures")
    with atomic_output_dir(fig_dir, overwrite=True) as tmp:
        figures = copy_figures(dict(eval_folders), tmp)
    _atomic_write_text(results.with_suffix(".json"), json.dumps(report, indent=1, allow_nan=False) + "\n")
    _atomic_write_text(results, render_page(report, figures, fig_dir.name))
    return results
