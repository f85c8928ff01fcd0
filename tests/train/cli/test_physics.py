"""``relaxomap fidelity``: table on the terminal, JSON and PNG written atomically, bad flags named."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from relaxomap.train.cli import main


def test_default_run_writes_json_png_and_prints_table(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["fidelity", "--json", str(out / "fid.json"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("t1w_se_3t", "t2w_tse_3t", "flair_3t", "textbook", "vs Bloch max", "CSF", "MS lesion"):
        assert name in result.output
    report = json.loads((out / "fid.json").read_text())
    assert [p["name"] for p in report["protocols"]] == ["t1w_se_3t", "t2w_tse_3t", "flair_3t"]
    assert report["points"] == ["WM", "GM", "CSF", "deep GM", "fat", "MS lesion"]
    rows = {(r["protocol"], r["model"], r["reference"]): r for r in report["summary"]}
    # the FLAIR textbook gap for CSF shows up in the summary (see test_fidelity for the numbers' origin)
    assert rows[("flair_3t", "textbook", "bloch")]["worst"] == "CSF"
    assert rows[("flair_3t", "textbook", "bloch")]["max_rel_error"] > 0.1
    assert (out / "fidelity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.iterdir()) == ["fid.json", "fidelity.png"]  # no temporary files left


def test_custom_protocol_grid_and_presets(tmp_path: Path) -> None:
    args = ["fidelity", "--field", "1.5", "--preset", "flair", "--preset", "spgr_t1w_3t", "--kind", "ir_tse",
            "--tr", "9000", "--te", "120", "--ti", "2500", "--etl", "24", "--esp", "10", "--kappa", "0.9",
            "--grid", "4", "--json", str(tmp_path / "g.json"), "--no-png"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "g.json").read_text())
    names = [p["name"] for p in report["protocols"]]
    assert names == ["flair_1.5t", "spgr_t1w_3t", "custom_ir_tse"]
    custom = report["protocols"][2]
    assert (custom["inversion_efficiency"], custom["field_t"], custom["ti_ms"]) == (0.9, 1.5, 2500.0)
    assert report["grid"] is True and len(report["points"]) == 12  # T2 < T1 on the 4×4 grid: 2+3+3+4
    assert not (tmp_path / "fidelity.png").exists()


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--kind", "se", "--tr", "-5", "--te", "10"], "--tr"),
        (["--kind", "ir_tse", "--tr", "9000", "--te", "120", "--ti", "12000", "--etl", "24", "--esp", "10"], "--ti"),
        (["--kind", "tse", "--tr", "4000", "--te", "105", "--etl", "16", "--esp", "10"], "--te"),
        (["--kind", "se", "--tr", "500", "--te", "10", "--kappa", "1.5"], "--kappa"),
        (["--kind", "se", "--te", "10"], "--tr"),
        (["--tr", "500"], "--kind"),
        (["--preset", "nonsense"], "--preset"),
        (["--field", "7"], "--field"),
        (["--tissue", "unobtainium"], "--tissue"),
        (["--kind", "flash", "--tr", "20", "--te", "4"], "--kind"),
        (["--grid", "1"], "--grid"),
    ],
)
def test_bad_flags_are_named(args: list[str], flag: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["fidelity", *args, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert flag in result.output, result.output
    assert not list(tmp_path.iterdir())  # nothing written on a usage error


def test_bounds_command_equals_the_library_and_reads_sidecars(tmp_path: Path) -> None:
    from numpy.testing import assert_allclose

    from relaxomap.physics.bounds import BoundsConfig, bounds
    from relaxomap.physics.protocol import PRESETS
    from relaxomap.train.clinical.sidecar import bids_sidecar_dict

    out = tmp_path / "b.json"
    res = CliRunner().invoke(main, ["bounds", "--preset", "t1w_tse_3t", "--preset", "t2w_tse_3t", "--preset",
                                    "flair_3t", "--snr", "20", "--no-advice", "--json", str(out)])
    assert res.exit_code == 0, res.output
    got = json.loads(out.read_text())
    want = bounds([PRESETS[n] for n in ("t1w_tse_3t", "t2w_tse_3t", "flair_3t")], BoundsConfig(snr=20.0))
    for g, w in zip(got["tissues"], want.tissues):
        assert g["tissue"] == w.tissue
        assert_allclose([g["mean_pct"][m] for m in ("t1", "t2", "pd")],
                        [w.mean_pct[m] for m in ("t1", "t2", "pd")], rtol=1e-12)  # same computation
    assert "| WM | T1 |" in res.output
    # the same exam from relaxomap-written sidecars (exact protocols): the same bounds
    args = ["bounds", "--snr", "20", "--no-advice", "--json", str(out)]
    for c, name in (("t1w", "t1w_tse_3t"), ("t2w", "t2w_tse_3t"), ("flair", "flair_3t")):
        path = tmp_path / f"{c}.json"
        path.write_text(json.dumps(bids_sidecar_dict(PRESETS[name])))
        args += ["--sidecar", c, str(path)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert [t["mean_pct"] for t in json.loads(out.read_text())["tissues"]] == [t["mean_pct"] for t in got["tissues"]]
    res = CliRunner().invoke(main, ["bounds", "--sidecar", "flair", str(tmp_path / "none.json")])
    assert res.exit_code != 0 and "none.json not found" in res.output and "--sidecar" in res.output
