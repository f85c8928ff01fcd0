"""Training: ``train(config)`` for a :class:`train.config.TrainConfig` (re-exported here).

A run directory ``out/`` holds ``config.json`` (the TrainConfig), ``last.pt`` (written every
``checkpoint_every`` steps and at the end, atomically), ``best.pt`` (lowest validation loss so far),
``metrics.jsonl`` (one JSON object per logged step and per validation) and, when the ``tensorboard``
package is installed, TensorBoard event files. ``train(config, resume=True)`` continues the run in ``out/``
exactly: model, optimiser, EMA, gradient scaler, RNG states and the data position come from ``last.pt``,
and the learning rate and loss weights are pure functions of the step (:mod:`train.schedule`), so a resumed
run ends with the parameters of an uninterrupted one.

Data: without ``val_store`` the store's subject-wise ``"train"`` split is trained on and its ``"val"`` split
validates; with ``val_store`` the whole ``store`` is trained on and the whole ``val_store`` validates. The
``"test"`` split is never read here. Training items are random ``patch`` x ``patch`` crops centred on a
random brain-mask voxel (whole slices with ``patch=None``); the crop of each item is drawn from a seed fixed
by (seed, epoch, position), see :class:`train.distributed.EpochBatchSampler`.

Validation loss: masked L1 between predicted and true maps in the model's normalised space
(:func:`model.unet.to_normalised`: ln(T1/1000 ms), ln(T2/100 ms), PD), averaged over brain-mask voxels and
the 3 maps, on ``val_max_slices`` whole slices spread evenly over the validation data, with the EMA weights
when ``ema_decay`` is set. 0.01 is a 1 % relaxation-time error.

Several processes (``torchrun``): DistributedDataParallel; each process reads its own share of every epoch
(``batch_size`` is per process); only rank 0 validates and writes files (its logged losses are those of its
own batches; ``samples_per_s`` counts all processes).
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from relaxomap.model.unet import build_model, count_parameters, to_normalised
from relaxomap.physics.checks import config_differences
from relaxomap.train.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from relaxomap.train.device import resolve_device
from relaxomap.train.distributed import DistContext, EpochBatchSampler, init_distributed, shutdown_distributed
from relaxomap.train.losses import total_loss
from relaxomap.train.schedule import loss_config_at, lr_at, physics_weight_at
from relaxomap.train.config import RESUME_MAY_CHANGE, TrainConfig

__all__ = ["TrainConfig", "RESUME_MAY_CHANGE", "train", "masked_l1_normalised", "SeededPatches", "EMA",
           "weights_digest"]

# ------------------------------------------------------------------------------------------------ data
_IMAGE_KEYS = ("inputs", "targets", "mask", "labels")  # per-pixel entries of a SynthDataset item


class SeededPatches(Dataset):
    """Random ``patch`` x ``patch`` crops of a slice dataset, each drawn from the seed given with its index.

    ``dataset[(index, crop_seed)]`` reads whole slice ``index`` and crops its ``inputs``, ``targets``,
    ``mask`` and ``labels`` at the same place: a window centred on a uniformly drawn brain-mask voxel (any
    voxel if the mask is empty), shifted to lie inside the slice — the rule of ``SynthDataset(patch=...)``,
    but with the draw fixed by ``crop_seed`` instead of a per-process generator, so that crops survive a
    resume and do not depend on DataLoader workers. ``patch=None`` returns whole slices.
    """

    def __init__(self, base: Dataset, patch: int | None) -> None:
        self.base, self.patch = base, patch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, crop_seed = key
        item = self.base[index]
        if self.patch is None:
            return item
        h, w = item["inputs"].shape[-2:]
        p = self.patch
        if p > h or p > w:
            raise ValueError(f"TrainConfig.patch={p} is larger than the store's slices ({h} x {w}); "
                             f"use --patch <= {min(h, w)} or --patch 0 (whole slices)")
        rng = np.random.default_rng(crop_seed)
        inside = torch.nonzero(item["mask"].reshape(h, w)) if "mask" in item else torch.empty(0, 2)
        if len(inside):
            cy, cx = inside[int(rng.integers(len(inside)))].tolist()
        else:
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
        top = min(max(cy - p // 2, 0), h - p)
        left = min(max(cx - p // 2, 0), w - p)
        return {k: v[..., top:top + p, left:left + p] if k in _IMAGE_KEYS else v for k, v in item.items()}


def _open_datasets(config: TrainConfig) -> tuple[Dataset, Dataset, Any]:
    """(train slices, validation slices, store schema version) following the module docstring's rule."""
    from relaxomap.synth.dataset import SynthDataset

    if config.val_store is None:
        train_set = SynthDataset(config.store, split="train")
        val_set = SynthDataset(config.store, split="val")
    else:
        train_set = SynthDataset(config.store, split=None)
        val_set = SynthDataset(config.val_store, split=None)
        if val_set.attrs.get("schema_version") != train_set.attrs.get("schema_version"):
            raise ValueError(
                f"validation store {config.val_store} has schema {val_set.attrs.get('schema_version')!r} but the "
                f"training store {config.store} has {train_set.attrs.get('schema_version')!r}; "
                "make both with one relaxomap version"
            )
    schema = train_set.attrs.get("schema_version")
    return train_set, val_set, (schema.item() if hasattr(schema, "item") else schema)


