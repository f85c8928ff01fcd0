"""What an evaluation returns (:class:`Evaluation`) and the JSON form of its numbers (:func:`json_safe`).

The layout of ``Evaluation.results`` is documented in :mod:`train.evaluation.evaluate`; the report
(:mod:`train.evaluation.report`) and the ablation page read it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

__all__ = ["Evaluation", "json_safe"]


@dataclass
class Evaluation:
    """The JSON-able ``results`` of :func:`train.evaluation.evaluate.evaluate` and a few montage examples per
    scenario.

    ``examples[scenario]`` is a list of dicts with ``inputs`` (3, H, W), ``present`` (3,), ``targets`` (3, H, W),
    ``mask`` (H, W), ``index`` and ``predictions`` ``{model: (3, H, W)}`` (float32 NumPy).
    """

    results: dict[str, Any]
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def json_safe(x: Any) -> Any:
    """Plain JSON values of a nested result: NumPy scalars to Python, non-finite floats to None, keys to str."""
    if isinstance(x, Mapping):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.integer):
        return int(x)
    return x
