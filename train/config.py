"""``TrainConfig``: the one description of a training run (data, model, loss, optimisation, schedule,
logging), validated on construction and round-tripped through JSON into ``config.json`` and every checkpoint.
:func:`train.trainer.train` runs it; the run-directory layout and the meaning of the data and validation
fields are documented in :mod:`train.trainer`.

Warm-up follows the run's length unless it is set: ``warmup_steps=None`` becomes
:func:`default_warmup_steps` ``(steps) = min(500, steps // 10)`` on construction (500 for the default 20000
steps, 2 for a 20-step smoke run), and the resolved number is what ``config.json`` records.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from relaxomap.model.config import ModelConfig
from relaxomap.physics.checks import check_bool, check_finite_range, check_int_range, config_from_dict
from relaxomap.train.losses import LossConfig

__all__ = ["TrainConfig", "RESUME_MAY_CHANGE", "MAX_DEFAULT_WARMUP_STEPS", "default_warmup_steps"]

_OWNER = "TrainConfig"
#: TrainConfig fields a resumed run may change: where things are and how often they are reported, never
#: anything that changes the optimisation trajectory.
RESUME_MAY_CHANGE: frozenset[str] = frozenset(
    {"store", "val_store", "out", "device", "num_workers", "progress", "log_every", "checkpoint_every",
     "val_every", "val_max_slices"}
)


#: Warm-up steps of a long run when ``warmup_steps`` is not set (see :func:`default_warmup_steps`).
MAX_DEFAULT_WARMUP_STEPS = 500


def default_warmup_steps(steps: int) -> int:
    """Warm-up of a run of ``steps`` optimisation steps when none is set: ``min(500, steps // 10)``."""
    return min(MAX_DEFAULT_WARMUP_STEPS, int(steps) // 10)


# Strict: a float or bool where an int belongs (and a str where a number belongs) is a TypeError.
_int = partial(check_int_range, _OWNER, strict=True)
_float = partial(check_finite_range, _OWNER, strict=True)


def _path(field_: str, value: Any, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value:
        allowed = "a non-empty path or None" if optional else "a non-empty path"
        raise TypeError(f"{_OWNER}.{field_} must be {allowed}; got {value!r}")
    return value


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (stored as ``config.json`` and in every checkpoint).

    Parameters
    ----------
    store : training store (``relaxomap synth --out``).
    val_store : validation store; ``None`` = the ``"val"`` split of ``store`` (see the module docstring).
    model : network architecture (a :class:`model.config.ModelConfig` or its dict).
    loss : loss weights (a :class:`train.losses.LossConfig` or its dict); its physics weight is ramped by
        ``physics_ramp_start`` / ``physics_ramp_steps`` (:func:`train.schedule.physics_weight_at`).
    patch : side of the square training crops [px]; ``None`` = whole slices.
    batch_size : samples per optimisation step and process.
    steps : optimisation steps of the whole run.
    lr : peak learning rate (AdamW); ``min_lr`` : floor of the cosine decay (<= lr).
    weight_decay : AdamW decoupled weight decay, applied to weight matrices/kernels only (not biases/norms).
    warmup_steps : linear warm-up steps (<= steps); ``None`` = :func:`default_warmup_steps` of ``steps``.
    grad_clip : maximum global gradient L2 norm; ``None`` = no clipping.
    amp : mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling); ignored on
        CPU / MPS.
    ema_decay : decay of the exponential moving average of the weights in (0, 1); ``None`` = no EMA.
    physics_ramp_start, physics_ramp_steps : the physics-consistency weight is 0 before ``physics_ramp_start``
        and reaches its configured value ``physics_ramp_steps`` later.
    checkpoint_every, val_every, log_every : intervals in steps for ``last.pt``, validation and log lines.
    val_max_slices : validation uses this many whole slices, evenly spaced over the validation data.
    seed : seeds initialisation, data order and crops.
    num_workers : DataLoader worker processes per training process.
    out : run directory.
    device : ``"auto"`` (CUDA > MPS > CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    progress : show a tqdm progress bar (rank 0).
    """

    store: str
    val_store: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    patch: int | None = 128
    batch_size: int = 8
    steps: int = 20000
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 1e-4
    warmup_steps: int | None = None
    grad_clip: float | None = 1.0
    amp: bool = True
    ema_decay: float | None = 0.999
    physics_ramp_start: int = 0
    physics_ramp_steps: int = 2000
    checkpoint_every: int = 1000
    val_every: int = 1000
    val_max_slices: int = 64
    log_every: int = 20
    seed: int = 0
    num_workers: int = 0
    out: str = "runs/relaxomap"
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        set_("store", _path("store", self.store))
        set_("val_store", _path("val_store", self.val_store, optional=True))
        set_("out", _path("out", self.out))
        if isinstance(self.model, dict):
            set_("model", ModelConfig.from_dict(self.model))
        elif not isinstance(self.model, ModelConfig):
            raise TypeError(f"{_OWNER}.model must be a ModelConfig or its dict; got {type(self.model).__name__}")
        if isinstance(self.loss, dict):
            set_("loss", LossConfig.from_dict(self.loss))
        elif not isinstance(self.loss, LossConfig):
            raise TypeError(f"{_OWNER}.loss must be a LossConfig or its dict; got {type(self.loss).__name__}")
        if self.patch is not None:
            _int("patch", self.patch, 8, 8192)
        _int("batch_size", self.batch_size, 1, 65536)
        _int("steps", self.steps, 1, 10**9)
        set_("lr", _float("lr", self.lr, 0.0, 10.0, lo_open=True))
        set_("min_lr", _float("min_lr", self.min_lr, 0.0, self.lr))
        set_("weight_decay", _float("weight_decay", self.weight_decay, 0.0, 10.0))
        if self.warmup_steps is None:
            set_("warmup_steps", default_warmup_steps(self.steps))
        _int("warmup_steps", self.warmup_steps, 0, self.steps)
        if self.grad_clip is not None:
            set_("grad_clip", _float("grad_clip", self.grad_clip, 0.0, 1e12, lo_open=True))
        set_("amp", check_bool(_OWNER, "amp", self.amp))
        if self.ema_decay is not None:
            set_("ema_decay", _float("ema_decay", self.ema_decay, 0.0, 1.0, lo_open=True))
            if self.ema_decay == 1.0:
                raise ValueError(f"{_OWNER}.ema_decay must be < 1 (1 would never move); got 1.0")
        _int("physics_ramp_start", self.physics_ramp_start, 0, 10**9)
        _int("physics_ramp_steps", self.physics_ramp_steps, 0, 10**9)
        for name in ("checkpoint_every", "val_every", "log_every"):
            _int(name, getattr(self, name), 1, 10**9)
        _int("val_max_slices", self.val_max_slices, 1, 10**9)
        _int("seed", self.seed, 0, 2**31 - 1)
        _int("num_workers", self.num_workers, 0, 1024)
        if not isinstance(self.device, str) or not _DEVICE_RE.match(self.device):
            raise ValueError(f"{_OWNER}.device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; got {self.device!r}")
        set_("progress", check_bool(_OWNER, "progress", self.progress))

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (model and loss as nested dicts)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model"] = self.model.to_dict()
        d["loss"] = self.loss.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them, missing keys take defaults."""
        if isinstance(d, dict) and "store" not in d:  # the one field without a default
            raise ValueError(f"{_OWNER}: the field 'store' (training store path) is required")
        return config_from_dict(cls, d)

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        """Read a JSON file written by :meth:`to_json` (e.g. a run's ``config.json``); errors name the file."""
        path = Path(path)
        try:
            return cls.from_json(path.read_text())
        except OSError as err:
            raise ValueError(f"training config {path} could not be read: {err}") from None
        except (TypeError, ValueError) as err:
            raise ValueError(f"training config {path}: {err}") from None
