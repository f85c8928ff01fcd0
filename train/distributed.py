"""Multi-process training helpers: process-group setup from torchrun's environment and a resumable,
rank-aware batch sampler (each process's device: :func:`train.device.resolve_device` with its local rank).

Launch on several GPUs (or CPU processes) with ``torchrun --nproc_per_node N -m relaxomap.train.cli train ...``;
torchrun sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``, and
:func:`init_distributed` joins the group (NCCL on CUDA, gloo otherwise). A plain ``relaxomap train`` runs
as a single process with rank 0.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist

from relaxomap.train.device import resolve_device

__all__ = ["DistContext", "init_distributed", "shutdown_distributed", "EpochBatchSampler"]


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job: ``rank`` in ``[0, world_size)``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: single process, no process group

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files (checkpoints, logs, TensorBoard)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer; got {raw!r}") from None


def init_distributed(device_spec: str = "auto") -> DistContext:
    """Join the process group described by torchrun's environment variables, if any.

    Single process (``WORLD_SIZE`` unset or 1): returns ``DistContext()`` and creates no group. Otherwise
    initialises the default group with NCCL when the chosen device is CUDA and gloo otherwise (unless a
    group already exists, e.g. created by the caller), and returns this process's rank.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistContext()
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend())
    device = resolve_device(device_spec, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(rank, world, local_rank, backend)


def shutdown_distributed(ctx: DistContext) -> None:
    """Leave the process group created by :func:`init_distributed` (no-op for a single process)."""
    if ctx.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class EpochBatchSampler:
    """Batches of ``(index, crop_seed)`` pairs: a fresh permutation per epoch, split across ranks, resumable.

    Epoch ``e`` shuffles the ``n`` items with a generator seeded by ``(seed, e)``; the permutation is cut to
    a multiple of ``world_size * batch_size`` (drop-last, so every rank takes the same number of steps and
    no item is repeated within an epoch), and rank ``r`` takes every ``world_size``-th item starting at
    ``r``. Each item gets a crop seed derived from ``(seed, e, position in the permutation)``, so random
    crops depend only on the data position — not on worker processes or the global RNG — and a resumed run
    reads exactly the same patches as an uninterrupted one.

    Parameters
    ----------
    n_items : dataset length.
    batch_size : items per batch on this rank.
    seed : data seed.
    rank, world_size : this process's place in the job.
    """

    def __init__(self, n_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.n_items, self.batch_size, self.seed = int(n_items), int(batch_size), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"the training data has {n_items} item(s), fewer than one batch of {batch_size} per process "
                f"x {world_size} process(es); use a smaller batch_size or a larger store"
            )
        self.epoch = 0
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        return self.n_items // (self.batch_size * self.world_size)

    def set_position(self, epoch: int, batch: int) -> None:
        """The next ``iter()`` yields epoch ``epoch`` from its batch ``batch`` (0-based) on."""
        if not 0 <= batch <= self.batches_per_epoch:
            raise ValueError(f"batch position must be in [0, {self.batches_per_epoch}]; got {batch}")
        self.epoch, self.start_batch = int(epoch), int(batch)

    def epoch_items(self, epoch: int) -> list[tuple[int, int]]:
        """This rank's ``(index, crop_seed)`` items of ``epoch`` in order."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.n_items)
        used = self.batches_per_epoch * self.batch_size * self.world_size
        seeds = np.random.SeedSequence([self.seed, epoch, 0x5EED]).generate_state(used, np.uint32)
        return [(int(order[i]), int(seeds[i])) for i in range(self.rank, used, self.world_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        items = self.epoch_items(self.epoch)
        b = self.batch_size
        for k in range(self.start_batch, self.batches_per_epoch):
            yield items[k * b:(k + 1) * b]

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch
