"""``relaxomap evaluate``: the main tables and summary on the terminal, input errors as one line, and the
deprecated ``--model`` spelling of ``--checkpoint``."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from relaxomap.train.cli import main


def test_cli_evaluate(tmp_path: Path, scenario_store: Path, tiny_checkpoints: dict[str, Path]) -> None:
    out = tmp_path / "cli"
    res = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(tiny_checkpoints["pe"]), "--checkpoint",
                                    str(tiny_checkpoints["pe2"]), "--no-nlls", "--store", str(scenario_store),
                                    "--out", str(out), "--split", "all", "--max-samples", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "| pe-unet (pe) | T1 |" in res.output and "| pe-unet (pe2) | PD (CSF = 1) |" in res.output
    assert "| oracle-prior | GM |" in res.output and "Whole brain mask (peak = CSF maximum)" in res.output
    assert "Summary (lowest parenchyma MPE per scenario and map" in res.output
    results = json.loads((out / "results.json").read_text())
    assert set(results["models"]) == {"pe-unet (pe)", "pe-unet (pe2)", "oracle-prior"}
    assert (results["meta"]["batch"], results["meta"]["split"]) == (8, "all")  # --batch fell through
    assert "deprecated" not in res.stderr


def test_model_spelling_is_deprecated(tmp_path: Path, scenario_store: Path, tiny_checkpoints: dict[str, Path]) -> None:
    out = tmp_path / "old"
    res = CliRunner().invoke(main, ["evaluate", "--model", str(tiny_checkpoints["unet"]), "--no-nlls",
                                    "--no-oracle-prior", "--store",
                                    str(scenario_store), "--out", str(out), "--split", "all", "--max-samples", "1",
                                    "--quiet", "--examples", "0"])
    assert res.exit_code == 0, res.output
    assert "warning: --model is deprecated for `relaxomap evaluate`; use --checkpoint" in res.stderr
    assert set(json.loads((out / "results.json").read_text())["models"]) == {"unet"}
    assert not list(out.glob("montage_*.png"))


def test_cli_bad_model_path(tmp_path: Path, scenario_store: Path) -> None:
    out = tmp_path / "never"
    res = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--store",
                                    str(scenario_store), "--out", str(out)])
    assert res.exit_code == 1
    assert "missing.pt not found" in res.output
    assert not out.exists()
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    res = CliRunner().invoke(main, ["evaluate", "--checkpoint", str(junk), "--store", str(scenario_store), "--out",
                                    str(out)])
    assert res.exit_code == 1
    assert "junk.pt" in res.output and "could not be read" in res.output
    assert not out.exists()
