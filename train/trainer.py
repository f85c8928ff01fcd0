"""Training: ``train(config)`` for a :class:`train.config.TrainConfig`.

A run directory ``out/`` holds ``config.json``, ``metrics.jsonl`` and optional TensorBoard files
(:mod:`train.run_files`), ``last.pt`` (written every ``checkpoint_every`` steps and at the end, atomically)
and ``best.pt`` (lowest validation loss so far). ``train(config, resume=True)`` continues the run in ``out/``
exactly: model, optimiser, EMA, gradient scaler, RNG states and the data position come from ``last.pt``,
and the learning rate and loss weights are pure functions of the step (:mod:`train.schedule`), so a resumed
run ends with the parameters of an uninterrupted one.

Data (:mod:`train.data`): the store's ``"train"`` split (or the whole store when ``val_store`` is given) in
random ``patch`` x ``patch`` crops centred on a random brain-mask voxel (whole slices with ``patch=None``);
the crop of each item is drawn from a seed fixed by (seed, epoch, position), see
:class:`train.distributed.EpochBatchSampler`.

Validation loss (:mod:`train.validation`): masked L1 of the normalised maps on ``val_max_slices`` whole
slices spread evenly over the validation data, with the EMA weights when ``ema_decay`` is set.

Several processes (``torchrun``): DistributedDataParallel; each process reads its own share of every epoch
(``batch_size`` is per process); only rank 0 validates and writes files (its logged losses are those of its
own batches; ``samples_per_s`` counts all processes).
"""
from __future__ import annotations

import copy
import hashlib
import math
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from relaxomap.atomic import check_output_dir
from relaxomap.model.unet import build_model, count_parameters
from relaxomap.physics.checks import config_differences
from relaxomap.train.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from relaxomap.train.config import RESUME_MAY_CHANGE, TrainConfig
from relaxomap.train.data import BatchStream, SeededPatches, open_datasets, to_device, training_facts
from relaxomap.train.device import resolve_device
from relaxomap.train.distributed import DistContext, EpochBatchSampler, init_distributed, shutdown_distributed
from relaxomap.train.guard import NonFiniteLossError, loss_is_finite, nonfinite_loss
from relaxomap.train.losses import total_loss
from relaxomap.train.run_files import RunFiles
from relaxomap.train.schedule import loss_config_at, lr_at, physics_weight_at
from relaxomap.train.validation import validate

__all__ = ["train", "EMA", "weights_digest"]


