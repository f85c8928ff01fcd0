"""Bad input class: the disk fills up during ``relaxomap synth`` (simulated: the part writer, the background
finisher or a worker process raises OSError(ENOSPC), as h5py and os.fsync do on a full disk).

The run ends with one error (synth.store.failure.DiskFullError; one ``Error:`` line from the command, exit
status 1) that names the parts folder, the free space there and about how much the samples still to write
need; the finished parts are kept, half-written ones removed, and the rerun completes the same store. A run
the free space cannot hold at all is refused before it starts."""
from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import relaxomap.synth.store.writer as writer
from relaxomap.synth.store.failure import DiskFullError, bytes_per_sample
from relaxomap.synth.store.format import parts_dir
from relaxomap.synth.store.verify import verify_store
from relaxomap.train.cli import main
from tests.conftest import REPO
from tests.synth.store.stores import N, PART_SUBJECTS, SIZE, SLICES, assert_same_store, read_all, small_config

_FULL = "[Errno 28] No space left on device"


def _full_from_part(first_full: int):
    """A part writer that fills parts before ``first_full`` and hits a full disk from there on."""
    real = writer._fill_part

    def fill(f, config, config_json, layout, part, progress):  # type: ignore[no-untyped-def]
        if part >= first_full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(f, config, config_json, layout, part, progress)
    return fill


def _assert_message(text: str, out: Path, left: int, kept: int) -> None:
    folder = parts_dir(out)
    assert f"no space left on the device of {folder.absolute()} while writing {out}" in text
    need = left * bytes_per_sample((SIZE, SIZE))
    assert f"the {left} sample(s) still to write need about {need / 1e6:.1f} MB" in text
    assert f"the {kept} finished part(s) are kept in {folder}" in text and "rerun the same command" in text


def _state(out: Path) -> list[str]:
    return sorted(p.name for p in parts_dir(out).iterdir())


def test_part_writer_hits_a_full_disk(reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "s.h5"
    monkeypatch.setattr(writer, "_fill_part", _full_from_part(2))
    with pytest.raises(DiskFullError) as err:
        writer.write_store(small_config(), out, N, part_subjects=PART_SUBJECTS)
    assert err.value.errno == errno.ENOSPC and isinstance(err.value, OSError)
    _assert_message(str(err.value), out, N - 2 * SLICES, 2)
    assert _state(out) == ["manifest.json", "part-000000.h5", "part-000001.h5"] and not out.exists()
    monkeypatch.undo()  # space freed: the rerun resumes and gives the uninterrupted store
    report = writer.write_store(small_config(), out, N, part_subjects=PART_SUBJECTS)
    assert report.generated == N - 2 * SLICES
    assert_same_store(read_all(out), read_all(reference))


def test_full_disk_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.json"
    config.write_text(small_config().to_json())
    out = tmp_path / "s.h5"
    monkeypatch.setattr(writer, "_fill_part", _full_from_part(1))
    res = CliRunner().invoke(main, ["synth", "--out", str(out), "--n", str(N), "--config", str(config),
                                    "--part-subjects", str(PART_SUBJECTS)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert res.output.count("Error:") == 1
    _assert_message(res.output, out, N - SLICES, 1)


def test_background_finisher_hits_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync of a written part fails: that part is not finished (its temporary removed), the run stops at the
    next part instead of generating all of them, the finished ones are kept."""
    real = writer.flush_and_drop

    def flush(path: Path) -> None:
        if "part-000001" in path.name:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path)

    monkeypatch.setattr(writer, "flush_and_drop", flush)
    out = tmp_path / "s.h5"
    with pytest.raises(DiskFullError, match="no space left on the device") as err:
        writer.write_store(small_config(), out, N, part_subjects=PART_SUBJECTS)
    names = _state(out)
    assert "part-000000.h5" in names and "part-000001.h5" not in names
    assert not any(n.endswith(".tmp") for n in names) and "part-000004.h5" not in names
    assert "finished part(s) are kept" in str(err.value)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers on Linux only")
def test_worker_processes_hit_a_full_disk(reference: Path, tmp_path: Path) -> None:
    """Two forked workers (a fresh process without torch forks them, so they share the simulated full disk):
    one error line, no traceback from the workers; the rerun completes the store."""
    out = tmp_path / "s.h5"
    config = tmp_path / "c.json"
    config.write_text(small_config().to_json())
    code = ("import errno, sys; import relaxomap.synth.store.writer as w; real = w._fill_part\n"
            "def fill(f, c, j, layout, part, progress):\n"
            "    if part >= 2: raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "    return real(f, c, j, layout, part, progress)\n"
            "w._fill_part = fill\n"
            "from relaxomap.train.cli import main; main()")
    cmd = [sys.executable, "-c", code, "synth", "--out", str(out), "--n", str(N), "--config", str(config),
           "--workers", "2", "--part-subjects", str(PART_SUBJECTS)]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr and run.stderr.count("Error:") == 1, run.stderr[-3000:]
    assert "no space left on the device of" in run.stderr and "still to write need about" in run.stderr
    names = _state(out)
    assert {"part-000000.h5", "part-000001.h5"} <= set(names) and not any(n.endswith(".tmp") for n in names)
    writer.write_store(small_config(), out, N, part_subjects=PART_SUBJECTS)
    assert_same_store(read_all(out), read_all(reference))


def test_run_larger_than_the_free_space_is_refused_before_it_starts(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1_000_000))
    out = tmp_path / "s.h5"
    with pytest.raises(DiskFullError) as err:
        writer.write_store(small_config(), out, N, part_subjects=PART_SUBJECTS)
    assert "1.0 MB free there" in str(err.value) and f"the {N} sample(s) still to write" in str(err.value)
    assert "no part was finished" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # nothing created
    monkeypatch.undo()
    assert verify_store(writer.write_store(small_config(), out, N, part_subjects=PART_SUBJECTS).path).ok
