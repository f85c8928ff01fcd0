"""Training and inference throughput of the default network beside the plain U-Net, measured in one run.

Measured per architecture (``pe-unet``, the default, and ``unet``, the baseline), with the default
:class:`model.config.ModelConfig` size, default :class:`train.losses.LossConfig` (L1 + physics term) and
AdamW, on a synthetic batch (a disc phantom of brain tissues rendered at the 3 T clinical presets):

- training samples/s on ``patch`` x ``patch`` crops (default 128) and on whole ``slice_size`` slices
  (default 256): forward, loss, backward, optimiser step;
- inference ms per ``slice_size`` x ``slice_size`` slice (batch 1, no gradient).

Each number is the median over ``repeats`` timed repetitions after ``warmup`` untimed ones (the first
steps allocate memory and, on CUDA, pick kernels).
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Any, Callable

import numpy as np
import torch

from relaxomap.model.config import ModelConfig
from relaxomap.model.unet import build_model, count_parameters
from relaxomap.physics.protocol import PRESETS, pack_protocols
from relaxomap.physics.signal import signal_packed_torch
from relaxomap.physics.tissues import label_lookup
from relaxomap.train.device import resolve_device
from relaxomap.train.losses import LossConfig, total_loss

__all__ = ["synthetic_batch", "bench_train", "format_bench_table", "BASELINE_ARCH"]

BASELINE_ARCH = "unet"
_PROTOCOLS = ("t1w_se_3t", "t2w_tse_3t", "flair_3t")


def synthetic_batch(batch_size: int, size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch in the SynthDataset layout: a jittered disc phantom (CSF, GM, WM, deep GM) per sample.

    Returns
    -------
    dict : ``inputs`` (B, 3, S, S) float32 images normalised by their 99th percentile, ``targets``
        (B, 3, S, S) [T1 ms, T2 ms, PD], ``params`` (B, 3, 3) [ms], ``protocols`` (B, 3, 10), ``present``
        (B, 3), ``mask`` (B, 1, S, S), ``labels`` (B, S, S).
    """
    rng = np.random.default_rng(seed)
    table = label_lookup(3.0)
    prots = [PRESETS[name] for name in _PROTOCOLS]
    packed = pack_protocols(prots)  # (3, 10)
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((batch_size, size, size), np.int64)
    for b in range(batch_size):
        cy, cx = size / 2 + rng.normal(0.0, size / 40, 2)
        r = np.hypot(yy - cy, xx - cx) / rng.uniform(0.9, 1.1)
        lab = labels[b]
        lab[r < 0.42 * size] = 1
        lab[r < 0.38 * size] = 2
        lab[r < 0.28 * size] = 3
        lab[r < 0.08 * size] = 13
    targets = np.moveaxis(table[labels], -1, 1) * rng.uniform(0.95, 1.05, (batch_size, 3, size, size))
    targets = torch.from_numpy(targets.astype(np.float32))  # (B, 3, S, S)
    rows = torch.from_numpy(np.repeat(packed[None], batch_size, 0))
    sig = signal_packed_torch(targets[:, 0].double(), targets[:, 1].double(), targets[:, 2].double(), rows).abs()
    p99 = torch.quantile(sig.reshape(batch_size, 3, -1), 0.99, dim=-1).clamp_min(1e-12)
    inputs = (sig / p99[:, :, None, None]).float()
    params = torch.tensor([[p.tr_ms, p.te_ms, p.ti_ms] for p in prots], dtype=torch.float32)
    lab_t = torch.from_numpy(labels)
    return {
        "inputs": inputs,
        "targets": targets,
        "params": params.expand(batch_size, 3, 3).clone(),
        "protocols": rows.float(),
        "present": torch.ones(batch_size, 3),
        "mask": (lab_t > 0).float()[:, None],
        "labels": lab_t,
    }


