"""Stopping a run at the first non-finite loss, with the step and the samples named.

A NaN or infinite loss (training or validation) means either non-finite values in the data (a damaged store,
see ``relaxomap synth inspect``) or a network that diverged. :func:`nonfinite_loss` builds the error that
says which: the store rows of the batch whose tensors hold NaN / inf, per tensor, or, when the batch is
finite, that the network's output is not. The trainer raises it before the optimiser step, so the weights
and the last checkpoint stay as they were.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

__all__ = ["NonFiniteLossError", "nonfinite_samples", "nonfinite_loss", "loss_is_finite"]

_CHECKED = ("inputs", "targets", "params", "protocols", "present", "mask")


class NonFiniteLossError(FloatingPointError, ValueError):
    """The loss (or the gradient norm) became NaN or infinite; the message names the step and the samples.

    A FloatingPointError for code that caught the trainer's earlier error, and a ValueError so that the command
    line reports it as one ``Error:`` line.
    """


def nonfinite_samples(batch: Mapping[str, Any], limit: int = 8) -> list[str]:
    """``"sample 17 (targets: 16 value(s), inputs: 3)"`` for each sample of ``batch`` whose float tensors hold
    NaN or infinity (``sample`` is the store row of ``batch["index"]``, or the position in the batch)."""
    rows = batch.get("index")
    counts: dict[int, list[str]] = {}
    for key in _CHECKED:
        t = batch.get(key)
        if not torch.is_tensor(t) or not t.is_floating_point():
            continue
        bad = (~torch.isfinite(t.detach())).reshape(t.shape[0], -1).sum(dim=1).cpu()
        for i in torch.nonzero(bad).flatten().tolist():
            counts.setdefault(i, []).append(f"{key}: {int(bad[i])} value(s)")
    out = []
    for i in sorted(counts)[:limit]:
        row = int(rows[i]) if torch.is_tensor(rows) else i
        out.append(f"sample {row} ({', '.join(counts[i])})")
    if len(counts) > limit:
        out.append(f"and {len(counts) - limit} more")
    return out


def loss_is_finite(loss: torch.Tensor) -> bool:
    """Whether ``loss`` is finite on every process (one all-reduce when distributed, so that all stop
    together instead of waiting for each other's gradients)."""
    bad = (~torch.isfinite(loss.detach())).to(torch.float32).reshape(1)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
    return not bool(bad.item())


def nonfinite_loss(what: str, value: Any, step: int, batch: Mapping[str, Any], store: Any, lr: float | None = None
                   ) -> NonFiniteLossError:
    """The error for a non-finite ``what`` (``"loss"``, ``"validation loss"``, ``"gradient norm"``) at ``step``.

    Parameters
    ----------
    what : which number.
    value : its value (NaN, inf).
    step : the optimisation step (0-based) it belongs to.
    batch : the batch it came from (on any device).
    store : the store the batch was read from, named in the message.
    lr : the learning rate, named when the data is finite (the network diverged).
    """
    bad = nonfinite_samples(batch)
    if bad:
        cause = (f"non-finite values in store {store}: {'; '.join(bad)}. Check it with `relaxomap synth inspect "
                 f"{store}` and regenerate it")
    else:
        rows = batch.get("index")
        shown = ", ".join(str(int(r)) for r in rows[:8]) if torch.is_tensor(rows) else "?"
        cause = (f"the batch (store {store}, samples {shown}) is finite, so the network diverged"
                 + (f"; lower --lr (now {lr:g})" if lr is not None else ""))
    return NonFiniteLossError(f"training stopped at step {step + 1}: the {what} is {float(value)}; {cause}")
