"""The training benchmark's synthetic batch and its terminal table."""
from __future__ import annotations

import torch

from relaxomap.train.bench import BASELINE_ARCH, format_bench_table, synthetic_batch


def test_synthetic_batch_has_the_dataset_layout() -> None:
    b = synthetic_batch(2, 24, seed=1)
    assert {k: tuple(v.shape) for k, v in b.items()} == {
        "inputs": (2, 3, 24, 24), "targets": (2, 3, 24, 24), "params": (2, 3, 3), "protocols": (2, 3, 10),
        "present": (2, 3), "mask": (2, 1, 24, 24), "labels": (2, 24, 24)}
    p99 = torch.quantile(b["inputs"].reshape(2, 3, -1), 0.99, dim=-1)
    assert torch.allclose(p99, torch.ones(2, 3), rtol=0, atol=1e-6)  # normalised by the 99th percentile (float32)
    assert bool((b["targets"][:, 0][b["labels"] > 0] > 0).all())  # T1 > 0 ms inside the phantom
    assert torch.equal(synthetic_batch(2, 24, seed=1)["targets"], b["targets"])  # seeded


def test_table_has_one_row_per_measurement_and_the_ratio() -> None:
    row = {"pe-unet": 10.0, BASELINE_ARCH: 20.0, f"ratio_vs_{BASELINE_ARCH}": 0.5}
    res = {"device_name": "cpu", "device": "cpu", "threads": 2, "batch_size": 4, "amp": False, "torch": "2.x",
           "load_average_1min": {"before": 0.5, "after": 0.7}, "patch": 64, "slice_size": 128,
           "parameters": {"pe-unet": 1234567, BASELINE_ARCH: 7654321},
           "results": {k: row for k in ("train_patch_samples_per_s", "train_slice_samples_per_s",
                                        "infer_ms_per_slice")}}
    lines = format_bench_table(res).splitlines()
    assert lines[0] == "device cpu (cpu), 2 threads, batch 4, amp False, torch 2.x, load average 0.5 -> 0.7"
    assert lines[2].startswith("train samples/s, 64x64 patches") and lines[2].endswith("10          20      0.50")
    assert lines[4].startswith("inference ms / 128x128 slice")
    assert lines[-1] == "parameters: pe-unet 1,234,567, unet 7,654,321"