def _load_average() -> float | None:
    """1-minute load average (other processes competing for the CPU make CPU timings slower), if known."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _train_step_fn(net: torch.nn.Module, batch: dict[str, torch.Tensor], loss_config: LossConfig,
                   device: torch.device, amp: bool) -> Callable[[], None]:
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    dtype = torch.bfloat16 if amp and device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16

    def step() -> None:
        net.train()
        with torch.autocast(device.type, dtype=dtype, enabled=amp and device.type == "cuda"):
            pred = net(batch["inputs"], batch["params"], batch["present"])
        loss, _ = total_loss(pred.float(), batch, loss_config)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()

    return step


def bench_train(*, device: str = "cpu", batch_size: int = 4, patch: int = 128, slice_size: int = 256,
                warmup: int = 1, repeats: int = 3, amp: bool = True, threads: int | None = None,
                archs: tuple[str, ...] = ("pe-unet", BASELINE_ARCH)) -> dict[str, Any]:
    """Measure training and inference throughput (module docstring); returns a JSON-able dict.

    Parameters
    ----------
    device : ``"cpu"``, ``"cuda"``, ``"auto"`` ...
    batch_size : samples per training step.
    patch, slice_size : training crop side and whole-slice side [px].
    warmup, repeats : untimed and timed repetitions per measurement.
    amp : mixed precision on CUDA (as in training); ignored on CPU.
    threads : torch intra-op threads on CPU (``None`` = torch's default).
    archs : architectures measured; the first is reported against :data:`BASELINE_ARCH` when both are there.

    Returns
    -------
    dict : ``device``, ``threads``, settings, ``load_average_1min`` before and after (CPU timings are only
        meaningful on an otherwise idle machine), ``parameters`` per arch, and ``results``:
        ``train_patch_samples_per_s``, ``train_slice_samples_per_s`` and ``infer_ms_per_slice``, each
        ``{arch: value}`` plus ``ratio_vs_unet`` (first arch / baseline: > 1 means more samples/s or more ms).
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        return _bench(device, batch_size, patch, slice_size, warmup, repeats, amp, archs)
    finally:
        torch.set_num_threads(previous_threads)


def _bench(device: str, batch_size: int, patch: int, slice_size: int, warmup: int, repeats: int, amp: bool,
           archs: tuple[str, ...]) -> dict[str, Any]:
    load_before = _load_average()
    dev = resolve_device(device)
    loss_config = LossConfig()
    results: dict[str, dict[str, float]] = {"train_patch_samples_per_s": {}, "train_slice_samples_per_s": {},
                                            "infer_ms_per_slice": {}}
    parameters: dict[str, int] = {}
    batches = {
        "train_patch_samples_per_s": {k: v.to(dev) for k, v in synthetic_batch(batch_size, patch, 1).items()},
        "train_slice_samples_per_s": {k: v.to(dev) for k, v in synthetic_batch(batch_size, slice_size, 2).items()},
    }
    one = {k: v.to(dev) for k, v in synthetic_batch(1, slice_size, 3).items()}
    for arch in archs:
        torch.manual_seed(0)
        net = build_model(ModelConfig(arch=arch)).to(dev)
        parameters[arch] = count_parameters(net)
        for key, batch in batches.items():
            sec = _median_seconds(_train_step_fn(net, batch, loss_config, dev, amp), dev, warmup, repeats)
            results[key][arch] = batch_size / sec

        def infer(net: torch.nn.Module = net) -> None:
            net.eval()
            with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp and dev.type == "cuda"):
                net(one["inputs"], one["params"], one["present"])

        results["infer_ms_per_slice"][arch] = 1e3 * _median_seconds(infer, dev, warmup, max(repeats, 5))
        del net, infer
    if len(archs) > 1 and BASELINE_ARCH in archs:
        first = archs[0]
        for key in results:
            results[key][f"ratio_vs_{BASELINE_ARCH}"] = results[key][first] / results[key][BASELINE_ARCH]
    return {
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch_size": batch_size,
        "patch": patch,
        "slice_size": slice_size,
        "warmup": warmup,
        "repeats": repeats,
        "amp": bool(amp and dev.type == "cuda"),
        "loss": loss_config.to_dict(),
        "load_average_1min": {"before": load_before, "after": _load_average()},
        "parameters": parameters,
        "results": results,
    }


def format_bench_table(res: dict[str, Any]) -> str:
    """Terminal table of a :func:`bench_train` result: settings line, one row per measurement and
    architecture with the ratio to the baseline, and the parameter counts."""
    load = res["load_average_1min"]
    lines = [f"device {res['device_name']} ({res['device']}), {res['threads']} threads, batch {res['batch_size']}, "
             f"amp {res['amp']}, torch {res['torch']}, load average {load['before']} -> {load['after']}"]
    archs = list(res["parameters"])
    lines.append(f"{'measurement':<34}" + "".join(f"{a:>12}" for a in archs) + f"{'ratio':>10}")
    patch, size = res["patch"], res["slice_size"]
    labels = {"train_patch_samples_per_s": f"train samples/s, {patch}x{patch} patches",
              "train_slice_samples_per_s": f"train samples/s, {size}x{size} slices",
              "infer_ms_per_slice": f"inference ms / {size}x{size} slice"}
    for key, label in labels.items():
        row = res["results"][key]
        ratio = next((v for k, v in row.items() if k.startswith("ratio")), None)
        lines.append(f"{label:<34}" + "".join(f"{row[a]:>12.3g}" for a in archs)
                     + (f"{ratio:>10.2f}" if ratio is not None else ""))
    lines.append("parameters: " + ", ".join(f"{a} {n:,}" for a, n in res["parameters"].items()))
    return "\n".join(lines)
