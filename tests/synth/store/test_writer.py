"""Writing a store: schema and attributes, identical arrays for any number of workers, resume after a kill,
the background finisher, existing stores and parts with other settings, argument errors."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from relaxomap.synth.generate import SynthConfig, generate_subject
from relaxomap.synth.store.format import SCHEMA_VERSION, check_store, is_view, parts_dir
from relaxomap.synth.store.writer import write_store
from tests.conftest import REPO
from tests.synth.store.stores import (
    N,
    PART_SUBJECTS,
    SIZE,
    SLICES,
    assert_same_store,
    read_all,
    small_config,
)


def test_store_schema_and_attrs(reference: Path) -> None:
    with check_store(reference) as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert int(f.attrs["n_samples"]) == N
        assert SynthConfig.from_json(f.attrs["config"]) == small_config()
        assert json.loads(f.attrs["contrasts"]) == ["t1w", "t2w", "flair"]
        assert "T1 [ms]" in json.loads(f.attrs["units"])["targets"]
        assert f.attrs["package_version"] and f.attrs["created"]
    with h5py.File(parts_dir(reference) / "part-000000.h5", "r") as f:
        assert f["inputs"].chunks == (1, 3, SIZE, SIZE)
    data = read_all(reference)
    # samples ordered by subject: SLICES per subject, the last subject cut short
    expected = np.repeat(np.arange(5), SLICES)[:N]
    assert np.array_equal(data["subject_index"], expected)
    assert len(set(data["seed"].tolist())) == N  # no duplicate sample
    first = generate_subject(small_config(), 4)
    assert np.array_equal(data["inputs"][12], first[0]["inputs"])
    with h5py.File(reference, "r") as f:  # a view: image datasets are virtual over the parts, which stay
        assert f["inputs"].is_virtual and not f["seed"].is_virtual and f.attrs["layout"] == "view"
    assert is_view(reference) and len(list(parts_dir(reference).glob("part-*.h5"))) == 5


def test_two_workers_give_identical_arrays(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "w2.h5"
    report = write_store(small_config(), out, N, workers=2, part_subjects=PART_SUBJECTS)
    assert report.merged and report.generated == N
    assert_same_store(read_all(out), read_all(reference))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forked workers on Linux only")
def test_forked_workers_give_identical_arrays(reference: Path, tmp_path: Path) -> None:
    """A process without torch or a Numba thread pool forks its workers (the pytest process spawns them)."""
    out = tmp_path / "forked.h5"
    code = ("import sys; from relaxomap.synth.store.writer import _start_method, write_store; "
            "from tests.synth.store.stores import small_config; print(_start_method()); "
            f"write_store(small_config(), sys.argv[1], {N}, workers=2, part_subjects={PART_SUBJECTS})")
    run = subprocess.run([sys.executable, "-c", code, str(out)], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[0] == "fork"
    assert_same_store(read_all(out), read_all(reference))


def test_resume_after_partial_run(reference: Path, tmp_path: Path) -> None:
    """State left by a kill at various moments: a half-written part, a missing part, a half-written merge."""
    out = tmp_path / "resume.h5"
    write_store(small_config(), out, N, shard=(0, 1), part_subjects=PART_SUBJECTS)  # all parts, no merge
    folder = parts_dir(out)
    (folder / "part-000002.h5").unlink()
    (folder / "part-000002.h5.tmp").write_bytes(b"\x89HDF half written")
    (folder / "part-000003.h5").rename(folder / "part-000003.h5.tmp")  # killed just before the rename
    out.with_name(out.name + ".tmp").write_bytes(b"half merged")
    report = write_store(small_config(), out, N, part_subjects=PART_SUBJECTS)
    assert report.generated == 2 * SLICES  # only the two lost parts were generated again
    assert_same_store(read_all(out), read_all(reference))


def test_finisher_renames_flushed_parts_and_reports_failures(tmp_path: Path) -> None:
    """Parts are written as ``.tmp`` and renamed by a background thread after the flush; a part that cannot be
    finished (here: its file is gone) raises from ``close``, so a run never reports a part it does not have."""
    from relaxomap.synth.store.writer import _Finisher

    payload = os.urandom(1 << 16)
    (tmp_path / "part-000000.h5.tmp").write_bytes(payload)
    finisher = _Finisher()
    finisher.submit(tmp_path / "part-000000.h5")
    finisher.close()
    assert (tmp_path / "part-000000.h5").read_bytes() == payload
    assert not (tmp_path / "part-000000.h5.tmp").exists()
    finisher = _Finisher()
    finisher.submit(tmp_path / "part-000001.h5")  # never written
    with pytest.raises(FileNotFoundError, match="part-000001"):
        finisher.close()


def test_kill_minus_9_and_resume(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed.h5"
    config = tmp_path / "config.json"
    config.write_text(small_config().to_json())
    cmd = [sys.executable, "-m", "relaxomap.train.cli", "synth", "--out", str(out), "--n", str(N),
           "--config", str(config), "--part-subjects", str(PART_SUBJECTS)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    folder = parts_dir(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.is_dir() and any(folder.glob("part-*.h5")):  # at least one part done: kill mid-run
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    n_parts = -(-N // SLICES) // PART_SUBJECTS
    assert 1 <= len(list(folder.glob("part-*.h5"))) < n_parts  # killed mid-run: the resume has work to do
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    assert_same_store(read_all(out), read_all(reference))


def test_existing_store_and_parts_with_other_settings(single_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy.h5"
    shutil.copy(single_file, out)
    assert write_store(small_config(), out, N, part_subjects=PART_SUBJECTS).generated == 0  # already complete
    with pytest.raises(ValueError, match="already exists with other settings"):
        write_store(small_config(), out, N + 1, part_subjects=PART_SUBJECTS)
    other = tmp_path / "other.h5"
    write_store(small_config(), other, N, shard=(0, 4), part_subjects=PART_SUBJECTS)
    with pytest.raises(ValueError, match="seed"):  # names the differing field
        write_store(small_config().replace(seed=5), other, N, shard=(1, 4), part_subjects=PART_SUBJECTS)


def test_argument_errors_name_the_argument(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        write_store(small_config(), tmp_path / "x.h5", 0)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        write_store(small_config(), tmp_path / "x.h5", 4, workers=0)
    with pytest.raises(ValueError, match="shard must be i/n"):
        write_store(small_config(), tmp_path / "x.h5", 4, shard=(2, 2))
    assert not (tmp_path / "x.h5").exists() and not parts_dir(tmp_path / "x.h5").exists()
