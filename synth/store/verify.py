"""Reading a store (or the parts of a run) back in full: checksums and finite values.

- :func:`verify_store` : every sample of a finished store, view or self-contained, against the checksums its
  parts were written with (``part_checksums``, :mod:`relaxomap.synth.store.checksum`), and every float value
  checked to be finite. ``relaxomap synth inspect`` runs it.
- :func:`verify_parts` : the same for the part files of a run, before they are merged (``synth merge --verify``).
- :func:`nonfinite_rows` : only the finiteness of chosen samples (the rows an evaluation will read).
- :func:`check_generated_sample` / :func:`check_generated_params` : the writer's own check of what it is about
  to store (:class:`NonFiniteSampleError`), so that no non-finite sample is written in the first place.

Problems name the file (the part file for a view's images), the part, the sample (store row) and the dataset:
``/d/train.h5.parts/part-000003.h5: part 3, sample 197, dataset 'targets': 12 non-finite value(s)``. Stores
written before checksums are checked for finite values only (:attr:`VerifyReport.checksums` is False).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import h5py
import numpy as np

from relaxomap.synth.store.checksum import METHOD, PART_ATTR, STORE_ATTR, Checksums, read_json_attr
from relaxomap.synth.store.format import IMAGE_FIELDS, ImageReader, check_store

__all__ = ["Problem", "VerifyReport", "StoreVerifyError", "verify_store", "verify_parts", "nonfinite_rows",
           "NonFiniteSampleError", "check_generated_sample", "check_generated_params"]

_BLOCK = 64  # samples read at once (~100 MB of 256 x 256 images)
_MAX_PROBLEMS = 100  # listed; further ones are only counted
_SMALL_FLOATS = ("params", "protocols", "snr", "scale", "field_t")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a store: where (file, part, sample = store row, dataset) and what."""

    file: Path
    part: int | None
    sample: int | None
    dataset: str
    what: str

    def __str__(self) -> str:
        where = [f"part {self.part}"] if self.part is not None else []
        where += [f"sample {self.sample}"] if self.sample is not None else []
        return f"{self.file}: {', '.join(where + [f'dataset {self.dataset!r}'])}: {self.what}"


@dataclass
class VerifyReport:
    """What :func:`verify_store` / :func:`verify_parts` found.

    ``checksums``: whether every part had checksums to compare (False for stores written before them);
    ``nonfinite``: non-finite values per dataset; ``problems``: the first 100 problems, ``more``: how many else.
    """

    path: Path
    n_samples: int = 0
    parts: int = 0
    checksums: bool = True
    nonfinite: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    more: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: Problem) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.more += 1

    def lines(self, limit: int = 20) -> list[str]:
        """Human-readable lines: a verdict, then the problems (at most ``limit``)."""
        if self.ok:
            what = "checksums match, " if self.checksums else "no checksums stored (written before them); "
            return [f"verified {self.n_samples} samples in {self.parts} part(s): {what}all values finite"]
        total = len(self.problems) + self.more
        out = [f"{self.path}: {total} problem(s) in {self.n_samples} samples"]
        out += [f"  {p}" for p in self.problems[:limit]]
        if total > limit:
            out.append(f"  ... and {total - limit} more")
        return out


class NonFiniteSampleError(ValueError):
    """A generated sample holds NaN or infinity; the message names the sample, its subject and the dataset."""


def check_generated_sample(sample: dict[str, Any], index: int) -> None:
    """Refuse a generated sample whose images hold NaN or infinity (one vectorised sum per image: a non-finite
    value makes the sum non-finite; the exact count is only taken for the message)."""
    for name in ("inputs", "targets"):
        a = sample[name]
        if not np.isfinite(a.sum()):
            bad = int((~np.isfinite(a)).sum())
            if bad:
                raise NonFiniteSampleError(
                    f"generated sample {index} (subject {sample['subject_id']}, slice z={sample['slice_index']}, "
                    f"maps from {sample['source']}) holds {bad} non-finite value(s) in {name!r}; no part with it "
                    "is written. Check the source maps and the configuration")


def check_generated_params(values: dict[str, np.ndarray], start: int) -> None:
    """Refuse a part whose per-sample parameters (TR/TE/TI, protocols, SNR, scale, field) are not finite."""
    for name in _SMALL_FLOATS:
        finite = np.isfinite(values[name]).reshape(len(values[name]), -1).all(axis=1)
        if not finite.all():
            rows = np.flatnonzero(~finite)
            raise NonFiniteSampleError(f"generated sample {start + int(rows[0])} holds non-finite {name!r} "
                                       f"({len(rows)} sample(s) of this part); no part with it is written")


class StoreVerifyError(ValueError):
    """A store or part failed verification; the message lists the problems (file, part, sample, dataset)."""

    @classmethod
    def raise_if(cls, report: VerifyReport) -> VerifyReport:
        """Raise with the report's lines unless it is clean; returns it otherwise."""
        if not report.ok:
            raise cls("\n".join(report.lines()) + _ADVICE)
        return report


_ADVICE = ("\nA part with a checksum mismatch is damaged on disk: delete it and the store (a view), then rerun the "
           "same `relaxomap synth` command, which writes the missing part again and merges. Non-finite values "
           "were written by the generator: regenerate the store after fixing its source maps or configuration.")


def _check_rows(report: VerifyReport, sums: Checksums | None, name: str, rows: np.ndarray, first: int,
                part: int | None, file: Path) -> None:
    """Add ``rows`` (samples ``first``, ``first + 1``, ...) of dataset ``name`` to ``sums`` and report their
    non-finite values, one problem per sample."""
    if sums is not None:
        sums.add_rows(name, rows)
    if rows.dtype.kind != "f":
        return
    bad = (~np.isfinite(rows)).reshape(len(rows), -1).sum(axis=1)
    if bad.any():
        report.nonfinite[name] = report.nonfinite.get(name, 0) + int(bad.sum())
        for i in np.flatnonzero(bad):
            report.add(Problem(file, part, first + int(i), name, f"{int(bad[i])} non-finite value(s) (NaN or inf)"))


