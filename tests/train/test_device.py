"""The one ``--device`` rule: auto picks CUDA (per local rank) > MPS > CPU; explicit devices are checked."""
from __future__ import annotations

import pytest
import torch

from relaxomap.train.device import resolve_device


@pytest.fixture()
def no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture()
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA reported with two devices (``torch.device`` objects need no driver)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.parametrize("spec", ["auto", None, ""])
def test_auto_without_accelerator_is_cpu(no_accelerator: None, spec: str | None) -> None:
    assert resolve_device(spec) == torch.device("cpu")


def test_auto_prefers_mps_over_cpu(no_accelerator: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_device("mps") == torch.device("mps")


def test_cuda_index_follows_the_local_rank(two_gpus: None) -> None:
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 1)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:0", local_rank=1) == torch.device("cuda", 0)  # an explicit index is kept


def test_explicit_cpu_is_always_available(two_gpus: None) -> None:
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("spec, match", [
    ("cuda", r"device 'cuda' requested but CUDA is not available on this machine"),
    ("cuda:1", r"device 'cuda:1' requested but CUDA is not available"),
    ("mps", r"device 'mps' requested but MPS is not available"),
    ("gpu", r"device must be one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'; got 'gpu'"),
    ("meta", r"device must be one of .*; got 'meta'"),
])
def test_unavailable_or_unknown_devices_are_named(no_accelerator: None, spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resolve_device(spec)