def _training_facts(train_set: Any) -> dict[str, Any]:
    """Plain facts about the training data kept in checkpoints for inference-time checks.

    ``param_ranges``: ``{contrast: {"tr_ms": (lo, hi), "te_ms": ..., "ti_ms": ...}}`` seen in the training
    samples [ms] (absent contrasts excluded); ``protocol_ranges``: the generator's protocol ranges;
    ``store_config``: the store's whole SynthConfig dict.
    """
    facts: dict[str, Any] = {}
    config = train_set.attrs.get("config") or {}
    roles = train_set.attrs.get("contrasts") or ["t1w", "t2w", "flair"]
    if len(train_set):
        rng = train_set.params_range()
        facts["param_ranges"] = {
            role: {name: (float(rng["min"][c, j]), float(rng["max"][c, j]))
                   for j, name in enumerate(("tr_ms", "te_ms", "ti_ms"))}
            for c, role in enumerate(roles) if not np.isnan(rng["min"][c]).any()
        }
    if "protocols" in config:
        facts["protocol_ranges"] = config["protocols"]
    facts["store_config"] = config
    return facts


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class _BatchStream:
    """Endless batches; ``epoch`` / ``batch`` say where the next batch comes from (saved in checkpoints)."""

    def __init__(self, loader: DataLoader, sampler: EpochBatchSampler) -> None:
        self.loader, self.sampler = loader, sampler
        self.epoch, self.batch = sampler.epoch, sampler.start_batch
        self._it = iter(loader)

    def next(self) -> dict[str, Any]:
        if self.batch >= self.sampler.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
            self.sampler.set_position(self.epoch, 0)
            self._it = iter(self.loader)
        out = next(self._it)
        self.batch += 1
        return out


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


