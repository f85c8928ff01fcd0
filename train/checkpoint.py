"""Checkpoints: one dict of state dicts and plain values, written atomically, read with ``weights_only=True``.

Layout of a checkpoint (every value is a tensor, a state dict or a plain Python value, so that
``torch.load(..., weights_only=True)`` reads it without unpickling arbitrary objects)::

    format              "relaxomap-checkpoint"
    format_version      int (this module writes FORMAT_VERSION)
    package_version     relaxomap version that wrote it
    created             ISO-8601 UTC time
    model_config        ModelConfig.to_dict()
    train_config        TrainConfig.to_dict() or None
    store_schema        schema version of the training store, or None
    step                optimisation steps completed
    best_metric         best validation metric so far (lower is better), or None
    model               model state dict (raw weights)
    ema                 state dict of the exponential moving average of the weights, or None
    optimizer           optimiser state dict, or None
    scaler              AMP gradient-scaler state dict, or None
    rng                 {"torch", "cuda", "numpy", "python"} generator states (see capture_rng_state), or None
    data_position       {"epoch": int, "batch": int}: where the data stream continues, or None
    extra               free dict of plain values
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
import pickle
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from relaxomap import __version__
from relaxomap.atomic import atomic_path, check_output_file
from relaxomap.physics.checks import config_differences

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "load_predictor",
    "check_finite_weights",
    "sha256_file",
    "export_for_inference",
    "capture_rng_state",
    "restore_rng_state",
]

FORMAT = "relaxomap-checkpoint"
FORMAT_VERSION = 1
_STATE_KEYS = ("model", "ema", "optimizer", "scaler", "rng")



def _as_dict(config: Any) -> dict[str, Any] | None:
    if config is None:
        return None
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return config.to_dict()
    raise TypeError(f"a configuration must be a dict or have to_dict(); got {type(config).__name__}")


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: torch.nn.Module | Mapping[str, torch.Tensor],
    model_config: Any,
    step: int,
    train_config: Any = None,
    store_schema: int | str | None = None,
    best_metric: float | None = None,
    ema: Mapping[str, torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | Mapping[str, Any] | None = None,
    scaler: Mapping[str, Any] | None = None,
    rng: Mapping[str, Any] | None = None,
    data_position: Mapping[str, int] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically: to a temporary file in the same directory, then ``os.replace``.

    A crash while writing leaves the previous file at ``path`` intact (the rename is atomic on POSIX and
    Windows within one file system).

    Parameters
    ----------
    path : destination file (``.pt``); its directory is created if needed.
    model : the network (unwrapped from DDP) or its state dict.
    model_config : :class:`model.config.ModelConfig` (or its dict).
    step : optimisation steps completed.
    train_config : :class:`train.config.TrainConfig` (or its dict), optional.
    store_schema : schema version of the training store.
    best_metric, ema, optimizer, scaler, rng, data_position, extra : see the module docstring.

    Returns
    -------
    Path : ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = model.state_dict() if isinstance(model, torch.nn.Module) else dict(model)
    opt_state = optimizer.state_dict() if isinstance(optimizer, torch.optim.Optimizer) else optimizer
    checkpoint = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_config": _as_dict(model_config),
        "train_config": _as_dict(train_config),
        "store_schema": store_schema,
        "step": int(step),
        "best_metric": None if best_metric is None else float(best_metric),
        "model": state,
        "ema": None if ema is None else dict(ema),
        "optimizer": opt_state,
        "scaler": None if scaler is None else dict(scaler),
        "rng": None if rng is None else dict(rng),
        "data_position": None if data_position is None else {k: int(v) for k, v in data_position.items()},
        "extra": dict(extra or {}),
    }
    with atomic_path(path, fsync=True) as tmp:
        torch.save(checkpoint, tmp)
    return path





def _inside_hint(folder: Path) -> str:
    """``" (it holds best.pt, last.pt: pass one of them)"`` for a run folder, else ``""``."""
    found = sorted(p.name for p in folder.glob("*.pt") if p.is_file())[:4]
    return f" (it holds {', '.join(found)}: pass one of them)" if found else ""


def _unreadable_message(path: Path, err: BaseException) -> str:
    """Why ``torch.load(path, weights_only=True)`` failed, in relaxomap's words.

    A file that needs full unpickling (a whole pickled model, another program's objects) is named as *not a
    relaxomap checkpoint*; PyTorch's advice to disable the safe loader is never relayed.
    """
    text = str(err)
    if isinstance(err, pickle.UnpicklingError) and "weights only" in text.lower():
        return (f"checkpoint {path} could not be read: it is not a relaxomap checkpoint. It holds pickled Python "
                "objects beyond tensors and plain values (a whole pickled model or another program's data), "
                "which relaxomap never unpickles because unpickling can run arbitrary code. Pass a checkpoint "
                "written by `relaxomap train` or `relaxomap export`")
    first = text.splitlines()[0] if text else ""
    if "weights_only" in first:
        first = ""
    return (f"checkpoint {path} could not be read: {type(err).__name__}{': ' + first if first else ''} "
            "(truncated, corrupt, or not a relaxomap checkpoint)")


def _non_finite_counts(t: torch.Tensor) -> tuple[int, int] | None:
    """(NaN count, Inf count) of a floating-point tensor with a non-finite value, else None.

    CPU tensors of NumPy dtypes are checked in NumPy: one single-threaded pass, ~1 ms for the shipped model's
    121 tensors, where a torch reduction per small tensor wakes every intra-op thread (~0.5 s on a busy 2-core
    machine).
    """
    if t.device.type == "cpu" and t.dtype in (torch.float16, torch.float32, torch.float64):
        a = t.detach().numpy()
        if np.isfinite(a).all():
            return None
        return int(np.isnan(a).sum()), int(np.isinf(a).sum())
    if bool(torch.isfinite(t).all()):
        return None
    return int(torch.isnan(t).sum()), int(torch.isinf(t).sum())


def check_finite_weights(state: Mapping[str, Any], path: str | os.PathLike, which: str = "model") -> None:
    """Refuse a state dict holding NaN or infinite values (a diverged run, a damaged file).

    One vectorised ``isfinite`` reduction per floating-point tensor.

    Raises
    ------
    ValueError naming the file, the first bad tensor and how many of its values are NaN / infinite.
    """
    for name, t in state.items():
        if not (isinstance(t, torch.Tensor) and t.is_floating_point()):
            continue
        bad = _non_finite_counts(t)
        if bad is not None:
            raise ValueError(
                f"checkpoint {path}: its {which} weights hold non-finite values (first bad tensor {name!r}: "
                f"{bad[0]} NaN and {bad[1]} Inf of {t.numel()} values); the training diverged or the file is "
                "damaged. Weights must be finite: use an earlier checkpoint of the run (best.pt) or train again"
            )


def load_checkpoint(
    path: str | os.PathLike,
    *,
    expected_model_config: Any = None,
    expected_schema: int | str | None = None,
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check it matches what is requested.

    Parameters
    ----------
    path : checkpoint file.
    expected_model_config : ModelConfig (or dict); if given, a checkpoint of another configuration is refused.
    expected_schema : store schema version; if given, a checkpoint trained on another schema is refused.
    map_location : where tensors are loaded (default CPU).

    Returns
    -------
    dict : the checkpoint (module docstring layout).

    Raises
    ------
    FileNotFoundError : the file does not exist.
    ValueError : the path is a directory; the file is corrupt, truncated or not a relaxomap checkpoint (one that
        needs full unpickling included: it is refused, never loaded unsafely); or its model configuration or
        store schema differs from the requested one (the message lists each differing field as
        ``field: checkpoint value vs requested value``).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a directory; a checkpoint file (.pt) is expected"
                         + _inside_hint(path))
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001  (corrupt files raise many types: UnpicklingError, KeyError, ...)
        raise ValueError(_unreadable_message(path, err)) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a relaxomap checkpoint (no format={FORMAT!r} entry)")
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {path} has format_version {version!r}; this relaxomap ({__version__}) reads "
            f"versions <= {FORMAT_VERSION}"
        )
    if expected_model_config is not None:
        diff = config_differences(ckpt.get("model_config") or {}, _as_dict(expected_model_config),
                                  ("checkpoint", "requested"))
        if diff:
            raise ValueError(
                f"checkpoint {path} holds a different model configuration; fields that differ:\n  "
                + "\n  ".join(diff)
            )
    if expected_schema is not None and ckpt.get("store_schema") != expected_schema:
        raise ValueError(
            f"checkpoint {path} was trained on store schema {ckpt.get('store_schema')!r}; "
            f"requested store schema {expected_schema!r}; fields that differ:\n  "
            f"store_schema: checkpoint {ckpt.get('store_schema')!r} vs requested {expected_schema!r}"
        )
    return ckpt


def load_model(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    use_ema: bool = True,
) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """Rebuild the network stored in a checkpoint, for inference; the architecture comes from the checkpoint.

    Parameters
    ----------
    path : checkpoint file (``best.pt`` or ``last.pt`` of a run).
    device : where the model is placed.
    use_ema : use the exponential-moving-average weights when the checkpoint has them.

    Returns
    -------
    (model, model_config, meta) : the model in eval mode, its :class:`model.config.ModelConfig`, and the
        checkpoint without its state dicts (step, configs, versions, best metric, ...), the entries of its
        ``extra`` dict at the top level (the trainer stores ``param_ranges``, ``protocol_ranges`` and
        ``store_config`` there), ``meta["relaxomap_version"]`` (= ``package_version``) and
        ``meta["weights"]`` = ``"ema"`` or ``"model"``.

    Raises
    ------
    FileNotFoundError, ValueError : as :func:`load_checkpoint`; ValueError also for weights that hold NaN or
        infinite values (:func:`check_finite_weights`) or do not fit the stored model_config.
    """
    from relaxomap.model.config import ModelConfig
    from relaxomap.model.unet import build_model

    ckpt = load_checkpoint(path)
    try:
        config = ModelConfig.from_dict(ckpt["model_config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint {path}: its model_config is not valid for this relaxomap: {err}") from err
    net = build_model(config)
    which = "ema" if use_ema and ckpt.get("ema") else "model"
    check_finite_weights(ckpt[which], path, which)
    try:
        net.load_state_dict(ckpt[which], strict=True)
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path}: {which} weights do not fit the stored model_config: {err}") from err
    net.to(device).eval()
    meta = {k: v for k, v in ckpt.items() if k not in _STATE_KEYS}
    for k, v in (ckpt.get("extra") or {}).items():  # training facts (param_ranges, ...) at the top level
        meta.setdefault(k, v)
    meta["relaxomap_version"] = ckpt.get("package_version")
    meta["weights"] = which
    return net, config, meta


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (read in 1 MiB chunks): the identity of a checkpoint in provenance records."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_predictor(path: str | os.PathLike, device: str | torch.device = "cpu"
                   ) -> tuple[torch.nn.Module, Any, dict[str, Any], dict[str, Any]]:
    """Load a checkpoint for prediction (EMA weights when present) and describe it for provenance records.

    Parameters
    ----------
    path : checkpoint file.
    device : where the model is placed.

    Returns
    -------
    model (on ``device``, eval mode), its :class:`model.config.ModelConfig`, the checkpoint's meta (see
    :func:`load_model`), and ``info``: ``path`` (resolved), ``sha256``, ``version`` (relaxomap version that
    wrote it), ``format_version``, ``created``, ``step``, ``weights`` (``"ema"`` / ``"model"``), ``arch`` and
    ``config`` (the ModelConfig dict).

    Raises
    ------
    FileNotFoundError, ValueError : as :func:`load_checkpoint`.
    """
    path = Path(path)
    model, config, meta = load_model(path, device=device)
    info = {"path": str(path.resolve()), "sha256": sha256_file(path),
            "version": str(meta.get("package_version", "unknown")),
            "format_version": meta.get("format_version"), "created": meta.get("created"),
            "step": meta.get("step"), "weights": meta.get("weights"), "arch": config.arch,
            "config": config.to_dict()}
    return model, config, meta, info


def export_for_inference(src: str | os.PathLike, dst: str | os.PathLike, *, use_ema: bool = True,
                         half: bool = False) -> Path:
    """Write a slim inference checkpoint of a training checkpoint: one set of weights, no optimiser or RNG state.

    Parameters
    ----------
    src : a run's ``best.pt`` / ``last.pt``.
    dst : the new file (written atomically); loads with :func:`load_model` like any checkpoint.
    use_ema : keep the EMA weights when the run has them (what :func:`load_model` would use), else the raw ones.
    half : store floating-point weights as float16 (halves the file; :func:`load_model` restores float32).

    Returns
    -------
    Path : ``dst``.

    Raises
    ------
    ValueError : ``dst`` cannot be written (:func:`relaxomap.atomic.check_output_file`, checked first), ``src``
        is not a readable checkpoint, or its weights are not finite.
    """
    check_output_file(dst, overwrite=True)  # a destination that cannot be written fails before the reading
    ckpt = load_checkpoint(src)
    which = "ema" if use_ema and ckpt.get("ema") else "model"
    check_finite_weights(ckpt[which], src, which)
    weights = {k: (v.half() if half and v.is_floating_point() else v) for k, v in ckpt[which].items()}
    extra = dict(ckpt.get("extra") or {})
    extra["exported_from"] = {"file": Path(src).name, "weights": which, "float16": bool(half)}
    return save_checkpoint(dst, model=weights, model_config=ckpt["model_config"], step=ckpt["step"],
                           train_config=ckpt.get("train_config"), store_schema=ckpt.get("store_schema"),
                           best_metric=ckpt.get("best_metric"), extra=extra)


def capture_rng_state() -> dict[str, Any]:
    """States of the torch (CPU and CUDA), NumPy global and Python ``random`` generators, as plain values/tensors."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np.asarray(np_state[1], np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "python": random.getstate(),
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states are restored only when as many devices are present)."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