def _compare(report: VerifyReport, sums: Checksums | None, expected: Mapping[str, str] | None, part: int | None,
             files: Mapping[str, Path]) -> None:
    if sums is None or expected is None:
        return
    got = sums.result()
    for name, want in expected.items():
        if got.get(name) != want:
            report.add(Problem(files.get(name, report.path), part, None, name,
                               f"checksum mismatch (written {want}, read {got.get(name)}): the data is damaged"))


def _blocks(start: int, count: int) -> Iterable[tuple[int, int]]:
    for b0 in range(start, start + count, _BLOCK):
        yield b0, min(_BLOCK, start + count - b0)


def _store_parts(f: h5py.File, reader: ImageReader, n: int) -> tuple[list[dict[str, Any]], bool]:
    """The part records of a store: its ``part_checksums``, or (older stores) its part files' ranges."""
    sums = read_json_attr(f.attrs, STORE_ATTR)
    if sums is not None and sums.get("method") == METHOD:
        return list(sums["parts"]), True
    ranges = reader.part_ranges()
    if not ranges:  # self-contained
        return [{"part": None, "first_sample": 0, "n_samples": n, "datasets": None}], False
    return [{"part": k, "first_sample": a, "n_samples": b - a, "datasets": None}
            for k, (a, b) in enumerate(ranges)], False


def verify_store(path: str | os.PathLike, progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Read every sample of a finished store and check it (module docstring).

    Parameters
    ----------
    path : the store.
    progress : called with the number of samples just checked.

    Raises
    ------
    ValueError : the store fails :func:`relaxomap.synth.store.format.check_store` (missing, not HDF5, ...).
    """
    path = Path(path)
    with check_store(path) as f:
        n = int(f.attrs["n_samples"])
        small = {name: f[name][...] for name in f if name not in IMAGE_FIELDS and isinstance(f[name], h5py.Dataset)}
        reader = ImageReader(path)
        try:
            records, have = _store_parts(f, reader, n)
            report = VerifyReport(path, n, len(records), have)
            for rec in records:
                start, count, part = int(rec["first_sample"]), int(rec["n_samples"]), rec["part"]
                sums = Checksums() if rec["datasets"] is not None else None
                files = {name: path for name in small}
                for b0, m in _blocks(start, count):
                    source = reader.source(b0)
                    for name in IMAGE_FIELDS:
                        files[name] = source
                        try:
                            datasets, j = reader.locate(b0)
                            rows = datasets[name][j:j + m]
                        except OSError as err:  # a part file HDF5 cannot read (truncated, overwritten)
                            report.add(Problem(source, part, b0, name, f"unreadable ({str(err).splitlines()[0]})"))
                            sums = None
                            continue
                        _check_rows(report, sums, name, rows, b0, part, source)
                    if progress is not None:
                        progress(m)
                for name, values in small.items():
                    _check_rows(report, sums, name, values[start:start + count], start, part, path)
                _compare(report, sums, rec["datasets"], part, files)
        finally:
            reader.close()
    return report


def verify_parts(folder: str | os.PathLike, n_parts: int) -> VerifyReport:
    """Read back the part files ``part-000000.h5`` ... of a parts folder and check each against the checksums
    it was written with, and every float value for finiteness (before :func:`merge_parts` joins them)."""
    from relaxomap.synth.store.parts import part_path

    folder = Path(folder)
    report = VerifyReport(folder, 0, n_parts, True)
    for p in range(n_parts):
        file = part_path(folder, p)
        try:
            _verify_part_file(report, file, p)
        except OSError as err:  # a part file HDF5 cannot open or read
            report.add(Problem(file, p, None, "*", f"unreadable ({str(err).splitlines()[0]})"))
    return report


def _verify_part_file(report: VerifyReport, file: Path, p: int) -> None:
    """Add part file ``file`` (part ``p``) to ``report``: its checksums and finite values."""
    with h5py.File(file, "r") as f:
        expected = read_json_attr(f.attrs, PART_ATTR)
        ok = expected is not None and expected.get("method") == METHOD
        report.checksums = report.checksums and ok
        sums = Checksums() if ok else None
        first, count = int(f.attrs["first_sample"]), int(f.attrs["n_samples"])
        report.n_samples += count
        for name in f:
            for b0, m in _blocks(0, count):
                try:
                    rows = f[name][b0:b0 + m]
                except OSError as err:
                    report.add(Problem(file, p, first + b0, name, f"unreadable ({str(err).splitlines()[0]})"))
                    sums = None
                    break
                _check_rows(report, sums, name, rows, first + b0, p, file)
        _compare(report, sums, expected["datasets"] if ok else None, p, {name: file for name in f})


def nonfinite_rows(path: str | os.PathLike, rows: Iterable[int],
                   datasets: tuple[str, ...] = ("inputs", "targets")) -> list[Problem]:
    """The samples among ``rows`` whose ``datasets`` (image datasets) hold NaN or infinity, one problem per
    sample and dataset, with the file each was read from. Reads only those samples."""
    report = VerifyReport(Path(path))
    reader = ImageReader(path)
    try:
        for i in sorted({int(r) for r in rows}):
            found, j = reader.locate(i)
            for name in datasets:
                _check_rows(report, None, name, found[name][j:j + 1], i, None, reader.source(i))
    finally:
        reader.close()
    return report.problems + ([Problem(Path(path), None, None, "...", f"{report.more} more")] if report.more else [])
