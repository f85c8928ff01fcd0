"""relaxomap bench refine on a small exam: every field present, the refinement beats its prior, and the CLI
prints both timings."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from relaxomap.physics.refine.bench import bench_exam, bench_refine


def test_bench_exam_geometry() -> None:
    """The ellipsoid brain fills about 40 % of a 256 × 256 grid's slices (π·0.8²/4 · the z profile)."""
    e = bench_exam((64, 64, 10))
    assert e["images"].shape == (3, 64, 64, 10)
    frac = e["mask"].mean()
    assert 0.3 < frac < 0.5, frac


@pytest.mark.slow
def test_bench_refine_small(tmp_path: Path) -> None:
    r = bench_refine((32, 32, 4))
    assert r["refine_s"] > 0 and r["nlls_s"] > 0
    assert r["refine_median_abs_t1_error_pct"] < 0.5 * r["prior_median_abs_t1_error_pct"]
    from relaxomap.train.cli import main

    out = tmp_path / "b.json"
    res = CliRunner().invoke(main, ["bench", "refine", "--shape", "32", "32", "4", "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "NLLS fit, same exam" in res.output and json.loads(out.read_text())["shape"] == [32, 32, 4]
