"""Bad input class: corrupt or non-finite data inside a well-formed store.

``relaxomap synth inspect`` reads every sample back (synth.store.verify): a damaged part (checksum mismatch)
or a non-finite value is named by file, part, sample and dataset, the summary flags non-finite maps instead
of printing a NaN median, and the exit status is 1 (no montage written). ``synth merge --verify`` refuses to
merge a damaged part, and the writer refuses to store a non-finite sample it generated."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import relaxomap.synth.store.writer as writer
from relaxomap.synth.store.format import parts_dir
from relaxomap.synth.store.merge import merge_parts
from relaxomap.synth.store.verify import NonFiniteSampleError, StoreVerifyError, verify_store
from relaxomap.train.cli import main
from tests.synth.store.stores import N, PART_SUBJECTS, SLICES, copy_store, poke, small_config


def _inspect(store: Path, *extra: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["synth", "inspect", str(store), *extra])


def test_nan_in_targets_is_named_and_flagged(reference: Path, tmp_path: Path) -> None:
    store = copy_store(reference, tmp_path / "s.h5")
    part = poke(store, 4, "targets", np.nan, count=5)  # sample 4 = part 1 (3 samples per part)
    res = _inspect(store, "--png", str(tmp_path / "m.png"), "--json", str(tmp_path / "s.json"),
                   "--samples", str(N))
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert f"{part}: part 1, sample 4, dataset 'targets': 5 non-finite value(s)" in res.output
    assert f"{part}: part 1, dataset 'targets': checksum mismatch" in res.output
    assert f"Error: store {store} failed verification" in res.output
    t1_line = next(ln for ln in res.output.splitlines() if ln.startswith("t1_ms"))
    assert "NON-FINITE: 5 NaN/inf value(s) left out" in t1_line and "nan" not in t1_line.lower().replace("nan/inf", "")
    assert not (tmp_path / "m.png").exists()  # no montage of a store that failed
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["verify"]["ok"] is False and summary["verify"]["nonfinite"] == {"targets": 5}


def test_damaged_part_without_nan_is_named(reference: Path, tmp_path: Path) -> None:
    store = copy_store(reference, tmp_path / "s.h5")
    part = poke(store, 7, "inputs", 0.123)  # a plausible value: only the checksum sees it
    res = _inspect(store)
    assert res.exit_code == 1
    assert f"{part}: part 2, dataset 'inputs': checksum mismatch" in res.output
    assert "non-finite" not in res.output


def test_self_contained_store_names_its_own_file(single_file: Path, tmp_path: Path) -> None:
    store = tmp_path / "one.h5"
    store.write_bytes(single_file.read_bytes())
    with h5py.File(store, "r+") as f:
        a = f["inputs"][N - 1]
        a[2, 0, :3] = np.inf
        f["inputs"][N - 1] = a
    report = verify_store(store)
    assert not report.ok and report.nonfinite == {"inputs": 3}
    shown = [str(p) for p in report.problems]
    assert f"{store}: part 4, sample {N - 1}, dataset 'inputs': 3 non-finite value(s) (NaN or inf)" in shown


def test_store_without_checksums_is_still_checked_for_finite_values(reference: Path, tmp_path: Path) -> None:
    store = copy_store(reference, tmp_path / "old.h5")
    with h5py.File(store, "r+") as f:
        del f.attrs["part_checksums"]  # as written before checksums
    assert "no checksums stored" in _inspect(store).output
    poke(store, 0, "targets", -np.inf)
    res = _inspect(store)
    assert res.exit_code == 1 and "sample 0, dataset 'targets': 1 non-finite" in res.output


def test_merge_verify_refuses_a_damaged_part(reference: Path, tmp_path: Path) -> None:
    store = copy_store(reference, tmp_path / "s.h5")
    store.unlink()  # the parts of a run, not yet merged
    with h5py.File(parts_dir(store) / "part-000003.h5", "r+") as f:
        f["params"][0, 0, 0] = f["params"][0, 0, 0] + 1.0
    res = CliRunner().invoke(main, ["synth", "merge", str(store), "--verify"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert "part-000003.h5: part 3, dataset 'params': checksum mismatch" in res.output
    assert not store.exists() and not store.with_name(store.name + ".tmp").exists()
    with pytest.raises(StoreVerifyError):
        merge_parts(store, verify=True)
    merge_parts(store)  # without --verify the parts are merged as they are (and inspect finds the damage)
    assert not verify_store(store).ok


def test_writer_refuses_a_non_finite_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = writer.generate_subject

    def generate(config, subject, n=None):  # type: ignore[no-untyped-def]
        samples = real(config, subject, n)
        if subject == 1:
            samples[2]["inputs"][1, 5, 5] = np.nan
        return samples

    monkeypatch.setattr(writer, "generate_subject", generate)
    out = tmp_path / "s.h5"
    with pytest.raises(NonFiniteSampleError, match=rf"generated sample {SLICES + 2} \(subject phantom-"
                                                          r".*holds 1 non-finite value\(s\) in 'inputs'"):
        writer.write_store(small_config(), out, N, part_subjects=PART_SUBJECTS)
    assert not out.exists()
    assert sorted(p.name for p in parts_dir(out).iterdir()) == ["manifest.json", "part-000000.h5"]


def test_truncated_part_file_is_named(reference: Path, tmp_path: Path) -> None:
    store = copy_store(reference, tmp_path / "s.h5")
    part = parts_dir(store) / "part-000002.h5"
    part.write_bytes(part.read_bytes()[:4096])
    res = _inspect(store, "--samples", "1")
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit)
    assert str(part) in res.output and "damaged file?" in res.output
    report = verify_store(store)
    assert not report.ok and f"{part}: part 2, sample 6, dataset 'inputs': unreadable" in str(report.problems[0])
    store.unlink()
    res = CliRunner().invoke(main, ["synth", "merge", str(store), "--verify"])
    assert res.exit_code == 1 and "missing or incomplete" in res.output and "parts 2" in res.output
