"""``relaxomap predict``, ``render`` and ``demo`` through click: flags, summaries, one-line input errors, and the
deprecated ``--model`` spellings (still working, with a warning on stderr)."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

from relaxomap.physics.protocol import PRESETS
from relaxomap.physics.signal import signal
from relaxomap.train.cli import main
from relaxomap.train.clinical.map_files import PROVENANCE_FILE
from tests.train.clinical.helpers import WM, write_maps


@pytest.fixture()
def maps_dir(tmp_path: Path) -> Path:
    return write_maps(tmp_path / "maps", *WM, np.diag([1.0, 1.0, 2.0, 1.0]))


def test_cli_predict(case: dict[str, Path], tiny_ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli_out"
    res = CliRunner().invoke(main, ["predict", "--t1w", str(case["t1w"]), "--t2w", str(case["t2w"]), "--flair",
                                    str(case["flair"]), "--out", str(out), "--checkpoint", str(tiny_ckpt),
                                    "--quiet", "--t2w-te", "90", "--batch", "2"])
    assert res.exit_code == 0, res.output
    assert "T2w  : TR 5000 ms, TE 90 ms, TI 0 ms" in res.stdout and "deprecated" not in res.stderr
    prov = json.loads((out / PROVENANCE_FILE).read_text())
    assert prov["parameters"]["t2w"]["te_ms"] == {"value_ms": 90.0, "source": "flag --t2w-te = 90 ms"}
    assert (prov["batch"], prov["device"]) == (2, "cpu")  # --batch given; --device fell through to "auto"
    # a second run into the same non-empty directory is refused without --overwrite
    res = CliRunner().invoke(main, ["predict", "--t1w", str(case["t1w"]), "--out", str(out), "--checkpoint",
                                    str(tiny_ckpt), "--quiet"])
    assert res.exit_code == 1 and "not empty" in res.output and "--overwrite" in res.output


def test_predict_model_spelling_is_deprecated(case: dict[str, Path], tiny_ckpt: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["predict", "--t1w", str(case["t1w"]), "--out", str(tmp_path / "o"),
                                    "--model", str(tiny_ckpt), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "warning: --model is deprecated for `relaxomap predict`; use --checkpoint" in res.stderr
    assert json.loads((tmp_path / "o" / PROVENANCE_FILE).read_text())["model"]["path"] == str(tiny_ckpt.resolve())
    res = CliRunner().invoke(main, ["predict", "--t1w", str(case["t1w"]), "--out", str(tmp_path / "o2"),
                                    "--model", str(tiny_ckpt), "--checkpoint", str(tiny_ckpt)])
    assert res.exit_code == 2 and "--model is the deprecated spelling of --checkpoint" in res.output


def test_missing_checkpoint_names_the_option(case: dict[str, Path], tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["predict", "--t1w", str(case["t1w"]), "--out", str(tmp_path / "o"),
                                    "--checkpoint", str(tmp_path / "none.pt")])
    assert res.exit_code == 1 and "none.pt (--checkpoint) not found" in res.output


def test_cli_render(maps_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "t1w.nii.gz"
    res = CliRunner().invoke(main, ["render", "--maps", str(maps_dir), "--seq", "t1w", "--tr", "500", "--out",
                                    str(out)])
    assert res.exit_code == 0, res.output
    prot = PRESETS["t1w_se_3t"].with_(tr_ms=500.0)
    expected = signal(np.float32([WM[0]]), np.float32([WM[1]]), np.float32([WM[2]]), [prot])[0, 0]
    assert_allclose(nib.load(out).get_fdata(), expected, rtol=1e-7)
    assert "closed model" in res.stdout  # --forward fell through to run_render's default
    res = CliRunner().invoke(main, ["render", "--maps", str(tmp_path / "none"), "--seq", "t1w", "--out",
                                    str(tmp_path / "other.nii.gz")])
    assert res.exit_code == 1 and "maps directory" in res.output and "not found" in res.output


@pytest.mark.parametrize("spelling", ["--forward", "--model"])
def test_render_forward_and_its_deprecated_spelling(maps_dir: Path, tmp_path: Path, spelling: str) -> None:
    out = tmp_path / "flair.nii.gz"
    res = CliRunner().invoke(main, ["render", "--maps", str(maps_dir), "--seq", "flair", "--out", str(out),
                                    spelling, "epg"])
    assert res.exit_code == 0, res.output
    assert json.loads(out.with_name("flair.json").read_text())["RelaxomapSignalModel"] == "epg"
    deprecated = "warning: --model is deprecated for `relaxomap render`; use --forward" in res.stderr
    assert deprecated == (spelling == "--model")


def test_demo_model_spelling_is_deprecated(tmp_path: Path) -> None:
    """The deprecated spelling reaches the demo: a missing checkpoint given as --model is reported as such."""
    res = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), "--model", str(tmp_path / "none.pt")])
    assert res.exit_code == 1 and "none.pt (--checkpoint) not found" in res.output
    assert "warning: --model is deprecated for `relaxomap demo`; use --checkpoint" in res.stderr
    assert not (tmp_path / "d").exists()


def test_defaults_are_read_from_the_library() -> None:
    text = CliRunner().invoke(main, ["predict", "--help"]).output
    assert "[default: auto]" in text and "[default: 8;" in text and "--model" not in text
    text = CliRunner().invoke(main, ["demo", "--help"]).output
    assert "[default: 0;" in text and "--checkpoint" in text
