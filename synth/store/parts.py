"""The part files of a store: which samples each holds, their names, datasets and attributes, the manifest of a
run, and the checks that a part is finished and belongs to the run.

A store ``STORE.h5`` is generated as parts ``STORE.h5.parts/part-NNNNNN.h5`` of ``part_subjects`` whole
subjects each (:class:`Layout`); a part is written as ``part-NNNNNN.h5.tmp`` and renamed only once it is
complete and flushed (:mod:`relaxomap.synth.store.writer`), so a finished name is a finished part. The parts
folder's ``manifest.json`` records the run's configuration and layout; a resume or another shard must match
it. :mod:`relaxomap.synth.store.merge` joins the parts into ``STORE.h5``.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from relaxomap import __version__
from relaxomap.physics.checks import config_differences
from relaxomap.physics.protocol import CONTRASTS, PACK_COLUMNS
from relaxomap.synth.generate import SynthConfig
from relaxomap.synth.store.format import IMAGE_FIELDS, SCHEMA_VERSION, UNITS, store_fields

__all__ = ["Layout", "default_part_subjects", "COMPRESSION", "MANIFEST", "create_datasets", "create_small_datasets",
           "write_attrs", "flush_and_drop", "part_path", "tmp_name", "part_ok", "manifest_of", "check_manifest"]

#: HDF5 filter per image dataset, chosen by measurement at 256 x 256 (docs/benchmarks.md): noisy float32
#: inputs do not compress (LZF 786 -> 786 kB; with shuffle 686 kB at 30x the read time); textured float32
#: targets compress 2.7x with LZF (786 -> 296 kB) but decompressing costs 1.2 ms, which alone would cap a
#: reader at ~800 samples/s, so both are stored raw; masks and labels shrink 10-60x with gzip-1 at no cost.
COMPRESSION: dict[str, dict[str, Any]] = {
    "inputs": {},
    "targets": {},
    "mask": {"compression": "gzip", "compression_opts": 1},
    "labels": {"compression": "gzip", "compression_opts": 1},
}
#: name of the run's manifest in the parts folder
MANIFEST = "manifest.json"
_PART_SAMPLES = 64  # default part size in samples (rounded down to whole subjects, at least one)


def create_datasets(f: h5py.File, n: int, h: int, w: int) -> None:
    """Every dataset of the schema for ``n`` samples of ``h`` x ``w`` pixels, image datasets one sample per chunk
    with their :data:`COMPRESSION`."""
    create_small_datasets(f, n, h, w)
    for name in IMAGE_FIELDS:
        dtype, shape = store_fields(h, w)[name]
        f.create_dataset(name, (n, *shape), dtype=dtype, chunks=(1, *shape), **COMPRESSION[name])


def create_small_datasets(f: h5py.File, n: int, h: int, w: int) -> None:
    """The per-sample datasets other than the images (parameters, seeds, ids)."""
    for name, (dtype, shape) in store_fields(h, w).items():
        if name in IMAGE_FIELDS:
            continue
        if dtype is str:
            f.create_dataset(name, (n,), dtype=h5py.string_dtype("utf-8"), chunks=(max(1, min(n, 4096)),))
        else:
            f.create_dataset(name, (n, *shape), dtype=dtype, chunks=(max(1, min(n, 4096)), *shape))


def default_part_subjects(config: SynthConfig) -> int:
    """Subjects per part file: about 64 samples (at least one subject; one 48-slice head by default).

    Small parts keep the last part short (with two workers, 64- instead of 128-sample parts wrote 2048 samples
    3-6 % faster in three alternating pairs of runs) and make a resume lose little."""
    return max(1, _PART_SAMPLES // config.slices_per_subject)


@dataclass(frozen=True)
class Layout:
    """Which samples belong to which subject and part."""

    n_samples: int
    slices_per_subject: int
    part_subjects: int

    @property
    def n_subjects(self) -> int:
        return math.ceil(self.n_samples / self.slices_per_subject)

    @property
    def n_parts(self) -> int:
        return math.ceil(self.n_subjects / self.part_subjects)

    def subject_samples(self, subject: int) -> int:
        return min(self.slices_per_subject, self.n_samples - subject * self.slices_per_subject)

    def part_subjects_range(self, part: int) -> range:
        return range(part * self.part_subjects, min((part + 1) * self.part_subjects, self.n_subjects))

    def part_samples(self, part: int) -> tuple[int, int]:
        """[start, stop) sample indices of a part."""
        subj = self.part_subjects_range(part)
        start = subj.start * self.slices_per_subject
        return start, min(subj.stop * self.slices_per_subject, self.n_samples)


def write_attrs(f: h5py.File, config_json: str, n: int, complete: bool) -> None:
    """The file attributes of a part or store (:mod:`relaxomap.synth.store.format` lists them)."""
    f.attrs["schema_version"] = SCHEMA_VERSION
    f.attrs["n_samples"] = n
    f.attrs["units"] = json.dumps(UNITS)
    f.attrs["contrasts"] = json.dumps(list(CONTRASTS))
    f.attrs["protocol_columns"] = json.dumps(list(PACK_COLUMNS))
    f.attrs["config"] = config_json
    f.attrs["package_version"] = __version__
    f.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    f.attrs["complete"] = complete


def flush_and_drop(path: Path) -> None:
    """Flush ``path`` to disk, then drop its pages from the page cache (``POSIX_FADV_DONTNEED``, where the OS
    has it).

    A store is written once and is usually larger than memory, so keeping the pages it was written through
    mostly evicts other data. Dropping them also makes the next part's writes reuse the memory just freed: on a
    VM whose freed memory goes back to the host (virtio-balloon free page reporting, as on the 2-core test
    machine), growing the page cache into memory the guest does not hold was 20 % of a two-worker run (the
    kernel's copy into new page-cache pages), and 2048 samples with two workers went from 154 / 178 / 178 to
    203 / 209 / 213 samples/s in alternating runs (docs/benchmarks.md). The cost: the first read of a new store
    comes from disk.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def part_path(folder: Path, part: int) -> Path:
    """The finished name of part ``part`` in the parts folder: ``part-NNNNNN.h5``."""
    return folder / f"part-{part:06d}.h5"


def tmp_name(final: Path) -> Path:
    """The name a file is written under before it is renamed to ``final``: ``final`` + ``.tmp``."""
    return final.with_name(final.name + ".tmp")


def part_ok(path: Path, layout: Layout, part: int, config_json: str) -> bool:
    """A finished part that belongs to this run (a part is only renamed after it is complete)."""
    try:
        with h5py.File(path, "r") as f:
            start, stop = layout.part_samples(part)
            return (bool(f.attrs.get("complete", False)) and int(f.attrs["n_samples"]) == stop - start
                    and int(f.attrs["first_sample"]) == start and f.attrs["config"] == config_json
                    and f["inputs"].shape[0] == stop - start)
    except (OSError, KeyError, ValueError):
        return False


def manifest_of(config: SynthConfig, layout: Layout) -> dict[str, Any]:
    """The manifest of a run: schema version, configuration and layout."""
    return {"schema_version": SCHEMA_VERSION, "config": config.to_dict(), **dataclasses.asdict(layout)}


def check_manifest(folder: Path, manifest: dict[str, Any]) -> str | None:
    """Write ``manifest`` into a new parts folder, or check that the folder's manifest is the same.

    A folder whose run had other settings but finished no part (a run that failed, e.g. on a wrong option,
    before its first part was done) holds nothing worth keeping: its manifest is replaced and the returned
    note says so (None otherwise).

    Raises
    ------
    ValueError
        if the folder holds finished parts of a run with other settings (the differing fields are named) or
        an unreadable manifest.
    """
    manifest = json.loads(json.dumps(manifest))  # tuples -> lists, as read back from the file
    path = folder / MANIFEST
    note = None
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{path}: unreadable manifest ({err}); delete {folder} to start again") from None
        if old == manifest:
            return None
        diff = config_differences(old, manifest, ("stored", "now"))
        finished = sorted(folder.glob("part-[0-9]*.h5"))
        if finished:
            raise ValueError(f"{folder} holds {len(finished)} finished part(s) of a run with other settings "
                             f"(differing: {'; '.join(diff)}); rerun with the same options or delete {folder}")
        note = (f"{folder} held an unfinished run with other settings (differing: {'; '.join(diff)}) and no "
                "finished part; starting afresh with these settings")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{MANIFEST}.tmp-{socket.gethostname()}-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, sort_keys=True, indent=1))
    os.replace(tmp, path)
    return note
