"""Evaluation figures: a montage per sample and the metric-vs-acquisition curves, written as PNG files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from relaxomap.train.evaluation.figures import curves_png, montage_png

_PNG = b"\x89PNG\r\n\x1a\n"


def test_montage_with_an_absent_contrast(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    targets = rng.uniform(100.0, 2000.0, (3, 16, 16))
    out = montage_png(tmp_path / "sub" / "m.png", rng.random((3, 16, 16)), np.array([1, 1, 0]), targets,
                      np.ones((16, 16), bool), {"a": targets * 1.1, "b": targets * 0.9}, title="case")
    assert out == tmp_path / "sub" / "m.png" and out.read_bytes()[:8] == _PNG


def test_curves_need_at_least_one_variable(tmp_path: Path) -> None:
    curve = {"x_mean": [500.0, None], "edges": [400.0, 600.0, 800.0], "n": [2, 0],
             "metric": "mpe_parenchyma_pct",
             "values": {"net": {"t1": [30.0, None], "t2": [25.0, None], "pd": [28.0, None]}}}
    out = curves_png(tmp_path / "c.png", {"t1w tr_ms": curve}, title="s")
    assert out.read_bytes()[:8] == _PNG
    with pytest.raises(ValueError, match=r"curves_png: no curve to draw \(no acquisition variable varies\)"):
        curves_png(tmp_path / "none.png", {})
    assert not (tmp_path / "none.png").exists()