# ------------------------------------------------------------------------------------------------ model helpers
class EMA:
    """Exponential moving average of a model's weights (a frozen copy updated in place after each step).

    Decay at update ``n`` (1-based): ``min(decay, (1 + n) / (10 + n))``, so early averages are not dominated
    by the random initialisation; ``n`` is the optimisation step, so the EMA is a pure function of the run.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for ema_v, v in zip(self.model.state_dict().values(), model.state_dict().values()):
            if ema_v.dtype.is_floating_point:
                ema_v.lerp_(v.detach(), 1.0 - d)
            else:
                ema_v.copy_(v)


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and bytes): equal digests = identical weights."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


# ------------------------------------------------------------------------------------------------ set-up
@dataclass
class _Data:
    """The training batches (sampler and loader), rank 0's validation loader, the store schema and the facts
    about the training data kept in checkpoints."""

    sampler: EpochBatchSampler
    loader: DataLoader
    val_loader: DataLoader | None
    schema: Any
    facts: dict[str, Any]


def _open_data(config: TrainConfig, ctx: DistContext, device: torch.device) -> _Data:
    train_set, val_set, schema = open_datasets(config)
    facts = training_facts(train_set)
    sampler = EpochBatchSampler(len(train_set), config.batch_size, config.seed, ctx.rank, ctx.world_size)
    loader = DataLoader(SeededPatches(train_set, config.patch), batch_sampler=sampler,
                        num_workers=config.num_workers, persistent_workers=config.num_workers > 0,
                        pin_memory=device.type == "cuda", generator=torch.Generator())
    val_loader = None
    if len(val_set) == 0:
        where = config.val_store or f"the 'val' split of {config.store}"
        warnings.warn(f"no validation data ({where} is empty); best.pt will not be written", stacklevel=3)
    elif ctx.is_main:
        n_val = min(len(val_set), config.val_max_slices)  # evenly spread, so several subjects are seen
        picks = sorted({int(i) for i in np.linspace(0, len(val_set) - 1, n_val).round()})
        val_loader = DataLoader(Subset(val_set, picks), batch_size=config.batch_size, shuffle=False, num_workers=0)
    return _Data(sampler, loader, val_loader, schema, facts)


@dataclass
class _Model:
    """The network (``raw``, and ``net``: raw or its DDP wrapper), optimiser, EMA and mixed-precision state."""

    raw: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    ema: EMA | None
    use_amp: bool
    amp_dtype: torch.dtype
    scaler: Any


def _build(config: TrainConfig, device: torch.device, ctx: DistContext) -> _Model:
    _seed_everything(config.seed)
    raw = build_model(config.model).to(device)
    net: nn.Module = raw
    if ctx.distributed:
        net = nn.parallel.DistributedDataParallel(raw, device_ids=[device.index] if device.type == "cuda" else None)
    decay, no_decay = [], []
    for p in raw.parameters():  # no weight decay on biases and norm scales (1-D tensors)
        (decay if p.ndim > 1 else no_decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr_at(0, config))
    ema = EMA(raw, config.ema_decay) if config.ema_decay is not None else None
    use_amp = config.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    return _Model(raw, net, optimizer, ema, use_amp, amp_dtype, scaler)


def _resume(path: Path, config: TrainConfig, data: _Data, m: _Model, ctx: DistContext) -> tuple[int, float]:
    """Load ``last.pt`` into the model, optimiser, EMA, scaler, sampler and RNGs; returns (step, best metric).

    Refuses a checkpoint of another model configuration, store schema, TrainConfig (outside
    ``RESUME_MAY_CHANGE``) or process count, listing the fields that differ.
    """
    # on the CPU: RNG states must stay there; load_state_dict copies weights and optimiser moments onto the
    # parameters' device
    ckpt = load_checkpoint(path, expected_model_config=config.model, expected_schema=data.schema)
    saved = {k: v for k, v in (ckpt["train_config"] or {}).items() if k not in RESUME_MAY_CHANGE}
    wanted = {k: v for k, v in config.to_dict().items() if k not in RESUME_MAY_CHANGE}
    diff = config_differences(saved, wanted, ("checkpoint", "requested"))
    if diff:
        raise ValueError(f"cannot resume {path} with a different training configuration; fields that "
                         f"differ:\n  " + "\n  ".join(diff))
    m.raw.load_state_dict(ckpt["model"])
    m.optimizer.load_state_dict(ckpt["optimizer"])
    if m.ema is not None:
        m.ema.model.load_state_dict(ckpt["ema"] if ckpt["ema"] is not None else ckpt["model"])
    if ckpt["scaler"]:
        m.scaler.load_state_dict(ckpt["scaler"])
    position = ckpt["data_position"]
    if position.get("world_size", 1) != ctx.world_size:
        raise ValueError(f"cannot resume {path} with {ctx.world_size} process(es): it was trained with "
                         f"{position.get('world_size', 1)} (fields that differ:\n  world_size: checkpoint "
                         f"{position.get('world_size', 1)} vs requested {ctx.world_size})")
    data.sampler.set_position(position["epoch"], position["batch"])
    restore_rng_state(ckpt["rng"])
    best = math.inf if ckpt["best_metric"] is None else float(ckpt["best_metric"])
    return int(ckpt["step"]), best


# ------------------------------------------------------------------------------------------------ the loop
def _optimisation_step(m: _Model, batch: dict[str, Any], config: TrainConfig, step: int
                       ) -> tuple[torch.Tensor, dict[str, torch.Tensor], float, float]:
    """One update at ``step`` (0-based): returns the loss, its parts, the gradient norm and the learning rate.

    Raises
    ------
    NonFiniteLossError : the loss is not finite (checked before the backward pass, so the weights are left as
        they were), or the gradient norm is not (without loss scaling, which skips such steps); the message
        names the step and the samples of the batch holding non-finite values.
    """
    lr = lr_at(step, config)
    for group in m.optimizer.param_groups:
        group["lr"] = lr
    m.net.train()
    with torch.autocast(batch["inputs"].device.type, dtype=m.amp_dtype, enabled=m.use_amp):
        pred = m.net(batch["inputs"], batch["params"], batch["present"])
    loss, parts = total_loss(pred.float(), batch, loss_config_at(step, config))
    if not loss_is_finite(loss):
        raise nonfinite_loss("loss", float(loss.detach()), step, batch, config.store, lr)
    m.optimizer.zero_grad(set_to_none=True)
    m.scaler.scale(loss).backward()
    m.scaler.unscale_(m.optimizer)
    max_norm = config.grad_clip if config.grad_clip is not None else math.inf
    grad_norm = float(torch.nn.utils.clip_grad_norm_(m.raw.parameters(), max_norm))
    if not math.isfinite(grad_norm) and not m.scaler.is_enabled():  # grads are all-reduced: every rank agrees
        raise nonfinite_loss("gradient norm", grad_norm, step, batch, config.store, lr)
    m.scaler.step(m.optimizer)
    m.scaler.update()
    if m.ema is not None:
        m.ema.update(m.raw, step + 1)
    return loss, parts, grad_norm, lr


class _LogWindow:
    """Mean loss parts and samples/s since the last log line; time set aside (validation, checkpoints) is
    excluded with :meth:`exclude`."""

    def __init__(self) -> None:
        self.sums: dict[str, list[float]] = {}  # name -> [sum, count]
        self.steps, self.t0 = 0, time.perf_counter()

    def add(self, loss: torch.Tensor, parts: dict[str, torch.Tensor], grad_norm: float) -> None:
        self.steps += 1
        for k, v in {"loss": float(loss.detach()), **parts, "grad_norm": grad_norm}.items():
            if k != "total":  # == loss
                acc = self.sums.setdefault(k, [0.0, 0])
                acc[0], acc[1] = acc[0] + float(v), acc[1] + 1

    def record(self, step: int, epoch: int, lr: float, config: TrainConfig, n_samples: int) -> dict[str, Any]:
        """The ``metrics.jsonl`` line of the window ending at ``step``; starts the next window."""
        elapsed = time.perf_counter() - self.t0
        record = {"kind": "train", "step": step, "epoch": epoch, "lr": lr,
                  "physics_weight": physics_weight_at(step - 1, config),
                  **{k: total / count for k, (total, count) in self.sums.items()},
                  "samples_per_s": self.steps * n_samples / elapsed if elapsed > 0 else None}
        self.sums, self.steps, self.t0 = {}, 0, time.perf_counter()
        return record

    def exclude(self, seconds: float) -> None:
        self.t0 += seconds


# ------------------------------------------------------------------------------------------------ train
def train(config: TrainConfig, resume: bool = False, *, stop_after: int | None = None) -> dict[str, Any]:
    """Train (or, with ``resume=True``, continue) the run described by ``config`` in ``config.out``.

    Parameters
    ----------
    config : the run (see :class:`TrainConfig`).
    resume : continue from ``config.out/last.pt``; the model configuration, store schema and every
        TrainConfig field except those in ``RESUME_MAY_CHANGE`` must equal the checkpoint's.
    stop_after : stop (with a checkpoint) after this many steps of this call, e.g. for time-limited jobs;
        ``None`` trains up to ``config.steps``.

    Returns
    -------
    dict : ``step`` (steps completed), ``start_step``, ``best_val`` / ``last_val`` (validation masked L1,
        normalised units), ``last_loss``, ``samples_per_s``, ``parameters``, ``device``, ``world_size``,
        ``weights_sha256`` (digest of the raw weights on this rank), ``out``, ``last_checkpoint``,
        ``best_checkpoint``, ``seconds``.

    Raises
    ------
    ValueError : ``out`` already holds a run and ``resume`` is False; nothing to resume; a resume whose
        configuration differs (the message lists the fields); unusable data; an output folder that cannot be
        written.
    NonFiniteLossError : (a ValueError and FloatingPointError) the training or validation loss, or the gradient,
        became non-finite: the step and the samples holding non-finite values are named; ``last.pt`` is left
        as it was (the weights of the last checkpoint, never NaN ones).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train needs a TrainConfig; got {type(config).__name__}")
    if stop_after is not None and (isinstance(stop_after, bool) or int(stop_after) < 1):
        raise ValueError(f"stop_after must be a positive number of steps or None; got {stop_after!r}")
    ctx = init_distributed(config.device)
    try:
        return _train(config, resume, stop_after, ctx)
    finally:
        shutdown_distributed(ctx)


