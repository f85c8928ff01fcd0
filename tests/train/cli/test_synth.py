"""``relaxomap synth``, ``synth inspect``, ``synth merge`` and ``bench synth`` through click's CliRunner."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from relaxomap.synth.generate import SynthConfig
from relaxomap.synth.store.format import check_store
from relaxomap.train.cli import main
from relaxomap.train.cli.synth import build_synth_config



@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    """A SynthConfig JSON with coarse procedural heads (3.5 mm grid, ~0.07 s each instead of ~0.6 s)."""
    path = tmp_path_factory.mktemp("cfg") / "tiny.json"
    path.write_text(json.dumps({"source": {"phantom": {"shape": [64, 72, 8], "voxel_mm": [3.5, 3.5, 3.5]}}}))
    return path


@pytest.fixture(scope="module")
def args(tiny_config: Path) -> list[str]:
    return ["--config", str(tiny_config), "--size", "32", "--slices", "2", "--seed", "4"]


@pytest.fixture(scope="module")
def cli_store(tmp_path_factory, args) -> Path:
    out = tmp_path_factory.mktemp("cli") / "s.h5"
    result = CliRunner().invoke(main, ["synth", "--out", str(out), "--n", "6", *args, "--healthy-only"])
    assert result.exit_code == 0, result.output
    assert "6 samples" in result.output and "samples/s" in result.output
    return out


def test_synth_writes_the_configured_store(cli_store: Path) -> None:
    with check_store(cli_store) as f:
        cfg = SynthConfig.from_json(f.attrs["config"])
        assert f["inputs"].shape == (6, 3, 32, 32)
    assert cfg.image_size == (32, 32) and cfg.slices_per_subject == 2 and cfg.seed == 4
    assert cfg.source.healthy_only is True and cfg.source.phantom.shape == (64, 72, 8)  # from --config
    # options not given fall through to the dataclass defaults
    assert cfg.forward == SynthConfig().forward and cfg.protocols == SynthConfig().protocols


def test_config_file_and_override_precedence(tmp_path: Path) -> None:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"forward": "epg", "seed": 9, "slices_per_subject": 5}))
    cfg = build_synth_config(str(path), seed=2)
    assert (cfg.forward, cfg.seed, cfg.slices_per_subject) == ("epg", 2, 5)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"forward": "bloch"}))
    result = CliRunner().invoke(main, ["synth", "--out", str(tmp_path / "x.h5"), "--n", "2", "--config", str(bad)])
    assert result.exit_code != 0 and "forward" in result.output and "bad.json" in result.output


def test_inspect_prints_summary_and_montage(cli_store: Path, tmp_path: Path) -> None:
    png = tmp_path / "m.png"
    js = tmp_path / "summary.json"
    result = CliRunner().invoke(main, ["synth", "inspect", str(cli_store), "--png", str(png), "--json", str(js),
                                       "--samples", "2"])
    assert result.exit_code == 0, result.output
    assert "samples        6" in result.output and "t2w" in result.output and "TR" in result.output
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    summary = json.loads(js.read_text())
    assert summary["n_samples"] == 6 and summary["kinds"]["flair"] == {"ir_tse": 6}
    lo, hi = summary["params_ms"]["t2w"]["tr"]
    assert 2500 <= lo <= hi <= 6000  # default T2w TR range


def test_shards_then_merge(cli_store: Path, args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "sh.h5"
    runner = CliRunner()
    for shard in ("0/2", "1/2"):
        r = runner.invoke(main, ["synth", "--out", str(out), "--n", "6", *args, "--healthy-only", "--shard", shard,
                                 "--part-subjects", "1"])
        assert r.exit_code == 0, r.output
        assert "synth merge" in r.output
    r = runner.invoke(main, ["synth", "merge", str(out)])
    assert r.exit_code == 0, r.output
    with check_store(out) as a, check_store(cli_store) as b:
        for name in ("inputs", "targets", "protocols", "seed"):
            assert np.array_equal(a[name][...], b[name][...]), name


def test_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["synth"])
    assert r.exit_code == 2 and "--out" in r.output
    r = runner.invoke(main, ["synth", "--out", str(tmp_path / "a.h5"), "--n", "4", "--shard", "3/2"])
    assert r.exit_code == 2 and "--shard" in r.output
    r = runner.invoke(main, ["synth", "inspect", str(tmp_path / "none.h5")])
    assert r.exit_code == 1 and "not found" in r.output
    r = runner.invoke(main, ["synth", "merge", str(tmp_path / "none.h5")])
    assert r.exit_code == 1 and "no parts to merge" in r.output


def test_real_source_options(tmp_path: Path, shared_data: Path) -> None:
    path = shared_data / "brainweb_colin27" / "colin27_3T.npz"
    cfg = build_synth_config(None, real=(str(path),), field="1.5")
    assert cfg.source.kind == "real" and cfg.source.paths == (str(path),) and cfg.source.field_t == 1.5


def test_bench_synth_runs(tiny_config: Path, tmp_path: Path) -> None:
    js = tmp_path / "bench.json"
    r = CliRunner().invoke(main, ["bench", "synth", "--n", "4", "--n-epg", "2", "--size", "32", "--config",
                                  str(tiny_config), "--json", str(js)])
    assert r.exit_code == 0, r.output
    res = json.loads(js.read_text())
    assert {(w["forward"], w["workers"]) for w in res["write"]} == {("closed", 1), ("closed", 2), ("epg", 1),
                                                                    ("epg", 2)}
    assert all(w["samples_per_s"] > 0 for w in res["write"]) and len(res["read"]) == 2
    assert "epg/closed (1 worker)" in res["ratios"] and "ratio" in r.output
