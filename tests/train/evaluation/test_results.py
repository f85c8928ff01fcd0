"""The JSON form of evaluation numbers: NumPy scalars become Python values, non-finite floats become null."""
from __future__ import annotations

import json
import math

import numpy as np

from relaxomap.train.evaluation.results import Evaluation, json_safe


def test_json_safe_converts_numpy_and_non_finite_values() -> None:
    raw = {1: np.float32(0.5), "b": [np.int64(3), np.bool_(True), (math.nan, math.inf, -math.inf)],
           "c": {"d": np.float64(2.25), "e": "text", "f": None}}
    out = json_safe(raw)
    assert out == {"1": 0.5, "b": [3, True, [None, None, None]], "c": {"d": 2.25, "e": "text", "f": None}}
    assert type(out["b"][0]) is int and type(out["b"][1]) is bool and type(out["1"]) is float
    json.dumps(out, allow_nan=False)  # plain JSON


def test_evaluation_defaults_to_no_examples() -> None:
    ev = Evaluation(results={"scenarios": {}})
    assert ev.examples == {} and Evaluation(results={}).examples is not ev.examples