def _check_run_folder(out: Path, resume: bool) -> None:
    check_output_dir(out, existing_ok=True, what="--out")
    last_path = out / "last.pt"
    if resume and not last_path.is_file():
        raise ValueError(f"nothing to resume: {last_path} does not exist (start the run without --resume)")
    if not resume and last_path.exists():
        raise ValueError(f"{out} already holds a run ({last_path}); pass --resume to continue it "
                         "or choose another --out")


def _train(config: TrainConfig, resume: bool, stop_after: int | None, ctx: DistContext) -> dict[str, Any]:
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    device = resolve_device(config.device, ctx.local_rank)
    out = Path(config.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    _check_run_folder(out, resume)
    data = _open_data(config, ctx, device)
    m = _build(config, device, ctx)
    step, best = _resume(last_path, config, data, m, ctx) if resume else (0, math.inf)
    stream = BatchStream(data.loader, data.sampler)
    files = RunFiles(out, ctx.is_main, step if resume else None)
    files.write_config(config)
    start_step = step
    end_step = config.steps if stop_after is None else min(config.steps, start_step + int(stop_after))

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, model=m.raw, model_config=config.model, step=step, train_config=config,
                        store_schema=data.schema, best_metric=None if math.isinf(best) else best,
                        ema=None if m.ema is None else m.ema.model.state_dict(), optimizer=m.optimizer,
                        scaler=m.scaler.state_dict() if m.scaler.is_enabled() else None, rng=capture_rng_state(),
                        data_position={"epoch": stream.epoch, "batch": stream.batch, "world_size": ctx.world_size},
                        extra=data.facts)

    bar = tqdm(total=config.steps, initial=step, disable=not (ctx.is_main and config.progress),
               dynamic_ncols=True, desc="train")
    window, n_samples = _LogWindow(), config.batch_size * ctx.world_size
    last_val, last_loss, total_samples, t_loop = None, math.nan, 0, time.perf_counter()
    saved = step if resume else None  # the step last.pt holds
    try:
        while step < end_step:  # one optimisation step per iteration, then log, validate, checkpoint
            loss, parts, grad_norm, lr = _optimisation_step(m, to_device(stream.next(), device), config, step)
            step += 1
            total_samples += n_samples
            window.add(loss, parts, grad_norm)
            bar.update(1)
            if step % config.log_every == 0 or step == end_step:
                record = window.record(step, stream.epoch, lr, config, n_samples)
                last_loss = record["loss"]
                files.log(record)
                bar.set_postfix(loss=f"{last_loss:.4g}", lr=f"{lr:.2e}")
            t_aside = time.perf_counter()  # validation and checkpoints are kept out of the samples/s window
            if data.val_loader is not None and (step % config.val_every == 0 or step == config.steps):
                last_val = validate(m.ema.model if m.ema is not None else m.raw, data.val_loader, device,
                                    step=step - 1, store=config.val_store or config.store)
                improved = last_val is not None and last_val < best
                best = last_val if improved else best
                files.log({"kind": "val", "step": step, "val_masked_l1": last_val,
                           "best_val_masked_l1": None if math.isinf(best) else best,
                           "val_slices": len(data.val_loader.dataset)})
                if improved:
                    checkpoint(best_path)
            if ctx.is_main and (step % config.checkpoint_every == 0 or step == end_step):
                checkpoint(last_path)
                saved = step
            window.exclude(time.perf_counter() - t_aside)
    except NonFiniteLossError as err:
        kept = (f"{last_path} (step {saved}) is kept as it was" if saved is not None
                else f"no checkpoint was written ({last_path} does not exist)")
        raise NonFiniteLossError(f"{err}; {kept}") from None
    finally:
        bar.close()
        files.close()
    seconds_loop = time.perf_counter() - t_loop
    return {
        "step": step, "start_step": start_step, "best_val": None if math.isinf(best) else best,
        "last_val": last_val, "last_loss": last_loss,
        "samples_per_s": total_samples / seconds_loop if seconds_loop > 0 and total_samples else None,
        "parameters": count_parameters(m.raw), "device": str(device), "world_size": ctx.world_size,
        "rank": ctx.rank, "weights_sha256": weights_digest(m.raw), "out": str(out),
        "last_checkpoint": str(last_path), "best_checkpoint": str(best_path) if best_path.exists() else None,
        "seconds": time.perf_counter() - t_start,
    }