@torch.no_grad()
def masked_l1_normalised(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(sum, count) of |to_normalised(pred) − to_normalised(target)| over mask voxels x 3 maps.

    pred, target : (B, 3, H, W) [T1 ms, T2 ms, PD]; mask : (B, 1, H, W) or (B, H, W), nonzero = brain.
    """
    m = mask.reshape(pred.shape[0], 1, *pred.shape[-2:]).to(pred.dtype)
    err = (to_normalised(pred.float()) - to_normalised(target.float())).abs() * m
    return float(err.sum()), float(m.sum()) * pred.shape[1]


@torch.no_grad()
def _validate(model: nn.Module, loader: DataLoader | None, device: torch.device) -> float | None:
    if loader is None:
        return None
    model.eval()
    total, count = 0.0, 0.0
    for batch in loader:
        batch = _to_device(batch, device)
        pred = model(batch["inputs"], batch["params"], batch["present"])
        s, c = masked_l1_normalised(pred, batch["targets"], batch["mask"])
        total, count = total + s, count + c
    return total / count if count else None


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


class _RunFiles:
    """Rank 0's outputs: config.json, metrics.jsonl and optional TensorBoard; a no-op on other ranks."""

    def __init__(self, out: Path, active: bool, resume_step: int | None) -> None:
        self.out, self.active, self.tb = out, active, None
        if not active:
            return
        out.mkdir(parents=True, exist_ok=True)
        self.log_path = out / "metrics.jsonl"
        if resume_step is None:
            self.log_path.write_text("")
        elif self.log_path.exists():  # drop lines logged after the checkpoint: they are about to be redone
            kept = [ln for ln in self.log_path.read_text().splitlines()
                    if ln and json.loads(ln).get("step", 0) <= resume_step]
            self.log_path.write_text("".join(ln + "\n" for ln in kept))
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return
        self.tb = SummaryWriter(log_dir=str(out / "tensorboard"))

    def write_config(self, config: TrainConfig) -> None:
        if self.active:
            (self.out / "config.json").write_text(config.to_json(indent=2) + "\n")

    def log(self, record: dict[str, Any]) -> None:
        if not self.active:
            return
        with self.log_path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k not in ("step", "kind") and isinstance(v, (int, float)) and v is not None:
                    self.tb.add_scalar(f"{record['kind']}/{k}", v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


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
        configuration differs (the message lists the fields); unusable data.
    FloatingPointError : the gradient became non-finite (the step and loss parts are named).
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


def _train(config: TrainConfig, resume: bool, stop_after: int | None, ctx: DistContext) -> dict[str, Any]:
    t_start = time.perf_counter()
    device = resolve_device(config.device, ctx.local_rank)
    out = Path(config.out)
    last_path, best_path = out / "last.pt", out / "best.pt"
    if resume and not last_path.is_file():
        raise ValueError(f"nothing to resume: {last_path} does not exist (start the run without --resume)")
    if not resume and last_path.exists():
        raise ValueError(f"{out} already holds a run ({last_path}); pass --resume to continue it "
                         "or choose another --out")

    # --- data
    train_set, val_set, schema = _open_datasets(config)
    facts = _training_facts(train_set)
    sampler = EpochBatchSampler(len(train_set), config.batch_size, config.seed, ctx.rank, ctx.world_size)
    loader = DataLoader(SeededPatches(train_set, config.patch), batch_sampler=sampler,
                        num_workers=config.num_workers, persistent_workers=config.num_workers > 0,
                        pin_memory=device.type == "cuda", generator=torch.Generator())
    val_loader = None
    if len(val_set) == 0:
        where = config.val_store or f"the 'val' split of {config.store}"
        warnings.warn(f"no validation data ({where} is empty); best.pt will not be written", stacklevel=2)
    elif ctx.is_main:
        n_val = min(len(val_set), config.val_max_slices)  # evenly spread, so several subjects are seen
        picks = sorted({int(i) for i in np.linspace(0, len(val_set) - 1, n_val).round()})
        val_loader = DataLoader(Subset(val_set, picks), batch_size=config.batch_size, shuffle=False, num_workers=0)

    # --- model, optimiser, EMA, AMP
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

    # --- resume state
    step, best = 0, math.inf
    if resume:
        # on the CPU: RNG states must stay there; load_state_dict copies weights and optimiser moments
        # onto the parameters' device
        ckpt = load_checkpoint(last_path, expected_model_config=config.model, expected_schema=schema)
        saved = {k: v for k, v in (ckpt["train_config"] or {}).items() if k not in RESUME_MAY_CHANGE}
        wanted = {k: v for k, v in config.to_dict().items() if k not in RESUME_MAY_CHANGE}
        diff = config_differences(saved, wanted, ("checkpoint", "requested"))
        if diff:
            raise ValueError(f"cannot resume {last_path} with a different training configuration; fields that "
                             f"differ:\n  " + "\n  ".join(diff))
        raw.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ema is not None:
            ema.model.load_state_dict(ckpt["ema"] if ckpt["ema"] is not None else ckpt["model"])
        if ckpt["scaler"]:
            scaler.load_state_dict(ckpt["scaler"])
        step = int(ckpt["step"])
        best = math.inf if ckpt["best_metric"] is None else float(ckpt["best_metric"])
        position = ckpt["data_position"]
        if position.get("world_size", 1) != ctx.world_size:
            raise ValueError(f"cannot resume {last_path} with {ctx.world_size} process(es): it was trained with "
                             f"{position.get('world_size', 1)} (fields that differ:\n  world_size: checkpoint "
                             f"{position.get('world_size', 1)} vs requested {ctx.world_size})")
        sampler.set_position(position["epoch"], position["batch"])
        restore_rng_state(ckpt["rng"])
        del ckpt
    stream = _BatchStream(loader, sampler)
    files = _RunFiles(out, ctx.is_main, step if resume else None)
    files.write_config(config)
    start_step = step
    end_step = config.steps if stop_after is None else min(config.steps, start_step + int(stop_after))

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, model=raw, model_config=config.model, step=step, train_config=config,
                        store_schema=schema, best_metric=None if math.isinf(best) else best,
                        ema=None if ema is None else ema.model.state_dict(), optimizer=optimizer,
                        scaler=scaler.state_dict() if scaler.is_enabled() else None, rng=capture_rng_state(),
                        data_position={"epoch": stream.epoch, "batch": stream.batch, "world_size": ctx.world_size},
                        extra=facts)

    from tqdm.auto import tqdm

    bar = tqdm(total=config.steps, initial=step, disable=not (ctx.is_main and config.progress),
               dynamic_ncols=True, desc="train")
    window: dict[str, list[float]] = {}  # loss parts since the last log line: [sum, count]
    window_steps, window_t0 = 0, time.perf_counter()
    last_val, last_loss, total_samples, t_loop = None, math.nan, 0, time.perf_counter()

    # --- the loop: one optimisation step per iteration
    while step < end_step:
        lr = lr_at(step, config)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_config = loss_config_at(step, config)
        batch = _to_device(stream.next(), device)

        net.train()
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            pred = net(batch["inputs"], batch["params"], batch["present"])
        loss, parts = total_loss(pred.float(), batch, loss_config)

        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        max_norm = config.grad_clip if config.grad_clip is not None else math.inf
        grad_norm = float(torch.nn.utils.clip_grad_norm_(raw.parameters(), max_norm))
        if not math.isfinite(grad_norm) and not scaler.is_enabled():  # grads are all-reduced: every rank agrees
            shown = {k: round(float(v), 6) for k, v in parts.items()}
            raise FloatingPointError(f"non-finite gradient norm at step {step} (loss parts {shown}); lower --lr or "
                                     "check the store for non-finite values")
        scaler.step(optimizer)
        scaler.update()
        step += 1
        if ema is not None:
            ema.update(raw, step)

        # --- bookkeeping: log, validate, checkpoint
        n_samples = config.batch_size * ctx.world_size
        total_samples += n_samples
        window_steps += 1
        for k, v in {"loss": float(loss.detach()), **parts, "grad_norm": grad_norm}.items():
            if k != "total":  # == loss
                acc = window.setdefault(k, [0.0, 0])
                acc[0], acc[1] = acc[0] + float(v), acc[1] + 1
        bar.update(1)
        if step % config.log_every == 0 or step == end_step:
            elapsed = time.perf_counter() - window_t0
            record = {"kind": "train", "step": step, "epoch": stream.epoch, "lr": lr,
                      "physics_weight": physics_weight_at(step - 1, config),
                      **{k: total / count for k, (total, count) in window.items()},
                      "samples_per_s": window_steps * n_samples / elapsed if elapsed > 0 else None}
            last_loss = record["loss"]
            files.log(record)
            bar.set_postfix(loss=f"{last_loss:.4g}", lr=f"{lr:.2e}")
            window, window_steps, window_t0 = {}, 0, time.perf_counter()
        t_aside = time.perf_counter()  # validation and checkpoints are kept out of the samples/s window
        if val_loader is not None and (step % config.val_every == 0 or step == config.steps):
            last_val = _validate(ema.model if ema is not None else raw, val_loader, device)
            improved = last_val is not None and last_val < best
            if improved:
                best = last_val
            files.log({"kind": "val", "step": step, "val_masked_l1": last_val,
                       "best_val_masked_l1": None if math.isinf(best) else best, "val_slices": len(val_loader.dataset)})
            if improved:
                checkpoint(best_path)
        if ctx.is_main and (step % config.checkpoint_every == 0 or step == end_step):
            checkpoint(last_path)
        window_t0 += time.perf_counter() - t_aside

    bar.close()
    files.close()
    seconds_loop = time.perf_counter() - t_loop
    return {
        "step": step,
        "start_step": start_step,
        "best_val": None if math.isinf(best) else best,
        "last_val": last_val,
        "last_loss": last_loss,
        "samples_per_s": total_samples / seconds_loop if seconds_loop > 0 and total_samples else None,
        "parameters": count_parameters(raw),
        "device": str(device),
        "world_size": ctx.world_size,
        "rank": ctx.rank,
        "weights_sha256": weights_digest(raw),
        "out": str(out),
        "last_checkpoint": str(last_path),
        "best_checkpoint": str(best_path) if best_path.exists() else None,
        "seconds": time.perf_counter() - t_start,
    }
