"""Bad inputs, class "output location": an --out that cannot be written is refused first, by relaxomap.atomic.

``check_output_dir`` (predict, demo) and ``check_output_file`` (render, export) refuse a destination below a
regular file, in a read-only or immutable folder, a file destination that is a directory, and an existing one
without --overwrite -- before any model is loaded or map computed: every command below is also given a
checkpoint (or maps folder) that does not exist, so a check made after the loading would report that instead.
Each case asserts the exit status, a message naming the path, and that nothing was written.

A read-only folder is made with chmod when the tests do not run as root (root writes anyway), and an
immutable one with ``chattr +i`` when they do (where the file system supports it); the probe failure is also
simulated, so the refusal path runs everywhere.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from click.testing import CliRunner

import relaxomap.atomic as atomic
from relaxomap.atomic import check_output_dir, check_output_file
from relaxomap.train.cli import main
from tests.train.clinical.helpers import WM, make_tiny_checkpoint, write_case, write_maps


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture()
def blocker(tmp_path: Path) -> Path:
    """A regular file that the outputs are asked to go below."""
    f = tmp_path / "blocker.txt"
    f.write_text("a file, not a folder\n")
    return f


@pytest.fixture()
def locked(tmp_path: Path) -> Iterator[Path]:
    """An existing folder nothing can be written into: read-only (non-root) or immutable (root)."""
    d = tmp_path / "locked"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        try:
            yield d
        finally:
            d.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode:
        pytest.skip("running as root without chattr +i support: no folder can be made unwritable")
    try:
        yield d
    finally:
        subprocess.run(["chattr", "-i", str(d)], check=True)


@pytest.fixture()
def probe_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write probe fails as in a read-only folder (EACCES), whoever runs the tests."""
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)


# ------------------------------------------------------------------------------------------------ library
def test_check_output_file_refusals(tmp_path: Path, blocker: Path) -> None:
    with pytest.raises(ValueError, match=r"output file .*blocker\.txt/sub/x\.nii\.gz cannot be created: "
                                         r".*blocker\.txt is a file, not a folder"):
        check_output_file(blocker / "sub" / "x.nii.gz")
    with pytest.raises(ValueError, match=r"output file .*blocker\.txt exists; pass --overwrite"):
        check_output_file(blocker)
    check_output_file(blocker, overwrite=True)
    with pytest.raises(ValueError, match=r"output file .* is a folder; give a file name"):
        check_output_file(tmp_path)
    check_output_file(tmp_path / "new" / "deeper" / "x.pt")  # missing folders are fine: they are created
    assert _listing(tmp_path) == ["blocker.txt"]  # the probe left nothing behind


def test_check_output_dir_refusals(tmp_path: Path, blocker: Path, locked: Path) -> None:
    with pytest.raises(ValueError, match=r"output directory .*blocker\.txt/maps cannot be created: .*blocker\.txt "
                                         r"is a file"):
        check_output_dir(blocker / "maps")
    with pytest.raises(ValueError, match=r"output directory .*locked/maps cannot be written: the folder .*locked "
                                         r"is read-only"):
        check_output_dir(locked / "maps")
    with pytest.raises(ValueError, match=r"output file .*locked/x\.pt cannot be written: the folder .*locked is "
                                         r"read-only"):
        check_output_file(locked / "x.pt")
    assert not any(locked.iterdir())


def test_simulated_read_only_folder(tmp_path: Path, probe_fails: None) -> None:
    with pytest.raises(ValueError, match=r"output directory .*out cannot be written: the folder .* is read-only "
                                         r"\(Permission denied\)"):
        check_output_dir(tmp_path / "out")
    with pytest.raises(ValueError, match=r"output file .*x\.nii\.gz cannot be written"):
        check_output_file(tmp_path / "x.nii.gz")


# ------------------------------------------------------------------------------------------------ commands
def _commands(tmp_path: Path, out_dir: Path, out_file: Path) -> dict[str, list[str]]:
    """Each command with its --out at the bad place and a model / maps that do not exist."""
    case = write_case(tmp_path / "in")
    missing_ckpt = str(tmp_path / "no_such_model.pt")
    return {
        "predict": ["predict", "--t1w", str(case["t1w"]), "--out", str(out_dir), "--checkpoint", missing_ckpt],
        "demo": ["demo", "--out", str(out_dir), "--checkpoint", missing_ckpt],
        "render": ["render", "--maps", str(tmp_path / "no_such_maps"), "--seq", "t1w", "--out", str(out_file)],
        "export": ["export", "--ckpt", str(make_tiny_checkpoint(tmp_path / "tiny.pt")), "--out", str(out_file)],
    }


@pytest.mark.parametrize("command", ["predict", "demo", "render", "export"])
def test_command_below_a_file(tmp_path: Path, blocker: Path, command: str) -> None:
    out_dir, out_file = blocker / "result", blocker / "result" / "image.nii.gz"
    args = _commands(tmp_path, out_dir, out_file)[command]
    before = _listing(tmp_path)
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and "Traceback" not in res.output
    assert "blocker.txt is a file, not a folder" in res.output and "cannot be created" in res.output
    assert _listing(tmp_path) == before


@pytest.mark.parametrize("command", ["predict", "demo", "render", "export"])
def test_command_in_unwritable_folder(tmp_path: Path, locked: Path, command: str) -> None:
    out_dir, out_file = locked / "result", locked / "image.nii.gz"
    args = _commands(tmp_path, out_dir, out_file)[command]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert f"cannot be written: the folder {locked} is read-only" in res.output
    assert "Traceback" not in res.output and not any(locked.iterdir())


def test_render_refuses_an_existing_image_without_overwrite(tmp_path: Path) -> None:
    maps = write_maps(tmp_path / "maps", *WM, np.eye(4))
    out = tmp_path / "t1w.nii.gz"
    args = ["render", "--maps", str(maps), "--seq", "t1w", "--out", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    image, sidecar = out.read_bytes(), (tmp_path / "t1w.json").read_text()
    res = CliRunner().invoke(main, [*args, "--tr", "500"])
    assert res.exit_code == 1 and f"output file {out} exists; pass --overwrite" in res.output
    assert out.read_bytes() == image and (tmp_path / "t1w.json").read_text() == sidecar  # untouched
    # the sidecar alone is protected too
    out.unlink()
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "t1w.json exists; pass --overwrite" in res.output and not out.exists()
    res = CliRunner().invoke(main, [*args, "--tr", "500", "--overwrite"])
    assert res.exit_code == 0, res.output
    assert '"RepetitionTime": 0.5' in (tmp_path / "t1w.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["maps", "t1w.json", "t1w.nii.gz"]  # no temporary left
