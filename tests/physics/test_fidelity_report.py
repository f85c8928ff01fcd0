"""Reading a fidelity study: preset names completed with the field strength, the terminal table, the figure."""
from __future__ import annotations

from pathlib import Path

import pytest

from relaxomap.physics.fidelity import fidelity
from relaxomap.physics.fidelity_report import field_tag, format_fidelity_table, plot_fidelity, resolve_presets
from relaxomap.physics.protocol import PRESETS


def test_base_names_are_completed_with_the_field_strength() -> None:
    assert (field_tag(3.0), field_tag(1.5)) == ("3t", "1.5t")
    got = resolve_presets(["flair", "spgr_t1w_3t", "t2w_tse"], 1.5)
    assert got == [PRESETS["flair_1.5t"], PRESETS["spgr_t1w_3t"], PRESETS["t2w_tse_1.5t"]]


def test_unknown_names_and_missing_fields_are_named() -> None:
    with pytest.raises(ValueError, match=r"preset 'flair' exists at 1\.5t, 3t only; got field_t 7 T"):
        resolve_presets(["flair"], 7.0)
    with pytest.raises(ValueError, match=r"unknown preset 'nonsense' at field 3 T; full names: .*flair_3t.*; "
                                         r"base names .*: .*t1w_se"):
        resolve_presets(["nonsense"], 3.0)


def test_table_and_figure_of_a_small_report(tmp_path: Path) -> None:
    report = fidelity(resolve_presets(["t1w_se"], 3.0), tissues=("WM", "CSF"))
    text = format_fidelity_table(report)
    lines = text.splitlines()
    assert lines[0] == "signals (M0 = PD) and relative error [%] against Bloch"
    assert sum(ln.startswith("t1w_se_3t ") for ln in lines) == 2 + 2  # two tissues, then closed and textbook
    assert "relative error [%] over 2 tissues" in text
    (tmp_path / "fig").mkdir()
    png = plot_fidelity(report, tmp_path / "fig" / "f.png")
    assert png == tmp_path / "fig" / "f.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in png.parent.iterdir()] == ["f.png"]  # no temporary file left
