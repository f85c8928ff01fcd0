"""`relaxomap bench physics` runs end to end at a small size and reports consistent numbers (no timing asserts)."""
from __future__ import annotations

import json

from click.testing import CliRunner

from relaxomap.physics.bench import bench_closed_form, bench_epg
from relaxomap.train.cli import main


def test_bench_closed_form_accuracy_and_keys() -> None:
    r = bench_closed_form(n_vox=20_000, repeats=1)
    # Kernel vs float64 reference: the 1e-5-of-PD agreement the kernel promises (tests/physics/test_signal.py).
    assert r["max_abs_error_vs_float64"] < 1e-5
    for name in ("numba_kernel", "signal", "numpy"):
        assert r[name]["voxel_contrasts_per_s"] > 0 and r[name]["best_s"] <= r[name]["median_s"]
    assert r["numpy"]["ratio_to_numpy"] == 1.0


def test_bench_epg_consistency() -> None:
    r = bench_epg(n_vox=2_000, repeats=1)
    assert r["etl"] == 16 and r["refocus_deg"] == 150.0
    # NumPy baseline runs the same EPG in float32: same 1e-5 bound as tests/physics/test_epg.py.
    assert r["max_abs_diff_numpy_vs_numba"] < 1e-5
    # Dictionary bilinear error bound of tests/physics/test_epg.py (5e-4 of the PD scale).
    assert r["max_abs_diff_dictionary_vs_direct"] < 5e-4


def test_bench_physics_cli_writes_json(tmp_path) -> None:
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(main, ["bench", "physics", "--voxels", "20000", "--epg-voxels", "1000",
                                    "--repeats", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert set(data) == {"closed_form", "epg"}
    assert "x1.0 NumPy" in res.output
