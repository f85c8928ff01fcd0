"""`relaxomap bench physics`: the accuracies it reports are what an independent computation finds on the same maps,
and its throughputs and ratios are computed from the timings it reports (no assertion on the timings themselves:
these machines are noisy)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

from relaxomap.physics.bench import bench_closed_form, bench_epg, random_maps, time_best
from relaxomap.physics.epg import epg_echo_train
from relaxomap.physics.epg_dictionary import EPGDictionary
from relaxomap.physics.epg_numpy import epg_numpy
from relaxomap.physics.protocol import preset
from relaxomap.physics.signal import signal, signal_reference
from relaxomap.train.cli import main

# Throughputs and ratios are one division of the reported numbers: equal to rounding (1e-12 relative).
RATIO_RTOL = 1e-12


def _check_rates(result: dict, names: tuple[str, ...], rate_key: str, work: int) -> None:
    for name in names:
        r = result[name]
        assert 0 < r["best_s"] <= r["median_s"]
        assert_allclose(r[rate_key], work / r["best_s"], rtol=RATIO_RTOL)
        assert_allclose(r["ratio_to_numpy"], result["numpy"]["best_s"] / r["best_s"], rtol=RATIO_RTOL)


def test_bench_closed_form_reports_its_accuracy_and_rates() -> None:
    n_vox, seed = 20_000, 3
    r = bench_closed_form(n_vox=n_vox, repeats=2, seed=seed)
    prots = [preset("t1w_se_3t"), preset("t2w_tse_3t"), preset("flair_3t")]
    assert r["protocols"] == [p.name for p in prots] and r["n_vox"] == n_vox
    # Independent: the public signal() (same kernel, deterministic per voxel) against the float64 reference on
    # the same maps: the bench must report exactly this maximum.
    t1, t2, pd = random_maps(n_vox, seed)
    expect = float(np.max(np.abs(signal(t1, t2, pd, prots) - signal_reference(t1, t2, pd, prots))))
    assert_allclose(r["max_abs_error_vs_float64"], expect, rtol=0, atol=0)
    assert 0 < r["max_abs_error_vs_float64"] < 1e-5  # the kernel's promise (tests/physics/test_signal.py)
    _check_rates(r, ("numba_kernel", "signal", "numpy"), "voxel_contrasts_per_s", n_vox * len(prots))


def test_bench_epg_reports_its_accuracy_and_rates() -> None:
    n_vox, seed = 2_000, 5
    r = bench_epg(n_vox=n_vox, repeats=2, seed=seed)
    p = preset("t2w_tse_3t")
    assert (r["etl"], r["refocus_deg"], r["n_vox"]) == (p.etl, p.refocus_deg, n_vox)
    t1, t2, _ = random_maps(n_vox, seed)
    direct = epg_echo_train(t1, t2, p)
    # Recomputed here from the same deterministic kernels on the same maps: exactly the reported maxima.
    assert_allclose(r["max_abs_diff_numpy_vs_numba"], np.max(np.abs(epg_numpy(t1, t2, p) - direct)), rtol=0, atol=0)
    assert_allclose(r["max_abs_diff_dictionary_vs_direct"],
                    np.max(np.abs(EPGDictionary(p).echo_train(t1, t2) - direct)), rtol=0, atol=0)
    # and within the bounds of tests/physics/test_epg.py: float32 (1e-5), bilinear dictionary (5e-4 of PD)
    assert 0 < r["max_abs_diff_numpy_vs_numba"] < 1e-5
    assert 0 < r["max_abs_diff_dictionary_vs_direct"] < 5e-4
    _check_rates(r, ("numba_direct", "dictionary", "numpy"), "voxel_echoes_per_s", n_vox * p.etl)


def test_time_best_keeps_the_best_and_median_of_its_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fake clock: round k of "a" takes k + 1 s, of "b" 10 s; warm-up calls are not timed.
    ticks = iter([0, 1, 100, 110, 200, 202, 300, 310, 400, 403, 500, 510])
    monkeypatch.setattr("relaxomap.physics.bench.time.perf_counter", lambda: next(ticks))
    calls = []
    out = time_best({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3)
    assert calls == ["a", "b"] * 4  # one warm-up each, then interleaved rounds
    assert out == {"a": {"best_s": 1.0, "median_s": 2.0}, "b": {"best_s": 10.0, "median_s": 10.0}}


def test_bench_physics_cli_prints_the_json_numbers(tmp_path) -> None:
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(main, ["bench", "physics", "--voxels", "20000", "--epg-voxels", "1000",
                                    "--repeats", "1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert set(data) == {"closed_form", "epg"}
    for section, names in (("closed_form", ("numba_kernel", "signal", "numpy")),
                           ("epg", ("numba_direct", "dictionary", "numpy"))):
        for name in names:
            line = next(ln for ln in res.output.splitlines() if ln.strip().startswith(name + " "))
            printed = float(re.search(r"x([0-9.]+) NumPy", line).group(1))
            assert printed == round(data[section][name]["ratio_to_numpy"], 1), line
