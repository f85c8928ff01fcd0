"""Bad input class: output locations that cannot be written (relaxomap.atomic.check_output_file /
check_output_dir). Every command that writes (synth --out, synth merge, synth inspect --png / --json,
train --out, evaluate --out, experiment ablation --out / --results) refuses a path below a regular file or in a
read-only folder before any work, with one ``Error:`` line naming the path, exit status 1, and nothing
written."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from relaxomap.atomic import OutputLocationError, check_output_dir, check_output_file
from relaxomap.synth.store.format import parts_dir
from relaxomap.train.cli import main


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A 4-sample view store (coarse phantoms, 32 x 32)."""
    from relaxomap.synth.store.writer import write_store
    from tests.synth.store.stores import small_config

    out = tmp_path_factory.mktemp("store") / "s.h5"
    write_store(small_config().replace(image_size=(32, 32)), out, 4)
    return out


@pytest.fixture()
def read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A read-only folder. root may write anywhere, so for root the refusal is simulated: os.access answers
    for that folder as it would for another user."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access

        def access(path, mode, *args, **kwargs):  # type: ignore[no-untyped-def]
            if Path(path).absolute() == folder.absolute() and mode & os.W_OK:
                return False
            return real(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    yield folder
    folder.chmod(0o755)


def _commands(store: Path, where: Path, ok: Path = Path("ab-ok")) -> dict[str, tuple[list[str], Path]]:
    """command name -> (arguments, the output path they name) with every output under ``where`` (the
    experiment's work folder of the --results case in the writable ``ok``)."""
    return {
        "synth --out": (["synth", "--out", str(where / "x.h5"), "--n", "4", "--size", "32", "--slices", "2"],
                        where / "x.h5"),
        "synth merge": (["synth", "merge", str(where / "m.h5")], where / "m.h5"),
        "inspect --png": (["synth", "inspect", str(store), "--png", str(where / "m.png")], where / "m.png"),
        "inspect --json": (["synth", "inspect", str(store), "--json", str(where / "s.json")], where / "s.json"),
        "train --out": (["train", "--store", str(store), "--steps", "1", "--out", str(where / "run")], where / "run"),
        "evaluate --out": (["evaluate", "--store", str(store), "--out", str(where / "ev")], where / "ev"),
        "ablation --out": (["experiment", "ablation", "--quick", "--out", str(where / "ab")], where / "ab"),
        "ablation --results": (["experiment", "ablation", "--quick", "--out", str(ok),
                                "--results", str(where / "r.md")], where / "r.md"),
    }


@pytest.mark.parametrize("name", list(_commands(Path("s"), Path("w"))))
def test_path_below_a_regular_file_is_refused(name: str, store: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    args, path = _commands(store, blocker / "sub", tmp_path / "ab-ok")[name]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert "Error: " in res.output and str(path) in res.output
    assert f"{blocker} is a file, not a folder" in res.output
    assert isinstance(res.exception, SystemExit)  # a ClickException, not an uncaught error
    assert blocker.read_text() == "a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written (no ab-ok/ either)


@pytest.mark.parametrize("name", list(_commands(Path("s"), Path("w"))))
def test_read_only_folder_is_refused(name: str, store: Path, read_only: Path) -> None:
    args, path = _commands(store, read_only, read_only.parent / "ab-ok")[name]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert str(path) in res.output and f"the folder {read_only} is read-only" in res.output
    assert isinstance(res.exception, SystemExit)  # a ClickException, not an uncaught error
    assert list(read_only.iterdir()) == []
    assert not (read_only.parent / "ab-ok").exists()


def test_helpers_name_the_path_and_the_problem(tmp_path: Path, read_only: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputLocationError, match=r"--png .*f/a/b\.png cannot be created: .*f is a file"):
        check_output_file(tmp_path / "f" / "a" / "b.png", "--png")
    with pytest.raises(OutputLocationError, match=r"store .*/d is a folder; give a file name"):
        (tmp_path / "d").mkdir()
        check_output_file(tmp_path / "d", "store")
    with pytest.raises(OutputLocationError, match=r"--out .*ro/new cannot be written: the folder .*ro is read-only"):
        check_output_dir(read_only / "new", what="--out")
    with pytest.raises(OutputLocationError, match=r"--out .*ro cannot be written: the folder .*ro is read-only"):
        check_output_dir(read_only, existing_ok=True, what="--out")
    check_output_file(tmp_path / "new" / "deeper" / "x.h5")  # missing folders are created later: fine
    check_output_dir(tmp_path / "d", existing_ok=True)
    (tmp_path / "d" / "run.txt").write_text("resumable")
    check_output_dir(tmp_path / "d", existing_ok=True)  # a run folder that is resumed
    with pytest.raises(OutputLocationError, match="exists and is not empty"):
        check_output_dir(tmp_path / "d")


def test_merge_refuses_before_reading_the_parts(store: Path, tmp_path: Path) -> None:
    """`synth merge` names the unwritable store, not the (present) parts."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    target = blocker / "s.h5"
    shutil.copytree(parts_dir(store), tmp_path / "s.h5.parts")
    res = CliRunner().invoke(main, ["synth", "merge", str(target)])
    assert res.exit_code == 1 and f"store {target} cannot be created" in res.output
