"""Bad input class: a ``.parts/`` folder left by a failed ``synth`` run, in the way of the corrected rerun.

A run that fails on its input before finishing a part leaves nothing (parts.check_manifest, writer cleanup);
a rerun with other settings over a folder that holds no finished part proceeds and says so; one over a folder
holding finished parts of other settings is still refused with the differing fields named."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import relaxomap.synth.store.writer as writer
from relaxomap.synth.store.format import parts_dir
from relaxomap.synth.store.parts import MANIFEST, Layout, manifest_of
from relaxomap.synth.store.verify import verify_store
from relaxomap.train.cli import main
from tests.synth.store.stores import small_config

TINY = {"source": {"phantom": {"shape": [64, 72, 8], "voxel_mm": [3.5, 3.5, 3.5]}}, "image_size": [32, 32],
        "slices_per_subject": 2}


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    return path


def test_wrong_input_then_corrected_rerun(tmp_path: Path, tiny: Path) -> None:
    """The wrong option (maps in seconds) leaves nothing; the corrected command then just runs."""
    data = {"t1_ms": np.full((8, 8, 2), 1.2, np.float32), "t2_ms": np.full((8, 8, 2), 0.09, np.float32),
            "pd": np.full((8, 8, 2), 0.8, np.float32)}
    np.savez(tmp_path / "sec.npz", **data)
    out = tmp_path / "s.h5"
    res = CliRunner().invoke(main, ["synth", "--out", str(out), "--n", "2", "--config", str(tiny),
                                    "--real", str(tmp_path / "sec.npz")])
    assert res.exit_code == 1 and "looks like seconds" in res.output
    assert not parts_dir(out).exists() and not out.exists()
    res = CliRunner().invoke(main, ["synth", "--out", str(out), "--n", "2", "--config", str(tiny)])
    assert res.exit_code == 0, res.output
    assert verify_store(out).ok


def test_failure_before_the_first_part_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An input error met only while generating (here: raised by the generator) removes the parts folder the
    run created."""
    def broken(*args, **kwargs):
        raise ValueError("phantom: this input cannot be rendered")

    monkeypatch.setattr(writer, "generate_subject", broken)
    out = tmp_path / "s.h5"
    with pytest.raises(ValueError, match="cannot be rendered"):
        writer.write_store(small_config(), out, 4, part_subjects=1)
    assert not parts_dir(out).exists() and list(tmp_path.iterdir()) == []


def test_unfinished_run_with_other_settings_is_replaced_and_said(tmp_path: Path, tiny: Path) -> None:
    """A folder an older failed run left (manifest of other settings, a half-written part, no finished part)."""
    out = tmp_path / "s.h5"
    folder = parts_dir(out)
    folder.mkdir()
    old = small_config().replace(seed=99)
    (folder / MANIFEST).write_text(json.dumps(manifest_of(old, Layout(2, old.slices_per_subject, 1))))
    (folder / "part-000000.h5.tmp").write_bytes(b"half")
    res = CliRunner().invoke(main, ["synth", "--out", str(out), "--n", "2", "--config", str(tiny)])
    assert res.exit_code == 0, res.output
    assert "note:" in res.output and "no finished part; starting afresh" in res.output and "seed" in res.output
    assert verify_store(out).ok and not (folder / "part-000000.h5.tmp").exists()


def test_finished_parts_with_other_settings_are_still_refused(tmp_path: Path, tiny: Path) -> None:
    out = tmp_path / "s.h5"
    res = CliRunner().invoke(main, ["synth", "--out", str(out), "--n", "4", "--config", str(tiny), "--shard",
                                    "0/2", "--seed", "1"])
    assert res.exit_code == 0, res.output
    before = sorted(p.name for p in parts_dir(out).iterdir())
    res = CliRunner().invoke(main, ["synth", "--out", str(out), "--n", "4", "--config", str(tiny), "--seed", "2"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert f"{parts_dir(out)} holds 1 finished part(s) of a run with other settings" in res.output
    assert "seed: stored 1 vs now 2" in res.output
    assert sorted(p.name for p in parts_dir(out).iterdir()) == before and not out.exists()
