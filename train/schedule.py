"""Learning rate and loss weights as pure functions of the optimisation step.

``step`` is the 0-based index of the optimisation step about to be taken (the first update uses step 0).
Nothing here holds state, so a resumed run gets exactly the values of an uninterrupted one from the step
number alone.

Learning rate (``lr_at``), with peak ``lr``, floor ``min_lr``, ``W = warmup_steps`` and ``S = steps``::

    step <  W :      lr · (step + 1) / W                                  (linear warm-up, reaches lr at W − 1)
    W <= step <= S:  min_lr + ½ (1 + cos(π (step − W) / max(S − W, 1))) · (lr − min_lr)   (cosine decay)
    step >  S :      min_lr

Physics-consistency weight (``physics_weight_at``), with configured weight ``w``, ``a = physics_ramp_start``,
``n = physics_ramp_steps``::

    step < a :          0
    a <= step < a + n : w · (step − a) / n                                (linear ramp)
    step >= a + n :     w

The ramp keeps the physics term out while the network still outputs near-constant maps, whose simulated
images are far from the inputs and would dominate the gradient.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol as _Protocol

__all__ = ["lr_at", "ramp_at", "physics_weight_at", "loss_config_at"]


class _LRConfig(_Protocol):
    lr: float
    min_lr: float
    warmup_steps: int
    steps: int


def lr_at(step: int, config: _LRConfig) -> float:
    """Learning rate for optimisation step ``step`` (0-based): linear warm-up then cosine decay to a floor.

    Parameters
    ----------
    step : int >= 0, the step about to be taken.
    config : any object with ``lr`` (peak), ``min_lr`` (floor), ``warmup_steps`` and ``steps`` (total
        steps), e.g. :class:`train.config.TrainConfig`.

    Returns
    -------
    float : the learning rate (see the module docstring for the formula).
    """
    if step < 0:
        raise ValueError(f"lr_at: step must be >= 0; got {step}")
    peak, floor = float(config.lr), float(config.min_lr)
    warmup, total = int(config.warmup_steps), int(config.steps)
    if step < warmup:
        return peak * (step + 1) / warmup
    if step > total:
        return floor
    progress = (step - warmup) / max(total - warmup, 1)
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)


def ramp_at(step: int, start: int, length: int) -> float:
    """Linear ramp factor in [0, 1]: 0 before ``start``, ``(step − start) / length`` after, 1 from ``start + length``.

    ``length = 0`` is a step function (1 from ``start`` on).
    """
    if step < start:
        return 0.0
    if length <= 0 or step >= start + length:
        return 1.0
    return (step - start) / length


def physics_weight_at(step: int, config: Any) -> float:
    """Physics-consistency loss weight at ``step``: ``config.loss.physics`` times the ramp of the module docstring.

    Parameters
    ----------
    step : int >= 0.
    config : object with ``loss`` (a :class:`train.losses.LossConfig`), ``physics_ramp_start`` and
        ``physics_ramp_steps``.
    """
    weight = float(config.loss.physics)
    return weight * ramp_at(step, int(config.physics_ramp_start), int(config.physics_ramp_steps))


def loss_config_at(step: int, config: Any) -> Any:
    """The :class:`train.losses.LossConfig` used at ``step``: ``config.loss`` with the ramped physics weight."""
    weight = physics_weight_at(step, config)
    if weight == config.loss.physics:
        return config.loss
    return dataclasses.replace(config.loss, physics=weight)
